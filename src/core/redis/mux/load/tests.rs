use super::*;

/// A pick at a clock that never runs (no pipe ever looks stalled unless a
/// test stamps it so): the real clock would make these depend on timing.
fn pick(l: &Loads, commands: usize) -> usize {
    l.pick_at(commands, || 0)
}

fn set(l: &Loads, i: usize, unsent: usize, unanswered: usize) {
    l.pipes[i].unsent.store(unsent, Ordering::Relaxed);
    l.pipes[i].unanswered.store(unanswered, Ordering::Relaxed);
}

#[test]
fn an_idle_set_always_gives_the_first_pipe() {
    let l = Loads::new(16);
    // On the real clock too: nothing owes replies, so nothing is stalled.
    assert_eq!(l.pick(1), 0);
    assert!((0..10).all(|_| pick(&l, 1) == 0));
    assert_eq!(pick(&l, PIPELINED), 0);
    // Even a batch above the cap: every pipe is equally idle.
    assert_eq!(pick(&l, FILL_MAX + 1), 0);
}

#[test]
fn batches_fill_the_first_pipe_while_it_has_room() {
    let l = Loads::new(4);
    for _ in 0..FILL_MAX / 16 {
        let p = pick(&l, 16);
        assert_eq!(p, 0);
        // A pipelined client's batch, queued.
        l.pipes[p].unsent.fetch_add(16, Ordering::Relaxed);
    }
    // Full now: the next batch goes on to the second pipe, although
    // pipe 0's commands are in flight rather than queued.
    set(&l, 0, 0, FILL_MAX);
    assert_eq!(pick(&l, 1), 1);
}

#[test]
fn a_batch_that_would_overfill_a_pipe_goes_to_the_next_with_room() {
    let l = Loads::new(3);
    set(&l, 0, FILL_MAX - 4, 0);
    set(&l, 1, 0, FILL_MAX - 10);
    assert_eq!(pick(&l, 4), 0);
    assert_eq!(pick(&l, 5), 1);
    assert_eq!(pick(&l, 11), 2);
}

#[test]
fn the_first_pipe_is_preferred_again_once_it_drains() {
    let l = Loads::new(2);
    set(&l, 0, 0, FILL_MAX);
    set(&l, 1, 0, 3);
    assert_eq!(pick(&l, 1), 1);
    set(&l, 0, 0, 0);
    assert_eq!(pick(&l, 1), 0);
}

#[test]
fn with_every_pipe_full_the_least_busy_is_chosen() {
    let l = Loads::new(4);
    set(&l, 0, FILL_MAX, 0);
    set(&l, 1, 0, FILL_MAX + 7);
    set(&l, 2, 3, FILL_MAX);
    set(&l, 3, 0, FILL_MAX + 9);
    assert_eq!(pick(&l, 1), 0);
    set(&l, 0, FILL_MAX, 5);
    assert_eq!(pick(&l, 1), 2);
}

#[test]
fn a_pipe_backing_off_is_passed_over_while_another_is_up() {
    let l = Loads::new(3);
    l.pipes[0].down.store(true, Ordering::Relaxed);
    set(&l, 1, 0, FILL_MAX);
    set(&l, 2, 0, 9);
    assert_eq!(pick(&l, 1), 2);
    // Full pipes: the least busy that is up, never the one backing off.
    set(&l, 2, 0, FILL_MAX + 1);
    assert_eq!(pick(&l, 1), 1);
    // With every pipe down, one is still chosen: it answers with the reason.
    l.pipes[1].down.store(true, Ordering::Relaxed);
    l.pipes[2].down.store(true, Ordering::Relaxed);
    assert!(pick(&l, 1) < 3);
    // Back from backing off, the idle first pipe is preferred again.
    l.pipes[0].down.store(false, Ordering::Relaxed);
    assert_eq!(pick(&l, 1), 0);
}

const STALL_MS: u64 = STALL.as_millis() as u64;

#[test]
fn a_pipe_owing_replies_without_progress_is_passed_over() {
    let l = Loads::new(3);
    // Pipe 0 owes 3 replies and last moved at t = 1,000 ms.
    set(&l, 0, 0, 3);
    l.pipes[0].progress.store(1_000, Ordering::Relaxed);
    assert_eq!(l.pick_at(1, || 1_000 + STALL_MS - 1), 0);
    assert_eq!(l.pick_at(1, || 1_000 + STALL_MS), 1);
    // It answers (owes nothing): preferred again, however long ago it moved.
    set(&l, 0, 0, 0);
    assert_eq!(l.pick_at(1, || 1_000_000), 0);
}

#[test]
fn a_pipe_connecting_for_too_long_is_passed_over() {
    let l = Loads::new(2);
    // Pipe 0 has a batch queued and began connecting at t = 1,000 ms.
    set(&l, 0, 16, 0);
    l.pipes[0].connecting.store(true, Ordering::Relaxed);
    l.pipes[0].progress.store(1_000, Ordering::Relaxed);
    assert_eq!(l.pick_at(1, || 1_000 + STALL_MS - 1), 0);
    assert_eq!(l.pick_at(1, || 1_000 + STALL_MS), 1);
    // Connected: preferred again.
    l.pipes[0].connecting.store(false, Ordering::Relaxed);
    assert_eq!(l.pick_at(1, || 1_000 + STALL_MS), 0);
}

#[test]
fn a_stalled_pipe_is_the_last_resort() {
    let l = Loads::new(3);
    set(&l, 0, 0, 1);
    set(&l, 1, 0, FILL_MAX + 50);
    set(&l, 2, 0, FILL_MAX + 20);
    for p in l.pipes.iter() {
        p.progress.store(0, Ordering::Relaxed);
    }
    // Pipe 0 is the least busy but stalled; 1 and 2 moved just now.
    l.pipes[1].progress.store(10_000, Ordering::Relaxed);
    l.pipes[2].progress.store(10_000, Ordering::Relaxed);
    assert_eq!(l.pick_at(1, || 10_000), 2);
    // Every pipe stalled: the least busy.
    assert_eq!(l.pick_at(1, || 10_000 + STALL_MS), 0);
}

#[test]
fn the_clock_is_read_only_for_pipes_that_owe_replies() {
    let l = Loads::new(4);
    let mut reads = 0;
    assert_eq!(
        l.pick_at(1, || {
            reads += 1;
            0
        }),
        0
    );
    assert_eq!(reads, 0);
}
