//! Route (Redis): one client's commands run in the order it sent them,
//! even when they go out on different server connections. Redis runs one
//! connection's commands in order, but two connections race: a `SET` on the
//! shared pipe and the `MULTI … EXEC` after it on a private connection (or
//! a `BLPOP` on its own, or a `GET` after `SELECT 1` on another database's
//! pipe) could otherwise run the other way round. So a command bound for
//! another connection than the commands still unanswered waits until they
//! are answered, as it would behind them on a direct connection.
//!
//! Cluster mode routes by key to different nodes; commands for different
//! nodes are not ordered with each other (as with any cluster client), and
//! neither are reads sent to replicas.

use attache_redis_protocol::command::{self, Request};
use attache_redis_protocol::Command;

use super::session::Session;
use crate::core::redis::Setup;

/// The server connection a command goes out on, as far as ordering goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Channel {
    /// The shared pipes for one protocol version and database.
    Shared(Setup),
    /// A transaction's private connection (MULTI/WATCH … EXEC), by the
    /// session's count of transactions: each transaction opens its own
    /// connection, so the next one waits for the last one's replies.
    Private(u32),
    /// A blocking command's own connection: nothing may overtake it.
    Blocking,
}

impl Session {
    /// Where `cmd` will go. Commands answered locally count as shared:
    /// waiting for them would only cost time. Runs for every command off
    /// the plain lane (all of them in cluster mode), so plain ones cost one
    /// table lookup and a field read, not the name comparisons of
    /// [`command::connection_affinity`].
    pub(super) fn channel_of(&self, cmd: &Command) -> Channel {
        if self.in_transaction() {
            return Channel::Private(self.transactions);
        }
        let shared = Channel::Shared(self.setup());
        match command::lookup_command(cmd) {
            Some(info) if info.special => match () {
                _ if cmd.is("MULTI") || cmd.is("WATCH") => {
                    Channel::Private(self.transactions.wrapping_add(1))
                }
                _ if command::is_blocking(info, cmd) => Channel::Blocking,
                _ => shared,
            },
            _ => shared,
        }
    }

    /// Commands sent (or batched) whose replies have not arrived yet,
    /// timed-out ones included (they may still run).
    pub(super) fn unanswered(&self) -> bool {
        self.batched > 0 || self.queued.owed > 0 || !self.orphans.is_empty()
    }

    /// Whether a command for `ch` may go now; if so, `ch` becomes the
    /// channel the unanswered commands are on.
    pub(super) fn claim(&mut self, ch: Channel) -> bool {
        self.prune_orphans();
        let go = may_go(self.last_channel, ch, || self.unanswered());
        if go {
            self.last_channel = ch;
        }
        go
    }

    /// Holds `req` until everything before it is answered (see
    /// [`Session::claim`]); the read loop stops parsing meanwhile.
    pub(super) fn hold(&mut self, req: Request) {
        self.flush_batch();
        self.held = Some(req);
    }

    /// Whether a held request still waits for earlier replies.
    pub(super) fn at_barrier(&self) -> bool {
        self.held.is_some() && self.unanswered()
    }

    /// Sentinel mode: whether a failover is promoting a replica now (see
    /// `sentinel::fence`); no command is handled until it is over.
    pub(super) fn fenced(&self) -> bool {
        self.ctx.topology.sentinel().is_some_and(|s| s.fenced())
    }
}

/// Resolves once the sentinels' failover fence is down.
pub(super) async fn unfenced(sentinel: Option<&crate::core::redis::sentinel::Sentinel>) {
    if let Some(s) = sentinel {
        s.unfenced().await;
    }
}

/// A command for `next` may go after commands on `last` when it joins
/// them on the same ordered connection, or when they are all answered.
/// Nothing joins a blocking command: it has its connection to itself.
fn may_go(last: Channel, next: Channel, unanswered: impl FnOnce() -> bool) -> bool {
    (next == last && next != Channel::Blocking) || !unanswered()
}

#[cfg(test)]
mod tests;
