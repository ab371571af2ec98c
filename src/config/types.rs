//! Config → the serde schema of `attache.toml`: every struct here is what a
//! user writes. Loading, `${ENV}` substitution and validation live beside it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::topology::{Balance, Consistency, HealthConfig, PrimaryReads, SplitMode};
use super::units::{ByteSize, Dur};

/// The whole file. Every section is optional; `attache` refuses to start a
/// config that serves nothing. With no file at all, `builtin_default()`
/// serves: a Postgres listener on 127.0.0.1:6432 forwarding to
/// 127.0.0.1:5432 with passthrough auth.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub general: General,
    pub postgres: Option<PostgresConfig>,
    pub redis: Option<super::redis::RedisConfig>,
    /// HTTP egress.
    pub http: Option<super::http::HttpConfig>,
    /// No section, no admin server.
    pub admin: Option<AdminConfig>,
}

/// `[admin]`: the HTTP endpoint for health checks, Prometheus metrics and
/// status. Separate from the proxied listeners so an orchestrator can probe
/// it without speaking Postgres or Redis.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Default `127.0.0.1:15001`.
    #[serde(default = "defaults::admin_listen")]
    pub listen: String,
    /// When set, every endpoint but `/healthz` wants
    /// `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    /// How long in-flight work may finish after SIGTERM/SIGINT.
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: Dur,
    /// Runtime worker threads; 0 (the default) means half the cores, at
    /// least one. A sidecar shares its machine with the app, and one thread
    /// per two cores avoids the cross-thread wake-ups that cost latency
    /// when the proxy is not the bottleneck.
    #[serde(default)]
    pub worker_threads: usize,
}

impl Default for General {
    fn default() -> Self {
        Self {
            shutdown_timeout: defaults::shutdown_timeout(),
            worker_threads: 0,
        }
    }
}

/// `[postgres]`: one listener and the databases behind it.
///
/// Read through the flat twin `raw::PostgresToml` (defaults and the flat pool
/// keys live there): `#[serde(flatten)]` would lose toml's error locations.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(from = "super::raw::PostgresToml", into = "super::raw::PostgresToml")]
pub struct PostgresConfig {
    /// Default `127.0.0.1:6432`.
    pub listen: String,
    /// Local (client-facing) TLS. Without it SSLRequest is answered `N`.
    pub tls: Option<LocalTls>,
    /// Default 10 000.
    pub max_client_connections: usize,
    /// Client authentication method when the user entry does not say.
    pub auth: AuthMethod,
    /// Pool defaults for every database and user (flat keys in the TOML).
    pub pool: PoolSettings,
    /// Keyed by the database name clients ask for; `"*"` matches any name.
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// Keyed by user name.
    pub users: BTreeMap<String, UserConfig>,
    /// Users allowed into the admin console, database `attache` (PgBouncer:
    /// admin_users). Each must have a `[postgres.users]` entry with a
    /// password unless their auth method is `trust`.
    pub admin_users: Vec<String>,
}

/// `[postgres.databases.NAME]`, read through `raw::DatabaseToml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(from = "super::raw::DatabaseToml", into = "super::raw::DatabaseToml")]
pub struct DatabaseConfig {
    /// Database name on the server; defaults to the key (or, for `"*"`, to the
    /// name the client asked for).
    pub dbname: Option<String>,
    pub nodes: Vec<NodeConfig>,
    /// TLS from Attaché to the servers of this database.
    pub server_tls: UpstreamTls,
    /// Overrides the `[postgres]` default client auth method for this database.
    pub auth: Option<AuthMethod>,
    /// Overrides of the `[postgres]` pool knobs (flat keys in the TOML).
    pub pool: PoolSettings,
    /// Whether reads may go to replicas.
    pub read_write_split: SplitMode,
    pub consistency: Consistency,
    pub balance: Balance,
    pub primary_reads: PrimaryReads,
    /// How long new transactions wait for a new primary. Default 30s.
    pub failover_timeout: Option<Dur>,
    /// Functions (besides PostgreSQL's read-only built-ins) that a read may call.
    pub read_only_functions: Vec<String>,
    /// `[postgres.databases.NAME.health]`.
    pub health: HealthConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `host:port`; host may be a name resolved at connect time.
    pub addr: String,
    #[serde(default)]
    pub role: NodeRole,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    #[default]
    Primary,
    Replica,
    Auto,
}

/// `[postgres.users.NAME]`, read through `raw::UserToml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(from = "super::raw::UserToml", into = "super::raw::UserToml")]
pub struct UserConfig {
    /// Plain text, a `SCRAM-SHA-256$…` verifier or an `md5…` hash. Checks the
    /// client; also used upstream when `server_password` is absent and it can be.
    pub password: Option<Secret>,
    /// Role name on the server; defaults to the user name.
    pub server_user: Option<String>,
    pub server_password: Option<Secret>,
    pub auth: Option<AuthMethod>,
    /// Overrides of the database and `[postgres]` pool knobs (flat keys).
    pub pool: PoolSettings,
}

/// How Attaché checks a client's credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// Ask the client for its password and let the server check it.
    #[default]
    Passthrough,
    Trust,
    Md5,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolMode {
    Session,
    #[default]
    Transaction,
}

/// Pool knobs. Every field is optional so the same struct serves as default
/// (`[postgres]`) and override (database, user); see `ResolvedPool`. Written
/// flat in the TOML: the sections' twins in `raw.rs` list these fields inline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    pub pool_mode: Option<PoolMode>,
    pub pool_size: Option<usize>,
    pub min_idle: Option<usize>,
    pub connect_timeout: Option<Dur>,
    pub checkout_timeout: Option<Dur>,
    pub server_idle_timeout: Option<Dur>,
    pub server_lifetime: Option<Dur>,
    pub client_idle_timeout: Option<Dur>,
    /// A client idle inside a transaction longer than this is ended (and
    /// its server connection closed); 0 = never (PgBouncer's default).
    pub idle_transaction_timeout: Option<Dur>,
    pub max_message_size: Option<ByteSize>,
    /// Run on a server connection when a session-mode client releases it.
    pub server_reset_query: Option<String>,
    /// Bound of each server connection's prepared-statement cache.
    pub max_prepared_statements: Option<usize>,
}

/// `server_tls = { sslmode = "verify-full", ca_file = "…" }`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    #[serde(default)]
    pub sslmode: SslMode,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// SNI and the name verified by verify-full; defaults to the node's host.
    pub server_name: Option<String>,
}

/// libpq's sslmode values, with libpq's meanings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Client-facing TLS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A string that never appears in logs, `Debug` output or `attache check`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

pub(crate) mod defaults {
    use super::Dur;
    use std::time::Duration;

    pub fn shutdown_timeout() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub fn pg_listen() -> String {
        "127.0.0.1:6432".into()
    }
    pub fn max_client_connections() -> usize {
        10_000
    }
    pub fn admin_listen() -> String {
        "127.0.0.1:15001".into()
    }
}
