//! Route (Redis Sentinel): one client's commands stay in order through a
//! failover. A command the old primary refused (READONLY, LOADING, or a
//! refused connection) did not run and is sent again; nothing the client
//! sent after it may run first.
//!
//! Commands that go straight to one primary share its connection, which
//! runs them in order: if an early one is refused, the later ones are too,
//! and each waits for the one before it to settle before it is sent again.
//! Once the primary has changed under a command still unsettled, a new
//! command cannot go straight to the new primary (it could overtake that
//! command's re-send), so it waits its turn and is sent after everything
//! before it has its final reply. That costs a round trip per command, and
//! only while a failover is under way. The same holds while the write
//! fence is up (see [`super::fence`]): commands wait for it to come down.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::Sentinel;
use crate::core::redis::mux::Reply;
use crate::core::redis::topology::Node;
use crate::core::redis::{LaneChoice, Setup};

/// Whether a client's command, and every command it sent before, has its
/// final reply.
#[derive(Clone)]
pub struct Settled(watch::Receiver<bool>);

impl Settled {
    fn done(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once settled (or once its task is gone: nothing to wait for).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|done| *done).await;
    }
}

/// One client's sentinel-mode commands, in the order it sent them.
#[derive(Default)]
pub struct Order {
    /// The client's last command.
    last: Option<Settled>,
    /// The primary its unsettled commands all went straight to, if they did.
    primary: Option<Weak<Node>>,
}

impl Order {
    /// Queues `raw` (see [`Sentinel::send`]) now, or after the client's
    /// earlier commands have settled when the primary changed under them.
    /// Returns the lane used and the receiver of the final reply.
    pub fn submit(
        &mut self,
        sentinel: &Arc<Sentinel>,
        choice: LaneChoice,
        raw: Bytes,
        setup: Setup,
        read: bool,
    ) -> (usize, oneshot::Receiver<Reply>) {
        let prev = self.last.take().filter(|p| !p.done());
        let (done, settled) = watch::channel(false);
        self.last = Some(Settled(settled));
        let (tx, rx) = oneshot::channel();
        let primary = sentinel.primary();
        let same = self
            .primary
            .as_ref()
            .is_some_and(|p| std::ptr::eq(p.as_ptr(), Arc::as_ptr(&primary)));
        let sentinel = sentinel.clone();
        if (prev.is_none() || same) && !sentinel.fenced() {
            if !same {
                self.primary = Some(Arc::downgrade(&primary));
            }
            let sent = sentinel.send(&primary, choice, &raw, setup, read);
            let lane = sent.lane;
            tokio::spawn(async move {
                let _ = tx.send(sentinel.finish(sent, raw, setup, prev.clone()).await);
                if let Some(prev) = prev {
                    prev.wait().await;
                }
                let _ = done.send(true);
            });
            return (lane, rx);
        }
        self.primary = None;
        let choice = LaneChoice {
            may_move: false,
            ..choice
        };
        tokio::spawn(async move {
            if let Some(prev) = prev {
                prev.wait().await;
            }
            sentinel.unfenced().await;
            let primary = sentinel.primary();
            let sent = sentinel.send(&primary, choice, &raw, setup, read);
            let _ = tx.send(sentinel.finish(sent, raw, setup, None).await);
            let _ = done.send(true);
        });
        (choice.lane, rx)
    }
}
