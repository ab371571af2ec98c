use std::time::{Duration, Instant};

use crate::config::http::RetryBudgetConfig;

use super::*;

const S: Duration = Duration::from_secs(1);

fn budget(percent: f64, min_per_second: u32) -> RetryBudget {
    RetryBudget::new(&RetryBudgetConfig {
        percent,
        min_per_second,
    })
}

/// How many retries in a row the budget grants at `now`.
fn drain(b: &RetryBudget, now: Instant) -> u32 {
    let mut n = 0;
    while b.try_retry(now) {
        n += 1;
        assert!(n < 10_000, "budget never runs out");
    }
    n
}

#[test]
fn retries_are_a_share_of_recent_requests() {
    // (percent, min_per_second, requests, retries granted)
    let cases = [
        (20.0, 0, 100, 20),
        (20.0, 3, 100, 50),
        (20.0, 0, 0, 0),
        (50.0, 0, 7, 4),
        (0.0, 0, 100, 0),
        (100.0, 0, 10, 10),
        (f64::NAN, 1, 100, 10),
    ];
    for (pct, min, requests, want) in cases {
        let b = budget(pct, min);
        let t = Instant::now();
        for i in 0..requests {
            b.record_request(t + Duration::from_millis(i));
        }
        assert_eq!(drain(&b, t + S), want, "{pct}% min {min} of {requests}");
        assert_eq!(b.exhausted_total(), 1);
    }
}

#[test]
fn requests_and_retries_leave_the_window_after_ten_seconds() {
    let b = budget(20.0, 0);
    let t = Instant::now();
    for _ in 0..100 {
        b.record_request(t);
    }
    assert_eq!(drain(&b, t + 2 * S), 20);
    // Still inside the window: nothing more.
    assert!(!b.try_retry(t + 9 * S + Duration::from_millis(999)));
    // The requests of second 0 are gone, the retries of second 2 are not.
    for _ in 0..100 {
        b.record_request(t + 10 * S);
    }
    assert_eq!(drain(&b, t + 10 * S), 0);
    // Once second 2 leaves too, the new requests buy 20 retries.
    assert_eq!(drain(&b, t + 12 * S), 20);
}

#[test]
fn a_quiet_cluster_can_still_retry() {
    let b = budget(20.0, 3);
    let t = Instant::now();
    assert_eq!(drain(&b, t), 30);
    assert_eq!(b.exhausted_total(), 1);
    // Later seconds reuse buckets: the old retries must not linger.
    assert_eq!(drain(&b, t + 10 * S), 30);
    assert_eq!(drain(&b, t + 25 * S), 30);
    assert_eq!(b.exhausted_total(), 3);
}
