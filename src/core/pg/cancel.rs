//! Backend (Postgres): cancel routing. Clients get BackendKeyData issued by
//! Attaché; while a client has a server connection, its slot names that
//! server's own key, so a CancelRequest reaches exactly the query it meant
//! and is dropped when the client has nothing running.
//!
//! A forwarded cancel also holds its server connection back from the pool
//! until PostgreSQL has finished with the request. The postmaster signals a
//! cancelled backend twice (the process, then its process group), and the
//! second SIGINT can land after the first has already ended the query: on
//! a pooled connection it would cancel whatever statement runs there next,
//! another client's. The postmaster closes the cancel connection only
//! after both signals went out, so waiting for that close is enough.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attache_postgres_protocol::messages;
use bytes::BytesMut;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::debug;

/// How long forwarding one cancel may take (connect, then the server
/// closing the connection); a connection whose cancel outlives it is
/// discarded rather than trusted.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// The server a client's cancel should go to right now: one per server
/// connection, shared by every client that holds it in turn.
#[derive(Debug)]
pub struct CancelTarget {
    pub addr: Arc<str>,
    pub pid: i32,
    pub secret: Arc<[u8]>,
    /// Cancels forwarded to this server connection and not yet finished.
    pub gate: CancelGate,
}

impl CancelTarget {
    pub fn new(addr: Arc<str>, pid: i32, secret: Arc<[u8]>) -> Arc<Self> {
        Arc::new(Self {
            addr,
            pid,
            secret,
            gate: CancelGate::default(),
        })
    }
}

/// Counts cancels in flight to one server connection.
#[derive(Debug, Default)]
pub struct CancelGate {
    pending: AtomicU32,
    /// A cancel whose end was never seen (timed out or failed after it was
    /// sent): a late signal may still come, so the connection is not
    /// trusted again.
    tainted: AtomicBool,
    idle: Notify,
}

impl CancelGate {
    /// Whether a cancel forwarded to this connection is still in flight,
    /// or ended unseen. One load: this runs on every release to the pool.
    pub fn busy(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0 || self.tainted.load(Ordering::Acquire)
    }

    /// Waits until no cancel is in flight. False when one ended unseen, or
    /// is still in flight after `limit`: the connection must not be reused.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.tainted.load(Ordering::Acquire) {
                return false;
            }
            if self.pending.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return !self.busy();
            }
        }
    }

    fn taint(&self) {
        self.tainted.store(true, Ordering::Release);
    }
}

/// One forwarded cancel; its drop ends it.
struct InFlight(Arc<CancelTarget>);

impl InFlight {
    fn begin(target: Arc<CancelTarget>) -> Self {
        target.gate.pending.fetch_add(1, Ordering::AcqRel);
        Self(target)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.gate.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.gate.idle.notify_waiters();
        }
    }
}

pub type CancelSlot = Arc<Mutex<Option<Arc<CancelTarget>>>>;

#[derive(Debug, Default)]
pub struct CancelRegistry {
    next_pid: AtomicI32,
    map: Mutex<HashMap<i32, (i32, CancelSlot)>>,
}

/// Removes the client's entry when its session ends.
#[derive(Debug)]
pub struct CancelHandle {
    registry: Arc<CancelRegistry>,
    pub pid: i32,
    pub secret: i32,
    pub slot: CancelSlot,
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.map.lock() {
            m.remove(&self.pid);
        }
    }
}

impl CancelRegistry {
    /// Issues a fresh key for a client session.
    pub fn register(self: &Arc<Self>) -> CancelHandle {
        let pid = self
            .next_pid
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            & 0x7fff_ffff;
        let secret: i32 = rand::thread_rng().gen();
        let slot: CancelSlot = Arc::new(Mutex::new(None));
        if let Ok(mut m) = self.map.lock() {
            m.insert(pid, (secret, slot.clone()));
        }
        CancelHandle {
            registry: self.clone(),
            pid,
            secret,
            slot,
        }
    }

    fn slot_of(&self, pid: i32, secret: &[u8]) -> Option<CancelSlot> {
        let m = self.map.lock().ok()?;
        let (s, slot) = m.get(&pid)?;
        (secret == s.to_be_bytes()).then(|| slot.clone())
    }

    /// Forwards a cancel to the server now running that client's work, and
    /// returns once the server has dealt with it (closed the connection)
    /// or [`CANCEL_TIMEOUT`] passed, as PostgreSQL's own clients wait.
    pub async fn cancel(&self, pid: i32, secret: &[u8]) {
        let Some(slot) = self.slot_of(pid, secret) else {
            debug!(client.pid = pid, "cancel request matched no client");
            return;
        };
        // Marked in flight under the slot's lock: a session releasing its
        // server clears the slot under the same lock before it looks at
        // the gate, so it either sees this cancel or the cancel finds no
        // server.
        let in_flight = match slot.lock() {
            Ok(s) => s.clone().map(InFlight::begin),
            Err(_) => None,
        };
        let Some(in_flight) = in_flight else {
            debug!(client.pid = pid, "cancel request matched no running query");
            return;
        };
        let target = &in_flight.0;
        let mut out = BytesMut::new();
        messages::cancel_request(&mut out, target.pid, &target.secret);
        // Whether the request may have reached the server: before that, a
        // failure means no signal was sent at all.
        let mut wrote = false;
        let sent = tokio::time::timeout(CANCEL_TIMEOUT, async {
            let mut s = TcpStream::connect(&*target.addr).await?;
            wrote = true;
            s.write_all(&out).await?;
            // The server sends nothing back and closes when done.
            let mut sink = [0u8; 64];
            while s.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
        // Marked before the in-flight count drops, so a waiter never sees
        // the gate idle and untainted after a cancel it could not follow.
        if wrote && !matches!(sent, Ok(Ok(()))) {
            target.gate.taint();
        }
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                debug!(%error, server.addr = %target.addr, "cancel could not be forwarded")
            }
            Err(_) => debug!(server.addr = %target.addr, "cancel timed out"),
        }
    }
}

#[cfg(test)]
mod tests;
