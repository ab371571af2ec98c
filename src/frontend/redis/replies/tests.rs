//! Respond (Redis replies): the `max_queued_bytes` accounting,
//! without servers. Reply slots are fed through real oneshot channels, so
//! what is checked is the bookkeeping the session loop relies on to stop
//! and resume reading a client's commands.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::*;
use crate::config::{self, units::ByteSize};
use crate::core::redis::RedisBackendError;
use crate::frontend::redis::RedisContext;
use attache_redis_protocol::frame::Version;

/// A `single`-mode session (nothing listens at the node; no test sends)
/// with the given `max_queued_bytes`.
fn session(max_queued_bytes: u64) -> Session {
    let mut cfg = config::parse("[redis]\nlisten = \"127.0.0.1:0\"\nnodes = [\"127.0.0.1:1\"]\n")
        .unwrap()
        .redis
        .unwrap();
    cfg.max_queued_bytes = ByteSize(max_queued_bytes);
    Session {
        ctx: Arc::new(RedisContext::new(cfg).unwrap()),
        version: Version::Resp2,
        db: 0,
        authed: true,
        name: None,
        slots: VecDeque::new(),
        reply_timer: Default::default(),
        txn: None,
        transactions: 0,
        pending_relay: None,
        quit: false,
        lane: 0,
        spread: 0,
        batch: BytesMut::new(),
        batched: 0,
        primary_mux: None,
        sentinel_order: Default::default(),
        queued: Queued::new(),
        last_channel: crate::frontend::redis::order::Channel::Blocking,
        held: None,
        orphans: std::collections::VecDeque::new(),
        scan: Default::default(),
    }
}

/// A reply slot for `count` commands and the sender that answers it.
fn waiting(count: usize) -> (oneshot::Sender<Reply>, Slot) {
    let (tx, rx) = oneshot::channel();
    let deadline = Some(Instant::now() + std::time::Duration::from_secs(60));
    (
        tx,
        Slot::Wait {
            rx,
            deadline,
            count,
        },
    )
}

fn ready(len: usize) -> Slot {
    Slot::Ready(Bytes::from(vec![b'x'; len]))
}

/// `(owed, held, estimate)`.
fn totals(s: &Session) -> (usize, usize, usize) {
    (s.queued.owed, s.queued.held, s.queued.estimate)
}

const FIRST: usize = Queued::FIRST_ESTIMATE;

#[test]
fn the_estimate_follows_reply_sizes() {
    // (estimate before, reply length, commands it answers, estimate after)
    let table = [
        // Each reply fades the estimate by 1/32 ...
        (FIRST, 10, 1, 63_488),
        // ... but never below the reply just seen (per command).
        (FIRST, 1_000_000, 1, 1_000_000),
        (1_000, 900, 1, 969),
        (1_000, 990, 1, 990),
        // A batch fades it once per command, at most 64 times.
        (FIRST, 300, 3, 59_582),
        (FIRST, 3_200, 100, 8_602),
        (FIRST, 3_200, 10_000, 8_602),
        (FIRST, 6_400_000, 100, 64_000),
        // A reply claiming no command counts as one.
        (FIRST, 10, 0, 63_488),
        // Never zero: an empty reply still leaves room for one byte each.
        (1, 0, 1, 1),
    ];
    for (before, len, count, after) in table {
        let mut q = Queued::new();
        q.estimate = before;
        q.seen(len, count);
        assert_eq!(q.estimate, after, "{before} then {len} bytes for {count}");
    }
}

#[test]
fn the_estimate_fades_to_the_size_replies_now_have() {
    let mut q = Queued::new();
    q.seen(2_000_000, 1);
    assert_eq!(q.estimate, 2_000_000, "one big reply raises it at once");
    for _ in 0..400 {
        q.seen(100, 1);
    }
    assert_eq!(q.estimate, 100);
}

#[test]
fn replies_pay_off_what_is_owed_without_going_below_zero() {
    let mut q = Queued::new();
    q.owed = 5;
    q.seen(10, 3);
    assert_eq!(q.owed, 2);
    q.seen(10, 0);
    assert_eq!(q.owed, 1, "counted as one command");
    q.seen(10, 4);
    assert_eq!(q.owed, 0);
    assert_eq!(q.held, 0, "held bytes are the session's to count");
}

#[tokio::test]
async fn pushing_and_draining_slots_keeps_the_totals() {
    let mut s = session(64 << 20);
    assert_eq!(totals(&s), (0, 0, FIRST));
    s.push_slot(ready(10));
    let (tx, slot) = waiting(3);
    s.push_slot(slot);
    s.push_slot(ready(7));
    assert_eq!(totals(&s), (3, 17, FIRST));

    // The ready reply goes out; the one behind the waiting slot stays.
    let mut out = BytesMut::new();
    assert!(matches!(s.drain_chunk(&mut out), Drained::Done));
    assert_eq!(out.len(), 10);
    assert_eq!(s.slots.len(), 2);
    assert_eq!(totals(&s), (3, 7, FIRST));

    // Its reply (three commands, 30 bytes) arrives: written straight out,
    // never held, and the estimate learns 10 bytes per command.
    tx.send(Ok(Bytes::from(vec![b'r'; 30]))).unwrap();
    out.clear();
    assert!(matches!(s.drain_chunk(&mut out), Drained::Done));
    assert_eq!(out.len(), 30 + 7);
    assert!(s.slots.is_empty());
    assert_eq!(totals(&s), (0, 0, 59_582));
}

#[tokio::test]
async fn a_lost_batch_is_one_error_per_command() {
    let mut s = session(64 << 20);
    let (tx, slot) = waiting(2);
    s.push_slot(slot);
    drop(tx);
    let mut out = BytesMut::new();
    assert!(matches!(s.drain_chunk(&mut out), Drained::Done));
    let one = reply_bytes(Err(RedisBackendError::Lost), 1);
    assert!(one.starts_with(b"-ERR attache: "), "{one:?}");
    assert_eq!(out.len(), 2 * one.len());
    assert_eq!(s.queued.owed, 0);
    assert_eq!(s.queued.estimate, 61_504, "faded once per command");
}

#[tokio::test]
async fn a_reply_that_arrives_first_is_held_until_written() {
    let mut s = session(64 << 20);
    let (tx, slot) = waiting(4);
    s.push_slot(slot);
    tx.send(Ok(Bytes::from(vec![b'r'; 400]))).unwrap();
    s.wait_front().await;
    assert!(matches!(s.slots.front(), Some(Slot::Ready(b)) if b.len() == 400));
    assert_eq!((s.queued.owed, s.queued.held), (0, 400));
    let mut out = BytesMut::new();
    assert!(matches!(s.drain_chunk(&mut out), Drained::Done));
    assert_eq!((out.len(), s.queued.held), (400, 0));
}

#[tokio::test]
async fn a_timed_out_reply_is_held_as_its_error() {
    // A real 5 ms wait: the runtime's clock is not paused in this crate.
    let mut s = session(64 << 20);
    let (_tx, rx) = oneshot::channel();
    s.push_slot(Slot::Wait {
        rx,
        deadline: Some(Instant::now() + std::time::Duration::from_millis(5)),
        count: 1,
    });
    s.wait_front().await;
    let Some(Slot::Ready(b)) = s.slots.front() else {
        panic!("the slot is answered");
    };
    assert!(b.starts_with(b"-ERR attache: "), "{b:?}");
    assert_eq!((s.queued.owed, s.queued.held), (0, b.len()));
}

#[tokio::test]
async fn nothing_queued_never_blocks() {
    // The smallest limit, far below the first estimate and the reply.
    let mut s = session(1);
    assert!(
        !s.queue_full(),
        "a fresh client may always send one command"
    );
    s.push_slot(ready(10_000_000));
    assert!(s.queue_full(), "an oversized reply waits to be written");
    let mut out = BytesMut::new();
    assert!(matches!(s.drain_chunk(&mut out), Drained::Large(_)));
    assert!(!s.queue_full(), "once written, the next command is read");
}

#[tokio::test]
async fn held_bytes_reach_the_limit_at_equality() {
    let mut s = session(1024);
    s.push_slot(ready(1023));
    assert!(!s.queue_full());
    s.push_slot(ready(1));
    assert!(s.queue_full());
}

#[tokio::test]
async fn commands_in_flight_count_at_the_estimate() {
    // By default a fresh client gets 64 MiB / 64 KiB = 1,024 in flight.
    let mut s = session(64 << 20);
    let (_a, slot) = waiting(1023);
    s.push_slot(slot);
    assert!(!s.queue_full());
    let (_b, slot) = waiting(1);
    s.push_slot(slot);
    assert!(s.queue_full());

    // Smaller replies seen: more may be in flight.
    let mut s = session(64 << 20);
    s.queued.estimate = 100;
    let (_c, slot) = waiting(600_000);
    s.push_slot(slot);
    assert!(!s.queue_full());
    s.push_slot(ready(7_108_863));
    assert!(!s.queue_full(), "one byte short of 64 MiB");
    s.push_slot(ready(1));
    assert!(s.queue_full(), "exactly 64 MiB");
}

#[tokio::test]
async fn batched_commands_count_as_in_flight() {
    let mut s = session(2 * FIRST as u64);
    s.batched = 1;
    assert!(!s.queue_full());
    s.batched = 2;
    assert!(s.queue_full(), "two commands at the first estimate");
    s.batched = 0;
    assert!(!s.queue_full());
}
