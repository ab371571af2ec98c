//! Graceful drain and zero-downtime restart of the real binary: a second
//! Attaché starts on the same ports (SO_REUSEPORT), the first gets SIGTERM
//! and drains. A workload that opens a connection per transaction must see
//! no refused connection and no error throughout.
//!
//! Connections still queued in the old process's accept backlog when it
//! closes its listener would be reset by the kernel; Linux (5.14+) hands
//! them to the new process when `net.ipv4.tcp_migrate_req = 1`, which this
//! test sets for its duration (it runs as root in CI) and restores.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const MIGRATE: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// Sets the sysctl to 1 and puts the old value back on drop.
struct MigrateReq(Option<String>);

impl MigrateReq {
    fn enable() -> Self {
        let old = std::fs::read_to_string(MIGRATE).ok();
        if let Err(e) = std::fs::write(MIGRATE, "1") {
            panic!("cannot set {MIGRATE} (run as root): {e}");
        }
        MigrateReq(old)
    }
}

impl Drop for MigrateReq {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(MIGRATE, old.trim());
        }
    }
}

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_attache"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("attache starts")
}

async fn healthy(admin: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", admin)).await else {
        return false;
    };
    let req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.starts_with("HTTP/1.1 200")
}

fn terminate(child: &Child) {
    let pid = child.id().to_string();
    let ok = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(ok.expect("kill").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_takes_over_without_refusing_anyone() {
    let _migrate = MigrateReq::enable();
    let pg = PgBuilder::new()
        .user("app", "app-secret")
        .database("app")
        .start()
        .expect("pg");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = attache_harness::free_port();
    let (admin_a, admin_b) = (attache_harness::free_port(), attache_harness::free_port());
    let write = |name: &str, admin: u16| {
        let path = dir.path().join(name);
        let text = format!(
            "[general]\nshutdown_timeout = \"5s\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [postgres]\nlisten = \"127.0.0.1:{port}\"\n[postgres.databases.app]\nnodes = [{{ addr = \"{}\" }}]\n",
            pg.addr()
        );
        std::fs::write(&path, text).expect("config");
        path
    };
    let (cfg_a, cfg_b) = (write("a.toml", admin_a), write("b.toml", admin_b));
    let mut a = spawn(&cfg_a);
    assert!(
        eventually(Duration::from_secs(10), || healthy(admin_a)).await,
        "first attache did not start"
    );

    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match try_connect(addr, "app", "app", Some("app-secret")).await {
                        Ok(c) => match c.simple_query("SELECT 1").await {
                            Ok(_) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => errors.push(format!("query: {e}")),
                        },
                        Err(e) => errors.push(format!("connect: {e}")),
                    }
                }
                errors
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b = spawn(&cfg_b);
    assert!(
        eventually(Duration::from_secs(10), || healthy(admin_b)).await,
        "second attache did not start"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = done.load(Ordering::Relaxed);
    terminate(&a);
    let drained = Instant::now();
    let exited = loop {
        if let Ok(Some(status)) = a.try_wait() {
            break Some(status);
        }
        if drained.elapsed() > Duration::from_secs(10) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.expect("worker"));
    }
    let after = done.load(Ordering::Relaxed);
    let _ = b.kill();
    let _ = b.wait();
    if exited.is_none() {
        let _ = a.kill();
    }
    assert!(
        exited.is_some_and(|s| s.success()),
        "the old process did not exit cleanly: {exited:?}"
    );
    assert!(
        errors.is_empty(),
        "clients saw errors during the handover: {errors:?}"
    );
    assert!(
        after > before + 20,
        "work did not continue after SIGTERM ({before} → {after})"
    );
}
