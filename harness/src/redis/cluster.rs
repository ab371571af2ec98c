//! A real Redis Cluster as the test *backend* of accept → parse → route → backend → respond:
//! nodes in cluster mode joined by `redis-cli --cluster create`, plus the slot-migration
//! sequence from the Redis docs so tests can move a slot (MOVED/ASK redirects) under load.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::resp::{info_field, Conn, Reply};
use super::{redis_cli, RedisBuilder, RedisError, RedisServer};

/// Number of hash slots in a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;
/// Seconds the cluster gets to converge after creation.
const CONVERGE_SECS: u64 = 15;
/// Keys moved per `MIGRATE` call.
const MIGRATE_BATCH: &str = "100";
/// `MIGRATE` timeout in milliseconds.
const MIGRATE_TIMEOUT_MS: &str = "5000";

/// A running cluster; dropping it kills every node and removes their files.
#[derive(Debug)]
pub struct RedisCluster {
    /// All nodes: right after [`RedisCluster::start`] the primaries come first, ordered by
    /// their first slot (so `nodes[0]` owns slot 0), followed by the replicas.
    pub nodes: Vec<RedisServer>,
    primaries: usize,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeLine {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// Id of the primary this node replicates.
    pub primary: Option<String>,
    /// Owned slot ranges (inclusive); migration markers `[…]` are skipped.
    pub slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot))
    }
}

impl RedisCluster {
    /// Starts `primaries` (at least 3) primaries with `replicas_per_primary` replicas each,
    /// without password; see [`RedisCluster::start_with`].
    pub fn start(primaries: usize, replicas_per_primary: usize) -> Result<Self, RedisError> {
        Self::start_with(RedisBuilder::new(), primaries, replicas_per_primary)
    }

    /// Starts every node from `builder` (password, users, settings) in cluster mode, joins them
    /// with `redis-cli --cluster create`, and waits until every node reports
    /// `cluster_state:ok`, knows all nodes, and every replica's link is up.
    pub fn start_with(
        builder: RedisBuilder,
        primaries: usize,
        replicas_per_primary: usize,
    ) -> Result<Self, RedisError> {
        if primaries < 3 {
            return Err(RedisError::Topology(format!(
                "a Redis Cluster needs at least 3 primaries, {primaries} asked"
            )));
        }
        let count = primaries * (1 + replicas_per_primary);
        let builder = builder.cluster();
        let started: Vec<Result<RedisServer, RedisError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .map(|_| scope.spawn(|| builder.clone().start()))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RedisError::Topology("a node start panicked".to_string()))
                    })
                })
                .collect()
        });
        let nodes = started.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut cluster = RedisCluster { nodes, primaries };
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(cluster.nodes.iter().map(|n| n.addr().to_string()));
        args.extend([
            "--cluster-replicas".to_string(),
            replicas_per_primary.to_string(),
            "--cluster-yes".to_string(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let first = &cluster.nodes[0];
        redis_cli(first.port(), first.auth(), &[], &args)?;
        cluster.wait_ok()?;
        cluster.sort_nodes()?;
        Ok(cluster)
    }

    /// Starts one more primary from `builder`, joins it with `CLUSTER MEET` and waits until
    /// every node knows it. It owns no slot until one is moved to it ([`Self::migrate_slot`]),
    /// as in a scale-out; it is appended to [`RedisCluster::nodes`] and its index returned.
    pub fn add_primary(&mut self, builder: RedisBuilder) -> Result<usize, RedisError> {
        let node = builder.cluster().start()?;
        let port = node.port().to_string();
        self.nodes[0].call(&["CLUSTER", "MEET", "127.0.0.1", &port])?;
        self.nodes.push(node);
        self.primaries += 1;
        self.wait_ok()?;
        Ok(self.nodes.len() - 1)
    }

    /// `127.0.0.1:port` of every node, in [`RedisCluster::nodes`] order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// Waits (up to 15 s) until every running node reports `cluster_state:ok`, knows every
    /// node, flags as failed only nodes that are really down, sees as many live primaries as
    /// the cluster was created with, and (for replicas) has its link to the primary up.
    pub fn wait_ok(&self) -> Result<(), RedisError> {
        let deadline = Instant::now() + Duration::from_secs(CONVERGE_SECS);
        loop {
            let Err(why) = self.check_ok() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(RedisError::Timeout {
                    what: format!("the cluster to converge (last: {why})"),
                    secs: CONVERGE_SECS,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ok if the cluster is converged, else what is still missing.
    fn check_ok(&self) -> Result<(), String> {
        let down: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.pid().is_none())
            .map(RedisServer::port)
            .collect();
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            let port = node.port();
            let info = node.call(&["CLUSTER", "INFO"]).map_err(|e| e.to_string())?;
            let state = info_field(&info.text().unwrap_or_default(), "cluster_state");
            if state.as_deref() != Some("ok") {
                return Err(format!("port {port}: cluster_state {state:?}"));
            }
            let view = cluster_nodes(node).map_err(|e| e.to_string())?;
            let failed = |l: &NodeLine| l.has_flag("fail") || l.has_flag("fail?");
            let settled = view.len() == self.nodes.len()
                && view.iter().all(|l| {
                    !l.has_flag("handshake")
                        && !l.has_flag("noaddr")
                        && failed(l) == down.contains(&l.port)
                });
            if !settled {
                return Err(format!("port {port} sees {view:?}"));
            }
            let primaries = view
                .iter()
                .filter(|l| l.has_flag("master") && !failed(l))
                .count();
            if primaries != self.primaries {
                return Err(format!("port {port} sees {primaries} live primaries"));
            }
            if view
                .iter()
                .any(|l| l.has_flag("myself") && l.has_flag("slave"))
            {
                let link = node.info_field("replication", "master_link_status");
                if !matches!(&link, Ok(s) if s == "up") {
                    return Err(format!("port {port}: master_link_status {link:?}"));
                }
            }
        }
        Ok(())
    }

    /// Puts primaries first (by first owned slot), then replicas.
    fn sort_nodes(&mut self) -> Result<(), RedisError> {
        let mut keyed = Vec::with_capacity(self.nodes.len());
        for node in self.nodes.drain(..) {
            let me = myself(&node)?;
            let first_slot = me.slots.first().map(|&(lo, _)| lo);
            let key = match (me.has_flag("master"), first_slot) {
                (true, Some(slot)) => u32::from(slot),
                _ => u32::from(SLOTS) + u32::from(node.port()),
            };
            keyed.push((key, node));
        }
        keyed.sort_by_key(|(key, _)| *key);
        self.nodes = keyed.into_iter().map(|(_, node)| node).collect();
        Ok(())
    }

    /// The node that, by its own `CLUSTER NODES` view, is a primary serving `slot`.
    pub fn primary_for_slot(&self, slot: u16) -> Result<&RedisServer, RedisError> {
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            let me = myself(node)?;
            if me.has_flag("master") && me.owns(slot) {
                return Ok(node);
            }
        }
        Err(RedisError::Topology(format!(
            "no running primary serves slot {slot}"
        )))
    }

    /// Moves `slot` from primary `from` to primary `to` the documented way: `CLUSTER SETSLOT
    /// IMPORTING` on `to`, `MIGRATING` on `from`, `MIGRATE` of every key (batches of 100,
    /// repeated until the slot is empty, so keys written meanwhile move too), then `SETSLOT
    /// NODE` on `to`, `from` and every other primary. Returns the number of keys moved.
    pub fn migrate_slot(
        &self,
        slot: u16,
        from: &RedisServer,
        to: &RedisServer,
    ) -> Result<usize, RedisError> {
        let from_id = from.cluster_node_id()?;
        let to_id = to.cluster_node_id()?;
        let s = slot.to_string();
        to.call(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id])?;
        from.call(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id])?;
        let moved = move_keys(&s, from, to)?;
        to.call(&["CLUSTER", "SETSLOT", &s, "NODE", &to_id])?;
        from.call(&["CLUSTER", "SETSLOT", &s, "NODE", &to_id])?;
        for node in &self.nodes {
            let other = node.port() != from.port() && node.port() != to.port();
            if other && node.pid().is_some() && myself(node)?.has_flag("master") {
                node.call(&["CLUSTER", "SETSLOT", &s, "NODE", &to_id])?;
            }
        }
        Ok(moved)
    }
}

impl RedisServer {
    /// This node's cluster id (`CLUSTER MYID`).
    pub fn cluster_node_id(&self) -> Result<String, RedisError> {
        let reply = self.call(&["CLUSTER", "MYID"])?;
        reply.text().ok_or_else(|| RedisError::Reply {
            command: "CLUSTER MYID".to_string(),
            port: self.port(),
            reply: format!("{reply:?}"),
        })
    }
}

/// `MIGRATE`s every key of slot `s` from `from` to `to`; returns how many moved.
fn move_keys(s: &str, from: &RedisServer, to: &RedisServer) -> Result<usize, RedisError> {
    let mut conn = Conn::open(from.port(), from.auth())?;
    let to_port = to.port().to_string();
    let mut moved = 0;
    loop {
        let keys = conn.cmd(&["CLUSTER", "GETKEYSINSLOT", s, MIGRATE_BATCH])?;
        let keys: Vec<&[u8]> = keys
            .items()
            .iter()
            .filter_map(|k| match k {
                Reply::Bulk(Some(key)) => Some(key.as_slice()),
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return Ok(moved);
        }
        let mut args: Vec<&[u8]> = vec![
            b"MIGRATE",
            b"127.0.0.1",
            to_port.as_bytes(),
            b"",
            b"0",
            MIGRATE_TIMEOUT_MS.as_bytes(),
        ];
        let auth = to.auth();
        if let Some(password) = &auth.password {
            match &auth.user {
                Some(user) => args.extend([&b"AUTH2"[..], user.as_bytes()]),
                None => args.push(b"AUTH"),
            }
            args.push(password.as_bytes());
        }
        args.push(b"KEYS");
        args.extend(keys.iter().copied());
        conn.ok(&args)?;
        moved += keys.len();
    }
}

/// `CLUSTER NODES` as seen by `node`.
fn cluster_nodes(node: &RedisServer) -> Result<Vec<NodeLine>, RedisError> {
    let text = node.call(&["CLUSTER", "NODES"])?.text().unwrap_or_default();
    Ok(parse_nodes(&text))
}

/// The `myself` line of `node`'s own view.
fn myself(node: &RedisServer) -> Result<NodeLine, RedisError> {
    cluster_nodes(node)?
        .into_iter()
        .find(|l| l.has_flag("myself"))
        .ok_or_else(|| RedisError::Reply {
            command: "CLUSTER NODES".to_string(),
            port: node.port(),
            reply: "no `myself` line".to_string(),
        })
}

/// Parses `CLUSTER NODES` output; malformed lines are skipped.
pub(crate) fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines().filter_map(parse_node_line).collect()
}

fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    // `ip:port@cport[,hostname]`
    let addr = fields[1].split(['@', ',']).next()?;
    let port = addr.rsplit_once(':')?.1.parse().ok()?;
    let slots = fields[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((lo, hi)) => Some((lo.parse().ok()?, hi.parse().ok()?)),
            None => s.parse().ok().map(|n| (n, n)),
        })
        .collect();
    Some(NodeLine {
        id: fields[0].to_string(),
        port,
        flags: fields[2].split(',').map(str::to_string).collect(),
        primary: Some(fields[3]).filter(|p| *p != "-").map(str::to_string),
        slots,
    })
}

/// The hash slot of `key` (CRC16/XMODEM mod 16384), honouring `{hash tags}` like Redis does:
/// if the key has a `{` followed later by a `}` with something in between, only that part
/// is hashed.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests;
