use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::http::OutlierConfig;
use crate::config::units::Dur;

use super::*;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn ep(addr: &str) -> Arc<Endpoint> {
    let addr: SocketAddr = addr.parse().expect("addr");
    Arc::new(Endpoint::new(addr, addr.ip().to_string(), addr.port(), 1))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
fn authority_brackets_ipv6() {
    let cases = [
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("[::1]:8080", "[::1]:8080"),
        ("[fe80::1%2]:443", "[fe80::1]:443"),
    ];
    for (addr, want) in cases {
        assert_eq!(ep(addr).authority(), want);
    }
}

#[test]
fn in_flight_guard_counts_until_dropped() {
    let e = ep("127.0.0.1:1");
    assert_eq!(e.outstanding(), 0);
    let a = e.start();
    let b = e.start();
    assert_eq!(e.outstanding(), 2);
    assert_eq!(a.endpoint().addr, e.addr);
    drop(a);
    assert_eq!(e.outstanding(), 1);
    drop(b);
    assert_eq!(e.outstanding(), 0);
}

#[test]
fn ewma_rises_at_once_and_decays_slowly() {
    let e = ep("127.0.0.1:1");
    let t = Instant::now();
    assert_eq!(e.ewma(), DEFAULT_RTT);
    // The first sample replaces the default, even a faster one.
    e.observe_latency(2 * MS, t);
    assert_eq!(e.ewma(), 2 * MS);
    // A slower sample is taken whole.
    e.observe_latency(500 * MS, t + S);
    assert_eq!(e.ewma(), 500 * MS);
    // A fast sample one time constant later keeps e^-1 of the old value:
    // 500 * 0.368 + 10 * 0.632 ≈ 190 ms.
    e.observe_latency(10 * MS, t + 11 * S);
    let v = ms(e.ewma());
    assert!((185.0..195.0).contains(&v), "{v}");
    // A fast sample right after barely moves it.
    e.observe_latency(10 * MS, t + 11 * S + MS);
    assert!(ms(e.ewma()) > 185.0);
}

#[test]
fn ewma_at_decays_without_samples() {
    let e = ep("127.0.0.1:1");
    let t = Instant::now();
    assert_eq!(e.ewma_at(t + 100 * S), DEFAULT_RTT, "no sample, no decay");
    e.observe_latency(100 * MS, t);
    assert!(ms(e.ewma_at(t)) > 99.9);
    let v = ms(e.ewma_at(t + 10 * S));
    assert!((36.0..37.5).contains(&v), "{v}");
    assert!(ms(e.ewma_at(t + 60 * S)) < 1.0);
    // Reading does not change the estimate.
    assert_eq!(e.ewma(), 100 * MS);
}

fn outlier() -> OutlierConfig {
    OutlierConfig {
        consecutive_5xx: 2,
        consecutive_connect_failures: 1,
        base_ejection: Dur(30 * S),
        max_ejection: Dur(300 * S),
        max_ejection_percent: 50,
    }
}

#[test]
fn record_ejects_and_expires() {
    let e = ep("127.0.0.1:1");
    let c = outlier();
    let t = Instant::now();
    assert!(e.available(t));
    assert_eq!(e.record(Outcome::ServerError, &c, t, true), None);
    assert_eq!(e.record(Outcome::ServerError, &c, t, true), Some(30 * S));
    assert!(e.is_ejected(t));
    assert!(e.is_ejected(t + 30 * S - MS));
    assert!(!e.available(t + S));
    assert!(!e.is_ejected(t + 30 * S));
    assert!(e.available(t + 30 * S));
    assert_eq!(e.ejections_total(), 1);
    // The second ejection is longer, and counted.
    let t2 = t + 30 * S;
    assert_eq!(
        e.record(Outcome::ConnectFailure, &c, t2, true),
        Some(60 * S)
    );
    assert!(e.is_ejected(t2 + 59 * S));
    assert!(!e.is_ejected(t2 + 60 * S));
    assert_eq!(e.ejections_total(), 2);
}

#[test]
fn refused_ejection_leaves_it_available() {
    let e = ep("127.0.0.1:1");
    let t = Instant::now();
    assert_eq!(
        e.record(Outcome::ConnectFailure, &outlier(), t, false),
        None
    );
    assert!(e.available(t));
    assert_eq!(e.ejections_total(), 0);
}

#[test]
fn health_check_verdict_gates_availability() {
    let e = ep("127.0.0.1:1");
    let t = Instant::now();
    assert!(e.healthy());
    e.set_healthy(false);
    assert!(!e.healthy());
    assert!(!e.available(t));
    assert!(!e.is_ejected(t));
    e.set_healthy(true);
    assert!(e.available(t));
}
