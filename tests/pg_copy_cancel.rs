//! End-to-end streaming and out-of-band paths (accept → parse → backend →
//! respond): 100 MB COPY both ways, query cancellation through Attaché's own
//! cancel keys, and clients that send garbage or oversized messages.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::{pin_mut, SinkExt, StreamExt};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};

const PW: Option<&str> = Some("app-secret");

/// Cancels in the late-signal test: each is a chance for the race.
const ROUNDS: usize = 25;

async fn start(pg: &PgServer, extra: &str) -> (attache::app::Attache, SocketAddr) {
    let a = start_attache(&pg_config(pg, "app", extra, "")).await;
    let addr = a.postgres_addr.unwrap();
    (a, addr)
}

async fn one(c: &Client, sql: &str) -> i32 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

const ROWS: usize = 1_000_000;
const PAYLOAD: usize = 95;

/// Builds the COPY text rows: `i<TAB>95 copies of one letter<LF>`, about
/// 100 bytes each, cheaply (this runs a million times in a debug build).
struct Rows {
    /// `\t` + payload + `\n` for each letter.
    tails: Vec<Vec<u8>>,
}

impl Rows {
    fn new() -> Self {
        let tails = (b'a'..=b'z')
            .map(|l| {
                let mut t = vec![b'\t'];
                t.resize(PAYLOAD + 1, l);
                t.push(b'\n');
                t
            })
            .collect();
        Rows { tails }
    }

    fn push(&self, buf: &mut BytesMut, i: usize) {
        use std::fmt::Write;
        let _ = write!(buf, "{i}");
        buf.extend_from_slice(&self.tails[i % 26]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_100_mb_in_and_out() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let c = connect(addr, "app", "app", PW).await;
    c.batch_execute("create unlogged table big(id int, payload text)")
        .await
        .unwrap();
    let t0 = Instant::now();
    let rows = Rows::new();
    let sink = c.copy_in("copy big from stdin").await.unwrap();
    pin_mut!(sink);
    let mut sent = 0u64;
    let mut chunk = BytesMut::with_capacity(80 * 1024);
    for i in 0..ROWS {
        rows.push(&mut chunk, i);
        if chunk.len() >= 64 * 1024 || i + 1 == ROWS {
            sent += chunk.len() as u64;
            sink.send(chunk.split().freeze()).await.unwrap();
        }
    }
    let copied = sink.as_mut().finish().await.unwrap();
    assert_eq!(copied, ROWS as u64);
    assert!(sent > 100_000_000, "only {sent} bytes generated");
    let copy_in = t0.elapsed();

    // The server sends one CopyData per row; check each against the row
    // its id says it should be, and that every id comes back once. (A
    // second client, so a problem left behind by COPY FROM on the first
    // shows up separately below.)
    let reader = connect(addr, "app", "app", PW).await;
    let out = reader.copy_out("copy big to stdout").await.unwrap();
    pin_mut!(out);
    let (mut got, mut seen) = (0u64, vec![false; ROWS]);
    let mut want = BytesMut::with_capacity(128);
    while let Some(data) = out.next().await {
        let data = data.unwrap();
        got += data.len() as u64;
        let tab = data.iter().position(|&b| b == b'\t').unwrap();
        let id: usize = std::str::from_utf8(&data[..tab]).unwrap().parse().unwrap();
        assert!(!std::mem::replace(&mut seen[id], true), "row {id} twice");
        want.clear();
        rows.push(&mut want, id);
        assert!(data[..] == want[..], "row {id} differs: {data:?}");
    }
    assert_eq!(got, sent);
    assert!(seen.iter().all(|&s| s), "rows missing");
    eprintln!("COPY in {copy_in:?}, out {:?}", t0.elapsed() - copy_in);

    let su = connect(pg.addr(), pg.superuser(), "app", None).await;
    let row = su
        .query_one("select count(*), sum(length(payload))::int8 from big", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), ROWS as i64);
    assert_eq!(row.get::<_, i64>(1), (ROWS * PAYLOAD) as i64);
    assert_eq!(one(&reader, "select 1").await, 1, "unusable after COPY TO");
    let after = c.query_one("select 2", &[]).await;
    assert_eq!(
        after.as_ref().map(|r| r.get::<_, i32>(0)).ok(),
        Some(2),
        "unusable after COPY FROM: {after:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "COPY took {:?}",
        t0.elapsed()
    );
    attache.shutdown().await;
}

/// COPY FROM STDIN over the extended protocol: the Sync sent with the
/// Execute arrives while the server is in copy-in mode, and PostgreSQL
/// ignores it (no ReadyForQuery). The session must stay in step: replies in
/// order, and the server connection returned to the pool afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_copy_in_keeps_the_session_in_step() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 1\ncheckout_timeout = \"1s\"").await;
    let a = connect(addr, "app", "app", PW).await;
    let b = connect(addr, "app", "app", PW).await;
    a.batch_execute("create table small(v int)").await.unwrap();
    let sink = a.copy_in("copy small from stdin").await.unwrap();
    pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n2\n3\n"))
        .await
        .unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 3);
    // Only one server connection: B needs A to have released it.
    let r = b.query_one("select count(*)::int from small", &[]).await;
    assert_eq!(
        r.as_ref().map(|r| r.get::<_, i32>(0)).ok(),
        Some(3),
        "{r:?}"
    );
    let r = a.query_one("select 4", &[]).await;
    assert_eq!(
        r.as_ref().map(|r| r.get::<_, i32>(0)).ok(),
        Some(4),
        "{r:?}"
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_running_query_only() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 1").await;
    let a = connect(addr, "app", "app", PW).await;
    let b = connect(addr, "app", "app", PW).await;
    let mut a = Some(a);
    for extended in [false, true] {
        let c = a.take().unwrap();
        let token = c.cancel_token();
        let task = tokio::spawn(async move {
            let r = if extended {
                c.query("select pg_sleep(10)", &[]).await.map(|_| ())
            } else {
                c.simple_query("select pg_sleep(10)").await.map(|_| ())
            };
            (c, r)
        });
        // Cancel once the server runs it: a cancel that arrives before
        // the query would find nothing to cancel, on a server too.
        if !wait_running(&pg, "select pg_sleep(10)").await {
            let (_, r) = task.await.expect("query task");
            panic!("extended {extended}: the query never ran on the server; it ended with {r:?}");
        }
        let t0 = Instant::now();
        token.cancel_query(NoTls).await.unwrap();
        let (c, r) = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("cancelled query still running 5 s after the cancel")
            .unwrap();
        let e = r.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        // No pause: the connection stays out of use until PostgreSQL has
        // finished with the cancel (see the next test).
        assert_eq!(
            one(&c, "select 5").await,
            5,
            "connection unusable after cancel"
        );
        a = Some(c);
    }
    let a = a.unwrap();

    // B is idle: its cancel must not hit A's query on the (only) server
    // connection B used before.
    assert_eq!(one(&b, "select 1").await, 1);
    let idle_token = b.cancel_token();
    let task = tokio::spawn(async move { a.simple_query("select pg_sleep(1.5)").await });
    assert!(wait_running(&pg, "select pg_sleep(1.5)").await, "never ran");
    idle_token.cancel_query(NoTls).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        r.is_ok(),
        "an idle client's cancel hit another client: {r:?}"
    );
    assert_eq!(one(&b, "select 2").await, 2);
    attache.shutdown().await;
}

/// PostgreSQL's postmaster signals a cancelled backend twice (the process,
/// then its process group), and the second SIGINT can land after the first
/// ended the query. A client queued for the only server connection gets it
/// the moment the cancelled query ends: Attaché must hold the connection
/// back until the postmaster is done, or that client's statement is the
/// one the late signal cancels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_never_reaches_the_next_client_on_its_server() {
    late_signal_rounds("transaction").await;
}

/// The same late signal, on the statement the cancelling client sends next
/// over a server connection it keeps (session mode): Attaché holds that
/// statement back until the postmaster is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_never_reaches_the_clients_next_statement() {
    late_signal_rounds("session").await;
}

async fn late_signal_rounds(pool_mode: &str) {
    let pg = app_server();
    let extra = format!("pool_size = 1\npool_mode = \"{pool_mode}\"");
    let (attache, addr) = start(&pg, &extra).await;
    let a = Arc::new(connect(addr, "app", "app", PW).await);
    // With one server connection in session mode, A keeps it: no B.
    let b = match pool_mode {
        "transaction" => Some(Arc::new(connect(addr, "app", "app", PW).await)),
        _ => None,
    };
    // A busy machine is where the postmaster gets preempted between its two
    // signals; keep the cores busy so the race gets its chances.
    let _load = Spinners::start(3);
    for round in 0..ROUNDS {
        // A sends its next statement as soon as the cancel ends its query,
        // without waiting for its cancel request to finish.
        let a_task = {
            let a = a.clone();
            tokio::spawn(async move {
                let cancelled = a.simple_query("select pg_sleep(10)").await.map(|_| ());
                let next = a.simple_query("select pg_sleep(0.05)").await.map(|_| ());
                (cancelled, next)
            })
        };
        assert!(
            wait_running(&pg, "select pg_sleep(10)").await,
            "round {round}: never ran"
        );
        // B waits for the server connection A holds.
        let b_task = b.clone().map(|b| {
            tokio::spawn(async move { b.simple_query("select pg_sleep(0.05)").await.map(|_| ()) })
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let token = a.cancel_token();
        let cancel = tokio::spawn(async move { token.cancel_query(NoTls).await });
        let (cancelled, next) = tokio::time::timeout(Duration::from_secs(5), a_task)
            .await
            .expect("cancelled query still running 5 s after the cancel")
            .unwrap();
        let e = cancelled.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "round {round}: {e}");
        assert!(
            next.is_ok(),
            "round {round}: A's cancel hit its next statement: {next:?}"
        );
        cancel.await.unwrap().unwrap();
        if let Some(b_task) = b_task {
            let r = tokio::time::timeout(Duration::from_secs(5), b_task)
                .await
                .expect("the next client's query never finished")
                .unwrap();
            assert!(r.is_ok(), "round {round}: A's cancel hit B's query: {r:?}");
        }
    }
    attache.shutdown().await;
}

/// Threads that keep CPUs busy until dropped.
struct Spinners(Arc<std::sync::atomic::AtomicBool>);

impl Spinners {
    fn start(n: usize) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for _ in 0..n {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        Self(stop)
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Waits (up to 10 s) until the server is running a query that starts
/// with `prefix`; whether it did.
async fn wait_running(pg: &PgServer, prefix: &str) -> bool {
    let sql = format!(
        "select count(*) from pg_stat_activity where state = 'active' and query like '{prefix}%'"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = tokio::task::block_in_place(|| pg.psql("postgres", &sql));
        if n.as_deref()
            .is_ok_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0))
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `bytes` as a connection opening and returns what came back before
/// the connection closed (a reset counts as closed).
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("Attaché kept a garbage connection open");
    if let Err(e) = r {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_openings_are_closed_without_harm() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2").await;
    let c = connect(addr, "app", "app", PW).await;
    c.batch_execute("begin; create table survivor(v int)")
        .await
        .unwrap();
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        &[0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78],
        &[0, 0, 0, 3],
        &[0xff; 64],
    ];
    for g in garbage {
        let got = raw_exchange(addr, g).await;
        assert!(
            got.is_empty() || got[0] == b'E',
            "unexpected reply to {g:?}: {got:?}"
        );
        c.execute("insert into survivor values (1)", &[])
            .await
            .unwrap();
    }
    c.batch_execute("commit").await.unwrap();
    assert_eq!(one(&c, "select count(*)::int from survivor").await, 4);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_refused_with_54000() {
    let pg = app_server();
    let (attache, addr) = start(&pg, "pool_size = 2\nmax_message_size = \"1MiB\"").await;
    let bystander = connect(addr, "app", "app", PW).await;
    let big = format!("select '{}'", "x".repeat(2 << 20));
    let fits = format!("select length('{}')", "y".repeat(900_000));

    for extended in [false, true] {
        let c = connect(addr, "app", "app", PW).await;
        let r = if extended {
            c.query(&*big, &[]).await.map(|_| ())
        } else {
            c.simple_query(&big).await.map(|_| ())
        };
        let e = r.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("54000"), "{e:?}");
        assert!(
            eventually(Duration::from_secs(2), || async { c.is_closed() }).await,
            "the oversized client was not disconnected"
        );
        let rows = bystander.simple_query(&fits).await.unwrap();
        let len = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        });
        assert_eq!(len.as_deref(), Some("900000"));
    }
    attache.shutdown().await;
}
