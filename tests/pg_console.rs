//! The admin console against a real server: SHOW tables that match the
//! traffic going on, PAUSE that waits for an open transaction, RELOAD of
//! the config file, who may log in, errors that keep the session, and psql
//! itself talking to the console.

mod support;

use std::time::Duration;

use support::*;
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};

const ADMIN_PW: &str = "console-pw-4711";

fn config(server: &PgServer, pool_size: usize) -> String {
    format!(
        "[postgres]\nlisten = \"127.0.0.1:0\"\nauth = \"scram-sha-256\"\nadmin_users = [\"admin\"]\n\n\
         [postgres.databases.app]\nnodes = [{{ addr = \"{}\" }}]\npool_size = {pool_size}\n\n\
         [postgres.users.app]\npassword = \"app-secret\"\n\n\
         [postgres.users.admin]\npassword = \"{ADMIN_PW}\"\n",
        server.addr()
    )
}

async fn admin(addr: std::net::SocketAddr) -> Client {
    connect(addr, "admin", "attache", Some(ADMIN_PW)).await
}

async fn rows(c: &Client, sql: &str) -> Vec<SimpleQueryRow> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn col<'a>(r: &'a SimpleQueryRow, name: &str) -> &'a str {
    r.get(name)
        .unwrap_or_else(|| panic!("{name} is NULL or missing"))
}

fn num(r: &SimpleQueryRow, name: &str) -> i64 {
    col(r, name).parse().expect("a number")
}

fn app_row<'a>(rows: &'a [SimpleQueryRow], key: &str) -> &'a SimpleQueryRow {
    rows.iter()
        .find(|r| r.get(key) == Some("app"))
        .expect("a row for app")
}

async fn scalar(c: &Client, sql: &str) -> String {
    col(&rows(c, sql).await[0], "v").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_commands_describe_the_traffic_going_on() {
    let pg = app_server();
    let attache = start_attache(&config(&pg, 4)).await;
    let addr = attache.postgres_addr.unwrap();
    let app = connect(addr, "app", "app", Some("app-secret")).await;
    for _ in 0..5 {
        rows(&app, "SELECT 1 AS v").await;
    }
    // One client holds a transaction (and so a server) open.
    rows(&app, "BEGIN").await;
    let pid: i64 = scalar(&app, "SELECT pg_backend_pid() AS v")
        .await
        .parse()
        .unwrap();
    let console = admin(addr).await;

    let pools = rows(&console, "show pools").await;
    let pool = app_row(&pools, "database");
    assert_eq!(col(pool, "user"), "app");
    assert_eq!(col(pool, "pool_mode"), "transaction");
    assert_eq!(num(pool, "sv_active"), 1);
    assert_eq!(num(pool, "cl_active"), 1);
    assert_eq!(num(pool, "cl_waiting"), 0);

    let dbs = rows(&console, "SHOW DATABASES;").await;
    let db = app_row(&dbs, "name");
    assert_eq!(num(db, "pool_size"), 4);
    assert_eq!(col(db, "port"), pg.port().to_string());
    assert_eq!(num(db, "paused"), 0);
    assert_eq!(
        num(db, "current_connections"),
        num(pool, "sv_active") + num(pool, "sv_idle")
    );

    let stats = rows(&console, "SHOW STATS").await;
    assert!(num(app_row(&stats, "database"), "total_xact_count") >= 6);

    let clients = rows(&console, "SHOW CLIENTS").await;
    let client = app_row(&clients, "database");
    assert_eq!(col(client, "user"), "app");
    assert_eq!(col(client, "state"), "active");
    assert_eq!(col(client, "addr"), "127.0.0.1");
    // The console lists itself too, as PgBouncer does.
    assert!(clients.iter().any(|r| r.get("database") == Some("attache")));

    let servers = rows(&console, "SHOW SERVERS").await;
    let held: Vec<_> = servers
        .iter()
        .filter(|r| r.get("state") == Some("active"))
        .collect();
    assert_eq!(held.len(), 1, "one server is in use");
    assert_eq!(num(held[0], "remote_pid"), pid);
    assert_eq!(held[0].get("link"), client.get("ptr"));

    let config = rows(&console, "SHOW CONFIG").await;
    assert!(config.iter().all(|r| {
        let v = r.get("value").unwrap_or("");
        !v.contains(ADMIN_PW) && !v.contains("app-secret")
    }));
    let pw = config
        .iter()
        .find(|r| r.get("key") == Some("users.admin.password"))
        .expect("the admin password row");
    assert_eq!(col(pw, "value"), "<redacted>");

    let version = rows(&console, "SHOW VERSION").await;
    assert!(col(&version[0], "version").starts_with("Attaché "));
    rows(&app, "COMMIT").await;
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_leave_the_console_usable() {
    let pg = app_server();
    let attache = start_attache(&config(&pg, 4)).await;
    let console = admin(attache.postgres_addr.unwrap()).await;

    let e = console.simple_query("SHOW FOO").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42601"));
    let e = console.simple_query("RESUME").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "nothing is paused");
    let e = console.simple_query("PAUSE nosuch").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("3D000"));
    // The extended protocol is refused, and the batch skipped to its Sync.
    let e = console.query("SHOW POOLS", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("0A000"));
    let help = rows(&console, "show help").await;
    assert!(help.iter().any(|r| r.get("command") == Some("SHOW POOLS")));
    // Several commands in one query string.
    let both = rows(&console, "SHOW VERSION; SHOW VERSION").await;
    assert_eq!(both.len(), 2);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_the_open_transaction_and_resume_releases_new_work() {
    let pg = app_server();
    let attache = start_attache(&config(&pg, 4)).await;
    let addr = attache.postgres_addr.unwrap();
    let a = connect(addr, "app", "app", Some("app-secret")).await;
    let b = connect(addr, "app", "app", Some("app-secret")).await;
    let console = admin(addr).await;
    rows(&a, "BEGIN; SELECT 1").await;

    let pausing = tokio::spawn(async move {
        let r = console.simple_query("PAUSE app").await.map(|_| ());
        (console, r)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pausing.is_finished(),
        "PAUSE must wait for the open transaction"
    );
    rows(&a, "COMMIT").await;
    let (console, r) = tokio::time::timeout(Duration::from_secs(10), pausing)
        .await
        .expect("PAUSE returns once the transaction committed")
        .expect("task");
    r.expect("PAUSE succeeds");
    assert_eq!(
        num(
            app_row(&rows(&console, "SHOW DATABASES").await, "name"),
            "paused"
        ),
        1
    );

    // New work waits, connected, until RESUME.
    let held = tokio::spawn(async move { scalar(&b, "SELECT 42 AS v").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !held.is_finished(),
        "a paused database holds new transactions"
    );
    rows(&console, "RESUME app").await;
    let v = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("RESUME releases the held query")
        .expect("task");
    assert_eq!(v, "42");
    assert_eq!(
        num(
            app_row(&rows(&console, "SHOW DATABASES").await, "name"),
            "paused"
        ),
        0
    );
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rereads_the_config_file() {
    let pg = app_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("attache.toml");
    std::fs::write(&path, config(&pg, 4)).expect("write config");
    let cfg = attache::config::load(Some(&path)).expect("config");
    let attache = attache::app::Attache::start_from(cfg, Some(path.clone()))
        .await
        .expect("attache starts");
    let console = admin(attache.postgres_addr.unwrap()).await;
    let size = |rows: Vec<SimpleQueryRow>| num(app_row(&rows, "name"), "pool_size");
    assert_eq!(size(rows(&console, "SHOW DATABASES").await), 4);

    std::fs::write(&path, config(&pg, 9)).expect("rewrite config");
    rows(&console, "RELOAD").await;
    assert_eq!(size(rows(&console, "SHOW DATABASES").await), 9);

    // A rejected file keeps the config in force and the session alive.
    std::fs::write(&path, config(&pg, 0)).expect("rewrite config");
    let e = console.simple_query("RELOAD").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("F0000"));
    assert!(e.to_string().contains("pool_size") || format!("{e:?}").contains("pool_size"));
    assert_eq!(size(rows(&console, "SHOW DATABASES").await), 9);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admin_users_with_the_right_password_get_in() {
    let pg = app_server();
    let attache = start_attache(&config(&pg, 4)).await;
    let addr = attache.postgres_addr.unwrap();
    let e = try_connect(addr, "app", "attache", Some("app-secret"))
        .await
        .expect_err("app is no admin");
    assert_eq!(sqlstate(&e).as_deref(), Some("28000"));
    assert!(format!("{e:?}").contains("not allowed to use the admin console"));
    let e = try_connect(addr, "admin", "attache", Some("wrong"))
        .await
        .expect_err("wrong password");
    assert_eq!(sqlstate(&e).as_deref(), Some("28P01"));
    // PgBouncer's name works too.
    let c = connect(addr, "admin", "pgbouncer", Some(ADMIN_PW)).await;
    assert_eq!(rows(&c, "SHOW VERSION").await.len(), 1);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_shows_pools() {
    let pg = app_server();
    let attache = start_attache(&config(&pg, 4)).await;
    let addr = attache.postgres_addr.unwrap();
    let app = connect(addr, "app", "app", Some("app-secret")).await;
    rows(&app, "SELECT 1").await;
    let psql = attache_harness::pg_bin("psql").expect("psql");
    let port = addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(psql)
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "admin",
                "-d",
                "attache",
            ])
            .args(["-c", "SHOW POOLS"])
            .env("PGPASSWORD", ADMIN_PW)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
    })
    .await
    .expect("task")
    .expect("psql runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql failed: {stderr}");
    assert!(stdout.contains("cl_active"), "{stdout}");
    assert!(stdout.contains("transaction"), "{stdout}");
    assert!(stdout.contains("(1 row)"), "{stdout}");
    attache.shutdown().await;
}
