//! Parse → route (HTTP): what Attaché changes in the headers on the way
//! through: hop-by-hop headers are dropped (they describe one connection,
//! not the message), `X-Forwarded-*` say who asked and how, every request
//! gets an id, and a W3C `traceparent` is kept or started.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rand::RngCore;

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

/// Adds `X-Forwarded-For` (appended to what the app sent), and
/// `X-Forwarded-Proto`/`-Host` when the app did not set them.
pub fn add_forwarded(headers: &mut HeaderMap, peer: IpAddr, host: Option<&str>) {
    let ip = peer.to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
    }
}

/// The request's id: the app's, or a new random (UUIDv4-shaped) one.
pub fn request_id(headers: &mut HeaderMap, name: &HeaderName) -> HeaderValue {
    if let Some(v) = headers.get(name) {
        if !v.is_empty() {
            return v.clone();
        }
    }
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    let id = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    let v = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("0"));
    headers.insert(name.clone(), v.clone());
    v
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
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    let mut rng = rand::thread_rng();
    rng.fill_bytes(&mut trace);
    rng.fill_bytes(&mut span);
    // All-zero ids are invalid; one random byte forced non-zero suffices.
    trace[15] |= 1;
    span[7] |= 1;
    let value = format!("00-{}-{}-01", hex(&trace), hex(&span));
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(TRACEPARENT.clone(), v);
    }
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

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests;
