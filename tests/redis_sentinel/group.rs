//! The sentinel tests' servers: a primary, its replica and three
//! sentinels from the harness, and Attaché started in sentinel mode.

use std::net::SocketAddr;
use std::sync::Arc;

use attache::app::Attache;
use attache_harness::{start_replica_of, RedisBuilder, RedisServer, Sentinel};

/// Runs blocking harness code (process starts, `redis-cli`, failovers)
/// without stalling the runtime's other tasks.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A primary, optionally one replica of it, and three sentinels (quorum 2)
/// that already know about each other and the replica.
pub struct Group {
    pub primary: RedisServer,
    pub replica: Option<RedisServer>,
    pub sentinels: Arc<Sentinel>,
}

pub fn start_group(with_replica: bool) -> Group {
    blocking(|| {
        let primary = RedisBuilder::new().start().expect("primary starts");
        let replica = with_replica.then(|| start_replica_of(&primary).expect("replica starts"));
        let replicas: Vec<&RedisServer> = replica.iter().collect();
        let sentinels = Sentinel::start(&primary, &replicas, 2).expect("sentinels start");
        Group {
            primary,
            replica,
            sentinels: Arc::new(sentinels),
        }
    })
}

impl Group {
    /// Runs `SENTINEL FAILOVER` and waits for it; the new primary's address.
    pub async fn failover(&self) -> SocketAddr {
        let sentinels = self.sentinels.clone();
        tokio::task::spawn_blocking(move || sentinels.failover())
            .await
            .expect("failover task")
            .expect("sentinel failover")
    }

    /// The group's server at `addr` (the primary or the replica).
    pub fn server_at(&self, addr: SocketAddr) -> &RedisServer {
        [&self.primary, self.replica()]
            .into_iter()
            .find(|s| s.port() == addr.port())
            .expect("a server of the group")
    }

    pub fn replica(&self) -> &RedisServer {
        self.replica.as_ref().expect("this group has a replica")
    }

    /// The primary as the first sentinel names it.
    pub fn master_addr(&self) -> SocketAddr {
        blocking(|| self.sentinels.master_addr()).expect("sentinel names a primary")
    }

    /// A `[redis]` config in sentinel mode for these sentinels plus extra
    /// `[redis]` lines.
    pub fn toml(&self, extra: &str) -> String {
        let nodes: Vec<String> = self
            .sentinels
            .addrs()
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect();
        format!(
            "[general]\nshutdown_timeout = \"2s\"\n\n[redis]\nlisten = \"127.0.0.1:0\"\n\
             mode = \"sentinel\"\nmaster_name = \"{}\"\nnodes = [{}]\n{extra}\n",
            self.sentinels.master_name(),
            nodes.join(", ")
        )
    }
}

/// Starts Attaché from a TOML text; `listen` is forced to a free port.
pub async fn start_attache(toml: &str) -> (Attache, SocketAddr) {
    let mut cfg = attache::config::parse(toml).expect("test config must be valid");
    cfg.redis.as_mut().expect("a [redis] section").listen = "127.0.0.1:0".into();
    let attache = Attache::start(cfg).await.expect("attache starts");
    let addr = attache.redis_addr.expect("redis listener");
    (attache, addr)
}

pub fn cli(server: &RedisServer, args: &[&str]) -> String {
    blocking(|| server.cli(args)).expect("redis-cli")
}

pub fn role(server: &RedisServer) -> String {
    let info = cli(server, &["INFO", "replication"]);
    info.lines()
        .find_map(|l| l.trim().strip_prefix("role:"))
        .unwrap_or("?")
        .to_string()
}
