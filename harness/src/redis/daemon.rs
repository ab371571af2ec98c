//! One long-running child process (redis-server, sentinel, nutcracker) acting as a test
//! *backend* of accept → parse → route → backend → respond: owns its temp dir, its log and a
//! watchdog, and kills and reaps the child on drop so nothing outlives the test.
//!
//! The watchdog follows `crate::watchdog`: a shell blocks reading a pipe whose only write end
//! lives in this process, so when the test process dies for any reason (even SIGKILL) it sees
//! EOF, SIGKILLs the pid recorded in the temp dir and removes the dir. The PostgreSQL
//! watchdog stops its server with `pg_ctl`; here the child is ours, so a pid file suffices.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::RedisError;
use crate::exec::describe;
use crate::proc::is_alive;

/// Name of the file holding the child's pid, for the watchdog.
const PID_FILE: &str = "attache-child.pid";
/// Name of the file receiving the child's stdout and stderr.
const LOG_FILE: &str = "output.log";
/// At most this much of the log goes into an error.
const LOG_TAIL: usize = 3000;

const WATCHDOG_SCRIPT: &str = r#"trap '' HUP INT QUIT TERM PIPE
while read -r _; do :; done
dir=$1
if pid=$(cat "$dir/attache-child.pid" 2>/dev/null); then
  kill -9 "$pid" 2>/dev/null
  n=0
  while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 20 ]; do sleep 0.1; n=$((n + 1)); done
fi
rm -rf -- "$dir""#;

/// A child process in its own temp dir.
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
    pub(crate) fn create(prefix: &str) -> Result<Daemon, RedisError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("attache-{prefix}-"))
            .tempdir()
            .map_err(|e| RedisError::io("creating a temp dir", e))?;
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
            .map_err(|e| RedisError::io(format!("spawning watchdog `{}`", describe(&cmd)), e))?;
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

    /// The file that collects the child's stdout and stderr.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }

    /// Spawns `argv` (program first) with the temp dir as working directory and its output
    /// appended to the log; any previous child is killed first.
    pub(crate) fn spawn(&mut self, argv: Vec<OsString>) -> Result<(), RedisError> {
        self.kill();
        self.argv = argv;
        self.respawn()
    }

    /// Spawns the last `argv` again.
    pub(crate) fn respawn(&mut self) -> Result<(), RedisError> {
        self.kill();
        let Some((program, args)) = self.argv.split_first() else {
            return Err(RedisError::Topology("nothing to spawn".to_string()));
        };
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(&self.path).stdin(Stdio::null());
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| RedisError::io(format!("opening {}", log_path.display()), e))?;
        self.log_offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        cmd.stdout(log.0).stderr(log.1);
        let child = cmd
            .spawn()
            .map_err(|e| RedisError::io(format!("spawning `{}`", describe(&cmd)), e))?;
        self.write_pid_file(child.id())?;
        self.child = Some(child);
        Ok(())
    }

    /// Records `pid` for the watchdog; written via rename so it never reads half a number.
    fn write_pid_file(&self, pid: u32) -> Result<(), RedisError> {
        let tmp = self.path.join(format!("{PID_FILE}.tmp"));
        std::fs::write(&tmp, pid.to_string())
            .and_then(|()| std::fs::rename(&tmp, self.path.join(PID_FILE)))
            .map_err(|e| RedisError::io("writing the child pid file", e))
    }

    /// Pid of the child if it is running (not exited, not a zombie).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .filter(|&pid| is_alive(pid))
    }

    /// The exit status if the child has exited (it is reaped then), else None.
    pub(crate) fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        let _ = std::fs::remove_file(self.path.join(PID_FILE));
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

    /// SIGKILLs and reaps the child, like a crash; a no-op if none runs.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.path.join(PID_FILE));
    }

    /// What the current child logged since it was spawned (its tail, lossy).
    pub(crate) fn log_since_spawn(&self) -> String {
        let mut text = Vec::new();
        if let Ok(mut file) = std::fs::File::open(self.log_path()) {
            if file.seek(SeekFrom::Start(self.log_offset)).is_ok() {
                let _ = file.read_to_end(&mut text);
            }
        }
        let start = text.len().saturating_sub(LOG_TAIL);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Polls `ready` every 10 ms for up to `secs`; fails early if the child exits. `what` and
    /// `port` name the process in the error, which carries the log tail.
    pub(crate) fn wait_ready(
        &mut self,
        what: &str,
        port: u16,
        secs: u64,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), RedisError> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if ready() {
                return Ok(());
            }
            let why = if let Some(status) = self.exited() {
                format!("exited ({status})")
            } else if Instant::now() >= deadline {
                self.kill();
                format!("not ready within {secs}s, killed")
            } else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            return Err(RedisError::Start {
                what: what.to_string(),
                port,
                log: format!("{why}; output:\n{}", self.log_since_spawn()),
            });
        }
    }
}

/// True if a start error says the port was taken meanwhile (worth retrying on a fresh one).
pub(crate) fn port_taken(err: &RedisError) -> bool {
    matches!(err, RedisError::Start { log, .. } if log.contains("already in use"))
}

impl Drop for Daemon {
    /// Kills the child and removes the temp dir; also runs during unwinding.
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // SIGKILL cannot be trapped; the shell has no children while it waits on `read`.
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

#[cfg(test)]
mod tests;
