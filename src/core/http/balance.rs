//! Route → backend (HTTP): which endpoint of a cluster one try goes to.
//! Only available endpoints (not ejected, passing health checks) are
//! considered, and a retry avoids the endpoints its request already tried
//! whenever another one is available. Picking allocates nothing: endpoint
//! lists are small, so the filter is simply re-run on each pass.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;

use crate::config::http::HttpBalance;

use super::endpoint::Endpoint;

/// The balancing state of one cluster.
#[derive(Debug)]
pub struct Balancer {
    policy: HttpBalance,
    /// Round-robin position, shared by every try of the cluster.
    next: AtomicUsize,
}

/// The result of a pick.
#[derive(Debug, Clone)]
pub enum Pick {
    Endpoint(Arc<Endpoint>),
    /// Endpoints exist but every one is ejected.
    AllEjected,
    /// None is available: every one fails active health checks, or some
    /// fail them and the rest are ejected.
    NoneHealthy,
    /// The cluster has no endpoints (e.g. its names resolved to nothing).
    Empty,
}

/// What the first pass over the eligible endpoints learned.
#[derive(Debug, Clone, Copy)]
struct Stats {
    count: u64,
    total_weight: u64,
    min_weight: u64,
    max_weight: u64,
}

impl Balancer {
    pub fn new(policy: HttpBalance) -> Self {
        Self {
            policy,
            next: AtomicUsize::new(0),
        }
    }

    pub fn policy(&self) -> HttpBalance {
        self.policy
    }

    /// Picks an available endpoint. `exclude`: addresses this request
    /// already tried; they are avoided when any other available endpoint
    /// exists (a retry goes elsewhere), else used again.
    pub fn pick(&self, endpoints: &[Arc<Endpoint>], now: Instant, exclude: &[SocketAddr]) -> Pick {
        if endpoints.is_empty() {
            return Pick::Empty;
        }
        let fresh = |e: &Endpoint| e.available(now) && !exclude.contains(&e.addr);
        if let Some(ep) = self.pick_among(endpoints, now, &fresh) {
            return Pick::Endpoint(ep);
        }
        if !exclude.is_empty() {
            let any = |e: &Endpoint| e.available(now);
            if let Some(ep) = self.pick_among(endpoints, now, &any) {
                return Pick::Endpoint(ep);
            }
        }
        if endpoints.iter().all(|e| e.is_ejected(now)) {
            Pick::AllEjected
        } else {
            Pick::NoneHealthy
        }
    }

    fn pick_among(
        &self,
        endpoints: &[Arc<Endpoint>],
        now: Instant,
        eligible: &dyn Fn(&Endpoint) -> bool,
    ) -> Option<Arc<Endpoint>> {
        let stats = stats(endpoints, eligible)?;
        let chosen = match self.policy {
            HttpBalance::RoundRobin => self.round_robin(endpoints, eligible, stats),
            HttpBalance::LeastRequest => two_choices(endpoints, eligible, stats, |a, b| {
                // outstanding/weight, compared without division.
                u64::from(a.outstanding()) * weight(b) <= u64::from(b.outstanding()) * weight(a)
            }),
            HttpBalance::P2cEwma => two_choices(endpoints, eligible, stats, |a, b| {
                ewma_cost(a, now) <= ewma_cost(b, now)
            }),
        };
        chosen.map(Arc::clone)
    }

    /// Weighted round-robin: position `c` of a cycle as long as the total
    /// weight, each endpoint owning `weight` positions. Equal weights give
    /// plain rotation; unequal ones walk the cycle with a stride near the
    /// golden ratio so a heavy endpoint's turns are spread out, not bunched.
    fn round_robin<'a>(
        &self,
        endpoints: &'a [Arc<Endpoint>],
        eligible: &dyn Fn(&Endpoint) -> bool,
        stats: Stats,
    ) -> Option<&'a Arc<Endpoint>> {
        let c = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        let target = if stats.min_weight == stats.max_weight {
            (c % stats.count) * stats.min_weight
        } else {
            let total = stats.total_weight;
            // `c % total < total`, and `total` fits u32-ish sizes: no overflow
            // in u128.
            ((u128::from(c % total) * u128::from(stride(total))) % u128::from(total)) as u64
        };
        nth_by_weight(endpoints, eligible, target, None).map(|(_, e)| e)
    }
}

/// One pass over the eligible endpoints; `None` when there are none.
fn stats(endpoints: &[Arc<Endpoint>], eligible: &dyn Fn(&Endpoint) -> bool) -> Option<Stats> {
    let mut s = Stats {
        count: 0,
        total_weight: 0,
        min_weight: u64::MAX,
        max_weight: 0,
    };
    for e in endpoints.iter().filter(|e| eligible(e)) {
        let w = weight(e);
        s.count += 1;
        s.total_weight += w;
        s.min_weight = s.min_weight.min(w);
        s.max_weight = s.max_weight.max(w);
    }
    (s.count > 0).then_some(s)
}

/// Power of two choices: two distinct endpoints drawn at random by weight,
/// keep the one `first_better` prefers (the only one if there is one).
fn two_choices<'a>(
    endpoints: &'a [Arc<Endpoint>],
    eligible: &dyn Fn(&Endpoint) -> bool,
    stats: Stats,
    first_better: impl Fn(&Endpoint, &Endpoint) -> bool,
) -> Option<&'a Arc<Endpoint>> {
    let mut rng = rand::thread_rng();
    let (i, a) = nth_by_weight(
        endpoints,
        eligible,
        rng.gen_range(0..stats.total_weight),
        None,
    )?;
    let rest = stats.total_weight.saturating_sub(weight(a));
    if stats.count == 1 || rest == 0 {
        return Some(a);
    }
    let Some((_, b)) = nth_by_weight(endpoints, eligible, rng.gen_range(0..rest), Some(i)) else {
        return Some(a);
    };
    Some(if first_better(a, b) { a } else { b })
}

/// The eligible endpoint owning weight position `target` (endpoint `skip`
/// left out). If the set shrank since it was measured (a concurrent
/// ejection), the last eligible one stands in.
fn nth_by_weight<'a>(
    endpoints: &'a [Arc<Endpoint>],
    eligible: &dyn Fn(&Endpoint) -> bool,
    target: u64,
    skip: Option<usize>,
) -> Option<(usize, &'a Arc<Endpoint>)> {
    let mut acc = 0u64;
    let mut last = None;
    for (i, e) in endpoints.iter().enumerate() {
        if Some(i) == skip || !eligible(e) {
            continue;
        }
        acc += weight(e);
        last = Some((i, e));
        if target < acc {
            break;
        }
    }
    last
}

/// Zero weights (never configured, but possible via the API) count as one.
fn weight(e: &Endpoint) -> u64 {
    u64::from(e.weight.max(1))
}

/// P2C-EWMA's cost: expected latency times the queue it would join.
fn ewma_cost(e: &Endpoint, now: Instant) -> f64 {
    e.ewma_at(now).as_nanos() as f64 * f64::from(e.outstanding().saturating_add(1))
        / weight(e) as f64
}

/// A step near `0.618 * total` that is coprime with `total`, so
/// `pos * step % total` visits every position once per cycle.
fn stride(total: u64) -> u64 {
    let mut s = ((total as f64 * 0.618) as u64).max(1);
    while gcd(s, total) != 1 {
        s += 1;
    }
    s
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests;
