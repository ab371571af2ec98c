//! Test support: real PostgreSQL servers from the harness, Attaché started
//! in-process on a free port, and tokio-postgres clients.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::time::Duration;

use attache::app::Attache;
pub use attache_harness::{HbaAuth, PgBuilder, PgServer, TestCerts};
use tokio_postgres::{Client, NoTls};

pub mod http;
pub mod pgwire;

/// Starts Attaché from a TOML text; `listen` is forced to a free port.
pub async fn start_attache(toml: &str) -> Attache {
    let mut cfg = attache::config::parse(toml).expect("test config must be valid");
    if let Some(pg) = cfg.postgres.as_mut() {
        pg.listen = "127.0.0.1:0".into();
    }
    if let Some(h) = cfg.http.as_mut() {
        h.listen = "127.0.0.1:0".into();
    }
    Attache::start(cfg).await.expect("attache starts")
}

/// A config with one database `db` on `server`, plus extra `[postgres]` lines.
pub fn pg_config(server: &PgServer, db: &str, postgres_extra: &str, db_extra: &str) -> String {
    format!(
        "[postgres]\nlisten = \"127.0.0.1:0\"\n{postgres_extra}\n\n[postgres.databases.{db}]\nnodes = [{{ addr = \"{}\" }}]\n{db_extra}\n",
        server.addr()
    )
}

pub fn conn_string(addr: SocketAddr, user: &str, db: &str, password: Option<&str>) -> String {
    let mut s = format!(
        "host=127.0.0.1 port={} user={user} dbname={db} connect_timeout=10",
        addr.port()
    );
    if let Some(p) = password {
        s.push_str(&format!(" password={p}"));
    }
    s
}

/// Connects with tokio-postgres and spawns its connection task.
pub async fn connect(addr: SocketAddr, user: &str, db: &str, password: Option<&str>) -> Client {
    try_connect(addr, user, db, password)
        .await
        .expect("connect through attache")
}

pub async fn try_connect(
    addr: SocketAddr,
    user: &str,
    db: &str,
    password: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) =
        tokio_postgres::connect(&conn_string(addr, user, db, password), NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A server that trusts every login, with user `app` owning database
/// `app`: for byte-level clients that speak no password exchange.
pub fn trust_app_server() -> PgServer {
    PgBuilder::new()
        .auth(HbaAuth::Trust)
        .user("app", "unused")
        .database("app")
        .start()
        .expect("postgres starts")
}

/// A server with a password user `app` (scram) owning database `app`.
pub fn app_server() -> PgServer {
    PgBuilder::new()
        .auth(HbaAuth::Scram)
        .user("app", "app-secret")
        .database("app")
        .start()
        .expect("postgres starts")
}

pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_owned())
}

pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A server with a trusted-or-password user `app` (password `app-secret`)
/// owning database `app`, with `schema` run in it as the superuser.
pub fn app_primary(schema: &str) -> PgServer {
    let primary = PgBuilder::new()
        .user("app", "app-secret")
        .database("app")
        .start()
        .expect("primary starts");
    if !schema.is_empty() {
        primary.psql("app", schema).expect("schema");
    }
    primary
}

/// Connects as `app` to database `app` through a running Attaché.
pub async fn app_client(attache: &Attache) -> Client {
    let addr = attache.postgres_addr.expect("a postgres listener");
    connect(addr, "app", "app", Some("app-secret")).await
}

/// The first column of the first row `sql` returns (simple protocol).
pub async fn first_value(c: &Client, sql: &str) -> Result<Option<String>, tokio_postgres::Error> {
    let rows = c.simple_query(sql).await?;
    Ok(rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    }))
}
