//! Config import → `pgbouncer.ini` (and its `auth_file`) as an
//! `attache.toml` with a `[postgres]` section; read once by `attache
//! import`, before accept → parse → route → backend → respond.
//!
//! Every `[pgbouncer]` setting is taken by exactly one mapping step; what
//! no step took is reported as [`Unmapped`] with a reason, so nothing is
//! dropped silently. Where PgBouncer's default differs from Attaché's and
//! matters to clients (`pool_mode = session`, `auth_type = md5`, limits and
//! timeouts) the default is written out, marked `# PgBouncer default`.
//! Relative file names (`auth_file`, TLS files) are resolved against the
//! directory of the ini file, where PgBouncer usually runs.

use std::net::IpAddr;
use std::path::Path;

mod auth;

use super::convert;
use super::ini::{self, Entry};
use super::render::{Doc, Table, Value};
use super::{finish, ImportError, Imported, Unmapped};

const DEFAULT_NOTE: &str = "PgBouncer default";

/// Imports `text` (the ini named `source`); `base` is its directory.
pub fn import(text: &str, base: &Path, source: &str) -> Result<Imported, ImportError> {
    let parsed = ini::parse_ini(text, source)?;
    let mut un = Vec::new();
    for (line, file) in &parsed.includes {
        un.push(Unmapped::new(
            format!("%include (line {line})"),
            file,
            "included files are not followed; import each one and merge the results",
        ));
    }
    let mut settings = Settings::default();
    let (mut databases, mut users) = (Vec::new(), Vec::new());
    for section in parsed.sections {
        match section.name.as_str() {
            "pgbouncer" => settings
                .entries
                .extend(section.entries.into_iter().map(|mut e| {
                    e.key = e.key.to_ascii_lowercase();
                    e
                })),
            "databases" => databases.extend(section.entries),
            "users" => users.extend(section.entries),
            other => un.extend(section.entries.iter().map(|e| {
                Unmapped::new(
                    format!("{other}.{}", e.key),
                    &e.value,
                    section_reason(other),
                )
            })),
        }
    }
    let mut pg = Table::new(&["postgres"]);
    listen(&mut settings, &mut pg, &mut un);
    let plan = auth::auth(&mut settings, &mut pg, &mut un);
    for knob in KNOBS {
        if let Some(v) = settings.take(knob.src) {
            map_knob(
                &format!("pgbouncer.{}", knob.src),
                knob,
                &v,
                &mut pg,
                &mut un,
            );
        } else if let Some(default) = knob.pgbouncer_default {
            pg.set_noted(knob.dst, default(), Some(DEFAULT_NOTE));
        }
    }
    let tls = client_tls(&mut settings, base, &mut un);
    let server_tls = server_tls(&mut settings, base, &mut un);
    let lines = match settings.take("auth_file") {
        Some(f) => auth::read_userlist(&base.join(f))?,
        None => Vec::new(),
    };
    let user_tables = auth::user_tables(&lines, &users, &plan, source, &mut un)?;
    let mut doc = Doc::default();
    doc.push(pg);
    doc.tables.extend(tls);
    for e in last_of_each(&databases) {
        doc.push(database(e, server_tls.as_ref(), source, &mut un)?);
    }
    doc.tables.extend(user_tables);
    for e in settings.entries {
        let reason = leftover_reason(&e.key);
        un.push(Unmapped::new(
            format!("pgbouncer.{}", e.key),
            &e.value,
            reason,
        ));
    }
    finish(super::Format::Pgbouncer, source, &doc, un)
}

/// Each key once, at its last occurrence (PgBouncer lets a later line win).
fn last_of_each(entries: &[Entry]) -> Vec<&Entry> {
    entries
        .iter()
        .enumerate()
        .filter(|(i, e)| !entries[i + 1..].iter().any(|later| later.key == e.key))
        .map(|(_, e)| e)
        .collect()
}

/// `[pgbouncer]` entries not yet mapped; the last of a repeated key wins.
#[derive(Default)]
struct Settings {
    entries: Vec<Entry>,
}

impl Settings {
    fn take(&mut self, key: &str) -> Option<String> {
        let mut found = None;
        self.entries.retain(|e| {
            if e.key == key {
                found = Some(e.value.clone());
                false
            } else {
                true
            }
        });
        found
    }
}

/// A pool knob shared by `[pgbouncer]`, `[databases]` and `[users]`.
struct Knob {
    src: &'static str,
    dst: &'static str,
    kind: Kind,
    /// Written when `[pgbouncer]` leaves it out and Attaché's default differs.
    pgbouncer_default: Option<fn() -> Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mode,
    Count,
    /// Seconds; 0 turns the timeout off in PgBouncer (and in Attaché).
    Secs,
    /// Seconds; 0 turns the timeout off in PgBouncer, Attaché always has one.
    SecsRequired,
    Bytes,
    Text,
}

const KNOBS: &[Knob] = &[
    knob(
        "pool_mode",
        "pool_mode",
        Kind::Mode,
        Some(|| Value::str("session")),
    ),
    knob("default_pool_size", "pool_size", Kind::Count, None),
    knob("min_pool_size", "min_idle", Kind::Count, None),
    knob(
        "max_client_conn",
        "max_client_connections",
        Kind::Count,
        Some(|| Value::Int(100)),
    ),
    knob(
        "server_connect_timeout",
        "connect_timeout",
        Kind::SecsRequired,
        Some(|| Value::str("15s")),
    ),
    knob(
        "query_wait_timeout",
        "checkout_timeout",
        Kind::SecsRequired,
        Some(|| Value::str("2m")),
    ),
    knob(
        "server_idle_timeout",
        "server_idle_timeout",
        Kind::Secs,
        None,
    ),
    knob("server_lifetime", "server_lifetime", Kind::Secs, None),
    knob(
        "client_idle_timeout",
        "client_idle_timeout",
        Kind::Secs,
        None,
    ),
    knob(
        "idle_transaction_timeout",
        "idle_transaction_timeout",
        Kind::Secs,
        None,
    ),
    knob("max_packet_size", "max_message_size", Kind::Bytes, None),
    knob("server_reset_query", "server_reset_query", Kind::Text, None),
    knob(
        "max_prepared_statements",
        "max_prepared_statements",
        Kind::Count,
        None,
    ),
];

const fn knob(src: &'static str, dst: &'static str, kind: Kind, d: Option<fn() -> Value>) -> Knob {
    Knob {
        src,
        dst,
        kind,
        pgbouncer_default: d,
    }
}

/// Knobs a `[databases]` entry may carry, under PgBouncer's names there.
const DB_KNOBS: &[Knob] = &[
    knob("pool_mode", "pool_mode", Kind::Mode, None),
    knob("pool_size", "pool_size", Kind::Count, None),
    knob("min_pool_size", "min_idle", Kind::Count, None),
    knob("server_lifetime", "server_lifetime", Kind::Secs, None),
];

/// Knobs a `[users]` entry may carry.
const USER_KNOBS: &[Knob] = &[
    knob("pool_mode", "pool_mode", Kind::Mode, None),
    knob("pool_size", "pool_size", Kind::Count, None),
];

const MIN_MESSAGE: u64 = 1 << 10;
const MAX_MESSAGE: u64 = 1 << 30;

/// Writes one knob into `t`, or reports why it cannot be.
fn map_knob(path: &str, k: &Knob, v: &str, t: &mut Table, un: &mut Vec<Unmapped>) {
    let mut skip = |reason: String| un.push(Unmapped::new(path, v, reason));
    match k.kind {
        Kind::Mode => match v.trim().to_ascii_lowercase().as_str() {
            m @ ("session" | "transaction") => t.set(k.dst, Value::str(m)),
            "statement" => {
                t.set(k.dst, Value::str("transaction"));
                skip("no statement pooling in Attaché; transaction pooling is used".into());
            }
            _ => skip("unknown pool mode".into()),
        },
        Kind::Count => match convert::count(v) {
            Ok(0) if k.dst == "max_prepared_statements" => skip(
                "0 turns PgBouncer's prepared statement support off; Attaché always tracks them"
                    .into(),
            ),
            Ok(0) if k.dst != "min_idle" => skip("must be at least 1 in Attaché".into()),
            Ok(n) if k.dst == "pool_size" && n > 10_000 => skip("at most 10000 in Attaché".into()),
            Ok(n) => t.set(k.dst, Value::Int(n)),
            Err(e) => skip(e),
        },
        Kind::Secs | Kind::SecsRequired => match convert::seconds(v) {
            Ok(d) if d.0.is_zero() && k.kind == Kind::SecsRequired => skip(
                "0 waits forever in PgBouncer; Attaché always has this timeout (its default applies)"
                    .into(),
            ),
            // Attaché refuses idle_transaction_timeout under 1s (a client
            // between two statements of one transaction would be cut off);
            // PgBouncer takes fractions, so round up instead of writing a
            // config that does not load.
            Ok(d) if k.dst == "idle_transaction_timeout"
                && !d.0.is_zero()
                && d.0 < std::time::Duration::from_secs(1) =>
            {
                t.set(k.dst, Value::str("1s"));
                skip("below Attaché's minimum of 1s; 1s written".into());
            }
            Ok(d) => t.set(k.dst, Value::str(d.to_string())),
            Err(e) => skip(e),
        },
        Kind::Bytes => match convert::bytes(v) {
            Ok(b) if b.0 < MIN_MESSAGE => skip("Attaché needs at least 1KiB".into()),
            Ok(b) if b.0 > MAX_MESSAGE => {
                t.set(k.dst, Value::str("1GiB"));
                skip("above Attaché's limit; 1GiB written".into());
            }
            Ok(b) => t.set(k.dst, Value::str(b.to_string())),
            Err(e) => skip(e),
        },
        Kind::Text => t.set(k.dst, Value::str(v)),
    }
}

/// `listen_addr` + `listen_port` → `listen`.
fn listen(s: &mut Settings, pg: &mut Table, un: &mut Vec<Unmapped>) {
    let port = match s.take("listen_port") {
        None => 6432,
        Some(p) => p.trim().parse::<u16>().unwrap_or_else(|_| {
            un.push(Unmapped::new(
                "pgbouncer.listen_port",
                &p,
                "not a port; 6432 used",
            ));
            6432
        }),
    };
    let addr = s.take("listen_addr").unwrap_or_default();
    let mut hosts = addr.split(',').map(str::trim).filter(|h| !h.is_empty());
    let host = match hosts.next() {
        None => {
            un.push(Unmapped::new(
                "pgbouncer.listen_addr",
                "(not set)",
                "PgBouncer then listens on its Unix socket only; Attaché listens on TCP 127.0.0.1",
            ));
            "127.0.0.1".to_string()
        }
        Some("*") => "0.0.0.0".to_string(),
        Some("localhost") => "127.0.0.1".to_string(),
        Some(h) => match h.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            Ok(ip) => ip.to_string(),
            Err(_) => {
                let reason = "Attaché listens on an IP address; 127.0.0.1 used";
                un.push(Unmapped::new("pgbouncer.listen_addr", h, reason));
                "127.0.0.1".to_string()
            }
        },
    };
    let rest: Vec<&str> = hosts.collect();
    if !rest.is_empty() {
        let reason = "Attaché listens on one address; the first is used";
        un.push(Unmapped::new(
            "pgbouncer.listen_addr",
            &rest.join(","),
            reason,
        ));
    }
    pg.set("listen", Value::str(format!("{host}:{port}")));
}

/// One `[databases]` entry as `[postgres.databases.NAME]`.
fn database(
    e: &Entry,
    server_tls: Option<&Value>,
    source: &str,
    un: &mut Vec<Unmapped>,
) -> Result<Table, ImportError> {
    let syntax = |message: String| ImportError::Syntax {
        file: source.to_string(),
        line: e.line,
        message: format!("[databases] {}: {message}", e.key),
    };
    let params = ini::parse_connstring(&e.value).map_err(syntax)?;
    let name = &e.key;
    let mut t = Table::new(&["postgres", "databases", name]);
    let (mut host, mut port) = (None, None);
    let mut knobs = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "host" => host = Some(v),
            "port" => port = Some(v),
            "dbname" => t.set("dbname", Value::str(v)),
            _ => knobs.push((k, v)),
        }
    }
    let addr = node_addr(name, host.as_deref(), port.as_deref(), un).map_err(syntax)?;
    t.set(
        "nodes",
        Value::Array(vec![Value::Inline(vec![("addr".into(), Value::str(addr))])]),
    );
    if let Some(tls) = server_tls {
        t.set("server_tls", tls.clone());
    }
    for (k, v) in knobs {
        let path = format!("databases.{name}.{k}");
        match DB_KNOBS.iter().find(|kn| kn.src == k) {
            Some(kn) => map_knob(&path, kn, &v, &mut t, un),
            None => un.push(Unmapped::new(path, &v, db_param_reason(&k))),
        }
    }
    Ok(t)
}

/// `host:port` of a database's server; Unix sockets become 127.0.0.1.
fn node_addr(
    name: &str,
    host: Option<&str>,
    port: Option<&str>,
    un: &mut Vec<Unmapped>,
) -> Result<String, String> {
    let path = format!("databases.{name}.host");
    let mut hosts = host.unwrap_or("").split(',').map(str::trim);
    let first = hosts.next().unwrap_or("");
    let rest: Vec<&str> = hosts.collect();
    if !rest.is_empty() {
        let reason = "Attaché does not balance over equal hosts; the first is used \
                      (list replicas with role = \"replica\" for read routing)";
        un.push(Unmapped::new(&path, &rest.join(","), reason));
    }
    let host = if first.is_empty() || first.starts_with('/') {
        let shown = if first.is_empty() { "(not set)" } else { first };
        let reason = "PgBouncer uses a Unix socket; Attaché connects over TCP to 127.0.0.1";
        un.push(Unmapped::new(&path, shown, reason));
        "127.0.0.1".to_string()
    } else if first.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{first}]")
    } else {
        first.to_string()
    };
    let port = port.and_then(|p| p.split(',').next()).unwrap_or("5432");
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| format!("port {port:?} is not a port number"))?;
    Ok(format!("{host}:{port}"))
}

/// `client_tls_*` → `[postgres.tls]`, when PgBouncer would offer TLS.
fn client_tls(s: &mut Settings, base: &Path, un: &mut Vec<Unmapped>) -> Option<Table> {
    let mode = s.take("client_tls_sslmode");
    let key = s.take("client_tls_key_file");
    let cert = s.take("client_tls_cert_file");
    if let Some(ca) = s.take("client_tls_ca_file") {
        let reason = "Attaché does not check client certificates";
        un.push(Unmapped::new("pgbouncer.client_tls_ca_file", &ca, reason));
    }
    let mode = mode.unwrap_or_else(|| "disable".into());
    let unused = |un: &mut Vec<Unmapped>, reason: &str| {
        for (k, v) in [
            ("client_tls_key_file", &key),
            ("client_tls_cert_file", &cert),
        ] {
            if let Some(v) = v {
                un.push(Unmapped::new(format!("pgbouncer.{k}"), v, reason));
            }
        }
    };
    if mode == "disable" {
        unused(
            un,
            "client_tls_sslmode is disable, so PgBouncer does not use it",
        );
        return None;
    }
    if matches!(mode.as_str(), "require" | "verify-ca" | "verify-full") {
        let reason = "Attaché offers TLS but neither requires it nor checks client certificates";
        un.push(Unmapped::new("pgbouncer.client_tls_sslmode", &mode, reason));
    }
    let (Some(k), Some(c)) = (&key, &cert) else {
        unused(
            un,
            "TLS needs both client_tls_key_file and client_tls_cert_file",
        );
        return None;
    };
    let mut t = Table::new(&["postgres", "tls"]);
    t.set("cert", Value::str(resolve(base, c)));
    t.set("key", Value::str(resolve(base, k)));
    Some(t)
}

/// `server_tls_*` → the `server_tls` every database gets.
fn server_tls(s: &mut Settings, base: &Path, un: &mut Vec<Unmapped>) -> Option<Value> {
    let mode = s.take("server_tls_sslmode");
    let ca = s.take("server_tls_ca_file");
    let mut cert = s.take("server_tls_cert_file");
    let mut key = s.take("server_tls_key_file");
    if cert.is_some() != key.is_some() {
        for (k, v) in [
            ("server_tls_cert_file", &cert),
            ("server_tls_key_file", &key),
        ] {
            if let Some(v) = v {
                let reason = "a client certificate needs both cert and key files";
                un.push(Unmapped::new(format!("pgbouncer.{k}"), v, reason));
            }
        }
        (cert, key) = (None, None);
    }
    let mut fields = Vec::new();
    if let Some(m) = mode {
        let mapped = match m.trim() {
            m @ ("disable" | "prefer" | "require" | "verify-ca" | "verify-full") => m.to_string(),
            "allow" => {
                let reason = "no sslmode allow in Attaché; prefer used";
                un.push(Unmapped::new("pgbouncer.server_tls_sslmode", &m, reason));
                "prefer".to_string()
            }
            other => {
                let reason = "unknown sslmode; Attaché's default (prefer) applies";
                un.push(Unmapped::new("pgbouncer.server_tls_sslmode", other, reason));
                "prefer".to_string()
            }
        };
        fields.push(("sslmode".to_string(), Value::str(mapped)));
    }
    let files = [("ca_file", ca), ("client_cert", cert), ("client_key", key)];
    for (name, file) in files {
        if let Some(f) = file {
            fields.push((name.to_string(), Value::str(resolve(base, &f))));
        }
    }
    (!fields.is_empty()).then_some(Value::Inline(fields))
}

fn resolve(base: &Path, file: &str) -> String {
    base.join(file.trim()).display().to_string()
}

fn section_reason(section: &str) -> &'static str {
    match section {
        "peers" => "Attaché is one multi-threaded process; cancel requests need no peers",
        _ => "unknown section",
    }
}

fn db_param_reason(key: &str) -> &'static str {
    match key {
        "user" => "Attaché logs in as the client's own user (or its server_user)",
        "password" => "set server_password on the user instead",
        "reserve_pool" | "reserve_pool_size" => "no reserve pool in Attaché; raise pool_size",
        "max_db_connections" | "max_db_client_connections" => {
            "Attaché limits each pool with pool_size only"
        }
        "client_encoding" | "datestyle" | "timezone" | "application_name" => {
            "clients set startup parameters themselves; Attaché carries them per client"
        }
        "auth_user" | "auth_query" | "auth_dbname" => "no auth_query in Attaché",
        _ => "no Attaché equivalent",
    }
}

/// Why a `[pgbouncer]` setting no mapping step took is left out.
fn leftover_reason(key: &str) -> &'static str {
    match key {
        "logfile" | "syslog" | "syslog_ident" | "syslog_facility" | "log_connections"
        | "log_disconnections" | "log_pooler_errors" | "log_stats" | "verbose" | "stats_period" => {
            "Attaché logs to stderr; see ATTACHE_LOG and --log-format"
        }
        "pidfile" | "user" => "run Attaché under a service manager",
        "admin_users" | "stats_users" => {
            "not imported: Attaché's admin access is set up separately (see the README)"
        }
        "unix_socket_dir" | "unix_socket_mode" | "unix_socket_group" => {
            "Attaché listens on TCP only"
        }
        "ignore_startup_parameters" | "track_extra_parameters" => {
            "Attaché carries every startup parameter and SET per client; nothing to ignore"
        }
        "auth_hba_file" | "auth_ident_file" => "no pg_hba-style rules in Attaché",
        "auth_query" | "auth_dbname" => "no auth_query in Attaché",
        "reserve_pool_size" | "reserve_pool_timeout" => {
            "no reserve pool in Attaché; raise pool_size"
        }
        "max_db_connections"
        | "max_user_connections"
        | "max_db_client_connections"
        | "max_user_client_connections" => "Attaché limits each pool with pool_size only",
        "server_check_query" | "server_check_delay" => {
            "Attaché probes idle server connections itself before reuse"
        }
        "server_reset_query_always" => {
            "Attaché runs server_reset_query when a session-mode or pinned client leaves"
        }
        "so_reuseport" | "peer_id" => "Attaché is one multi-threaded process",
        _ => "no Attaché equivalent",
    }
}

#[cfg(test)]
mod tests;
