//! Route (Redis, shared connections): which pipe a client's next batch
//! takes when it is free to choose (nothing of its own still unanswered,
//! so no order is at stake).
//!
//! Fill first: the first pipe that can take the batch without carrying
//! more than [`FILL_MAX`] commands gets it, and later pipes carry only
//! what overflows. Every command that shares a pipe with others shares
//! its writes and reads too, on Attaché's side and on Redis's, and a
//! system call per batch is what a proxy pays for most: with fifty
//! clients pipelining sixteen commands each, filling one pipe measured
//! about 25 % more throughput than spreading them over sixteen (one
//! write and one read per client batch on each of them). The cap bounds
//! how much one slow reply can hold up behind it and how large one
//! lock-step round of a pipe grows.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Most commands queued or in flight on a pipe that a batch still joins;
/// past it, the batch goes on to the next pipe.
pub(super) const FILL_MAX: usize = 256;

/// A batch of this many commands or more already shares one write, so
/// its pipe never waits a scheduler turn for company before writing.
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

/// The pipes' loads.
#[derive(Debug)]
pub(super) struct Loads {
    pub(super) pipes: Box<[std::sync::Arc<PipeLoad>]>,
}

impl Loads {
    pub(super) fn new(n: usize) -> Self {
        Self {
            pipes: (0..n.max(1)).map(|_| Default::default()).collect(),
        }
    }

    /// The pipe for a batch of `commands`: the first (not backing off)
    /// that stays within [`FILL_MAX`] with it, else the one with the
    /// fewest commands queued or in flight (the first of equals, so a
    /// batch larger than the cap still prefers the first pipe when all
    /// are idle).
    pub(super) fn pick(&self, commands: usize) -> usize {
        let fits = self.pipes.iter().position(|p| {
            let load = p.total();
            load != usize::MAX && load.saturating_add(commands) <= FILL_MAX
        });
        fits.unwrap_or_else(|| {
            (0..self.pipes.len())
                .min_by_key(|&i| self.pipes[i].total())
                .unwrap_or(0)
        })
    }
}

#[cfg(test)]
mod tests;
