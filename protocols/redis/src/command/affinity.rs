//! Route: whether a command can run on a shared (pooled) server connection.
//!
//! A pooled connection serves many clients one command at a time, so any
//! command that leaves state on the connection, or holds it open waiting,
//! needs care. This module only classifies; the router decides what to do
//! (pin the client to a connection, reserve one for a blocking call, or
//! emulate the command).

use super::table::{lookup_command, CommandInfo, Flags};
use super::Command;

/// How a command relates to the server connection it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Affinity {
    /// Stateless for the connection: any pooled connection will do.
    Shared,
    /// Holds the connection until data arrives or a timeout (BLPOP,
    /// XREAD BLOCK, WAIT, …); no state remains afterwards.
    Blocking,
    /// Leaves state on the connection that later commands depend on.
    Dedicated(DedicatedReason),
}

/// The state a [`Affinity::Dedicated`] command leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DedicatedReason {
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
    Transaction,
    /// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their unsubscribes: the
    /// connection switches to push mode.
    PubSub,
    /// CLIENT TRACKING / CLIENT CACHING: invalidations are sent to it.
    ClientTracking,
    /// MONITOR streams every command from then on.
    Monitor,
    /// SELECT changes the database for every later command.
    Select,
    /// CLIENT REPLY OFF/SKIP suppresses replies, breaking request/reply pairing.
    ClientReply,
}

const TRANSACTION: &[&str] = &["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"];
const PUBSUB: &[&str] = &[
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
];

/// Commands that need more than a glance: those [`connection_affinity`]
/// may classify as other than shared (the stateful ones by name, any with
/// the blocking flag or that block without it) and those a proxy answers
/// itself. Computed once per table entry.
pub fn is_special(info: &CommandInfo) -> bool {
    let upper = info.name.split('|').next().unwrap_or_default();
    let named = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(upper));
    named(TRANSACTION)
        || named(PUBSUB)
        || named(&["MONITOR", "SELECT", "CLIENT", "XREAD", "XREADGROUP", "WAIT"])
        // Answered by the proxy itself rather than any server connection.
        || named(&["AUTH", "HELLO", "QUIT", "PING", "ECHO", "RESET"])
        // Refused or answered by the proxy: they would change a shared
        // connection (replication link, per-connection flags).
        || named(&["SYNC", "PSYNC", "REPLCONF", "ASKING", "READONLY", "READWRITE"])
        || info.has(Flags::BLOCKING)
}

/// [`connection_affinity`] for a command already looked up: plain commands
/// answer `Shared` without another look at the name.
pub fn affinity_of(info: &CommandInfo, cmd: &Command) -> Affinity {
    if info.special {
        connection_affinity(cmd)
    } else {
        Affinity::Shared
    }
}

/// Classifies `cmd` for connection pooling.
pub fn connection_affinity(cmd: &Command) -> Affinity {
    use DedicatedReason::*;
    let one_of = |names: &[&str]| names.iter().any(|n| cmd.is(n));
    let sub_is = |name: &str| {
        cmd.arg(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
    };
    let reason = if one_of(TRANSACTION) {
        Some(Transaction)
    } else if one_of(PUBSUB) {
        Some(PubSub)
    } else if cmd.is("MONITOR") {
        Some(Monitor)
    } else if cmd.is("SELECT") {
        Some(Select)
    } else if cmd.is("CLIENT") && (sub_is("TRACKING") || sub_is("CACHING")) {
        Some(ClientTracking)
    } else if cmd.is("CLIENT") && sub_is("REPLY") {
        Some(ClientReply)
    } else {
        None
    };
    match reason {
        Some(reason) => Affinity::Dedicated(reason),
        None if lookup_command(cmd).is_some_and(|info| is_blocking(info, cmd)) => {
            Affinity::Blocking
        }
        None => Affinity::Shared,
    }
}

/// Whether `cmd` may block its connection. Redis 7.0 flags XREAD and
/// XREADGROUP as blocking always; they block only with a `BLOCK` option.
/// `WAIT` blocks for replica acknowledgements without carrying the flag.
pub fn is_blocking(info: &CommandInfo, cmd: &Command) -> bool {
    match info.name.as_str() {
        "xread" | "xreadgroup" => has_block_option(cmd),
        "wait" => true,
        _ => info.has(Flags::BLOCKING),
    }
}

/// Walks XREAD/XREADGROUP options up to `STREAMS` looking for `BLOCK`.
fn has_block_option(cmd: &Command) -> bool {
    let mut i = 1;
    while let Some(arg) = cmd.arg(i) {
        let is = |word: &str| arg.eq_ignore_ascii_case(word.as_bytes());
        if is("BLOCK") {
            return true;
        } else if is("COUNT") {
            i += 1;
        } else if is("GROUP") {
            i += 2;
        } else if !is("NOACK") {
            // STREAMS, or a syntax error the server will report.
            return false;
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests;
