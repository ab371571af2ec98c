use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::config;
use crate::frontend::postgres::PgContext;
use crate::frontend::redis::RedisContext;

/// `app`: a primary and a replica; `other`: one `auto` node, so no primary
/// until a probe answers (none will: nothing listens there).
const PG: &str = r#"
[postgres]
listen = "127.0.0.1:0"
min_idle = 0
[postgres.databases.app]
nodes = [{ addr = "127.0.0.1:1" }, { addr = "127.0.0.1:2", role = "replica" }]
[postgres.databases.other]
nodes = [{ addr = "127.0.0.1:3", role = "auto" }]
"#;

fn pg_context() -> Arc<PgContext> {
    let cfg = config::parse(PG).unwrap();
    Arc::new(PgContext::new(cfg.postgres.unwrap()).unwrap())
}

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
    route
        .pool
        .stats
        .wait_micros
        .store(1_500_000, Ordering::Relaxed);
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
        (format!("attache_pg_pool_checkout_wait_seconds_total{{{pool}}}"), "1.5"),
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
    let text = render(&admin(Some(pg), None)).unwrap();
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for (name, kind) in &types {
        let wanted = if name.ends_with("_build") {
            "info"
        } else if [
            "checkouts",
            "checkout_waits",
            "checkout_wait_seconds",
            "checkout_timeouts",
            "connect_errors",
            "transactions",
            "discarded",
            "reads",
            "writes",
            "probe_failures",
            "failovers",
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
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("{name} has no TYPE"));
        assert_eq!(
            name.ends_with("_total"),
            *kind == "counter",
            "{name} is a {kind}"
        );
    }
    assert!(types.len() >= 20, "{types:?}");
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
