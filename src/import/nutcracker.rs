//! Config import → twemproxy's `nutcracker.yml` as an `attache.toml` with a
//! sharded `[redis]` section; read once by `attache import`, before accept
//! → parse → route → backend → respond.
//!
//! The point of a twemproxy migration is that no key moves, so the ring is
//! carried over exactly: server names, weights, `hash` and `hash_tag`. What
//! would move keys (`distribution: modula` or `random` over several servers,
//! a hash Attaché does not know, Unix-socket servers) fails the import
//! instead of producing a config that silently places keys elsewhere.
//! Attaché has one `[redis]` listener, so the first Redis pool is imported
//! and the others are reported as not mapped.

use attache_redis_protocol::ketama::{default_name, HashKind};

use super::convert;
use super::render::{Doc, Table, Value};
use super::yaml::{self, Pool, YEntry, YValue};
use super::{finish, ImportError, Imported, Unmapped};

/// Imports `text` (the file named `source`).
pub fn import(text: &str, source: &str) -> Result<Imported, ImportError> {
    let pools = yaml::parse_pools(text, source)?;
    let is_redis = |p: &Pool| {
        p.entries
            .iter()
            .any(|e| e.key == "redis" && e.value == YValue::Scalar("true".into()))
    };
    let chosen = pools.iter().position(is_redis).ok_or_else(|| {
        ImportError::Unsupported(format!(
            "{source}: no pool has `redis: true`; twemproxy then speaks memcached, \
             which Attaché does not"
        ))
    })?;
    let mut un = Vec::new();
    for (i, p) in pools.iter().enumerate() {
        if i == chosen {
            continue;
        }
        let reason = if is_redis(p) {
            format!(
                "Attaché has one [redis] listener; pool {:?} was imported",
                pools[chosen].name
            )
        } else {
            "a memcached pool (no `redis: true`); Attaché speaks Redis only".to_string()
        };
        let servers = p.entries.iter().find(|e| e.key == "servers");
        let n = match servers.map(|e| &e.value) {
            Some(YValue::List(l)) => l.len(),
            _ => 0,
        };
        un.push(Unmapped::new(
            format!("pool {}", p.name),
            &format!("({n} servers)"),
            reason,
        ));
    }
    let table = pool_table(&pools[chosen], source, &mut un)?;
    let mut doc = Doc::default();
    doc.push(table);
    finish(super::Format::Nutcracker, source, &doc, un)
}

/// A pool's entries not yet mapped; the last of a repeated key wins.
struct Entries {
    pool: String,
    entries: Vec<YEntry>,
}

impl Entries {
    fn take(&mut self, key: &str) -> Option<YEntry> {
        let mut found = None;
        self.entries.retain(|e| {
            if e.key == key {
                found = Some(e.clone());
                false
            } else {
                true
            }
        });
        found
    }

    /// A scalar setting; a list where a scalar belongs is reported.
    fn scalar(&mut self, key: &str, un: &mut Vec<Unmapped>) -> Option<String> {
        match self.take(key)?.value {
            YValue::Scalar(s) => Some(s),
            YValue::List(items) => {
                let path = format!("{}.{key}", self.pool);
                un.push(Unmapped::new(path, &items.join(", "), "expected one value"));
                None
            }
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.pool)
    }
}

fn pool_table(pool: &Pool, source: &str, un: &mut Vec<Unmapped>) -> Result<Table, ImportError> {
    let mut e = Entries {
        pool: pool.name.clone(),
        entries: pool.entries.clone(),
    };
    let mut t = Table::new(&["redis"]);
    e.take("redis");
    t.set("listen", Value::str(listen(&mut e, un)));
    t.set("mode", Value::str("sharded"));
    let nodes = servers(&mut e, pool, source)?;
    let count = nodes.len();
    t.set(
        "nodes",
        Value::Array(nodes.into_iter().map(Value::Str).collect()),
    );
    ring(&mut e, count, &mut t, un)?;
    health(&mut e, &mut t, un);
    if let Some(auth) = e.scalar("redis_auth", un) {
        // twemproxy asks clients for redis_auth and logs in to servers with it.
        t.set("password", Value::str(&auth));
        t.set("client_password", Value::str(&auth));
    }
    limits(&mut e, &mut t, un);
    if let Some(db) = e.scalar("redis_db", un).filter(|d| d.trim() != "0") {
        let reason = "Attaché starts every client in database 0; clients SELECT their own";
        un.push(Unmapped::new(e.path("redis_db"), &db, reason));
    }
    for left in std::mem::take(&mut e.entries) {
        let value = match &left.value {
            YValue::Scalar(s) => s.clone(),
            YValue::List(items) => items.join(", "),
        };
        un.push(Unmapped::new(
            e.path(&left.key),
            &value,
            leftover_reason(&left.key),
        ));
    }
    Ok(t)
}

/// `listen: host:port` → `listen`; names other than localhost and Unix
/// sockets fall back to Attaché's default.
fn listen(e: &mut Entries, un: &mut Vec<Unmapped>) -> String {
    const FALLBACK: &str = "127.0.0.1:6380";
    let Some(v) = e.scalar("listen", un) else {
        return FALLBACK.to_string();
    };
    // `listen: 127.0.0.1:22121` or a Unix socket `/path 0666`.
    let spec = v.split_whitespace().next().unwrap_or("");
    let mapped = spec.rsplit_once(':').and_then(|(host, port)| {
        let port: u16 = port.parse().ok()?;
        let host = match host.trim_matches(['[', ']']) {
            "localhost" => "127.0.0.1".to_string(),
            h => match h.parse::<std::net::IpAddr>().ok()? {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            },
        };
        Some(format!("{host}:{port}"))
    });
    mapped.unwrap_or_else(|| {
        let reason = format!("Attaché listens on an IP address and TCP port; {FALLBACK} used");
        un.push(Unmapped::new(e.path("listen"), &v, reason));
        FALLBACK.to_string()
    })
}

/// `servers:` → `nodes`, in twemproxy's `host:port:weight name` format.
fn servers(e: &mut Entries, pool: &Pool, source: &str) -> Result<Vec<String>, ImportError> {
    let unsupported =
        |m: String| ImportError::Unsupported(format!("{source}: pool {}: {m}", pool.name));
    let list = match e.take("servers").map(|s| s.value) {
        Some(YValue::List(items)) if !items.is_empty() => items,
        Some(YValue::Scalar(s)) => vec![s],
        _ => return Err(unsupported("no servers".into())),
    };
    list.iter()
        .map(|s| server(s).map_err(|m| unsupported(format!("server {s:?}: {m}"))))
        .collect()
}

/// One `host:port:weight [name]`, checked; a name is written when twemproxy
/// would hash something other than `host:port` (its port 11211 rule).
fn server(s: &str) -> Result<String, String> {
    let mut parts = s.split_whitespace();
    let spec = parts.next().ok_or("empty server entry")?;
    let name = parts.next();
    if parts.next().is_some() {
        return Err("expected host:port:weight [name]".into());
    }
    if spec.starts_with('/') {
        return Err("Unix-socket servers are not supported; Attaché connects over TCP".into());
    }
    let (addr, weight) = spec.rsplit_once(':').ok_or("expected host:port:weight")?;
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port:weight")?;
    let port: u16 = port.parse().map_err(|_| "bad port")?;
    let weight: u32 = weight.parse().map_err(|_| "bad weight")?;
    if host.is_empty() || port == 0 || weight == 0 {
        return Err("host, port and weight must be non-empty and non-zero".into());
    }
    let name = match name {
        Some(n) => n.to_string(),
        None => default_name(host, port),
    };
    let addr = format!("{host}:{port}");
    Ok(if name == addr {
        format!("{addr}:{weight}")
    } else {
        format!("{addr}:{weight} {name}")
    })
}

/// `distribution`, `hash`, `hash_tag`: the ring itself, or an error when
/// Attaché would place keys differently from twemproxy.
fn ring(
    e: &mut Entries,
    servers: usize,
    t: &mut Table,
    un: &mut Vec<Unmapped>,
) -> Result<(), ImportError> {
    let distribution = e
        .scalar("distribution", un)
        .unwrap_or_else(|| "ketama".into());
    match distribution.as_str() {
        "ketama" => {}
        "modula" | "random" if servers == 1 => {
            let reason = "one server: every key lands on it either way; ketama used";
            un.push(Unmapped::new(e.path("distribution"), &distribution, reason));
        }
        other => {
            return Err(ImportError::Unsupported(format!(
                "pool {}: distribution {other:?} is not supported (Attaché shards with \
                 ketama only, and switching would move keys)",
                e.pool
            )))
        }
    }
    match e.scalar("hash", un) {
        Some(h) if h.parse::<HashKind>().is_ok() => t.set("hash", Value::str(h)),
        Some(h) => {
            return Err(ImportError::Unsupported(format!(
                "pool {}: unknown hash {h:?}",
                e.pool
            )))
        }
        None => t.set_noted("hash", Value::str("fnv1a_64"), Some("twemproxy default")),
    }
    if let Some(tag) = e.scalar("hash_tag", un) {
        t.set("hash_tag", Value::str(tag));
    }
    Ok(())
}

/// `auto_eject_hosts`, `server_retry_timeout`, `server_failure_limit`.
fn health(e: &mut Entries, t: &mut Table, un: &mut Vec<Unmapped>) {
    if let Some(v) = e.scalar("auto_eject_hosts", un) {
        match v.as_str() {
            "true" | "false" => t.set("auto_eject_hosts", Value::Bool(v == "true")),
            _ => un.push(Unmapped::new(
                e.path("auto_eject_hosts"),
                &v,
                "expected true or false",
            )),
        }
    }
    if let Some(v) = e.scalar("server_retry_timeout", un) {
        match convert::millis(&v) {
            Ok(d) => t.set("server_retry_timeout", Value::str(d.to_string())),
            Err(m) => un.push(Unmapped::new(e.path("server_retry_timeout"), &v, m)),
        }
    }
    if let Some(v) = e.scalar("server_failure_limit", un) {
        match convert::count(&v) {
            Ok(n) if n <= u64::from(u32::MAX) => t.set("server_failure_limit", Value::Int(n)),
            Ok(_) => un.push(Unmapped::new(
                e.path("server_failure_limit"),
                &v,
                "too large",
            )),
            Err(m) => un.push(Unmapped::new(e.path("server_failure_limit"), &v, m)),
        }
    }
}

/// `timeout`, `server_connections`, `client_connections`.
fn limits(e: &mut Entries, t: &mut Table, un: &mut Vec<Unmapped>) {
    if let Some(v) = e.scalar("timeout", un) {
        match convert::millis(&v) {
            Ok(d) if d.0.is_zero() => {
                let reason = "Attaché always has a command timeout (default 5s)";
                un.push(Unmapped::new(e.path("timeout"), &v, reason));
            }
            Ok(d) => t.set("command_timeout", Value::str(d.to_string())),
            Err(m) => un.push(Unmapped::new(e.path("timeout"), &v, m)),
        }
    }
    if let Some(v) = e.scalar("server_connections", un) {
        match convert::count(&v) {
            Ok(n @ 1..=64) => t.set("connections_per_node", Value::Int(n)),
            Ok(n) if n > 64 => {
                t.set("connections_per_node", Value::Int(64));
                let reason =
                    "Attaché pipelines many clients per connection; at most 64, 64 written";
                un.push(Unmapped::new(e.path("server_connections"), &v, reason));
            }
            Ok(_) => un.push(Unmapped::new(
                e.path("server_connections"),
                &v,
                "must be at least 1",
            )),
            Err(m) => un.push(Unmapped::new(e.path("server_connections"), &v, m)),
        }
    }
    if let Some(v) = e.scalar("client_connections", un) {
        match convert::count(&v) {
            // 0: unlimited in twemproxy; Attaché's default limit is high.
            Ok(0) => {}
            Ok(n) => t.set("max_client_connections", Value::Int(n)),
            Err(m) => un.push(Unmapped::new(e.path("client_connections"), &v, m)),
        }
    }
}

fn leftover_reason(key: &str) -> &'static str {
    match key {
        "preconnect" => "Attaché opens its server connections itself",
        "backlog" | "tcpkeepalive" => "Attaché uses its own socket settings",
        _ => "no Attaché equivalent",
    }
}

#[cfg(test)]
mod tests;
