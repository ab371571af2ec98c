//! Streaming replicas of a test *backend* of accept → parse → route → backend → respond, so
//! routing of read-only traffic and failover can be tested against a real standby.

use crate::exec::run;
use crate::{free_port, HarnessError, PgServer, SUPERUSER};

/// Seconds a new standby gets to report `pg_is_in_recovery()`.
const RECOVERY_WAIT_SECS: u64 = 30;

impl PgServer {
    /// Clones this server with `pg_basebackup -R -X stream` into a new temp dir and starts it
    /// as a hot standby on a fresh port; returns once it accepts connections and is in
    /// recovery. The replica inherits the primary's pg_hba, TLS files and settings.
    pub fn start_replica(&self) -> Result<PgServer, HarnessError> {
        let mut conf = self.conf.clone();
        conf.port = free_port();
        let mut replica = PgServer::create(self.env, conf)?;
        let primary_port = self.conf.port.to_string();
        run(self
            .env
            .server_cmd("pg_basebackup")
            .args(["-h", "127.0.0.1", "-p", &primary_port, "-U", SUPERUSER])
            .arg("-D")
            .arg(&replica.data)
            // -R writes standby.signal and primary_conninfo; a fast checkpoint avoids waiting
            // for a spread one.
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]))?;
        replica.boot(true)?;
        replica.wait_for(
            "postgres",
            "SELECT pg_is_in_recovery()",
            "t",
            RECOVERY_WAIT_SECS,
        )?;
        Ok(replica)
    }
}
