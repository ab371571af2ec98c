//! Parse (Redis): one client session. [`session`] reads pipelined commands
//! and writes replies strictly in order; [`local`] answers what Attaché
//! answers itself (PING, HELLO, AUTH, CLIENT SETNAME, …); commands that need
//! connection state go through [`dedicated`] connections; everything else
//! is multiplexed over shared server connections by `core::redis`.

mod dedicated;
mod local;
mod session;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use attache_redis_protocol::frame::{Limits, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info_span, Instrument};

use crate::config::redis::RedisConfig;
use crate::core::redis::{Mux, RedisTarget, Setup};
use crate::server::{App, Shutdown};

/// What every session of one Redis listener shares.
pub struct RedisContext {
    pub config: Arc<RedisConfig>,
    pub target: Arc<RedisTarget>,
    /// Shared connections per (protocol version, database), made on demand.
    muxes: Mutex<HashMap<Setup, Arc<Mux>>>,
    /// Upper-case names of denied commands.
    denied: HashSet<String>,
}

impl RedisContext {
    pub fn new(config: RedisConfig) -> Self {
        let limits = Limits {
            max_frame_size: config.max_request_size.0 as usize,
            ..Limits::default()
        };
        let target = RedisTarget {
            addr: config.nodes.first().cloned().unwrap_or_default(),
            username: config.username.clone(),
            password: config.password.clone(),
            connect_timeout: config.connect_timeout.0,
            limits,
        };
        let denied = config
            .deny_commands
            .iter()
            .map(|c| c.to_ascii_uppercase())
            .collect();
        Self {
            config: Arc::new(config),
            target: Arc::new(target),
            muxes: Mutex::new(HashMap::new()),
            denied,
        }
    }

    /// The shared connections for one setup.
    pub fn mux(&self, version: Version, db: u32) -> Arc<Mux> {
        let setup = Setup { version, db };
        let mut muxes = match self.muxes.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        muxes
            .entry(setup)
            .or_insert_with(|| {
                Arc::new(Mux::new(
                    self.target.clone(),
                    setup,
                    self.config.connections_per_node,
                ))
            })
            .clone()
    }

    pub fn is_denied(&self, upper_name: &str) -> bool {
        self.denied.contains(upper_name)
    }
}

impl App for RedisContext {
    fn protocol(&self) -> &'static str {
        "redis"
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
        let span = info_span!("client", protocol = "redis", client.addr = %peer);
        async move {
            if let Err(error) = session::run(self, tcp, shutdown).await {
                debug!(%error, "redis client session ended with an error");
            }
        }
        .instrument(span)
        .await
    }

    async fn reject(self: Arc<Self>, mut tcp: TcpStream, _peer: SocketAddr) {
        let _ = tcp
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
    }
}
