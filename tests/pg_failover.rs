//! The failover drill: 50 clients run a mixed workload through Attaché in
//! front of a primary with a synchronous standby; the primary is killed
//! (`kill -9` of every process, like a crashed machine) and the standby is
//! promoted. Clients must ride through: errors only for work in flight at
//! the kill, every acknowledged write present exactly once afterwards.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const CLIENTS: usize = 50;

#[derive(Debug)]
struct Op {
    write: bool,
    start: Instant,
    end: Instant,
    id: i64,
    error: Option<String>,
}

async fn client_loop(addr: std::net::SocketAddr, n: usize, stop: Arc<AtomicBool>) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut c = connect(addr, "app", "app", Some("app-secret")).await;
    let mut seq = 0i64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let id = (n as i64) * 1_000_000 + seq;
        let write = seq % 3 != 0;
        let start = Instant::now();
        let r = if !write {
            c.simple_query("SELECT count(*) FROM acks")
                .await
                .map(|_| ())
        } else if seq % 2 == 0 {
            c.simple_query(&format!("INSERT INTO acks VALUES ({id}, {n})"))
                .await
                .map(|_| ())
        } else {
            c.simple_query(&format!(
                "BEGIN; INSERT INTO acks VALUES ({id}, {n}); COMMIT"
            ))
            .await
            .map(|_| ())
        };
        let end = Instant::now();
        let error = r.err().map(|e| format!("{e} [{:?}]", sqlstate(&e)));
        ops.push(Op {
            write,
            start,
            end,
            id,
            error,
        });
        if c.is_closed() {
            c = connect(addr, "app", "app", Some("app-secret")).await;
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_ride_through_a_primary_failover() {
    let mut primary = PgBuilder::new()
        .user("app", "app-secret")
        .database("app")
        .start()
        .expect("primary");
    primary
        .psql(
            "app",
            "CREATE TABLE acks (id bigint, client int); GRANT ALL ON acks TO app;",
        )
        .expect("schema");
    let standby = primary.start_replica("standby").expect("standby");
    primary
        .make_synchronous(&["standby"])
        .expect("synchronous standby");
    let cfg = format!(
        "[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = 20\n\n[postgres.databases.app]\n\
         nodes = [{{ addr = \"{}\", role = \"primary\" }}, {{ addr = \"{}\", role = \"replica\" }}]\n\
         failover_timeout = \"30s\"\n\
         [postgres.databases.app.health]\ninterval = \"200ms\"\ntimeout = \"500ms\"\n",
        primary.addr(),
        standby.addr()
    );
    let attache = start_attache(&cfg).await;
    let addr = attache.postgres_addr.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client_loop(addr, n, stop.clone())))
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Killing every process takes a few ms (far more on a loaded machine);
    // work that started before the kill completed was in flight at the
    // kill, and may fail.
    let kill_begun = Instant::now();
    primary.kill9();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let promote_issued = Instant::now();
    let standby = tokio::task::spawn_blocking(move || {
        standby.promote().expect("promote");
        standby
    })
    .await
    .expect("promote task");
    let promoted = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = Vec::new();
    for t in tasks {
        ops.extend(t.await.expect("client task"));
    }

    let failed: Vec<&Op> = ops.iter().filter(|o| o.error.is_some()).collect();
    let late: Vec<&&Op> = failed.iter().filter(|o| o.start >= killed).collect();
    assert!(
        late.is_empty(),
        "work started after the kill failed: {late:?}"
    );
    let read_errors: Vec<&&Op> = failed.iter().filter(|o| !o.write).collect();
    assert!(read_errors.is_empty(), "reads failed: {read_errors:?}");
    assert!(
        failed.len() <= CLIENTS,
        "at most one in-flight op per client may fail"
    );

    // Every acknowledged write is on the new primary exactly once.
    let acked: HashSet<i64> = ops
        .iter()
        .filter(|o| o.write && o.error.is_none())
        .map(|o| o.id)
        .collect();
    let rows = standby
        .psql("app", "SELECT id FROM acks ORDER BY id")
        .expect("rows");
    let ids: Vec<i64> = rows
        .lines()
        .map(|l| l.trim().parse().expect("id"))
        .collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicated rows");
    let missing: Vec<&i64> = acked.difference(&unique).collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");

    let first_write = ops
        .iter()
        .filter(|o| o.write && o.error.is_none() && o.end > promoted)
        .map(|o| o.end.duration_since(promote_issued))
        .min()
        .expect("writes succeeded after the promotion");
    // Writes issued once the primary was going (the clients whose work
    // failed at the kill issue theirs at once) that succeeded only after
    // the promotion began: they waited through the outage. Counted from
    // the start of the kill, not its end: on a loaded machine every
    // client may have issued its next write while kill9 was still at
    // work, and those wait just the same.
    let waited_after_kill = ops
        .iter()
        .filter(|o| {
            o.write
                && o.error.is_none()
                && (kill_begun..promote_issued).contains(&o.start)
                && o.end > promote_issued
        })
        .count();
    println!(
        "failover drill: {} ops, {} acknowledged writes, {} errors (all in flight at the kill), \
         {waited_after_kill} writes started during the outage waited and succeeded, \
         first write {} ms after the promotion was issued (pg_ctl promote took {} ms)",
        ops.len(),
        acked.len(),
        failed.len(),
        first_write.as_millis(),
        promoted.duration_since(promote_issued).as_millis()
    );
    assert!(
        waited_after_kill > 0,
        "no write was issued during the outage"
    );
    // Attaché's part is noticing the new primary, not pg_ctl's promotion
    // (seconds on a loaded machine): measured from when that returned.
    let noticed = first_write.saturating_sub(promoted.duration_since(promote_issued));
    assert!(
        noticed < Duration::from_secs(3),
        "first write {noticed:?} after the promotion completed"
    );
    let status = attache.pg_cluster_status("app").expect("status");
    assert_eq!(status[1].role, attache::core::pg::cluster::Role::Primary);
    attache.shutdown().await;
}
