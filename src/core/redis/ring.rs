//! Route (Redis, sharded): the ketama ring and its health. Each node is
//! PINGed on an interval; with `auto_eject_hosts`, a node that fails
//! `server_failure_limit` checks in a row leaves the ring (its keys move to
//! the other nodes, as twemproxy does) and is probed again after
//! `server_retry_timeout`, rejoining once it answers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use attache_redis_protocol::frame::Version;
use attache_redis_protocol::ketama::{HashKind, HashTag, Ketama, KetamaError};
use bytes::Bytes;
use tokio::time::Instant;
use tracing::{info, warn};

use super::conn::Setup;
use super::topology::Node;

/// The ring over the nodes currently in it.
struct Live {
    ring: Ketama,
    /// Ring server index → node index.
    members: Vec<usize>,
}

/// How nodes leave and rejoin the ring.
#[derive(Debug, Clone, Copy)]
pub struct EjectPolicy {
    pub enabled: bool,
    pub failure_limit: u32,
    pub retry_after: Duration,
    pub interval: Duration,
}

pub struct ShardRing {
    servers: Vec<(String, u32)>,
    hash: HashKind,
    tag: Option<HashTag>,
    live: RwLock<Arc<Live>>,
    failures: Vec<AtomicU32>,
    /// When each ejected node may be probed again.
    ejected: RwLock<Vec<Option<Instant>>>,
    policy: EjectPolicy,
}

impl ShardRing {
    pub fn new(
        servers: Vec<(String, u32)>,
        hash: HashKind,
        tag: Option<HashTag>,
        policy: EjectPolicy,
    ) -> Result<Self, KetamaError> {
        let members: Vec<usize> = (0..servers.len()).collect();
        let ring = Ketama::new(&servers)?;
        Ok(Self {
            failures: servers.iter().map(|_| AtomicU32::new(0)).collect(),
            ejected: RwLock::new(vec![None; servers.len()]),
            live: RwLock::new(Arc::new(Live { ring, members })),
            servers,
            hash,
            tag,
            policy,
        })
    }

    /// The node index holding `key` among the nodes in the ring.
    pub fn node_for_key(&self, key: &[u8]) -> usize {
        let live = match self.live.read() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let i = live.ring.server_for_key(self.hash, self.tag, key);
        live.members.get(i).copied().unwrap_or(0)
    }

    /// Rebuilds the ring over the nodes that are not ejected.
    fn rebuild(&self) {
        let ejected = match self.ejected.read() {
            Ok(e) => e.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let members: Vec<usize> = (0..self.servers.len())
            .filter(|i| ejected[*i].is_none())
            .collect();
        // Never eject the last node: a ring must have a member.
        let members = if members.is_empty() {
            (0..self.servers.len()).collect()
        } else {
            members
        };
        let servers: Vec<(String, u32)> =
            members.iter().map(|i| self.servers[*i].clone()).collect();
        if let Ok(ring) = Ketama::new(&servers) {
            if let Ok(mut live) = self.live.write() {
                *live = Arc::new(Live { ring, members });
            }
        }
    }

    fn set_ejected(&self, node: usize, until: Option<Instant>) {
        if let Ok(mut e) = self.ejected.write() {
            e[node] = until;
        }
        self.rebuild();
    }

    fn ejected_until(&self, node: usize) -> Option<Instant> {
        self.ejected.read().ok().and_then(|e| e[node])
    }

    /// Records one health check of `node`.
    fn record(&self, node: usize, ok: bool, addr: &str) {
        if ok {
            self.failures[node].store(0, Ordering::Relaxed);
            if self.ejected_until(node).is_some() {
                info!(server.addr = %addr, "redis server answers again; back in the ring");
                self.set_ejected(node, None);
            }
            return;
        }
        let failures = self.failures[node].fetch_add(1, Ordering::Relaxed) + 1;
        if self.policy.enabled
            && failures >= self.policy.failure_limit
            && self.ejected_until(node).is_none()
        {
            warn!(server.addr = %addr, failures, "redis server ejected from the ring");
            self.set_ejected(node, Some(Instant::now() + self.policy.retry_after));
        }
    }

    /// PINGs every node on the policy's interval until the ring is dropped.
    /// Ejected nodes are probed only once their retry time has come.
    pub fn spawn_health(self: &Arc<Self>, nodes: Vec<Arc<Node>>) {
        let ring: Weak<Self> = Arc::downgrade(self);
        let interval = self.policy.interval;
        tokio::spawn(async move {
            let setup = Setup {
                version: Version::Resp2,
                db: 0,
            };
            let ping = Bytes::from_static(b"*1\r\n$4\r\nPING\r\n");
            loop {
                tokio::time::sleep(interval).await;
                let Some(ring) = ring.upgrade() else { return };
                for (i, node) in nodes.iter().enumerate() {
                    if ring.ejected_until(i).is_some_and(|t| Instant::now() < t) {
                        continue;
                    }
                    let rx = node.mux(setup).send(0, ping.clone());
                    let ok = matches!(
                        tokio::time::timeout(interval.max(Duration::from_millis(500)), rx).await,
                        Ok(Ok(Ok(reply))) if reply.starts_with(b"+PONG")
                    );
                    ring.record(i, ok, &node.addr);
                }
            }
        });
    }
}
