//! Route → backend (Postgres): which node a transaction goes to, and
//! getting a server connection there even while the cluster fails over.
//!
//! A session decides once per transaction, when it has no server attached:
//! a read (by the classifier, a hint, or `SET attache.role`) goes to a
//! replica the cluster picks; anything else goes to the primary. A
//! connection that cannot be opened is reported to the cluster and the
//! work is retried (nothing reached a server yet, so it cannot run twice):
//! on another replica, or on the primary once the monitor has found one,
//! for at most `failover_timeout`.

use std::time::Instant;

use attache_postgres_protocol::messages;
use attache_postgres_protocol::readwrite::{Classified, RoleHint, Route as RwRoute};
use attache_postgres_protocol::sqlstate;
use tracing::debug;

use super::error::FrontendError;
use super::relay::Expect;
use super::session::Session;
use crate::config::topology::Consistency;
use crate::config::types::PoolMode;
use crate::core::pg::pool::CheckoutError;
use crate::core::pg::{BackendError, ReadTarget};

/// What a transaction needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    Primary,
    Read,
}

/// Asks the primary for its WAL position after a write committed; the
/// answer is what a replica must have replayed before this client reads
/// from it (read-your-writes). The insert position, not the write
/// position: with `synchronous_commit = off` the commit record may not be
/// written out yet, and the write position would be before it.
const LSN_SQL: &str = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text";

/// `min_lsn` when a write committed but its position could not be read
/// (the server died first): no replica qualifies until the primary's
/// position is known again.
pub(super) const UNKNOWN_LSN: u64 = u64::MAX;

/// How many unreachable nodes one attach may skip before giving up early.
const MAX_ATTEMPTS: usize = 64;

impl Session {
    /// Whether this session may send anything to replicas at all.
    pub(super) fn splits(&self) -> bool {
        self.mode == PoolMode::Transaction && !self.pinned && self.cluster.splits_reads()
    }

    /// Where a statement text should run if it opens a transaction.
    pub(super) fn want_for_sql(&self, sql: &str) -> Want {
        if !self.splits() {
            return Want::Primary;
        }
        self.want_from(self.classifier.classify(sql))
    }

    /// The read flag a prepared statement keeps for its later Binds.
    pub(super) fn is_read(&self, sql: &str) -> bool {
        self.splits() && self.want_for_sql(sql) == Want::Read
    }

    fn want_from(&self, c: Classified) -> Want {
        match c.hint.or(self.role_override) {
            Some(RoleHint::Primary) => Want::Primary,
            Some(RoleHint::Replica) => Want::Read,
            None if c.route == RwRoute::Read => Want::Read,
            None => Want::Primary,
        }
    }

    /// Checks out a server connection for `want` and brings it to this
    /// client's state, riding out failovers (see the module docs).
    pub(super) async fn attach(&mut self, want: Want) -> Result<(), FrontendError> {
        self.connect_to(want).await?;
        self.sync_settings();
        Ok(())
    }

    /// [`Session::attach`] without carrying the client's settings over
    /// (for a connection that only proves a node is reachable).
    pub(super) async fn connect_to(&mut self, want: Want) -> Result<(), FrontendError> {
        if self.ctx.is_paused(&self.db_key) {
            let ctx = self.ctx.clone();
            Box::pin(ctx.wait_unpaused(&self.db_key)).await;
        }
        if self.ctx.generation() != self.generation {
            self.reroute()?;
        }
        let want = if self.splits() { want } else { Want::Primary };
        let deadline = Instant::now() + self.cluster.topology.failover_timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.settle_unknown_lsn();
            let (node, write) = self.pick(want, deadline).await?;
            let Some(pool) = self.pools.get(node).cloned() else {
                return Err(FrontendError::protocol("no pool for the chosen node"));
            };
            match pool.checkout().await {
                Ok(conn) => {
                    if let Ok(mut slot) = self.cancel.slot.lock() {
                        *slot = Some(conn.cancel.clone());
                    }
                    self.pool = pool;
                    self.server = Some(conn);
                    self.in_flight = Some(self.cluster.begin(node, write));
                    self.wrote = write && self.tracks_writes();
                    self.read_attach = !write;
                    return Ok(());
                }
                Err(e) if unreachable(&e) && attempts < MAX_ATTEMPTS => {
                    self.cluster.report_unreachable(node, &e.to_string());
                    if Instant::now() >= deadline {
                        return Err(e.into());
                    }
                    debug!(error = %e, node, "node unreachable; retrying elsewhere");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The config was reloaded: take this client's pools, cluster and
    /// classifier from the new config. Its session settings, prepared
    /// statements and pool mode stay as they are.
    fn reroute(&mut self) -> Result<(), FrontendError> {
        let generation = self.ctx.generation();
        let route = self.ctx.route(&self.database, &self.user)?;
        route.start_monitor();
        self.max_message = route.pool.settings.max_message_size;
        self.pool = route.pool;
        self.pools = route.pools;
        self.cluster = route.cluster;
        self.classifier = route.classifier;
        self.db_key = route.db_key;
        self.generation = generation;
        Ok(())
    }

    /// After a write whose commit position was lost with its server (see
    /// [`UNKNOWN_LSN`]), the first position known to be at least as late:
    /// the current primary's, once a probe has reported it.
    fn settle_unknown_lsn(&mut self) {
        if self.min_lsn != UNKNOWN_LSN || self.cluster.primary().is_none() {
            return;
        }
        let lsn = self.cluster.primary_lsn();
        if lsn > 0 {
            self.min_lsn = lsn;
        }
    }

    /// The node for `want`: a replica for reads when one is eligible, else
    /// the primary, waiting for one while the cluster has none.
    async fn pick(&self, want: Want, deadline: Instant) -> Result<(usize, bool), FrontendError> {
        if want == Want::Read {
            let min_lsn = if self.tracks_writes() {
                self.min_lsn
            } else {
                0
            };
            match self.cluster.pick_read(min_lsn) {
                ReadTarget::Node(i) => return Ok((i, false)),
                ReadTarget::Primary => {}
                ReadTarget::None => {
                    return Err(FrontendError::refused(
                        sqlstate::CANNOT_CONNECT_NOW,
                        format!(
                            "no replica of database \"{}\" can serve reads now and primary_reads = \"never\"",
                            self.cluster.name
                        ),
                    ))
                }
            }
        }
        let primary = match self.cluster.primary() {
            Some(p) => p,
            // Boxed: rare, and it would otherwise enlarge every pick.
            None => Box::pin(self.cluster.wait_primary(deadline))
                .await
                .ok_or_else(|| {
                    FrontendError::refused(
                        sqlstate::CANNOT_CONNECT_NOW,
                        format!(
                            "no primary for database \"{}\" within failover_timeout ({:?})",
                            self.cluster.name, self.cluster.topology.failover_timeout
                        ),
                    )
                })?,
        };
        Ok((primary, want == Want::Primary))
    }

    /// Read-your-writes applies: this client's reads may go to replicas
    /// and must see its own commits.
    fn tracks_writes(&self) -> bool {
        self.cluster.topology.consistency == Consistency::ReadYourWrites && self.splits()
    }

    /// At the end of a write transaction, asks the primary for its WAL
    /// position before the connection goes back. The client already has
    /// its reply; only the server connection waits one more round trip.
    /// Returns whether the capture was queued (the release then waits).
    pub(super) fn capture_write_lsn(&mut self) -> bool {
        if !std::mem::take(&mut self.wrote) || self.server.is_none() {
            return false;
        }
        messages::query(&mut self.sout, LSN_SQL);
        self.expect.push_back(Expect::CaptureLsn);
        true
    }

    /// The answer to [`LSN_SQL`].
    pub(super) fn on_lsn_row(&mut self, body: &[u8]) {
        let Ok(cols) = messages::read_data_row(body) else {
            return;
        };
        let lsn = cols
            .first()
            .copied()
            .flatten()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|t| t.split('.').next())
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            self.min_lsn = self.min_lsn.max(lsn);
        }
    }

    /// `SET attache.role = …` / `RESET attache.role`, answered here.
    /// Returns false when `sql` is not such a command.
    pub(super) fn on_role_command(&mut self, sql: &str) -> bool {
        let Some(r) = attache_postgres_protocol::readwrite::session_role_command(sql) else {
            return false;
        };
        let mut b = bytes::BytesMut::new();
        match r {
            Ok(role) => {
                self.role_override = role;
                super::client::command_complete(&mut b, "SET");
            }
            Err(msg) => messages::error(&mut b, sqlstate::INVALID_PARAMETER_VALUE, &msg),
        }
        messages::ready_for_query(&mut b, self.tx_status);
        self.expect.push_back(Expect::Synth {
            bytes: b.freeze(),
            forget: None,
        });
        true
    }
}

/// Failures that mean the node cannot be reached now (as opposed to a login
/// the server refused for a reason of its own).
fn unreachable(e: &CheckoutError) -> bool {
    match e {
        CheckoutError::Backend(b) => match b {
            BackendError::Connect { .. }
            | BackendError::ConnectTimeout { .. }
            | BackendError::Io(_)
            | BackendError::Closed => true,
            // Starting up, shutting down, or in recovery after a crash.
            BackendError::Refused { fields, .. } => [
                sqlstate::CANNOT_CONNECT_NOW,
                sqlstate::ADMIN_SHUTDOWN,
                sqlstate::CRASH_SHUTDOWN,
            ]
            .contains(&fields.code.as_str()),
            _ => false,
        },
        _ => false,
    }
}
