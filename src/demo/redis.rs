//! Accept → respond for the Redis part of `attache demo`: three Redis
//! servers behind Attaché's sharded listener, keys written through it, and
//! where they landed, asked of each shard directly.

use std::net::SocketAddr;

use attache_harness::{RedisBuilder, RedisServer};

use super::{free_or_any, DemoError};

/// Three Redis servers for the sharded part; the demo goes on without them
/// (saying why) if redis-server is not installed.
pub(super) fn start_shards() -> Option<Vec<RedisServer>> {
    let mut shards = Vec::new();
    for _ in 0..3 {
        match RedisBuilder::new().start() {
            Ok(s) => shards.push(s),
            Err(e) => {
                println!("(Skipping the Redis part: {e})");
                return None;
            }
        }
    }
    Some(shards)
}

/// The `[redis]` section putting `shards` behind a sharded listener.
pub(super) fn config(shards: &[RedisServer]) -> String {
    let nodes: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| format!("\"{}:1 shard{}\"", s.addr(), i + 1))
        .collect();
    format!(
        "\n[redis]\nlisten = \"{}\"\nmode = \"sharded\"\nhash = \"murmur\"\nhash_tag = \"{{}}\"\nnodes = [{}]\n",
        free_or_any("127.0.0.1:6380"),
        nodes.join(", ")
    )
}

/// Writes keys through Attaché's sharded Redis listener and shows where
/// they landed, asking each shard directly.
pub(super) async fn spread(shards: &[RedisServer], addr: SocketAddr) -> Result<(), DemoError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const KEYS: usize = 3000;
    let mut out = Vec::new();
    for i in 0..KEYS {
        let key = format!("user:{i}:profile");
        out.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nx\r\n", key.len()).as_bytes(),
        );
    }
    let io = |e: std::io::Error| DemoError::Other(format!("redis demo client: {e}"));
    let mut tcp = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
    tcp.write_all(&out).await.map_err(io)?;
    let expected = KEYS * 5; // "+OK\r\n" per key
    let mut got = vec![0u8; expected];
    tcp.read_exact(&mut got).await.map_err(io)?;
    let counts: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| format!("shard{} {}", i + 1, s.cli(&["DBSIZE"]).unwrap_or_default()))
        .collect();
    println!("Redis: 3 shards behind Attaché on {addr} (twemproxy-compatible ketama, murmur).");
    println!(
        "  {KEYS} keys written through Attaché landed: {}",
        counts.join(", ")
    );
    println!(
        "  Try:  redis-cli -p {} MGET user:1:profile user:2:profile user:3:profile",
        addr.port()
    );
    Ok(())
}
