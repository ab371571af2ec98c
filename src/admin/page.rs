//! Respond (admin): `/`, a live status page for people. It is one static
//! HTML document (inline CSS and JS, no external assets, nothing to build)
//! whose script polls `/status` every two seconds and renders it, with
//! rates computed from consecutive samples. The page itself holds no data,
//! so it is served without the admin token; the script sends the token to
//! `/status` as `Authorization: Bearer` when the page is opened as
//! `/?token=…` (the server never reads that query string: [`http`] drops
//! it before routing, so it is not logged either).
//!
//! [`http`]: super::http

use super::http::Response;

/// What `/` is served as.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The page, compiled in so the binary serves it without files on disk.
pub const HTML: &str = include_str!("page.html");

/// Inline script and style only, data only from this origin, and never
/// framed: the page loads nothing from elsewhere, so anything else is an
/// injection. `no-referrer` keeps a `?token=` in the address bar from
/// leaking should the page ever link out.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The response to `GET /` (and `HEAD /`).
pub fn response() -> Response {
    Response::new(200, CONTENT_TYPE, HTML)
        .with_header("Content-Security-Policy", CSP)
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("X-Content-Type-Options", "nosniff")
}

#[cfg(test)]
mod tests;
