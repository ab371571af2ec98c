//! Respond (admin): `/metrics`, the Prometheus view of the live pools and
//! clusters. Nothing is recorded twice: each scrape builds a fresh registry
//! from the counters and gauges the core already keeps (atomics read with
//! relaxed loads), so the numbers cannot drift from what `/status` shows.
//!
//! Families the client library has no live-value type for (a histogram
//! over atomics, an info per listener) are encoded by the small
//! [`Histograms`] and [`Infos`] types below.
//!
//! Label `database` on pool series is the server-side database name (pools
//! are keyed by it); on node and cluster series it is the config key under
//! `[postgres.databases]` (clusters are keyed by it).
//!
//! The HTTP egress families (`attache_http_*`) are in the `http` child
//! module.

mod http;

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::status::redis_nodes;
use super::Admin;
use crate::core::pg::cluster::{Cluster, NodeStatus};
use crate::core::pg::pool::{WaitSnapshot, WAIT_BUCKETS_MICROS};
use crate::core::pg::PgPool;
use crate::core::redis::{Node, Topology};
use crate::frontend::postgres::PgContext;
use crate::frontend::redis::RedisContext;

/// What Prometheus is told the exposition is.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
type CounterU = Family<Labels, Counter<u64, AtomicU64>>;
type GaugeU = Family<Labels, Gauge<u64, AtomicU64>>;
type GaugeF = Family<Labels, Gauge<f64, AtomicU64>>;

/// A histogram family read from atomics at scrape time: per label set,
/// the sum in seconds and per-bucket (not cumulative) counts, the last
/// bucket being `+Inf`.
#[derive(Debug, Default)]
struct Histograms(Vec<(Labels, f64, Buckets)>);

/// `(upper bound, observations in this bucket alone)`, ending with `+Inf`.
type Buckets = Vec<(f64, u64)>;

impl Histograms {
    fn push_wait(&mut self, labels: Labels, w: &WaitSnapshot) {
        let bounds = WAIT_BUCKETS_MICROS
            .iter()
            .map(|&b| b as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY));
        let buckets = bounds.zip(w.buckets).collect();
        self.0.push((labels, w.sum_micros as f64 / 1e6, buckets));
    }
}

impl EncodeMetric for Histograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, sum, buckets) in &self.0 {
            let count = buckets.iter().map(|(_, n)| n).sum();
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(*sum, count, buckets, None)?;
        }
        Ok(())
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// An info family with one sample per label set (the library's `Info`
/// holds exactly one).
#[derive(Debug, Default)]
struct Infos(Vec<Labels>);

impl EncodeMetric for Infos {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for labels in &self.0 {
            encoder.encode_info(labels)?;
        }
        Ok(())
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Info
    }
}

/// Registers families in one registry; `unit` is appended to the name by
/// the encoder, `_total` to counters.
struct Scrape {
    registry: Registry,
}

impl Scrape {
    fn family<M: Clone + prometheus_client::registry::Metric>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        family: M,
    ) -> M {
        match unit {
            Some(u) => self
                .registry
                .register_with_unit(name, help, u, family.clone()),
            None => self.registry.register(name, help, family.clone()),
        }
        family
    }
    fn counter(&mut self, name: &str, help: &str) -> CounterU {
        self.family(name, help, None, CounterU::default())
    }
    fn gauge(&mut self, name: &str, help: &str) -> GaugeU {
        self.family(name, help, None, GaugeU::default())
    }
    fn seconds_gauge(&mut self, name: &str, help: &str) -> GaugeF {
        self.family(name, help, Some(Unit::Seconds), GaugeF::default())
    }
    fn bytes_gauge(&mut self, name: &str, help: &str) -> GaugeU {
        self.family(name, help, Some(Unit::Bytes), GaugeU::default())
    }
}

/// The whole exposition, OpenMetrics text ending in `# EOF`.
pub fn render(admin: &Admin) -> Result<String, std::fmt::Error> {
    let mut s = Scrape {
        registry: Registry::with_prefix("attache"),
    };
    s.registry.register(
        "build",
        "Attaché build information",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_owned())]),
    );
    listeners(&mut s, admin);
    if let Some(reloader) = &admin.reloader {
        reloads(&mut s, reloader);
    }
    if let Some(pg) = &admin.postgres() {
        pools(&mut s, &pg.pools.all());
        pg_clients(&mut s, pg);
        let owned = pg.clusters();
        let clusters: Vec<(&str, &std::sync::Arc<Cluster>)> =
            owned.iter().map(|(k, c)| (k.as_str(), c)).collect();
        nodes(&mut s, &clusters);
    }
    if let Some(redis) = &admin.redis() {
        redis_backends(&mut s, redis);
        redis_node_counters(&mut s, redis);
    }
    if let Some(ctx) = &admin.http() {
        http::families(&mut s, ctx);
    }
    let mut out = String::new();
    encode(&mut out, &s.registry)?;
    Ok(out)
}

fn pools(s: &mut Scrape, pools: &[std::sync::Arc<PgPool>]) {
    let conns = s.gauge(
        "pg_pool_server_connections",
        "Server connections of a pool by state (active: checked out, idle: ready)",
    );
    let max = s.gauge(
        "pg_pool_max_server_connections",
        "The pool's size limit (pool_size)",
    );
    let waiting = s.gauge(
        "pg_pool_clients_waiting",
        "Checkouts waiting for a server connection",
    );
    let checkouts = s.counter("pg_pool_checkouts", "Server connection checkouts");
    let waits = s.counter(
        "pg_pool_checkout_waits",
        "Checkouts that found no idle connection and had to wait or connect",
    );
    let mut wait_hist = Histograms::default();
    let timeouts = s.counter(
        "pg_pool_checkout_timeouts",
        "Checkouts that gave up after checkout_timeout",
    );
    let connect_errors = s.counter(
        "pg_pool_connect_errors",
        "Failed attempts to open a server connection",
    );
    let transactions = s.counter(
        "pg_pool_transactions",
        "Transactions and simple queries completed (ReadyForQuery relayed)",
    );
    let discarded = s.counter(
        "pg_pool_discarded",
        "Server connections dropped because their state was unknown",
    );
    let bytes = s.counter(
        "pg_pool_bytes",
        "Bytes relayed by sessions on this pool, by direction (to_server, to_client)",
    );
    let server_errors = s.counter(
        "pg_pool_server_errors",
        "Error responses from servers relayed to clients (SQL errors, by cause: server)",
    );
    let server_lost = s.counter(
        "pg_pool_server_lost",
        "Server connections lost while in use (by cause: upstream failure)",
    );
    for pool in pools {
        let labels = vec![
            ("database", pool.key.database.clone()),
            ("user", pool.key.user.clone()),
            ("node", pool.key.node.clone()),
        ];
        let with_state = |state: &str| {
            let mut l = labels.clone();
            l.push(("state", state.to_owned()));
            l
        };
        let st = pool.status();
        conns
            .get_or_create(&with_state("active"))
            .set(st.size.saturating_sub(st.idle) as u64);
        conns.get_or_create(&with_state("idle")).set(st.idle as u64);
        max.get_or_create(&labels).set(st.max_size as u64);
        waiting.get_or_create(&labels).set(st.waiting as u64);
        let stats = &pool.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        checkouts
            .get_or_create(&labels)
            .inc_by(load(&stats.checkouts));
        waits.get_or_create(&labels).inc_by(load(&stats.waits));
        wait_hist.push_wait(labels.clone(), &stats.wait_histogram.snapshot());
        timeouts
            .get_or_create(&labels)
            .inc_by(load(&stats.checkout_timeouts));
        connect_errors
            .get_or_create(&labels)
            .inc_by(load(&stats.connect_errors));
        transactions
            .get_or_create(&labels)
            .inc_by(load(&stats.transactions));
        discarded
            .get_or_create(&labels)
            .inc_by(load(&stats.discarded));
        let with_direction = |d: &str| {
            let mut l = labels.clone();
            l.push(("direction", d.to_owned()));
            l
        };
        bytes
            .get_or_create(&with_direction("to_server"))
            .inc_by(load(&stats.bytes_to_server));
        bytes
            .get_or_create(&with_direction("to_client"))
            .inc_by(load(&stats.bytes_to_client));
        server_errors
            .get_or_create(&labels)
            .inc_by(load(&stats.server_errors));
        server_lost
            .get_or_create(&labels)
            .inc_by(load(&stats.server_lost));
    }
    s.registry.register_with_unit(
        "pg_pool_checkout_wait",
        "Time each checkout took to get a server connection, idle hand-outs included",
        Unit::Seconds,
        wait_hist,
    );
}

/// One `listener_info` sample per bound listener, admin included.
fn listeners(s: &mut Scrape, admin: &Admin) {
    let infos = Infos(
        admin
            .listeners()
            .iter()
            .map(|l| {
                vec![
                    ("protocol", l.protocol.to_owned()),
                    ("addr", l.addr.to_string()),
                ]
            })
            .collect(),
    );
    s.registry
        .register("listener", "A listener Attaché accepts on", infos);
}

fn reloads(s: &mut Scrape, reloader: &crate::reload::Reloader) {
    let reloads = s.counter(
        "reloads",
        "Config reloads by outcome (rejected: invalid, the old config stayed)",
    );
    for (outcome, n) in [
        ("applied", &reloader.applied),
        ("rejected", &reloader.rejected),
    ] {
        reloads
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc_by(n.load(Ordering::Relaxed));
    }
}

/// Logged-in Postgres clients (console sessions included): `active` ones
/// hold a server connection now, `idle` ones do not.
fn pg_clients(s: &mut Scrape, pg: &PgContext) {
    let gauge = s.gauge(
        "pg_clients",
        "Logged-in Postgres clients by state (active: holding a server connection)",
    );
    let all = pg.clients.all();
    let active = all.iter().filter(|c| c.server().is_some()).count();
    for (state, n) in [("active", active), ("idle", all.len() - active)] {
        gauge
            .get_or_create(&vec![("state", state.to_owned())])
            .set(n as u64);
    }
}

/// Per-node series (labels database, node, role) and per-cluster ones.
fn nodes(s: &mut Scrape, clusters: &[(&str, &std::sync::Arc<Cluster>)]) {
    let healthy = s.gauge("pg_node_healthy", "1 when the node's last probe answered");
    let banned = s.gauge(
        "pg_node_banned",
        "1 while the node is banned from reads after failed probes",
    );
    let lag = s.seconds_gauge(
        "pg_node_replica_lag",
        "How far the node's replay is behind the primary, in time",
    );
    let lag_bytes = s.bytes_gauge(
        "pg_node_replica_lag",
        "How far the node's replay is behind the primary, in WAL bytes",
    );
    let outstanding = s.gauge("pg_node_outstanding", "Transactions in flight on the node");
    let reads = s.counter("pg_node_reads", "Transactions routed to the node as reads");
    let writes = s.counter(
        "pg_node_writes",
        "Transactions routed to the node as writes",
    );
    let probe_failures = s.counter("pg_node_probe_failures", "Failed health probes");
    let failovers = s.counter(
        "pg_cluster_failovers",
        "Times a new primary was elected after the old one was lost",
    );
    let last_failover = s.seconds_gauge(
        "pg_cluster_last_failover_duration",
        "How long the last failover left the cluster without a primary",
    );
    let has_primary = s.gauge(
        "pg_cluster_has_primary",
        "1 when the cluster has a primary to send writes to",
    );
    let mut latency = Histograms::default();
    for (db, cluster) in clusters {
        let db_label = vec![("database", (*db).to_owned())];
        for n in cluster.status() {
            let labels = node_labels(db, &n);
            latency.push_wait(labels.clone(), &n.latency);
            healthy.get_or_create(&labels).set(n.healthy.into());
            banned.get_or_create(&labels).set(n.banned.into());
            lag.get_or_create(&labels).set(n.lag.as_secs_f64());
            lag_bytes.get_or_create(&labels).set(n.lag_bytes);
            outstanding.get_or_create(&labels).set(n.outstanding as u64);
            reads.get_or_create(&labels).inc_by(n.reads);
            writes.get_or_create(&labels).inc_by(n.writes);
            probe_failures
                .get_or_create(&labels)
                .inc_by(n.probe_failures);
        }
        let f = &cluster.failovers;
        failovers
            .get_or_create(&db_label)
            .inc_by(f.count.load(Ordering::Relaxed));
        last_failover
            .get_or_create(&db_label)
            .set(f.last_millis.load(Ordering::Relaxed) as f64 / 1e3);
        has_primary
            .get_or_create(&db_label)
            .set(cluster.primary().is_some().into());
    }
    s.registry.register_with_unit(
        "pg_node_transaction",
        "How long transactions held a server connection on the node (checkout to release)",
        Unit::Seconds,
        latency,
    );
}

fn node_labels(db: &str, n: &NodeStatus) -> Labels {
    vec![
        ("database", db.to_owned()),
        ("node", n.addr.clone()),
        ("role", n.role.as_str().to_owned()),
    ]
}

/// The servers the topology routes to, and the connected clients.
fn redis_backends(s: &mut Scrape, redis: &RedisContext) {
    let backend = s.gauge(
        "redis_backend",
        "1 for each Redis server the topology currently routes to",
    );
    let count = s.gauge("redis_backends", "Redis servers the topology routes to");
    let mode = super::status::redis_mode(redis);
    let nodes = redis_nodes(redis);
    for n in &nodes {
        backend
            .get_or_create(&vec![
                ("mode", mode.clone()),
                ("node", n.addr.clone()),
                ("role", n.role.to_owned()),
            ])
            .set(1);
    }
    count
        .get_or_create(&vec![("mode", mode.clone())])
        .set(nodes.len() as u64);
    s.gauge("redis_clients", "Clients connected to the Redis listener")
        .get_or_create(&vec![("mode", mode)])
        .set(redis.clients() as u64);
}

/// Per-node counters of the shared server connections, for the nodes
/// `redis_backend` lists (a node the topology has dropped, such as an old
/// Sentinel primary or a replica the sentinels no longer list, takes its
/// counts with it).
fn redis_node_counters(s: &mut Scrape, redis: &RedisContext) {
    let requests = s.counter("redis_requests", "Commands written to the server");
    let error_replies = s.counter(
        "redis_error_replies",
        "Error replies from the server (-ERR, -WRONGTYPE, …)",
    );
    let backend_errors = s.counter(
        "redis_backend_errors",
        "Failed connects and lost connections to the server",
    );
    let connects = s.counter(
        "redis_backend_connects",
        "Server connections opened (the first ones and reconnects)",
    );
    let failed = s.counter(
        "redis_requests_failed",
        "Commands that got no reply because the server connection failed",
    );
    let bytes = s.counter(
        "redis_bytes",
        "Bytes written to and read from the server (direction to_server, from_server)",
    );
    let open = s.gauge(
        "redis_server_connections",
        "Server connections open now (shared, multiplexed ones and dedicated ones)",
    );
    let mut latency = Histograms::default();
    let mode = super::status::redis_mode(redis);
    let known = topology_nodes(&redis.topology);
    for n in redis_nodes(redis) {
        let Some(node) = known.iter().find(|k| k.addr == n.addr) else {
            continue;
        };
        let labels = vec![
            ("mode", mode.clone()),
            ("node", n.addr.clone()),
            ("role", n.role.to_owned()),
        ];
        let st = &node.stats;
        latency.push_wait(labels.clone(), &st.latency.snapshot());
        open.get_or_create(&labels)
            .set(st.open.load(Ordering::Relaxed));
        for (direction, counter) in [
            ("to_server", &st.bytes_sent),
            ("from_server", &st.bytes_received),
        ] {
            let mut l = labels.clone();
            l.push(("direction", direction.to_owned()));
            bytes
                .get_or_create(&l)
                .inc_by(counter.load(Ordering::Relaxed));
        }
        for (family, counter) in [
            (&requests, &st.requests),
            (&error_replies, &st.error_replies),
            (&backend_errors, &st.backend_errors),
            (&connects, &st.connects),
            (&failed, &st.failed_requests),
        ] {
            family
                .get_or_create(&labels)
                .inc_by(counter.load(Ordering::Relaxed));
        }
    }
    s.registry.register_with_unit(
        "redis_request",
        "From a command's batch leaving for the server to its reply arriving",
        Unit::Seconds,
        latency,
    );
}

/// Every node object the topology holds now, to read counters from.
fn topology_nodes(t: &Topology) -> Vec<std::sync::Arc<Node>> {
    match t {
        Topology::Single(primary, replicas) => std::iter::once(primary.clone())
            .chain(replicas.nodes.iter().cloned())
            .collect(),
        Topology::Sentinel(s) => std::iter::once(s.primary()).chain(s.replicas()).collect(),
        _ => t.all_nodes(),
    }
}

#[cfg(test)]
mod tests;
