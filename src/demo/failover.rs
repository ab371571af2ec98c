//! Backend failure, end to end: `attache demo --failover` puts Attaché in
//! front of a primary and its synchronous standby, runs [`CLIENTS`] clients
//! (each its own connection through Attaché) inserting unique ids and
//! reading them back, kills the primary with SIGKILL, promotes the standby,
//! and checks afterwards that every insert a client saw acknowledged is on
//! the new primary exactly once. Clients should only see errors for work
//! that was in flight at the kill: new transactions wait in Attaché (up to
//! `failover_timeout`) until the monitor finds the promoted node.

mod clients;
mod report;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attache_harness::{HarnessError, PgServer};

use super::{blocking, connect, free_or_any, node_list, start_postgres, DemoError};
use crate::app::Attache;
use clients::ClientLog;

/// Concurrent clients.
pub(super) const CLIENTS: usize = 20;
/// How long the clients start new work.
pub(super) const RUN_FOR: Duration = Duration::from_secs(8);
/// When the primary is killed, from the clients' start.
pub(super) const KILL_AT: Duration = Duration::from_secs(2);
/// How long after the kill the standby is promoted (an operator or
/// Patroni would take about this long to decide).
pub(super) const PROMOTE_AFTER: Duration = Duration::from_secs(1);
/// One timeline row.
pub(super) const TICK: Duration = Duration::from_millis(500);
/// How long clients may still be busy after [`RUN_FOR`] before they count
/// as stuck.
const JOIN_GRACE: Duration = Duration::from_secs(10);
const FAILOVER_TIMEOUT: &str = "30s";
const HEALTH_INTERVAL: &str = "250ms";
const POOL_SIZE: usize = 8;
const STANDBY: &str = "standby1";

/// Something the orchestrator did, as the timeline shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    KillIssued,
    KillDone,
    PromoteIssued,
    PromoteDone,
}

impl Event {
    const ALL: [Event; 4] = [
        Event::KillIssued,
        Event::KillDone,
        Event::PromoteIssued,
        Event::PromoteDone,
    ];
}

/// One timeline row's counters.
#[derive(Default)]
struct Bucket {
    ok: AtomicU64,
    err: AtomicU64,
    /// Port of the server the last acknowledged insert in this row ran on.
    write_port: AtomicU32,
}

/// What clients, the timeline and the orchestrator share while it runs.
pub(super) struct Shared {
    start: Instant,
    buckets: Vec<Bucket>,
    /// Milliseconds since `start` per [`Event`] (`u64::MAX`: not yet).
    events: [AtomicU64; 4],
}

impl Shared {
    fn new() -> Self {
        // One more row for work that ends after RUN_FOR.
        let rows = (RUN_FOR.as_millis() / TICK.as_millis()) as usize + 1;
        Shared {
            start: Instant::now(),
            buckets: (0..rows).map(|_| Bucket::default()).collect(),
            events: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
        }
    }

    pub(super) fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn bucket(&self, at: Duration) -> Option<&Bucket> {
        let i = (at.as_millis() / TICK.as_millis()) as usize;
        self.buckets
            .get(i.min(self.buckets.len().saturating_sub(1)))
    }

    /// Counts one finished operation in the row it finished in.
    pub(super) fn record(&self, at: Duration, ok: bool, write_port: Option<u16>) {
        let Some(b) = self.bucket(at) else { return };
        let c = if ok { &b.ok } else { &b.err };
        c.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = write_port {
            b.write_port.store(u32::from(p), Ordering::Relaxed);
        }
    }

    fn mark(&self, e: Event) -> Duration {
        let at = self.now();
        self.events[e as usize].store(at.as_millis() as u64, Ordering::Relaxed);
        at
    }

    pub(super) fn event(&self, e: Event) -> Option<Duration> {
        let ms = self.events[e as usize].load(Ordering::Relaxed);
        (ms != u64::MAX).then(|| Duration::from_millis(ms))
    }
}

/// Runs the failover demo; an error when acknowledged writes went missing
/// or were duplicated, or when writes never resumed.
pub(super) async fn run() -> Result<(), DemoError> {
    println!("Starting PostgreSQL: a primary and a synchronous standby (real servers, temporary directories)…");
    let (primary, standby) = blocking(start_pair).await??;
    let (primary_port, standby_port) = (primary.port(), standby.port());
    let toml = config(&primary, &standby);
    let attache = Attache::start(crate::config::parse(&toml)?).await?;
    let addr = attache
        .postgres_addr
        .ok_or_else(|| DemoError::Other("no postgres listener".into()))?;
    println!(
        "Primary on :{primary_port}, synchronous standby on :{standby_port}, Attaché on {addr} \
         (failover_timeout {FAILOVER_TIMEOUT}, health checks every {HEALTH_INTERVAL})."
    );
    super::within("creating the demo table", prepare(addr)).await?;
    let (primary, standby) = blocking(move || {
        standby
            .wait_caught_up(&primary)
            .map(|()| (primary, standby))
            .map_err(|source| DemoError::Harness {
                step: "waiting for the standby to replay the schema",
                source,
            })
    })
    .await??;
    let run = drive(addr, primary, standby).await?;
    let rows = rows_on(run.standby.addr()).await;
    let failover_ms = attache_failover_ms(&attache);
    attache.shutdown().await;
    drop(run.standby);
    let rows = rows?;
    let summary = report::Summary::new(&run.shared, &run.logs, &rows, run.stuck, standby_port);
    summary.print(failover_ms);
    println!("Stopped; both PostgreSQL servers and their data directories are removed.");
    summary.verdict().map_err(DemoError::Failover)
}

/// What one run left behind.
struct Run {
    shared: Arc<Shared>,
    logs: Vec<ClientLog>,
    /// Clients still busy [`JOIN_GRACE`] after [`RUN_FOR`].
    stuck: usize,
    /// The promoted standby.
    standby: PgServer,
}

/// Connects the clients, starts them and the timeline, kills the primary
/// and promotes the standby on schedule, and waits for the clients.
async fn drive(
    addr: SocketAddr,
    mut primary: PgServer,
    standby: PgServer,
) -> Result<Run, DemoError> {
    let conns = super::within("connecting the clients", clients::open_all(addr)).await?;
    // The clock starts once every client is connected.
    let shared = Arc::new(Shared::new());
    let start = shared.start;
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(n, c)| tokio::spawn(clients::run(n as i64 + 1, addr, c, shared.clone())))
        .collect();
    println!(
        "{CLIENTS} clients each insert a unique id and read it back, in a loop, for {}s.\n",
        RUN_FOR.as_secs()
    );
    let timeline = tokio::spawn(report::timeline(
        shared.clone(),
        primary.port(),
        standby.port(),
    ));
    tokio::time::sleep_until((start + KILL_AT).into()).await;
    shared.mark(Event::KillIssued);
    let primary = blocking(move || {
        primary.kill9();
        primary
    })
    .await?;
    let killed = shared.mark(Event::KillDone);
    tokio::time::sleep_until((start + killed + PROMOTE_AFTER).into()).await;
    shared.mark(Event::PromoteIssued);
    let standby = blocking(move || standby.promote().map(|()| standby)).await?;
    let standby = standby.map_err(|source| DemoError::Harness {
        step: "promoting the standby",
        source,
    })?;
    shared.mark(Event::PromoteDone);
    let deadline = tokio::time::Instant::from(start + RUN_FOR + JOIN_GRACE);
    let mut logs = Vec::new();
    let mut stuck = 0;
    for mut w in workers {
        match tokio::time::timeout_at(deadline, &mut w).await {
            Ok(Ok(log)) => logs.push(log),
            Ok(Err(e)) => return Err(DemoError::Other(format!("client task: {e}"))),
            Err(_) => {
                // Its log is lost with it; the verdict fails on `stuck`.
                w.abort();
                stuck += 1;
            }
        }
    }
    let _ = timeline.await;
    drop(primary);
    Ok(Run {
        shared,
        logs,
        stuck,
        standby,
    })
}

fn start_pair() -> Result<(PgServer, PgServer), HarnessError> {
    let primary = start_postgres()?;
    let standby = primary.start_replica(STANDBY)?;
    primary.make_synchronous(&[STANDBY])?;
    Ok((primary, standby))
}

fn config(primary: &PgServer, standby: &PgServer) -> String {
    format!(
        "[postgres]\nlisten = \"{}\"\npool_mode = \"transaction\"\npool_size = {POOL_SIZE}\n\n\
         [postgres.databases.app]\nnodes = [{}]\nfailover_timeout = \"{FAILOVER_TIMEOUT}\"\n\n\
         [postgres.databases.app.health]\ninterval = \"{HEALTH_INTERVAL}\"\ntimeout = \"1s\"\n",
        free_or_any("127.0.0.1:6432"),
        node_list(primary, standby)
    )
}

/// The table the clients insert into. No unique constraint on purpose: a
/// write that Attaché ran twice would show up as a duplicate row.
async fn prepare(addr: SocketAddr) -> Result<(), DemoError> {
    let c = connect(addr).await?;
    c.batch_execute(
        "DROP TABLE IF EXISTS failover_demo;
         CREATE TABLE failover_demo (id bigint NOT NULL, client int NOT NULL);
         CREATE INDEX ON failover_demo (id);",
    )
    .await?;
    Ok(())
}

/// How many rows each id has on the server at `addr`, asked directly (not
/// through Attaché).
async fn rows_on(addr: SocketAddr) -> Result<HashMap<i64, i64>, DemoError> {
    let c = connect(addr).await?;
    let rows = c
        .query("SELECT id, count(*) FROM failover_demo GROUP BY id", &[])
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, i64>(1)?)))
        .collect()
}

/// How long Attaché itself was without a primary, as its cluster recorded.
fn attache_failover_ms(attache: &Attache) -> Option<u64> {
    let ctx = attache.postgres.as_ref()?;
    let (_, cluster) = ctx.clusters().into_iter().next()?;
    (cluster.failovers.count.load(Ordering::Relaxed) > 0)
        .then(|| cluster.failovers.last_millis.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests;
