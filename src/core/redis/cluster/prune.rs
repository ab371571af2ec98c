//! Route (Redis Cluster): forgetting the nodes a new slot map no longer
//! lists, so that a cluster reshaped over time (nodes removed, replaced,
//! renumbered) does not leave Attaché holding their shared connections
//! for good.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::debug;

use super::{Cluster, SlotMap};

/// The key of a replica's READONLY node in `Cluster::known`.
pub(super) fn readonly_key(addr: &str) -> String {
    format!("{addr}#readonly")
}

impl Cluster {
    /// Installs a freshly fetched slot map and forgets every known node it
    /// does not list (as a primary or a replica) and that is not a seed.
    ///
    /// A forgotten node's shared connections close once nothing holds the
    /// node any more: requests in flight on them finish first. A node a
    /// redirect names later (an ASK to a node owning no slot yet, during a
    /// scale-out) is checked and made anew, as on first sight.
    pub(super) fn install(&self, map: SlotMap) {
        let mut keep: HashSet<String> = self.seeds.iter().cloned().collect();
        keep.extend(map.nodes.iter().map(|n| n.addr.clone()));
        keep.extend(map.replicas.iter().flatten().map(|n| readonly_key(&n.addr)));
        let map = Arc::new(map);
        match self.map.write() {
            Ok(mut m) => *m = map,
            Err(p) => *p.into_inner() = map,
        }
        let mut known = match self.known.write() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        let before = known.len();
        known.retain(|key, _| keep.contains(key));
        let forgotten = before - known.len();
        if forgotten > 0 {
            debug!(
                forgotten,
                "Redis Cluster nodes no longer in the slot map forgotten"
            );
        }
    }
}

#[cfg(test)]
mod tests;
