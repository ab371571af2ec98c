//! Backend → respond (Postgres): when a session's server connection fails.
//! A read that had not been answered is re-run on another node; anything
//! else is answered with SQLSTATE 08006, keeping the client connected in
//! transaction mode.

use std::sync::atomic::Ordering;

use attache_postgres_protocol::messages;
use attache_postgres_protocol::sqlstate;
use tracing::debug;

use super::error::FrontendError;
use super::relay::Expect;
use super::send_fatal;
use super::session::Session;
use crate::config::types::PoolMode;

impl Session {
    /// The server connection failed. An unanswered read is re-run
    /// elsewhere; other work gets 08006 ("it may or may not have run"), and
    /// a transaction the client had open is reported lost. Only session
    /// mode (or a LISTEN-pinned client) ends the client connection, since
    /// its session state cannot move to another server.
    pub(super) async fn server_lost(&mut self, why: &str) -> Result<(), FrontendError> {
        debug!(why, "server connection lost");
        self.pool.stats.server_lost.fetch_add(1, Ordering::Relaxed);
        let node = self.in_flight.take().map(|f| f.abandon());
        if self.expect.iter().any(|e| matches!(e, Expect::CaptureLsn)) {
            // A write committed but its position is lost: read-your-writes
            // must not trust any replica until it knows a later position.
            self.min_lsn = super::routing::UNKNOWN_LSN;
        }
        if let Some(messages) = self.replay.take() {
            if let (Some(node), Some(conn)) = (node, self.server.take()) {
                self.pool.discard(conn);
                self.cluster.report_unreachable(node, why);
                self.sout.clear();
                self.expect.retain(|e| matches!(e, Expect::Synth { .. }));
                self.wrote = false;
                debug!(
                    node,
                    messages = messages.len(),
                    "retrying a read on another node"
                );
                for m in messages {
                    Box::pin(self.on_client_message(m.as_ref())).await?;
                }
                return Ok(());
            }
        }
        if let Some(node) = node {
            self.cluster.suspect(node);
        }
        self.wrote = false;
        // Attaché's own bookkeeping query owes the client nothing.
        self.expect.retain(|e| !matches!(e, Expect::CaptureLsn));
        let in_tx = self.tx_status != b'I';
        if let Some(conn) = self.server.take() {
            self.pool.discard(conn);
        }
        // A Sync sent now is answered by Attaché, as outside any COPY.
        self.copy_in = false;
        if let Ok(mut slot) = self.cancel.slot.lock() {
            *slot = None;
        }
        if self.pinned || self.mode == PoolMode::Session {
            // Session state (temp tables, LISTEN, settings) cannot move.
            let msg = format!(
                "server connection lost during the session ({why}); its outcome is unknown"
            );
            send_fatal(&mut self.client, sqlstate::CONNECTION_FAILURE, &msg).await;
            return Err(FrontendError::refused(sqlstate::CONNECTION_FAILURE, msg));
        }
        if in_tx && self.expect.is_empty() {
            // Idle in a transaction: the client hears of it on its next request.
            self.lost_tx = Some(format!(
                "the transaction was lost: server connection closed ({why}), possibly a failover; it was not committed"
            ));
            self.tx_status = b'I';
            return Ok(());
        }
        if self.expect.is_empty() {
            return Ok(());
        }
        let synced = self
            .expect
            .iter()
            .any(|e| matches!(e, Expect::Reply(b'S' | b'Q' | b'F') | Expect::Query(_)));
        self.expect.clear();
        let msg = if in_tx {
            format!("server connection lost mid-transaction ({why}), possibly a failover; the transaction's outcome is unknown")
        } else {
            format!("server connection lost before the query completed ({why}), possibly a failover; it may or may not have run")
        };
        messages::error(&mut self.cout, sqlstate::CONNECTION_FAILURE, &msg);
        if synced {
            messages::ready_for_query(&mut self.cout, b'I');
        } else {
            self.skip_until_sync = true;
        }
        self.tx_status = b'I';
        Ok(())
    }
}
