use std::time::Duration;

use tokio::time::Instant;

use super::ReplyTimer;

#[tokio::test(flavor = "current_thread")]
async fn it_fires_at_the_deadline_not_before() {
    let mut t = ReplyTimer::default();
    let start = Instant::now();
    t.until(start + Duration::from_millis(30)).await;
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(t.armed(), None, "fired");
}

#[tokio::test(flavor = "current_thread")]
async fn later_deadlines_keep_the_earlier_arming() {
    let mut t = ReplyTimer::default();
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
    let mut t = ReplyTimer::default();
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
    let mut t = ReplyTimer::default();
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
