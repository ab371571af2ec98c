//! Backend (Postgres): pools of server connections keyed by (node, database,
//! user), built on deadpool. A pool hands out authenticated connections,
//! recycles only healthy ones, reaps idle and old ones, keeps `min_idle`
//! warm, and counts what the metrics need.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, PoolError, RecycleError, RecycleResult, Timeouts};
use deadpool::Runtime;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, ReadBuf};
use tracing::{debug, warn};

use super::conn::{BackendError, ServerConn, ServerSecret, ServerTarget};
use crate::config::resolve::ResolvedPool;

#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct PoolKey {
    pub node: String,
    pub database: String,
    pub user: String,
}

impl std::fmt::Display for PoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}/{}", self.user, self.node, self.database)
    }
}

/// Which config entries a pool was built from: a reload checks them to
/// tell whether the pool still matches the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolOrigin {
    /// The `[postgres.databases]` key that matched.
    pub db_key: String,
    /// The user name the client logged in with.
    pub client_user: String,
}

/// Counters kept per pool for status and metrics.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub checkouts: AtomicU64,
    /// Checkouts that found no idle connection and had to wait or connect.
    pub waits: AtomicU64,
    pub wait_micros: AtomicU64,
    pub checkout_timeouts: AtomicU64,
    pub connect_errors: AtomicU64,
    /// ReadyForQuery messages relayed: transactions and simple queries.
    pub transactions: AtomicU64,
    pub discarded: AtomicU64,
    /// How long every checkout took, idle hand-outs included.
    pub wait_histogram: WaitHistogram,
    /// Bytes written to servers and to clients by sessions on this pool.
    pub bytes_to_server: AtomicU64,
    pub bytes_to_client: AtomicU64,
    /// ErrorResponses servers sent that were relayed to clients.
    pub server_errors: AtomicU64,
    /// Server connections lost while a session was using them.
    pub server_lost: AtomicU64,
}

/// Upper bounds of the checkout wait buckets, in microseconds (0.1 ms to
/// 10 s): an idle hand-out lands in the first, a connect in the middle, a
/// queue behind a full pool towards the end.
pub const WAIT_BUCKETS_MICROS: [u64; 11] = [
    100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000,
];

/// A fixed-bucket histogram of checkout waits kept in atomics, so a
/// checkout pays one bucket search over 11 bounds and two relaxed adds.
/// Buckets are not cumulative here (the encoder sums them); the last one
/// counts waits above every bound, and the count is their total.
#[derive(Debug, Default)]
pub struct WaitHistogram {
    buckets: [AtomicU64; WAIT_BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitSnapshot {
    /// Per bucket, not cumulative; index `i < 11` is `≤ WAIT_BUCKETS_MICROS[i]`.
    pub buckets: [u64; WAIT_BUCKETS_MICROS.len() + 1],
    pub sum_micros: u64,
}

impl WaitSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl WaitHistogram {
    pub fn record(&self, micros: u64) {
        let i = WAIT_BUCKETS_MICROS.partition_point(|&b| b < micros);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WaitSnapshot {
        WaitSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

pub type PooledConn = managed::Object<Manager>;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("timed out after {waited:?} waiting for a server connection to {pool} (pool_size {size}, all in use)")]
    Timeout {
        pool: String,
        waited: Duration,
        size: usize,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the pool for {0} is closed")]
    Closed(String),
}

pub struct Manager {
    target: Arc<ServerTarget>,
    secret: Arc<RwLock<Option<ServerSecret>>>,
    lifetime: Option<Duration>,
    idle_timeout: Option<Duration>,
    stats: Arc<PoolStats>,
}

impl managed::Manager for Manager {
    type Type = ServerConn;
    type Error = BackendError;

    async fn create(&self) -> Result<ServerConn, BackendError> {
        let secret = self.secret.read().ok().and_then(|s| s.clone());
        let r = ServerConn::connect(&self.target, secret.as_ref()).await;
        if r.is_err() {
            self.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    async fn recycle(
        &self,
        conn: &mut ServerConn,
        metrics: &Metrics,
    ) -> RecycleResult<BackendError> {
        if conn.broken {
            return Err(RecycleError::message("connection state unknown"));
        }
        if self.lifetime.is_some_and(|l| conn.created.elapsed() > l) {
            return Err(RecycleError::message("server_lifetime reached"));
        }
        if self.idle_timeout.is_some_and(|t| metrics.last_used() > t) {
            return Err(RecycleError::message("server_idle_timeout reached"));
        }
        // An idle server connection must have nothing to say. EOF or any
        // byte (a FATAL from an admin shutdown, say) means it is gone. One
        // poll, no timer: a zero timeout would wait for the next timer tick.
        if idle_stream_is_quiet(&mut conn.stream).await {
            Ok(())
        } else {
            Err(RecycleError::message("server closed or spoke while idle"))
        }
    }
}

/// Polls the stream's read side once: pending means nothing arrived.
async fn idle_stream_is_quiet(stream: &mut crate::net::Stream) -> bool {
    let mut probe = [0u8; 1];
    std::future::poll_fn(|cx| {
        let mut buf = ReadBuf::new(&mut probe);
        match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Ready(true),
            Poll::Ready(_) => Poll::Ready(false),
        }
    })
    .await
}

/// One pool: its target, settings, counters and the deadpool behind it.
pub struct PgPool {
    pub key: PoolKey,
    pub origin: PoolOrigin,
    pub settings: ResolvedPool,
    pub stats: Arc<PoolStats>,
    target: Arc<ServerTarget>,
    secret: Arc<RwLock<Option<ServerSecret>>>,
    server_params: OnceLock<Vec<(String, String)>>,
    inner: managed::Pool<Manager>,
    /// Passthrough auth found that the server lets this user in without a
    /// password, so clients need not be asked for one.
    pub passthrough_trust: AtomicBool,
    /// Serialises passthrough password checks, so a burst of logins opens
    /// one extra server connection, not one per client.
    pub login_check: tokio::sync::Mutex<()>,
    /// Server-side names of statements that parsed successfully here.
    known_statements: Mutex<HashSet<Arc<str>>>,
}

/// How many statement names a pool remembers as known-good.
const MAX_KNOWN_STATEMENTS: usize = 10_000;

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A snapshot for status pages and the demo.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStatus {
    pub size: usize,
    pub idle: usize,
    pub waiting: usize,
    pub max_size: usize,
}

impl PgPool {
    pub fn new(
        key: PoolKey,
        origin: PoolOrigin,
        target: ServerTarget,
        secret: Option<ServerSecret>,
        settings: ResolvedPool,
    ) -> Result<Arc<Self>, managed::BuildError> {
        let target = Arc::new(target);
        let secret = Arc::new(RwLock::new(secret));
        let stats = Arc::new(PoolStats::default());
        let manager = Manager {
            target: target.clone(),
            secret: secret.clone(),
            lifetime: settings.server_lifetime,
            idle_timeout: settings.server_idle_timeout,
            stats: stats.clone(),
        };
        let inner = managed::Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .build()?;
        let pool = Arc::new(Self {
            key,
            origin,
            settings,
            stats,
            target,
            secret,
            server_params: OnceLock::new(),
            inner,
            passthrough_trust: AtomicBool::new(false),
            login_check: tokio::sync::Mutex::new(()),
            known_statements: Mutex::new(HashSet::new()),
        });
        spawn_maintenance(Arc::downgrade(&pool));
        Ok(pool)
    }

    pub fn target(&self) -> &ServerTarget {
        &self.target
    }

    /// Waits up to `checkout_timeout` for a connection, creating one within
    /// `connect_timeout` when the pool has room.
    pub async fn checkout(&self) -> Result<PooledConn, CheckoutError> {
        let started = Instant::now();
        let waited = self.inner.status().available == 0;
        let mut timeouts = Timeouts {
            wait: Some(Duration::ZERO),
            create: Some(self.settings.connect_timeout + Duration::from_millis(100)),
            recycle: Some(Duration::from_secs(1)),
        };
        // Fast path without a timer: an idle connection, or room to create one.
        let mut r = self.inner.timeout_get(&timeouts).await;
        if let Err(PoolError::Timeout(managed::TimeoutType::Wait)) = r {
            timeouts.wait = Some(self.settings.checkout_timeout);
            r = self.inner.timeout_get(&timeouts).await;
        }
        self.stats.checkouts.fetch_add(1, Ordering::Relaxed);
        let us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
        self.stats.wait_histogram.record(us);
        if waited {
            self.stats.waits.fetch_add(1, Ordering::Relaxed);
            self.stats.wait_micros.fetch_add(us, Ordering::Relaxed);
        }
        match r {
            Ok(conn) => {
                self.remember_params(&conn);
                Ok(conn)
            }
            Err(PoolError::Backend(e)) => Err(e.into()),
            Err(PoolError::Timeout(managed::TimeoutType::Create)) => {
                Err(BackendError::ConnectTimeout {
                    addr: self.target.addr.clone(),
                    after: self.settings.connect_timeout,
                }
                .into())
            }
            Err(PoolError::Timeout(_)) => {
                self.stats.checkout_timeouts.fetch_add(1, Ordering::Relaxed);
                Err(CheckoutError::Timeout {
                    pool: self.key.to_string(),
                    waited: started.elapsed(),
                    size: self.settings.pool_size,
                })
            }
            Err(_) => Err(CheckoutError::Closed(self.key.to_string())),
        }
    }

    /// Drops a connection whose state is unknown instead of returning it.
    pub fn discard(&self, conn: PooledConn) {
        self.stats.discarded.fetch_add(1, Ordering::Relaxed);
        drop(managed::Object::take(conn));
    }

    pub fn status(&self) -> PoolStatus {
        let s = self.inner.status();
        PoolStatus {
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
            max_size: s.max_size,
        }
    }

    pub fn secret(&self) -> Option<ServerSecret> {
        self.secret.read().ok().and_then(|s| s.clone())
    }

    /// Passthrough auth learns the password from the first client that
    /// proves it to the server; new connections then use it.
    pub fn set_secret(&self, secret: Option<ServerSecret>) {
        if let Ok(mut s) = self.secret.write() {
            *s = secret;
        }
    }

    /// The ParameterStatus set a server reported at login, to greet clients
    /// with in transaction mode before they have a server of their own.
    pub fn server_params(&self) -> Option<&[(String, String)]> {
        self.server_params.get().map(Vec::as_slice)
    }

    fn remember_params(&self, conn: &ServerConn) {
        if self.server_params.get().is_none() {
            let _ = self.server_params.set(conn.params.clone());
        }
    }

    /// Records a statement the server accepted, so later Parses of the same
    /// text can be answered without a server connection.
    pub fn remember_statement(&self, name: &Arc<str>) {
        if let Ok(mut known) = self.known_statements.lock() {
            if known.len() < MAX_KNOWN_STATEMENTS {
                known.insert(name.clone());
            }
        }
    }

    pub fn knows_statement(&self, name: &str) -> bool {
        self.known_statements
            .lock()
            .map(|k| k.contains(name))
            .unwrap_or(false)
    }
}

/// Reaps idle and expired connections and keeps `min_idle` warm, until the
/// pool is dropped.
fn spawn_maintenance(pool: Weak<PgPool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(pool) = pool.upgrade() else { return };
            let idle = pool.settings.server_idle_timeout;
            let lifetime = pool.settings.server_lifetime;
            let reaped = pool.inner.retain(|conn, m| {
                !conn.broken
                    && idle.is_none_or(|t| m.last_used() < t)
                    && lifetime.is_none_or(|l| conn.created.elapsed() < l)
            });
            if !reaped.removed.is_empty() {
                debug!(pool = %pool.key, removed = reaped.removed.len(), "reaped server connections");
            }
            warm_min_idle(&pool).await;
        }
    });
}

/// Creates connections until `min_idle` are idle. Idle ones are held while
/// warming, since a checkout would otherwise hand back an idle one instead
/// of creating a new one.
async fn warm_min_idle(pool: &PgPool) {
    let status = pool.inner.status();
    let min_idle = pool.settings.min_idle;
    if status.available >= min_idle || status.size >= status.max_size {
        return;
    }
    let missing = (min_idle - status.available).min(status.max_size - status.size);
    let mut held = Vec::with_capacity(status.available + missing);
    for _ in 0..status.available + missing {
        let timeouts = Timeouts {
            wait: Some(Duration::ZERO),
            create: Some(pool.settings.connect_timeout),
            recycle: Some(Duration::from_secs(1)),
        };
        match pool.inner.timeout_get(&timeouts).await {
            Ok(c) => held.push(c),
            Err(PoolError::Timeout(managed::TimeoutType::Wait)) => break,
            Err(error) => {
                warn!(pool = %pool.key, %error, "could not warm min_idle connection");
                break;
            }
        }
    }
}

/// Every pool of one listener, created on first use.
#[derive(Debug, Default)]
pub struct Pools {
    map: RwLock<HashMap<PoolKey, Arc<PgPool>>>,
    /// Passwords passthrough auth learned for pools a reload retired, for
    /// their replacements (clients are not asked again).
    carried: Mutex<HashMap<PoolKey, ServerSecret>>,
}

impl Pools {
    pub fn get(&self, key: &PoolKey) -> Option<Arc<PgPool>> {
        self.map.read().ok().and_then(|m| m.get(key).cloned())
    }

    /// Returns the pool for `key`, building it with `make` if absent.
    pub fn get_or_insert<E>(
        &self,
        key: &PoolKey,
        make: impl FnOnce() -> Result<Arc<PgPool>, E>,
    ) -> Result<Arc<PgPool>, E> {
        if let Some(p) = self.get(key) {
            return Ok(p);
        }
        let mut map = match self.map.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(p) = map.get(key) {
            return Ok(p.clone());
        }
        let p = make()?;
        if p.secret().is_none() {
            if let Some(s) = self.carried.lock().ok().and_then(|mut c| c.remove(key)) {
                p.set_secret(Some(s));
            }
        }
        map.insert(key.clone(), p.clone());
        Ok(p)
    }

    /// Forgets the pools `stale` picks: new logins and sessions that
    /// re-route get fresh pools; sessions still holding a retired pool
    /// finish with it, and its connections close when the last one lets
    /// go. Learned passwords are carried over when `carry` allows.
    pub fn retire(
        &self,
        stale: impl Fn(&PgPool) -> bool,
        carry: impl Fn(&PgPool) -> bool,
    ) -> usize {
        let mut map = match self.map.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let keys: Vec<PoolKey> = map
            .iter()
            .filter(|(_, p)| stale(p))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            let Some(p) = map.remove(k) else { continue };
            if let (true, Some(s)) = (carry(&p), p.secret()) {
                if let Ok(mut c) = self.carried.lock() {
                    c.insert(k.clone(), s);
                }
            }
        }
        keys.len()
    }

    pub fn all(&self) -> Vec<Arc<PgPool>> {
        let mut v: Vec<_> = self
            .map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }
}
