//! Accept: binding with SO_REUSEPORT (so a new process can take over the
//! port before the old one drains) and the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use super::{App, Shutdown};

pub struct Listener {
    pub inner: TcpListener,
    pub addr: SocketAddr,
}

/// Binds a listening socket with SO_REUSEADDR and SO_REUSEPORT.
pub fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    let inner = socket.listen(1024)?;
    let addr = inner.local_addr()?;
    Ok(Listener { inner, addr })
}

/// Accepts until shutdown. Clients over `max_clients` are handed to
/// [`App::reject`]; accept errors (out of file descriptors, say) back off
/// instead of spinning.
pub async fn serve<A: App>(
    listener: Listener,
    app: Arc<A>,
    max_clients: usize,
    shutdown: Shutdown,
) {
    let (_never, stop) = tokio::sync::watch::channel(false);
    serve_until(listener, app, max_clients, shutdown, stop).await;
}

/// [`serve`] that also stops accepting (without touching the sessions it
/// started, which keep `shutdown`) when `stop` turns true: a reload that
/// moves or re-creates a listener hands new clients to its replacement.
pub async fn serve_until<A: App>(
    listener: Listener,
    app: Arc<A>,
    max_clients: usize,
    mut shutdown: Shutdown,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(max_clients));
    let mut backoff = Duration::from_millis(5);
    info!(protocol = app.protocol(), listen.addr = %listener.addr, "listening");
    loop {
        let accepted = tokio::select! {
            r = listener.inner.accept() => r,
            _ = shutdown.wait() => break,
            _ = stop.wait_for(|v| *v) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                error!(error = %e, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let app = app.clone();
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let session_shutdown = shutdown.clone();
                tokio::spawn(async move {
                    app.serve(tcp, peer, session_shutdown).await;
                    drop(permit);
                });
            }
            Err(_) => {
                warn!(client.addr = %peer, max_clients, "too many clients");
                tokio::spawn(app.reject(tcp, peer));
            }
        }
    }
    info!(listen.addr = %listener.addr, "stopped accepting");
}
