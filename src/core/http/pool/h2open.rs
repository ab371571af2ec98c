//! Backend (HTTP): the first connection to an endpoint that may speak
//! HTTP/2 is opened once. Requests that find no connection while such an
//! open is under way wait for it instead of each opening their own: a
//! burst of first requests would otherwise leave as many HTTP/2
//! connections as requests, each holding a `max_connections` permit, where
//! one carries them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::sync::watch;

use super::{lock, Slot};

/// What a request that found no usable connection does next.
pub(super) enum Turn<'a> {
    /// Open the connection; the others wait until the guard drops.
    Lead(OpenGuard<'a>),
    /// Wait for the open under way, then look again.
    Wait(watch::Receiver<bool>),
    /// Open a connection of its own (HTTP/1.1: one per request).
    Alone,
}

/// Held by the request opening the shared connection. Dropping it (done,
/// failed or cancelled) wakes the waiters.
pub(super) struct OpenGuard<'a> {
    slots: &'a Mutex<HashMap<SocketAddr, Slot>>,
    addr: SocketAddr,
    done: watch::Sender<bool>,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if let Some(slot) = lock(self.slots).get_mut(&self.addr) {
            slot.opening = None;
        }
        let _ = self.done.send(true);
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
    let (done, rx) = watch::channel(false);
    slot.opening = Some(rx);
    Turn::Lead(OpenGuard { slots, addr, done })
}
