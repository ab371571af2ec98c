//! Errors of the test harness that plays the *backend* of accept → parse → route → backend →
//! respond; each names the command or step that failed so a red test says why at a glance.

/// Why starting, driving or cleaning up a test PostgreSQL server failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No PostgreSQL server binaries were found on this machine.
    #[error(
        "no PostgreSQL server binaries found (looked at $ATTACHE_PG_BINDIR, \
         /usr/lib/postgresql/<version>/bin and `pg_config --bindir`)"
    )]
    NoPostgres,
    /// Running as root, but the unprivileged user servers must run as does not exist.
    #[error(
        "running as root but the server user `{0}` does not exist (install the postgresql package)"
    )]
    NoServerUser(String),
    /// An external command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// Program and arguments (never SQL or secrets; those go through stdin).
        command: String,
        /// Exit status as printed by the OS.
        status: String,
        /// Trimmed standard error of the command.
        stderr: String,
    },
    /// A filesystem or process-spawning operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `pg_ctl start` failed; `log` holds what the server wrote to its log during the attempt.
    #[error("PostgreSQL on port {port} did not start: {log}")]
    Start {
        /// Port the server was configured with.
        port: u16,
        /// Server log written during this start attempt.
        log: String,
    },
    /// Something did not happen within its time budget.
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The budget in seconds.
        secs: u64,
    },
    /// A `setting()` key or value cannot be written safely into postgresql.conf.
    #[error("invalid setting `{0}`: keys must match [a-z0-9_.] and values fit on one line")]
    InvalidSetting(String),
    /// rcgen could not build a test certificate.
    #[error("test certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    /// One-time setup (binary discovery or the initdb template) failed earlier in this process.
    #[error("harness setup failed: {0}")]
    Setup(String),
}

impl HarnessError {
    /// Wraps an I/O error with what the harness was doing at the time.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}
