use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::admin::ListenerInfo;
use crate::config;
use crate::frontend::postgres::PgContext;
use crate::frontend::redis::RedisContext;

use crate::admin::test_support::{http_admin, http_context, http_context_from, pg_context, PG};

fn admin(postgres: Option<Arc<PgContext>>, redis: Option<Arc<RedisContext>>) -> Admin {
    Admin::new(Vec::new(), postgres, redis, None)
}

/// Sample lines by series (name and labels) → value.
fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn pool_node_and_cluster_series_carry_the_live_values() {
    let pg = pg_context();
    let route = pg.route("app", "alice").unwrap();
    route.pool.stats.transactions.store(7, Ordering::Relaxed);
    route.pool.stats.checkouts.store(9, Ordering::Relaxed);
    route.pool.stats.wait_histogram.record(1_500_000);
    route.pool.stats.connect_errors.store(2, Ordering::Relaxed);
    drop(route.cluster.begin(1, false));
    drop(route.cluster.begin(0, true));
    drop(route.cluster.begin(0, true));
    route.cluster.failovers.count.store(2, Ordering::Relaxed);
    route
        .cluster
        .failovers
        .last_millis
        .store(1500, Ordering::Relaxed);

    let text = render(&admin(Some(pg), None)).unwrap();
    let s = samples(&text);
    let pool = r#"database="app",user="alice",node="127.0.0.1:1""#;
    let want = [
        (format!("attache_pg_pool_transactions_total{{{pool}}}"), "7"),
        (format!("attache_pg_pool_checkouts_total{{{pool}}}"), "9"),
        (format!("attache_pg_pool_connect_errors_total{{{pool}}}"), "2"),
        (format!("attache_pg_pool_checkout_wait_seconds_sum{{{pool}}}"), "1.5"),
        (format!("attache_pg_pool_checkout_wait_seconds_count{{{pool}}}"), "1"),
        (format!("attache_pg_pool_checkout_timeouts_total{{{pool}}}"), "0"),
        (format!("attache_pg_pool_max_server_connections{{{pool}}}"), "20"),
        (format!("attache_pg_pool_server_connections{{{pool},state=\"idle\"}}"), "0"),
        (format!("attache_pg_pool_server_connections{{{pool},state=\"active\"}}"), "0"),
        (format!("attache_pg_pool_clients_waiting{{{pool}}}"), "0"),
        (
            r#"attache_pg_node_reads_total{database="app",node="127.0.0.1:2",role="replica"}"#.into(),
            "1",
        ),
        (
            r#"attache_pg_node_writes_total{database="app",node="127.0.0.1:1",role="primary"}"#.into(),
            "2",
        ),
        (
            r#"attache_pg_node_healthy{database="app",node="127.0.0.1:1",role="primary"}"#.into(),
            "1",
        ),
        (
            r#"attache_pg_node_replica_lag_bytes{database="app",node="127.0.0.1:2",role="replica"}"#.into(),
            "0",
        ),
        (
            r#"attache_pg_node_healthy{database="other",node="127.0.0.1:3",role="unknown"}"#.into(),
            "1",
        ),
        (r#"attache_pg_cluster_failovers_total{database="app"}"#.into(), "2"),
        (
            r#"attache_pg_cluster_last_failover_duration_seconds{database="app"}"#.into(),
            "1.5",
        ),
        (r#"attache_pg_cluster_has_primary{database="app"}"#.into(), "1"),
        (r#"attache_pg_cluster_has_primary{database="other"}"#.into(), "0"),
        (r#"attache_build_info{version="0.1.0"}"#.into(), "1"),
    ];
    for (series, value) in want {
        assert_eq!(
            s.get(&series).map(String::as_str),
            Some(value),
            "{series}\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn counters_are_counters_and_gauges_gauges() {
    let pg = pg_context();
    pg.route("app", "alice").unwrap();
    let mut a = admin(Some(pg), None);
    a.http = http_admin(busy_http(), Vec::new()).http;
    let text = render(&a).unwrap();
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for (name, kind) in &types {
        let wanted = if name.ends_with("_build") || name.ends_with("_listener") {
            "info"
        } else if name.ends_with("_checkout_wait_seconds")
            || name.ends_with("_transaction_seconds")
            || name.ends_with("_request_seconds")
            || name.ends_with("_http_request_duration_seconds")
            || name.ends_with("_http_cluster_duration_seconds")
        {
            "histogram"
        } else if [
            "checkouts",
            "checkout_waits",
            "checkout_timeouts",
            "reloads",
            "connect_errors",
            "transactions",
            "discarded",
            "pool_bytes",
            "redis_bytes",
            "server_errors",
            "server_lost",
            "reads",
            "writes",
            "probe_failures",
            "failovers",
            "http_requests",
            "cluster_requests",
            "retries",
            "ejections",
            "overflows",
            "budget_exhausted",
            "local_errors",
            "connects",
        ]
        .iter()
        .any(|c| name.ends_with(&format!("_{c}")))
        {
            "counter"
        } else {
            "gauge"
        };
        assert_eq!(*kind, wanted, "{name}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = name.strip_suffix("_total").unwrap_or(name);
        let family = family.strip_suffix("_info").unwrap_or(family);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| family.strip_suffix(s))
            .filter(|f| types.get(f) == Some(&"histogram"))
            .unwrap_or(family);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("{name} has no TYPE"));
        assert_eq!(
            name.ends_with("_total"),
            *kind == "counter",
            "{name} is a {kind}"
        );
    }
    assert!(types.len() >= 40, "{types:?}");
    assert_eq!(
        types.get("attache_http_request_duration_seconds"),
        Some(&"histogram")
    );
    assert_eq!(types.get("attache_http_endpoint_up"), Some(&"gauge"));
    assert_eq!(
        types.get("attache_pg_pool_checkout_wait_seconds"),
        Some(&"histogram")
    );
}

#[tokio::test]
async fn redis_backends_are_listed_with_their_roles() {
    let cfg = config::parse(
        "[redis]\nlisten = \"127.0.0.1:0\"\nnodes = [\"127.0.0.1:7001\"]\nreplicas = [\"127.0.0.1:7002\"]\n",
    )
    .unwrap();
    let redis = Arc::new(RedisContext::new(cfg.redis.unwrap()).unwrap());
    let s = samples(&render(&admin(None, Some(redis))).unwrap());
    assert_eq!(
        s.get(r#"attache_redis_backend{mode="single",node="127.0.0.1:7001",role="primary"}"#)
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        s.get(r#"attache_redis_backend{mode="single",node="127.0.0.1:7002",role="replica"}"#)
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        s.get(r#"attache_redis_backends{mode="single"}"#)
            .map(String::as_str),
        Some("2")
    );
    assert!(!s.keys().any(|k| k.starts_with("attache_pg_")));
}

#[tokio::test]
async fn checkout_waits_fill_cumulative_buckets() {
    let pg = pg_context();
    let route = pg.route("app", "alice").unwrap();
    // 50 and 100 µs land in le=0.0001 (bounds are inclusive), 101 µs in
    // le=0.0005, 2 ms in le=0.005, 20 s above every bound.
    for us in [50, 100, 101, 2_000, 20_000_000] {
        route.pool.stats.wait_histogram.record(us);
    }
    let text = render(&admin(Some(pg), None)).unwrap();
    let s = samples(&text);
    let pool = r#"database="app",user="alice",node="127.0.0.1:1""#;
    // The encoder writes `le` before the family's labels.
    let bucket = |le: &str| {
        s.get(&format!(
            "attache_pg_pool_checkout_wait_seconds_bucket{{le=\"{le}\",{pool}}}"
        ))
        .cloned()
        .unwrap_or_else(|| panic!("no bucket le={le}\n{text}"))
    };
    let want = [
        ("0.0001", "2"),
        ("0.0005", "3"),
        ("0.001", "3"),
        ("0.005", "4"),
        ("0.01", "4"),
        ("0.05", "4"),
        ("0.1", "4"),
        ("0.5", "4"),
        ("1.0", "4"),
        ("5.0", "4"),
        ("10.0", "4"),
        ("+Inf", "5"),
    ];
    for (le, n) in want {
        assert_eq!(bucket(le), n, "le={le}\n{text}");
    }
    let get = |suffix: &str| {
        s.get(&format!(
            "attache_pg_pool_checkout_wait_seconds_{suffix}{{{pool}}}"
        ))
    };
    assert_eq!(get("count").map(String::as_str), Some("5"));
    assert_eq!(get("sum").map(String::as_str), Some("20.002251"));
    assert!(
        !text.contains("attache_pg_pool_checkout_wait_seconds_total"),
        "the histogram replaces the old counter"
    );
}

#[tokio::test]
async fn reloads_listeners_and_pg_clients() {
    let pg = pg_context();
    let cfg = config::parse(PG).unwrap();
    let reloader = Arc::new(crate::reload::Reloader::new(None, cfg, Some(pg.clone())));
    reloader.applied.store(3, Ordering::Relaxed);
    reloader.rejected.store(1, Ordering::Relaxed);
    let mut a = Admin::new(
        vec![
            ListenerInfo {
                protocol: "postgres",
                addr: "127.0.0.1:6432".parse().unwrap(),
            },
            ListenerInfo {
                protocol: "admin",
                addr: "[::1]:9187".parse().unwrap(),
            },
        ],
        Some(pg),
        None,
        None,
    );
    a.reloader = Some(reloader);
    let text = render(&a).unwrap();
    let s = samples(&text);
    let want = [
        (r#"attache_reloads_total{outcome="applied"}"#, "3"),
        (r#"attache_reloads_total{outcome="rejected"}"#, "1"),
        (
            r#"attache_listener_info{protocol="postgres",addr="127.0.0.1:6432"}"#,
            "1",
        ),
        (
            r#"attache_listener_info{protocol="admin",addr="[::1]:9187"}"#,
            "1",
        ),
        (r#"attache_pg_clients{state="active"}"#, "0"),
        (r#"attache_pg_clients{state="idle"}"#, "0"),
    ];
    for (series, value) in want {
        assert_eq!(
            s.get(series).map(String::as_str),
            Some(value),
            "{series}\n{text}"
        );
    }
    assert!(text.contains("# TYPE attache_listener info\n"), "{text}");
}

#[tokio::test]
async fn redis_node_counters_carry_the_live_values() {
    let cfg = config::parse(
        "[redis]\nlisten = \"127.0.0.1:0\"\nnodes = [\"127.0.0.1:7001\"]\nreplicas = [\"127.0.0.1:7002\"]\n",
    )
    .unwrap();
    let redis = Arc::new(RedisContext::new(cfg.redis.unwrap()).unwrap());
    let crate::core::redis::Topology::Single(primary, replicas) = &redis.topology else {
        panic!("single mode");
    };
    primary.stats.requests.store(42, Ordering::Relaxed);
    primary.stats.error_replies.store(3, Ordering::Relaxed);
    primary.stats.connects.store(2, Ordering::Relaxed);
    replicas.nodes[0]
        .stats
        .backend_errors
        .store(5, Ordering::Relaxed);
    replicas.nodes[0]
        .stats
        .failed_requests
        .store(7, Ordering::Relaxed);
    let text = render(&admin(None, Some(redis))).unwrap();
    let s = samples(&text);
    let p = r#"mode="single",node="127.0.0.1:7001",role="primary""#;
    let r = r#"mode="single",node="127.0.0.1:7002",role="replica""#;
    let want = [
        (format!("attache_redis_requests_total{{{p}}}"), "42"),
        (format!("attache_redis_error_replies_total{{{p}}}"), "3"),
        (format!("attache_redis_backend_connects_total{{{p}}}"), "2"),
        (format!("attache_redis_backend_errors_total{{{p}}}"), "0"),
        (format!("attache_redis_requests_total{{{r}}}"), "0"),
        (format!("attache_redis_backend_errors_total{{{r}}}"), "5"),
        (format!("attache_redis_requests_failed_total{{{r}}}"), "7"),
        (r#"attache_redis_clients{mode="single"}"#.into(), "0"),
    ];
    for (series, value) in want {
        assert_eq!(
            s.get(&series).map(String::as_str),
            Some(value),
            "{series}\n{text}"
        );
    }
}

/// Feeds the `payments` cluster of the HTTP fixture: two 200s and a 503
/// on its route (one retried), a 404 nobody routed, the first endpoint
/// ejected by five 5xx, `api`'s only endpoint failing its health check
/// and one retry refused by its empty budget.
fn busy_http() -> Arc<crate::frontend::http::HttpContext> {
    use crate::core::http::endpoint::Outcome;
    use std::time::Duration;
    let ctx = http_context();
    let route = &ctx.routes()[0];
    for (status, ms) in [(200, 3), (200, 3), (503, 40)] {
        route.stats.response(status, Duration::from_millis(ms));
        route
            .cluster
            .stats
            .response(status, Duration::from_millis(ms));
    }
    route.stats.retried();
    route.cluster.stats.retried();
    route.cluster.stats.local_error();
    route.cluster.stats.overflowed();
    ctx.unmatched.response(404, Duration::from_micros(100));
    let payments = &ctx.clusters["payments"];
    let first = payments.endpoints()[0].clone();
    for _ in 0..5 {
        payments.report(&first, Outcome::ServerError);
    }
    let api = &ctx.clusters["api"];
    api.endpoints()[0].set_healthy(false);
    assert!(!api.budget.try_retry(std::time::Instant::now()));
    ctx
}

#[tokio::test]
async fn http_route_cluster_and_endpoint_series_carry_the_live_values() {
    let ctx = busy_http();
    let payments = ctx.clusters["payments"].clone();
    let _slot = payments.admit().await.unwrap();
    let _try = payments.endpoints()[1].start();
    let text = render(&http_admin(ctx, Vec::new())).unwrap();
    let s = samples(&text);
    let route = r#"route="/payments/",cluster="payments""#;
    let host_route = r#"route="api.example.com/",cluster="api""#;
    let p = r#"cluster="payments""#;
    let e1 = r#"cluster="payments",endpoint="127.0.0.1:1""#;
    let e2 = r#"cluster="payments",endpoint="127.0.0.1:2""#;
    let e3 = r#"cluster="api",endpoint="127.0.0.1:3""#;
    let want = [
        (
            format!("attache_http_requests_total{{{route},class=\"2xx\"}}"),
            "2",
        ),
        (
            format!("attache_http_requests_total{{{route},class=\"5xx\"}}"),
            "1",
        ),
        (
            format!("attache_http_requests_total{{{route},class=\"1xx\"}}"),
            "0",
        ),
        (
            format!("attache_http_requests_total{{{host_route},class=\"2xx\"}}"),
            "0",
        ),
        (
            r#"attache_http_requests_total{route="",cluster="",class="4xx"}"#.into(),
            "1",
        ),
        (
            format!("attache_http_request_duration_seconds_count{{{route}}}"),
            "3",
        ),
        (
            format!("attache_http_request_duration_seconds_sum{{{route}}}"),
            "0.046",
        ),
        (
            format!("attache_http_request_duration_seconds_bucket{{le=\"0.0025\",{route}}}"),
            "0",
        ),
        (
            format!("attache_http_request_duration_seconds_bucket{{le=\"0.005\",{route}}}"),
            "2",
        ),
        (
            format!("attache_http_request_duration_seconds_bucket{{le=\"0.05\",{route}}}"),
            "3",
        ),
        (
            format!("attache_http_request_duration_seconds_bucket{{le=\"+Inf\",{route}}}"),
            "3",
        ),
        (
            r#"attache_http_request_duration_seconds_count{route="",cluster=""}"#.into(),
            "1",
        ),
        (
            format!("attache_http_cluster_requests_total{{{p},class=\"2xx\"}}"),
            "2",
        ),
        (
            format!("attache_http_cluster_requests_total{{{p},class=\"5xx\"}}"),
            "1",
        ),
        (
            format!("attache_http_cluster_duration_seconds_count{{{p}}}"),
            "3",
        ),
        (format!("attache_http_retries_total{{{p}}}"), "1"),
        (format!("attache_http_ejections_total{{{p}}}"), "1"),
        (format!("attache_http_overflows_total{{{p}}}"), "1"),
        (format!("attache_http_local_errors_total{{{p}}}"), "1"),
        (
            format!("attache_http_retry_budget_exhausted_total{{{p}}}"),
            "0",
        ),
        (
            r#"attache_http_retry_budget_exhausted_total{cluster="api"}"#.into(),
            "1",
        ),
        (
            format!("attache_http_upstream_connections{{{p},state=\"active\"}}"),
            "0",
        ),
        (
            format!("attache_http_upstream_connections{{{p},state=\"idle\"}}"),
            "0",
        ),
        (format!("attache_http_upstream_connects_total{{{p}}}"), "0"),
        (format!("attache_http_active_requests{{{p}}}"), "1"),
        (r#"attache_http_active_requests{cluster="api"}"#.into(), "0"),
        (format!("attache_http_pending_requests{{{p}}}"), "0"),
        (format!("attache_http_endpoint_up{{{e1}}}"), "0"),
        (format!("attache_http_endpoint_ejected{{{e1}}}"), "1"),
        (
            format!("attache_http_endpoint_ejections_total{{{e1}}}"),
            "1",
        ),
        (format!("attache_http_endpoint_up{{{e2}}}"), "1"),
        (format!("attache_http_endpoint_ejected{{{e2}}}"), "0"),
        (format!("attache_http_endpoint_outstanding{{{e2}}}"), "1"),
        (format!("attache_http_endpoint_up{{{e3}}}"), "0"),
        (format!("attache_http_endpoint_ejected{{{e3}}}"), "0"),
        ("attache_http_clients".into(), "0"),
    ];
    for (series, value) in want {
        assert_eq!(
            s.get(&series).map(String::as_str),
            Some(value),
            "{series}\n{text}"
        );
    }
    // Unmatched requests are all answered 404: no empty 2xx series for them.
    assert!(!s.contains_key(r#"attache_http_requests_total{route="",cluster="",class="2xx"}"#));
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn routes_with_the_same_host_and_prefix_share_one_series() {
    let ctx = http_context_from(
        "[http]\n[[http.routes]]\ncluster = \"a\"\n[[http.routes]]\nprefix = \"/\"\ncluster = \"a\"\n\
         [http.clusters.a]\nendpoints = [\"127.0.0.1:1\"]\n",
    );
    ctx.routes()[0]
        .stats
        .response(200, std::time::Duration::from_millis(1));
    let text = render(&http_admin(ctx, Vec::new())).unwrap();
    let series = r#"attache_http_request_duration_seconds_count{route="/",cluster="a"}"#;
    assert_eq!(text.matches(series).count(), 1, "{text}");
    assert_eq!(
        samples(&text)
            .get(r#"attache_http_requests_total{route="/",cluster="a",class="2xx"}"#)
            .map(String::as_str),
        Some("1")
    );
}

#[tokio::test]
async fn without_http_there_are_no_http_series() {
    let text = render(&admin(Some(pg_context()), None)).unwrap();
    assert!(!text.contains("attache_http_"), "{text}");
}

#[tokio::test]
async fn sentinel_replica_counters_carry_the_live_values() {
    let cfg = config::parse(
        "[redis]\nlisten = \"127.0.0.1:0\"\nmode = \"sentinel\"\nmaster_name = \"m\"\n\
         nodes = [\"127.0.0.1:1\"]\nread_from = \"prefer-replica\"\n",
    )
    .unwrap();
    let redis = Arc::new(RedisContext::new(cfg.redis.unwrap()).unwrap());
    let s = redis.topology.sentinel().unwrap();
    s.set_primary("10.0.0.1:6379".into());
    s.set_replicas(vec!["10.0.0.2:6379".into()]);
    s.primary().stats.requests.store(11, Ordering::Relaxed);
    let replica = s.replicas()[0].clone();
    replica.stats.requests.store(29, Ordering::Relaxed);
    replica.stats.backend_errors.store(4, Ordering::Relaxed);
    let text = render(&admin(None, Some(redis))).unwrap();
    let s = samples(&text);
    let p = r#"mode="sentinel",node="10.0.0.1:6379",role="primary""#;
    let r = r#"mode="sentinel",node="10.0.0.2:6379",role="replica""#;
    let want = [
        (format!("attache_redis_requests_total{{{p}}}"), "11"),
        (format!("attache_redis_requests_total{{{r}}}"), "29"),
        (format!("attache_redis_backend_errors_total{{{r}}}"), "4"),
        (format!("attache_redis_server_connections{{{r}}}"), "0"),
        (format!("attache_redis_backend{{{r}}}"), "1"),
    ];
    for (series, value) in want {
        assert_eq!(
            s.get(&series).map(String::as_str),
            Some(value),
            "{series}\n{text}"
        );
    }
}
