//! Backend (HTTP/1.1 fast path): the upstream exchange done from the
//! request's own task. hyper's client runs each connection as a task of its
//! own and hands requests, responses and body chunks across channels; for
//! the common request (plain or TLS HTTP/1.1, body already in hand) that
//! costs several task wake-ups per request. Here the request head and body
//! go out in one write, the response head is parsed with `httparse` from
//! the connection's buffer, and the body is read from the socket as the app
//! side polls it, then the connection goes back to the pool. The head comes
//! back as received ([`RawHead`]: bytes and field offsets), so the app
//! side's HTTP/1.1 pass-through relays it without a header map; hyper's
//! server gets it as an `http::Response` ([`RawResponse::into_response`]).
//!
//! hyper stays in charge of everything else: HTTP/2, upgrades, streamed
//! request bodies.

mod body;

use std::fmt::Write as _;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;

use super::pool::{Body, Pool};
use crate::net::Stream;
use body::Framing;
pub use body::RawBody;

/// Largest response head accepted from an upstream.
const MAX_HEAD: usize = 64 << 10;
/// Most response headers accepted.
const MAX_HEADERS: usize = 100;
/// Bytes read from the socket per read.
const READ_CHUNK: usize = 16 << 10;
/// A request body up to this size goes out in the head's write.
const COALESCE: usize = 16 << 10;

/// One upstream HTTP/1.1 connection outside hyper.
pub struct RawConn {
    pub(super) io: Stream,
    buf: BytesMut,
    /// When its current (or last) request began.
    pub(super) used: std::time::Instant,
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
    pub host: &'a [u8],
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl RawConn {
    pub(super) fn new(io: Stream, permit: OwnedSemaphorePermit, used: std::time::Instant) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            used,
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
    /// the response's body is polled. `head` is a whole request head
    /// ([`encode_request`], or [`start_request`] … [`end_request`]); the
    /// answer is the upstream's head as received.
    pub async fn exchange(
        mut self,
        mut head: BytesMut,
        body: &[u8],
        head_method: bool,
        addr: SocketAddr,
        pool: Weak<Pool>,
    ) -> Result<RawResponse, H1Error> {
        if body.len() <= COALESCE {
            // One write, one segment, one wake-up of the upstream.
            head.extend_from_slice(body);
            self.io.write_all(&head).await?;
        } else {
            self.io.write_all(&head).await?;
            self.io.write_all(body).await?;
        }
        self.io.flush().await?;
        let head = loop {
            let head = self.read_head().await?;
            // No upgrade was asked for on this path: a 101 leaves the
            // connection in an unknown protocol.
            if head.status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(H1Error::Invalid("101 to a request without Upgrade".into()));
            }
            // Interim answers (100 Continue, 103 Early Hints) are skipped.
            if head.status.is_informational() {
                continue;
            }
            break head;
        };
        let framing = Framing::of(head_method, &head)?;
        let mut body = RawBody {
            keep_alive: !head.connection_close(),
            conn: Some(self),
            framing,
            addr,
            pool,
        };
        if framing == Framing::Empty {
            // Nobody polls an empty body: hand the connection back now.
            body.finish();
        }
        Ok(RawResponse { head, body })
    }

    async fn read_head(&mut self) -> Result<RawHead, H1Error> {
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
pub fn encode_request(out: &Outgoing<'_>) -> BytesMut {
    let mut b = BytesMut::with_capacity(256 + out.headers.len() * 32);
    start_request(
        &mut b,
        out.method.as_str().as_bytes(),
        out.target.as_bytes(),
        out.host,
    );
    for (name, value) in out.headers {
        if name == header::HOST || name == header::CONTENT_LENGTH {
            continue;
        }
        b.extend_from_slice(name.as_str().as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(value.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    end_request(&mut b, out.method, out.body.len());
    b
}

/// Opens a request head: the request line and Attaché's `host`. The
/// caller adds its fields, then [`end_request`].
pub fn start_request(b: &mut BytesMut, method: &[u8], target: &[u8], host: &[u8]) {
    b.extend_from_slice(method);
    b.extend_from_slice(b" ");
    b.extend_from_slice(target);
    b.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    b.extend_from_slice(host);
    b.extend_from_slice(b"\r\n");
}

/// Closes a request head: `content-length` when there is a body or the
/// method expects one, then the blank line.
pub fn end_request(b: &mut BytesMut, method: &Method, body_len: usize) {
    let body_expected =
        body_len > 0 || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if body_expected {
        // Formatting into the buffer itself cannot fail.
        let _ = write!(b, "content-length: {body_len}\r\n");
    }
    b.extend_from_slice(b"\r\n");
}

/// A `Content-Length` value: digits only (no sign, no inner spaces), so
/// every parser on the path agrees on where a message ends.
pub fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The transfer codings one `Transfer-Encoding` field value lists, in
/// order.
pub fn codings(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Whether `chunked`, if listed in the `Transfer-Encoding` fields
/// `values`, is listed once and last (RFC 9112 §6.1): only then can a relay
/// take it off and put it back on with the other codings kept in order.
pub fn chunked_last<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut after_chunked = false;
    for t in values.flat_map(codings) {
        if after_chunked {
            return false;
        }
        after_chunked = t.eq_ignore_ascii_case(b"chunked");
    }
    true
}

/// An upstream's answer on the fast path: its head as received and its body.
pub struct RawResponse {
    pub head: RawHead,
    pub body: RawBody,
}

impl RawResponse {
    /// As an `http` response (for hyper's server to write).
    pub fn into_response(self) -> Result<Response<Body>, H1Error> {
        let mut headers = self.head.header_map()?;
        if self.body.needs_framing() {
            // RFC 9112 §6.3: with chunked framing a Content-Length is
            // wrong by definition; the app gets the decoded body re-framed.
            headers.remove(header::CONTENT_LENGTH);
        }
        let mut resp = Response::new(Body::new(self.body));
        *resp.status_mut() = self.head.status;
        *resp.version_mut() = Version::HTTP_11;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

/// A response head as it came: its bytes, status and where each field is
/// (one small allocation for the offsets, no header map; a fixed array
/// would be copied at every layer the response is returned through).
pub struct RawHead {
    pub status: StatusCode,
    bytes: Bytes,
    spans: Vec<(u32, u32, u32, u32)>,
}

impl RawHead {
    /// The fields in order, names as the upstream spelled them.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(|&(n, nl, v, vl)| {
            let (n, nl, v, vl) = (n as usize, nl as usize, v as usize, vl as usize);
            (&self.bytes[n..n + nl], &self.bytes[v..v + vl])
        })
    }

    /// The fields as a header map (values share the head's bytes).
    fn header_map(&self) -> Result<HeaderMap, H1Error> {
        let mut headers = HeaderMap::with_capacity(self.spans.len());
        for &(n, nl, v, vl) in &self.spans {
            let (n, nl, v, vl) = (n as usize, nl as usize, v as usize, vl as usize);
            let name = HeaderName::from_bytes(&self.bytes[n..n + nl])
                .map_err(|e| H1Error::Invalid(e.to_string()))?;
            let value = HeaderValue::from_maybe_shared(self.bytes.slice(v..v + vl))
                .map_err(|e| H1Error::Invalid(e.to_string()))?;
            headers.append(name, value);
        }
        Ok(headers)
    }

    /// Whether the upstream said it closes the connection after this.
    fn connection_close(&self) -> bool {
        self.fields()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    }
}

/// A complete response head at the front of `buf`, split off; `None` while
/// incomplete.
fn parse_head(buf: &mut BytesMut) -> Result<Option<RawHead>, H1Error> {
    // Uninitialized: zeroing the slots costs more than parsing 5 fields.
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(H1Error::Invalid(e.to_string())),
    };
    let code = resp.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| H1Error::Invalid(format!("status {code}")))?;
    let base = buf.as_ptr() as usize;
    let at = |p: *const u8| u32::try_from(p as usize - base).unwrap_or(u32::MAX);
    let spans = resp
        .headers
        .iter()
        .map(|h| {
            let nl = u32::try_from(h.name.len()).unwrap_or(0);
            let vl = u32::try_from(h.value.len()).unwrap_or(0);
            (at(h.name.as_ptr()), nl, at(h.value.as_ptr()), vl)
        })
        .collect();
    let bytes = buf.split_to(len).freeze();
    Ok(Some(RawHead {
        status,
        bytes,
        spans,
    }))
}

/// [`parse_head`] of a whole head, for other modules' tests.
#[cfg(test)]
pub fn parse_head_for_tests(buf: &mut BytesMut) -> RawHead {
    match parse_head(buf) {
        Ok(Some(head)) => head,
        _ => panic!("not a whole response head"),
    }
}

#[cfg(test)]
mod tests;
