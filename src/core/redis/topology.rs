//! Route (Redis): the servers behind a listener and which one holds a key.
//! `single` sends everything to one server; `sharded` places keys on a
//! ketama ring exactly as twemproxy does for the same server list, hash and
//! hash tag, so Attaché can replace twemproxy without moving any data;
//! `cluster` follows a Redis Cluster's slot map (see [`super::cluster`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use attache_redis_protocol::frame::Limits;
use attache_redis_protocol::ketama::{HashTag, KetamaError};
use attache_redis_protocol::slot::hash_slot;

use super::cluster::Cluster;
use super::conn::{RedisTarget, Setup};
use super::mux::{Mux, NodeStats};
use super::ring::{EjectPolicy, ShardRing};
use super::sentinel::Sentinel;

mod muxes;
use crate::config::redis::{NodeSpec, ReadFrom, RedisConfig, RedisMode};
use crate::net::tls;

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("redis.nodes[{index}]: {message}")]
    Node { index: usize, message: String },
    #[error("redis.nodes: {0}")]
    Ring(#[from] KetamaError),
    #[error("redis.hash: unknown hash {0:?}")]
    Hash(String),
    #[error("redis.nodes: at least one node is required")]
    Empty,
    #[error("redis.server_tls: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
}

/// One server and its shared connections, per (RESP version, database).
pub struct Node {
    pub addr: String,
    pub target: Arc<RedisTarget>,
    connections: usize,
    muxes: muxes::Muxes,
    /// Counted by every shared connection to this server, whatever its
    /// setup, for the admin metrics.
    pub stats: Arc<NodeStats>,
}

impl Node {
    pub fn new(target: RedisTarget, connections: usize) -> Self {
        Self {
            addr: target.addr.clone(),
            target: Arc::new(target),
            connections,
            muxes: muxes::Muxes::new(),
            stats: Arc::default(),
        }
    }

    /// The shared connections for one setup, made on first use.
    pub fn mux(&self, setup: Setup) -> Arc<Mux> {
        self.muxes.get(setup, || {
            Mux::with_stats(
                self.target.clone(),
                setup,
                self.connections,
                self.stats.clone(),
            )
        })
    }
}

/// Where read-only commands may go instead of the primary: the configured
/// replicas in `single` mode, those the sentinels list in `sentinel` mode.
pub struct Replicas {
    pub nodes: Vec<Arc<Node>>,
    pub policy: ReadFrom,
    turn: AtomicUsize,
}

impl Replicas {
    pub(crate) fn new(nodes: Vec<Arc<Node>>, policy: ReadFrom) -> Self {
        Self {
            nodes,
            policy,
            turn: AtomicUsize::new(0),
        }
    }

    /// The replica for this client's next read, or `None` for the primary.
    /// A client keeps one replica (its lane) so its reads stay ordered.
    pub fn pick(&self, lane: usize) -> Option<Arc<Node>> {
        if self.nodes.is_empty() {
            return None;
        }
        match self.policy {
            ReadFrom::Primary => None,
            ReadFrom::PreferReplica | ReadFrom::Replica => {
                Some(self.nodes[lane % self.nodes.len()].clone())
            }
            ReadFrom::RoundRobin => {
                let i = self.turn.fetch_add(1, Ordering::Relaxed) % (self.nodes.len() + 1);
                i.checked_sub(1).map(|r| self.nodes[r].clone())
            }
        }
    }
}

pub enum Topology {
    Single(Arc<Node>, Replicas),
    Sharded {
        nodes: Vec<Arc<Node>>,
        ring: Arc<ShardRing>,
    },
    Cluster(Arc<Cluster>),
    Sentinel(Arc<Sentinel>),
}

/// What every node of a listener is reached with: credentials, limits,
/// timeouts and TLS, with only the address varying.
#[derive(Clone)]
pub struct TargetTemplate {
    pub cfg: Arc<RedisConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl TargetTemplate {
    pub fn new(cfg: &RedisConfig) -> Result<Self, TopologyError> {
        let tls = match &cfg.server_tls {
            Some(t) => tls::client_config(&t.as_upstream())?,
            None => None,
        };
        Ok(Self {
            cfg: Arc::new(cfg.clone()),
            tls,
        })
    }

    pub fn target(&self, addr: String) -> RedisTarget {
        let cfg = &self.cfg;
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match (&self.tls, &cfg.server_tls) {
            (Some(c), Some(t)) => tls::server_name(&t.as_upstream(), &host)
                .ok()
                .map(|n| (c.clone(), n)),
            _ => None,
        };
        RedisTarget {
            addr,
            tls,
            username: cfg.username.clone(),
            password: cfg.password.clone(),
            connect_timeout: cfg.connect_timeout.0,
            readonly: false,
            limits: Limits {
                max_frame_size: cfg.max_reply_size.0 as usize,
                ..Limits::default()
            },
        }
    }
}

impl Topology {
    pub fn new(cfg: &RedisConfig) -> Result<Self, TopologyError> {
        let mut specs = Vec::new();
        for (index, s) in cfg.nodes.iter().enumerate() {
            specs.push(
                NodeSpec::parse(s).map_err(|message| TopologyError::Node { index, message })?,
            );
        }
        let first = specs.first().ok_or(TopologyError::Empty)?;
        let template = TargetTemplate::new(cfg)?;
        let node = |spec: &NodeSpec| {
            Arc::new(Node::new(
                template.target(spec.addr.clone()),
                cfg.connections_per_node,
            ))
        };
        Ok(match cfg.mode {
            RedisMode::Single => {
                let mut replicas = Vec::new();
                for (index, r) in cfg.replicas.iter().enumerate() {
                    let spec = NodeSpec::parse(r)
                        .map_err(|message| TopologyError::Node { index, message })?;
                    replicas.push(node(&spec));
                }
                Topology::Single(node(first), Replicas::new(replicas, cfg.read_from))
            }
            RedisMode::Sharded => {
                let servers: Vec<(String, u32)> =
                    specs.iter().map(|n| (n.name.clone(), n.weight)).collect();
                let hash = cfg
                    .hash
                    .parse()
                    .map_err(|_| TopologyError::Hash(cfg.hash.clone()))?;
                let policy = EjectPolicy {
                    enabled: cfg.auto_eject_hosts,
                    failure_limit: cfg.server_failure_limit.max(1),
                    retry_after: cfg.server_retry_timeout.0,
                    interval: cfg.health_check_interval.0,
                };
                let tag = cfg.hash_tag.as_deref().and_then(HashTag::parse);
                let ring = Arc::new(ShardRing::new(servers, hash, tag, policy)?);
                let nodes: Vec<Arc<Node>> = specs.iter().map(node).collect();
                ring.spawn_health(nodes.clone());
                Topology::Sharded { nodes, ring }
            }
            RedisMode::Cluster => {
                let seeds = specs.iter().map(|s| s.addr.clone()).collect();
                Topology::Cluster(Cluster::start(template.clone(), seeds))
            }
            RedisMode::Sentinel => {
                let sentinels = specs.iter().map(|s| s.addr.clone()).collect();
                Topology::Sentinel(Sentinel::start(template.clone(), sentinels))
            }
        })
    }

    /// Whether keys are spread over several nodes.
    pub fn is_sharded(&self) -> bool {
        matches!(self, Topology::Sharded { .. } | Topology::Cluster(_))
    }

    /// The replica a read-only command from `lane` should use, if any
    /// (`shard`: the cluster slot of its keys).
    pub fn replica_for_read(&self, lane: usize, shard: Option<usize>) -> Option<Arc<Node>> {
        match self {
            Topology::Single(_, replicas) => replicas.pick(lane),
            Topology::Cluster(c) => c.replica_for_slot(shard? as u16, lane),
            Topology::Sentinel(s) => s.replica_for_read(lane),
            Topology::Sharded { .. } => None,
        }
    }

    pub fn reads_from_replicas(&self) -> bool {
        match self {
            Topology::Single(_, r) => r.policy != ReadFrom::Primary && !r.nodes.is_empty(),
            Topology::Cluster(c) => c.reads_from_replicas(),
            // Replicas come and go with the sentinels' view; reads are
            // routed per command and fall back to the primary.
            Topology::Sentinel(s) => s.reads_from_replicas(),
            Topology::Sharded { .. } => false,
        }
    }

    pub fn sentinel(&self) -> Option<&Arc<Sentinel>> {
        match self {
            Topology::Sentinel(s) => Some(s),
            _ => None,
        }
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        match self {
            Topology::Cluster(c) => Some(c),
            _ => None,
        }
    }

    /// The unit keys are grouped by: a ketama node index, or a cluster
    /// slot (multi-key commands must stay within one slot in a cluster).
    pub fn shard_of(&self, key: &[u8]) -> usize {
        match self {
            Topology::Single(..) | Topology::Sentinel(_) => 0,
            Topology::Sharded { ring, .. } => ring.node_for_key(key),
            Topology::Cluster(_) => hash_slot(key) as usize,
        }
    }

    /// The node serving a shard as numbered by [`Self::shard_of`].
    pub fn node_for_shard(&self, shard: usize) -> Arc<Node> {
        match self {
            Topology::Single(n, _) => n.clone(),
            Topology::Sharded { nodes, .. } => nodes[shard.min(nodes.len() - 1)].clone(),
            Topology::Cluster(c) => c.node_for_slot(shard as u16),
            Topology::Sentinel(s) => s.primary(),
        }
    }

    /// Every node a fan-out command must reach (cluster: the primaries).
    pub fn all_nodes(&self) -> Vec<Arc<Node>> {
        match self {
            Topology::Single(n, _) => vec![n.clone()],
            Topology::Sharded { nodes, .. } => nodes.clone(),
            Topology::Cluster(c) => c.primaries(),
            Topology::Sentinel(s) => vec![s.primary()],
        }
    }

    /// Where keyless commands go.
    pub fn first(&self) -> Arc<Node> {
        match self {
            Topology::Single(n, _) => n.clone(),
            Topology::Sharded { nodes, .. } => nodes[0].clone(),
            Topology::Cluster(c) => c.any_node(),
            Topology::Sentinel(s) => s.primary(),
        }
    }
}
