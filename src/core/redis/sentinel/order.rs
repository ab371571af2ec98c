//! Route (Redis Sentinel): one client's commands stay in order through a
//! failover. A command the old primary refused (READONLY, LOADING, or a
//! refused connection) did not run and is sent again; nothing the client
//! sent after it may run first.
//!
//! Commands that go straight to one primary share its connection, which
//! runs them in order: if an early one is refused, the later ones are too,
//! and each waits for the one before it to settle before it is sent again.
//! A new command goes straight out when the client's previous one went to
//! the primary named now (or has settled). Otherwise, once the primary has
//! changed under a command still unsettled, it could overtake that
//! command's re-send, so it waits its turn: it is sent after everything
//! before it has its final reply, and the commands after it follow it
//! straight again. The same holds while the write fence is up (see
//! [`super::fence`]): commands wait for it to come down.
//!
//! Every command gives up `failover_timeout` after the client sent it,
//! wherever it waits, so a chain of waiting commands never outlives it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::Sentinel;
use crate::core::redis::mux::Reply;
use crate::core::redis::topology::Node;
use crate::core::redis::{LaneChoice, RedisBackendError, Setup};

/// Where one command is.
#[derive(Debug, Clone)]
enum Step {
    /// Waiting its turn, not sent yet.
    Waiting,
    /// Sent to this server (its latest attempt).
    Sent(Weak<Node>),
    /// It and every command the client sent before it have their final
    /// replies.
    Settled,
}

/// One command of a client, as the commands after it see it.
#[derive(Clone)]
pub struct Settled(watch::Receiver<Step>);

impl Settled {
    fn done(&self) -> bool {
        matches!(*self.0.borrow(), Step::Settled)
    }

    /// Whether it went to `node`: a command after it on the same lane
    /// follows it on the same connection, so it cannot overtake it.
    fn sent_to(&self, node: &Arc<Node>) -> bool {
        matches!(&*self.0.borrow(), Step::Sent(n) if std::ptr::eq(n.as_ptr(), Arc::as_ptr(node)))
    }

    /// Returns once settled (or once its task is gone: nothing to wait for).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|s| matches!(s, Step::Settled)).await;
    }
}

/// What sending a command again needs (see [`Sentinel::finish`]).
pub struct Again {
    pub raw: Bytes,
    pub setup: Setup,
    /// Settles once the client's earlier commands have their final replies.
    pub prev: Option<Settled>,
    /// When the command gives up.
    pub deadline: Instant,
    /// How many of the client's commands wait to be sent again.
    pub retrying: Arc<AtomicUsize>,
}

/// Counts one command waiting to be sent again, until dropped.
pub(super) struct Retrying(Arc<AtomicUsize>);

impl Retrying {
    pub(super) fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Retrying {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One client's sentinel-mode commands, in the order it sent them.
#[derive(Default)]
pub struct Order {
    /// The client's last command.
    last: Option<Settled>,
    /// Its commands waiting to be sent again: while there are any, a new
    /// command might overtake one (the primary may accept it now), so it
    /// waits its turn.
    retrying: Arc<AtomicUsize>,
}

impl Order {
    /// Queues `raw` (see [`Sentinel::send`]) now, or once its turn comes.
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
        let (step, settled) = watch::channel(Step::Waiting);
        self.last = Some(Settled(settled));
        let (tx, rx) = oneshot::channel();
        let deadline = Instant::now() + sentinel.template.cfg.failover_timeout.0;
        let primary = sentinel.primary();
        let direct = goes_straight(
            sentinel.fenced(),
            prev.as_ref(),
            &primary,
            self.retrying.load(Ordering::Acquire),
        );
        let sentinel = sentinel.clone();
        let retrying = self.retrying.clone();
        if direct {
            let sent = sentinel.send(&primary, choice, &raw, setup, read);
            let lane = sent.lane;
            step.send_replace(Step::Sent(Arc::downgrade(&primary)));
            tokio::spawn(async move {
                let again = Again {
                    raw,
                    setup,
                    prev: prev.clone(),
                    deadline,
                    retrying,
                };
                let reply = sentinel.finish(sent, again).await;
                let _ = tx.send(reply);
                if let Some(prev) = prev {
                    prev.wait().await;
                }
                step.send_replace(Step::Settled);
            });
            return (lane, rx);
        }
        let choice = LaneChoice {
            may_move: false,
            ..choice
        };
        tokio::spawn(async move {
            let reply = match sentinel.turn(prev, deadline).await {
                Some(primary) => {
                    let sent = sentinel.send(&primary, choice, &raw, setup, read);
                    step.send_replace(Step::Sent(Arc::downgrade(&primary)));
                    let again = Again {
                        raw,
                        setup,
                        prev: None,
                        deadline,
                        retrying,
                    };
                    sentinel.finish(sent, again).await
                }
                None => Err(RedisBackendError::Timeout(
                    sentinel.template.cfg.failover_timeout.0,
                )),
            };
            let _ = tx.send(reply);
            step.send_replace(Step::Settled);
        });
        (choice.lane, rx)
    }
}

/// Whether a new command goes straight to `primary`: no fence, none of the
/// client's commands waiting to be sent again, and its previous command
/// settled or sent to that same primary (so the new one follows it on the
/// same connection).
fn goes_straight(
    fenced: bool,
    prev: Option<&Settled>,
    primary: &Arc<Node>,
    retrying: usize,
) -> bool {
    !fenced && retrying == 0 && prev.is_none_or(|p| p.done() || p.sent_to(primary))
}

impl Sentinel {
    /// Waits for a waiting command's turn: the commands before it settled
    /// and the fence down. The primary to send it to, or `None` once
    /// `deadline` passed.
    async fn turn(&self, prev: Option<Settled>, deadline: Instant) -> Option<Arc<Node>> {
        let ready = async {
            if let Some(prev) = prev {
                prev.wait().await;
            }
            self.unfenced().await;
        };
        tokio::time::timeout_at(deadline, ready).await.ok()?;
        Some(self.primary())
    }
}

#[cfg(test)]
mod tests;
