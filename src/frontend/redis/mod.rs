//! Parse (Redis): one client session. [`session`] reads pipelined commands
//! and writes replies strictly in order; [`local`] answers what Attaché
//! answers itself (PING, HELLO, AUTH, CLIENT SETNAME, …); commands that need
//! connection state go through [`dedicated`] connections; everything else
//! is multiplexed over shared server connections by `core::redis`.

mod batch;
mod dedicated;
mod local;
mod order;
mod replies;
mod route;
mod session;
mod txn;

/// Redis Cluster's answer to keys that live on different nodes (slots).
const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use attache_redis_protocol::frame::Version;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info_span};

use crate::config::redis::RedisConfig;
use crate::core::gauge::Held;
use crate::core::redis::{Mux, Setup, Topology, TopologyError};
use crate::server::{App, Shutdown};

/// What every session of one Redis listener shares.
pub struct RedisContext {
    pub config: Arc<RedisConfig>,
    pub topology: Topology,
    /// Client-facing TLS, when configured.
    local_tls: Option<Arc<rustls::ServerConfig>>,
    /// Upper-case names of denied commands.
    denied: HashSet<String>,
    /// Clients connected right now (see [`RedisContext::clients`]).
    clients: AtomicUsize,
}

impl RedisContext {
    pub fn new(config: RedisConfig) -> Result<Self, TopologyError> {
        let topology = Topology::new(&config)?;
        let local_tls = config
            .tls
            .as_ref()
            .map(crate::net::tls::server_config)
            .transpose()?;
        let denied = config
            .deny_commands
            .iter()
            .map(|c| c.to_ascii_uppercase())
            .collect();
        Ok(Self {
            config: Arc::new(config),
            topology,
            local_tls,
            denied,
            clients: AtomicUsize::new(0),
        })
    }

    /// Shared connections to the first node (keyless commands, `single`).
    pub fn first_mux(&self, version: Version, db: u32) -> Arc<Mux> {
        self.topology.first().mux(Setup { version, db })
    }

    /// Whether plain commands may be batched per client: one primary,
    /// nothing to route per command.
    pub fn batches_plain_commands(&self) -> bool {
        matches!(self.topology, Topology::Single(..)) && !self.topology.reads_from_replicas()
    }

    /// Whether any command is denied (most listeners deny none).
    pub fn denies_any(&self) -> bool {
        !self.denied.is_empty()
    }

    pub fn is_denied(&self, upper_name: &str) -> bool {
        self.denied.contains(upper_name)
    }

    /// Clients connected to this listener now, from accept (before any
    /// TLS handshake) until their session ends.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }
}

impl App for RedisContext {
    fn protocol(&self) -> &'static str {
        "redis"
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
        let listener = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let span = info_span!("client", protocol = "redis", listener, client.addr = %peer);
        // Counts the client for as long as this runs, however it ends (the
        // session takes `self`, so the count holds its own reference).
        let ctx = self.clone();
        let _connected = Held::new(&ctx.clients);
        let session = async move {
            let _ = tcp.set_nodelay(true);
            let stream = match &self.local_tls {
                Some(config) => match crate::net::tls::accept(config.clone(), tcp).await {
                    Ok(tls) => crate::net::Stream::ServerTls(Box::new(tls)),
                    Err(error) => return debug!(%error, "client TLS handshake failed"),
                },
                None => crate::net::Stream::Plain(tcp),
            };
            if let Err(error) = session::run(self, stream, shutdown).await {
                debug!(%error, "redis client session ended with an error");
            }
        };
        // Nothing in a Redis session logs above debug level.
        crate::server::traced(span, session).await
    }

    async fn reject(self: Arc<Self>, mut tcp: TcpStream, _peer: SocketAddr) {
        let _ = tcp
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
    }
}
