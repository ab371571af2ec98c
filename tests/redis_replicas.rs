//! Replica reads in `single` mode against real servers: reads go to the
//! replica under `prefer-replica`, writes to the primary, and losing the
//! replica moves reads back to the primary without a client error.

use std::process::Command;

use attache_harness::{start_replica_of, RedisBuilder, RedisServer};

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn get_calls(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]).unwrap_or_default();
    stats
        .lines()
        .find(|l| l.starts_with("cmdstat_get:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_and_fall_back_when_it_is_lost() {
    let primary = RedisBuilder::new().start().unwrap();
    let mut replica = start_replica_of(&primary).unwrap();
    let toml = format!(
        "[redis]\nnodes = [\"{}\"]\nreplicas = [\"{}\"]\nread_from = \"prefer-replica\"\nconnect_timeout = \"1s\"\n",
        primary.addr(),
        replica.addr()
    );
    let mut cfg = attache::config::parse(&toml).unwrap();
    cfg.redis.as_mut().unwrap().listen = "127.0.0.1:0".into();
    let attache = attache::app::Attache::start(cfg).await.unwrap();
    let port = attache.redis_addr.unwrap().port();

    let port2 = port;
    let set = tokio::task::spawn_blocking(move || cli(port2, &["SET", "k", "v"]))
        .await
        .unwrap();
    assert_eq!(set, "OK");
    assert_eq!(
        primary.cli(&["GET", "k"]).unwrap(),
        "v",
        "writes go to the primary"
    );
    // Let replication catch up, then read through Attaché.
    let mut seen = String::new();
    for _ in 0..50 {
        seen = tokio::task::spawn_blocking(move || cli(port, &["GET", "k"]))
            .await
            .unwrap();
        if seen == "v" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, "v");
    let (on_replica, on_primary) = (get_calls(&replica), get_calls(&primary));
    assert!(
        on_replica >= 1,
        "reads should reach the replica (replica {on_replica}, primary {on_primary})"
    );

    replica.kill9();
    for _ in 0..5 {
        let got = tokio::task::spawn_blocking(move || cli(port, &["GET", "k"]))
            .await
            .unwrap();
        assert_eq!(got, "v", "a lost replica must not cause client errors");
    }
    attache.shutdown().await;
}

/// A 64 MB value goes through (both directions) and other clients'
/// replies are not disturbed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_64_mb_pass_through() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = RedisBuilder::new().start().unwrap();
    let toml = format!("[redis]\nnodes = [\"{}\"]\n", server.addr());
    let mut cfg = attache::config::parse(&toml).unwrap();
    cfg.redis.as_mut().unwrap().listen = "127.0.0.1:0".into();
    let attache = attache::app::Attache::start(cfg).await.unwrap();
    let addr = attache.redis_addr.unwrap();

    let value = vec![b'x'; 64 << 20];
    let mut req = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    let mut big = tokio::net::TcpStream::connect(addr).await.unwrap();
    let writer = tokio::spawn(async move {
        big.write_all(&req).await.unwrap();
        let expected = 5 + format!("${}\r\n", 64 << 20).len() + (64 << 20) + 2;
        let mut got = vec![0u8; expected];
        big.read_exact(&mut got).await.unwrap();
        got
    });
    // Meanwhile another client is served normally.
    let mut small = tokio::net::TcpStream::connect(addr).await.unwrap();
    small.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    small.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), writer)
        .await
        .unwrap()
        .unwrap();
    assert!(
        got.starts_with(b"+OK\r\n$67108864\r\nxxxx"),
        "{:?}",
        &got[..32]
    );
    assert!(got.ends_with(b"xxxx\r\n"));
    assert_eq!(server.cli(&["STRLEN", "big"]).unwrap(), "67108864");
    attache.shutdown().await;
}

/// Runs `lines` (one command a line) on one redis-cli connection.
fn cli_session(port: u16, lines: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// WAIT through Attaché (on a connection of its own, as a blocking
/// command) counts the replicas that have the client's writes: with the
/// only replica stopped, a write followed by WAIT gets 0 after the
/// timeout, and 1 once the replica runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_counts_replicas_that_have_the_clients_writes() {
    let primary = RedisBuilder::new().start().unwrap();
    let replica = start_replica_of(&primary).unwrap();
    let toml = format!("[redis]\nnodes = [\"{}\"]\n", primary.addr());
    let mut cfg = attache::config::parse(&toml).unwrap();
    cfg.redis.as_mut().unwrap().listen = "127.0.0.1:0".into();
    let attache = attache::app::Attache::start(cfg).await.unwrap();
    let port = attache.redis_addr.unwrap().port();
    let run = |lines: &'static str| tokio::task::spawn_blocking(move || cli_session(port, lines));

    let caught_up = run("SET k v\nWAIT 1 5000\n").await.unwrap();
    assert_eq!(caught_up, ["OK", "1"], "the replica is in sync");
    let info = replica.cli(&["INFO", "server"]).unwrap();
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .map(|p| p.trim().to_owned())
        .expect("the replica's pid");
    let signal = |sig: &str| {
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let started = std::time::Instant::now();
    let lagging = run("SET k2 v2\nWAIT 1 700\n").await.unwrap();
    let took = started.elapsed();
    signal("-CONT");
    assert_eq!(lagging, ["OK", "0"], "no replica has k2 (after {took:?})");
    assert!(took >= std::time::Duration::from_millis(600), "{took:?}");
    let again = run("WAIT 1 5000\n").await.unwrap();
    assert_eq!(again, ["1"], "the resumed replica acknowledges");
    attache.shutdown().await;
}
