//! Pool hygiene knobs against a real server: `min_idle` keeps connections
//! warm, `server_idle_timeout` and `server_lifetime` retire them, and
//! `client_idle_timeout` disconnects idle clients with 57P05.

mod support;
use std::time::Duration;
use support::*;

fn app_backends(pg: &PgServer) -> usize {
    pg.psql(
        "postgres",
        "select count(*) from pg_stat_activity where usename = 'app' and pid <> pg_backend_pid()",
    )
    .unwrap()
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_idle_warms_and_idle_timeout_reaps() {
    let pg = app_server();
    let toml = pg_config(
        &pg,
        "app",
        "min_idle = 3\nserver_idle_timeout = \"2s\"\npool_size = 5",
        "",
    );
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    let c = connect(addr, "app", "app", Some("app-secret")).await;
    c.simple_query("select 1").await.unwrap();
    let warmed = eventually(Duration::from_secs(5), || async { app_backends(&pg) == 3 }).await;
    assert!(
        warmed,
        "min_idle should keep 3 connections, saw {}",
        app_backends(&pg)
    );
    // Idle connections older than 2 s are reaped, and min_idle refills:
    // the pids change while the count stays.
    let before = pg.psql("postgres", "select string_agg(pid::text, ',' order by pid) from pg_stat_activity where usename = 'app'").unwrap();
    let replaced = eventually(Duration::from_secs(8), || async {
        let now = pg.psql("postgres", "select string_agg(pid::text, ',' order by pid) from pg_stat_activity where usename = 'app'").unwrap();
        now != before && app_backends(&pg) == 3
    })
    .await;
    assert!(replaced, "idle connections were not recycled");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_lifetime_retires_connections_between_transactions() {
    let pg = app_server();
    let toml = pg_config(&pg, "app", "pool_size = 1\nserver_lifetime = \"1s\"", "");
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    let c = connect(addr, "app", "app", Some("app-secret")).await;
    let pid = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .expect("a row")
    };
    let first = pid(c.simple_query("select pg_backend_pid()").await.unwrap());
    // A transaction keeps its connection even past the lifetime.
    c.simple_query("begin").await.unwrap();
    let in_tx = pid(c.simple_query("select pg_backend_pid()").await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = pid(c.simple_query("select pg_backend_pid()").await.unwrap());
    c.simple_query("commit").await.unwrap();
    assert_eq!(
        in_tx, still,
        "a connection must not change inside a transaction"
    );
    let after = pid(c.simple_query("select pg_backend_pid()").await.unwrap());
    assert_ne!(
        first, after,
        "server_lifetime should have replaced the connection"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_idle_timeout_disconnects_idle_clients_only() {
    let pg = app_server();
    let toml = pg_config(&pg, "app", "client_idle_timeout = \"500ms\"", "");
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    let idle = connect(addr, "app", "app", Some("app-secret")).await;
    let busy = connect(addr, "app", "app", Some("app-secret")).await;
    idle.simple_query("select 1").await.unwrap();
    // The busy client's query outlasts the timeout: it is not idle.
    busy.simple_query("select pg_sleep(1)").await.unwrap();
    let gone = eventually(Duration::from_secs(3), || async { idle.is_closed() }).await;
    assert!(gone, "an idle client should be disconnected");
    let err = idle.simple_query("select 1").await.unwrap_err();
    assert!(
        err.is_closed() || sqlstate(&err).as_deref() == Some("57P05"),
        "{err}"
    );
    attache.shutdown().await;
}
