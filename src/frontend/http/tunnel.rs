//! Backend → respond (HTTP): an upgraded connection (WebSocket and the
//! like), the app's and the upstream's joined, bytes copied both ways
//! until either side closes or nothing moves for `stream_idle_timeout`.
//! The tunnel keeps what its request held (the cluster's request slot, the
//! app connection, through [`Tunnels`]) for its whole life: it is still
//! that request, and what it holds must stay counted against the limits.
//! (The upstream socket carries its own `max_connections` permit, see
//! `core::http::pool`.)

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tracing::debug;

/// The tunnels of one app connection: the connection waits for them
/// before it ends (and gives its client permit back).
pub struct Tunnels {
    tx: mpsc::Sender<()>,
    rx: mpsc::Receiver<()>,
}

/// Held by a tunnel: its app connection is not over while it runs.
#[derive(Clone)]
pub struct TunnelGuard(#[allow(dead_code)] mpsc::Sender<()>);

impl Tunnels {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(1);
        Self { tx, rx }
    }

    /// A guard for a request of this connection to hand to its tunnel.
    pub fn guard(&self) -> TunnelGuard {
        TunnelGuard(self.tx.clone())
    }

    /// Resolves once every tunnel of the connection has ended.
    pub async fn closed(self) {
        let Tunnels { tx, mut rx } = self;
        drop(tx);
        // No message is ever sent: `None` once every guard is gone.
        let _ = rx.recv().await;
    }
}

/// Joins `client` and `upstream` once both are upgraded; `held` (the
/// request's slot, its connection's guard) is kept until the tunnel ends.
pub fn spawn<H: Send + 'static>(client: OnUpgrade, upstream: OnUpgrade, idle: Duration, held: H) {
    tokio::spawn(async move {
        let _held = held;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => return debug!(%error, "upgrade failed"),
        };
        let moved = Arc::new(AtomicU64::new(0));
        let mut client = Active::new(TokioIo::new(client), &moved);
        let mut upstream = Active::new(TokioIo::new(upstream), &moved);
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(copy);
        // Checked every `idle`: a tunnel is cut between 1× and 2× of it.
        let mut seen = 0;
        loop {
            tokio::select! {
                r = &mut copy => {
                    if let Err(error) = r {
                        debug!(%error, "upgraded connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep(idle) => {
                    let now = moved.load(Ordering::Relaxed);
                    if now == seen {
                        return debug!(idle.secs = idle.as_secs_f64(), "upgraded connection idle; closing");
                    }
                    seen = now;
                }
            }
        }
    });
}

/// A side of a tunnel that counts its reads of data as progress.
struct Active<S> {
    inner: S,
    moved: Arc<AtomicU64>,
}

impl<S> Active<S> {
    fn new(inner: S, moved: &Arc<AtomicU64>) -> Self {
        Self {
            inner,
            moved: moved.clone(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Active<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Active<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
