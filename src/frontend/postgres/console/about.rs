//! Respond (Postgres admin console): SHOW CONFIG, SHOW VERSION and SHOW
//! HELP: answers about Attaché itself rather than its connections.

use serde_json::Value as Json;

use super::command::HELP;
use super::wire::{Kind, RowSet, Value};
use super::ConsoleError;
use crate::config::types::{PoolSettings, PostgresConfig};

/// Settings a reload cannot change (see `reload::restart_only_changes`).
const RESTART_ONLY: &[&str] = &["listen", "max_client_connections", "tls"];

/// SHOW CONFIG: the `[postgres]` section in force, one row per setting,
/// keyed by its TOML path below `[postgres]` (`pool_size`,
/// `databases.app.nodes[0].addr`). Unset pool knobs show their built-in
/// values; secrets serialize as `<redacted>`.
pub(super) fn config(cfg: &PostgresConfig) -> Result<RowSet, ConsoleError> {
    let mut shown = cfg.clone();
    shown.pool = shown.pool.or(&PoolSettings::builtin());
    let current = flatten(&shown)?;
    let defaults = match crate::config::builtin_default().postgres {
        Some(mut d) => {
            d.databases.clear();
            d.pool = PoolSettings::builtin();
            flatten(&d)?
        }
        None => Vec::new(),
    };
    let mut set = RowSet::new(&[
        ("key", Kind::Text),
        ("value", Kind::Text),
        ("default", Kind::Text),
        ("changeable", Kind::Text),
    ]);
    for (key, value) in current {
        let default = defaults
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone());
        let top = key.split(['.', '[']).next().unwrap_or("");
        let changeable = if RESTART_ONLY.contains(&top) {
            "no"
        } else {
            "yes"
        };
        set.push(vec![
            key.into(),
            value.into(),
            default.into(),
            changeable.into(),
        ]);
    }
    Ok(set)
}

/// The section as `(path, value)` pairs sorted by path. Tables nest with
/// `.`, arrays of tables with `[i]`; arrays of plain values stay one value.
fn flatten(cfg: &PostgresConfig) -> Result<Vec<(String, String)>, ConsoleError> {
    let json = serde_json::to_value(cfg)
        .map_err(|e| ConsoleError::Internal(format!("SHOW CONFIG: {e}")))?;
    let mut out = Vec::new();
    walk("", &json, &mut out);
    Ok(out)
}

fn walk(path: &str, value: &Json, out: &mut Vec<(String, String)>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match value {
        Json::Null => {}
        Json::Object(map) => {
            for (k, v) in map {
                walk(&join(k), v, out);
            }
        }
        Json::Array(items) if items.iter().any(Json::is_object) => {
            for (i, v) in items.iter().enumerate() {
                walk(&format!("{path}[{i}]"), v, out);
            }
        }
        Json::String(s) => out.push((path.to_owned(), s.clone())),
        other => out.push((path.to_owned(), other.to_string())),
    }
}

/// SHOW VERSION.
pub(super) fn version() -> RowSet {
    let mut set = RowSet::new(&[("version", Kind::Text)]);
    set.push(vec![Value::Text(format!(
        "Attaché {}",
        env!("CARGO_PKG_VERSION")
    ))]);
    set
}

/// SHOW HELP: the commands, as rows (PgBouncer sends a NOTICE; rows are
/// easier to read back from a script).
pub(super) fn help() -> RowSet {
    let mut set = RowSet::new(&[("command", Kind::Text), ("description", Kind::Text)]);
    for (command, description) in HELP {
        set.push(vec![(*command).into(), (*description).into()]);
    }
    set
}
