//! Route (Postgres): what every session of one listener shares: the config,
//! the pools, each database's cluster and statement classifier, the cancel
//! registry and TLS settings, plus the lookup from a client's (database,
//! user) to its pools (one per node).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use attache_postgres_protocol::auth::scram::ScramVerifier;
use attache_postgres_protocol::readwrite::Classifier;
use attache_postgres_protocol::sqlstate;
use rand::RngCore;

use super::error::FrontendError;
use crate::config::resolve::ResolvedPool;
use crate::config::topology::Topology;
use crate::config::types::{AuthMethod, DatabaseConfig, NodeRole, PostgresConfig, UserConfig};
use crate::core::pg::cluster::monitor::{self, ProbeLogin};
use crate::core::pg::conn::ServerSecret;
use crate::core::pg::pool::PoolOrigin;
use crate::core::pg::{CancelRegistry, Cluster, PgPool, PoolKey, Pools, ServerTarget};

/// Statement texts each database's classifier remembers.
const CLASSIFIER_CACHE: usize = 10_000;
use crate::net::tls::{self, TlsError};

pub struct PgContext {
    /// Everything a reload replaces, swapped whole (see `reload.rs`).
    state: RwLock<Arc<PgState>>,
    /// Bumped by each reload; sessions re-route when it moved.
    generation: AtomicU64,
    pub pools: Pools,
    pub cancel: Arc<CancelRegistry>,
    /// Logged-in clients, for the admin console.
    pub clients: Arc<super::clients::ClientRegistry>,
    /// SCRAM verifiers derived from plaintext passwords, computed once,
    /// by user and password: a derivation that began before a reload (or
    /// for a console admin sharing a pool user's name) is never taken for
    /// another password.
    pub(super) verifiers: Mutex<HashMap<(String, String), ScramVerifier>>,
    pub(super) pause_state: super::pause::PauseState,
    /// The process's reloader, for the admin console's RELOAD (weak: the
    /// reloader holds this context).
    reloader: std::sync::OnceLock<std::sync::Weak<crate::reload::Reloader>>,
}

/// One config's worth of routing state.
pub struct PgState {
    pub config: Arc<PostgresConfig>,
    pub local_tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) upstream_tls: HashMap<String, Option<Arc<rustls::ClientConfig>>>,
    /// Keyed like `config.databases`.
    pub(super) clusters: HashMap<String, Arc<Cluster>>,
    classifiers: HashMap<String, Arc<Classifier>>,
}

impl PgState {
    /// Builds the state for `config`, keeping `previous`'s clusters (their
    /// health, bans and probes) and classifiers (their caches) where the
    /// database's nodes and settings did not change.
    pub(super) fn build(
        config: PostgresConfig,
        previous: Option<&PgState>,
    ) -> Result<Self, TlsError> {
        let local_tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let mut upstream_tls = HashMap::new();
        let mut clusters = HashMap::new();
        let mut classifiers = HashMap::new();
        for (name, db) in &config.databases {
            upstream_tls.insert(name.clone(), tls::client_config(&db.server_tls)?);
            let nodes: Vec<_> = db.nodes.iter().map(|n| (n.addr.clone(), n.role)).collect();
            let topology = Topology::resolve(db);
            let kept = previous.and_then(|p| p.clusters.get(name)).filter(|c| {
                c.topology == topology
                    && c.nodes().len() == nodes.len()
                    && c.nodes()
                        .iter()
                        .zip(&nodes)
                        .all(|(n, (addr, role))| n.addr == *addr && n.configured == *role)
            });
            let cluster = match kept {
                Some(c) => c.clone(),
                None => Arc::new(Cluster::new(name, &nodes, topology.clone())),
            };
            let classifier = previous
                .and_then(|p| Some((p.classifiers.get(name)?, p.clusters.get(name)?)))
                .filter(|(_, c)| c.topology.read_only_functions == topology.read_only_functions)
                .map(|(cl, _)| cl.clone())
                .unwrap_or_else(|| {
                    Arc::new(Classifier::new(
                        topology.read_only_functions.clone(),
                        CLASSIFIER_CACHE,
                    ))
                });
            classifiers.insert(name.clone(), classifier);
            clusters.insert(name.clone(), cluster);
        }
        Ok(PgState {
            config: Arc::new(config),
            local_tls,
            upstream_tls,
            clusters,
            classifiers,
        })
    }
}

/// What a session needs to know about where it was routed.
pub struct Route {
    /// The `[postgres.databases]` key that matched (PAUSE names these).
    pub db_key: String,
    /// The pool of the configured primary (or first) node: login checks and
    /// the greeting use it.
    pub pool: Arc<PgPool>,
    /// One pool per node, in the cluster's node order.
    pub pools: Arc<[Arc<PgPool>]>,
    pub cluster: Arc<Cluster>,
    pub classifier: Arc<Classifier>,
    pub auth: AuthMethod,
    pub user: Option<UserConfig>,
}

impl Route {
    /// Passthrough auth learned the password: every node's pool uses it.
    pub fn set_secret(&self, secret: Option<ServerSecret>) {
        for p in self.pools.iter() {
            p.set_secret(secret.clone());
        }
    }

    /// Starts the cluster's health probes (once), logging in as the
    /// configured probe user or else as this route's user.
    pub fn start_monitor(&self) {
        if self.cluster.monitored() {
            return;
        }
        let t = &self.cluster.topology;
        let mut targets: Vec<ServerTarget> =
            self.pools.iter().map(|p| p.target().clone()).collect();
        let mut secret = self.pool.secret();
        if let Some(user) = &t.probe_user {
            for target in &mut targets {
                target.user = user.clone();
            }
            secret = t
                .probe_password
                .as_ref()
                .and_then(ServerSecret::from_configured);
        }
        for target in &mut targets {
            target.connect_timeout = target.connect_timeout.min(t.timeout);
        }
        monitor::start(&self.cluster, ProbeLogin { targets, secret });
    }
}

impl PgContext {
    pub fn new(config: PostgresConfig) -> Result<Self, TlsError> {
        Ok(Self {
            state: RwLock::new(Arc::new(PgState::build(config, None)?)),
            generation: AtomicU64::new(0),
            pools: Pools::default(),
            cancel: Arc::new(CancelRegistry::default()),
            clients: Default::default(),
            verifiers: Mutex::new(HashMap::new()),
            pause_state: Default::default(),
            reloader: std::sync::OnceLock::new(),
        })
    }

    /// The routing state in force now.
    pub fn state(&self) -> Arc<PgState> {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(super) fn swap_state(&self, state: PgState) {
        let mut s = match self.state.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        *s = Arc::new(state);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_reloader(&self, r: std::sync::Weak<crate::reload::Reloader>) {
        let _ = self.reloader.set(r);
    }

    /// Re-reads the config file, as SIGHUP does.
    pub fn reload_from_source(&self) -> Result<crate::reload::ReloadOutcome, String> {
        let r = self
            .reloader
            .get()
            .and_then(|w| w.upgrade())
            .ok_or("reload is not available in this process")?;
        r.reload_from_source().map_err(|e| e.to_string())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> Arc<PostgresConfig> {
        self.state().config.clone()
    }

    /// Finds (or builds) the pool for a client's database and user.
    pub fn route(&self, database: &str, user: &str) -> Result<Route, FrontendError> {
        let state = self.state();
        let config = &state.config;
        let (key, db) = config.database(database).ok_or_else(|| {
            FrontendError::refused(
                sqlstate::INVALID_CATALOG_NAME,
                format!("database \"{database}\" is not configured in Attaché (add [postgres.databases.{database}] or a \"*\" entry)"),
            )
        })?;
        let user_cfg = config.users.get(user);
        let auth = config.auth_for(db, user_cfg);
        if auth != AuthMethod::Passthrough && auth != AuthMethod::Trust && user_cfg.is_none() {
            return Err(FrontendError::refused(
                sqlstate::INVALID_PASSWORD,
                format!("password authentication failed for user \"{user}\""),
            ));
        }
        let settings = config.resolve_pool(db, user_cfg);
        let server_db = db.server_dbname(key, database).to_owned();
        let server_user = user_cfg
            .and_then(|u| u.server_user.clone())
            .unwrap_or_else(|| user.to_owned());
        let secret = user_cfg.and_then(|u| {
            u.server_password
                .as_ref()
                .or(u.password.as_ref())
                .and_then(ServerSecret::from_configured)
        });
        let login = PoolLogin {
            state: &state,
            client_user: user,
            key,
            db,
            database: &server_db,
            user: &server_user,
            secret: &secret,
            settings: &settings,
        };
        let pools: Vec<Arc<PgPool>> = db
            .nodes
            .iter()
            .map(|n| self.node_pool(&login, &n.addr))
            .collect::<Result<_, _>>()?;
        if secret.is_none() {
            // Passthrough: a password one node's pool learned serves every
            // node (a node added by a reload starts without one).
            if let Some(learned) = pools.iter().find_map(|p| p.secret()) {
                for p in pools.iter().filter(|p| p.secret().is_none()) {
                    p.set_secret(Some(learned.clone()));
                }
            }
        }
        let first = primary_index(db);
        let (Some(cluster), Some(classifier), Some(pool)) = (
            state.clusters.get(key),
            state.classifiers.get(key),
            pools.get(first),
        ) else {
            return Err(FrontendError::protocol(format!(
                "database \"{database}\" has no nodes"
            )));
        };
        Ok(Route {
            db_key: key.to_owned(),
            pool: pool.clone(),
            pools: pools.clone().into(),
            cluster: cluster.clone(),
            classifier: classifier.clone(),
            auth,
            user: user_cfg.cloned(),
        })
    }

    /// The pool for one node of a route, built on first use.
    fn node_pool(&self, login: &PoolLogin<'_>, node: &str) -> Result<Arc<PgPool>, FrontendError> {
        let pool_key = PoolKey {
            node: node.to_owned(),
            database: login.database.to_owned(),
            user: login.user.to_owned(),
        };
        let tls_cfg = login.state.upstream_tls.get(login.key).cloned().flatten();
        let db = login.db;
        self.pools.get_or_insert(&pool_key, || {
            let host = host_of(node);
            let tls = match tls_cfg {
                Some(c) => Some((c, tls::server_name(&db.server_tls, &host)?)),
                None => None,
            };
            let target = ServerTarget {
                addr: node.to_owned(),
                host,
                dbname: login.database.to_owned(),
                user: login.user.to_owned(),
                sslmode: db.server_tls.sslmode,
                tls,
                connect_timeout: login.settings.connect_timeout,
                max_message_size: login.settings.max_message_size,
            };
            let origin = PoolOrigin {
                db_key: login.key.to_owned(),
                client_user: login.client_user.to_owned(),
            };
            Ok::<_, FrontendError>(PgPool::new(
                pool_key.clone(),
                origin,
                target,
                login.secret.clone(),
                login.settings.clone(),
            ))
        })
    }

    /// Every database's cluster, by config key (status and metrics).
    pub fn clusters(&self) -> Vec<(String, Arc<Cluster>)> {
        let mut v: Vec<_> = self
            .state()
            .clusters
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The SCRAM verifier for a configured user: the configured one, or one
    /// derived once from a plaintext password. The derivation (PBKDF2, some
    /// milliseconds) runs on the blocking pool, not on a runtime worker
    /// that may be the only one serving every session.
    pub async fn scram_verifier(&self, user: &str, password: &str) -> Option<ScramVerifier> {
        if let Ok(v) = ScramVerifier::parse(password) {
            return Some(v);
        }
        let key = (user.to_owned(), password.to_owned());
        if let Some(v) = self.cached_verifiers().get(&key) {
            return Some(v.clone());
        }
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let password = password.to_owned();
        let derive = move || ScramVerifier::from_password(&password, &salt, 4096);
        let v = tokio::task::spawn_blocking(derive).await.ok()?.ok()?;
        // Two first logins may both derive one: the first kept wins.
        let mut cache = self.cached_verifiers();
        Some(cache.entry(key).or_insert(v).clone())
    }

    fn cached_verifiers(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), ScramVerifier>> {
        match self.verifiers.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }
}

/// What every node pool of one route shares.
struct PoolLogin<'a> {
    state: &'a PgState,
    client_user: &'a str,
    key: &'a str,
    db: &'a DatabaseConfig,
    database: &'a str,
    user: &'a str,
    secret: &'a Option<ServerSecret>,
    settings: &'a ResolvedPool,
}

/// The node whose pool checks logins: the one marked `primary`, else the
/// first.
fn primary_index(db: &DatabaseConfig) -> usize {
    db.nodes
        .iter()
        .position(|n| n.role == NodeRole::Primary)
        .unwrap_or(0)
}

pub(super) fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

#[cfg(test)]
mod tests;
