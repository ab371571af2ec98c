//! Redis test *backends* for accept → parse → route → backend → respond: real `redis-server`
//! processes (standalone, replicas, cluster, sentinel) and a twemproxy in front of them, each
//! on free loopback ports in its own temp dir, so Attaché's Redis side meets the real thing.
//!
//! Binaries come from the Debian packages `redis-server` (also `redis-cli`, and sentinel is
//! `redis-server --sentinel`) and `nutcracker`. Every process is a direct child of the test
//! process, bound to 127.0.0.1, with persistence off unless a test turns it on.
//!
//! Clean-up is layered like the PostgreSQL side: `Drop` SIGKILLs and reaps the child and
//! removes its temp dir (also during a panic unwind), and a watchdog shell per temp dir does
//! the same if the test process itself is SIGKILLed.

mod cluster;
mod conf;
mod error;
mod resp;
mod sentinel;
mod server;
mod twemproxy;

pub use cluster::{key_slot, RedisCluster};
pub use error::RedisError;
pub use sentinel::Sentinel;
pub use server::{start_replica_of, RedisBuilder, RedisServer};
pub use twemproxy::Twemproxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::exec::describe;
use resp::Auth;

/// Directories searched after `$PATH`; Debian puts `nutcracker` in /usr/sbin, which is not on
/// every user's `$PATH`.
const EXTRA_BIN_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];

/// Full path of `name`, or an error naming the Debian `package` that provides it.
pub(crate) fn find_bin(name: &str, package: &str) -> Result<PathBuf, RedisError> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| RedisError::MissingBinary {
            binary: name.to_string(),
            package: package.to_string(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `redis-cli -e` against `127.0.0.1:port` and returns its stdout without the final
/// newline. The password travels in `REDISCLI_AUTH`, never on argv; `-e` turns error replies
/// into a failed exit status, so they come back as [`RedisError::Command`].
pub(crate) fn redis_cli(
    port: u16,
    auth: &Auth,
    extra: &[&str],
    args: &[&str],
) -> Result<String, RedisError> {
    let mut cmd = Command::new(find_bin("redis-cli", "redis-server")?);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-e",
        "--no-auth-warning",
    ])
    .args(extra)
    .env_remove("REDISCLI_AUTH")
    .current_dir("/")
    .stdin(Stdio::null());
    if let Some(user) = &auth.user {
        cmd.args(["--user", user]);
    }
    if let Some(password) = &auth.password {
        cmd.env("REDISCLI_AUTH", password);
    }
    cmd.args(args);
    let out = cmd
        .output()
        .map_err(|e| RedisError::io(format!("spawning `{}`", describe(&cmd)), e))?;
    if !out.status.success() {
        return Err(RedisError::Command {
            command: describe(&cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}
