//! The admin endpoint in front of HTTP egress: requests proxied to real
//! upstreams (one healthy, one answering 503) show up in `/metrics` and
//! `/status` per route, cluster and endpoint — status classes, latency,
//! the retry the 503 caused, the ejection that followed, the local error
//! once nothing was left — and `/readyz` stays ready with an upstream out.

mod support;

use std::net::SocketAddr;

use serde_json::Value;
use support::http::{get, h1_client, Mode, Reply, TestClient, Upstream};
use support::start_attache;

/// `svc` holds both upstreams (the 503 one is ejected after one answer and
/// its request retried on the other); `down` holds only the 503 one and
/// does not retry, so its 503 reaches the app and, once the endpoint is
/// ejected, Attaché answers itself.
fn config(bad: SocketAddr, good: SocketAddr) -> String {
    format!(
        r#"
[http]
[[http.routes]]
prefix = "/svc/"
cluster = "svc"
[[http.routes]]
prefix = "/down/"
cluster = "down"
retries = 0
[[http.routes]]
host = "api.example.com"
cluster = "svc"

[http.clusters.svc]
endpoints = ["{bad}", "{good}"]
[http.clusters.svc.outlier]
consecutive_5xx = 1

[http.clusters.down]
endpoints = ["{bad}"]
[http.clusters.down.outlier]
consecutive_5xx = 1

[admin]
listen = "127.0.0.1:0"
"#
    )
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(k, _)| *k == series)
        .and_then(|(_, v)| v.parse().ok())
}

fn must(metrics: &str, series: &str) -> f64 {
    sample(metrics, series).unwrap_or_else(|| panic!("no sample {series}:\n{metrics}"))
}

async fn admin_get(c: &TestClient, admin: SocketAddr, path: &str) -> Reply {
    let r = get(c, admin, path, &[]).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r
}

#[tokio::test]
async fn proxied_requests_show_in_metrics_status_and_readiness() {
    let bad = Upstream::builder()
        .name("bad")
        .mode(Mode::Status(503))
        .start()
        .await
        .unwrap();
    let good = Upstream::start("good").await.unwrap();
    let app = start_attache(&config(bad.addr(), good.addr())).await;
    let proxy = app.http_addr.expect("http listener");
    let admin = app.admin_addr.expect("admin listener");
    let c = h1_client();

    const SVC: usize = 4;
    for i in 0..SVC {
        let r = get(&c, proxy, &format!("/svc/{i}"), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
    for _ in 0..2 {
        let r = get(&c, proxy, "/other", &[("host", "api.example.com")]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = get(&c, proxy, "/down/x", &[]).await;
    assert_eq!(r.status, 503, "the upstream's own 503, relayed");
    assert_eq!(r.header("x-attache-error"), None);
    let r = get(&c, proxy, "/down/x", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-attache-error"), Some("ejected"));
    assert_eq!(get(&c, proxy, "/nowhere", &[]).await.status, 404);
    assert_eq!(bad.requests(), 2, "one try from each cluster, then ejected");
    assert_eq!(good.requests(), SVC as u64 + 2);

    let ac = h1_client();
    let m = admin_get(&ac, admin, "/metrics").await.body;
    let svc = r#"route="/svc/",cluster="svc""#;
    let api = r#"route="api.example.com/",cluster="svc""#;
    let down = r#"route="/down/",cluster="down""#;
    let want = [
        (
            format!("attache_http_requests_total{{{svc},class=\"2xx\"}}"),
            SVC as f64,
        ),
        (
            format!("attache_http_requests_total{{{svc},class=\"5xx\"}}"),
            0.0,
        ),
        (
            format!("attache_http_requests_total{{{api},class=\"2xx\"}}"),
            2.0,
        ),
        (
            format!("attache_http_requests_total{{{down},class=\"5xx\"}}"),
            2.0,
        ),
        (
            r#"attache_http_requests_total{route="",cluster="",class="4xx"}"#.into(),
            1.0,
        ),
        (
            format!("attache_http_request_duration_seconds_count{{{svc}}}"),
            SVC as f64,
        ),
        (
            format!("attache_http_request_duration_seconds_bucket{{le=\"+Inf\",{api}}}"),
            2.0,
        ),
        (
            r#"attache_http_cluster_requests_total{cluster="svc",class="2xx"}"#.into(),
            6.0,
        ),
        (
            r#"attache_http_cluster_requests_total{cluster="down",class="5xx"}"#.into(),
            2.0,
        ),
        (
            r#"attache_http_cluster_duration_seconds_count{cluster="svc"}"#.into(),
            6.0,
        ),
        (r#"attache_http_retries_total{cluster="svc"}"#.into(), 1.0),
        (r#"attache_http_retries_total{cluster="down"}"#.into(), 0.0),
        (r#"attache_http_ejections_total{cluster="svc"}"#.into(), 1.0),
        (
            r#"attache_http_ejections_total{cluster="down"}"#.into(),
            1.0,
        ),
        (
            r#"attache_http_local_errors_total{cluster="svc"}"#.into(),
            0.0,
        ),
        (
            r#"attache_http_local_errors_total{cluster="down"}"#.into(),
            1.0,
        ),
        (r#"attache_http_overflows_total{cluster="svc"}"#.into(), 0.0),
        (
            r#"attache_http_retry_budget_exhausted_total{cluster="svc"}"#.into(),
            0.0,
        ),
        (r#"attache_http_active_requests{cluster="svc"}"#.into(), 0.0),
        (
            r#"attache_http_pending_requests{cluster="svc"}"#.into(),
            0.0,
        ),
        (
            r#"attache_http_upstream_connects_total{cluster="down"}"#.into(),
            1.0,
        ),
    ];
    for (series, value) in want {
        assert_eq!(must(&m, &series), value, "{series}\n{m}");
    }
    let ep =
        |cluster: &str, u: &Upstream| format!("cluster=\"{cluster}\",endpoint=\"{}\"", u.addr());
    for (series, value) in [
        (
            format!("attache_http_endpoint_up{{{}}}", ep("svc", &bad)),
            0.0,
        ),
        (
            format!("attache_http_endpoint_ejected{{{}}}", ep("svc", &bad)),
            1.0,
        ),
        (
            format!(
                "attache_http_endpoint_ejections_total{{{}}}",
                ep("svc", &bad)
            ),
            1.0,
        ),
        (
            format!("attache_http_endpoint_up{{{}}}", ep("svc", &good)),
            1.0,
        ),
        (
            format!("attache_http_endpoint_ejected{{{}}}", ep("svc", &good)),
            0.0,
        ),
        (
            format!("attache_http_endpoint_outstanding{{{}}}", ep("svc", &good)),
            0.0,
        ),
        (
            format!("attache_http_endpoint_up{{{}}}", ep("down", &bad)),
            0.0,
        ),
    ] {
        assert_eq!(must(&m, &series), value, "{series}\n{m}");
    }
    // One connection to each upstream at least; the good one's may have
    // been replaced while a response was still returning it to the pool.
    let connects = must(&m, r#"attache_http_upstream_connects_total{cluster="svc"}"#);
    assert!(connects >= 2.0, "{connects}");
    let conns = must(
        &m,
        r#"attache_http_upstream_connections{cluster="svc",state="active"}"#,
    ) + must(
        &m,
        r#"attache_http_upstream_connections{cluster="svc",state="idle"}"#,
    );
    assert!(conns <= connects, "{conns} open of {connects} opened");
    let clients = must(&m, "attache_http_clients");
    assert!(
        (1.0..=9.0).contains(&clients),
        "the test client's keep-alive connection: {clients}"
    );
    assert_eq!(
        must(
            &m,
            &format!("attache_listener_info{{protocol=\"http\",addr=\"{proxy}\"}}")
        ),
        1.0
    );

    let s: Value = serde_json::from_str(&admin_get(&ac, admin, "/status").await.body).unwrap();
    let h = &s["http"];
    assert_eq!(h["listen"], proxy.to_string());
    assert_eq!(h["unmatched"]["4xx"], 1);
    assert_eq!(h["routes"][0]["prefix"], "/svc/");
    assert_eq!(h["routes"][0]["cluster"], "svc");
    assert_eq!(h["routes"][0]["requests"]["2xx"], SVC);
    assert_eq!(h["routes"][1]["local_errors"], 1);
    assert_eq!(h["routes"][2]["host"], "api.example.com");
    assert_eq!(h["routes"][2]["requests"]["2xx"], 2);
    let route_retries: u64 = (0..3)
        .map(|i| h["routes"][i]["retries"].as_u64().unwrap())
        .sum();
    assert_eq!(route_retries, 1);
    let svc = &h["clusters"]["svc"];
    assert_eq!(svc["retries"], 1);
    assert_eq!(svc["ejections"], 1);
    assert_eq!(svc["overflows"], 0);
    assert_eq!(svc["active_requests"], 0);
    assert_eq!(svc["pending_requests"], 0);
    assert!(svc["pool"]["open"].as_u64().unwrap() >= 1, "{svc}");
    let eps = svc["endpoints"].as_array().unwrap();
    let find = |u: &Upstream| {
        eps.iter()
            .find(|e| e["addr"] == u.addr().to_string())
            .unwrap_or_else(|| panic!("{} not in {eps:?}", u.addr()))
    };
    let (b, g) = (find(&bad), find(&good));
    assert_eq!(
        (&b["available"], &b["ejected"], &b["healthy"]),
        (&false.into(), &true.into(), &true.into())
    );
    assert_eq!(
        (&g["available"], &g["ejected"], &g["outstanding"]),
        (&true.into(), &false.into(), &0.into())
    );
    assert_eq!(g["weight"], 1);
    assert!(g["ewma_ms"].as_f64().unwrap() > 0.0, "{g}");
    assert_eq!(h["clusters"]["down"]["endpoints"][0]["ejected"], true);

    // Every endpoint of `down` is out, yet the instance is ready: that
    // route's requests get answers of their own, the others are served.
    let r = admin_get(&ac, admin, "/readyz").await;
    assert!(
        r.body.contains(&format!("http listening on {proxy}")),
        "{}",
        r.body
    );
    app.shutdown().await;
}
