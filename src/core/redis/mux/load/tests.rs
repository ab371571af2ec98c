use super::*;

fn set(l: &Loads, i: usize, unsent: usize, unanswered: usize) {
    l.pipes[i].unsent.store(unsent, Ordering::Relaxed);
    l.pipes[i].unanswered.store(unanswered, Ordering::Relaxed);
}

#[test]
fn an_idle_set_always_gives_the_first_pipe() {
    let l = Loads::new(16);
    assert!((0..10).all(|_| l.pick(1) == 0));
}

#[test]
fn small_batches_join_the_write_being_gathered() {
    let l = Loads::new(4);
    let first = l.pick(1);
    // The batch is queued on the pipe it got.
    l.pipes[first].unsent.fetch_add(1, Ordering::Relaxed);
    // Another pipe is idler, but joining the gathered write wins.
    set(&l, 2, 0, 0);
    set(&l, first, 1, 5);
    assert_eq!(l.pick(1), first);
}

#[test]
fn a_full_gathering_sends_the_next_batch_to_the_least_busy_pipe() {
    let l = Loads::new(4);
    assert_eq!(l.pick(1), 0);
    set(&l, 0, JOIN_MAX, 0);
    set(&l, 1, 0, 7);
    set(&l, 2, 0, 3);
    set(&l, 3, 0, 9);
    assert_eq!(l.pick(1), 2);
    // And that pipe is now the one gathering.
    set(&l, 2, 1, 3);
    assert_eq!(l.pick(1), 2);
}

#[test]
fn large_batches_spread_over_the_least_busy_pipes() {
    let l = Loads::new(3);
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = l.pick(16);
        // A pipelined client's batch, queued.
        l.pipes[p].unsent.fetch_add(16, Ordering::Relaxed);
        got.push(p);
    }
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2]);
}

#[test]
fn a_batch_that_would_overfill_the_gathering_goes_elsewhere() {
    let l = Loads::new(2);
    assert_eq!(l.pick(1), 0);
    set(&l, 0, JOIN_MAX - 4, 0);
    assert_eq!(l.pick(4), 0);
    set(&l, 0, JOIN_MAX - 3, 0);
    assert_eq!(l.pick(4), 1);
}

#[test]
fn a_pipelined_batch_never_joins_another_write() {
    let l = Loads::new(2);
    assert_eq!(l.pick(1), 0);
    set(&l, 0, 1, 0);
    assert_eq!(l.pick(PIPELINED - 1), 0);
    assert_eq!(l.pick(PIPELINED), 1);
}

#[test]
fn a_pipe_backing_off_is_passed_over_while_another_is_up() {
    let l = Loads::new(3);
    l.pipes[0].down.store(true, Ordering::Relaxed);
    set(&l, 1, 0, 40);
    set(&l, 2, 0, 9);
    assert_eq!(l.pick(1), 2);
    // With every pipe down, one is still chosen: it answers with the reason.
    l.pipes[1].down.store(true, Ordering::Relaxed);
    l.pipes[2].down.store(true, Ordering::Relaxed);
    assert!(l.pick(1) < 3);
    // Back from backing off, the idle first pipe is preferred again.
    l.pipes[0].down.store(false, Ordering::Relaxed);
    assert_eq!(l.pick(1), 0);
}
