//! End-to-end checks of the Redis side of the harness against real `redis-server`, sentinel
//! and nutcracker processes: auth, TLS, replicas, cluster slot moves, failover, proxying and
//! clean-up.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use attache_harness::redis::key_slot;
use attache_harness::{
    start_replica_of, RedisBuilder, RedisCluster, RedisServer, Sentinel, TestCerts, Twemproxy,
};

fn proc_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => true,
    }
}

fn poll(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn role(server: &RedisServer) -> String {
    let info = server.cli(&["INFO", "replication"]).unwrap();
    info.lines()
        .find_map(|l| l.trim().strip_prefix("role:").map(str::to_string))
        .unwrap()
}

#[test]
fn single_server_set_get_kill_and_restart() {
    let mut server = RedisBuilder::new().start().unwrap();
    assert_eq!(server.addr().port(), server.port());
    assert_eq!(
        server.cli(&["SET", "greeting", "hello world"]).unwrap(),
        "OK"
    );
    assert_eq!(server.cli(&["GET", "greeting"]).unwrap(), "hello world");
    assert_eq!(
        server.cli(&["CONFIG", "GET", "bind"]).unwrap(),
        "bind\n127.0.0.1"
    );
    let err = server.cli(&["NOSUCHCOMMAND"]).unwrap_err().to_string();
    assert!(err.contains("unknown command"), "{err}");

    let pid = server.pid().unwrap();
    server.kill9();
    assert!(proc_gone(pid));
    assert_eq!(server.pid(), None);
    assert!(server.cli(&["PING"]).is_err());
    server.start_again().unwrap();
    // Persistence is off, so a crash loses everything.
    assert_eq!(server.cli(&["EXISTS", "greeting"]).unwrap(), "0");
    server.stop();
    assert_eq!(server.pid(), None);
    server.start_again().unwrap();
    assert_eq!(server.cli(&["PING"]).unwrap(), "PONG");
}

#[test]
fn password_and_acl_user() {
    let server = RedisBuilder::new()
        .password("s3cret \"pw\"")
        .acl_user("alice", "al1ce pw")
        .start()
        .unwrap();
    assert_eq!(server.password(), Some("s3cret \"pw\""));
    assert_eq!(server.cli(&["ACL", "WHOAMI"]).unwrap(), "default");
    let anonymous = server.cli_as(None, None, &["GET", "x"]).unwrap_err();
    assert!(anonymous.to_string().contains("NOAUTH"), "{anonymous}");
    let alice = server.cli_as(Some("alice"), Some("al1ce pw"), &["ACL", "WHOAMI"]);
    assert_eq!(alice.unwrap(), "alice");
    let wrong = server
        .cli_as(Some("alice"), Some("wrong"), &["PING"])
        .unwrap_err();
    assert!(wrong.to_string().contains("WRONGPASS"), "{wrong}");
    let conf = std::fs::read_to_string(server.dir().join("redis.conf")).unwrap();
    assert!(conf.contains("requirepass"));
    assert!(!format!("{server:?}").contains("s3cret"));
}

#[test]
fn tls_port_serves_with_the_test_ca() {
    let certs = TestCerts::generate(&["localhost", "127.0.0.1"]).unwrap();
    let server = RedisBuilder::new().tls(&certs).start().unwrap();
    let tls_port = server.tls_port().unwrap().to_string();
    let ping = |ca: &PathBuf| {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &tls_port, "--tls", "--cacert"])
            .arg(ca)
            .arg("PING")
            .output()
            .unwrap()
    };
    let ok = ping(&certs.ca_cert);
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "PONG");
    let wrong = ping(&certs.other_ca_cert);
    assert_ne!(String::from_utf8_lossy(&wrong.stdout).trim(), "PONG");
    assert_eq!(server.cli(&["PING"]).unwrap(), "PONG", "plain port stays");
}

#[test]
fn replica_sees_writes() {
    let primary = RedisBuilder::new().password("pw").start().unwrap();
    let replica = start_replica_of(&primary).unwrap();
    assert_eq!(role(&primary), "master");
    assert_eq!(role(&replica), "slave");
    primary.cli(&["SET", "replicated", "7"]).unwrap();
    poll("the write to reach the replica", || {
        replica.cli(&["GET", "replicated"]).ok().as_deref() == Some("7")
    });
    let write = replica.cli(&["SET", "x", "1"]).unwrap_err();
    assert!(write.to_string().contains("READONLY"), "{write}");
}

#[test]
fn cluster_with_replicas_forms_three_shards() {
    let started = Instant::now();
    let cluster = RedisCluster::start(3, 1).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(cluster.nodes.len(), 6);
    for node in &cluster.nodes {
        let info = node.cli(&["CLUSTER", "INFO"]).unwrap();
        assert!(info.contains("cluster_state:ok"), "{info}");
    }
    let shards = cluster.nodes[0].cli(&["CLUSTER", "SHARDS"]).unwrap();
    assert_eq!(
        shards.lines().filter(|l| *l == "slots").count(),
        3,
        "{shards}"
    );
    let roles: Vec<String> = cluster.nodes.iter().map(role).collect();
    assert_eq!(
        roles,
        ["master", "master", "master", "slave", "slave", "slave"]
    );
    assert_eq!(
        cluster.primary_for_slot(0).unwrap().port(),
        cluster.nodes[0].port()
    );
    assert_eq!(
        cluster.primary_for_slot(16383).unwrap().port(),
        cluster.nodes[2].port()
    );
}

#[test]
fn migrate_slot_moves_the_slot_with_its_keys() {
    // A password exercises `--cluster create` and `MIGRATE … AUTH` with credentials.
    let builder = RedisBuilder::new().password("cluster pw");
    let cluster = RedisCluster::start_with(builder, 3, 0).unwrap();
    let slot = key_slot(b"{moving}");
    let slot_arg = slot.to_string();
    assert_eq!(
        cluster.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", "{moving}"])
            .unwrap(),
        slot_arg
    );
    let from = cluster.primary_for_slot(slot).unwrap();
    let to = cluster
        .nodes
        .iter()
        .find(|n| n.port() != from.port())
        .unwrap();
    let keys: Vec<String> = (0..150).map(|i| format!("{{moving}}:{i}")).collect();
    for key in &keys {
        from.cli(&["SET", key, key]).unwrap();
    }

    assert_eq!(cluster.migrate_slot(slot, from, to).unwrap(), keys.len());
    assert_eq!(cluster.primary_for_slot(slot).unwrap().port(), to.port());
    for key in [&keys[0], &keys[149]] {
        assert_eq!(to.cli(&["GET", key]).unwrap(), *key);
    }
    assert_eq!(
        from.cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot_arg])
            .unwrap(),
        "0"
    );
    assert_eq!(
        to.cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot_arg]).unwrap(),
        "150"
    );
    let moved = from.cli(&["GET", &keys[0]]).unwrap_err().to_string();
    assert!(
        moved.contains(&format!("MOVED {slot} {}", to.addr())),
        "{moved}"
    );
    cluster.wait_ok().unwrap();
}

#[test]
fn sentinel_reports_the_master_and_fails_over() {
    let primary = RedisBuilder::new().password("pw").start().unwrap();
    let first = start_replica_of(&primary).unwrap();
    let second = start_replica_of(&primary).unwrap();
    let sentinel = Sentinel::start(&primary, &[&first, &second], 2).unwrap();
    assert_eq!(sentinel.addrs().len(), 3);
    assert_eq!(sentinel.master_addr().unwrap(), primary.addr());
    let masters = sentinel.cli(&["SENTINEL", "MASTERS"]).unwrap();
    assert!(masters.contains(sentinel.master_name()), "{masters}");

    let promoted = sentinel.failover().unwrap();
    assert_ne!(promoted, primary.addr());
    assert_eq!(sentinel.master_addr().unwrap(), promoted);
    let new_primary = [&first, &second]
        .into_iter()
        .find(|r| r.addr() == promoted)
        .unwrap();
    assert_eq!(role(new_primary), "master");
    assert_eq!(
        new_primary.cli(&["SET", "after", "failover"]).unwrap(),
        "OK"
    );
    // Sentinel only reconfigures the old primary on its next 10 s INFO round, so a test that
    // needs it as a replica must wait for that itself.
}

#[test]
fn twemproxy_proxies_get_and_set_across_servers() {
    let a = RedisBuilder::new().start().unwrap();
    let b = RedisBuilder::new().start().unwrap();
    let proxy = Twemproxy::start(&[(&a, 1, "a"), (&b, 1, "b")], "fnv1a_64", "ketama").unwrap();
    for i in 0..40 {
        let key = format!("key:{i}");
        assert_eq!(proxy.cli(&["SET", &key, &i.to_string()]).unwrap(), "OK");
    }
    assert_eq!(proxy.cli(&["GET", "key:17"]).unwrap(), "17");
    let on_a: u32 = a.cli(&["DBSIZE"]).unwrap().parse().unwrap();
    let on_b: u32 = b.cli(&["DBSIZE"]).unwrap().parse().unwrap();
    assert_eq!(on_a + on_b, 40);
    assert!(on_a > 0 && on_b > 0, "keys not spread: {on_a}/{on_b}");
    // The hash tag pins related keys to one server.
    proxy.cli(&["SET", "{user}:1", "x"]).unwrap();
    proxy.cli(&["SET", "{user}:2", "y"]).unwrap();
    let holder = if a.cli(&["EXISTS", "{user}:1"]).unwrap() == "1" {
        &a
    } else {
        &b
    };
    assert_eq!(holder.cli(&["EXISTS", "{user}:2"]).unwrap(), "1");
}

#[test]
fn twemproxy_forwards_the_servers_password() {
    let server = RedisBuilder::new().password("proxy pw").start().unwrap();
    let proxy = Twemproxy::start(&[(&server, 1, "only")], "murmur", "modula").unwrap();
    assert_eq!(proxy.cli(&["SET", "k", "v"]).unwrap(), "OK");
    assert_eq!(server.cli(&["GET", "k"]).unwrap(), "v");
    let anonymous = Command::new("redis-cli")
        .args(["-p", &proxy.port().to_string(), "-e", "GET", "k"])
        .env_remove("REDISCLI_AUTH")
        .output()
        .unwrap();
    assert!(!anonymous.status.success());
}

#[test]
fn drop_kills_every_process_and_removes_dirs() {
    let primary = RedisBuilder::new().start().unwrap();
    let replica = start_replica_of(&primary).unwrap();
    let sentinel = Sentinel::start(&primary, &[&replica], 1).unwrap();
    let proxy = Twemproxy::start(&[(&primary, 1, "p")], "fnv1a_64", "ketama").unwrap();
    let mut pids = vec![
        primary.pid().unwrap(),
        replica.pid().unwrap(),
        proxy.pid().unwrap(),
    ];
    pids.extend(sentinel.pids());
    assert_eq!(pids.len(), 6);
    let dirs = [
        primary.dir().to_path_buf(),
        replica.dir().to_path_buf(),
        proxy.dir().to_path_buf(),
    ];
    drop((sentinel, proxy, replica, primary));
    for pid in pids {
        assert!(proc_gone(pid), "pid {pid} survived");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
}

#[test]
fn drop_during_panic_kills_the_server() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let server = RedisBuilder::new().start().unwrap();
        seen = Some((server.pid().unwrap(), server.dir().to_path_buf()));
        panic!("test failure while a server runs");
    }));
    assert!(result.is_err());
    let (pid, dir) = seen.unwrap();
    assert!(proc_gone(pid));
    assert!(!dir.exists());
}

/// Child half of `watchdog_cleans_up_after_sigkill`: starts a server, reports it, then waits
/// to be killed. Ignored unless run by that test.
#[test]
#[ignore = "helper process for watchdog_cleans_up_after_sigkill"]
fn redis_orphan_helper() {
    if std::env::var_os("ATTACHE_HARNESS_REDIS_ORPHAN").is_none() {
        return;
    }
    let server = RedisBuilder::new().start().unwrap();
    println!("READY {} {}", server.pid().unwrap(), server.dir().display());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn watchdog_cleans_up_after_sigkill() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "redis_orphan_helper",
            "--include-ignored",
            "--nocapture",
        ])
        .env("ATTACHE_HARNESS_REDIS_ORPHAN", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines
        .find_map(|l| l.unwrap().strip_prefix("READY ").map(str::to_string))
        .expect("helper never reported its server");
    let (pid, dir) = ready.split_once(' ').unwrap();
    let (pid, dir): (u32, PathBuf) = (pid.parse().unwrap(), PathBuf::from(dir));
    assert!(!proc_gone(pid));

    child.kill().unwrap(); // SIGKILL: no Drop runs in the helper
    child.wait().unwrap();
    poll("the orphaned redis-server to die", || proc_gone(pid));
    poll("the orphaned temp dir to disappear", || !dir.exists());
}
