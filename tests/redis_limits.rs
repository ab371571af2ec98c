//! End to end (Redis): the per-client limits on the respond side of
//! accept → parse → route → backend → respond, against a real
//! `redis-server` through Attaché started in-process. A client that
//! pipelines a lot and reads slowly must not make Attaché's memory grow
//! without bound (`max_queued_bytes`), must still get every reply in order
//! once it reads, and must not slow other clients down meanwhile.
//!
//! Memory is judged by this process's resident set (`VmRSS` in
//! `/proc/self/status`): Attaché runs in it, `redis-server` does not. The
//! tests that measure run one at a time (see [`SERIAL`]).

use std::net::SocketAddr;
use std::time::Duration;

use attache::app::Attache;
use attache_harness::RedisBuilder;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[path = "support/redis_single.rs"]
mod redis_single;
use redis_single::start_single;

/// Tests in one binary share the process, and so its resident set: the
/// ones that talk to servers take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a read may wait for its reply before it counts as a hang.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- RESP

/// One RESP2 reply, as much as these tests look at.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
}

/// Parses one reply from the front of `b`: the reply and its length, or
/// `None` while incomplete.
fn parse(b: &[u8]) -> Option<(Resp, usize)> {
    let end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&b[1..end]).into_owned();
    let pos = end + 2;
    let num = || line.parse::<i64>().expect("RESP length or integer");
    let resp = match b[0] {
        b'+' => Resp::Simple(line),
        b'-' => Resp::Err(line),
        b':' => Resp::Int(num()),
        b'$' if num() < 0 => Resp::Nil,
        b'$' => {
            let n = num() as usize;
            if b.len() < pos + n + 2 {
                return None;
            }
            return Some((Resp::Bulk(b[pos..pos + n].to_vec()), pos + n + 2));
        }
        other => panic!("unexpected RESP type byte {:?}", other as char),
    };
    Some((resp, pos))
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A raw RESP connection; replies are parsed as they arrive and only the
/// unparsed rest is kept, so reading 200 MB of replies stays cheap.
struct Raw {
    tcp: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.expect("tcp connect");
        tcp.set_nodelay(true).unwrap();
        Raw {
            tcp,
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write to attache");
    }

    async fn read(&mut self) -> Resp {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Some((r, used)) = parse(&self.buf) {
                self.buf.advance(used);
                return r;
            }
            self.buf.reserve(256 * 1024);
            match tokio::time::timeout_at(deadline, self.tcp.read_buf(&mut self.buf)).await {
                Err(_) => panic!("no reply within {READ_TIMEOUT:?}"),
                Ok(Ok(0)) => panic!("attache closed the connection"),
                Ok(Err(e)) => panic!("read from attache failed: {e}"),
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn cmd(&mut self, args: &[&[u8]]) -> Resp {
        self.send(&encode(args)).await;
        self.read().await
    }
}

// ---------------------------------------------------------------- setup

/// This process's resident set in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// A 100 KB value that differs per key, so a reply in the wrong place shows.
fn value(key: usize) -> Vec<u8> {
    let mut v = format!("value-{key}:").into_bytes();
    v.resize(100_000, b'a' + key as u8);
    v
}

const KEYS: usize = 8;

/// Stores [`value`] under `big:0` … `big:7` through Attaché.
async fn store_values(addr: SocketAddr) {
    let mut c = Raw::connect(addr).await;
    for k in 0..KEYS {
        let key = format!("big:{k}");
        let set = c.cmd(&[b"SET", key.as_bytes(), &value(k)]).await;
        assert_eq!(set, Resp::Simple("OK".into()));
    }
}

// ---------------------------------------------------------------- tests

/// What happened while the slow client was not reading.
struct Stall {
    rss_growth: u64,
    slowest_ping: Duration,
    slowest_get: Duration,
}

/// A client writes `n` GETs of 100 KB values and reads nothing for three
/// seconds, while this samples the resident set and times a second
/// client's PING and GET; then the client reads every reply, checked in
/// order.
async fn slow_reader(addr: SocketAddr, n: usize) -> Stall {
    store_values(addr).await;
    let mut other = Raw::connect(addr).await;
    assert_eq!(
        other.cmd(&[b"SET", b"small", b"1"]).await,
        Resp::Simple("OK".into())
    );
    // Warm up: the same traffic once, read at once, so buffers that any
    // client would need already exist before the baseline.
    let mut slow = Raw::connect(addr).await;
    for i in 0..KEYS * 4 {
        let key = format!("big:{}", i % KEYS);
        assert_eq!(
            slow.cmd(&[b"GET", key.as_bytes()]).await,
            Resp::Bulk(value(i % KEYS))
        );
    }
    let baseline = rss();

    let mut pipeline = Vec::new();
    for i in 0..n {
        pipeline.extend(encode(&[b"GET", format!("big:{}", i % KEYS).as_bytes()]));
    }
    slow.send(&pipeline).await;
    let (mut peak, mut slowest_ping, mut slowest_get) = (baseline, Duration::ZERO, Duration::ZERO);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        peak = peak.max(rss());
        let t = Instant::now();
        assert_eq!(other.cmd(&[b"PING"]).await, Resp::Simple("PONG".into()));
        slowest_ping = slowest_ping.max(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            other.cmd(&[b"GET", b"small"]).await,
            Resp::Bulk(b"1".to_vec())
        );
        slowest_get = slowest_get.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak = peak.max(rss());

    for i in 0..n {
        match slow.read().await {
            Resp::Bulk(v) if v == value(i % KEYS) => {}
            Resp::Bulk(v) => panic!(
                "reply #{i} is the value of another key: {:?}…",
                String::from_utf8_lossy(&v[..16])
            ),
            other => panic!("reply #{i}: {other:?}"),
        }
    }
    // Nothing more: the next reply is the PING's.
    assert_eq!(slow.cmd(&[b"PING"]).await, Resp::Simple("PONG".into()));
    Stall {
        rss_growth: peak.saturating_sub(baseline),
        slowest_ping,
        slowest_get,
    }
}

fn check_stall(what: &str, s: &Stall) {
    println!(
        "{what}: resident set grew by {} KiB while the client did not read; slowest PING \
         {:?}, slowest GET {:?} from another client",
        s.rss_growth / 1024,
        s.slowest_ping,
        s.slowest_get
    );
    // 2,000 replies of 100 KB are 200 MB (without the bound the resident
    // set grew by over 200 MB); with a 1 MiB bound Attaché holds a few MB,
    // plus allocator slack.
    assert!(
        s.rss_growth < 24 << 20,
        "{what}: Attaché's memory grew by {} MiB for one slow client with \
         max_queued_bytes = 1MiB",
        s.rss_growth >> 20
    );
    for (cmd, took) in [("PING", s.slowest_ping), ("GET", s.slowest_get)] {
        assert!(
            took < Duration::from_millis(250),
            "{what}: another client's {cmd} took {took:?} during the stall"
        );
    }
}

/// `single` mode, where one client's plain commands travel to the server
/// in batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_held_back_and_gets_every_reply() {
    let _turn = SERIAL.lock().await;
    let (_server, attache, addr) = start_single("max_queued_bytes = \"1MiB\"").await;
    let stall = slow_reader(addr, 2_000).await;
    check_stall("batched", &stall);
    attache.shutdown().await;
}

/// The same with reads routed one by one (to a "replica" that is the
/// server itself), so every command has a reply slot of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_held_back_when_commands_are_routed_one_by_one() {
    let _turn = SERIAL.lock().await;
    let server = tokio::task::block_in_place(|| RedisBuilder::new().start()).expect("redis");
    let toml = format!(
        "[redis]\nlisten = \"127.0.0.1:0\"\nnodes = [\"{0}\"]\nreplicas = [\"{0}\"]\n\
         read_from = \"replica\"\nmax_queued_bytes = \"1MiB\"\n",
        server.addr()
    );
    let cfg = attache::config::parse(&toml).expect("test config must be valid");
    let attache = Attache::start(cfg).await.expect("attache starts");
    let addr = attache.redis_addr.expect("redis listener");
    let stall = slow_reader(addr, 2_000).await;
    check_stall("one by one", &stall);
    attache.shutdown().await;
}

/// A reply larger than the whole bound is still delivered (alone), and
/// pipelined ones after it too: never a hang, never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_larger_than_the_bound_are_delivered() {
    let _turn = SERIAL.lock().await;
    let (_server, attache, addr) = start_single("max_queued_bytes = \"1KiB\"").await;
    store_values(addr).await;
    let mut c = Raw::connect(addr).await;
    let mut pipeline = Vec::new();
    for i in 0..50 {
        pipeline.extend(encode(&[b"GET", format!("big:{}", i % KEYS).as_bytes()]));
        pipeline.extend(encode(&[b"INCR", b"counter"]));
    }
    pipeline.extend(encode(&[b"PING"]));
    let started = Instant::now();
    c.send(&pipeline).await;
    for i in 0..50 {
        assert_eq!(c.read().await, Resp::Bulk(value(i % KEYS)), "GET #{i}");
        assert_eq!(c.read().await, Resp::Int(i as i64 + 1), "INCR #{i}");
    }
    assert_eq!(c.read().await, Resp::Simple("PONG".into()));
    println!(
        "1KiB bound: 50 replies of 100 KB in {:?}",
        started.elapsed()
    );
    attache.shutdown().await;
}

/// The bound defaults to 64 MiB and must be at least 1 KiB; the error
/// names the setting.
#[test]
fn max_queued_bytes_is_validated() {
    let base = "[redis]\nnodes = [\"127.0.0.1:6379\"]\n";
    let cfg = attache::config::parse(base).expect("valid without the setting");
    assert_eq!(cfg.redis.expect("[redis]").max_queued_bytes.0, 64 << 20);
    let cfg = attache::config::parse(&format!("{base}max_queued_bytes = \"1KiB\"\n"))
        .expect("1KiB is the smallest bound");
    assert_eq!(cfg.redis.expect("[redis]").max_queued_bytes.0, 1024);
    let err = attache::config::parse(&format!("{base}max_queued_bytes = \"1023B\"\n"))
        .expect_err("a bound under 1KiB must be refused");
    let text = err.to_string();
    assert!(
        text.contains("redis.max_queued_bytes") && text.contains("at least 1KiB"),
        "the error should name redis.max_queued_bytes: {text}"
    );
}

/// A small `max_request_size` bounds what clients send, not what servers
/// answer: a 2 MiB value comes back whole, and the other client's
/// commands on the same shared connection are answered too. A reply over
/// `max_reply_size` (here 1 MiB) is refused with an error, and the next
/// command is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_bounded_by_max_reply_size_not_max_request_size() {
    let _turn = SERIAL.lock().await;
    let extra = "max_request_size = \"1MiB\"\nconnections_per_node = 1";
    let (_server, attache, addr) = start_single(extra).await;
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    let last = (2 << 20) - 1;
    let offset = last.to_string();
    let setrange = [&b"SETRANGE"[..], b"big", offset.as_bytes(), b"x"];
    assert_eq!(a.cmd(&setrange).await, Resp::Int(2 << 20));
    a.send(&encode(&[b"GET", b"big"])).await;
    assert_eq!(b.cmd(&[b"INCR", b"n"]).await, Resp::Int(1));
    match a.read().await {
        Resp::Bulk(v) => assert_eq!((v.len(), v[last]), (2 << 20, b'x')),
        other => panic!("GET big: {other:?}"),
    }
    assert_eq!(b.cmd(&[b"INCR", b"n"]).await, Resp::Int(2));
    attache.shutdown().await;

    let extra = "max_reply_size = \"1MiB\"\nconnections_per_node = 1";
    let (_server, attache, addr) = start_single(extra).await;
    let mut a = Raw::connect(addr).await;
    assert_eq!(a.cmd(&setrange).await, Resp::Int(2 << 20));
    match a.cmd(&[b"GET", b"big"]).await {
        Resp::Err(e) => assert!(e.contains("exceeds the limit"), "{e}"),
        other => panic!("GET big over max_reply_size: {other:?}"),
    }
    assert_eq!(a.cmd(&[b"STRLEN", b"big"]).await, Resp::Int(2 << 20));
    attache.shutdown().await;
}
