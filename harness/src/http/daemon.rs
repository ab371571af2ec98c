//! One external HTTP server process (nginx, haproxy) standing in as a *backend* or incumbent
//! proxy of accept → parse → route → backend → respond: owns its temp dir, its log and a
//! watchdog, and kills its whole process group on drop so no worker outlives the test.
//!
//! The child becomes leader of its own process group, so a master and its workers die
//! together with one `kill -9 -PGID`. The watchdog is the same idea as `crate::watchdog`: a
//! shell blocks reading a pipe whose only write end lives in this process; when the process
//! dies for any reason (even SIGKILL) it sees EOF, kills the group recorded in the temp dir
//! and removes the dir.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::HttpError;
use crate::exec::describe;
use crate::proc::{is_alive, parse_stat};

/// Name of the file holding the child's pid (= process group id), for the watchdog.
const PID_FILE: &str = "attache-child.pid";
/// Name of the file receiving the child's stdout and stderr.
const LOG_FILE: &str = "output.log";
/// At most this much of the log goes into an error.
const LOG_TAIL: usize = 3000;

const WATCHDOG_SCRIPT: &str = r#"trap '' HUP INT QUIT TERM PIPE
while read -r _; do :; done
dir=$1
if pid=$(cat "$dir/attache-child.pid" 2>/dev/null); then
  kill -9 "-$pid" 2>/dev/null
  n=0
  while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 20 ]; do sleep 0.1; n=$((n + 1)); done
fi
rm -rf -- "$dir""#;

/// A child process group in its own temp dir.
#[derive(Debug)]
pub(crate) struct Daemon {
    /// `None` only while dropping.
    dir: Option<TempDir>,
    path: PathBuf,
    child: Option<Child>,
    watchdog: Option<Child>,
}

impl Daemon {
    /// Creates the temp dir (named `attache-<prefix>-…`) and arms its watchdog.
    pub(crate) fn create(prefix: &str) -> Result<Daemon, HttpError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("attache-{prefix}-"))
            .tempdir()
            .map_err(|e| HttpError::io("creating a temp dir", e))?;
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
            .map_err(|e| HttpError::io(format!("spawning watchdog `{}`", describe(&cmd)), e))?;
        Ok(Daemon {
            dir: Some(dir),
            path,
            child: None,
            watchdog: Some(watchdog),
        })
    }

    /// The temp dir.
    pub(crate) fn dir(&self) -> &Path {
        &self.path
    }

    /// The file that collects the child's stdout and stderr.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }

    /// Spawns `argv` (program first) in a new process group, with the temp dir as working
    /// directory and its output written to the log; any previous child is killed first.
    pub(crate) fn spawn(&mut self, argv: &[OsString]) -> Result<(), HttpError> {
        self.kill();
        let Some((program, args)) = argv.split_first() else {
            return Err(HttpError::Invalid("nothing to spawn".to_string()));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&self.path)
            .stdin(Stdio::null())
            .process_group(0);
        let log_path = self.log_path();
        let log = std::fs::File::create(&log_path)
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| HttpError::io(format!("creating {}", log_path.display()), e))?;
        cmd.stdout(log.0).stderr(log.1);
        let child = cmd
            .spawn()
            .map_err(|e| HttpError::io(format!("spawning `{}`", describe(&cmd)), e))?;
        self.write_pid_file(child.id())?;
        self.child = Some(child);
        Ok(())
    }

    /// Records `pid` for the watchdog; written via rename so it never reads half a number.
    fn write_pid_file(&self, pid: u32) -> Result<(), HttpError> {
        let tmp = self.path.join(format!("{PID_FILE}.tmp"));
        std::fs::write(&tmp, pid.to_string())
            .and_then(|()| std::fs::rename(&tmp, self.path.join(PID_FILE)))
            .map_err(|e| HttpError::io("writing the child pid file", e))
    }

    /// Pid of the child (the group leader) if it is running.
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
        let mut members: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != leader)
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| parse_stat(&stat))
                    .is_some_and(|(state, pgrp)| pgrp == leader && state != 'Z' && state != 'X')
            })
            .collect();
        members.sort_unstable();
        members.insert(0, leader);
        members
    }

    /// The exit status if the child has exited (it is reaped then), else None.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.kill();
        Some(status.to_string())
    }

    /// SIGKILLs the child's whole process group, reaps the child and waits (bounded) until
    /// every member is gone, so ports and memory are free on return; a no-op if none runs.
    pub(crate) fn kill(&mut self) {
        let members = self.pids();
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while members.iter().any(|&pid| is_alive(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(self.path.join(PID_FILE));
    }

    /// The tail of what the child logged (lossy).
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read(self.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(LOG_TAIL);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Waits up to `secs` until 127.0.0.1:`port` accepts TCP connections; fails early if the
    /// child exits. `what` names the program in the error, which carries the log tail.
    pub(crate) fn wait_port(&mut self, what: &str, port: u16, secs: u64) -> Result<(), HttpError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let why = if let Some(status) = self.exited() {
                format!("exited ({status})")
            } else if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            } else if Instant::now() >= deadline {
                self.kill();
                format!("port not accepting within {secs}s, killed")
            } else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            return Err(HttpError::Start {
                what: what.to_string(),
                port,
                log: format!("{why}; output:\n{}", self.log_tail()),
            });
        }
    }
}

/// True if a start error says the port was taken meanwhile (worth retrying on a fresh one).
pub(crate) fn port_taken(err: &HttpError) -> bool {
    matches!(err, HttpError::Start { log, .. } if log.contains("already in use"))
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
