//! Route (Redis Sentinel): the write fence. Between a replica's promotion
//! and `+switch-master`, two servers take writes: the promoted replica,
//! and the old primary until the sentinels demote it. Whatever the old
//! primary acknowledges then is lost when it becomes a replica of the new
//! one (on a forced failover under load, about half a second of writes).
//!
//! The sentinel leading a failover announces
//! `+failover-state-send-slaveof-noone` just before it promotes the
//! replica. Attaché listens for that on every sentinel (only the leader
//! says it), and from then until the new primary is named (or that
//! sentinel abandons the failover, or `failover_timeout` passes) holds
//! commands for the primary instead of sending them; they go to the new
//! primary when it is named. Clients wait out the switch instead of losing
//! writes.

use std::sync::{Arc, Weak};
use std::time::Duration;

use attache_redis_protocol::frame::{Frame, Version};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{sentinel_target, Sentinel};
use crate::core::redis::conn;

/// The leader's announcement that it is promoting a replica now.
const PROMOTING: &[u8] = b"+failover-state-send-slaveof-noone";
/// A failover given up before any replica was promoted.
const ABORTS: [&[u8]; 3] = [
    b"-failover-abort-not-elected",
    b"-failover-abort-no-good-slave",
    b"-failover-abort-slave-timeout",
];

/// Commands for the primary are held until `until`.
#[derive(Debug, Clone)]
pub(super) struct Raised {
    pub until: Instant,
    /// The sentinel leading the failover; `None` for the wait for the first
    /// primary at startup, which only a primary ends.
    pub by: Option<Arc<str>>,
}

/// The fence: `None` while commands for the primary may go.
pub(super) type Fence = watch::Sender<Option<Raised>>;

impl Sentinel {
    /// Whether commands for the primary are held now.
    pub fn fenced(&self) -> bool {
        matches!(&*self.fence.borrow(), Some(r) if Instant::now() < r.until)
    }

    /// Returns once commands for the primary may be sent.
    pub async fn unfenced(&self) {
        let mut rx = self.fence.subscribe();
        loop {
            let until = match &*rx.borrow_and_update() {
                Some(r) if Instant::now() < r.until => r.until,
                _ => return,
            };
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }

    fn raise_fence(&self, by: &str) {
        let until = Instant::now() + self.template.cfg.failover_timeout.0;
        info!(master = %self.master, sentinel = by, "failover under way: holding commands for the primary");
        self.fence.send_replace(Some(Raised {
            until,
            by: Some(by.into()),
        }));
    }

    /// Lifts the fence: the new primary is named.
    pub(super) fn lower_fence(&self) {
        if self.fence.send_replace(None).is_some() {
            debug!(master = %self.master, "sending commands for the primary again");
        }
    }

    /// A failover given up: lifts the fence only if the sentinel that
    /// raised it gave up. Another sentinel's abandoned attempt (a lost
    /// election) says nothing about the leader's promotion under way.
    fn abandoned_by(&self, by: &str) {
        let lowered = self.fence.send_if_modified(|f| {
            let ours = f.as_ref().is_some_and(|r| r.by.as_deref() == Some(by));
            if ours {
                *f = None;
            }
            ours
        });
        if lowered {
            info!(master = %self.master, sentinel = by, "failover abandoned: sending commands for the primary again");
        }
    }
}

/// What a sentinel message means for the fence of `master`.
#[derive(Debug, PartialEq)]
pub(super) enum FenceEvent {
    Raise,
    Lower,
}

/// `message <channel> <payload>`: the promotion carries `slave <name> <ip>
/// <port> @ <master-name> <ip> <port>`, an abort `master <name> <ip>
/// <port>`.
pub(super) fn fence_event(frame: &Frame, master: &str) -> Option<FenceEvent> {
    let Frame::Array(parts) = frame else {
        return None;
    };
    let channel = parts.get(1)?.as_bytes()?;
    let text = std::str::from_utf8(parts.get(2)?.as_bytes()?).ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    if &channel[..] == PROMOTING {
        return match words.as_slice() {
            ["slave", _, _, _, "@", name, ..] if *name == master => Some(FenceEvent::Raise),
            _ => None,
        };
    }
    if !ABORTS.contains(&&channel[..]) {
        return None;
    }
    match words.as_slice() {
        ["master", name, ..] if *name == master => Some(FenceEvent::Lower),
        _ => None,
    }
}

/// Listens to one sentinel for the fence's events until the view is
/// dropped, reconnecting after failures.
pub(super) async fn watch_fence(view: Weak<Sentinel>, addr: String) {
    let mut channels: Vec<&[u8]> = vec![b"SUBSCRIBE", PROMOTING];
    channels.extend_from_slice(&ABORTS);
    loop {
        let Some(s) = view.upgrade() else { return };
        let target = sentinel_target(&s.template, &addr);
        let master = s.master.clone();
        drop(s);
        let Ok((mut tcp, mut buf)) = conn::open_with(&target, &channels).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        loop {
            // Wakes every second to notice a dropped view.
            let read = conn::read_frame(&mut tcp, &mut buf, Version::Resp2, &target.limits);
            let frame = match tokio::time::timeout(Duration::from_secs(1), read).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(error)) => {
                    debug!(sentinel = %addr, %error, "lost a sentinel's failover events");
                    break;
                }
                Err(_) if view.strong_count() == 0 => return,
                Err(_) => continue,
            };
            let Some(s) = view.upgrade() else { return };
            match fence_event(&frame, &master) {
                Some(FenceEvent::Raise) => s.raise_fence(&addr),
                Some(FenceEvent::Lower) => s.abandoned_by(&addr),
                None => {}
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests;
