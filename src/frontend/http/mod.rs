//! Accept → respond (HTTP egress): one app connection. Its HTTP/1.1
//! requests are served by the pass-through loop in [`fast`] until one it
//! does not take; from then on (and for h2c from the start) hyper serves
//! the connection, each request going through [`proxy`]. Both reach the
//! upstream clusters of `core::http` through the retry loop in [`attempt`].
//!
//! - [`headers`]: hop-by-hop removal, `X-Forwarded-*`, request ids,
//!   `traceparent`.
//! - [`body`]: request bodies kept for retries, or streamed.
//! - [`tunnel`]: upgraded connections (WebSocket), timed and counted.
//! - [`upload`]: a streamed body's waits for the app, kept off the
//!   upstream's clock.
//! - [`error`]: the answers Attaché gives itself, with `x-attache-error`.

mod attempt;
mod body;
pub mod error;
mod fast;
mod headers;
mod idle;
mod proxy;
mod tunnel;
mod upload;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info_span};

use crate::config::http::{HttpConfig, RouteConfig};
use crate::core::gauge::Held;
use crate::core::http::route::Router;
use crate::core::http::stats::Stats;
use crate::core::http::{Body, Cluster, ClusterError};
use crate::net::{Prefixed, WriteIdle};
use crate::server::{App, Shutdown};

/// Streams one app connection may have open at once (HTTP/2).
const MAX_STREAMS: u32 = 256;
/// Request head size limit (HTTP/1.1 buffer; hyper answers 431 past it).
const MAX_HEAD: usize = 64 << 10;
/// A connection waiting longer than this for a request head is closed
/// (hyper's `header_read_timeout`; on the pass-through path checked
/// between 1× and 2× of it, a timer per connection rather than one per
/// request). HTTP/2 connections get as long for their preface, as long
/// with no open stream (checked the same way), and their keep-alive pings
/// as long for an answer.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What every connection of the HTTP listener shares.
pub struct HttpContext {
    pub config: Arc<HttpConfig>,
    router: Router,
    routes: Vec<RouteEntry>,
    /// By name, as configured.
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    request_id: HeaderName,
    /// Requests no route matched.
    pub unmatched: Stats,
    clients: AtomicUsize,
    builder: auto::Builder<TokioExecutor>,
    /// The context a reload replaced this one with: connections opened
    /// before the reload serve their next requests with it, so keep-alive
    /// clients follow new routes without being disconnected.
    successor: std::sync::OnceLock<Arc<HttpContext>>,
}

/// One configured route, its cluster and its counters.
pub struct RouteEntry {
    pub index: usize,
    pub cfg: RouteConfig,
    pub cluster: Arc<Cluster>,
    pub stats: Stats,
}

impl HttpContext {
    /// Builds every cluster (TLS configs load here, so a bad file fails
    /// startup, not the first request). Call [`HttpContext::start`] inside
    /// the runtime to begin DNS refresh and health checks.
    pub fn new(config: HttpConfig) -> Result<Self, ClusterError> {
        let mut clusters = BTreeMap::new();
        for (name, c) in &config.clusters {
            clusters.insert(name.clone(), Arc::new(Cluster::new(name, c)?));
        }
        let routes = config
            .routes
            .iter()
            .enumerate()
            .filter_map(|(index, r)| {
                Some(RouteEntry {
                    index,
                    cfg: r.clone(),
                    cluster: clusters.get(&r.cluster)?.clone(),
                    stats: Stats::default(),
                })
            })
            .collect();
        let request_id = HeaderName::from_bytes(config.request_id_header.as_bytes())
            .unwrap_or(HeaderName::from_static("x-request-id"));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .max_buf_size(MAX_HEAD)
            .header_read_timeout(HEAD_TIMEOUT);
        // A peer that stops answering pings is gone: its connection (and
        // client permit) is given up.
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(HEAD_TIMEOUT)
            .keep_alive_timeout(HEAD_TIMEOUT)
            .max_concurrent_streams(MAX_STREAMS);
        Ok(Self {
            router: Router::new(&config.routes),
            routes,
            clusters,
            request_id,
            unmatched: Stats::default(),
            clients: AtomicUsize::new(0),
            builder,
            successor: std::sync::OnceLock::new(),
            config: Arc::new(config),
        })
    }

    /// Starts each cluster's upkeep (DNS, health checks, idle reaping).
    pub fn start(&self) {
        for c in self.clusters.values() {
            c.spawn_upkeep();
        }
    }

    /// Hands this context's connections over to `next` (a reload).
    pub fn retire(&self, next: Arc<HttpContext>) {
        let _ = self.successor.set(next);
    }

    /// The newest context: this one unless reloads replaced it.
    pub fn latest(self: &Arc<Self>) -> Arc<HttpContext> {
        let mut ctx = self.clone();
        while let Some(next) = ctx.successor.get() {
            ctx = next.clone();
        }
        ctx
    }

    /// The routes, in config order.
    pub fn routes(&self) -> &[RouteEntry] {
        &self.routes
    }

    /// App connections open now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Serves the rest of an app connection with hyper, from `read` (what
    /// the fast path read and did not take) on.
    async fn serve_hyper(
        self: &Arc<Self>,
        mut read: BytesMut,
        mut tcp: WriteIdle<TcpStream>,
        peer_ip: HeaderValue,
        shutdown: &mut Shutdown,
    ) {
        let Some(h2) = timed_preface(&mut read, &mut tcp).await else {
            return;
        };
        let ctx = self.clone();
        let streams = Arc::new(Streams::default());
        let open = streams.clone();
        let tunnels = tunnel::Tunnels::new();
        let guard = tunnels.guard();
        let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let ctx = ctx.clone();
            let peer_ip = peer_ip.clone();
            // Only HTTP/2 is idled out by open streams (see the watchdog),
            // and only an upgrade can become a tunnel: others pay for neither.
            let stream = h2.then(|| open.open());
            if req.headers().contains_key(http::header::UPGRADE) {
                req.extensions_mut().insert(guard.clone());
            }
            async move {
                let resp = proxy::handle(ctx.latest(), req, peer_ip).await;
                let Some(stream) = stream else {
                    return Ok::<_, Infallible>(resp);
                };
                // Open until its response body is done with.
                Ok(resp.map(|b| {
                    Body::new(b.map_frame(move |f| {
                        let _open = &stream;
                        f
                    }))
                }))
            }
        });
        // The connection (and the service's tunnel guard) is dropped before
        // its tunnels are waited for.
        let result = {
            let conn = self
                .builder
                .serve_connection_with_upgrades(TokioIo::new(Prefixed::new(read, tcp)), service);
            tokio::pin!(conn);
            let mut watchdog = std::pin::pin!(tokio::time::sleep(HEAD_TIMEOUT));
            let mut seen = 0;
            loop {
                tokio::select! {
                    // The connection first: a request the fast path read and
                    // handed over is hyper's to parse before a shutdown that
                    // began meanwhile is told, or hyper, finding itself idle,
                    // would close without answering it.
                    biased;
                    r = conn.as_mut() => break r,
                    () = shutdown.wait() => {
                        // Finish what is in flight, take nothing new.
                        conn.as_mut().graceful_shutdown();
                        break conn.await;
                    }
                    // HTTP/2 has no header read timeout: an idle connection
                    // (no stream open, none opened since the last check) ends.
                    () = &mut watchdog, if h2 => {
                        if streams.idle_since(&mut seen) {
                            debug!("http/2 connection idle with no open stream; closing");
                            conn.as_mut().graceful_shutdown();
                            let closing = tokio::time::timeout(HEAD_TIMEOUT, conn.as_mut());
                            break closing.await.unwrap_or(Ok(()));
                        }
                        watchdog.as_mut().reset(tokio::time::Instant::now() + HEAD_TIMEOUT);
                    }
                }
            }
        };
        if let Err(error) = result {
            debug!(%error, "http client connection ended with an error");
        }
        // An upgraded request's tunnel is still this app connection.
        tokio::select! {
            () = tunnels.closed() => {}
            () = shutdown.wait() => {}
        }
    }
}

/// [`read_preface`] within the head timeout: hyper's version detection
/// has no timer, and a client that stops within the HTTP/2 preface would
/// hold its connection forever. `None` when the connection is over.
async fn timed_preface(read: &mut BytesMut, tcp: &mut WriteIdle<TcpStream>) -> Option<bool> {
    match tokio::time::timeout(HEAD_TIMEOUT, read_preface(read, tcp)).await {
        Ok(Ok(h2)) => Some(h2),
        Ok(Err(error)) => {
            debug!(%error, "http client connection ended in its preface");
            None
        }
        Err(_) => {
            debug!("no HTTP/2 preface within the timeout; closing");
            None
        }
    }
}

/// Reads on until `read` holds the whole HTTP/2 preface when it began as
/// one; whether it is HTTP/2. A peer that closes within it is an error.
async fn read_preface(
    read: &mut BytesMut,
    tcp: &mut WriteIdle<TcpStream>,
) -> std::io::Result<bool> {
    loop {
        let n = read.len().min(H2_PREFACE.len());
        if read[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        if tcp.read_buf(read).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The streams of one HTTP/2 connection: open now, and opened in all.
#[derive(Default)]
struct Streams {
    open: AtomicUsize,
    opened: AtomicUsize,
}

/// One open stream, counted until dropped.
struct Open(Arc<Streams>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Streams {
    fn open(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Open(self.clone())
    }

    /// Whether no stream is open and none was opened since `seen` (the
    /// count at the last check, updated).
    fn idle_since(&self, seen: &mut usize) -> bool {
        let opened = self.opened.load(Ordering::Relaxed);
        let idle = self.open.load(Ordering::Relaxed) == 0 && opened == *seen;
        *seen = opened;
        idle
    }
}

impl App for HttpContext {
    fn protocol(&self) -> &'static str {
        "http"
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, mut shutdown: Shutdown) {
        let listener = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let span = info_span!("client", protocol = "http", listener, client.addr = %peer);
        let connection = async move {
            let _connected = Held::new(&self.clients);
            let _ = tcp.set_nodelay(true);
            // An app that stops reading gives its responses up after the
            // stream idle timeout, on either path (set per request on the
            // pass-through one, so a reload applies).
            let mut tcp = WriteIdle::new(tcp, self.latest().config.stream_idle_timeout.0);
            // Made once per connection, cloned (a refcount) per request.
            let peer_ip = headers::peer_value(peer.ip());
            let mut stop = shutdown.signal();
            let read = match fast::serve(&self, &mut tcp, &peer_ip, &mut stop).await {
                fast::Served::Closed => return,
                fast::Served::Handover(read) => read,
            };
            self.serve_hyper(read, tcp, peer_ip, &mut shutdown).await;
        };
        // What logs above debug level here is about upstreams, not this client.
        crate::server::traced(span, connection).await
    }

    async fn reject(self: Arc<Self>, mut tcp: TcpStream, _peer: SocketAddr) {
        let body = "attaché: too many client connections\n";
        let resp = format!(
            "HTTP/1.1 503 Service Unavailable\r\nx-attache-error: overflow\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tcp.write_all(resp.as_bytes()).await;
    }
}

#[cfg(test)]
mod tests;
