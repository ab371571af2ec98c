//! Streaming replication for the test *backend* of accept → parse → route → backend → respond:
//! hot standbys of a [`PgServer`], synchronous standbys, replay pause and promotion, so the
//! routing of read-only traffic and failover can be tested against real standbys.

use crate::config::{quote_ident, quote_literal};
use crate::exec::run;
use crate::server::PG_CTL_TIMEOUT;
use crate::{free_port, HarnessError, PgServer, SUPERUSER};

/// Seconds a new standby gets to stream from its primary.
const STREAM_SECS: u64 = 30;
/// Seconds a synchronous_standby_names change gets to show up in pg_stat_replication.
const SYNC_SECS: u64 = 20;
/// Seconds a standby gets to replay what its primary has written.
const CATCH_UP_SECS: u64 = 20;
/// Seconds a replay pause or resume request gets to take effect.
const REPLAY_STATE_SECS: u64 = 10;
/// Seconds a promoted standby gets to leave recovery.
const PROMOTE_SECS: u64 = 30;
/// The longest application_name PostgreSQL keeps (NAMEDATALEN - 1); longer ones are cut.
const MAX_NAME_LEN: usize = 63;

/// Every standby on the primary as `name=state/sync_state`, for timeout errors.
const REPLICATION_SUMMARY: &str = "SELECT coalesce(string_agg(format('%s=%s/%s', \
     application_name, state, sync_state), ', ' ORDER BY application_name), 'no standbys') \
     FROM pg_stat_replication";

impl PgServer {
    /// Starts a streaming hot standby of this server named `name` (its `application_name`,
    /// which `synchronous_standby_names` refers to) on a fresh port in a new temp dir.
    ///
    /// `pg_basebackup -R` copies the data dir, so roles, databases, pg_hba, TLS files and
    /// settings come along and nothing is provisioned again. Returns once the standby accepts
    /// connections and the primary lists it as streaming. Dropping it cleans up like any server.
    pub fn start_replica(&self, name: &str) -> Result<PgServer, HarnessError> {
        check_name(name)?;
        let mut conf = self.conf().clone();
        conf.port = free_port();
        let mut replica = PgServer::create(self.env(), conf)?;
        let source = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} connect_timeout=10",
            self.port()
        );
        run(self
            .env()
            .server_cmd("pg_basebackup")
            .arg("-d")
            .arg(&source)
            .arg("-D")
            .arg(replica.data_dir())
            // A fast checkpoint avoids waiting for a spread one; the copy needs no fsync.
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]))?;
        let auto_conf = replica.data_dir().join("postgresql.auto.conf");
        let text = std::fs::read_to_string(&auto_conf)
            .map_err(|e| HarnessError::io(format!("reading {}", auto_conf.display()), e))?;
        let conninfo = format!("{source} application_name={}", conninfo_quote(name));
        std::fs::write(&auto_conf, standby_auto_conf(&text, &conninfo))
            .map_err(|e| HarnessError::io(format!("writing {}", auto_conf.display()), e))?;
        self.env().give(replica.data_dir())?;
        replica.boot(true)?;
        replica.wait_until(
            "SELECT status FROM pg_stat_wal_receiver",
            STREAM_SECS,
            "the standby's WAL receiver to stream",
            |out| out == "streaming",
        )?;
        let listed = format!(
            "SELECT count(*) > 0 FROM pg_stat_replication \
             WHERE application_name = {} AND state = 'streaming'; {REPLICATION_SUMMARY}",
            quote_literal(name)
        );
        self.wait_until(
            &listed,
            STREAM_SECS,
            &format!("standby {name:?} to stream from the primary"),
            |out| out.starts_with("t\n"),
        )?;
        Ok(replica)
    }

    /// Makes the named standbys synchronous (`FIRST 1 (names…)`) and turns
    /// `synchronous_commit` on, which the harness otherwise keeps off for speed, so a commit
    /// returns only once the first connected listed standby has flushed it. Waits until
    /// pg_stat_replication reports the first name as `sync`. An empty list makes every
    /// standby asynchronous again.
    pub fn make_synchronous(&self, names: &[&str]) -> Result<(), HarnessError> {
        names.iter().try_for_each(|n| check_name(n))?;
        let Some(first) = names.first() else {
            self.psql(
                "postgres",
                "ALTER SYSTEM RESET synchronous_standby_names;\n\
                 ALTER SYSTEM RESET synchronous_commit;\nSELECT pg_reload_conf();",
            )?;
            let sql = format!(
                "SELECT count(*) = 0 FROM pg_stat_replication WHERE sync_state <> 'async'; \
                 {REPLICATION_SUMMARY}"
            );
            return self.wait_until(&sql, SYNC_SECS, "every standby to be async", |out| {
                out.starts_with("t\n")
            });
        };
        let value = quote_literal(&standby_names(names));
        self.psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET synchronous_standby_names = {value};\n\
                 ALTER SYSTEM SET synchronous_commit = 'on';\nSELECT pg_reload_conf();"
            ),
        )?;
        let sql = format!(
            "SELECT count(*) > 0 FROM pg_stat_replication \
             WHERE application_name = {} AND sync_state = 'sync'; {REPLICATION_SUMMARY}",
            quote_literal(first)
        );
        self.wait_until(
            &sql,
            SYNC_SECS,
            &format!("standby {first:?} to become synchronous"),
            |out| out.starts_with("t\n"),
        )
    }

    /// Promotes this standby (`pg_ctl promote -w`) and waits until it has left recovery, so
    /// it accepts writes when this returns.
    pub fn promote(&self) -> Result<(), HarnessError> {
        run(self
            .env()
            .server_cmd("pg_ctl")
            .arg("promote")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", PG_CTL_TIMEOUT, "-s"]))?;
        self.wait_until(
            "SELECT pg_is_in_recovery()",
            PROMOTE_SECS,
            "the promoted standby to leave recovery",
            |out| out == "f",
        )
    }

    /// Pauses WAL replay on this standby (it keeps receiving WAL) and waits until paused, so
    /// a test can make it lag behind its primary on purpose.
    pub fn pause_replay(&self) -> Result<(), HarnessError> {
        self.psql("postgres", "SELECT pg_wal_replay_pause()")?;
        self.wait_replay_state("paused")
    }

    /// Resumes WAL replay paused by [`PgServer::pause_replay`] and waits until it runs.
    pub fn resume_replay(&self) -> Result<(), HarnessError> {
        self.psql("postgres", "SELECT pg_wal_replay_resume()")?;
        self.wait_replay_state("not paused")
    }

    fn wait_replay_state(&self, state: &str) -> Result<(), HarnessError> {
        self.wait_until(
            "SELECT pg_get_wal_replay_pause_state()",
            REPLAY_STATE_SECS,
            &format!("WAL replay to be {state:?}"),
            |out| out == state,
        )
    }

    /// Waits until this standby has replayed everything `primary` had committed when called.
    ///
    /// The harness runs with `synchronous_commit = off`, so the last commits may not be
    /// written yet and `pg_current_wal_lsn()` could stop short of them (or, after a flush, end
    /// mid-record on a page boundary that replay never lands on). Instead a logical-message
    /// record is committed with `synchronous_commit = local`, which flushes it and all WAL
    /// before it without waiting for standbys (they may be gone); its end is the target.
    pub fn wait_caught_up(&self, primary: &PgServer) -> Result<(), HarnessError> {
        let target = primary.psql(
            "postgres",
            "SET synchronous_commit = local;\n\
             SELECT pg_logical_emit_message(true, 'attache-harness', 'caught up?');",
        )?;
        let sql = format!(
            "SELECT pg_last_wal_replay_lsn() >= {}::pg_lsn, pg_last_wal_replay_lsn(), \
             pg_get_wal_replay_pause_state()",
            quote_literal(&target)
        );
        self.wait_until(
            &sql,
            CATCH_UP_SECS,
            &format!(
                "replay up to {target} of port {} (done|replayed|pause state)",
                primary.port()
            ),
            |out| out.starts_with("t|"),
        )
    }

    /// `pg_is_in_recovery()`: true on a standby, false on a primary or promoted standby.
    pub fn is_in_recovery(&self) -> Result<bool, HarnessError> {
        let sql = "SELECT pg_is_in_recovery()";
        match self.psql("postgres", sql)?.as_str() {
            "t" => Ok(true),
            "f" => Ok(false),
            other => Err(HarnessError::Command {
                command: format!("psql -p {} -c {sql:?}", self.port()),
                status: "unexpected output".to_string(),
                stderr: other.to_string(),
            }),
        }
    }
}

/// A standby name must fit in application_name unchanged (PostgreSQL truncates long names
/// and replaces non-ASCII bytes) and on one conf line.
fn check_name(name: &str) -> Result<(), HarnessError> {
    let printable = name.bytes().all(|b| b.is_ascii_graphic());
    if name.is_empty() || name.len() > MAX_NAME_LEN || !printable {
        return Err(HarnessError::InvalidSetting(format!(
            "application_name {name:?} (1-{MAX_NAME_LEN} printable ASCII characters, no spaces)"
        )));
    }
    Ok(())
}

/// A libpq conninfo value in single quotes, with `\` and `'` backslash-escaped.
fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `FIRST 1 ("a", "b")`: the first connected listed standby is the synchronous one.
fn standby_names(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
    format!("FIRST 1 ({})", quoted.join(", "))
}

/// The copied postgresql.auto.conf with the standby's own `primary_conninfo` (carrying its
/// application_name) instead of the one `-R` derived from the pg_basebackup connection, and
/// without `synchronous_standby_names` inherited from the primary's ALTER SYSTEM, which would
/// make every commit wait forever once this standby is promoted.
fn standby_auto_conf(text: &str, conninfo: &str) -> String {
    let mut out: String = text
        .lines()
        .filter(|line| {
            let key = line.split('=').next().unwrap_or_default().trim();
            key != "primary_conninfo" && key != "synchronous_standby_names"
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    out.push_str(&format!("primary_conninfo = {}\n", quote_literal(conninfo)));
    out
}

#[cfg(test)]
mod tests;
