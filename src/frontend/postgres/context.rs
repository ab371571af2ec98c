//! Route (Postgres): what every session of one listener shares: the config,
//! the pools, the cancel registry and TLS settings, plus the lookup from a
//! client's (database, user) to its pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use attache_postgres_protocol::auth::scram::ScramVerifier;
use attache_postgres_protocol::sqlstate;
use rand::RngCore;

use super::error::FrontendError;
use crate::config::types::{AuthMethod, DatabaseConfig, NodeRole, PostgresConfig, UserConfig};
use crate::core::pg::conn::ServerSecret;
use crate::core::pg::{CancelRegistry, PgPool, PoolKey, Pools, ServerTarget};
use crate::net::tls::{self, TlsError};

pub struct PgContext {
    pub config: Arc<PostgresConfig>,
    pub pools: Pools,
    pub cancel: Arc<CancelRegistry>,
    pub local_tls: Option<Arc<rustls::ServerConfig>>,
    upstream_tls: HashMap<String, Option<Arc<rustls::ClientConfig>>>,
    /// SCRAM verifiers derived from plaintext passwords, computed once.
    verifiers: Mutex<HashMap<String, ScramVerifier>>,
}

/// What a session needs to know about the pool it was routed to.
pub struct Route {
    pub pool: Arc<PgPool>,
    pub auth: AuthMethod,
    pub user: Option<UserConfig>,
}

impl PgContext {
    pub fn new(config: PostgresConfig) -> Result<Self, TlsError> {
        let local_tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let mut upstream_tls = HashMap::new();
        for (name, db) in &config.databases {
            upstream_tls.insert(name.clone(), tls::client_config(&db.server_tls)?);
        }
        Ok(Self {
            config: Arc::new(config),
            pools: Pools::default(),
            cancel: Arc::new(CancelRegistry::default()),
            local_tls,
            upstream_tls,
            verifiers: Mutex::new(HashMap::new()),
        })
    }

    /// Finds (or builds) the pool for a client's database and user.
    pub fn route(&self, database: &str, user: &str) -> Result<Route, FrontendError> {
        let (key, db) = self.config.database(database).ok_or_else(|| {
            FrontendError::refused(
                sqlstate::INVALID_CATALOG_NAME,
                format!("database \"{database}\" is not configured in Attaché (add [postgres.databases.{database}] or a \"*\" entry)"),
            )
        })?;
        let user_cfg = self.config.users.get(user);
        let auth = self.config.auth_for(db, user_cfg);
        if auth != AuthMethod::Passthrough && auth != AuthMethod::Trust && user_cfg.is_none() {
            return Err(FrontendError::refused(
                sqlstate::INVALID_PASSWORD,
                format!("password authentication failed for user \"{user}\""),
            ));
        }
        let settings = self.config.resolve_pool(db, user_cfg);
        let node = primary_node(db);
        let server_db = db.server_dbname(key, database).to_owned();
        let server_user = user_cfg
            .and_then(|u| u.server_user.clone())
            .unwrap_or_else(|| user.to_owned());
        let pool_key = PoolKey {
            node: node.to_owned(),
            database: server_db.clone(),
            user: server_user.clone(),
        };
        let secret = user_cfg.and_then(|u| {
            u.server_password
                .as_ref()
                .or(u.password.as_ref())
                .and_then(ServerSecret::from_configured)
        });
        let tls_cfg = self.upstream_tls.get(key).cloned().flatten();
        let pool = self.pools.get_or_insert(&pool_key, || {
            let host = host_of(node);
            let tls = match tls_cfg {
                Some(c) => Some((c, tls::server_name(&db.server_tls, &host)?)),
                None => None,
            };
            let target = ServerTarget {
                addr: node.to_owned(),
                host,
                dbname: server_db,
                user: server_user,
                sslmode: db.server_tls.sslmode,
                tls,
                connect_timeout: settings.connect_timeout,
                max_message_size: settings.max_message_size,
            };
            PgPool::new(pool_key.clone(), target, secret, settings)
                .map_err(|e| FrontendError::protocol(format!("cannot build pool: {e}")))
        })?;
        Ok(Route {
            pool,
            auth,
            user: user_cfg.cloned(),
        })
    }

    /// The SCRAM verifier for a configured user: the configured one, or one
    /// derived once from a plaintext password.
    pub fn scram_verifier(&self, user: &str, password: &str) -> Option<ScramVerifier> {
        if let Ok(v) = ScramVerifier::parse(password) {
            return Some(v);
        }
        let mut cache = match self.verifiers.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if let Some(v) = cache.get(user) {
            return Some(v.clone());
        }
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let v = ScramVerifier::from_password(password, &salt, 4096).ok()?;
        cache.insert(user.to_owned(), v.clone());
        Some(v)
    }
}

/// Until topology lands (replicas, `auto` roles), sessions use the primary:
/// the node marked `primary`, else the first one.
fn primary_node(db: &DatabaseConfig) -> &str {
    db.nodes
        .iter()
        .find(|n| n.role == NodeRole::Primary)
        .or(db.nodes.first())
        .map(|n| n.addr.as_str())
        .unwrap_or("127.0.0.1:5432")
}

fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}
