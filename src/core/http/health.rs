//! Backend (HTTP): active health checks. Every `interval` each endpoint
//! gets `GET path`; `unhealthy_threshold` failures in a row (an error, a
//! timeout or a status outside 2xx) take it out of balancing, and
//! `healthy_threshold` passes in a row bring it back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use tracing::{info, warn};

use super::cluster::Cluster;
use super::endpoint::Endpoint;
use crate::config::http::HttpHealthCheck;

/// Consecutive passes and failures per endpoint, kept across rounds.
#[derive(Default)]
pub struct Checks {
    streaks: HashMap<SocketAddr, (u32, u32)>,
}

impl Checks {
    /// Checks every endpoint once (concurrently) and applies the verdicts.
    pub async fn run(&mut self, cluster: &Arc<Cluster>, hc: &HttpHealthCheck) {
        let endpoints = cluster.endpoints();
        let probes = endpoints.iter().map(|ep| probe(cluster, ep, hc));
        let results = futures_util::future::join_all(probes).await;
        self.streaks
            .retain(|a, _| endpoints.iter().any(|e| e.addr == *a));
        for (ep, ok) in endpoints.iter().zip(results) {
            let (pass, fail) = self.streaks.entry(ep.addr).or_default();
            if ok {
                *pass += 1;
                *fail = 0;
            } else {
                *fail += 1;
                *pass = 0;
            }
            if ep.healthy() && *fail >= hc.unhealthy_threshold {
                ep.set_healthy(false);
                warn!(cluster = %cluster.name, upstream.addr = %ep.addr, "endpoint failed its health checks");
            } else if !ep.healthy() && *pass >= hc.healthy_threshold {
                ep.set_healthy(true);
                info!(cluster = %cluster.name, upstream.addr = %ep.addr, "endpoint passes its health checks again");
            }
        }
    }
}

async fn probe(cluster: &Arc<Cluster>, ep: &Arc<Endpoint>, hc: &HttpHealthCheck) -> bool {
    let check = async {
        let conn = cluster.pool.checkout(ep).await.ok()?;
        let host = cluster.host_for(ep, None)?;
        let path = http::uri::PathAndQuery::from_maybe_shared(hc.path.clone()).ok()?;
        let uri = super::pool::target_uri(conn.is_h2(), cluster.config.tls.is_some(), &host, path)?;
        let mut req = Request::builder().method(Method::GET).uri(uri);
        if !conn.is_h2() {
            req = req.header(http::header::HOST, host);
        }
        let req = req
            .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
            .ok()?;
        let resp = conn.send(req).await.ok()?;
        let ok = resp.status().is_success();
        // Read the (small) body so the connection goes back to the pool.
        let _ = resp.into_body().collect().await;
        Some(ok)
    };
    matches!(
        tokio::time::timeout(hc.timeout.0, check).await,
        Ok(Some(true))
    )
}
