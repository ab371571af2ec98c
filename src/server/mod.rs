//! Accept: listeners, the accept loop, and shutdown with drain.
//!
//! One [`App`] trait sits between a listener and a protocol, so every
//! frontend gets the same accept loop: a connection limit, backoff on
//! accept errors, a span per connection and a shutdown signal.

mod listener;
mod shutdown;

pub use listener::{bind, serve, serve_until, Listener};
pub use shutdown::{Shutdown, ShutdownTrigger, Signal};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

/// A protocol frontend as the accept loop sees it.
pub trait App: Send + Sync + 'static {
    fn protocol(&self) -> &'static str;

    /// Serves one accepted client until it leaves or shutdown completes.
    fn serve(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        shutdown: Shutdown,
    ) -> impl Future<Output = ()> + Send;

    /// Answers a client over the connection limit with the protocol's own
    /// "too many clients" error.
    fn reject(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr)
        -> impl Future<Output = ()> + Send;
}
