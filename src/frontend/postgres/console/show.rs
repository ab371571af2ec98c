//! Respond (Postgres admin console): SHOW POOLS, SHOW DATABASES and SHOW
//! STATS, built from one snapshot of the pools, the clients and the config
//! so the numbers in one answer agree with each other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::super::clients::ClientInfo;
use super::super::context::PgContext;
use super::super::pause::Paused;
use super::wire::{Kind, RowSet, Value};
use crate::config::types::{NodeRole, PoolMode, PostgresConfig};
use crate::core::pg::cluster::Role;
use crate::core::pg::PgPool;

/// What the console knows about one pool, copied out of its atomics.
#[derive(Debug, Clone, Default)]
pub(super) struct PoolView {
    /// The database name clients use: the config key, or for `"*"` the
    /// server database.
    pub database: String,
    pub db_key: String,
    /// The user clients log in as.
    pub user: String,
    pub server_user: String,
    /// `host:port` of the node.
    pub node: String,
    /// What the node is now (by the health probes), else as configured.
    pub role: &'static str,
    pub mode: PoolMode,
    pub size: usize,
    pub idle: usize,
    pub waiting: usize,
    pub checkouts: u64,
    pub wait_micros: u64,
    pub transactions: u64,
    pub checkout_timeouts: u64,
    pub connect_errors: u64,
    pub discarded: u64,
}

impl PoolView {
    fn of(p: &PgPool, role: &'static str) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let s = p.status();
        let database = if p.origin.db_key == "*" {
            p.key.database.clone()
        } else {
            p.origin.db_key.clone()
        };
        PoolView {
            database,
            db_key: p.origin.db_key.clone(),
            user: p.origin.client_user.clone(),
            server_user: p.key.user.clone(),
            node: p.key.node.clone(),
            role,
            mode: p.settings.pool_mode,
            size: s.size,
            idle: s.idle,
            waiting: s.waiting,
            checkouts: p.stats.checkouts.load(Relaxed),
            wait_micros: p.stats.wait_micros.load(Relaxed),
            transactions: p.stats.transactions.load(Relaxed),
            checkout_timeouts: p.stats.checkout_timeouts.load(Relaxed),
            connect_errors: p.stats.connect_errors.load(Relaxed),
            discarded: p.stats.discarded.load(Relaxed),
        }
    }

    /// Whether `c` logged in through this pool's (database, user).
    pub fn serves(&self, c: &ClientInfo) -> bool {
        c.db_key == self.db_key && c.user == self.user
    }

    /// Server connections checked out (by a client, a reset or a login).
    pub fn active(&self) -> usize {
        self.size.saturating_sub(self.idle)
    }
}

/// Everything one answer is built from.
pub(super) struct Snapshot {
    pub pools: Vec<PoolView>,
    pub clients: Vec<Arc<ClientInfo>>,
    pub config: Arc<PostgresConfig>,
    pub paused: Paused,
}

impl Snapshot {
    pub fn take(ctx: &PgContext) -> Self {
        let mut roles: HashMap<(String, String), &'static str> = HashMap::new();
        for (key, cluster) in ctx.clusters() {
            for (node, status) in cluster.nodes().iter().zip(cluster.status()) {
                let role = match (status.role, node.configured) {
                    (Role::Unknown, NodeRole::Primary) => "primary",
                    (Role::Unknown, NodeRole::Replica) => "replica",
                    (Role::Unknown, NodeRole::Auto) => "unknown",
                    (known, _) => known.as_str(),
                };
                roles.insert((key.clone(), status.addr), role);
            }
        }
        let pools = ctx
            .pools
            .all()
            .iter()
            .map(|p| {
                let role = roles
                    .get(&(p.origin.db_key.clone(), p.key.node.clone()))
                    .copied()
                    .unwrap_or("unknown");
                PoolView::of(p, role)
            })
            .collect();
        Snapshot {
            pools,
            clients: ctx.clients.all(),
            config: ctx.config(),
            paused: ctx.paused(),
        }
    }

    /// The node a client counts against now: its server's, else the one it
    /// was routed to at login.
    fn client_node(c: &ClientInfo) -> String {
        c.server()
            .map(|s| s.addr.to_string())
            .unwrap_or_else(|| c.home_node.clone())
    }
}

pub(super) fn mode_name(mode: PoolMode) -> &'static str {
    match mode {
        PoolMode::Session => "session",
        PoolMode::Transaction => "transaction",
    }
}

/// SHOW POOLS: one row per (database, user, node).
pub(super) fn pools(snap: &Snapshot) -> RowSet {
    use Kind::{Int, Text};
    let mut set = RowSet::new(&[
        ("database", Text),
        ("user", Text),
        ("cl_active", Int),
        ("cl_waiting", Int),
        ("cl_active_cancel_req", Int),
        ("cl_waiting_cancel_req", Int),
        ("sv_active", Int),
        ("sv_active_cancel", Int),
        ("sv_being_canceled", Int),
        ("sv_idle", Int),
        ("sv_used", Int),
        ("sv_tested", Int),
        ("sv_login", Int),
        ("maxwait", Int),
        ("maxwait_us", Int),
        ("pool_mode", Text),
        ("node", Text),
        ("role", Text),
    ]);
    for p in &snap.pools {
        let here = snap
            .clients
            .iter()
            .filter(|c| p.serves(c) && Snapshot::client_node(c) == p.node)
            .count();
        // Clients waiting for a connection are not active (PgBouncer's
        // split); they are among those without a server.
        let cl_active = here.saturating_sub(p.waiting);
        set.push(vec![
            p.database.as_str().into(),
            p.user.as_str().into(),
            cl_active.into(),
            p.waiting.into(),
            0usize.into(),
            0usize.into(),
            p.active().into(),
            0usize.into(),
            0usize.into(),
            p.idle.into(),
            0usize.into(),
            0usize.into(),
            0usize.into(),
            0usize.into(),
            0usize.into(),
            mode_name(p.mode).into(),
            p.node.as_str().into(),
            p.role.into(),
        ]);
    }
    set
}

/// `host:port` (IPv6 in brackets) split for the host and port columns.
pub(super) fn host_port(addr: &str) -> (String, Option<u16>) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.parse().ok(),
        ),
        None => (addr.to_owned(), None),
    }
}

/// SHOW DATABASES: one row per `[postgres.databases]` entry.
pub(super) fn databases(snap: &Snapshot) -> RowSet {
    use Kind::{Int, Text};
    let mut set = RowSet::new(&[
        ("name", Text),
        ("host", Text),
        ("port", Int),
        ("database", Text),
        ("force_user", Text),
        ("pool_size", Int),
        ("min_pool_size", Int),
        ("reserve_pool", Int),
        ("server_lifetime", Int),
        ("pool_mode", Text),
        ("max_connections", Int),
        ("current_connections", Int),
        ("max_client_connections", Int),
        ("current_client_connections", Int),
        ("paused", Int),
        ("disabled", Int),
        ("nodes", Text),
    ]);
    for (name, db) in &snap.config.databases {
        let resolved = snap.config.resolve_pool(db, None);
        let primary = db
            .nodes
            .iter()
            .find(|n| n.role == NodeRole::Primary)
            .or(db.nodes.first());
        let (host, port) = primary.map(|n| host_port(&n.addr)).unwrap_or_default();
        let servers: usize = snap
            .pools
            .iter()
            .filter(|p| &p.db_key == name)
            .map(|p| p.size)
            .sum();
        let clients = snap.clients.iter().filter(|c| &c.db_key == name).count();
        let nodes: Vec<&str> = db.nodes.iter().map(|n| n.addr.as_str()).collect();
        set.push(vec![
            name.as_str().into(),
            host.into(),
            port.map_or(Value::Null, |p| i32::from(p).into()),
            db.dbname
                .clone()
                .or((name != "*").then(|| name.clone()))
                .into(),
            Value::Null,
            resolved.pool_size.into(),
            resolved.min_idle.into(),
            0usize.into(),
            resolved.server_lifetime.map_or(0, |d| d.as_secs()).into(),
            mode_name(resolved.pool_mode).into(),
            0usize.into(),
            servers.into(),
            0usize.into(),
            clients.into(),
            snap.paused.covers(name).into(),
            false.into(),
            nodes.join(",").into(),
        ]);
    }
    set
}

/// SHOW STATS: the pools' counters summed per database.
pub(super) fn stats(snap: &Snapshot) -> RowSet {
    use Kind::{Int, Text};
    const COUNTERS: [&str; 25] = [
        "total_server_assignment_count",
        "total_xact_count",
        "total_query_count",
        "total_received",
        "total_sent",
        "total_xact_time",
        "total_query_time",
        "total_wait_time",
        "total_client_parse_count",
        "total_server_parse_count",
        "total_bind_count",
        "avg_server_assignment_count",
        "avg_xact_count",
        "avg_query_count",
        "avg_recv",
        "avg_sent",
        "avg_xact_time",
        "avg_query_time",
        "avg_wait_time",
        "avg_client_parse_count",
        "avg_server_parse_count",
        "avg_bind_count",
        "total_checkout_timeouts",
        "total_connect_errors",
        "total_discarded",
    ];
    let mut columns = vec![("database", Text)];
    columns.extend(COUNTERS.iter().map(|c| (*c, Int)));
    let mut set = RowSet::new(&columns);
    let mut per_db: BTreeMap<&str, [u64; 25]> = BTreeMap::new();
    for p in &snap.pools {
        let t = per_db.entry(p.database.as_str()).or_insert([0; 25]);
        t[0] += p.checkouts;
        t[1] += p.transactions;
        t[2] += p.transactions;
        t[7] += p.wait_micros;
        t[22] += p.checkout_timeouts;
        t[23] += p.connect_errors;
        t[24] += p.discarded;
    }
    for (db, totals) in per_db {
        let mut row: Vec<Value> = vec![db.into()];
        row.extend(totals.iter().map(|n| Value::from(*n)));
        set.push(row);
    }
    set
}
