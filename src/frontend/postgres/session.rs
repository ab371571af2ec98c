//! Parse → route → backend → respond (Postgres): one client session's loop.
//!
//! After login the session reads client messages and server replies at the
//! same time. In transaction mode a server connection is checked out when a
//! request arrives and returned when the server reports idle with nothing
//! outstanding; in session mode (or when LISTEN pins it) it is kept until
//! the client leaves. Writes are batched: everything produced from one read
//! goes out in one write.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attache_postgres_protocol::frame;
use attache_postgres_protocol::messages;
use attache_postgres_protocol::readwrite::{Classifier, RoleHint};
use attache_postgres_protocol::sqlstate;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Span;

use super::context::PgContext;
use super::error::FrontendError;
use super::idle_tx::IdleTransaction;
use super::pump::{settle, shrink};
use super::relay::Expect;
use super::routing::Want;
use super::send_fatal;
use super::settings::Settings;
use super::statements::Statements;
use crate::config::types::PoolMode;
use crate::core::pg::cancel::{CancelHandle, CANCEL_TIMEOUT};
use crate::core::pg::cluster::InFlight;
use crate::core::pg::pool::PooledConn;
use crate::core::pg::{Cluster, PgPool};
use crate::net::Stream;
use crate::server::{Shutdown, Signal};

/// During a drain, how long a client that just connected may take to log
/// in, and how long a client must be quiet before it is closed.
pub(super) const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Parameters a hot standby reports as "on".
const STANDBY_PARAMS: &[&str] = &["in_hot_standby", "default_transaction_read_only"];

pub(super) struct Session {
    pub ctx: Arc<PgContext>,
    /// The config generation this session was routed under; when a reload
    /// moves it, the session re-routes before its next transaction.
    pub generation: u64,
    pub database: String,
    pub user: String,
    /// The config key `database` matched.
    pub db_key: String,
    /// The pool of the attached server's node (the primary's when idle).
    pub pool: Arc<PgPool>,
    /// One pool per node of the cluster.
    pub pools: Arc<[Arc<PgPool>]>,
    pub cluster: Arc<Cluster>,
    pub classifier: Arc<Classifier>,
    /// The attached transaction's hold on its node (load and latency).
    pub in_flight: Option<InFlight>,
    /// `SET attache.role`: forces reads to the primary or to replicas.
    pub role_override: Option<RoleHint>,
    /// The WAL position this client's reads must see (read-your-writes).
    pub min_lsn: u64,
    /// The attached transaction runs on the primary as a write: its commit
    /// position is captured before release.
    pub wrote: bool,
    /// A transaction the client had open died with its server while the
    /// client was idle; its next request is answered with this error.
    pub lost_tx: Option<String>,
    /// A read query sent to a freshly attached server that has answered
    /// nothing yet: if the server dies now, it is sent again elsewhere
    /// (a read cannot write, so running it twice is harmless).
    pub replay: Option<Vec<attache_postgres_protocol::frame::Message>>,
    /// The attached server was chosen for a read (replica or fallback).
    pub read_attach: bool,
    pub client: Stream,
    pub cbuf: BytesMut,
    pub cout: BytesMut,
    pub server: Option<PooledConn>,
    pub sout: BytesMut,
    pub expect: VecDeque<Expect>,
    /// The last transaction status the client was told.
    pub tx_status: u8,
    pub mode: PoolMode,
    /// Whether client statement names are mapped to shared server names.
    pub rename: bool,
    /// Kept on one server connection until the client leaves (LISTEN).
    pub pinned: bool,
    /// After an error Attaché raised itself in an extended-protocol batch,
    /// the rest of the batch is ignored up to Sync, as a server would.
    pub skip_until_sync: bool,
    pub last_commit: bool,
    /// The server is in copy-in mode and ignores Sync from the client.
    pub copy_in: bool,
    /// That copy-in came from an extended-protocol Execute: once it fails,
    /// the server skips to the client's next Sync.
    pub copy_extended: bool,
    pub statements: Statements,
    pub settings: Settings,
    pub cancel: CancelHandle,
    pub max_message: usize,
    pub closing: bool,
    /// The connection's span, entered for the session loop only when debug
    /// events are on: warnings name it themselves (`in_scope`).
    pub span: Span,
    /// Listed among the clients (the admin console) while it lives.
    pub listed: Option<super::clients::ClientGuard>,
}

enum Event {
    Client(std::io::Result<usize>),
    Server(std::io::Result<usize>),
    Shutdown,
    Idle,
    /// `idle_transaction_timeout` ran out.
    IdleTransaction,
}

pub(super) enum Flow {
    Continue,
    Exit,
}

/// What the session saw since its idle timer was last armed.
struct Activity {
    requests: u64,
    replies: u64,
    /// The counts when the timer was last armed, and when that was.
    marked: (u64, u64),
    marked_at: Instant,
}

impl Activity {
    fn new() -> Self {
        Activity {
            requests: 0,
            replies: 0,
            marked: (0, 0),
            marked_at: Instant::now(),
        }
    }

    /// Whether anything that counts happened since the last mark (while
    /// draining, only client requests count).
    fn moved(&self, requests_only: bool) -> bool {
        match requests_only {
            true => self.requests != self.marked.0,
            false => (self.requests, self.replies) != self.marked,
        }
    }

    fn mark(&mut self) {
        self.marked = (self.requests, self.replies);
        self.marked_at = Instant::now();
    }
}

impl Session {
    /// Finishes login: the server parameters, our cancel key, ReadyForQuery.
    pub(super) async fn greet(&mut self) -> Result<(), FrontendError> {
        if self.mode == PoolMode::Session {
            self.attach(Want::Primary).await?;
        } else if self.pools.iter().all(|p| p.server_params().is_none()) {
            // Learn the server's parameters (and prove a node is reachable).
            self.connect_to(Want::Read).await?;
            self.release();
        }
        let primary_params = self.pool.server_params();
        let params = primary_params
            .or_else(|| self.pools.iter().find_map(|p| p.server_params()))
            .unwrap_or_default();
        let mut out = BytesMut::new();
        messages::auth_ok(&mut out);
        for (k, v) in params {
            let (k, v) = (k.clone(), v.clone());
            let lower = k.to_ascii_lowercase();
            let own = self.settings.startup.contains_key(&lower);
            let mut value = startup_value(&self.settings, &lower).unwrap_or(v);
            if primary_params.is_none() && STANDBY_PARAMS.contains(&lower.as_str()) {
                // Learned from a replica, but this client's writes go to
                // the primary: drivers that look for a writable server
                // (target_session_attrs=read-write) must not be misled.
                value = "off".into();
            }
            if own || k != "application_name" {
                messages::parameter_status(&mut out, &k, &value);
            }
        }
        messages::backend_key_data(&mut out, self.cancel.pid, self.cancel.secret);
        messages::ready_for_query(&mut out, b'I');
        self.cout.extend_from_slice(&out);
        self.flush_client().await
    }

    pub(super) async fn serve(
        &mut self,
        shutdown: &mut Shutdown,
        idle: Option<Duration>,
    ) -> Result<(), FrontendError> {
        // Activity is counted, not timed: a clock read per message would
        // cost more than the whole idle check. The one timer of the session
        // is re-armed only when it fires and finds activity since it was
        // armed, so a session is closed between one and two `limit`s after
        // it went quiet (PgBouncer checks its idle timeouts about once a
        // second, which is as coarse).
        let mut activity = Activity::new();
        let mut stop = shutdown.signal();
        let timer = tokio::time::sleep(idle.unwrap_or(DRAIN_GRACE));
        tokio::pin!(timer);
        let mut in_tx = IdleTransaction::default();
        loop {
            self.flush().await?;
            let limit = if self.closing {
                Some(DRAIN_GRACE)
            } else {
                idle
            };
            let armed = limit.is_some() && self.at_rest();
            let tx_limit = self.pool.settings.idle_transaction_timeout;
            in_tx.update(tx_limit, tx_limit.is_some() && self.idle_in_transaction());
            match self
                .next_event(&mut stop, timer.as_mut(), armed, &mut in_tx)
                .await
            {
                Event::Client(Ok(0)) => return Ok(()),
                Event::Client(Ok(_)) => {
                    activity.requests += 1;
                    let pending = self.cbuf.len();
                    if let Flow::Exit = self.on_client_bytes().await? {
                        return Ok(());
                    }
                    if self.cbuf.len() < pending {
                        // A whole request came (even one Attaché answers
                        // itself): the client is not idle in its transaction.
                        in_tx.disarm();
                    }
                }
                Event::Client(Err(e)) => return Err(e.into()),
                Event::Server(Ok(0)) => {
                    activity.replies += 1;
                    self.server_lost("server closed the connection").await?
                }
                Event::Server(Ok(_)) => {
                    activity.replies += 1;
                    self.on_server_bytes().await?;
                    // The client's answer first, the pool's bookkeeping
                    // after: the release (clock read, locks, waking the
                    // next waiter) is off the reply's path.
                    self.flush_client().await?;
                    self.maybe_release();
                }
                Event::Server(Err(e)) => {
                    activity.replies += 1;
                    self.server_lost(&e.to_string()).await?
                }
                Event::Shutdown => {
                    self.closing = true;
                    // Quiet since the last mark: closed a grace period
                    // after it (at once if that has passed). Otherwise the
                    // client gets a full grace period from now.
                    if activity.moved(true) {
                        activity.mark();
                    }
                    timer
                        .as_mut()
                        .reset((activity.marked_at + DRAIN_GRACE).into());
                }
                Event::IdleTransaction => return self.end_idle_transaction().await,
                Event::Idle => {
                    // Draining: a client at rest that has been quiet for
                    // DRAIN_GRACE is told and closed; one that just
                    // connected gets served first.
                    let limit = match self.closing {
                        true => DRAIN_GRACE,
                        false => idle.unwrap_or(DRAIN_GRACE),
                    };
                    if activity.moved(self.closing) {
                        activity.mark();
                        timer.as_mut().reset((activity.marked_at + limit).into());
                        continue;
                    }
                    return self.close_idle().await;
                }
            }
        }
    }

    /// The idle timer went off with the session at rest: a draining
    /// session is closed as shutting down, any other one as idle.
    async fn close_idle(&mut self) -> Result<(), FrontendError> {
        if self.closing {
            send_fatal(
                &mut self.client,
                sqlstate::ADMIN_SHUTDOWN,
                "Attaché is shutting down",
            )
            .await;
            return Ok(());
        }
        let e = FrontendError::ClientTimeout;
        send_fatal(
            &mut self.client,
            e.sqlstate(),
            "terminating connection due to client_idle_timeout",
        )
        .await;
        Err(e)
    }

    async fn next_event(
        &mut self,
        shutdown: &mut Signal,
        timer: std::pin::Pin<&mut tokio::time::Sleep>,
        timer_armed: bool,
        in_tx: &mut IdleTransaction,
    ) -> Event {
        let client = &mut self.client;
        let cbuf = &mut self.cbuf;
        let server = &mut self.server;
        let closing = self.closing;
        if cbuf.capacity() - cbuf.len() < 4096 {
            cbuf.reserve(16 * 1024);
        }
        let server_read = async move {
            match server.as_mut() {
                Some(s) => {
                    let conn: &mut crate::core::pg::ServerConn = s;
                    let (stream, rbuf) = (&mut conn.stream, &mut conn.rbuf);
                    if rbuf.capacity() - rbuf.len() < 4096 {
                        rbuf.reserve(16 * 1024);
                    }
                    stream.read_buf(rbuf).await
                }
                None => std::future::pending().await,
            }
        };
        // Biased, reads first: the branch that woke the session is found
        // without polling the shutdown signal and the idle timer as well.
        tokio::select! {
            biased;
            r = server_read => Event::Server(r),
            r = client.read_buf(cbuf) => Event::Client(r),
            _ = shutdown.fired(), if !closing => Event::Shutdown,
            _ = timer, if timer_armed => Event::Idle,
            _ = in_tx.expired() => Event::IdleTransaction,
        }
    }

    /// Nothing is outstanding: the session may be idled out or shut down.
    fn at_rest(&self) -> bool {
        self.expect.is_empty()
            && self.tx_status == b'I'
            && (self.server.is_none() || self.mode == PoolMode::Session || self.pinned)
    }

    /// Handles every complete client message in the read buffer, read in
    /// place like the server's (see [`Session::on_server_bytes`]).
    async fn on_client_bytes(&mut self) -> Result<Flow, FrontendError> {
        let mut cbuf = std::mem::take(&mut self.cbuf);
        let mut used = 0;
        let outcome = loop {
            let m = match frame::peek_message(&cbuf[used..], self.max_message) {
                Ok(Some(m)) => m,
                Ok(None) => break Ok(Flow::Continue),
                Err(e) => {
                    let e = FrontendError::from(e);
                    let message = format!("{e} (max_message_size)");
                    super::send_fatal_and_drain(&mut self.client, e.sqlstate(), &message).await;
                    break Err(e);
                }
            };
            used += m.frame.len();
            match self.on_client_message(m).await {
                Ok(Flow::Continue) => {}
                Err(e @ FrontendError::Protocol(_)) => {
                    // A message Attaché cannot read ends the session, but
                    // not silently: replies already due, then the reason.
                    let _ = self.flush_client().await;
                    super::send_fatal(&mut self.client, e.sqlstate(), &e.to_string()).await;
                    break Err(e);
                }
                other => break other,
            }
        };
        cbuf.advance(used);
        settle(&mut cbuf, self.max_message);
        self.cbuf = cbuf;
        if let Ok(Flow::Continue) = outcome {
            self.drain_synth();
        }
        outcome
    }

    /// Relays every complete server message in the read buffer. They are
    /// read in place (the buffer is lent out meanwhile) and the buffer is
    /// advanced once: no per-message split and reference count.
    pub(super) async fn on_server_bytes(&mut self) -> Result<(), FrontendError> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        let mut rbuf = std::mem::take(&mut server.rbuf);
        let mut used = 0;
        let result = loop {
            match frame::peek_message(&rbuf[used..], self.max_message) {
                Ok(Some(m)) => {
                    used += m.frame.len();
                    self.on_server_message(m);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        rbuf.advance(used);
        settle(&mut rbuf, self.max_message);
        if let Some(server) = self.server.as_mut() {
            server.rbuf = rbuf;
        }
        // Attaché's own replies queued behind the server's last one go out
        // now: after a Flush, no further server message may come to send them.
        self.drain_synth();
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.server_lost(&e.to_string()).await,
        }
    }

    /// Applies the difference between the client's settings and the
    /// attached server's, swallowing the replies.
    pub(super) fn sync_settings(&mut self) {
        let Some(conn) = self.server.as_mut() else {
            return;
        };
        if let Some(sql) = self.settings.diff_sql(&conn.settings) {
            messages::query(&mut self.sout, &sql);
            self.expect.push_back(Expect::SwallowQuery);
            conn.settings.clone_from(&self.settings.values);
        }
    }

    /// Transaction pooling: hand the server back once it is idle with
    /// nothing outstanding.
    fn maybe_release(&mut self) {
        let Some(conn) = self.server.as_ref() else {
            return;
        };
        if conn.unsynced || self.tx_status != b'I' || !self.expect.is_empty() {
            return;
        }
        if self.mode == PoolMode::Transaction && !self.pinned && !self.skip_until_sync {
            if self.capture_write_lsn() {
                return;
            }
            self.release();
        } else {
            // Kept: make sure RESET ALL and the like leave it as the client expects.
            self.sync_settings();
        }
    }

    pub(super) fn release(&mut self) {
        if let Ok(mut slot) = self.cancel.slot.lock() {
            *slot = None;
        }
        self.in_flight = None;
        self.wrote = false;
        self.replay = None;
        self.copy_in = false;
        if let Some(conn) = self.server.take() {
            if conn.broken {
                self.pool.discard(conn);
            } else if conn.cancel.gate.busy() {
                park(self.pool.clone(), conn);
            }
        }
    }

    async fn flush(&mut self) -> Result<(), FrontendError> {
        // Losing the server while writing may queue requests for another
        // one (a read retried elsewhere), and releasing it may queue a
        // WAL-position query or settings: those go out too.
        while !self.sout.is_empty() {
            let mut out = std::mem::take(&mut self.sout);
            let n = out.len() as u64;
            self.pool
                .stats
                .bytes_to_server
                .fetch_add(n, Ordering::Relaxed);
            if let Some(s) = self.server.as_mut() {
                // A cancel still in flight to this connection (the
                // client kept it: session mode, or inside a
                // transaction) could cancel what goes out now.
                if s.cancel.gate.busy() && !s.cancel.gate.wait_idle(CANCEL_TIMEOUT).await {
                    // Not returned to the pool: a late signal may come.
                    s.broken = true;
                }
            }
            let relayed = self.write_server(&out).await?;
            out.clear();
            shrink(&mut out);
            if self.sout.is_empty() {
                // Its room is kept for the next batch.
                self.sout = out;
            }
            if relayed {
                // The replies read while writing may have been the last ones.
                self.maybe_release();
            }
        }
        self.flush_client().await
    }

    pub(super) async fn flush_client(&mut self) -> Result<(), FrontendError> {
        if !self.cout.is_empty() {
            let n = self.cout.len() as u64;
            self.pool
                .stats
                .bytes_to_client
                .fetch_add(n, Ordering::Relaxed);
            self.client.write_all(&self.cout).await?;
            self.cout.clear();
            shrink(&mut self.cout);
        }
        Ok(())
    }

    /// Returns the server connection at the end of the session: clean ones
    /// go back (reset first if they carried session state), others are
    /// discarded.
    pub(super) async fn finish(&mut self) {
        if let Ok(mut slot) = self.cancel.slot.lock() {
            *slot = None;
        }
        self.in_flight = None;
        let Some(mut conn) = self.server.take() else {
            return;
        };
        if !self.expect.is_empty()
            && self.sout.is_empty()
            && self.expect.iter().all(|e| matches!(e, Expect::CaptureLsn))
        {
            // Only Attaché's WAL position query is outstanding: read its
            // answer so the connection can go back instead of being closed.
            let drained = tokio::time::timeout(Duration::from_secs(1), async {
                while conn.read_message().await.ok()?.tag != b'Z' {}
                Some(())
            })
            .await;
            if let Ok(Some(())) = drained {
                self.expect.clear();
            }
        }
        let clean =
            self.tx_status == b'I' && self.expect.is_empty() && !conn.broken && !conn.unsynced;
        // A connection going back waits out a cancel forwarded to it.
        if !clean || (conn.cancel.gate.busy() && !conn.cancel.gate.wait_idle(CANCEL_TIMEOUT).await)
        {
            self.pool.discard(conn);
            return;
        }
        if self.mode == PoolMode::Session || self.pinned {
            let query = self
                .pool
                .settings
                .server_reset_query
                .clone()
                .or_else(|| self.pinned.then(|| "DISCARD ALL".to_owned()));
            if let Some(q) = query {
                let reset =
                    tokio::time::timeout(Duration::from_secs(5), conn.simple_query(&q)).await;
                match reset {
                    Ok(Ok(None)) => conn.forget_session_state(true),
                    _ => self.pool.discard(conn),
                }
            }
        }
    }
}

/// Keeps a server connection out of the pool until the cancel forwarded
/// to it is finished (see [`crate::core::pg::cancel`]): a late signal must
/// not cancel the next client's statement. One that does not finish in
/// time is discarded.
fn park(pool: Arc<PgPool>, conn: PooledConn) {
    tokio::spawn(async move {
        if !conn.cancel.gate.wait_idle(CANCEL_TIMEOUT).await {
            pool.discard(conn);
        }
    });
}

fn startup_value(settings: &Settings, lower: &str) -> Option<String> {
    let quoted = settings.startup.get(lower)?;
    let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}
