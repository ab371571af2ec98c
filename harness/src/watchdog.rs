//! Last-resort clean-up for the test *backend* of accept → parse → route → backend → respond:
//! a watchdog shell per temp dir that stops the server and removes the dir once the test
//! process is gone, even if it was SIGKILLed and no `Drop` ever ran.
//!
//! The shell blocks reading a pipe whose only write end lives in this process (Rust opens
//! pipes close-on-exec, so no other child inherits it). When the process exits for any reason
//! the kernel closes that end, `read` sees EOF and the clean-up runs. The shell ignores
//! SIGINT/SIGHUP/SIGTERM so a Ctrl-C aimed at the test run does not kill it first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::exec::{describe, sanitize, PgEnv};
use crate::HarnessError;

const SCRIPT: &str = r#"trap '' HUP INT QUIT TERM PIPE
while read -r _; do :; done
dir=$1; shift
if [ "$#" -gt 0 ]; then "$@" >/dev/null 2>&1; fi
rm -rf -- "$dir""#;

/// A running watchdog; [`Watchdog::disarm`] it once clean-up happened the normal way.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Watches `dir`; if `data` is given, the server in it is stopped before `dir` is removed.
    pub(crate) fn spawn(
        env: &PgEnv,
        dir: &Path,
        data: Option<&Path>,
    ) -> Result<Self, HarnessError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("attache-harness-watchdog")
            .arg(dir);
        if let Some(data) = data {
            cmd.args(stop_argv(env, data));
        }
        sanitize(&mut cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| HarnessError::io(format!("spawning watchdog `{}`", describe(&cmd)), e))?;
        Ok(Watchdog { child })
    }

    /// Ends the watchdog without letting it clean up (the owner does that itself).
    pub(crate) fn disarm(mut self) {
        // SIGKILL cannot be trapped; the shell has no children while it waits on `read`.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pg_ctl stop -m immediate` for `data`, as the server user when needed.
fn stop_argv(env: &PgEnv, data: &Path) -> Vec<PathBuf> {
    let mut argv = env.server_argv("pg_ctl");
    argv.extend(["stop", "-m", "immediate", "-D"].map(PathBuf::from));
    argv.push(data.to_path_buf());
    argv
}
