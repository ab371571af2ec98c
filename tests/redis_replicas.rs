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
