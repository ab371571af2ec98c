//! Parse → route (Redis, `single` mode): whole pipelines in one write,
//! mixing the plain commands Attaché forwards without splitting them
//! (its plain lane) with the commands that change what the next ones mean:
//! MULTI/EXEC, AUTH, SELECT. Each reply must be exactly what a direct
//! connection gives, in order. Real `redis-server`, raw TCP.

use std::time::Duration;

use attache::app::Attache;
use attache_harness::{RedisBuilder, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn encode(cmds: &[&[&str]]) -> Vec<u8> {
    let mut out = Vec::new();
    for args in cmds {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in *args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    out
}

/// Sends `cmds` in one write, reads until `expected.len()` bytes arrived.
async fn pipeline(addr: std::net::SocketAddr, cmds: &[&[&str]], expected: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    exchange(&mut tcp, cmds, expected).await
}

/// A Redis server and an Attaché in front of it with `extra` config lines.
async fn rig(extra: &str) -> (RedisServer, Attache, std::net::SocketAddr) {
    let server = tokio::task::block_in_place(|| RedisBuilder::new().start()).expect("redis");
    let attache = start(&server, extra).await;
    let addr = attache.redis_addr.expect("redis listener");
    (server, attache, addr)
}

async fn start(server: &RedisServer, extra: &str) -> Attache {
    let toml = format!(
        "[general]\nshutdown_timeout = \"2s\"\n\n[redis]\nlisten = \"127.0.0.1:0\"\nnodes = [\"{}\"]\n{extra}\n",
        server.addr()
    );
    let cfg = attache::config::parse(&toml).expect("valid config");
    Attache::start(cfg).await.expect("attache starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_and_select_inside_one_write_keep_their_meaning() {
    let (_server, attache, addr) = rig("").await;

    let expected = "+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\n2\r\n$1\r\n2\r\n";
    let cmds: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["MULTI"],
        &["SET", "a", "2"],
        &["GET", "a"],
        &["EXEC"],
        &["GET", "a"],
    ];
    assert_eq!(pipeline(addr, cmds, expected).await, expected);

    // The GET after SELECT 1 reads database 1; after SELECT 0, database 0.
    let expected = "+OK\r\n+OK\r\n$-1\r\n+OK\r\n+OK\r\n$3\r\none\r\n+OK\r\n$4\r\nzero\r\n";
    let cmds: &[&[&str]] = &[
        &["SET", "s", "zero"],
        &["SELECT", "1"],
        &["GET", "s"],
        &["SET", "s", "one"],
        &["SELECT", "1"],
        &["GET", "s"],
        &["SELECT", "0"],
        &["GET", "s"],
    ];
    assert_eq!(pipeline(addr, cmds, expected).await, expected);

    // Nothing overtakes a blocking command: the LPUSH after BLPOP runs
    // once BLPOP has timed out, as on a direct connection, so BLPOP gets
    // nothing and the element stays.
    let expected = "*-1\r\n:1\r\n$1\r\nx\r\n";
    let cmds: &[&[&str]] = &[&["BLPOP", "q", "1"], &["LPUSH", "q", "x"], &["RPOP", "q"]];
    assert_eq!(pipeline(addr, cmds, expected).await, expected);

    // Two transactions in one write: each has a private connection of its
    // own, and the second must still run after the first.
    let expected = "+OK\r\n+QUEUED\r\n*1\r\n:1\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n$1\r\n0\r\n";
    let cmds: &[&[&str]] = &[
        &["MULTI"],
        &["INCR", "t"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "t", "0"],
        &["EXEC"],
        &["GET", "t"],
    ];
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    for round in 0..20 {
        let got = exchange(&mut tcp, &[&["DEL", "t"]], ":0\r\n").await;
        assert!(got == ":0\r\n" || got == ":1\r\n", "{got}");
        assert_eq!(
            exchange(&mut tcp, cmds, expected).await,
            expected,
            "round {round}"
        );
    }
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_before_auth_in_the_same_write_are_refused() {
    let (server, attache, addr) = rig("client_password = \"pw\"").await;
    let cmds: &[&[&str]] = &[
        &["SET", "k", "before"],
        &["AUTH", "pw"],
        &["SET", "k", "after"],
        &["GET", "k"],
    ];
    let got = pipeline(
        addr,
        cmds,
        "-NOAUTH Authentication required.\r\n+OK\r\n+OK\r\n$5\r\nafter\r\n",
    )
    .await;
    let lines: Vec<&str> = got.split("\r\n").collect();
    assert!(lines[0].starts_with("-NOAUTH"), "{got:?}");
    assert_eq!(&lines[1..], ["+OK", "+OK", "$5", "after", ""], "{got:?}");
    let direct = tokio::task::block_in_place(|| server.cli(&["GET", "k"])).expect("redis-cli");
    assert_eq!(direct.trim(), "after");
    attache.shutdown().await;
}

/// A client with nothing unanswered may be moved to another shared server
/// connection for its next batch (the first with room for it, or the
/// least busy when none has). Many clients alternating single commands
/// and pipelined ones must still read their own writes every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_moved_between_shared_connections_read_their_own_writes() {
    let (server, _attache, addr) = rig("connections_per_node = 4").await;

    let clients = (0..40).map(|c| {
        tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let key = format!("moved:{c}");
            for round in 0..40u32 {
                let n = 301 * round;
                // One command, waited for…
                let incr: &[&[&str]] = &[&["INCR", &key]];
                let want = format!(":{}\r\n", n + 1);
                assert_eq!(exchange(&mut tcp, incr, &want).await, want, "client {c}");
                // …then a pipeline longer than one batch (so later parts
                // leave while earlier ones are unanswered) that writes and
                // reads back.
                let (incr, get) = (["INCR", key.as_str()], ["GET", key.as_str()]);
                let mut cmds: Vec<&[&str]> = vec![&incr; 300];
                cmds.push(&get);
                let mut want: String = (2..=301).map(|i| format!(":{}\r\n", n + i)).collect();
                let v = (n + 301).to_string();
                want.push_str(&format!("${}\r\n{v}\r\n", v.len()));
                assert_eq!(exchange(&mut tcp, &cmds, &want).await, want, "client {c}");
            }
        })
    });
    for c in futures_util::future::join_all(clients).await {
        c.expect("client task");
    }
    // The load did spread over more than one shared connection.
    let list = tokio::task::block_in_place(|| server.cli(&["CLIENT", "LIST"])).expect("redis-cli");
    let conns = list.lines().filter(|l| !l.contains("cmd=client")).count();
    assert!(
        conns > 1,
        "one server connection carried everything:\n{list}"
    );
}

/// Like [`pipeline`], on an open connection.
async fn exchange(tcp: &mut TcpStream, cmds: &[&[&str]], expected: &str) -> String {
    tcp.write_all(&encode(cmds)).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < expected.len() {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("reply within 5s")
            .expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// RESET resets the client's own connection to Attaché: forwarded, it
/// would switch a shared server connection (here database 2's) back to
/// database 0 under every other client on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_is_the_clients_own_not_a_shared_connections() {
    let (server, attache, addr) = rig("").await;
    let mut a = TcpStream::connect(addr).await.expect("connect");
    let mut b = TcpStream::connect(addr).await.expect("connect");

    let got = exchange(
        &mut a,
        &[&["SELECT", "2"], &["SET", "r", "a2"]],
        "+OK\r\n+OK\r\n",
    )
    .await;
    assert_eq!(got, "+OK\r\n+OK\r\n");
    // After RESET the client is on database 0 again, where r is unset.
    let got = exchange(&mut a, &[&["RESET"], &["GET", "r"]], "+RESET\r\n$-1\r\n").await;
    assert_eq!(got, "+RESET\r\n$-1\r\n");
    // Another client on database 2 still reads and writes database 2.
    let cmds: &[&[&str]] = &[&["SELECT", "2"], &["GET", "r"], &["SET", "r", "b2"]];
    let expected = "+OK\r\n$2\r\na2\r\n+OK\r\n";
    assert_eq!(exchange(&mut b, cmds, expected).await, expected);

    // Inside MULTI, RESET runs at once and drops the transaction.
    let cmds: &[&[&str]] = &[
        &["MULTI"],
        &["SET", "x", "1"],
        &["RESET"],
        &["EXEC"],
        &["GET", "x"],
    ];
    let expected = "+OK\r\n+QUEUED\r\n+RESET\r\n-ERR EXEC without MULTI\r\n$-1\r\n";
    assert_eq!(exchange(&mut a, cmds, expected).await, expected);

    let mut direct = TcpStream::connect(server.addr()).await.expect("connect");
    let cmds: &[&[&str]] = &[
        &["SELECT", "2"],
        &["GET", "r"],
        &["SELECT", "0"],
        &["GET", "r"],
    ];
    let expected = "+OK\r\n$2\r\nb2\r\n+OK\r\n$-1\r\n";
    assert_eq!(exchange(&mut direct, cmds, expected).await, expected);
    attache.shutdown().await;
}

/// Sends one command and returns what one read brings back (replies here
/// are a few bytes, written at once).
async fn one_reply(tcp: &mut TcpStream, args: &[&str]) -> String {
    tcp.write_all(&encode(&[args])).await.expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("reply within 5s")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A transaction's private connection is never silently replaced: a new
/// one would not carry the client's WATCH, and its EXEC would overwrite a
/// change the WATCH was there to catch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_transaction_connection_fails_the_transaction() {
    let (server, attache, addr) = rig("").await;
    let mut a = TcpStream::connect(addr).await.expect("connect");
    let mut direct = TcpStream::connect(server.addr()).await.expect("connect");

    assert_eq!(one_reply(&mut a, &["SET", "w", "start"]).await, "+OK\r\n");
    assert_eq!(one_reply(&mut a, &["WATCH", "w"]).await, "+OK\r\n");
    // The server drops every client connection but this one, the WATCH's
    // included; then someone else changes the watched key.
    let killed = one_reply(
        &mut direct,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    )
    .await;
    assert!(killed.starts_with(':'), "{killed}");
    assert_eq!(
        one_reply(&mut direct, &["SET", "w", "other"]).await,
        "+OK\r\n"
    );

    // MULTI goes to the WATCH's connection, so it may fail already.
    let multi = one_reply(&mut a, &["MULTI"]).await;
    let queued = one_reply(&mut a, &["SET", "w", "mine"]).await;
    let exec = one_reply(&mut a, &["EXEC"]).await;
    assert!(
        exec.starts_with('-') || exec == "*-1\r\n",
        "the transaction ran without its WATCH: {multi:?} {queued:?} {exec:?}"
    );
    assert_eq!(
        one_reply(&mut direct, &["GET", "w"]).await,
        "$5\r\nother\r\n"
    );
    // The client goes on normally afterwards.
    assert_eq!(one_reply(&mut a, &["GET", "w"]).await, "$5\r\nother\r\n");
    attache.shutdown().await;
}

/// A command answered with a timeout error may still run: the client's
/// next command must not overtake it on another shared connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_command_is_not_overtaken() {
    let (server, attache, addr) =
        rig("command_timeout = \"500ms\"\nconnections_per_node = 4").await;
    let mut a = TcpStream::connect(addr).await.expect("connect");
    let mut direct = TcpStream::connect(server.addr()).await.expect("connect");
    assert_eq!(
        one_reply(&mut a, &["DEL", "late"]).await.chars().next(),
        Some(':')
    );

    // Writes wait 700 ms on the server; reads do not, unless queued on a
    // connection behind a waiting write.
    let paused = one_reply(&mut direct, &["CLIENT", "PAUSE", "700", "WRITE"]).await;
    assert_eq!(paused, "+OK\r\n");
    let set = one_reply(&mut a, &["SET", "late", "1"]).await;
    assert!(set.starts_with("-ERR attache"), "{set}");
    // Sent after the timeout, answered after the SET ran (on a machine
    // too loaded to answer it within its own timeout, that error is all
    // it can see; never the value from before the SET).
    let get = one_reply(&mut a, &["GET", "late"]).await;
    assert_ne!(get, "$-1\r\n", "the GET overtook the timed-out SET");
    assert!(
        get == "$1\r\n1\r\n" || get.starts_with("-ERR attache: upstream timeout"),
        "{get}"
    );

    // A command for another connection (a transaction's) waits for the
    // timed-out one too, then goes.
    let paused = one_reply(&mut direct, &["CLIENT", "PAUSE", "700", "WRITE"]).await;
    assert_eq!(paused, "+OK\r\n");
    let set = one_reply(&mut a, &["SET", "late", "2"]).await;
    assert!(set.starts_with("-ERR attache"), "{set}");
    assert_eq!(one_reply(&mut a, &["MULTI"]).await, "+OK\r\n");
    assert_eq!(one_reply(&mut a, &["INCR", "late"]).await, "+QUEUED\r\n");
    assert_eq!(one_reply(&mut a, &["EXEC"]).await, "*1\r\n:3\r\n");

    // A server that does not answer holds them for another timeout only.
    let paused = one_reply(&mut direct, &["CLIENT", "PAUSE", "5000", "WRITE"]).await;
    assert_eq!(paused, "+OK\r\n");
    let set = one_reply(&mut a, &["SET", "late", "4"]).await;
    assert!(set.starts_with("-ERR attache"), "{set}");
    let t0 = std::time::Instant::now();
    assert_eq!(one_reply(&mut a, &["MULTI"]).await, "+OK\r\n");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(one_reply(&mut a, &["DISCARD"]).await, "+OK\r\n");
    assert_eq!(
        one_reply(&mut direct, &["CLIENT", "UNPAUSE"]).await,
        "+OK\r\n"
    );
    attache.shutdown().await;
}

/// A connection that stops answering does not keep its clients: once the
/// oldest timed-out command is given up, the next ones may move to
/// another shared connection, even though each command sent meanwhile
/// timed out there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaves_a_connection_that_stopped_answering() {
    let (server, attache, addr) =
        rig("command_timeout = \"300ms\"\nconnections_per_node = 4").await;
    let mut a = TcpStream::connect(addr).await.expect("connect");
    let mut direct = TcpStream::connect(server.addr()).await.expect("connect");
    assert_eq!(one_reply(&mut a, &["SET", "stuck", "0"]).await, "+OK\r\n");

    // Writes stall for 10 s: the SET, and the reads queued behind it on
    // its connection, get no answer.
    let paused = one_reply(&mut direct, &["CLIENT", "PAUSE", "10000", "WRITE"]).await;
    assert_eq!(paused, "+OK\r\n");
    let set = one_reply(&mut a, &["SET", "stuck", "1"]).await;
    assert!(set.starts_with("-ERR attache"), "{set}");
    let t0 = std::time::Instant::now();
    let answered = loop {
        let got = one_reply(&mut a, &["GET", "stuck"]).await;
        if got.starts_with('$') {
            break got;
        }
        assert!(got.starts_with("-ERR attache"), "{got}");
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "the client stayed on the stalled connection"
        );
    };
    assert_eq!(answered, "$1\r\n0\r\n");
    assert_eq!(
        one_reply(&mut direct, &["CLIENT", "UNPAUSE"]).await,
        "+OK\r\n"
    );
    attache.shutdown().await;
}
