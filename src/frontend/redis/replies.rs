//! Respond (Redis): a session's replies, in client order. Every command
//! gets a slot in a FIFO; a slot is written out only when it and all before
//! it are ready, so a slow reply never lets a later one overtake it. The
//! FIFO also keeps the counts behind `max_queued_bytes` (see
//! [`Session::queue_full`]) and the commands given up on a timeout whose
//! replies may still come (`orphans`).

use attache_redis_protocol::frame::encode;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::session::{RedisSessionError, Session};
use crate::core::redis::Reply;
use crate::net::Stream;

/// A reply in waiting, in client order.
pub(super) enum Slot {
    Ready(Bytes),
    Wait {
        rx: oneshot::Receiver<Reply>,
        /// `None` for blocking commands, which wait as long as they ask.
        deadline: Option<Instant>,
        /// How many commands the reply answers (a batch answers several;
        /// a failure must then produce as many error replies).
        count: usize,
    },
}

/// The reply bytes a session holds for its client, kept up to date as
/// slots come and go so that checking the bound costs nothing per command.
pub(super) struct Queued {
    /// Commands sent whose replies are not in a `Ready` slot yet (a batch
    /// counts each of its commands).
    pub(super) owed: usize,
    /// Bytes in `Ready` slots, not yet written to the client.
    held: usize,
    /// The size a reply still owed is expected to have: the largest of
    /// this client's recent replies, fading by 1/32 per reply so one big
    /// reply does not throttle the small ones after it for long.
    estimate: usize,
}

impl Queued {
    /// Before any reply is seen: 64 KiB, so a fresh client gets at most
    /// `max_queued_bytes / 64 KiB` commands in flight (1,024 by default)
    /// until its replies show their real size.
    const FIRST_ESTIMATE: usize = 64 * 1024;

    pub(super) fn new() -> Self {
        Self {
            owed: 0,
            held: 0,
            estimate: Self::FIRST_ESTIMATE,
        }
    }

    /// A reply of `len` bytes answering `count` commands arrived.
    fn seen(&mut self, len: usize, count: usize) {
        let count = count.max(1);
        self.owed = self.owed.saturating_sub(count);
        for _ in 0..count.min(64) {
            self.estimate -= self.estimate / 32;
        }
        self.estimate = self.estimate.max(len / count).max(1);
    }
}

/// Most bytes of small replies gathered into one write.
const WRITE_CHUNK: usize = 64 * 1024;

/// Writes every reply that is ready, in order: small ones gathered into
/// `wbuf`, large ones as they are (no copy). Returns once the front reply
/// is not ready; blocks while the client does not read, which is what
/// holds a slow reader back.
pub(super) async fn write_ready(
    s: &mut Session,
    tcp: &mut Stream,
    wbuf: &mut BytesMut,
) -> Result<(), RedisSessionError> {
    loop {
        let step = s.drain_chunk(wbuf);
        if !wbuf.is_empty() {
            tcp.write_all(wbuf).await?;
            wbuf.clear();
        }
        match step {
            Drained::Done => return Ok(()),
            Drained::More => {}
            Drained::Large(reply) => tcp.write_all(&reply).await?,
        }
    }
}

/// How far [`Session::drain_chunk`] got.
enum Drained {
    /// The front reply is not ready (or there is none).
    Done,
    /// `WRITE_CHUNK` bytes gathered; more may be ready.
    More,
    /// A large reply, to be written after what was gathered.
    Large(Bytes),
}

impl Session {
    /// Takes ready replies off the front, in order: small ones are copied
    /// into `out` (up to about `WRITE_CHUNK`), a large one is handed back.
    fn drain_chunk(&mut self, out: &mut BytesMut) -> Drained {
        while out.len() < WRITE_CHUNK {
            let Some(slot) = self.slots.pop_front() else {
                return Drained::Done;
            };
            let reply = match slot {
                Slot::Ready(b) => {
                    self.queued.held = self.queued.held.saturating_sub(b.len());
                    b
                }
                Slot::Wait {
                    mut rx,
                    deadline,
                    count,
                } => match rx.try_recv() {
                    Ok(reply) => self.settle(reply, count),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        let slot = Slot::Wait {
                            rx,
                            deadline,
                            count,
                        };
                        self.slots.push_front(slot);
                        return Drained::Done;
                    }
                    Err(oneshot::error::TryRecvError::Closed) => {
                        self.settle(Err(crate::core::redis::RedisBackendError::Lost), count)
                    }
                },
            };
            if reply.len() >= WRITE_CHUNK {
                return Drained::Large(reply);
            }
            out.extend_from_slice(&reply);
        }
        Drained::More
    }

    /// The client-facing bytes of a backend reply for `count` commands,
    /// counted as arrived.
    fn settle(&mut self, reply: Reply, count: usize) -> Bytes {
        let bytes = reply_bytes(reply, count);
        self.queued.seen(bytes.len(), count);
        bytes
    }

    /// Whether the reply bytes this client has not read yet — those held
    /// here, plus those of its commands in flight at the size its recent
    /// replies had — reach `max_queued_bytes`. Replies of commands already
    /// sent must be taken whatever their size (the server connection is
    /// shared), so the bound is kept by sending no more: with nothing
    /// queued it never applies, so a reply larger than the bound still
    /// goes through, alone.
    pub(super) fn queue_full(&self) -> bool {
        let q = &self.queued;
        let owed = q.owed + self.batched;
        (owed > 0 || q.held > 0)
            && q.held.saturating_add(owed.saturating_mul(q.estimate))
                >= self.ctx.config.max_queued_bytes.0 as usize
    }

    /// Drops the first blocking command's slot (it waits without a
    /// deadline) and every slot after it, keeping [`Queued`] in step.
    /// Whether there was one.
    pub(super) fn drop_from_blocking(&mut self) -> bool {
        let first = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Wait { deadline: None, .. }));
        let Some(first) = first else {
            return false;
        };
        for slot in self.slots.drain(first..) {
            match slot {
                Slot::Ready(b) => self.queued.held = self.queued.held.saturating_sub(b.len()),
                Slot::Wait { count, .. } => {
                    self.queued.owed = self.queued.owed.saturating_sub(count)
                }
            }
        }
        true
    }

    /// Queues a slot, keeping [`Queued`] in step.
    pub(super) fn push_slot(&mut self, slot: Slot) {
        match &slot {
            Slot::Ready(b) => self.queued.held += b.len(),
            Slot::Wait { count, .. } => self.queued.owed += count,
        }
        self.slots.push_back(slot);
    }

    /// Resolves when the oldest reply is ready (or timed out, which turns
    /// it into an error reply); with no reply to wait for, when a timed-out
    /// command a held request waits behind has its reply.
    pub(super) async fn wait_front(&mut self) {
        let timeout = self.ctx.config.command_timeout.0;
        let Some(Slot::Wait {
            rx,
            deadline,
            count,
        }) = self.slots.front_mut()
        else {
            return self.wait_orphans().await;
        };
        let count = *count;
        let lost = || Err(crate::core::redis::RedisBackendError::Lost);
        let (reply, timed_out) = match deadline {
            Some(d) => tokio::select! {
                biased;
                r = &mut *rx => (r.unwrap_or_else(|_| lost()), false),
                () = self.reply_timer.until(*d) => {
                    (Err(crate::core::redis::RedisBackendError::Timeout(timeout)), true)
                }
            },
            None => ((&mut *rx).await.unwrap_or_else(|_| lost()), false),
        };
        let bytes = self.settle(reply, count);
        self.queued.held += bytes.len();
        if timed_out {
            if let Some(Slot::Wait { rx, .. }) = self.slots.pop_front() {
                self.orphans.push_back((rx, Instant::now() + timeout));
            }
            self.slots.push_front(Slot::Ready(bytes));
        } else if let Some(front) = self.slots.front_mut() {
            *front = Slot::Ready(bytes);
        }
    }

    /// Waits for the oldest timed-out command's reply when something waits
    /// on it: a held request, or reading paused by too many of them.
    async fn wait_orphans(&mut self) {
        let max = self.ctx.config.max_pipeline;
        let waiting = self.held.is_some() || self.orphans.len() >= max;
        let Some((first, give_up)) = self.orphans.front_mut().filter(|_| waiting) else {
            return std::future::pending().await;
        };
        let _ = tokio::time::timeout_at(*give_up, first).await;
        self.prune_orphans();
    }

    /// Forgets the oldest timed-out commands whose replies have come (a
    /// connection answers in order, so the front is the one to check).
    /// Once the oldest is given up, all are: the connection behind them
    /// looks dead, and the client must be free to leave it, not held on it
    /// by each new command that times out there.
    pub(super) fn prune_orphans(&mut self) {
        use tokio::sync::oneshot::error::TryRecvError;
        if self.orphans.is_empty() {
            // The usual case, on every batch: no clock read for nothing.
            return;
        }
        let now = Instant::now();
        while let Some((rx, give_up)) = self.orphans.front_mut() {
            if *give_up <= now {
                self.orphans.clear();
                return;
            }
            if matches!(rx.try_recv(), Err(TryRecvError::Empty)) {
                return;
            }
            self.orphans.pop_front();
        }
    }

    pub(super) fn ready(&mut self, bytes: Bytes) {
        self.flush_batch();
        self.push_slot(Slot::Ready(bytes));
    }

    pub(super) fn error(&mut self, text: &str) {
        let mut b = BytesMut::new();
        encode::error(&mut b, text.as_bytes());
        self.ready(b.freeze());
    }

    pub(super) fn wait(&mut self, rx: oneshot::Receiver<Reply>, blocking: bool) {
        let cfg = &self.ctx.config;
        // In sentinel mode a request may wait out a failover first.
        let patience = match self.ctx.topology.sentinel() {
            Some(_) => cfg.command_timeout.0 + cfg.failover_timeout.0,
            None => cfg.command_timeout.0,
        };
        let deadline = (!blocking).then(|| Instant::now() + patience);
        self.flush_batch();
        self.push_slot(Slot::Wait {
            rx,
            deadline,
            count: 1,
        });
    }

    pub(super) fn wait_reply(&mut self, rx: oneshot::Receiver<Reply>) {
        self.wait(rx, false);
    }
}

/// A backend reply as it is (no copy), or for a failure the
/// client-facing error once per command it answers.
fn reply_bytes(reply: Reply, count: usize) -> Bytes {
    match reply {
        Ok(bytes) => bytes,
        Err(e) => {
            let (text, mut out) = (e.reply_text(), BytesMut::new());
            for _ in 0..count.max(1) {
                encode::error(&mut out, text.as_bytes());
            }
            out.freeze()
        }
    }
}

#[cfg(test)]
mod tests;
