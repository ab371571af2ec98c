//! Parse → route (HTTP): what Attaché changes in the headers on the way
//! through: hop-by-hop headers are dropped (they describe one connection,
//! not the message), `X-Forwarded-*` say who asked and how, every request
//! gets an id, and a W3C `traceparent` is kept or started.

use std::cell::RefCell;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use super::error::LocalError;
use crate::core::http::h1;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1), those named by
/// `Connection` too. An upgrade keeps `Connection: upgrade` and `Upgrade`,
/// which are the point of the request.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names (no hashing) says so.
    if !upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !(upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TRANSFER_ENCODING,
        &header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(n);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
        // `TE: trailers` is the one TE value that may pass (gRPC needs it).
        let trailers_only = headers
            .get(header::TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        if !trailers_only {
            headers.remove(header::TE);
        }
    }
}

/// Joins the `cookie` fields an HTTP/2 app may have split its Cookie
/// header into (RFC 9113 §8.2.3) into one, with "; ": HTTP/1.1 allows one
/// Cookie field (RFC 6265 §5.4), and an HTTP/2 upstream takes either.
pub fn join_cookies(headers: &mut HeaderMap) {
    let fields = headers.get_all(header::COOKIE);
    // Nearly every request: one field or none, nothing allocated.
    if fields.iter().nth(1).is_none() {
        return;
    }
    let parts: Vec<&[u8]> = fields.iter().map(HeaderValue::as_bytes).collect();
    let joined = HeaderValue::from_bytes(&parts.join(&b"; "[..]));
    // Joined valid values are valid; kept as they were if not.
    if let Ok(joined) = joined {
        headers.insert(header::COOKIE, joined);
    }
}

/// A response's transfer codings besides a final `chunked` (RFC 9112
/// §6.1), as one field value for the app: the upstream applied them (gzip,
/// say) and the app must undo them. `None` when there are none; `Err` with
/// the codings when `chunked` came before another (it cannot be re-applied
/// last). Call before [`strip_hop_by_hop`], which removes the field.
pub fn transfer_codings(headers: &HeaderMap) -> Result<Option<HeaderValue>, String> {
    let fields = headers.get_all(header::TRANSFER_ENCODING);
    let values = || fields.iter().map(HeaderValue::as_bytes);
    // Nearly every response: no field, or `chunked` alone; nothing
    // allocated.
    let mut codings = values().flat_map(h1::codings);
    match (codings.next(), codings.next()) {
        (None, _) if fields.iter().next().is_none() => return Ok(None),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => return Ok(None),
        _ => {}
    }
    let all: Vec<&[u8]> = values().flat_map(h1::codings).collect();
    if !h1::chunked_last(values()) {
        return Err(join(&all));
    }
    let kept: Vec<&[u8]> = all
        .into_iter()
        .filter(|c| !c.eq_ignore_ascii_case(b"chunked"))
        .collect();
    if kept.is_empty() {
        return Ok(None);
    }
    Ok(HeaderValue::from_str(&join(&kept)).ok())
}

/// Refuses a request body framed by more than one `chunked`. hyper has
/// already refused (400) one whose last coding is not `chunked`; a coding
/// before it (gzip, say) would be lost taking the chunking off, so, as
/// nginx does, it is not implemented (501), and `chunked` twice leaves the
/// length unknown (400, RFC 9112 §6.3). Either way the app connection is
/// not reused.
pub fn request_framing(headers: &HeaderMap) -> Result<(), LocalError> {
    let fields = headers.get_all(header::TRANSFER_ENCODING);
    let values = || fields.iter().map(HeaderValue::as_bytes);
    let mut codings = values().flat_map(h1::codings);
    // Nearly every request: no field; a streamed one: `chunked` alone.
    match (codings.next(), codings.next()) {
        (None, _) if fields.iter().next().is_none() => return Ok(()),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => return Ok(()),
        _ => {}
    }
    let all: Vec<&[u8]> = values().flat_map(h1::codings).collect();
    let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
    let once = all.iter().filter(|c| chunked(c)).count() == 1;
    let once_last = once && all.last().is_some_and(|c| chunked(c));
    match once_last {
        true => Err(LocalError::RequestTransferCoding(join(&all))),
        false => Err(LocalError::BadRequest(format!(
            "transfer-encoding {:?}: chunked must be the last coding, once",
            join(&all)
        ))),
    }
}

fn join(codings: &[&[u8]]) -> String {
    let text: Vec<_> = codings.iter().map(|c| String::from_utf8_lossy(c)).collect();
    text.join(", ")
}

/// Names that are hop-by-hop, or that may name others (`Connection`).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::TE
        || name == header::PROXY_AUTHORIZATION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Adds `X-Forwarded-For` (appended to what the app sent), and
/// `X-Forwarded-Proto`/`-Host` when the app did not set them.
///
/// `peer` is the app's address as a header value, made once per connection.
pub fn add_forwarded(headers: &mut HeaderMap, peer: &HeaderValue, host: Option<&HeaderValue>) {
    let prev = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.trim().is_empty());
    let xff = match prev.and_then(|p| Some(format!("{p}, {}", peer.to_str().ok()?))) {
        Some(joined) => HeaderValue::from_str(&joined).unwrap_or_else(|_| peer.clone()),
        None => peer.clone(),
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        if let Some(v) = host {
            headers.insert(X_FORWARDED_HOST.clone(), v.clone());
        }
    }
}

/// The app's address as an `X-Forwarded-For` element.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The request's id: the app's, or a new random (UUIDv4-shaped) one.
pub fn request_id(headers: &mut HeaderMap, name: &HeaderName) -> HeaderValue {
    if let Some(v) = headers.get(name) {
        if !v.is_empty() {
            return v.clone();
        }
    }
    let out = new_request_id();
    let v = HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("0"));
    headers.insert(name.clone(), v.clone());
    v
}

thread_local! {
    /// Ids need to be unique, not secret: a small fast generator per
    /// thread, seeded from the OS-seeded one (which costs several times
    /// more per call, on every proxied request).
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(rand::thread_rng())
        .unwrap_or_else(|_| SmallRng::from_entropy()));
}

fn fill_random(out: &mut [u8]) {
    IDS.with(|rng| rng.borrow_mut().fill_bytes(out));
}

/// A new random request id, UUIDv4-shaped (8-4-4-4-12 hex digits).
pub fn new_request_id() -> [u8; 36] {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    // Written in place (no String per request).
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
        at += 2;
    }
    out
}

/// Keeps a valid `traceparent`; replaces a malformed one and starts a trace
/// when there is none, so every upstream call can be correlated.
pub fn ensure_traceparent(headers: &mut HeaderMap) {
    let valid = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(valid_traceparent);
    if valid {
        return;
    }
    let out = new_traceparent();
    if let Ok(v) = HeaderValue::from_bytes(&out) {
        headers.insert(TRACEPARENT.clone(), v);
    }
}

/// A new `traceparent` starting a trace: random trace and span ids.
pub fn new_traceparent() -> [u8; 55] {
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    fill_random(&mut trace);
    fill_random(&mut span);
    // All-zero ids are invalid; one random byte forced non-zero suffices.
    trace[15] |= 1;
    span[7] |= 1;
    // 00-<32 hex>-<16 hex>-01, written in place.
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    for (i, byte) in trace.iter().chain(span.iter()).enumerate() {
        let at = if i < 16 { 3 + 2 * i } else { 36 + 2 * (i - 16) };
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

/// `version-traceid-parentid-flags` (W3C Trace Context), lowercase hex,
/// ids not all zero, version not `ff`.
pub fn valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.trim().split('-').collect();
    if parts.len() < 4 {
        return false;
    }
    let hexlen = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    hexlen(parts[0], 2)
        && parts[0] != "ff"
        && (parts[0] != "00" || parts.len() == 4)
        && hexlen(parts[1], 32)
        && nonzero(parts[1])
        && hexlen(parts[2], 16)
        && nonzero(parts[2])
        && hexlen(parts[3], 2)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests;
