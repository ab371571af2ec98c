//! The in-process test *backend* of accept → parse → route → backend → respond for the HTTP
//! egress proxy: a hyper server on a free loopback port speaking HTTP/1.1 and h2c (or, with
//! TLS, h2 and http/1.1 via ALPN) that echoes what it received and can be switched at runtime
//! into failure modes, so tests can assert both what the proxy forwarded and how it copes.
//!
//! Everything runs on the caller's tokio runtime. Per-connection errors are logged at debug
//! level and never panic, so the same server can back the long-lived `attache demo`.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::handler::{self, ConnInfo};
use super::{tls, HttpError};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the upstream answers requests (every path except `/healthz`, see [`Upstream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Serve normally.
    #[default]
    Ok,
    /// Answer every request with this status (an invalid code becomes 500).
    Status(u16),
    /// Wait this long, then serve normally.
    Delay(Duration),
    /// Close the connection without answering (HTTP/2: reset the stream).
    Reset,
    /// Answer every n-th request (n, 2n, …; counted from when the mode was set) with 503;
    /// `FailEvery(0)` never fails.
    FailEvery(u64),
}

/// Which HTTP versions the upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocols {
    Auto,
    Http1,
    Http2,
}

/// State shared by the handle, the accept loop and every request.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    mode: Mutex<Mode>,
    healthy: AtomicBool,
    requests: AtomicU64,
    health_checks: AtomicU64,
    connections: AtomicU64,
    /// Requests seen since the current [`Mode::FailEvery`] was set.
    fail_counter: AtomicU64,
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        *lock(&self.mode)
    }
    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_health_check(&self) {
        self.health_checks.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a request against `FailEvery(n)`; true if this one must fail.
    pub(crate) fn fail_now(&self, every: u64) -> bool {
        let seen = self.fail_counter.fetch_add(1, Ordering::Relaxed) + 1;
        seen.checked_rem(every) == Some(0)
    }
}

/// A std mutex guard that ignores poisoning: the guarded values are plain `Copy` data that a
/// panicking holder cannot leave half-written.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every connection needs; fixed at start.
struct ConnCtx {
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    protocols: Protocols,
}

/// A running accept loop: dropping `shutdown` (or sending `true`) ends it and its connections.
struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Configures an [`Upstream`]; see [`Upstream::builder`].
#[derive(Debug, Clone)]
pub struct UpstreamBuilder {
    name: String,
    port: u16,
    tls: Option<(PathBuf, PathBuf)>,
    client_ca: Option<PathBuf>,
    protocols: Protocols,
    mode: Mode,
}

impl UpstreamBuilder {
    /// Name sent back in `x-upstream` and the default body (default `upstream`); must be a
    /// valid header value.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Listen on this 127.0.0.1 port instead of a free one (for `attache demo`).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serve TLS with this PEM certificate chain and key (ALPN `h2`, `http/1.1`).
    pub fn tls(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.tls = Some((cert.as_ref().to_path_buf(), key.as_ref().to_path_buf()));
        self
    }

    /// Demand a client certificate signed by the CA in this PEM file (needs [`Self::tls`]).
    pub fn require_client_cert(mut self, ca: impl AsRef<Path>) -> Self {
        self.client_ca = Some(ca.as_ref().to_path_buf());
        self
    }

    /// Speak only HTTP/1.1 (and advertise only `http/1.1` over TLS).
    pub fn http1_only(mut self) -> Self {
        self.protocols = Protocols::Http1;
        self
    }

    /// Speak only HTTP/2 (prior knowledge in clear text; only `h2` over TLS).
    pub fn http2_only(mut self) -> Self {
        self.protocols = Protocols::Http2;
        self
    }

    /// Initial [`Mode`] (default [`Mode::Ok`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Binds 127.0.0.1 and starts serving on the current tokio runtime.
    pub async fn start(self) -> Result<Upstream, HttpError> {
        if self.name.is_empty() || http::HeaderValue::from_str(&self.name).is_err() {
            return Err(HttpError::Invalid(format!(
                "upstream name {:?} must be a non-empty header value",
                self.name
            )));
        }
        let alpn: Vec<Vec<u8>> = match self.protocols {
            Protocols::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Protocols::Http1 => vec![b"http/1.1".to_vec()],
            Protocols::Http2 => vec![b"h2".to_vec()],
        };
        let tls = match (&self.tls, &self.client_ca) {
            (Some((cert, key)), ca) => Some(TlsAcceptor::from(tls::server_config(
                cert,
                key,
                ca.as_deref(),
                alpn,
            )?)),
            (None, Some(_)) => {
                return Err(HttpError::Invalid(
                    "require_client_cert needs tls(cert, key)".to_string(),
                ))
            }
            (None, None) => None,
        };
        let shared = Arc::new(Shared {
            name: self.name,
            mode: Mutex::new(self.mode),
            healthy: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            health_checks: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            fail_counter: AtomicU64::new(0),
        });
        let ctx = Arc::new(ConnCtx {
            shared,
            tls,
            protocols: self.protocols,
        });
        let requested = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let (addr, running) = listen(requested, &ctx).await?;
        Ok(Upstream {
            addr,
            ctx,
            running: Mutex::new(Some(running)),
        })
    }
}

/// Binds `addr` and spawns the accept loop; returns the bound address.
async fn listen(addr: SocketAddr, ctx: &Arc<ConnCtx>) -> Result<(SocketAddr, Running), HttpError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| HttpError::io(format!("binding the test upstream to {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| HttpError::io("reading the upstream's local address", e))?;
    let (shutdown, watch_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, Arc::clone(ctx), watch_rx));
    Ok((bound, Running { shutdown, task }))
}

/// A test HTTP upstream; see the module docs. Dropping it stops it like [`Upstream::stop`].
///
/// Every response carries `x-upstream: <name>` and `x-seen-*` headers describing the request
/// as received: `x-seen-method`, `x-seen-path` (path and query), `x-seen-version`
/// (`HTTP/1.1`, `HTTP/2.0`), `x-seen-tls` (`true`/`false`), `x-seen-peer` (client socket
/// address), `x-seen-header-names` (comma-separated, lowercase, in order), and `x-seen-<h>`
/// for each present header `<h>` among `host` (HTTP/2: the `:authority`), `x-forwarded-for`,
/// `x-forwarded-proto`, `x-forwarded-host`, `x-request-id`, `traceparent`, `tracestate`,
/// `forwarded`, `via`, `user-agent` and `content-length` (repeated headers joined by `, `).
///
/// Endpoints: `/healthz` (200 `ok`; 503 after `set_healthy(false)` or in a 5xx
/// [`Mode::Status`]; [`Mode::Reset`] and [`Mode::Delay`] apply to it too); `/echo` (streams
/// the body back); `/count` (answers the body's byte count in decimal); `/bytes/N` (N
/// streamed bytes, byte *i* = *i* mod 256, chunked); `/ws` (WebSocket echo); `/sleep/MS`;
/// anything else answers 200 with a one-line JSON body
/// `{"upstream":…,"method":…,"path":…,"version":…}`.
pub struct Upstream {
    addr: SocketAddr,
    ctx: Arc<ConnCtx>,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.ctx.shared.name)
            .field("addr", &self.addr)
            .field("tls", &self.ctx.tls.is_some())
            .field("mode", &self.ctx.shared.mode())
            .finish()
    }
}

impl Upstream {
    /// A builder with name `upstream`, a free port, clear text, HTTP/1.1 + h2c, [`Mode::Ok`].
    pub fn builder() -> UpstreamBuilder {
        UpstreamBuilder {
            name: "upstream".to_string(),
            port: 0,
            tls: None,
            client_ca: None,
            protocols: Protocols::Auto,
            mode: Mode::Ok,
        }
    }

    /// Shorthand for `Upstream::builder().name(name).start()`.
    pub async fn start(name: &str) -> Result<Upstream, HttpError> {
        Upstream::builder().name(name).start().await
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port` or `https://127.0.0.1:port`.
    pub fn url(&self) -> String {
        let scheme = if self.ctx.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The name sent in `x-upstream`.
    pub fn name(&self) -> &str {
        &self.ctx.shared.name
    }

    /// Requests received on any path but `/healthz`, whatever the mode made of them.
    pub fn requests(&self) -> u64 {
        self.ctx.shared.requests.load(Ordering::Relaxed)
    }

    /// Requests received on `/healthz`.
    pub fn health_checks(&self) -> u64 {
        self.ctx.shared.health_checks.load(Ordering::Relaxed)
    }

    /// TCP connections accepted (a pooled client reuses them, so this stays low).
    pub fn connections(&self) -> u64 {
        self.ctx.shared.connections.load(Ordering::Relaxed)
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.ctx.shared.mode()
    }

    /// Switches the mode for subsequent requests (also restarts the `FailEvery` count).
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.ctx.shared.mode) = mode;
        self.ctx.shared.fail_counter.store(0, Ordering::Relaxed);
    }

    /// `false` makes `/healthz` answer 503 (other paths are unaffected).
    pub fn set_healthy(&self, healthy: bool) {
        self.ctx.shared.healthy.store(healthy, Ordering::Relaxed);
    }

    /// True while accepting connections.
    pub fn is_running(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Stops accepting, closes every open connection (and WebSocket), and returns once the
    /// port refuses connections. A no-op when already stopped.
    pub async fn stop(&self) {
        let running = lock(&self.running).take();
        if let Some(running) = running {
            let _ = running.shutdown.send(true);
            let _ = running.task.await;
        }
    }

    /// Listens again on the same address after [`Upstream::stop`] (counters and mode are
    /// kept), e.g. to test a proxy's recovery. A no-op while running.
    pub async fn restart(&self) -> Result<(), HttpError> {
        if self.is_running() {
            return Ok(());
        }
        let (_, running) = listen(self.addr, &self.ctx).await?;
        let previous = lock(&self.running).replace(running);
        if let Some(previous) = previous {
            // A concurrent restart won the race; keep one accept loop only.
            previous.task.abort();
        }
        Ok(())
    }
}

impl Drop for Upstream {
    /// Dropping the shutdown sender ends the accept loop and its connections; aborting the
    /// task also closes the listener if the loop is not being polled any more.
    fn drop(&mut self) {
        if let Some(running) = lock(&self.running).take() {
            let _ = running.shutdown.send(true);
            running.task.abort();
        }
    }
}

/// Accepts until shutdown, then closes the listener and aborts every connection task.
async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ConnCtx>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    ctx.shared.connections.fetch_add(1, Ordering::Relaxed);
                    conns.spawn(serve_conn(stream, peer, Arc::clone(&ctx), shutdown.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::debug!(error = %e, "test upstream accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

/// Runs the TLS handshake if configured, then serves HTTP on the connection.
async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ConnCtx>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match &ctx.tls {
        None => serve_http(stream, ConnInfo { peer, tls: false }, &ctx, shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_http(tls, ConnInfo { peer, tls: true }, &ctx, shutdown).await,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "test upstream TLS handshake failed")
                }
                Err(_) => tracing::debug!(%peer, "test upstream TLS handshake timed out"),
            }
        }
    }
}

/// Serves HTTP/1.1 (with upgrades) and/or HTTP/2 on `io` until it closes or shutdown.
async fn serve_http<I>(io: I, info: ConnInfo, ctx: &ConnCtx, shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::clone(&ctx.shared);
    let stop = shutdown.clone();
    let service =
        service_fn(move |req| handler::handle(Arc::clone(&shared), info, stop.clone(), req));
    let io = TokioIo::new(io);
    // auto::Builder ignores http1_only/http2_only with upgrades, so the single-version
    // flavours use hyper's own builders.
    match ctx.protocols {
        Protocols::Auto => {
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(io, service);
            drive(conn, info, shutdown).await;
        }
        Protocols::Http1 => {
            let builder = hyper::server::conn::http1::Builder::new();
            let conn = builder.serve_connection(io, service).with_upgrades();
            drive(conn, info, shutdown).await;
        }
        Protocols::Http2 => {
            let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(io, service);
            drive(conn, info, shutdown).await;
        }
    }
}

/// Polls a connection until it ends (errors are logged) or shutdown drops it.
async fn drive<F, E>(conn: F, info: ConnInfo, mut shutdown: watch::Receiver<bool>)
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(peer = %info.peer, error = %e, "test upstream connection ended");
            }
        }
        _ = shutdown.changed() => {}
    }
}
