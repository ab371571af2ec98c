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
//! lock-step round of a pipe grows. A pipe that has answered nothing for
//! [`STALL`] while owing replies (a slow command at its head, or a server
//! that stopped answering), or that has spent as long connecting (a
//! server that takes the connection but not the handshake), is passed
//! over while another can take the batch, so clients free to move are not
//! queued behind it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Most commands queued or in flight on a pipe that a batch still joins;
/// past it, the batch goes on to the next pipe.
pub(super) const FILL_MAX: usize = 256;

/// How long a pipe that owes replies may answer nothing before batches
/// that may go elsewhere do.
pub(super) const STALL: Duration = Duration::from_millis(100);

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
    /// Connecting (or reconnecting): what it is given waits for the
    /// handshake, so it owes replies as much as a pipe with commands in
    /// flight does.
    pub(super) connecting: AtomicBool,
    /// When the pipe last made progress ([`stamp`]): a reply slot filled,
    /// a write that found nothing unanswered before it, or a connect
    /// begun.
    pub(super) progress: AtomicU64,
}

impl PipeLoad {
    fn total(&self) -> usize {
        if self.down.load(Ordering::Relaxed) {
            return usize::MAX;
        }
        self.unsent.load(Ordering::Relaxed) + self.unanswered.load(Ordering::Relaxed)
    }

    /// Owes replies (or is connecting) and has made no progress for
    /// [`STALL`]. Reads the clock (`now`, once per pick) only for such a
    /// pipe: an idle one never waits on anything.
    pub(super) fn stalled(&self, now: &mut impl FnMut() -> u64) -> bool {
        (self.unanswered.load(Ordering::Relaxed) > 0 || self.connecting.load(Ordering::Relaxed))
            && now().saturating_sub(self.progress.load(Ordering::Relaxed))
                >= STALL.as_millis() as u64
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

    /// The pipe for a batch of `commands`: the first that is neither
    /// backing off nor stalled and stays within [`FILL_MAX`] with it;
    /// else the least busy, stalled ones last (the first of equals, so a
    /// batch larger than the cap still takes the first pipe when all are
    /// idle); else, every pipe backing off, the first.
    pub(super) fn pick(&self, commands: usize) -> usize {
        let mut now = None;
        self.pick_at(commands, || {
            *now.get_or_insert_with(|| stamp(Instant::now()))
        })
    }

    fn pick_at(&self, commands: usize, mut now: impl FnMut() -> u64) -> usize {
        let mut best: Option<((bool, usize), usize)> = None;
        for (i, pipe) in self.pipes.iter().enumerate() {
            let load = pipe.total();
            if load == usize::MAX {
                continue;
            }
            let stalled = pipe.stalled(&mut now);
            if !stalled && load.saturating_add(commands) <= FILL_MAX {
                return i;
            }
            if best.is_none_or(|(key, _)| (stalled, load) < key) {
                best = Some(((stalled, load), i));
            }
        }
        best.map_or(0, |(_, i)| i)
    }
}

/// Marks `load` connecting from now until the guard drops.
pub(super) fn connecting(load: &PipeLoad) -> Connecting<'_> {
    load.progress
        .store(stamp(Instant::now()), Ordering::Relaxed);
    load.connecting.store(true, Ordering::Relaxed);
    Connecting(load)
}

/// Clears [`PipeLoad::connecting`] when the connect ends, however it
/// ends (a dropped connect future included).
pub(super) struct Connecting<'a>(&'a PipeLoad);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.connecting.store(false, Ordering::Relaxed);
    }
}

/// `t` in milliseconds since the first stamp the process took: an instant
/// an atomic can hold.
pub(super) fn stamp(t: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    t.saturating_duration_since(epoch).as_millis() as u64
}

#[cfg(test)]
mod tests;
