//! Route → backend (HTTP): one upstream cluster. Its endpoints (names
//! re-resolved on an interval, state kept across refreshes), the balancer
//! that picks one per try, the circuit breaker in front of it, its retry
//! budget and its connection pool. A background task keeps it current:
//! DNS refresh, active health checks and idle-connection reaping; it holds
//! only a `Weak` so a cluster dropped by a reload stops it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use super::balance::{Balancer, Pick};
use super::budget::RetryBudget;
use super::endpoint::{Endpoint, Outcome};
use super::outlier::may_eject;
use super::pool::Pool;
use super::stats::ClusterStats;
use crate::config::http::{ClusterConfig, EndpointSpec};
use crate::net::tls::TlsError;

/// Why a cluster could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("http.clusters.{cluster}: {source}")]
    Tls { cluster: String, source: TlsError },
    #[error("http.clusters.{cluster}.endpoints: {message}")]
    Endpoint { cluster: String, message: String },
}

/// The circuit breaker said no: `max_requests` are in flight and
/// `max_pending_requests` already wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests for the cluster")]
pub struct Overflow;

pub struct Cluster {
    pub name: String,
    pub config: ClusterConfig,
    specs: Vec<EndpointSpec>,
    endpoints: RwLock<Arc<Vec<Arc<Endpoint>>>>,
    balancer: Balancer,
    pub budget: RetryBudget,
    pub pool: Arc<Pool>,
    requests: Arc<Semaphore>,
    pending: AtomicUsize,
    pub stats: ClusterStats,
    /// `host_header`, parsed once.
    host_header: Option<http::HeaderValue>,
}

impl Cluster {
    /// Endpoints given by address are ready at once; names wait for
    /// [`Cluster::resolve`].
    pub fn new(name: &str, config: &ClusterConfig) -> Result<Self, ClusterError> {
        let specs = config
            .endpoints
            .iter()
            .map(|e| EndpointSpec::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| ClusterError::Endpoint {
                cluster: name.to_owned(),
                message,
            })?;
        let endpoints = specs
            .iter()
            .filter_map(|s| {
                let ip = s.host.parse().ok()?;
                let addr = SocketAddr::new(ip, s.port);
                Some(Arc::new(Endpoint::new(
                    addr,
                    s.host.clone(),
                    s.port,
                    s.weight,
                )))
            })
            .collect();
        let pool = Pool::new(config).map_err(|source| ClusterError::Tls {
            cluster: name.to_owned(),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            specs,
            endpoints: RwLock::new(Arc::new(endpoints)),
            balancer: Balancer::new(config.balance),
            budget: RetryBudget::new(&config.retry_budget),
            pool: Arc::new(pool),
            requests: Arc::new(Semaphore::new(config.max_requests)),
            pending: AtomicUsize::new(0),
            stats: ClusterStats::default(),
            host_header: config
                .host_header
                .as_deref()
                .and_then(|h| http::HeaderValue::from_str(h).ok()),
            config: config.clone(),
        })
    }

    /// The endpoints now (a cheap snapshot).
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        match self.endpoints.read() {
            Ok(e) => e.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// An endpoint for a try, avoiding those already tried.
    /// `now` is the caller's clock reading (it has one already).
    pub fn pick(&self, exclude: &[SocketAddr], now: Instant) -> Pick {
        self.balancer.pick(&self.endpoints(), now, exclude)
    }

    /// A free request slot now, if there is one (no waiting, no timer).
    pub fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.requests.clone().try_acquire_owned().ok()
    }

    /// Circuit breaking: a slot for one request, waiting while fewer than
    /// `max_pending_requests` wait; `Overflow` at once past that.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Overflow> {
        if let Ok(p) = self.requests.clone().try_acquire_owned() {
            return Ok(p);
        }
        let waiting = self.pending.fetch_add(1, Ordering::AcqRel);
        let _done = Decrement(&self.pending);
        if waiting >= self.config.max_pending_requests {
            return Err(Overflow);
        }
        self.requests
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Overflow)
    }

    /// Requests in flight now.
    pub fn active_requests(&self) -> usize {
        self.config.max_requests - self.requests.available_permits()
    }

    /// Requests waiting for a slot now.
    pub fn pending_requests(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Passive health: feeds one try's outcome to its endpoint, ejecting it
    /// when it keeps failing (within `max_ejection_percent`).
    pub fn report(&self, ep: &Endpoint, outcome: Outcome) {
        self.report_at(ep, outcome, Instant::now())
    }

    /// [`Cluster::report`] with the caller's clock reading.
    pub fn report_at(&self, ep: &Endpoint, outcome: Outcome, now: Instant) {
        let may = matches!(outcome, Outcome::Success) || {
            let all = self.endpoints();
            let ejected = all.iter().filter(|e| e.is_ejected(now)).count();
            may_eject(ejected, all.len(), self.config.outlier.max_ejection_percent)
        };
        if let Some(len) = ep.record(outcome, &self.config.outlier, now, may) {
            self.stats.ejected();
            warn!(
                cluster = %self.name,
                upstream.addr = %ep.addr,
                ejection.secs = len.as_secs_f64(),
                "endpoint ejected after consecutive failures"
            );
        }
    }

    /// Re-resolves endpoint names; endpoints whose address stays keep their
    /// state (load, EWMA, ejection).
    pub async fn resolve(&self) {
        let old = self.endpoints();
        let mut next = Vec::with_capacity(old.len());
        for spec in &self.specs {
            if spec.is_ip() {
                next.extend(
                    old.iter()
                        .filter(|e| e.host == spec.host && e.port == spec.port)
                        .cloned(),
                );
                continue;
            }
            let addrs = match tokio::net::lookup_host((spec.host.as_str(), spec.port)).await {
                Ok(a) => a.collect::<Vec<_>>(),
                Err(error) => {
                    warn!(cluster = %self.name, host = %spec.host, %error, "DNS lookup failed; keeping the last addresses");
                    next.extend(
                        old.iter()
                            .filter(|e| e.host == spec.host && e.port == spec.port)
                            .cloned(),
                    );
                    continue;
                }
            };
            for addr in addrs {
                let kept = old.iter().find(|e| e.addr == addr && e.host == spec.host);
                next.push(match kept {
                    Some(e) => e.clone(),
                    None => Arc::new(Endpoint::new(
                        addr,
                        spec.host.clone(),
                        spec.port,
                        spec.weight,
                    )),
                });
            }
        }
        let changed =
            next.len() != old.len() || next.iter().zip(old.iter()).any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed {
            info!(cluster = %self.name, endpoints = next.len(), "endpoints resolved");
            let live: Vec<SocketAddr> = next.iter().map(|e| e.addr).collect();
            self.pool.retain(&live);
            match self.endpoints.write() {
                Ok(mut e) => *e = Arc::new(next),
                Err(p) => *p.into_inner() = Arc::new(next),
            }
        }
    }

    /// Whether `ep` gets the app's own Host (when it sent one): an IP
    /// endpoint, and no `host_header` configured.
    pub fn passes_client_host(&self, ep: &Endpoint) -> bool {
        self.host_header.is_none() && !ep.by_name
    }

    /// The Host header sent upstream: `host_header` when configured, else
    /// the endpoint's name when it was given by name, else the app's Host
    /// (the endpoint's address when the app sent none).
    pub fn host_for(
        &self,
        ep: &Endpoint,
        client_host: Option<&http::HeaderValue>,
    ) -> Option<http::HeaderValue> {
        if let Some(h) = &self.host_header {
            return Some(h.clone());
        }
        let by_name = ep.by_name;
        if self.passes_client_host(ep) {
            if let Some(h) = client_host {
                return Some(h.clone());
            }
        }
        let made = ep.name_header.get_or_init(|| {
            let default_port = if self.config.tls.is_some() { 443 } else { 80 };
            let name = if by_name && ep.port == default_port {
                ep.host.clone()
            } else if by_name {
                format!("{}:{}", ep.host, ep.port)
            } else {
                ep.authority()
            };
            http::HeaderValue::from_str(&name)
                .unwrap_or(http::HeaderValue::from_static("localhost"))
        });
        Some(made.clone())
    }

    /// Starts the background upkeep: DNS refresh, health checks, reaping.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(upkeep(weak));
    }
}

async fn upkeep(weak: Weak<Cluster>) {
    let mut checks = super::health::Checks::default();
    let mut last_dns = None::<Instant>;
    let mut last_check = None::<Instant>;
    loop {
        let Some(cluster) = weak.upgrade() else {
            return;
        };
        let now = Instant::now();
        if last_dns.is_none_or(|t| now.duration_since(t) >= cluster.config.dns_refresh.0) {
            last_dns = Some(now);
            cluster.resolve().await;
        }
        if let Some(hc) = &cluster.config.health_check {
            if last_check.is_none_or(|t| now.duration_since(t) >= hc.interval.0) {
                last_check = Some(now);
                checks.run(&cluster, hc).await;
            }
        }
        cluster.pool.reap();
        let tick = tick(&cluster);
        drop(cluster);
        tokio::time::sleep(tick).await;
    }
}

/// How often upkeep wakes: often enough for the shortest interval it
/// serves, never busier than every 50 ms.
fn tick(c: &Cluster) -> Duration {
    let mut t = c.config.dns_refresh.0.min(Duration::from_secs(1));
    if let Some(hc) = &c.config.health_check {
        t = t.min(hc.interval.0);
    }
    t.max(Duration::from_millis(50))
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
