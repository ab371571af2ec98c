//! Reloads that replace accept loops: a Postgres listener moved to another
//! port, and a `[redis]` section pointed at another server. Connected
//! clients keep working on what they were routed with; new clients get the
//! new listener and topology.

mod support;

use std::time::Duration;

use attache_harness::RedisBuilder;
use redis::AsyncCommands;
use support::*;

fn text(pg: &PgServer, pg_port: u16, redis_port: u16, redis_node: std::net::SocketAddr) -> String {
    format!(
        "[general]\nshutdown_timeout = \"2s\"\n\
         [postgres]\nlisten = \"127.0.0.1:{pg_port}\"\n[postgres.databases.app]\nnodes = [{{ addr = \"{}\" }}]\n\
         [redis]\nlisten = \"127.0.0.1:{redis_port}\"\nnodes = [\"{redis_node}\"]\n",
        pg.addr()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_moves_the_postgres_listener_and_swaps_the_redis_topology() {
    let pg = app_primary("");
    let (r1, r2) = tokio::task::block_in_place(|| {
        (
            RedisBuilder::new().start().expect("redis 1"),
            RedisBuilder::new().start().expect("redis 2"),
        )
    });
    let (p1, p2, rp) = (
        attache_harness::free_port(),
        attache_harness::free_port(),
        attache_harness::free_port(),
    );
    let cfg = attache::config::parse(&text(&pg, p1, rp, r1.addr())).expect("config");
    let app = attache::app::Attache::start(cfg).await.expect("start");
    let old_pg = pg_client(p1).await;
    let redis_url = format!("redis://127.0.0.1:{rp}/");
    let client = redis::Client::open(redis_url.as_str()).expect("url");
    let mut old_redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis via attache");
    let _: () = old_redis.set("k", "one").await.expect("set on r1");

    let new = attache::config::parse(&text(&pg, p2, rp, r2.addr())).expect("config");
    let outcome = app.reloader.reload(new).expect("reload");
    assert!(outcome.needs_restart.is_empty(), "{outcome}");
    let shown = outcome.to_string();
    assert!(
        shown.contains(&format!("listening on 127.0.0.1:{p2}")),
        "{shown}"
    );
    assert!(shown.contains("redis: new topology"), "{shown}");

    // Postgres: the new port serves, the old one takes no new clients, and
    // the client connected before the reload carries on.
    let fresh = pg_client(p2).await;
    assert!(fresh.simple_query("SELECT 1").await.is_ok());
    let refused = stops_accepting(p1).await;
    assert!(refused, "the old port still accepts clients");
    assert!(
        old_pg.simple_query("SELECT 1").await.is_ok(),
        "old client broke"
    );

    // Redis: a new client lands on r2; the old connection still reaches r1.
    let mut fresh_redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis via attache");
    let _: () = fresh_redis.set("k", "two").await.expect("set on r2");
    let on_r1 = tokio::task::block_in_place(|| r1.cli(&["GET", "k"])).expect("cli");
    let on_r2 = tokio::task::block_in_place(|| r2.cli(&["GET", "k"])).expect("cli");
    assert_eq!((on_r1.as_str(), on_r2.as_str()), ("one", "two"));
    let via_old: String = old_redis.get("k").await.expect("old connection works");
    assert_eq!(
        via_old, "one",
        "the old connection stays on the old topology"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_removes_and_adds_the_postgres_section() {
    let pg = app_primary("");
    let redis = tokio::task::block_in_place(|| RedisBuilder::new().start().expect("redis"));
    let (p1, p2, rp) = (
        attache_harness::free_port(),
        attache_harness::free_port(),
        attache_harness::free_port(),
    );
    let both = text(&pg, p1, rp, redis.addr());
    let redis_only = both[both.find("[redis]").expect("a [redis] section")..].to_owned();
    let app = attache::app::Attache::start(attache::config::parse(&both).expect("config"))
        .await
        .expect("start");
    let kept = pg_client(p1).await;

    let outcome = app
        .reloader
        .reload(attache::config::parse(&redis_only).expect("config"))
        .expect("reload without [postgres]");
    assert!(
        outcome.to_string().contains("postgres: listener stopped"),
        "{outcome}"
    );
    let gone = stops_accepting(p1).await;
    assert!(gone, "the removed listener still accepts");
    assert!(
        kept.simple_query("SELECT 1").await.is_ok(),
        "a connected client broke"
    );

    let back = text(&pg, p2, rp, redis.addr());
    let outcome = app
        .reloader
        .reload(attache::config::parse(&back).expect("config"))
        .expect("reload adding [postgres]");
    assert!(outcome.to_string().contains("postgres: added"), "{outcome}");
    let fresh = pg_client(p2).await;
    assert!(fresh.simple_query("SELECT 1").await.is_ok());
    // The admin-facing holder follows: the new context is the one in force.
    assert!(app.live.postgres().is_some());
    app.shutdown().await;
}

/// One HTTP/1.1 request; the status code, or `None` if nothing listens.
async fn admin_status(port: u16, path: &str, token: Option<&str>) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_moves_the_admin_listener_and_changes_its_token() {
    let pg = app_primary("");
    let (pp, a1, a2) = (
        attache_harness::free_port(),
        attache_harness::free_port(),
        attache_harness::free_port(),
    );
    let cfg = |admin: &str| {
        format!(
            "[admin]\n{admin}\n[postgres]\nlisten = \"127.0.0.1:{pp}\"\n\
             [postgres.databases.app]\nnodes = [{{ addr = \"{}\" }}]\n",
            pg.addr()
        )
    };
    let first = cfg(&format!("listen = \"127.0.0.1:{a1}\""));
    let app = attache::app::Attache::start(attache::config::parse(&first).expect("config"))
        .await
        .expect("start");
    assert_eq!(admin_status(a1, "/status", None).await, Some(200));

    let second = cfg(&format!("listen = \"127.0.0.1:{a2}\"\ntoken = \"s3cret\""));
    let outcome = app
        .reloader
        .reload(attache::config::parse(&second).expect("config"))
        .expect("reload");
    assert!(outcome.needs_restart.is_empty(), "{outcome}");
    assert_eq!(admin_status(a2, "/status", None).await, Some(401));
    // Moving the Postgres listener shows on the admin endpoint too.
    let pp2 = attache_harness::free_port();
    let third = second.replace(&format!("127.0.0.1:{pp}"), &format!("127.0.0.1:{pp2}"));
    app.reloader
        .reload(attache::config::parse(&third).expect("config"))
        .expect("reload");
    let body = admin_body(a2, "/readyz", Some("s3cret")).await;
    assert!(
        body.contains(&format!("postgres listening on 127.0.0.1:{pp2}")),
        "{body}"
    );
    assert_eq!(admin_status(a2, "/status", Some("s3cret")).await, Some(200));
    let old_gone = eventually(Duration::from_secs(5), || async {
        admin_status(a1, "/healthz", None).await.is_none()
    })
    .await;
    assert!(old_gone, "the old admin port still answers");
    app.shutdown().await;
}

/// The body of one admin GET.
async fn admin_body(port: u16, path: &str, token: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("admin listens");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// A client of database `app` through Attaché's Postgres port `port`.
async fn pg_client(port: u16) -> tokio_postgres::Client {
    connect(
        ([127, 0, 0, 1], port).into(),
        "app",
        "app",
        Some("app-secret"),
    )
    .await
}

/// Whether `port` stops taking Postgres clients within 5 s.
async fn stops_accepting(port: u16) -> bool {
    eventually(Duration::from_secs(5), || async {
        try_connect(
            ([127, 0, 0, 1], port).into(),
            "app",
            "app",
            Some("app-secret"),
        )
        .await
        .is_err()
    })
    .await
}
