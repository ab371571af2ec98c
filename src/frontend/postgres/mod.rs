//! Parse (Postgres): one client session, from its first byte to its last.
//!
//! [`handshake`] negotiates TLS and reads the startup packet, [`auth`]
//! checks the client's credentials, and [`session`] relays messages between
//! the client and pooled server connections, with [`relay`] following the
//! server's replies, [`statements`] renaming prepared statements and
//! [`settings`] carrying the client's SETs from one server to the next.

mod auth;
mod client;
mod clients;
mod console;
mod context;
mod error;
mod handshake;
mod idle_tx;
mod lost;
mod open;
mod pause;
mod probes;
mod pump;
mod relay;
mod reload;
mod routing;
mod session;
mod settings;
mod statements;

pub use context::PgContext;
pub use error::FrontendError;
pub use pause::Paused;

use std::net::SocketAddr;
use std::sync::Arc;

use attache_postgres_protocol::messages;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info_span};

use crate::server::{App, Shutdown};

impl App for PgContext {
    fn protocol(&self) -> &'static str {
        "postgres"
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
        let listener = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let span = info_span!("client", protocol = "postgres", listener, client.addr = %peer, user = tracing::field::Empty, db = tracing::field::Empty);
        if let Err(error) = open::run(self, tcp, peer, shutdown, span.clone()).await {
            span.in_scope(|| {
                debug!(%error, source = ?error.source_kind(), "client session ended with an error")
            });
        }
    }

    async fn reject(self: Arc<Self>, tcp: TcpStream, _peer: SocketAddr) {
        handshake::reject_too_many(tcp, self.config().max_client_connections).await;
    }
}

/// Sends a FATAL error, then reads and discards what the client is still
/// sending (bounded in time and bytes) before closing. Closing a socket with
/// unread input makes the kernel send RST, which can destroy the error
/// before the client reads it: a client mid-way through a huge message would
/// see "connection reset" instead of the reason.
pub(crate) async fn send_fatal_and_drain<S>(stream: &mut S, code: &str, message: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    send_fatal(stream, code, message).await;
    let _ = stream.shutdown().await;
    let mut sink = vec![0u8; 64 * 1024];
    let drain = async {
        let mut total = 0usize;
        while total < 64 << 20 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

/// Writes a FATAL error to the client and flushes it; the caller closes.
pub(crate) async fn send_fatal<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    code: &str,
    message: &str,
) {
    let mut out = BytesMut::new();
    messages::error_full(&mut out, "FATAL", code, message, None);
    let _ = stream.write_all(&out).await;
    let _ = stream.flush().await;
}
