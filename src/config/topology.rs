//! Config → how one database's nodes are used: read/write splitting,
//! consistency, balancing, failover and health checks. Read at startup; the
//! route and backend steps of accept → parse → route → backend → respond
//! consult the resolved form ([`Topology`]) on every transaction.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::Secret;
use super::units::{ByteSize, Dur};

/// `read_write_split`: whether reads may leave the primary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitMode {
    /// Everything goes to the primary (replicas are standbys for failover).
    Off,
    /// Reads, as PostgreSQL's grammar says, go to replicas.
    #[default]
    Auto,
}

/// `consistency`: what a client that just wrote may read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// Reads may go to any replica within `max_lag`.
    Eventual,
    /// After a client's write commits, its reads stay on the primary until a
    /// replica has replayed that commit.
    #[default]
    ReadYourWrites,
}

/// `balance`: how a read picks among eligible replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    RoundRobin,
    Random,
    LeastOutstanding,
    /// Power of two random choices, compared by an EWMA of latency
    /// weighted by outstanding requests.
    #[default]
    P2c,
}

/// `primary_reads`: whether the primary serves reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrimaryReads {
    /// The primary is one more read target.
    Always,
    /// Only when no replica is eligible.
    #[default]
    Fallback,
    /// Reads wait for a replica (bounded by `checkout_timeout`) or fail.
    Never,
}

/// `[postgres.databases.NAME.health]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Between probes of each node. Default 1s.
    pub interval: Option<Dur>,
    /// A probe slower than this fails. Default 2s.
    pub timeout: Option<Dur>,
    /// Run after the role/LSN probe, e.g. a query on an app table.
    pub query: Option<String>,
    /// First ban of a failing node; doubles per failure up to `max_ban_time`.
    pub ban_time: Option<Dur>,
    pub max_ban_time: Option<Dur>,
    /// A replica further behind than this (in time) gets no reads. Default 10s; 0 disables.
    pub max_lag: Option<Dur>,
    /// The same in WAL bytes. Default 16 MiB; 0 disables.
    pub max_lag_bytes: Option<ByteSize>,
    /// Role the probes log in as; defaults to the first user a client logs
    /// in with (and that user's credentials).
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// The topology knobs with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub split: SplitMode,
    pub consistency: Consistency,
    pub balance: Balance,
    pub primary_reads: PrimaryReads,
    pub failover_timeout: Duration,
    pub read_only_functions: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub query: Option<String>,
    pub ban_time: Duration,
    pub max_ban_time: Duration,
    pub max_lag: Option<Duration>,
    pub max_lag_bytes: Option<u64>,
    pub probe_user: Option<String>,
    pub probe_password: Option<Secret>,
}

pub mod builtin {
    use std::time::Duration;

    pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
    pub const INTERVAL: Duration = Duration::from_secs(1);
    pub const TIMEOUT: Duration = Duration::from_secs(2);
    pub const BAN_TIME: Duration = Duration::from_secs(2);
    pub const MAX_BAN_TIME: Duration = Duration::from_secs(60);
    pub const MAX_LAG: Duration = Duration::from_secs(10);
    pub const MAX_LAG_BYTES: u64 = 16 << 20;
}

impl Topology {
    /// Applies defaults to what a database entry says.
    pub fn resolve(db: &super::types::DatabaseConfig) -> Self {
        let h = &db.health;
        let d = |v: Option<Dur>, fallback: Duration| v.map_or(fallback, |d| d.0);
        Topology {
            split: db.read_write_split,
            consistency: db.consistency,
            balance: db.balance,
            primary_reads: db.primary_reads,
            failover_timeout: d(db.failover_timeout, builtin::FAILOVER_TIMEOUT),
            read_only_functions: db.read_only_functions.clone(),
            interval: d(h.interval, builtin::INTERVAL),
            timeout: d(h.timeout, builtin::TIMEOUT),
            query: h.query.clone().filter(|q| !q.trim().is_empty()),
            ban_time: d(h.ban_time, builtin::BAN_TIME),
            max_ban_time: d(h.max_ban_time, builtin::MAX_BAN_TIME),
            max_lag: Some(d(h.max_lag, builtin::MAX_LAG)).filter(|d| !d.is_zero()),
            max_lag_bytes: Some(h.max_lag_bytes.map_or(builtin::MAX_LAG_BYTES, |b| b.0))
                .filter(|b| *b > 0),
            probe_user: h.user.clone(),
            probe_password: h.password.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
