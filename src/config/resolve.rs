//! Config → effective settings for one (database, user) pair: what the route
//! step of accept → parse → route → backend → respond asks once it knows
//! which database and user a client wants.
//!
//! Precedence is user > database > `[postgres]` > built-in, field by field,
//! so a user entry that only says `pool_mode = "session"` keeps every other
//! knob from its database.

use std::time::Duration;

use super::types::{
    AuthMethod, DatabaseConfig, PoolMode, PoolSettings, PostgresConfig, UserConfig,
};
use super::units::{ByteSize, Dur};

/// Built-in pool defaults, close to what a PgBouncer user expects.
pub mod builtin {
    use std::time::Duration;

    use super::PoolMode;

    pub const POOL_MODE: PoolMode = PoolMode::Transaction;
    pub const POOL_SIZE: usize = 20;
    pub const MIN_IDLE: usize = 0;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
    pub const SERVER_LIFETIME: Duration = Duration::from_secs(3600);
    /// Zero: clients may idle forever.
    pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::ZERO;
    pub const IDLE_TRANSACTION_TIMEOUT: Duration = Duration::ZERO;
    pub const MAX_MESSAGE_SIZE: u64 = 256 << 20;
    pub const SERVER_RESET_QUERY: &str = "DISCARD ALL";
    pub const MAX_PREPARED_STATEMENTS: usize = 200;
}

/// Pool knobs with every layer applied; zero durations already mapped to
/// `None` (disabled) and an empty reset query to `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPool {
    pub pool_mode: PoolMode,
    pub pool_size: usize,
    pub min_idle: usize,
    pub connect_timeout: Duration,
    pub checkout_timeout: Duration,
    pub server_idle_timeout: Option<Duration>,
    pub server_lifetime: Option<Duration>,
    pub client_idle_timeout: Option<Duration>,
    pub idle_transaction_timeout: Option<Duration>,
    pub max_message_size: usize,
    pub server_reset_query: Option<String>,
    pub max_prepared_statements: usize,
}

impl PoolSettings {
    /// The built-in defaults as a fully populated layer (what `attache check`
    /// prints under `[postgres]` when the file leaves a knob out).
    pub fn builtin() -> Self {
        PoolSettings {
            pool_mode: Some(builtin::POOL_MODE),
            pool_size: Some(builtin::POOL_SIZE),
            min_idle: Some(builtin::MIN_IDLE),
            connect_timeout: Some(Dur(builtin::CONNECT_TIMEOUT)),
            checkout_timeout: Some(Dur(builtin::CHECKOUT_TIMEOUT)),
            server_idle_timeout: Some(Dur(builtin::SERVER_IDLE_TIMEOUT)),
            server_lifetime: Some(Dur(builtin::SERVER_LIFETIME)),
            client_idle_timeout: Some(Dur(builtin::CLIENT_IDLE_TIMEOUT)),
            idle_transaction_timeout: Some(Dur(builtin::IDLE_TRANSACTION_TIMEOUT)),
            max_message_size: Some(ByteSize(builtin::MAX_MESSAGE_SIZE)),
            server_reset_query: Some(builtin::SERVER_RESET_QUERY.to_string()),
            max_prepared_statements: Some(builtin::MAX_PREPARED_STATEMENTS),
        }
    }

    /// Each field from `self` if set, else from `lower`.
    pub fn or(&self, lower: &PoolSettings) -> PoolSettings {
        PoolSettings {
            pool_mode: self.pool_mode.or(lower.pool_mode),
            pool_size: self.pool_size.or(lower.pool_size),
            min_idle: self.min_idle.or(lower.min_idle),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            checkout_timeout: self.checkout_timeout.or(lower.checkout_timeout),
            server_idle_timeout: self.server_idle_timeout.or(lower.server_idle_timeout),
            server_lifetime: self.server_lifetime.or(lower.server_lifetime),
            client_idle_timeout: self.client_idle_timeout.or(lower.client_idle_timeout),
            idle_transaction_timeout: self
                .idle_transaction_timeout
                .or(lower.idle_transaction_timeout),
            max_message_size: self.max_message_size.or(lower.max_message_size),
            server_reset_query: self
                .server_reset_query
                .clone()
                .or_else(|| lower.server_reset_query.clone()),
            max_prepared_statements: self
                .max_prepared_statements
                .or(lower.max_prepared_statements),
        }
    }

    /// Applies the built-in defaults and the "zero / empty means disabled"
    /// rules.
    pub fn resolve(&self) -> ResolvedPool {
        let s = self.or(&PoolSettings::builtin());
        let dur = |d: Option<Dur>, fallback: Duration| d.map_or(fallback, |d| d.0);
        ResolvedPool {
            pool_mode: s.pool_mode.unwrap_or(builtin::POOL_MODE),
            pool_size: s.pool_size.unwrap_or(builtin::POOL_SIZE),
            min_idle: s.min_idle.unwrap_or(builtin::MIN_IDLE),
            connect_timeout: dur(s.connect_timeout, builtin::CONNECT_TIMEOUT),
            checkout_timeout: dur(s.checkout_timeout, builtin::CHECKOUT_TIMEOUT),
            server_idle_timeout: s.server_idle_timeout.and_then(Dur::non_zero),
            server_lifetime: s.server_lifetime.and_then(Dur::non_zero),
            client_idle_timeout: s.client_idle_timeout.and_then(Dur::non_zero),
            idle_transaction_timeout: s.idle_transaction_timeout.and_then(Dur::non_zero),
            max_message_size: s
                .max_message_size
                .map_or(builtin::MAX_MESSAGE_SIZE, |b| b.0)
                .try_into()
                .unwrap_or(usize::MAX),
            server_reset_query: s.server_reset_query.filter(|q| !q.trim().is_empty()),
            max_prepared_statements: s
                .max_prepared_statements
                .unwrap_or(builtin::MAX_PREPARED_STATEMENTS),
        }
    }
}

impl PostgresConfig {
    /// Pool settings for clients of `db` logging in as `user` (`None`: a user
    /// without an entry in `[postgres.users]`).
    pub fn resolve_pool(&self, db: &DatabaseConfig, user: Option<&UserConfig>) -> ResolvedPool {
        let db_layer = db.pool.or(&self.pool);
        match user {
            Some(u) => u.pool.or(&db_layer).resolve(),
            None => db_layer.resolve(),
        }
    }

    /// The database entry serving `name`: the exact key first, then `"*"`.
    /// Returns the key that matched (needed by [`DatabaseConfig::server_dbname`]).
    pub fn database(&self, name: &str) -> Option<(&str, &DatabaseConfig)> {
        self.databases
            .get_key_value(name)
            .or_else(|| self.databases.get_key_value("*"))
            .map(|(k, db)| (k.as_str(), db))
    }

    /// How to check a client of `db` logging in as `user`: user > database >
    /// `[postgres]`.
    pub fn auth_for(&self, db: &DatabaseConfig, user: Option<&UserConfig>) -> AuthMethod {
        user.and_then(|u| u.auth).or(db.auth).unwrap_or(self.auth)
    }
}

impl DatabaseConfig {
    /// The database name to ask the server for: `dbname` if set, else the key,
    /// else (for `"*"`) the name the client requested.
    pub fn server_dbname<'a>(&'a self, key: &'a str, requested: &'a str) -> &'a str {
        match (&self.dbname, key) {
            (Some(name), _) => name,
            (None, "*") => requested,
            (None, key) => key,
        }
    }
}

#[cfg(test)]
mod tests;
