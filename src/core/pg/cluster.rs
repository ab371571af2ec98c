//! Route → backend (Postgres): one database's nodes as Attaché sees them:
//! each node's role (found by probing, not trusted from the config), health,
//! ban, replication position and load, the elected primary, and the choice
//! of a node for each transaction. Sessions ask [`Cluster::pick_read`] and
//! [`Cluster::wait_primary`]; the monitor (one prober task per node, see
//! [`monitor`]) keeps the picture current and elects a new primary when the
//! old one fails.

mod balance;
mod inflight;
pub mod monitor;

pub use inflight::InFlight;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::config::topology::{PrimaryReads, Topology};
use crate::config::types::NodeRole;

/// What a probe last found a node to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Unknown,
    Primary,
    Replica,
}

impl Role {
    fn from_u8(v: u8) -> Role {
        match v {
            1 => Role::Primary,
            2 => Role::Replica,
            _ => Role::Unknown,
        }
    }
    fn as_u8(self) -> u8 {
        match self {
            Role::Unknown => 0,
            Role::Primary => 1,
            Role::Replica => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Unknown => "unknown",
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// One node's live state. Plain atomics: sessions read these on every
/// transaction and must never wait on the monitor.
#[derive(Debug)]
pub struct Node {
    pub index: usize,
    pub addr: String,
    pub configured: NodeRole,
    role: AtomicU8,
    healthy: AtomicBool,
    ban: Mutex<Ban>,
    /// A primary's WAL insert position, a replica's replay position.
    lsn: AtomicU64,
    lag_bytes: AtomicU64,
    lag_millis: AtomicU64,
    outstanding: AtomicUsize,
    /// Exponentially weighted transaction latency, microseconds.
    ewma_micros: AtomicU64,
    /// When the EWMA last took a sample (ms since [`epoch`]).
    ewma_at: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub probe_failures: AtomicU64,
    /// How long transactions held a server connection here.
    pub latency: crate::core::pg::pool::WaitHistogram,
    /// Wakes this node's prober early (a session saw it fail).
    pub(super) wake: Arc<Notify>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Ban {
    until: Option<Instant>,
    /// Outages in a row without a long healthy stretch between them.
    outages: u32,
    /// In an outage: its probes keep failing.
    down: bool,
    up_since: Option<Instant>,
}

/// A copy of one node's state for status pages and metrics.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub addr: String,
    pub role: Role,
    pub healthy: bool,
    pub banned: bool,
    pub lsn: u64,
    pub lag_bytes: u64,
    pub lag: Duration,
    pub outstanding: usize,
    pub reads: u64,
    pub writes: u64,
    pub probe_failures: u64,
    pub latency: crate::core::pg::pool::WaitSnapshot,
}

/// What the monitor publishes to waiting sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct View {
    pub primary: Option<usize>,
}

/// Failover bookkeeping, for logs and metrics.
#[derive(Debug, Default)]
pub struct FailoverStats {
    pub count: AtomicU64,
    pub last_millis: AtomicU64,
    started: Mutex<Option<Instant>>,
}

pub struct Cluster {
    pub name: String,
    pub topology: Topology,
    nodes: Vec<Node>,
    view: watch::Sender<View>,
    rr: AtomicUsize,
    pub failovers: FailoverStats,
    /// Set once the probers run (they need a login; see `monitor::start`).
    pub(super) started: OnceLock<()>,
    pub(super) probe_login: OnceLock<monitor::ProbeLogin>,
    /// The primary's WAL position over time (oldest first), for lag in time.
    history: Mutex<VecDeque<(Instant, u64)>>,
}

/// Primary WAL samples kept for lag-in-time (one per probe).
const HISTORY: usize = 1024;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("view", &*self.view.borrow())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Builds the cluster from the configured nodes. Until the first probe
    /// answers, a node configured `primary` is taken at its word (so the
    /// first clients need not wait), replicas are assumed current, and
    /// `auto` nodes are unknown.
    pub fn new(name: &str, nodes: &[(String, NodeRole)], topology: Topology) -> Self {
        let nodes: Vec<Node> = nodes
            .iter()
            .enumerate()
            .map(|(index, (addr, configured))| Node {
                index,
                addr: addr.clone(),
                configured: *configured,
                role: AtomicU8::new(
                    match configured {
                        NodeRole::Primary => Role::Primary,
                        NodeRole::Replica => Role::Replica,
                        NodeRole::Auto => Role::Unknown,
                    }
                    .as_u8(),
                ),
                healthy: AtomicBool::new(true),
                ban: Mutex::new(Ban::default()),
                lsn: AtomicU64::new(0),
                lag_bytes: AtomicU64::new(0),
                lag_millis: AtomicU64::new(0),
                outstanding: AtomicUsize::new(0),
                ewma_micros: AtomicU64::new(0),
                ewma_at: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                probe_failures: AtomicU64::new(0),
                latency: Default::default(),
                wake: Arc::new(Notify::new()),
            })
            .collect();
        let primary = nodes.iter().position(|n| n.configured == NodeRole::Primary);
        let (view, _) = watch::channel(View { primary });
        Cluster {
            name: name.to_owned(),
            topology,
            nodes,
            view,
            rr: AtomicUsize::new(0),
            failovers: FailoverStats::default(),
            started: OnceLock::new(),
            probe_login: OnceLock::new(),
            history: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether the probers know how to log in (they may not run yet).
    pub fn monitored(&self) -> bool {
        self.probe_login.get().is_some()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes.get(i)
    }

    /// Whether any node may serve reads apart from the primary.
    pub fn splits_reads(&self) -> bool {
        self.topology.split == crate::config::topology::SplitMode::Auto && self.nodes.len() > 1
    }

    pub fn primary(&self) -> Option<usize> {
        self.view.borrow().primary
    }

    /// The primary's WAL position as last probed (0 before the first probe).
    pub fn primary_lsn(&self) -> u64 {
        self.primary()
            .and_then(|p| self.nodes.get(p))
            .map_or(0, |n| n.lsn.load(Ordering::Relaxed))
    }

    /// Waits until a primary is elected, or `deadline` passes.
    pub async fn wait_primary(&self, deadline: Instant) -> Option<usize> {
        let mut rx = self.view.subscribe();
        loop {
            if let Some(p) = rx.borrow_and_update().primary {
                return Some(p);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }

    /// The node for a read, or `None` when only the primary may serve it
    /// (the caller then uses the primary). `min_lsn` is the position a
    /// read-your-writes client must see.
    pub fn pick_read(&self, min_lsn: u64) -> ReadTarget {
        let primary = self.primary();
        let mut eligible: Vec<usize> = self
            .nodes
            .iter()
            .filter(|n| Some(n.index) != primary && self.can_read(n, min_lsn))
            .map(|n| n.index)
            .collect();
        let reads = self.topology.primary_reads;
        if reads == PrimaryReads::Always {
            if let Some(p) = primary {
                eligible.push(p);
            }
        }
        if let Some(i) = balance::choose(self.topology.balance, &self.nodes, &eligible, &self.rr) {
            return ReadTarget::Node(i);
        }
        match reads {
            PrimaryReads::Never => ReadTarget::None,
            _ => ReadTarget::Primary,
        }
    }

    fn can_read(&self, n: &Node, min_lsn: u64) -> bool {
        if n.role() != Role::Replica || !n.is_healthy() || n.is_banned() {
            return false;
        }
        if min_lsn > 0 && n.lsn.load(Ordering::Relaxed) < min_lsn {
            return false;
        }
        let t = &self.topology;
        let lag_ok = t
            .max_lag
            .is_none_or(|max| n.lag_millis.load(Ordering::Relaxed) <= max.as_millis() as u64);
        let bytes_ok = t
            .max_lag_bytes
            .is_none_or(|max| n.lag_bytes.load(Ordering::Relaxed) <= max);
        lag_ok && bytes_ok
    }

    /// A session could not connect to node `i`: it is down until a probe
    /// says otherwise, and if it was the primary, new transactions wait for
    /// the monitor to find one.
    pub fn report_unreachable(self: &Arc<Self>, i: usize, why: &str) {
        monitor::ensure_started(self);
        let Some(n) = self.nodes.get(i) else { return };
        let was = n.healthy.swap(false, Ordering::Relaxed);
        if was {
            warn!(cluster = %self.name, node = %n.addr, why, "node unreachable");
        }
        if self.primary() == Some(i) {
            self.lose_primary(i, why);
        }
        n.wake.notify_one();
    }

    /// Something odd happened on a connection to node `i` (reset mid-way):
    /// probe it now rather than at the next interval.
    pub fn suspect(&self, i: usize) {
        if let Some(n) = self.nodes.get(i) {
            n.wake.notify_one();
        }
    }

    fn lose_primary(&self, i: usize, why: &str) {
        let changed = self.view.send_if_modified(|v| {
            if v.primary == Some(i) {
                v.primary = None;
                true
            } else {
                false
            }
        });
        if changed {
            if let Ok(mut s) = self.failovers.started.lock() {
                s.get_or_insert_with(Instant::now);
            }
            warn!(cluster = %self.name, node = %self.nodes[i].addr, why, "primary lost; new transactions wait for a primary");
            for n in &self.nodes {
                n.wake.notify_one();
            }
        }
    }

    /// Re-runs the election after a probe changed a node's state. The
    /// current primary is sticky: a second node claiming to be primary
    /// (an old primary that came back) never takes over while the current
    /// one is healthy, so writes never go to a stale primary.
    pub(super) fn elect(&self) {
        let current = self.primary();
        if let Some(p) = current {
            let n = &self.nodes[p];
            if n.is_healthy() && n.role() == Role::Primary {
                for other in &self.nodes {
                    if other.index != p && other.role() == Role::Primary && other.is_healthy() {
                        warn!(cluster = %self.name, node = %other.addr, primary = %n.addr, "a second node claims to be primary; ignored");
                    }
                }
                return;
            }
            let why = if n.is_healthy() {
                "it reports being in recovery"
            } else {
                "its health check failed"
            };
            self.lose_primary(p, why);
        }
        let mut candidates: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| n.is_healthy() && n.role() == Role::Primary)
            .collect();
        // Prefer the configured primary, then the furthest WAL position.
        candidates.sort_by_key(|n| {
            (
                n.configured == NodeRole::Primary,
                n.lsn.load(Ordering::Relaxed),
            )
        });
        let Some(winner) = candidates.last() else {
            return;
        };
        if candidates.len() > 1 {
            warn!(cluster = %self.name, chosen = %winner.addr, "several nodes claim to be primary");
        }
        self.view.send_modify(|v| v.primary = Some(winner.index));
        let started = self
            .failovers
            .started
            .lock()
            .ok()
            .and_then(|mut s| s.take());
        match started {
            Some(t) => {
                let took = t.elapsed();
                self.failovers.count.fetch_add(1, Ordering::Relaxed);
                self.failovers
                    .last_millis
                    .store(took.as_millis() as u64, Ordering::Relaxed);
                info!(cluster = %self.name, primary = %winner.addr, took_ms = took.as_millis() as u64, "primary elected");
            }
            None => info!(cluster = %self.name, primary = %winner.addr, "primary found"),
        }
    }

    /// Notes the primary's position now, if it moved.
    pub(super) fn record_primary_lsn(&self, lsn: u64) {
        let Ok(mut h) = self.history.lock() else {
            return;
        };
        if h.back().is_some_and(|&(_, last)| last >= lsn) {
            return;
        }
        if h.len() >= HISTORY {
            h.pop_front();
        }
        h.push_back((Instant::now(), lsn));
    }

    /// How long ago the primary first passed position `lsn` (zero when it
    /// has not, i.e. a replica at `lsn` is current). A shortfall of a WAL
    /// page header or less is no lag: an idle primary's insert position
    /// may sit past a page header its replicas never replay to.
    pub(super) fn lag_behind(&self, lsn: u64) -> Duration {
        const PAGE_HEADER: u64 = 40;
        let Ok(h) = self.history.lock() else {
            return Duration::ZERO;
        };
        h.iter()
            .find(|&&(_, l)| l > lsn + PAGE_HEADER)
            .map_or(Duration::ZERO, |&(t, _)| t.elapsed())
    }

    /// Starts timing one transaction on node `i` (least-outstanding and
    /// EWMA balancing read this).
    pub fn begin(self: &Arc<Self>, i: usize, write: bool) -> InFlight {
        if let Some(n) = self.nodes.get(i) {
            n.outstanding.fetch_add(1, Ordering::Relaxed);
            let c = if write { &n.writes } else { &n.reads };
            c.fetch_add(1, Ordering::Relaxed);
        }
        InFlight::new(self.clone(), i)
    }

    pub fn status(&self) -> Vec<NodeStatus> {
        self.nodes.iter().map(Node::status).collect()
    }
}

/// Where a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadTarget {
    Node(usize),
    Primary,
    /// `primary_reads = "never"` and no replica is eligible.
    None,
}

impl Node {
    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Relaxed))
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn is_banned(&self) -> bool {
        self.ban
            .lock()
            .map(|b| b.until.is_some_and(|u| Instant::now() < u))
            .unwrap_or(false)
    }

    pub fn lsn(&self) -> u64 {
        self.lsn.load(Ordering::Relaxed)
    }

    /// A probe answered: role and position as the server says.
    pub(super) fn probed_ok(&self, role: Role, lsn: u64, lag_millis: u64) {
        self.role.store(role.as_u8(), Ordering::Relaxed);
        self.lsn.store(lsn, Ordering::Relaxed);
        self.lag_millis.store(lag_millis, Ordering::Relaxed);
        if !self.healthy.swap(true, Ordering::Relaxed) {
            info!(node = %self.addr, role = role.as_str(), "node healthy");
        }
        if let Ok(mut b) = self.ban.lock() {
            if std::mem::take(&mut b.down) {
                b.up_since = Some(Instant::now());
            }
        }
    }

    /// A probe failed: unhealthy, and banned from reads until it has been
    /// back for the ban time. The ban doubles with each new outage that
    /// follows the last one within `max` (a flapping node), not with each
    /// failed probe of one outage (those come every 100 ms).
    pub(super) fn probed_failed(&self, base: Duration, max: Duration) -> Duration {
        self.probe_failures.fetch_add(1, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Relaxed);
        let Ok(mut b) = self.ban.lock() else {
            return base;
        };
        if !b.down {
            b.down = true;
            if b.up_since.is_some_and(|t| t.elapsed() > max) {
                b.outages = 0;
            }
            b.outages = b.outages.saturating_add(1);
        }
        let factor = 1u32 << (b.outages.max(1) - 1).min(16);
        let ban = base.saturating_mul(factor).min(max);
        b.until = Some(Instant::now() + ban);
        ban
    }

    /// Raises the time lag to `lag` if the server reported less.
    pub(super) fn raise_lag(&self, lag: Duration) {
        self.lag_millis
            .fetch_max(lag.as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn set_lag_bytes(&self, bytes: u64) {
        self.lag_bytes.store(bytes, Ordering::Relaxed);
    }

    fn status(&self) -> NodeStatus {
        NodeStatus {
            addr: self.addr.clone(),
            role: self.role(),
            healthy: self.is_healthy(),
            banned: self.is_banned(),
            lsn: self.lsn(),
            lag_bytes: self.lag_bytes.load(Ordering::Relaxed),
            lag: Duration::from_millis(self.lag_millis.load(Ordering::Relaxed)),
            outstanding: self.outstanding.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            probe_failures: self.probe_failures.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests;
