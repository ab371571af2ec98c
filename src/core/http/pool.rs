//! Backend (HTTP): one cluster's pooled upstream connections. HTTP/1.1
//! connections are kept idle per endpoint and reused once a response body
//! has been read to its end; an HTTP/2 connection per endpoint carries
//! every request as a stream. Each open connection holds a permit of the
//! cluster's `max_connections`, released when the connection closes (an
//! upgraded one: when its tunnel ends), so the limit counts sockets, not
//! requests.
//!
//! hyper's own connection state machines do the protocol work; this module
//! only decides which connection a try uses.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::debug;

use super::endpoint::Endpoint;
use super::h1::RawConn;
use crate::config::http::{ClusterConfig, HttpTls, UpstreamProtocol};
use crate::config::types::{SslMode, UpstreamTls};
use crate::net::tls::{self, TlsError};
use crate::net::Stream;

mod body;
mod h2open;
mod permitted;

use body::{PooledBody, Return};
use permitted::Permitted;

/// Idle fast-path connections younger than this are reused without a
/// liveness probe: upstreams close idle keep-alive connections after
/// seconds, not milliseconds.
const PROBE_AFTER: Duration = Duration::from_secs(1);

/// Errors of body streams, either way.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body Attaché sends or relays: one box per message keeps the
/// request path free of generics.
pub type Body = BoxBody<Bytes, BoxError>;

/// Why no connection could be had for a try.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `max_connections` are open: a circuit-breaker overflow, not a
    /// failure of the endpoint.
    #[error("the cluster's connection limit is reached")]
    Overflow,
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// The HTTP/2 connection this request waited for failed (reported
    /// once, by the request that opened it).
    #[error("{0} (shared HTTP/2 connection)")]
    Shared(String),
    #[error("connect failed: {0}")]
    Io(#[source] io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("HTTP handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
}

impl ConnectError {
    /// Whether the failure is the endpoint's certificate (not retried:
    /// every try would fail the same way, and the operator must know).
    pub fn is_certificate(&self) -> bool {
        matches!(self, ConnectError::Tls(TlsError::ServerCertificate(_)))
    }
}

/// What a cluster's pool needs from its config.
struct Settings {
    /// HTTP/1.1 is certain (no h2c, no ALPN that could pick h2), so the
    /// fast path may carry requests.
    raw_ok: bool,
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    h2_plain: bool,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

/// One cluster's connections.
pub struct Pool {
    settings: Settings,
    permits: Arc<Semaphore>,
    max_connections: usize,
    slots: Mutex<HashMap<SocketAddr, Slot>>,
    opened: AtomicU64,
}

#[derive(Default)]
struct Slot {
    idle: Vec<Idle>,
    h2: Option<http2::SendRequest<Body>>,
    /// A connection that may speak HTTP/2 is being opened ([`h2open`]).
    opening: Option<tokio::sync::watch::Receiver<h2open::Outcome>>,
    /// What the last connection opened to this endpoint agreed on.
    speaks_h2: Option<bool>,
    /// Idle connections of the HTTP/1.1 fast path ([`super::h1`]).
    raw: Vec<(RawConn, Instant)>,
}

struct Idle {
    tx: http1::SendRequest<Body>,
    since: Instant,
}

enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// A connection checked out for one try.
pub struct Conn {
    sender: Sender,
    addr: SocketAddr,
    reused: bool,
    pool: Weak<Pool>,
}

/// Why a try failed after it had a connection.
#[derive(Debug)]
pub struct SendError {
    pub error: hyper::Error,
    /// The request, when hyper had not started sending it (so a retry
    /// cannot duplicate it).
    pub unsent: Option<Request<Body>>,
}

impl Pool {
    pub fn new(cfg: &ClusterConfig) -> Result<Self, TlsError> {
        let tls = cfg
            .tls
            .as_ref()
            .map(|t| tls_config(t, cfg.protocol))
            .transpose()?;
        Ok(Self {
            settings: Settings {
                raw_ok: matches!(
                    (&cfg.tls, cfg.protocol),
                    (_, UpstreamProtocol::Http1) | (None, UpstreamProtocol::Auto)
                ),
                tls,
                h2_plain: cfg.protocol == UpstreamProtocol::Http2,
                connect_timeout: cfg.connect_timeout.0,
                idle_timeout: cfg.idle_timeout.0,
                max_idle: cfg.max_idle_per_endpoint,
            },
            permits: Arc::new(Semaphore::new(cfg.max_connections)),
            max_connections: cfg.max_connections,
            slots: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
        })
    }

    /// Connections open now (busy or idle).
    pub fn open(&self) -> usize {
        self.max_connections - self.permits.available_permits()
    }

    /// Idle HTTP/1.1 connections now.
    pub fn idle(&self) -> usize {
        lock(&self.slots)
            .values()
            .map(|s| s.idle.len() + s.raw.len())
            .sum()
    }

    /// Whether requests may take the HTTP/1.1 fast path.
    pub fn raw_ok(&self) -> bool {
        self.settings.raw_ok
    }

    /// A fast-path connection to `ep` (live idle or new) and whether it
    /// served before. `probe`: check even a connection idle for a moment
    /// (for a request that cannot be repeated if the reuse fails). `now`:
    /// the caller's clock reading, which also stamps the connection's use.
    pub async fn checkout_raw(
        &self,
        ep: &Endpoint,
        probe: bool,
        now: Instant,
    ) -> Result<(RawConn, bool), ConnectError> {
        if let Some(mut conn) = self.take_raw(ep.addr, probe, now) {
            conn.used = now;
            return Ok((conn, true));
        }
        let (stream, _, permit) = self.open_conn(ep).await?;
        Ok((RawConn::new(stream, permit, now), false))
    }

    fn take_raw(&self, addr: SocketAddr, probe: bool, now: Instant) -> Option<RawConn> {
        let mut slots = lock(&self.slots);
        let slot = slots.get_mut(&addr)?;
        while let Some((conn, since)) = slot.raw.pop() {
            let idle = now.duration_since(since);
            // A connection idle for a moment is not probed (a syscall per
            // request); the rare one closed meanwhile fails before any
            // answer and is replaced by the caller when that is safe. When
            // it is not (a POST, say), the probe is worth its syscall: a
            // server that closed right after its last answer would
            // otherwise cost the request a 502.
            let skip_probe = idle < PROBE_AFTER && !probe;
            if idle < self.settings.idle_timeout && (skip_probe || conn.is_idle_alive()) {
                return Some(conn);
            }
        }
        None
    }

    /// A fast-path connection whose response ended cleanly. It counts as
    /// idle from when its request began (no clock reading per request; an
    /// error on the safe side: probed or expired a little early).
    pub(super) fn put_raw(&self, addr: SocketAddr, conn: RawConn) {
        let mut slots = lock(&self.slots);
        let slot = slots.entry(addr).or_default();
        if slot.raw.len() < self.settings.max_idle {
            let since = conn.used;
            slot.raw.push((conn, since));
        }
    }

    /// Connections opened since start.
    pub fn opened_total(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// A ready connection to `ep`: a live idle one, the shared HTTP/2 one,
    /// or a new one (opened once for every request waiting on it when it
    /// may speak HTTP/2).
    pub async fn checkout(self: &Arc<Self>, ep: &Endpoint) -> Result<Conn, ConnectError> {
        let mut waited = false;
        loop {
            if let Some(conn) = self.take_ready(ep).await {
                return Ok(conn);
            }
            // Waiting once is enough: if that open failed or spoke
            // HTTP/1.1, this request opens its own rather than queueing
            // behind one failing connect after another.
            let turn = match waited {
                true => h2open::Turn::Alone,
                false => h2open::turn(&self.slots, ep.addr, !self.settings.raw_ok),
            };
            let mut guard = match turn {
                h2open::Turn::Wait(done) => {
                    waited = true;
                    if let Some(why) = h2open::wait(done, self.settings.connect_timeout).await {
                        return Err(ConnectError::Shared(why));
                    }
                    continue;
                }
                h2open::Turn::Lead(guard) => Some(guard),
                h2open::Turn::Alone => None,
            };
            let result = self.connect(ep).await;
            if let Some(g) = guard.as_mut() {
                g.finish(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            }
            return Ok(self.conn(result?, ep.addr, false));
        }
    }

    /// A live idle connection or the shared HTTP/2 one, made ready.
    async fn take_ready(self: &Arc<Self>, ep: &Endpoint) -> Option<Conn> {
        while let Some(mut sender) = self.take_idle(ep.addr) {
            let ready = match &mut sender {
                Sender::H1(tx) => tx.ready().await.is_ok(),
                Sender::H2(tx) => {
                    let ok = tx.ready().await.is_ok();
                    if !ok {
                        // Never offer a failed shared connection again,
                        // closed or not, or this loop could not end.
                        if let Some(slot) = lock(&self.slots).get_mut(&ep.addr) {
                            slot.h2 = None;
                        }
                    }
                    ok
                }
            };
            if ready {
                return Some(self.conn(sender, ep.addr, true));
            }
        }
        None
    }

    /// Closes idle connections past `idle_timeout` (called periodically, so
    /// they give back their permits even when no request comes).
    pub fn reap(&self) {
        let now = Instant::now();
        let timeout = self.settings.idle_timeout;
        let mut slots = lock(&self.slots);
        for slot in slots.values_mut() {
            slot.idle
                .retain(|i| !i.tx.is_closed() && now.duration_since(i.since) < timeout);
            slot.raw
                .retain(|(c, since)| now.duration_since(*since) < timeout && c.is_idle_alive());
            if slot.h2.as_ref().is_some_and(|h| h.is_closed()) {
                slot.h2 = None;
            }
        }
        slots.retain(|_, s| {
            !s.idle.is_empty() || s.h2.is_some() || !s.raw.is_empty() || s.opening.is_some()
        });
    }

    /// Drops the pooled connections of endpoints no longer in the cluster.
    pub fn retain(&self, live: &[SocketAddr]) {
        lock(&self.slots).retain(|a, _| live.contains(a));
    }

    fn conn(self: &Arc<Self>, sender: Sender, addr: SocketAddr, reused: bool) -> Conn {
        Conn {
            sender,
            addr,
            reused,
            pool: Arc::downgrade(self),
        }
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Sender> {
        let mut slots = lock(&self.slots);
        let slot = slots.get_mut(&addr)?;
        if let Some(h2) = &slot.h2 {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
            slot.h2 = None;
        }
        let now = Instant::now();
        while let Some(idle) = slot.idle.pop() {
            if !idle.tx.is_closed() && now.duration_since(idle.since) < self.settings.idle_timeout {
                return Some(Sender::H1(idle.tx));
            }
        }
        None
    }

    fn put_back(&self, addr: SocketAddr, tx: http1::SendRequest<Body>) {
        if tx.is_closed() {
            return;
        }
        let mut slots = lock(&self.slots);
        let slot = slots.entry(addr).or_default();
        if slot.idle.len() < self.settings.max_idle {
            slot.idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    /// A new connection's stream (TLS done), whether it speaks HTTP/2, and
    /// its `max_connections` permit.
    async fn open_conn(
        &self,
        ep: &Endpoint,
    ) -> Result<(Stream, bool, tokio::sync::OwnedSemaphorePermit), ConnectError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| ConnectError::Overflow)?;
        let timeout = self.settings.connect_timeout;
        let (stream, h2) = tokio::time::timeout(timeout, self.open_stream(ep))
            .await
            .map_err(|_| ConnectError::Timeout(timeout))??;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok((stream, h2, permit))
    }

    async fn connect(&self, ep: &Endpoint) -> Result<Sender, ConnectError> {
        let (stream, h2, permit) = self.open_conn(ep).await?;
        // The permit lives as long as the socket, not hyper's connection
        // task: an upgrade takes the socket out of the task, and the
        // tunnel it becomes is still this connection.
        let io = TokioIo::new(Permitted::new(stream, permit));
        let addr = ep.addr;
        if h2 {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .handshake(io)
                .await
                .map_err(ConnectError::Handshake)?;
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    debug!(%error, upstream.addr = %addr, "upstream h2 connection ended");
                }
            });
            let mut slots = lock(&self.slots);
            let slot = slots.entry(addr).or_default();
            slot.h2 = Some(tx.clone());
            slot.speaks_h2 = Some(true);
            Ok(Sender::H2(tx))
        } else {
            if let Some(slot) = lock(&self.slots).get_mut(&addr) {
                slot.speaks_h2 = Some(false);
            }
            let (tx, conn) = http1::handshake(io)
                .await
                .map_err(ConnectError::Handshake)?;
            tokio::spawn(async move {
                if let Err(error) = conn.with_upgrades().await {
                    debug!(%error, upstream.addr = %addr, "upstream connection ended");
                }
            });
            Ok(Sender::H1(tx))
        }
    }

    /// TCP, then TLS when configured; whether HTTP/2 was agreed.
    async fn open_stream(&self, ep: &Endpoint) -> Result<(Stream, bool), ConnectError> {
        let tcp = TcpStream::connect(ep.addr)
            .await
            .map_err(ConnectError::Io)?;
        let _ = tcp.set_nodelay(true);
        let Some((config, server_name)) = &self.settings.tls else {
            return Ok((Stream::Plain(tcp), self.settings.h2_plain));
        };
        let name = tls::server_name(
            &UpstreamTls {
                server_name: server_name.clone(),
                ..UpstreamTls::default()
            },
            &ep.host,
        )?;
        let tls = tls::connect(config.clone(), name, tcp).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok((Stream::ClientTls(Box::new(tls)), h2))
    }
}

impl Conn {
    /// Whether the connection speaks HTTP/2 (the request then wants an
    /// absolute URI and no Host header).
    pub fn is_h2(&self) -> bool {
        matches!(self.sender, Sender::H2(_))
    }

    /// Whether this connection served an earlier request: a stale one may
    /// fail before the request is sent, which is always safe to retry.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Sends the request; the response's body hands an HTTP/1.1 connection
    /// back to the pool when it has been read to its end.
    pub async fn send(self, req: Request<Body>) -> Result<Response<Body>, SendError> {
        let Conn {
            sender, addr, pool, ..
        } = self;
        match sender {
            Sender::H2(mut tx) => match tx.try_send_request(req).await {
                Ok(resp) => Ok(resp.map(|b| PooledBody::new(b, None).boxed())),
                Err(mut e) => Err(SendError {
                    unsent: e.take_message(),
                    error: e.into_error(),
                }),
            },
            Sender::H1(mut tx) => match tx.try_send_request(req).await {
                Ok(resp) => {
                    let upgrading = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    let back = (!upgrading).then_some(Return { tx, addr, pool });
                    Ok(resp.map(|b| PooledBody::new(b, back).boxed()))
                }
                Err(mut e) => Err(SendError {
                    unsent: e.take_message(),
                    error: e.into_error(),
                }),
            },
        }
    }
}

/// The request target for a try: origin-form (`/path?q`) on HTTP/1.1,
/// where the Host header names the service; absolute on HTTP/2, whose
/// `:authority` does.
pub fn target_uri(
    h2: bool,
    tls: bool,
    host: &http::HeaderValue,
    path_and_query: http::uri::PathAndQuery,
) -> Option<http::Uri> {
    if h2 {
        http::Uri::builder()
            .scheme(if tls { "https" } else { "http" })
            .authority(host.as_bytes())
            .path_and_query(path_and_query)
            .build()
            .ok()
    } else {
        Some(http::Uri::from(path_and_query))
    }
}

/// rustls for `https` endpoints: verify-full unless `verify = false`, and
/// ALPN offering what `protocol` allows.
fn tls_config(
    t: &HttpTls,
    protocol: UpstreamProtocol,
) -> Result<(Arc<rustls::ClientConfig>, Option<String>), TlsError> {
    let upstream = UpstreamTls {
        sslmode: if t.verify {
            SslMode::VerifyFull
        } else {
            SslMode::Require
        },
        ca_file: t.ca_file.clone().filter(|_| t.verify),
        client_cert: t.client_cert.clone(),
        client_key: t.client_key.clone(),
        server_name: t.server_name.clone(),
    };
    let Some(base) = tls::client_config(&upstream)? else {
        return Err(TlsError::BadServerName("tls disabled".into()));
    };
    let mut config = (*base).clone();
    config.alpn_protocols = match protocol {
        UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
        UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
    };
    Ok((Arc::new(config), t.server_name.clone()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
