//! Respond (admin): `/status` (a JSON snapshot of listeners, Postgres
//! clusters and pools, Redis nodes, HTTP routes and clusters: see
//! [`http`]) and `/readyz` (what keeps this instance from serving). Both
//! read the same live structures as `/metrics`, at request time.

pub mod http;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::Admin;
use crate::core::redis::Topology;
use crate::frontend::postgres::PgContext;
use crate::frontend::redis::RedisContext;

/// One bound listener.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ListenerInfo {
    pub protocol: &'static str,
    pub addr: SocketAddr,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub uptime_seconds: f64,
    pub listeners: Vec<ListenerInfo>,
    pub postgres: Option<PgStatus>,
    pub redis: Option<RedisStatus>,
    pub http: Option<http::HttpStatus>,
}

#[derive(Debug, Serialize)]
pub struct PgStatus {
    /// Keyed like `[postgres.databases]`.
    pub databases: BTreeMap<String, ClusterStatus>,
    /// Every pool built so far (pools appear on first use).
    pub pools: Vec<PoolInfo>,
}

#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    /// The node writes go to, if one is elected.
    pub primary: Option<String>,
    pub failovers: u64,
    pub last_failover_seconds: f64,
    pub nodes: Vec<NodeInfo>,
}

#[derive(Debug, Serialize)]
pub struct NodeInfo {
    pub addr: String,
    pub role: &'static str,
    pub healthy: bool,
    pub banned: bool,
    pub lsn: u64,
    pub lag_seconds: f64,
    pub lag_bytes: u64,
    pub outstanding: usize,
    pub reads: u64,
    pub writes: u64,
    pub probe_failures: u64,
}

#[derive(Debug, Serialize)]
pub struct PoolInfo {
    pub node: String,
    /// Server-side database name.
    pub database: String,
    pub user: String,
    pub size: usize,
    pub idle: usize,
    pub active: usize,
    pub waiting: usize,
    pub max_size: usize,
    pub checkouts: u64,
    pub waits: u64,
    pub wait_seconds: f64,
    pub checkout_timeouts: u64,
    pub connect_errors: u64,
    pub transactions: u64,
    pub discarded: u64,
}

#[derive(Debug, Serialize)]
pub struct RedisStatus {
    pub mode: String,
    pub nodes: Vec<RedisNodeInfo>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RedisNodeInfo {
    pub addr: String,
    /// `primary`, `replica` or `shard`.
    pub role: &'static str,
}

/// The snapshot `/status` serialises.
pub fn status(admin: &Admin) -> Status {
    Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: admin.started.elapsed().as_secs_f64(),
        listeners: admin.listeners(),
        postgres: admin.postgres().as_deref().map(pg_status),
        redis: admin.redis().as_deref().map(|r| RedisStatus {
            mode: redis_mode(r),
            nodes: redis_nodes(r),
        }),
        http: admin.http().as_deref().map(|h| {
            let listen = admin
                .listeners()
                .iter()
                .find(|l| l.protocol == "http")
                .map(|l| l.addr);
            http::http_status(h, listen)
        }),
    }
}

fn pg_status(pg: &PgContext) -> PgStatus {
    let databases = pg
        .clusters()
        .into_iter()
        .map(|(key, c)| {
            let nodes = c.status();
            let primary = c
                .primary()
                .and_then(|i| nodes.get(i))
                .map(|n| n.addr.clone());
            let cluster = ClusterStatus {
                primary,
                failovers: c.failovers.count.load(Ordering::Relaxed),
                last_failover_seconds: c.failovers.last_millis.load(Ordering::Relaxed) as f64 / 1e3,
                nodes: nodes
                    .into_iter()
                    .map(|n| NodeInfo {
                        role: n.role.as_str(),
                        healthy: n.healthy,
                        banned: n.banned,
                        lsn: n.lsn,
                        lag_seconds: n.lag.as_secs_f64(),
                        lag_bytes: n.lag_bytes,
                        outstanding: n.outstanding,
                        reads: n.reads,
                        writes: n.writes,
                        probe_failures: n.probe_failures,
                        addr: n.addr,
                    })
                    .collect(),
            };
            (key.to_owned(), cluster)
        })
        .collect();
    let pools = pg
        .pools
        .all()
        .iter()
        .map(|p| {
            let st = p.status();
            let s = &p.stats;
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            PoolInfo {
                node: p.key.node.clone(),
                database: p.key.database.clone(),
                user: p.key.user.clone(),
                size: st.size,
                idle: st.idle,
                active: st.size.saturating_sub(st.idle),
                waiting: st.waiting,
                max_size: st.max_size,
                checkouts: load(&s.checkouts),
                waits: load(&s.waits),
                wait_seconds: load(&s.wait_micros) as f64 / 1e6,
                checkout_timeouts: load(&s.checkout_timeouts),
                connect_errors: load(&s.connect_errors),
                transactions: load(&s.transactions),
                discarded: load(&s.discarded),
            }
        })
        .collect();
    PgStatus { databases, pools }
}

/// The configured mode as written in the config (`single`, `sharded`, …).
pub fn redis_mode(r: &RedisContext) -> String {
    match &r.topology {
        Topology::Single(..) => "single",
        Topology::Sharded { .. } => "sharded",
        Topology::Cluster(_) => "cluster",
        Topology::Sentinel(_) => "sentinel",
    }
    .to_owned()
}

/// The address Sentinel mode routes to before any sentinel has named a
/// primary: a placeholder nobody listens on (see `core::redis::sentinel`).
const SENTINEL_PLACEHOLDER: &str = "127.0.0.1:0";

/// The servers a Redis listener currently routes to. Cluster replicas are
/// not listed: the core does not expose its slot map's replicas. Sentinel
/// replicas are the healthy ones the sentinels list, which Attaché asks for
/// only when reads use replicas (`read_from` other than `primary`).
pub fn redis_nodes(r: &RedisContext) -> Vec<RedisNodeInfo> {
    let node = |addr: &str, role| RedisNodeInfo {
        addr: addr.to_owned(),
        role,
    };
    match &r.topology {
        Topology::Single(primary, replicas) => std::iter::once(node(&primary.addr, "primary"))
            .chain(replicas.nodes.iter().map(|n| node(&n.addr, "replica")))
            .collect(),
        Topology::Sharded { nodes, .. } => nodes.iter().map(|n| node(&n.addr, "shard")).collect(),
        Topology::Cluster(c) => c
            .primaries()
            .iter()
            .map(|n| node(&n.addr, "primary"))
            .collect(),
        Topology::Sentinel(s) => {
            let p = s.primary();
            // Replicas are learned in the same answer as the primary, so
            // before a primary there are none to list either.
            if p.addr == SENTINEL_PLACEHOLDER {
                return Vec::new();
            }
            std::iter::once(node(&p.addr, "primary"))
                .chain(s.replicas().iter().map(|n| node(&n.addr, "replica")))
                .collect()
        }
    }
}

/// Everything that keeps this instance from serving, one line each; empty
/// when ready. Listeners are all bound by the time the admin server runs.
///
/// HTTP egress adds no condition beyond its listener being bound: an
/// upstream that is down, ejected or failing health checks is answered per
/// request (a 502/503 with `x-attache-error`, on that route only), while a
/// failed readiness probe would take the whole instance out of rotation —
/// its other routes and its Postgres and Redis listeners with it — and,
/// with an upstream shared by a fleet, every instance at once.
pub fn not_ready(admin: &Admin) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(pg) = &admin.postgres() {
        for (db, c) in pg.clusters() {
            if c.primary().is_none() {
                problems.push(format!("postgres database {db:?}: no primary"));
            }
        }
    }
    if let Some(r) = &admin.redis() {
        if redis_nodes(r).is_empty() {
            problems.push(format!("redis ({}): no server to route to", redis_mode(r)));
        }
    }
    problems
}

/// The `/readyz` body when ready: the listeners, one per line.
pub fn ready_body(admin: &Admin) -> String {
    let mut body = String::from("ready\n");
    for l in &admin.listeners() {
        body.push_str(&format!("{} listening on {}\n", l.protocol, l.addr));
    }
    body
}

#[cfg(test)]
mod tests;
