use std::time::Duration;

use super::*;
use crate::config::redis::{RedisConfig, RedisMode};

fn load(imported: &Imported) -> RedisConfig {
    crate::config::parse(&imported.toml)
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml))
        .redis
        .expect("a [redis] section")
}

fn has_unmapped(i: &Imported, key: &str) -> bool {
    i.unmapped.iter().any(|u| u.key == key)
}

#[test]
fn the_fixture_maps_its_first_pool() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import/nutcracker.yml");
    let imported = crate::import::import_file(&path, None).unwrap();
    assert_eq!(imported.format, crate::import::Format::Nutcracker);
    let r = load(&imported);
    assert_eq!(r.listen, "127.0.0.1:22121");
    assert_eq!(r.mode, RedisMode::Sharded);
    assert_eq!(
        r.nodes,
        [
            "10.0.1.21:6379:1 cache1",
            "10.0.1.22:6379:1 cache2",
            "10.0.1.23:6379:2 cache3"
        ]
    );
    assert_eq!(r.hash, "fnv1a_64");
    assert_eq!(r.hash_tag.as_deref(), Some("{}"));
    assert!(r.auto_eject_hosts);
    assert_eq!(r.server_retry_timeout.0, Duration::from_secs(2));
    assert_eq!(r.server_failure_limit, 3);
    assert_eq!(r.command_timeout.0, Duration::from_millis(400));
    assert_eq!(r.connections_per_node, 2);
    assert_eq!(r.password.as_ref().unwrap().expose(), "cache-secret");
    assert_eq!(r.client_password.as_ref().unwrap().expose(), "cache-secret");
    let keys: Vec<&str> = imported.unmapped.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(keys, ["pool ratelimit", "sessions.preconnect"]);
    assert!(imported.unmapped[0].reason.contains("one [redis] listener"));
    assert!(imported
        .toml
        .contains("# not mapped: pool ratelimit = (1 servers) ("));
}

#[test]
fn defaults_and_the_11211_name_rule() {
    let yml = "p:\n  redis: true\n  servers:\n    - 10.0.0.1:11211:1\n    - 10.0.0.2:6379:3\n";
    let imported = import(yml, "n.yml").unwrap();
    let r = load(&imported);
    // twemproxy hashes the bare host for port 11211, host:port otherwise.
    assert_eq!(r.nodes, ["10.0.0.1:11211:1 10.0.0.1", "10.0.0.2:6379:3"]);
    assert_eq!(r.hash, "fnv1a_64");
    assert!(imported
        .toml
        .contains("hash = \"fnv1a_64\"  # twemproxy default"));
    assert_eq!(r.listen, "127.0.0.1:6380");
    assert!(imported.unmapped.is_empty(), "{:?}", imported.unmapped);
    assert!(imported.toml.contains("# Every setting was mapped."));
}

#[test]
fn memcached_pools_are_skipped_and_a_redis_one_is_taken() {
    let yml = "mc:\n  servers:\n    - 10.0.0.1:11211:1\nrd:\n  redis: true\n  listen: localhost:22121\n  servers:\n    - 10.0.0.2:6379:1\n";
    let imported = import(yml, "n.yml").unwrap();
    let r = load(&imported);
    assert_eq!(r.nodes, ["10.0.0.2:6379:1"]);
    assert_eq!(r.listen, "127.0.0.1:22121");
    assert!(imported.unmapped[0].reason.contains("memcached"));
    let only_mc = "mc:\n  redis: false\n  servers:\n    - 10.0.0.1:11211:1\n";
    let e = import(only_mc, "n.yml").unwrap_err();
    assert!(e.to_string().contains("memcached"), "{e}");
}

#[test]
fn placements_attache_cannot_reproduce_fail() {
    let two = "  servers:\n    - 10.0.0.1:6379:1\n    - 10.0.0.2:6379:1\n";
    for (extra, needle) in [
        ("  distribution: modula\n", "modula"),
        ("  distribution: random\n", "random"),
        ("  hash: sha1\n", "unknown hash"),
    ] {
        let yml = format!("p:\n  redis: true\n{extra}{two}");
        let e = import(&yml, "n.yml").unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let sock = "p:\n  redis: true\n  servers:\n    - /tmp/redis.sock:1\n";
    assert!(import(sock, "n.yml")
        .unwrap_err()
        .to_string()
        .contains("Unix"));
    let none = "p:\n  redis: true\n";
    assert!(import(none, "n.yml")
        .unwrap_err()
        .to_string()
        .contains("no servers"));
    let zero = "p:\n  redis: true\n  servers:\n    - 10.0.0.1:6379:0\n";
    assert!(import(zero, "n.yml").is_err());
}

#[test]
fn one_server_with_modula_is_the_same_placement() {
    let yml = "p:\n  redis: true\n  distribution: modula\n  servers: [10.0.0.1:6379:1 only]\n";
    let imported = import(yml, "n.yml").unwrap();
    assert_eq!(load(&imported).nodes, ["10.0.0.1:6379:1 only"]);
    assert!(has_unmapped(&imported, "p.distribution"));
}

#[test]
fn odd_values_are_reported_not_guessed() {
    let yml = "p:\n  redis: true\n  redis_db: 3\n  redis_auth: [s3cret]\n  timeout: 0\n  \
               server_connections: 200\n  client_connections: 0\n  auto_eject_hosts: maybe\n  \
               listen: /var/run/nutcracker.sock 0666\n  backlog: 1024\n  \
               servers:\n    - 10.0.0.1:6379:1\n";
    let imported = import(yml, "n.yml").unwrap();
    let r = load(&imported);
    assert_eq!(r.connections_per_node, 64);
    assert_eq!(
        r.command_timeout.0,
        Duration::from_secs(5),
        "Attaché's default"
    );
    assert_eq!(r.max_client_connections, 10_000);
    assert!(!r.auto_eject_hosts);
    assert!(r.password.is_none());
    for key in [
        "p.redis_db",
        "p.redis_auth",
        "p.timeout",
        "p.server_connections",
        "p.auto_eject_hosts",
        "p.listen",
        "p.backlog",
    ] {
        assert!(
            has_unmapped(&imported, key),
            "{key}: {:?}",
            imported.unmapped
        );
    }
    let report: String = imported.unmapped.iter().map(|u| u.to_string()).collect();
    assert!(!report.contains("s3cret"), "{report}");
    assert!(!imported.toml.contains("s3cret"));
}
