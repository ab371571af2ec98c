//! Accept (runtime): the accept loops a reload may replace. A listener
//! that moves, changes its connection limit, or serves a rebuilt Redis
//! topology gets a new accept loop (on a freshly bound socket: SO_REUSEPORT
//! lets it share the old address) before the old loop stops accepting.
//! Sessions the old loop started finish on what they were routed with.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;
use tracing::info;

use crate::frontend::http::HttpContext;
use crate::frontend::postgres::PgContext;
use crate::frontend::redis::RedisContext;
use crate::server::{self, App, Listener, Shutdown};

/// Which accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Postgres,
    Redis,
    Http,
    Admin,
}

struct Loop {
    stop: watch::Sender<bool>,
    addr: SocketAddr,
}

/// The running accept loops, and the Redis context new clients get.
pub struct Live {
    /// Cloned into each new loop; taken before the shutdown drain, which
    /// waits for every clone to go.
    shutdown: Mutex<Option<Shutdown>>,
    postgres: Mutex<Option<Loop>>,
    redis: Mutex<Option<Loop>>,
    http: Mutex<Option<Loop>>,
    admin: Mutex<Option<Loop>>,
    redis_ctx: Arc<RwLock<Option<Arc<RedisContext>>>>,
    postgres_ctx: Arc<RwLock<Option<Arc<PgContext>>>>,
    http_ctx: Arc<RwLock<Option<Arc<HttpContext>>>>,
}

impl Live {
    pub fn new(shutdown: Shutdown) -> Self {
        Live {
            shutdown: Mutex::new(Some(shutdown)),
            postgres: Mutex::new(None),
            redis: Mutex::new(None),
            http: Mutex::new(None),
            admin: Mutex::new(None),
            redis_ctx: Arc::new(RwLock::new(None)),
            postgres_ctx: Arc::new(RwLock::new(None)),
            http_ctx: Arc::new(RwLock::new(None)),
        }
    }

    /// Starts an accept loop for `slot` on `listener`, then stops the one it
    /// replaces. Returns false (and starts nothing) after shutdown began.
    pub fn start<A: App>(&self, slot: Slot, listener: Listener, app: Arc<A>, max: usize) -> bool {
        let Some(shutdown) = lock(&self.shutdown).clone() else {
            return false;
        };
        let (stop, rx) = watch::channel(false);
        let addr = listener.addr;
        tokio::spawn(server::serve_until(listener, app, max, shutdown, rx));
        let old = lock(self.slot(slot)).replace(Loop { stop, addr });
        if let Some(old) = old {
            info!(slot = ?slot, from = %old.addr, to = %addr, "accept loop replaced");
            let _ = old.stop.send(true);
        }
        true
    }

    /// Stops `slot`'s accept loop (its section was removed).
    pub fn stop(&self, slot: Slot) {
        if let Some(old) = lock(self.slot(slot)).take() {
            info!(slot = ?slot, addr = %old.addr, "accept loop stopped");
            let _ = old.stop.send(true);
        }
    }

    /// Where `slot` listens now.
    pub fn addr(&self, slot: Slot) -> Option<SocketAddr> {
        lock(self.slot(slot)).as_ref().map(|l| l.addr)
    }

    pub fn set_redis(&self, ctx: Option<Arc<RedisContext>>) {
        set(&self.redis_ctx, ctx);
    }

    pub fn set_http(&self, ctx: Option<Arc<HttpContext>>) {
        set(&self.http_ctx, ctx);
    }

    /// The HTTP egress context new connections are served with.
    pub fn http_holder(&self) -> Arc<RwLock<Option<Arc<HttpContext>>>> {
        self.http_ctx.clone()
    }

    pub fn set_postgres(&self, ctx: Option<Arc<PgContext>>) {
        set(&self.postgres_ctx, ctx);
    }

    /// The Postgres context new clients are served with.
    pub fn postgres(&self) -> Option<Arc<PgContext>> {
        get(&self.postgres_ctx)
    }

    pub fn postgres_holder(&self) -> Arc<RwLock<Option<Arc<PgContext>>>> {
        self.postgres_ctx.clone()
    }

    /// The Redis context new clients are served with (status, metrics).
    pub fn redis_holder(&self) -> Arc<RwLock<Option<Arc<RedisContext>>>> {
        self.redis_ctx.clone()
    }

    /// Lets the shutdown drain complete: no new loop can start after this.
    pub fn close(&self) {
        lock(&self.shutdown).take();
    }

    fn slot(&self, slot: Slot) -> &Mutex<Option<Loop>> {
        match slot {
            Slot::Postgres => &self.postgres,
            Slot::Redis => &self.redis,
            Slot::Http => &self.http,
            Slot::Admin => &self.admin,
        }
    }
}

fn set<T>(slot: &RwLock<Option<T>>, value: Option<T>) {
    match slot.write() {
        Ok(mut s) => *s = value,
        Err(p) => *p.into_inner() = value,
    }
}

/// A copy of what a shared slot holds now.
pub fn get<T: Clone>(slot: &RwLock<Option<T>>) -> Option<T> {
    match slot.read() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
