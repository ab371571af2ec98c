//! End-to-end pooling behaviour (route → backend → respond) against real
//! PostgreSQL: transactions and errors, consolidation onto few server
//! connections, per-client settings, session mode, LISTEN pinning, checkout
//! timeouts and server failures.

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio_postgres::{AsyncMessage, Client, NoTls};

const PW: Option<&str> = Some("app-secret");

/// A superuser client straight to the server, for looking behind Attaché.
async fn superuser(pg: &PgServer) -> Client {
    connect(pg.addr(), pg.superuser(), "app", None).await
}

/// Connects as `app` with extra libpq-style key=value pairs (startup params).
async fn connect_with(addr: std::net::SocketAddr, extra: &str) -> Client {
    let cs = format!("{} {extra}", conn_string(addr, "app", "app", PW));
    let (client, conn) = tokio_postgres::connect(&cs, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The value of a setting as the client's current server sees it.
async fn show(c: &Client, name: &str) -> String {
    let row = c
        .query_one(&format!("select current_setting('{name}')"), &[])
        .await
        .unwrap();
    row.get(0)
}

async fn app_backends(su: &Client) -> i64 {
    su.query_one(
        "select count(*) from pg_stat_activity where usename = 'app'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn start(pg: &PgServer, extra: &str) -> (attache::app::Attache, std::net::SocketAddr) {
    let a = start_attache(&pg_config(pg, "app", extra, "")).await;
    let addr = a.postgres_addr.unwrap();
    (a, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_abort_the_transaction_and_commits_are_visible() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 4").await;
    let a = connect(addr, "app", "app", PW).await;
    let b = connect(addr, "app", "app", PW).await;
    a.batch_execute("create table t(id int)").await.unwrap();

    a.batch_execute("begin").await.unwrap();
    a.execute("insert into t values (1)", &[]).await.unwrap();
    let e = a.query("select 1 / $1::int", &[&0i32]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22012"), "{e}");
    let e = a.simple_query("select 1").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"), "{e}");
    let e = a.query("select 2", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"), "{e}");
    a.batch_execute("rollback").await.unwrap();
    let n: i64 = a.query_one("select count(*) from t", &[]).await.unwrap().get(0);
    assert_eq!(n, 0, "the rolled-back insert must not be visible");

    // A simple-protocol error outside a transaction leaves the client usable.
    let e = a.simple_query("select 1/0").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22012"), "{e}");

    a.batch_execute("begin; insert into t values (2)")
        .await
        .unwrap();
    let seen: i64 = b.query_one("select count(*) from t", &[]).await.unwrap().get(0);
    assert_eq!(seen, 0, "uncommitted row visible to another client");
    a.batch_execute("commit").await.unwrap();
    let seen: i32 = b.query_one("select id from t", &[]).await.unwrap().get(0);
    assert_eq!(seen, 2);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_share_two_server_connections() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let su = superuser(&pg).await;
    su.batch_execute("create table hits(client int, n int); grant all on hits to app")
        .await
        .unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (done, peak) = (done.clone(), peak.clone());
        let su = superuser(&pg).await;
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(app_backends(&su).await, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for id in 0..20i32 {
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr, "app", "app", PW).await;
            for n in 0..20i32 {
                let tx = c.transaction().await?;
                tx.execute("insert into hits values ($1, $2)", &[&id, &n])
                    .await?;
                let mine: i64 = tx
                    .query_one("select count(*) from hits where client = $1", &[&id])
                    .await?
                    .get(0);
                assert_eq!(mine, i64::from(n) + 1);
                tx.commit().await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let total: i64 = su
        .query_one("select count(*) from hits", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 400);
    let peak = peak.load(Ordering::Relaxed);
    assert!((1..=2).contains(&peak), "peak app backends {peak}");
    assert!(app_backends(&su).await <= 2);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_stay_with_their_client() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 1").await;
    let a = connect(addr, "app", "app", PW).await;
    let b = connect_with(addr, "application_name=client-b").await;

    a.batch_execute("SET search_path TO a_schema").await.unwrap();
    a.batch_execute("SET application_name = 'client-a'")
        .await
        .unwrap();
    assert_eq!(show(&b, "search_path").await, "\"$user\", public");
    assert_eq!(show(&b, "application_name").await, "client-b");
    assert_eq!(show(&a, "search_path").await, "a_schema");
    assert_eq!(show(&a, "application_name").await, "client-a");
    assert_eq!(show(&b, "application_name").await, "client-b");
    let pa: i32 = a.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let pb: i32 = b.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(pa, pb, "pool_size 1 must share one server connection");

    a.batch_execute("RESET search_path").await.unwrap();
    assert_eq!(show(&a, "search_path").await, "\"$user\", public");

    a.batch_execute("begin").await.unwrap();
    a.batch_execute("set search_path to rolled_back").await.unwrap();
    a.batch_execute("rollback").await.unwrap();
    assert_eq!(show(&b, "search_path").await, "\"$user\", public");
    assert_eq!(show(&a, "search_path").await, "\"$user\", public");

    a.batch_execute("begin").await.unwrap();
    a.batch_execute("set search_path to committed").await.unwrap();
    a.batch_execute("commit").await.unwrap();
    assert_eq!(show(&b, "search_path").await, "\"$user\", public");
    assert_eq!(show(&a, "search_path").await, "committed");

    a.batch_execute("SET statement_timeout = '50ms'")
        .await
        .unwrap();
    let e = a.simple_query("select pg_sleep(1)").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    b.simple_query("select pg_sleep(0.2)").await.unwrap();
    let e = a.query("select pg_sleep(1)", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    attache.shutdown().await;
}
