//! Route (Redis, shared connections): which pipe a client's next batch
//! takes when it is free to choose (nothing of its own still unanswered,
//! so no order is at stake).
//!
//! Two things pull apart. Without pipelining, commands should share
//! writes: a system call per command is what a proxy pays for most, so a
//! batch joins a pipe that is still gathering one. With pipelining, the
//! clients on one connection move in lock-step (Redis answers everything
//! it read from a connection in one go), so a large batch goes where the
//! fewest commands are in flight and comes back in a small step of its
//! own. A fixed client-to-pipe mapping can only favour one of the two.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Most commands a pipe gathers from clients joining its next write; a
/// batch that would take it past this goes to the least busy pipe.
pub(super) const JOIN_MAX: usize = 32;

/// Batches of this many commands or more never join another's write:
/// they already share one among themselves, and joining would only make
/// their step larger. (Nor does a pipe holding this many wait a turn for
/// company before writing.)
pub(super) const PIPELINED: usize = 8;

/// What one pipe carries, kept by the senders and the pipe's task with
/// relaxed atomics (a hint for choosing, never for correctness).
#[derive(Debug, Default)]
pub(super) struct PipeLoad {
    /// Commands queued for the pipe and not yet taken into a write.
    pub(super) unsent: AtomicUsize,
    /// Commands written whose replies have not all arrived.
    pub(super) unanswered: AtomicUsize,
    /// Backing off after a failed connect: it fails whatever it is given
    /// at once, so a client free to choose goes elsewhere (other
    /// connections to the same server may be fine).
    pub(super) down: AtomicBool,
}

impl PipeLoad {
    fn total(&self) -> usize {
        if self.down.load(Ordering::Relaxed) {
            return usize::MAX;
        }
        self.unsent.load(Ordering::Relaxed) + self.unanswered.load(Ordering::Relaxed)
    }
}

/// The pipes' loads and the one last chosen for gathering.
#[derive(Debug)]
pub(super) struct Loads {
    pub(super) pipes: Box<[std::sync::Arc<PipeLoad>]>,
    gathering: AtomicUsize,
}

impl Loads {
    pub(super) fn new(n: usize) -> Self {
        Self {
            pipes: (0..n.max(1)).map(|_| Default::default()).collect(),
            gathering: AtomicUsize::new(0),
        }
    }

    /// The pipe for a batch of `commands`: the one gathering a write if
    /// the batch fits in it, else the one with the fewest commands queued
    /// or in flight (the first of equals, so a lone client keeps one) that
    /// is not backing off.
    pub(super) fn pick(&self, commands: usize) -> usize {
        let g = self.gathering.load(Ordering::Relaxed) % self.pipes.len();
        let unsent = self.pipes[g].unsent.load(Ordering::Relaxed);
        if unsent > 0 && commands < PIPELINED && unsent + commands <= JOIN_MAX {
            return g;
        }
        let best = (0..self.pipes.len())
            .min_by_key(|&i| self.pipes[i].total())
            .unwrap_or(0);
        self.gathering.store(best, Ordering::Relaxed);
        best
    }
}

#[cfg(test)]
mod tests;
