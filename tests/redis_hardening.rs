//! End to end (Redis, `single` mode): commands one client could use to
//! hurt Attaché or the other clients on its shared server connections,
//! against a real `redis-server`: SELECT of any index (a set of shared
//! connections per value), replication and cluster-state commands that
//! would change a shared connection under everyone else, and error replies
//! echoing arbitrarily large input.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/redis_single.rs"]
mod redis_single;
use redis_single::start_single;
#[path = "support/resp.rs"]
mod resp;
use resp::{encode, parse, Resp};

/// A raw RESP2 connection, also for the length of a reply's bytes.
struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Raw {
            tcp,
            buf: Vec::new(),
        }
    }

    /// The reply to `args` and how many bytes it took.
    async fn sized(&mut self, args: &[&str]) -> (Resp, usize) {
        self.tcp.write_all(&encode(args)).await.expect("write");
        self.reply().await
    }

    /// The next reply and how many bytes it took.
    async fn reply(&mut self) -> (Resp, usize) {
        loop {
            if let Some((r, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return (r, used);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), self.tcp.read(&mut chunk))
                .await
                .expect("a reply within 5 s")
                .expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn cmd(&mut self, args: &[&str]) -> Resp {
        self.sized(args).await.0
    }
}

/// `total_connections_received` of the server, asked on `direct`.
async fn connections_received(direct: &mut Raw) -> u64 {
    let info = direct.cmd(&["INFO", "stats"]).await.text();
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_connections_received")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_past_the_database_count_is_refused_without_a_connection() {
    let (server, attache, addr) = start_single("").await;
    let mut c = Raw::connect(addr).await;
    let mut direct = Raw::connect(server.addr()).await;
    assert_eq!(c.cmd(&["SET", "a", "1"]).await, Resp::ok());
    let before = connections_received(&mut direct).await;
    for db in (16..48).chain([u32::MAX]) {
        let got = c.cmd(&["SELECT", &db.to_string()]).await;
        assert_eq!(got.err(), "ERR DB index is out of range", "SELECT {db}");
    }
    // Nothing was made for the refused indexes: no connection reached Redis.
    assert_eq!(connections_received(&mut direct).await, before);
    assert_eq!(c.cmd(&["GET", "a"]).await, Resp::bulk("1"), "still on db 0");
    assert_eq!(c.cmd(&["SELECT", "15"]).await, Resp::ok());
    assert_eq!(c.cmd(&["GET", "a"]).await, Resp::Nil, "now on db 15");
    drop((c, direct));
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_and_connection_flag_commands_stay_off_shared_connections() {
    let (_server, attache, addr) = start_single("").await;
    let mut c = Raw::connect(addr).await;
    let mut other = Raw::connect(addr).await;
    assert_eq!(other.cmd(&["SET", "r", "1"]).await, Resp::ok());
    for args in [
        &["SYNC"][..],
        &["PSYNC", "?", "-1"],
        &["REPLCONF", "listening-port", "6390"],
        &["ASKING"],
    ] {
        let got = c.cmd(args).await;
        assert!(got.err().starts_with("ERR attache: "), "{args:?}: {got:?}");
    }
    // No-ops through Attaché: `read_from` decides where reads go.
    assert_eq!(c.cmd(&["READONLY"]).await, Resp::ok());
    assert_eq!(c.cmd(&["READWRITE"]).await, Resp::ok());
    // The shared connections still answer both clients normally.
    assert_eq!(c.cmd(&["GET", "r"]).await, Resp::bulk("1"));
    assert_eq!(other.cmd(&["INCR", "r"]).await, Resp::Int(2));
    // Inside MULTI they are queued like any command, on the transaction's
    // own connection, so EXEC answers as many commands as were queued.
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    let queued = Resp::Simple("QUEUED".into());
    assert_eq!(c.cmd(&["READONLY"]).await, queued);
    assert_eq!(c.cmd(&["INCR", "r"]).await, queued);
    match c.cmd(&["EXEC"]).await {
        Resp::Array(items) => {
            assert_eq!(items.len(), 2, "{items:?}");
            assert_eq!(items[1], Resp::Int(3));
        }
        other => panic!("EXEC: {other:?}"),
    }
    drop((c, other));
    attache.shutdown().await;
}

/// Error replies echo at most 128 bytes of each piece of client input, as
/// Redis's do, whatever the client sends (even before AUTH for HELLO).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_replies_echo_at_most_128_bytes_of_input() {
    let (_server, attache, addr) = start_single("").await;
    let mut c = Raw::connect(addr).await;
    let long = "x".repeat(100_000);
    let (got, size) = c.sized(&[&long, &long, &long]).await;
    let want = format!(
        "ERR unknown command '{}', with args beginning with: '{}' ",
        "x".repeat(128),
        "x".repeat(128)
    );
    assert_eq!(got.err(), want);
    assert!(size < 400, "{size} bytes");
    let (got, size) = c.sized(&["HELLO", "3", &long]).await;
    let want = format!("ERR Syntax error in HELLO option '{}'", "x".repeat(128));
    assert_eq!(got.err(), want);
    assert!(size < 200, "{size} bytes");
    // CR and LF in the echo cannot end the error line early.
    let got = c.cmd(&["NOPE\r\n+OK"]).await;
    assert_eq!(
        got.err(),
        "ERR unknown command 'NOPE  +OK', with args beginning with: "
    );
    assert_eq!(c.cmd(&["PING"]).await, Resp::Simple("PONG".into()));
    drop(c);
    attache.shutdown().await;
}

/// The relay behind pub/sub, MONITOR, CLIENT REPLY and CLIENT TRACKING
/// passes bytes through, so with a deny list it cuts them into requests
/// and renames a denied one: `CLIENT REPLY ON` or a full UNSUBSCRIBE
/// would otherwise let a denied FLUSHALL through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_list_is_not_bypassed_through_a_relay() {
    let (_server, attache, addr) = start_single("deny_commands = [\"FLUSHALL\"]").await;
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.cmd(&["SET", "keep", "me"]).await, Resp::ok());
    // CLIENT REPLY ON makes the session a relay; FLUSHALL is still denied
    // there, answered in its place, and the relay goes on.
    assert_eq!(c.cmd(&["CLIENT", "REPLY", "ON"]).await, Resp::ok());
    let got = c.cmd(&["FLUSHALL"]).await;
    assert!(got.err().contains("ATTACHE-DENIED-FLUSHALL"), "{got:?}");
    assert_eq!(c.cmd(&["GET", "keep"]).await, Resp::bulk("me"));
    drop(c);
    // Pub/sub works with a deny list; after a full UNSUBSCRIBE (RESP2) the
    // session is a relay in normal mode, and the list still holds.
    let mut c = Raw::connect(addr).await;
    let got = c.cmd(&["SUBSCRIBE", "ch"]).await;
    assert!(matches!(&got, Resp::Array(a) if a.len() == 3), "{got:?}");
    let got = c.cmd(&["UNSUBSCRIBE", "ch"]).await;
    assert!(matches!(&got, Resp::Array(a) if a.len() == 3), "{got:?}");
    let got = c.cmd(&["FLUSHALL"]).await;
    assert!(got.err().contains("ATTACHE-DENIED-FLUSHALL"), "{got:?}");
    assert_eq!(c.cmd(&["GET", "keep"]).await, Resp::bulk("me"));
    drop(c);
    attache.shutdown().await;
}

/// Everything the connection sends until it closes (within 5 s).
async fn until_closed(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got))
        .await
        .expect("Attaché closes the connection")
        .expect("read");
    String::from_utf8_lossy(&got).into_owned()
}

/// Like Redis 6.2+: until a client that must authenticate has, a request
/// of more than 10 elements or with a bulk string over 16 KiB is refused
/// from its header and the connection closed, so an unauthenticated
/// client cannot make Attaché buffer or scan a large request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_clients_get_redis_lower_request_bounds() {
    let (_server, _attache, addr) = start_single("client_password = \"pw\"").await;
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(b"*100000\r\n$1\r\na\r\n").await.expect("write");
    assert_eq!(
        until_closed(&mut c).await,
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(b"*2\r\n$4\r\nAUTH\r\n$1000000\r\nxx")
        .await
        .expect("write");
    assert_eq!(
        until_closed(&mut c).await,
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    // At the bounds, and past them once authenticated, requests are served.
    let mut c = Raw::connect(addr).await;
    let ten: Vec<String> = (0..9).map(|i| i.to_string()).collect();
    let mut push = vec!["RPUSH", "l"];
    push.extend(ten[..8].iter().map(String::as_str));
    assert!(c.cmd(&push).await.err().starts_with("NOAUTH"));
    assert_eq!(c.cmd(&["AUTH", "pw"]).await, Resp::ok());
    let big = "v".repeat(100_000);
    let mut push = vec!["RPUSH", "l", big.as_str()];
    push.extend(ten.iter().map(String::as_str));
    assert_eq!(c.cmd(&push).await, Resp::Int(10));
    // Without a password to require, the bounds never apply.
    let (_server, _attache, open) = start_single("").await;
    let mut c = Raw::connect(open).await;
    assert_eq!(c.cmd(&push).await, Resp::Int(10));
}

/// A request trickling in over many reads, each a few bytes, is put
/// together correctly (the session scans on from where the previous read
/// stopped; the unit tests count that work), on the plain lane and off it,
/// with the next request right behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_trickled_in_small_reads_is_served() {
    let (_server, _attache, addr) = start_single("").await;
    let mut c = Raw::connect(addr).await;
    c.tcp.set_nodelay(true).expect("nodelay");
    let values: Vec<String> = (0..2000).map(|i| format!("v{i}")).collect();
    for (name, key) in [("RPUSH", "plain"), ("LPUSH", "other")] {
        let mut args = vec![name, key];
        args.extend(values.iter().map(String::as_str));
        let mut bytes = encode(&args);
        bytes.extend_from_slice(&encode(&["LLEN", key]));
        for chunk in bytes.chunks(5) {
            c.tcp.write_all(chunk).await.expect("write");
            tokio::task::yield_now().await;
        }
        assert_eq!(c.reply().await.0, Resp::Int(2000), "{name}");
        assert_eq!(c.reply().await.0, Resp::Int(2000), "LLEN after {name}");
    }
}
