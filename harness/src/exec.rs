//! Runs the PostgreSQL binaries that act as the *backend* of accept → parse → route → backend
//! → respond in tests: finds the newest installed version and drops root privileges for the
//! server-side commands, because initdb, pg_ctl and postgres refuse to run as root.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::HarnessError;

/// System user the Debian `postgresql` package creates; servers run as it when we are root.
const SERVER_USER: &str = "postgres";
/// Where Debian installs one `<version>/bin` directory per PostgreSQL major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Where the binaries live and who must run the server-side ones.
#[derive(Debug)]
pub(crate) struct PgEnv {
    bindir: PathBuf,
    /// `Some(user)` when this process is root and server commands go through `runuser`.
    run_as: Option<String>,
}

static ENV: OnceLock<Result<PgEnv, String>> = OnceLock::new();

/// The process-wide environment, discovered once.
pub(crate) fn env() -> Result<&'static PgEnv, HarnessError> {
    ENV.get_or_init(|| PgEnv::discover().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| HarnessError::Setup(e.clone()))
}

impl PgEnv {
    fn discover() -> Result<PgEnv, HarnessError> {
        let bindir = find_bindir()?;
        let run_as = if is_root() {
            let probe = Command::new("id").arg("-u").arg(SERVER_USER).output();
            match probe {
                Ok(out) if out.status.success() => Some(SERVER_USER.to_string()),
                _ => return Err(HarnessError::NoServerUser(SERVER_USER.to_string())),
            }
        } else {
            None
        };
        Ok(PgEnv { bindir, run_as })
    }

    /// Full path of a PostgreSQL binary such as `pg_ctl`.
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// A command for a server-side binary, run as the unprivileged server user when root.
    pub(crate) fn server_cmd(&self, name: &str) -> Command {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(self.bin(name));
                c
            }
            None => Command::new(self.bin(name)),
        };
        sanitize(&mut cmd);
        cmd
    }

    /// A command for a client binary (psql), run as the current user.
    pub(crate) fn client_cmd(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin(name));
        sanitize(&mut cmd);
        cmd
    }

    /// The argv prefix that runs a server binary as the server user (for the watchdog script).
    pub(crate) fn server_argv(&self, name: &str) -> Vec<PathBuf> {
        let mut argv = Vec::new();
        if let Some(user) = &self.run_as {
            argv.extend(["runuser", "-u", user.as_str(), "--"].map(PathBuf::from));
        }
        argv.push(self.bin(name));
        argv
    }

    /// Hands `path` (recursively) to the server user; a no-op when not running as root.
    pub(crate) fn give(&self, path: &Path) -> Result<(), HarnessError> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let mut cmd = Command::new("chown");
        cmd.arg("-R").arg(format!("{user}:")).arg(path);
        run(&mut cmd).map(drop)
    }
}

/// Strips inherited `PG*` variables (PGHOST, PGSSLMODE, PGDATA …) so the caller's environment
/// cannot redirect harness commands, and runs from `/` so the server user can always `cwd`.
pub(crate) fn sanitize(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir("/").stdin(Stdio::null());
}

/// True when the effective uid is 0, read from /proc (no libc needed), else from `id -u`.
fn is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(euid) = effective_uid(&status) {
            return euid == 0;
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Parses the effective uid (second number) from the `Uid:` line of /proc/self/status.
pub(crate) fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn find_bindir() -> Result<PathBuf, HarnessError> {
    if let Some(dir) = std::env::var_os("ATTACHE_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = newest_bindir(Path::new(DEBIAN_ROOT)) {
        return Ok(dir);
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    if let Ok(out) = out {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    Err(HarnessError::NoPostgres)
}

/// The `bin` dir of the highest version under `root` that has both `initdb` and `postgres`.
pub(crate) fn newest_bindir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = parse_version(&e.file_name().to_string_lossy())?;
            let bin = e.path().join("bin");
            let complete = bin.join("initdb").is_file() && bin.join("postgres").is_file();
            complete.then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "15" → [15], "9.6" → [9, 6]; anything else is not a version directory.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|p| p.parse().ok()).collect()
}

/// Runs `cmd` to completion; Ok(stdout) on success, else an error naming it with its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, HarnessError> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| HarnessError::io(format!("spawning `{}`", describe(cmd)), e))?;
    finish(cmd, out)
}

/// Like [`run`] but feeds `input` on stdin, so SQL (which may hold passwords) stays off argv.
pub(crate) fn run_with_input(cmd: &mut Command, input: &str) -> Result<String, HarnessError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| HarnessError::io(format!("spawning `{}`", describe(cmd)), e))?;
    let stdin = child.stdin.take();
    let input = input.to_owned();
    // A writer thread avoids a pipe deadlock when both input and output are large.
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // A write error means the child exited early; its status and stderr tell why.
            let _ = stdin.write_all(input.as_bytes());
        }
    });
    let out = child
        .wait_with_output()
        .map_err(|e| HarnessError::io(format!("waiting for `{}`", describe(cmd)), e));
    let _ = writer.join();
    finish(cmd, out?)
}

fn finish(cmd: &Command, out: Output) -> Result<String, HarnessError> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(HarnessError::Command {
        command: describe(cmd),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Program and arguments joined for error messages (only paths and flags ever go on argv).
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
