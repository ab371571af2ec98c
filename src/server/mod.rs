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

/// Runs a connection's steady-state future inside its span only when debug
/// events are on.
///
/// Why: an instrumented future enters and leaves its span on every poll,
/// through the subscriber's registry (a slab lookup, reference counting, a
/// thread-local stack), and a session is polled a few times per request.
/// At one Redis client that was 1.7 µs of 8.4 µs of Attaché's CPU per
/// command. Only events use the span, and at the default level the few a
/// session logs (warnings) name it explicitly with [`tracing::Span::in_scope`].
pub async fn traced<F: Future>(span: tracing::Span, fut: F) -> F::Output {
    use tracing::Instrument;
    if tracing::enabled!(tracing::Level::DEBUG) {
        fut.instrument(span).await
    } else {
        fut.await
    }
}
