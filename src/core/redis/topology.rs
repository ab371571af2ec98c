//! Route (Redis): the servers behind a listener and which one holds a key.
//! `single` sends everything to one server; `sharded` places keys on a
//! ketama ring exactly as twemproxy does for the same server list, hash and
//! hash tag, so Attaché can replace twemproxy without moving any data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use attache_redis_protocol::frame::Limits;
use attache_redis_protocol::ketama::{HashKind, HashTag, Ketama, KetamaError};

use super::conn::{RedisTarget, Setup};
use super::mux::Mux;
use crate::config::redis::{NodeSpec, RedisConfig, RedisMode};

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
}

/// One server and its shared connections, per (RESP version, database).
pub struct Node {
    pub spec: NodeSpec,
    pub target: Arc<RedisTarget>,
    connections: usize,
    muxes: Mutex<HashMap<Setup, Arc<Mux>>>,
}

impl Node {
    /// The shared connections for one setup, made on first use.
    pub fn mux(&self, setup: Setup) -> Arc<Mux> {
        let mut muxes = match self.muxes.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        muxes
            .entry(setup)
            .or_insert_with(|| Arc::new(Mux::new(self.target.clone(), setup, self.connections)))
            .clone()
    }
}

enum Placement {
    Single,
    Ketama {
        ring: Ketama,
        hash: HashKind,
        tag: Option<HashTag>,
    },
}

pub struct Topology {
    pub nodes: Vec<Node>,
    placement: Placement,
}

impl Topology {
    pub fn new(cfg: &RedisConfig) -> Result<Self, TopologyError> {
        let limits = Limits {
            max_frame_size: cfg.max_request_size.0 as usize,
            ..Limits::default()
        };
        let mut nodes = Vec::new();
        for (index, s) in cfg.nodes.iter().enumerate() {
            let spec =
                NodeSpec::parse(s).map_err(|message| TopologyError::Node { index, message })?;
            let target = RedisTarget {
                addr: spec.addr.clone(),
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                connect_timeout: cfg.connect_timeout.0,
                limits,
            };
            nodes.push(Node {
                spec,
                target: Arc::new(target),
                connections: cfg.connections_per_node,
                muxes: Mutex::new(HashMap::new()),
            });
        }
        if nodes.is_empty() {
            return Err(TopologyError::Empty);
        }
        let placement = match cfg.mode {
            RedisMode::Single => {
                nodes.truncate(1);
                Placement::Single
            }
            RedisMode::Sharded => {
                let servers: Vec<(String, u32)> = nodes
                    .iter()
                    .map(|n| (n.spec.name.clone(), n.spec.weight))
                    .collect();
                let hash = cfg
                    .hash
                    .parse()
                    .map_err(|_| TopologyError::Hash(cfg.hash.clone()))?;
                Placement::Ketama {
                    ring: Ketama::new(&servers)?,
                    hash,
                    tag: cfg.hash_tag.as_deref().and_then(HashTag::parse),
                }
            }
        };
        Ok(Self { nodes, placement })
    }

    pub fn is_sharded(&self) -> bool {
        matches!(self.placement, Placement::Ketama { .. })
    }

    /// The index of the node that holds `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        match &self.placement {
            Placement::Single => 0,
            Placement::Ketama { ring, hash, tag } => ring.server_for_key(*hash, *tag, key),
        }
    }

    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index.min(self.nodes.len() - 1)]
    }
}
