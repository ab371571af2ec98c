//! Route → backend (HTTP): the retry loop one request goes through, the
//! same whether the request came through hyper or through the HTTP/1.1
//! pass-through ([`super::fast`]): pick an endpoint, try it, and try again
//! until one answers, a try fails in a way that must not be retried, the
//! retries or the budget run out, or the route's timeout passes.
//!
//! A try is retried only when that cannot duplicate work the app did not
//! ask to repeat: a connect failure (nothing was sent) always may; a reset,
//! a 502/503/504 or a per-try timeout may for idempotent methods (or when
//! the route allows any) and only with a body kept for replay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::Rng;

use super::error::LocalError;
use super::upload::Upload;
use super::RouteEntry;
use crate::config::http::RetryOn;
use crate::core::http::balance::Pick;
use crate::core::http::endpoint::{Endpoint, Outcome};
use crate::core::http::h1::RawResponse;
use crate::core::http::ConnectError;
use crate::core::timer::LazyTimer;

/// Tries per request at most: the first and `retries` (≤ 10) more.
const MAX_TRIES: usize = 11;
const UNSET: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
/// Stale pooled connections skipped per try before giving up on reuse.
pub(super) const MAX_STALE: usize = 3;

/// A slot in the route's cluster (circuit breaking), waiting at most
/// until `deadline`, the end of the route's timeout: slots may be held for
/// long by streams and uploads, and a request queued behind them is
/// answered 504 in time instead of waiting without end.
pub(super) async fn admit(
    route: &RouteEntry,
    deadline: Instant,
) -> Result<tokio::sync::OwnedSemaphorePermit, LocalError> {
    let cluster = &route.cluster;
    // The usual case costs no timer.
    if let Some(slot) = cluster.try_admit() {
        return Ok(slot);
    }
    match tokio::time::timeout_at(deadline.into(), cluster.admit()).await {
        Ok(Ok(slot)) => Ok(slot),
        Ok(Err(_)) => {
            cluster.stats.overflowed();
            Err(LocalError::Overflow(cluster.name.clone()))
        }
        Err(_) => Err(LocalError::Timeout(route.cfg.timeout.0)),
    }
}

/// How one try reaches an endpoint, for one kind of request.
pub(super) trait Exchange {
    type Resp;
    fn status(resp: &Self::Resp) -> u16;
    /// Whether the request's body can be sent again.
    fn replayable(&self) -> bool;
    /// The app's side of a body that streams during the try: time spent
    /// waiting for it is not the upstream's.
    fn upload(&self) -> Option<Arc<Upload>> {
        None
    }
    /// One try on `ep`, until the response head; `now` is when it began.
    async fn send(
        &mut self,
        route: &RouteEntry,
        ep: &Endpoint,
        repeatable: bool,
        now: Instant,
    ) -> Result<Self::Resp, TryError>;
}

/// What one request carries from try to try.
pub(super) struct Attempt<'a, X> {
    route: &'a RouteEntry,
    pub exchange: X,
    /// The method may be repeated after it reached a server.
    repeatable: bool,
    deadline: Instant,
    /// Filled from the front (`tries` of them): no allocation per request.
    tried: [SocketAddr; MAX_TRIES],
    tries: usize,
    /// When the relayed response's head arrived.
    pub answered: Option<Instant>,
    /// The connection's try timer, if it has one (else a tokio timeout
    /// per try).
    timer: Option<&'a mut LazyTimer>,
}

enum TryOutcome<R> {
    Done(R),
    Failed {
        error: LocalError,
        retry: bool,
        /// An upstream's 502/503/504, relayed if no retry replaces it.
        response: Option<R>,
    },
}

impl<'a, X: Exchange> Attempt<'a, X> {
    /// `timer`: the connection's try timer, if it has one (else a tokio
    /// timeout per try).
    pub fn new(
        route: &'a RouteEntry,
        exchange: X,
        repeatable: bool,
        start: Instant,
        timer: Option<&'a mut LazyTimer>,
    ) -> Self {
        Self {
            route,
            exchange,
            repeatable,
            deadline: start + route.cfg.timeout.0,
            tried: [UNSET; MAX_TRIES],
            tries: 0,
            answered: None,
            timer,
        }
    }

    /// The retry loop: tries until done, out of retries, out of budget or
    /// out of time.
    pub async fn run(&mut self) -> Result<X::Resp, LocalError> {
        let cluster = &self.route.cluster;
        let mut retries_left = self.route.cfg.retries;
        loop {
            let (error, retry, response) = match self.try_once().await {
                TryOutcome::Done(resp) => return Ok(resp),
                TryOutcome::Failed {
                    error,
                    retry,
                    response,
                } => (error, retry, response),
            };
            let give_up = |error: LocalError, response: Option<X::Resp>| match response {
                Some(r) => Ok(r),
                None => Err(error),
            };
            let now = Instant::now();
            if !retry || retries_left == 0 || now >= self.deadline || self.tries >= MAX_TRIES {
                return give_up(error, response);
            }
            if !cluster.budget.try_retry(now) {
                cluster.stats.budget_exhausted();
                let error = LocalError::BudgetExhausted(cluster.name.clone(), Box::new(error));
                return give_up(error, response);
            }
            drop(response);
            retries_left -= 1;
            cluster.stats.retried();
            self.route.stats.retried();
            let done = self.route.cfg.retries - retries_left;
            let pause =
                backoff(&self.route.cfg, done).min(self.deadline.saturating_duration_since(now));
            tokio::time::sleep(pause).await;
        }
    }

    async fn try_once(&mut self) -> TryOutcome<X::Resp> {
        let cluster = &self.route.cluster;
        // One clock reading serves the pick, the try's deadline and its
        // latency (clock reads are a visible share of a proxied request).
        let now = Instant::now();
        if now >= self.deadline {
            // The route's time went on waiting for a slot: a try now
            // would be cut off at once and blamed on a healthy endpoint.
            return fail(LocalError::Timeout(self.route.cfg.timeout.0), false);
        }
        let ep = match cluster.pick(self.tried_addrs(), now) {
            Pick::Endpoint(ep) => ep,
            Pick::AllEjected => return fail(LocalError::Ejected(cluster.name.clone()), false),
            Pick::NoneHealthy => return fail(LocalError::Unhealthy(cluster.name.clone()), false),
            Pick::Empty => return fail(LocalError::NoEndpoints(cluster.name.clone()), false),
        };
        if self.tries < MAX_TRIES {
            self.tried[self.tries] = ep.addr;
        }
        self.tries += 1;
        let _in_flight = ep.start();
        let per_try = self
            .route
            .cfg
            .per_try_timeout
            .map_or(self.route.cfg.timeout.0, |d| d.0)
            .min(self.deadline.saturating_duration_since(now));
        let upload = self.exchange.upload();
        let send = self.exchange.send(self.route, &ep, self.repeatable, now);
        let sent = match (self.timer.as_deref_mut(), upload.as_deref()) {
            (Some(timer), _) => {
                let at = tokio::time::Instant::from_std(now + per_try);
                timer.within(at, send).await.ok_or(())
            }
            (None, None) => tokio::time::timeout_at((now + per_try).into(), send)
                .await
                .map_err(drop),
            (None, Some(upload)) => {
                let (sent, waited) = within_upload(send, now, now + per_try, upload).await;
                // The route's timeout leaves the app's share out too.
                self.deadline += waited;
                sent
            }
        };
        // A try that failed once the app's body had: the app's doing (a
        // bad chunk, an abort, a stall), answered as such, and the
        // endpoint not blamed.
        if !matches!(sent, Ok(Ok(_))) {
            if let Some(error) = upload.as_deref().and_then(Upload::fault) {
                return fail(error, false);
            }
        }
        let retry_on = |r: RetryOn| self.route.cfg.retry_on.contains(&r);
        let replayable = self.repeatable && self.exchange.replayable();
        match sent {
            Err(_) => {
                cluster.report(&ep, Outcome::ServerError);
                fail(
                    LocalError::Timeout(per_try),
                    retry_on(RetryOn::Timeout) && replayable,
                )
            }
            Ok(Err(TryError::Connect(e))) => self.connect_failed(&ep, e),
            Ok(Err(TryError::Reset(e))) => {
                cluster.report(&ep, Outcome::ConnectFailure);
                if let Some(alert) = tls_alert(e.as_ref()) {
                    // TLS 1.3: a server refusing our client certificate
                    // says so only after the handshake, on first use.
                    let error = LocalError::TlsRejected(ep.authority(), alert);
                    return fail(error, false);
                }
                let error = LocalError::Reset(ep.authority(), e.to_string());
                fail(error, retry_on(RetryOn::Reset) && replayable)
            }
            Ok(Err(TryError::BudgetRefused(e))) => {
                let last = LocalError::Reset(ep.authority(), e.to_string());
                fail(
                    LocalError::BudgetExhausted(cluster.name.clone(), Box::new(last)),
                    false,
                )
            }
            Ok(Err(TryError::BodyGone)) => fail(
                LocalError::Reset(ep.authority(), "the request body was already sent".into()),
                false,
            ),
            Ok(Ok(resp)) => {
                let done = Instant::now();
                self.answered = Some(done);
                ep.observe_latency(done.saturating_duration_since(now), done);
                let status = X::status(&resp);
                let outcome = if status >= 500 {
                    Outcome::ServerError
                } else {
                    Outcome::Success
                };
                cluster.report_at(&ep, outcome, done);
                if (502..=504).contains(&status) && retry_on(RetryOn::GatewayError) && replayable {
                    let error =
                        LocalError::ConnectFailure(ep.authority(), format!("answered {status}"));
                    return TryOutcome::Failed {
                        error,
                        retry: true,
                        response: Some(resp),
                    };
                }
                TryOutcome::Done(resp)
            }
        }
    }

    fn connect_failed(&self, ep: &Endpoint, e: ConnectError) -> TryOutcome<X::Resp> {
        let cluster = &self.route.cluster;
        if matches!(e, ConnectError::Overflow) {
            cluster.stats.overflowed();
            return fail(LocalError::Overflow(cluster.name.clone()), false);
        }
        // Waiters on a shared connection's open share its one failure.
        if !matches!(e, ConnectError::Shared(_)) {
            cluster.report(ep, Outcome::ConnectFailure);
        }
        if e.is_certificate() {
            return fail(LocalError::TlsVerify(ep.authority(), e.to_string()), false);
        }
        // Nothing reached the server: safe to retry whatever the method.
        let retry = self.route.cfg.retry_on.contains(&RetryOn::ConnectFailure);
        fail(
            LocalError::ConnectFailure(ep.authority(), e.to_string()),
            retry,
        )
    }

    /// The endpoints this request already tried, to steer retries away.
    fn tried_addrs(&self) -> &[SocketAddr] {
        &self.tried[..self.tries.min(MAX_TRIES)]
    }
}

/// A request for [`raw_try`].
pub(super) struct RawRequest<'a, F> {
    /// The Host the app sent.
    pub client_host: Option<&'a [u8]>,
    /// Makes the request head for the Host the endpoint gets.
    pub head: F,
    pub body: &'a [u8],
    pub head_method: bool,
}

/// One try on the HTTP/1.1 fast path. A reused connection that turns out
/// closed before any answer is replaced when the request may be repeated.
pub(super) async fn raw_try<F: Fn(&[u8]) -> BytesMut>(
    route: &RouteEntry,
    ep: &Endpoint,
    repeatable: bool,
    now: Instant,
    req: RawRequest<'_, F>,
) -> Result<RawResponse, TryError> {
    let RawRequest {
        client_host,
        head,
        body,
        head_method,
    } = req;
    let cluster = &route.cluster;
    let made;
    let host = match client_host {
        Some(h) if cluster.passes_client_host(ep) => h,
        _ => {
            made = cluster
                .host_for(ep, None)
                .ok_or_else(|| TryError::Reset(Fault::NoHost.into()))?;
            made.as_bytes()
        }
    };
    let pool = Arc::downgrade(&cluster.pool);
    for stale in 0..MAX_STALE {
        let (conn, reused) = cluster
            .pool
            .checkout_raw(ep, !repeatable, now)
            .await
            .map_err(TryError::Connect)?;
        match conn
            .exchange(head(host), body, head_method, ep.addr, pool.clone())
            .await
        {
            Ok(resp) => return Ok(resp),
            // The closed connection may have taken the request before it
            // closed. The first replay is free: an upstream closing an idle
            // keep-alive connection is ordinary. More are retries, within
            // the budget like any, or a failing upstream would get every
            // request up to MAX_STALE times, unbudgeted.
            Err(e) if reused && repeatable && e.nothing_received() => {
                if stale > 0 && !cluster.budget.try_retry(Instant::now()) {
                    cluster.stats.budget_exhausted();
                    return Err(TryError::BudgetRefused(e.into()));
                }
            }
            Err(e) => return Err(TryError::Reset(e.into())),
        }
    }
    Err(TryError::Reset(Fault::Stale.into()))
}

/// Why a try got no response headers.
pub(super) enum TryError {
    Connect(ConnectError),
    Reset(Box<dyn std::error::Error + Send + Sync>),
    BodyGone,
    /// A replay after a stale pooled connection that the retry budget
    /// refused: the endpoint did nothing wrong, and no retry follows.
    BudgetRefused(Box<dyn std::error::Error + Send + Sync>),
}

/// A try that could not be made for a reason of Attaché's own.
#[derive(Debug, thiserror::Error)]
pub(super) enum Fault {
    #[error("cannot forward to {0:?}")]
    Target(String),
    #[error("every pooled connection to the endpoint turned out closed")]
    Stale,
    #[error("no Host header can be made for the endpoint")]
    NoHost,
}

/// The alert a TLS server sent, somewhere down an error's source chain.
fn tls_alert(mut e: &(dyn std::error::Error + 'static)) -> Option<String> {
    loop {
        // h2 keeps the io::Error out of the source chain.
        let io = e
            .downcast_ref::<std::io::Error>()
            .or_else(|| e.downcast_ref::<h2::Error>().and_then(h2::Error::get_io));
        let inner = io.and_then(|io| io.get_ref());
        let rustls = inner
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| e.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::AlertReceived(alert)) = rustls {
            return Some(format!("{alert:?}"));
        }
        // After the handshake rustls reports an alert as text.
        if let Some(alert) = inner.and_then(|i| {
            i.to_string()
                .strip_prefix("received fatal alert: ")
                .map(str::to_owned)
        }) {
            return Some(alert);
        }
        e = e.source()?;
    }
}

/// `send` until `at`, moved later by whatever time of the try went to
/// waiting for the app's upload (the try began at `began`): a slow app
/// must not make the upstream's try time out. The result, and that time.
async fn within_upload<F: std::future::Future>(
    send: F,
    began: Instant,
    mut at: Instant,
    upload: &Upload,
) -> (Result<F::Output, ()>, Duration) {
    tokio::pin!(send);
    let before = upload.waited(began);
    let mut credited = Duration::ZERO;
    loop {
        if let Ok(r) = tokio::time::timeout_at(at.into(), &mut send).await {
            return (Ok(r), credited);
        }
        let waited = upload.waited(Instant::now()).saturating_sub(before);
        if waited <= credited {
            return (Err(()), credited);
        }
        at += waited - credited;
        credited = waited;
    }
}

fn fail<R>(error: LocalError, retry: bool) -> TryOutcome<R> {
    TryOutcome::Failed {
        error,
        retry,
        response: None,
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(max, base·2ⁿ)).
fn backoff(cfg: &crate::config::http::RouteConfig, retry: u32) -> Duration {
    let cap = cfg
        .backoff
        .0
        .saturating_mul(1u32 << retry.min(16))
        .min(cfg.max_backoff.0);
    if cap.is_zero() {
        return cap;
    }
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::thread_rng().gen_range(0..nanos))
}
