//! Config → the `[redis]` section: one listener, the servers behind it and
//! the limits a client cannot push past.

use serde::{Deserialize, Serialize};

use std::path::PathBuf;

use super::types::{LocalTls, Secret, SslMode, UpstreamTls};
use super::units::{ByteSize, Dur};

/// `[redis]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// How the servers are organised.
    #[serde(default)]
    pub mode: RedisMode,
    /// Each server as `host:port`, optionally `host:port:weight` and a
    /// name after a space (twemproxy's format: `"10.0.0.1:6379:1 cache1"`).
    /// In `single` mode, the first one is used.
    pub nodes: Vec<String>,
    /// `sharded` mode: the key hash (twemproxy's names: fnv1a_64, murmur,
    /// md5, crc32a, …).
    #[serde(default = "defaults::hash")]
    pub hash: String,
    /// `sharded` mode: only the part of a key between these two characters
    /// is hashed, so related keys land together (twemproxy's `hash_tag`).
    pub hash_tag: Option<String>,
    /// `sharded` mode: take a server that fails `server_failure_limit`
    /// health checks in a row out of the ring (its keys move to the
    /// others) until it answers again, probed after `server_retry_timeout`
    /// (twemproxy's `auto_eject_hosts`). Off by default: keys then never move.
    #[serde(default)]
    pub auto_eject_hosts: bool,
    #[serde(default = "defaults::server_failure_limit")]
    pub server_failure_limit: u32,
    #[serde(default = "defaults::server_retry_timeout")]
    pub server_retry_timeout: Dur,
    /// How often each server is PINGed (sharded mode).
    #[serde(default = "defaults::health_check_interval")]
    pub health_check_interval: Dur,
    /// `single` mode: replicas of the primary, for reads (see `read_from`).
    #[serde(default)]
    pub replicas: Vec<String>,
    /// Where read-only commands go: `primary`, `prefer-replica` (a replica,
    /// the primary when none answers), `replica` (same, for clarity of
    /// intent) or `round-robin` (primary and replicas in turn). Cluster
    /// mode uses each slot's replicas (with READONLY).
    #[serde(default)]
    pub read_from: ReadFrom,
    /// `sentinel` mode: the monitored primary's name.
    pub master_name: Option<String>,
    /// `sentinel` mode: how long requests wait for a new primary during a
    /// failover before they fail.
    #[serde(default = "defaults::failover_timeout")]
    pub failover_timeout: Dur,
    /// ACL user Attaché logs in as (Redis 6+); with only `password`, the
    /// `default` user.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Client-facing TLS: clients connect with TLS (redis-cli --tls).
    pub tls: Option<LocalTls>,
    /// TLS to the servers (and sentinels). Certificates are verified
    /// unless `verify` says otherwise.
    pub server_tls: Option<RedisServerTls>,
    /// When set, clients must `AUTH` (or `HELLO … AUTH`) with it first.
    pub client_password: Option<Secret>,
    /// Named client users (`AUTH name password`, as Redis ACL users do);
    /// with any of these or `client_password`, clients must authenticate.
    #[serde(default)]
    pub client_users: std::collections::BTreeMap<String, Secret>,
    /// Multiplexed connections per server, shared by every client. Each
    /// opens on its first command, so unused ones cost nothing. Clients
    /// fill the first connection up to a cap of commands in flight and
    /// overflow onto the next (see `core::redis::mux::load`), so this is
    /// an upper bound that only heavy concurrency reaches: sixteen by
    /// default, so that a burst of large pipelines still spreads.
    #[serde(default = "defaults::connections_per_node")]
    pub connections_per_node: usize,
    /// Commands answered with an error instead of being run, also once a
    /// client is relayed on a connection of its own (pub/sub, MONITOR,
    /// CLIENT REPLY, CLIENT TRACKING): there a denied command reaches the
    /// server renamed `ATTACHE-DENIED-<NAME>`, so the server's "unknown
    /// command" error takes its place among the replies.
    #[serde(default)]
    pub deny_commands: Vec<String>,
    #[serde(default = "defaults::command_timeout")]
    pub command_timeout: Dur,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "defaults::max_client_connections")]
    pub max_client_connections: usize,
    /// Databases a client may SELECT (0 to `databases - 1`), as Redis's own
    /// `databases` setting. Each one selected gets its own shared
    /// connections, so the bound also bounds those.
    #[serde(default = "defaults::databases")]
    pub databases: u32,
    /// Requests one client may have in flight before Attaché stops reading
    /// from it.
    #[serde(default = "defaults::max_pipeline")]
    pub max_pipeline: usize,
    /// Largest request a client may send (Redis's own
    /// `proto-max-bulk-len` is 512 MB).
    #[serde(default = "defaults::max_request_size")]
    pub max_request_size: ByteSize,
    /// Largest reply Attaché takes from a server. A reply is whole before
    /// it is relayed, and one past this fails its shared connection (every
    /// command on it gets an error), so it sits well above any reply an
    /// application means to get: an aggregate (`LRANGE`, `KEYS`,
    /// `HGETALL`) may be larger than the largest request.
    #[serde(default = "defaults::max_reply_size")]
    pub max_reply_size: ByteSize,
    /// Reply bytes Attaché may hold for one client that has not read them
    /// yet (received, plus its commands in flight at the size of its
    /// recent replies). Past it Attaché stops reading that client's
    /// commands until it reads (backpressure: nothing is lost), so a client
    /// that pipelines much and reads slowly cannot grow Attaché's memory
    /// without bound. One reply larger than this is still delivered.
    #[serde(default = "defaults::max_queued_bytes")]
    pub max_queued_bytes: ByteSize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadFrom {
    #[default]
    Primary,
    PreferReplica,
    Replica,
    RoundRobin,
}

/// `server_tls = { verify = "full", ca_file = "…" }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisServerTls {
    #[serde(default)]
    pub verify: TlsVerify,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// SNI and the verified name; defaults to each node's host.
    pub server_name: Option<String>,
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsVerify {
    /// Chain and host name.
    #[default]
    Full,
    /// Chain only.
    Ca,
    /// Nothing: encryption without authentication.
    None,
}

impl RedisServerTls {
    /// The same settings in the form the TLS layer takes.
    pub fn as_upstream(&self) -> UpstreamTls {
        UpstreamTls {
            sslmode: match self.verify {
                TlsVerify::Full => SslMode::VerifyFull,
                TlsVerify::Ca => SslMode::VerifyCa,
                TlsVerify::None => SslMode::Require,
            },
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            server_name: self.server_name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisMode {
    #[default]
    Single,
    /// Keys spread over the nodes by a ketama ring, placed exactly as
    /// twemproxy places them for the same server list and hash.
    Sharded,
    /// A Redis Cluster; `nodes` are seeds for discovering the slot map.
    Cluster,
    /// A primary found through Sentinel; `nodes` are the sentinels.
    Sentinel,
}

/// One parsed entry of `nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub addr: String,
    pub weight: u32,
    /// The name ketama hashes: the configured one, else `host:port`.
    pub name: String,
}

impl NodeSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (spec, name) = match s.trim().split_once(' ') {
            Some((spec, name)) => (spec, Some(name.trim())),
            None => (s.trim(), None),
        };
        let bad = || format!("invalid socket address {s:?}");
        let (head, last) = spec.rsplit_once(':').ok_or_else(bad)?;
        // `host:port:weight` when the part before the last colon is a port.
        let (host, port, weight) = match head.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, p, Some(last)),
            _ => (head, last, None),
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid socket address {s:?}"))?;
        if host.is_empty() || port == 0 {
            return Err(format!("invalid socket address {s:?}"));
        }
        let weight = match weight {
            Some(w) => w.parse().map_err(|_| format!("invalid weight in {s:?}"))?,
            None => 1,
        };
        if weight == 0 {
            return Err(format!("weight must be at least 1 in {s:?}"));
        }
        let addr = format!("{host}:{port}");
        let name = name.map(str::to_owned).unwrap_or_else(|| addr.clone());
        Ok(Self { addr, weight, name })
    }
}

pub(crate) mod defaults {
    use super::{ByteSize, Dur};
    use std::time::Duration;

    pub fn listen() -> String {
        "127.0.0.1:6380".into()
    }
    pub fn server_failure_limit() -> u32 {
        2
    }
    pub fn server_retry_timeout() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub fn health_check_interval() -> Dur {
        Dur(Duration::from_secs(1))
    }
    pub fn failover_timeout() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub fn hash() -> String {
        "fnv1a_64".into()
    }
    pub fn connections_per_node() -> usize {
        16
    }
    pub fn command_timeout() -> Dur {
        Dur(Duration::from_secs(5))
    }
    pub fn connect_timeout() -> Dur {
        Dur(Duration::from_secs(3))
    }
    pub fn max_client_connections() -> usize {
        10_000
    }
    /// Redis's default `databases`.
    pub fn databases() -> u32 {
        16
    }
    pub fn max_pipeline() -> usize {
        10_000
    }
    pub fn max_request_size() -> ByteSize {
        ByteSize(512 << 20)
    }
    pub fn max_reply_size() -> ByteSize {
        ByteSize(1 << 30)
    }
    /// Far above what pipelining needs to keep a link busy (a window of a
    /// few MB fills any bandwidth-delay product) and above most single
    /// replies, yet small enough that a few stalled clients cannot exhaust
    /// memory.
    pub fn max_queued_bytes() -> ByteSize {
        ByteSize(64 << 20)
    }
}

#[cfg(test)]
mod tests;
