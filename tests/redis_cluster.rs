//! End to end (Redis, `cluster` mode): accept → parse → route → backend →
//! respond against a real 3-primary Redis Cluster, through Attaché started
//! in-process. Clients speak raw RESP2 over TCP so every byte they get is
//! visible: the point of cluster mode is that MOVED, ASK, TRYAGAIN and
//! CLUSTERDOWN stay inside Attaché, and that multi-key commands are split,
//! merged or refused exactly as the slot rules say.
//!
//! Where a key lives is checked on the nodes themselves: the owner answers
//! a direct `GET`, every other node answers `MOVED <slot> <owner>`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use attache::app::Attache;
use attache_harness::redis::key_slot;
use attache_harness::{RedisBuilder, RedisCluster, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

// ---------------------------------------------------------------- helpers

/// Longest a test waits for any one reply before calling it a hang.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Resp>),
}

impl Resp {
    fn ok() -> Resp {
        Resp::Simple("OK".into())
    }
    fn bulk(s: &str) -> Resp {
        Resp::Bulk(s.as_bytes().to_vec())
    }
    fn err_text(&self) -> Option<&str> {
        match self {
            Resp::Err(t) => Some(t),
            _ => None,
        }
    }
    fn text(&self) -> String {
        match self {
            Resp::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Resp::Simple(s) => s.clone(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }
    fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(items) => items,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }
}

/// Parses one reply from the front of `b`: the reply and its length, or
/// `None` while incomplete.
fn parse(b: &[u8]) -> Option<(Resp, usize)> {
    let end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&b[1..end]).into_owned();
    let pos = end + 2;
    let num = || line.parse::<i64>().expect("RESP length or integer");
    match b[0] {
        b'+' => Some((Resp::Simple(line), pos)),
        b'-' => Some((Resp::Err(line), pos)),
        b':' => Some((Resp::Int(num()), pos)),
        b'$' if num() < 0 => Some((Resp::Nil, pos)),
        b'$' => {
            let n = num() as usize;
            let data = b.get(pos..pos + n)?.to_vec();
            b.get(pos + n + 1)?;
            Some((Resp::Bulk(data), pos + n + 2))
        }
        b'*' if num() < 0 => Some((Resp::Nil, pos)),
        b'*' => {
            let mut at = pos;
            let mut items = Vec::new();
            for _ in 0..num() {
                let (item, used) = parse(&b[at..])?;
                at += used;
                items.push(item);
            }
            Some((Resp::Array(items), at))
        }
        other => panic!("unexpected RESP type byte {:?}", other as char),
    }
}

/// A command as owned strings, for pipelines.
fn c(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// A raw RESP2 connection (to Attaché or straight to a node).
struct Client {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        Client {
            tcp,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, cmds: &[Vec<String>]) {
        let mut out = Vec::new();
        for cmd in cmds {
            out.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
            for arg in cmd {
                out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
            }
        }
        self.tcp.write_all(&out).await.expect("write");
    }

    /// The next reply, or why there is none within `limit`.
    async fn try_read(&mut self, limit: Duration) -> Result<Resp, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((resp, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Ok(resp);
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Err(_) => return Err(format!("no reply within {limit:?}")),
                Ok(Err(e)) => return Err(format!("read failed: {e}")),
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn try_cmd(&mut self, args: &[&str]) -> Result<Resp, String> {
        self.send(&[c(args)]).await;
        self.try_read(READ_TIMEOUT).await
    }

    async fn cmd(&mut self, args: &[&str]) -> Resp {
        let reply = self.try_cmd(args).await;
        reply.unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Sends every command at once, then reads all replies in order.
    async fn pipeline(&mut self, cmds: &[Vec<String>]) -> Vec<Resp> {
        self.send(cmds).await;
        let mut replies = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let reply = self.try_read(READ_TIMEOUT).await;
            replies.push(reply.unwrap_or_else(|e| panic!("{cmd:?}: {e}")));
        }
        replies
    }
}

/// Starts a 3-primary cluster (no replicas) from `builder`.
async fn start_cluster(builder: RedisBuilder) -> RedisCluster {
    tokio::task::spawn_blocking(move || RedisCluster::start_with(builder, 3, 0))
        .await
        .expect("cluster start task")
        .expect("redis cluster starts")
}

/// Starts Attaché in cluster mode with `seeds`; `listen` is forced to a
/// free port.
async fn start_attache(seeds: &[SocketAddr], extra: &str) -> (Attache, SocketAddr) {
    let nodes: Vec<String> = seeds.iter().map(|a| format!("\"{a}\"")).collect();
    let toml = format!(
        "[general]\nshutdown_timeout = \"2s\"\n\n[redis]\nmode = \"cluster\"\n\
         nodes = [{}]\n{extra}\n",
        nodes.join(", ")
    );
    let mut cfg = attache::config::parse(&toml).expect("test config must be valid");
    cfg.redis.as_mut().expect("a [redis] section").listen = "127.0.0.1:0".into();
    let attache = Attache::start(cfg).await.expect("attache starts");
    let addr = attache.redis_addr.expect("redis listener");
    (attache, addr)
}

/// A cluster and an Attaché seeded with every node.
async fn setup() -> (RedisCluster, Attache, SocketAddr) {
    let cluster = start_cluster(RedisBuilder::new()).await;
    let (attache, addr) = start_attache(&cluster.addrs(), "").await;
    (cluster, attache, addr)
}

/// Index in `cluster.nodes` of the primary serving `slot`, by the cluster's
/// own view (independent of Attaché).
fn owner_index(cluster: &RedisCluster, slot: u16) -> usize {
    let owner = tokio::task::block_in_place(|| cluster.primary_for_slot(slot))
        .expect("slot has an owner")
        .port();
    cluster
        .nodes
        .iter()
        .position(|n| n.port() == owner)
        .expect("owner is a cluster node")
}

/// Direct `GET` of every key on every node. For each key: the index of the
/// one node holding it and its value, after checking that every other node
/// redirects to that one with `MOVED <slot> <addr>`.
async fn locate(cluster: &RedisCluster, keys: &[String]) -> Vec<(usize, Resp)> {
    let gets: Vec<Vec<String>> = keys.iter().map(|k| c(&["GET", k])).collect();
    let mut per_node = Vec::new();
    for node in &cluster.nodes {
        per_node.push(Client::connect(node.addr()).await.pipeline(&gets).await);
    }
    let mut found = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let slot = key_slot(key.as_bytes());
        let holders: Vec<usize> = (0..per_node.len())
            .filter(|&n| per_node[n][i].err_text().is_none())
            .collect();
        let replies: Vec<&Resp> = per_node.iter().map(|r| &r[i]).collect();
        assert_eq!(holders.len(), 1, "{key} (slot {slot}): {replies:?}");
        let owner = holders[0];
        let moved = format!("MOVED {slot} {}", cluster.nodes[owner].addr());
        for (n, reply) in replies.iter().enumerate().filter(|(n, _)| *n != owner) {
            assert_eq!(reply.err_text(), Some(moved.as_str()), "{key} on node {n}");
        }
        found.push((owner, per_node[owner][i].clone()));
    }
    found
}

/// `DBSIZE` of each node, asked directly.
async fn node_sizes(cluster: &RedisCluster) -> Vec<i64> {
    let mut sizes = Vec::new();
    for node in &cluster.nodes {
        match Client::connect(node.addr()).await.cmd(&["DBSIZE"]).await {
            Resp::Int(n) => sizes.push(n),
            other => panic!("DBSIZE on {}: {other:?}", node.addr()),
        }
    }
    sizes
}

/// How often `node` has answered with error `code` (`INFO errorstats`).
async fn errorstat(node: &RedisServer, code: &str) -> u64 {
    let info = Client::connect(node.addr())
        .await
        .cmd(&["INFO", "errorstats"])
        .await
        .text();
    let prefix = format!("errorstat_{code}:count=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|rest| {
            rest.split(',')
                .next()
                .unwrap_or("0")
                .parse()
                .expect("count")
        })
        .unwrap_or(0)
}

/// The value [`set_all`] gives `key`.
fn val(key: &str) -> Resp {
    Resp::bulk(&format!("val:{key}"))
}

/// Asserts that `got` is an error reply starting with `prefix`.
fn assert_err(got: &Resp, prefix: &str, what: &str) {
    let ok = got.err_text().is_some_and(|t| t.starts_with(prefix));
    assert!(ok, "{what}: want {prefix}…, got {got:?}");
}

/// SETs `key = val:key` for every key through Attaché, asserting `OK` each.
async fn set_all(client: &mut Client, keys: &[String]) {
    let sets: Vec<Vec<String>> = keys
        .iter()
        .map(|k| c(&["SET", k, &format!("val:{k}")]))
        .collect();
    let replies = client.pipeline(&sets).await;
    for (key, reply) in keys.iter().zip(&replies) {
        assert_eq!(reply, &Resp::ok(), "SET {key} through Attaché");
    }
}

/// GETs every key (pipelined) and asserts it holds `val:key`.
async fn assert_values(client: &mut Client, keys: &[&String]) {
    let gets: Vec<Vec<String>> = keys.iter().map(|k| c(&["GET", k])).collect();
    for (key, reply) in keys.iter().zip(client.pipeline(&gets).await) {
        assert_eq!(reply, val(key), "GET {key}");
    }
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

// ------------------------------------------------------------- load for migrations

/// Keys preloaded in the migrated slot.
const PRELOAD: usize = 200;
/// Concurrent clients during a migration.
const CLIENTS: usize = 10;

/// What one load client saw.
#[derive(Debug, Default)]
struct LoadReport {
    ops: u64,
    errors: Vec<String>,
    /// Acknowledged INCRs of this client's own counter in the hot slot.
    own_acked: u64,
    /// … of the counter all clients share in the hot slot.
    shared_acked: u64,
    /// … of this client's counter in some other slot.
    cold_acked: u64,
}

impl LoadReport {
    /// Records anything but `want` as an error; true if it matched.
    fn expect(&mut self, what: &str, got: Result<Resp, String>, want: &Resp) -> bool {
        self.ops += 1;
        match got {
            Ok(r) if &r == want => true,
            other => {
                self.errors
                    .push(format!("{what}: want {want:?}, got {other:?}"));
                false
            }
        }
    }

    /// An INCR reply: counted as acknowledged if it is an integer; an error
    /// unless it is exactly one more than the previous acknowledgement.
    fn incr(&mut self, what: &str, got: Result<Resp, String>, acked: u64) -> bool {
        let want = Resp::Int(acked as i64 + 1);
        let counted = matches!(got, Ok(Resp::Int(_)));
        self.expect(what, got, &want);
        counted
    }
}

/// The keys of one load client in round `round`.
struct LoadKeys {
    value: String,
    own: String,
    shared: String,
    cold: String,
}

impl LoadKeys {
    fn new(tag: &str, round: usize, id: usize) -> Self {
        LoadKeys {
            value: format!("{tag}:r{round}:w{id}:s"),
            own: format!("{tag}:r{round}:w{id}:n"),
            shared: format!("{tag}:r{round}:shared"),
            cold: format!("cold:r{round}:w{id}"),
        }
    }
}

/// One load client: SET/GET/INCR in the hot slot, INCR elsewhere and GETs of
/// preloaded keys, one command at a time, until `stop`.
async fn load_client(
    addr: SocketAddr,
    keys: LoadKeys,
    tag: String,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) -> LoadReport {
    let mut client = Client::connect(addr).await;
    let mut r = LoadReport::default();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) && r.errors.is_empty() {
        n += 1;
        let value = format!("v{n}");
        let got = client.try_cmd(&["SET", &keys.value, &value]).await;
        r.expect("SET", got, &Resp::ok());
        let got = client.try_cmd(&["GET", &keys.value]).await;
        r.expect("GET", got, &Resp::bulk(&value));
        let got = client.try_cmd(&["INCR", &keys.own]).await;
        r.own_acked += u64::from(r.incr("INCR own", got, r.own_acked));
        let got = client.try_cmd(&["INCR", &keys.cold]).await;
        r.cold_acked += u64::from(r.incr("INCR cold", got, r.cold_acked));
        let got = client.try_cmd(&["INCR", &keys.shared]).await;
        r.ops += 1;
        match got {
            Ok(Resp::Int(_)) => r.shared_acked += 1,
            other => r.errors.push(format!("INCR shared: {other:?}")),
        }
        let pre = format!("{tag}:pre:{}", n % PRELOAD);
        let got = client.try_cmd(&["GET", &pre]).await;
        r.expect("GET preloaded", got, &val(&pre));
        ops.fetch_add(6, Ordering::Relaxed);
    }
    r
}

/// A migration scenario: the cluster, Attaché in front of it, and the hot
/// slot (hash tag `tag`) preloaded with [`PRELOAD`] keys.
struct Scenario {
    cluster: Arc<RedisCluster>,
    _attache: Attache,
    addr: SocketAddr,
    tag: String,
    slot: u16,
}

impl Scenario {
    async fn new() -> Scenario {
        let (cluster, attache, addr) = setup().await;
        Scenario::with(cluster, attache, addr).await
    }

    /// Preloads the hot slot through Attaché at `addr`, in front of
    /// `cluster`.
    async fn with(cluster: RedisCluster, attache: Attache, addr: SocketAddr) -> Scenario {
        let tag = "{mig}".to_string();
        let slot = key_slot(tag.as_bytes());
        set_all(
            &mut Client::connect(addr).await,
            &numbered(&format!("{tag}:pre"), PRELOAD),
        )
        .await;
        Scenario {
            cluster: Arc::new(cluster),
            _attache: attache,
            addr,
            tag,
            slot,
        }
    }

    /// Moves the hot slot from node `from` to node `to` while [`CLIENTS`]
    /// clients run, keeps them running 1 s more, then checks that no client
    /// saw an error, no write was lost or doubled, and the keys moved.
    async fn migrate_under_load(&self, round: usize, from: usize, to: usize) {
        let (src, dst) = (&self.cluster.nodes[from], &self.cluster.nodes[to]);
        assert_eq!(owner_index(&self.cluster, self.slot), from, "slot owner");
        let moved_before = errorstat(src, "MOVED").await;
        let ask_before = errorstat(src, "ASK").await;
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let tasks: Vec<JoinHandle<LoadReport>> = (0..CLIENTS)
            .map(|id| {
                let keys = LoadKeys::new(&self.tag, round, id);
                let (tag, stop, ops) = (self.tag.clone(), stop.clone(), ops.clone());
                tokio::spawn(load_client(self.addr, keys, tag, stop, ops))
            })
            .collect();
        sleep(Duration::from_millis(300)).await;
        let (ops_before, started) = (ops.load(Ordering::Relaxed), Instant::now());
        let cluster = self.cluster.clone();
        let slot = self.slot;
        let moved_keys = tokio::task::spawn_blocking(move || {
            cluster.migrate_slot(slot, &cluster.nodes[from], &cluster.nodes[to])
        })
        .await
        .expect("migrate task")
        .expect("migrate_slot");
        let (took, ops_during) = (started.elapsed(), ops.load(Ordering::Relaxed) - ops_before);
        sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let mut reports = Vec::new();
        for t in tasks {
            reports.push(t.await.expect("load client"));
        }
        let moved_seen = errorstat(src, "MOVED").await - moved_before;
        let ask_seen = errorstat(src, "ASK").await - ask_before;
        let total: u64 = reports.iter().map(|r| r.ops).sum();
        eprintln!(
            "round {round}: {moved_keys} keys moved in {took:?}; {total} ops ({ops_during} \
             during the move); node {from} answered Attaché MOVED {moved_seen}×, ASK {ask_seen}×"
        );
        let errors: Vec<&String> = reports.iter().flat_map(|r| &r.errors).collect();
        assert!(errors.is_empty(), "client-visible errors: {errors:?}");
        assert!(moved_keys >= PRELOAD, "only {moved_keys} keys moved");
        assert!(reports.iter().all(|r| r.own_acked > 0), "{reports:?}");
        // The redirects happened, and Attaché hid them.
        assert!(
            moved_seen > 0,
            "Attaché never sent to the old owner after the move"
        );
        self.check_after_move(round, &reports, to, dst).await;
    }

    /// Counters equal the acknowledged INCRs, and every hot key is on `to`.
    async fn check_after_move(
        &self,
        round: usize,
        reports: &[LoadReport],
        to: usize,
        dst: &RedisServer,
    ) {
        let mut client = Client::connect(self.addr).await;
        let mut keys = numbered(&format!("{}:pre", self.tag), PRELOAD);
        let mut want = Vec::new();
        for (id, r) in reports.iter().enumerate() {
            let k = LoadKeys::new(&self.tag, round, id);
            for (key, acked) in [(&k.own, r.own_acked), (&k.cold, r.cold_acked)] {
                assert_eq!(
                    client.cmd(&["GET", key]).await,
                    Resp::bulk(&acked.to_string()),
                    "{key}"
                );
            }
            keys.push(k.own);
            want.push(r.own_acked);
        }
        let shared = LoadKeys::new(&self.tag, round, 0).shared;
        let shared_acked: u64 = reports.iter().map(|r| r.shared_acked).sum();
        let got = client.cmd(&["GET", &shared]).await;
        assert_eq!(got, Resp::bulk(&shared_acked.to_string()), "{shared}");
        keys.push(shared);
        want.push(shared_acked);
        assert_eq!(
            owner_index(&self.cluster, self.slot),
            to,
            "slot owner after the move"
        );
        let located = locate(&self.cluster, &keys).await;
        for (key, (owner, value)) in keys.iter().zip(&located) {
            assert_eq!(*owner, to, "{key} should live on {}", dst.addr());
            if key.contains(":pre:") {
                assert_eq!(value, &val(key), "{key}");
            }
        }
        for (i, n) in want.iter().enumerate() {
            let (_, value) = &located[PRELOAD + i];
            assert_eq!(
                value,
                &Resp::bulk(&n.to_string()),
                "{} on the new owner",
                keys[PRELOAD + i]
            );
        }
    }
}

// ------------------------------------------------------------------- tests

#[path = "redis_cluster/redirects.rs"]
mod redirects;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_on_their_slot_owner_without_redirects() {
    let (cluster, _attache, addr) = setup().await;
    let keys = numbered("k", 1000);
    let mut client = Client::connect(addr).await;
    set_all(&mut client, &keys).await;
    assert_values(&mut client, &keys.iter().collect::<Vec<_>>()).await;
    let located = locate(&cluster, &keys).await;
    let mut per_node = [0usize; 3];
    for (i, (key, (owner, value))) in keys.iter().zip(&located).enumerate() {
        assert_eq!(value, &val(key), "{key} directly");
        per_node[*owner] += 1;
        // Cross-check a sample against the cluster's own slot table.
        if i % 50 == 0 {
            assert_eq!(
                *owner,
                owner_index(&cluster, key_slot(key.as_bytes())),
                "{key}"
            );
        }
    }
    assert!(
        per_node.iter().all(|&n| n > 200),
        "keys per node: {per_node:?}"
    );
    let sizes = node_sizes(&cluster).await;
    assert_eq!(sizes.iter().sum::<i64>(), 1000, "node sizes {sizes:?}");
    assert_eq!(client.cmd(&["DBSIZE"]).await, Resp::Int(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_commands_split_merge_or_crossslot() {
    let (cluster, _attache, addr) = setup().await;
    let mut client = Client::connect(addr).await;
    let keys = numbered("m", 10);
    let mut mset = c(&["MSET"]);
    for k in &keys {
        mset.extend([k.clone(), format!("val:{k}")]);
    }
    assert_eq!(client.pipeline(&[mset]).await, vec![Resp::ok()]);
    let located = locate(&cluster, &keys).await;
    let mut owners: Vec<usize> = located.iter().map(|(o, _)| *o).collect();
    for (key, (_, value)) in keys.iter().zip(&located) {
        assert_eq!(value, &val(key), "{key} after MSET");
    }
    owners.dedup();
    assert!(owners.len() >= 2, "MSET keys should span nodes: {owners:?}");
    let got = client
        .cmd(&["MGET", "m:3", "nope", "m:0", "m:9", "m:3"])
        .await;
    let want = [val("m:3"), Resp::Nil, val("m:0"), val("m:9"), val("m:3")];
    assert_eq!(got, Resp::Array(want.to_vec()), "MGET keeps the order");
    let exists = client.cmd(&["EXISTS", "m:1", "m:1", "m:2", "nope"]).await;
    assert_eq!(exists, Resp::Int(3));
    let del = client.cmd(&["DEL", "m:1", "m:2", "nope", "m:5"]).await;
    assert_eq!(del, Resp::Int(3));
    let got = client.cmd(&["MGET", "m:1", "m:2", "m:5", "m:6"]).await;
    let want = vec![Resp::Nil, Resp::Nil, Resp::Nil, val("m:6")];
    assert_eq!(got, Resp::Array(want));
    let sizes = node_sizes(&cluster).await;
    assert_eq!(
        sizes.iter().sum::<i64>(),
        7,
        "DEL removed 3 keys: {sizes:?}"
    );
    cross_slot(&cluster, &mut client).await;
    transactions(&mut client).await;
}

/// Multi-key commands that cannot be split need one slot, even when the
/// keys are on the same node; with a hash tag they run.
async fn cross_slot(cluster: &RedisCluster, client: &mut Client) {
    assert_ne!(key_slot(b"x:a"), key_slot(b"x:b"));
    for k in ["x:a", "x:b", "{u}:a", "{u}:b"] {
        assert_eq!(client.cmd(&["SADD", k, "1", k]).await, Resp::Int(2));
    }
    let same_node = same_node_other_slot(cluster, "x:a");
    for (a, b) in [("x:a", "x:b"), ("x:a", same_node.as_str())] {
        for cmd in ["SUNION", "RENAME"] {
            let got = client.cmd(&[cmd, a, b]).await;
            assert_err(&got, "CROSSSLOT", &format!("{cmd} {a} {b}"));
        }
    }
    let exists = client.cmd(&["EXISTS", "x:a"]).await;
    assert_eq!(exists, Resp::Int(1), "RENAME refused");
    let got = client.cmd(&["SUNION", "{u}:a", "{u}:b"]).await;
    let mut members: Vec<String> = got.items().iter().map(Resp::text).collect();
    members.sort();
    assert_eq!(members, ["1", "{u}:a", "{u}:b"]);
    assert_eq!(client.cmd(&["RENAME", "{u}:a", "{u}:c"]).await, Resp::ok());
    assert_eq!(client.cmd(&["SCARD", "{u}:c"]).await, Resp::Int(2));
}

/// A key in another slot than `key` but owned by the same node.
fn same_node_other_slot(cluster: &RedisCluster, key: &str) -> String {
    let slot = key_slot(key.as_bytes());
    let owner = owner_index(cluster, slot);
    (0..)
        .map(|i| format!("same:{i}"))
        .find(|k| {
            let other = key_slot(k.as_bytes());
            other != slot && owner_index(cluster, other) == owner
        })
        .expect("some key")
}

/// MULTI/EXEC in one slot works; a cross-slot command inside aborts it.
async fn transactions(client: &mut Client) {
    let (ok, queued) = (Resp::ok(), Resp::Simple("QUEUED".into()));
    let mut txn = vec![c(&["MULTI"]), c(&["SET", "{t}:x", "1"])];
    txn.extend([c(&["INCR", "{t}:x"]), c(&["GET", "{t}:y"]), c(&["EXEC"])]);
    let got = client.pipeline(&txn).await;
    let exec = Resp::Array(vec![Resp::ok(), Resp::Int(2), Resp::Nil]);
    let q = || queued.clone();
    assert_eq!(got, vec![ok.clone(), q(), q(), q(), exec]);
    for stray in [c(&["SUNION", "x:a", "x:b"]), c(&["SET", "x:a", "v"])] {
        let cmds = [c(&["MULTI"]), c(&["SET", "{t}:x", "10"]), stray.clone()];
        let got = client
            .pipeline(&[&cmds[..], &[c(&["EXEC"])]].concat())
            .await;
        assert_eq!(got[..2], [ok.clone(), q()], "{stray:?}");
        assert_err(&got[2], "CROSSSLOT", &format!("{stray:?} in MULTI"));
        assert_err(&got[3], "EXECABORT", &format!("EXEC after {stray:?}"));
    }
    let x = client.cmd(&["GET", "{t}:x"]).await;
    assert_eq!(x, Resp::bulk("2"), "aborted transactions wrote");
    let x_a = client.cmd(&["TYPE", "x:a"]).await;
    assert_eq!(x_a, Resp::Simple("set".into()));
    assert_eq!(client.cmd(&["PING"]).await, Resp::Simple("PONG".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_other_than_zero_is_refused() {
    let (_cluster, _attache, addr) = setup().await;
    let mut client = Client::connect(addr).await;
    let got = client.cmd(&["SELECT", "1"]).await;
    assert_eq!(
        got.err_text(),
        Some("ERR SELECT is not allowed in cluster mode")
    );
    assert_eq!(client.cmd(&["SELECT", "0"]).await, Resp::ok());
    assert_eq!(client.cmd(&["SET", "after-select", "1"]).await, Resp::ok());
    assert_eq!(client.cmd(&["GET", "after-select"]).await, Resp::bulk("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_migration_under_load_is_invisible() {
    let s = Scenario::new().await;
    let from = owner_index(&s.cluster, s.slot);
    s.migrate_under_load(1, from, (from + 1) % 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_back_uses_the_refreshed_map() {
    let s = Scenario::new().await;
    let home = owner_index(&s.cluster, s.slot);
    let away = (home + 2) % 3;
    s.migrate_under_load(1, home, away).await;
    // Let the MOVED-triggered refresh land: round 2 must then see MOVED from
    // `away`, i.e. Attaché was routing by the refreshed map.
    sleep(Duration::from_millis(500)).await;
    s.migrate_under_load(2, away, home).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_visits_every_key_once() {
    let (cluster, _attache, addr) = setup().await;
    let keys = numbered("scan", 1000);
    let mut client = Client::connect(addr).await;
    set_all(&mut client, &keys).await;
    assert!(node_sizes(&cluster).await.iter().all(|&n| n > 200));
    let seen = scan_all(&mut client, &["COUNT", "100"]).await;
    assert_eq!(seen.len(), 1000, "distinct keys");
    let dup: Vec<_> = seen.iter().filter(|(_, &n)| n != 1).collect();
    assert!(dup.is_empty(), "keys returned more than once: {dup:?}");
    assert!(keys.iter().all(|k| seen.contains_key(k)));
    let seen = scan_all(&mut client, &["MATCH", "scan:1*", "COUNT", "100"]).await;
    let want = keys.iter().filter(|k| k.starts_with("scan:1")).count();
    assert_eq!(seen.len(), want);
    assert!(
        seen.iter().all(|(k, &n)| k.starts_with("scan:1") && n == 1),
        "{seen:?}"
    );
}

/// A full SCAN through Attaché: how often each key came back.
async fn scan_all(client: &mut Client, opts: &[&str]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    let mut cursor = "0".to_string();
    for calls in 0.. {
        assert!(calls < 2000, "SCAN does not terminate");
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(opts);
        let got = client.cmd(&args).await;
        let [next, batch] = got.items() else {
            panic!("SCAN reply {got:?}");
        };
        for key in batch.items() {
            *seen.entry(key.text()).or_insert(0) += 1;
        }
        cursor = next.text();
        if cursor == "0" {
            assert!(calls >= 3, "one SCAN call cannot have covered 3 nodes");
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_the_cluster_from_one_seed() {
    let cluster = start_cluster(RedisBuilder::new()).await;
    let (_attache, addr) = start_attache(&[cluster.nodes[1].addr()], "").await;
    let keys = numbered("seeded", 300);
    let mut client = Client::connect(addr).await;
    set_all(&mut client, &keys).await;
    assert_values(&mut client, &keys.iter().collect::<Vec<_>>()).await;
    let located = locate(&cluster, &keys).await;
    for node in 0..3 {
        assert!(
            located.iter().any(|(o, _)| *o == node),
            "no key on node {node}"
        );
    }
    // DBSIZE reaches every primary only once the slot map is known, so it
    // shows discovery itself, not just followed redirects.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let got = client.cmd(&["DBSIZE"]).await;
        if got == Resp::Int(300) {
            break;
        }
        assert!(Instant::now() < deadline, "DBSIZE through Attaché: {got:?}");
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_primary_fails_its_slots_only() {
    // Without full coverage the surviving primaries keep serving their slots.
    let builder = RedisBuilder::new().setting("cluster-require-full-coverage", "no");
    let mut cluster = start_cluster(builder).await;
    let extra = "command_timeout = \"2s\"\nconnect_timeout = \"1s\"";
    let (_attache, addr) = start_attache(&cluster.addrs(), extra).await;
    let keys = numbered("kill", 60);
    let mut client = Client::connect(addr).await;
    set_all(&mut client, &keys).await;
    let victim = 1;
    let (mut dead, mut alive) = (Vec::new(), Vec::new());
    for (key, (owner, _)) in keys.iter().zip(locate(&cluster, &keys).await) {
        if owner == victim {
            dead.push(key)
        } else {
            alive.push(key)
        }
    }
    assert!(dead.len() >= 3 && alive.len() >= 10, "{dead:?} / {alive:?}");
    tokio::task::block_in_place(|| cluster.nodes[victim].kill9());
    sleep(Duration::from_millis(200)).await;
    // Right after the crash, and again once the cluster has marked the node
    // failed (cluster-node-timeout is 2 s) and Attaché refreshed its map.
    for pass in 0..2 {
        for key in &dead[..3] {
            let started = Instant::now();
            let got = client.cmd(&["GET", key]).await;
            let took = started.elapsed();
            eprintln!("pass {pass}: GET {key} → {got:?} in {took:?}");
            assert_err(&got, "ERR", &format!("GET {key} on the dead node"));
            assert!(took < Duration::from_secs(3), "GET {key} took {took:?}");
        }
        let started = Instant::now();
        assert_values(&mut client, &alive).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "live slots slowed"
        );
        // In one pipeline, live keys still answer in order between failures.
        let mixed = [dead[0], alive[0], dead[1], alive[1]];
        let gets: Vec<Vec<String>> = mixed.iter().map(|k| c(&["GET", k])).collect();
        let got = client.pipeline(&gets).await;
        assert_err(&got[0], "ERR", "dead key in a pipeline");
        assert_eq!(got[1], val(alive[0]));
        assert_err(&got[2], "ERR", "dead key in a pipeline");
        assert_eq!(got[3], val(alive[1]));
        let key = alive[2 + pass];
        assert_eq!(client.cmd(&["SET", key, "new"]).await, Resp::ok());
        assert_eq!(client.cmd(&["GET", key]).await, Resp::bulk("new"));
        let original = format!("val:{key}");
        assert_eq!(client.cmd(&["SET", key, &original]).await, Resp::ok());
        if pass == 0 {
            sleep(Duration::from_secs(3)).await;
        }
    }
}

// ------------------------------------------------------------- shared connections

/// Attaché's connections open on `node` now (`connected_clients`, less
/// the probe's own).
async fn attache_connections(node: &RedisServer) -> i64 {
    let info = Client::connect(node.addr())
        .await
        .cmd(&["INFO", "clients"])
        .await
        .text();
    let n: i64 = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients");
    n - 1
}

/// Clients taking turns, none with a command of its own unanswered, share
/// one connection per node instead of each using its own lane's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_taking_turns_share_one_connection_per_node() {
    let cluster = start_cluster(RedisBuilder::new()).await;
    let (attache, addr) = start_attache(&cluster.addrs(), "connections_per_node = 4").await;
    let keys = numbered("turns", 30);
    let mut owners: Vec<usize> = keys
        .iter()
        .map(|k| owner_index(&cluster, key_slot(k.as_bytes())))
        .collect();
    owners.dedup();
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(Client::connect(addr).await);
    }
    for round in 0..3 {
        for client in clients.iter_mut() {
            for key in &keys {
                let reply = client.cmd(&["SET", key, &format!("{round}")]).await;
                assert_eq!(reply, Resp::ok(), "SET {key}");
            }
        }
    }
    for (i, node) in cluster.nodes.iter().enumerate() {
        let open = attache_connections(node).await;
        // One shared connection; a slot-map refresh may hold a second
        // for a moment. Fixed lanes would have opened four.
        assert!(open <= 2, "node {i}: {open} connections from Attaché");
    }
    assert!(owners.len() > 1, "the keys touched several nodes");
    drop(attache);
}

/// Clients free to choose move between a node's shared connections; a
/// pipeline after a lone command must still run in order on one
/// connection and read its own writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_moved_between_connections_read_their_own_writes() {
    let cluster = start_cluster(RedisBuilder::new()).await;
    let (_attache, addr) = start_attache(&cluster.addrs(), "connections_per_node = 4").await;
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let key = format!("moved:{n}");
                for round in 0..10i64 {
                    let base = 51 * round;
                    assert_eq!(client.cmd(&["INCR", &key]).await, Resp::Int(base + 1));
                    let mut cmds = vec![c(&["INCR", &key]); 50];
                    cmds.push(c(&["GET", &key]));
                    let got = client.pipeline(&cmds).await;
                    let want: Vec<Resp> = (2..=51)
                        .map(|i| Resp::Int(base + i))
                        .chain([Resp::bulk(&(base + 51).to_string())])
                        .collect();
                    assert_eq!(got, want, "client {n}, round {round}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
}
