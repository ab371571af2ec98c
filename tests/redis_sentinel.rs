//! End to end (Redis, `sentinel` mode): accept → parse → route → backend →
//! respond against a real primary, its replica and three real sentinels,
//! through Attaché started in-process. Failovers are real (`SENTINEL
//! FAILOVER`, or SIGKILL of the primary and an automatic failover), and
//! where data landed is always read back from the servers themselves, so
//! the tests judge Attaché's failover shielding instead of echoing it.
//!
//! Clients speak raw RESP over TCP: every reply, including each error
//! reply and how long it took, is recorded, because "no client errors"
//! and "how long did a request wait" are the points of these tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

#[path = "redis_sentinel/group.rs"]
mod group;
#[path = "redis_sentinel/resp.rs"]
mod resp;
#[path = "support/resp.rs"]
mod wire;
use group::{blocking, cli, role, start_attache, start_group, Group};
use resp::{Client, Resp};
#[path = "redis_sentinel/order.rs"]
mod order;
#[path = "redis_sentinel/reads.rs"]
mod reads;

/// After the sentinels agree on a new primary, how long Attaché may take to
/// follow before the tests insist that every request goes there.
const FOLLOW_GRACE: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------- load

/// One request of a load client and what came back.
#[derive(Debug)]
struct Sample {
    client: usize,
    cmd: &'static str,
    sent: Instant,
    took: Duration,
    reply: Result<Resp, String>,
    /// For GET: the value this client SET just before.
    expect: Option<String>,
}

impl Sample {
    /// An error reply, or no reply at all.
    fn failed(&self) -> bool {
        !matches!(&self.reply, Ok(r) if !matches!(r, Resp::Err(_)))
    }

    fn describe(&self, t0: Instant) -> String {
        format!(
            "client {} {} sent at +{} ms, took {} ms: {:?}",
            self.client,
            self.cmd,
            self.sent.duration_since(t0).as_millis(),
            self.took.as_millis(),
            self.reply
        )
    }
}

/// One client's loop of SET, GET (of what it just set) and INCR of its own
/// counter through Attaché until `stop`.
async fn load(addr: SocketAddr, client: usize, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut c = Client::connect(addr).await;
    let (key, counter) = (format!("load:{client}:value"), format!("load:{client}:n"));
    let mut samples = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let value = format!("v{i}");
        let steps: [(&'static str, Vec<&str>, Option<String>); 3] = [
            ("SET", vec!["SET", &key, &value], None),
            ("GET", vec!["GET", &key], Some(value.clone())),
            ("INCR", vec!["INCR", &counter], None),
        ];
        for (cmd, args, expect) in steps {
            let sent = Instant::now();
            let reply = c.call(&args).await;
            let closed = reply.is_err();
            samples.push(Sample {
                client,
                cmd,
                sent,
                took: sent.elapsed(),
                reply,
                expect,
            });
            if closed {
                return samples;
            }
        }
    }
    samples
}

/// Starts `n` load clients; [`finish`] stops them and collects samples.
fn spawn_load(
    addr: SocketAddr,
    n: usize,
) -> (Arc<AtomicBool>, Vec<tokio::task::JoinHandle<Vec<Sample>>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = (0..n)
        .map(|c| tokio::spawn(load(addr, c, stop.clone())))
        .collect();
    (stop, tasks)
}

async fn finish(
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
) -> Vec<Vec<Sample>> {
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.expect("load client panicked"));
    }
    all
}

/// The slowest request sent in `[from, to)`.
fn slowest(all: &[Vec<Sample>], from: Instant, to: Instant) -> Option<&Sample> {
    all.iter()
        .flatten()
        .filter(|s| s.sent >= from && s.sent < to)
        .max_by_key(|s| s.took)
}

/// Checks one client's requests sent after `after`: every GET returns the
/// value it just set and INCR replies strictly increase. Returns the last
/// INCR value.
fn check_after_switch(samples: &[Sample], after: Instant, t0: Instant) -> i64 {
    let mut last: Option<i64> = None;
    let mut incrs = 0;
    for s in samples.iter().filter(|s| s.sent >= after) {
        match (s.cmd, &s.reply) {
            ("GET", Ok(Resp::Bulk(v))) => assert_eq!(
                Some(v),
                s.expect.as_ref(),
                "after the switch a GET must read the client's own SET: {}",
                s.describe(t0)
            ),
            ("INCR", Ok(Resp::Int(n))) => {
                if let Some(prev) = last {
                    assert!(
                        *n > prev,
                        "after the switch the counter went from {prev} back to {n}: {}",
                        s.describe(t0)
                    );
                }
                last = Some(*n);
                incrs += 1;
            }
            ("SET", Ok(Resp::Simple(ok))) if ok == "OK" => {}
            _ => panic!("unexpected reply after the switch: {}", s.describe(t0)),
        }
    }
    assert!(incrs > 0, "client made no INCR after the switch");
    last.expect("an INCR after the switch")
}

// ---------------------------------------------------------------- tests

/// Attaché asks the sentinels for the primary: the first request is
/// answered (it waits for discovery) and the data lands on the primary,
/// not the replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_the_primary_through_sentinels() {
    let g = start_group(true);
    assert_eq!(g.master_addr().port(), g.primary.port());
    // The first sentinel listed does not answer, so Attaché hears of the
    // primary only after trying the next one (about 200 ms).
    let toml = g
        .toml("")
        .replacen("nodes = [", "nodes = [\"127.0.0.1:1\", ", 1);
    let (attache, addr) = start_attache(&toml).await;

    // The very first command, a transaction, sent before Attaché has heard
    // from the sentinels: it waits for the primary, like any other.
    let mut c = Client::connect(addr).await;
    let first = c
        .pipeline(&[
            vec!["MULTI".into()],
            vec!["SET".into(), "disc:t".into(), "1".into()],
            vec!["EXEC".into()],
        ])
        .await;
    assert_eq!(
        first[2],
        Resp::Array(vec![Resp::Simple("OK".into())]),
        "{first:?}"
    );
    assert_eq!(cli(&g.primary, &["GET", "disc:t"]), "1");
    assert_eq!(
        c.cmd(&["SET", "disc:k", "hello"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["GET", "disc:k"]).await, Resp::Bulk("hello".into()));
    assert_eq!(cli(&g.primary, &["GET", "disc:k"]), "hello");
    // Writes went to the primary: the replica only has the key by replication,
    // and its own write attempt is refused.
    let replica_write = blocking(|| g.replica().cli(&["SET", "disc:other", "x"]));
    assert!(
        replica_write.is_err(),
        "the replica must be read-only, so Attaché's writes could only land on the primary"
    );
    assert_eq!(c.cmd(&["INCR", "disc:n"]).await, Resp::Int(1));
    assert_eq!(cli(&g.primary, &["GET", "disc:n"]), "1");
    attache.shutdown().await;
}

/// Pipelines keep their order: each command is queued on the primary's
/// connection as the client sent it (a task per command sending it would
/// let a later GET overtake earlier INCRs on a multi-threaded runtime),
/// while clients with nothing unanswered move between the connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_keep_their_order_across_shared_connections() {
    let g = start_group(false);
    let (attache, addr) = start_attache(&g.toml("connections_per_node = 4")).await;
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let key = format!("order:{n}");
                for round in 0..10i64 {
                    let base = 51 * round;
                    assert_eq!(c.cmd(&["INCR", &key]).await, Resp::Int(base + 1));
                    let incr = vec!["INCR".to_string(), key.clone()];
                    let mut cmds = vec![incr; 50];
                    cmds.push(vec!["GET".to_string(), key.clone()]);
                    let got = c.pipeline(&cmds).await;
                    let want: Vec<Resp> = (2..=51)
                        .map(|i| Resp::Int(base + i))
                        .chain([Resp::Bulk((base + 51).to_string())])
                        .collect();
                    assert_eq!(got, want, "client {n}, round {round}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    attache.shutdown().await;
}

/// `SENTINEL FAILOVER` under load from 10 clients: no client sees an error
/// reply at any point, and afterwards every request goes to the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_failover_under_load_is_invisible_to_clients() {
    const CLIENTS: usize = 10;
    let g = start_group(true);
    let (attache, addr) = start_attache(&g.toml("failover_timeout = \"15s\"")).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.cmd(&["SET", "warm", "1"]).await,
        Resp::Simple("OK".into())
    );

    let t0 = Instant::now();
    let (stop, tasks) = spawn_load(addr, CLIENTS);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t_fail = Instant::now();
    let new = g.failover().await;
    let t_switch = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = finish(stop, tasks).await;

    assert_eq!(new.port(), g.replica().port(), "the replica was promoted");
    let total: usize = all.iter().map(Vec::len).sum();
    let errors: Vec<String> = all
        .iter()
        .flatten()
        .filter(|s| s.failed())
        .map(|s| s.describe(t0))
        .collect();
    let worst = slowest(&all, t_fail, t_switch + FOLLOW_GRACE).expect("requests during failover");
    println!(
        "forced failover: {total} requests, failover took {} ms, slowest request during it: {}",
        t_switch.duration_since(t_fail).as_millis(),
        worst.describe(t0)
    );
    assert!(
        errors.is_empty(),
        "{} of {total} requests failed; first ones:\n{}",
        errors.len(),
        errors[..errors.len().min(10)].join("\n")
    );

    // After the switch every write lands on the new primary.
    let new_primary = g.replica();
    assert_eq!(role(new_primary), "master");
    println!(
        "forced failover: the old primary's role is now {}",
        role(&g.primary)
    );
    for samples in &all {
        let last = check_after_switch(samples, t_switch + FOLLOW_GRACE, t0);
        let counter = format!("load:{}:n", samples[0].client);
        assert_eq!(
            cli(new_primary, &["GET", &counter]),
            last.to_string(),
            "the last INCR acknowledged after the switch is on the new primary"
        );
    }
    assert_eq!(
        c.cmd(&["SET", "after", "yes"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(cli(new_primary, &["GET", "after"]), "yes");
    attache.shutdown().await;
}

/// The primary is SIGKILLed and the sentinels fail over on their own:
/// requests issued during the outage wait and are answered by the new
/// primary; only requests in flight at the kill may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_primary_requests_wait_for_the_automatic_failover() {
    const CLIENTS: usize = 4;
    const FAILOVER_TIMEOUT: Duration = Duration::from_secs(15);
    let mut g = start_group(true);
    let old = g.master_addr();
    let toml = g.toml(&format!(
        "failover_timeout = \"{}s\"",
        FAILOVER_TIMEOUT.as_secs()
    ));
    let (attache, addr) = start_attache(&toml).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.cmd(&["SET", "warm", "1"]).await,
        Resp::Simple("OK".into())
    );

    let t0 = Instant::now();
    let (stop, tasks) = spawn_load(addr, CLIENTS);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let t_kill = Instant::now();
    blocking(|| g.primary.kill9());
    let t_killed = Instant::now();
    let promoted = wait_new_primary(&g, old, Duration::from_secs(20)).await;
    let t_promoted = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = finish(stop, tasks).await;

    assert_eq!(
        promoted.port(),
        g.replica().port(),
        "the replica was promoted"
    );
    let failed: Vec<&Sample> = all.iter().flatten().filter(|s| s.failed()).collect();
    let worst = slowest(&all, t_kill, t_promoted).expect("requests during the outage");
    println!(
        "kill -9: sentinels promoted the replica {} ms after the kill; {} request(s) in \
         flight at the kill failed; slowest request during the outage: {}",
        t_promoted.duration_since(t_kill).as_millis(),
        failed.len(),
        worst.describe(t0)
    );
    let listing = || {
        failed
            .iter()
            .map(|s| s.describe(t0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for s in &failed {
        let lost = matches!(&s.reply, Ok(Resp::Err(e)) if e.contains("upstream connection lost"));
        assert!(
            lost && s.sent < t_killed + FOLLOW_GRACE,
            "only requests in flight at the kill may fail (with `upstream connection lost`); \
             failures:\n{}",
            listing()
        );
    }
    assert!(
        failed.len() <= CLIENTS,
        "more failures than clients:\n{}",
        listing()
    );
    for (client, samples) in all.iter().enumerate() {
        assert!(
            samples.iter().filter(|s| s.failed()).count() <= 1,
            "client {client} failed more than once:\n{}",
            listing()
        );
        // A request rode through when it succeeded and was outstanding at
        // some point between the kill and the promotion (it may have been
        // sent a moment before the kill and waited).
        let rode_through = samples
            .iter()
            .any(|s| !s.failed() && s.sent < t_promoted && s.sent + s.took > t_killed);
        assert!(
            rode_through,
            "client {client} had no request that waited out the outage and succeeded"
        );
    }
    assert!(
        worst.took < FAILOVER_TIMEOUT,
        "a request waited longer than failover_timeout: {}",
        worst.describe(t0)
    );

    let new_primary = g.replica();
    assert_eq!(role(new_primary), "master");
    assert_eq!(
        c.cmd(&["SET", "after", "yes"]).await,
        Resp::Simple("OK".into())
    );
    assert_eq!(cli(new_primary, &["GET", "after"]), "yes");
    attache.shutdown().await;
}

/// Polls the first sentinel until it names a primary other than `old`.
async fn wait_new_primary(g: &Group, old: SocketAddr, wait: Duration) -> SocketAddr {
    let deadline = Instant::now() + wait;
    loop {
        let now = blocking(|| g.sentinels.master_addr());
        if let Ok(addr) = now {
            if addr != old {
                return addr;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new primary within {wait:?} (last: {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With the primary dead and no replica to promote, requests give up after
/// `failover_timeout` with an error that says what is wrong, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_replica_to_promote_fails_after_failover_timeout() {
    let mut g = start_group(false);
    let (attache, addr) = start_attache(&g.toml("failover_timeout = \"1s\"")).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.cmd(&["SET", "k", "1"]).await, Resp::Simple("OK".into()));

    blocking(|| g.primary.kill9());
    // Let Attaché's connection notice the close, so no request is in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for args in [&["GET", "k"][..], &["SET", "k", "2"], &["INCR", "n"]] {
        let sent = Instant::now();
        let reply = c.cmd(args).await;
        let took = sent.elapsed();
        println!(
            "no replica: {args:?} answered after {} ms: {reply:?}",
            took.as_millis()
        );
        let Resp::Err(text) = &reply else {
            panic!("{args:?}: expected an error reply, got {reply:?}");
        };
        assert!(
            text.starts_with("ERR attache") && text.contains("unavailable"),
            "{args:?}: the error should say the upstream is unavailable: {text}"
        );
        assert!(
            took >= Duration::from_millis(900),
            "{args:?}: failed after {took:?}, without waiting failover_timeout for a new primary"
        );
        // failover_timeout plus one second for the last attempt and scheduling.
        assert!(
            took <= Duration::from_millis(2200),
            "{args:?}: took {took:?}, far past failover_timeout = 1s"
        );
    }
    attache.shutdown().await;
}

/// Sentinel mode needs the monitored primary's name; the error says which
/// setting is missing.
#[test]
fn sentinel_mode_requires_master_name() {
    let base = "[redis]\nmode = \"sentinel\"\nnodes = [\"127.0.0.1:26379\"]\n";
    for extra in ["", "master_name = \"\"\n"] {
        let err = attache::config::parse(&format!("{base}{extra}"))
            .expect_err("sentinel mode without master_name must be rejected");
        let problems: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
        assert!(
            problems.iter().any(|p| p.starts_with("redis.master_name")),
            "the error should name redis.master_name: {err}"
        );
        assert!(err.to_string().contains("redis.master_name"));
    }
    let cfg = attache::config::parse(&format!("{base}master_name = \"mymaster\"\n"))
        .expect("with master_name the config is valid");
    let redis = cfg.redis.expect("a [redis] section");
    assert_eq!(redis.master_name.as_deref(), Some("mymaster"));
}
