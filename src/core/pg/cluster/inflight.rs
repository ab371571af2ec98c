//! Backend → route (Postgres): one transaction's hold on a node, and the
//! per-node load it feeds (outstanding transactions and a latency EWMA)
//! that least-outstanding and EWMA balancing read when they pick.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::{Cluster, Node};

/// One transaction's hold on a node; dropping it records the latency.
#[derive(Debug)]
pub struct InFlight {
    cluster: Arc<Cluster>,
    node: usize,
    started: Instant,
    abandoned: bool,
}

impl InFlight {
    pub(super) fn new(cluster: Arc<Cluster>, node: usize) -> Self {
        Self {
            cluster,
            node,
            started: Instant::now(),
            abandoned: false,
        }
    }

    pub fn node(&self) -> usize {
        self.node
    }

    /// Ends the hold without a latency sample: the transaction failed with
    /// its server, and its duration says nothing about the node's speed.
    pub fn abandon(mut self) -> usize {
        self.abandoned = true;
        self.node
    }
}

/// Milliseconds since the first call: a compact clock for atomics.
fn epoch_millis() -> u64 {
    millis_at(Instant::now())
}

/// [`epoch_millis`] for an instant already read.
fn millis_at(t: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    t.saturating_duration_since(*EPOCH.get_or_init(|| t))
        .as_millis() as u64
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(n) = self.cluster.nodes.get(self.node) else {
            return;
        };
        n.outstanding.fetch_sub(1, Ordering::Relaxed);
        if self.abandoned {
            return;
        }
        // One clock read for the sample and the EWMA's age.
        let now = Instant::now();
        let now_ms = millis_at(now);
        let sample = now
            .saturating_duration_since(self.started)
            .as_micros()
            .min(u64::MAX as u128) as u64;
        n.latency.record(sample);
        let old = n.ewma_as_of(now_ms);
        let new = if old == 0 {
            sample
        } else {
            (old * 4 + sample) / 5
        };
        n.ewma_micros.store(new, Ordering::Relaxed);
        n.ewma_at.store(now_ms, Ordering::Relaxed);
    }
}

impl Node {
    /// Outstanding transactions and the latency EWMA, which halves for
    /// each second without a sample: a node that was slow once (or failed)
    /// and so stopped being picked must not be shunned forever.
    pub(super) fn load(&self) -> (usize, u64) {
        let ewma = self.ewma_as_of(epoch_millis());
        (self.outstanding.load(Ordering::Relaxed), ewma)
    }

    /// The latency EWMA as of `now_ms` (see [`Node::load`]).
    fn ewma_as_of(&self, now_ms: u64) -> u64 {
        let age_secs = now_ms.saturating_sub(self.ewma_at.load(Ordering::Relaxed)) / 1000;
        self.ewma_micros.load(Ordering::Relaxed) >> age_secs.min(63)
    }
}
