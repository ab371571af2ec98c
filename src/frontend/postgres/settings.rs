//! Route (Postgres): a client's session settings in transaction pooling.
//!
//! Startup parameters and SET/RESET issued outside a transaction belong to
//! the client, not to whichever server connection ran them. Each client
//! keeps the settings it asked for; each server connection remembers what
//! was applied to it. On checkout the difference is applied in one round
//! trip, so one client's settings never leak into another's work.

use std::collections::BTreeMap;

use attache_postgres_protocol::classify::{SessionCommand, SetValue};

/// Startup keys that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "options", "replication"];

/// Settings by lowercase name, as SQL value text ready for `SET name TO …`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Settings {
    pub values: BTreeMap<String, String>,
    /// What RESET returns to: the client's startup parameters.
    pub startup: BTreeMap<String, String>,
    /// SETs run inside a transaction block: they count only if it commits.
    pub in_transaction: Vec<SessionCommand>,
}

impl Settings {
    /// The settings a client asked for in its startup packet, including
    /// `-c name=value` pairs in `options`.
    pub fn from_startup(params: &[(String, String)]) -> Self {
        let mut values = BTreeMap::new();
        for (k, v) in params {
            if k == "options" {
                for (name, value) in parse_options(v) {
                    insert_literal(&mut values, &name, &value);
                }
            } else if !NOT_SETTINGS.contains(&k.as_str()) && !k.starts_with("_pq_.") {
                insert_literal(&mut values, k, v);
            }
        }
        Self {
            startup: values.clone(),
            values,
            in_transaction: Vec::new(),
        }
    }

    /// Applies SET/RESET commands that took effect to what the client expects.
    pub fn apply_client(&mut self, cmds: &[SessionCommand]) {
        apply(&mut self.values, &self.startup, cmds);
    }

    /// Applies them to what a server connection has: its own defaults are
    /// its login values, which Attaché does not track.
    pub fn apply_server(values: &mut BTreeMap<String, String>, cmds: &[SessionCommand]) {
        apply(values, &BTreeMap::new(), cmds);
    }

    /// The SQL that turns a server's applied settings into this client's,
    /// or `None` when they already match.
    pub fn diff_sql(&self, server: &BTreeMap<String, String>) -> Option<String> {
        // The usual case on every checkout: one ordered walk, no lookups.
        if self.values == *server {
            return None;
        }
        let mut sql = String::new();
        for (k, v) in &self.values {
            if server.get(k) != Some(v) {
                sql.push_str(&format!("SET {k} TO {v};"));
            }
        }
        for k in server.keys() {
            if !self.values.contains_key(k) {
                sql.push_str(&format!("RESET {k};"));
            }
        }
        (!sql.is_empty()).then_some(sql)
    }
}

fn apply(
    values: &mut BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
    cmds: &[SessionCommand],
) {
    for cmd in cmds {
        match cmd {
            SessionCommand::Set {
                name,
                value: SetValue::Value(v),
            } if valid_name(name) => {
                values.insert(name.clone(), v.clone());
            }
            SessionCommand::Set { name, .. } | SessionCommand::Reset { name } => {
                match defaults.get(name) {
                    Some(d) => values.insert(name.clone(), d.clone()),
                    None => values.remove(name),
                };
            }
            SessionCommand::ResetAll | SessionCommand::DiscardAll => values.clone_from(defaults),
            _ => {}
        }
    }
}

/// Only plain (optionally dotted) identifiers are replayed; anything else
/// would need quoting rules we do not want to get wrong.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

fn insert_literal(values: &mut BTreeMap<String, String>, name: &str, value: &str) {
    let name = name.to_ascii_lowercase();
    if valid_name(&name) {
        values.insert(name, quote_literal(value));
    }
}

pub(super) fn quote_literal(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('\'');
    for c in v.chars() {
        if c == '\'' {
            s.push('\'');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// `-c a=b --c=d` as libpq passes them in `options` (backslash escapes
/// spaces).
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let pair = if w == "-c" {
            it.next()
        } else {
            w.strip_prefix("--")
                .or_else(|| w.strip_prefix("-c"))
                .map(str::to_owned)
        };
        if let Some((k, v)) = pair.as_deref().and_then(|p| p.split_once('=')) {
            out.push((k.replace('-', "_"), v.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests;
