//! The admin endpoint against a real PostgreSQL behind Attaché: metrics
//! reflect the queries run, readiness follows the primary, the token
//! guards everything but /healthz, and bad requests get proper answers.
//! Requests are written by hand over TCP, as a probe or scraper would.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Sends raw bytes on a fresh connection and reads until the server closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("the admin server answers and closes")
        .unwrap();
    parse_reply(&String::from_utf8(out).unwrap())
}

fn parse_reply(text: &str) -> Reply {
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\n\r\n");
    raw(addr, req.as_bytes()).await
}

/// `shutdown_timeout` is short: after the kill a session waits for a
/// primary that never comes, and the drain need not wait for it.
fn admin_config(server: &PgServer, admin_extra: &str) -> String {
    format!(
        "[general]\nshutdown_timeout = \"1s\"\n{}\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin_extra}\n",
        pg_config(server, "app", "", "")
    )
}

/// The value of the first sample whose name and labels start with `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test]
async fn metrics_reflect_the_queries_run() {
    let server = app_server();
    let app = start_attache(&admin_config(&server, "")).await;
    let admin = app.admin_addr.expect("admin server started");
    let client = connect(app.postgres_addr.unwrap(), "app", "app", Some("app-secret")).await;
    const QUERIES: usize = 6;
    for i in 0..QUERIES {
        let rows = client.simple_query(&format!("SELECT {i}")).await.unwrap();
        assert!(!rows.is_empty());
    }
    // One SQL error, relayed from the server.
    assert!(client.simple_query("SELECT 1/0").await.is_err());

    let r = get(admin, "/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.head
            .contains("Content-Type: application/openmetrics-text"),
        "{}",
        r.head
    );
    let m = &r.body;
    let node = server.addr().to_string();
    let pool = format!("database=\"app\",user=\"app\",node=\"{node}\"");
    let transactions = sample(m, &format!("attache_pg_pool_transactions_total{{{pool}}}"))
        .unwrap_or_else(|| panic!("no transactions counter for {pool}:\n{m}"));
    assert!(transactions >= QUERIES as f64, "{transactions}");
    let checkouts = sample(m, &format!("attache_pg_pool_checkouts_total{{{pool}}}")).unwrap();
    assert!(checkouts >= QUERIES as f64, "{checkouts}");
    let errors = sample(m, &format!("attache_pg_pool_server_errors_total{{{pool}}}")).unwrap();
    assert_eq!(errors, 1.0, "one division by zero");
    // Each query is at least its 5-byte header plus text each way.
    let sent = sample(
        m,
        &format!("attache_pg_pool_bytes_total{{{pool},direction=\"to_server\"}}"),
    )
    .unwrap();
    let received = sample(
        m,
        &format!("attache_pg_pool_bytes_total{{{pool},direction=\"to_client\"}}"),
    )
    .unwrap();
    assert!(sent >= (QUERIES * 13) as f64, "{sent}");
    assert!(received > sent, "replies carry rows: {received} vs {sent}");
    assert_eq!(
        sample(m, &format!("attache_pg_pool_server_lost_total{{{pool}}}")),
        Some(0.0)
    );
    // Every transaction's hold on the node is in its latency histogram.
    let held = m
        .lines()
        .find(|l| l.starts_with("attache_pg_node_transaction_seconds_count"))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no node latency histogram:\n{m}"));
    assert!(held >= QUERIES as f64, "{held}");
    let idle = sample(
        m,
        &format!("attache_pg_pool_server_connections{{{pool},state=\"idle\"}}"),
    );
    let active = sample(
        m,
        &format!("attache_pg_pool_server_connections{{{pool},state=\"active\"}}"),
    );
    let (idle, active) = (idle.expect("idle gauge"), active.expect("active gauge"));
    assert!(
        idle + active >= 1.0,
        "a server connection is open: {idle} {active}"
    );
    let node_labels = format!("database=\"app\",node=\"{node}\",role=\"primary\"");
    let routed = sample(m, &format!("attache_pg_node_writes_total{{{node_labels}}}")).unwrap()
        + sample(m, &format!("attache_pg_node_reads_total{{{node_labels}}}")).unwrap();
    assert!(routed >= QUERIES as f64, "{routed}");
    assert_eq!(
        sample(m, &format!("attache_pg_node_healthy{{{node_labels}}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(m, "attache_pg_cluster_has_primary{database=\"app\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(m, "attache_pg_cluster_failovers_total{database=\"app\"}"),
        Some(0.0)
    );
    assert_eq!(sample(m, "attache_build_info{version=\""), Some(1.0));
    assert!(m.ends_with("# EOF\n"));
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_follows_the_primary() {
    let mut server = app_server();
    let app = start_attache(&admin_config(&server, "")).await;
    let admin = app.admin_addr.unwrap();
    let health = get(admin, "/healthz", None).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(admin, "/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains(&format!(
        "postgres listening on {}",
        app.postgres_addr.unwrap()
    )));

    let client = connect(app.postgres_addr.unwrap(), "app", "app", Some("app-secret")).await;
    client.simple_query("SELECT 1").await.unwrap();
    server.kill9();
    // The next checkout finds the node gone and the cluster loses its
    // primary; the query itself waits for a new one, so do not wait for it.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.simple_query("SELECT 1")).await;
    let mut last = get(admin, "/readyz", None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while last.status == 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = get(admin, "/readyz", None).await;
    }
    assert_eq!(last.status, 503, "{}", last.body);
    assert!(
        last.body.contains("postgres database \"app\": no primary"),
        "{}",
        last.body
    );
    assert_eq!(
        get(admin, "/healthz", None).await.status,
        200,
        "still alive"
    );
    let m = get(admin, "/metrics", None).await.body;
    assert_eq!(
        sample(&m, "attache_pg_cluster_has_primary{database=\"app\"}"),
        Some(0.0)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_token_guards_everything_but_healthz() {
    let server = app_server();
    let app = start_attache(&admin_config(&server, "token = \"admin-tok\"")).await;
    let admin = app.admin_addr.unwrap();
    assert_eq!(get(admin, "/healthz", None).await.status, 200);
    for path in ["/readyz", "/metrics", "/status"] {
        let r = get(admin, path, None).await;
        assert_eq!(r.status, 401, "{path}");
        assert!(r.head.contains("WWW-Authenticate: Bearer"), "{}", r.head);
        assert!(!r.body.is_empty());
        assert_eq!(get(admin, path, Some("wrong")).await.status, 401, "{path}");
        assert_eq!(
            get(admin, path, Some("admin-tok")).await.status,
            200,
            "{path}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn status_names_the_database_and_node() {
    let server = app_server();
    let app = start_attache(&admin_config(&server, "")).await;
    let admin = app.admin_addr.unwrap();
    let client = connect(app.postgres_addr.unwrap(), "app", "app", Some("app-secret")).await;
    client.simple_query("SELECT 1").await.unwrap();
    let r = get(admin, "/status", None).await;
    assert_eq!(r.status, 200);
    assert!(r.head.contains("Content-Type: application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let node = server.addr().to_string();
    let db = &v["postgres"]["databases"]["app"];
    assert_eq!(db["primary"], node.as_str());
    assert_eq!(db["nodes"][0]["addr"], node.as_str());
    assert_eq!(db["nodes"][0]["role"], "primary");
    assert_eq!(db["nodes"][0]["healthy"], true);
    let pool = &v["postgres"]["pools"][0];
    assert_eq!(
        (pool["database"].as_str(), pool["user"].as_str()),
        (Some("app"), Some("app"))
    );
    assert!(pool["transactions"].as_u64().unwrap() >= 1);
    let listeners = v["listeners"].as_array().unwrap();
    let admin_str = admin.to_string();
    assert!(listeners
        .iter()
        .any(|l| l["protocol"] == "admin" && l["addr"] == admin_str.as_str()));
    app.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_a_status_and_a_reason() {
    let server = app_server();
    let app = start_attache(&admin_config(&server, "")).await;
    let admin = app.admin_addr.unwrap();

    let r = get(admin, "/nope", None).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("/nope"));
    let r = raw(
        admin,
        b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody",
    )
    .await;
    assert_eq!(r.status, 405);
    assert!(r.head.contains("Allow: GET, HEAD"));
    assert!(r.body.contains("POST"));
    let r = raw(admin, b"this is not http\r\n\r\n").await;
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with("bad request: "), "{}", r.body);
    let r = raw(admin, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert_eq!(r.status, 400, "HTTP/1.1 without Host");
    let mut huge = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    huge.extend(vec![b'a'; 20 * 1024]);
    huge.extend(b"\r\n\r\n");
    let r = raw(admin, &huge).await;
    assert_eq!(r.status, 431);
    assert!(!r.body.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn keep_alive_serves_several_requests_and_shutdown_stops_the_server() {
    let server = app_server();
    let app = start_attache(&admin_config(&server, "")).await;
    let admin = app.admin_addr.unwrap();
    let mut tcp = TcpStream::connect(admin).await.unwrap();
    for path in ["/healthz", "/readyz", "/status"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let (status, _) = read_one(&mut tcp).await;
        assert_eq!(status, 200, "{path} on a kept-alive connection");
    }
    drop(tcp);
    assert!(
        app.shutdown().await,
        "admin connections do not hold up the drain"
    );
    assert!(
        TcpStream::connect(admin).await.is_err(),
        "the admin server stops with the rest"
    );
}

#[tokio::test]
async fn connections_over_the_limit_get_503() {
    let server = app_server();
    let app = start_attache(&admin_config(&server, "")).await;
    let admin = app.admin_addr.unwrap();
    let mut held = Vec::new();
    for _ in 0..attache::admin::MAX_CONNECTIONS {
        held.push(TcpStream::connect(admin).await.unwrap());
    }
    // Accepted in order: these 64 hold every slot, so the next is turned away.
    let r = get(admin, "/healthz", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "too many admin connections\n");
    held.clear();
    let mut ok = false;
    for _ in 0..50 {
        if get(admin, "/healthz", None).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "slots free up when clients leave");
    app.shutdown().await;
}

/// Reads one response framed by Content-Length from a kept-alive connection.
async fn read_one(tcp: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "connection stayed open"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let reply = parse_reply(&head);
    assert!(
        reply.head.contains("Connection: keep-alive"),
        "{}",
        reply.head
    );
    let len: usize = reply
        .head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await.unwrap();
    (reply.status, String::from_utf8(body).unwrap())
}

async fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    raw(addr, req.as_bytes()).await
}

/// POST /reload re-reads the file; /pause and /resume hold and release
/// new transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_pause_and_resume_over_http() {
    let server = app_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attache.toml");
    let text = |size: usize| sized_config(&server, "token = \"t0ken\"", size);
    let app = start_from_file(&path, &text(3)).await;
    let admin = app.admin_addr.unwrap();
    let c = connect(app.postgres_addr.unwrap(), "app", "app", Some("app-secret")).await;
    c.simple_query("SELECT 1").await.unwrap();

    assert_eq!(post(admin, "/reload", None).await.status, 401);
    assert_eq!(get(admin, "/reload", Some("t0ken")).await.status, 405);
    std::fs::write(&path, text(7)).unwrap();
    let r = post(admin, "/reload", Some("t0ken")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 pool(s) replaced"), "{}", r.body);
    c.simple_query("SELECT 1").await.unwrap();
    let pools = app.postgres.as_ref().unwrap().pools.all();
    assert_eq!(pools[0].status().max_size, 7);

    std::fs::write(&path, text(0)).unwrap();
    let r = post(admin, "/reload", Some("t0ken")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("pool_size"), "{}", r.body);

    assert_eq!(post(admin, "/pause/nope", Some("t0ken")).await.status, 404);
    let r = post(admin, "/pause/app", Some("t0ken")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let held = tokio::spawn(async move { c.simple_query("SELECT 2").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a query ran while paused");
    let r = post(admin, "/resume/app", Some("t0ken")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let done = tokio::time::timeout(Duration::from_secs(5), held).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
    app.shutdown().await;
}

/// Every checkout lands in the wait histogram, and `pg_clients` counts the
/// logged-in clients, following a disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_histogram_and_client_gauge() {
    let server = app_server();
    let app = start_attache(&admin_config(&server, "")).await;
    let admin = app.admin_addr.unwrap();
    let pg = app.postgres_addr.unwrap();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = connect(pg, "app", "app", Some("app-secret")).await;
        c.simple_query("SELECT 1").await.unwrap();
        clients.push(c);
    }
    let m = get(admin, "/metrics", None).await.body;
    let pool = format!("database=\"app\",user=\"app\",node=\"{}\"", server.addr());
    let checkouts = sample(&m, &format!("attache_pg_pool_checkouts_total{{{pool}}}")).unwrap();
    let count = sample(
        &m,
        &format!("attache_pg_pool_checkout_wait_seconds_count{{{pool}}}"),
    )
    .unwrap_or_else(|| panic!("no histogram for {pool}\n{m}"));
    assert!(checkouts >= 3.0, "{checkouts}");
    assert!(count >= checkouts, "{count} < {checkouts}\n{m}");
    let inf = sample(
        &m,
        &format!("attache_pg_pool_checkout_wait_seconds_bucket{{le=\"+Inf\",{pool}}}"),
    );
    assert_eq!(inf, Some(count), "+Inf holds every observation");
    assert!(!m.contains("attache_pg_pool_checkout_wait_seconds_total"));
    let total = |m: &str| {
        sample(m, "attache_pg_clients{state=\"active\"}").unwrap_or(-1.0)
            + sample(m, "attache_pg_clients{state=\"idle\"}").unwrap_or(-1.0)
    };
    assert_eq!(total(&m), 3.0, "{m}");
    assert_eq!(
        sample(
            &m,
            &format!("attache_listener_info{{protocol=\"postgres\",addr=\"{pg}\"}}")
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            &format!("attache_listener_info{{protocol=\"admin\",addr=\"{admin}\"}}")
        ),
        Some(1.0)
    );

    clients.pop();
    let left = eventually(Duration::from_secs(5), || async {
        total(&get(admin, "/metrics", None).await.body) == 2.0
    })
    .await;
    assert!(left, "a disconnected client is no longer counted");
    app.shutdown().await;
}

/// An applied and a rejected reload each show under their outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_counted_by_outcome() {
    let server = app_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attache.toml");
    let text = |size: usize| sized_config(&server, "", size);
    let app = start_from_file(&path, &text(3)).await;
    let admin = app.admin_addr.unwrap();
    let reloads = |m: &str, outcome: &str| {
        sample(
            m,
            &format!("attache_reloads_total{{outcome=\"{outcome}\"}}"),
        )
    };
    let m = get(admin, "/metrics", None).await.body;
    assert_eq!(
        (reloads(&m, "applied"), reloads(&m, "rejected")),
        (Some(0.0), Some(0.0)),
        "{m}"
    );

    std::fs::write(&path, text(5)).unwrap();
    app.reloader.reload_from_source().unwrap();
    std::fs::write(&path, text(0)).unwrap();
    assert!(app.reloader.reload_from_source().is_err());
    std::fs::write(&path, "this is [not toml").unwrap();
    assert!(app.reloader.reload_from_source().is_err());

    let m = get(admin, "/metrics", None).await.body;
    assert_eq!(reloads(&m, "applied"), Some(1.0), "{m}");
    assert_eq!(reloads(&m, "rejected"), Some(2.0), "{m}");
    app.shutdown().await;
}

/// `admin_config` with a pool size, which reload tests change.
fn sized_config(server: &PgServer, admin_extra: &str, size: usize) -> String {
    admin_config(server, admin_extra)
        .replace("[postgres]\n", &format!("[postgres]\npool_size = {size}\n"))
}

/// Writes `text` to `path` and starts Attaché from it, so reloads re-read it.
async fn start_from_file(path: &std::path::Path, text: &str) -> attache::app::Attache {
    std::fs::write(path, text).unwrap();
    let cfg = attache::config::load(Some(path)).unwrap();
    attache::app::Attache::start_from(cfg, Some(path.to_path_buf()))
        .await
        .unwrap()
}
