//! Reads in `sentinel` mode: replicas the sentinels list serve reads,
//! fall back to the primary without client errors, and are re-learned
//! after a failover.

use std::time::Duration;

use attache_harness::RedisServer;
use tokio::time::Instant;

use super::group::{blocking, cli, role, start_attache, start_group};
use super::resp::{Client, Resp};

/// Polls `GET key` through Attaché until it answers `want` (the sentinels
/// list replicas, and Attaché asks them, about once a second).
async fn until_get(c: &mut Client, key: &str, want: &Resp, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let got = c.cmd(&["GET", key]).await;
        if &got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {key} through Attaché still answers {got:?}, not {want:?}, after {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Makes a replica writable and writes a key on it alone: a read that
/// returns it can only have been served by that replica.
fn mark_replica(server: &RedisServer, key: &str, value: &str) {
    cli(server, &["CONFIG", "SET", "replica-read-only", "no"]);
    assert_eq!(cli(server, &["SET", key, value]), "OK");
}

/// `read_from = "replica"`: the replica the sentinels list serves every
/// read (a key that exists only on it is seen), writes land on the
/// primary, and once the replica is killed reads go to the primary
/// without a single client error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_sentinels_replica_and_fall_back_to_the_primary() {
    let mut g = start_group(true);
    let (attache, addr) =
        start_attache(&g.toml("read_from = \"replica\"\nconnect_timeout = \"1s\"")).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.cmd(&["SET", "rr:k", "written"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(cli(&g.primary, &["GET", "rr:k"]), "written");

    mark_replica(g.replica(), "rr:only", "on-the-replica");
    let mark = Resp::Bulk("on-the-replica".into());
    until_get(&mut c, "rr:only", &mark, Duration::from_secs(10)).await;
    // Every read now goes there: one replica, read_from = "replica".
    for _ in 0..20 {
        assert_eq!(c.cmd(&["GET", "rr:only"]).await, mark);
        assert_eq!(c.cmd(&["EXISTS", "rr:only"]).await, Resp::Int(1));
    }
    assert_eq!(cli(&g.primary, &["EXISTS", "rr:only"]), "0");
    // Writes still go to the primary (the replica could take them now).
    assert_eq!(c.cmd(&["INCR", "rr:n"]).await, Resp::Int(1));
    assert_eq!(cli(&g.primary, &["GET", "rr:n"]), "1");
    assert_eq!(
        c.cmd(&["SET", "rr:w", "to-primary"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(cli(&g.primary, &["GET", "rr:w"]), "to-primary");

    blocking(|| g.replica.as_mut().expect("a replica").kill9());
    // Before and after the sentinels flag it down: reads never fail, and
    // come from the primary.
    let until = Instant::now() + Duration::from_secs(4);
    let mut reads = 0;
    while Instant::now() < until {
        assert_eq!(c.cmd(&["GET", "rr:only"]).await, Resp::Nil);
        assert_eq!(
            c.cmd(&["GET", "rr:w"]).await,
            Resp::Bulk("to-primary".into())
        );
        reads += 2;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("replica killed: {reads} reads answered by the primary, none failed");
    assert_eq!(c.cmd(&["INCR", "rr:n"]).await, Resp::Int(2));
    attache.shutdown().await;
}

/// After `+switch-master` the replica list is asked again: the promoted
/// replica is the primary now, and the demoted primary, once it follows
/// the new one, serves the reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_reads_follow_the_new_replica() {
    let g = start_group(true);
    let (attache, addr) = start_attache(&g.toml("read_from = \"replica\"")).await;
    let mut c = Client::connect(addr).await;
    mark_replica(g.replica(), "fo:only", "old-replica");
    until_get(
        &mut c,
        "fo:only",
        &Resp::Bulk("old-replica".into()),
        Duration::from_secs(10),
    )
    .await;

    let new = g.failover().await;
    assert_eq!(new.port(), g.replica().port(), "the replica was promoted");
    // Writes follow the switch (retried through it if need be).
    assert_eq!(
        c.cmd(&["SET", "fo:w", "after"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(cli(g.replica(), &["GET", "fo:w"]), "after");
    // The old primary rejoins as a replica; once its link is up the
    // sentinels list it and reads go there. The sentinels learn the link
    // status from INFO, which they send a replica every 10 s, hence the
    // generous wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    while role(&g.primary) != "slave" {
        assert!(
            Instant::now() < deadline,
            "the old primary never became a replica"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    mark_replica(&g.primary, "fo:only2", "old-primary");
    let t = Instant::now();
    until_get(
        &mut c,
        "fo:only2",
        &Resp::Bulk("old-primary".into()),
        Duration::from_secs(30),
    )
    .await;
    println!(
        "after the failover, reads reached the demoted primary {} ms after it was marked",
        t.elapsed().as_millis()
    );
    assert_eq!(cli(g.replica(), &["EXISTS", "fo:only2"]), "0");
    attache.shutdown().await;
}
