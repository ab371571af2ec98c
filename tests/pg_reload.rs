//! Hot reload against real servers: under load, a reload that adds a
//! replica and changes pool sizes costs no client an error; an invalid
//! config is rejected and the old one stays; SIGHUP reloads the binary.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

fn config(primary: &PgServer, replica: Option<&PgServer>, pool_size: usize) -> String {
    let mut nodes = format!("{{ addr = \"{}\", role = \"primary\" }}", primary.addr());
    if let Some(r) = replica {
        nodes.push_str(&format!(
            ", {{ addr = \"{}\", role = \"replica\" }}",
            r.addr()
        ));
    }
    format!(
        "[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = {pool_size}\n\n\
         [postgres.databases.app]\nnodes = [{nodes}]\nconsistency = \"eventual\"\n\
         [postgres.databases.app.health]\ninterval = \"100ms\"\n"
    )
}

async fn port_of(c: &tokio_postgres::Client) -> Result<u16, tokio_postgres::Error> {
    Ok(first_value(c, "SELECT inet_server_port()")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_adds_a_replica_and_resizes_pools() {
    let primary = app_primary("");
    let replica = primary.start_replica("r1").expect("replica");
    let attache = start_attache(&config(&primary, None, 2)).await;
    let addr = attache.postgres_addr.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let c = connect(addr, "app", "app", Some("app-secret")).await;
                let (mut ports, mut errors) = (Vec::new(), Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match port_of(&c).await {
                        Ok(p) => ports.push(p),
                        Err(e) => errors.push(format!("{e} {:?}", sqlstate(&e))),
                    }
                }
                (ports, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let new = attache::config::parse(&config(&primary, Some(&replica), 6)).expect("config");
    let outcome = attache.reloader.reload(new).expect("reload applies");
    assert!(outcome.needs_restart.is_empty(), "{outcome}");
    assert!(
        outcome.to_string().contains("1 pool(s) replaced"),
        "{outcome}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut before, mut after) = (0, 0);
    for t in clients {
        let (ports, errors) = t.await.expect("client");
        assert!(
            errors.is_empty(),
            "client errors across the reload: {errors:?}"
        );
        before += ports.iter().filter(|&&p| p == primary.port()).count();
        after += ports.iter().filter(|&&p| p == replica.port()).count();
    }
    assert!(before > 0, "no reads before the reload");
    assert!(after > 0, "no read reached the replica added by the reload");
    // The primary's pool is the new one, with the new size.
    let pools = attache.postgres.as_ref().unwrap().pools.all();
    let p = pools
        .iter()
        .find(|p| p.key.node == primary.addr().to_string())
        .expect("primary pool");
    assert_eq!(p.status().max_size, 6);
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reload_is_rejected_and_clients_carry_on() {
    let pg = app_primary("");
    let attache = start_attache(&config(&pg, None, 3)).await;
    let c = connect(
        attache.postgres_addr.unwrap(),
        "app",
        "app",
        Some("app-secret"),
    )
    .await;
    assert_eq!(port_of(&c).await.expect("query"), pg.port());
    let mut bad = attache::config::parse(&config(&pg, None, 3)).expect("config");
    if let Some(p) = bad.postgres.as_mut() {
        p.pool.pool_size = Some(0);
    }
    let err = attache.reloader.reload(bad).expect_err("rejected");
    assert!(err.to_string().contains("pool_size"), "{err}");
    assert_eq!(port_of(&c).await.expect("still works"), pg.port());
    let pools = attache.postgres.as_ref().unwrap().pools.all();
    assert_eq!(pools[0].status().max_size, 3, "old settings stay");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_makes_the_binary_reread_its_config() {
    let pg = PgBuilder::new()
        .user("app", "app-secret")
        .database("app")
        .database("other")
        .start()
        .expect("pg");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("attache.toml");
    let port = attache_harness::free_port();
    let text = |extra: &str| {
        format!(
            "[postgres]\nlisten = \"127.0.0.1:{port}\"\n[postgres.databases.app]\nnodes = [{{ addr = \"{}\" }}]\n{extra}",
            pg.addr()
        )
    };
    std::fs::write(&path, text("")).expect("write config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_attache"))
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("attache starts");
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let up = eventually(Duration::from_secs(10), || async {
        try_connect(addr, "app", "app", Some("app-secret"))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "attache did not come up");
    let kept = connect(addr, "app", "app", Some("app-secret")).await;
    let refused = try_connect(addr, "app", "other", Some("app-secret")).await;
    assert_eq!(
        refused.err().as_ref().and_then(sqlstate).as_deref(),
        Some("3D000")
    );

    let extra = format!(
        "[postgres.databases.other]\nnodes = [{{ addr = \"{}\" }}]\n",
        pg.addr()
    );
    std::fs::write(&path, text(&extra)).expect("rewrite config");
    let pid = child.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    assert!(hup.expect("kill").success());
    let reloaded = eventually(Duration::from_secs(10), || async {
        try_connect(addr, "app", "other", Some("app-secret"))
            .await
            .is_ok()
    })
    .await;
    // The connection opened before the reload was never dropped.
    let still = kept.simple_query("SELECT 1").await.is_ok();
    let _ = child.kill();
    let _ = child.wait();
    assert!(reloaded, "SIGHUP did not make database \"other\" reachable");
    assert!(still, "the connection opened before the reload broke");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_transactions_and_holds_new_ones_until_resume() {
    let pg = app_primary("");
    let attache = start_attache(&config(&pg, None, 3)).await;
    let addr = attache.postgres_addr.unwrap();
    let ctx = attache.postgres.clone().unwrap();
    let a = connect(addr, "app", "app", Some("app-secret")).await;
    let b = connect(addr, "app", "app", Some("app-secret")).await;
    a.simple_query("BEGIN; SELECT 1").await.expect("begin");

    let pausing = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.pause(Some("app"), Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !pausing.is_finished(),
        "PAUSE must wait for the open transaction"
    );
    a.simple_query("COMMIT")
        .await
        .expect("the open transaction finishes");
    assert!(
        pausing.await.expect("pause task"),
        "PAUSE completes once idle"
    );
    assert!(ctx.paused().covers("app"));

    // New work waits (the client stays connected) until RESUME.
    let held = tokio::spawn(async move { b.simple_query("SELECT 2").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a query ran while paused");
    ctx.resume(Some("app"));
    let done = tokio::time::timeout(Duration::from_secs(5), held).await;
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "the held query failed: {done:?}"
    );
    attache.shutdown().await;
}
