//! The status page at `/` in a real browser: headless Chromium loads it from
//! Attaché's admin server (in front of a primary and a streaming replica,
//! with an admin token), the page's script fetches `/status` with the token
//! it finds in `?token=`, and the rendered DOM names the database, both
//! nodes with their roles, and the pools. The screenshot is kept as
//! `target/test-artifacts/status-page.png` for people to look at. A second
//! test renders the HTTP egress sections (`status-page-http.png`).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "page-tok";

/// Debian's headless-capable browser (`chromium`, installed by
/// scripts/deps.sh); `ATTACHE_CHROMIUM` names another binary. Missing is a
/// failure, not a skip: the page would otherwise go untested unnoticed.
fn chromium() -> PathBuf {
    if let Some(bin) = std::env::var_os("ATTACHE_CHROMIUM") {
        return PathBuf::from(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "chromium not found on PATH: this test renders the admin status page in headless \
             Chromium. Run scripts/deps.sh (it installs Debian's `chromium` package), or set \
             ATTACHE_CHROMIUM to a Chromium binary."
        )
    })
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or
/// `--screenshot=…`) and returns its stdout. Each run gets its own
/// profile directory so runs do not hand off to one another.
async fn browse(mode: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox", // tests run as root in containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(mode)
    .arg(url)
    .stdin(Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("chromium finishes within 30 s")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium {mode} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("chromium prints UTF-8")
}

/// Where test artifacts go: `target/test-artifacts` (or under
/// `$CARGO_TARGET_DIR`), created if missing.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `GET` with the token; the status code and body.
async fn get_status(addr: SocketAddr) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn config(primary: &PgServer, replica: &PgServer) -> String {
    format!(
        "[general]\nshutdown_timeout = \"1s\"\n\n[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = 4\n\n\
         [postgres.databases.app]\nnodes = [{{ addr = \"{}\", role = \"primary\" }}, \
         {{ addr = \"{}\", role = \"replica\" }}]\n\n[postgres.databases.app.health]\n\
         interval = \"200ms\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n",
        primary.addr(),
        replica.addr()
    )
}

/// The `<tr class="pool">` rows of a DOM dump.
fn pool_rows(dom: &str) -> Vec<&str> {
    dom.split("<tr class=\"pool\">")
        .skip(1)
        .map(|rest| rest.split("</tr>").next().unwrap_or(rest))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_the_cluster_in_a_browser() {
    let browser = chromium(); // fail first and clearly if it is missing
    let primary = PgBuilder::new()
        .user("app", "app-secret")
        .database("app")
        .start()
        .expect("primary starts");
    primary
        .psql("app", "CREATE TABLE t (id int); GRANT ALL ON t TO app;")
        .expect("schema");
    let replica = primary.start_replica("r1").expect("replica r1");
    let app = start_attache(&config(&primary, &replica)).await;
    let admin = app.admin_addr.expect("admin server started");
    let both_healthy = eventually(Duration::from_secs(10), || async {
        let (status, body) = get_status(admin).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let nodes = v["postgres"]["databases"]["app"]["nodes"]
            .as_array()
            .cloned();
        status == 200
            && nodes.is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["healthy"] == true))
    })
    .await;
    assert!(
        both_healthy,
        "both nodes healthy: {}",
        get_status(admin).await.1
    );

    let client = connect(app.postgres_addr.unwrap(), "app", "app", Some("app-secret")).await;
    client
        .simple_query("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    for _ in 0..5 {
        client.simple_query("SELECT count(*) FROM t").await.unwrap();
    }
    // Traffic while the browser samples, so the rates have something to show.
    let busy = Arc::new(AtomicBool::new(true));
    let load = tokio::spawn({
        let busy = busy.clone();
        async move {
            let mut i = 0;
            while busy.load(Ordering::Relaxed) {
                let sql = if i % 4 == 0 {
                    "INSERT INTO t VALUES (2)"
                } else {
                    "SELECT 1"
                };
                client.simple_query(sql).await.unwrap();
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    let page = format!("http://{admin}/");
    let shot = artifacts_dir().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let with_token = format!("{page}?token={TOKEN}");
    let screenshot = format!("--screenshot={}", shot.display());
    let (dom, refused, _) = tokio::join!(
        browse("--dump-dom", &with_token),
        browse("--dump-dom", &page),
        browse(&screenshot, &with_token),
    );
    busy.store(false, Ordering::Relaxed);
    load.await.unwrap();

    assert!(
        dom.contains("Postgres database <code>app</code>"),
        "{browser:?} rendered:\n{dom}"
    );
    for node in [primary.addr(), replica.addr()] {
        assert!(
            dom.contains(&format!("<code>{node}</code>")),
            "{node}:\n{dom}"
        );
    }
    assert!(dom.contains(">primary</span>"), "{dom}");
    assert!(dom.contains(">replica</span>"), "{dom}");
    assert!(dom.contains(">healthy</span>"), "{dom}");
    let pools = pool_rows(&dom);
    assert!(
        pools.iter().any(|r| r.contains("<td>app</td><td>app</td>")),
        "a pool row for database app, user app: {pools:?}"
    );
    assert!(dom.contains("last updated"), "{dom}");
    assert!(
        dom.contains("class=\"n rate"),
        "rates from two samples:\n{dom}"
    );
    assert!(!dom.contains("class=\"show\""), "no error banner:\n{dom}");

    // Without ?token= the page loads (it holds no data) but /status refuses.
    assert!(refused.contains("class=\"show\""), "{refused}");
    assert!(refused.contains("(401)"), "{refused}");
    assert!(!refused.contains(&replica.addr().to_string()), "{refused}");

    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a rendered page, not a blank: {} bytes",
        png.len()
    );
    app.shutdown().await;
}

/// The HTTP egress sections: the routes table with counts by class, and a
/// section per cluster naming its endpoints and their state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_http_routes_and_clusters() {
    use support::http::{get, h1_client, Mode, Upstream};
    chromium();
    let good = Upstream::start("good").await.unwrap();
    let bad = Upstream::start("bad").await.unwrap();
    bad.set_mode(Mode::Status(503));
    let toml = format!(
        "[http]\n[[http.routes]]\nprefix = \"/svc/\"\ncluster = \"svc\"\n\
         [http.clusters.svc]\nendpoints = [\"{}\", \"{}\"]\n\
         outlier = {{ consecutive_5xx = 1, base_ejection = \"60s\" }}\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n",
        good.addr(),
        bad.addr()
    );
    let app = start_attache(&toml).await;
    let admin = app.admin_addr.expect("admin server started");
    let proxy = app.http_addr.unwrap();
    let client = h1_client();
    for _ in 0..6 {
        assert_eq!(get(&client, proxy, "/svc/x", &[]).await.status, 200);
    }
    assert_eq!(get(&client, proxy, "/nowhere", &[]).await.status, 404);
    let shot = artifacts_dir().join("status-page-http.png");
    let _ = std::fs::remove_file(&shot);
    let page = format!("http://{admin}/?token={TOKEN}");
    let screenshot = format!("--screenshot={}", shot.display());
    let (dom, _) = tokio::join!(browse("--dump-dom", &page), browse(&screenshot, &page));

    assert!(dom.contains("HTTP routes"), "{dom}");
    assert!(dom.contains("1 unmatched"), "{dom}");
    let route = dom
        .split("<tr class=\"http-route\">")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no route row:\n{dom}"));
    assert!(route.contains("<code>/svc/</code>"), "{route}");
    assert!(route.contains("<code>svc</code>"), "{route}");
    let endpoints: Vec<&str> = dom
        .split("<tr class=\"http-endpoint\">")
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap_or(r))
        .collect();
    assert_eq!(endpoints.len(), 2, "{dom}");
    let row = |addr: std::net::SocketAddr| {
        endpoints
            .iter()
            .find(|r| r.contains(&format!("<code>{addr}</code>")))
            .unwrap_or_else(|| panic!("no row for {addr}: {endpoints:?}"))
    };
    assert!(
        row(good.addr()).contains(">up</span>"),
        "{}",
        row(good.addr())
    );
    assert!(
        row(bad.addr()).contains(">ejected</span>"),
        "{}",
        row(bad.addr())
    );
    assert!(dom.contains("HTTP cluster <code>svc</code>"), "{dom}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    app.shutdown().await;
}
