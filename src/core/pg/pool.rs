//! Backend (Postgres): pools of server connections keyed by (node, database,
//! user). A pool hands out authenticated connections (its idle list and
//! size limit are [`super::slots`]), reuses only healthy ones, reaps idle
//! and old ones, keeps `min_idle` warm, and counts what the metrics need.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Waker};

use tokio::io::{AsyncRead, ReadBuf};
use tracing::{debug, warn};

use super::conn::{BackendError, ServerConn, ServerSecret, ServerTarget};
use super::slots::{Lease, Permit, Reusable, Slots};
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

pub type PooledConn = Lease<ServerConn>;

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
}

impl Reusable for ServerConn {
    /// Mid-batch counts as broken: the next client's first message would
    /// land inside this one's batch (see [`ServerConn::unsynced`]).
    fn is_broken(&self) -> bool {
        self.broken || self.unsynced
    }

    fn created(&self) -> Instant {
        self.created
    }

    /// An idle server connection must have nothing to say: EOF or any byte
    /// (a FATAL from an admin shutdown, say) means it is gone. One poll with
    /// a waker that does nothing: the session that takes the connection
    /// registers its own on its first read.
    fn is_quiet(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        self.rbuf.is_empty()
            && Pin::new(&mut self.stream)
                .poll_read(&mut cx, &mut buf)
                .is_pending()
    }
}

/// One pool: its target, settings, counters and its connections.
pub struct PgPool {
    pub key: PoolKey,
    pub origin: PoolOrigin,
    pub settings: ResolvedPool,
    pub stats: Arc<PoolStats>,
    target: Arc<ServerTarget>,
    secret: Arc<RwLock<Option<ServerSecret>>>,
    server_params: OnceLock<Vec<(String, String)>>,
    slots: Arc<Slots<ServerConn>>,
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
    ) -> Arc<Self> {
        let slots = Slots::new(settings.pool_size, settings.server_lifetime);
        let pool = Arc::new(Self {
            key,
            origin,
            settings,
            stats: Arc::new(PoolStats::default()),
            target: Arc::new(target),
            secret: Arc::new(RwLock::new(secret)),
            server_params: OnceLock::new(),
            slots,
            passthrough_trust: AtomicBool::new(false),
            login_check: tokio::sync::Mutex::new(()),
            known_statements: Mutex::new(HashSet::new()),
        });
        spawn_maintenance(Arc::downgrade(&pool));
        pool
    }

    pub fn target(&self) -> &ServerTarget {
        &self.target
    }

    /// Waits up to `checkout_timeout` for a connection, creating one within
    /// `connect_timeout` when the pool has room.
    ///
    /// An idle connection is handed out without a timer or a clock read; it
    /// counts as a 0 µs wait in the histogram (it takes well under its first
    /// bucket's 100 µs). Everything else is boxed, so the futures of the
    /// sessions that await this one stay small on the common path.
    pub async fn checkout(&self) -> Result<PooledConn, CheckoutError> {
        if let Some(permit) = self.slots.try_permit() {
            if let Ok(conn) = self.slots.take_idle(permit) {
                self.stats.checkouts.fetch_add(1, Ordering::Relaxed);
                self.stats.wait_histogram.record(0);
                return Ok(conn);
            }
        }
        Box::pin(self.checkout_slow()).await
    }

    /// No idle connection was at hand: wait for a permit if the pool is
    /// full, then take what was returned meanwhile or connect.
    async fn checkout_slow(&self) -> Result<PooledConn, CheckoutError> {
        let started = Instant::now();
        let permit = match self.slots.try_permit() {
            Some(p) => Some(p),
            None => {
                let deadline = started + self.settings.checkout_timeout;
                self.slots.permit(deadline).await
            }
        };
        let r = match permit {
            None => {
                self.stats.checkout_timeouts.fetch_add(1, Ordering::Relaxed);
                Err(CheckoutError::Timeout {
                    pool: self.key.to_string(),
                    waited: started.elapsed(),
                    size: self.settings.pool_size,
                })
            }
            Some(permit) => match self.slots.take_idle(permit) {
                Ok(conn) => Ok(conn),
                Err(permit) => self.connect(permit).await.map_err(CheckoutError::from),
            },
        };
        let us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
        self.stats.checkouts.fetch_add(1, Ordering::Relaxed);
        self.stats.wait_histogram.record(us);
        self.stats.waits.fetch_add(1, Ordering::Relaxed);
        self.stats.wait_micros.fetch_add(us, Ordering::Relaxed);
        let conn = r?;
        self.remember_params(&conn);
        Ok(conn)
    }

    /// A new server connection under `permit`, within `connect_timeout`.
    async fn connect(&self, permit: Permit<'_, ServerConn>) -> Result<PooledConn, BackendError> {
        let secret = self.secret();
        // The connect itself honours connect_timeout; this is the backstop.
        let limit = self.settings.connect_timeout + Duration::from_millis(100);
        let r =
            match tokio::time::timeout(limit, ServerConn::connect(&self.target, secret.as_ref()))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(BackendError::ConnectTimeout {
                    addr: self.target.addr.clone(),
                    after: self.settings.connect_timeout,
                }),
            };
        match r {
            Ok(conn) => Ok(self.slots.lease_new(permit, conn)),
            Err(e) => {
                self.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Drops a connection whose state is unknown instead of returning it.
    pub fn discard(&self, conn: PooledConn) {
        self.stats.discarded.fetch_add(1, Ordering::Relaxed);
        conn.discard();
    }

    pub fn status(&self) -> PoolStatus {
        let s = self.slots.status();
        PoolStatus {
            size: s.size,
            idle: s.idle,
            waiting: s.waiting,
            max_size: s.max,
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
            // Idle timeouts are enforced here, once a second, not on
            // every checkout: that keeps the clock off the hot path. (The
            // slots close connections past server_lifetime themselves.)
            let reaped = pool
                .slots
                .retain(|conn, idle_for| !conn.broken && idle.is_none_or(|t| idle_for < t));
            if reaped > 0 {
                debug!(pool = %pool.key, removed = reaped, "reaped server connections");
            }
            warm_min_idle(&pool).await;
        }
    });
}

/// Creates connections until `min_idle` are idle (each new one goes
/// straight back to the idle list).
async fn warm_min_idle(pool: &PgPool) {
    let status = pool.slots.status();
    let min_idle = pool.settings.min_idle;
    if status.idle >= min_idle || status.size >= status.max {
        return;
    }
    let missing = (min_idle - status.idle).min(status.max - status.size);
    for _ in 0..missing {
        let Some(permit) = pool.slots.try_permit() else {
            break;
        };
        if let Err(error) = pool.connect(permit).await {
            warn!(pool = %pool.key, %error, "could not warm min_idle connection");
            break;
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
