//! Parse → route (HTTP/1.1 pass-through): the app's request head read in
//! place, and the heads Attaché writes from it, without header maps: the
//! upstream request (the app's fields as sent, minus hop-by-hop ones, plus
//! `X-Forwarded-*`, a request id and a `traceparent`), and the response to
//! the app (the upstream's fields, minus hop-by-hop ones, plus the request
//! id). The rules are those of [`super::super::headers`], which does the
//! same on header maps for requests hyper serves.
//!
//! Anything unusual makes the request not ours ([`Parsed::NotForUs`]) and
//! hyper serves the connection from then on: other HTTP versions, bodies
//! not framed by one `Content-Length`, `Expect`, upgrades, `CONNECT`,
//! absolute-form targets, a missing or repeated `Host`, parse errors.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::{Method, StatusCode};

use crate::core::http::h1::{parse_length, RawHead};

/// Most request fields taken on this path (hyper's own limit too).
pub const MAX_FIELDS: usize = 100;
/// Most `Connection` fields taken on this path.
const MAX_CONNECTION: usize = 4;

/// What a field means to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Other,
    Host,
    ContentLength,
    Connection,
    /// Always hop-by-hop: keep-alive, proxy-connection, proxy-authorization.
    HopByHop,
    /// Hop-by-hop, and in a request hyper's to handle: transfer-encoding
    /// (a streamed body), upgrade.
    Streamed,
    Te,
    Expect,
    ForwardedFor,
    ForwardedProto,
    ForwardedHost,
    Traceparent,
    RequestId,
}

fn kind(name: &[u8], request_id: &[u8]) -> Kind {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    // Length first: most names are none of these and fail one compare.
    let k = match name.len() {
        2 if is("te") => Kind::Te,
        4 if is("host") => Kind::Host,
        6 if is("expect") => Kind::Expect,
        7 if is("upgrade") => Kind::Streamed,
        10 if is("connection") => Kind::Connection,
        10 if is("keep-alive") => Kind::HopByHop,
        11 if is("traceparent") => Kind::Traceparent,
        14 if is("content-length") => Kind::ContentLength,
        15 if is("x-forwarded-for") => Kind::ForwardedFor,
        16 if is("proxy-connection") => Kind::HopByHop,
        16 if is("x-forwarded-host") => Kind::ForwardedHost,
        17 if is("transfer-encoding") => Kind::Streamed,
        17 if is("x-forwarded-proto") => Kind::ForwardedProto,
        19 if is("proxy-authorization") => Kind::HopByHop,
        _ => Kind::Other,
    };
    if k == Kind::Other && name.eq_ignore_ascii_case(request_id) {
        return Kind::RequestId;
    }
    k
}

/// Offsets of a name and value in the head, and what the name means.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
    kind: Kind,
}

/// A request head this path serves, as offsets into the read buffer.
#[derive(Debug)]
pub struct ReqHead {
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub method: Method,
    target: (u32, u32),
    host: (u32, u32),
    /// One small allocation: a fixed array here would be zeroed and
    /// copied on every request.
    fields: Vec<Field>,
    pub content_length: usize,
    /// The app asked to close after this exchange.
    pub close: bool,
    connection: [usize; MAX_CONNECTION],
    connections: usize,
    forwarded_for: Option<usize>,
    request_id: Option<usize>,
    traceparent_ok: bool,
}

/// What the front of the read buffer holds.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// Something hyper should handle (see the module doc).
    NotForUs,
    Complete(ReqHead),
}

/// Reads the request head at the front of `buf`.
pub fn parse(buf: &[u8], request_id: &[u8]) -> Parsed {
    // Uninitialized: zeroing the slots costs more than parsing a few fields.
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotForUs,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::NotForUs;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::NotForUs;
    };
    // A fragment never goes on the wire; hyper drops it, so let hyper.
    if method == Method::CONNECT || !path.starts_with('/') || path.contains('#') {
        return Parsed::NotForUs;
    }
    let base = buf.as_ptr() as usize;
    // Offsets, not slices: the head stays in the buffer it was read into.
    let span = |s: &[u8]| {
        let at = u32::try_from(s.as_ptr() as usize - base).unwrap_or(u32::MAX);
        (at, u32::try_from(s.len()).unwrap_or(0))
    };
    let mut head = ReqHead {
        len,
        method,
        target: span(path.as_bytes()),
        host: (0, 0),
        fields: Vec::with_capacity(req.headers.len()),
        content_length: 0,
        close: false,
        connection: [0; MAX_CONNECTION],
        connections: 0,
        forwarded_for: None,
        request_id: None,
        traceparent_ok: false,
    };
    let mut hosts = 0;
    let mut lengths = 0;
    for (i, h) in req.headers.iter().enumerate() {
        let k = kind(h.name.as_bytes(), request_id);
        head.fields.push(Field {
            name: span(h.name.as_bytes()),
            value: span(h.value),
            kind: k,
        });
        if !head.note(i, k, h.value, &mut hosts, &mut lengths) {
            return Parsed::NotForUs;
        }
    }
    if hosts != 1 || lengths > 1 {
        return Parsed::NotForUs;
    }
    if head.connections > 0 {
        // Named by `Connection`, these are hop-by-hop too: dropped, and
        // the proxy's own take their place.
        if head.named_by_connection(buf, b"traceparent") {
            head.traceparent_ok = false;
        }
        if head.named_by_connection(buf, b"x-forwarded-for") {
            head.forwarded_for = None;
        }
    }
    Parsed::Complete(head)
}

impl ReqHead {
    /// Takes note of field `i`; false when the request is not ours.
    fn note(
        &mut self,
        i: usize,
        k: Kind,
        value: &[u8],
        hosts: &mut u32,
        lengths: &mut u32,
    ) -> bool {
        match k {
            Kind::Host => {
                *hosts += 1;
                self.host = self.fields[i].value;
                std::str::from_utf8(value).is_ok()
            }
            Kind::ContentLength => {
                *lengths += 1;
                let n = parse_length(value).and_then(|n| usize::try_from(n).ok());
                n.map(|n| self.content_length = n).is_some()
            }
            Kind::Connection => {
                if self.connections == MAX_CONNECTION {
                    return false;
                }
                self.connection[self.connections] = i;
                self.connections += 1;
                self.close |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"close"));
                // An upgrade is hyper's to hand over.
                !tokens(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"))
            }
            Kind::Streamed | Kind::Expect => false,
            Kind::ForwardedFor => {
                if self.forwarded_for.is_none() && !value.trim_ascii().is_empty() {
                    self.forwarded_for = Some(i);
                }
                true
            }
            Kind::Traceparent => {
                // The first one counts, as `HeaderMap::get` would have it.
                let first = !self.fields[..i].iter().any(|f| f.kind == Kind::Traceparent);
                if first {
                    self.traceparent_ok = std::str::from_utf8(value)
                        .is_ok_and(super::super::headers::valid_traceparent);
                }
                true
            }
            Kind::RequestId => {
                // The first one counts; empty, a new id replaces them all.
                let first = !self.fields[..i].iter().any(|f| f.kind == Kind::RequestId);
                if first && !value.is_empty() {
                    self.request_id = Some(i);
                }
                true
            }
            Kind::HopByHop
            | Kind::Te
            | Kind::ForwardedProto
            | Kind::ForwardedHost
            | Kind::Other => true,
        }
    }

    fn slice<'a>(&self, buf: &'a [u8], (at, len): (u32, u32)) -> &'a [u8] {
        let (at, len) = (at as usize, len as usize);
        buf.get(at..at + len).unwrap_or_default()
    }

    /// The request target as sent (origin form: path and query).
    pub fn target<'a>(&self, buf: &'a [u8]) -> &'a str {
        std::str::from_utf8(self.slice(buf, self.target)).unwrap_or("/")
    }

    /// The `Host` field (checked to be UTF-8 by [`parse`]).
    pub fn host<'a>(&self, buf: &'a [u8]) -> &'a str {
        std::str::from_utf8(self.slice(buf, self.host)).unwrap_or("")
    }

    /// The app's request id, if it sent one.
    pub fn request_id<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        self.request_id
            .map(|i| self.slice(buf, self.fields[i].value))
    }

    /// Whether the app's `traceparent` goes upstream as it is (else
    /// [`Added::traceparent`] does).
    pub fn keeps_traceparent(&self) -> bool {
        self.traceparent_ok
    }

    /// Whether a `Connection` field names `name` (making it hop-by-hop).
    fn named_by_connection(&self, buf: &[u8], name: &[u8]) -> bool {
        self.connection[..self.connections].iter().any(|&i| {
            tokens(self.slice(buf, self.fields[i].value)).any(|t| t.eq_ignore_ascii_case(name))
        })
    }

    /// Writes the upstream request's fields (no `Host`, no
    /// `Content-Length`: [`crate::core::http::h1`] writes those).
    pub fn write_fields(&self, buf: &[u8], out: &mut BytesMut, add: &Added<'_>) {
        let (mut proto, mut forwarded_host) = (false, false);
        for f in &self.fields {
            let (name, value) = (self.slice(buf, f.name), self.slice(buf, f.value));
            let keep = match f.kind {
                k @ (Kind::Other | Kind::ForwardedProto | Kind::ForwardedHost) => {
                    let keep = self.connections == 0 || !self.named_by_connection(buf, name);
                    proto |= keep && k == Kind::ForwardedProto;
                    forwarded_host |= keep && k == Kind::ForwardedHost;
                    keep
                }
                Kind::RequestId => self.request_id.is_some(),
                Kind::Traceparent => self.traceparent_ok,
                // `TE: trailers` is the one TE value that may pass.
                Kind::Te => {
                    value.eq_ignore_ascii_case(b"trailers")
                        && (self.connections == 0 || !self.named_by_connection(buf, b"te"))
                }
                _ => false,
            };
            if keep {
                field(out, name, value);
            }
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        if let Some(i) = self.forwarded_for {
            out.extend_from_slice(self.slice(buf, self.fields[i].value));
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(add.peer);
        out.extend_from_slice(b"\r\n");
        if !proto {
            out.extend_from_slice(b"x-forwarded-proto: http\r\n");
        }
        if !forwarded_host {
            field(out, b"x-forwarded-host", self.slice(buf, self.host));
        }
        if self.request_id.is_none() {
            field(out, add.request_id_name, add.request_id);
        }
        if !self.traceparent_ok {
            field(out, b"traceparent", add.traceparent);
        }
    }

    /// The number of fields the app sent.
    #[cfg(test)]
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }
}

/// What Attaché adds to a request, made once per request.
pub struct Added<'a> {
    /// The app's address.
    pub peer: &'a [u8],
    pub request_id_name: &'a [u8],
    /// Used when the app sent no id.
    pub request_id: &'a [u8],
    /// Used when the app sent no valid `traceparent`.
    pub traceparent: &'a [u8],
}

fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The comma-separated tokens of a field value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The response head for the app: status line, the upstream's fields
/// minus hop-by-hop ones, the request id unless the upstream echoed one,
/// and the framing Attaché uses (`chunked` when the upstream's length is
/// not known up front).
pub fn write_response_head(
    out: &mut BytesMut,
    head: &RawHead,
    chunked: bool,
    request_id: (&[u8], &[u8]),
    close: bool,
) {
    write_status(out, head.status);
    // Names the upstream's `Connection` fields make hop-by-hop, gathered
    // once; `keep-alive` and `close` (the usual ones) name nothing kept.
    let mut listed: [&[u8]; 8] = [&[]; 8];
    let mut n = 0;
    for (_, v) in head
        .fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
    {
        for t in tokens(v) {
            if !t.eq_ignore_ascii_case(b"keep-alive") && !t.eq_ignore_ascii_case(b"close") {
                // More than fit: the rest are checked by a scan.
                listed[n.min(7)] = t;
                n += 1;
            }
        }
    }
    let named = |name: &[u8]| {
        if n <= listed.len() {
            return listed[..n].iter().any(|t| t.eq_ignore_ascii_case(name));
        }
        head.fields()
            .filter(|(f, _)| f.eq_ignore_ascii_case(b"connection"))
            .any(|(_, v)| tokens(v).any(|t| t.eq_ignore_ascii_case(name)))
    };
    let (mut has_id, mut has_date) = (false, false);
    // Transfer codings besides chunked (rare): written before Attaché's.
    let mut coded = false;
    for (name, value) in head.fields() {
        has_date |= name.eq_ignore_ascii_case(b"date");
        let keep = match kind(name, request_id.0) {
            Kind::Other
            | Kind::ForwardedFor
            | Kind::ForwardedProto
            | Kind::ForwardedHost
            | Kind::Traceparent
            | Kind::Host
            | Kind::Expect => !named(name),
            Kind::RequestId => {
                has_id = true;
                true
            }
            Kind::ContentLength => !chunked,
            Kind::Te => value.eq_ignore_ascii_case(b"trailers"),
            Kind::Streamed => {
                // Upgrade's name is shorter.
                coded |= name.len() == 17 && tokens(value).any(|t| !is_chunked(t));
                false
            }
            Kind::Connection | Kind::HopByHop => false,
        };
        if keep {
            field(out, name, value);
        }
    }
    if !has_id {
        field(out, request_id.0, request_id.1);
    }
    if !has_date {
        // RFC 9110 §6.6.1: a recipient with a clock adds the missing Date.
        write_date(out);
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: ");
        if coded {
            write_codings(out, head);
        }
        out.extend_from_slice(b"chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The upstream's codings besides chunked, each followed by ", ": they
/// stay, before Attaché's chunking (RFC 9112 §6.1), as the app must still
/// undo them (gzip, say). `Framing` refused a `chunked` before them.
fn write_codings(out: &mut BytesMut, head: &RawHead) {
    for (_, value) in head
        .fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
    {
        for coding in tokens(value).filter(|&c| !is_chunked(c)) {
            out.extend_from_slice(coding);
            out.extend_from_slice(b", ");
        }
    }
}

fn is_chunked(coding: &[u8]) -> bool {
    coding.eq_ignore_ascii_case(b"chunked")
}

/// `date: <now>` (IMF-fixdate).
pub fn write_date(out: &mut BytesMut) {
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    field(out, b"date", now.as_bytes());
}

/// `HTTP/1.1 <code> <reason>`.
pub fn write_status(out: &mut BytesMut, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
