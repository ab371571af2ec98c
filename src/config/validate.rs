//! Config → semantic checks after TOML parsing and before anything on the
//! accept → parse → route → backend → respond path starts, so a bad file
//! fails `attache check` and startup instead of the first client.
//!
//! Every problem is collected (not just the first) and named by its TOML
//! path, e.g. `postgres.databases.app.nodes[1].addr: invalid socket address "x"`.

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;

use super::types::{
    AuthMethod, Config, DatabaseConfig, NodeRole, PoolSettings, PostgresConfig, Secret,
    UpstreamTls, UserConfig,
};
use super::ConfigError;

const MIN_MESSAGE_SIZE: u64 = 1 << 10;
const MAX_MESSAGE_SIZE: u64 = 1 << 30;
const MAX_POOL_SIZE: usize = 10_000;
/// PgBouncer counts it in whole seconds; shorter would end transactions
/// whose client merely paused between two statements.
const MIN_IDLE_TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks everything TOML's types cannot; `Many` when several rules fail.
pub fn validate(cfg: &Config) -> Result<(), ConfigError> {
    let mut errs = Errors::default();
    if let Some(pg) = &cfg.postgres {
        check_postgres(pg, &mut errs);
    }
    if let Some(redis) = &cfg.redis {
        check_redis(redis, &mut errs);
    }
    if let Some(h) = &cfg.http {
        http::check_http(h, &mut errs);
    }
    if let Some(admin) = &cfg.admin {
        check_admin(admin, cfg, &mut errs);
    }
    errs.into_result()
}

/// `[admin]`: an address to bind that no proxied listener already takes,
/// and a token a client can actually send in an `Authorization` header.
fn check_admin(a: &super::types::AdminConfig, cfg: &Config, errs: &mut Errors) {
    match a.listen.parse::<SocketAddr>() {
        Err(_) => errs.push(
            "admin.listen",
            format!("invalid socket address {:?}", a.listen),
        ),
        Ok(addr) if addr.port() != 0 => {
            let others = [
                ("postgres.listen", cfg.postgres.as_ref().map(|p| &p.listen)),
                ("redis.listen", cfg.redis.as_ref().map(|r| &r.listen)),
                ("http.listen", cfg.http.as_ref().map(|h| &h.listen)),
            ];
            for (path, listen) in others {
                if listen.and_then(|l| l.parse::<SocketAddr>().ok()) == Some(addr) {
                    errs.push("admin.listen", format!("{addr} is already {path}"));
                }
            }
        }
        Ok(_) => {}
    }
    if let Some(token) = &a.token {
        // Never echo the token: it is a secret.
        if token.expose().is_empty() {
            errs.push("admin.token", "must not be empty (omit it to disable auth)");
        } else if !token.expose().bytes().all(|b| b.is_ascii_graphic()) {
            errs.push(
                "admin.token",
                "must be printable ASCII without spaces (it is sent as a bearer token)",
            );
        }
    }
}

fn check_redis(r: &super::redis::RedisConfig, errs: &mut Errors) {
    if r.listen.parse::<SocketAddr>().is_err() {
        errs.push(
            "redis.listen",
            format!("invalid socket address {:?}", r.listen),
        );
    }
    if r.nodes.is_empty() {
        errs.push("redis.nodes", "at least one node is required");
    }
    for (i, n) in r.nodes.iter().enumerate() {
        if let Err(message) = super::redis::NodeSpec::parse(n) {
            errs.push(format!("redis.nodes[{i}]"), message);
        }
    }
    for (i, n) in r.replicas.iter().enumerate() {
        if let Err(message) = super::redis::NodeSpec::parse(n) {
            errs.push(format!("redis.replicas[{i}]"), message);
        }
    }
    if r.hash
        .parse::<attache_redis_protocol::ketama::HashKind>()
        .is_err()
    {
        errs.push(
            "redis.hash",
            format!(
                "unknown hash {:?} (twemproxy's names: fnv1a_64, murmur, md5, …)",
                r.hash
            ),
        );
    }
    if r.mode == super::redis::RedisMode::Sentinel
        && r.master_name.as_deref().is_none_or(str::is_empty)
    {
        errs.push(
            "redis.master_name",
            "sentinel mode needs the monitored primary's name",
        );
    }
    if r.hash_tag.as_ref().is_some_and(|t| t.len() != 2) {
        errs.push("redis.hash_tag", "must be two characters, e.g. \"{}\"");
    }
    if !(1..=64).contains(&r.connections_per_node) {
        errs.push("redis.connections_per_node", "must be between 1 and 64");
    }
    if r.databases == 0 {
        errs.push("redis.databases", "must be at least 1");
    }
    if r.max_pipeline == 0 {
        errs.push("redis.max_pipeline", "must be at least 1");
    }
    if r.max_client_connections == 0 {
        errs.push("redis.max_client_connections", "must be at least 1");
    }
    if r.command_timeout.0.is_zero() {
        errs.push("redis.command_timeout", "must be more than 0");
    }
    if r.max_request_size.0 < 1024 {
        errs.push("redis.max_request_size", "must be at least 1KiB");
    }
    if r.max_reply_size.0 < 1024 {
        errs.push("redis.max_reply_size", "must be at least 1KiB");
    }
    if r.max_queued_bytes.0 < 1024 {
        errs.push("redis.max_queued_bytes", "must be at least 1KiB");
    }
}

/// Collects `Invalid` errors in file order.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        });
    }

    fn into_result(mut self) -> Result<(), ConfigError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(ConfigError::Many(self.0)),
        }
    }
}

/// A table key as it would appear in a TOML path: bare if it can be.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn check_postgres(pg: &PostgresConfig, errs: &mut Errors) {
    if pg.listen.parse::<SocketAddr>().is_err() {
        errs.push(
            "postgres.listen",
            format!("invalid socket address {:?}", pg.listen),
        );
    }
    if pg.max_client_connections < 1 {
        errs.push("postgres.max_client_connections", "must be at least 1");
    }
    if let Some(tls) = &pg.tls {
        check_file(&tls.cert, "postgres.tls.cert", errs);
        check_file(&tls.key, "postgres.tls.key", errs);
    }
    check_pool(&pg.pool, "postgres", errs);
    for (name, db) in &pg.databases {
        check_database(name, db, errs);
    }
    for (name, user) in &pg.users {
        check_user(name, user, errs);
    }
    check_min_idle(pg, errs);
    check_passwords(pg, errs);
    check_admin_users(pg, errs);
}

/// Each admin user names a `[postgres.users]` entry that can prove itself
/// to the console: the console has no server to pass a password through
/// to, so only `trust` goes without a configured password.
fn check_admin_users(pg: &PostgresConfig, errs: &mut Errors) {
    for (i, name) in pg.admin_users.iter().enumerate() {
        let path = format!("postgres.admin_users[{i}]");
        let Some(user) = pg.users.get(name) else {
            errs.push(
                path,
                format!("{name:?} has no [postgres.users.{}] entry", key(name)),
            );
            continue;
        };
        let trusted = user.auth.unwrap_or(pg.auth) == AuthMethod::Trust;
        if !trusted && user.password.is_none() {
            errs.push(
                path,
                format!(
                    "admin user {name:?} needs a password in [postgres.users.{}] \
                     (the console cannot pass a password through to a server)",
                    key(name)
                ),
            );
        }
    }
}

fn check_database(name: &str, db: &DatabaseConfig, errs: &mut Errors) {
    let path = format!("postgres.databases.{}", key(name));
    if name.is_empty() {
        errs.push(&path, "database name must not be empty");
    }
    if db.dbname.as_deref() == Some("") {
        errs.push(format!("{path}.dbname"), "must not be empty");
    }
    if db.nodes.is_empty() {
        errs.push(format!("{path}.nodes"), "at least one node is required");
    }
    let mut primary: Option<usize> = None;
    for (i, node) in db.nodes.iter().enumerate() {
        if !valid_host_port(&node.addr) {
            errs.push(
                format!("{path}.nodes[{i}].addr"),
                format!("invalid socket address {:?}", node.addr),
            );
        }
        if node.role != NodeRole::Primary {
            continue;
        }
        match primary {
            Some(first) => errs.push(
                format!("{path}.nodes[{i}].role"),
                format!(
                    "at most one node per database may be primary, and nodes[{first}] already is \
                     (role defaults to \"primary\"; set role = \"replica\" or \"auto\")"
                ),
            ),
            None => primary = Some(i),
        }
    }
    check_upstream_tls(&db.server_tls, &format!("{path}.server_tls"), errs);
    check_pool(&db.pool, &path, errs);
    check_topology(db, &path, errs);
}

/// Durations that would make health checks spin or failover never wait,
/// and function names that could never match.
fn check_topology(db: &DatabaseConfig, path: &str, errs: &mut Errors) {
    let h = &db.health;
    let positive = [
        ("health.interval", h.interval),
        ("health.timeout", h.timeout),
        ("health.ban_time", h.ban_time),
        ("health.max_ban_time", h.max_ban_time),
        ("failover_timeout", db.failover_timeout),
    ];
    for (name, value) in positive {
        if value.is_some_and(|d| d.0.is_zero()) {
            errs.push(format!("{path}.{name}"), "must be greater than 0");
        }
    }
    if let (Some(ban), Some(max)) = (h.ban_time, h.max_ban_time) {
        if max.0 < ban.0 {
            errs.push(
                format!("{path}.health.max_ban_time"),
                "must be at least health.ban_time",
            );
        }
    }
    if h.password.is_some() && h.user.is_none() {
        errs.push(
            format!("{path}.health.password"),
            "needs health.user (the role the probes log in as)",
        );
    }
    for (i, f) in db.read_only_functions.iter().enumerate() {
        let ok = !f.is_empty()
            && f.split('.').count() <= 2
            && f.split('.')
                .all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
        if !ok {
            errs.push(
                format!("{path}.read_only_functions[{i}]"),
                format!("{f:?} is not a function name (write name or schema.name)"),
            );
        }
    }
}

fn check_user(name: &str, user: &UserConfig, errs: &mut Errors) {
    let path = format!("postgres.users.{}", key(name));
    if name.is_empty() {
        errs.push(&path, "user name must not be empty");
    }
    if user.server_user.as_deref() == Some("") {
        errs.push(format!("{path}.server_user"), "must not be empty");
    }
    check_pool(&user.pool, &path, errs);
}

fn check_upstream_tls(tls: &UpstreamTls, path: &str, errs: &mut Errors) {
    match (&tls.client_cert, &tls.client_key) {
        (Some(_), None) => errs.push(
            format!("{path}.client_key"),
            "required when client_cert is set",
        ),
        (None, Some(_)) => errs.push(
            format!("{path}.client_cert"),
            "required when client_key is set",
        ),
        _ => {}
    }
    let files = [
        ("ca_file", &tls.ca_file),
        ("client_cert", &tls.client_cert),
        ("client_key", &tls.client_key),
    ];
    for (field, file) in files {
        if let Some(file) = file {
            check_file(file, &format!("{path}.{field}"), errs);
        }
    }
}

/// Per-layer range checks; `min_idle` against `pool_size` needs the layers
/// combined and is done by `check_min_idle`.
fn check_pool(pool: &PoolSettings, path: &str, errs: &mut Errors) {
    if let Some(n) = pool.pool_size {
        if !(1..=MAX_POOL_SIZE).contains(&n) {
            errs.push(
                format!("{path}.pool_size"),
                format!("must be between 1 and {MAX_POOL_SIZE}, got {n}"),
            );
        }
    }
    if let Some(t) = pool.idle_transaction_timeout {
        if !t.0.is_zero() && t.0 < MIN_IDLE_TRANSACTION_TIMEOUT {
            errs.push(
                format!("{path}.idle_transaction_timeout"),
                format!("must be 0 (never) or at least 1s, got \"{t}\""),
            );
        }
    }
    if let Some(size) = pool.max_message_size {
        if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&size.0) {
            errs.push(
                format!("{path}.max_message_size"),
                format!("must be between 1KiB and 1GiB, got \"{size}\""),
            );
        }
    }
}

/// `min_idle ≤ pool_size` for every combination a client can end up in,
/// reported once at the most general layer that breaks it.
fn check_min_idle(pg: &PostgresConfig, errs: &mut Errors) {
    let exceeds = |p: &PoolSettings| {
        let r = p.resolve();
        (r.min_idle > r.pool_size).then_some((r.min_idle, r.pool_size))
    };
    let message = |(idle, size): (usize, usize)| {
        format!("min_idle ({idle}) must not exceed pool_size ({size})")
    };
    let global = exceeds(&pg.pool);
    if let Some(bad) = global {
        errs.push("postgres", message(bad));
    }
    let mut seen: BTreeSet<(&str, (usize, usize))> = BTreeSet::new();
    for (db_name, db) in &pg.databases {
        let db_layer = db.pool.or(&pg.pool);
        let db_bad = exceeds(&db_layer);
        if let Some(bad) = db_bad.filter(|b| Some(*b) != global) {
            let path = format!("postgres.databases.{}", key(db_name));
            errs.push(path, message(bad));
        }
        for (user_name, user) in &pg.users {
            let Some(bad) = exceeds(&user.pool.or(&db_layer)) else {
                continue;
            };
            if Some(bad) == db_bad || !seen.insert((user_name.as_str(), bad)) {
                continue;
            }
            let path = format!("postgres.users.{}", key(user_name));
            errs.push(
                path,
                format!("{} (with database {db_name:?})", message(bad)),
            );
        }
    }
}

/// Whether each user's password can serve the auth method it ends up with
/// on every database. Reported once per (user, method).
fn check_passwords(pg: &PostgresConfig, errs: &mut Errors) {
    for (user_name, user) in &pg.users {
        let mut methods: Vec<AuthMethod> = Vec::new();
        let effective = pg.databases.values().map(|db| pg.auth_for(db, Some(user)));
        // With no databases nothing routes, but the file should still be sane.
        let without_db = pg
            .databases
            .is_empty()
            .then(|| user.auth.unwrap_or(pg.auth));
        for m in effective.chain(without_db) {
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        let path = format!("postgres.users.{}.password", key(user_name));
        for method in methods {
            if let Some(problem) = password_problem(method, user.password.as_ref()) {
                errs.push(&path, problem);
            }
        }
    }
}

/// What a stored password looks like, as Postgres's `pg_authid` would say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PasswordKind {
    Plain,
    Md5Hash,
    ScramVerifier,
    MalformedScram,
}

pub(crate) fn password_kind(p: &str) -> PasswordKind {
    if let Some(hex) = p.strip_prefix("md5") {
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return PasswordKind::Md5Hash;
        }
    }
    match p.strip_prefix("SCRAM-SHA-256$") {
        Some(rest) if scram_shape_ok(rest) => PasswordKind::ScramVerifier,
        Some(_) => PasswordKind::MalformedScram,
        None => PasswordKind::Plain,
    }
}

/// `<iterations>:<salt>$<StoredKey>:<ServerKey>`, each part non-empty.
fn scram_shape_ok(rest: &str) -> bool {
    let Some((iter_salt, keys)) = rest.split_once('$') else {
        return false;
    };
    let (Some((iter, salt)), Some((stored, server))) =
        (iter_salt.split_once(':'), keys.split_once(':'))
    else {
        return false;
    };
    iter.parse::<u32>().is_ok_and(|n| n > 0)
        && [salt, stored, server].iter().all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        })
}

fn password_problem(method: AuthMethod, password: Option<&Secret>) -> Option<String> {
    let name = match method {
        AuthMethod::Md5 => "md5",
        AuthMethod::ScramSha256 => "scram-sha-256",
        AuthMethod::Passthrough | AuthMethod::Trust => return None,
    };
    let Some(password) = password else {
        return Some(format!("auth {name} needs a password for this user"));
    };
    match (method, password_kind(password.expose())) {
        (_, PasswordKind::MalformedScram) => Some(
            "looks like a SCRAM verifier but is malformed \
             (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)"
                .into(),
        ),
        (AuthMethod::Md5, PasswordKind::ScramVerifier) => Some(
            "auth md5 needs a plaintext password or an md5 hash, not a SCRAM verifier \
             (a SCRAM verifier cannot check an md5 response)"
                .into(),
        ),
        (AuthMethod::ScramSha256, PasswordKind::Md5Hash) => Some(
            "auth scram-sha-256 needs a plaintext password or a SCRAM verifier, not an md5 hash"
                .into(),
        ),
        _ => None,
    }
}

/// `host:port` with a u16 port other than 0, a non-empty host, and IPv6 in
/// brackets (`[::1]:5432`). Host names are resolved later, at connect time.
pub(crate) fn valid_host_port(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    if !port.parse::<u16>().is_ok_and(|p| p != 0) {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
    }
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

fn check_file(file: &Path, path: &str, errs: &mut Errors) {
    match std::fs::metadata(file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => errs.push(path, format!("not a file: {}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            errs.push(path, format!("file not found: {}", file.display()))
        }
        Err(e) => errs.push(path, format!("cannot read {}: {e}", file.display())),
    }
}

mod http;
#[cfg(test)]
mod tests;
