//! Test support (Redis): a real `redis-server` from the harness and an
//! in-process Attaché in `single` mode in front of it, for test files that
//! include this with `#[path]` (they do not use the Postgres `support`).

use std::net::SocketAddr;

use attache::app::Attache;
use attache_harness::{RedisBuilder, RedisServer};

/// Starts a server and Attaché in front of it, with extra `[redis]` lines.
pub async fn start_single(extra: &str) -> (RedisServer, Attache, SocketAddr) {
    let server =
        tokio::task::block_in_place(|| RedisBuilder::new().start()).expect("redis-server starts");
    let toml = format!(
        "[general]\nshutdown_timeout = \"2s\"\n\n[redis]\nlisten = \"127.0.0.1:0\"\n\
         nodes = [\"{}\"]\n{extra}\n",
        server.addr()
    );
    let cfg = attache::config::parse(&toml).expect("test config must be valid");
    let attache = Attache::start(cfg).await.expect("attache starts");
    let addr = attache.redis_addr.expect("redis listener");
    (server, attache, addr)
}
