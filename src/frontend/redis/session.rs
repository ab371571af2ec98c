//! Parse → route → respond (Redis): the session loop. Commands are read
//! as they arrive (pipelining), each gets a reply slot in a FIFO, and slots
//! are written out strictly in order as their replies become ready, so a
//! slow reply never lets a later one overtake it (the FIFO and its
//! accounting are in `replies`).
//!
//! Two limits hold a client back instead of failing it: `max_pipeline`
//! (commands in flight) and `max_queued_bytes` (reply bytes held for it;
//! see [`Session::queue_full`]). While either is reached Attaché reads no
//! more of that client's commands, so its socket fills and it waits, as it
//! would for a slow server; nothing is lost and other clients go on.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::net::Stream;
use attache_redis_protocol::command::fast::Progress;
use attache_redis_protocol::command::{self, Affinity, DedicatedReason, Request, RequestLimits};
use attache_redis_protocol::frame::{Limits, Version};
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::local::{self, Local};
use super::order::Channel;
use super::replies::{write_ready, Queued, Slot};
use super::CROSSSLOT;
use super::{dedicated, route, txn, RedisContext};
use crate::core::redis::{Reply, Setup};
use crate::core::timer::LazyTimer;
use crate::server::Shutdown;

/// Spreads clients over the shared pipes.
static NEXT_LANE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

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
    pub reply_timer: LazyTimer,
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
    /// How far the request at the front of the read buffer has been
    /// scanned, so a request arriving over many reads is not rescanned
    /// from its start on each (see `command::next_command_from`).
    pub scan: Progress,
}

impl Session {
    /// A new client's session: database 0, RESP2, authenticated only when
    /// Attaché asks for no password.
    fn new(ctx: Arc<RedisContext>) -> Self {
        let spread = NEXT_LANE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Session {
            authed: ctx.config.client_password.is_none() && ctx.config.client_users.is_empty(),
            ctx,
            version: Version::Resp2,
            db: 0,
            name: None,
            slots: VecDeque::new(),
            reply_timer: LazyTimer::default(),
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
            scan: Progress::default(),
        }
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
    let mut s = Session::new(ctx);
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    // No more reads: the client left (`gone`) or shutdown began.
    let (mut closing, mut gone) = (false, false);
    // The client closed its side, noticed with bytes of it still unread.
    let mut peer_closed = false;
    let mut stop = shutdown.signal();
    // Requests already read but not parsed because the pipeline was full.
    let mut buffered = false;
    // Sentinel mode: no new command is read while a failover promotes a
    // replica (see `sentinel::fence`), so transactions and blocking
    // commands wait for the new primary too.
    let sentinel = s.ctx.topology.sentinel().cloned();
    loop {
        if (gone || peer_closed) && s.client_gone(&mut rbuf, &mut buffered) {
            // What it sent after its blocking command is dropped, read or not.
            (closing, gone) = (true, true);
        }
        write_ready(&mut s, &mut tcp, &mut wbuf).await?;
        // A client that half-closed after a pipeline still gets the
        // replies to what it sent before leaving.
        let parse_later = buffered && !s.quit && (gone || !closing);
        if (s.quit || closing) && s.slots.is_empty() && !parse_later {
            return Ok(());
        }
        let fenced = s.fenced();
        let room = !s.quit && !fenced && s.has_room();
        if room && parse_later {
            buffered = false;
            if let Some(pinned) = parse(&mut s, &mut rbuf, &limits, &mut buffered).await {
                return hand_over(s, tcp, rbuf, wbuf, pinned).await;
            }
            continue;
        }
        let reading = room && !closing;
        // Not reading commands, the socket is still watched (a little is
        // read ahead, parsed later; past that, its close is watched for
        // without reading) so that a client leaving is noticed: one
        // leaving behind a blocking command would otherwise be waited for
        // as long as the command blocks, forever for `BLPOP k 0`.
        let room_ahead = match reading {
            true => usize::MAX,
            false => READ_AHEAD.saturating_sub(rbuf.len()),
        };
        // Its close already noticed, there is nothing to watch for until
        // there is room to read again.
        let watched_out = peer_closed && room_ahead == 0;
        let watching = !closing && !s.quit && !watched_out;
        // Biased, no random start per turn. The shutdown signal goes first
        // (a flag check while nothing fired) so a client that never stops
        // sending still sees the drain begin.
        tokio::select! {
            biased;
            _ = stop.fired(), if !closing => closing = true,
            r = read_some(&mut tcp, &mut rbuf, room_ahead), if watching => {
                let Some(n) = r? else {
                    peer_closed = true;
                    continue;
                };
                if n == 0 {
                    (closing, gone) = (true, true);
                    continue;
                }
                if !reading {
                    buffered = true;
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

/// Most bytes of requests read ahead while the session reads no commands
/// (see the session loop), so that it notices the client leave.
const READ_AHEAD: usize = 16 * 1024;

/// Reads at most `limit` more bytes into `rbuf`; `Some(0)` means the
/// client closed. With `limit` 0, reads nothing and returns `None` once
/// the client has closed its side (or reset), bytes of it still unread.
async fn read_some(
    tcp: &mut Stream,
    rbuf: &mut BytesMut,
    limit: usize,
) -> std::io::Result<Option<usize>> {
    use bytes::BufMut;
    if limit == 0 {
        crate::net::peer_closed(tcp.tcp()).await?;
        return Ok(None);
    }
    if rbuf.capacity() - rbuf.len() < 4096 {
        rbuf.reserve(16 * 1024);
    }
    tcp.read_buf(&mut rbuf.limit(limit)).await.map(Some)
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

/// Splits the next request; a malformed one is answered like Redis does
/// (`-ERR Protocol error: …`) and ends the session. Until a client that
/// must authenticate has, Redis's lower bounds apply to its requests.
fn next_request(rbuf: &mut BytesMut, limits: &RequestLimits, s: &mut Session) -> Option<Request> {
    let limits = RequestLimits {
        unauthenticated: !s.authed,
        ..*limits
    };
    match command::next_command_from(rbuf, &limits, &mut s.scan) {
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
            s.scan = Progress::default();
            None
        }
    }
}

impl Session {
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
                    self.reject(
                        "ERR attache: this command cannot run inside MULTI through a proxy",
                    );
                    return None;
                }
                let Ok(shard) = self.node_for(&cmd) else {
                    self.error(CROSSSLOT);
                    return None;
                };
                self.pending_relay = Some((req.raw, shard));
                return Some(reason);
            }
            Affinity::Blocking if !self.in_transaction() => {
                // Keys on different nodes cannot be waited on together.
                let Ok(shard) = self.node_for(&cmd) else {
                    self.error(CROSSSLOT);
                    return None;
                };
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

    /// Whether another command may be handled now: neither limit is
    /// reached and no request waits behind unanswered ones.
    fn has_room(&self) -> bool {
        let max_pipeline = self.ctx.config.max_pipeline;
        self.slots.len() < max_pipeline
            && self.orphans.len() < max_pipeline
            && !self.queue_full()
            && !self.at_barrier()
    }

    /// The client left: its blocking commands (and whatever it sent after
    /// them) will never be answered to anyone, so they are dropped, which
    /// makes their tasks close their server connections. Commands before
    /// them still complete (the session ends once they have). True when
    /// something was dropped: nothing more of the client's may then run.
    fn client_gone(&mut self, rbuf: &mut BytesMut, buffered: &mut bool) -> bool {
        if !self.drop_from_blocking() {
            return false;
        }
        self.held = None;
        rbuf.clear();
        self.scan = Progress::default();
        *buffered = false;
        true
    }

    pub(super) fn setup(&self) -> Setup {
        Setup {
            version: self.version,
            db: self.db,
        }
    }
}
