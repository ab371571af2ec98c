//! Checks that `Ketama` places keys exactly where a real twemproxy does:
//! three redis-servers behind nutcracker (`distribution: ketama`), 500 keys
//! SET through nutcracker, then each server asked which keys it holds. Runs
//! once per twemproxy hash function, with and without server names,
//! weights and `hash_tag`. Needs `redis-server` and `nutcracker` (Debian
//! packages of the same names).

mod support;

use attache_redis_protocol::ketama::{HashKind, HashTag, Ketama};
use attache_redis_protocol::{Command, Frame};
use std::collections::HashMap;
use std::path::Path;
use support::{binary, free_port, start_redis, Client, Proc};

const KEYS: usize = 500;

/// Keys of every length from 1 to 40, with hash tags and bytes >= 0x80.
fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| {
            let mut key = format!("k{i}:").into_bytes();
            key.resize(key.len() + i % 37, b'a' + (i % 26) as u8);
            match i % 7 {
                0 => [format!("{{user:{}}}:", i % 11).as_bytes(), &key].concat(),
                1 => [&[0xc3, 0xa9, 0xff, 0x80][..], &key].concat(),
                2 => [&key[..], b"{}"].concat(),
                _ => key,
            }
        })
        .collect()
}

struct Setup {
    hash: HashKind,
    weights: [u32; 3],
    named: bool,
    tag: Option<&'static str>,
}

struct Pool {
    _dir: tempfile::TempDir,
    _redis: Vec<Proc>,
    ports: Vec<u16>,
}

fn start_pool() -> Pool {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Vec::new();
    let mut ports = Vec::new();
    for i in 0..3 {
        let sub = dir.path().join(format!("redis{i}"));
        std::fs::create_dir(&sub).unwrap();
        let (proc, port) = start_redis(&sub, &format!("redis{i}"), &[]);
        redis.push(proc);
        ports.push(port);
    }
    Pool {
        _dir: dir,
        _redis: redis,
        ports,
    }
}

fn server_name(i: usize, port: u16, named: bool) -> String {
    if named {
        ["alpha", "beta", "gamma"][i].to_string()
    } else {
        format!("127.0.0.1:{port}")
    }
}

/// Starts nutcracker for `setup` in front of `pool`; returns it and its port.
fn start_nutcracker(dir: &Path, pool: &Pool, setup: &Setup) -> (Proc, u16) {
    let bin = binary("nutcracker", "nutcracker");
    let (listen, stats) = (free_port(), free_port());
    let mut conf = format!(
        "attache:\n  listen: 127.0.0.1:{listen}\n  hash: {}\n  distribution: ketama\n  \
         redis: true\n  auto_eject_hosts: false\n  preconnect: false\n",
        setup.hash.name()
    );
    if let Some(tag) = setup.tag {
        conf.push_str(&format!("  hash_tag: \"{tag}\"\n"));
    }
    conf.push_str("  servers:\n");
    for (i, port) in pool.ports.iter().enumerate() {
        let name = if setup.named {
            format!(" {}", server_name(i, *port, true))
        } else {
            String::new()
        };
        conf.push_str(&format!(
            "   - 127.0.0.1:{port}:{}{name}\n",
            setup.weights[i]
        ));
    }
    let conf_path = dir.join(format!("{}.yml", setup.hash.name()));
    std::fs::write(&conf_path, &conf).unwrap();
    let args: Vec<String> = [
        "-c",
        &conf_path.display().to_string(),
        "-s",
        &stats.to_string(),
        "-a",
        "127.0.0.1",
        "-o",
        &dir.join(format!("{}.log", setup.hash.name()))
            .display()
            .to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut proc = Proc::spawn(&bin, &args, dir, "nutcracker");
    assert!(
        proc.wait_for_port(listen),
        "nutcracker exited:\n{}\nconfig:\n{conf}",
        proc.log_text()
    );
    (proc, listen)
}

/// SETs every key through nutcracker, then maps each key to the server
/// that holds it.
fn placement(pool: &Pool, proxy_port: u16, keys: &[Vec<u8>]) -> HashMap<Vec<u8>, usize> {
    let mut proxy = Client::connect(proxy_port);
    let sets: Vec<Command> = keys
        .iter()
        .map(|k| Command::from_parts([&b"SET"[..], k, b"v"]).unwrap())
        .collect();
    proxy.send(&sets);
    for key in keys {
        assert_eq!(
            proxy.read(),
            Frame::ok(),
            "SET {:?} through nutcracker",
            String::from_utf8_lossy(key)
        );
    }
    let mut held = HashMap::new();
    for (i, port) in pool.ports.iter().enumerate() {
        let mut server = Client::connect(*port);
        let Frame::Array(items) = server.call(&["KEYS", "*"]) else {
            panic!("KEYS * failed on server {i}");
        };
        for item in items {
            let key = item.as_bytes().unwrap().to_vec();
            assert!(held.insert(key, i).is_none(), "a key on two servers");
        }
        assert_eq!(server.call(&["FLUSHALL"]), Frame::ok());
    }
    held
}

fn check(pool: &Pool, setup: Setup) {
    let dir = tempfile::tempdir().unwrap();
    let (_nutcracker, port) = start_nutcracker(dir.path(), pool, &setup);
    let keys = keys();
    let held = placement(pool, port, &keys);
    assert_eq!(
        held.len(),
        keys.len(),
        "{}: keys missing on the servers",
        setup.hash.name()
    );
    let servers: Vec<(String, u32)> = (0..3)
        .map(|i| (server_name(i, pool.ports[i], setup.named), setup.weights[i]))
        .collect();
    let ring = Ketama::new(&servers).unwrap();
    let tag = setup.tag.and_then(HashTag::parse);
    let mut per_server = [0; 3];
    for key in &keys {
        let actual = held[key];
        per_server[actual] += 1;
        assert_eq!(
            ring.server_for_key(setup.hash, tag, key),
            actual,
            "hash {} put {:?} on server {actual}",
            setup.hash.name(),
            String::from_utf8_lossy(key)
        );
    }
    // crc16 and crc32 give 16/15-bit values, which all fall before the
    // first few ring points; the others must spread over every server.
    if !matches!(setup.hash, HashKind::Crc16 | HashKind::Crc32) {
        assert!(
            per_server.iter().all(|&n| n > 0),
            "{}: {per_server:?}",
            setup.hash.name()
        );
    }
}

#[test]
fn ketama_matches_nutcracker_for_every_hash() {
    let pool = start_pool();
    // The three setups the design calls out, then every other hash.
    check(
        &pool,
        Setup {
            hash: HashKind::Fnv1a_64,
            weights: [1, 1, 1],
            named: true,
            tag: None,
        },
    );
    check(
        &pool,
        Setup {
            hash: HashKind::Murmur,
            weights: [1, 2, 3],
            named: false,
            tag: None,
        },
    );
    check(
        &pool,
        Setup {
            hash: HashKind::Md5,
            weights: [1, 1, 1],
            named: true,
            tag: Some("{}"),
        },
    );
    for (hash, _) in HashKind::ALL {
        if matches!(hash, HashKind::Fnv1a_64 | HashKind::Murmur | HashKind::Md5) {
            continue;
        }
        check(
            &pool,
            Setup {
                hash,
                weights: [2, 1, 1],
                named: true,
                tag: None,
            },
        );
    }
}
