//! Backend → respond (HTTP): the retry budget. When an upstream is
//! failing, retrying every failed try multiplies its load exactly when it
//! can least take it; the budget caps retries at `percent` % of the
//! cluster's requests over the last ten seconds, plus `min_per_second`
//! each second so a quiet cluster can still retry at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::http::RetryBudgetConfig;

/// The window, in one-second buckets.
const WINDOW_SECS: u64 = 10;

/// One cluster's retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    /// Share of requests that may be retried, as a fraction (0.2 for 20 %).
    ratio: f64,
    /// Retries always allowed over the window, whatever the traffic.
    floor: f64,
    window: Mutex<Window>,
    exhausted: AtomicU64,
}

#[derive(Debug)]
struct Window {
    /// The instant second 0 starts at: the first one ever seen.
    epoch: Option<Instant>,
    buckets: [Bucket; WINDOW_SECS as usize],
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which second (since `epoch`) the counts belong to.
    second: u64,
    requests: u64,
    retries: u64,
}

impl RetryBudget {
    pub fn new(cfg: &RetryBudgetConfig) -> Self {
        // NaN or negative (validation should refuse them) mean "no share".
        let ratio = if cfg.percent.is_finite() && cfg.percent > 0.0 {
            cfg.percent / 100.0
        } else {
            0.0
        };
        Self {
            ratio,
            floor: f64::from(cfg.min_per_second) * WINDOW_SECS as f64,
            window: Mutex::new(Window {
                epoch: None,
                buckets: [Bucket::default(); WINDOW_SECS as usize],
            }),
            exhausted: AtomicU64::new(0),
        }
    }

    /// Counts one request that reached the cluster (once per request, not
    /// per try: retries are counted by [`try_retry`](Self::try_retry)).
    pub fn record_request(&self, now: Instant) {
        let mut w = self.lock();
        let b = w.bucket(now);
        b.requests = b.requests.saturating_add(1);
    }

    /// True (and the retry is counted) when one more retry fits the budget;
    /// false counts towards [`exhausted_total`](Self::exhausted_total).
    pub fn try_retry(&self, now: Instant) -> bool {
        let mut w = self.lock();
        let (requests, retries) = w.totals(now);
        let allowed = requests as f64 * self.ratio + self.floor;
        if (retries as f64) < allowed {
            let b = w.bucket(now);
            b.retries = b.retries.saturating_add(1);
            true
        } else {
            drop(w);
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Retries refused since start, for metrics.
    pub fn exhausted_total(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // Plain counters stay consistent enough after a panic elsewhere.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Window {
    fn second(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_secs()
    }

    /// The bucket for `now`, emptied first if it still holds an old second.
    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let second = self.second(now);
        let b = &mut self.buckets[(second % WINDOW_SECS) as usize];
        if b.second != second {
            *b = Bucket {
                second,
                ..Bucket::default()
            };
        }
        b
    }

    /// Requests and retries of the ten seconds ending with `now`'s.
    fn totals(&mut self, now: Instant) -> (u64, u64) {
        let second = self.second(now);
        self.buckets
            .iter()
            .filter(|b| b.second <= second && second - b.second < WINDOW_SECS)
            .fold((0, 0), |(req, ret), b| (req + b.requests, ret + b.retries))
    }
}

#[cfg(test)]
mod tests;
