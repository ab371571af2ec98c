//! End to end (Redis, `single` mode): accept → parse → route → backend →
//! respond against a real `redis-server`, through Attaché started
//! in-process. The `redis` crate plays an ordinary client; raw TCP with a
//! small RESP reader is used where the exact bytes, malformed input or
//! timing matter.

use std::net::SocketAddr;
use std::time::Duration;

use attache::app::Attache;
use attache_harness::{RedisBuilder, RedisServer};
use bytes::BytesMut;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

// ---------------------------------------------------------------- helpers

/// A `[redis]` config for `server` plus extra `[redis]` lines.
fn config(server: &RedisServer, extra: &str) -> String {
    format!(
        "[general]\nshutdown_timeout = \"2s\"\n\n[redis]\nlisten = \"127.0.0.1:0\"\nnodes = [\"{}\"]\n{extra}\n",
        server.addr()
    )
}

/// Starts Attaché from a TOML text; `listen` is forced to a free port.
async fn start_attache(toml: &str) -> (Attache, SocketAddr) {
    let mut cfg = attache::config::parse(toml).expect("test config must be valid");
    cfg.redis.as_mut().expect("a [redis] section").listen = "127.0.0.1:0".into();
    let attache = Attache::start(cfg).await.expect("attache starts");
    let addr = attache.redis_addr.expect("redis listener");
    (attache, addr)
}

fn redis_server(b: RedisBuilder) -> RedisServer {
    tokio::task::block_in_place(|| b.start()).expect("redis-server starts")
}

/// A plain server and an Attaché in front of it.
async fn setup(extra: &str) -> (RedisServer, Attache, SocketAddr) {
    let server = redis_server(RedisBuilder::new());
    let (attache, addr) = start_attache(&config(&server, extra)).await;
    (server, attache, addr)
}

fn cli(server: &RedisServer, args: &[&str]) -> String {
    tokio::task::block_in_place(|| server.cli(args)).expect("redis-cli")
}

/// A `redis` crate connection with a response timeout long enough for big
/// pipelines and blocking commands on a slow debug build.
async fn crate_conn(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("redis url");
    let cfg = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .expect("connect through attache")
}

fn url(addr: SocketAddr) -> String {
    format!("redis://{addr}/")
}

/// One RESP2/RESP3 reply, as much structure as the tests look at.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP2 null (`$-1` or `*-1`).
    Nil,
    /// RESP3 null (`_`).
    Null,
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    Push(Vec<Resp>),
    /// Set, double, boolean, big number, verbatim: type byte and text.
    Other(char, String),
}

impl Resp {
    fn bulk(s: &str) -> Resp {
        Resp::Bulk(s.as_bytes().to_vec())
    }
    fn ok() -> Resp {
        Resp::Simple("OK".into())
    }
    /// The error text; panics on anything else.
    fn err(&self) -> &str {
        match self {
            Resp::Err(t) => t,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }
}

/// Parses one reply from the front of `b`: the reply and its length, or
/// `None` while incomplete.
fn parse(b: &[u8]) -> Option<(Resp, usize)> {
    let end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&b[1..end]).into_owned();
    let mut pos = end + 2;
    let num = || line.parse::<i64>().expect("RESP length or integer");
    let items = |n: i64, pos: &mut usize| -> Option<Vec<Resp>> {
        let mut v = Vec::new();
        for _ in 0..n {
            let (r, used) = parse(&b[*pos..])?;
            *pos += used;
            v.push(r);
        }
        Some(v)
    };
    let resp = match b[0] {
        b'+' => Resp::Simple(line),
        b'-' => Resp::Err(line),
        b':' => Resp::Int(num()),
        b'_' => Resp::Null,
        b'$' | b'!' | b'=' if num() < 0 => Resp::Nil,
        b'$' | b'!' | b'=' => {
            let n = num() as usize;
            if b.len() < pos + n + 2 {
                return None;
            }
            let data = b[pos..pos + n].to_vec();
            pos += n + 2;
            match b[0] {
                b'!' => Resp::Err(String::from_utf8_lossy(&data).into_owned()),
                b'=' => Resp::Other('=', String::from_utf8_lossy(&data).into_owned()),
                _ => Resp::Bulk(data),
            }
        }
        b'*' | b'>' | b'~' if num() < 0 => Resp::Nil,
        b'*' => Resp::Array(items(num(), &mut pos)?),
        b'>' => Resp::Push(items(num(), &mut pos)?),
        b'~' => Resp::Other('~', format!("{:?}", items(num(), &mut pos)?)),
        b'%' => {
            let flat = items(num() * 2, &mut pos)?;
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Resp::Map(pairs)
        }
        other => Resp::Other(other as char, line),
    };
    Some((resp, pos))
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// How a read that produced no reply ended.
#[derive(Debug, PartialEq)]
enum NoReply {
    Closed,
    TimedOut,
}

/// A raw RESP connection.
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

    async fn cmd(&mut self, args: &[&str]) -> Resp {
        self.send(&encode(args)).await;
        self.read().await
    }

    async fn read(&mut self) -> Resp {
        match self.try_read(Duration::from_secs(10)).await {
            Ok(r) => r,
            Err(e) => panic!("no reply: {e:?}"),
        }
    }

    /// Sends a command and waits at most `wait` for its reply.
    async fn try_read_after(&mut self, args: &[&str], wait: Duration) -> Resp {
        self.send(&encode(args)).await;
        match self.try_read(wait).await {
            Ok(r) => r,
            Err(e) => panic!("{args:?}: no reply within {wait:?}: {e:?}"),
        }
    }

    async fn try_read(&mut self, wait: Duration) -> Result<Resp, NoReply> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some((r, used)) = parse(&self.buf) {
                let _ = self.buf.split_to(used);
                return Ok(r);
            }
            match tokio::time::timeout_at(deadline, self.tcp.read_buf(&mut self.buf)).await {
                Err(_) => return Err(NoReply::TimedOut),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(NoReply::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// Checks that `got` is 1, 2, …, n: first that no reply was lost or
/// duplicated, then that they are in order, so a failure says which.
fn assert_counts_up(label: &str, got: &[i64], n: i64) {
    assert_eq!(got.len() as i64, n, "{label}: number of replies");
    let mut sorted = got.to_vec();
    sorted.sort_unstable();
    assert!(
        sorted.iter().copied().eq(1..=n),
        "{label}: replies lost or duplicated"
    );
    let wrong = got.iter().zip(1..).filter(|(g, w)| **g != *w).count();
    if let Some(i) = got.iter().zip(1..).position(|(g, w)| *g != w) {
        let around = &got[i.saturating_sub(2)..(i + 3).min(got.len())];
        panic!(
            "{label}: {wrong} of {n} INCRs ran out of order; first at #{}: got {}, \
             want {} (around: {around:?})",
            i + 1,
            got[i],
            i + 1
        );
    }
}

/// Polls `f` every 50 ms until it returns true or `wait` passes.
async fn eventually<F, Fut>(wait: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_commands_and_deep_pipelines_keep_order() {
    let (server, attache, addr) = setup("").await;
    let mut c = crate_conn(&url(addr)).await;
    let () = redis::cmd("SET")
        .arg("a")
        .arg("1")
        .query_async(&mut c)
        .await
        .unwrap();
    let a: String = redis::cmd("GET")
        .arg("a")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(a, "1");
    let n: i64 = redis::cmd("INCR")
        .arg("a")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let () = redis::cmd("SET")
        .arg("b")
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["a", "missing", "b"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(got, vec![Some("2".into()), None, Some("x".into())]);

    let mut pipe = redis::pipe();
    for _ in 0..10_000 {
        pipe.cmd("INCR").arg("p");
    }
    let replies: Vec<i64> = pipe.query_async(&mut c).await.unwrap();
    assert_counts_up("10k pipeline", &replies, 10_000);

    let mut tasks = Vec::new();
    for i in 0..20 {
        let u = url(addr);
        tasks.push(tokio::spawn(async move {
            let mut c = crate_conn(&u).await;
            let key = format!("c{i}");
            let mut pipe = redis::pipe();
            for _ in 0..1_000 {
                pipe.cmd("INCR").arg(&key);
            }
            let replies: Vec<i64> = pipe.query_async(&mut c).await.unwrap();
            assert_counts_up(&format!("client {i}"), &replies, 1_000);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(cli(&server, &["GET", "c7"]), "1000");
    assert_eq!(cli(&server, &["GET", "p"]), "10000");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_denied_commands_get_errors() {
    let (server, attache, addr) = setup("deny_commands = [\"FLUSHALL\", \"KEYS\"]").await;
    cli(&server, &["SET", "keep", "me"]);
    let mut c = Raw::connect(addr).await;
    let r = c.cmd(&["foo", "bar", "baz"]).await;
    let text = r.err();
    assert!(
        text.starts_with("ERR unknown command 'foo', with args beginning with: 'bar' 'baz'"),
        "{text}"
    );
    assert_eq!(c.cmd(&["PING"]).await, Resp::Simple("PONG".into()));
    assert_eq!(c.cmd(&["GET", "keep"]).await, Resp::bulk("me"));

    for args in [&["FLUSHALL"][..], &["flushall"], &["KEYS", "*"]] {
        let r = c.cmd(args).await;
        assert!(r.err().contains("disabled"), "{args:?}: {r:?}");
    }
    assert_eq!(c.cmd(&["GET", "keep"]).await, Resp::bulk("me"));
    assert_eq!(cli(&server, &["DBSIZE"]), "1");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_password_is_required() {
    let (_server, attache, addr) = setup("client_password = \"s3cret\"").await;
    let mut c = Raw::connect(addr).await;
    let r = c.cmd(&["SET", "k", "v"]).await;
    assert!(r.err().starts_with("NOAUTH"), "{r:?}");
    let r = c.cmd(&["AUTH", "wrong"]).await;
    assert!(r.err().starts_with("WRONGPASS"), "{r:?}");
    let r = c.cmd(&["GET", "k"]).await;
    assert!(
        r.err().starts_with("NOAUTH"),
        "still locked after a wrong password: {r:?}"
    );
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, Resp::ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, Resp::ok());
    assert_eq!(c.cmd(&["GET", "k"]).await, Resp::bulk("v"));

    let mut h = Raw::connect(addr).await;
    let r = h.cmd(&["HELLO", "3", "AUTH", "default", "wrong"]).await;
    assert!(r.err().starts_with("WRONGPASS"), "{r:?}");
    h.send(&encode(&["HELLO", "3", "AUTH", "default", "s3cret"]))
        .await;
    let mut head = [0u8; 3];
    h.tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(
        &head, b"%7\r",
        "HELLO 3 must answer with a 7-entry RESP3 map"
    );
    h.buf.extend_from_slice(&head);
    let Resp::Map(fields) = h.read().await else {
        unreachable!()
    };
    assert!(
        fields.contains(&(Resp::bulk("proto"), Resp::Int(3))),
        "{fields:?}"
    );
    assert_eq!(h.cmd(&["GET", "k"]).await, Resp::bulk("v"));
    assert_eq!(h.cmd(&["GET", "nope"]).await, Resp::Null);

    // A library client authenticating from its URL.
    let mut lib = crate_conn(&format!("redis://:s3cret@{addr}/")).await;
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut lib)
        .await
        .unwrap();
    assert_eq!(v, "v");
    drop((c, h, lib));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_password_is_used_and_failures_are_reported() {
    let server = redis_server(RedisBuilder::new().password("up-pw"));
    let (good, good_addr) = start_attache(&config(&server, "password = \"up-pw\"")).await;
    let mut c = crate_conn(&url(good_addr)).await;
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(cli(&server, &["GET", "k"]), "v");

    let (bad, bad_addr) = start_attache(&config(&server, "password = \"nope\"")).await;
    let mut r = Raw::connect(bad_addr).await;
    for _ in 0..2 {
        let started = Instant::now();
        let reply = r
            .try_read_after(&["GET", "k"], Duration::from_secs(5))
            .await;
        let text = reply.err().to_owned();
        assert!(
            text.contains("WRONGPASS") || text.contains("invalid"),
            "error should say why: {text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert!(!text.contains("nope"), "the password leaked: {text}");
    }

    let (none, none_addr) = start_attache(&config(&server, "")).await;
    let mut n = Raw::connect(none_addr).await;
    let reply = n
        .try_read_after(&["GET", "k"], Duration::from_secs(5))
        .await;
    assert!(reply.err().starts_with("NOAUTH"), "{reply:?}");
    drop((c, r, n));
    good.shutdown().await;
    bad.shutdown().await;
    none.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_watch_and_discard() {
    let (_server, attache, addr) = setup("").await;
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    assert_eq!(a.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(a.cmd(&["INCR", "t"]).await, Resp::Simple("QUEUED".into()));
    // Others are not held up while A sits in MULTI, and see nothing yet.
    let started = Instant::now();
    assert_eq!(b.cmd(&["SET", "other", "1"]).await, Resp::ok());
    assert_eq!(b.cmd(&["GET", "t"]).await, Resp::Nil);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(a.cmd(&["INCR", "t"]).await, Resp::Simple("QUEUED".into()));
    assert_eq!(
        a.cmd(&["EXEC"]).await,
        Resp::Array(vec![Resp::Int(1), Resp::Int(2)])
    );
    assert_eq!(b.cmd(&["GET", "t"]).await, Resp::bulk("2"));

    assert_eq!(a.cmd(&["WATCH", "w"]).await, Resp::ok());
    assert_eq!(b.cmd(&["SET", "w", "theirs"]).await, Resp::ok());
    assert_eq!(a.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(
        a.cmd(&["SET", "w", "mine"]).await,
        Resp::Simple("QUEUED".into())
    );
    assert_eq!(a.cmd(&["EXEC"]).await, Resp::Nil, "WATCH must abort EXEC");
    assert_eq!(a.cmd(&["GET", "w"]).await, Resp::bulk("theirs"));

    assert_eq!(a.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(a.cmd(&["INCR", "d"]).await, Resp::Simple("QUEUED".into()));
    assert_eq!(a.cmd(&["DISCARD"]).await, Resp::ok());
    assert_eq!(a.cmd(&["GET", "d"]).await, Resp::Nil);
    let r = a.cmd(&["EXEC"]).await;
    assert!(r.err().contains("EXEC without MULTI"), "{r:?}");

    // As Redis: a rejected command poisons MULTI; UNWATCH is queued (it
    // used to end the transaction here); WATCH inside MULTI is refused
    // and the transaction goes on.
    assert_eq!(a.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(
        a.cmd(&["SET", "p", "1"]).await,
        Resp::Simple("QUEUED".into())
    );
    assert!(a
        .cmd(&["NOSUCHCMD"])
        .await
        .err()
        .starts_with("ERR unknown command"));
    assert!(a.cmd(&["EXEC"]).await.err().starts_with("EXECABORT"));
    assert_eq!(a.cmd(&["GET", "p"]).await, Resp::Nil);
    assert_eq!(a.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(a.cmd(&["UNWATCH"]).await, Resp::Simple("QUEUED".into()));
    let nested = a.cmd(&["WATCH", "p"]).await;
    assert_eq!(nested.err(), "ERR WATCH inside MULTI is not allowed");
    assert_eq!(
        a.cmd(&["SET", "p", "2"]).await,
        Resp::Simple("QUEUED".into())
    );
    assert_eq!(
        a.cmd(&["EXEC"]).await,
        Resp::Array(vec![Resp::ok(), Resp::ok()])
    );
    assert_eq!(b.cmd(&["GET", "p"]).await, Resp::bulk("2"));
    drop((a, b));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_command_does_not_delay_others() {
    let (server, attache, addr) = setup("").await;
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    let blocked_at = Instant::now();
    a.send(&encode(&["BLPOP", "q", "5"])).await;
    let blocked = eventually(Duration::from_secs(3), || async {
        cli(&server, &["INFO", "clients"]).contains("blocked_clients:1")
    })
    .await;
    assert!(blocked, "BLPOP never reached the server");

    let mut worst = Duration::ZERO;
    for i in 0..100 {
        let started = Instant::now();
        let v = i.to_string();
        assert_eq!(b.cmd(&["SET", "k", &v]).await, Resp::ok());
        assert_eq!(b.cmd(&["GET", "k"]).await, Resp::bulk(&v));
        worst = worst.max(started.elapsed());
    }
    assert!(
        worst < Duration::from_millis(250),
        "slowest SET+GET took {worst:?}"
    );
    assert_eq!(b.cmd(&["LPUSH", "q", "x"]).await, Resp::Int(1));
    let r = a
        .try_read(Duration::from_secs(3))
        .await
        .expect("BLPOP reply");
    assert_eq!(r, Resp::Array(vec![Resp::bulk("q"), Resp::bulk("x")]));
    assert!(blocked_at.elapsed() < Duration::from_secs(5));
    // The blocked client is back on shared connections afterwards.
    assert_eq!(a.cmd(&["GET", "k"]).await, Resp::bulk("99"));
    drop((a, b));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_channels_and_patterns() {
    let (_server, attache, addr) = setup("").await;
    let mut raw = Raw::connect(addr).await;
    let sub = raw.cmd(&["SUBSCRIBE", "news"]).await;
    let sub_reply = |kind: &str, name: &str, n| {
        Resp::Array(vec![Resp::bulk(kind), Resp::bulk(name), Resp::Int(n)])
    };
    assert_eq!(sub, sub_reply("subscribe", "news", 1));
    assert_eq!(
        raw.cmd(&["PSUBSCRIBE", "ev.*"]).await,
        sub_reply("psubscribe", "ev.*", 2)
    );

    let client = redis::Client::open(url(addr)).unwrap();
    let mut lib = client
        .get_async_pubsub()
        .await
        .expect("pubsub through attache");
    lib.subscribe("news").await.unwrap();
    lib.psubscribe("ev.*").await.unwrap();

    let mut publisher = crate_conn(&url(addr)).await;
    let n: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hello")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(n, 2, "both subscribers are registered");
    let n: i64 = redis::cmd("PUBLISH")
        .arg("ev.x")
        .arg("hi")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(n, 2);

    let m = raw.read().await;
    let msg = |v: &[&str]| Resp::Array(v.iter().map(|s| Resp::bulk(s)).collect());
    assert_eq!(m, msg(&["message", "news", "hello"]));
    assert_eq!(raw.read().await, msg(&["pmessage", "ev.*", "ev.x", "hi"]));

    let mut stream = lib.on_message();
    let first = timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("message in time")
        .expect("stream open");
    assert_eq!(first.get_channel_name(), "news");
    assert_eq!(first.get_payload::<String>().unwrap(), "hello");
    let second = timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("pmessage in time")
        .expect("stream open");
    assert_eq!(second.get_channel_name(), "ev.x");
    assert_eq!(second.get_pattern::<String>().unwrap(), "ev.*");
    assert_eq!(second.get_payload::<String>().unwrap(), "hi");
    drop(stream);
    drop((raw, lib, publisher));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_and_resp2_clients_side_by_side() {
    let (_server, attache, addr) = setup("").await;
    let mut v3 = Raw::connect(addr).await;
    let mut v2 = Raw::connect(addr).await;
    let hello = v3.cmd(&["HELLO", "3"]).await;
    assert!(
        matches!(hello, Resp::Map(ref f) if f.len() == 7),
        "{hello:?}"
    );
    assert_eq!(v3.cmd(&["HSET", "h", "a", "1"]).await, Resp::Int(1));
    // Both in flight at once over the shared connections.
    v3.send(&encode(&["HGETALL", "h"])).await;
    v2.send(&encode(&["HGETALL", "h"])).await;
    let r3 = v3.read().await;
    let r2 = v2.read().await;
    assert_eq!(r3, Resp::Map(vec![(Resp::bulk("a"), Resp::bulk("1"))]));
    assert_eq!(r2, Resp::Array(vec![Resp::bulk("a"), Resp::bulk("1")]));
    assert_eq!(v3.cmd(&["GET", "missing"]).await, Resp::Null);
    assert_eq!(v2.cmd(&["GET", "missing"]).await, Resp::Nil);
    drop((v2, v3));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_switches_database() {
    let (server, attache, addr) = setup("").await;
    let mut c = Raw::connect(addr).await;
    let mut other = Raw::connect(addr).await;
    assert_eq!(c.cmd(&["SELECT", "2"]).await, Resp::ok());
    assert_eq!(c.cmd(&["SET", "s2", "v"]).await, Resp::ok());
    assert_eq!(c.cmd(&["GET", "s2"]).await, Resp::bulk("v"));
    assert_eq!(cli(&server, &["-n", "2", "EXISTS", "s2"]), "1");
    assert_eq!(cli(&server, &["-n", "0", "EXISTS", "s2"]), "0");
    assert_eq!(other.cmd(&["GET", "s2"]).await, Resp::Nil);

    let r = c.cmd(&["SELECT", "99"]).await;
    assert!(r.err().contains("DB index is out of range"), "{r:?}");
    assert_eq!(
        c.cmd(&["GET", "s2"]).await,
        Resp::bulk("v"),
        "still in db 2"
    );
    assert_eq!(c.cmd(&["SELECT", "0"]).await, Resp::ok());
    assert_eq!(c.cmd(&["GET", "s2"]).await, Resp::Nil);
    drop((c, other));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_that_client() {
    let (_server, attache, addr) = setup("").await;
    let mut bad = Raw::connect(addr).await;
    let mut good = Raw::connect(addr).await;
    assert_eq!(good.cmd(&["SET", "k", "v"]).await, Resp::ok());
    bad.send(b"*2\r\n$3\r\nGET\r\n$x\r\n").await;
    let r = bad.read().await;
    assert!(r.err().starts_with("ERR Protocol error"), "{r:?}");
    assert_eq!(
        bad.try_read(Duration::from_secs(3)).await,
        Err(NoReply::Closed),
        "the connection must be closed after a protocol error"
    );
    assert_eq!(good.cmd(&["GET", "k"]).await, Resp::bulk("v"));

    let mut inline = Raw::connect(addr).await;
    inline.send(b"PING\r\n").await;
    assert_eq!(inline.read().await, Resp::Simple("PONG".into()));
    inline.send(b"SET inl hello\r\nGET inl\r\n").await;
    assert_eq!(inline.read().await, Resp::ok());
    assert_eq!(
        inline.read().await,
        Resp::bulk("hello"),
        "GET must run after the SET sent before it"
    );
    drop((good, inline));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_command_times_out_and_client_stays_usable() {
    let server = redis_server(RedisBuilder::new().setting("enable-debug-command", "yes"));
    let extra = "command_timeout = \"300ms\"\nconnections_per_node = 2";
    let (attache, addr) = start_attache(&config(&server, extra)).await;
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.cmd(&["SET", "k", "before"]).await, Resp::ok());
    let started = Instant::now();
    let r = c.cmd(&["DEBUG", "SLEEP", "1"]).await;
    let took = started.elapsed();
    assert!(r.err().contains("upstream timeout"), "{r:?}");
    assert!(
        took < Duration::from_millis(900),
        "timeout fired after {took:?}"
    );
    // Right away, and again once the late reply has arrived: replies must
    // not shift by one.
    let r = c.cmd(&["PING"]).await;
    assert_eq!(r, Resp::Simple("PONG".into()));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for i in 0..6 {
        let v = format!("after{i}");
        assert_eq!(c.cmd(&["SET", "k", &v]).await, Resp::ok());
        assert_eq!(c.cmd(&["GET", "k"]).await, Resp::bulk(&v));
    }
    drop(c);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_errors_then_recovers() {
    let mut server = redis_server(RedisBuilder::new());
    let (attache, addr) = start_attache(&config(&server, "")).await;
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, Resp::ok());
    tokio::task::block_in_place(|| server.kill9());
    for _ in 0..3 {
        let started = Instant::now();
        let r = c
            .try_read_after(&["GET", "k"], Duration::from_secs(3))
            .await;
        assert!(r.err().starts_with("ERR attache: "), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    tokio::task::block_in_place(|| server.start_again()).expect("restart");
    let deadline = Instant::now() + Duration::from_secs(6);
    while c.cmd(&["SET", "k", "again"]).await != Resp::ok() {
        assert!(
            Instant::now() < deadline,
            "commands never succeeded after the server came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.cmd(&["GET", "k"]).await, Resp::bulk("again"));
    let mut fresh = Raw::connect(addr).await;
    assert_eq!(fresh.cmd(&["GET", "k"]).await, Resp::bulk("again"));
    drop((c, fresh));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_limit_rejects_extra_connections() {
    let (_server, attache, addr) = setup("max_client_connections = 2").await;
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    assert_eq!(a.cmd(&["PING"]).await, Resp::Simple("PONG".into()));
    assert_eq!(b.cmd(&["PING"]).await, Resp::Simple("PONG".into()));
    let mut c = Raw::connect(addr).await;
    let r = c
        .try_read(Duration::from_secs(3))
        .await
        .expect("a rejection");
    assert_eq!(r.err(), "ERR max number of clients reached");
    assert_eq!(
        c.try_read(Duration::from_secs(3)).await,
        Err(NoReply::Closed)
    );
    drop(a);
    let admitted = eventually(Duration::from_secs(3), || async {
        let mut d = Raw::connect(addr).await;
        d.send(&encode(&["PING"])).await;
        d.try_read(Duration::from_secs(1)).await == Ok(Resp::Simple("PONG".into()))
    })
    .await;
    assert!(admitted, "a freed slot must admit a new client");
    drop(b);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_limit_is_backpressure_not_loss() {
    let (_server, attache, addr) = setup("max_pipeline = 10").await;
    let mut c = Raw::connect(addr).await;
    let mut batch = Vec::new();
    for _ in 0..1_000 {
        batch.extend_from_slice(&encode(&["INCR", "pl"]));
    }
    c.send(&batch).await;
    let mut got = Vec::new();
    for _ in 0..1_000 {
        match c.try_read(Duration::from_secs(5)).await {
            Ok(Resp::Int(n)) => got.push(n),
            other => panic!("reply #{} of 1000: {other:?}", got.len() + 1),
        }
    }
    assert_counts_up("max_pipeline = 10", &got, 1_000);
    assert_eq!(
        c.try_read(Duration::from_millis(200)).await,
        Err(NoReply::TimedOut),
        "no extra replies"
    );
    drop(c);
    attache.shutdown().await;
}
