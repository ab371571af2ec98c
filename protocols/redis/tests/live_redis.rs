//! Checks key extraction and hash slots against a real Redis: every case in
//! testdata/key_cases.txt against `COMMAND GETKEYS`, and hash slots against
//! `CLUSTER KEYSLOT` on a cluster-enabled server. Needs `redis-server`
//! (Debian package redis-server).

mod support;

use attache_redis_protocol::command::{keys, lookup};
use attache_redis_protocol::inline::split_args;
use attache_redis_protocol::slot::hash_slot;
use attache_redis_protocol::{Command, Frame};
use bytes::Bytes;
use support::{serves_dir, start_redis, Client};

const CASES: &str = include_str!("../testdata/key_cases.txt");

/// `(command, expected keys, compare with the server)` per case line.
fn cases() -> Vec<(Vec<Bytes>, Vec<Bytes>, bool)> {
    CASES
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let live = !line.ends_with("# not-live");
            let line = line.split("  # ").next().unwrap();
            let (command, expected) = line.split_once(" =>").unwrap();
            (
                split_args(command.as_bytes()).unwrap(),
                split_args(expected.as_bytes()).unwrap(),
                live,
            )
        })
        .collect()
}

#[test]
fn key_extraction_matches_command_getkeys() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, port) = start_redis(dir.path(), "redis", &[]);
    let mut client = Client::connect(port);
    let mut compared = 0;
    for (args, expected, live) in cases() {
        let command = Command::new(args.clone()).unwrap();
        let info = lookup(command.name()).unwrap_or_else(|| panic!("unknown command {command:?}"));
        let ours: Vec<Bytes> = keys(info, &command)
            .into_iter()
            .map(Bytes::copy_from_slice)
            .collect();
        assert_eq!(ours, expected, "expectation for {command:?}");
        if !live {
            continue;
        }
        let mut request = vec![
            Bytes::from_static(b"COMMAND"),
            Bytes::from_static(b"GETKEYS"),
        ];
        request.extend(args);
        let server = match client.call(&request) {
            Frame::Array(items) => items
                .into_iter()
                .map(|f| f.as_bytes().cloned().unwrap())
                .collect::<Vec<_>>(),
            // "The command has no key arguments" / "Invalid arguments".
            Frame::Error(_) => Vec::new(),
            other => panic!("unexpected reply {other:?}"),
        };
        assert_eq!(ours, server, "COMMAND GETKEYS {command:?}");
        compared += 1;
    }
    assert!(compared >= 90, "compared only {compared} cases");
}

#[test]
fn hash_slots_match_cluster_keyslot() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nodes.conf").display().to_string();
    let (_redis, port) = start_redis(
        dir.path(),
        "cluster",
        &["--cluster-enabled", "yes", "--cluster-config-file", &conf],
    );
    let mut client = Client::connect(port);
    let mut keys: Vec<Vec<u8>> = [
        "123456789",
        "{user1000}.following",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "",
        "{",
        "}{a}",
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut key = format!("key:{i}:").into_bytes();
        key.extend(seed.to_le_bytes().iter().take(i % 9));
        if i % 5 == 0 {
            key = [b"{".as_slice(), &key, b"}x"].concat();
        }
        keys.push(key);
    }
    for key in &keys {
        let reply = client.call(&[&b"CLUSTER"[..], b"KEYSLOT", key]);
        assert_eq!(
            reply,
            Frame::Integer(i64::from(hash_slot(key))),
            "slot of {:?}",
            String::from_utf8_lossy(key)
        );
    }
}

/// The harness takes a port as its server's only when that server names
/// its own directory: another test's server on a port we probed as free
/// would not.
#[test]
fn a_server_is_recognised_by_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let (_redis, port) = start_redis(dir.path(), "redis", &[]);
    assert!(serves_dir(port, dir.path()));
    assert!(!serves_dir(port, other.path()));
}
