//! Accept → respond (admin): the operations endpoint beside the proxied
//! listeners. It runs on the shared accept loop ([`crate::server::serve`],
//! with its own small connection limit), parses HTTP/1.1 in [`http`], and
//! answers from the live pools and clusters (Postgres, Redis and HTTP
//! egress): `/healthz` (the process is up), `/readyz` (it can serve: see
//! [`status::not_ready`]), `/metrics`
//! (Prometheus, see [`metrics`]), `/status` (JSON, see [`status`]) and `/`
//! (a live page rendering `/status` in a browser, see [`page`]).

mod control;
pub mod http;
pub mod metrics;
mod page;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info_span, warn, Instrument};

use crate::config::types::Secret;
use crate::frontend::http::HttpContext;
use crate::frontend::postgres::PgContext;
use crate::frontend::redis::RedisContext;
use crate::server::{App, Shutdown};
use http::{Limits, Request, Response};
pub use status::ListenerInfo;

/// Concurrent admin connections; more are answered 503 and closed. A few
/// scrapers and probes need a handful, and the bound keeps a misbehaving
/// client from eating file descriptors meant for the proxied listeners.
pub const MAX_CONNECTIONS: usize = 64;

/// What the admin endpoints read: the listeners and the frontends' shared
/// state, plus the optional bearer token.
pub struct Admin {
    pub listeners: Vec<ListenerInfo>,
    /// The Postgres context in force (a reload may add or remove it).
    pub postgres: Arc<std::sync::RwLock<Option<Arc<PgContext>>>>,
    /// The Redis context in force (a reload may replace it).
    pub redis: Arc<std::sync::RwLock<Option<Arc<RedisContext>>>>,
    /// The HTTP egress context in force (a reload may replace it).
    pub http: Arc<std::sync::RwLock<Option<Arc<HttpContext>>>>,
    /// The running accept loops, for listener addresses after a reload.
    pub live: Option<Arc<crate::live::Live>>,
    /// For `POST /reload`; set by the app once it exists.
    pub reloader: Option<Arc<crate::reload::Reloader>>,
    token: Option<Secret>,
    started: Instant,
    limits: Limits,
}

impl Admin {
    pub fn new(
        listeners: Vec<ListenerInfo>,
        postgres: Option<Arc<PgContext>>,
        redis: Option<Arc<RedisContext>>,
        token: Option<Secret>,
    ) -> Self {
        Self {
            listeners,
            postgres: Arc::new(std::sync::RwLock::new(postgres)),
            redis: Arc::new(std::sync::RwLock::new(redis)),
            http: Arc::new(std::sync::RwLock::new(None)),
            reloader: None,
            live: None,
            token,
            started: Instant::now(),
            limits: Limits::default(),
        }
    }

    /// The admin app for a running process: its contexts follow `live`
    /// (so reloads show), and reloads go through `reloader`. `listeners`
    /// are those of the proxied protocols; the admin's own is added.
    pub fn for_live(
        live: &Arc<crate::live::Live>,
        reloader: &Arc<crate::reload::Reloader>,
        own: SocketAddr,
        token: Option<Secret>,
    ) -> Self {
        let mut listeners = proxied_listeners(live);
        listeners.push(ListenerInfo {
            protocol: "admin",
            addr: own,
        });
        let mut admin = Admin::new(listeners, None, None, token);
        admin.live = Some(live.clone());
        admin.redis = live.redis_holder();
        admin.postgres = live.postgres_holder();
        admin.http = live.http_holder();
        admin.reloader = Some(reloader.clone());
        admin
    }

    /// Where the proxied listeners are now (a reload may move them), and
    /// this admin endpoint's own address.
    pub fn listeners(&self) -> Vec<ListenerInfo> {
        let Some(live) = &self.live else {
            return self.listeners.clone();
        };
        let mut now = proxied_listeners(live);
        now.extend(
            self.listeners
                .iter()
                .filter(|l| l.protocol == "admin")
                .cloned(),
        );
        now
    }

    /// The Redis context new clients are served with.
    pub fn redis(&self) -> Option<Arc<RedisContext>> {
        crate::live::get(&self.redis)
    }

    /// The Postgres context new clients are served with.
    pub fn postgres(&self) -> Option<Arc<PgContext>> {
        crate::live::get(&self.postgres)
    }

    /// The HTTP egress context new requests are served with.
    pub fn http(&self) -> Option<Arc<HttpContext>> {
        crate::live::get(&self.http)
    }

    /// Answers one request. `/healthz` is open to all (liveness probes
    /// carry no credentials), and so is `/`: the page holds no data, and
    /// its script sends the token to `/status` itself. Everything else
    /// wants the token when one is configured, and is checked before the
    /// path so an unauthenticated client learns nothing about which paths
    /// exist.
    pub fn respond(&self, req: &Request) -> Response {
        let get = matches!(req.method.as_str(), "GET" | "HEAD");
        let open: Option<fn() -> Response> = match req.path.as_str() {
            "/healthz" => Some(|| Response::text(200, "ok")),
            "/" => Some(page::response),
            _ => None,
        };
        if let Some(endpoint) = open {
            return if get {
                endpoint()
            } else {
                method_not_allowed(req)
            };
        }
        if !self.authorized(req) {
            return Response::text(401, "unauthorized: send Authorization: Bearer <token>")
                .with_header("WWW-Authenticate", "Bearer realm=\"attache\"");
        }
        if let Some(r) = self.control(req) {
            return r;
        }
        let endpoint: fn(&Self) -> Response = match req.path.as_str() {
            "/readyz" => Self::readyz,
            "/metrics" => Self::metrics,
            "/status" => Self::status,
            other => {
                return Response::text(
                    404,
                    format!("not found: {other} (try /, /healthz, /readyz, /metrics, /status; POST /reload, /pause[/db], /resume[/db])"),
                )
            }
        };
        if !get {
            return method_not_allowed(req);
        }
        endpoint(self)
    }

    fn readyz(&self) -> Response {
        let problems = status::not_ready(self);
        if problems.is_empty() {
            Response::text(200, status::ready_body(self))
        } else {
            Response::text(503, format!("not ready\n{}", problems.join("\n")))
        }
    }

    fn metrics(&self) -> Response {
        match metrics::render(self) {
            Ok(text) => Response::new(200, metrics::CONTENT_TYPE, text),
            Err(_) => Response::text(500, "could not encode metrics"),
        }
    }

    fn status(&self) -> Response {
        match serde_json::to_vec_pretty(&status::status(self)) {
            Ok(mut json) => {
                json.push(b'\n');
                Response::new(200, http::JSON, json)
            }
            Err(e) => Response::text(500, format!("could not encode status: {e}")),
        }
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(value) = req.header("authorization") else {
            return false;
        };
        let Some((scheme, given)) = value.split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes())
    }
}

/// The proxied protocols' listeners bound now, in a fixed order.
fn proxied_listeners(live: &crate::live::Live) -> Vec<ListenerInfo> {
    [
        ("postgres", crate::live::Slot::Postgres),
        ("redis", crate::live::Slot::Redis),
        ("http", crate::live::Slot::Http),
    ]
    .into_iter()
    .filter_map(|(protocol, slot)| live.addr(slot).map(|addr| ListenerInfo { protocol, addr }))
    .collect()
}

fn method_not_allowed(req: &Request) -> Response {
    Response::text(405, format!("method {} not allowed (use GET)", req.method))
        .with_header("Allow", "GET, HEAD")
}

/// Compares without an early exit, so response timing does not tell how
/// much of a guessed token was right (the length may still show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl App for Admin {
    fn protocol(&self) -> &'static str {
        "admin"
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, shutdown: Shutdown) {
        let span = info_span!("client", protocol = "admin", client.addr = %peer);
        async move {
            let _ = tcp.set_nodelay(true);
            let limits = self.limits;
            http::serve_connection(tcp, limits, shutdown, |req| {
                let resp = self.respond(req);
                debug!(method = %req.method, path = %req.path, status = resp.status, "admin request");
                resp
            })
            .await;
        }
        .instrument(span)
        .await
    }

    async fn reject(self: Arc<Self>, mut tcp: TcpStream, peer: SocketAddr) {
        warn!(client.addr = %peer, max = MAX_CONNECTIONS, "too many admin connections");
        let body = "too many admin connections\n";
        let resp = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            http::TEXT,
            body.len()
        );
        let _ = tcp.write_all(resp.as_bytes()).await;
        http::linger_close(&mut tcp).await;
    }
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
