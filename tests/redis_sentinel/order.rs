//! A client that pipelines without waiting for replies keeps its writes in
//! order through a failover: commands the old primary refused (READONLY,
//! or a refused connection) are sent again, and nothing the client sent
//! after them may overtake them on the new primary. And its acknowledged
//! writes survive: none goes to the old primary while the sentinels
//! promote the replica.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::group::{cli, start_attache, start_group};
use super::resp::{encode, parse, Client, Resp, CALL_TIMEOUT};

/// Most commands a client has sent and not yet had answered.
const IN_FLIGHT: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_writes_keep_their_order_and_survive_a_failover() {
    let g = start_group(true);
    let (attache, addr) = start_attache(&g.toml("failover_timeout = \"15s\"")).await;
    let tcp = TcpStream::connect(addr).await.expect("connect to attache");
    tcp.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let credit = Arc::new(Semaphore::new(IN_FLIGHT));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The writer sends RPUSH seq 0, 1, 2, … as fast as replies free room;
    // every tenth inside MULTI/EXEC (a transaction's private connection
    // must wait out the failover too). Returns the values and commands.
    let writer = {
        let (credit, stop) = (credit.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut next, mut commands) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = next.to_string();
                let mut out = encode(&["RPUSH", "seq", &n]);
                let mut count = 1;
                if next % 10 == 9 {
                    out = [encode(&["MULTI"]), out, encode(&["EXEC"])].concat();
                    count = 3;
                }
                let permit = credit.acquire_many(count).await.expect("semaphore");
                permit.forget();
                wr.write_all(&out).await.expect("write to attache");
                next += 1;
                commands += u64::from(count);
            }
            (next, commands)
        })
    };
    // The reader takes replies in order; each must be the list's length.
    let reader = {
        let credit = credit.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let mut replies: Vec<Resp> = Vec::new();
            loop {
                while let Some((r, used)) = parse(&buf) {
                    let _ = buf.split_to(used);
                    replies.push(r);
                    credit.add_permits(1);
                }
                match tokio::time::timeout(CALL_TIMEOUT, rd.read_buf(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return replies,
                }
            }
        })
    };

    // A second client runs only transactions, one at a time: with nothing
    // else of its own in flight, only the fence keeps its MULTI/EXEC from
    // the old primary.
    let txns = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let (mut acked, mut aborted) = (0u64, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = acked.to_string();
                let cmds = [
                    vec!["MULTI".to_string()],
                    vec!["RPUSH".into(), "txseq".into(), n],
                    vec!["EXEC".to_string()],
                ];
                let replies = c.pipeline(&cmds).await;
                // One transaction may straddle the switch: its MULTI went
                // to the old primary, its EXEC came after. It is aborted
                // (nothing ran), never run on the old primary.
                if matches!(&replies[2], Resp::Err(e) if e.contains("primary changed")) {
                    aborted += 1;
                    assert!(aborted <= 1, "transaction {acked}: {replies:?}");
                    continue;
                }
                assert!(
                    matches!(&replies[2], Resp::Array(a) if matches!(a[..], [Resp::Int(_)])),
                    "transaction {acked}: {replies:?}"
                );
                acked += 1;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let t_fail = Instant::now();
    let new = g.failover().await;
    let failover = t_fail.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, commands) = writer.await.unwrap();
    let transactions = txns.await.unwrap();
    // Every reply is in: then the connection goes quiet and the reader
    // gives up after CALL_TIMEOUT; end it sooner by closing Attaché.
    let deadline = Instant::now() + CALL_TIMEOUT;
    while credit.available_permits() < IN_FLIGHT && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    attache.shutdown().await;
    let replies = reader.await.unwrap();
    assert_eq!(replies.len() as u64, commands, "a reply for every command");
    let errors: Vec<_> = replies
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Resp::Err(_)))
        .take(5)
        .collect();
    assert!(errors.is_empty(), "error replies: {errors:?}");

    // Read back from the new primary: in the order sent, each value once,
    // the last write there. Attaché holds writes from the replica's
    // promotion until the switch (the write fence), so the old primary
    // acknowledges nothing the new one never sees; only a write that left
    // just before the promotion and had not reached the replica yet
    // (Redis replicates asynchronously) can be missing, at most what the
    // client had in flight. Without the fence, about half a second of
    // writes was missing here.
    let new_primary = g.server_at(new);
    let list = cli(new_primary, &["LRANGE", "seq", "0", "-1"]);
    let values: Vec<u64> = list
        .lines()
        .map(|l| l.trim().parse().expect("a number"))
        .collect();
    println!(
        "{sent} RPUSHes streamed and acknowledged, failover took {} ms, {} on the new primary",
        failover.as_millis(),
        values.len()
    );
    let out_of_order: Vec<_> = values.windows(2).filter(|w| w[1] <= w[0]).take(5).collect();
    assert!(
        out_of_order.is_empty(),
        "{} values on the new primary, out of order at: {out_of_order:?}",
        values.len()
    );
    assert_eq!(
        values.last().copied(),
        Some(sent - 1),
        "the last write is there"
    );
    let lost = sent - values.len() as u64;
    assert!(
        lost <= IN_FLIGHT as u64,
        "{lost} of {sent} acknowledged writes are not on the new primary"
    );
    let txseq = cli(new_primary, &["LLEN", "txseq"]);
    let kept: u64 = txseq.trim().parse().expect("a length");
    println!("{transactions} transactions acknowledged, {kept} on the new primary");
    assert!(
        kept + 1 >= transactions,
        "{kept} of {transactions} acknowledged transactions are on the new primary"
    );
}

/// A transaction whose connection went to the old primary is not run there
/// after the switch: the old primary would acknowledge its EXEC and lose
/// it when it becomes the new primary's replica. EXEC answers EXECABORT
/// and nothing of it lands anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_across_a_failover_is_aborted() {
    let g = start_group(true);
    let (attache, addr) = start_attache(&g.toml("failover_timeout = \"15s\"")).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::Simple("OK".into()));
    assert_eq!(
        c.cmd(&["SET", "txn:across", "1"]).await,
        Resp::Simple("QUEUED".into())
    );
    let old = g.primary.port();
    let new = g.failover().await;
    let new_primary = g.server_at(new);
    followed(addr, new_primary).await;
    let exec = c.cmd(&["EXEC"]).await;
    match &exec {
        Resp::Err(e) => assert!(e.contains("primary changed"), "{e}"),
        other => panic!("EXEC after the switch: {other:?}"),
    }
    assert_ne!(old, new.port());
    assert_eq!(cli(new_primary, &["EXISTS", "txn:across"]), "0");
    // The client goes on, on the new primary.
    assert_eq!(
        c.cmd(&["SET", "txn:after", "2"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(cli(new_primary, &["GET", "txn:after"]), "2");
    attache.shutdown().await;
}

/// A blocking pop waiting on the old primary when it is demoted gets
/// `-UNBLOCKED` from Redis: it popped nothing, so Attaché sends it again to
/// the new primary, and the client gets the element pushed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_pop_waits_on_through_a_failover() {
    let g = start_group(true);
    let (attache, addr) = start_attache(&g.toml("failover_timeout = \"15s\"")).await;
    let pop = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        c.call(&["BLPOP", "bq:list", "90"]).await
    });
    // The pop is waiting on the old primary before the failover starts.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cli(&g.primary, &["CLIENT", "LIST", "TYPE", "normal"])
        .lines()
        .all(|l| !l.contains("cmd=blpop"))
    {
        assert!(
            Instant::now() < deadline,
            "the BLPOP never reached the primary"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new = g.failover().await;
    let new_primary = g.server_at(new);
    // Once Attaché follows, a push through it lands on the new primary.
    let mut c = followed(addr, new_primary).await;
    // Give the sentinels time to demote the old primary (which cuts off
    // the pop there) before the element exists anywhere. They do it when
    // they next ask it for INFO, every 10 s, later on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(40);
    while super::group::role(&g.primary) != "slave" {
        assert!(
            Instant::now() < deadline,
            "the old primary was never demoted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.cmd(&["RPUSH", "bq:list", "v1"]).await, Resp::Int(1));
    let popped = tokio::time::timeout(Duration::from_secs(30), pop)
        .await
        .expect("the pop never returned")
        .unwrap();
    assert_eq!(
        popped,
        Ok(Resp::Array(vec![Resp::bulk("bq:list"), Resp::bulk("v1")])),
        "the pop gets the element pushed to the new primary"
    );
    attache.shutdown().await;
}

/// Waits (up to 10 s) until Attaché has followed a switch to `primary`: a
/// write through it lands there. Returns the client that wrote it.
async fn followed(addr: std::net::SocketAddr, primary: &attache_harness::RedisServer) -> Client {
    let mut probe = Client::connect(addr).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = probe.call(&["SET", "probe:followed", "x"]).await;
        if cli(primary, &["GET", "probe:followed"]) == "x" {
            return probe;
        }
        assert!(
            Instant::now() < deadline,
            "Attaché never followed the switch"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
