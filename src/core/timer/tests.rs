use std::time::Duration;

use tokio::time::Instant;

use super::LazyTimer;

#[tokio::test(flavor = "current_thread")]
async fn it_fires_at_the_deadline_not_before() {
    let mut t = LazyTimer::default();
    let start = Instant::now();
    t.until(start + Duration::from_millis(30)).await;
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(t.armed(), None, "fired");
}

#[tokio::test(flavor = "current_thread")]
async fn later_deadlines_keep_the_earlier_arming() {
    let mut t = LazyTimer::default();
    let start = Instant::now();
    let first = start + Duration::from_secs(5);
    // A wait that ends before the timer fires (the reply came first).
    let r = tokio::time::timeout(Duration::from_millis(5), t.until(first)).await;
    assert!(r.is_err());
    assert_eq!(t.armed(), Some(first));
    // The next command's deadline is later: the timer is not moved.
    let second = first + Duration::from_millis(100);
    let r = tokio::time::timeout(Duration::from_millis(5), t.until(second)).await;
    assert!(r.is_err());
    assert_eq!(t.armed(), Some(first));
}

#[tokio::test(flavor = "current_thread")]
async fn an_early_arming_fires_then_waits_out_the_real_deadline() {
    let mut t = LazyTimer::default();
    let start = Instant::now();
    let early = start + Duration::from_millis(10);
    let _ = tokio::time::timeout(Duration::from_millis(1), t.until(early)).await;
    assert_eq!(t.armed(), Some(early));
    let due = start + Duration::from_millis(40);
    t.until(due).await;
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "not before its own deadline"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_earlier_deadline_pulls_the_timer_in() {
    let mut t = LazyTimer::default();
    let start = Instant::now();
    let late = start + Duration::from_secs(30);
    let _ = tokio::time::timeout(Duration::from_millis(1), t.until(late)).await;
    let soon = start + Duration::from_millis(20);
    let r = tokio::time::timeout(Duration::from_secs(2), t.until(soon)).await;
    assert!(
        r.is_ok(),
        "fired at the earlier deadline, not the armed one"
    );
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn within_cuts_a_slow_future_and_keeps_the_arming_for_the_next() {
    let mut t = LazyTimer::default();
    let start = Instant::now();
    let slow = tokio::time::sleep(Duration::from_secs(10));
    assert_eq!(t.within(start + Duration::from_secs(2), slow).await, None);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Ready at once: the timer is not touched.
    assert_eq!(t.within(Instant::now(), async { 6 }).await, Some(6));
    assert_eq!(t.armed(), None);
    // Quick ones that wait a moment: done, and the timer stays armed where
    // the first put it, not moved per call.
    let quick = |v| async move {
        tokio::task::yield_now().await;
        v
    };
    let at = Instant::now() + Duration::from_secs(2);
    assert_eq!(t.within(at, quick(7)).await, Some(7));
    let next = Instant::now() + Duration::from_secs(4);
    assert_eq!(t.within(next, quick(8)).await, Some(8));
    assert_eq!(t.armed(), Some(at), "the earlier arming is kept");
    // A slower one outlives that arming and is cut at its own deadline.
    let t2 = Instant::now();
    let slow = tokio::time::sleep(Duration::from_secs(5));
    assert_eq!(t.within(t2 + Duration::from_secs(3), slow).await, None);
    let took = t2.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(4),
        "{took:?}"
    );
}
