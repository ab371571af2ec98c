use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Reusable, SlotStatus, Slots};

/// A stand-in connection: an id, and switches the tests flip.
struct Fake {
    id: usize,
    broken: bool,
    created: Instant,
    /// Shared so a test can make an idle connection "speak".
    spoke: Arc<AtomicBool>,
    probes: Arc<AtomicUsize>,
}

impl Fake {
    fn new(id: usize) -> Self {
        Self {
            id,
            broken: false,
            created: Instant::now(),
            spoke: Arc::new(AtomicBool::new(false)),
            probes: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Reusable for Fake {
    fn is_broken(&self) -> bool {
        self.broken
    }
    fn created(&self) -> Instant {
        self.created
    }
    fn is_quiet(&mut self) -> bool {
        self.probes.fetch_add(1, Ordering::Relaxed);
        !self.spoke.load(Ordering::Relaxed)
    }
}

fn status(size: usize, idle: usize, waiting: usize, max: usize) -> SlotStatus {
    SlotStatus {
        size,
        idle,
        waiting,
        max,
    }
}

#[test]
fn an_empty_pool_gives_the_permit_back_for_a_connect() {
    let slots = Slots::<Fake>::new(2, None);
    let permit = slots.try_permit().expect("a free permit");
    let permit = match slots.take_idle(permit) {
        Ok(_) => panic!("nothing is idle yet"),
        Err(p) => p,
    };
    let lease = slots.lease_new(permit, Fake::new(1));
    assert_eq!(lease.id, 1);
    assert_eq!(slots.status(), status(1, 0, 0, 2));
    drop(lease);
    assert_eq!(slots.status(), status(1, 1, 0, 2));
}

#[test]
fn the_most_recently_returned_connection_goes_out_first() {
    let slots = Slots::<Fake>::new(3, None);
    let a = slots.lease_new(slots.try_permit().unwrap(), Fake::new(1));
    let b = slots.lease_new(slots.try_permit().unwrap(), Fake::new(2));
    drop(a);
    drop(b);
    let again = slots.take_idle(slots.try_permit().unwrap()).ok().unwrap();
    assert_eq!(again.id, 2, "LIFO: the others may age out");
    assert_eq!(slots.status(), status(2, 1, 0, 3));
}

#[test]
fn the_size_limit_holds_while_connections_are_out() {
    let slots = Slots::<Fake>::new(2, None);
    let a = slots.lease_new(slots.try_permit().unwrap(), Fake::new(1));
    let b = slots.lease_new(slots.try_permit().unwrap(), Fake::new(2));
    assert!(slots.try_permit().is_none());
    drop(a);
    let p = slots
        .try_permit()
        .expect("a returned connection frees a permit");
    let c = slots.take_idle(p).ok().expect("and is there to take");
    assert_eq!(c.id, 1);
    assert!(slots.try_permit().is_none());
    drop((b, c));
    assert_eq!(slots.status(), status(2, 2, 0, 2));
}

#[test]
fn a_dropped_permit_is_given_back() {
    let slots = Slots::<Fake>::new(1, None);
    let p = slots.try_permit().unwrap();
    assert!(slots.try_permit().is_none());
    drop(p);
    assert!(slots.try_permit().is_some());
}

#[test]
fn broken_and_discarded_connections_leave_the_pool() {
    let slots = Slots::<Fake>::new(2, None);
    let mut a = slots.lease_new(slots.try_permit().unwrap(), Fake::new(1));
    let b = slots.lease_new(slots.try_permit().unwrap(), Fake::new(2));
    a.broken = true;
    drop(a);
    b.discard();
    assert_eq!(slots.status(), status(0, 0, 0, 2));
    assert!(slots.try_permit().is_some() && slots.try_permit().is_some());
}

#[test]
fn an_idle_connection_that_spoke_is_closed_and_the_next_one_used() {
    let slots = Slots::<Fake>::new(2, None);
    let a = slots.lease_new(slots.try_permit().unwrap(), Fake::new(1));
    let b = slots.lease_new(slots.try_permit().unwrap(), Fake::new(2));
    let spoke = b.spoke.clone();
    drop(a);
    drop(b);
    spoke.store(true, Ordering::Relaxed);
    let got = slots.take_idle(slots.try_permit().unwrap()).ok().unwrap();
    assert_eq!(got.id, 1);
    assert_eq!(slots.status(), status(1, 0, 0, 2));
    drop(got);
    assert_eq!(slots.status(), status(1, 1, 0, 2));
}

#[test]
fn idle_probes_happen_once_per_hand_out() {
    let slots = Slots::<Fake>::new(1, None);
    let a = slots.lease_new(slots.try_permit().unwrap(), Fake::new(1));
    let probes = a.probes.clone();
    drop(a);
    for _ in 0..3 {
        drop(slots.take_idle(slots.try_permit().unwrap()).ok().unwrap());
    }
    assert_eq!(probes.load(Ordering::Relaxed), 3);
}

#[test]
fn a_connection_past_its_lifetime_is_closed_when_returned() {
    let slots = Slots::<Fake>::new(2, Some(Duration::from_secs(60)));
    let mut old = Fake::new(1);
    old.created = Instant::now() - Duration::from_secs(61);
    let a = slots.lease_new(slots.try_permit().unwrap(), old);
    let b = slots.lease_new(slots.try_permit().unwrap(), Fake::new(2));
    drop(a);
    drop(b);
    assert_eq!(slots.status(), status(1, 1, 0, 2));
}

#[test]
fn retain_closes_what_the_predicate_rejects_and_counts_it() {
    let slots = Slots::<Fake>::new(3, None);
    let leases: Vec<_> = (1..=3)
        .map(|i| slots.lease_new(slots.try_permit().unwrap(), Fake::new(i)))
        .collect();
    drop(leases);
    let mut seen_idle = Duration::MAX;
    let removed = slots.retain(|c, idle_for| {
        seen_idle = seen_idle.min(idle_for);
        c.id != 2
    });
    assert_eq!(removed, 1);
    assert!(seen_idle < Duration::from_secs(5));
    assert_eq!(slots.status(), status(2, 2, 0, 3));
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiter_gets_the_next_returned_connection_in_order() {
    let slots = Slots::<Fake>::new(1, None);
    let a = slots.lease_new(slots.try_permit().unwrap(), Fake::new(7));
    let waiter = {
        let slots = slots.clone();
        tokio::spawn(async move {
            let p = slots
                .permit(Instant::now() + Duration::from_secs(5))
                .await
                .expect("a permit");
            slots.take_idle(p).ok().map(|c| c.id)
        })
    };
    tokio::task::yield_now().await;
    assert_eq!(slots.status().waiting, 1);
    // A newcomer cannot jump the queue.
    drop(a);
    assert!(slots.try_permit().is_none());
    assert_eq!(waiter.await.unwrap(), Some(7));
    assert_eq!(slots.status(), status(1, 1, 0, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiter_gives_up_after_its_wait() {
    let slots = Slots::<Fake>::new(1, None);
    let _a = slots.lease_new(slots.try_permit().unwrap(), Fake::new(1));
    let started = Instant::now();
    assert!(slots
        .permit(started + Duration::from_millis(50))
        .await
        .is_none());
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(slots.status().waiting, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiter_that_gives_up_early_is_no_longer_counted() {
    let slots = Slots::<Fake>::new(1, None);
    let _a = slots.lease_new(slots.try_permit().unwrap(), Fake::new(1));
    let wait = slots.permit(Instant::now() + Duration::from_secs(30));
    // Dropped mid-wait, as when the session waiting is cancelled.
    let r = tokio::time::timeout(Duration::from_millis(20), wait).await;
    assert!(r.is_err());
    assert_eq!(slots.status().waiting, 0);
}

#[test]
fn retain_also_closes_idle_connections_that_outlived_their_lifetime() {
    let slots = Slots::<Fake>::new(2, Some(Duration::from_secs(60)));
    let mut aging = Fake::new(1);
    aging.created = Instant::now() - Duration::from_millis(59_990);
    drop(slots.lease_new(slots.try_permit().unwrap(), aging));
    drop(slots.lease_new(slots.try_permit().unwrap(), Fake::new(2)));
    assert_eq!(
        slots.status(),
        status(2, 2, 0, 2),
        "both young enough when returned"
    );
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        slots.retain(|_, _| true),
        1,
        "the keep-all predicate cannot save it"
    );
    assert_eq!(slots.status(), status(1, 1, 0, 2));
}
