//! Backend (HTTP): passive outlier detection, the pure state machine behind
//! [`Endpoint::record`](super::endpoint::Endpoint::record). Every try's
//! outcome feeds it after the respond step; an endpoint that keeps failing
//! is ejected from balancing for a while, longer each time it relapses, so
//! a broken upstream stops eating tries without an active health check.

use std::time::{Duration, Instant};

use crate::config::http::OutlierConfig;

use super::endpoint::Outcome;

/// One endpoint's failure streaks and ejection history.
#[derive(Debug, Clone, Default)]
pub struct OutlierState {
    consecutive_5xx: u32,
    consecutive_connect_failures: u32,
    ejected_until: Option<Instant>,
    /// How many ejections the endpoint has "earned": the next one lasts
    /// `(times_ejected + 1) * base_ejection`. Decays while it behaves.
    times_ejected: u32,
    /// Where the next `base_ejection` period of good behaviour (which
    /// forgives one past ejection) starts; `None` when nothing to forgive.
    decay_from: Option<Instant>,
}

impl OutlierState {
    /// Records one try's outcome. Returns `Some(len)` when this outcome
    /// ejected the endpoint for `len`. `may_eject` is false when the
    /// cluster already has `max_ejection_percent` of its endpoints out: the
    /// streak keeps counting, so the next failure ejects once there is room.
    /// While ejected nothing is recorded: the stray answers of tries sent
    /// before the ejection say nothing new.
    pub fn record(
        &mut self,
        outcome: Outcome,
        cfg: &OutlierConfig,
        now: Instant,
        may_eject: bool,
    ) -> Option<Duration> {
        self.settle(cfg, now);
        if self.is_ejected(now) {
            return None;
        }
        let tripped = match outcome {
            Outcome::Success => {
                self.consecutive_5xx = 0;
                self.consecutive_connect_failures = 0;
                false
            }
            Outcome::ServerError => {
                // The endpoint answered, so connecting to it works: that
                // streak is broken, but a 5xx streak is not broken by a
                // connect failure (both are failures).
                self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);
                self.consecutive_connect_failures = 0;
                cfg.consecutive_5xx > 0 && self.consecutive_5xx >= cfg.consecutive_5xx
            }
            Outcome::ConnectFailure => {
                self.consecutive_connect_failures =
                    self.consecutive_connect_failures.saturating_add(1);
                cfg.consecutive_connect_failures > 0
                    && self.consecutive_connect_failures >= cfg.consecutive_connect_failures
            }
        };
        if !tripped || !may_eject {
            return None;
        }
        self.eject(cfg, now)
    }

    /// Whether an ejection covers `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }

    /// When the current (or last) ejection ends.
    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_until
    }

    /// Ejections not yet forgiven, as of the last [`record`](Self::record).
    pub fn times_ejected(&self) -> u32 {
        self.times_ejected
    }

    /// Starts an ejection; `None` when `base_ejection` is zero (ejection
    /// disabled) or the end would not fit in an `Instant`.
    fn eject(&mut self, cfg: &OutlierConfig, now: Instant) -> Option<Duration> {
        let base = cfg.base_ejection.non_zero()?;
        let times = self.times_ejected.saturating_add(1);
        let mut len = base.saturating_mul(times);
        if let Some(cap) = cfg.max_ejection.non_zero() {
            len = len.min(cap);
        }
        let until = now.checked_add(len)?;
        self.times_ejected = times;
        self.ejected_until = Some(until);
        self.consecutive_5xx = 0;
        self.consecutive_connect_failures = 0;
        self.decay_from = None;
        Some(len)
    }

    /// Ends an expired ejection (the endpoint comes back with clean
    /// streaks) and forgives one past ejection per `base_ejection` the
    /// endpoint has stayed in since, so a recovered endpoint starts over.
    fn settle(&mut self, cfg: &OutlierConfig, now: Instant) {
        if let Some(until) = self.ejected_until {
            if now < until {
                return;
            }
            self.ejected_until = None;
            self.consecutive_5xx = 0;
            self.consecutive_connect_failures = 0;
            self.decay_from = Some(until);
        }
        let (Some(from), Some(base)) = (self.decay_from, cfg.base_ejection.non_zero()) else {
            return;
        };
        let periods = now.saturating_duration_since(from).as_nanos() / base.as_nanos();
        if periods == 0 {
            return;
        }
        let periods = u32::try_from(periods).unwrap_or(u32::MAX);
        self.times_ejected = self.times_ejected.saturating_sub(periods);
        self.decay_from = if self.times_ejected == 0 {
            None
        } else {
            // Keep the partial period already served.
            base.checked_mul(periods)
                .and_then(|served| from.checked_add(served))
        };
    }
}

/// Envoy's rule for `max_ejection_percent`: another ejection is allowed
/// while `ejected * 100 < max_percent * total`, so at least one endpoint is
/// always ejectable in a cluster with a non-zero percent.
pub fn may_eject(ejected: usize, total: usize, max_percent: u32) -> bool {
    (ejected as u128) * 100 < u128::from(max_percent) * (total as u128)
}

#[cfg(test)]
mod tests;
