//! Pool hygiene knobs against a real server: `min_idle` keeps connections
//! warm, `server_idle_timeout` and `server_lifetime` retire them, and
//! `client_idle_timeout` disconnects idle clients with 57P05, and
//! `idle_transaction_timeout` ends clients idle inside a transaction with
//! 25P03, freeing their server connection.

mod support;
use std::time::{Duration, Instant};
use support::pgwire::*;
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

/// Pool of one, `idle_transaction_timeout = 1s`: a client idle inside a
/// transaction is ended with a FATAL 25P03 once the second is up (not
/// before), its transaction is rolled back, and the client waiting for the
/// only server connection gets it. Idle outside a transaction is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transaction_timeout_ends_the_transaction_and_frees_the_server() {
    let pg = trust_app_server();
    pg.psql("app", "create table t (n int); grant all on t to app;")
        .unwrap();
    let extra = "auth = \"trust\"\npool_size = 1\nidle_transaction_timeout = \"1s\"\ncheckout_timeout = \"20s\"";
    let attache = start_attache(&pg_config(&pg, "app", extra, "")).await;
    let addr = attache.postgres_addr.unwrap();
    let mut a = raw_login(addr, "app", "app").await;
    // Idle outside a transaction for longer than the timeout: kept.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(raw_query_one(&mut a, "select 1").await, "1");
    send(&mut a, &[query("begin; insert into t values (1)")]).await;
    let seen = read_until_ready(&mut a).await;
    assert_eq!(seen.last().map(|(_, b)| b.as_slice()), Some(&b"T"[..]));
    let idle_since = Instant::now();
    let other = tokio::spawn(async move {
        let mut b = raw_login(addr, "app", "app").await;
        raw_query_one(&mut b, "select count(*) from t").await
    });
    let (tag, body) = read_message(&mut a).await.expect("a FATAL");
    let waited = idle_since.elapsed();
    assert_eq!(tag, b'E');
    let (code, message) = error_fields(&body);
    assert_eq!(code, "25P03", "{message}");
    assert!(message.contains("idle transaction timeout"), "{message}");
    assert!(body.windows(6).any(|w| w == b"FATAL\0"), "a FATAL error");
    assert!(
        waited >= Duration::from_millis(950),
        "ended after {waited:?}"
    );
    assert!(read_message(&mut a).await.is_none(), "then closed");
    let count = tokio::time::timeout(Duration::from_secs(10), other)
        .await
        .expect("the waiting client gets the server connection")
        .unwrap();
    assert_eq!(count, "0", "the idle transaction was rolled back");
    attache.shutdown().await;
}

/// `idle_transaction_timeout = 1s`: a client inside a transaction that
/// sends a whole statement every 600 ms lives well past the second (each
/// request starts a new count), while bytes of a request that never
/// completes are not activity: the client is ended about a second after
/// its last whole request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transaction_timeout_counts_whole_requests_only() {
    let pg = trust_app_server();
    let extra = "auth = \"trust\"\nidle_transaction_timeout = \"1s\"";
    let attache = start_attache(&pg_config(&pg, "app", extra, "")).await;
    let addr = attache.postgres_addr.unwrap();
    let mut a = raw_login(addr, "app", "app").await;
    send(&mut a, &[query("begin")]).await;
    let seen = read_until_ready(&mut a).await;
    assert_eq!(seen.last().map(|(_, b)| b.as_slice()), Some(&b"T"[..]));
    let began = Instant::now();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(raw_query_one(&mut a, "select 1").await, "1");
    }
    assert!(began.elapsed() >= Duration::from_secs(3));
    // Half a Query message, then a byte more every 300 ms: never whole.
    let q = query("select 2");
    send(&mut a, &[q[..3].to_vec()]).await;
    let last_whole = Instant::now();
    let mut ended = None;
    let mut first = [0u8; 1];
    for b in &q[3..q.len() - 1] {
        tokio::select! {
            r = a.peek(&mut first) => {
                assert_eq!(r.unwrap(), 1, "the FATAL, not a close");
                ended = Some(last_whole.elapsed());
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                assert_eq!(a.try_write(&[*b]).unwrap(), 1);
            }
        }
    }
    let ended = ended.expect("ended while the request trickled in");
    assert!(
        (Duration::from_millis(900)..Duration::from_millis(2000)).contains(&ended),
        "ended {ended:?} after the last whole request"
    );
    let (tag, body) = read_message(&mut a).await.expect("a FATAL");
    assert_eq!(tag, b'E');
    let (code, message) = error_fields(&body);
    assert_eq!(code, "25P03", "{message} after {ended:?}");
    assert!(read_message(&mut a).await.is_none(), "then closed");
    attache.shutdown().await;
}
