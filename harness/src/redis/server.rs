//! One real `redis-server` as a test *backend* of accept → parse → route → backend →
//! respond: configured by [`RedisBuilder`], with the controls crash and failover tests need
//! (stop, SIGKILL, restart, replicas) and clean-up that survives panics.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::conf::{validate_name, validate_setting, Spec, TlsFiles, TLS_CA, TLS_CERT, TLS_KEY};
use super::resp::{self, info_field, Auth, Reply};
use super::{find_bin, redis_cli, RedisError};
use crate::daemon::Daemon;
use crate::{free_port, TestCerts};

/// Start attempts when a chosen port turns out to be taken by someone else meanwhile.
const START_ATTEMPTS: u32 = 3;
/// Seconds a server gets to answer `PING`.
const READY_SECS: u64 = 10;
/// Seconds a new replica gets to report `master_link_status:up`.
const REPLICA_SECS: u64 = 10;
/// Highest port whose cluster bus port (port + 10000) still exists.
const MAX_CLUSTER_PORT: u16 = u16::MAX - 10_000;

/// Describes a Redis server; [`RedisBuilder::start`] brings it up.
#[derive(Debug, Clone, Default)]
pub struct RedisBuilder {
    spec: Spec,
}

impl RedisBuilder {
    /// A standalone server without password, TLS or persistence.
    pub fn new() -> Self {
        Self::default()
    }

    /// Password of the `default` user (`requirepass`); also used as `masterauth`, so
    /// replicas and cluster nodes built from the same builder can sync.
    pub fn password(mut self, password: &str) -> Self {
        self.spec.password = Some(password.to_string());
        self
    }

    /// Adds an ACL user with full access (`user NAME on >PW ~* &* +@all`).
    pub fn acl_user(mut self, name: &str, password: &str) -> Self {
        self.spec
            .users
            .push((name.to_string(), password.to_string()));
        self
    }

    /// Extra `redis.conf` line `key value`, written after the harness defaults so it overrides
    /// them (e.g. `("appendonly", "yes")`, `("save", "\"60 1\"")`). The value is written as
    /// is and may hold several arguments; do not override `port`, `dir` or `bind`.
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.spec
            .settings
            .push((key.to_string(), value.to_string()));
        self
    }

    /// Also listens with TLS on [`RedisServer::tls_port`], using `certs.server_cert`/`key`;
    /// client certificates signed by `certs.ca_cert` are accepted but not required.
    pub fn tls(mut self, certs: &TestCerts) -> Self {
        self.spec.tls = Some(TlsFiles {
            cert: certs.server_cert.clone(),
            key: certs.server_key.clone(),
            ca: certs.ca_cert.clone(),
        });
        self
    }

    /// Turns on cluster mode (`cluster-enabled yes`); used by [`super::RedisCluster`].
    pub(crate) fn cluster(mut self) -> Self {
        self.spec.cluster = true;
        self
    }

    /// Starts the server and waits until it answers `PING`.
    pub fn start(self) -> Result<RedisServer, RedisError> {
        for (key, value) in &self.spec.settings {
            validate_setting(key, value)?;
        }
        for (name, _) in &self.spec.users {
            validate_name("ACL user", name)?;
        }
        let mut server = RedisServer {
            daemon: Daemon::create("redis")?,
            program: find_bin("redis-server", "redis-server")?,
            port: 0,
            tls_port: None,
            auth: Auth {
                user: None,
                password: self.spec.password.clone(),
            },
            spec: self.spec,
        };
        let mut attempt = 1;
        loop {
            server.pick_ports();
            match server.boot() {
                Err(e) if e.port_taken() && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
                Ok(()) => return Ok(server),
            }
        }
    }
}

/// A `redis-server` owned by a test; dropping it kills the server and deletes its files.
#[derive(Debug)]
pub struct RedisServer {
    daemon: Daemon,
    program: PathBuf,
    port: u16,
    tls_port: Option<u16>,
    /// How the harness itself logs in (the `default` user).
    auth: Auth,
    spec: Spec,
}

impl RedisServer {
    /// TCP port on 127.0.0.1 (plain text).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// TLS port, if the server was built with [`RedisBuilder::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// Password of the `default` user, if one was set.
    pub fn password(&self) -> Option<&str> {
        self.auth.password.as_deref()
    }

    /// The temp dir holding `redis.conf`, the log and any data files.
    pub fn dir(&self) -> &Path {
        self.daemon.dir()
    }

    /// The server's log (its stdout and stderr), useful when a test wants to show why.
    pub fn log_path(&self) -> PathBuf {
        self.daemon.log_path()
    }

    /// Pid of the running server; None after [`RedisServer::kill9`] or [`RedisServer::stop`].
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT -e ARGS…` as the `default` user (password via
    /// `REDISCLI_AUTH`) and returns stdout without the final newline. Error replies fail.
    pub fn cli(&self, args: &[&str]) -> Result<String, RedisError> {
        redis_cli(self.port, &self.auth, &[], args)
    }

    /// Like [`RedisServer::cli`] but logs in as `user` (ACL) with `password`; with both None
    /// no `AUTH` is sent at all.
    pub fn cli_as(
        &self,
        user: Option<&str>,
        password: Option<&str>,
        args: &[&str],
    ) -> Result<String, RedisError> {
        let auth = Auth {
            user: user.map(str::to_string),
            password: password.map(str::to_string),
        };
        redis_cli(self.port, &auth, &[], args)
    }

    /// SIGKILLs the server, like a crash. `Drop` still cleans up and
    /// [`RedisServer::start_again`] restarts it on the same port.
    pub fn kill9(&mut self) {
        self.daemon.kill();
    }

    /// `SHUTDOWN NOSAVE` (clients are disconnected), falling back to SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if self.daemon.pid().is_none() {
            return;
        }
        // The server closes the connection instead of replying, so the result is ignored.
        let _ = self.call(&["SHUTDOWN", "NOSAVE"]);
        if !self.daemon.wait_exit(Duration::from_secs(5)) {
            self.daemon.kill();
        }
    }

    /// Starts a stopped or killed server again on the same port with its current
    /// `redis.conf` (which Redis itself may have rewritten, e.g. after a sentinel failover).
    pub fn start_again(&mut self) -> Result<(), RedisError> {
        if self.pid().is_some() {
            return Ok(());
        }
        self.daemon.respawn()?;
        self.wait_ready()
    }

    /// Sends one command over RESP as the `default` user; error replies become errors.
    pub(crate) fn call(&self, args: &[&str]) -> Result<Reply, RedisError> {
        resp::command(self.port, &self.auth, args)
    }

    /// An `INFO section` field, e.g. `info_field("replication", "role")`.
    pub(crate) fn info_field(&self, section: &str, field: &str) -> Result<String, RedisError> {
        let info = self.call(&["INFO", section])?.text().unwrap_or_default();
        info_field(&info, field).ok_or_else(|| RedisError::Reply {
            command: format!("INFO {section}"),
            port: self.port,
            reply: format!("no `{field}` field"),
        })
    }

    /// The credentials the harness uses, for helpers that talk to this server.
    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Polls `field` of `INFO section` until it equals `want`, for up to `secs` seconds.
    pub(crate) fn wait_info(
        &self,
        section: &str,
        field: &str,
        want: &str,
        secs: u64,
    ) -> Result<(), RedisError> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let last = self.info_field(section, field);
            if matches!(&last, Ok(v) if v == want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RedisError::Timeout {
                    what: format!(
                        "`{field}` of INFO {section} on port {} to be {want:?} (last: {last:?})",
                        self.port
                    ),
                    secs,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Chooses fresh ports; cluster nodes also need port + 10000 free for the cluster bus.
    fn pick_ports(&mut self) {
        self.port = if self.spec.cluster {
            free_cluster_port()
        } else {
            free_port()
        };
        self.tls_port = self.spec.tls.as_ref().map(|_| free_port());
    }

    /// Writes `redis.conf` (and TLS files), spawns the server and waits for `PONG`.
    fn boot(&mut self) -> Result<(), RedisError> {
        let dir = self.daemon.dir().to_path_buf();
        if let Some(tls) = &self.spec.tls {
            copy_private(&tls.cert, &dir.join(TLS_CERT))?;
            copy_private(&tls.key, &dir.join(TLS_KEY))?;
            copy_private(&tls.ca, &dir.join(TLS_CA))?;
        }
        let conf = dir.join("redis.conf");
        write_private(&conf, &self.spec.render(self.port, self.tls_port, &dir))?;
        let argv: Vec<OsString> = vec![self.program.clone().into(), conf.into()];
        self.daemon.spawn(argv)?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), RedisError> {
        let (port, auth) = (self.port, self.auth.clone());
        Ok(self
            .daemon
            .wait_ready("redis-server", port, READY_SECS, || {
                resp::pings(port, &auth)
            })?)
    }
}

/// Starts a replica of `primary` (same password, users, settings and TLS) on a fresh port and
/// waits until its `master_link_status` is `up`, i.e. the initial sync is done.
pub fn start_replica_of(primary: &RedisServer) -> Result<RedisServer, RedisError> {
    if primary.spec.cluster {
        return Err(RedisError::Topology(
            "cluster replicas are made by RedisCluster::start, not start_replica_of".to_string(),
        ));
    }
    let mut spec = primary.spec.clone();
    spec.replica_of = Some(primary.port);
    let replica = RedisBuilder { spec }.start()?;
    replica.wait_info("replication", "master_link_status", "up", REPLICA_SECS)?;
    Ok(replica)
}

/// A free port whose cluster bus port (port + 10000) is free too, a moment ago.
fn free_cluster_port() -> u16 {
    let mut port = free_port();
    for _ in 0..100 {
        if port <= MAX_CLUSTER_PORT
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok()
        {
            break;
        }
        port = free_port();
    }
    // After 100 misses the start itself reports the bind failure.
    port
}

/// Writes a file only the owner can read: it may hold passwords.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), RedisError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| RedisError::io(format!("writing {}", path.display()), e))
}

/// Copies TLS material into the temp dir, so restarts work after the caller's
/// [`TestCerts`] is gone.
fn copy_private(from: &Path, to: &Path) -> Result<(), RedisError> {
    let text = std::fs::read_to_string(from)
        .map_err(|e| RedisError::io(format!("reading {}", from.display()), e))?;
    write_private(to, &text)
}

#[cfg(test)]
mod tests;
