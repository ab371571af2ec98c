//! End to end (Redis, `sharded` mode): accept → parse → route → backend →
//! respond against three real `redis-server`s behind Attaché started
//! in-process. Key placement is checked against a real twemproxy with the
//! same server list, and where keys live is always read back from the
//! servers themselves, never predicted, so the tests judge Attaché's
//! routing instead of echoing it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use attache::app::Attache;
use attache_harness::{RedisBuilder, RedisServer, Twemproxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[path = "support/resp.rs"]
mod resp;
use resp::{encode, parse, Resp};

const CROSS: &str = "CROSSSLOT Keys in request don't hash to the same slot";
/// Server names; ketama hashes these, so twemproxy must get the same ones.
const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

// ---------------------------------------------------------------- RESP

/// A raw RESP2 connection (to Attaché, twemproxy or a server directly).
struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Conn {
        let tcp = TcpStream::connect(addr).await.expect("tcp connect");
        tcp.set_nodelay(true).expect("nodelay");
        Conn {
            tcp,
            buf: Vec::new(),
        }
    }

    async fn send<S: AsRef<str>>(&mut self, args: &[S]) {
        self.tcp.write_all(&encode(args)).await.expect("write");
    }

    async fn cmd<S: AsRef<str>>(&mut self, args: &[S]) -> Resp {
        self.send(args).await;
        self.read().await
    }

    async fn read(&mut self) -> Resp {
        match self.read_within(Duration::from_secs(10)).await {
            Some(r) => r,
            None => panic!("no reply within 10 s"),
        }
    }

    /// The next reply, or `None` on timeout or a closed connection.
    async fn read_within(&mut self, wait: Duration) -> Option<Resp> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some((r, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(r);
            }
            match tokio::time::timeout_at(deadline, self.tcp.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Sends every command in one write, then reads one reply each.
    async fn pipeline(&mut self, cmds: &[Vec<String>]) -> Vec<Resp> {
        let bytes: Vec<u8> = cmds.iter().flat_map(|c| encode(c)).collect();
        self.tcp.write_all(&bytes).await.expect("write");
        let mut out = Vec::with_capacity(cmds.len());
        for _ in cmds {
            out.push(self.read().await);
        }
        out
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- setup

/// Three servers and a sharded Attaché in front of them.
struct Shards {
    servers: Vec<RedisServer>,
    weights: [u32; 3],
    hash: &'static str,
    _attache: Attache,
    addr: SocketAddr,
}

/// The `[redis]` config of a sharded Attaché over `servers`.
fn sharded_config(servers: &[RedisServer], weights: [u32; 3], hash: &str, extra: &str) -> String {
    let nodes: Vec<String> = servers
        .iter()
        .zip(weights)
        .zip(NAMES)
        .map(|((s, w), name)| format!("\"127.0.0.1:{}:{w} {name}\"", s.port()))
        .collect();
    format!(
        "[general]\nshutdown_timeout = \"2s\"\n\n[redis]\nlisten = \"127.0.0.1:0\"\n\
         mode = \"sharded\"\nnodes = [{}]\nhash = \"{hash}\"\nhash_tag = \"{{}}\"\n{extra}\n",
        nodes.join(", ")
    )
}

impl Shards {
    async fn start(hash: &'static str, weights: [u32; 3], extra: &str) -> Shards {
        let servers: Vec<RedisServer> = tokio::task::block_in_place(|| {
            (0..3)
                .map(|_| RedisBuilder::new().start().expect("redis-server starts"))
                .collect()
        });
        let toml = sharded_config(&servers, weights, hash, extra);
        let mut cfg = attache::config::parse(&toml).expect("test config must be valid");
        cfg.redis.as_mut().expect("a [redis] section").listen = "127.0.0.1:0".into();
        let attache = Attache::start(cfg).await.expect("attache starts");
        let addr = attache.redis_addr.expect("redis listener");
        Shards {
            servers,
            weights,
            hash,
            _attache: attache,
            addr,
        }
    }

    async fn client(&self) -> Conn {
        Conn::connect(self.addr).await
    }

    /// A connection straight to server `i`, bypassing Attaché.
    async fn direct(&self, i: usize) -> Conn {
        Conn::connect(self.servers[i].addr()).await
    }

    /// Every key on each server (`redis-cli --scan`), as key → server index;
    /// panics if a key is on more than one server.
    fn holders(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (i, s) in self.servers.iter().enumerate() {
            let text = tokio::task::block_in_place(|| s.cli(&["--scan"])).expect("redis-cli");
            for key in text.lines().filter(|l| !l.is_empty()) {
                if let Some(j) = out.insert(key.to_string(), i) {
                    panic!("key {key:?} is on server {j} and on server {i}");
                }
            }
        }
        out
    }

    /// The server each key lands on when SET alone through Attaché (the
    /// keys are deleted again afterwards).
    async fn homes(&self, keys: &[String]) -> Vec<usize> {
        let mut c = self.client().await;
        let sets: Vec<Vec<String>> = keys.iter().map(|k| strings(&["SET", k, "probe"])).collect();
        assert!(c.pipeline(&sets).await.iter().all(|r| *r == Resp::ok()));
        let held = self.holders();
        let homes = keys
            .iter()
            .map(|k| {
                *held
                    .get(k)
                    .unwrap_or_else(|| panic!("{k:?} is on no server"))
            })
            .collect();
        for k in keys {
            assert_eq!(c.cmd(&["DEL", k]).await, Resp::Int(1), "DEL {k}");
        }
        homes
    }

    /// One key per server, named `prefix` + a number, in server order.
    async fn key_per_node(&self, prefix: &str) -> [String; 3] {
        let candidates = scattered(prefix, 60);
        let homes = self.homes(&candidates).await;
        let pick = |n: usize| {
            let at = homes.iter().position(|h| *h == n);
            candidates[at.unwrap_or_else(|| panic!("no candidate key landed on server {n}"))]
                .clone()
        };
        [pick(0), pick(1), pick(2)]
    }

    async fn dbsizes(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for i in 0..3 {
            match self.direct(i).await.cmd(&["DBSIZE"]).await {
                Resp::Int(n) => out.push(n),
                other => panic!("DBSIZE on server {i}: {other:?}"),
            }
        }
        out
    }
}

/// `n` keys named `prefix` + a scrambled number. twemproxy's fnv1a_64
/// keeps keys that differ only in their last characters close together on
/// the ring, so sequential names could all land on one node.
fn scattered(prefix: &str, n: u64) -> Vec<String> {
    (1..=n)
        .map(|i| format!("{prefix}{:08x}", i.wrapping_mul(2_654_435_761) % (1 << 32)))
        .collect()
}

/// `n` plain keys plus hash-tagged ones (related keys and edge cases of
/// the tag syntax), all distinct.
fn placement_keys(n: usize) -> Vec<String> {
    let mut keys: Vec<String> = [
        "{user1}:a",
        "{user1}:b",
        "x{user1}y",
        "{user2}:a",
        "{user2}:b",
        "{}empty-tag",
        "{unclosed",
        "a}b{c",
        "{{double}}",
        "{a}{b}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    keys.extend((keys.len()..n).map(|i| format!("key:{i}")));
    keys
}

// ---------------------------------------------------------------- 1. placement

/// SETs `keys` through `addr`, asserting each reply is OK.
async fn set_all(addr: SocketAddr, keys: &[String]) {
    let mut c = Conn::connect(addr).await;
    let cmds: Vec<Vec<String>> = keys.iter().map(|k| strings(&["SET", k, k])).collect();
    for (k, r) in keys.iter().zip(c.pipeline(&cmds).await) {
        assert_eq!(r, Resp::ok(), "SET {k}");
    }
}

async fn placement_matches_twemproxy(hash: &'static str, weights: [u32; 3]) {
    let sh = Shards::start(hash, weights, "").await;
    let keys = placement_keys(500);
    set_all(sh.addr, &keys).await;
    let via_attache = sh.holders();
    assert_eq!(via_attache.len(), keys.len(), "every key stored once");
    for s in &sh.servers {
        tokio::task::block_in_place(|| s.cli(&["FLUSHALL"])).expect("FLUSHALL");
    }
    let pool: Vec<(&RedisServer, u32, &str)> = sh
        .servers
        .iter()
        .zip(sh.weights)
        .zip(NAMES)
        .map(|((s, w), n)| (s, w, n))
        .collect();
    let proxy = tokio::task::block_in_place(|| Twemproxy::start(&pool, sh.hash, "ketama"))
        .expect("nutcracker starts");
    set_all(proxy.addr(), &keys).await;
    let via_twemproxy = sh.holders();
    assert_eq!(
        via_twemproxy.len(),
        keys.len(),
        "twemproxy stored every key"
    );
    let differ: Vec<_> = keys
        .iter()
        .filter(|k| via_attache.get(*k) != via_twemproxy.get(*k))
        .map(|k| (k, via_attache.get(k), via_twemproxy.get(k)))
        .collect();
    assert!(
        differ.is_empty(),
        "{hash} {weights:?}: {} of {} keys placed differently (key, attache, twemproxy): {:?}",
        differ.len(),
        keys.len(),
        &differ[..differ.len().min(10)]
    );
    let per_node: Vec<usize> = (0..3)
        .map(|n| via_attache.values().filter(|v| **v == n).count())
        .collect();
    assert!(
        per_node.iter().all(|c| *c > 0),
        "keys spread over every node: {per_node:?}"
    );
    let tagged = ["{user1}:a", "{user1}:b", "x{user1}y"].map(|k| via_attache[k]);
    assert!(
        tagged.iter().all(|n| *n == tagged[0]),
        "{{user1}} keys together: {tagged:?}"
    );
    assert_eq!(via_attache["{user2}:a"], via_attache["{user2}:b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_matches_twemproxy_fnv1a_64() {
    placement_matches_twemproxy("fnv1a_64", [1, 1, 1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_matches_twemproxy_murmur() {
    placement_matches_twemproxy("murmur", [1, 1, 1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_matches_twemproxy_md5() {
    placement_matches_twemproxy("md5", [1, 1, 1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_matches_twemproxy_with_weights() {
    placement_matches_twemproxy("fnv1a_64", [1, 2, 1]).await;
}

// Sections 2 to 6 (split commands, single-node multi-key commands,
// fan-out, transactions, blocking pops) are in redis_sharded/commands.rs.
#[path = "redis_sharded/commands.rs"]
mod commands;

// ---------------------------------------------------------------- 7. concurrency

/// 500 commands for client `c`: SET/GET pairs, every tenth GET an MGET of
/// the last three keys (a split command among single-node ones).
fn client_script(c: usize) -> (Vec<Vec<String>>, Vec<Resp>) {
    let (mut cmds, mut want) = (Vec::new(), Vec::new());
    let key = |i: usize| format!("c{c}:k{i}");
    let val = |i: usize| format!("v{c}:{i}");
    for i in 0..250 {
        cmds.push(vec!["SET".into(), key(i), val(i)]);
        want.push(Resp::ok());
        if i % 10 == 9 {
            cmds.push(vec!["MGET".into(), key(i - 2), key(i - 1), key(i)]);
            want.push(Resp::Array(
                (i - 2..=i).map(|j| Resp::bulk(&val(j))).collect(),
            ));
        } else {
            cmds.push(vec!["GET".into(), key(i)]);
            want.push(Resp::bulk(&val(i)));
        }
    }
    (cmds, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pipelines_keep_order_across_shards() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "").await;
    let tasks: Vec<_> = (0..20)
        .map(|c| {
            let addr = sh.addr;
            tokio::spawn(async move {
                let (cmds, want) = client_script(c);
                let got = Conn::connect(addr).await.pipeline(&cmds).await;
                assert_eq!(got.len(), 500, "client {c}: one reply per command");
                let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
                let first = bad.first().map(|&i| {
                    format!(
                        "client {c}: reply #{i} to {:?} is {:?}, want {:?}",
                        cmds[i], got[i], want[i]
                    )
                });
                (bad.len(), first)
            })
        })
        .collect();
    let mut wrong = (0, Vec::new());
    for t in tasks {
        let (n, first) = t.await.expect("client task");
        wrong.0 += n;
        wrong.1.extend(first);
    }
    assert!(
        wrong.0 == 0,
        "{} of 10000 replies wrong, in {} of 20 clients; first per client: {:#?}",
        wrong.0,
        wrong.1.len(),
        &wrong.1[..wrong.1.len().min(5)]
    );
    let sizes = sh.dbsizes().await;
    assert!(
        sizes.iter().all(|n| *n > 0),
        "keys on every node: {sizes:?}"
    );
    assert_eq!(sizes.iter().sum::<i64>(), 20 * 250);
}

/// A client with nothing unanswered may move to another of its key's
/// node's shared connections; a pipeline after a lone command must still
/// run in order on one connection and read its own writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_moved_between_a_nodes_connections_read_their_own_writes() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "connections_per_node = 4").await;
    let tasks: Vec<_> = (0..30)
        .map(|c| {
            let addr = sh.addr;
            tokio::spawn(async move {
                let mut conn = Conn::connect(addr).await;
                let key = format!("moved:{c}");
                for round in 0..20i64 {
                    let n = 101 * round;
                    assert_eq!(conn.cmd(&["INCR", &key]).await, Resp::Int(n + 1));
                    let mut cmds = vec![strings(&["INCR", &key]); 100];
                    cmds.push(strings(&["GET", &key]));
                    let got = conn.pipeline(&cmds).await;
                    let want: Vec<Resp> = (2..=101)
                        .map(|i| Resp::Int(n + i))
                        .chain([Resp::bulk(&(n + 101).to_string())])
                        .collect();
                    assert_eq!(got, want, "client {c}, round {round}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
}

// ---------------------------------------------------------------- 8. node failure

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_fails_fast_and_recovers() {
    let mut sh = Shards::start("fnv1a_64", [1, 1, 1], "connect_timeout = \"1s\"").await;
    let [k0, dead, k2] = sh.key_per_node("f:").await;
    let mut c = sh.client().await;
    for k in [&k0, &dead, &k2] {
        assert_eq!(c.cmd(&["SET", k, "before"]).await, Resp::ok());
    }
    sh.servers[1].kill9();

    // Twice: once on the broken pipe, once on a fresh connect attempt.
    for attempt in 0..2 {
        let started = Instant::now();
        let reply = c.cmd(&["GET", &dead]).await;
        assert!(
            reply.err().starts_with("ERR attache: "),
            "attempt {attempt}: {reply:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "attempt {attempt}: error after {:?} (the command timeout is 5 s)",
            started.elapsed()
        );
    }
    let started = Instant::now();
    let reply = c.cmd(&["MGET", &k0, &dead]).await;
    assert!(reply.err().starts_with("ERR attache: "), "MGET: {reply:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(c.cmd(&["GET", &k0]).await, Resp::bulk("before"));
    assert_eq!(c.cmd(&["GET", &k2]).await, Resp::bulk("before"));

    tokio::task::block_in_place(|| sh.servers[1].start_again()).expect("restart");
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        match c.cmd(&["SET", &dead, "after"]).await {
            Resp::Simple(s) if s == "OK" => break,
            other => assert!(
                Instant::now() < deadline,
                "node still unusable 6 s after restart: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.cmd(&["GET", &dead]).await, Resp::bulk("after"));
    assert_eq!(sh.holders().get(&dead), Some(&1), "back on its own node");
    let want = Resp::Array(vec![Resp::bulk("before"), Resp::bulk("after")]);
    assert_eq!(c.cmd(&["MGET", &k0, &dead]).await, want);
}

/// With `auto_eject_hosts`, a dead server leaves the ring after the failed
/// health checks, its keys go to the remaining servers without errors, and
/// it rejoins once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_eject_moves_keys_off_a_dead_server_and_readmits_it() {
    let mut servers: Vec<RedisServer> = (0..3)
        .map(|_| RedisBuilder::new().start().unwrap())
        .collect();
    let nodes: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("\"{}:1 s{i}\"", s.addr()))
        .collect();
    let toml = format!(
        "[redis]\nmode = \"sharded\"\nhash = \"murmur\"\nnodes = [{}]\nauto_eject_hosts = true\nserver_failure_limit = 2\nserver_retry_timeout = \"1s\"\nhealth_check_interval = \"200ms\"\nconnect_timeout = \"500ms\"\n",
        nodes.join(", ")
    );
    let mut cfg = attache::config::parse(&toml).unwrap();
    cfg.redis.as_mut().unwrap().listen = "127.0.0.1:0".into();
    let attache = attache::app::Attache::start(cfg).await.unwrap();
    let addr = attache.redis_addr.unwrap();
    let keys: Vec<String> = (0..60).map(|i| format!("eject:{i}:x")).collect();
    let mut c = Conn::connect(addr).await;
    for k in &keys {
        assert_eq!(c.cmd(&["SET", k, "1"]).await, Resp::Simple("OK".into()));
    }
    // Pick a key that lives on server 0, then kill server 0.
    let on_zero: Vec<&String> = keys
        .iter()
        .filter(|k| servers[0].cli(&["EXISTS", k]).unwrap() == "1")
        .collect();
    assert!(!on_zero.is_empty(), "some keys should land on server 0");
    let victim = on_zero[0].clone();
    servers[0].kill9();
    // After 2 failed checks (~0.4 s) plus slack, the key is served by another server.
    let mut ok = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if c.cmd(&["SET", &victim, "moved"]).await == Resp::Simple("OK".into()) {
            ok = true;
            break;
        }
    }
    assert!(
        ok,
        "the dead server's keys should move to the others after ejection"
    );
    let holders = servers[1..]
        .iter()
        .filter(|s| s.cli(&["GET", &victim]).unwrap() == "moved")
        .count();
    assert_eq!(
        holders, 1,
        "exactly one live server should hold the moved key"
    );
    // Bring it back: after the retry timeout it rejoins and keys route to it again.
    servers[0].start_again().unwrap();
    let mut back = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let _ = c.cmd(&["SET", &victim, "home"]).await;
        if servers[0].cli(&["GET", &victim]).unwrap_or_default() == "home" {
            back = true;
            break;
        }
    }
    assert!(back, "the server should rejoin the ring once it answers");
    attache.shutdown().await;
}
