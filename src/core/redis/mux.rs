//! Backend (Redis): multiplexing. Many clients' commands share a few
//! pipelined server connections ("pipes"). Redis answers each connection's
//! commands in order, so each pipe keeps a FIFO of reply slots: the writer
//! pushes a slot, then writes the command (batching whatever else is
//! queued); the reader hands each reply to the oldest slot. A pipe whose
//! connection fails fails its outstanding slots and reconnects with backoff.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use attache_redis_protocol::frame::{self, Version};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::io::{ReadHalf, WriteHalf};

use crate::net::Stream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::conn::{self, RedisBackendError, RedisTarget, Setup};
use load::{Loads, PipeLoad};

mod coalesce;
mod load;

use coalesce::Coalesce;

/// A reply: its raw bytes, in the connection's protocol version.
pub type Reply = Result<Bytes, RedisBackendError>;

struct Request {
    bytes: Bytes,
    /// How many replies the bytes produce.
    replies: usize,
    /// Whether the answer is all replies, concatenated (a client's batch
    /// of commands), or only the last (after a prefix such as ASKING).
    collect: bool,
    reply: oneshot::Sender<Reply>,
}

/// A reply slot in a pipe's FIFO.
struct Waiting {
    replies: usize,
    /// The commands it answers, as counted in its pipe's load.
    commands: usize,
    collect: Option<BytesMut>,
    reply: oneshot::Sender<Reply>,
    /// When the batch it went out in started filling (latency metric).
    sent: std::time::Instant,
}

/// What one server's shared connections did, for metrics. Shared by every
/// [`Mux`] of a [`super::Node`]; each counter is bumped with one relaxed
/// add per write, per read or per failure, never per byte.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Commands put on a server connection (counted per write, just
    /// before it; a failed write fails them again in `failed_requests`).
    pub requests: AtomicU64,
    /// Replies that were errors (`-…`, or a RESP3 blob error `!…`).
    pub error_replies: AtomicU64,
    /// Connections opened to the server.
    pub connects: AtomicU64,
    /// Failed connects and connections lost (reset, closed, unparseable).
    pub backend_errors: AtomicU64,
    /// Commands answered with an error by Attaché because the server
    /// connection failed before their reply came.
    pub failed_requests: AtomicU64,
    /// Server connections open now (a gauge: up on connect, down on close).
    pub open: AtomicU64,
    /// Bytes written to and read from the server.
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    /// From a request's batch starting to its last reply arriving.
    pub latency: crate::core::pg::pool::WaitHistogram,
}

impl NodeStats {
    fn add(counter: &AtomicU64, n: usize) {
        if n > 0 {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// A reply slot filled: its latency, and the pipe's progress (one clock
/// read for both).
fn answered(pipe: Pipe<'_>, w: &Waiting) {
    let now = std::time::Instant::now();
    let micros = now.saturating_duration_since(w.sent).as_micros();
    pipe.stats
        .latency
        .record(micros.min(u64::MAX as u128) as u64);
    pipe.load
        .progress
        .store(load::stamp(now), Ordering::Relaxed);
}

/// Whether a reply frame starting with `first` is an error reply.
fn is_error_reply(first: u8) -> bool {
    first == b'-' || first == b'!'
}

/// Most bytes batched into one write.
const MAX_BATCH: usize = 256 * 1024;

/// A set of pipes to one server with one setup.
///
/// Queues are unbounded: what bounds them is each client's `max_pipeline`,
/// so sending never waits and routing stays synchronous.
pub struct Mux {
    pipes: Vec<mpsc::UnboundedSender<Request>>,
    loads: Loads,
    stats: Arc<NodeStats>,
}

impl Mux {
    /// Starts `n` pipes; each connects on its first request. Counts into
    /// its own [`NodeStats`], which nothing exports.
    pub fn new(target: Arc<RedisTarget>, setup: Setup, n: usize) -> Self {
        Self::with_stats(target, setup, n, Arc::default())
    }

    /// Like [`Mux::new`], counting into `stats` (its node's).
    pub fn with_stats(
        target: Arc<RedisTarget>,
        setup: Setup,
        n: usize,
        stats: Arc<NodeStats>,
    ) -> Self {
        Self::start(target, setup, n, stats, Ends::Never)
    }

    /// One connection that is never replaced: once it ends (or cannot be
    /// made), every later request fails. For a connection whose state the
    /// client builds up (a transaction's WATCH and MULTI): a fresh one
    /// would silently run the rest of the transaction without it.
    pub fn single_use(target: Arc<RedisTarget>, setup: Setup, stats: Arc<NodeStats>) -> Self {
        Self::start(target, setup, 1, stats, Ends::Once)
    }

    /// Like [`Mux::single_use`], and dropping it closes the connection at
    /// once instead of waiting for the replies still owed. For a blocking
    /// command whose client left: `BLPOP k 0` owes its reply forever, and
    /// only closing the connection makes Redis stop blocking for it.
    pub fn abandonable(target: Arc<RedisTarget>, setup: Setup, stats: Arc<NodeStats>) -> Self {
        Self::start(target, setup, 1, stats, Ends::Abandoned)
    }

    fn start(
        target: Arc<RedisTarget>,
        setup: Setup,
        n: usize,
        stats: Arc<NodeStats>,
        ends: Ends,
    ) -> Self {
        let loads = Loads::new(n);
        let pipes = loads
            .pipes
            .iter()
            .map(|load| {
                let (tx, rx) = mpsc::unbounded_channel();
                let pipe = supervise(target.clone(), setup, rx, stats.clone(), load.clone(), ends);
                tokio::spawn(pipe);
                tx
            })
            .collect();
        Self {
            pipes,
            loads,
            stats,
        }
    }

    /// The lane for a batch of `commands` from a client that has nothing
    /// unanswered on these pipes, so may take any of them: see [`load`].
    pub fn pick_lane(&self, commands: usize) -> usize {
        self.loads.pick(commands)
    }

    /// Queues a raw command on pipe `lane % pipes`; the receiver yields
    /// its reply. A client must always use the same lane: Redis runs each
    /// connection's commands in order, but two connections race, so a
    /// client's SET and the GET after it must share one.
    pub fn send(&self, lane: usize, bytes: Bytes) -> oneshot::Receiver<Reply> {
        self.send_n(lane, bytes, 1)
    }

    /// Queues bytes holding `replies` commands (a prefix such as ASKING,
    /// then the command) on one connection; yields the last reply.
    pub fn send_n(&self, lane: usize, bytes: Bytes, replies: usize) -> oneshot::Receiver<Reply> {
        self.queue(lane, bytes, replies, false)
    }

    /// Queues `commands` commands at once; yields all their replies,
    /// concatenated in order. One slot and one wake-up for the lot.
    pub fn send_batch(
        &self,
        lane: usize,
        bytes: Bytes,
        commands: usize,
    ) -> oneshot::Receiver<Reply> {
        self.queue(lane, bytes, commands, true)
    }

    fn queue(
        &self,
        lane: usize,
        bytes: Bytes,
        replies: usize,
        collect: bool,
    ) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        let i = lane % self.pipes.len();
        let req = Request {
            bytes,
            replies: replies.max(1),
            collect,
            reply: tx,
        };
        let unsent = &self.loads.pipes[i].unsent;
        unsent.fetch_add(req.replies, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(req)) = self.pipes[i].send(req) {
            unsent.fetch_sub(req.replies, Ordering::Relaxed);
            NodeStats::add(&self.stats.failed_requests, req.replies);
            let _ = req.reply.send(Err(RedisBackendError::Lost));
        }
        rx
    }
}

/// How a pipe's connection may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// Replaced after a failure; once its mux is dropped, closed after
    /// the replies still owed (shared pipes).
    Never,
    /// Never replaced: requests after the first connection fail.
    Once,
    /// [`Ends::Once`], and closed as soon as its mux is dropped, owed
    /// replies or not.
    Abandoned,
}

/// Owns one pipe: connects lazily, runs it, reconnects after failures
/// (unless `ends` says otherwise).
async fn supervise(
    target: Arc<RedisTarget>,
    setup: Setup,
    mut rx: mpsc::UnboundedReceiver<Request>,
    stats: Arc<NodeStats>,
    load: Arc<PipeLoad>,
    ends: Ends,
) {
    let once = ends != Ends::Never;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(first) = rx.recv().await else { return };
        let connected = {
            let _connecting = load::connecting(&load);
            conn::connect(&target, setup).await
        };
        match connected {
            Ok((tcp, leftover)) => {
                backoff = Duration::from_millis(50);
                NodeStats::add(&stats.connects, 1);
                stats.open.fetch_add(1, Ordering::Relaxed);
                let (rd, wr) = tokio::io::split(tcp);
                let pipe = Pipe {
                    target: &target,
                    version: setup.version,
                    stats: &stats,
                    load: &load,
                    abandon: ends == Ends::Abandoned,
                };
                let ended = run(rd, wr, leftover, first, &mut rx, pipe).await;
                // Every slot of the connection is answered or failed now.
                load.unanswered.store(0, Ordering::Relaxed);
                stats.open.fetch_sub(1, Ordering::Relaxed);
                if let Err(e) = ended {
                    NodeStats::add(&stats.backend_errors, 1);
                    debug!(server.addr = %target.addr, error = %e, "redis pipe closed");
                }
                if once {
                    // Dropping the queue fails what is still in it.
                    return;
                }
            }
            Err(e) => {
                warn!(server.addr = %target.addr, error = %e, "redis connect failed");
                load.down.store(true, Ordering::Relaxed);
                NodeStats::add(&stats.backend_errors, 1);
                NodeStats::add(&stats.failed_requests, first.replies);
                load.unsent.fetch_sub(first.replies, Ordering::Relaxed);
                let _ = first.reply.send(Err(e.clone()));
                if once {
                    return;
                }
                // While backing off, fail new requests at once with the
                // reason instead of letting them wait for the next attempt.
                let until = tokio::time::Instant::now() + backoff;
                loop {
                    tokio::select! {
                        r = rx.recv() => match r {
                            Some(r) => {
                                NodeStats::add(&stats.failed_requests, r.replies);
                                load.unsent.fetch_sub(r.replies, Ordering::Relaxed);
                                let _ = r.reply.send(Err(e.clone()));
                            }
                            None => return,
                        },
                        _ = tokio::time::sleep_until(until) => break,
                    }
                }
                // Chosen again, so that a request tries to connect anew.
                load.down.store(false, Ordering::Relaxed);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// What a connected pipe's writer and reader share.
#[derive(Clone, Copy)]
struct Pipe<'a> {
    target: &'a RedisTarget,
    version: Version,
    stats: &'a NodeStats,
    load: &'a PipeLoad,
    /// Close at once when the mux is dropped (see [`Ends::Abandoned`]).
    abandon: bool,
}

async fn run(
    rd: ReadHalf<Stream>,
    mut wr: WriteHalf<Stream>,
    leftover: BytesMut,
    first: Request,
    rx: &mut mpsc::UnboundedReceiver<Request>,
    pipe: Pipe<'_>,
) -> Result<(), RedisBackendError> {
    let target = pipe.target;
    let (slots_tx, slots_rx) = mpsc::unbounded_channel::<Waiting>();
    let outstanding = &pipe.load.unanswered;
    let mut reader = Box::pin(read_replies(rd, leftover, slots_rx, pipe));
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut pending = Some(first);
    let mut coalesce = Coalesce::default();
    loop {
        let req = match pending.take() {
            Some(r) => r,
            None => tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => r,
                    // No more senders: finish delivering what is in flight,
                    // unless nobody waits for it (dropping the reader and
                    // writer closes the connection).
                    None => {
                        drop(slots_tx);
                        if pipe.abandon || outstanding.load(Ordering::Acquire) == 0 {
                            return Ok(());
                        }
                        return reader.await;
                    }
                },
                r = &mut reader => return r,
            },
        };
        let started = std::time::Instant::now();
        let mut queue = |r: Request, wbuf: &mut BytesMut| {
            wbuf.extend_from_slice(&r.bytes);
            let replies = r.replies;
            if outstanding.load(Ordering::Acquire) == 0 {
                // Owing nothing until now: the stall clock starts here,
                // before the count makes the pipe look owing (only this
                // writer raises it).
                pipe.load
                    .progress
                    .store(load::stamp(started), Ordering::Relaxed);
            }
            outstanding.fetch_add(replies, Ordering::AcqRel);
            let _ = slots_tx.send(Waiting {
                replies: r.replies,
                commands: replies,
                collect: r.collect.then(BytesMut::new),
                reply: r.reply,
                sent: started,
            });
            replies
        };
        let mut commands = queue(req, &mut wbuf);
        commands += drain(rx, &mut wbuf, &mut queue);
        // Few commands so far: give other clients' tasks one turn to add
        // theirs, so they share this write (a syscall per command is what a
        // proxy without pipelining pays for most). A pipelined batch already
        // shares its write and would only wait. A lone client gains nothing
        // from the turn and pays two syscalls for it, so `coalesce` stops
        // offering it while it keeps coming back empty.
        if commands < load::PIPELINED && coalesce.try_now() {
            tokio::task::yield_now().await;
            let more = drain(rx, &mut wbuf, &mut queue);
            commands += more;
            coalesce.record(more > 0);
        }
        pipe.load.unsent.fetch_sub(commands, Ordering::Relaxed);
        NodeStats::add(&pipe.stats.requests, commands);
        NodeStats::add(&pipe.stats.bytes_sent, wbuf.len());
        if let Err(e) = wr.write_all(&wbuf).await {
            drop(slots_tx);
            let _ = reader.await;
            return Err(RedisBackendError::Unavailable {
                addr: target.addr.clone(),
                reason: e.to_string(),
            });
        }
        wbuf.clear();
    }
}

/// Takes queued requests until the batch is full or the queue is empty;
/// returns how many commands they hold.
fn drain(
    rx: &mut mpsc::UnboundedReceiver<Request>,
    wbuf: &mut BytesMut,
    queue: &mut impl FnMut(Request, &mut BytesMut) -> usize,
) -> usize {
    let mut n = 0;
    while wbuf.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(r) => n += queue(r, wbuf),
            Err(_) => break,
        }
    }
    n
}

/// Hands each reply to the oldest waiting slot. Returns when the writer is
/// gone and nothing is outstanding, or fails every slot when the
/// connection breaks.
async fn read_replies(
    mut rd: ReadHalf<Stream>,
    mut buf: BytesMut,
    mut slots: mpsc::UnboundedReceiver<Waiting>,
    pipe: Pipe<'_>,
) -> Result<(), RedisBackendError> {
    let outstanding = &pipe.load.unanswered;
    let (target, version) = (pipe.target, pipe.version);
    let mut current: Option<Waiting> = None;
    // Error replies seen since the last read, added to the node's counter
    // once per read rather than once per reply.
    let mut errors = 0;
    loop {
        loop {
            // A batch whose replies have all arrived goes out as one slice
            // of the read buffer: no copy per reply.
            if let Some(w) = current
                .as_ref()
                .filter(|w| w.collect.as_ref().is_some_and(BytesMut::is_empty))
            {
                if let Some((len, errs)) = replies_len(&buf, w.replies, version, &target.limits) {
                    errors += errs;
                    if let Some(w) = current.take() {
                        outstanding.fetch_sub(w.commands, Ordering::AcqRel);
                        answered(pipe, &w);
                        let _ = w.reply.send(Ok(buf.split_to(len).freeze()));
                    }
                    continue;
                }
            }
            if current.is_none() && !buf.is_empty() {
                match slots.recv().await {
                    Some(w) => current = Some(w),
                    None => {
                        return Err(RedisBackendError::Protocol(
                            "reply without a request".into(),
                        ))
                    }
                }
                continue;
            }
            let raw = match frame::split_raw(&mut buf, version, &target.limits) {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(e) => {
                    let e = RedisBackendError::Protocol(e.to_string());
                    if let Some(w) = current.take() {
                        NodeStats::add(&pipe.stats.failed_requests, w.replies);
                        let _ = w.reply.send(Err(e.clone()));
                    }
                    return fail_all(&mut slots, e, pipe.stats);
                }
            };
            // The writer queues a slot before writing its command, so a
            // slot is always there for a reply.
            let slot = match current.as_mut() {
                Some(w) => w,
                None => match slots.recv().await {
                    Some(w) => current.insert(w),
                    None => {
                        return Err(RedisBackendError::Protocol(
                            "reply without a request".into(),
                        ))
                    }
                },
            };
            slot.replies -= 1;
            errors += usize::from(raw.first().copied().is_some_and(is_error_reply));
            let raw = match slot.collect.as_mut() {
                Some(all) => {
                    all.extend_from_slice(&raw);
                    None
                }
                None => Some(raw),
            };
            if slot.replies == 0 {
                if let Some(mut w) = current.take() {
                    outstanding.fetch_sub(w.commands, Ordering::AcqRel);
                    let answer = match (raw, w.collect.take()) {
                        (Some(last), _) => last,
                        (None, Some(all)) => all.freeze(),
                        (None, None) => Bytes::new(),
                    };
                    answered(pipe, &w);
                    let _ = w.reply.send(Ok(answer));
                }
            }
        }
        NodeStats::add(&pipe.stats.error_replies, std::mem::take(&mut errors));
        if slots.is_closed() && outstanding.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        buf.reserve(16 * 1024);
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                if let Some(w) = current.take() {
                    NodeStats::add(&pipe.stats.failed_requests, w.replies);
                    let _ = w.reply.send(Err(RedisBackendError::Lost));
                }
                return fail_all(&mut slots, RedisBackendError::Lost, pipe.stats);
            }
            Ok(n) => NodeStats::add(&pipe.stats.bytes_received, n),
        }
    }
}

/// The byte length of the next `n` complete replies in `buf`, if all of
/// them are there, and how many of them are error replies.
fn replies_len(
    buf: &[u8],
    n: usize,
    version: Version,
    limits: &frame::Limits,
) -> Option<(usize, usize)> {
    let (mut at, mut errors) = (0, 0);
    for _ in 0..n {
        let len = frame::frame_len(&buf[at..], version, limits).ok()??;
        errors += usize::from(buf.get(at).copied().is_some_and(is_error_reply));
        at += len;
    }
    Some((at, errors))
}

fn fail_all(
    slots: &mut mpsc::UnboundedReceiver<Waiting>,
    e: RedisBackendError,
    stats: &NodeStats,
) -> Result<(), RedisBackendError> {
    slots.close();
    while let Ok(w) = slots.try_recv() {
        NodeStats::add(&stats.failed_requests, w.replies);
        let _ = w.reply.send(Err(e.clone()));
    }
    Err(e)
}

#[cfg(test)]
mod tests;
