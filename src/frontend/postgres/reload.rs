//! Config → route (Postgres): applying a new `[postgres]` section to a
//! running listener without dropping a client.
//!
//! The routing state (databases, users, clusters, TLS) is swapped whole, so
//! a login sees either the old config or the new one. Pools whose settings,
//! node, server database, server user or credentials changed are retired:
//! sessions move to fresh pools at their next transaction (they re-route
//! when the context's generation moves), and a retired pool's connections
//! close when its last session lets go. Clusters whose nodes and topology
//! settings are unchanged are kept, with their health state and probes.

use std::sync::Arc;

use tracing::info;

use super::context::{PgContext, PgState};
use crate::config::types::PostgresConfig;
use crate::core::pg::PgPool;
use crate::net::tls::TlsError;

/// What a reload changed, for the log and the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgReload {
    pub pools_retired: usize,
    pub clusters_kept: usize,
    pub clusters_new: usize,
}

impl std::fmt::Display for PgReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgres: {} pool(s) replaced, {} cluster(s) kept, {} new",
            self.pools_retired, self.clusters_kept, self.clusters_new
        )
    }
}

impl PgContext {
    /// Applies `config` (already validated). Fails only if its TLS files
    /// cannot be loaded; then nothing changes.
    pub fn reload(&self, config: PostgresConfig) -> Result<PgReload, TlsError> {
        let old = self.state();
        let new = PgState::build(config, Some(&old))?;
        let kept = new
            .clusters
            .iter()
            .filter(|(k, c)| old.clusters.get(*k).is_some_and(|o| Arc::ptr_eq(o, c)))
            .count();
        let summary = PgReload {
            pools_retired: self
                .pools
                .retire(|p| !still_valid(p, &old, &new), |p| carries_secret(p, &new)),
            clusters_kept: kept,
            clusters_new: new.clusters.len() - kept,
        };
        if let Ok(mut v) = self.verifiers.lock() {
            v.clear();
        }
        self.swap_state(new);
        self.start_configured_probes();
        info!(%summary, "postgres config reloaded");
        Ok(summary)
    }
}

/// Whether `pool` would be built the same way under the new config.
fn still_valid(pool: &PgPool, old: &PgState, new: &PgState) -> bool {
    let o = &pool.origin;
    let (Some(db), Some(old_db)) = (
        new.config.databases.get(&o.db_key),
        old.config.databases.get(&o.db_key),
    ) else {
        return false;
    };
    let user = new.config.users.get(&o.client_user);
    let old_user = old.config.users.get(&o.client_user);
    let server_user = user
        .and_then(|u| u.server_user.clone())
        .unwrap_or_else(|| o.client_user.clone());
    let same_secret = user.map(|u| (&u.password, &u.server_password))
        == old_user.map(|u| (&u.password, &u.server_password));
    db.nodes.iter().any(|n| n.addr == pool.key.node)
        && db.server_dbname(&o.db_key, &pool.key.database) == pool.key.database
        && server_user == pool.key.user
        && db.server_tls == old_db.server_tls
        && same_secret
        && new.config.resolve_pool(db, user) == pool.settings
}

/// A password passthrough auth learned is reused by the replacement pool
/// unless the new config now names a password for that user.
fn carries_secret(pool: &PgPool, new: &PgState) -> bool {
    new.config
        .users
        .get(&pool.origin.client_user)
        .is_none_or(|u| u.password.is_none() && u.server_password.is_none())
}
