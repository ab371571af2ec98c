//! Cluster state without servers: election, eligibility and balancing are
//! driven through the same calls the probers and sessions make.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::monitor::parse_probe;
use super::*;
use crate::config::topology::{Balance, Consistency, SplitMode};
use crate::config::types::NodeRole;

fn topology(balance: Balance, primary_reads: PrimaryReads) -> Topology {
    Topology {
        split: SplitMode::Auto,
        consistency: Consistency::ReadYourWrites,
        balance,
        primary_reads,
        failover_timeout: Duration::from_secs(1),
        read_only_functions: Vec::new(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        query: None,
        ban_time: Duration::from_secs(5),
        max_ban_time: Duration::from_secs(60),
        max_lag: Some(Duration::from_secs(10)),
        max_lag_bytes: Some(1000),
        probe_user: None,
        probe_password: None,
    }
}

fn cluster(balance: Balance, primary_reads: PrimaryReads) -> Cluster {
    let nodes = vec![
        ("p:5432".to_string(), NodeRole::Primary),
        ("r1:5432".to_string(), NodeRole::Replica),
        ("r2:5432".to_string(), NodeRole::Replica),
    ];
    Cluster::new("app", &nodes, topology(balance, primary_reads))
}

fn counts(c: &Cluster, n: usize, min_lsn: u64) -> HashMap<ReadTarget, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        *m.entry(c.pick_read(min_lsn)).or_insert(0) += 1;
    }
    m
}

#[test]
fn configured_primary_is_trusted_until_probed() {
    let c = cluster(Balance::RoundRobin, PrimaryReads::Fallback);
    assert_eq!(c.primary(), Some(0));
    assert_eq!(c.node(1).map(Node::role), Some(Role::Replica));
}

#[test]
fn round_robin_spreads_reads_over_replicas_only() {
    let c = cluster(Balance::RoundRobin, PrimaryReads::Fallback);
    let m = counts(&c, 100, 0);
    assert_eq!(m.get(&ReadTarget::Node(1)), Some(&50));
    assert_eq!(m.get(&ReadTarget::Node(2)), Some(&50));
    assert_eq!(m.len(), 2, "{m:?}");
}

#[test]
fn primary_reads_always_includes_the_primary() {
    let c = cluster(Balance::RoundRobin, PrimaryReads::Always);
    let m = counts(&c, 99, 0);
    assert_eq!(m.get(&ReadTarget::Node(0)), Some(&33), "{m:?}");
}

#[test]
fn lagging_replica_is_excluded_and_fallback_goes_to_primary() {
    let c = cluster(Balance::Random, PrimaryReads::Fallback);
    c.node(0).unwrap().probed_ok(Role::Primary, 10_000, 0);
    c.node(1).unwrap().probed_ok(Role::Replica, 9_500, 0);
    c.node(2).unwrap().probed_ok(Role::Replica, 1_000, 0);
    super::monitor::tests_support::update_lag(&c);
    // r2 is 9000 bytes behind, over max_lag_bytes = 1000.
    let m = counts(&c, 50, 0);
    assert_eq!(m.get(&ReadTarget::Node(1)), Some(&50), "{m:?}");
    // Time lag excludes r1 too: then only the primary is left.
    c.node(1).unwrap().probed_ok(Role::Replica, 9_500, 20_000);
    assert_eq!(c.pick_read(0), ReadTarget::Primary);
    let never = cluster(Balance::Random, PrimaryReads::Never);
    never
        .node(1)
        .unwrap()
        .probed_failed(Duration::from_secs(1), Duration::from_secs(1));
    never
        .node(2)
        .unwrap()
        .probed_failed(Duration::from_secs(1), Duration::from_secs(1));
    assert_eq!(never.pick_read(0), ReadTarget::None);
}

#[test]
fn read_your_writes_needs_the_replay_position() {
    let c = cluster(Balance::RoundRobin, PrimaryReads::Fallback);
    c.node(1).unwrap().probed_ok(Role::Replica, 500, 0);
    c.node(2).unwrap().probed_ok(Role::Replica, 700, 0);
    let m = counts(&c, 10, 600);
    assert_eq!(m.get(&ReadTarget::Node(2)), Some(&10), "{m:?}");
    assert_eq!(c.pick_read(800), ReadTarget::Primary);
}

#[test]
fn failed_probe_bans_with_backoff_and_recovery_needs_the_ban_to_end() {
    let c = cluster(Balance::RoundRobin, PrimaryReads::Fallback);
    let n = c.node(1).unwrap();
    let base = Duration::from_millis(40);
    let max = Duration::from_millis(100);
    // Repeated failures of one outage do not escalate...
    assert_eq!(n.probed_failed(base, max), base);
    assert_eq!(n.probed_failed(base, max), base);
    // ...a new outage soon after recovery (flapping) does.
    n.probed_ok(Role::Replica, 0, 0);
    assert_eq!(n.probed_failed(base, max), base * 2);
    n.probed_ok(Role::Replica, 0, 0);
    assert_eq!(n.probed_failed(base, max), max);
    n.probed_ok(Role::Replica, 0, 0);
    assert!(n.is_healthy());
    assert!(n.is_banned(), "a ban outlives the next good probe");
    assert_eq!(counts(&c, 10, 0).get(&ReadTarget::Node(2)), Some(&10));
    std::thread::sleep(Duration::from_millis(110));
    assert!(!n.is_banned());
    assert_eq!(counts(&c, 10, 0).get(&ReadTarget::Node(1)), Some(&5));
}

#[tokio::test]
async fn losing_the_primary_makes_waiters_wait_for_the_promoted_node() {
    let c = std::sync::Arc::new(cluster(Balance::RoundRobin, PrimaryReads::Fallback));
    c.report_unreachable(0, "connection refused");
    assert_eq!(c.primary(), None);
    // Nobody claims the role yet: waiting times out.
    let soon = Instant::now() + Duration::from_millis(30);
    assert_eq!(c.wait_primary(soon).await, None);
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            c.wait_primary(Instant::now() + Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    // r1 was promoted: its probe says it is no longer in recovery.
    c.node(1).unwrap().probed_ok(Role::Primary, 1_000, 0);
    c.elect();
    assert_eq!(waiter.await.unwrap(), Some(1));
    assert_eq!(c.failovers.count.load(Ordering::Relaxed), 1);
    // The old primary comes back claiming the role: the new one stays.
    c.node(0).unwrap().probed_ok(Role::Primary, 5_000, 0);
    c.elect();
    assert_eq!(c.primary(), Some(1));
}

#[test]
fn primary_that_reports_recovery_is_dropped() {
    let c = cluster(Balance::RoundRobin, PrimaryReads::Fallback);
    c.node(0).unwrap().probed_ok(Role::Replica, 10, 0);
    c.elect();
    assert_eq!(c.primary(), None);
    assert_eq!(c.failovers.count.load(Ordering::Relaxed), 0);
}

#[test]
fn least_outstanding_and_p2c_avoid_the_busy_node() {
    for how in [Balance::LeastOutstanding, Balance::P2c] {
        let c = std::sync::Arc::new(cluster(how, PrimaryReads::Fallback));
        let busy: Vec<_> = (0..5).map(|_| c.begin(1, false)).collect();
        let m = counts(&c, 40, 0);
        assert_eq!(m.get(&ReadTarget::Node(2)), Some(&40), "{how:?}: {m:?}");
        drop(busy);
        assert_eq!(c.status()[1].outstanding, 0);
        assert_eq!(c.status()[1].reads, 5);
    }
}

#[test]
fn probe_rows_parse_and_garbage_fails() {
    let row = |a: &str, b: &str, c: &str| vec![Some(a.into()), Some(b.into()), Some(c.into())];
    let p = parse_probe(&row("t", "123456", "2500")).unwrap();
    assert_eq!(
        (p.role, p.lsn, p.lag_millis),
        (Role::Replica, 123_456, 2500)
    );
    let p = parse_probe(&row("f", "99", "0")).unwrap();
    assert_eq!(p.role, Role::Primary);
    assert!(parse_probe(&row("x", "1", "0")).is_err());
    assert!(parse_probe(&row("t", "abc", "0")).is_err());
    assert!(parse_probe(&[None, None, None]).is_err());
    assert!(parse_probe(&[]).is_err());
}

#[test]
fn lag_in_time_comes_from_the_primary_history() {
    let c = cluster(Balance::RoundRobin, PrimaryReads::Fallback);
    c.record_primary_lsn(1_000);
    std::thread::sleep(Duration::from_millis(60));
    c.record_primary_lsn(2_000);
    // A replica at 1000 has been behind since the 2000 sample (just now);
    // one at 500 since the first sample, 60 ms ago.
    assert!(c.lag_behind(1_000) < Duration::from_millis(50));
    assert!(c.lag_behind(500) >= Duration::from_millis(60));
    // Caught up, or short only by a page header: no lag.
    assert_eq!(c.lag_behind(2_000), Duration::ZERO);
    assert_eq!(c.lag_behind(1_970), Duration::ZERO);
    // Samples that do not move the position are not recorded.
    c.record_primary_lsn(2_000);
    assert!(c.lag_behind(1_000) < Duration::from_millis(50));
}
