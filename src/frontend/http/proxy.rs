//! Route → backend → respond (HTTP): one request's way through when hyper
//! serves the connection (HTTP/2, upgrades, streamed bodies, whatever the
//! pass-through in [`super::fast`] leaves to it). Match a route, pass the
//! cluster's circuit breaker, fix the headers, then [`super::attempt`]
//! tries endpoints.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Version};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use tracing::debug;

use super::attempt::{raw_try, Attempt, Exchange, Fault, RawRequest, TryError, MAX_STALE};
use super::body::{BodyLimits, ReqBody};
use super::error::LocalError;
use super::headers;
use super::idle::{Idle, Watched};
use super::tunnel::{self, TunnelGuard};
use super::upload::Upload;
use super::{HttpContext, RouteEntry};
use crate::core::http::endpoint::Endpoint;
use crate::core::http::h1::{encode_request, Outgoing};
use crate::core::http::pool::{target_uri, SendError};
use crate::core::http::Body;

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
    // A body framed other than by chunked alone is refused, and its
    // connection not reused: what follows the body is unknown.
    let framing = headers::request_framing(&parts.headers);
    let Some(index) = ctx.router.find(host_str, parts.uri.path()) else {
        let mut resp = LocalError::NoRoute(parts.uri.path().to_owned()).response(Some(&request_id));
        if framing.is_err() {
            close(&mut resp);
        }
        ctx.unmatched.response(404, start.elapsed());
        return resp;
    };
    let route = &ctx.routes[index];
    let version = parts.version;
    let refused = framing.is_err();
    let forwarded = match framing {
        Ok(()) => forward(&ctx, route, parts, body, &peer, host.as_ref()).await,
        Err(error) => Err(error),
    };
    let mut resp = match forwarded.and_then(|r| relayable(r, version)) {
        Ok(resp) => resp,
        Err(error) => {
            debug!(%error, route = index, cluster = %route.cluster.name, "request failed");
            route.stats.local_error();
            route.cluster.stats.local_error();
            let mut resp = error.response(Some(&request_id));
            if refused {
                close(&mut resp);
            }
            resp
        }
    };
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

/// Marks an HTTP/1 answer as the connection's last: hyper closes after it
/// instead of reading on where the request's framing left it.
fn close(resp: &mut Response<Body>) {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// The upstream's response without its hop-by-hop fields, ready for an
/// app that spoke `version`. Transfer codings besides chunked are the
/// body's and stay (hyper re-chunks on top); an app that cannot be sent
/// them (HTTP/2, RFC 9113 §8.2.2; HTTP/1.0) gets a 502 instead of a body it
/// cannot decode, as nginx answers any such upstream response.
fn relayable(mut resp: Response<Body>, version: Version) -> Result<Response<Body>, LocalError> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    let codings = headers::transfer_codings(resp.headers()).map_err(LocalError::TransferCoding)?;
    headers::strip_hop_by_hop(resp.headers_mut(), false);
    let Some(codings) = codings else {
        return Ok(resp);
    };
    // No body (HEAD, 204, 304): nothing to misread.
    if resp.body().is_end_stream() {
        return Ok(resp);
    }
    if version != Version::HTTP_11 {
        let text = String::from_utf8_lossy(codings.as_bytes()).into_owned();
        return Err(LocalError::TransferCoding(text));
    }
    resp.headers_mut()
        .insert(header::TRANSFER_ENCODING, codings);
    Ok(resp)
}

/// A request as hyper gave it, tried as an `http` request: on the
/// HTTP/1.1 fast path when its body is whole, else through hyper's client.
struct HyperTry<'a> {
    parts: Parts,
    body: ReqBody,
    host: Option<&'a HeaderValue>,
    /// The path and query sent upstream.
    target: http::uri::PathAndQuery,
}

async fn forward(
    ctx: &HttpContext,
    route: &RouteEntry,
    mut parts: Parts,
    body: Incoming,
    peer: &HeaderValue,
    host: Option<&HeaderValue>,
) -> Result<Response<Body>, LocalError> {
    let cluster = &route.cluster;
    let client_upgrade = is_upgrade(&parts)
        .then(|| parts.extensions.remove::<OnUpgrade>())
        .flatten();
    let tunnel_guard = parts.extensions.remove::<TunnelGuard>();
    headers::strip_hop_by_hop(&mut parts.headers, client_upgrade.is_some());
    if parts.version == Version::HTTP_2 {
        headers::join_cookies(&mut parts.headers);
    }
    headers::add_forwarded(&mut parts.headers, peer, host);
    headers::ensure_traceparent(&mut parts.headers);
    let target = target(ctx, route, &parts)?;
    let h2 = parts.version == Version::HTTP_2;
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
    // The body (a streamed one: its first frame) is read before the
    // request takes a cluster slot, as on the pass-through path: apps that
    // send a head and nothing more must not fill the cluster's slots.
    let body = request_body(ctx, body, client_upgrade.is_some(), buffer).await?;
    let _slot = super::attempt::admit(route, Instant::now() + route.cfg.timeout.0).await?;
    // The route's timeout runs from here: the time the app took to send a
    // kept body is its own, not the upstream's (a streamed body's waits
    // are left out as the try goes, see `Exchange::upload`).
    let ready = Instant::now();
    cluster.budget.record_request(ready);
    let exchange = HyperTry {
        parts,
        body,
        host,
        target,
    };
    let mut resp = Attempt::new(route, exchange, repeatable, ready, None)
        .run()
        .await?;
    if let Some(on_client) = client_upgrade {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The tunnel is still this request: it keeps its slot and its
            // app connection (client permit) while it runs.
            let guard = tunnel_guard;
            let upstream = hyper::upgrade::on(&mut resp);
            tunnel::spawn(on_client, upstream, idle, (_slot, guard));
            return Ok(resp);
        }
    }
    Ok(resp.map(|b| match h2 {
        true => Watched::wrap(Idle::wrap(b, idle), idle),
        false => Idle::wrap(b, idle),
    }))
}

/// The app's body as the tries will send it: kept whole when `buffer`
/// (up to `max_retry_body`), else a stream once its first frame is in. The
/// read made before the request takes a cluster slot is bounded by
/// `stream_idle_timeout` and by `request_body_timeout`, a stream by both
/// as it goes.
async fn request_body(
    ctx: &HttpContext,
    body: Incoming,
    upgrade: bool,
    buffer: bool,
) -> Result<ReqBody, LocalError> {
    let idle = ctx.config.stream_idle_timeout.0;
    let deadline = ctx
        .config
        .request_body_timeout
        .map(|d| (tokio::time::Instant::now() + d.0, d.0));
    let limits = BodyLimits { idle, deadline };
    if upgrade {
        return Ok(ReqBody::stream(body, limits));
    }
    if body.is_end_stream() {
        // No body (most GETs): nothing to wait for, so no timer either.
        return Ok(ReqBody::Buffered(bytes::Bytes::new()));
    }
    let limit = ctx.config.max_retry_body.0;
    let read = async {
        match buffer {
            true => ReqBody::read(body, limit, limits).await,
            false => ReqBody::stream_from_first(body, limits).await,
        }
    };
    let idle_at = tokio::time::Instant::now() + idle;
    let (at, late) = match deadline {
        Some((at, whole)) if at < idle_at => (at, LocalError::RequestBodyTimeout(whole)),
        _ => (idle_at, LocalError::RequestTimeout(idle)),
    };
    tokio::time::timeout_at(at, read)
        .await
        .map_err(|_| late)?
        .map_err(|e| LocalError::BadRequest(e.to_string()))
}

impl Exchange for HyperTry<'_> {
    type Resp = Response<Body>;

    fn status(resp: &Response<Body>) -> u16 {
        resp.status().as_u16()
    }

    fn replayable(&self) -> bool {
        self.body.replayable()
    }

    fn upload(&self) -> Option<Arc<Upload>> {
        self.body.upload()
    }

    /// One try on one endpoint, until response headers. A pooled
    /// connection found stale before the request went out is replaced.
    async fn send(
        &mut self,
        route: &RouteEntry,
        ep: &Endpoint,
        repeatable: bool,
        now: Instant,
    ) -> Result<Response<Body>, TryError> {
        let cluster = &route.cluster;
        // Upgrades need hyper's hand-over of the connection.
        let upgrade = self.parts.headers.contains_key(header::UPGRADE);
        if cluster.pool.raw_ok() && !upgrade {
            if let ReqBody::Buffered(body) = &self.body {
                return self.send_raw(route, ep, repeatable, body, now).await;
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
}

impl HyperTry<'_> {
    /// [`Exchange::send`] on the HTTP/1.1 fast path (the body is whole).
    async fn send_raw(
        &self,
        route: &RouteEntry,
        ep: &Endpoint,
        repeatable: bool,
        body: &bytes::Bytes,
        now: Instant,
    ) -> Result<Response<Body>, TryError> {
        let head = |host: &[u8]| {
            encode_request(&Outgoing {
                method: &self.parts.method,
                target: self.target.as_str(),
                host,
                headers: &self.parts.headers,
                body,
            })
        };
        let head_method = self.parts.method == http::Method::HEAD;
        let client_host = self.host.map(HeaderValue::as_bytes);
        let raw = raw_try(
            route,
            ep,
            repeatable,
            now,
            RawRequest {
                client_host,
                head,
                body,
                head_method,
            },
        )
        .await?;
        raw.into_response().map_err(|e| TryError::Reset(e.into()))
    }
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
