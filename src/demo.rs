//! Accept → respond, end to end: `attache demo` starts a real PostgreSQL
//! primary and a streaming replica (through the test harness), Attaché in
//! front of them in transaction mode, shows which server each kind of
//! statement was routed to, then runs a mixed workload from many clients and
//! prints a live one-line summary until Ctrl-C (or `ATTACHE_DEMO_SECONDS`),
//! then cleans up. It also starts three Redis shards behind Attaché's
//! sharded Redis listener and shows where keys written through it landed,
//! and two small HTTP services (one flaky) behind its HTTP egress listener,
//! where retries and ejection keep every request succeeding.
//!
//! `attache demo --failover` ([`failover`]) instead kills the primary under
//! load, promotes its synchronous standby and checks that clients rode
//! through it without losing an acknowledged write.

mod failover;
mod http;
mod redis;
mod routing;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attache_harness::{HbaAuth, PgBuilder, PgServer};
use rand::Rng;

use crate::app::{AppError, Attache};
use crate::core::pg::cluster::Role;

const CLIENTS: usize = 50;
const POOL_SIZE: usize = 4;
/// The replica's `application_name` (what `synchronous_standby_names` names).
const REPLICA_NAME: &str = "replica1";

/// Which demo `attache demo` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemoMode {
    /// Read/write routing, then a live workload until stopped.
    #[default]
    Routing,
    /// Kill the primary under load and check nothing acknowledged was lost.
    Failover,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("could not start PostgreSQL: {0} (is the postgresql package installed?)")]
    Postgres(#[from] attache_harness::HarnessError),
    #[error("{step}: {source}")]
    Harness {
        step: &'static str,
        source: attache_harness::HarnessError,
    },
    #[error(transparent)]
    App(#[from] AppError),
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("demo client: {0}")]
    Client(#[from] tokio_postgres::Error),
    /// The failover demo ran but its numbers show a problem (the summary
    /// above says which).
    #[error("failover check failed: {0}")]
    Failover(String),
    /// A step through Attaché got no answer: a demo that hangs explains
    /// nothing, so it stops and says where.
    #[error("{step}: no answer through Attaché within {after:?}")]
    Stalled { step: &'static str, after: Duration },
    #[error("{0}")]
    Other(String),
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    errors: AtomicU64,
}

/// Runs the demo `mode` picks; returns once it is over (or stopped).
pub async fn run(mode: DemoMode) -> Result<(), DemoError> {
    match mode {
        DemoMode::Routing => run_routing().await,
        DemoMode::Failover => failover::run().await,
    }
}

/// The routing demo with a live workload (see the module docs).
async fn run_routing() -> Result<(), DemoError> {
    println!("Starting PostgreSQL: a primary and a streaming replica (real servers, temporary directories)…");
    let (pg, replica) = blocking(start_primary_and_replica).await??;
    let shards = blocking(redis::start_shards).await?;
    let listen = free_or_any("127.0.0.1:6432");
    let mut toml = format!(
        "[postgres]\nlisten = \"{listen}\"\npool_mode = \"transaction\"\npool_size = {POOL_SIZE}\n\n\
         [postgres.databases.app]\nnodes = [{}]\n",
        node_list(&pg, &replica)
    );
    if let Some(shards) = &shards {
        toml.push_str(&redis::config(shards));
    }
    let services = http::start().await;
    if let Some(s) = &services {
        toml.push_str(&http::config(s, free_or_any("127.0.0.1:15000")));
    }
    let attache = Attache::start(crate::config::parse(&toml)?).await?;
    let addr = attache
        .postgres_addr
        .ok_or_else(|| DemoError::Other("no postgres listener".into()))?;
    println!(
        "PostgreSQL primary on {}, replica on {}, Attaché on {addr} (transaction pooling, pool_size {POOL_SIZE} per server).",
        pg.addr(),
        replica.addr()
    );
    println!(
        "Connect yourself:  psql \"postgres://app:app-secret@127.0.0.1:{}/app\"",
        addr.port()
    );
    within("creating the demo tables", prepare_schema(addr)).await?;
    // The replica must have the table before reads of it are sent there.
    let (pg, replica) = blocking(move || {
        replica
            .wait_caught_up(&pg)
            .map(|()| (pg, replica))
            .map_err(|source| DemoError::Harness {
                step: "waiting for the replica to replay the schema",
                source,
            })
    })
    .await??;
    within(
        "showing the routing",
        routing::show(addr, pg.port(), replica.port()),
    )
    .await?;
    if let (Some(shards), Some(raddr)) = (&shards, attache.redis_addr) {
        redis::spread(shards, raddr).await?;
    }
    if let Some(s) = &services {
        http::show(s, &attache).await?;
    }
    let counters = Arc::new(Counters::default());
    let mut workers = Vec::new();
    for i in 0..CLIENTS {
        workers.push(tokio::spawn(client_loop(addr, i as i64, counters.clone())));
    }
    println!("{CLIENTS} clients running a mixed read/write workload. Ctrl-C to stop.\n");
    report_until_stopped(&attache, &counters).await;
    for w in workers {
        w.abort();
    }
    attache.shutdown().await;
    drop(replica);
    drop(pg);
    drop(shards);
    drop(services);
    println!("\nStopped; PostgreSQL and its data directory are removed.");
    Ok(())
}

/// Runs blocking harness work (process starts, `pg_ctl`) off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DemoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DemoError::Other(format!("harness task: {e}")))
}

fn free_or_any(addr: &str) -> &str {
    if std::net::TcpListener::bind(addr).is_ok() {
        addr
    } else {
        "127.0.0.1:0"
    }
}

/// How long one setup step through Attaché may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a setup step through Attaché, bounded by [`SETUP_TIMEOUT`].
async fn within<T>(
    step: &'static str,
    fut: impl std::future::Future<Output = Result<T, DemoError>>,
) -> Result<T, DemoError> {
    tokio::time::timeout(SETUP_TIMEOUT, fut)
        .await
        .map_err(|_| DemoError::Stalled {
            step,
            after: SETUP_TIMEOUT,
        })?
}

/// The `nodes = [...]` value for a primary and one replica.
fn node_list(primary: &PgServer, replica: &PgServer) -> String {
    format!(
        "{{ addr = \"{}\", role = \"primary\" }}, {{ addr = \"{}\", role = \"replica\" }}",
        primary.addr(),
        replica.addr()
    )
}

fn start_postgres() -> Result<PgServer, attache_harness::HarnessError> {
    PgBuilder::new()
        .auth(HbaAuth::Scram)
        .user("app", "app-secret")
        .database("app")
        .start()
}

fn start_primary_and_replica() -> Result<(PgServer, PgServer), attache_harness::HarnessError> {
    let pg = start_postgres()?;
    let replica = pg.start_replica(REPLICA_NAME)?;
    Ok((pg, replica))
}

async fn connect(addr: SocketAddr) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let dsn = format!("host=127.0.0.1 port={} user=app password=app-secret dbname=app application_name=attache-demo connect_timeout=10", addr.port());
    let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn prepare_schema(addr: SocketAddr) -> Result<(), DemoError> {
    let c = connect(addr).await?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO accounts SELECT g, 1000 FROM generate_series(0, 999) g ON CONFLICT DO NOTHING;
         CREATE TABLE IF NOT EXISTS routing_log (at timestamptz NOT NULL DEFAULT now());",
    )
    .await?;
    Ok(())
}

/// One client: mostly prepared reads, some transfers in a transaction.
async fn client_loop(addr: SocketAddr, seed: i64, counters: Arc<Counters>) {
    let Ok(mut c) = connect(addr).await else {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Ok(read) = c
        .prepare("SELECT balance FROM accounts WHERE id = $1")
        .await
    else {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut n = seed;
    loop {
        n = (n * 7 + 13) % 1000;
        let (write, pause) = {
            let mut rng = rand::thread_rng();
            (rng.gen_ratio(1, 5), rng.gen_range(5..40))
        };
        let r = if write {
            transfer(&mut c, n).await
        } else {
            c.query_one(&read, &[&n]).await.map(|_| ())
        };
        let counter = if r.is_ok() {
            &counters.ok
        } else {
            &counters.errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

async fn transfer(c: &mut tokio_postgres::Client, from: i64) -> Result<(), tokio_postgres::Error> {
    let tx = c.transaction().await?;
    tx.execute(
        "UPDATE accounts SET balance = balance - 1 WHERE id = $1",
        &[&from],
    )
    .await?;
    tx.execute(
        "UPDATE accounts SET balance = balance + 1 WHERE id = $1",
        &[&((from + 1) % 1000)],
    )
    .await?;
    tx.commit().await
}

/// Transactions each node has served so far, as (role, count), primary
/// first: the live line turns their growth into per-second rates.
fn node_transactions(attache: &Attache) -> Vec<(Role, u64)> {
    let mut out = Vec::new();
    if let Some(ctx) = &attache.postgres {
        for (_, cluster) in ctx.clusters() {
            for s in cluster.status() {
                out.push((s.role, s.reads + s.writes));
            }
        }
    }
    out.sort_by_key(|(role, _)| *role != Role::Primary);
    out
}

async fn report_until_stopped(attache: &Attache, counters: &Counters) {
    let limit = std::env::var("ATTACHE_DEMO_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut last_ok, mut last_waits) = (0u64, 0u64);
    let mut last_nodes = node_transactions(attache);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return,
        }
        let ok = counters.ok.load(Ordering::Relaxed);
        let errors = counters.errors.load(Ordering::Relaxed);
        let (mut size, mut idle, mut waits) = (0, 0, 0u64);
        if let Some(ctx) = &attache.postgres {
            for p in ctx.pools.all() {
                let s = p.status();
                size += s.size;
                idle += s.idle;
                waits += p.stats.waits.load(Ordering::Relaxed);
            }
        }
        let nodes = node_transactions(attache);
        let per_node: Vec<String> = nodes
            .iter()
            .zip(
                last_nodes
                    .iter()
                    .map(|(_, n)| *n)
                    .chain(std::iter::repeat(0)),
            )
            .map(|((role, n), last)| format!("{} {}", role.as_str(), n.saturating_sub(last)))
            .collect();
        print!(
            "\rclients {CLIENTS:>3} | server conns {size} ({idle} idle) | queries/s {:>6} | tx/s {} | waits/s {:>5} | errors {errors}   ",
            ok - last_ok,
            per_node.join(" "),
            waits - last_waits
        );
        let _ = std::io::stdout().flush();
        (last_ok, last_waits, last_nodes) = (ok, waits, nodes);
        if limit.is_some_and(|l| started.elapsed() >= Duration::from_secs(l)) {
            println!();
            return;
        }
    }
}
