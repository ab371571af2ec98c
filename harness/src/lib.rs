//! Test infrastructure for the *backend* end of accept → parse → route → backend → respond:
//! starts real PostgreSQL servers (no mocks, no Docker) on free loopback ports in temp dirs,
//! so integration tests, benches and `attache demo` talk to the real thing.
//!
//! Servers come from the installed Debian packages (`/usr/lib/postgresql/<ver>/bin`, newest
//! version wins; `ATTACHE_PG_BINDIR` overrides). `initdb` runs once per process into a template
//! that each server copies, which keeps a server start well under a second. When the process
//! runs as root, every server command runs as the `postgres` system user via `runuser`,
//! because PostgreSQL refuses to run as root.
//!
//! A server can also start streaming hot standbys of itself ([`PgServer::start_replica`]),
//! make them synchronous, pause their replay and promote them, for read/write-splitting and
//! failover tests.
//!
//! The [`redis`] module does the same for Redis: standalone servers, replicas, clusters,
//! sentinels and twemproxy.
//!
//! The [`http`] module serves the HTTP egress proxy: an in-process test upstream (HTTP/1.1,
//! h2c, TLS, WebSocket, failure modes) and real nginx and haproxy processes.
//!
//! Clean-up is layered: [`PgServer`]'s `Drop` stops the server and removes its directory (also
//! during a panic unwind), and a tiny watchdog shell per directory does the same if the test
//! process is killed outright, so servers never outlive their test process.

mod builder;
mod certs;
mod config;
mod daemon;
mod error;
mod exec;
pub mod http;
mod proc;
pub mod redis;
mod replica;
mod server;
mod template;
mod watchdog;

pub use builder::PgBuilder;
pub use certs::TestCerts;
pub use config::HbaAuth;
pub use error::HarnessError;
pub use redis::{
    start_replica_of, RedisBuilder, RedisCluster, RedisError, RedisServer, Sentinel, Twemproxy,
};
pub use server::PgServer;

use std::net::{Ipv4Addr, TcpListener};

/// Name of the bootstrap superuser; pg_hba trusts it over TCP from 127.0.0.1.
pub const SUPERUSER: &str = "postgres";

/// Path of a binary (`psql`, `pgbench`, …) from the PostgreSQL version the harness uses.
pub fn pg_bin(name: &str) -> Result<std::path::PathBuf, HarnessError> {
    Ok(exec::env()?.bin(name))
}

/// Returns a loopback TCP port that was free a moment ago.
///
/// Binding port 0 lets the kernel pick; the port is released again before returning, so a
/// race with another process is possible, which is why server starts retry on a bind error.
/// Panics only if the loopback interface cannot be bound at all (tests cannot run then anyway).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the local address of a bound socket: {e}"))
        .port()
}
