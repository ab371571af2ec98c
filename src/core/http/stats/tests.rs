use std::time::Duration;

use super::*;

#[test]
fn status_classes_and_latency_buckets() {
    let s = Stats::default();
    s.response(200, Duration::from_micros(100));
    s.response(204, Duration::from_micros(300));
    s.response(503, Duration::from_secs(60));
    s.response(101, Duration::from_millis(1));
    s.local_error();
    s.retried();
    let snap = s.snapshot();
    assert_eq!(snap.classes, [1, 2, 0, 0, 1]);
    assert_eq!(snap.local_errors, 1);
    assert_eq!(snap.retries, 1);
    assert_eq!(snap.latency.buckets[0], 1, "100µs ≤ 250µs");
    assert_eq!(snap.latency.buckets[1], 1, "300µs ≤ 500µs");
    assert_eq!(snap.latency.buckets[2], 1, "1ms ≤ 1ms");
    assert_eq!(*snap.latency.buckets.last().unwrap(), 1, "60s is +Inf");
    assert_eq!(snap.latency.buckets.iter().sum::<u64>(), 4);
    assert_eq!(snap.latency.sum_micros, 100 + 300 + 60_000_000 + 1_000);
}
