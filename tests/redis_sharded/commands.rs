//! Commands through `sharded` mode: multi-key commands split across nodes
//! and merged, those that must stay on one node, keyless fan-out,
//! transactions and blocking pops (see the parent file for the setup).

use std::collections::{BTreeSet, HashMap};

use super::*;

// ---------------------------------------------------------------- 2. split commands

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_multi_key_commands_merge_correctly() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "").await;
    let keys = scattered("m:", 30);
    let homes = sh.homes(&keys).await;
    for n in 0..3 {
        assert!(homes.contains(&n), "test keys span every node: {homes:?}");
    }
    let mut c = sh.client().await;

    let mut mset = vec!["MSET".to_string()];
    for k in &keys {
        mset.extend([k.clone(), format!("v-{k}")]);
    }
    assert_eq!(c.cmd(&mset).await, Resp::ok());
    let held = sh.holders();
    let want: BTreeMap<String, usize> = keys.iter().cloned().zip(homes.clone()).collect();
    assert_eq!(
        held, want,
        "each server holds exactly its own keys after MSET"
    );

    // MGET keeps the client's order, with nil for missing keys anywhere.
    let mut mget = vec!["MGET".to_string()];
    let mut expect = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i % 4 == 0 {
            mget.push(format!("missing:{i}"));
            expect.push(Resp::Nil);
        }
        mget.push(k.clone());
        expect.push(Resp::bulk(&format!("v-{k}")));
    }
    mget.push("missing:end".into());
    expect.push(Resp::Nil);
    assert_eq!(c.cmd(&mget).await, Resp::Array(expect));

    // Counts add up over the nodes; EXISTS counts a repeated key twice.
    let k = |i: usize| keys[i].as_str();
    let exists = ["EXISTS", k(0), k(1), k(1), k(2), "missing", k(3)];
    assert_eq!(c.cmd(&exists).await, Resp::Int(5));
    let mut touch = vec!["TOUCH".to_string(), "missing".into()];
    touch.extend(keys.iter().cloned());
    assert_eq!(c.cmd(&touch).await, Resp::Int(30));

    let mut del = vec!["DEL".to_string()];
    del.extend(keys[..10].iter().cloned());
    del.push("missing".into());
    assert_eq!(c.cmd(&del).await, Resp::Int(10));
    let mut unlink = vec!["UNLINK".to_string(), "missing".into()];
    unlink.extend(keys[10..20].iter().cloned());
    assert_eq!(c.cmd(&unlink).await, Resp::Int(10));

    let mut exists = vec!["EXISTS".to_string()];
    exists.extend(keys.iter().cloned());
    assert_eq!(c.cmd(&exists).await, Resp::Int(10));
    let left: BTreeMap<String, usize> = keys[20..]
        .iter()
        .cloned()
        .zip(homes[20..].to_vec())
        .collect();
    assert_eq!(sh.holders(), left, "DEL/UNLINK removed exactly their keys");
    let reply = c.cmd(&["MGET", k(0), k(25), k(15), k(29)]).await;
    let want = vec![
        Resp::Nil,
        Resp::bulk(&format!("v-{}", k(25))),
        Resp::Nil,
        Resp::bulk(&format!("v-{}", k(29))),
    ];
    assert_eq!(reply, Resp::Array(want));
}

// ---------------------------------------------------------------- 3. CROSSSLOT

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_multi_key_commands_need_one_node() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "").await;
    let [a, b, _] = sh.key_per_node("set:").await;
    let mut c = sh.client().await;
    assert_eq!(c.cmd(&["SADD", &a, "x"]).await, Resp::Int(1));
    assert_eq!(c.cmd(&["SADD", &b, "y"]).await, Resp::Int(1));

    let script = "return redis.call('SUNION', KEYS[1], KEYS[2])";
    let cross: [Vec<&str>; 4] = [
        vec!["SUNION", &a, &b],
        vec!["RENAME", &a, &b],
        vec!["EVAL", script, "2", &a, &b],
        vec!["SUNIONSTORE", &a, &a, &b],
    ];
    for cmd in &cross {
        assert_eq!(c.cmd(cmd).await.err(), CROSS, "{cmd:?}");
    }
    let held = sh.holders();
    assert_eq!((held[&a], held[&b]), (0, 1), "nothing moved or renamed");
    assert_eq!(
        c.cmd(&["SMEMBERS", &a]).await,
        Resp::Array(vec![Resp::bulk("x")])
    );

    // The same commands work when a hash tag puts the keys together.
    let (ta, tb, tc) = ("{grp}a", "{grp}b", "{grp}c");
    assert_eq!(c.cmd(&["SADD", ta, "x"]).await, Resp::Int(1));
    assert_eq!(c.cmd(&["SADD", tb, "y"]).await, Resp::Int(1));
    let sorted = |r: Resp| {
        let mut v: Vec<String> = r.items().iter().map(Resp::text).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(c.cmd(&["SUNION", ta, tb]).await), ["x", "y"]);
    assert_eq!(
        sorted(c.cmd(&["EVAL", script, "2", ta, tb]).await),
        ["x", "y"]
    );
    assert_eq!(c.cmd(&["RENAME", ta, tc]).await, Resp::ok());
    let held = sh.holders();
    assert!(!held.contains_key(ta), "renamed away");
    assert_eq!(held[tc], held[tb], "the renamed key stays with its tag");
}

// ---------------------------------------------------------------- 4. keyless fan-out

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_commands_fan_out_to_every_node() {
    let sh = Shards::start("murmur", [1, 1, 1], "").await;
    let keys: Vec<String> = (0..500).map(|i| format!("s:{i}")).collect();
    set_all(sh.addr, &keys).await;
    let sizes = sh.dbsizes().await;
    assert!(
        sizes.iter().all(|n| *n > 0),
        "keys on every node: {sizes:?}"
    );
    let mut c = sh.client().await;
    assert_eq!(c.cmd(&["DBSIZE"]).await, Resp::Int(500));

    let set_of = |r: Resp| -> BTreeSet<String> { r.items().iter().map(Resp::text).collect() };
    let want: BTreeSet<String> = keys
        .iter()
        .filter(|k| k.starts_with("s:1"))
        .cloned()
        .collect();
    assert_eq!(set_of(c.cmd(&["KEYS", "s:1*"]).await), want);
    assert_eq!(c.cmd(&["KEYS", "*"]).await.items().len(), 500);

    // Let the servers finish any incremental rehash, which could make a
    // server's own SCAN repeat a key.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let reply = c.cmd(&["SCAN", &cursor, "COUNT", "10"]).await;
        let [next, batch] = reply.items() else {
            panic!("SCAN reply: {reply:?}")
        };
        for k in batch.items() {
            *seen.entry(k.text()).or_default() += 1;
        }
        cursor = next.text();
        rounds += 1;
        assert!(rounds < 1000, "SCAN does not end (cursor {cursor})");
        if cursor == "0" {
            break;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "SCAN repeated keys: {twice:?}");
    let seen: BTreeSet<String> = seen.into_keys().collect();
    assert_eq!(seen, keys.iter().cloned().collect::<BTreeSet<_>>());
    assert!(rounds > 3, "COUNT 10 over 500 keys takes many rounds");

    assert_eq!(c.cmd(&["FLUSHDB"]).await, Resp::ok());
    assert_eq!(sh.dbsizes().await, [0, 0, 0]);
    assert_eq!(c.cmd(&["DBSIZE"]).await, Resp::Int(0));
}

// ---------------------------------------------------------------- 5. transactions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_run_on_one_node() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "").await;
    let [x, y, w] = sh.key_per_node("tx:").await;
    let mut c = sh.client().await;

    let ok_txn: [(&[&str], Resp); 5] = [
        (&["MULTI"], Resp::ok()),
        (&["SET", "{t}a", "1"], Resp::queued()),
        (&["INCR", "{t}a"], Resp::queued()),
        (&["SET", "{t}b", "hi"], Resp::queued()),
        (
            &["EXEC"],
            Resp::Array(vec![Resp::ok(), Resp::Int(2), Resp::ok()]),
        ),
    ];
    for (cmd, want) in ok_txn {
        assert_eq!(c.cmd(cmd).await, want, "{cmd:?}");
    }
    assert_eq!(
        c.cmd(&["MGET", "{t}a", "{t}b"]).await.items()[0],
        Resp::bulk("2")
    );

    // A command for another node poisons the transaction.
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(c.cmd(&["SET", &x, "1"]).await, Resp::queued());
    assert_eq!(c.cmd(&["SET", &y, "1"]).await.err(), CROSS);
    let exec = c.cmd(&["EXEC"]).await;
    assert!(exec.err().starts_with("EXECABORT"), "{exec:?}");
    assert_eq!(
        c.cmd(&["MGET", &x, &y]).await,
        Resp::Array(vec![Resp::Nil; 2])
    );
    assert!(
        sh.holders().keys().all(|k| k.starts_with("{t}")),
        "nothing applied"
    );

    // Also when the very first command already spans nodes.
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(c.cmd(&["MSET", &x, "1", &y, "2"]).await.err(), CROSS);
    assert!(c.cmd(&["EXEC"]).await.err().starts_with("EXECABORT"));
    assert_eq!(c.cmd(&["EXISTS", &x, &y]).await, Resp::Int(0));

    // WATCH: a change by another client aborts EXEC with a nil reply.
    let mut other = sh.client().await;
    assert_eq!(c.cmd(&["WATCH", &w]).await, Resp::ok());
    assert_eq!(other.cmd(&["SET", &w, "theirs"]).await, Resp::ok());
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(c.cmd(&["SET", &w, "mine"]).await, Resp::queued());
    assert_eq!(c.cmd(&["EXEC"]).await, Resp::Nil);
    assert_eq!(c.cmd(&["GET", &w]).await, Resp::bulk("theirs"));
    // Unchanged, the same transaction commits.
    assert_eq!(c.cmd(&["WATCH", &w]).await, Resp::ok());
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(c.cmd(&["SET", &w, "mine"]).await, Resp::queued());
    assert_eq!(c.cmd(&["EXEC"]).await, Resp::Array(vec![Resp::ok()]));
    assert_eq!(other.cmd(&["GET", &w]).await, Resp::bulk("mine"));
    // WATCH ties the transaction to the watched key's node.
    assert_eq!(c.cmd(&["WATCH", &w]).await, Resp::ok());
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(c.cmd(&["SET", &x, "1"]).await.err(), CROSS);
    assert!(c.cmd(&["EXEC"]).await.err().starts_with("EXECABORT"));
    assert_eq!(c.cmd(&["EXISTS", &x]).await, Resp::Int(0));
    assert_eq!(c.cmd(&["PING"]).await, Resp::Simple("PONG".into()));
}

/// Redis's transaction rules where Attaché answers for the server: a
/// rejected command poisons MULTI; keyless commands before the first
/// keyed one wait for its node (instead of tying the transaction to the
/// first node); UNWATCH inside MULTI is queued; WATCH inside MULTI is an
/// error that leaves the transaction open; and between WATCH and MULTI a
/// command for another node simply runs there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_rules_match_redis() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "").await;
    let [x, y, w] = sh.key_per_node("rules:").await;
    let mut c = sh.client().await;
    let pong = Resp::Simple("PONG".into());

    // An unknown command inside MULTI: EXECABORT, nothing applied.
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(c.cmd(&["SET", &x, "1"]).await, Resp::queued());
    let unknown = c.cmd(&["FOOBAR", "a"]).await;
    assert!(
        unknown.err().starts_with("ERR unknown command"),
        "{unknown:?}"
    );
    let exec = c.cmd(&["EXEC"]).await;
    assert!(exec.err().starts_with("EXECABORT"), "{exec:?}");
    assert_eq!(c.cmd(&["EXISTS", &x]).await, Resp::Int(0));
    // So does one refused before any keyed command.
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert!(!c.cmd(&["SELECT", "1"]).await.err().is_empty());
    assert_eq!(c.cmd(&["SET", &x, "1"]).await, Resp::queued());
    assert!(c.cmd(&["EXEC"]).await.err().starts_with("EXECABORT"));
    assert_eq!(c.cmd(&["EXISTS", &x]).await, Resp::Int(0));

    // Keyless first, then keys of any one node, with UNWATCH queued.
    for k in [&x, &y, &w] {
        assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
        assert_eq!(c.cmd(&["PING"]).await, Resp::queued());
        assert_eq!(c.cmd(&["UNWATCH"]).await, Resp::queued());
        assert_eq!(c.cmd(&["SET", k, "v"]).await, Resp::queued());
        assert_eq!(c.cmd(&["APPEND", k, "w"]).await, Resp::queued());
        let done = c.cmd(&["EXEC"]).await;
        assert_eq!(
            done,
            Resp::Array(vec![pong.clone(), Resp::ok(), Resp::ok(), Resp::Int(2)]),
            "{k}"
        );
    }
    assert_eq!(c.cmd(&["EXISTS", &x, &y, &w]).await, Resp::Int(3));
    // Only keyless commands: run on some node, all replies there.
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(c.cmd(&["PING"]).await, Resp::queued());
    assert_eq!(c.cmd(&["ECHO", "hi"]).await, Resp::queued());
    let done = c.cmd(&["EXEC"]).await;
    assert_eq!(done, Resp::Array(vec![pong.clone(), Resp::bulk("hi")]));

    // WATCH inside MULTI: an error, and the transaction goes on.
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    let nested = c.cmd(&["WATCH", &x]).await;
    assert_eq!(nested.err(), "ERR WATCH inside MULTI is not allowed");
    assert_eq!(c.cmd(&["SET", &x, "again"]).await, Resp::queued());
    assert_eq!(c.cmd(&["EXEC"]).await, Resp::Array(vec![Resp::ok()]));
    assert_eq!(c.cmd(&["GET", &x]).await, Resp::bulk("again"));

    // Between WATCH and MULTI, a read of another node's key just runs.
    assert_eq!(c.cmd(&["WATCH", &w]).await, Resp::ok());
    assert_eq!(c.cmd(&["GET", &y]).await, Resp::bulk("vw"));
    assert_eq!(c.cmd(&["MGET", &x, &y]).await.items().len(), 2);
    assert_eq!(c.cmd(&["MULTI"]).await, Resp::ok());
    assert_eq!(c.cmd(&["SET", &w, "watched"]).await, Resp::queued());
    assert_eq!(c.cmd(&["EXEC"]).await, Resp::Array(vec![Resp::ok()]));
    assert_eq!(c.cmd(&["GET", &w]).await, Resp::bulk("watched"));
}

/// Scripts are loaded on every node, so EVALSHA works whichever node its
/// key lives on; SCRIPT EXISTS and FLUSH cover all nodes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_load_on_every_node() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "").await;
    let keys = sh.key_per_node("lua:").await;
    let mut c = sh.client().await;
    let body = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let sha = match c.cmd(&["SCRIPT", "LOAD", body]).await {
        Resp::Bulk(s) => s,
        other => panic!("{other:?}"),
    };
    for k in &keys {
        assert_eq!(c.cmd(&["EVALSHA", &sha, "1", k, "5"]).await, Resp::Int(5));
    }
    for i in 0..3 {
        let mut d = sh.direct(i).await;
        let there = d.cmd(&["SCRIPT", "EXISTS", &sha]).await;
        assert_eq!(there, Resp::Array(vec![Resp::Int(1)]), "node {i}");
    }
    // Missing on one node: not there as far as the client can use it.
    let mut d = sh.direct(1).await;
    assert_eq!(d.cmd(&["SCRIPT", "FLUSH"]).await, Resp::ok());
    let exists = c.cmd(&["SCRIPT", "EXISTS", &sha, "0000"]).await;
    assert_eq!(exists, Resp::Array(vec![Resp::Int(0), Resp::Int(0)]));
    assert_eq!(
        c.cmd(&["SCRIPT", "LOAD", body]).await,
        Resp::Bulk(sha.clone())
    );
    let exists = c.cmd(&["SCRIPT", "EXISTS", &sha]).await;
    assert_eq!(exists, Resp::Array(vec![Resp::Int(1)]));
    assert_eq!(c.cmd(&["SCRIPT", "FLUSH"]).await, Resp::ok());
    // Function libraries too: FCALL works for a key on any node.
    let lib = "#!lua name=attachelib\nredis.register_function('attache_incr', \
               function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)";
    let loaded = c.cmd(&["FUNCTION", "LOAD", lib]).await;
    assert_eq!(loaded, Resp::bulk("attachelib"));
    for k in &keys {
        let r = c.cmd(&["FCALL", "attache_incr", "1", k, "1"]).await;
        assert_eq!(r, Resp::Int(6), "{k}");
    }
    assert_eq!(
        c.cmd(&["FUNCTION", "DELETE", "attachelib"]).await,
        Resp::ok()
    );
    for i in 0..3 {
        let mut d = sh.direct(i).await;
        let there = d.cmd(&["SCRIPT", "EXISTS", &sha]).await;
        assert_eq!(there, Resp::Array(vec![Resp::Int(0)]), "node {i}");
    }
}

// ---------------------------------------------------------------- 6. blocking

/// Keys on different nodes cannot be waited on together: CROSSSLOT, as
/// for any multi-key command that must stay on one node (not a wait on
/// the first node, which holds neither key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_pop_over_two_nodes_is_crossslot() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "").await;
    let [x, y, _] = sh.key_per_node("bq:").await;
    let mut c = sh.client().await;
    let started = Instant::now();
    assert_eq!(c.cmd(&["BLPOP", &x, &y, "2"]).await.err(), CROSS);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert_eq!(c.cmd(&["PING"]).await, Resp::Simple("PONG".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_pop_waits_on_the_keys_node() {
    let sh = Shards::start("fnv1a_64", [1, 1, 1], "").await;
    let keys = sh.key_per_node("q:").await;
    for (node, k) in keys.iter().enumerate() {
        let mut popper = sh.client().await;
        let started = Instant::now();
        popper.send(&["BLPOP", k, "5"]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut pusher = sh.client().await;
        assert_eq!(pusher.cmd(&["LPUSH", k, "x"]).await, Resp::Int(1));
        let got = popper.read_within(Duration::from_secs(4)).await;
        let want = Resp::Array(vec![Resp::bulk(k), Resp::bulk("x")]);
        assert_eq!(got, Some(want), "BLPOP on node {node}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "woken by the push"
        );
        assert_eq!(pusher.cmd(&["EXISTS", k]).await, Resp::Int(0));
    }
}
