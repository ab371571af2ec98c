//! End-to-end streaming and out-of-band paths (accept → parse → backend →
//! respond): 100 MB COPY both ways, query cancellation through Attaché's own
//! cancel keys, and clients that send garbage or oversized messages.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::{pin_mut, SinkExt, StreamExt};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};

const PW: Option<&str> = Some("app-secret");

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

/// Row `i` of the COPY text: `i<TAB>95 letters<LF>`, about 100 bytes.
fn push_row(buf: &mut BytesMut, i: usize) {
    use std::fmt::Write;
    let letter = (b'a' + (i % 26) as u8) as char;
    let _ = write!(buf, "{i}\t");
    buf.extend(std::iter::repeat(letter as u8).take(PAYLOAD));
    buf.extend_from_slice(b"\n");
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
    let sink = c.copy_in("copy big from stdin").await.unwrap();
    pin_mut!(sink);
    let (mut sent, mut sum) = (0u64, 0u64);
    let mut chunk = BytesMut::with_capacity(80 * 1024);
    for i in 0..ROWS {
        push_row(&mut chunk, i);
        if chunk.len() >= 64 * 1024 || i + 1 == ROWS {
            sent += chunk.len() as u64;
            sum = chunk.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
            sink.send(chunk.split().freeze()).await.unwrap();
        }
    }
    let copied = sink.as_mut().finish().await.unwrap();
    assert_eq!(copied, ROWS as u64);
    assert!(sent > 100_000_000, "only {sent} bytes generated");

    let out = c.copy_out("copy big to stdout").await.unwrap();
    pin_mut!(out);
    let (mut got, mut got_sum, mut lines) = (0u64, 0u64, 0usize);
    while let Some(data) = out.next().await {
        let data = data.unwrap();
        got += data.len() as u64;
        got_sum = data
            .iter()
            .fold(got_sum, |s, &b| s.wrapping_add(u64::from(b)));
        lines += data.iter().filter(|&&b| b == b'\n').count();
    }
    assert_eq!((got, got_sum, lines), (sent, sum, ROWS));

    let su = connect(pg.addr(), pg.superuser(), "app", None).await;
    let row = su
        .query_one("select count(*), sum(length(payload))::int8 from big", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), ROWS as i64);
    assert_eq!(row.get::<_, i64>(1), (ROWS * PAYLOAD) as i64);
    assert_eq!(
        one(&c, "select 1").await,
        1,
        "connection unusable after COPY"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "COPY took {:?}",
        t0.elapsed()
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
        let t0 = Instant::now();
        let task = tokio::spawn(async move {
            let r = if extended {
                c.query("select pg_sleep(10)", &[]).await.map(|_| ())
            } else {
                c.simple_query("select pg_sleep(10)").await.map(|_| ())
            };
            (c, r)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel_query(NoTls).await.unwrap();
        let (c, r) = tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("cancelled query still running after 2 s")
            .unwrap();
        let e = r.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
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
    let task = tokio::spawn(async move { a.simple_query("select pg_sleep(0.5)").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
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
