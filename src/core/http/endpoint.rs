//! Backend (HTTP): one resolved upstream address and what the route step
//! needs to know about it when picking where a try goes — its load (tries
//! in flight), its latency (a peak EWMA), and its health (passive outlier
//! ejection and the active health check's verdict). Shared by every request
//! as an `Arc<Endpoint>`; everything the balancer reads is a lock-free
//! atomic load, and the one mutex is taken only to record an outcome.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::http::OutlierConfig;

use super::outlier::OutlierState;

/// How long a latency sample keeps its influence: the EWMA's time constant.
/// Ten seconds smooths out one-off spikes yet follows a real slowdown.
const EWMA_DECAY: Duration = Duration::from_secs(10);

/// The latency assumed before the first sample, so a new endpoint is
/// neither flooded (as a zero would) nor shunned.
const DEFAULT_RTT: Duration = Duration::from_millis(10);

/// What one try to an endpoint came to, as far as its health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Any answer below 500.
    Success,
    /// A 5xx answer.
    ServerError,
    /// Refused, connect timeout, TLS failure, or reset before headers.
    ConnectFailure,
}

/// One upstream address of a cluster.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// As configured: a DNS name or an IP literal.
    pub host: String,
    pub port: u16,
    pub weight: u32,
    /// `host` is a DNS name, not an IP literal.
    pub by_name: bool,
    /// Origin of the nanosecond timestamps below (atomics hold no
    /// `Instant`); instants before it count as the origin itself.
    born: Instant,
    outstanding: AtomicU32,
    /// The latency estimate in nanoseconds, as `f64` bits.
    ewma_ns: AtomicU64,
    /// When `ewma_ns` was last updated (nanos since `born`); `NO_SAMPLE`
    /// before the first sample.
    ewma_stamp: AtomicU64,
    /// Serializes EWMA updates (readers never take it).
    ewma_write: Mutex<()>,
    outlier: Mutex<OutlierState>,
    /// Mirror of the outlier state's ejection end (nanos since `born`, 0 =
    /// never ejected) so `is_ejected` needs no lock.
    ejected_until: AtomicU64,
    healthy: AtomicBool,
    ejections: AtomicU64,
    /// The Host header naming this endpoint (made on first use).
    pub name_header: std::sync::OnceLock<http::HeaderValue>,
}

const NO_SAMPLE: u64 = u64::MAX;

/// A try in flight to an endpoint; dropping it ends the try.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<Endpoint>,
}

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub fn new(addr: SocketAddr, host: String, port: u16, weight: u32) -> Self {
        Self {
            addr,
            by_name: host.parse::<std::net::IpAddr>().is_err(),
            host,
            port,
            weight,
            born: Instant::now(),
            outstanding: AtomicU32::new(0),
            ewma_ns: AtomicU64::new((DEFAULT_RTT.as_nanos() as f64).to_bits()),
            ewma_stamp: AtomicU64::new(NO_SAMPLE),
            ewma_write: Mutex::new(()),
            outlier: Mutex::new(OutlierState::default()),
            ejected_until: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            ejections: AtomicU64::new(0),
            name_header: std::sync::OnceLock::new(),
        }
    }

    /// `127.0.0.1:8080` or `[::1]:8080`: the URI authority that reaches
    /// this address (an IPv6 zone id is left out; URIs cannot carry it raw).
    pub fn authority(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        }
    }

    /// Counts a try in flight until the returned guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: Arc::clone(self),
        }
    }

    /// Tries in flight right now.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Feeds the peak EWMA: a sample slower than the estimate replaces it
    /// at once (a slowdown must steer traffic away now), a faster one is
    /// blended in by how long ago the last sample was.
    pub fn observe_latency(&self, d: Duration, now: Instant) {
        let _serial = lock(&self.ewma_write);
        let sample = d.as_nanos() as f64;
        let now_ns = self.nanos(now);
        let stamp = self.ewma_stamp.load(Ordering::Relaxed);
        let cost = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let next = if stamp == NO_SAMPLE || sample > cost {
            sample
        } else {
            let w = decay_weight(now_ns.saturating_sub(stamp));
            cost * w + sample * (1.0 - w)
        };
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
        self.ewma_stamp
            .store(now_ns.max(stamp_floor(stamp)), Ordering::Relaxed);
    }

    /// The latency estimate as of the last sample (10 ms before any).
    pub fn ewma(&self) -> Duration {
        Duration::from_nanos(f64::from_bits(self.ewma_ns.load(Ordering::Relaxed)) as u64)
    }

    /// The estimate decayed toward zero for the time without samples, so an
    /// endpoint shunned after one slow answer is eventually tried again.
    pub fn ewma_at(&self, now: Instant) -> Duration {
        let cost = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let stamp = self.ewma_stamp.load(Ordering::Relaxed);
        let cost = if stamp == NO_SAMPLE {
            cost
        } else {
            cost * decay_weight(self.nanos(now).saturating_sub(stamp))
        };
        Duration::from_nanos(cost as u64)
    }

    /// Passive health: records a try's outcome; `Some(len)` when this
    /// outcome ejected the endpoint for `len`. `may_eject` is false when
    /// the cluster's `max_ejection_percent` forbids another ejection.
    pub fn record(
        &self,
        outcome: Outcome,
        cfg: &OutlierConfig,
        now: Instant,
        may_eject: bool,
    ) -> Option<Duration> {
        let mut state = lock(&self.outlier);
        let len = state.record(outcome, cfg, now, may_eject)?;
        if let Some(until) = state.ejected_until() {
            self.ejected_until
                .store(self.nanos(until).max(1), Ordering::Relaxed);
        }
        self.ejections.fetch_add(1, Ordering::Relaxed);
        Some(len)
    }

    /// Whether a passive ejection covers `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && self.nanos(now) < until
    }

    /// The active health check's verdict (healthy until it says otherwise).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Not ejected and passing health checks: may take tries.
    pub fn available(&self, now: Instant) -> bool {
        self.healthy() && !self.is_ejected(now)
    }

    /// Ejections since start, for metrics.
    pub fn ejections_total(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.born).as_nanos()).unwrap_or(u64::MAX - 1)
    }
}

/// How much of the old estimate survives `elapsed_ns` without samples.
fn decay_weight(elapsed_ns: u64) -> f64 {
    (-(elapsed_ns as f64) / EWMA_DECAY.as_nanos() as f64).exp()
}

/// A sample stamped earlier than the last one (a caller with a stale
/// `now`) must not move the stamp back.
fn stamp_floor(stamp: u64) -> u64 {
    if stamp == NO_SAMPLE {
        0
    } else {
        stamp
    }
}

/// A panic elsewhere while holding the lock leaves plain counters behind,
/// still usable: recover them rather than poison every later request.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
