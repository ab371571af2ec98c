//! Test fixtures shared by the admin modules' unit tests (respond step).

use std::sync::Arc;

use crate::admin::{Admin, ListenerInfo};
use crate::config;
use crate::frontend::http::HttpContext;
use crate::frontend::postgres::PgContext;

/// `app`: a primary and a replica; `other`: one `auto` node, so no primary
/// until a probe answers (none will: nothing listens there).
pub const PG: &str = r#"
[postgres]
listen = "127.0.0.1:0"
min_idle = 0
[postgres.databases.app]
nodes = [{ addr = "127.0.0.1:1" }, { addr = "127.0.0.1:2", role = "replica" }]
[postgres.databases.other]
nodes = [{ addr = "127.0.0.1:3", role = "auto" }]
"#;

pub fn pg_context() -> Arc<PgContext> {
    let cfg = config::parse(PG).unwrap();
    Arc::new(PgContext::new(cfg.postgres.unwrap()).unwrap())
}

/// Two clusters: `payments` (two endpoints, the second weighted) behind a
/// prefix route, `api` (one endpoint, no retry budget at all) behind a
/// host route. Nothing listens at the endpoints; tests feed the counters.
pub const HTTP: &str = r#"
[http]
listen = "127.0.0.1:0"
[[http.routes]]
prefix = "/payments/"
cluster = "payments"
[[http.routes]]
host = "api.example.com"
cluster = "api"
[http.clusters.payments]
endpoints = ["127.0.0.1:1", "127.0.0.1:2 weight=3"]
[http.clusters.api]
endpoints = ["127.0.0.1:3"]
retry_budget = { percent = 0.0, min_per_second = 0 }
"#;

pub fn http_context_from(toml: &str) -> Arc<HttpContext> {
    let cfg = config::parse(toml).unwrap();
    Arc::new(HttpContext::new(cfg.http.unwrap()).unwrap())
}

pub fn http_context() -> Arc<HttpContext> {
    http_context_from(HTTP)
}

/// An admin serving `ctx` only, with the given listeners.
pub fn http_admin(ctx: Arc<HttpContext>, listeners: Vec<ListenerInfo>) -> Admin {
    let mut a = Admin::new(listeners, None, None, None);
    a.http = Arc::new(std::sync::RwLock::new(Some(ctx)));
    a
}
