use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::*;

fn poll_once(signal: &mut Signal, waker: &Waker) -> Poll<()> {
    let mut cx = Context::from_waker(waker);
    let fut = signal.fired();
    let mut fut = std::pin::pin!(fut);
    fut.as_mut().poll(&mut cx)
}

#[tokio::test]
async fn a_signal_polled_every_turn_wakes_its_loop_when_shutdown_begins() {
    let trigger = ShutdownTrigger::new();
    let shutdown = trigger.subscribe();
    // A session-style loop: the signal is polled on every turn with the
    // task's own waker (the fast path), and must still end the loop.
    let looping = tokio::spawn(async move {
        let mut stop = shutdown.signal();
        let mut turns = 0u32;
        loop {
            tokio::select! {
                _ = stop.fired() => return turns,
                _ = tokio::time::sleep(Duration::from_millis(1)) => turns += 1,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    trigger.trigger();
    let turns = tokio::time::timeout(Duration::from_secs(5), looping)
        .await
        .expect("the loop saw the shutdown")
        .expect("the loop did not panic");
    assert!(
        turns > 3,
        "the signal was polled on several turns first ({turns})"
    );
}

#[tokio::test]
async fn a_signal_parked_without_polling_is_woken_by_the_trigger() {
    let trigger = ShutdownTrigger::new();
    let shutdown = trigger.subscribe();
    let waiting = tokio::spawn(async move { shutdown.signal().fired().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished());
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken")
        .expect("no panic");
}

#[test]
fn a_signal_fires_once_then_stays_pending() {
    let trigger = ShutdownTrigger::new();
    let shutdown = trigger.subscribe();
    let mut signal = shutdown.signal();
    let waker = Waker::noop();
    for _ in 0..3 {
        assert!(poll_once(&mut signal, waker).is_pending());
    }
    trigger.trigger();
    assert!(poll_once(&mut signal, waker).is_ready());
    assert!(poll_once(&mut signal, waker).is_pending());
}

#[test]
fn a_signal_made_after_the_trigger_fires_at_once() {
    let trigger = ShutdownTrigger::new();
    let shutdown = trigger.subscribe();
    trigger.trigger();
    let mut signal = shutdown.signal();
    assert!(poll_once(&mut signal, Waker::noop()).is_ready());
}

#[tokio::test]
async fn a_signal_polled_every_turn_fires_when_the_trigger_is_dropped() {
    let trigger = ShutdownTrigger::new();
    let shutdown = trigger.subscribe();
    let looping = tokio::spawn(async move {
        let mut stop = shutdown.signal();
        loop {
            tokio::select! {
                _ = stop.fired() => return,
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(trigger);
    tokio::time::timeout(Duration::from_secs(5), looping)
        .await
        .expect("the loop saw the trigger go")
        .expect("no panic");
}

/// Triggered while nobody was subscribed (no session yet, or all gone):
/// a session subscribing afterwards still sees shutdown begun, through
/// `wait` as through its signal.
#[tokio::test]
async fn a_shutdown_subscribed_after_an_unwatched_trigger_has_begun() {
    let trigger = ShutdownTrigger::new();
    trigger.trigger();
    let mut shutdown = trigger.subscribe();
    tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
        .await
        .expect("wait() did not see the shutdown that had begun");
    let mut signal = shutdown.signal();
    assert!(poll_once(&mut signal, Waker::noop()).is_ready());
}
