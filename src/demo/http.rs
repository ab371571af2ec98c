//! Accept → respond for HTTP egress in `attache demo`: two small upstream
//! services (in-process hyper servers from the harness), one of them
//! flaky, behind Attaché's `[http]` listener; requests through Attaché all
//! succeed while the flaky one fails now and then (retries hide it), then
//! stops answering properly (it is ejected and traffic moves).

use std::net::SocketAddr;
use std::time::Duration;

use attache_harness::http::{Mode, Upstream};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::DemoError;
use crate::app::Attache;

/// Requests per phase.
const REQUESTS: u64 = 100;

pub(super) struct Services {
    steady: Upstream,
    flaky: Upstream,
}

/// Starts the two services; `None` (and a note) if they cannot start.
pub(super) async fn start() -> Option<Services> {
    let steady = Upstream::start("orders-steady").await;
    let flaky = Upstream::start("orders-flaky").await;
    match (steady, flaky) {
        (Ok(steady), Ok(flaky)) => Some(Services { steady, flaky }),
        (Err(e), _) | (_, Err(e)) => {
            println!("(HTTP part skipped: could not start the demo services: {e})");
            None
        }
    }
}

/// The `[http]` section routing `/orders/` to both services.
pub(super) fn config(s: &Services, listen: &str) -> String {
    format!(
        "\n[http]\nlisten = \"{listen}\"\n\n[[http.routes]]\nprefix = \"/orders/\"\ncluster = \"orders\"\n\
         strip_prefix = true\nretries = 2\nbackoff = \"5ms\"\n\n[http.clusters.orders]\n\
         endpoints = [\"{}\", \"{}\"]\noutlier = {{ consecutive_5xx = 3, base_ejection = \"10s\" }}\n",
        s.steady.addr(),
        s.flaky.addr()
    )
}

/// Runs the two phases and prints what happened in each.
pub(super) async fn show(s: &Services, attache: &Attache) -> Result<(), DemoError> {
    let Some(addr) = attache.http_addr else {
        return Ok(());
    };
    println!(
        "\nHTTP egress: Attaché on http://{addr}/orders/ → services :{} (steady) and :{} (flaky).",
        s.steady.addr().port(),
        s.flaky.addr().port()
    );
    println!("Try it:  curl -i http://{addr}/orders/42");
    s.flaky.set_mode(Mode::FailEvery(2));
    phase(s, attache, addr, "flaky answers 503 to every 2nd request").await?;
    s.flaky.set_mode(Mode::Status(503));
    phase(s, attache, addr, "flaky answers only 503 now").await?;
    s.flaky.set_mode(Mode::Ok);
    Ok(())
}

async fn phase(
    s: &Services,
    attache: &Attache,
    addr: SocketAddr,
    what: &str,
) -> Result<(), DemoError> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let before = counts(s, attache);
    let mut ok = 0;
    for i in 0..REQUESTS {
        let uri = format!("http://{addr}/orders/{i}")
            .parse::<http::Uri>()
            .map_err(|e| DemoError::Other(e.to_string()))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
            .await
            .map_err(|_| DemoError::Stalled {
                step: "an HTTP request through Attaché",
                after: Duration::from_secs(10),
            })?
            .map_err(|e| DemoError::Other(format!("HTTP request: {e}")))?;
        if resp.status().is_success() {
            ok += 1;
        }
        let _ = resp.into_body().collect().await;
    }
    let after = counts(s, attache);
    println!(
        "  {what}: {ok} of {REQUESTS} requests OK through Attaché | served by steady {}, flaky {} | retries {} | ejections {}",
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
        after.3 - before.3,
    );
    Ok(())
}

/// (steady requests, flaky requests, retries, ejections) so far.
fn counts(s: &Services, attache: &Attache) -> (u64, u64, u64, u64) {
    let (retries, ejections) = attache
        .http
        .as_ref()
        .and_then(|h| h.clusters.get("orders"))
        .map(|c| {
            let snap = c.stats.snapshot();
            (snap.retries, snap.ejections)
        })
        .unwrap_or_default();
    (s.steady.requests(), s.flaky.requests(), retries, ejections)
}
