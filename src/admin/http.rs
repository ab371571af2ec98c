//! Accept → parse → respond (admin): a deliberately small HTTP/1.1 server.
//! The admin endpoints only answer GETs with small bodies, so this reads
//! request heads (bounded in size and time), never request bodies, and
//! writes whole responses at once. Keep-alive and pipelining work because
//! requests are read from one buffer and answered in order; anything it
//! cannot parse is answered with a status and a body saying why, then the
//! connection is closed.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::server::Shutdown;

/// Bounds that keep one admin client from holding memory or a task forever.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers.
    pub max_head: usize,
    /// How long a keep-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// How long a started request head may take to arrive.
    pub head_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: 16 * 1024,
            idle_timeout: Duration::from_secs(60),
            head_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad request: {0}")]
    Malformed(String),
    #[error("request head larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("request head not received in time")]
    Timeout,
    #[error("HTTP version {0} is not supported (use HTTP/1.1)")]
    Version(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl HttpError {
    /// The status a client gets for this error (`None`: nobody to tell).
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Malformed(_) => Some(400),
            HttpError::HeadTooLarge(_) => Some(431),
            HttpError::Timeout => Some(408),
            HttpError::Version(_) => Some(505),
            HttpError::Io(_) => None,
        }
    }
}

fn malformed(why: impl Into<String>) -> HttpError {
    HttpError::Malformed(why.into())
}

/// One parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without its query string.
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Whether the client asked to keep the connection open.
    pub keep_alive: bool,
    /// The request announced a body, which is never read: the connection
    /// is closed after the response instead.
    pub has_body: bool,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// A complete response; the body is sent with a `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A plain-text response; a newline is added so `curl` output ends cleanly.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Self::new(status, TEXT, body)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire; `head_only` for HEAD requests.
    fn encode(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Serves requests on one connection until the client leaves, asks to
/// close, errs, idles out, or shutdown begins.
pub async fn serve_connection<S, H>(mut io: S, limits: Limits, mut shutdown: Shutdown, handler: H)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(&Request) -> Response,
{
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let request = tokio::select! {
            r = read_request(&mut io, &mut buf, &limits) => r,
            _ = shutdown.wait() => return,
        };
        let request = match request {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                if let Some(status) = e.status() {
                    let resp = Response::text(status, e.to_string());
                    let _ = io.write_all(&resp.encode(false, false)).await;
                    linger_close(&mut io).await;
                }
                return;
            }
        };
        let response = handler(&request);
        let keep = request.keep_alive && !request.has_body;
        if io
            .write_all(&response.encode(keep, request.is_head()))
            .await
            .is_err()
        {
            return;
        }
        if !keep {
            linger_close(&mut io).await;
            return;
        }
    }
}

/// Closes our side, then reads (and drops) what the client still sends for
/// a moment, so unread request bytes do not turn the close into a reset
/// that could destroy the response before the client reads it.
pub(crate) async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    let _ = io.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    let drain = async {
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Reads the next request head. `Ok(None)`: the client left (or idled out)
/// between requests.
pub async fn read_request<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Request>, HttpError> {
    let started = tokio::time::Instant::now();
    loop {
        skip_blank_lines(buf);
        if let Some(end) = head_end(buf) {
            if end > limits.max_head {
                return Err(HttpError::HeadTooLarge(limits.max_head));
            }
            let head = buf.split_to(end);
            return parse_head(&head).map(Some);
        }
        if buf.len() > limits.max_head {
            return Err(HttpError::HeadTooLarge(limits.max_head));
        }
        let (deadline, idle) = if buf.is_empty() {
            (started + limits.idle_timeout, true)
        } else {
            (started + limits.head_timeout, false)
        };
        buf.reserve(1024);
        match tokio::time::timeout_at(deadline, io.read_buf(buf)).await {
            Err(_) if idle => return Ok(None),
            Err(_) => return Err(HttpError::Timeout),
            Ok(Ok(0)) if buf.is_empty() => return Ok(None),
            Ok(Ok(0)) => return Err(malformed("connection closed mid-request")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

/// RFC 9112 §2.2: a server should ignore empty lines before a request line
/// (some clients send a CRLF after a request).
fn skip_blank_lines(buf: &mut BytesMut) {
    loop {
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
        } else if buf.starts_with(b"\n") {
            buf.advance(1);
        } else {
            return;
        }
    }
}

/// The length of the head (through its empty line), if it is all here.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line_start > 0 && (line.is_empty() || line == b"\r") {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// Parses a request head (request line, headers, empty line). Strict where
/// laxness enables request smuggling: no folding, no space before a colon,
/// one Content-Length, not with Transfer-Encoding.
pub fn parse_head(head: &[u8]) -> Result<Request, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| malformed("request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let (method, target, minor) = parse_request_line(request_line)?;
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        headers.push(parse_header(line)?);
    }
    let mut req = Request {
        method,
        path: request_path(target)?,
        headers,
        keep_alive: minor == 1,
        has_body: false,
    };
    check_framing(&mut req, minor)?;
    Ok(req)
}

fn parse_request_line(line: &str) -> Result<(String, &str, u8), HttpError> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(malformed(
            "request line must be METHOD SP TARGET SP HTTP-VERSION",
        ));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(malformed("invalid method"));
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("invalid request target"));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if is_http_version(v) => return Err(HttpError::Version(v.to_owned())),
        _ => return Err(malformed("invalid HTTP version")),
    };
    Ok((method.to_owned(), target, minor))
}

fn is_http_version(v: &str) -> bool {
    let b = v.as_bytes();
    v.len() == 8
        && v.starts_with("HTTP/")
        && b[5].is_ascii_digit()
        && b[6] == b'.'
        && b[7].is_ascii_digit()
}

/// Origin form (`/metrics?x`) or absolute form (`http://host/metrics`);
/// the query string is dropped since no endpoint takes parameters.
fn request_path(target: &str) -> Result<String, HttpError> {
    let path = if target.starts_with('/') {
        target
    } else if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        rest.find('/').map_or("/", |i| &rest[i..])
    } else {
        return Err(malformed("request target must be a path"));
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    Ok(path.to_owned())
}

fn parse_header(line: &str) -> Result<(String, String), HttpError> {
    if line.starts_with([' ', '\t']) {
        return Err(malformed("obsolete header line folding"));
    }
    if line.contains('\r') {
        return Err(malformed("bare CR in header"));
    }
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| malformed("header line without a colon"))?;
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(malformed(format!("invalid header name {name:?}")));
    }
    Ok((
        name.to_ascii_lowercase(),
        value.trim_matches([' ', '\t']).to_owned(),
    ))
}

/// Host, message framing and persistence (RFC 9112 §3.2, §6, §9.3).
fn check_framing(req: &mut Request, minor: u8) -> Result<(), HttpError> {
    let hosts = req.headers.iter().filter(|(n, _)| n == "host").count();
    if minor == 1 && hosts != 1 {
        return Err(malformed(
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    let mut length: Option<u64> = None;
    for (_, v) in req.headers.iter().filter(|(n, _)| n == "content-length") {
        for part in v.split(',').map(str::trim) {
            let n: u64 = part
                .parse()
                .ok()
                .filter(|_| part.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| malformed("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(malformed("conflicting Content-Length headers"));
            }
            length = Some(n);
        }
    }
    let chunked = req.header("transfer-encoding").is_some();
    if chunked && length.is_some() {
        return Err(malformed("both Transfer-Encoding and Content-Length"));
    }
    req.has_body = chunked || length.is_some_and(|l| l > 0);
    for (_, v) in req.headers.iter().filter(|(n, _)| n == "connection") {
        for token in v.split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("close") {
                req.keep_alive = false;
            } else if token.eq_ignore_ascii_case("keep-alive") && minor == 0 {
                req.keep_alive = true;
            }
        }
    }
    Ok(())
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
