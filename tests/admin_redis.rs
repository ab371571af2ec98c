//! The admin `/metrics` and `/status` endpoints in front of real
//! `redis-server`s: commands through Attaché show in the node's request
//! counter, error replies (unknown command, WRONGTYPE) in its error
//! counter, the clients gauge follows connects and disconnects, and in
//! `sentinel` mode the replica the sentinels name is listed beside the
//! primary. Clients speak raw RESP over TCP so each one is exactly one
//! connection.

use std::net::SocketAddr;
use std::time::Duration;

use attache::app::Attache;
use attache_harness::{start_replica_of, RedisBuilder, RedisServer, Sentinel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(server: &RedisServer) -> (Attache, SocketAddr, SocketAddr) {
    let toml = format!(
        "[general]\nshutdown_timeout = \"2s\"\n\n[redis]\nlisten = \"127.0.0.1:0\"\nnodes = [\"{}\"]\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        server.addr()
    );
    let cfg = attache::config::parse(&toml).expect("valid config");
    let app = Attache::start(cfg).await.expect("attache starts");
    let redis = app.redis_addr.expect("redis listener");
    let admin = app.admin_addr.expect("admin listener");
    (app, redis, admin)
}

/// The `/metrics` body.
async fn metrics(admin: SocketAddr) -> String {
    get(admin, "/metrics").await
}

/// The body of a 200 answer to `GET path`.
async fn get(admin: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(admin).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut out))
        .await
        .expect("admin answers")
        .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// Sends one command and reads one single-line or bulk reply.
async fn cmd(tcp: &mut TcpStream, args: &[&str]) -> String {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    let complete = |b: &[u8]| {
        let Some(line_end) = b.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        if b[0] != b'$' {
            return true;
        }
        let len: i64 = std::str::from_utf8(&b[1..line_end])
            .unwrap()
            .parse()
            .unwrap();
        len < 0 || b.len() >= line_end + 2 + len as usize + 2
    };
    while !complete(&buf) {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut byte))
            .await
            .expect("a reply")
            .unwrap();
        assert_eq!(n, 1, "connection closed mid-reply");
        buf.push(byte[0]);
    }
    String::from_utf8(buf).unwrap()
}

fn redis_server() -> RedisServer {
    tokio::task::block_in_place(|| RedisBuilder::new().start()).expect("redis-server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_error_replies_and_clients_show_per_node() {
    let server = redis_server();
    let (app, redis, admin) = start(&server).await;
    let labels = format!(
        "mode=\"single\",node=\"{}\",role=\"primary\"",
        server.addr()
    );

    let mut c = TcpStream::connect(redis).await.unwrap();
    const N: usize = 20;
    for i in 0..N {
        let r = cmd(&mut c, &["SET", &format!("k{i}"), "v"]).await;
        assert_eq!(r, "+OK\r\n");
    }
    let r = cmd(&mut c, &["LPUSH", "k0", "x"]).await;
    assert!(r.starts_with("-WRONGTYPE"), "{r}");
    let r = cmd(&mut c, &["NOSUCHCOMMAND", "x"]).await;
    assert!(r.starts_with("-ERR unknown command"), "{r}");

    let m = metrics(admin).await;
    let requests = sample(&m, &format!("attache_redis_requests_total{{{labels}}}"))
        .unwrap_or_else(|| panic!("no requests counter for {labels}\n{m}"));
    // Attaché answers the unknown command itself: it never reaches the node.
    assert!(requests >= (N + 1) as f64, "{requests}\n{m}");
    let errors = sample(
        &m,
        &format!("attache_redis_error_replies_total{{{labels}}}"),
    )
    .unwrap();
    assert_eq!(errors, 1.0, "WRONGTYPE only\n{m}");
    let sent = sample(
        &m,
        &format!("attache_redis_bytes_total{{{labels},direction=\"to_server\"}}"),
    )
    .unwrap_or_else(|| panic!("no bytes counter\n{m}"));
    let received = sample(
        &m,
        &format!("attache_redis_bytes_total{{{labels},direction=\"from_server\"}}"),
    )
    .unwrap_or(0.0);
    // Each SET is at least `*3\r\n$3\r\nSET\r\n…` (20+ bytes); each +OK 5.
    assert!(sent >= (N * 20) as f64, "{sent}\n{m}");
    assert!(received >= (N * 5) as f64, "{received}\n{m}");
    let answered = m
        .lines()
        .find(|l| l.starts_with("attache_redis_request_seconds_count"))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no latency histogram\n{m}"));
    assert!(answered >= N as f64, "{answered}\n{m}");
    let open = sample(&m, &format!("attache_redis_server_connections{{{labels}}}"))
        .unwrap_or_else(|| panic!("no server connections gauge\n{m}"));
    assert!(open >= 1.0, "{open}\n{m}");
    assert_eq!(
        sample(
            &m,
            &format!("attache_redis_backend_errors_total{{{labels}}}")
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &m,
            &format!("attache_redis_backend_connects_total{{{labels}}}")
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(&m, "attache_redis_clients{mode=\"single\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("attache_listener_info{{protocol=\"redis\",addr=\"{redis}\"}}")
        ),
        Some(1.0),
        "{m}"
    );

    // Two more clients, each seen through once it has been answered.
    let mut more = Vec::new();
    for _ in 0..2 {
        let mut t = TcpStream::connect(redis).await.unwrap();
        assert_eq!(cmd(&mut t, &["PING"]).await, "+PONG\r\n");
        more.push(t);
    }
    let m = metrics(admin).await;
    assert_eq!(
        sample(&m, "attache_redis_clients{mode=\"single\"}"),
        Some(3.0)
    );
    drop(more);
    drop(c);
    let mut now = None;
    for _ in 0..100 {
        now = sample(
            &metrics(admin).await,
            "attache_redis_clients{mode=\"single\"}",
        );
        if now == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(now, Some(0.0), "disconnected clients are no longer counted");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_counts_as_a_backend_error() {
    let mut server = redis_server();
    let (app, redis, admin) = start(&server).await;
    let labels = format!(
        "mode=\"single\",node=\"{}\",role=\"primary\"",
        server.addr()
    );
    let mut c = TcpStream::connect(redis).await.unwrap();
    assert_eq!(cmd(&mut c, &["SET", "a", "b"]).await, "+OK\r\n");
    tokio::task::block_in_place(|| server.kill9());
    let r = cmd(&mut c, &["GET", "a"]).await;
    assert!(r.starts_with('-'), "no server, an error: {r}");
    let m = metrics(admin).await;
    let errors = sample(
        &m,
        &format!("attache_redis_backend_errors_total{{{labels}}}"),
    )
    .unwrap();
    assert!(errors >= 1.0, "{m}");
    let failed = sample(
        &m,
        &format!("attache_redis_requests_failed_total{{{labels}}}"),
    )
    .unwrap();
    assert!(failed >= 1.0, "the GET got no reply from the server\n{m}");
    app.shutdown().await;
}

/// `sentinel` mode with `read_from = "replica"`: once the sentinel lists
/// the primary's replica as healthy, `/status` and `/metrics` show it with
/// role `replica`, beside the primary the sentinel names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_replicas_show_with_role_replica() {
    let (primary, replica, sentinel) = tokio::task::block_in_place(|| {
        let primary = RedisBuilder::new().start().expect("primary starts");
        let replica = start_replica_of(&primary).expect("replica starts");
        let sentinel = Sentinel::start_count(&primary, &[&replica], 1, 1).expect("sentinel starts");
        (primary, replica, sentinel)
    });
    let toml = format!(
        "[general]\nshutdown_timeout = \"2s\"\n\n[redis]\nlisten = \"127.0.0.1:0\"\n\
         mode = \"sentinel\"\nmaster_name = \"{}\"\nnodes = [\"{}\"]\n\
         read_from = \"replica\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        sentinel.master_name(),
        sentinel.addrs()[0],
    );
    let cfg = attache::config::parse(&toml).expect("valid config");
    let app = Attache::start(cfg).await.expect("attache starts");
    let admin = app.admin_addr.expect("admin listener");
    let want = serde_json::json!([
        { "addr": primary.addr().to_string(), "role": "primary" },
        { "addr": replica.addr().to_string(), "role": "replica" },
    ]);

    // The sentinel learns the replica's link status from its INFO, and
    // Attaché asks the sentinel about once a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status: serde_json::Value =
            serde_json::from_str(&get(admin, "/status").await).expect("JSON status");
        if status["redis"]["nodes"] == want || tokio::time::Instant::now() >= deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["redis"]["mode"], "sentinel");
    assert_eq!(status["redis"]["nodes"], want, "{status:#}");

    let m = metrics(admin).await;
    for (node, role) in [(primary.addr(), "primary"), (replica.addr(), "replica")] {
        let series =
            format!("attache_redis_backend{{mode=\"sentinel\",node=\"{node}\",role=\"{role}\"}}");
        assert_eq!(sample(&m, &series), Some(1.0), "{series}\n{m}");
    }
    assert_eq!(
        sample(&m, "attache_redis_backends{mode=\"sentinel\"}"),
        Some(2.0),
        "{m}"
    );
    app.shutdown().await;
}
