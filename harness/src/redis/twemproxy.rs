//! A twemproxy (`nutcracker`) in front of test Redis servers: the incumbent proxy that
//! Attaché's Redis path (accept → parse → route → backend → respond) is compared with and
//! must be a drop-in replacement for.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use super::conf::{quote, validate_name};
use super::resp::{self, Auth};
use super::server::write_private;
use super::{find_bin, redis_cli, RedisError, RedisServer};
use crate::daemon::Daemon;
use crate::free_port;

/// Name of the single server pool in `nutcracker.yml`.
const POOL: &str = "attache";
/// Seconds nutcracker gets to answer `PING`.
const READY_SECS: u64 = 10;
/// Start attempts when a chosen port turns out to be taken meanwhile.
const START_ATTEMPTS: u32 = 3;

/// A running nutcracker; dropping it kills the process and removes its temp dir.
#[derive(Debug)]
pub struct Twemproxy {
    daemon: Daemon,
    port: u16,
    /// `redis_auth` of the pool; clients must `AUTH` with it.
    auth: Auth,
}

/// One `servers:` entry: backend port, weight and name (the name feeds ketama hashing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolServer<'a> {
    pub port: u16,
    pub weight: u32,
    pub name: &'a str,
}

impl Twemproxy {
    /// Writes `nutcracker.yml` (one pool listening on a free loopback port, `hash_tag "{}"`,
    /// `redis: true`, `auto_eject_hosts: false`, `timeout: 2000`) and runs `nutcracker -c
    /// FILE` with its stats port on another free port. `servers` are (server, weight, name);
    /// `hash` (e.g. `fnv1a_64`, `murmur`) and `distribution` (`ketama`, `modula`, `random`) are
    /// nutcracker's names. If the servers have a password (all the same one), it becomes the
    /// pool's `redis_auth`, which clients then must send too.
    pub fn start(
        servers: &[(&RedisServer, u32, &str)],
        hash: &str,
        distribution: &str,
    ) -> Result<Twemproxy, RedisError> {
        validate_name("hash", hash)?;
        validate_name("distribution", distribution)?;
        for (_, _, name) in servers {
            validate_name("server name", name)?;
        }
        let password = shared_password(servers)?;
        let pool: Vec<PoolServer<'_>> = servers
            .iter()
            .map(|(s, weight, name)| PoolServer {
                port: s.port(),
                weight: *weight,
                name,
            })
            .collect();
        let program = find_bin("nutcracker", "nutcracker")?;
        let mut proxy = Twemproxy {
            daemon: Daemon::create("twemproxy")?,
            port: 0,
            auth: Auth {
                user: None,
                password,
            },
        };
        let mut attempt = 1;
        loop {
            proxy.port = free_port();
            let yaml = render_yaml(
                proxy.port,
                hash,
                distribution,
                proxy.auth.password.as_deref(),
                &pool,
            );
            match proxy.boot(&program, &yaml) {
                Ok(()) => return Ok(proxy),
                Err(e) if e.port_taken() && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn boot(&mut self, program: &Path, yaml: &str) -> Result<(), RedisError> {
        let dir = self.daemon.dir().to_path_buf();
        let conf = dir.join("nutcracker.yml");
        write_private(&conf, yaml)?;
        let stats_port = free_port().to_string();
        let log = self.daemon.log_path();
        self.daemon.spawn(vec![
            program.into(),
            "-c".into(),
            conf.into(),
            "-s".into(),
            stats_port.into(),
            "-a".into(),
            "127.0.0.1".into(),
            "-o".into(),
            log.into(),
        ])?;
        let (port, auth) = (self.port, self.auth.clone());
        Ok(self
            .daemon
            .wait_ready("nutcracker", port, READY_SECS, || resp::pings(port, &auth))?)
    }

    /// The proxy's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Pid of the running nutcracker.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// The temp dir holding `nutcracker.yml` and the log.
    pub fn dir(&self) -> &Path {
        self.daemon.dir()
    }

    /// Runs `redis-cli -e ARGS…` through the proxy (with the pool password, if any).
    pub fn cli(&self, args: &[&str]) -> Result<String, RedisError> {
        redis_cli(self.port, &self.auth, &[], args)
    }
}

/// The one password all `servers` share, if any; twemproxy has a single `redis_auth`.
fn shared_password(servers: &[(&RedisServer, u32, &str)]) -> Result<Option<String>, RedisError> {
    let Some(((first, _, _), rest)) = servers.split_first() else {
        return Err(RedisError::Topology(
            "twemproxy needs at least one server".to_string(),
        ));
    };
    if rest
        .iter()
        .any(|(s, _, _)| s.password() != first.password())
    {
        return Err(RedisError::Topology(
            "twemproxy servers must all share one password (redis_auth)".to_string(),
        ));
    }
    Ok(first.password().map(str::to_string))
}

/// The `nutcracker.yml` text for one pool.
pub(crate) fn render_yaml(
    port: u16,
    hash: &str,
    distribution: &str,
    password: Option<&str>,
    servers: &[PoolServer<'_>],
) -> String {
    let mut yaml = format!(
        "{POOL}:\n  listen: 127.0.0.1:{port}\n  hash: {hash}\n  hash_tag: \"{{}}\"\n  \
         distribution: {distribution}\n  auto_eject_hosts: false\n  redis: true\n  \
         timeout: 2000\n"
    );
    if let Some(password) = password {
        // YAML double-quoted scalars use the same `\\`, `\"` and `\xHH` escapes.
        yaml.push_str(&format!("  redis_auth: {}\n", quote(password)));
    }
    yaml.push_str("  servers:\n");
    for s in servers {
        yaml.push_str(&format!(
            "    - 127.0.0.1:{}:{} {}\n",
            s.port, s.weight, s.name
        ));
    }
    yaml
}

#[cfg(test)]
mod tests;
