//! Parse → route → respond (Redis): the session loop. Commands are read
//! as they arrive (pipelining), each gets a reply slot in a FIFO, and slots
//! are written out strictly in order as their replies become ready, so a
//! slow reply never lets a later one overtake it.
//!
//! Two limits hold a client back instead of failing it: `max_pipeline`
//! (commands in flight) and `max_queued_bytes` (reply bytes held for it;
//! see [`Session::queue_full`]). While either is reached Attaché reads no
//! more of that client's commands, so its socket fills and it waits, as it
//! would for a slow server; nothing is lost and other clients go on.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::net::Stream;
use attache_redis_protocol::command::{self, Affinity, DedicatedReason, Request, RequestLimits};
use attache_redis_protocol::frame::{encode, Limits, Version};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::local::{self, Local};
use super::order::Channel;
use super::timer::ReplyTimer;
use super::{dedicated, route, txn, RedisContext};
use crate::core::redis::{Reply, Setup};
use crate::server::Shutdown;

/// Spreads clients over the shared pipes.
static NEXT_LANE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

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

#[derive(Debug, thiserror::Error)]
pub enum RedisSessionError {
    #[error("client connection: {0}")]
    Io(#[from] std::io::Error),
}

pub(super) struct Session {
    pub ctx: Arc<RedisContext>,
    pub version: Version,
    pub db: u32,
    pub authed: bool,
    pub name: Option<Bytes>,
    pub slots: VecDeque<Slot>,
    /// Guards the oldest reply's deadline.
    pub reply_timer: ReplyTimer,
    /// A MULTI/WATCH transaction, while one is open.
    pub txn: Option<txn::Txn>,
    /// Transactions opened so far (see `Channel::Private`).
    pub transactions: u32,
    /// The command that switched the session to a dedicated relay, and
    /// the shard its keys or shard channels belong to.
    pub pending_relay: Option<(Bytes, Option<usize>)>,
    pub quit: bool,
    /// Which shared pipe of each node this client uses (see `Mux::send`).
    pub lane: usize,
    /// Fixed for the session: which replica its reads prefer (see
    /// `LaneChoice::spread`).
    pub spread: usize,
    /// Plain commands read but not yet sent (see `batchable`).
    pub batch: BytesMut,
    pub batched: usize,
    /// `single` mode: the primary's shared connections for this client's
    /// protocol version and database, looked up once, not per command.
    pub primary_mux: Option<(Setup, Arc<crate::core::redis::Mux>)>,
    /// Sentinel mode: keeps the client's commands in order across failovers.
    pub sentinel_order: crate::core::redis::sentinel::Order,
    /// What the session holds for the client (see [`Session::queue_full`]).
    pub queued: Queued,
    /// Where the unanswered commands went, and a request that must wait
    /// for their replies before it goes elsewhere (see `order`).
    pub last_channel: Channel,
    pub held: Option<Request>,
    /// Commands answered with a timeout error whose server replies have
    /// not come: they may still run, so they count as unanswered until
    /// they do, and the client's later commands keep their connection
    /// (see `order`). Each is given up at its instant (another
    /// `command_timeout`), so a server that never answers cannot hold the
    /// client's other commands for good.
    pub orphans: VecDeque<(oneshot::Receiver<Reply>, Instant)>,
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

    fn new() -> Self {
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

pub(super) async fn run(
    ctx: Arc<RedisContext>,
    mut tcp: Stream,
    shutdown: Shutdown,
) -> Result<(), RedisSessionError> {
    let limits = RequestLimits {
        frame: Limits {
            max_frame_size: ctx.config.max_request_size.0 as usize,
            ..Limits::default()
        },
        ..RequestLimits::default()
    };
    let max_pipeline = ctx.config.max_pipeline;
    let spread = NEXT_LANE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = Session {
        authed: ctx.config.client_password.is_none() && ctx.config.client_users.is_empty(),
        ctx,
        version: Version::Resp2,
        db: 0,
        name: None,
        slots: VecDeque::new(),
        reply_timer: ReplyTimer::default(),
        txn: None,
        transactions: 0,
        pending_relay: None,
        quit: false,
        lane: spread,
        spread,
        primary_mux: None,
        sentinel_order: Default::default(),
        batch: BytesMut::new(),
        batched: 0,
        queued: Queued::new(),
        last_channel: Channel::Blocking,
        held: None,
        orphans: VecDeque::new(),
    };
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut closing = false;
    let mut stop = shutdown.signal();
    // Requests already read but not parsed because the pipeline was full.
    let mut buffered = false;
    // Sentinel mode: no new command is read while a failover promotes a
    // replica (see `sentinel::fence`), so transactions and blocking
    // commands wait for the new primary too.
    let sentinel = s.ctx.topology.sentinel().cloned();
    loop {
        write_ready(&mut s, &mut tcp, &mut wbuf).await?;
        if (s.quit || closing) && s.slots.is_empty() {
            return Ok(());
        }
        let fenced = s.fenced();
        let reading = !s.quit
            && !closing
            && !fenced
            && s.slots.len() < max_pipeline
            && s.orphans.len() < max_pipeline
            && !s.queue_full()
            && !s.at_barrier();
        if reading && buffered {
            buffered = false;
            if let Some(pinned) = parse(&mut s, &mut rbuf, &limits, &mut buffered).await {
                return hand_over(s, tcp, rbuf, wbuf, pinned).await;
            }
            continue;
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        // Biased, no random start per turn. The shutdown signal goes first
        // (a flag check while nothing fired) so a client that never stops
        // sending still sees the drain begin.
        tokio::select! {
            biased;
            _ = stop.fired(), if !closing => closing = true,
            r = tcp.read_buf(&mut rbuf), if reading => {
                if r? == 0 {
                    closing = true;
                    continue;
                }
                if let Some(pinned) = parse(&mut s, &mut rbuf, &limits, &mut buffered).await {
                    return hand_over(s, tcp, rbuf, wbuf, pinned).await;
                }
            }
            _ = s.wait_front() => {}
            _ = super::order::unfenced(sentinel.as_deref()), if fenced => {}
        }
    }
}

/// Handles the complete requests in `rbuf` until the pipeline is full
/// (then `buffered` says whether bytes wait). `Some` means the session
/// must become a dedicated relay.
async fn parse(
    s: &mut Session,
    rbuf: &mut BytesMut,
    limits: &RequestLimits,
    buffered: &mut bool,
) -> Option<DedicatedReason> {
    let max_pipeline = s.ctx.config.max_pipeline;
    let mut fast = s.open_plain_lane();
    loop {
        // Checked per request: the fence can go up while a batch is parsed.
        if s.fenced() {
            *buffered = !rbuf.is_empty() || s.held.is_some();
            break;
        }
        // A held request goes first: it was read before what is in `rbuf`.
        if !(fast && s.held.is_none() && s.take_plain(rbuf, limits)) {
            let held = s.held.take();
            let Some(req) = held.or_else(|| next_request(rbuf, limits, s)) else {
                break;
            };
            if let Some(cmd) = &req.command {
                if !s.claim(s.channel_of(cmd)) {
                    // Parsed again once everything before it is answered.
                    s.hold(req);
                    *buffered = true;
                    return None;
                }
            }
            if let Some(pinned) = s.handle(req).await {
                return Some(pinned);
            }
            // AUTH, MULTI, EXEC and the like open or close the lane.
            fast = s.open_plain_lane();
        }
        if s.slots.len() + s.batched >= max_pipeline || s.quit || s.queue_full() {
            *buffered = !rbuf.is_empty() && !s.quit;
            break;
        }
    }
    // Everything read so far goes out now, as one batch where it can.
    s.flush_batch();
    None
}

/// Pub/sub and friends: flush every reply owed, then relay bytes.
async fn hand_over(
    mut s: Session,
    mut tcp: Stream,
    rbuf: BytesMut,
    mut wbuf: BytesMut,
    pinned: DedicatedReason,
) -> Result<(), RedisSessionError> {
    loop {
        write_ready(&mut s, &mut tcp, &mut wbuf).await?;
        if s.slots.is_empty() {
            break;
        }
        s.wait_front().await;
    }
    dedicated::relay(&s, tcp, rbuf, pinned).await
}

/// Most bytes of small replies gathered into one write.
const WRITE_CHUNK: usize = 64 * 1024;

/// Writes every reply that is ready, in order: small ones gathered into
/// `wbuf`, large ones as they are (no copy). Returns once the front reply
/// is not ready; blocks while the client does not read, which is what
/// holds a slow reader back.
async fn write_ready(
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

/// Splits the next request; a malformed one is answered like Redis does
/// (`-ERR Protocol error: …`) and ends the session.
fn next_request(rbuf: &mut BytesMut, limits: &RequestLimits, s: &mut Session) -> Option<Request> {
    match command::next_command(rbuf, limits) {
        Ok(r) => r,
        Err(e) => {
            // Answered in order after earlier replies; then the session ends.
            let text = e.to_string();
            let text = if text.starts_with("Protocol error") {
                format!("ERR {text}")
            } else {
                format!("ERR Protocol error: {text}")
            };
            s.error(&text);
            s.quit = true;
            rbuf.clear();
            None
        }
    }
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

    /// Routes one request. Returns `Some` when the session must become a
    /// dedicated relay (pub/sub, MONITOR, client tracking).
    async fn handle(&mut self, req: Request) -> Option<DedicatedReason> {
        let cmd = req.command?;
        if self.batchable(&cmd) {
            self.batch(&req.raw);
            return None;
        }
        // Anything else is sent (or answered) after what is batched.
        self.flush_batch();
        match local::classify(self, &cmd) {
            Local::Answered => return None,
            Local::Forward => {}
        }
        match command::connection_affinity(&cmd) {
            Affinity::Dedicated(DedicatedReason::Transaction) => self.transaction(&cmd, req.raw),
            Affinity::Dedicated(DedicatedReason::Select) => local::select(self, &cmd).await,
            Affinity::Dedicated(reason) => {
                if self.in_transaction() {
                    self.error("ERR attache: this command cannot run inside MULTI through a proxy");
                    return None;
                }
                let shard = self.node_for(&cmd).ok().flatten();
                self.pending_relay = Some((req.raw, shard));
                return Some(reason);
            }
            Affinity::Blocking if !self.in_transaction() => {
                let shard = self.node_for(&cmd).ok().flatten();
                let node = match shard {
                    Some(sh) => self.ctx.topology.node_for_shard(sh),
                    None => self.ctx.topology.first(),
                };
                let sentinel = self.ctx.topology.sentinel().cloned();
                let rx = dedicated::blocking(node, sentinel, self.version, self.db, req.raw);
                self.wait(rx, true);
            }
            _ if self.in_transaction() => self.in_txn(&cmd, req.raw),
            _ => route::route(self, &cmd, req.raw),
        }
        None
    }

    pub(super) fn wait_reply(&mut self, rx: oneshot::Receiver<Reply>) {
        self.wait(rx, false);
    }

    /// The first node's shared connections for the current setup (cached;
    /// a SELECT or HELLO changes the setup and so the cache key).
    pub(super) fn primary_mux(&mut self) -> Arc<crate::core::redis::Mux> {
        let setup = self.setup();
        match &self.primary_mux {
            Some((s, mux)) if *s == setup => mux.clone(),
            _ => {
                let mux = self.ctx.first_mux(setup.version, setup.db);
                self.primary_mux = Some((setup, mux.clone()));
                mux
            }
        }
    }

    pub(super) fn setup(&self) -> Setup {
        Setup {
            version: self.version,
            db: self.db,
        }
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
