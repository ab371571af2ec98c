//! Route (Postgres): choosing one of the eligible read targets. Every
//! strategy is O(eligible nodes) with no locks: it runs per transaction.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use super::Node;
use crate::config::topology::Balance;

/// Picks one index out of `eligible` (indexes into `nodes`).
pub(super) fn choose(
    how: Balance,
    nodes: &[Node],
    eligible: &[usize],
    rr: &AtomicUsize,
) -> Option<usize> {
    match eligible.len() {
        0 => return None,
        1 => return Some(eligible[0]),
        _ => {}
    }
    let n = eligible.len();
    let pick = match how {
        Balance::RoundRobin => rr.fetch_add(1, Ordering::Relaxed) % n,
        Balance::Random => rand::thread_rng().gen_range(0..n),
        Balance::LeastOutstanding => {
            // Ties rotate, so equal nodes share the load.
            let start = rr.fetch_add(1, Ordering::Relaxed);
            (0..n)
                .map(|k| (start + k) % n)
                .min_by_key(|&k| nodes[eligible[k]].load().0)
                .unwrap_or(0)
        }
        Balance::P2c => {
            let mut rng = rand::thread_rng();
            let a = rng.gen_range(0..n);
            let b = (a + rng.gen_range(1..n)) % n;
            if cost(&nodes[eligible[a]]) <= cost(&nodes[eligible[b]]) {
                a
            } else {
                b
            }
        }
    };
    eligible.get(pick).copied()
}

/// Expected wait on a node: its latency EWMA scaled by what is queued.
/// A node with no samples yet counts as 1 µs, so new nodes get tried but
/// what is queued on them still counts.
fn cost(n: &Node) -> u64 {
    let (outstanding, ewma) = n.load();
    ewma.max(1).saturating_mul(outstanding as u64 + 1)
}
