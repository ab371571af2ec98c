//! End to end (Redis, `single` mode): a client that leaves while a blocking
//! command of its own is outstanding (`BLPOP k 0`, `XREAD BLOCK 0`, `WAIT`)
//! frees everything it held, against a real `redis-server`: its session
//! (Attaché's client count) and its dedicated server connection, whose
//! closing is what makes Redis stop blocking for it. Also when a command
//! was pipelined behind the blocking one: Attaché holds that command, and
//! must still notice the client leave.

use std::net::SocketAddr;
use std::time::Duration;

use attache::app::Attache;
use attache_harness::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, Instant};

#[path = "support/redis_single.rs"]
mod redis_single;
use redis_single::start_single;
#[path = "support/resp.rs"]
mod resp;
use resp::{encode, parse, Resp};

/// How long the blocked client may linger after its client left.
const FREED_WITHIN: Duration = Duration::from_secs(3);

async fn setup() -> (RedisServer, Attache, SocketAddr) {
    start_single("").await
}

/// One command on a fresh connection, its reply.
async fn call(addr: SocketAddr, args: &[&str]) -> Resp {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&encode(args)).await.expect("write");
    let mut buf = Vec::new();
    loop {
        if let Some((r, _)) = parse(&buf) {
            return r;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut chunk))
            .await
            .expect("a reply within 5 s")
            .expect("read");
        assert!(n > 0, "{args:?}: connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `blocked_clients` of the real server (`INFO clients`).
async fn blocked_on(server: &RedisServer) -> u64 {
    let info = call(server.addr(), &["INFO", "clients"]).await.text();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("blocked_clients")
}

/// Waits until the server blocks `want` clients; false on timeout.
async fn blocked_becomes(server: &RedisServer, want: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let n = blocked_on(server).await;
        if n == want || Instant::now() >= deadline {
            return n;
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `cmds` in one write, waits until Redis blocks on the first, then
/// closes the client; Redis and Attaché must let go of it.
async fn leave_while_blocked(cmds: &[&[&str]]) {
    leave_while_blocked_after(cmds, &[]).await;
}

/// [`leave_while_blocked`], sending `later` once Redis blocks, before
/// leaving.
async fn leave_while_blocked_after(cmds: &[&[&str]], later: &[&[&str]]) {
    let (server, attache, addr) = setup().await;
    let ctx = attache.redis.clone().expect("redis context");
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let mut out = Vec::new();
    for c in cmds {
        out.extend_from_slice(&encode(c));
    }
    tcp.write_all(&out).await.expect("write");
    let n = blocked_becomes(&server, 1, Duration::from_secs(5)).await;
    assert_eq!(n, 1, "{cmds:?}: Redis never blocked");
    assert_eq!(ctx.clients(), 1, "the client counted while connected");
    let mut out = Vec::new();
    for c in later {
        out.extend_from_slice(&encode(c));
    }
    tcp.write_all(&out).await.expect("write");
    // Long enough for Attaché to read what it reads ahead.
    sleep(Duration::from_millis(200)).await;
    drop(tcp);
    let n = blocked_becomes(&server, 0, FREED_WITHIN).await;
    assert_eq!(n, 0, "{cmds:?}: Redis still blocks for a client that left");
    let deadline = Instant::now() + FREED_WITHIN;
    while ctx.clients() > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ctx.clients(),
        0,
        "{cmds:?}: the session outlived its client"
    );
    // The key was never popped by the abandoned BLPOP.
    assert_eq!(call(addr, &["RPUSH", "k", "v"]).await, Resp::Int(1));
    assert_eq!(call(addr, &["LPOP", "k"]).await, Resp::bulk("v"));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_forever_is_freed_when_the_client_leaves() {
    leave_while_blocked(&[&["BLPOP", "k", "0"]]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_with_a_command_behind_it_is_freed_when_the_client_leaves() {
    leave_while_blocked(&[&["BLPOP", "k", "0"], &["GET", "x"]]).await;
}

/// More pipelined behind the blocking command than Attaché reads ahead
/// (16 KiB): the rest stays unread in the socket, and the client leaving
/// must be noticed without reading it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_with_more_than_the_read_ahead_behind_it_is_freed_when_the_client_leaves() {
    let big = "x".repeat(64 * 1024);
    // The first command waits for the BLPOP's reply (held), so Attaché
    // reads the rest only ahead, up to its limit.
    let later: &[&[&str]] = &[&["GET", "x"], &["SET", "big", &big], &["GET", "x"]];
    leave_while_blocked_after(&[&["BLPOP", "k", "0"]], later).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xread_block_forever_is_freed_when_the_client_leaves() {
    leave_while_blocked(&[&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_forever_is_freed_when_the_client_leaves() {
    leave_while_blocked(&[&["SET", "w", "1"], &["WAIT", "1", "0"], &["GET", "w"]]).await;
}

/// Watching the socket while the pipeline is full must not cost a client
/// that sends a pipeline and half-closes its side the replies it is owed:
/// what was read ahead is still run after the end of its input, and so is
/// what was still unread in the socket when its close was noticed (the
/// pipeline is well over the 16 KiB read ahead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_client_still_gets_its_pipeline_answered() {
    let (_server, attache, addr) = start_single("max_pipeline = 2").await;
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let mut out = Vec::new();
    for _ in 0..2000 {
        out.extend_from_slice(&encode(&["INCR", "half"]));
    }
    tcp.write_all(&out).await.expect("write");
    tcp.shutdown().await.expect("half-close");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf))
        .await
        .expect("replies within 10 s")
        .expect("read");
    let mut got = Vec::new();
    let mut at = 0;
    while let Some((r, used)) = parse(&buf[at..]) {
        got.push(r);
        at += used;
    }
    let want: Vec<Resp> = (1..=2000).map(Resp::Int).collect();
    assert_eq!(got, want);
    attache.shutdown().await;
}
