use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::http::{HttpBalance, OutlierConfig};
use crate::config::units::Dur;

use super::*;
use crate::core::http::endpoint::{Endpoint, Outcome};

const ALL: [HttpBalance; 3] = [
    HttpBalance::RoundRobin,
    HttpBalance::LeastRequest,
    HttpBalance::P2cEwma,
];

fn ep(port: u16, weight: u32) -> Arc<Endpoint> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Arc::new(Endpoint::new(addr, "127.0.0.1".into(), port, weight))
}

fn eps(weights: &[u32]) -> Vec<Arc<Endpoint>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| ep(8000 + i as u16, *w))
        .collect()
}

fn eject(e: &Endpoint, now: Instant) {
    let cfg = OutlierConfig {
        consecutive_5xx: 1,
        consecutive_connect_failures: 1,
        base_ejection: Dur(Duration::from_secs(30)),
        max_ejection: Dur(Duration::from_secs(300)),
        max_ejection_percent: 100,
    };
    assert!(e.record(Outcome::ServerError, &cfg, now, true).is_some());
}

/// The port picked, panicking on anything but an endpoint.
fn port(b: &Balancer, list: &[Arc<Endpoint>], now: Instant, exclude: &[SocketAddr]) -> u16 {
    match b.pick(list, now, exclude) {
        Pick::Endpoint(e) => e.port,
        other => panic!("expected an endpoint, got {other:?}"),
    }
}

fn counts(b: &Balancer, list: &[Arc<Endpoint>], now: Instant, n: usize) -> HashMap<u16, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        *m.entry(port(b, list, now, &[])).or_default() += 1;
    }
    m
}

#[test]
fn round_robin_rotates_equal_weights() {
    for w in [1, 5] {
        let list = eps(&[w, w, w]);
        let b = Balancer::new(HttpBalance::RoundRobin);
        let t = Instant::now();
        let seq: Vec<u16> = (0..7).map(|_| port(&b, &list, t, &[])).collect();
        assert_eq!(
            seq,
            [8000, 8001, 8002, 8000, 8001, 8002, 8000],
            "weight {w}"
        );
    }
}

#[test]
fn round_robin_honours_weights_every_cycle() {
    let list = eps(&[1, 2, 3]);
    let b = Balancer::new(HttpBalance::RoundRobin);
    let t = Instant::now();
    for cycle in 0..50 {
        let c = counts(&b, &list, t, 6);
        assert_eq!((c[&8000], c[&8001], c[&8002]), (1, 2, 3), "cycle {cycle}");
    }
}

#[test]
fn round_robin_spreads_a_heavy_endpoint() {
    let list = eps(&[3, 1]);
    let b = Balancer::new(HttpBalance::RoundRobin);
    let t = Instant::now();
    let seq: Vec<u16> = (0..8).map(|_| port(&b, &list, t, &[])).collect();
    // Not three of one then the other: the light one comes mid-cycle.
    assert_eq!(seq.iter().filter(|p| **p == 8001).count(), 2);
    assert_ne!(&seq[..4], [8000, 8000, 8000, 8001]);
}

#[test]
fn least_request_draws_by_weight_when_idle() {
    let list = eps(&[1, 3]);
    let b = Balancer::new(HttpBalance::LeastRequest);
    let c = counts(&b, &list, Instant::now(), 4000);
    let heavy = c.get(&8001).copied().unwrap_or(0) as f64 / 4000.0;
    // Ties keep the first draw, which is by weight: 3/4.
    assert!((0.68..0.82).contains(&heavy), "{heavy}");
}

#[test]
fn p2c_ewma_divides_cost_by_weight() {
    // Equal latency, idle: weight 3 makes the cost a third.
    let list = eps(&[1, 3]);
    let b = Balancer::new(HttpBalance::P2cEwma);
    let t = Instant::now();
    for _ in 0..50 {
        assert_eq!(port(&b, &list, t, &[]), 8001);
    }
    // Three in flight on the heavy one: 10 ms * 4 / 3 > 10 ms * 1 / 1.
    let _q = [list[1].start(), list[1].start(), list[1].start()];
    for _ in 0..50 {
        assert_eq!(port(&b, &list, t, &[]), 8000);
    }
}

#[test]
fn exclude_steers_a_retry_elsewhere() {
    for policy in ALL {
        let list = eps(&[1, 1, 1]);
        let b = Balancer::new(policy);
        let t = Instant::now();
        let tried = [list[0].addr, list[2].addr];
        for _ in 0..50 {
            assert_eq!(port(&b, &list, t, &tried), 8001, "{policy:?}");
        }
        for _ in 0..50 {
            assert_ne!(port(&b, &list, t, &tried[..1]), 8000, "{policy:?}");
        }
    }
}

#[test]
fn excluded_endpoint_is_used_when_nothing_else_is_available() {
    for policy in ALL {
        let list = eps(&[1, 1]);
        let b = Balancer::new(policy);
        let t = Instant::now();
        eject(&list[1], t);
        assert_eq!(port(&b, &list, t, &[list[0].addr]), 8000, "{policy:?}");
        let all: Vec<_> = list.iter().map(|e| e.addr).collect();
        assert_eq!(port(&b, &list[..1], t, &all), 8000, "{policy:?}");
    }
}

#[test]
fn unavailable_endpoints_are_skipped() {
    for policy in ALL {
        let list = eps(&[1, 1, 1, 1]);
        let b = Balancer::new(policy);
        let t = Instant::now();
        eject(&list[1], t);
        list[3].set_healthy(false);
        for _ in 0..60 {
            let p = port(&b, &list, t + Duration::from_secs(1), &[]);
            assert!(p == 8000 || p == 8002, "{policy:?} picked {p}");
        }
        // The ejection over, the endpoint is back in rotation.
        let c = counts(&b, &list, t + Duration::from_secs(30), 200);
        assert!(c.contains_key(&8001), "{policy:?}");
        assert!(!c.contains_key(&8003), "{policy:?}");
    }
}

#[test]
fn nothing_available_says_why() {
    let t = Instant::now();
    let b = Balancer::new(HttpBalance::RoundRobin);
    assert!(matches!(b.pick(&[], t, &[]), Pick::Empty));

    let ejected = eps(&[1, 1]);
    ejected.iter().for_each(|e| eject(e, t));
    assert!(matches!(b.pick(&ejected, t, &[]), Pick::AllEjected));

    let unhealthy = eps(&[1, 1]);
    unhealthy.iter().for_each(|e| e.set_healthy(false));
    assert!(matches!(b.pick(&unhealthy, t, &[]), Pick::NoneHealthy));

    let mixed = eps(&[1, 1]);
    eject(&mixed[0], t);
    mixed[1].set_healthy(false);
    assert!(matches!(b.pick(&mixed, t, &[]), Pick::NoneHealthy));
    // Exclusion does not change the verdict.
    assert!(matches!(
        b.pick(&ejected, t, &[ejected[0].addr]),
        Pick::AllEjected
    ));
}

#[test]
fn least_request_prefers_the_idle_endpoint() {
    let list = eps(&[1, 1]);
    let b = Balancer::new(HttpBalance::LeastRequest);
    let t = Instant::now();
    let _busy = [list[0].start(), list[0].start(), list[0].start()];
    for _ in 0..100 {
        assert_eq!(port(&b, &list, t, &[]), 8001);
    }
}

#[test]
fn least_request_weighs_load_by_weight() {
    // 2 in flight on weight 4 (0.5) beats 1 in flight on weight 1.
    let list = eps(&[4, 1]);
    let b = Balancer::new(HttpBalance::LeastRequest);
    let t = Instant::now();
    let _a = [list[0].start(), list[0].start()];
    let _b = list[1].start();
    for _ in 0..100 {
        assert_eq!(port(&b, &list, t, &[]), 8000);
    }
}

#[test]
fn single_candidate_is_picked_whatever_its_load() {
    for policy in ALL {
        let list = eps(&[1]);
        let _busy = [list[0].start(), list[0].start()];
        let b = Balancer::new(policy);
        assert_eq!(port(&b, &list, Instant::now(), &[]), 8000, "{policy:?}");
    }
}

#[test]
fn p2c_ewma_prefers_the_faster_endpoint() {
    let list = eps(&[1, 1]);
    let b = Balancer::new(HttpBalance::P2cEwma);
    let t = Instant::now();
    list[0].observe_latency(Duration::from_millis(100), t);
    list[1].observe_latency(Duration::from_millis(5), t);
    for _ in 0..100 {
        assert_eq!(port(&b, &list, t, &[]), 8001);
    }
    // Enough queued on the fast one (5 ms * 30 > 100 ms) tips it over.
    let _queue: Vec<_> = (0..29).map(|_| list[1].start()).collect();
    for _ in 0..100 {
        assert_eq!(port(&b, &list, t, &[]), 8000);
    }
}

#[test]
fn stride_visits_every_position() {
    for total in [3u64, 4, 7, 10, 12, 1001] {
        let s = stride(total);
        let mut seen: Vec<u64> = (0..total).map(|p| p * s % total).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..total).collect::<Vec<_>>(), "total {total}");
    }
}
