//! Config → running listeners: hot reload (SIGHUP, `POST /reload`, the
//! console's `RELOAD`). A new config is read and validated in full first,
//! and new listeners are bound and a new Redis topology built before
//! anything changes; any failure rejects the reload and the config in force
//! stays. Applied without dropping a client: every `[postgres]` database,
//! user, node, pool, topology and TLS setting, its listen address and
//! connection limit, the whole `[redis]` and `[http]` sections, and adding or removing
//! any section (new clients get the new listener and context; connected
//! ones finish on the old), the `[admin]` listener and token, and
//! `shutdown_timeout`. Only `general.worker_threads` (the runtime's size)
//! is named in the outcome as needing a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::config::types::Config;
use crate::config::ConfigError;
use crate::frontend::http::HttpContext;
use crate::frontend::postgres::PgContext;
use crate::frontend::redis::RedisContext;
use crate::live::{Live, Slot};
use crate::net::tls::TlsError;
use crate::server::Listener;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("config rejected, the running config stays in force: {0}")]
    Config(#[from] ConfigError),
    #[error("config rejected, the running config stays in force: {0}")]
    Tls(#[from] TlsError),
    #[error("Attaché was started without a config file; there is nothing to re-read")]
    NoSource,
    #[error(
        "config rejected, the running config stays in force: cannot listen on {addr}: {source}"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("config rejected, the running config stays in force: {0}")]
    Redis(#[from] crate::core::redis::TopologyError),
    #[error(transparent)]
    Http(#[from] crate::core::http::ClusterError),
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    pub applied: Vec<String>,
    pub needs_restart: Vec<String>,
}

impl std::fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let applied = if self.applied.is_empty() {
            "nothing to apply".to_owned()
        } else {
            self.applied.join("; ")
        };
        write!(f, "reloaded: {applied}")?;
        if !self.needs_restart.is_empty() {
            write!(
                f,
                "; needs a restart to take effect: {}",
                self.needs_restart.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Holds the config in force and applies new ones. Shared by the signal
/// handler and the admin endpoints.
pub struct Reloader {
    source: Option<PathBuf>,
    current: Mutex<Config>,
    postgres: Option<Arc<PgContext>>,
    /// One reload at a time: two racing reloads must not interleave.
    busy: Mutex<()>,
    /// Reloads applied and rejected, for metrics.
    pub applied: std::sync::atomic::AtomicU64,
    pub rejected: std::sync::atomic::AtomicU64,
    live: std::sync::OnceLock<Arc<Live>>,
    /// Itself, for a Postgres context a reload creates (its console RELOAD).
    me: std::sync::OnceLock<std::sync::Weak<Reloader>>,
}

/// What a reload must start before it changes anything.
#[derive(Default)]
struct Prepared {
    postgres: Option<(Listener, usize)>,
    /// `[admin]` changed: its new listener and token, or `None` if removed.
    admin: Option<Option<(Listener, Option<crate::config::types::Secret>)>>,
    /// `[postgres]` added (a new context and listener) or removed (`None`).
    postgres_section: Option<Option<(Listener, Arc<PgContext>, usize)>>,
    redis: Option<Option<(Listener, Arc<RedisContext>, usize)>>,
    http: Option<Option<(Listener, Arc<HttpContext>, usize)>>,
}

impl Reloader {
    pub fn new(source: Option<PathBuf>, current: Config, postgres: Option<Arc<PgContext>>) -> Self {
        Reloader {
            source,
            current: Mutex::new(current),
            postgres,
            busy: Mutex::new(()),
            applied: Default::default(),
            rejected: Default::default(),
            live: std::sync::OnceLock::new(),
            me: std::sync::OnceLock::new(),
        }
    }

    /// The config in force (the last one applied).
    pub fn current(&self) -> Config {
        match self.current.lock() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Gives the reloader the accept loops it may replace.
    pub fn attach_live(self: &Arc<Self>, live: Arc<Live>) {
        let _ = self.live.set(live);
        let _ = self.me.set(Arc::downgrade(self));
    }

    /// The Postgres context in force.
    fn pg(&self) -> Option<Arc<PgContext>> {
        match self.live.get() {
            Some(live) => live.postgres(),
            None => self.postgres.clone(),
        }
    }

    /// Re-reads the file Attaché was started with and applies it.
    pub fn reload_from_source(&self) -> Result<ReloadOutcome, ReloadError> {
        let path = self.source.clone().ok_or(ReloadError::NoSource)?;
        let config = crate::config::load(Some(&path)).inspect_err(|_| {
            self.rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })?;
        self.reload(config)
    }

    /// Validates `config` and applies what can change live.
    pub fn reload(&self, config: Config) -> Result<ReloadOutcome, ReloadError> {
        let r = self.apply(config);
        let counter = if r.is_ok() {
            &self.applied
        } else {
            &self.rejected
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r
    }

    fn apply(&self, config: Config) -> Result<ReloadOutcome, ReloadError> {
        let _one = match self.busy.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        crate::config::validate(&config)?;
        let old = match self.current.lock() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let mut outcome = ReloadOutcome {
            needs_restart: restart_only_changes(&old, &config),
            ..Default::default()
        };
        let prepared = self.prepare(&old, &config)?;
        if let (Some(ctx), Some(pg), Some(_)) = (self.pg(), &config.postgres, &old.postgres) {
            let summary = ctx.reload(pg.clone())?;
            outcome.applied.push(summary.to_string());
        }
        self.switch(prepared, &mut outcome);
        match self.current.lock() {
            Ok(mut c) => *c = config,
            Err(p) => *p.into_inner() = config,
        }
        if outcome.needs_restart.is_empty() {
            info!(%outcome, "config reloaded");
        } else {
            warn!(%outcome, "config reloaded; some changes wait for a restart");
        }
        Ok(outcome)
    }
}

impl Reloader {
    /// Binds what moves and builds what is new, so a failure here leaves
    /// everything as it was.
    fn prepare(&self, old: &Config, new: &Config) -> Result<Prepared, ReloadError> {
        let mut p = Prepared::default();
        let Some(_) = self.live.get() else {
            return Ok(p);
        };
        match (&old.postgres, &new.postgres) {
            (Some(o), Some(n)) => {
                if o.listen != n.listen || o.max_client_connections != n.max_client_connections {
                    p.postgres = Some((bind(&n.listen)?, n.max_client_connections));
                }
            }
            (None, Some(n)) => {
                let ctx = Arc::new(PgContext::new(n.clone())?);
                p.postgres_section = Some(Some((bind(&n.listen)?, ctx, n.max_client_connections)));
            }
            (Some(_), None) => p.postgres_section = Some(None),
            (None, None) => {}
        }
        if old.admin != new.admin {
            p.admin = Some(match &new.admin {
                Some(ac) => Some((bind(&ac.listen)?, ac.token.clone())),
                None => None,
            });
        }
        // Compared whole, secrets included: a new password is a new topology.
        if old.redis != new.redis {
            p.redis = Some(match &new.redis {
                Some(rc) => {
                    let ctx = Arc::new(RedisContext::new(rc.clone())?);
                    Some((bind(&rc.listen)?, ctx, rc.max_client_connections))
                }
                None => None,
            });
        }
        if old.http != new.http {
            p.http = Some(match &new.http {
                Some(hc) => {
                    let ctx = Arc::new(HttpContext::new(hc.clone())?);
                    Some((bind(&hc.listen)?, ctx, hc.max_client_connections))
                }
                None => None,
            });
        }
        Ok(p)
    }

    /// Starts the prepared accept loops; each replaces the one before.
    fn switch(&self, p: Prepared, outcome: &mut ReloadOutcome) {
        let Some(live) = self.live.get() else { return };
        if let (Some((listener, max)), Some(ctx)) = (p.postgres, self.pg()) {
            let addr = listener.addr;
            live.start(Slot::Postgres, listener, ctx, max);
            outcome
                .applied
                .push(format!("postgres: listening on {addr}"));
        }
        match p.postgres_section {
            Some(Some((listener, ctx, max))) => {
                let addr = listener.addr;
                if let Some(me) = self.me.get() {
                    ctx.set_reloader(me.clone());
                }
                ctx.start_configured_probes();
                live.set_postgres(Some(ctx.clone()));
                live.start(Slot::Postgres, listener, ctx, max);
                outcome
                    .applied
                    .push(format!("postgres: added, listening on {addr}"));
            }
            Some(None) => {
                live.stop(Slot::Postgres);
                live.set_postgres(None);
                outcome
                    .applied
                    .push("postgres: listener stopped".to_owned());
            }
            None => {}
        }
        match p.redis {
            Some(Some((listener, ctx, max))) => {
                let addr = listener.addr;
                live.set_redis(Some(ctx.clone()));
                live.start(Slot::Redis, listener, ctx, max);
                outcome
                    .applied
                    .push(format!("redis: new topology, listening on {addr}"));
            }
            Some(None) => {
                live.stop(Slot::Redis);
                live.set_redis(None);
                outcome.applied.push("redis: listener stopped".to_owned());
            }
            None => {}
        }
        match p.http {
            Some(Some((listener, ctx, max))) => {
                let addr = listener.addr;
                ctx.start();
                if let Some(old) = crate::live::get(&live.http_holder()) {
                    old.retire(ctx.clone());
                }
                live.set_http(Some(ctx.clone()));
                live.start(Slot::Http, listener, ctx, max);
                outcome.applied.push(format!(
                    "http: new routes and clusters, listening on {addr}"
                ));
            }
            Some(None) => {
                live.stop(Slot::Http);
                live.set_http(None);
                outcome.applied.push("http: listener stopped".to_owned());
            }
            None => {}
        }
        self.switch_admin(p.admin, live, outcome);
    }
}

impl Reloader {
    /// Replaces (or stops) the admin listener; started after the proxied
    /// listeners so the new one reports where they are now.
    fn switch_admin(
        &self,
        admin: Option<Option<(Listener, Option<crate::config::types::Secret>)>>,
        live: &Arc<Live>,
        outcome: &mut ReloadOutcome,
    ) {
        match admin {
            Some(Some((listener, token))) => {
                let Some(me) = self.me.get().and_then(|w| w.upgrade()) else {
                    return;
                };
                let addr = listener.addr;
                let app = crate::admin::Admin::for_live(live, &me, addr, token);
                live.start(
                    Slot::Admin,
                    listener,
                    Arc::new(app),
                    crate::admin::MAX_CONNECTIONS,
                );
                outcome.applied.push(format!("admin: listening on {addr}"));
            }
            Some(None) => {
                live.stop(Slot::Admin);
                outcome.applied.push("admin: listener stopped".to_owned());
            }
            None => {}
        }
    }
}

fn bind(listen: &str) -> Result<Listener, ReloadError> {
    let err = |source| ReloadError::Bind {
        addr: listen.to_owned(),
        source,
    };
    let addr = listen.parse().map_err(|_| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a socket address",
        ))
    })?;
    crate::server::bind(addr).map_err(err)
}

/// The changed settings a running process cannot apply yet.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    // shutdown_timeout is read at shutdown; the runtime's threads are not.
    if old.general.worker_threads != new.general.worker_threads {
        out.push("general.worker_threads".to_owned());
    }
    out
}

#[cfg(test)]
mod tests;
