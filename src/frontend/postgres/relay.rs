//! Backend → respond (Postgres): following the server's replies.
//!
//! Every message sent to the server that will be answered has an entry in
//! the expectation queue, in order. The queue tells which replies complete
//! which request, where Attaché's own replies (for statements it did not
//! need to send, or errors of its own) go in the stream, which replies to
//! messages Attaché injected must be swallowed, and when the server is idle
//! with nothing outstanding, which is when transaction pooling may release it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use attache_postgres_protocol::classify::SessionCommand;
use attache_postgres_protocol::frame::MessageRef;
use attache_postgres_protocol::messages;
use bytes::Bytes;
use tracing::warn;

use super::session::Session;
use super::settings::Settings;

/// What a server reply (or Attaché itself) owes the client, in order.
#[derive(Debug)]
pub(super) enum Expect {
    /// A forwarded client message, by its tag (`P B D E C S Q F`).
    Reply(u8),
    /// A forwarded, renamed Parse: undone if it fails.
    Parse { server: Arc<str>, client: Box<str> },
    /// A forwarded simple Query whose session effects apply when it succeeds.
    Query(Box<QueryEffects>),
    /// Attaché's own reply; `forget` names a client statement that must be
    /// forgotten if an earlier error means the server skipped its Parse.
    Synth {
        bytes: Bytes,
        forget: Option<Box<str>>,
    },
    /// A Parse Attaché injected to prepare a statement on this server.
    SwallowParse(Arc<str>),
    /// A Close Attaché injected to evict a statement.
    SwallowClose(Arc<str>),
    /// The failing Parse Attaché sent to abort the server's batch after an
    /// error of its own; the server's error for it is swallowed.
    SwallowAbort,
    /// SET/RESET Attaché ran to carry a client's settings over.
    SwallowQuery,
    /// The client ended a COPY (CopyDone or CopyFail) before the server
    /// said the copy began; see [`Session::on_copy_in`].
    CopyEnd,
    /// The WAL position query Attaché sends after a write transaction
    /// (read-your-writes); its replies, errors included, are swallowed.
    CaptureLsn,
}

/// What a simple Query changes beyond its results.
#[derive(Debug, Default)]
pub(super) struct QueryEffects {
    pub commands: Vec<SessionCommand>,
    /// An error was reported while the query ran.
    pub failed: bool,
}

impl Expect {
    /// Whether `tag` from the server completes this entry.
    fn completed_by(&self, tag: u8) -> bool {
        match self {
            Expect::Reply(b'P')
            | Expect::Parse { .. }
            | Expect::SwallowParse(_)
            | Expect::SwallowAbort => tag == b'1',
            Expect::Reply(b'B') => tag == b'2',
            Expect::Reply(b'C') | Expect::SwallowClose(_) => tag == b'3',
            Expect::Reply(b'D') => tag == b'T' || tag == b'n',
            Expect::Reply(b'E') => matches!(tag, b'C' | b'I' | b's'),
            Expect::Reply(_) | Expect::Query(_) | Expect::SwallowQuery | Expect::CaptureLsn => {
                tag == b'Z'
            }
            Expect::Synth { .. } | Expect::CopyEnd => false,
        }
    }

    /// Simple-protocol entries survive an error: the server still sends
    /// ReadyForQuery for them. Extended ones are skipped up to Sync.
    fn survives_error(&self) -> bool {
        matches!(
            self,
            Expect::Reply(b'Q' | b'F' | b'S')
                | Expect::Query(_)
                | Expect::SwallowQuery
                | Expect::CaptureLsn
        )
    }
}

impl Session {
    /// Emits Attaché's own replies that are next in line. A CopyEnd marker
    /// at the front belongs to a COPY that is over or never began.
    pub(super) fn drain_synth(&mut self) {
        while let Some(Expect::Synth { .. } | Expect::CopyEnd) = self.expect.front() {
            if let Some(Expect::Synth { bytes, .. }) = self.expect.pop_front() {
                self.cout.extend_from_slice(&bytes);
            }
        }
    }

    /// CopyInResponse. The server ignores Sync (and Flush) during copy-in,
    /// so Syncs an extended-protocol client sent along with its Execute get
    /// no ReadyForQuery: stop expecting one for them. Syncs sent after the
    /// client's CopyDone/CopyFail (the CopyEnd marker) count again.
    fn on_copy_in(&mut self) {
        let extended = matches!(self.expect.front(), Some(Expect::Reply(b'E')));
        let mut i = 1;
        while i < self.expect.len() {
            match self.expect[i] {
                Expect::CopyEnd => {
                    self.expect.remove(i);
                    return;
                }
                Expect::Reply(b'S') if extended => {
                    self.expect.remove(i);
                }
                _ => i += 1,
            }
        }
        self.copy_in = true;
        self.copy_extended = extended;
        if extended {
            // The Syncs already sent are ignored: the batch ends with the
            // one the client sends after CopyDone.
            if let Some(s) = self.server.as_mut() {
                s.unsynced = true;
            }
        }
    }

    /// Handles one message from the server.
    pub(super) fn on_server_message(&mut self, m: MessageRef<'_>) {
        self.drain_synth();
        if let Some(Expect::CaptureLsn) = self.expect.front() {
            return self.on_capture_reply(m);
        }
        match m.tag {
            b'E' => return self.on_server_error(m),
            b'A' => {
                self.replay = None;
                self.cout.extend_from_slice(m.frame);
                return;
            }
            b'C' => {
                self.last_commit = m.body().starts_with(b"COMMIT");
                if matches!(self.expect.front(), Some(Expect::Reply(b'E'))) {
                    self.on_execute_done(m.body());
                }
            }
            b'G' => self.on_copy_in(),
            _ => {}
        }
        if m.tag == b'Z' && matches!(self.expect.front(), Some(Expect::SwallowAbort)) {
            // The server skipped the abort (it had failed the batch
            // already): nothing of it to swallow.
            self.expect.pop_front();
        }
        let swallow = matches!(
            self.expect.front(),
            Some(
                Expect::SwallowParse(_)
                    | Expect::SwallowClose(_)
                    | Expect::SwallowQuery
                    | Expect::SwallowAbort
            )
        );
        if !swallow {
            self.replay = None;
            self.cout.extend_from_slice(m.frame);
        }
        let done = self.expect.front().is_some_and(|e| e.completed_by(m.tag));
        if done {
            let entry = self.expect.pop_front();
            if let Some(Expect::Parse { server, .. }) = &entry {
                self.pool.remember_statement(server);
            }
            if m.tag == b'Z' {
                let status = messages::read_ready_status(m.body()).unwrap_or(b'I');
                self.on_ready(status, entry);
            }
        } else if m.tag == b'Z' {
            // A ReadyForQuery nobody asked for: the server and we disagree.
            self.server_confused("unexpected ReadyForQuery");
        }
    }

    /// Replies to [`Expect::CaptureLsn`]: the row is read, the rest dropped.
    fn on_capture_reply(&mut self, m: MessageRef<'_>) {
        match m.tag {
            b'D' => self.on_lsn_row(m.body()),
            b'E' => {
                let f = messages::read_error_fields(m.body());
                tracing::debug!(code = %f.code, message = %f.message, "WAL position query failed");
            }
            b'Z' => {
                self.expect.pop_front();
                self.tx_status = messages::read_ready_status(m.body()).unwrap_or(b'I');
            }
            // Notices and notifications belong to the client.
            b'N' | b'A' => self.cout.extend_from_slice(m.frame),
            _ => {}
        }
    }

    fn on_server_error(&mut self, m: MessageRef<'_>) {
        // An error ends copy-in on the server's side; the client's own
        // CopyDone or CopyFail may never be forwarded (the connection can
        // go back to the pool first), so it cannot be what ends it here.
        self.copy_in = false;
        if let Some(Expect::SwallowAbort) = self.expect.front() {
            // The failure Attaché asked for: the client already has its
            // error, and the server now skips to Sync.
            self.skip_to_sync();
            return;
        }
        self.pool
            .stats
            .server_errors
            .fetch_add(1, Ordering::Relaxed);
        match self.expect.front_mut() {
            Some(Expect::Query(fx)) => fx.failed = true,
            Some(Expect::SwallowQuery) => {
                let f = messages::read_error_fields(m.body());
                self.span.in_scope(|| {
                    warn!(code = %f.code, message = %f.message, "re-applying client settings failed")
                });
                self.server_confused("settings could not be re-applied");
            }
            _ => {}
        }
        self.replay = None;
        self.cout.extend_from_slice(m.frame);
        if self.expect.front().is_some_and(|e| !e.survives_error()) {
            self.skip_to_sync();
        }
    }

    /// The server now skips everything up to the next Sync: so do the
    /// expectations, and what they assumed is undone.
    fn skip_to_sync(&mut self) {
        while let Some(e) = self.expect.front() {
            if matches!(e, Expect::Reply(b'S')) {
                return;
            }
            if let Some(e) = self.expect.pop_front() {
                self.undo(e);
            }
        }
        // No Sync sent yet: the batch the client is still sending has
        // failed on the server.
        if let Some(s) = self.server.as_mut() {
            s.skipping = true;
        }
    }

    /// Reverts what Attaché assumed about a request the server never ran.
    fn undo(&mut self, e: Expect) {
        match e {
            Expect::Parse { server, client } => {
                self.statements.remove(&client);
                if let Some(s) = self.server.as_mut() {
                    s.prepared.remove(&server);
                }
            }
            Expect::SwallowParse(name) => {
                if let Some(s) = self.server.as_mut() {
                    s.prepared.remove(&name);
                }
            }
            Expect::SwallowClose(name) => {
                if let Some(s) = self.server.as_mut() {
                    s.prepared_tick += 1;
                    let tick = s.prepared_tick;
                    s.prepared.insert(name, tick);
                }
            }
            Expect::Synth {
                forget: Some(name), ..
            } => {
                self.statements.remove(&name);
            }
            _ => {}
        }
    }

    /// ReadyForQuery: the end of a request cycle.
    fn on_ready(&mut self, status: u8, entry: Option<Expect>) {
        self.tx_status = status;
        self.pool.stats.transactions.fetch_add(1, Ordering::Relaxed);
        if let Some(Expect::Query(fx)) = entry {
            if !fx.failed {
                self.apply_effects(status, fx.commands);
            }
        }
        if status == b'I' && !self.settings.in_transaction.is_empty() {
            let pending = std::mem::take(&mut self.settings.in_transaction);
            if self.last_commit {
                self.commit_settings(&pending);
            }
        }
    }

    fn apply_effects(&mut self, status: u8, commands: Vec<SessionCommand>) {
        for cmd in &commands {
            match cmd {
                SessionCommand::DiscardAll => {
                    self.statements.clear();
                    if let Some(s) = self.server.as_mut() {
                        s.forget_session_state(true);
                    }
                }
                SessionCommand::Deallocate { name: None } => {
                    self.statements.clear();
                    if let Some(s) = self.server.as_mut() {
                        s.prepared.clear();
                    }
                }
                SessionCommand::Listen => self.pinned = true,
                _ => {}
            }
        }
        if status == b'I' {
            self.commit_settings(&commands);
        } else {
            self.settings.in_transaction.extend(commands);
        }
    }

    /// CommandComplete of an Execute. Session commands sent through the
    /// extended protocol were not classified (only a simple Query's text
    /// is), so their tag says what changed: what Attaché cannot replay on
    /// another server (a SET, whose text it has not kept) pins the client
    /// to this one, and a connection whose statements are no longer what
    /// Attaché's cache says is cleared or, when which is unknown, not
    /// reused after this client.
    fn on_execute_done(&mut self, tag: &[u8]) {
        let tag = tag.strip_suffix(b"\0").unwrap_or(tag);
        match tag {
            b"SET" | b"RESET" | b"LISTEN" => self.pinned = true,
            b"DISCARD ALL" => self.apply_effects(b'I', vec![SessionCommand::DiscardAll]),
            b"DEALLOCATE ALL" => {
                self.statements.clear();
                if let Some(s) = self.server.as_mut() {
                    s.prepared.clear();
                }
            }
            b"DEALLOCATE" => {
                if let Some(s) = self.server.as_mut() {
                    s.broken = true;
                }
            }
            _ => {}
        }
    }

    fn commit_settings(&mut self, commands: &[SessionCommand]) {
        self.settings.apply_client(commands);
        if let Some(s) = self.server.as_mut() {
            Settings::apply_server(&mut s.settings, commands);
        }
    }

    fn server_confused(&mut self, why: &str) {
        self.span
            .in_scope(|| warn!(why, "server connection state unknown; it will be discarded"));
        if let Some(s) = self.server.as_mut() {
            s.broken = true;
        }
    }
}
