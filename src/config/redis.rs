//! Config → the `[redis]` section: one listener, the servers behind it and
//! the limits a client cannot push past.

use serde::{Deserialize, Serialize};

use super::types::Secret;
use super::units::{ByteSize, Dur};

/// `[redis]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// How the servers are organised. Only `single` exists so far.
    #[serde(default)]
    pub mode: RedisMode,
    /// `host:port` of each server; in `single` mode, the primary.
    pub nodes: Vec<String>,
    /// ACL user Attaché logs in as (Redis 6+); with only `password`, the
    /// `default` user.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// When set, clients must `AUTH` (or `HELLO … AUTH`) with it first.
    pub client_password: Option<Secret>,
    /// Multiplexed connections per server, shared by every client.
    #[serde(default = "defaults::connections_per_node")]
    pub connections_per_node: usize,
    /// Commands answered with an error instead of being run.
    #[serde(default)]
    pub deny_commands: Vec<String>,
    #[serde(default = "defaults::command_timeout")]
    pub command_timeout: Dur,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "defaults::max_client_connections")]
    pub max_client_connections: usize,
    /// Requests one client may have in flight before Attaché stops reading
    /// from it.
    #[serde(default = "defaults::max_pipeline")]
    pub max_pipeline: usize,
    /// Largest request or reply (Redis's own `proto-max-bulk-len` is 512 MB).
    #[serde(default = "defaults::max_request_size")]
    pub max_request_size: ByteSize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisMode {
    #[default]
    Single,
}

pub(crate) mod defaults {
    use super::{ByteSize, Dur};
    use std::time::Duration;

    pub fn listen() -> String {
        "127.0.0.1:6380".into()
    }
    pub fn connections_per_node() -> usize {
        2
    }
    pub fn command_timeout() -> Dur {
        Dur(Duration::from_secs(5))
    }
    pub fn connect_timeout() -> Dur {
        Dur(Duration::from_secs(3))
    }
    pub fn max_client_connections() -> usize {
        10_000
    }
    pub fn max_pipeline() -> usize {
        10_000
    }
    pub fn max_request_size() -> ByteSize {
        ByteSize(512 << 20)
    }
}
