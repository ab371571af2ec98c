//! Redirects Attaché must not follow, and those it must: a client can make
//! a node answer any error text (`EVAL "return redis.error_reply('MOVED …')"`),
//! so a MOVED or ASK to an address outside the cluster goes back to the
//! client as the error it is, and Attaché never connects there (it would
//! send the upstream password). A node added to the cluster, listed by no
//! slot map before it owns a slot, is still followed.

use std::sync::atomic::AtomicUsize;

use tokio::net::TcpListener;

use super::*;

/// A listener the test owns, standing for an attacker's server: counts
/// the connections it is offered.
async fn trap() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind trap");
    let addr = listener.local_addr().expect("trap address");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (addr, hits, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_outside_the_cluster_is_not_followed() {
    let (_cluster, _attache, addr) = setup().await;
    let (trap_addr, hits, task) = trap().await;
    let mut client = Client::connect(addr).await;
    for kind in ["MOVED", "ASK"] {
        let text = format!("{kind} 1 {trap_addr}");
        let script = format!("return redis.error_reply('{text}')");
        // A burst, as a client hammering Attaché would send.
        let evals = vec![c(&["EVAL", &script, "0"]); 20];
        for got in client.pipeline(&evals).await {
            assert_eq!(got.err_text(), Some(text.as_str()), "{kind} handed back");
        }
    }
    // Also keyed, so it comes from the slot owner Attaché trusts most.
    let text = format!("MOVED 1 {trap_addr}");
    let script = format!("return redis.error_reply('{text}')");
    let got = client.cmd(&["EVAL", &script, "1", "somekey"]).await;
    assert_eq!(got.err_text(), Some(text.as_str()));
    sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "Attaché connected to the trap"
    );
    // The client and its connections are fine.
    assert_eq!(client.cmd(&["SET", "after-trap", "1"]).await, Resp::ok());
    assert_eq!(client.cmd(&["GET", "after-trap"]).await, Resp::bulk("1"));
    task.abort();
}

/// A scale-out: a primary added with no slots, then a slot moved to it
/// under load. Before it owns the slot only `CLUSTER NODES` lists it (the
/// ASKs during the move point there), after it the slot map does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_moved_to_a_new_primary_under_load_is_invisible() {
    let mut cluster = start_cluster(RedisBuilder::new()).await;
    let (attache, addr) = start_attache(&cluster.addrs(), "").await;
    let (cluster, added) = tokio::task::spawn_blocking(move || {
        let added = cluster.add_primary(RedisBuilder::new());
        (cluster, added)
    })
    .await
    .expect("add primary task");
    let added = added.expect("a new primary joins");
    let s = Scenario::with(cluster, attache, addr).await;
    let from = owner_index(&s.cluster, s.slot);
    s.migrate_under_load(1, from, added).await;
}
