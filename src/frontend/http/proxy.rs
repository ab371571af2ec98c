//! Route → backend → respond (HTTP): one request's way through. Match a
//! route, pass the cluster's circuit breaker, then try endpoints until one
//! answers, a try fails in a way that must not be retried, the retries or
//! the budget run out, or the route's timeout passes.
//!
//! A try is retried only when that cannot duplicate work the app did not
//! ask to repeat: a connect failure (nothing was sent) always may; a reset,
//! a 502/503/504 or a per-try timeout may for idempotent methods (or when
//! the route allows any) and only with a body kept for replay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Version};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rand::Rng;
use tracing::debug;

use super::body::ReqBody;
use super::error::LocalError;
use super::headers;
use super::idle::{Idle, IdleTimeout};
use super::{HttpContext, RouteEntry};
use crate::config::http::RetryOn;
use crate::core::http::balance::Pick;
use crate::core::http::endpoint::{Endpoint, Outcome};
use crate::core::http::h1::Outgoing;
use crate::core::http::pool::{target_uri, SendError};
use crate::core::http::{Body, ConnectError};

/// Tries per request at most: the first and `retries` (≤ 10) more.
const MAX_TRIES: usize = 11;
const UNSET: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
/// Stale pooled connections skipped per try before giving up on reuse.
const MAX_STALE: usize = 3;

/// Serves one request; never fails (errors become local responses).
pub async fn handle(
    ctx: Arc<HttpContext>,
    req: Request<Incoming>,
    peer: HeaderValue,
) -> Response<Body> {
    let start = Instant::now();
    let (mut parts, body) = req.into_parts();
    let host = client_host(&parts);
    let request_id = headers::request_id(&mut parts.headers, &ctx.request_id);
    let host_str = host.as_ref().and_then(|h| h.to_str().ok());
    let Some(index) = ctx.router.find(host_str, parts.uri.path()) else {
        let resp = LocalError::NoRoute(parts.uri.path().to_owned()).response(Some(&request_id));
        ctx.unmatched.response(404, start.elapsed());
        return resp;
    };
    let route = &ctx.routes[index];
    let mut resp = match forward(&ctx, route, parts, body, &peer, host.as_ref(), start).await {
        Ok(resp) => resp,
        Err(error) => {
            debug!(%error, route = index, cluster = %route.cluster.name, "request failed");
            route.stats.local_error();
            route.cluster.stats.local_error();
            error.response(Some(&request_id))
        }
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        headers::strip_hop_by_hop(resp.headers_mut(), false);
    }
    resp.headers_mut()
        .entry(&ctx.request_id)
        .or_insert(request_id);
    *resp.version_mut() = Version::HTTP_11;
    let elapsed = start.elapsed();
    route.stats.response(resp.status().as_u16(), elapsed);
    route
        .cluster
        .stats
        .response(resp.status().as_u16(), elapsed);
    resp
}

/// What one request carries from try to try.
struct Attempt<'a> {
    route: &'a RouteEntry,
    parts: Parts,
    body: ReqBody,
    host: Option<&'a HeaderValue>,
    /// The path and query sent upstream.
    target: http::uri::PathAndQuery,
    /// The method may be repeated after it reached a server.
    repeatable: bool,
    deadline: Instant,
    /// Filled from the front (`tries` of them): no allocation per request.
    tried: [SocketAddr; MAX_TRIES],
    tries: usize,
}

enum TryOutcome {
    Done(Response<Body>),
    Failed {
        error: LocalError,
        retry: bool,
        /// An upstream's 502/503/504, relayed if no retry replaces it.
        response: Option<Response<Body>>,
    },
}

async fn forward(
    ctx: &HttpContext,
    route: &RouteEntry,
    mut parts: Parts,
    body: Incoming,
    peer: &HeaderValue,
    host: Option<&HeaderValue>,
    start: Instant,
) -> Result<Response<Body>, LocalError> {
    let cluster = &route.cluster;
    let _slot = cluster.admit().await.map_err(|_| {
        cluster.stats.overflowed();
        LocalError::Overflow(cluster.name.clone())
    })?;
    let client_upgrade = is_upgrade(&parts)
        .then(|| parts.extensions.remove::<OnUpgrade>())
        .flatten();
    headers::strip_hop_by_hop(&mut parts.headers, client_upgrade.is_some());
    headers::add_forwarded(&mut parts.headers, peer, host);
    headers::ensure_traceparent(&mut parts.headers);
    let target = target(ctx, route, &parts)?;
    let repeatable = route.cfg.retry_non_idempotent || parts.method.is_idempotent();
    let idle = ctx.config.stream_idle_timeout.0;
    // Kept whole when a retry may need it, or when it is small and its
    // length known (then it can take the HTTP/1.1 fast path).
    let limit = ctx.config.max_retry_body.0;
    let small = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n <= limit);
    let buffer = (route.cfg.retries > 0 && repeatable) || small;
    let body = if body.is_end_stream() && client_upgrade.is_none() {
        // No body (most GETs): nothing to wait for, so no timer either.
        ReqBody::Buffered(bytes::Bytes::new())
    } else if buffer && client_upgrade.is_none() {
        tokio::time::timeout(idle, ReqBody::read(body, limit, idle))
            .await
            .map_err(|_| LocalError::BadRequest(IdleTimeout(idle).to_string()))?
            .map_err(|e| LocalError::BadRequest(e.to_string()))?
    } else {
        ReqBody::stream(body, idle)
    };
    cluster.budget.record_request(start);
    let mut attempt = Attempt {
        route,
        parts,
        body,
        host,
        target,
        repeatable,
        deadline: start + route.cfg.timeout.0,
        tried: [UNSET; MAX_TRIES],
        tries: 0,
    };
    let mut resp = attempt.run().await?;
    if let Some(on_client) = client_upgrade {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            tunnel(on_client, hyper::upgrade::on(&mut resp));
            return Ok(resp);
        }
    }
    Ok(resp.map(|b| Idle::wrap(b, idle)))
}

impl Attempt<'_> {
    /// The retry loop: tries until done, out of retries, out of budget or
    /// out of time.
    async fn run(&mut self) -> Result<Response<Body>, LocalError> {
        let cluster = &self.route.cluster;
        let mut retries_left = self.route.cfg.retries;
        loop {
            let (error, retry, response) = match self.try_once().await {
                TryOutcome::Done(resp) => return Ok(resp),
                TryOutcome::Failed {
                    error,
                    retry,
                    response,
                } => (error, retry, response),
            };
            let give_up = |error: LocalError, response: Option<Response<Body>>| match response {
                Some(r) => Ok(r),
                None => Err(error),
            };
            let now = Instant::now();
            if !retry || retries_left == 0 || now >= self.deadline || self.tries >= MAX_TRIES {
                return give_up(error, response);
            }
            if !cluster.budget.try_retry(now) {
                cluster.stats.budget_exhausted();
                let error = LocalError::BudgetExhausted(cluster.name.clone(), Box::new(error));
                return give_up(error, response);
            }
            drop(response);
            retries_left -= 1;
            cluster.stats.retried();
            self.route.stats.retried();
            let done = self.route.cfg.retries - retries_left;
            let pause =
                backoff(&self.route.cfg, done).min(self.deadline.saturating_duration_since(now));
            tokio::time::sleep(pause).await;
        }
    }

    async fn try_once(&mut self) -> TryOutcome {
        let cluster = &self.route.cluster;
        // One clock reading serves the pick, the try's deadline and its
        // latency (clock reads are a visible share of a proxied request).
        let now = Instant::now();
        let ep = match cluster.pick(self.tried_addrs(), now) {
            Pick::Endpoint(ep) => ep,
            Pick::AllEjected => return fail(LocalError::Ejected(cluster.name.clone()), false),
            Pick::NoneHealthy => return fail(LocalError::Unhealthy(cluster.name.clone()), false),
            Pick::Empty => return fail(LocalError::NoEndpoints(cluster.name.clone()), false),
        };
        if self.tries < MAX_TRIES {
            self.tried[self.tries] = ep.addr;
        }
        self.tries += 1;
        let _in_flight = ep.start();
        let per_try = self
            .route
            .cfg
            .per_try_timeout
            .map_or(self.route.cfg.timeout.0, |d| d.0)
            .min(self.deadline.saturating_duration_since(now));
        let sent = tokio::time::timeout_at((now + per_try).into(), self.send(&ep)).await;
        let retry_on = |r: RetryOn| self.route.cfg.retry_on.contains(&r);
        let replayable = self.repeatable && self.body.replayable();
        match sent {
            Err(_) => {
                cluster.report(&ep, Outcome::ServerError);
                fail(
                    LocalError::Timeout(per_try),
                    retry_on(RetryOn::Timeout) && replayable,
                )
            }
            Ok(Err(TryError::Connect(e))) => self.connect_failed(&ep, e),
            Ok(Err(TryError::Reset(e))) => {
                cluster.report(&ep, Outcome::ConnectFailure);
                if let Some(alert) = tls_alert(e.as_ref()) {
                    // TLS 1.3: a server refusing our client certificate
                    // says so only after the handshake, on first use.
                    let error = LocalError::TlsRejected(ep.authority(), alert);
                    return fail(error, false);
                }
                let error = LocalError::Reset(ep.authority(), e.to_string());
                fail(error, retry_on(RetryOn::Reset) && replayable)
            }
            Ok(Err(TryError::BodyGone)) => fail(
                LocalError::Reset(ep.authority(), "the request body was already sent".into()),
                false,
            ),
            Ok(Ok(resp)) => {
                let done = Instant::now();
                ep.observe_latency(done.saturating_duration_since(now), done);
                let status = resp.status().as_u16();
                let outcome = if status >= 500 {
                    Outcome::ServerError
                } else {
                    Outcome::Success
                };
                cluster.report_at(&ep, outcome, done);
                if (502..=504).contains(&status) && retry_on(RetryOn::GatewayError) && replayable {
                    let error =
                        LocalError::ConnectFailure(ep.authority(), format!("answered {status}"));
                    return TryOutcome::Failed {
                        error,
                        retry: true,
                        response: Some(resp),
                    };
                }
                TryOutcome::Done(resp)
            }
        }
    }

    fn connect_failed(&self, ep: &Endpoint, e: ConnectError) -> TryOutcome {
        let cluster = &self.route.cluster;
        if matches!(e, ConnectError::Overflow) {
            cluster.stats.overflowed();
            return fail(LocalError::Overflow(cluster.name.clone()), false);
        }
        // Waiters on a shared connection's open share its one failure.
        if !matches!(e, ConnectError::Shared(_)) {
            cluster.report(ep, Outcome::ConnectFailure);
        }
        if e.is_certificate() {
            return fail(LocalError::TlsVerify(ep.authority(), e.to_string()), false);
        }
        // Nothing reached the server: safe to retry whatever the method.
        let retry = self.route.cfg.retry_on.contains(&RetryOn::ConnectFailure);
        fail(
            LocalError::ConnectFailure(ep.authority(), e.to_string()),
            retry,
        )
    }

    /// One try on one endpoint, until response headers. A pooled
    /// connection found stale before the request went out is replaced.
    async fn send(&mut self, ep: &Endpoint) -> Result<Response<Body>, TryError> {
        let cluster = &self.route.cluster;
        // Upgrades need hyper's hand-over of the connection.
        let upgrade = self.parts.headers.contains_key(header::UPGRADE);
        if cluster.pool.raw_ok() && !upgrade {
            if let ReqBody::Buffered(body) = &self.body {
                let body = body.clone();
                return self.send_raw(ep, body).await;
            }
        }
        let tls = cluster.config.tls.is_some();
        let upstream_host = cluster.host_for(ep, self.host);
        for _ in 0..MAX_STALE {
            let conn = cluster.pool.checkout(ep).await.map_err(TryError::Connect)?;
            let h2 = conn.is_h2();
            let uri = upstream_host
                .as_ref()
                .and_then(|h| target_uri(h2, tls, h, self.target.clone()))
                .ok_or_else(|| TryError::Reset(Fault::Target(self.target.to_string()).into()))?;
            let body = self.body.for_try().ok_or(TryError::BodyGone)?;
            let mut req = Request::new(body);
            *req.method_mut() = self.parts.method.clone();
            *req.uri_mut() = uri;
            *req.headers_mut() = self.parts.headers.clone();
            if h2 {
                *req.version_mut() = Version::HTTP_2;
                req.headers_mut().remove(header::HOST);
            } else {
                *req.version_mut() = Version::HTTP_11;
                if let Some(v) = &upstream_host {
                    req.headers_mut().insert(header::HOST, v.clone());
                }
            }
            match conn.send(req).await {
                Ok(resp) => return Ok(resp),
                Err(SendError {
                    unsent: Some(req), ..
                }) => self.body.restore(req.into_body()),
                Err(SendError { error, .. }) => return Err(TryError::Reset(error.into())),
            }
        }
        Err(TryError::Reset(Fault::Stale.into()))
    }

    /// [`Attempt::send`] on the HTTP/1.1 fast path (the body is whole). A
    /// reused connection that turns out closed before any answer is
    /// replaced when the request may be repeated.
    async fn send_raw(
        &mut self,
        ep: &Endpoint,
        body: bytes::Bytes,
    ) -> Result<Response<Body>, TryError> {
        let cluster = &self.route.cluster;
        let host = cluster
            .host_for(ep, self.host)
            .ok_or_else(|| TryError::Reset(Fault::NoHost.into()))?;
        let pool = Arc::downgrade(&cluster.pool);
        for _ in 0..MAX_STALE {
            let (conn, reused) = cluster
                .pool
                .checkout_raw(ep, !self.repeatable)
                .await
                .map_err(TryError::Connect)?;
            let out = Outgoing {
                method: &self.parts.method,
                target: self.target.as_str(),
                host: &host,
                headers: &self.parts.headers,
                body: &body,
            };
            match conn.exchange(out, ep.addr, pool.clone()).await {
                Ok(resp) => return Ok(resp),
                Err(e) if reused && self.repeatable && e.nothing_received() => continue,
                Err(e) => return Err(TryError::Reset(e.into())),
            }
        }
        Err(TryError::Reset(Fault::Stale.into()))
    }

    /// The endpoints this request already tried, to steer retries away.
    fn tried_addrs(&self) -> &[SocketAddr] {
        &self.tried[..self.tries.min(MAX_TRIES)]
    }
}

/// Why a try got no response headers.
enum TryError {
    Connect(ConnectError),
    Reset(Box<dyn std::error::Error + Send + Sync>),
    BodyGone,
}

/// A try that could not be made for a reason of Attaché's own.
#[derive(Debug, thiserror::Error)]
enum Fault {
    #[error("cannot forward to {0:?}")]
    Target(String),
    #[error("every pooled connection to the endpoint turned out closed")]
    Stale,
    #[error("no Host header can be made for the endpoint")]
    NoHost,
}

/// The alert a TLS server sent, somewhere down an error's source chain.
fn tls_alert(mut e: &(dyn std::error::Error + 'static)) -> Option<String> {
    loop {
        // h2 keeps the io::Error out of the source chain.
        let io = e
            .downcast_ref::<std::io::Error>()
            .or_else(|| e.downcast_ref::<h2::Error>().and_then(h2::Error::get_io));
        let inner = io.and_then(|io| io.get_ref());
        let rustls = inner
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| e.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::AlertReceived(alert)) = rustls {
            return Some(format!("{alert:?}"));
        }
        // After the handshake rustls reports an alert as text.
        if let Some(alert) = inner.and_then(|i| {
            i.to_string()
                .strip_prefix("received fatal alert: ")
                .map(str::to_owned)
        }) {
            return Some(alert);
        }
        e = e.source()?;
    }
}

fn fail(error: LocalError, retry: bool) -> TryOutcome {
    TryOutcome::Failed {
        error,
        retry,
        response: None,
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(max, base·2ⁿ)).
fn backoff(cfg: &crate::config::http::RouteConfig, retry: u32) -> Duration {
    let cap = cfg
        .backoff
        .0
        .saturating_mul(1u32 << retry.min(16))
        .min(cfg.max_backoff.0);
    if cap.is_zero() {
        return cap;
    }
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::thread_rng().gen_range(0..nanos))
}

/// The Host the app addressed: `:authority` on HTTP/2, `Host` on 1.1.
fn client_host(parts: &Parts) -> Option<HeaderValue> {
    match parts.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => parts.headers.get(header::HOST).cloned(),
    }
}

/// The path and query the upstream gets: the app's, or the route's rewrite
/// of it.
fn target(
    ctx: &HttpContext,
    route: &RouteEntry,
    parts: &Parts,
) -> Result<http::uri::PathAndQuery, LocalError> {
    let original = parts.uri.path_and_query();
    let pq = original.map_or("/", |p| p.as_str());
    match ctx.router.rewrite(route.index, pq) {
        Some(rewritten) => http::uri::PathAndQuery::from_maybe_shared(rewritten)
            .map_err(|e| LocalError::BadRequest(format!("rewritten path: {e}"))),
        None => Ok(original
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"))),
    }
}

fn is_upgrade(parts: &Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.headers.contains_key(header::UPGRADE)
        && parts
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Joins the two upgraded connections (WebSocket and the like) and copies
/// bytes both ways until either side closes.
fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => return debug!(%error, "upgrade failed"),
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            debug!(%error, "upgraded connection ended with an error");
        }
    });
}
