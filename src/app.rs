//! Accept → respond: wiring. Builds each configured frontend, binds its
//! listener and runs its accept loop, then the admin endpoint over them
//! all; stops them all with a drain.

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info;

use crate::admin::{self, Admin};
use crate::config::types::{AdminConfig, Config};
use crate::frontend::http::HttpContext;
use crate::frontend::postgres::PgContext;
use crate::frontend::redis::RedisContext;
use crate::live::Slot;
use crate::net::tls::TlsError;
use crate::server::{self, ShutdownTrigger};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid listen address {0:?}")]
    Addr(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Redis(#[from] crate::core::redis::TopologyError),
    #[error(transparent)]
    Http(#[from] crate::core::http::ClusterError),
}

/// A running Attaché: its bound addresses and the means to stop it.
pub struct Attache {
    /// The Postgres listener's actual address (useful with port 0).
    pub postgres_addr: Option<SocketAddr>,
    pub postgres: Option<Arc<PgContext>>,
    /// The Redis listener's actual address.
    pub redis_addr: Option<SocketAddr>,
    pub redis: Option<Arc<RedisContext>>,
    /// The HTTP egress listener's actual address.
    pub http_addr: Option<SocketAddr>,
    pub http: Option<Arc<HttpContext>>,
    /// The admin HTTP listener's actual address (no `[admin]`, no server).
    pub admin_addr: Option<SocketAddr>,
    /// The accept loops a reload may replace.
    pub live: Arc<crate::live::Live>,
    /// Applies new configs (SIGHUP, `POST /reload`).
    pub reloader: Arc<crate::reload::Reloader>,
    trigger: ShutdownTrigger,
}

impl Attache {
    /// Binds every listener and starts serving in the background.
    pub async fn start(config: Config) -> Result<Self, AppError> {
        Self::start_from(config, None).await
    }

    /// [`Attache::start`] for a config read from `source`, which reloads
    /// re-read.
    pub async fn start_from(
        config: Config,
        source: Option<std::path::PathBuf>,
    ) -> Result<Self, AppError> {
        let trigger = ShutdownTrigger::new();
        let live = Arc::new(crate::live::Live::new(trigger.subscribe()));
        let mut postgres_addr = None;
        let mut postgres = None;
        if let Some(pg) = config.postgres.clone() {
            let addr: SocketAddr = pg
                .listen
                .parse()
                .map_err(|_| AppError::Addr(pg.listen.clone()))?;
            let listener = server::bind(addr).map_err(|source| AppError::Bind {
                addr: pg.listen.clone(),
                source,
            })?;
            postgres_addr = Some(listener.addr);
            let max = pg.max_client_connections;
            let ctx = Arc::new(PgContext::new(pg)?);
            ctx.start_configured_probes();
            postgres = Some(ctx.clone());
            live.start(Slot::Postgres, listener, ctx, max);
        }
        let mut redis_addr = None;
        let mut redis = None;
        if let Some(rc) = config.redis.clone() {
            let addr: SocketAddr = rc
                .listen
                .parse()
                .map_err(|_| AppError::Addr(rc.listen.clone()))?;
            let listener = server::bind(addr).map_err(|source| AppError::Bind {
                addr: rc.listen.clone(),
                source,
            })?;
            redis_addr = Some(listener.addr);
            let max = rc.max_client_connections;
            let ctx = Arc::new(RedisContext::new(rc)?);
            redis = Some(ctx.clone());
            live.set_redis(Some(ctx.clone()));
            live.start(Slot::Redis, listener, ctx, max);
        }
        let mut http_addr = None;
        let mut http = None;
        if let Some(hc) = config.http.clone() {
            let addr: SocketAddr = hc
                .listen
                .parse()
                .map_err(|_| AppError::Addr(hc.listen.clone()))?;
            let listener = server::bind(addr).map_err(|source| AppError::Bind {
                addr: hc.listen.clone(),
                source,
            })?;
            http_addr = Some(listener.addr);
            let max = hc.max_client_connections;
            let ctx = Arc::new(HttpContext::new(hc)?);
            ctx.start();
            http = Some(ctx.clone());
            live.set_http(Some(ctx.clone()));
            live.start(Slot::Http, listener, ctx, max);
        }
        let reloader = Arc::new(crate::reload::Reloader::new(
            source,
            config.clone(),
            postgres.clone(),
        ));
        reloader.attach_live(live.clone());
        live.set_postgres(postgres.clone());
        if let Some(pg) = &postgres {
            pg.set_reloader(Arc::downgrade(&reloader));
        }
        let mut admin_addr = None;
        if let Some(ac) = &config.admin {
            admin_addr = Some(start_admin(ac, &live, &reloader)?);
        }
        Ok(Self {
            live,
            reloader,
            postgres_addr,
            postgres,
            redis_addr,
            redis,
            http_addr,
            http,
            admin_addr,
            trigger,
        })
    }

    /// Each node of a Postgres database's cluster, in config order (status
    /// pages and tests).
    pub fn pg_cluster_status(
        &self,
        database: &str,
    ) -> Option<Vec<crate::core::pg::cluster::NodeStatus>> {
        let ctx = self.postgres.as_ref()?;
        let (_, c) = ctx.clusters().into_iter().find(|(k, _)| k == database)?;
        Some(c.status())
    }

    /// Stops accepting (the admin endpoint too), lets sessions finish their
    /// work (up to `shutdown_timeout`), then returns whether all of them did.
    pub async fn shutdown(self) -> bool {
        self.live.close();
        // A reload may have changed the timeout since start.
        let timeout = self.reloader.current().general.shutdown_timeout.0;
        let drained = self.trigger.drain(timeout).await;
        info!(drained, "shut down");
        drained
    }
}

/// Binds the admin listener last, so every proxied listener it reports is
/// already bound, and serves it until shutdown (or a reload replaces it).
fn start_admin(
    cfg: &AdminConfig,
    live: &Arc<crate::live::Live>,
    reloader: &Arc<crate::reload::Reloader>,
) -> Result<SocketAddr, AppError> {
    let addr: SocketAddr = cfg
        .listen
        .parse()
        .map_err(|_| AppError::Addr(cfg.listen.clone()))?;
    let listener = server::bind(addr).map_err(|source| AppError::Bind {
        addr: cfg.listen.clone(),
        source,
    })?;
    let bound = listener.addr;
    let admin = Admin::for_live(live, reloader, bound, cfg.token.clone());
    live.start(
        Slot::Admin,
        listener,
        Arc::new(admin),
        admin::MAX_CONNECTIONS,
    );
    Ok(bound)
}
