//! Backend (Postgres): the connections of one pool, under [`super::pool`].
//! Idle ones wait on a stack (the most recently used is handed out first,
//! so the rest can age out), and a semaphore with one permit per allowed
//! connection keeps the pool size and queues checkouts in FIFO order.
//!
//! Why not a general pool crate: in transaction mode every transaction is a
//! checkout and a return, so this is the hottest code after the socket
//! calls. Here a checkout that finds an idle connection is a permit CAS, a
//! lock and a pop, with no future, no timer and no clock read; the waits,
//! connects and timers are paid only when there is no idle connection.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::core::gauge::Held;

/// What the pool needs to know of a connection.
pub trait Reusable {
    /// Its protocol state is unknown: it must not be handed out again.
    fn is_broken(&self) -> bool;
    fn created(&self) -> Instant;
    /// Nothing arrived while it was idle (polled once, never waits): EOF or
    /// a stray byte means the server is gone or closing it.
    fn is_quiet(&mut self) -> bool;
}

struct Idle<T> {
    conn: T,
    since: Instant,
}

/// The connections of one pool.
pub struct Slots<T> {
    idle: Mutex<Vec<Idle<T>>>,
    /// One permit per connection that may be checked out or being made.
    permits: Semaphore,
    max: usize,
    /// Open connections: idle and checked out.
    size: AtomicUsize,
    waiting: AtomicUsize,
    /// Connections older than this are closed when returned.
    lifetime: Option<Duration>,
}

/// The right to hold one connection; given back when dropped unless it
/// became a [`Lease`].
pub struct Permit<'a, T> {
    slots: &'a Slots<T>,
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.slots.permits.add_permits(1);
    }
}

/// A checked-out connection. Dropping it returns it to the pool (closed
/// instead when broken or past its lifetime).
pub struct Lease<T: Reusable> {
    conn: Option<T>,
    slots: Arc<Slots<T>>,
}

/// A snapshot for status pages and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotStatus {
    pub size: usize,
    pub idle: usize,
    pub waiting: usize,
    pub max: usize,
}

impl<T: Reusable> Slots<T> {
    pub fn new(max: usize, lifetime: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Vec::with_capacity(max)),
            permits: Semaphore::new(max),
            max,
            size: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            lifetime,
        })
    }

    /// A permit now, if one is free.
    pub fn try_permit(&self) -> Option<Permit<'_, T>> {
        let p = self.permits.try_acquire().ok()?;
        p.forget();
        Some(Permit { slots: self })
    }

    /// A permit by `deadline`, in arrival order; `None` when it passed.
    pub async fn permit(&self, deadline: Instant) -> Option<Permit<'_, T>> {
        // Counted down on drop too: a waiter whose session goes away
        // mid-wait must not stay counted.
        let _waiting = Held::new(&self.waiting);
        let deadline = tokio::time::Instant::from_std(deadline);
        let r = tokio::time::timeout_at(deadline, self.permits.acquire()).await;
        let p = r.ok()?.ok()?;
        p.forget();
        Some(Permit { slots: self })
    }

    /// An idle connection that is still usable, under `permit`; the permit
    /// comes back when there is none (the caller then makes one).
    pub fn take_idle<'a>(
        self: &'a Arc<Self>,
        permit: Permit<'a, T>,
    ) -> Result<Lease<T>, Permit<'a, T>> {
        loop {
            let Some(Idle { mut conn, .. }) = self.lock().pop() else {
                return Err(permit);
            };
            if conn.is_broken() || !conn.is_quiet() {
                self.size.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            std::mem::forget(permit);
            return Ok(Lease {
                conn: Some(conn),
                slots: self.clone(),
            });
        }
    }

    /// A connection made under `permit` joins the pool, checked out.
    pub fn lease_new(self: &Arc<Self>, permit: Permit<'_, T>, conn: T) -> Lease<T> {
        std::mem::forget(permit);
        self.size.fetch_add(1, Ordering::Relaxed);
        Lease {
            conn: Some(conn),
            slots: self.clone(),
        }
    }

    /// Closes the idle connections past their lifetime and those `keep`
    /// rejects (given each one and how long it has been idle); returns how
    /// many.
    pub fn retain(&self, mut keep: impl FnMut(&T, Duration) -> bool) -> usize {
        let now = Instant::now();
        let mut idle = self.lock();
        let before = idle.len();
        idle.retain(|i| {
            !self.expired(&i.conn, now) && keep(&i.conn, now.saturating_duration_since(i.since))
        });
        let removed = before - idle.len();
        drop(idle);
        self.size.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    pub fn status(&self) -> SlotStatus {
        SlotStatus {
            size: self.size.load(Ordering::Relaxed),
            idle: self.lock().len(),
            waiting: self.waiting.load(Ordering::Relaxed),
            max: self.max,
        }
    }

    /// A returned connection: kept idle if it may be reused.
    fn put(&self, conn: T) {
        let now = Instant::now();
        if conn.is_broken() || self.expired(&conn, now) {
            self.size.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.lock().push(Idle { conn, since: now });
        }
        self.permits.add_permits(1);
    }

    /// Older than the pool's connection lifetime.
    fn expired(&self, conn: &T, now: Instant) -> bool {
        self.lifetime
            .is_some_and(|l| now.saturating_duration_since(conn.created()) > l)
    }

    /// A panic while the lock was held cannot leave the list half-changed
    /// (push, pop and retain complete or do nothing), so a poisoned lock is
    /// still used.
    fn lock(&self) -> MutexGuard<'_, Vec<Idle<T>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Reusable> Lease<T> {
    /// Closes the connection instead of returning it.
    pub fn discard(mut self) {
        if self.conn.take().is_some() {
            self.slots.size.fetch_sub(1, Ordering::Relaxed);
            self.slots.permits.add_permits(1);
        }
    }
}

// The connection is `None` only inside `discard` and `drop`, which consume
// the lease: no caller can observe it empty.
impl<T: Reusable> Deref for Lease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl<T: Reusable> DerefMut for Lease<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl<T: Reusable> Drop for Lease<T> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.slots.put(conn);
        }
    }
}

#[cfg(test)]
mod tests;
