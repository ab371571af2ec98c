//! End-to-end prepared statements under transaction pooling (parse → route →
//! backend): client statement names mapped onto shared server statements,
//! re-preparation when a client lands on another server connection, and
//! pgbench in every query mode.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use support::*;
use tokio_postgres::Client;

const PW: Option<&str> = Some("app-secret");

async fn start(pg: &PgServer, extra: &str) -> (attache::app::Attache, SocketAddr) {
    let a = start_attache(&pg_config(pg, "app", extra, "")).await;
    let addr = a.postgres_addr.unwrap();
    (a, addr)
}

async fn backend_pid(c: &Client) -> i32 {
    c.query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Server-side prepared statements on the connection `c` is attached to.
async fn server_statements(c: &Client) -> i64 {
    let rows = c
        .simple_query("select count(*) from pg_prepared_statements")
        .await
        .unwrap();
    first_value(&rows).parse().unwrap()
}

/// The first column of the first row of a simple query's result.
fn first_value(rows: &[tokio_postgres::SimpleQueryMessage]) -> String {
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no row in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_share_few_server_statements() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 4").await;
    // One login first, so Attaché knows the password and the 64 logins
    // below need no server round trip (concurrent_logins_stay_within_pool_size
    // in pg_pooling covers that case).
    let _first = connect(addr, "app", "app", PW).await;
    let mut tasks = Vec::new();
    for id in 0..64i32 {
        tasks.push(tokio::spawn(async move {
            let c = try_connect(addr, "app", "app", PW).await?;
            let add = c.prepare("select $1::int4 + $2::int4").await?;
            let label = c
                .prepare("select $1::text || '-' || $2::int4::text")
                .await?;
            for n in 0..50i32 {
                let sum: i32 = c.query_one(&add, &[&id, &n]).await?.get(0);
                assert_eq!(sum, id + n);
                let name = format!("c{id}");
                let l: String = c.query_one(&label, &[&name, &n]).await?.get(0);
                assert_eq!(l, format!("c{id}-{n}"));
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            errors.push(format!("{e:?}"));
        }
    }
    assert!(
        errors.is_empty(),
        "{} clients failed: {errors:?}",
        errors.len()
    );

    // Hold all four server connections at once and look at each.
    let mut holders = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..4 {
        let c = connect(addr, "app", "app", PW).await;
        c.batch_execute("begin").await.unwrap();
        let rows = c.simple_query("select pg_backend_pid()").await.unwrap();
        pids.push(first_value(&rows));
        let n = server_statements(&c).await;
        assert!(
            n <= 2,
            "a server connection holds {n} statements for 2 distinct ones"
        );
        holders.push(c);
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 4, "expected four distinct server connections");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_survive_close_deallocate_and_discard() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let c = connect(addr, "app", "app", PW).await;
    let sql = "select $1::int4 * 2";

    let s = c.prepare(sql).await.unwrap();
    assert_eq!(c.query_one(&s, &[&2i32]).await.unwrap().get::<_, i32>(0), 4);
    drop(s);
    let s = c.prepare(sql).await.unwrap();
    assert_eq!(c.query_one(&s, &[&3i32]).await.unwrap().get::<_, i32>(0), 6);

    for reset in ["DEALLOCATE ALL", "DISCARD ALL"] {
        c.batch_execute(reset).await.unwrap();
        let e = c.query_one(&s, &[&1i32]).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("26000"), "after {reset}: {e}");
        let again = c.prepare(sql).await.unwrap();
        let v: i32 = c.query_one(&again, &[&5i32]).await.unwrap().get(0);
        assert_eq!(v, 10, "after {reset}");
        // A one-off statement prepared and closed by tokio-postgres.
        let v: i32 = c.query_one(sql, &[&6i32]).await.unwrap().get(0);
        assert_eq!(v, 12);
    }

    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_follows_the_client_to_another_server_connection() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let mut a = connect(addr, "app", "app", PW).await;
    let tx = a.transaction().await.unwrap();
    let first_pid: i32 = tx
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let s = tx.prepare("select $1::text || '!'").await.unwrap();
    let v: String = tx.query_one(&s, &[&"one"]).await.unwrap().get(0);
    assert_eq!(v, "one!");
    tx.commit().await.unwrap();

    // B takes the only idle connection (the one A used) and keeps it.
    let b = connect(addr, "app", "app", PW).await;
    b.batch_execute("begin").await.unwrap();
    assert_eq!(
        backend_pid(&b).await,
        first_pid,
        "B did not get A's old connection"
    );

    let tx = a.transaction().await.unwrap();
    let pid: i32 = tx
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(pid, first_pid);
    let v: String = tx.query_one(&s, &[&"two"]).await.unwrap().get(0);
    assert_eq!(v, "two!");
    tx.commit().await.unwrap();
    b.batch_execute("commit").await.unwrap();
    // And back on the first connection, where it is already prepared.
    let v: String = a.query_one(&s, &[&"three"]).await.unwrap().get(0);
    assert_eq!(v, "three!");
    attache.shutdown().await;
}

/// What pgbench reported.
#[derive(Debug)]
struct Bench {
    processed: u64,
    failed: u64,
}

/// pgbench runs longer than this are killed: a stuck run fails fast.
const PGBENCH_LIMIT: Duration = Duration::from_secs(20);

/// Runs pgbench with `args` against `port` as user `app`; panics with its
/// output unless it exits 0 within [`PGBENCH_LIMIT`], and returns its stdout.
async fn pgbench(port: u16, args: &[&str]) -> String {
    use tokio::io::AsyncReadExt;
    let bin = attache_harness::pg_bin("pgbench").unwrap();
    let mut child = tokio::process::Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "app"])
        .args(args)
        .arg("app")
        .env("PGPASSWORD", "app-secret")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s).await;
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });
    let status = match tokio::time::timeout(PGBENCH_LIMIT, child.wait()).await {
        Ok(status) => format!("{}", status.unwrap()),
        Err(_) => {
            let _ = child.kill().await;
            format!("killed after {PGBENCH_LIMIT:?}")
        }
    };
    let (stdout, stderr) = (out.await.unwrap(), err.await.unwrap());
    let stderr: String = stderr.lines().take(20).collect::<Vec<_>>().join("\n");
    assert!(
        status == "exit status: 0",
        "pgbench {args:?}: {status}\n{stdout}\n{stderr}"
    );
    stdout
}

fn parse_bench(stdout: &str) -> Bench {
    let field = |label: &str| -> u64 {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} in pgbench output:\n{stdout}"));
        let digits: String = line
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    Bench {
        processed: field("number of transactions actually processed:"),
        failed: field("number of failed transactions:"),
    }
}

/// 64 pgbench clients, 50 transactions each, over 8 server connections.
async fn pgbench_mode(mode: &str) {
    // One pgbench at a time: three at once overload a small machine.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let pg = app_server();
    // Initialised directly against the server: the runs below are the test.
    pgbench(pg.port(), &["-i", "-s", "1", "-q"]).await;
    let (attache, addr) = start(&pg, "pool_size = 8").await;
    // Attaché learns the password from this login, so pgbench's 64 logins
    // need no server round trip.
    let _first = connect(addr, "app", "app", PW).await;
    let port = addr.port();
    let args = ["-M", mode, "-c", "64", "-j", "2", "-t", "50", "-n"];
    let bench = parse_bench(&pgbench(port, &args).await);
    assert_eq!(bench.failed, 0, "{bench:?}");
    assert_eq!(bench.processed, 64 * 50, "{bench:?}");
    let su = connect(pg.addr(), pg.superuser(), "app", None).await;
    let n: i64 = su
        .query_one("select count(*) from pgbench_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 64 * 50, "history rows");
    let backends: i64 = su
        .query_one(
            "select count(*) from pg_stat_activity where usename = 'app'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        backends <= 8,
        "{backends} server connections for pool_size 8"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared() {
    pgbench_mode("prepared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_extended() {
    pgbench_mode("extended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_simple() {
    pgbench_mode("simple").await;
}
