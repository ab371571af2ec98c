//! Respond (Postgres): `idle_transaction_timeout`, ending a client that
//! holds a server connection inside a transaction and sends nothing.
//!
//! The timer is armed when the session becomes idle in a transaction (the
//! server's last ReadyForQuery said `T` or `E` and nothing is outstanding)
//! and disarmed by each whole request the client sends, so it costs a
//! clock read per statement only when configured. When it fires,
//! the client gets a FATAL 25P03 and its server connection is closed (the
//! server rolls the transaction back), which frees the pool slot.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tracing::info;

use super::error::FrontendError;
use super::send_fatal;
use super::session::Session;

/// How long the FATAL may wait for a client that does not read.
const FATAL_WRITE_LIMIT: Duration = Duration::from_secs(1);

/// The idle-in-transaction timer of one session.
#[derive(Default)]
pub(super) struct IdleTransaction {
    /// Created the first time it is armed.
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl IdleTransaction {
    /// Arms the timer for `limit` when the session just became idle in a
    /// transaction; disarms it when it is not (or there is no limit).
    pub fn update(&mut self, limit: Option<Duration>, idle: bool) {
        let Some(limit) = limit.filter(|_| idle) else {
            self.armed = false;
            return;
        };
        if self.armed {
            return;
        }
        let now = Instant::now();
        let deadline = now
            .checked_add(limit)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        match self.sleep.as_mut() {
            Some(s) => s.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = true;
    }

    /// The client sent a request: the next idle moment starts a new count.
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Completes when the armed timer runs out; never when disarmed.
    pub async fn expired(&mut self) {
        match self.sleep.as_mut() {
            Some(s) if self.armed => s.as_mut().await,
            _ => std::future::pending().await,
        }
    }
}

impl Session {
    /// Inside a transaction on the attached server, with nothing
    /// outstanding. A request only partly sent does not count as activity
    /// (as in PgBouncer): a client trickling a byte now and then still
    /// holds the transaction idle.
    pub(super) fn idle_in_transaction(&self) -> bool {
        self.tx_status != b'I'
            && self.server.is_some()
            && self.expect.is_empty()
            && self.sout.is_empty()
    }

    /// The timer ran out: the client is told why and closed, and the
    /// server connection, still inside the transaction, is discarded.
    pub(super) async fn end_idle_transaction(&mut self) -> Result<(), FrontendError> {
        let timeout = self.pool.settings.idle_transaction_timeout;
        self.span.in_scope(|| {
            info!(
                timeout_ms = timeout.map_or(0, |t| t.as_millis() as u64),
                status = %(self.tx_status as char),
                "client idle in transaction past idle_transaction_timeout; closing it"
            )
        });
        // The server first: a client that stopped reading must not keep
        // the transaction open while the FATAL waits to be written.
        if let Some(conn) = self.server.take() {
            self.pool.discard(conn);
        }
        self.release();
        let e = FrontendError::IdleTransactionTimeout;
        let fatal = send_fatal(
            &mut self.client,
            e.sqlstate(),
            "terminating connection due to idle transaction timeout (idle_transaction_timeout)",
        );
        let _ = tokio::time::timeout(FATAL_WRITE_LIMIT, fatal).await;
        Err(e)
    }
}
