//! Config → the on-disk TOML shape of the three sections that carry pool
//! knobs (`[postgres]`, databases, users), read before anything on the
//! accept → parse → route → backend → respond path runs.
//!
//! Why this file exists: the public structs in `types.rs` group the pool knobs
//! in a `pool: PoolSettings` field, but a PgBouncer user writes them flat
//! (`pool_size = 20` right under `[postgres]`). `#[serde(flatten)]` would do
//! that, yet it buffers the table and toml then loses the key and line of an
//! error (`invalid type: string "x", expected usize` pointing at the section
//! header). So each section is read into a flat twin declared here with
//! `deny_unknown_fields`, and converted with `From` both ways. The conversions
//! use exhaustive struct literals, so a field added to one side and not the
//! other fails to compile.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::PostgresConfig;
use super::types::{
    defaults, AuthMethod, Balance, Consistency, DatabaseConfig, HealthConfig, LocalTls, NodeConfig,
    PoolMode, PoolSettings, PrimaryReads, Secret, SplitMode, UpstreamTls, UserConfig,
};
use super::units::{ByteSize, Dur};

/// Declares `$raw` with the given fields plus every `PoolSettings` field
/// inline, and the `From` conversions to and from `$public`.
macro_rules! flat_pool_section {
    (
        $(#[$meta:meta])*
        $raw:ident <-> $public:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $raw {
            $( $(#[$fmeta])* $field: $ty, )*
            pool_mode: Option<PoolMode>,
            pool_size: Option<usize>,
            min_idle: Option<usize>,
            connect_timeout: Option<Dur>,
            checkout_timeout: Option<Dur>,
            server_idle_timeout: Option<Dur>,
            server_lifetime: Option<Dur>,
            client_idle_timeout: Option<Dur>,
            idle_transaction_timeout: Option<Dur>,
            max_message_size: Option<ByteSize>,
            server_reset_query: Option<String>,
            max_prepared_statements: Option<usize>,
        }

        impl From<$raw> for $public {
            fn from(raw: $raw) -> Self {
                $public {
                    $( $field: raw.$field, )*
                    pool: PoolSettings {
                        pool_mode: raw.pool_mode,
                        pool_size: raw.pool_size,
                        min_idle: raw.min_idle,
                        connect_timeout: raw.connect_timeout,
                        checkout_timeout: raw.checkout_timeout,
                        server_idle_timeout: raw.server_idle_timeout,
                        server_lifetime: raw.server_lifetime,
                        client_idle_timeout: raw.client_idle_timeout,
                        idle_transaction_timeout: raw.idle_transaction_timeout,
                        max_message_size: raw.max_message_size,
                        server_reset_query: raw.server_reset_query,
                        max_prepared_statements: raw.max_prepared_statements,
                    },
                }
            }
        }

        impl From<$public> for $raw {
            fn from(public: $public) -> Self {
                let PoolSettings {
                    pool_mode,
                    pool_size,
                    min_idle,
                    connect_timeout,
                    checkout_timeout,
                    server_idle_timeout,
                    server_lifetime,
                    client_idle_timeout,
                    idle_transaction_timeout,
                    max_message_size,
                    server_reset_query,
                    max_prepared_statements,
                } = public.pool;
                $raw {
                    $( $field: public.$field, )*
                    pool_mode,
                    pool_size,
                    min_idle,
                    connect_timeout,
                    checkout_timeout,
                    server_idle_timeout,
                    server_lifetime,
                    client_idle_timeout,
                    idle_transaction_timeout,
                    max_message_size,
                    server_reset_query,
                    max_prepared_statements,
                }
            }
        }
    };
}

flat_pool_section! {
    /// `[postgres]` as written.
    PostgresToml <-> PostgresConfig {
        #[serde(default = "defaults::pg_listen")]
        listen: String,
        tls: Option<LocalTls>,
        #[serde(default = "defaults::max_client_connections")]
        max_client_connections: usize,
        #[serde(default)]
        auth: AuthMethod,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        admin_users: Vec<String>,
        #[serde(default)]
        databases: BTreeMap<String, DatabaseConfig>,
        #[serde(default)]
        users: BTreeMap<String, UserConfig>,
    }
}

flat_pool_section! {
    /// `[postgres.databases.NAME]` as written.
    DatabaseToml <-> DatabaseConfig {
        dbname: Option<String>,
        nodes: Vec<NodeConfig>,
        #[serde(default)]
        server_tls: UpstreamTls,
        auth: Option<AuthMethod>,
        #[serde(default)]
        read_write_split: SplitMode,
        #[serde(default)]
        consistency: Consistency,
        #[serde(default)]
        balance: Balance,
        #[serde(default)]
        primary_reads: PrimaryReads,
        failover_timeout: Option<Dur>,
        #[serde(default)]
        read_only_functions: Vec<String>,
        #[serde(default)]
        health: HealthConfig,
    }
}

flat_pool_section! {
    /// `[postgres.users.NAME]` as written.
    UserToml <-> UserConfig {
        password: Option<Secret>,
        server_user: Option<String>,
        server_password: Option<Secret>,
        auth: Option<AuthMethod>,
    }
}
