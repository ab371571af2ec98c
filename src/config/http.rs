//! Config → the `[http]` section: the egress listener, the routes that map a
//! request to an upstream cluster, and each cluster's endpoints, TLS,
//! balancing and resilience settings.
//!
//! ```toml
//! [http]
//! listen = "127.0.0.1:15000"
//!
//! [[http.routes]]
//! prefix = "/payments/"
//! cluster = "payments"
//! strip_prefix = true
//!
//! [http.clusters.payments]
//! endpoints = ["10.0.0.5:8443", "payments.internal:8443"]
//! tls = {}
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::units::{ByteSize, Dur};

/// `[http]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Default `127.0.0.1:15000`.
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// Default 10 000; the connection over the limit gets a 503.
    #[serde(default = "defaults::max_client_connections")]
    pub max_client_connections: usize,
    /// Request bodies up to this size are kept so a failed try can be
    /// retried; a bigger body streams through and is never retried.
    #[serde(default = "defaults::max_retry_body")]
    pub max_retry_body: ByteSize,
    /// The header carrying each request's id (kept when the app sent one).
    #[serde(default = "defaults::request_id_header")]
    pub request_id_header: String,
    /// A request or response body that sends nothing for this long is cut,
    /// and so is an app that takes no response bytes for this long
    /// (Envoy's `stream_idle_timeout`, though 0 is refused here rather
    /// than meaning no limit); default 5 minutes.
    #[serde(default = "defaults::stream_idle_timeout")]
    pub stream_idle_timeout: Dur,
    /// A request's whole body must be in within this long of its head
    /// (Envoy's `request_timeout`): an upload still arriving then is cut
    /// and answered 408, and gives its upstream connection and cluster slot
    /// back. Unset (the default): no limit but `stream_idle_timeout` on
    /// each quiet spell (as nginx's per-read `client_body_timeout`), so an
    /// app trickling a streamed upload holds them as long as it trickles.
    #[serde(default)]
    pub request_body_timeout: Option<Dur>,
    /// Tried in file order; the first that matches serves the request.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    pub clusters: BTreeMap<String, ClusterConfig>,
}

/// `[[http.routes]]`: a path prefix and/or Host header → a cluster.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Matches paths starting with this; default `/` (every path).
    #[serde(default = "defaults::prefix")]
    pub prefix: String,
    /// Matches this Host header (port ignored, case-insensitive); a leading
    /// `*.` matches any subdomain. Unset: any host.
    pub host: Option<String>,
    pub cluster: String,
    /// Remove the matched prefix before forwarding (`/payments/charge` →
    /// `/charge`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replace the matched prefix with this (`/v2/`); wins over
    /// `strip_prefix`.
    pub rewrite: Option<String>,
    /// The whole request, all tries and backoff included (default 15s).
    #[serde(default = "defaults::timeout")]
    pub timeout: Dur,
    /// Each try until response headers (default: the whole `timeout`).
    pub per_try_timeout: Option<Dur>,
    /// Retries after the first try (default 2; 0 disables).
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// What a retry answers (default: all of them).
    #[serde(default = "defaults::retry_on")]
    pub retry_on: Vec<RetryOn>,
    /// Retry POST, PATCH and other non-idempotent methods too (default off:
    /// the first try may have been acted on).
    #[serde(default)]
    pub retry_non_idempotent: bool,
    /// First backoff between tries; doubles per retry, with full jitter.
    #[serde(default = "defaults::backoff")]
    pub backoff: Dur,
    #[serde(default = "defaults::max_backoff")]
    pub max_backoff: Dur,
}

/// Which failures a route retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// The endpoint could not be reached (refused, connect timeout, TLS).
    ConnectFailure,
    /// The connection broke before response headers arrived.
    Reset,
    /// A 502, 503 or 504 from the upstream.
    GatewayError,
    /// `per_try_timeout` elapsed.
    Timeout,
}

/// `[http.clusters.NAME]`: the endpoints of one upstream service.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `host:port`, optionally ` weight=N` after a space. A host that is a
    /// name is resolved, and re-resolved every `dns_refresh`.
    pub endpoints: Vec<String>,
    #[serde(default = "defaults::dns_refresh")]
    pub dns_refresh: Dur,
    /// Present: endpoints are `https` (the app still speaks plain HTTP).
    pub tls: Option<HttpTls>,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    #[serde(default)]
    pub balance: HttpBalance,
    /// The Host header sent upstream. Unset: an endpoint given by name gets
    /// its name, one given by address gets the app's Host.
    pub host_header: Option<String>,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Dur,
    /// An idle pooled connection is closed after this.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Dur,
    #[serde(default = "defaults::max_idle_per_endpoint")]
    pub max_idle_per_endpoint: usize,
    /// Circuit breaking: open upstream connections (all endpoints).
    #[serde(default = "defaults::limit")]
    pub max_connections: usize,
    /// Circuit breaking: requests in flight at once.
    #[serde(default = "defaults::limit")]
    pub max_requests: usize,
    /// Circuit breaking: requests waiting for a `max_requests` slot; one
    /// more gets a 503 at once.
    #[serde(default = "defaults::limit")]
    pub max_pending_requests: usize,
    #[serde(default)]
    pub outlier: OutlierConfig,
    pub health_check: Option<HttpHealthCheck>,
    #[serde(default)]
    pub retry_budget: RetryBudgetConfig,
}

/// `https` upstream settings. Certificates are verified against the
/// system roots (or `ca_file`) and the endpoint's name unless `verify =
/// false`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    pub ca_file: Option<PathBuf>,
    /// mTLS: the certificate and key Attaché presents.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// SNI and the name verified; default the endpoint's host.
    pub server_name: Option<String>,
    #[serde(default = "defaults::yes")]
    pub verify: bool,
}

/// The HTTP version spoken to the endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamProtocol {
    /// HTTP/2 when TLS ALPN agrees, else HTTP/1.1.
    #[default]
    Auto,
    Http1,
    /// HTTP/2 only (h2c on plain connections).
    Http2,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpBalance {
    /// Weighted round-robin.
    #[default]
    RoundRobin,
    /// The endpoint with fewer requests in flight (of two chosen at
    /// random, by weight).
    LeastRequest,
    /// Of two endpoints chosen at random, the one with the lower EWMA of
    /// latency times requests in flight.
    P2cEwma,
}

/// Passive health: endpoints that keep failing are ejected for a while.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// Consecutive 5xx answers that eject (0 disables).
    #[serde(default = "defaults::consecutive_5xx")]
    pub consecutive_5xx: u32,
    /// Consecutive connect failures or resets that eject (0 disables).
    #[serde(default = "defaults::consecutive_connect_failures")]
    pub consecutive_connect_failures: u32,
    /// The first ejection's length; each further one adds this much.
    #[serde(default = "defaults::base_ejection")]
    pub base_ejection: Dur,
    #[serde(default = "defaults::max_ejection")]
    pub max_ejection: Dur,
    /// At most this share of a cluster's endpoints is ejected at once.
    #[serde(default = "defaults::max_ejection_percent")]
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_5xx: defaults::consecutive_5xx(),
            consecutive_connect_failures: defaults::consecutive_connect_failures(),
            base_ejection: defaults::base_ejection(),
            max_ejection: defaults::max_ejection(),
            max_ejection_percent: defaults::max_ejection_percent(),
        }
    }
}

/// Active health checks: `GET path` on each endpoint every `interval`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpHealthCheck {
    #[serde(default = "defaults::health_path")]
    pub path: String,
    #[serde(default = "defaults::health_interval")]
    pub interval: Dur,
    #[serde(default = "defaults::health_timeout")]
    pub timeout: Dur,
    /// Consecutive passes that bring an endpoint back.
    #[serde(default = "defaults::one")]
    pub healthy_threshold: u32,
    /// Consecutive failures (non-2xx, error, timeout) that take it out.
    #[serde(default = "defaults::two")]
    pub unhealthy_threshold: u32,
}

/// Retries may add at most `percent` % to the requests of the last ten
/// seconds (plus `min_per_second`, so a quiet cluster can still retry).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetConfig {
    #[serde(default = "defaults::budget_percent")]
    pub percent: f64,
    #[serde(default = "defaults::budget_min")]
    pub min_per_second: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            percent: defaults::budget_percent(),
            min_per_second: defaults::budget_min(),
        }
    }
}

/// One parsed `endpoints` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub host: String,
    pub port: u16,
    pub weight: u32,
}

impl EndpointSpec {
    /// `host:port` or `host:port weight=N`; `[::1]:80` for IPv6.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.split_whitespace();
        let addr = parts.next().ok_or("empty endpoint")?;
        let mut weight = 1;
        for extra in parts {
            let w = extra
                .strip_prefix("weight=")
                .ok_or_else(|| format!("unknown endpoint option {extra:?} (expected weight=N)"))?;
            weight = w
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=1000).contains(w))
                .ok_or_else(|| format!("weight must be 1..=1000, got {w:?}"))?;
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("{addr:?} is not host:port"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port in {addr:?}"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(format!("{addr:?} has no host"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
            weight,
        })
    }

    /// Whether the host is an IP literal (never resolved).
    pub fn is_ip(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_ok()
    }
}

mod defaults {
    use super::{ByteSize, Dur, RetryOn};
    use std::time::Duration;

    pub fn listen() -> String {
        "127.0.0.1:15000".into()
    }
    pub fn max_client_connections() -> usize {
        10_000
    }
    pub fn max_retry_body() -> ByteSize {
        ByteSize(64 << 10)
    }
    pub fn request_id_header() -> String {
        "x-request-id".into()
    }
    pub fn stream_idle_timeout() -> Dur {
        Dur(Duration::from_secs(300))
    }
    pub fn prefix() -> String {
        "/".into()
    }
    pub fn timeout() -> Dur {
        Dur(Duration::from_secs(15))
    }
    pub fn retries() -> u32 {
        2
    }
    pub fn retry_on() -> Vec<RetryOn> {
        vec![
            RetryOn::ConnectFailure,
            RetryOn::Reset,
            RetryOn::GatewayError,
            RetryOn::Timeout,
        ]
    }
    pub fn backoff() -> Dur {
        Dur(Duration::from_millis(25))
    }
    pub fn max_backoff() -> Dur {
        Dur(Duration::from_millis(250))
    }
    pub fn dns_refresh() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub fn connect_timeout() -> Dur {
        Dur(Duration::from_secs(2))
    }
    pub fn idle_timeout() -> Dur {
        Dur(Duration::from_secs(60))
    }
    pub fn max_idle_per_endpoint() -> usize {
        64
    }
    pub fn limit() -> usize {
        1024
    }
    pub fn yes() -> bool {
        true
    }
    pub fn consecutive_5xx() -> u32 {
        5
    }
    pub fn consecutive_connect_failures() -> u32 {
        3
    }
    pub fn base_ejection() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub fn max_ejection() -> Dur {
        Dur(Duration::from_secs(300))
    }
    pub fn max_ejection_percent() -> u32 {
        50
    }
    pub fn health_path() -> String {
        "/healthz".into()
    }
    pub fn health_interval() -> Dur {
        Dur(Duration::from_secs(5))
    }
    pub fn health_timeout() -> Dur {
        Dur(Duration::from_secs(1))
    }
    pub fn one() -> u32 {
        1
    }
    pub fn two() -> u32 {
        2
    }
    pub fn budget_percent() -> f64 {
        20.0
    }
    pub fn budget_min() -> u32 {
        3
    }
}
