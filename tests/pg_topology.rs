//! Read/write splitting against real servers: a primary with two streaming
//! replicas. Which server answered is told by `inet_server_port()`.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::*;
use tokio_postgres::{Client, SimpleQueryMessage};

/// A primary (with table `t`) and two replicas.
fn cluster() -> (PgServer, PgServer, PgServer) {
    let primary =
        app_primary("CREATE TABLE t (id int PRIMARY KEY, v text); GRANT ALL ON t TO app;");
    let r1 = primary.start_replica("r1").expect("replica r1");
    let r2 = primary.start_replica("r2").expect("replica r2");
    (primary, r1, r2)
}

fn topology_config(p: &PgServer, replicas: &[&PgServer], db_extra: &str, health: &str) -> String {
    let mut nodes = format!("{{ addr = \"{}\", role = \"primary\" }}", p.addr());
    for r in replicas {
        nodes.push_str(&format!(
            ", {{ addr = \"{}\", role = \"replica\" }}",
            r.addr()
        ));
    }
    format!(
        "[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = 4\n\n[postgres.databases.app]\nnodes = [{nodes}]\n{db_extra}\n\
         [postgres.databases.app.health]\ninterval = \"100ms\"\n{health}\n"
    )
}

/// The port of the server that ran `sql` (its first column of the first row).
async fn port_of(c: &Client, sql: &str) -> u16 {
    let v = first_value(c, sql).await.expect(sql);
    v.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no port from {sql}"))
}

async fn ports(c: &Client, sql: &str, n: usize) -> HashMap<u16, usize> {
    let mut m = HashMap::new();
    for _ in 0..n {
        *m.entry(port_of(c, sql).await).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_spread_over_replicas_and_writes_stay_on_the_primary() {
    let (p, r1, r2) = cluster();
    let cfg = topology_config(
        &p,
        &[&r1, &r2],
        "balance = \"round-robin\"\nconsistency = \"eventual\"",
        "",
    );
    let attache = start_attache(&cfg).await;
    let c = app_client(&attache).await;
    let (pp, p1, p2) = (p.port(), r1.port(), r2.port());

    // Simple-protocol reads alternate between the two replicas.
    let m = ports(&c, "SELECT inet_server_port()", 20).await;
    assert_eq!(m.get(&pp), None, "no read on the primary: {m:?}");
    assert!(
        m.get(&p1).copied().unwrap_or(0) >= 8 && m.get(&p2).copied().unwrap_or(0) >= 8,
        "{m:?}"
    );

    // Extended protocol (tokio-postgres prepares, then binds): also replicas.
    let mut seen = HashMap::new();
    for _ in 0..10 {
        let row = c
            .query_one("SELECT inet_server_port()", &[])
            .await
            .expect("read");
        *seen.entry(row.get::<_, i32>(0) as u16).or_insert(0) += 1;
    }
    assert!(!seen.contains_key(&pp), "{seen:?}");

    // Writes, locking reads, writable CTEs, plain transactions: the primary.
    c.simple_query("INSERT INTO t VALUES (1, 'a')")
        .await
        .expect("insert");
    let primary_only = [
        "SELECT inet_server_port() FROM t FOR UPDATE",
        "WITH w AS (INSERT INTO t VALUES (2, 'b') RETURNING 1) SELECT inet_server_port() FROM w",
        "/* attache: role=primary */ SELECT inet_server_port()",
        "SELECT inet_server_port() FROM (SELECT txid_current()) x",
    ];
    for sql in primary_only {
        assert_eq!(port_of(&c, sql).await, pp, "{sql}");
    }
    let tx = c.simple_query("BEGIN").await.map(|_| ());
    tx.expect("begin");
    assert_eq!(
        port_of(&c, "SELECT inet_server_port()").await,
        pp,
        "inside BEGIN"
    );
    c.simple_query("COMMIT").await.expect("commit");

    // BEGIN READ ONLY: the whole transaction on one replica.
    c.simple_query("BEGIN READ ONLY").await.expect("begin ro");
    let first = port_of(&c, "SELECT inet_server_port()").await;
    assert!(first == p1 || first == p2, "{first}");
    assert_eq!(port_of(&c, "SELECT inet_server_port()").await, first);
    c.simple_query("COMMIT").await.expect("commit ro");

    // SET attache.role pins reads to the primary until RESET.
    c.simple_query("SET attache.role = 'primary'")
        .await
        .expect("set role");
    assert_eq!(
        ports(&c, "SELECT inet_server_port()", 4).await.get(&pp),
        Some(&4)
    );
    let bad = c.simple_query("SET attache.role = 'sideways'").await;
    assert_eq!(
        bad.err().as_ref().and_then(sqlstate).as_deref(),
        Some("22023")
    );
    c.simple_query("RESET attache.role")
        .await
        .expect("reset role");
    assert!(!ports(&c, "SELECT inet_server_port()", 4)
        .await
        .contains_key(&pp));
    // A replica hint on a plain read that would go there anyway, and the
    // writes are all on the primary.
    let n = p.psql("app", "SELECT count(*) FROM t").expect("count");
    assert_eq!(n, "2");
    let status = attache_cluster_reads(&attache);
    assert!(
        status.1 > 0 && status.0 > 0,
        "reads {} writes {}",
        status.0,
        status.1
    );
}

/// (reads on replicas, writes on the primary) as the cluster counted them.
fn attache_cluster_reads(a: &attache::app::Attache) -> (u64, u64) {
    let s = a.pg_cluster_status("app").expect("cluster app");
    let reads = s.iter().skip(1).map(|n| n.reads).sum();
    (reads, s[0].writes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_replica_is_excluded_past_max_lag() {
    let primary = app_primary("CREATE TABLE t (id int); GRANT ALL ON t TO app;");
    let r1 = primary.start_replica("r1").expect("replica");
    let cfg = topology_config(
        &primary,
        &[&r1],
        "consistency = \"eventual\"",
        "max_lag = \"300ms\"\nmax_lag_bytes = 0",
    );
    let attache = start_attache(&cfg).await;
    let c = app_client(&attache).await;
    assert_eq!(port_of(&c, "SELECT inet_server_port()").await, r1.port());

    r1.pause_replay().expect("pause");
    primary
        .psql("app", "INSERT INTO t VALUES (1)")
        .expect("write");
    // Past max_lag (and a probe or two later), reads fall back to the primary.
    let moved = eventually(Duration::from_secs(10), || async {
        port_of(&c, "SELECT inet_server_port()").await == primary.port()
    })
    .await;
    assert!(moved, "reads never left the lagging replica");
    let status = attache.pg_cluster_status("app").expect("status");
    assert!(
        status[1].lag >= Duration::from_millis(300),
        "{:?}",
        status[1]
    );

    r1.resume_replay().expect("resume");
    let back = eventually(Duration::from_secs(10), || async {
        port_of(&c, "SELECT inet_server_port()").await == r1.port()
    })
    .await;
    assert!(back, "reads never returned to the caught-up replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_keeps_the_writer_on_the_primary_until_replayed() {
    let primary = app_primary("CREATE TABLE t (id int); GRANT ALL ON t TO app;");
    let r1 = primary.start_replica("r1").expect("replica");
    // No lag limit: only read-your-writes can move reads off the replica.
    let cfg = topology_config(&primary, &[&r1], "", "max_lag = 0\nmax_lag_bytes = 0");
    let attache = start_attache(&cfg).await;
    let writer = app_client(&attache).await;
    let other = app_client(&attache).await;
    assert_eq!(
        port_of(&writer, "SELECT inet_server_port()").await,
        r1.port()
    );

    r1.pause_replay().expect("pause");
    writer
        .simple_query("INSERT INTO t VALUES (42)")
        .await
        .expect("write");
    // The writer sees its row: its reads go to the primary.
    let rows = writer
        .simple_query("SELECT inet_server_port(), count(*) FROM t")
        .await
        .expect("read");
    let row = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => {
            Some((r.get(0).map(str::to_owned), r.get(1).map(str::to_owned)))
        }
        _ => None,
    });
    assert_eq!(
        row,
        Some((Some(primary.port().to_string()), Some("1".into())))
    );
    // Another client still reads the (stale) replica.
    assert_eq!(
        port_of(&other, "SELECT inet_server_port()").await,
        r1.port()
    );

    r1.resume_replay().expect("resume");
    let back = eventually(Duration::from_secs(10), || async {
        port_of(&writer, "SELECT inet_server_port()").await == r1.port()
    })
    .await;
    assert!(back, "the writer's reads never returned to the replica");
    let rows = writer
        .simple_query("SELECT count(*) FROM t")
        .await
        .expect("read");
    let count = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(
        count.as_deref(),
        Some("1"),
        "the replica has replayed the write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_killed_under_read_load_gives_no_client_errors() {
    let (p, r1, mut r2) = cluster();
    let cfg = topology_config(&p, &[&r1, &r2], "consistency = \"eventual\"", "");
    let attache = start_attache(&cfg).await;
    let addr = attache.postgres_addr.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..8 {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let c = connect(addr, "app", "app", Some("app-secret")).await;
            let (mut ok, mut errors) = (0u32, Vec::new());
            // Half the clients use the extended protocol (a prepared
            // statement, then Bind/Execute/Sync per query).
            // Each read takes 20 ms, so some are in flight on the replica
            // when it is killed: those are retried on the other one.
            let sql = "SELECT inet_server_port(), pg_sleep(0.02)";
            let stmt = c.prepare(sql).await.expect("prepare");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = if n % 2 == 0 {
                    c.simple_query(sql).await.map(|_| ())
                } else {
                    c.query(&stmt, &[]).await.map(|_| ())
                };
                match r {
                    Ok(()) => ok += 1,
                    Err(e) => errors.push(format!("{e} {:?}", sqlstate(&e))),
                }
            }
            (ok, errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    r2.kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        let (ok, errors) = t.await.expect("task");
        assert!(errors.is_empty(), "client errors: {errors:?}");
        total += ok;
    }
    assert!(total > 50, "too little work done: {total}");
    // Reads continue on the surviving replica.
    let c = connect(addr, "app", "app", Some("app-secret")).await;
    assert_eq!(
        ports(&c, "SELECT inet_server_port()", 5)
            .await
            .get(&r1.port()),
        Some(&5)
    );
    // Back after crash recovery and a passing probe: used again.
    r2.start_again().expect("replica restarts");
    let back = eventually(Duration::from_secs(15), || async {
        ports(&c, "SELECT inet_server_port()", 4)
            .await
            .contains_key(&r2.port())
    })
    .await;
    assert!(
        back,
        "the restarted replica never got reads again: {:?}",
        attache.pg_cluster_status("app")
    );
}

/// With `health.user` set, probes run from startup: `auto` roles are found
/// before any client connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_probe_login_finds_auto_roles_before_any_client() {
    let primary = app_primary("");
    let r1 = primary.start_replica("r1").expect("replica");
    let cfg = format!(
        "[postgres]\nlisten = \"127.0.0.1:0\"\n[postgres.databases.app]\n\
         nodes = [{{ addr = \"{}\", role = \"auto\" }}, {{ addr = \"{}\", role = \"auto\" }}]\n\
         [postgres.databases.app.health]\ninterval = \"100ms\"\nuser = \"app\"\npassword = \"app-secret\"\n",
        r1.addr(),
        primary.addr()
    );
    let attache = start_attache(&cfg).await;
    let found = eventually(Duration::from_secs(10), || async {
        let s = attache.pg_cluster_status("app").expect("cluster");
        s[0].role == attache::core::pg::cluster::Role::Replica
            && s[1].role == attache::core::pg::cluster::Role::Primary
    })
    .await;
    assert!(found, "{:?}", attache.pg_cluster_status("app"));
    // And the first client's writes go to the node found to be primary.
    let c = app_client(&attache).await;
    assert_eq!(
        port_of(
            &c,
            "SELECT inet_server_port() FROM (SELECT txid_current()) x"
        )
        .await,
        primary.port()
    );
    attache.shutdown().await;
}
