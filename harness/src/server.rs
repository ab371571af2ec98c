//! A running test *backend* of accept → parse → route → backend → respond: one real
//! PostgreSQL server in its own temp dir, with the controls crash and failover tests need
//! (stop, SIGKILL, restart, streaming replica) and clean-up that survives panics.

use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::config::ServerConf;
use crate::exec::{run, run_with_input, PgEnv};
use crate::proc::{is_alive, kill_postmaster, read_pid_file, remove_shm};
use crate::template::CONF_FILE;
use crate::watchdog::Watchdog;
use crate::{free_port, HarnessError, SUPERUSER};

/// Start attempts when the chosen port turns out to be taken by someone else meanwhile.
const START_ATTEMPTS: u32 = 3;
/// Budget for `pg_ctl -w` operations, in seconds.
pub(crate) const PG_CTL_TIMEOUT: &str = "30";
/// At most this much of the server log goes into a start error.
const LOG_TAIL: usize = 4000;

/// A PostgreSQL server owned by a test; dropping it stops the server and deletes its files.
pub struct PgServer {
    env: &'static PgEnv,
    /// `None` only while dropping.
    dir: Option<TempDir>,
    data: PathBuf,
    log: PathBuf,
    conf: ServerConf,
    /// Cleans up if this process dies without running `Drop`.
    watchdog: Option<Watchdog>,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("port", &self.conf.port)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl PgServer {
    /// Makes the temp dir (owned by the server user) and its watchdog; `data` is not created.
    pub(crate) fn create(
        env: &'static PgEnv,
        mut conf: ServerConf,
    ) -> Result<PgServer, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("attache-pg-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating a server temp dir", e))?;
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let watchdog = Watchdog::spawn(env, dir.path(), Some(&data))?;
        conf.socket_dir = data.clone();
        env.give(dir.path())?;
        Ok(PgServer {
            env,
            dir: Some(dir),
            data,
            log,
            conf,
            watchdog: Some(watchdog),
        })
    }

    /// Where the binaries are and who runs them (for the replica controls).
    pub(crate) fn env(&self) -> &'static PgEnv {
        self.env
    }

    /// The configuration this server was started with (a replica starts from a copy).
    pub(crate) fn conf(&self) -> &ServerConf {
        &self.conf
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.conf.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.conf.port))
    }

    /// Superuser role that pg_hba trusts over TCP from 127.0.0.1.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The data directory (its parent temp dir also holds `server.log`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server log file, useful when a test wants to show why a backend misbehaved.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Postmaster pid from `postmaster.pid`, if the server is running.
    pub fn pid(&self) -> Option<u32> {
        read_pid_file(&self.data)
            .map(|p| p.pid)
            .filter(|&pid| is_alive(pid))
    }

    /// Runs `sql` through `psql -X -A -t` as the superuser; returns trimmed stdout.
    ///
    /// The SQL goes through stdin, so several statements may be given and each result is
    /// printed; command tags are suppressed (`-q`) and the first error aborts the script.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        self.psql_with(db, sql, &[])
    }

    /// [`PgServer::psql`] with terse errors, which never quote the failing SQL text back (the
    /// harness' own SQL may contain passwords).
    pub(crate) fn psql_terse(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        self.psql_with(db, sql, &["-v", "VERBOSITY=terse"])
    }

    fn psql_with(&self, db: &str, sql: &str, extra: &[&str]) -> Result<String, HarnessError> {
        let port = self.conf.port.to_string();
        let mut cmd = self.env.client_cmd("psql");
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(extra)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", SUPERUSER, "-d", db])
            .env("PGCONNECT_TIMEOUT", "10");
        run_with_input(&mut cmd, sql).map(|out| out.trim().to_string())
    }

    /// SIGKILLs the postmaster and its backends, like a crash. `Drop` still cleans up and
    /// [`PgServer::start_again`] performs crash recovery.
    pub fn kill9(&mut self) {
        if let Some(pid_file) = read_pid_file(&self.data) {
            kill_tree(pid_file.pid);
        }
        self.clear_stale();
    }

    /// Stops the server with `pg_ctl stop -m fast` (clients are disconnected); errors ignored.
    pub fn stop(&mut self) {
        let _ = self.pg_ctl_stop("fast");
    }

    /// Starts a stopped or killed server again on the same port.
    pub fn start_again(&mut self) -> Result<(), HarnessError> {
        if self.pid().is_some() {
            return Ok(());
        }
        self.clear_stale();
        self.boot(false)
    }

    /// Writes `attache.conf` for the current port.
    pub(crate) fn write_conf(&self) -> Result<(), HarnessError> {
        let path = self.data.join(CONF_FILE);
        std::fs::write(&path, self.conf.render())
            .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))?;
        self.env.give(&path)
    }

    /// `pg_ctl start -w`; with `new_port_on_conflict`, a lost race for the port is retried on
    /// a fresh one (only for servers nobody has seen the port of yet).
    pub(crate) fn boot(&mut self, new_port_on_conflict: bool) -> Result<(), HarnessError> {
        let mut attempt = 1;
        loop {
            self.write_conf()?;
            let log_offset = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            let started = run(self
                .env
                .server_cmd("pg_ctl")
                .arg("start")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(["-w", "-t", PG_CTL_TIMEOUT, "-s"]));
            let Err(err) = started else {
                return Ok(());
            };
            let log = read_from(&self.log, log_offset);
            let port_taken = log.contains("could not bind") || log.contains("already in use");
            if new_port_on_conflict && port_taken && attempt < START_ATTEMPTS {
                attempt += 1;
                self.conf.port = free_port();
                continue;
            }
            return Err(HarnessError::Start {
                port: self.conf.port,
                log: format!("{}\n{err}", tail(&log)),
            });
        }
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<String, HarnessError> {
        run(self
            .env
            .server_cmd("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", PG_CTL_TIMEOUT, "-s"]))
    }

    /// After a crash: frees the dead postmaster's shared memory and removes its pid file and
    /// socket lock files. PostgreSQL would handle all of that itself, except that a zombie
    /// postmaster (not yet reaped by pid 1) still looks alive to its "is another server
    /// running?" checks, which would fail an immediate restart.
    fn clear_stale(&self) {
        let Some(pid_file) = read_pid_file(&self.data) else {
            return;
        };
        if is_alive(pid_file.pid) {
            return;
        }
        if let Some(id) = pid_file.shm_id {
            remove_shm(id);
        }
        let _ = std::fs::remove_file(self.data.join("postmaster.pid"));
        let Ok(entries) = std::fs::read_dir(&self.conf.socket_dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".s.PGSQL.") && name.ends_with(".lock") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Polls `sql` (database `postgres`, as the superuser) until `done` accepts its output,
    /// for up to `secs` seconds. The timeout error names `what`, the port and the last output
    /// or error, so a red test shows what the server reported instead.
    pub(crate) fn wait_until(
        &self,
        sql: &str,
        secs: u64,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<(), HarnessError> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let last = self.psql("postgres", sql);
            if matches!(&last, Ok(out) if done(out)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let got = match last {
                    Ok(out) => format!("last saw {out:?}"),
                    Err(e) => e.to_string(),
                };
                return Err(HarnessError::Timeout {
                    what: format!("{what} on port {} ({got})", self.conf.port),
                    secs,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgServer {
    /// Stops the server (`-m immediate`) and removes its temp dir; also runs during unwinding.
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        if let Some(pid_file) = read_pid_file(&self.data) {
            if is_alive(pid_file.pid) {
                let _ = self.pg_ctl_stop("immediate");
            }
            if is_alive(pid_file.pid) {
                kill_tree(pid_file.pid);
            }
        }
        self.clear_stale();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// SIGKILLs a postmaster and every process it forked, like a machine crash.
///
/// PostgreSQL puts each child in a session of its own (`setsid` in `InitPostmasterChild`), so
/// a process-group kill only hits the postmaster; backends and walsenders would linger until
/// they notice its death and then send clients a FATAL message instead of a dropped
/// connection. The postmaster is stopped first so it cannot fork while its children are listed.
fn kill_tree(pid: u32) {
    let signal = |sig: &str, pids: &[u32]| {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let _ = std::process::Command::new("kill")
            .args(["-s", sig, "--"])
            .args(&pids)
            .output();
    };
    signal("STOP", &[pid]);
    let children = children_of(pid);
    if !children.is_empty() {
        signal("KILL", &children);
    }
    kill_postmaster(pid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while children.iter().any(|&c| is_alive(c)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Pids whose parent is `parent`, from a scan of `/proc`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            parent_of(&stat) == Some(parent)
        })
        .collect()
}

/// Parent pid from the text of `/proc/<pid>/stat` (the field after the state letter).
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The log text written after byte `offset` (lossy; empty if unreadable).
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = file.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The last [`LOG_TAIL`] bytes of `log`, cut at a character boundary.
fn tail(log: &str) -> &str {
    let mut start = log.len().saturating_sub(LOG_TAIL);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

#[cfg(test)]
mod tests;
