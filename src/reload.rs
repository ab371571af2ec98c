//! Config → running listeners: hot reload (SIGHUP, `POST /reload`, the
//! console's `RELOAD`). A new config is read and validated in full first;
//! an invalid one is rejected with its validation error and the config in
//! force stays. What can change live (every `[postgres]` database, user,
//! node, pool and topology setting) is applied without dropping a client;
//! what cannot yet (listen addresses, connection limits, local TLS, the
//! `[redis]`, `[admin]` and `[general]` sections) is named in the outcome
//! as needing a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::config::types::Config;
use crate::config::ConfigError;
use crate::frontend::postgres::PgContext;
use crate::net::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("config rejected, the running config stays in force: {0}")]
    Config(#[from] ConfigError),
    #[error("config rejected, the running config stays in force: {0}")]
    Tls(#[from] TlsError),
    #[error("Attaché was started without a config file; there is nothing to re-read")]
    NoSource,
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
        if let (Some(ctx), Some(pg)) = (&self.postgres, &config.postgres) {
            let summary = ctx.reload(pg.clone())?;
            outcome.applied.push(summary.to_string());
        }
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

/// The changed settings a running process cannot apply yet.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let same = |a: &dyn erased::Ser, b: &dyn erased::Ser| a.render() == b.render();
    match (&old.postgres, &new.postgres) {
        (Some(o), Some(n)) => {
            if o.listen != n.listen {
                out.push("postgres.listen".to_owned());
            }
            if o.max_client_connections != n.max_client_connections {
                out.push("postgres.max_client_connections".to_owned());
            }
            if !same(&o.tls, &n.tls) {
                out.push("postgres.tls".to_owned());
            }
        }
        (None, None) => {}
        _ => out.push("[postgres] added or removed".to_owned()),
    }
    if !same(&old.redis, &new.redis) {
        out.push("[redis]".to_owned());
    }
    if !same(&old.admin, &new.admin) {
        out.push("[admin]".to_owned());
    }
    if !same(&old.general, &new.general) {
        out.push("[general]".to_owned());
    }
    out
}

/// Comparing config sections through their serialized form: they are
/// `Serialize` but not all `PartialEq`. Secrets serialize redacted, so a
/// changed password alone in a restart-only section goes unnoticed here.
mod erased {
    pub trait Ser {
        fn render(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn render(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests;
