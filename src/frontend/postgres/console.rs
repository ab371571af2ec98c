//! Parse → respond (Postgres): the admin console, PgBouncer's, on the
//! Postgres listener. A client asking for database `attache` (or
//! `pgbouncer`, from habit; either name routes normally if it is an
//! explicit `[postgres.databases]` key) is never routed to a server: an
//! admin user (`postgres.admin_users`) logs in and runs SHOW, PAUSE,
//! RESUME and RELOAD over the simple query protocol, e.g.
//! `psql -h 127.0.0.1 -p 6432 -U admin attache -c 'SHOW POOLS'`.
//!
//! Column names are PgBouncer's where the concept matches, so its scripts
//! and exporters keep working. What is real and what is a placeholder
//! (numbers Attaché does not track are 0, unknown text is NULL):
//!
//! - SHOW POOLS: one row per (database, user, node), with extra `node` and
//!   `role` columns. Real: database, user, cl_active (clients of the pool
//!   linked to a server there, or idle and routed there, minus waiting),
//!   cl_waiting (clients queued for a connection), sv_active (checked-out
//!   connections), sv_idle, pool_mode. Always 0: the cancel columns,
//!   sv_used, sv_tested, sv_login, maxwait, maxwait_us.
//! - SHOW CLIENTS: real: type, user, database, state (`active` while it
//!   holds a server, else `idle`), addr, port, local_addr, local_port,
//!   connect_time, ptr (the id in hex), tls, application_name (from the
//!   startup packet), id (the client's BackendKeyData pid). NULL:
//!   request_time, link. 0: wait, wait_us, close_needed, remote_pid,
//!   prepared_statements.
//! - SHOW SERVERS: one row per connection a pool holds. Real: type, user
//!   (the server user), database, state, addr, port; for a connection a
//!   client holds also remote_pid (the server's pid), link (the client's
//!   ptr) and application_name. NULL: local_addr, local_port,
//!   connect_time, request_time, ptr, tls. 0: wait, wait_us, close_needed,
//!   prepared_statements, id.
//! - SHOW STATS: per database, summed over its live pools (a reload that
//!   rebuilds a pool starts its counters again). Real:
//!   total_server_assignment_count (checkouts), total_xact_count and
//!   total_query_count (both the ReadyForQuery count: one per simple query
//!   string or Sync, so a lower bound for statements), total_wait_time
//!   (µs spent waiting for a connection), plus Attaché's
//!   total_checkout_timeouts, total_connect_errors, total_discarded. 0:
//!   traffic bytes, xact/query times, parse/bind counts and every avg_
//!   column (Attaché keeps no stats period).
//! - SHOW DATABASES: real: name, host and port (the configured primary,
//!   else first node; all in the extra `nodes` column), database (NULL
//!   for `"*"` without dbname: the name asked for), pool_size,
//!   min_pool_size (min_idle), server_lifetime (s), pool_mode (resolved,
//!   never NULL), current_connections, current_client_connections, paused.
//!   NULL: force_user. 0: reserve_pool, max_connections,
//!   max_client_connections (no per-database limits), disabled.
//! - SHOW CONFIG: key, value, default, changeable, for `[postgres]`.

mod about;
mod command;
mod conns;
mod login;
mod show;
mod wire;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use attache_postgres_protocol::frame::{self, Message};
use attache_postgres_protocol::messages;
use attache_postgres_protocol::sqlstate;
use attache_postgres_protocol::startup::Startup;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, Span};

use super::clients::ClientInfo;
use super::context::PgContext;
use super::error::FrontendError;
use super::send_fatal;
use crate::net::Stream;
use crate::server::Shutdown;
use command::{Command, Show};
use show::Snapshot;

/// The database names that open the console.
pub(super) const CONSOLE_DATABASES: [&str; 2] = ["attache", "pgbouncer"];

/// How long PAUSE waits for running transactions before it reports them.
const PAUSE_WAIT: Duration = Duration::from_secs(30);

/// Console queries are a few words; a client cannot make us buffer more.
const MAX_MESSAGE: usize = 1 << 20;

const SYNTAX_ERROR: &str = "42601";
const NOT_IN_PREREQUISITE_STATE: &str = "55000";
const CONFIG_FILE_ERROR: &str = "F0000";

/// Why one console command failed; the session carries on.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConsoleError {
    #[error("unrecognized admin console command: {0:?}")]
    Syntax(String),
    #[error("the admin console speaks the simple query protocol only")]
    ExtendedProtocol,
    #[error("database \"{0}\" is not configured")]
    UnknownDatabase(String),
    #[error("{0}")]
    NotPaused(String),
    #[error("{0}")]
    PauseTimeout(String),
    #[error("RELOAD rejected: {0}")]
    Reload(String),
    #[error("Attaché is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Internal(String),
}

impl ConsoleError {
    fn sqlstate(&self) -> &'static str {
        match self {
            Self::Syntax(_) => SYNTAX_ERROR,
            Self::ExtendedProtocol => sqlstate::FEATURE_NOT_SUPPORTED,
            Self::UnknownDatabase(_) => sqlstate::INVALID_CATALOG_NAME,
            Self::NotPaused(_) => NOT_IN_PREREQUISITE_STATE,
            Self::PauseTimeout(_) => sqlstate::QUERY_CANCELED,
            Self::Reload(_) => CONFIG_FILE_ERROR,
            Self::ShuttingDown => sqlstate::ADMIN_SHUTDOWN,
            Self::Internal(_) => sqlstate::INTERNAL_ERROR,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Syntax(_) => Some("SHOW HELP lists the commands"),
            Self::ExtendedProtocol => {
                Some("with psql use -c or the prompt; drivers need their simple-query call")
            }
            _ => None,
        }
    }
}

/// Whether this startup packet asks for the console rather than a server.
pub(super) fn is_console(ctx: &PgContext, startup: &Startup) -> bool {
    let database = console_database(startup);
    CONSOLE_DATABASES.contains(&database) && !ctx.config().databases.contains_key(database)
}

/// The database a startup packet asks for; without one, the user name,
/// as libpq and PostgreSQL do.
fn console_database(startup: &Startup) -> &str {
    let user = startup.param("user").unwrap_or("");
    startup
        .param("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(user)
}

/// Runs a console session: login, then commands until the client leaves
/// or Attaché shuts down.
pub(super) async fn serve(
    ctx: Arc<PgContext>,
    mut client: Stream,
    mut cbuf: BytesMut,
    startup: Startup,
    mut shutdown: Shutdown,
) -> Result<(), FrontendError> {
    let login = async {
        let user = super::handshake::startup_user(&startup)?;
        Span::current()
            .record("user", user)
            .record("db", startup.param("database").unwrap_or(user));
        super::handshake::negotiate(&mut client, &startup).await?;
        login::authenticate(&ctx, &mut client, &mut cbuf, user).await?;
        Ok(user.to_owned())
    };
    let login = tokio::select! {
        r = login => r,
        _ = shutdown.wait() => Err(FrontendError::refused(sqlstate::ADMIN_SHUTDOWN, "Attaché is shutting down")),
    };
    let user = match login {
        Ok(u) => u,
        Err(e) => {
            send_fatal(&mut client, e.sqlstate(), &e.to_string()).await;
            return Err(e);
        }
    };
    info!(user, "admin console login");
    let cancel = ctx.cancel.register();
    let _listed = ctx.clients.register(ClientInfo {
        id: cancel.pid,
        database: console_database(&startup).to_owned(),
        user,
        db_key: String::new(),
        home_node: String::new(),
        addr: client.peer_addr().ok(),
        local: client.local_addr().ok(),
        connected: SystemTime::now(),
        application_name: startup.param("application_name").unwrap_or("").to_owned(),
        tls: if client.is_tls() {
            "TLS".into()
        } else {
            String::new()
        },
        server: cancel.slot.clone(),
    });
    let mut out = BytesMut::new();
    messages::auth_ok(&mut out);
    for (k, v) in login::greeting(&startup) {
        messages::parameter_status(&mut out, k, &v);
    }
    messages::backend_key_data(&mut out, cancel.pid, cancel.secret);
    messages::ready_for_query(&mut out, b'I');
    let mut console = Console {
        ctx,
        client,
        cbuf,
        out,
        skip_until_sync: false,
    };
    console.run(&mut shutdown).await
}

enum Flow {
    Continue,
    Exit,
}

struct Console {
    ctx: Arc<PgContext>,
    client: Stream,
    cbuf: BytesMut,
    out: BytesMut,
    /// After refusing an extended-protocol message, the rest of its batch
    /// is ignored up to Sync, as a server would.
    skip_until_sync: bool,
}

impl Console {
    async fn run(&mut self, shutdown: &mut Shutdown) -> Result<(), FrontendError> {
        loop {
            if !self.out.is_empty() {
                self.client.write_all(&self.out).await?;
                self.client.flush().await?;
                self.out.clear();
            }
            self.cbuf.reserve(4096);
            let read = tokio::select! {
                r = self.client.read_buf(&mut self.cbuf) => r?,
                _ = shutdown.wait() => {
                    send_fatal(&mut self.client, sqlstate::ADMIN_SHUTDOWN, "Attaché is shutting down").await;
                    return Ok(());
                }
            };
            if read == 0 {
                return Ok(());
            }
            loop {
                let m = match frame::next_message(&mut self.cbuf, MAX_MESSAGE) {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        let e = FrontendError::from(e);
                        super::send_fatal_and_drain(&mut self.client, e.sqlstate(), &e.to_string())
                            .await;
                        return Err(e);
                    }
                };
                if let Flow::Exit = self.on_message(m, shutdown).await? {
                    return Ok(());
                }
            }
        }
    }

    async fn on_message(
        &mut self,
        m: Message,
        shutdown: &mut Shutdown,
    ) -> Result<Flow, FrontendError> {
        if self.skip_until_sync && !matches!(m.tag, b'S' | b'X') {
            return Ok(Flow::Continue);
        }
        match m.tag {
            b'Q' => {
                let raw = messages::read_query(m.body())
                    .map_err(|e| FrontendError::protocol(e.to_string()))?;
                let text = messages::sql_text(raw).into_owned();
                self.query(&text, shutdown).await;
            }
            b'S' => {
                self.skip_until_sync = false;
                messages::ready_for_query(&mut self.out, b'I');
            }
            b'P' | b'B' | b'D' | b'E' | b'C' => {
                self.error(&ConsoleError::ExtendedProtocol);
                self.skip_until_sync = true;
            }
            b'F' => {
                self.error(&ConsoleError::ExtendedProtocol);
                messages::ready_for_query(&mut self.out, b'I');
            }
            b'H' | b'd' | b'c' | b'f' => {}
            b'X' => return Ok(Flow::Exit),
            other => {
                let e = FrontendError::protocol(format!(
                    "unexpected message type {:?} in the admin console",
                    other as char
                ));
                send_fatal(&mut self.client, e.sqlstate(), &e.to_string()).await;
                return Err(e);
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs each `;`-separated command in turn, stopping at the first
    /// error, then tells the client it may send the next query.
    async fn query(&mut self, text: &str, shutdown: &mut Shutdown) {
        let commands = command::split(text);
        if commands.is_empty() {
            wire::empty_query(&mut self.out);
        }
        for text in commands {
            let result = match command::parse(text) {
                Ok(c) => self.execute(c, shutdown).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                self.error(&e);
                break;
            }
        }
        messages::ready_for_query(&mut self.out, b'I');
    }

    fn error(&mut self, e: &ConsoleError) {
        messages::error_full(
            &mut self.out,
            "ERROR",
            e.sqlstate(),
            &e.to_string(),
            e.hint(),
        );
    }

    async fn execute(&mut self, c: Command, shutdown: &mut Shutdown) -> Result<(), ConsoleError> {
        match c {
            Command::Show(what) => {
                let set = self.show(what)?;
                set.encode(&mut self.out, "SHOW");
            }
            Command::Reload => {
                let ctx = self.ctx.clone();
                let outcome = tokio::task::spawn_blocking(move || ctx.reload_from_source())
                    .await
                    .map_err(|e| ConsoleError::Internal(format!("RELOAD: {e}")))?
                    .map_err(ConsoleError::Reload)?;
                messages::notice(&mut self.out, "00000", &outcome.to_string());
                wire::command_complete(&mut self.out, "RELOAD");
            }
            Command::Pause(db) => {
                self.pause(db.as_deref(), shutdown).await?;
                wire::command_complete(&mut self.out, "PAUSE");
            }
            Command::Resume(db) => {
                self.resume(db.as_deref())?;
                wire::command_complete(&mut self.out, "RESUME");
            }
        }
        Ok(())
    }

    fn show(&self, what: Show) -> Result<wire::RowSet, ConsoleError> {
        Ok(match what {
            Show::Pools => show::pools(&Snapshot::take(&self.ctx)),
            Show::Databases => show::databases(&Snapshot::take(&self.ctx)),
            Show::Stats => show::stats(&Snapshot::take(&self.ctx)),
            Show::Clients => conns::clients(&Snapshot::take(&self.ctx)),
            Show::Servers => conns::servers(&Snapshot::take(&self.ctx)),
            Show::Config => about::config(&self.ctx.config())?,
            Show::Version => about::version(),
            Show::Help => about::help(),
        })
    }

    /// PAUSE replies once running transactions finished, or reports what
    /// is still running after [`PAUSE_WAIT`]; the pause stays in force
    /// either way.
    async fn pause(
        &mut self,
        db: Option<&str>,
        shutdown: &mut Shutdown,
    ) -> Result<(), ConsoleError> {
        check_database(&self.ctx, db)?;
        let done = tokio::select! {
            done = self.ctx.pause(db, PAUSE_WAIT) => done,
            _ = shutdown.wait() => return Err(ConsoleError::ShuttingDown),
        };
        if done {
            info!(
                database = db.unwrap_or("*all*"),
                "paused from the admin console"
            );
            return Ok(());
        }
        let snap = Snapshot::take(&self.ctx);
        Err(ConsoleError::PauseTimeout(still_running(&snap, db)))
    }

    fn resume(&mut self, db: Option<&str>) -> Result<(), ConsoleError> {
        check_database(&self.ctx, db)?;
        let paused = self.ctx.paused();
        match db {
            Some(_) if paused.all => {
                return Err(ConsoleError::NotPaused(
                    "every database is paused (PAUSE without a name); RESUME without a name resumes them".into(),
                ))
            }
            Some(d) if !paused.databases.contains(d) => {
                return Err(ConsoleError::NotPaused(format!("database \"{d}\" is not paused")))
            }
            None if paused == Default::default() => {
                return Err(ConsoleError::NotPaused("nothing is paused".into()))
            }
            _ => {}
        }
        self.ctx.resume(db);
        info!(
            database = db.unwrap_or("*all*"),
            "resumed from the admin console"
        );
        Ok(())
    }
}

fn check_database(ctx: &PgContext, db: Option<&str>) -> Result<(), ConsoleError> {
    match db {
        Some(d) if !ctx.config().databases.contains_key(d) => {
            Err(ConsoleError::UnknownDatabase(d.to_owned()))
        }
        _ => Ok(()),
    }
}

/// What PAUSE is still waiting for, for its timeout error.
fn still_running(snap: &Snapshot, db: Option<&str>) -> String {
    let busy: Vec<String> = snap
        .pools
        .iter()
        .filter(|p| db.is_none_or(|d| p.db_key == d) && p.active() > 0)
        .map(|p| {
            format!(
                "{} server connection(s) of {}/{} on {}",
                p.active(),
                p.user,
                p.database,
                p.node
            )
        })
        .collect();
    let what = if busy.is_empty() {
        "connections were still in use".to_owned()
    } else {
        format!("still in use: {}", busy.join(", "))
    };
    format!(
        "PAUSE{} did not finish within {}s: {what}. The pause stays in force \
         (new transactions wait); run PAUSE again to keep waiting or RESUME to undo it",
        db.map(|d| format!(" {d}")).unwrap_or_default(),
        PAUSE_WAIT.as_secs()
    )
}

#[cfg(test)]
mod tests;
