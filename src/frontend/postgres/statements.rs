//! Route (Postgres): protocol-level prepared statements under transaction
//! pooling.
//!
//! A client's named statement may be used on any server connection. Each
//! client statement maps to a server-side name derived from its text and
//! parameter types, so identical statements from many clients share one
//! server-side statement per connection. A statement is prepared on a
//! connection on demand (before its first Bind or Describe there), and each
//! connection's cache is bounded: the least recently used is closed first.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use attache_postgres_protocol::messages;
use bytes::BytesMut;

use super::relay::Expect;
use crate::core::pg::ServerConn;

/// How many statements one client may hold; each costs memory here.
pub(super) const MAX_CLIENT_STATEMENTS: usize = 10_000;

/// How many bytes of statement text (with names and parameter types) one
/// client may have Attaché keep: the count alone would let 10,000
/// statements of up to `max_message_size` each pin gigabytes.
pub(super) const MAX_CLIENT_STATEMENT_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub server_name: Arc<str>,
    /// In the client's encoding (see `messages::read_query`).
    pub query: Arc<[u8]>,
    pub param_types: Arc<[u8]>,
    /// Classified a read when parsed: its Binds may go to a replica.
    pub read: bool,
}

/// One client's named statements.
#[derive(Debug, Default)]
pub(super) struct Statements {
    map: HashMap<String, Statement>,
    /// What [`cost`] says they take, all together.
    bytes: usize,
}

/// The bytes a statement named `name` keeps here.
pub(super) fn cost(name: &str, query: &[u8], param_types: &[u8]) -> usize {
    name.len() + query.len() + param_types.len()
}

impl Statements {
    pub fn get(&self, name: &str) -> Option<&Statement> {
        self.map.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The bytes all statements keep (see [`cost`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn insert(
        &mut self,
        name: &str,
        query: &[u8],
        param_types: &[u8],
        read: bool,
    ) -> Statement {
        let stmt = Statement {
            server_name: server_name(query, param_types),
            query: query.into(),
            param_types: param_types.into(),
            read,
        };
        self.bytes += cost(name, query, param_types);
        if let Some(old) = self.map.insert(name.to_owned(), stmt.clone()) {
            self.bytes -= cost(name, &old.query, &old.param_types);
        }
        stmt
    }

    pub fn remove(&mut self, name: &str) -> Option<Statement> {
        let old = self.map.remove(name)?;
        self.bytes -= cost(name, &old.query, &old.param_types);
        Some(old)
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

/// `attache_` and 128 bits of hash over text and types: equal statements
/// share a name, different ones practically never do.
pub(super) fn server_name(query: &[u8], param_types: &[u8]) -> Arc<str> {
    let mut a = DefaultHasher::new();
    (0u8, query, param_types).hash(&mut a);
    let mut b = DefaultHasher::new();
    (1u8, query, param_types).hash(&mut b);
    Arc::from(format!("attache_{:016x}{:016x}", a.finish(), b.finish()))
}

/// Marks `name` as used on `conn`; true when it was already prepared there.
pub(super) fn touch(conn: &mut ServerConn, name: &Arc<str>) -> bool {
    conn.prepared_tick += 1;
    let tick = conn.prepared_tick;
    match conn.prepared.get_mut(name) {
        Some(t) => {
            *t = tick;
            true
        }
        None => false,
    }
}

/// Records `name` as prepared on `conn`, closing the least recently used
/// statement first when the cache is full. Writes the Close (if any) into
/// `sout` and its expectation into `expect`.
pub(super) fn admit(
    conn: &mut ServerConn,
    name: &Arc<str>,
    limit: usize,
    sout: &mut BytesMut,
    expect: &mut VecDeque<Expect>,
) {
    if conn.prepared.len() >= limit.max(1) {
        let victim = conn
            .prepared
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(n, _)| n.clone());
        if let Some(victim) = victim {
            conn.prepared.remove(&victim);
            messages::write_target(sout, b'C', b'S', &victim);
            expect.push_back(Expect::SwallowClose(victim));
        }
    }
    conn.prepared_tick += 1;
    conn.prepared.insert(name.clone(), conn.prepared_tick);
}

/// Makes sure `stmt` exists on `conn` before a Bind or Describe uses it.
pub(super) fn ensure_prepared(
    conn: &mut ServerConn,
    stmt: &Statement,
    limit: usize,
    sout: &mut BytesMut,
    expect: &mut VecDeque<Expect>,
) {
    if touch(conn, &stmt.server_name) {
        return;
    }
    admit(conn, &stmt.server_name, limit, sout, expect);
    messages::write_parse(sout, &stmt.server_name, &stmt.query, &stmt.param_types);
    expect.push_back(Expect::SwallowParse(stmt.server_name.clone()));
}

#[cfg(test)]
mod tests;
