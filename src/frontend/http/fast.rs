//! Accept → parse → route → backend → respond (HTTP/1.1 pass-through):
//! the app connection's own loop for the common request, an HTTP/1.1
//! request with no body or a small one of known length, to a route whose
//! cluster takes the upstream fast path ([`crate::core::http::h1`]).
//!
//! Why not hyper for these: hyper's server parses each head into a header
//! map, runs its dispatcher, arms its header-read timer per request and
//! re-encodes the response head; with the upstream side the same again,
//! that was about half of Attaché's user CPU per proxied request. Here the
//! app's head is read in place, its fields are copied to the upstream
//! request with the proxy's changes, and the upstream's head is copied
//! back the same way ([`head`]); the response and its body go out in one
//! write when they are already in hand.
//!
//! The first request this loop does not take (see [`head::Parsed`]) hands
//! the connection to hyper for the rest of its life, bytes already read
//! included: HTTP/2, upgrades, streamed bodies, errors in the head and
//! everything else keep hyper's behaviour. Retries, budgets, outlier
//! detection and stats are the same code as hyper's requests use
//! ([`super::attempt`]).

mod head;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use http::{HeaderValue, Method};
use http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use self::head::{Added, Parsed, ReqHead};
use super::attempt::{raw_try, Attempt, Exchange, RawRequest, TryError};
use super::error::LocalError;
use super::idle::IdleTimeout;
use super::{headers, HttpContext, RouteEntry, HEAD_TIMEOUT, MAX_HEAD};
use crate::core::http::endpoint::Endpoint;
use crate::core::http::h1::{end_request, start_request, RawBody, RawResponse};
use crate::core::timer::LazyTimer;
use crate::net::WriteIdle;
use crate::server::Signal;

/// Response bytes gathered before a write while more body is at hand.
const WRITE_CHUNK: usize = 64 << 10;
/// Body pieces at least this large are written from where they are.
const DIRECT_WRITE: usize = 16 << 10;

/// Longest an ended connection waits for the app to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// How the loop ended.
pub(super) enum Served {
    Closed,
    /// hyper serves the rest; these bytes were read and not consumed.
    Handover(BytesMut),
}

/// One app connection's read and write buffers.
struct Conn<'a> {
    /// Writes give up once the app takes nothing for the stream idle
    /// timeout (set per request).
    tcp: &'a mut WriteIdle<TcpStream>,
    buf: BytesMut,
    out: BytesMut,
    /// Times every try of this connection's requests.
    timer: LazyTimer,
}

/// Serves requests until the app closes, shutdown, or a request this path
/// does not take.
pub(super) async fn serve(
    ctx: &Arc<HttpContext>,
    tcp: &mut WriteIdle<TcpStream>,
    peer: &HeaderValue,
    stop: &mut Signal,
) -> Served {
    let mut conn = Conn {
        tcp,
        buf: BytesMut::with_capacity(4096),
        out: BytesMut::new(),
        timer: LazyTimer::default(),
    };
    let watchdog = tokio::time::sleep(HEAD_TIMEOUT);
    tokio::pin!(watchdog);
    // Requests served, and the count when the watchdog last fired.
    let (mut served, mut seen) = (0u64, 0u64);
    loop {
        let (ctx, head) = loop {
            // Taken per read: a reload while the connection sat idle
            // applies to its next request.
            let ctx = ctx.latest();
            match head::parse(&conn.buf, ctx.request_id.as_str().as_bytes()) {
                // hyper answers 431.
                Parsed::Complete(head) if head.len > MAX_HEAD => return Served::Handover(conn.buf),
                Parsed::Complete(head) => break (ctx, head),
                Parsed::NotForUs => return Served::Handover(conn.buf),
                // hyper answers 431.
                Parsed::Partial if conn.buf.len() > MAX_HEAD => return Served::Handover(conn.buf),
                Parsed::Partial => {}
            }
            if conn.buf.capacity() - conn.buf.len() < 1024 {
                conn.buf.reserve(4096);
            }
            let read = tokio::select! {
                biased;
                () = stop.fired() => return Served::Closed,
                r = conn.tcp.read_buf(&mut conn.buf) => r,
                () = &mut watchdog => {
                    if served == seen {
                        debug!("no request head within the timeout; closing");
                        return Served::Closed;
                    }
                    seen = served;
                    watchdog.as_mut().reset(tokio::time::Instant::now() + HEAD_TIMEOUT);
                    continue;
                }
            };
            if !matches!(read, Ok(n) if n > 0) {
                return Served::Closed;
            }
        };
        let Some(route) = ours(&ctx, &head, &conn.buf) else {
            return Served::Handover(conn.buf);
        };
        let start = Instant::now();
        match conn.exchange(&ctx, route, &head, peer, stop, start).await {
            Ok(true) => served += 1,
            Ok(false) | Err(_) => {
                linger(conn.tcp, stop).await;
                return Served::Closed;
            }
        }
    }
}

/// Closes an app connection that Attaché ends (the app asked for it, or
/// it failed) the way nginx's lingering close does: Attaché's FIN first,
/// then what the app still sends (pipelined requests after a `close`, an
/// upload's rest) is read and dropped until the app closes too, for at
/// most [`LINGER`] (once shutdown has begun, only what is already there).
/// Closing with those bytes unread makes the kernel send a reset: the app
/// sees its connection fail after the response (on some systems instead
/// of the response, if it had not read it yet).
async fn linger(tcp: &mut WriteIdle<TcpStream>, stop: &mut Signal) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let limit = if stop.begun() { Duration::ZERO } else { LINGER };
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} };
    tokio::select! {
        biased;
        _ = tokio::time::timeout(limit, drain) => {}
        // Shutdown beginning meanwhile does not wait for the app.
        () = stop.fired() => {}
    }
}

/// The route when this path takes the request: one matches, its cluster
/// speaks HTTP/1.1 on the fast path, the body is small enough to keep.
fn ours<'c>(ctx: &'c HttpContext, head: &ReqHead, buf: &[u8]) -> Option<&'c RouteEntry> {
    if head.content_length as u64 > ctx.config.max_retry_body.0 {
        return None;
    }
    let target = head.target(buf);
    let path = target.split('?').next().unwrap_or(target);
    let route = &ctx.routes[ctx.router.find(Some(head.host(buf)), path)?];
    route.cluster.pool.raw_ok().then_some(route)
}

impl Conn<'_> {
    /// One request, its body read, forwarded, answered. `Ok(true)` when
    /// the connection may serve another.
    async fn exchange(
        &mut self,
        ctx: &HttpContext,
        route: &RouteEntry,
        head: &ReqHead,
        peer: &HeaderValue,
        stop: &mut Signal,
        start: Instant,
    ) -> std::io::Result<bool> {
        let total = head.len + head.content_length;
        let idle = ctx.config.stream_idle_timeout.0;
        self.tcp.set_timeout(idle);
        let id_name = ctx.request_id.as_str().as_bytes();
        // Made only when the app sent none.
        let new_id = match head.request_id(&self.buf) {
            Some(_) => [0; 36],
            None => headers::new_request_id(),
        };
        // Most requests are whole already: no timer then. The route's
        // timeout runs from when the body is in: the time the app took to
        // send it is its own, not the upstream's.
        // The whole read is bounded (as hyper's kept bodies are): by the
        // idle timeout, or by `request_body_timeout` if shorter.
        let (read_limit, late) = match ctx.config.request_body_timeout {
            Some(whole) if whole.0 < idle => (whole.0, LocalError::RequestBodyTimeout(whole.0)),
            _ => (idle, LocalError::RequestTimeout(idle)),
        };
        let (read, ready) = match self.buf.len() < total {
            true => {
                let read = tokio::time::timeout(read_limit, self.read_body(total)).await;
                (read, Instant::now())
            }
            false => (Ok(Ok(())), start),
        };
        if let Ok(r) = read {
            r?;
        } else {
            let error = late;
            let id = head.request_id(&self.buf).unwrap_or(&new_id);
            answer_local(
                &mut self.out,
                (id_name, id),
                route,
                head,
                &error,
                start,
                true,
            );
            self.flush().await?;
            return Ok(false);
        }
        let traceparent = match head.keeps_traceparent() {
            true => [0; 55],
            false => headers::new_traceparent(),
        };
        let add = Added {
            peer: peer.as_bytes(),
            request_id_name: id_name,
            request_id: &new_id,
            traceparent: &traceparent,
        };
        let body = &self.buf[..total];
        let result = forward(ctx, route, head, body, &add, &mut self.timer, ready).await;
        let close = head.close || stop.begun();
        let id = head.request_id(&self.buf).unwrap_or(&new_id);
        let keep = match result {
            Ok((RawResponse { head: rh, mut body }, answered)) => {
                let chunked = body.needs_framing();
                head::write_response_head(&mut self.out, &rh, chunked, (id_name, id), close);
                record(route, rh.status.as_u16(), start, answered);
                let relayed = self.relay(&mut body, chunked, idle).await;
                if let Err(error) = &relayed {
                    debug!(%error, route = route.index, "response body cut short");
                }
                relayed.is_ok()
            }
            Err(error) => {
                debug!(%error, route = route.index, cluster = %route.cluster.name, "request failed");
                answer_local(
                    &mut self.out,
                    (id_name, id),
                    route,
                    head,
                    &error,
                    start,
                    close,
                );
                true
            }
        };
        self.flush().await?;
        self.buf.advance(total);
        Ok(keep && !close)
    }

    /// Reads until `total` bytes (head and body) are in the buffer. The
    /// caller bounds the whole read in time (as hyper's requests are), and
    /// memory grows only as bytes arrive.
    async fn read_body(&mut self, total: usize) -> std::io::Result<()> {
        while self.buf.len() < total {
            self.buf.reserve((total - self.buf.len()).min(64 << 10));
            if self.tcp.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }

    /// Copies the body to the app, framed as the head said; what is
    /// already at hand goes out with the head in one write.
    async fn relay(
        &mut self,
        body: &mut RawBody,
        chunked: bool,
        idle: Duration,
    ) -> Result<(), BodyError> {
        loop {
            let mut next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx));
            let frame = match (&mut next).now_or_never() {
                Some(frame) => frame,
                None => {
                    // Nothing at hand: what is gathered goes out first.
                    self.flush().await?;
                    tokio::time::timeout(idle, next)
                        .await
                        .map_err(|_| BodyError::Idle(IdleTimeout(idle)))?
                }
            };
            let Some(frame) = frame else { break };
            let Ok(data) = frame.map_err(BodyError::Upstream)?.into_data() else {
                continue;
            };
            if chunked {
                // Into the buffer itself: cannot fail, no allocation.
                let _ = write!(self.out, "{:x}\r\n", data.len());
            }
            if data.len() >= DIRECT_WRITE {
                self.flush().await?;
                self.tcp.write_all(&data).await?;
            } else {
                self.out.extend_from_slice(&data);
            }
            if chunked {
                self.out.extend_from_slice(b"\r\n");
            }
            if self.out.len() >= WRITE_CHUNK {
                self.flush().await?;
            }
        }
        if chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.tcp.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }
}

/// Why a response body could not be relayed whole.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error(transparent)]
    Idle(IdleTimeout),
    #[error("upstream: {0}")]
    Upstream(crate::core::http::BoxError),
    #[error("app connection: {0}")]
    App(#[from] std::io::Error),
}

/// Attaché's own answer, as hyper's requests get it, counted as theirs are.
fn answer_local(
    out: &mut BytesMut,
    (id_name, request_id): (&[u8], &[u8]),
    route: &RouteEntry,
    head: &ReqHead,
    error: &LocalError,
    start: Instant,
    close: bool,
) {
    route.stats.local_error();
    route.cluster.stats.local_error();
    record(route, error.status().as_u16(), start, None);
    let body = error.body();
    head::write_status(out, error.status());
    head::write_date(out);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"x-attache-error: ");
    out.extend_from_slice(error.cause().as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\n");
    let mut names = [&b"x-request-id"[..], id_name];
    let n = if id_name.eq_ignore_ascii_case(b"x-request-id") {
        1
    } else {
        2
    };
    for name in &mut names[..n] {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(request_id);
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "content-length: {}\r\n\r\n", body.len());
    if head.method != Method::HEAD {
        out.extend_from_slice(body.as_bytes());
    }
}

/// Route and cluster stats for an answer; `at`: when its head arrived, if
/// known (else now).
fn record(route: &RouteEntry, status: u16, start: Instant, at: Option<Instant>) {
    let elapsed = at
        .unwrap_or_else(Instant::now)
        .saturating_duration_since(start);
    route.stats.response(status, elapsed);
    route.cluster.stats.response(status, elapsed);
}

/// Admission, then the retry loop, for a request whose head and body are
/// `buf` (all read by `ready`, when the route's timeout starts); the
/// answer, and when its head arrived.
async fn forward(
    ctx: &HttpContext,
    route: &RouteEntry,
    head: &ReqHead,
    buf: &[u8],
    add: &Added<'_>,
    timer: &mut LazyTimer,
    ready: Instant,
) -> Result<(RawResponse, Option<Instant>), LocalError> {
    let cluster = &route.cluster;
    let _slot = super::attempt::admit(route, ready + route.cfg.timeout.0).await?;
    let original = head.target(buf);
    let rewritten = ctx.router.rewrite(route.index, original);
    if let Some(r) = &rewritten {
        http::uri::PathAndQuery::try_from(r.as_str())
            .map_err(|e| LocalError::BadRequest(format!("rewritten path: {e}")))?;
    }
    let repeatable = route.cfg.retry_non_idempotent || head.method.is_idempotent();
    cluster.budget.record_request(ready);
    let exchange = RawTry {
        head,
        buf,
        target: rewritten.as_deref().unwrap_or(original),
        add,
        client_host: head.host(buf).as_bytes(),
    };
    let mut attempt = Attempt::new(route, exchange, repeatable, ready, Some(timer));
    let resp = attempt.run().await?;
    Ok((resp, attempt.answered))
}

/// A request tried on the fast path straight from the app's bytes.
struct RawTry<'a> {
    head: &'a ReqHead,
    /// The app's head and body.
    buf: &'a [u8],
    target: &'a str,
    add: &'a Added<'a>,
    client_host: &'a [u8],
}

impl Exchange for RawTry<'_> {
    type Resp = RawResponse;

    fn status(resp: &RawResponse) -> u16 {
        resp.head.status.as_u16()
    }

    fn replayable(&self) -> bool {
        true
    }

    async fn send(
        &mut self,
        route: &RouteEntry,
        ep: &Endpoint,
        repeatable: bool,
        now: Instant,
    ) -> Result<RawResponse, TryError> {
        let head = self.head;
        let body = &self.buf[head.len..];
        let build = |host: &[u8]| {
            let mut b = BytesMut::with_capacity(head.len + 256);
            let method = head.method.as_str().as_bytes();
            start_request(&mut b, method, self.target.as_bytes(), host);
            head.write_fields(self.buf, &mut b, self.add);
            end_request(&mut b, &head.method, body.len());
            b
        };
        let head_method = head.method == Method::HEAD;
        raw_try(
            route,
            ep,
            repeatable,
            now,
            RawRequest {
                client_host: Some(self.client_host),
                head: build,
                body,
                head_method,
            },
        )
        .await
    }
}
