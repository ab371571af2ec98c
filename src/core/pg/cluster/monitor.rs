//! Backend (Postgres): the health monitor. One prober task per node keeps a
//! dedicated server connection and asks, every `health.interval`, whether
//! the node is in recovery and where its WAL is. While no primary is known
//! every node is probed every 100 ms, so a promoted standby is found fast.
//! Probers hold only a weak reference: they end with their cluster.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{debug, warn};

use super::{Cluster, Role};
use crate::core::pg::conn::{BackendError, ServerConn, ServerSecret, ServerTarget};

/// How often nodes are probed while the cluster has no primary.
pub const FAILOVER_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Role, WAL position (bytes since 0/0: the primary's write position, a
/// replica's replay position) and a replica's replay delay in ms. The delay
/// counts only while received WAL waits to be replayed, so an idle primary
/// does not make its replicas look late.
const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
 (CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_last_wal_replay_lsn(), '0/0'::pg_lsn) \
  ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::text, \
 CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() IS NULL \
  OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 \
  ELSE COALESCE((EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::bigint, 0) END";

/// Who the probers log in as, one target per node (same order as the
/// cluster's nodes).
#[derive(Debug, Clone)]
pub struct ProbeLogin {
    pub targets: Vec<ServerTarget>,
    pub secret: Option<ServerSecret>,
}

/// What one probe learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub role: Role,
    pub lsn: u64,
    pub lag_millis: u64,
}

/// Remembers how to probe, and starts the probers (once per cluster) when
/// the cluster has several nodes. A single-node cluster has no one to fail
/// over to: its prober starts only when a session finds the node
/// unreachable (see [`Cluster::report_unreachable`]), to tell when it is
/// back, so a plain PgBouncer-style setup holds no extra connection.
pub fn start(cluster: &Arc<Cluster>, login: ProbeLogin) {
    let _ = cluster.probe_login.set(login);
    if cluster.nodes().len() > 1 {
        ensure_started(cluster);
    }
}

/// Starts the probers if they are not running and a login is known.
pub fn ensure_started(cluster: &Arc<Cluster>) {
    let Some(login) = cluster.probe_login.get() else {
        return;
    };
    if cluster.started.set(()).is_err() {
        return;
    }
    let login = login.clone();
    for (i, target) in login.targets.into_iter().enumerate() {
        let Some(node) = cluster.node(i) else { break };
        let wake = node.wake.clone();
        let weak = Arc::downgrade(cluster);
        tokio::spawn(prober(weak, i, target, login.secret.clone(), wake));
    }
}

async fn prober(
    cluster: Weak<Cluster>,
    i: usize,
    target: ServerTarget,
    secret: Option<ServerSecret>,
    wake: Arc<Notify>,
) {
    let mut conn: Option<ServerConn> = None;
    loop {
        let pause = {
            let Some(c) = cluster.upgrade() else { return };
            probe_once(&c, i, &mut conn, &target, secret.as_ref()).await;
            let healthy = c.node(i).is_some_and(|n| n.is_healthy());
            if c.primary().is_none() || !healthy {
                FAILOVER_PROBE_INTERVAL.min(c.topology.interval)
            } else {
                c.topology.interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Probes node `i` once and applies the result to the cluster.
async fn probe_once(
    c: &Cluster,
    i: usize,
    conn: &mut Option<ServerConn>,
    target: &ServerTarget,
    secret: Option<&ServerSecret>,
) {
    let Some(node) = c.node(i) else { return };
    let t = &c.topology;
    let r = tokio::time::timeout(t.timeout, probe(conn, target, secret, t.query.as_deref())).await;
    match r {
        Ok(Ok(p)) => node.probed_ok(p.role, p.lsn, p.lag_millis),
        failed => {
            *conn = None;
            let error = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {:?}", t.timeout),
            };
            let was_healthy = node.is_healthy();
            let ban = node.probed_failed(t.ban_time, t.max_ban_time);
            if was_healthy {
                warn!(cluster = %c.name, node = %node.addr, %error, ban_ms = ban.as_millis() as u64, "health check failed");
            } else {
                debug!(cluster = %c.name, node = %node.addr, %error, "health check failed again");
            }
        }
    }
    update_lag_bytes(c);
    c.elect();
}

/// Replicas' distance behind the primary, in WAL bytes and in time. The
/// time is measured here, from the primary's WAL positions as probed: a
/// replica at position X is as old as the first primary sample past X.
/// (The server's own replay timestamp is unknown until a transaction is
/// replayed, and rests on two clocks.)
fn update_lag_bytes(c: &Cluster) {
    let primary = c.primary_lsn();
    if primary == 0 {
        return;
    }
    c.record_primary_lsn(primary);
    for n in c.nodes() {
        if n.role() == Role::Replica {
            n.set_lag_bytes(primary.saturating_sub(n.lsn()));
            n.raise_lag(c.lag_behind(n.lsn()));
        } else {
            n.set_lag_bytes(0);
        }
    }
}

async fn probe(
    conn: &mut Option<ServerConn>,
    target: &ServerTarget,
    secret: Option<&ServerSecret>,
    query: Option<&str>,
) -> Result<Probe, BackendError> {
    let c = match conn {
        Some(c) => c,
        None => {
            let c = conn.insert(ServerConn::connect(target, secret).await?);
            // Operators see what this connection is in pg_stat_activity.
            c.simple_query("SET application_name = 'attache health check'")
                .await?;
            c
        }
    };
    let row = c.query_row(PROBE_SQL).await?.map_err(|e| {
        BackendError::Protocol(format!("probe query failed: {} ({})", e.message, e.code))
    })?;
    let p = parse_probe(&row)?;
    if let Some(q) = query {
        if let Some(e) = c.simple_query(q).await? {
            return Err(BackendError::Protocol(format!(
                "health query failed: {} ({})",
                e.message, e.code
            )));
        }
    }
    Ok(p)
}

/// Reads the probe's row; anything unexpected is a failed probe.
pub fn parse_probe(row: &[Option<String>]) -> Result<Probe, BackendError> {
    let bad = || BackendError::Protocol(format!("unexpected probe row {row:?}"));
    let [Some(recovery), Some(lsn), Some(lag)] = row else {
        return Err(bad());
    };
    let role = match recovery.as_str() {
        "t" => Role::Replica,
        "f" => Role::Primary,
        _ => return Err(bad()),
    };
    // pg_lsn differences are numeric; they print without a fraction.
    let lsn = lsn
        .split('.')
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|_| bad())?;
    let lag_millis = lag.parse::<i64>().map_err(|_| bad())?.max(0) as u64;
    Ok(Probe {
        role,
        lsn,
        lag_millis,
    })
}

#[cfg(test)]
pub(super) mod tests_support {
    /// Lets unit tests recompute byte lag as a probe round would.
    pub fn update_lag(c: &super::Cluster) {
        super::update_lag_bytes(c);
    }
}
