//! Accept → respond, from the application's side: the failover demo's
//! clients. Each has its own connection through Attaché and loops: insert a
//! unique id (a write, so it runs on the primary), then read it back (a
//! read). Every outcome is logged with when it started and ended, so the
//! report can tell work in flight at the kill from work started later.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, Statement};

use super::{Shared, CLIENTS, RUN_FOR};
use crate::demo::{connect, DemoError};

/// Ids are `client * ID_STRIDE + sequence`, unique across clients.
pub(super) const ID_STRIDE: i64 = 1_000_000_000;
/// Pause before reconnecting after a connection was lost or refused.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

const INSERT: &str =
    "INSERT INTO failover_demo (id, client) VALUES ($1, $2) RETURNING inet_server_port()";
const SELECT: &str = "SELECT inet_server_port(), count(*) FROM failover_demo WHERE id = $1";

/// What a client asked for when an error came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Connect,
    Insert,
    Select,
}

impl Op {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Op::Connect => "connect",
            Op::Insert => "insert",
            Op::Select => "select",
        }
    }
}

/// One error a client saw.
#[derive(Debug, Clone)]
pub(super) struct OpError {
    pub op: Op,
    pub started: Duration,
    pub ended: Duration,
    pub message: String,
}

/// Everything one client saw.
#[derive(Debug, Default)]
pub(super) struct ClientLog {
    /// Inserts acknowledged (id, when the acknowledgement arrived).
    pub acked: Vec<(i64, Duration)>,
    /// Inserts that returned an error: the client cannot know whether they
    /// committed.
    pub failed: Vec<i64>,
    pub errors: Vec<OpError>,
    pub selects: u64,
    /// Reads that did not find the client's own acknowledged insert.
    pub missed_own_write: u64,
    /// The slowest acknowledged insert (Attaché holds writes while there
    /// is no primary).
    pub slowest_insert: Duration,
    pub reconnects: u64,
}

/// A client's connection with its statements prepared.
pub(super) struct Conn {
    client: Client,
    insert: Statement,
    select: Statement,
}

async fn open(addr: SocketAddr) -> Result<Conn, tokio_postgres::Error> {
    let client = connect(addr).await?;
    let insert = client.prepare(INSERT).await?;
    let select = client.prepare(SELECT).await?;
    Ok(Conn {
        client,
        insert,
        select,
    })
}

/// Opens every client's connection before the clock starts.
pub(super) async fn open_all(addr: SocketAddr) -> Result<Vec<Conn>, DemoError> {
    let tasks: Vec<_> = (0..CLIENTS).map(|_| tokio::spawn(open(addr))).collect();
    let mut conns = Vec::with_capacity(CLIENTS);
    for t in tasks {
        let c = t
            .await
            .map_err(|e| DemoError::Other(format!("client task: {e}")))??;
        conns.push(c);
    }
    Ok(conns)
}

/// Client `n`'s loop until [`RUN_FOR`] has passed.
pub(super) async fn run(n: i64, addr: SocketAddr, conn: Conn, shared: Arc<Shared>) -> ClientLog {
    let mut log = ClientLog::default();
    let mut conn = Some(conn);
    let mut seq = 0;
    while shared.now() < RUN_FOR {
        let Some(c) = conn.as_ref().filter(|c| !c.client.is_closed()) else {
            conn = reconnect(addr, &shared, &mut log).await;
            continue;
        };
        seq += 1;
        let id = n * ID_STRIDE + seq;
        if insert(c, n, id, &shared, &mut log).await {
            select(c, id, &shared, &mut log).await;
        }
    }
    log
}

async fn reconnect(addr: SocketAddr, shared: &Shared, log: &mut ClientLog) -> Option<Conn> {
    let started = shared.now();
    match open(addr).await {
        Ok(c) => {
            log.reconnects += 1;
            Some(c)
        }
        Err(e) => {
            fail(shared, log, Op::Connect, started, &e);
            tokio::time::sleep(RECONNECT_PAUSE).await;
            None
        }
    }
}

/// Inserts `id`; returns whether it was acknowledged.
async fn insert(c: &Conn, n: i64, id: i64, shared: &Shared, log: &mut ClientLog) -> bool {
    let started = shared.now();
    let client = n as i32;
    let r = c.client.query_one(&c.insert, &[&id, &client]).await;
    let port = r.and_then(|row| row.try_get::<_, i32>(0));
    let ended = shared.now();
    match port {
        Ok(port) => {
            log.acked.push((id, ended));
            log.slowest_insert = log.slowest_insert.max(ended.saturating_sub(started));
            shared.record(ended, true, u16::try_from(port).ok());
            true
        }
        Err(e) => {
            log.failed.push(id);
            fail(shared, log, Op::Insert, started, &e);
            false
        }
    }
}

/// Reads `id` back.
async fn select(c: &Conn, id: i64, shared: &Shared, log: &mut ClientLog) {
    let started = shared.now();
    let r = c.client.query_one(&c.select, &[&id]).await;
    let found = r.and_then(|row| row.try_get::<_, i64>(1));
    match found {
        Ok(found) => {
            log.selects += 1;
            if found != 1 {
                log.missed_own_write += 1;
            }
            shared.record(shared.now(), true, None);
        }
        Err(e) => fail(shared, log, Op::Select, started, &e),
    }
}

fn fail(
    shared: &Shared,
    log: &mut ClientLog,
    op: Op,
    started: Duration,
    e: &tokio_postgres::Error,
) {
    let ended = shared.now();
    shared.record(ended, false, None);
    log.errors.push(OpError {
        op,
        started,
        ended,
        message: describe(e),
    });
}

/// The SQLSTATE and message of a server error, or the client library's
/// own description (a closed connection, say).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}
