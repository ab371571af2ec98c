//! Backend (HTTP): the first connection to an endpoint that may speak
//! HTTP/2 is opened once. Requests that find no connection while such an
//! open is under way wait for it instead of each opening their own: a
//! burst of first requests would otherwise leave as many HTTP/2
//! connections as requests, each holding a `max_connections` permit, where
//! one carries them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{lock, Slot};

/// How the open the waiters wait for ended.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Pending,
    Opened,
    /// It failed, for this reason: the waiters fail with it rather than
    /// each trying (and, for an endpoint that does not answer, each
    /// waiting out `connect_timeout`) again.
    Failed(Arc<str>),
    /// The request opening it went away first: the waiters try themselves.
    Cancelled,
}

/// What a request that found no usable connection does next.
pub(super) enum Turn<'a> {
    /// Open the connection; the others wait until the guard drops.
    Lead(OpenGuard<'a>),
    /// Wait for the open under way, then look again.
    Wait(watch::Receiver<Outcome>),
    /// Open a connection of its own (HTTP/1.1: one per request).
    Alone,
}

/// Held by the request opening the shared connection. Dropping it wakes
/// the waiters with the outcome set by [`OpenGuard::finish`] (cancelled
/// if none was).
pub(super) struct OpenGuard<'a> {
    slots: &'a Mutex<HashMap<SocketAddr, Slot>>,
    addr: SocketAddr,
    done: watch::Sender<Outcome>,
    outcome: Outcome,
}

impl OpenGuard<'_> {
    /// Records how the open went: `Err` carries the reason.
    pub(super) fn finish(&mut self, result: Result<(), String>) {
        self.outcome = match result {
            Ok(()) => Outcome::Opened,
            Err(why) => Outcome::Failed(why.into()),
        };
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if let Some(slot) = lock(self.slots).get_mut(&self.addr) {
            slot.opening = None;
        }
        let outcome = std::mem::replace(&mut self.outcome, Outcome::Cancelled);
        let _ = self.done.send(outcome);
    }
}

/// Decides the turn of a request to `addr` that found no connection.
/// `may_h2`: the cluster's connections can speak HTTP/2 (h2c configured,
/// or ALPN may pick it); an endpoint seen answering in HTTP/1.1 is not
/// waited for again.
pub(super) fn turn(
    slots: &Mutex<HashMap<SocketAddr, Slot>>,
    addr: SocketAddr,
    may_h2: bool,
) -> Turn<'_> {
    if !may_h2 {
        return Turn::Alone;
    }
    let mut map = lock(slots);
    let slot = map.entry(addr).or_default();
    if slot.speaks_h2 == Some(false) {
        return Turn::Alone;
    }
    if let Some(rx) = &slot.opening {
        return Turn::Wait(rx.clone());
    }
    let (done, rx) = watch::channel(Outcome::Pending);
    slot.opening = Some(rx);
    Turn::Lead(OpenGuard {
        slots,
        addr,
        done,
        outcome: Outcome::Cancelled,
    })
}

/// Waits (up to `limit`) for the open under way; the reason it failed, if
/// it did.
pub(super) async fn wait(mut done: watch::Receiver<Outcome>, limit: Duration) -> Option<String> {
    let ended = done.wait_for(|o| !matches!(o, Outcome::Pending));
    match tokio::time::timeout(limit, ended).await {
        Ok(Ok(o)) => match &*o {
            Outcome::Failed(why) => Some(why.to_string()),
            _ => None,
        },
        _ => None,
    }
}
