//! Errors of the Redis test *backends* of accept → parse → route → backend → respond; each
//! names the binary, command or step that failed so a red test says why at a glance.

use crate::daemon::{log_says_port_taken, DaemonError};

/// Why starting, driving or cleaning up a test Redis, sentinel or twemproxy failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
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
    /// An external command (`redis-cli`) exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// Program and arguments (passwords travel in the environment, never here).
        command: String,
        /// Exit status as printed by the OS.
        status: String,
        /// Trimmed standard error of the command.
        stderr: String,
    },
    /// A server answered a harness command with an error or an unexpected reply.
    #[error("`{command}` on port {port} answered {reply}")]
    Reply {
        /// The command, cut before any credentials.
        command: String,
        /// Port of the server asked.
        port: u16,
        /// The reply as text.
        reply: String,
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
    /// A process exited or never answered during start-up; `log` is the tail of its output.
    #[error("{what} on port {port} did not start: {log}")]
    Start {
        /// Which program (`redis-server`, `redis-sentinel`, `nutcracker`).
        what: String,
        /// Port it was configured with.
        port: u16,
        /// Tail of its log and why the harness gave up.
        log: String,
    },
    /// Something did not happen within its time budget.
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout {
        /// What was awaited, with the last observation.
        what: String,
        /// The budget in seconds.
        secs: u64,
    },
    /// A setting, user name or argument cannot be written safely into a config file.
    #[error("invalid setting `{0}`")]
    InvalidSetting(String),
    /// A cluster, sentinel or twemproxy request that cannot be satisfied as asked.
    #[error("{0}")]
    Topology(String),
}

impl RedisError {
    /// Wraps an I/O error with what the harness was doing at the time.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RedisError::Io {
            context: context.into(),
            source,
        }
    }

    /// True if a start error says the port was taken meanwhile (worth retrying on a fresh one).
    pub(crate) fn port_taken(&self) -> bool {
        matches!(self, RedisError::Start { log, .. } if log_says_port_taken(log))
    }
}

impl From<DaemonError> for RedisError {
    /// The shared daemon's failures, as the variants Redis callers always saw.
    fn from(err: DaemonError) -> Self {
        match err {
            DaemonError::Io { context, source } => RedisError::Io { context, source },
            DaemonError::Start { what, port, log } => RedisError::Start { what, port, log },
            DaemonError::NothingToSpawn => RedisError::Topology(err.to_string()),
        }
    }
}
