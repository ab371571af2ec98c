//! Backend (HTTP/1.1 fast path): the upstream exchange done from the
//! request's own task. hyper's client runs each connection as a task of its
//! own and hands requests, responses and body chunks across channels; for
//! the common request (plain or TLS HTTP/1.1, body already in hand) that
//! costs several task wake-ups per request. Here the request head and body
//! go out in one write, the response head is parsed with `httparse` from
//! the connection's buffer, and the body is read from the socket as the app
//! side polls it, then the connection goes back to the pool.
//!
//! hyper stays in charge of everything else: HTTP/2, upgrades, streamed
//! request bodies.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;

use super::pool::{Body, BoxError, Pool};
use crate::net::Stream;

/// Largest response head accepted from an upstream.
const MAX_HEAD: usize = 64 << 10;
/// Most response headers accepted.
const MAX_HEADERS: usize = 100;
/// Bytes read from the socket per read.
const READ_CHUNK: usize = 16 << 10;

/// One upstream HTTP/1.1 connection outside hyper.
pub struct RawConn {
    pub(super) io: Stream,
    buf: BytesMut,
    /// Held while the connection is open: `max_connections`.
    _permit: OwnedSemaphorePermit,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    #[error("upstream closed the connection before a response")]
    Closed,
    #[error("invalid response from upstream: {0}")]
    Invalid(String),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
}

impl H1Error {
    /// Whether nothing of a response arrived: the keep-alive race on a
    /// reused connection, the request maybe never read.
    pub fn nothing_received(&self) -> bool {
        matches!(self, H1Error::Closed)
            || matches!(self, H1Error::Io(e) if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ))
    }
}

/// What a request needs from the caller.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub target: &'a str,
    pub host: &'a HeaderValue,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl RawConn {
    pub(super) fn new(io: Stream, permit: OwnedSemaphorePermit) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            _permit: permit,
        }
    }

    /// Whether an idle connection is still usable: nothing to read (a close
    /// or stray bytes mean it is not).
    pub(super) fn is_idle_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        self.buf.is_empty()
            && matches!(self.io.tcp().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends one request and reads its response head; the body is read as
    /// the returned response's body is polled.
    pub async fn exchange(
        mut self,
        out: Outgoing<'_>,
        addr: SocketAddr,
        pool: Weak<Pool>,
    ) -> Result<Response<Body>, H1Error> {
        let head = encode_request(&out);
        self.io.write_all(&head).await?;
        if !out.body.is_empty() {
            self.io.write_all(out.body).await?;
        }
        self.io.flush().await?;
        let (status, headers) = loop {
            let (status, headers) = self.read_head().await?;
            // Interim answers (100 Continue, 103 Early Hints) are skipped.
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                continue;
            }
            break (status, headers);
        };
        let mut headers = headers;
        let framing = Framing::of(out.method, status, &headers)?;
        if matches!(framing, Framing::Chunked(_)) {
            // RFC 9112 §6.3: with chunked framing a Content-Length is
            // wrong by definition; the app gets the decoded body re-framed.
            headers.remove(header::CONTENT_LENGTH);
        }
        let keep_alive = !connection_close(&headers);
        let mut body = RawBody {
            conn: Some(self),
            framing,
            keep_alive,
            addr,
            pool,
        };
        if framing == Framing::Empty {
            // Nobody polls an empty body: hand the connection back now.
            body.finish();
        }
        let mut resp = Response::new(Body::new(body));
        *resp.status_mut() = status;
        *resp.version_mut() = Version::HTTP_11;
        *resp.headers_mut() = headers;
        Ok(resp)
    }

    async fn read_head(&mut self) -> Result<(StatusCode, HeaderMap), H1Error> {
        loop {
            if let Some(parsed) = parse_head(&mut self.buf)? {
                return Ok(parsed);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(H1Error::HeadTooLarge);
            }
            if self.fill().await? == 0 {
                return Err(H1Error::Closed);
            }
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Reads what the socket has into the buffer (no zeroing, no copy).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// The request head, `content-length` always ours (the body is whole).
fn encode_request(out: &Outgoing<'_>) -> BytesMut {
    let mut b = BytesMut::with_capacity(256 + out.headers.len() * 32);
    b.extend_from_slice(out.method.as_str().as_bytes());
    b.extend_from_slice(b" ");
    b.extend_from_slice(out.target.as_bytes());
    b.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    b.extend_from_slice(out.host.as_bytes());
    b.extend_from_slice(b"\r\n");
    for (name, value) in out.headers {
        if name == header::HOST || name == header::CONTENT_LENGTH {
            continue;
        }
        b.extend_from_slice(name.as_str().as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(value.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    let body_expected =
        !out.body.is_empty() || matches!(*out.method, Method::POST | Method::PUT | Method::PATCH);
    if body_expected {
        // Formatting into the buffer itself cannot fail.
        let _ = write!(b, "content-length: {}\r\n", out.body.len());
    }
    b.extend_from_slice(b"\r\n");
    b
}

/// A complete response head at the front of `buf`, split off; `None` while
/// incomplete.
fn parse_head(buf: &mut BytesMut) -> Result<Option<(StatusCode, HeaderMap)>, H1Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(H1Error::Invalid(e.to_string())),
    };
    let code = resp.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| H1Error::Invalid(format!("status {code}")))?;
    let base = buf.as_ptr() as usize;
    // Offsets into the head, so values can share its bytes once frozen
    // (on the stack: no allocation per response).
    let mut spans = [(0usize, 0usize, 0usize, 0usize); MAX_HEADERS];
    let count = resp.headers.len();
    for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
        let n = h.name.as_ptr() as usize - base;
        let v = h.value.as_ptr() as usize - base;
        *span = (n, h.name.len(), v, h.value.len());
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(n, nl, v, vl) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[n..n + nl])
            .map_err(|e| H1Error::Invalid(e.to_string()))?;
        let value = HeaderValue::from_maybe_shared(head.slice(v..v + vl))
            .map_err(|e| H1Error::Invalid(e.to_string()))?;
        headers.append(name, value);
    }
    Ok(Some((status, headers)))
}

fn connection_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

/// How the response body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes (the connection is not reused).
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

impl Framing {
    fn of(method: &Method, status: StatusCode, h: &HeaderMap) -> Result<Self, H1Error> {
        if *method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::Empty);
        }
        let chunked = h
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.trim().eq_ignore_ascii_case("chunked"));
        if chunked {
            return Ok(Framing::Chunked(Chunk::Size));
        }
        match h.get(header::CONTENT_LENGTH) {
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(|n| {
                    if n == 0 {
                        Framing::Empty
                    } else {
                        Framing::Length(n)
                    }
                })
                .ok_or_else(|| H1Error::Invalid("content-length".into())),
            None => Ok(Framing::Close),
        }
    }
}

/// The response body, read straight from the upstream socket.
struct RawBody {
    conn: Option<RawConn>,
    framing: Framing,
    keep_alive: bool,
    addr: SocketAddr,
    pool: Weak<Pool>,
}

impl RawBody {
    /// The body is complete: the connection goes back to the pool if it
    /// may be reused.
    fn finish(&mut self) {
        let conn = self.conn.take();
        if let (Some(conn), true, Some(pool)) = (conn, self.keep_alive, self.pool.upgrade()) {
            if conn.buf.is_empty() {
                pool.put_raw(self.addr, conn);
            }
        }
    }

    /// The next piece of body, or `None` at its end; reads as needed.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, BoxError>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            match step(&mut self.framing, &mut conn.buf)? {
                Step::Data(d) => return Poll::Ready(Ok(Some(d))),
                Step::Done => {
                    self.finish();
                    return Poll::Ready(Ok(None));
                }
                Step::More => {}
            }
            let n = ready!(conn.poll_fill(cx))?;
            if n == 0 {
                self.conn = None;
                return Poll::Ready(match self.framing {
                    Framing::Close => Ok(None),
                    _ => Err(H1Error::Closed.into()),
                });
            }
        }
    }
}

enum Step {
    Data(Bytes),
    Done,
    More,
}

/// Takes what the framing allows from `buf`.
fn step(framing: &mut Framing, buf: &mut BytesMut) -> Result<Step, H1Error> {
    match framing {
        Framing::Empty => Ok(Step::Done),
        Framing::Length(0) => Ok(Step::Done),
        Framing::Length(left) => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            let n = (*left).min(buf.len() as u64) as usize;
            *left -= n as u64;
            Ok(Step::Data(buf.split_to(n).freeze()))
        }
        Framing::Close => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            Ok(Step::Data(buf.split().freeze()))
        }
        Framing::Chunked(state) => chunk_step(state, buf),
    }
}

fn chunk_step(state: &mut Chunk, buf: &mut BytesMut) -> Result<Step, H1Error> {
    loop {
        match *state {
            Chunk::Size => {
                let Some(end) = find_crlf(buf) else {
                    return more_or_err(buf);
                };
                let line = &buf[..end];
                let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                let text = std::str::from_utf8(hex).unwrap_or("").trim();
                let size = u64::from_str_radix(text, 16)
                    .map_err(|_| H1Error::Invalid("chunk size".into()))?;
                buf.advance(end + 2);
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = left.min(buf.len() as u64) as usize;
                *state = if n as u64 == left {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - n as u64)
                };
                return Ok(Step::Data(buf.split_to(n).freeze()));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(H1Error::Invalid("chunk end".into()));
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            // Trailer fields are dropped; an empty line ends the body.
            Chunk::Trailers => {
                let Some(end) = find_crlf(buf) else {
                    return more_or_err(buf);
                };
                buf.advance(end + 2);
                if end == 0 {
                    return Ok(Step::Done);
                }
            }
        }
    }
}

/// A line longer than any sane chunk header or trailer is an error.
fn more_or_err(buf: &BytesMut) -> Result<Step, H1Error> {
    if buf.len() > 8 << 10 {
        return Err(H1Error::Invalid("chunk line too long".into()));
    }
    Ok(Step::More)
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl http_body::Body for RawBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match ready!(self.poll_next(cx)) {
            Ok(Some(data)) => {
                // Return the connection as soon as the last byte is out,
                // not on the next poll (the app side may never make it).
                if matches!(self.framing, Framing::Length(0)) {
                    self.finish();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => Poll::Ready(None),
            Err(e) => {
                self.conn = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.framing, Framing::Empty | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
