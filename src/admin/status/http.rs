//! Respond (admin): the `http` section of `/status`: the HTTP egress
//! listener, its routes with their request counts, and each upstream
//! cluster's endpoints, pool and circuit breaker, read from the same live
//! counters as the `attache_http_*` metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use serde::Serialize;

use crate::core::http::endpoint::Endpoint;
use crate::core::http::stats::StatsSnapshot;
use crate::core::http::Cluster;
use crate::frontend::http::HttpContext;

/// Status classes, in the order of [`StatsSnapshot::classes`].
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Responses by status class: `{"1xx": 0, "2xx": 12, …}`.
pub type ClassCounts = BTreeMap<&'static str, u64>;

#[derive(Debug, Serialize)]
pub struct HttpStatus {
    /// Where the HTTP listener accepts (absent when not known, as in a
    /// context not started by the app).
    pub listen: Option<SocketAddr>,
    /// App connections open now.
    pub clients: usize,
    /// Requests no route matched (answered 404 by Attaché).
    pub unmatched: ClassCounts,
    /// In config order, which is match order.
    pub routes: Vec<HttpRouteInfo>,
    /// Keyed like `[http.clusters]`.
    pub clusters: BTreeMap<String, HttpClusterInfo>,
}

#[derive(Debug, Serialize)]
pub struct HttpRouteInfo {
    pub prefix: String,
    pub host: Option<String>,
    pub cluster: String,
    pub requests: ClassCounts,
    pub retries: u64,
    pub local_errors: u64,
}

#[derive(Debug, Serialize)]
pub struct HttpClusterInfo {
    pub endpoints: Vec<HttpEndpointInfo>,
    pub pool: HttpPoolInfo,
    pub active_requests: usize,
    pub pending_requests: usize,
    pub requests: ClassCounts,
    pub retries: u64,
    pub ejections: u64,
    pub overflows: u64,
    pub retry_budget_exhausted: u64,
    pub local_errors: u64,
}

#[derive(Debug, Serialize)]
pub struct HttpPoolInfo {
    /// Connections open, busy or idle.
    pub open: usize,
    pub idle: usize,
    /// Connections opened since start.
    pub opened_total: u64,
}

#[derive(Debug, Serialize)]
pub struct HttpEndpointInfo {
    /// The resolved address tries go to.
    pub addr: String,
    /// As configured: a DNS name or an IP literal.
    pub host: String,
    pub weight: u32,
    /// Not ejected and healthy: the balancer may pick it.
    pub available: bool,
    pub ejected: bool,
    /// The active health check's verdict (true without a health check).
    pub healthy: bool,
    pub outstanding: u32,
    /// The balancer's latency estimate.
    pub ewma_ms: f64,
    pub ejections: u64,
}

/// The snapshot of one HTTP context; `listen` comes from the admin's
/// listener list.
pub fn http_status(ctx: &HttpContext, listen: Option<SocketAddr>) -> HttpStatus {
    let routes = ctx
        .routes()
        .iter()
        .map(|r| {
            let snap = r.stats.snapshot();
            HttpRouteInfo {
                prefix: r.cfg.prefix.clone(),
                host: r.cfg.host.clone(),
                cluster: r.cluster.name.clone(),
                requests: classes(&snap),
                retries: snap.retries,
                local_errors: snap.local_errors,
            }
        })
        .collect();
    let now = Instant::now();
    HttpStatus {
        listen,
        clients: ctx.clients(),
        unmatched: classes(&ctx.unmatched.snapshot()),
        routes,
        clusters: ctx
            .clusters
            .iter()
            .map(|(name, c)| (name.clone(), cluster(c, now)))
            .collect(),
    }
}

fn classes(s: &StatsSnapshot) -> ClassCounts {
    CLASSES.iter().copied().zip(s.classes).collect()
}

fn cluster(c: &Cluster, now: Instant) -> HttpClusterInfo {
    let snap = c.stats.snapshot();
    HttpClusterInfo {
        endpoints: c.endpoints().iter().map(|e| endpoint(e, now)).collect(),
        pool: HttpPoolInfo {
            open: c.pool.open(),
            idle: c.pool.idle(),
            opened_total: c.pool.opened_total(),
        },
        active_requests: c.active_requests(),
        pending_requests: c.pending_requests(),
        requests: classes(&snap),
        retries: snap.retries,
        ejections: snap.ejections,
        overflows: snap.overflows,
        retry_budget_exhausted: c.budget.exhausted_total(),
        local_errors: snap.local_errors,
    }
}

fn endpoint(e: &Endpoint, now: Instant) -> HttpEndpointInfo {
    HttpEndpointInfo {
        addr: e.addr.to_string(),
        host: e.host.clone(),
        weight: e.weight,
        available: e.available(now),
        ejected: e.is_ejected(now),
        healthy: e.healthy(),
        outstanding: e.outstanding(),
        ewma_ms: e.ewma().as_nanos() as f64 / 1e6,
        ejections: e.ejections_total(),
    }
}
