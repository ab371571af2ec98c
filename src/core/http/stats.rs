//! Respond (HTTP): the counters the admin endpoint reads at scrape time,
//! per route and per cluster: responses by status class, a latency
//! histogram, retries, ejections and circuit-breaker overflows. Relaxed
//! atomics only: a scrape may see one request half-counted, never a torn
//! number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (the last bucket,
/// `+Inf`, is implied).
pub const LATENCY_BUCKETS_MICROS: [u64; 14] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 10_000_000,
];

/// A latency histogram over atomics.
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

/// A copy of a [`Latency`]: per-bucket (not cumulative) counts, `+Inf`
/// last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub buckets: Vec<u64>,
    pub sum_micros: u64,
}

impl Latency {
    pub fn observe(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(LATENCY_BUCKETS_MICROS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// Counters of one route or one cluster.
#[derive(Debug, Default)]
pub struct Stats {
    /// Index 0 is 1xx … index 4 is 5xx.
    classes: [AtomicU64; 5],
    /// Answers Attaché generated itself (no route, timeout, overflow, …);
    /// also counted in their class.
    local_errors: AtomicU64,
    retries: AtomicU64,
    ejections: AtomicU64,
    overflows: AtomicU64,
    budget_exhausted: AtomicU64,
    pub latency: Latency,
}

/// A copy of [`Stats`] for metrics and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub classes: [u64; 5],
    pub local_errors: u64,
    pub retries: u64,
    pub ejections: u64,
    pub overflows: u64,
    pub budget_exhausted: u64,
    pub latency: LatencySnapshot,
}

/// Per-cluster counters are the same kind.
pub type ClusterStats = Stats;

impl Stats {
    /// One response and how long the whole request took.
    pub fn response(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(elapsed);
    }

    pub fn local_error(&self) {
        self.local_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub fn ejected(&self) {
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }
    pub fn overflowed(&self) {
        self.overflows.fetch_add(1, Ordering::Relaxed);
    }
    pub fn budget_exhausted(&self) {
        self.budget_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            classes: [0, 1, 2, 3, 4].map(|i| load(&self.classes[i])),
            local_errors: load(&self.local_errors),
            retries: load(&self.retries),
            ejections: load(&self.ejections),
            overflows: load(&self.overflows),
            budget_exhausted: load(&self.budget_exhausted),
            latency: self.latency.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests;
