//! Accept → respond, end to end: `attache demo` starts a real PostgreSQL
//! (through the test harness), Attaché in front of it in transaction mode,
//! and a mixed workload from many clients, and prints a live one-line
//! summary until Ctrl-C (or `ATTACHE_DEMO_SECONDS`), then cleans up. It
//! also starts three Redis shards behind Attaché's sharded Redis listener
//! and shows where keys written through it landed.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attache_harness::{HbaAuth, PgBuilder, PgServer, RedisBuilder, RedisServer};
use rand::Rng;

use crate::app::{AppError, Attache};

const CLIENTS: usize = 50;
const POOL_SIZE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("could not start PostgreSQL: {0} (is the postgresql package installed?)")]
    Postgres(#[from] attache_harness::HarnessError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("demo client: {0}")]
    Client(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Other(String),
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    errors: AtomicU64,
}

pub async fn run() -> Result<(), DemoError> {
    println!("Starting PostgreSQL (real server, temporary directory)…");
    let pg = tokio::task::spawn_blocking(start_postgres)
        .await
        .map_err(|e| DemoError::Other(e.to_string()))??;
    let shards = tokio::task::spawn_blocking(start_redis_shards)
        .await
        .map_err(|e| DemoError::Other(e.to_string()))?;
    let listen = free_or_any("127.0.0.1:6432");
    let mut toml = format!(
        "[postgres]\nlisten = \"{listen}\"\npool_mode = \"transaction\"\npool_size = {POOL_SIZE}\n\n[postgres.databases.app]\nnodes = [{{ addr = \"{}\" }}]\n",
        pg.addr()
    );
    if let Some(shards) = &shards {
        let nodes: Vec<String> = shards
            .iter()
            .enumerate()
            .map(|(i, s)| format!("\"{}:1 shard{}\"", s.addr(), i + 1))
            .collect();
        toml.push_str(&format!(
            "\n[redis]\nlisten = \"{}\"\nmode = \"sharded\"\nhash = \"murmur\"\nhash_tag = \"{{}}\"\nnodes = [{}]\n",
            free_or_any("127.0.0.1:6380"),
            nodes.join(", ")
        ));
    }
    let attache = Attache::start(crate::config::parse(&toml)?).await?;
    let addr = attache
        .postgres_addr
        .ok_or_else(|| DemoError::Other("no postgres listener".into()))?;
    println!(
        "PostgreSQL on {}, Attaché on {addr} (transaction pooling, pool_size {POOL_SIZE}).",
        pg.addr()
    );
    println!(
        "Connect yourself:  psql \"postgres://app:app-secret@127.0.0.1:{}/app\"",
        addr.port()
    );
    prepare_schema(addr).await?;
    if let (Some(shards), Some(raddr)) = (&shards, attache.redis_addr) {
        redis_spread(shards, raddr).await?;
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
    drop(pg);
    drop(shards);
    println!("\nStopped; PostgreSQL and its data directory are removed.");
    Ok(())
}

fn free_or_any(addr: &str) -> &str {
    if std::net::TcpListener::bind(addr).is_ok() {
        addr
    } else {
        "127.0.0.1:0"
    }
}

/// Three Redis servers for the sharded part; the demo goes on without them
/// (saying why) if redis-server is not installed.
fn start_redis_shards() -> Option<Vec<RedisServer>> {
    let mut shards = Vec::new();
    for _ in 0..3 {
        match RedisBuilder::new().start() {
            Ok(s) => shards.push(s),
            Err(e) => {
                println!("(Skipping the Redis part: {e})");
                return None;
            }
        }
    }
    Some(shards)
}

/// Writes keys through Attaché's sharded Redis listener and shows where
/// they landed, asking each shard directly.
async fn redis_spread(shards: &[RedisServer], addr: std::net::SocketAddr) -> Result<(), DemoError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const KEYS: usize = 3000;
    let mut out = Vec::new();
    for i in 0..KEYS {
        let key = format!("user:{i}:profile");
        out.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nx\r\n", key.len()).as_bytes(),
        );
    }
    let io = |e: std::io::Error| DemoError::Other(format!("redis demo client: {e}"));
    let mut tcp = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
    tcp.write_all(&out).await.map_err(io)?;
    let expected = KEYS * 5; // "+OK\r\n" per key
    let mut got = vec![0u8; expected];
    tcp.read_exact(&mut got).await.map_err(io)?;
    let counts: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| format!("shard{} {}", i + 1, s.cli(&["DBSIZE"]).unwrap_or_default()))
        .collect();
    println!("Redis: 3 shards behind Attaché on {addr} (twemproxy-compatible ketama, murmur).");
    println!(
        "  {KEYS} keys written through Attaché landed: {}",
        counts.join(", ")
    );
    println!(
        "  Try:  redis-cli -p {} MGET user:1:profile user:2:profile user:3:profile",
        addr.port()
    );
    Ok(())
}

fn start_postgres() -> Result<PgServer, attache_harness::HarnessError> {
    PgBuilder::new()
        .auth(HbaAuth::Scram)
        .user("app", "app-secret")
        .database("app")
        .start()
}

async fn connect(
    addr: std::net::SocketAddr,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let dsn = format!("host=127.0.0.1 port={} user=app password=app-secret dbname=app application_name=attache-demo", addr.port());
    let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn prepare_schema(addr: std::net::SocketAddr) -> Result<(), DemoError> {
    let c = connect(addr).await?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO accounts SELECT g, 1000 FROM generate_series(0, 999) g ON CONFLICT DO NOTHING;",
    )
    .await?;
    Ok(())
}

/// One client: mostly prepared reads, some transfers in a transaction.
async fn client_loop(addr: std::net::SocketAddr, seed: i64, counters: Arc<Counters>) {
    let Ok(mut c) = connect(addr).await else {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Ok(read) = c
        .prepare("SELECT balance FROM accounts WHERE id = $1")
        .await
    else {
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

async fn report_until_stopped(attache: &Attache, counters: &Counters) {
    let limit = std::env::var("ATTACHE_DEMO_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut last_ok, mut last_waits) = (0u64, 0u64);
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
        print!(
            "\rclients {CLIENTS:>3} | server conns {size} ({idle} idle) | queries/s {:>6} | waits/s {:>5} | errors {errors}   ",
            ok - last_ok,
            waits - last_waits
        );
        let _ = std::io::stdout().flush();
        (last_ok, last_waits) = (ok, waits);
        if limit.is_some_and(|l| started.elapsed() >= Duration::from_secs(l)) {
            println!();
            return;
        }
    }
}
