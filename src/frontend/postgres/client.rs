//! Parse → route (Postgres): what to do with each message a client sends
//! after login: forward it (checking out a server first if needed), rename
//! its prepared statement, answer it ourselves, or refuse it.

use std::borrow::Cow;

use attache_postgres_protocol::classify::{self, SessionCommand};
use attache_postgres_protocol::frame::{Message, MessageRef};
use attache_postgres_protocol::messages;
use attache_postgres_protocol::sqlstate;
use bytes::{Bytes, BytesMut};

use super::error::FrontendError;
use super::relay::{Expect, QueryEffects};
use super::routing::Want;
use super::session::{Flow, Session};
use super::statements::{self, MAX_CLIENT_STATEMENTS, MAX_CLIENT_STATEMENT_BYTES};

/// The statement name and text of the Parse that fails a server's batch
/// on purpose (see [`Session::abort_server_batch`]): a syntax error, so it
/// fails whatever the server's state; the text explains it in server logs.
const ABORT_STATEMENT: &str = "attache_abort";
const ABORT_SQL: &[u8] = b"attache aborts this batch after an error of its own";

fn malformed(e: impl std::fmt::Display) -> FrontendError {
    FrontendError::protocol(e.to_string())
}

/// Messages that may be sent again to another server after the first one
/// died before answering: they neither write (the attachment is a read)
/// nor change what Attaché remembers. A named Parse or a Close would.
fn replayable(m: &MessageRef<'_>, first: bool) -> bool {
    match m.tag {
        b'Q' => first,
        b'B' | b'E' | b'D' | b'S' | b'H' => true,
        b'P' => m.body().first() == Some(&0),
        _ => false,
    }
}

impl Session {
    /// Handles one client message, keeping a copy while it belongs to a
    /// read that may have to be retried on another node (see
    /// [`Session::replay`]).
    pub(super) async fn on_client_message(
        &mut self,
        m: MessageRef<'_>,
    ) -> Result<Flow, FrontendError> {
        // A connection held only for Attaché's WAL position query carries
        // no client transaction: what arrives now starts a new one.
        let held = self.server.is_some()
            && self.tx_status == b'I'
            && !self.expect.is_empty()
            && self.expect.iter().all(|e| matches!(e, Expect::CaptureLsn));
        let attached = self.server.is_some() && !held;
        // Only reads are replayed, and only a session that splits reads
        // attaches for one: others never pay for the copy.
        let copy = if (attached && self.replay.is_none()) || (!attached && !self.splits()) {
            None
        } else if replayable(&m, !attached) {
            Some(Message::from(m))
        } else {
            self.replay = None;
            None
        };
        let flow = self.dispatch(m).await?;
        match copy {
            Some(c) if attached => {
                if let Some(r) = self.replay.as_mut() {
                    r.push(c);
                }
            }
            Some(c) if held => {
                // Kept on the primary (its commit position is not known
                // yet), but still only a read: replayable if the server dies.
                let read = c.tag == b'Q'
                    && messages::read_query(c.body())
                        .is_ok_and(|sql| self.want_for_sql(&messages::sql_text(sql)) == Want::Read);
                if read {
                    self.replay = Some(vec![c]);
                }
            }
            Some(c) if self.server.is_some() && self.read_attach => self.replay = Some(vec![c]),
            _ => {}
        }
        Ok(flow)
    }

    async fn dispatch(&mut self, m: MessageRef<'_>) -> Result<Flow, FrontendError> {
        if self.skip_until_sync && m.tag != b'S' {
            return Ok(Flow::Continue);
        }
        if self.copy_in && !matches!(m.tag, b'd' | b'c' | b'f' | b'H' | b'S' | b'X') {
            self.fail_copy_in(m.tag);
            return Ok(Flow::Continue);
        }
        if let Some(msg) = self
            .lost_tx
            .take_if(|_| matches!(m.tag, b'Q' | b'P' | b'B' | b'E' | b'D' | b'F'))
        {
            self.synth_error(
                sqlstate::CONNECTION_FAILURE,
                &msg,
                matches!(m.tag, b'Q' | b'F'),
            );
            return Ok(Flow::Continue);
        }
        match m.tag {
            b'Q' => self.on_query(m).await?,
            b'P' => self.on_parse(m).await?,
            b'B' => self.on_bind(m).await?,
            b'D' => self.on_describe(m).await?,
            b'C' => self.on_close(m).await?,
            b'E' | b'F' => self.forward(m, true, Want::Primary).await?,
            // Ignored by the server during copy-in: expect no reply.
            b'S' if self.copy_in => self.sout.extend_from_slice(m.frame),
            b'S' => self.on_sync(m),
            b'H' if self.server.is_some() => self.sout.extend_from_slice(m.frame),
            b'H' => {}
            // COPY data outside COPY is ignored by the server too.
            b'd' if self.server.is_some() => self.sout.extend_from_slice(m.frame),
            b'c' | b'f' if self.server.is_some() => {
                self.sout.extend_from_slice(m.frame);
                if !std::mem::take(&mut self.copy_in) {
                    self.expect.push_back(Expect::CopyEnd);
                }
            }
            b'd' | b'c' | b'f' => {}
            b'X' => return Ok(Flow::Exit),
            other => {
                // The client hears why (08P01) from `on_client_bytes`.
                return Err(FrontendError::protocol(format!(
                    "unexpected message type {:?} after login",
                    other as char
                )));
            }
        }
        if matches!(m.tag, b'P' | b'B' | b'D' | b'E' | b'C' | b'H') {
            // Part of an extended batch may be on the server now: it stays
            // this client's until the batch's Sync is answered.
            if let Some(s) = self.server.as_mut() {
                s.unsynced = true;
            }
        }
        Ok(Flow::Continue)
    }

    /// Makes sure a server is attached. On failure the client gets the
    /// error in order, and the rest of its batch is skipped.
    async fn ensure_server(&mut self, simple: bool, want: Want) -> bool {
        if self.server.is_some() {
            return true;
        }
        match self.attach(want).await {
            Ok(()) => true,
            Err(e) => {
                self.span.in_scope(
                    || tracing::warn!(error = %e, "no server connection for client request"),
                );
                self.synth_error(e.sqlstate(), &e.to_string(), simple);
                false
            }
        }
    }

    /// Queues an error of Attaché's own; a simple query also gets its
    /// ReadyForQuery, an extended batch is skipped up to Sync.
    fn synth_error(&mut self, code: &str, message: &str, simple: bool) {
        if !simple && self.server.as_ref().is_some_and(|s| s.skipping) {
            // The server already failed this batch and told the client;
            // PostgreSQL reports one error per batch and skips the rest.
            self.skip_until_sync = true;
            return;
        }
        let mut b = BytesMut::new();
        messages::error(&mut b, code, message);
        if simple {
            messages::ready_for_query(&mut b, self.tx_status);
        } else {
            self.skip_until_sync = true;
        }
        self.push_synth(b.freeze(), None);
        if !simple {
            self.abort_server_batch();
        }
    }

    /// Any message but COPY data, Flush or Sync during copy-in fails the
    /// COPY on a server, which drops that message. Attaché answers some
    /// messages itself (a Bind of a renamed statement, say), so it cannot
    /// leave that to the server: it fails the COPY with a CopyFail naming
    /// the message, the server's error reaches the client as the COPY's,
    /// and after an extended-protocol COPY the rest is skipped to Sync, as
    /// the server does. Without this the client's Sync would be ignored by
    /// the server still in copy-in, and the client would wait forever.
    fn fail_copy_in(&mut self, tag: u8) {
        let reason = format!("unexpected message type 0x{tag:02X} during COPY from stdin");
        messages::copy_fail(&mut self.sout, &reason);
        self.copy_in = false;
        if self.copy_extended {
            self.skip_until_sync = true;
        }
    }

    /// After an error of Attaché's own in an extended batch, the attached
    /// server must fail that batch too, as it would have raised the error
    /// itself: otherwise its Sync commits what the batch already ran (the
    /// implicit transaction) or leaves an explicit one usable. A Parse that
    /// cannot succeed does it; its error is swallowed (the client hears
    /// Attaché's), and the server then skips everything up to Sync.
    fn abort_server_batch(&mut self) {
        if self.copy_in {
            return;
        }
        let Some(conn) = self.server.as_mut() else {
            return;
        };
        conn.unsynced = true;
        messages::write_parse(&mut self.sout, ABORT_STATEMENT, ABORT_SQL, &[0, 0]);
        self.expect.push_back(Expect::SwallowAbort);
    }

    fn push_synth(&mut self, bytes: Bytes, forget: Option<Box<str>>) {
        if self.server.is_some() {
            // Re-running the batch would queue this reply twice.
            self.replay = None;
        }
        self.expect.push_back(Expect::Synth { bytes, forget });
    }

    async fn forward(
        &mut self,
        m: MessageRef<'_>,
        replies: bool,
        want: Want,
    ) -> Result<(), FrontendError> {
        // A fast-path function call is answered like a simple query (the
        // client sends no Sync after it): an error must come with its
        // ReadyForQuery.
        if self.ensure_server(m.tag == b'F', want).await {
            self.sout.extend_from_slice(m.frame);
            if replies {
                self.expect.push_back(Expect::Reply(m.tag));
            }
        }
        Ok(())
    }

    fn on_sync(&mut self, m: MessageRef<'_>) {
        self.skip_until_sync = false;
        if let Some(s) = self.server.as_mut() {
            // Its ReadyForQuery is now expected; the connection is free
            // once that (and everything before it) is answered.
            s.unsynced = false;
            s.skipping = false;
            self.sout.extend_from_slice(m.frame);
            self.expect.push_back(Expect::Reply(b'S'));
        } else {
            let mut b = BytesMut::new();
            messages::ready_for_query(&mut b, self.tx_status);
            self.push_synth(b.freeze(), None);
        }
    }

    pub(super) async fn on_query(&mut self, m: MessageRef<'_>) -> Result<(), FrontendError> {
        let raw = messages::read_query(m.body()).map_err(malformed)?;
        // Classified as text; forwarded as the client's bytes.
        let sql = messages::sql_text(raw);
        if self.on_role_command(&sql) {
            return Ok(());
        }
        let commands = session_commands(&sql);
        if let [SessionCommand::Deallocate { name: Some(name) }] = commands.as_slice() {
            if self.rename && self.statements.remove(name).is_some() {
                // The server-side statement is shared; only the client's name goes.
                let mut b = BytesMut::new();
                command_complete(&mut b, "DEALLOCATE");
                messages::ready_for_query(&mut b, self.tx_status);
                self.push_synth(b.freeze(), None);
                return Ok(());
            }
        }
        let want = match self.server {
            Some(_) => Want::Primary,
            None => self.want_for_sql(&sql),
        };
        if !self.ensure_server(true, want).await {
            return Ok(());
        }
        // A setting whose text was not UTF-8 is known here only from a
        // copy with bytes replaced, which could not be re-applied faithfully
        // on another server: like LISTEN, it keeps the session on this one.
        let foreign = matches!(sql, Cow::Owned(_));
        let pins = |c: &SessionCommand| match c {
            SessionCommand::Listen | SessionCommand::SetIdentity => true,
            SessionCommand::Set { .. } => foreign,
            _ => false,
        };
        if commands.iter().any(pins) {
            self.pinned = true;
        }
        self.sout.extend_from_slice(m.frame);
        if commands.is_empty() {
            self.expect.push_back(Expect::Reply(b'Q'));
        } else {
            let fx = QueryEffects {
                commands,
                failed: false,
            };
            self.expect.push_back(Expect::Query(Box::new(fx)));
        }
        Ok(())
    }

    async fn on_parse(&mut self, m: MessageRef<'_>) -> Result<(), FrontendError> {
        let p = messages::read_parse(m.body()).map_err(malformed)?;
        if !self.rename || p.name.is_empty() {
            let want = match self.server {
                Some(_) => Want::Primary,
                None => self.want_for_sql(&messages::sql_text(p.query)),
            };
            return self.forward(m, true, want).await;
        }
        if self.statements.contains(p.name) {
            let msg = format!("prepared statement \"{}\" already exists", p.name);
            self.synth_error(sqlstate::DUPLICATE_PREPARED_STATEMENT, &msg, false);
            return Ok(());
        }
        if self.statements.len() >= MAX_CLIENT_STATEMENTS {
            let msg =
                format!("too many prepared statements (limit {MAX_CLIENT_STATEMENTS} per client)");
            self.synth_error(sqlstate::PROGRAM_LIMIT_EXCEEDED, &msg, false);
            return Ok(());
        }
        let cost = statements::cost(p.name, p.query, p.param_types);
        if self.statements.bytes() + cost > MAX_CLIENT_STATEMENT_BYTES {
            let msg = format!(
                "prepared statements too large: {} bytes kept plus {cost} would exceed the limit of {} MiB per client; close some first",
                self.statements.bytes(),
                MAX_CLIENT_STATEMENT_BYTES >> 20
            );
            self.synth_error(sqlstate::PROGRAM_LIMIT_EXCEEDED, &msg, false);
            return Ok(());
        }
        let server_name = statements::server_name(p.query, p.param_types);
        if self.server.is_none() && self.pool.knows_statement(&server_name) {
            // Prepared successfully before on this pool: answer now and
            // prepare it on a server connection when a Bind needs it, so a
            // Parse never waits for a connection (drivers often block on it).
            let read = self.is_read(&messages::sql_text(p.query));
            self.statements.insert(p.name, p.query, p.param_types, read);
            let mut b = BytesMut::new();
            messages::parse_complete(&mut b);
            self.push_synth(b.freeze(), Some(p.name.into()));
            return Ok(());
        }
        let read = self.is_read(&messages::sql_text(p.query));
        let want = if read { Want::Read } else { Want::Primary };
        if !self.ensure_server(false, want).await {
            return Ok(());
        }
        let stmt = self.statements.insert(p.name, p.query, p.param_types, read);
        let limit = self.pool.settings.max_prepared_statements;
        let Some(conn) = self.server.as_mut() else {
            return Ok(());
        };
        if statements::touch(conn, &stmt.server_name) {
            let mut b = BytesMut::new();
            messages::parse_complete(&mut b);
            self.push_synth(b.freeze(), Some(p.name.into()));
        } else {
            statements::admit(
                conn,
                &stmt.server_name,
                limit,
                &mut self.sout,
                &mut self.expect,
            );
            messages::write_parse(&mut self.sout, &stmt.server_name, p.query, p.param_types);
            self.expect.push_back(Expect::Parse {
                server: stmt.server_name.clone(),
                client: p.name.into(),
            });
        }
        Ok(())
    }

    /// Looks up a client statement for Bind or Describe and prepares it on
    /// the attached server; `None` means an error was queued instead.
    async fn prepared_for_use(&mut self, name: &str) -> Option<statements::Statement> {
        let Some(stmt) = self.statements.get(name).cloned() else {
            let msg = format!("prepared statement \"{name}\" does not exist");
            self.synth_error(sqlstate::INVALID_SQL_STATEMENT_NAME, &msg, false);
            return None;
        };
        let want = if stmt.read { Want::Read } else { Want::Primary };
        if !self.ensure_server(false, want).await {
            return None;
        }
        let limit = self.pool.settings.max_prepared_statements;
        let conn = self.server.as_mut()?;
        statements::ensure_prepared(conn, &stmt, limit, &mut self.sout, &mut self.expect);
        Some(stmt)
    }

    async fn on_bind(&mut self, m: MessageRef<'_>) -> Result<(), FrontendError> {
        let (portal, name, rest) = messages::read_bind(m.body()).map_err(malformed)?;
        if !self.rename || name.is_empty() {
            return self.forward(m, true, Want::Primary).await;
        }
        let Some(stmt) = self.prepared_for_use(name).await else {
            return Ok(());
        };
        messages::write_bind(&mut self.sout, portal, &stmt.server_name, rest);
        self.expect.push_back(Expect::Reply(b'B'));
        Ok(())
    }

    async fn on_describe(&mut self, m: MessageRef<'_>) -> Result<(), FrontendError> {
        let (kind, name) = messages::read_target(m.body(), "Describe").map_err(malformed)?;
        if !self.rename || kind != b'S' || name.is_empty() {
            return self.forward(m, true, Want::Primary).await;
        }
        let Some(stmt) = self.prepared_for_use(name).await else {
            return Ok(());
        };
        messages::write_target(&mut self.sout, b'D', b'S', &stmt.server_name);
        self.expect.push_back(Expect::Reply(b'D'));
        Ok(())
    }

    async fn on_close(&mut self, m: MessageRef<'_>) -> Result<(), FrontendError> {
        let (kind, name) = messages::read_target(m.body(), "Close").map_err(malformed)?;
        let ours = self.rename && kind == b'S' && !name.is_empty();
        if ours {
            // Server-side statements are shared and cached; the client's
            // name is all that goes. Closing an unknown name is no error.
            self.statements.remove(name);
        }
        if ours || self.server.is_none() {
            let mut b = BytesMut::new();
            messages::close_complete(&mut b);
            self.push_synth(b.freeze(), None);
            return Ok(());
        }
        self.forward(m, true, Want::Primary).await
    }
}

/// The session-relevant commands in a simple query, cheaply: most queries
/// start with a keyword that rules them out without splitting.
fn session_commands(sql: &str) -> Vec<SessionCommand> {
    const KEYWORDS: &[&str] = &[
        "set",
        "reset",
        "discard",
        "deallocate",
        "listen",
        "unlisten",
    ];
    let head = classify::skip_leading_comments(sql);
    let has_more = head.trim_end().trim_end_matches(';').contains(';');
    let word_len = head.bytes().take_while(u8::is_ascii_alphabetic).count();
    let first = &head[..word_len];
    if !has_more && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(first)) {
        return Vec::new();
    }
    classify::split_statements(sql)
        .into_iter()
        .map(classify::classify_session)
        .filter(|c| {
            !matches!(
                c,
                SessionCommand::Other
                    | SessionCommand::SetLocalOrTransaction
                    | SessionCommand::Unlisten
            )
        })
        .collect()
}

pub(super) fn command_complete(out: &mut BytesMut, tag: &str) {
    use bytes::BufMut;
    out.put_u8(b'C');
    out.put_i32((tag.len() + 5) as i32);
    out.put_slice(tag.as_bytes());
    out.put_u8(0);
}

#[cfg(test)]
mod tests;
