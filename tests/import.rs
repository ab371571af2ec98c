//! `attache import`: a pgbouncer.ini and a nutcracker.yml become configs
//! that run. The Postgres one serves a SCRAM user of a real server; the
//! Redis one places every key on the same shard a real twemproxy with the
//! same file does (read back from the servers, never predicted); and the
//! built binary reports what it could not map.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use attache::app::Attache;
use attache::config::{AuthMethod, PoolMode};
use attache::import::{import_file, Format, Imported};
use attache_harness::{RedisBuilder, RedisServer, Twemproxy};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

fn unmapped_keys(i: &Imported) -> Vec<&str> {
    i.unmapped.iter().map(|u| u.key.as_str()).collect()
}

// ------------------------------------------------------------- PgBouncer

#[test]
fn pgbouncer_fixture_maps_settings_users_and_databases() {
    let imported = import_file(&fixtures().join("pgbouncer.ini"), None).expect("imports");
    assert_eq!(imported.format, Format::Pgbouncer);
    let pg = attache::config::parse(&imported.toml)
        .expect("the output loads")
        .postgres
        .expect("[postgres]");
    assert_eq!(pg.listen, "0.0.0.0:6432");
    assert_eq!(pg.auth, AuthMethod::ScramSha256);
    assert_eq!(pg.max_client_connections, 5000);
    assert_eq!(pg.pool.pool_size, Some(20));
    assert_eq!(pg.pool.min_idle, Some(2));
    assert_eq!(pg.pool.pool_mode, Some(PoolMode::Transaction));
    assert_eq!(
        pg.pool.resolve().checkout_timeout,
        Duration::from_secs(10),
        "query_wait_timeout"
    );
    let nodes = |db: &str| -> Vec<String> {
        pg.databases[db]
            .nodes
            .iter()
            .map(|n| n.addr.clone())
            .collect()
    };
    assert_eq!(nodes("billing"), ["10.0.0.10:5432"]);
    assert_eq!(nodes("reports"), ["10.0.0.11:5433"]);
    assert_eq!(nodes("*"), ["10.0.0.10:5432"]);
    assert_eq!(pg.databases["billing"].pool.pool_size, Some(40));
    assert_eq!(
        pg.databases["reports"].pool.pool_mode,
        Some(PoolMode::Session)
    );
    assert_eq!(
        pg.users.keys().collect::<Vec<_>>(),
        ["app", "batch", "reporting"]
    );
    assert_eq!(
        pg.users["batch"].password.as_ref().unwrap().expose(),
        "batch-secret"
    );
    assert_eq!(pg.users["batch"].pool.pool_mode, Some(PoolMode::Session));
    let keys = unmapped_keys(&imported);
    for k in [
        "pgbouncer.admin_users",
        "pgbouncer.logfile",
        "databases.legacy.password",
        "auth_file.legacy_app",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    let head: Vec<&str> = imported.toml.lines().take(keys.len() + 1).collect();
    assert!(head[0].starts_with("# Imported from pgbouncer.ini (pgbouncer)"));
    assert!(head[1..].iter().all(|l| l.starts_with("# not mapped: ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_pgbouncer_config_serves_a_scram_user() {
    let server = tokio::task::block_in_place(|| {
        PgBuilder::new()
            .auth(HbaAuth::Scram)
            .user("app", "app-secret")
            .database("app")
            .start()
    })
    .expect("postgres starts");
    let dir = tempfile::tempdir().unwrap();
    let ini = format!(
        "; written by the test\n[databases]\nappdb = host=127.0.0.1 port={} dbname=app pool_size=3\n\n\
         [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 6432\nauth_type = scram-sha-256\n\
         auth_file = userlist.txt\npool_mode = transaction\ndefault_pool_size = 4\n\
         admin_users = postgres\n",
        server.port()
    );
    std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
    std::fs::write(dir.path().join("userlist.txt"), "\"app\" \"app-secret\"\n").unwrap();
    let imported = import_file(&dir.path().join("pgbouncer.ini"), None).expect("imports");
    assert_eq!(unmapped_keys(&imported), ["pgbouncer.admin_users"]);
    assert!(imported.toml.contains(&format!(
        "nodes = [{{ addr = \"127.0.0.1:{}\" }}]",
        server.port()
    )));

    let attache = start_attache(&imported.toml).await;
    let addr = attache.postgres_addr.expect("postgres listener");
    let client = connect(addr, "app", "appdb", Some("app-secret")).await;
    let row = client
        .query_one(
            "select current_user::text, current_database()::text, 6 * 7",
            &[],
        )
        .await
        .expect("query through attache");
    assert_eq!(row.get::<_, String>(0), "app");
    assert_eq!(row.get::<_, String>(1), "app", "dbname= was applied");
    assert_eq!(row.get::<_, i32>(2), 42);
    let wrong = try_connect(addr, "app", "appdb", Some("wrong")).await;
    let Err(e) = wrong else {
        panic!("a wrong password must be refused");
    };
    assert_eq!(sqlstate(&e).as_deref(), Some("28P01"));
    drop(client);
    attache.shutdown().await;
}

// ------------------------------------------------------------- twemproxy

/// A raw RESP2 connection: twemproxy refuses the CLIENT commands a Redis
/// client library sends on connect.
struct Resp {
    io: BufReader<TcpStream>,
}

impl Resp {
    async fn connect(addr: SocketAddr) -> Resp {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Resp {
            io: BufReader::new(tcp),
        }
    }

    /// Sends one command; returns a simple or bulk reply (`None` for nil).
    async fn cmd(&mut self, args: &[&str]) -> Option<String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.io.get_mut().write_all(out.as_bytes()).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), self.read())
            .await
            .expect("reply within 10 s");
        reply
    }

    async fn read(&mut self) -> Option<String> {
        let mut line = String::new();
        self.io.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        match line.as_bytes().first() {
            Some(b'+') => Some(line[1..].to_string()),
            Some(b'$') if line == "$-1" => None,
            Some(b'$') => {
                let n: usize = line[1..].parse().unwrap();
                let mut buf = vec![0; n + 2];
                self.io.read_exact(&mut buf).await.unwrap();
                Some(String::from_utf8(buf[..n].to_vec()).unwrap())
            }
            _ => panic!("unexpected reply {line:?}"),
        }
    }
}

const NAMES: [&str; 2] = ["alpha", "beta"];
const WEIGHTS: [u32; 2] = [1, 2];

fn keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..46).map(|i| format!("user:{i}:profile")).collect();
    keys.extend(["{cart}:1", "{cart}:2", "x{cart}y", "plain"].map(String::from));
    keys
}

/// Which server holds each key, from the servers themselves.
fn holders(servers: &[RedisServer]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (i, s) in servers.iter().enumerate() {
        let text = tokio::task::block_in_place(|| s.cli(&["--scan"])).expect("redis-cli");
        for key in text.lines().filter(|l| !l.is_empty()) {
            assert!(out.insert(key.to_string(), i).is_none(), "{key} twice");
        }
    }
    out
}

async fn set_and_get(addr: SocketAddr, keys: &[String]) {
    let mut c = Resp::connect(addr).await;
    for k in keys {
        assert_eq!(
            c.cmd(&["SET", k, k]).await.as_deref(),
            Some("OK"),
            "SET {k}"
        );
    }
    for k in keys {
        assert_eq!(c.cmd(&["GET", k]).await.as_deref(), Some(k.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_nutcracker_places_keys_where_twemproxy_does() {
    let servers: Vec<RedisServer> = tokio::task::block_in_place(|| {
        (0..2)
            .map(|_| RedisBuilder::new().start().expect("redis-server starts"))
            .collect()
    });
    let dir = tempfile::tempdir().unwrap();
    let yml = format!(
        "# written by the test\ncache:\n  listen: 127.0.0.1:22121\n  hash: murmur\n  hash_tag: \"{{}}\"\n  \
         distribution: ketama\n  auto_eject_hosts: false\n  redis: true\n  timeout: 2000\n  \
         preconnect: true\n  servers:\n   - 127.0.0.1:{}:{} {}\n   - 127.0.0.1:{}:{} {}\n\
         sessions:\n  listen: 127.0.0.1:22122\n  redis: true\n  servers:\n   - 127.0.0.1:1:1\n",
        servers[0].port(),
        WEIGHTS[0],
        NAMES[0],
        servers[1].port(),
        WEIGHTS[1],
        NAMES[1]
    );
    let path = dir.path().join("nutcracker.yml");
    std::fs::write(&path, yml).unwrap();
    let imported = import_file(&path, None).expect("imports");
    assert_eq!(
        unmapped_keys(&imported),
        ["pool sessions", "cache.preconnect"]
    );
    let mut cfg = attache::config::parse(&imported.toml).expect("loads");
    let redis = cfg.redis.as_mut().expect("[redis]");
    assert_eq!(redis.hash, "murmur");
    assert_eq!(redis.command_timeout.0, Duration::from_secs(2));
    let ours = (redis.nodes.clone(), redis.hash_tag.clone());
    redis.listen = "127.0.0.1:0".into();
    let attache = Attache::start(cfg).await.expect("attache starts");
    let keys = keys();
    set_and_get(attache.redis_addr.expect("redis listener"), &keys).await;
    let via_attache = holders(&servers);
    assert_eq!(via_attache.len(), keys.len(), "every key stored once");
    let per_shard = |h: &BTreeMap<String, usize>, i| h.values().filter(|&&s| s == i).count();
    assert!(per_shard(&via_attache, 0) > 0 && per_shard(&via_attache, 1) > 0);
    for s in &servers {
        tokio::task::block_in_place(|| s.cli(&["FLUSHALL"])).expect("FLUSHALL");
    }

    let pool: Vec<(&RedisServer, u32, &str)> = (0..2)
        .map(|i| (&servers[i], WEIGHTS[i], NAMES[i]))
        .collect();
    let proxy = tokio::task::block_in_place(|| Twemproxy::start(&pool, "murmur", "ketama"))
        .expect("nutcracker starts");
    // twemproxy's own file imports to the same ring as ours.
    let theirs = import_file(&proxy.dir().join("nutcracker.yml"), None).expect("imports");
    let theirs = attache::config::parse(&theirs.toml).unwrap().redis.unwrap();
    assert_eq!((theirs.nodes, theirs.hash_tag), ours);
    set_and_get(proxy.addr(), &keys).await;
    let via_twemproxy = holders(&servers);
    assert_eq!(
        via_attache, via_twemproxy,
        "key → shard, Attaché vs twemproxy"
    );
    attache.shutdown().await;
}

// ------------------------------------------------------------- CLI

fn attache(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_attache"))
        .args(args)
        .output()
        .expect("run attache")
}

#[test]
fn cli_writes_the_file_and_reports_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("attache.toml");
    let ini = fixtures().join("pgbouncer.ini");
    let run = attache(&["import", ini.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(run.stdout.is_empty(), "the TOML goes to the file only");
    assert!(
        stderr.contains("not mapped: pgbouncer.admin_users = postgres (not imported: "),
        "{stderr}"
    );
    assert!(stderr.contains("not mapped: databases.legacy.password = <redacted> ("));
    assert!(stderr.contains("not mapped: %include (line 4) = /etc/pgbouncer/pgbouncer-local.ini"));
    assert!(stderr.contains("14 setting(s) not mapped"), "{stderr}");
    assert!(!stderr.contains("legacy-db-secret") && !stderr.contains("app-secret"));
    let text = std::fs::read_to_string(&out).unwrap();
    let cfg = attache::config::parse(&text).expect("the written file loads");
    assert_eq!(cfg.postgres.unwrap().listen, "0.0.0.0:6432");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "it holds passwords");
    }
    // `attache check` accepts what `attache import` wrote.
    let check = attache(&["check", "-c", out.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn cli_prints_to_stdout_and_fails_loudly() {
    let yml = fixtures().join("nutcracker.yml");
    let run = attache(&["import", yml.to_str().unwrap()]);
    assert!(run.status.success());
    let stdout = String::from_utf8(run.stdout).unwrap();
    let cfg = attache::config::parse(&stdout).expect("stdout is the config");
    assert_eq!(cfg.redis.unwrap().nodes.len(), 3);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("not mapped: pool ratelimit = (1 servers)"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("proxy.conf");
    std::fs::write(&odd, "pool:\n  redis: true\n  distribution: modula\n  servers:\n   - 10.0.0.1:6379:1\n   - 10.0.0.2:6379:1\n").unwrap();
    let mystery = dir.path().join("mystery.conf");
    std::fs::write(&mystery, "[general]\nshutdown_timeout = \"1s\"\n").unwrap();
    let unknown = attache(&["import", mystery.to_str().unwrap()]);
    assert!(!unknown.status.success());
    let unknown_err = String::from_utf8_lossy(&unknown.stderr);
    assert!(unknown_err.contains("pass --format"), "{unknown_err}");
    let modula = attache(&["import", "--format", "nutcracker", odd.to_str().unwrap()]);
    assert!(!modula.status.success());
    let modula_err = String::from_utf8_lossy(&modula.stderr);
    assert!(
        modula_err.contains("distribution \"modula\""),
        "{modula_err}"
    );
}
