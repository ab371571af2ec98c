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

/// `SHOW name` as the client's current server answers it.
async fn show(c: &Client, name: &str) -> String {
    let rows = c.simple_query(&format!("SHOW {name}")).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| panic!("SHOW {name} returned no row"))
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
    let n: i64 = a
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the rolled-back insert must not be visible");

    // A simple-protocol error outside a transaction leaves the client usable.
    let e = a.simple_query("select 1/0").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22012"), "{e}");

    a.batch_execute("begin; insert into t values (2)")
        .await
        .unwrap();
    let seen: i64 = b
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
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

    // Log everyone in first: passthrough login checks use connections of
    // their own, which are not the pool's (see the next test).
    let clients =
        futures_util::future::join_all((0..20).map(|_| connect(addr, "app", "app", PW))).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            app_backends(&su).await <= 2
        })
        .await,
        "login connections linger"
    );

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
    for (id, mut c) in (0..20i32).zip(clients) {
        tasks.push(tokio::spawn(async move {
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

/// Concurrent first logins (before the pool knows the password) must not
/// open a server connection each: passthrough may spend one connection on
/// checking the password, the rest must come from the pool. Counted from
/// the server log, which (unlike sampling pg_stat_activity) misses none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_stay_within_pool_size() {
    let pg = PgBuilder::new()
        .auth(HbaAuth::Scram)
        .user("app", "app-secret")
        .database("app")
        .setting("log_connections", "on")
        .start()
        .expect("postgres starts");
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let clients = futures_util::future::join_all((0..20).map(|_| async move {
        let c = connect(addr, "app", "app", PW).await;
        c.simple_query("select 1").await.unwrap();
        c
    }))
    .await;
    assert_eq!(clients.len(), 20);
    let log = std::fs::read_to_string(pg.log_path()).unwrap();
    let logins = log
        .lines()
        .filter(|l| l.contains("connection authorized: user=app "))
        .count();
    assert!(
        logins <= 3,
        "{logins} server logins for 20 concurrent client logins (pool_size 2)"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_stay_with_their_client() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 1").await;
    let a = connect(addr, "app", "app", PW).await;
    let b = connect_with(addr, "application_name=client-b").await;

    a.batch_execute("SET search_path TO a_schema")
        .await
        .unwrap();
    a.batch_execute("SET application_name = 'client-a'")
        .await
        .unwrap();
    assert_eq!(show(&b, "search_path").await, "\"$user\", public");
    assert_eq!(show(&b, "application_name").await, "client-b");
    assert_eq!(show(&a, "search_path").await, "a_schema");
    assert_eq!(show(&a, "application_name").await, "client-a");
    assert_eq!(show(&b, "application_name").await, "client-b");
    let pa: i32 = a
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let pb: i32 = b
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pa, pb, "pool_size 1 must share one server connection");

    a.batch_execute("RESET search_path").await.unwrap();
    assert_eq!(show(&a, "search_path").await, "\"$user\", public");

    a.batch_execute("begin").await.unwrap();
    a.batch_execute("set search_path to rolled_back")
        .await
        .unwrap();
    a.batch_execute("rollback").await.unwrap();
    assert_eq!(show(&b, "search_path").await, "\"$user\", public");
    assert_eq!(show(&a, "search_path").await, "\"$user\", public");

    a.batch_execute("begin").await.unwrap();
    a.batch_execute("set search_path to committed")
        .await
        .unwrap();
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

async fn backend_pid(c: &Client) -> i32 {
    c.query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_keeps_state_until_the_client_leaves() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_mode = \"session\"\npool_size = 1").await;
    let a = connect(addr, "app", "app", PW).await;
    let pid_a = backend_pid(&a).await;
    a.batch_execute("create temp table scratch(v int)")
        .await
        .unwrap();
    a.batch_execute("begin; insert into scratch values (1); commit")
        .await
        .unwrap();
    a.batch_execute("insert into scratch values (2)")
        .await
        .unwrap();
    let n: i64 = a
        .query_one("select count(*) from scratch", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "temp table lost between transactions");
    assert_eq!(backend_pid(&a).await, pid_a);

    // The only server connection is A's: B waits at login.
    let waiting = tokio::spawn(async move { connect(addr, "app", "app", PW).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "second client got in while pool_size 1 is held"
    );
    drop(a);
    let b = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("second client still waiting after the first left")
        .unwrap();
    assert_eq!(
        backend_pid(&b).await,
        pid_a,
        "expected the same server connection"
    );
    let e = b
        .simple_query("select count(*) from scratch")
        .await
        .unwrap_err();
    assert_eq!(
        sqlstate(&e).as_deref(),
        Some("42P01"),
        "temp table leaked: {e}"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_pins_the_server_connection() {
    use futures_util::StreamExt;
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let cs = conn_string(addr, "app", "app", PW);
    let (a, mut conn) = tokio_postgres::connect(&cs, NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n);
            }
        }
    });
    a.batch_execute("LISTEN jobs").await.unwrap();
    let pid_a = backend_pid(&a).await;

    let b = connect(addr, "app", "app", PW).await;
    b.batch_execute("begin").await.unwrap();
    assert_ne!(
        backend_pid(&b).await,
        pid_a,
        "B got the listening connection"
    );
    b.batch_execute("NOTIFY jobs, 'hello'; commit")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no notification within 5 s")
        .unwrap();
    assert_eq!((n.channel(), n.payload()), ("jobs", "hello"));

    let su = superuser(&pg).await;
    su.execute("select pg_notify('jobs', 'direct')", &[])
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no second notification within 5 s")
        .unwrap();
    assert_eq!(n.payload(), "direct");
    assert_eq!(backend_pid(&a).await, pid_a, "listening client moved");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_timeout_fails_the_request_not_the_client() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 1\ncheckout_timeout = \"300ms\"").await;
    let a = connect(addr, "app", "app", PW).await;
    let b = connect(addr, "app", "app", PW).await;
    a.batch_execute("begin; select 1").await.unwrap();

    for extended in [false, true] {
        let t0 = Instant::now();
        let e = if extended {
            b.query("select 1", &[]).await.unwrap_err()
        } else {
            b.simple_query("select 1").await.map(|_| ()).unwrap_err()
        };
        let waited = t0.elapsed();
        assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "{e}");
        let msg = e.as_db_error().unwrap().message().to_owned();
        assert!(
            msg.contains("wait"),
            "message does not mention the wait: {msg}"
        );
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
            "failed after {waited:?}"
        );
    }
    a.batch_execute("commit").await.unwrap();
    b.simple_query("select 1").await.unwrap();
    let v: i32 = b.query_one("select 7", &[]).await.unwrap().get(0);
    assert_eq!(v, 7);
    attache.shutdown().await;
}

/// Starts `select pg_sleep(10)` on `c` and waits until the server runs it;
/// returns the task and the server pid running it.
async fn start_sleep(
    su: &Client,
    c: Client,
) -> (
    tokio::task::JoinHandle<(Client, Result<(), tokio_postgres::Error>)>,
    i32,
) {
    let task = tokio::spawn(async move {
        let r = c.simple_query("select pg_sleep(10)").await.map(|_| ());
        (c, r)
    });
    let sql = "select pid from pg_stat_activity where usename = 'app' \
               and state = 'active' and query = 'select pg_sleep(10)'";
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(row) = su.query_opt(sql, &[]).await.unwrap() {
            return (task, row.get(0));
        }
        assert!(
            Instant::now() < deadline,
            "sleep never started on the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_lost(e: &tokio_postgres::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("57P01" | "08006")) || e.is_closed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backend_fails_only_its_query() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let su = superuser(&pg).await;
    let a = connect(addr, "app", "app", PW).await;
    let b = connect(addr, "app", "app", PW).await;
    b.simple_query("select 1").await.unwrap();
    let (task, pid) = start_sleep(&su, a).await;
    let t0 = Instant::now();
    su.execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let (a, r) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("query survived its backend")
        .unwrap();
    let e = r.unwrap_err();
    assert!(is_lost(&e), "unexpected error: {e:?}");
    assert!(t0.elapsed() < Duration::from_secs(3));

    let v: i32 = b.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 1, "bystander affected");
    // Outside a transaction the client connection itself survives.
    let v: i32 = a.query_one("select 2", &[]).await.unwrap().get(0);
    assert_eq!(v, 2);
    let c = connect(addr, "app", "app", PW).await;
    c.simple_query("select 3").await.unwrap();
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_recovers_after_server_crash() {
    let mut pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let su = superuser(&pg).await;
    let a = connect(addr, "app", "app", PW).await;
    let b = connect(addr, "app", "app", PW).await;
    b.simple_query("select 1").await.unwrap();
    let (task, _) = start_sleep(&su, a).await;
    tokio::task::block_in_place(|| pg.kill9());
    let (_a, r) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("query survived the server crash")
        .unwrap();
    let e = r.unwrap_err();
    assert!(is_lost(&e), "unexpected error: {e:?}");

    tokio::task::block_in_place(|| pg.start_again()).unwrap();
    // B's pooled server connection died with the server; the pool must
    // notice and connect afresh, without restarting Attaché.
    let v: i32 = b.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 1);
    let c = connect(addr, "app", "app", PW).await;
    let v: i32 = c.query_one("select 2", &[]).await.unwrap().get(0);
    assert_eq!(v, 2);
    attache.shutdown().await;
}
