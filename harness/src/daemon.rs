//! One long-running child process (redis-server, sentinel, nutcracker, nginx, haproxy) acting
//! as a test *backend* (or incumbent proxy) of accept → parse → route → backend → respond:
//! owns its temp dir, its log and a watchdog, and kills its whole process group on drop so no
//! worker or fork outlives the test.
//!
//! The child leads its own process group, so a master and its workers (nginx) or a server and
//! its save fork (redis) die together with one `kill -9 -PGID`. The watchdog is the same idea
//! as `crate::watchdog`: a shell blocks reading a pipe whose only write end lives in this
//! process; when the process dies for any reason (even SIGKILL) it sees EOF, kills the group
//! recorded in the temp dir and removes the dir. The PostgreSQL watchdog stops its server with
//! `pg_ctl`; here the child is ours, so a pid file suffices.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::exec::describe;
use crate::proc::{is_alive, parse_stat};

/// Name of the file holding the child's pid (= process group id), for the watchdog.
const PID_FILE: &str = "attache-child.pid";
/// Name of the file receiving the child's stdout and stderr.
const LOG_FILE: &str = "output.log";
/// At most this much of the log goes into an error.
const LOG_TAIL: usize = 3000;
/// How long a kill waits for every member of the group to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);

const WATCHDOG_SCRIPT: &str = r#"trap '' HUP INT QUIT TERM PIPE
while read -r _; do :; done
dir=$1
if pid=$(cat "$dir/attache-child.pid" 2>/dev/null); then
  kill -9 "-$pid" 2>/dev/null
  n=0
  while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 20 ]; do sleep 0.1; n=$((n + 1)); done
fi
rm -rf -- "$dir""#;

/// Why creating, spawning or starting a daemon failed. The Redis and HTTP harnesses convert
/// it into their own error enums, so callers see the same variants as before.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
    /// A filesystem, socket or process-spawning operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The process exited or never became ready during start-up; `log` is its output's tail.
    #[error("{what} on port {port} did not start: {log}")]
    Start {
        /// Which program.
        what: String,
        /// Port it was configured with.
        port: u16,
        /// Tail of its log and why the harness gave up.
        log: String,
    },
    /// [`Daemon::respawn`] before any [`Daemon::spawn`], or an empty argv.
    #[error("nothing to spawn")]
    NothingToSpawn,
}

impl DaemonError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DaemonError::Io {
            context: context.into(),
            source,
        }
    }

    /// True if this is a start error saying the port was taken meanwhile (worth retrying on
    /// a fresh port).
    pub(crate) fn port_taken(&self) -> bool {
        matches!(self, DaemonError::Start { log, .. } if log_says_port_taken(log))
    }
}

/// True if a start error's log says the port was taken meanwhile; shared by the error enums
/// that [`DaemonError::Start`] converts into.
pub(crate) fn log_says_port_taken(log: &str) -> bool {
    log.contains("already in use")
}

/// A child process group in its own temp dir.
#[derive(Debug)]
pub(crate) struct Daemon {
    /// `None` only while dropping.
    dir: Option<TempDir>,
    path: PathBuf,
    argv: Vec<OsString>,
    child: Option<Child>,
    /// Log length when the current child was spawned, so start errors show only its output.
    log_offset: u64,
    watchdog: Option<Child>,
}

impl Daemon {
    /// Creates the temp dir (named `attache-<prefix>-…`) and arms its watchdog.
    pub(crate) fn create(prefix: &str) -> Result<Daemon, DaemonError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("attache-{prefix}-"))
            .tempdir()
            .map_err(|e| DaemonError::io("creating a temp dir", e))?;
        let path = dir.path().to_path_buf();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("attache-harness-watchdog")
            .arg(&path)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let watchdog = cmd
            .spawn()
            .map_err(|e| DaemonError::io(format!("spawning watchdog `{}`", describe(&cmd)), e))?;
        Ok(Daemon {
            dir: Some(dir),
            path,
            argv: Vec::new(),
            child: None,
            log_offset: 0,
            watchdog: Some(watchdog),
        })
    }

    /// The temp dir.
    pub(crate) fn dir(&self) -> &Path {
        &self.path
    }

    /// The file that collects the child's stdout and stderr (across respawns).
    pub(crate) fn log_path(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }

    /// Spawns `argv` (program first) in a new process group, with the temp dir as working
    /// directory and its output appended to the log; any previous child is killed first.
    pub(crate) fn spawn(&mut self, argv: Vec<OsString>) -> Result<(), DaemonError> {
        self.kill();
        self.argv = argv;
        self.respawn()
    }

    /// Spawns the last `argv` again (e.g. a restart after a crash test).
    pub(crate) fn respawn(&mut self) -> Result<(), DaemonError> {
        self.kill();
        let Some((program, args)) = self.argv.split_first() else {
            return Err(DaemonError::NothingToSpawn);
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&self.path)
            .stdin(Stdio::null())
            .process_group(0);
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| DaemonError::io(format!("opening {}", log_path.display()), e))?;
        self.log_offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        cmd.stdout(log.0).stderr(log.1);
        let child = cmd
            .spawn()
            .map_err(|e| DaemonError::io(format!("spawning `{}`", describe(&cmd)), e))?;
        // Stored before the pid file, so a failed write still leaves the child to `kill`.
        let pid = child.id();
        self.child = Some(child);
        self.write_pid_file(pid)
    }

    /// Records `pid` for the watchdog; written via rename so it never reads half a number.
    fn write_pid_file(&self, pid: u32) -> Result<(), DaemonError> {
        let tmp = self.path.join(format!("{PID_FILE}.tmp"));
        std::fs::write(&tmp, pid.to_string())
            .and_then(|()| std::fs::rename(&tmp, self.path.join(PID_FILE)))
            .map_err(|e| DaemonError::io("writing the child pid file", e))
    }

    /// Pid of the child (the group leader) if it is running (not exited, not a zombie).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .filter(|&pid| is_alive(pid))
    }

    /// Every live process of the child's group (leader first), e.g. nginx master and workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let Some(leader) = self.pid() else {
            return Vec::new();
        };
        let mut members: Vec<u32> = group_members(leader)
            .into_iter()
            .filter(|&pid| pid != leader)
            .collect();
        members.insert(0, leader);
        members
    }

    /// The exit status if the child has exited (it is reaped then, and whatever is left of
    /// its group is killed), else None.
    pub(crate) fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        let leader = self.child.take().map(|c| c.id());
        let _ = std::fs::remove_file(self.path.join(PID_FILE));
        // The leader is reaped, so its pid (and with it the group id) may be reused: stray
        // members are killed by pid, never by group.
        if let Some(leader) = leader {
            kill_and_wait(&group_members(leader), None);
        }
        Some(status.to_string())
    }

    /// Waits up to `timeout` for the child to exit on its own; true if it did (or none ran).
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.child.is_some() {
            if self.exited().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// SIGKILLs the child's whole process group, like a crash, reaps the child and waits
    /// (bounded) until every member is gone, so ports and memory are free on return; a no-op
    /// if none runs.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Not reaped yet, so the group id cannot have been reused: the group kill is safe.
            let members = group_members(child.id());
            kill_and_wait(&members, Some(child.id()));
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.path.join(PID_FILE));
    }

    /// What the current child logged since it was spawned (its tail, lossy).
    pub(crate) fn log_tail(&self) -> String {
        let mut text = Vec::new();
        if let Ok(mut file) = std::fs::File::open(self.log_path()) {
            if file.seek(SeekFrom::Start(self.log_offset)).is_ok() {
                let _ = file.read_to_end(&mut text);
            }
        }
        let start = text.len().saturating_sub(LOG_TAIL);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Polls `ready` every 10 ms for up to `secs`; fails early if the child exits (checked
    /// first, so a foreign process answering on a taken port is not mistaken for ours).
    /// `what` and `port` name the process in the error, which carries the log tail.
    pub(crate) fn wait_ready(
        &mut self,
        what: &str,
        port: u16,
        secs: u64,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), DaemonError> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let why = if let Some(status) = self.exited() {
                format!("exited ({status})")
            } else if ready() {
                return Ok(());
            } else if Instant::now() >= deadline {
                self.kill();
                format!("not ready within {secs}s, killed")
            } else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            return Err(DaemonError::Start {
                what: what.to_string(),
                port,
                log: format!("{why}; output:\n{}", self.log_tail()),
            });
        }
    }

    /// [`Daemon::wait_ready`] until 127.0.0.1:`port` accepts TCP connections.
    pub(crate) fn wait_port(
        &mut self,
        what: &str,
        port: u16,
        secs: u64,
    ) -> Result<(), DaemonError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        self.wait_ready(what, port, secs, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }
}

/// Live (not zombie) processes whose process group is `pgid`, sorted.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut members: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
                .is_some_and(|(state, pgrp)| pgrp == pgid && state != 'Z' && state != 'X')
        })
        .collect();
    members.sort_unstable();
    members
}

/// SIGKILLs the group `group` (if given) and each of `pids`, then waits (bounded) until every
/// one of `pids` is gone.
fn kill_and_wait(pids: &[u32], group: Option<u32>) {
    let targets: Vec<String> = group
        .map(|pgid| format!("-{pgid}"))
        .into_iter()
        .chain(pids.iter().map(u32::to_string))
        .collect();
    if targets.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--"])
        .args(&targets)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + KILL_WAIT;
    while pids.iter().any(|&pid| is_alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Drop for Daemon {
    /// Kills the process group and removes the temp dir; also runs during unwinding. The
    /// watchdog is disarmed last, so a SIGKILL halfway through still leaves it to finish.
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            // SIGKILL cannot be trapped; the shell has no children while it waits on `read`.
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

#[cfg(test)]
mod tests;
