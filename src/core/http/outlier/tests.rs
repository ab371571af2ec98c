use std::time::{Duration, Instant};

use crate::config::http::OutlierConfig;
use crate::config::units::Dur;

use super::*;

const S: Duration = Duration::from_secs(1);

fn cfg(c5xx: u32, connect: u32, base: u64, max: u64) -> OutlierConfig {
    OutlierConfig {
        consecutive_5xx: c5xx,
        consecutive_connect_failures: connect,
        base_ejection: Dur(S * base as u32),
        max_ejection: Dur(S * max as u32),
        max_ejection_percent: 50,
    }
}

/// Records `outcomes` at `now`, returning what each one did.
fn feed(
    st: &mut OutlierState,
    c: &OutlierConfig,
    now: Instant,
    outcomes: &[Outcome],
) -> Vec<Option<Duration>> {
    outcomes
        .iter()
        .map(|o| st.record(*o, c, now, true))
        .collect()
}

use Outcome::{ConnectFailure as CF, ServerError as E5, Success as OK};

#[test]
fn ejects_after_n_consecutive_5xx() {
    for n in [1u32, 2, 5] {
        let c = cfg(n, 0, 30, 300);
        let t = Instant::now();
        let mut st = OutlierState::default();
        for i in 1..n {
            assert_eq!(st.record(E5, &c, t, true), None, "n={n} after {i}");
            assert!(!st.is_ejected(t));
        }
        assert_eq!(st.record(E5, &c, t, true), Some(30 * S), "n={n}");
        assert!(st.is_ejected(t));
        assert_eq!(st.times_ejected(), 1);
    }
}

#[test]
fn a_success_breaks_the_streak() {
    let c = cfg(5, 3, 30, 300);
    let t = Instant::now();
    let mut st = OutlierState::default();
    let seq = [E5, E5, E5, E5, OK, E5, E5, E5, E5, CF, CF, OK, CF, CF];
    assert!(feed(&mut st, &c, t, &seq).iter().all(Option::is_none));
    assert!(!st.is_ejected(t));
    // One more of either kind would have tripped without the success.
    assert_eq!(st.record(CF, &c, t, true), Some(30 * S));
}

#[test]
fn connect_failures_are_counted_separately() {
    let t = Instant::now();
    // (config, outcomes, index of the outcome that ejects or None)
    let cases: &[(OutlierConfig, &[Outcome], Option<usize>)] = &[
        (cfg(5, 3, 30, 300), &[CF, CF, CF], Some(2)),
        // A 5xx proves the endpoint reachable: the connect streak restarts.
        (cfg(5, 3, 30, 300), &[CF, CF, E5, CF, CF], None),
        (cfg(5, 3, 30, 300), &[CF, CF, E5, CF, CF, CF], Some(5)),
        // Connect failures neither count as nor break a 5xx streak.
        (cfg(5, 3, 30, 300), &[E5, E5, E5, E5, CF, CF, E5], Some(6)),
        (cfg(5, 0, 30, 300), &[CF; 20], None),
        (cfg(0, 3, 30, 300), &[E5; 20], None),
    ];
    for (i, (c, seq, want)) in cases.iter().enumerate() {
        let mut st = OutlierState::default();
        let got = feed(&mut st, c, t, seq).iter().position(Option::is_some);
        assert_eq!(got, *want, "case {i}");
    }
}

#[test]
fn cluster_cap_defers_the_ejection_to_the_next_failure() {
    let c = cfg(2, 0, 30, 300);
    let t = Instant::now();
    let mut st = OutlierState::default();
    assert_eq!(st.record(E5, &c, t, false), None);
    assert_eq!(st.record(E5, &c, t, false), None);
    assert!(!st.is_ejected(t));
    assert_eq!(st.record(E5, &c, t, true), Some(30 * S));
}

#[test]
fn ejections_grow_by_base_up_to_the_cap() {
    let c = cfg(1, 0, 30, 100);
    let mut t = Instant::now();
    let mut st = OutlierState::default();
    for want in [30u32, 60, 90, 100, 100] {
        let len = st.record(E5, &c, t, true);
        assert_eq!(len, Some(want * S));
        // Straight back to failing the moment it returns: no time to decay.
        t += want * S;
    }
}

#[test]
fn ejection_expires_and_ignores_outcomes_meanwhile() {
    let c = cfg(3, 0, 30, 300);
    let t0 = Instant::now();
    let mut st = OutlierState::default();
    feed(&mut st, &c, t0, &[E5, E5, E5]);
    let until = t0 + 30 * S;
    assert!(st.is_ejected(until - Duration::from_nanos(1)));
    assert!(!st.is_ejected(until));
    // Stray answers while ejected change nothing.
    assert!(feed(&mut st, &c, t0 + S, &[E5, E5, E5, E5])
        .iter()
        .all(Option::is_none));
    assert_eq!(st.ejected_until(), Some(until));
    // Back with clean streaks: two more failures do not eject, the third does
    // (for twice as long: the first ejection is not forgiven yet).
    assert!(feed(&mut st, &c, until, &[E5, E5])
        .iter()
        .all(Option::is_none));
    assert!(!st.is_ejected(until));
    assert_eq!(st.record(E5, &c, until, true), Some(60 * S));
}

#[test]
fn good_behaviour_forgives_one_ejection_per_base_period() {
    let c = cfg(1, 0, 30, 1000);
    // (ejections before, time spent un-ejected after the last, next length)
    let cases = [
        (1u32, 0u64, 60u32),
        (1, 29, 60),
        (1, 30, 30),
        (1, 1000, 30),
        (3, 59, 90),
        (3, 60, 60),
        (3, 90, 30),
    ];
    for (before, gap, want) in cases {
        let mut t = Instant::now();
        let mut st = OutlierState::default();
        for _ in 0..before {
            let len = st.record(E5, &c, t, true).expect("ejects");
            t += len;
        }
        t += S * gap as u32;
        assert_eq!(
            st.record(E5, &c, t, true),
            Some(want * S),
            "before={before} gap={gap}"
        );
    }
}

#[test]
fn decay_keeps_partial_periods_across_records() {
    let c = cfg(2, 0, 30, 1000);
    let mut t = Instant::now();
    let mut st = OutlierState::default();
    for _ in 0..2 {
        t += st.record(E5, &c, t, true).unwrap_or_default();
        t += st.record(E5, &c, t, true).unwrap_or_default();
    }
    assert_eq!(st.times_ejected(), 2);
    // Successes every 20 s: the partial periods still add up, forgiving
    // one ejection 30 s and the other 60 s after the last one ended.
    for (step, want) in [(20u32, 2u32), (20, 1), (20, 0)] {
        t += S * step;
        st.record(OK, &c, t, true);
        assert_eq!(st.times_ejected(), want);
    }
}

#[test]
fn zero_base_ejection_disables_ejection() {
    let c = cfg(1, 1, 0, 300);
    let t = Instant::now();
    let mut st = OutlierState::default();
    assert!(feed(&mut st, &c, t, &[E5, CF, E5])
        .iter()
        .all(Option::is_none));
    assert!(!st.is_ejected(t));
}

#[test]
fn may_eject_follows_envoys_rule() {
    // (ejected, total, max_percent, allowed)
    let cases = [
        (0, 1, 10, true),
        (1, 1, 100, false),
        (0, 10, 10, true),
        (1, 10, 10, false),
        (4, 10, 50, true),
        (5, 10, 50, false),
        (1, 3, 50, true),
        (2, 3, 50, false),
        (0, 4, 0, false),
        (0, 0, 50, false),
        (9, 10, 100, true),
        (10, 10, 100, false),
    ];
    for (ejected, total, pct, want) in cases {
        assert_eq!(
            may_eject(ejected, total, pct),
            want,
            "{ejected}/{total} at {pct}%"
        );
    }
}
