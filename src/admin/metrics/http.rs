//! Respond (admin): the HTTP egress families of `/metrics`, read at scrape
//! time from the counters the route → backend steps keep
//! (`core::http::stats`, the clusters' pools, budgets and endpoints).
//!
//! Labels: `route` is the route's host and prefix as configured
//! (`/payments/`, `api.example.com/`; `""` for requests no route matched),
//! `cluster` the `[http.clusters]` key, `endpoint` the resolved address,
//! `class` the status class (`2xx`, …).

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Unit;

use super::{Histograms, Labels, Scrape};
use crate::admin::status::http::CLASSES;
use crate::core::http::stats::{LatencySnapshot, StatsSnapshot, LATENCY_BUCKETS_MICROS};
use crate::frontend::http::{HttpContext, RouteEntry};

impl Histograms {
    fn push_latency(&mut self, labels: Labels, l: &LatencySnapshot) {
        let bounds = LATENCY_BUCKETS_MICROS
            .iter()
            .map(|&b| b as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY));
        let buckets = bounds.zip(l.buckets.iter().copied()).collect();
        self.0.push((labels, l.sum_micros as f64 / 1e6, buckets));
    }
}

/// The `route` label of a route: its host (if any) then its prefix.
pub fn route_label(r: &RouteEntry) -> String {
    format!("{}{}", r.cfg.host.as_deref().unwrap_or(""), r.cfg.prefix)
}

/// Per-route snapshots keyed by `(route, cluster)` labels, in config
/// order. A route shadowed by an earlier one with the same host and prefix
/// never matches; its zeros are folded into the first so each series
/// appears once. The unmatched requests come last, as `("", "")`.
fn route_snapshots(ctx: &HttpContext) -> Vec<((String, String), StatsSnapshot)> {
    let mut out: Vec<((String, String), StatsSnapshot)> = Vec::new();
    for r in ctx.routes() {
        let key = (route_label(r), r.cluster.name.clone());
        let snap = r.stats.snapshot();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, acc)) => add(acc, &snap),
            None => out.push((key, snap)),
        }
    }
    out.push(((String::new(), String::new()), ctx.unmatched.snapshot()));
    out
}

fn add(acc: &mut StatsSnapshot, s: &StatsSnapshot) {
    for (a, b) in acc.classes.iter_mut().zip(s.classes) {
        *a += b;
    }
    for (a, b) in acc.latency.buckets.iter_mut().zip(&s.latency.buckets) {
        *a += b;
    }
    acc.latency.sum_micros += s.latency.sum_micros;
    acc.local_errors += s.local_errors;
    acc.retries += s.retries;
}

/// Every HTTP egress family.
pub(super) fn families(s: &mut Scrape, ctx: &HttpContext) {
    let clients = Gauge::<u64, AtomicU64>::default();
    clients.set(ctx.clients() as u64);
    s.registry.register(
        "http_clients",
        "App connections open to the HTTP listener",
        clients,
    );
    routes(s, ctx);
    clusters(s, ctx);
    endpoints(s, ctx, Instant::now());
}

/// Requests and latency per route. Every class is listed for a route (zeros
/// included, so rates exist from the first scrape); for unmatched requests,
/// which Attaché answers 404 itself, `4xx` and any other non-zero class.
fn routes(s: &mut Scrape, ctx: &HttpContext) {
    let requests = s.counter(
        "http_requests",
        "Requests answered per route, by status class (route \"\": no route matched)",
    );
    let mut latency = Histograms::default();
    for ((route, cluster), snap) in route_snapshots(ctx) {
        let unmatched = route.is_empty();
        let labels = vec![("route", route), ("cluster", cluster)];
        for (class, n) in CLASSES.iter().zip(snap.classes) {
            if unmatched && n == 0 && *class != "4xx" {
                continue;
            }
            let mut l = labels.clone();
            l.push(("class", (*class).to_owned()));
            requests.get_or_create(&l).inc_by(n);
        }
        latency.push_latency(labels, &snap.latency);
    }
    s.registry.register_with_unit(
        "http_request_duration",
        "From a request's arrival to its response headers, retries included, per route",
        Unit::Seconds,
        latency,
    );
}

/// Per-cluster counters, pool and circuit-breaker gauges.
fn clusters(s: &mut Scrape, ctx: &HttpContext) {
    let requests = s.counter(
        "http_cluster_requests",
        "Requests answered per cluster, by status class",
    );
    let mut latency = Histograms::default();
    let counters = [
        ("http_retries", "Tries repeated after a failed one"),
        (
            "http_ejections",
            "Endpoints ejected after consecutive failures",
        ),
        (
            "http_overflows",
            "Requests refused by the circuit breaker (max_requests, max_pending_requests, max_connections)",
        ),
        (
            "http_retry_budget_exhausted",
            "Retries refused because the cluster's retry budget was spent",
        ),
        (
            "http_local_errors",
            "Requests Attaché answered itself (timeouts, connect failures, overflows, …)",
        ),
        (
            "http_upstream_connects",
            "Upstream connections opened",
        ),
    ]
    .map(|(name, help)| s.counter(name, help));
    let conns = s.gauge(
        "http_upstream_connections",
        "Upstream connections open now, by state (idle: pooled HTTP/1.1 ones; active: the rest, HTTP/2 ones included)",
    );
    let active = s.gauge(
        "http_active_requests",
        "Requests in flight to the cluster (holding a circuit-breaker slot)",
    );
    let pending = s.gauge(
        "http_pending_requests",
        "Requests waiting for a circuit-breaker slot",
    );
    for (name, c) in &ctx.clusters {
        let labels = vec![("cluster", name.clone())];
        let snap = c.stats.snapshot();
        for (class, n) in CLASSES.iter().zip(snap.classes) {
            let mut l = labels.clone();
            l.push(("class", (*class).to_owned()));
            requests.get_or_create(&l).inc_by(n);
        }
        latency.push_latency(labels.clone(), &snap.latency);
        let values = [
            snap.retries,
            snap.ejections,
            snap.overflows,
            c.budget.exhausted_total(),
            snap.local_errors,
            c.pool.opened_total(),
        ];
        for (family, n) in counters.iter().zip(values) {
            family.get_or_create(&labels).inc_by(n);
        }
        let (open, idle) = (c.pool.open(), c.pool.idle());
        for (state, n) in [("active", open.saturating_sub(idle)), ("idle", idle)] {
            let mut l = labels.clone();
            l.push(("state", state.to_owned()));
            conns.get_or_create(&l).set(n as u64);
        }
        active
            .get_or_create(&labels)
            .set(c.active_requests() as u64);
        pending
            .get_or_create(&labels)
            .set(c.pending_requests() as u64);
    }
    s.registry.register_with_unit(
        "http_cluster_duration",
        "From a request's arrival to its response headers, retries included, per cluster",
        Unit::Seconds,
        latency,
    );
}

/// Per-endpoint health and load, as the balancer sees them at `now`.
fn endpoints(s: &mut Scrape, ctx: &HttpContext, now: Instant) {
    let up = s.gauge(
        "http_endpoint_up",
        "1 when the endpoint may take requests (not ejected, passing health checks)",
    );
    let outstanding = s.gauge(
        "http_endpoint_outstanding",
        "Tries in flight to the endpoint",
    );
    let ejected = s.gauge(
        "http_endpoint_ejected",
        "1 while the endpoint is ejected after consecutive failures",
    );
    let ejections = s.counter("http_endpoint_ejections", "Times the endpoint was ejected");
    for c in ctx.clusters.values() {
        for e in c.endpoints().iter() {
            let labels = vec![
                ("cluster", c.name.clone()),
                ("endpoint", e.addr.to_string()),
            ];
            up.get_or_create(&labels).set(e.available(now).into());
            outstanding
                .get_or_create(&labels)
                .set(e.outstanding().into());
            ejected.get_or_create(&labels).set(e.is_ejected(now).into());
            ejections.get_or_create(&labels).inc_by(e.ejections_total());
        }
    }
}
