use std::sync::Arc;
use std::time::Duration;

use attache_redis_protocol::frame::Frame;
use bytes::Bytes;

use super::{fence_event, FenceEvent, ABORTS, PROMOTING};
use crate::core::redis::sentinel::Sentinel;

fn message(channel: &[u8], payload: &str) -> Frame {
    let bulk = |b: &[u8]| Frame::Bulk(Bytes::copy_from_slice(b));
    Frame::Array(vec![
        bulk(b"message"),
        bulk(channel),
        bulk(payload.as_bytes()),
    ])
}

#[test]
fn the_leaders_promotion_raises_and_aborts_lower() {
    let promoting = "slave 10.0.0.2:6379 10.0.0.2 6379 @ mymaster 10.0.0.1 6379";
    assert_eq!(
        fence_event(&message(PROMOTING, promoting), "mymaster"),
        Some(FenceEvent::Raise)
    );
    assert_eq!(
        fence_event(&message(PROMOTING, promoting), "other"),
        None,
        "another master's failover"
    );
    for abort in ABORTS {
        assert_eq!(
            fence_event(&message(abort, "master mymaster 10.0.0.1 6379"), "mymaster"),
            Some(FenceEvent::Lower),
            "{}",
            String::from_utf8_lossy(abort)
        );
        assert_eq!(
            fence_event(&message(abort, "master other 10.0.0.1 6379"), "mymaster"),
            None
        );
    }
    assert_eq!(
        fence_event(&message(b"+switch-master", promoting), "mymaster"),
        None,
        "the switch is the main listener's"
    );
    assert_eq!(fence_event(&Frame::Integer(1), "mymaster"), None);
}

fn sentinel(failover_timeout: &str) -> Arc<Sentinel> {
    super::super::tests::sentinel_with(&format!("failover_timeout = \"{failover_timeout}\""))
}

#[tokio::test]
async fn a_new_primary_lowers_the_fence_and_waiters_go_on() {
    let s = sentinel("30s");
    assert!(s.fenced(), "held until the sentinels first name a primary");
    s.set_primary("10.0.0.1:6379".into());
    assert!(!s.fenced());
    s.unfenced().await;
    s.raise_fence("10.0.0.9:26379");
    assert!(s.fenced());
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.unfenced().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "held while the fence is up");
    // The same primary named again (a periodic re-ask) keeps it up.
    s.set_primary("10.0.0.1:6379".into());
    assert!(s.fenced());
    s.set_primary("10.0.0.2:6379".into());
    assert!(!s.fenced());
    tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("released by the new primary")
        .unwrap();
}

#[tokio::test]
async fn only_the_raising_sentinel_abandons_the_failover() {
    let s = sentinel("30s");
    s.abandoned_by("10.0.0.9:26379");
    assert!(
        s.fenced(),
        "an abort never ends the wait for the first primary"
    );
    s.set_primary("10.0.0.1:6379".into());
    s.raise_fence("10.0.0.9:26379");
    s.abandoned_by("10.0.0.8:26379");
    assert!(s.fenced(), "another sentinel's lost election");
    s.abandoned_by("10.0.0.9:26379");
    assert!(!s.fenced(), "the leader gave up");
}

#[tokio::test]
async fn with_no_primary_named_the_first_fence_expires_too() {
    let s = sentinel("100ms");
    assert!(s.fenced());
    tokio::time::timeout(Duration::from_secs(2), s.unfenced())
        .await
        .expect("sentinels that never answer hold commands only failover_timeout");
    assert!(!s.fenced());
}

#[tokio::test]
async fn the_fence_comes_down_by_itself_after_failover_timeout() {
    let s = sentinel("100ms");
    s.set_primary("10.0.0.1:6379".into());
    s.raise_fence("10.0.0.9:26379");
    assert!(s.fenced());
    let t0 = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(2), s.unfenced())
        .await
        .expect("the fence expires");
    assert!(t0.elapsed() >= Duration::from_millis(90));
    assert!(!s.fenced());
}
