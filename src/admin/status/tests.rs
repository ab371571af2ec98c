use std::sync::Arc;

use super::*;
use crate::config;

use crate::admin::test_support::pg_context;

fn redis_context(extra: &str) -> Arc<RedisContext> {
    let cfg = config::parse(&format!("[redis]\nlisten = \"127.0.0.1:0\"\n{extra}")).unwrap();
    Arc::new(RedisContext::new(cfg.redis.unwrap()).unwrap())
}

#[tokio::test]
async fn status_names_clusters_nodes_and_pools() {
    let pg = pg_context();
    let route = pg.route("app", "alice").unwrap();
    route.pool.stats.transactions.store(4, Ordering::Relaxed);
    let admin = Admin::new(Vec::new(), Some(pg), None, None);
    let v = serde_json::to_value(status(&admin)).unwrap();
    let app = &v["postgres"]["databases"]["app"];
    assert_eq!(app["primary"], "127.0.0.1:1");
    assert_eq!(app["nodes"][1]["addr"], "127.0.0.1:2");
    assert_eq!(app["nodes"][1]["role"], "replica");
    assert_eq!(app["nodes"][0]["healthy"], true);
    assert!(v["postgres"]["databases"]["other"]["primary"].is_null());
    let pools = v["postgres"]["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 2, "one pool per node of the route: {pools:?}");
    let primary_pool = pools.iter().find(|p| p["node"] == "127.0.0.1:1").unwrap();
    assert_eq!(primary_pool["user"], "alice");
    assert_eq!(primary_pool["database"], "app");
    assert_eq!(primary_pool["transactions"], 4);
    assert_eq!(primary_pool["max_size"], 20);
    assert!(v["redis"].is_null());
}

#[tokio::test]
async fn a_database_without_a_primary_is_not_ready() {
    let admin = Admin::new(Vec::new(), Some(pg_context()), None, None);
    assert_eq!(
        not_ready(&admin),
        vec!["postgres database \"other\": no primary".to_owned()]
    );
}

#[tokio::test]
async fn redis_nodes_by_mode() {
    let single = redis_context("nodes = [\"127.0.0.1:7001\"]\nreplicas = [\"127.0.0.1:7002\"]\n");
    assert_eq!(redis_mode(&single), "single");
    assert_eq!(
        redis_nodes(&single),
        vec![
            RedisNodeInfo {
                addr: "127.0.0.1:7001".into(),
                role: "primary"
            },
            RedisNodeInfo {
                addr: "127.0.0.1:7002".into(),
                role: "replica"
            },
        ]
    );
    let sharded = redis_context(
        "mode = \"sharded\"\nnodes = [\"127.0.0.1:7001:1 a\", \"127.0.0.1:7003:1 b\"]\n",
    );
    let nodes = redis_nodes(&sharded);
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n.role == "shard"));
    let admin = Admin::new(Vec::new(), None, Some(single), None);
    assert!(not_ready(&admin).is_empty());
    let v = serde_json::to_value(status(&admin)).unwrap();
    assert_eq!(v["redis"]["mode"], "single");
    assert_eq!(v["redis"]["nodes"][1]["addr"], "127.0.0.1:7002");
}

#[tokio::test]
async fn sentinel_mode_is_not_ready_before_a_primary_is_named() {
    // Nothing listens on the sentinel address, so no primary is learned.
    let sentinel =
        redis_context("mode = \"sentinel\"\nmaster_name = \"m\"\nnodes = [\"127.0.0.1:1\"]\n");
    assert!(redis_nodes(&sentinel).is_empty());
    let admin = Admin::new(Vec::new(), None, Some(sentinel), None);
    assert_eq!(
        not_ready(&admin),
        vec!["redis (sentinel): no server to route to".to_owned()]
    );
}

#[test]
fn the_ready_body_lists_the_listeners() {
    let admin = Admin::new(
        vec![ListenerInfo {
            protocol: "postgres",
            addr: "127.0.0.1:6432".parse().unwrap(),
        }],
        None,
        None,
        None,
    );
    assert_eq!(
        ready_body(&admin),
        "ready\npostgres listening on 127.0.0.1:6432\n"
    );
}
