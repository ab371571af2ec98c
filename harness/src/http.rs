//! HTTP test *backends* (and incumbent proxies) for accept → parse → route → backend → respond:
//! an in-process hyper [`Upstream`] that echoes what it received and can be told to misbehave,
//! plus real `nginx` and `haproxy` processes on free loopback ports in temp dirs, so the HTTP
//! egress proxy's tests, demo and benchmark meet real servers rather than mocks.
//!
//! [`Upstream`] runs on the caller's tokio runtime and needs no binaries. [`Nginx`] and
//! [`Haproxy`] come from the Debian packages `nginx-light` and `haproxy`; each is a direct child
//! of the test process in its own process group, killed (with its workers) and its temp dir
//! removed on drop, and a watchdog shell does the same if the test process is SIGKILLed.

mod handler;
mod haproxy;
mod nginx;
mod tls;
mod upstream;

pub use handler::Generated;
pub use haproxy::Haproxy;
pub use nginx::{Nginx, NginxSite};
pub use upstream::{Mode, Upstream, UpstreamBuilder};

use std::path::{Path, PathBuf};

use crate::daemon::{log_says_port_taken, DaemonError};

/// Why starting or driving an HTTP test server failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A binary the harness needs is not installed.
    #[error(
        "`{binary}` not found: install the Debian package `{package}` (apt-get install {package})"
    )]
    MissingBinary {
        /// The program looked for.
        binary: String,
        /// The Debian package that ships it.
        package: String,
    },
    /// A filesystem, socket or process-spawning operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate, key or CA file could not be loaded, or rustls rejected the setup.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A process exited or never accepted connections during start-up; `log` is its output.
    #[error("{what} on port {port} did not start: {log}")]
    Start {
        /// Which program (`nginx`, `haproxy`).
        what: String,
        /// Port it was configured with.
        port: u16,
        /// Tail of its log and why the harness gave up.
        log: String,
    },
    /// A builder argument that cannot work (empty upstream list, bad name, …).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl HttpError {
    /// Wraps an I/O error with what the harness was doing at the time.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HttpError::Io {
            context: context.into(),
            source,
        }
    }

    /// True if a start error says the port was taken meanwhile (worth retrying on a fresh one).
    pub(crate) fn port_taken(&self) -> bool {
        matches!(self, HttpError::Start { log, .. } if log_says_port_taken(log))
    }
}

impl From<DaemonError> for HttpError {
    /// The shared daemon's failures, as the variants HTTP callers always saw.
    fn from(err: DaemonError) -> Self {
        match err {
            DaemonError::Io { context, source } => HttpError::Io { context, source },
            DaemonError::Start { what, port, log } => HttpError::Start { what, port, log },
            DaemonError::NothingToSpawn => HttpError::Invalid(err.to_string()),
        }
    }
}

/// Directories searched after `$PATH`; Debian puts nginx and haproxy in /usr/sbin, which is
/// not on every user's `$PATH`.
const EXTRA_BIN_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];

/// Full path of `name`, or an error naming the Debian `package` that provides it.
pub(crate) fn find_bin(name: &str, package: &str) -> Result<PathBuf, HttpError> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| HttpError::MissingBinary {
            binary: name.to_string(),
            package: package.to_string(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests;
