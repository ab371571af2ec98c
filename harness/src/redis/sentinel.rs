//! Redis Sentinel processes watching a test primary, the discovery side of the *backend* in
//! accept → parse → route → backend → respond: tests ask sentinels for the primary's address
//! and force failovers to check that Attaché follows the new primary.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use super::conf::render_sentinel;
use super::resp::{self, info_field, Auth, Reply};
use super::server::write_private;
use super::{find_bin, redis_cli, RedisError, RedisServer};
use crate::daemon::Daemon;
use crate::free_port;

/// The name every harness sentinel monitors the primary under.
pub(crate) const MASTER_NAME: &str = "mymaster";
/// Sentinels started by [`Sentinel::start`] (at least as many as the quorum).
const DEFAULT_SENTINELS: usize = 3;
/// Seconds a sentinel gets to answer `PING`.
const READY_SECS: u64 = 10;
/// Seconds for sentinels to discover each other and all replicas.
const DISCOVERY_SECS: u64 = 20;
/// Seconds a forced failover may take until every sentinel agrees on the new primary.
const FAILOVER_SECS: u64 = 30;
/// Start attempts per sentinel when its port turns out to be taken meanwhile.
const START_ATTEMPTS: u32 = 3;

/// A group of sentinels monitoring one primary as `mymaster`; dropping it kills them.
#[derive(Debug)]
pub struct Sentinel {
    /// One daemon and its port per sentinel.
    sentinels: Vec<(Daemon, u16)>,
    /// Harness credentials for the data nodes (sentinels themselves have no password).
    data_auth: Auth,
}

impl Sentinel {
    /// Starts `max(3, quorum)` sentinels monitoring `primary`; see [`Sentinel::start_count`].
    pub fn start(
        primary: &RedisServer,
        replicas: &[&RedisServer],
        quorum: usize,
    ) -> Result<Sentinel, RedisError> {
        Self::start_count(primary, replicas, quorum, DEFAULT_SENTINELS.max(quorum))
    }

    /// Starts `count` sentinels (`redis-server sentinel.conf --sentinel`, each in its own temp
    /// dir) monitoring `primary` with `quorum`, `down-after-milliseconds 1000` and
    /// `failover-timeout 5000`, and waits until each one sees all `replicas` and all other
    /// sentinels, so failover works right away.
    pub fn start_count(
        primary: &RedisServer,
        replicas: &[&RedisServer],
        quorum: usize,
        count: usize,
    ) -> Result<Sentinel, RedisError> {
        if quorum == 0 || count < quorum {
            return Err(RedisError::Topology(format!(
                "sentinel quorum {quorum} with {count} sentinels can never agree"
            )));
        }
        let program = find_bin("redis-server", "redis-server")?;
        let mut sentinels = Vec::with_capacity(count);
        for _ in 0..count {
            sentinels.push(start_one(&program, primary, quorum)?);
        }
        let group = Sentinel {
            sentinels,
            data_auth: primary.auth().clone(),
        };
        group.wait_discovery(replicas.len())?;
        Ok(group)
    }

    /// `127.0.0.1:port` of every sentinel.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.ports()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .collect()
    }

    fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.sentinels.iter().map(|(_, port)| *port)
    }

    /// Pids of the running sentinels.
    pub fn pids(&self) -> Vec<u32> {
        self.sentinels.iter().filter_map(|(d, _)| d.pid()).collect()
    }

    /// The name the primary is monitored under (`mymaster`).
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// Runs `redis-cli -e ARGS…` against the first sentinel (e.g. `SENTINEL MASTERS`).
    pub fn cli(&self, args: &[&str]) -> Result<String, RedisError> {
        let port = self.ports().next().unwrap_or_default();
        redis_cli(port, &Auth::default(), &[], args)
    }

    /// The primary's address as the first sentinel reports it
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    pub fn master_addr(&self) -> Result<SocketAddr, RedisError> {
        let port = self.ports().next().unwrap_or_default();
        master_addr_from(port)
    }

    /// Forces a failover with `SENTINEL FAILOVER mymaster` and waits until a replica reports
    /// `role:master` and every sentinel names it as the primary; returns its address.
    pub fn failover(&self) -> Result<SocketAddr, RedisError> {
        let old = self.master_addr()?;
        let port = self.ports().next().unwrap_or_default();
        resp::command(
            port,
            &Auth::default(),
            &["SENTINEL", "FAILOVER", MASTER_NAME],
        )?;
        let deadline = Instant::now() + Duration::from_secs(FAILOVER_SECS);
        loop {
            let last = self.promoted(old);
            if let Ok(Some(new)) = last {
                return Ok(new);
            }
            if Instant::now() >= deadline {
                return Err(RedisError::Timeout {
                    what: format!("a failover away from {old} (last: {last:?})"),
                    secs: FAILOVER_SECS,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The new primary's address once all sentinels agree on one other than `old` and it
    /// says `role:master`.
    fn promoted(&self, old: SocketAddr) -> Result<Option<SocketAddr>, RedisError> {
        let mut agreed = None;
        for port in self.ports() {
            let addr = master_addr_from(port)?;
            if addr == old || agreed.is_some_and(|a| a != addr) {
                return Ok(None);
            }
            agreed = Some(addr);
        }
        let Some(new) = agreed else {
            return Ok(None);
        };
        let info = resp::command(new.port(), &self.data_auth, &["INFO", "replication"])?;
        let role = info_field(&info.text().unwrap_or_default(), "role");
        Ok((role.as_deref() == Some("master")).then_some(new))
    }

    /// Waits until every sentinel lists `replicas` healthy replicas and all other sentinels.
    fn wait_discovery(&self, replicas: usize) -> Result<(), RedisError> {
        let deadline = Instant::now() + Duration::from_secs(DISCOVERY_SECS);
        loop {
            let why = match self.discovery_missing(replicas) {
                Ok(None) => return Ok(()),
                Ok(Some(missing)) => missing,
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(RedisError::Timeout {
                    what: format!("sentinel discovery ({why})"),
                    secs: DISCOVERY_SECS,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// None when discovery is complete, else what one sentinel still lacks.
    fn discovery_missing(&self, replicas: usize) -> Result<Option<String>, RedisError> {
        let others = self.sentinels.len() - 1;
        for port in self.ports() {
            let master =
                resp::command(port, &Auth::default(), &["SENTINEL", "MASTER", MASTER_NAME])?;
            let known = master.field("num-other-sentinels");
            if known != Some(others.to_string()) {
                return Ok(Some(format!(
                    "sentinel {port} knows {known:?} other sentinels"
                )));
            }
            let listed = resp::command(
                port,
                &Auth::default(),
                &["SENTINEL", "REPLICAS", MASTER_NAME],
            )?;
            let healthy = listed
                .items()
                .iter()
                .filter(|r| {
                    let flags = r.field("flags").unwrap_or_default();
                    flags == "slave" && r.field("master-link-status").as_deref() == Some("ok")
                })
                .count();
            if healthy < replicas {
                return Ok(Some(format!(
                    "sentinel {port} sees {healthy} healthy replicas"
                )));
            }
        }
        Ok(None)
    }
}

/// Starts one sentinel on a fresh port, retrying if the port was taken meanwhile.
fn start_one(
    program: &Path,
    primary: &RedisServer,
    quorum: usize,
) -> Result<(Daemon, u16), RedisError> {
    let mut daemon = Daemon::create("sentinel")?;
    let mut attempt = 1;
    loop {
        let port = free_port();
        let conf = daemon.dir().join("sentinel.conf");
        let text = render_sentinel(
            port,
            daemon.dir(),
            MASTER_NAME,
            primary.port(),
            quorum,
            primary.password(),
        );
        write_private(&conf, &text)?;
        daemon.spawn(vec![program.into(), conf.into(), "--sentinel".into()])?;
        let ready = daemon.wait_ready("redis-sentinel", port, READY_SECS, || {
            resp::pings(port, &Auth::default())
        });
        match ready {
            Ok(()) => return Ok((daemon, port)),
            Err(e) if e.port_taken() && attempt < START_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME` on the sentinel at `port`.
fn master_addr_from(port: u16) -> Result<SocketAddr, RedisError> {
    let reply = resp::command(
        port,
        &Auth::default(),
        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
    )?;
    let parts: Vec<String> = reply.items().iter().filter_map(Reply::text).collect();
    let addr = match parts.as_slice() {
        [ip, p] => format!("{ip}:{p}").parse().ok(),
        _ => None,
    };
    addr.ok_or_else(|| RedisError::Reply {
        command: "SENTINEL GET-MASTER-ADDR-BY-NAME".to_string(),
        port,
        reply: format!("{reply:?}"),
    })
}
