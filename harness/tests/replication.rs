//! End-to-end checks of the harness' streaming replication against real PostgreSQL servers:
//! a primary with two hot standbys, a synchronous one, replay pause, a crash of the primary
//! and promotion, as the proxy's read/write-splitting and failover tests use them.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use attache_harness::{HarnessError, PgBuilder, PgServer};

/// Runs `sql` on database `postgres` and returns its output, panicking with the error.
fn sql(server: &PgServer, sql: &str) -> String {
    server
        .psql("postgres", sql)
        .unwrap_or_else(|e| panic!("port {}: {sql}: {e}", server.port()))
}

fn rows(server: &PgServer) -> String {
    sql(server, "SELECT string_agg(x::text, ',' ORDER BY x) FROM t")
}

fn sync_states(primary: &PgServer) -> String {
    sql(
        primary,
        "SELECT string_agg(application_name || '=' || sync_state, ',' ORDER BY application_name) \
         FROM pg_stat_replication",
    )
}

/// True while some process' command line mentions `dir` (a postmaster runs `postgres -D dir`).
fn process_mentions(dir: &str) -> bool {
    let entries = std::fs::read_dir("/proc").unwrap();
    entries.filter_map(Result::ok).any(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&cmdline).contains(dir)
    })
}

#[test]
fn primary_with_two_replicas_sync_pause_crash_and_promotion() {
    let mut primary = PgBuilder::new()
        .user("app", "secret")
        .database("appdb")
        .start()
        .unwrap();
    sql(&primary, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let r1 = primary.start_replica("r1").unwrap();
    let r2 = primary.start_replica("r2").unwrap();
    let roots: Vec<PathBuf> = [&primary, &r1, &r2]
        .iter()
        .map(|s| s.data_dir().parent().unwrap().to_path_buf())
        .collect();

    // Each replica listens on its own port and streams from the primary under its name; the
    // roles and databases came along with the base backup.
    assert_eq!(sql(&r1, "SHOW port"), r1.port().to_string());
    let conninfo = sql(&r2, "SHOW primary_conninfo");
    assert!(
        conninfo.contains(&format!("port={}", primary.port())),
        "{conninfo}"
    );
    assert!(conninfo.contains("application_name='r2'"), "{conninfo}");
    assert_eq!(sync_states(&primary), "r1=async,r2=async");
    assert_eq!(
        sql(&r1, "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"),
        "1"
    );
    assert_eq!(
        sql(
            &r1,
            "SELECT count(*) FROM pg_database WHERE datname = 'appdb'"
        ),
        "1"
    );
    assert!(matches!(
        primary.start_replica("has space"),
        Err(HarnessError::InvalidSetting(_))
    ));

    sql(&primary, "INSERT INTO t VALUES (2)");
    r1.wait_caught_up(&primary).unwrap();
    r2.wait_caught_up(&primary).unwrap();
    assert_eq!(rows(&r1), "1,2");
    assert_eq!(rows(&r2), "1,2");
    let write = r1
        .psql("postgres", "INSERT INTO t VALUES (99)")
        .unwrap_err();
    assert!(
        write
            .to_string()
            .contains("cannot execute INSERT in a read-only transaction"),
        "{write}"
    );
    assert!(r1.is_in_recovery().unwrap());
    assert!(!primary.is_in_recovery().unwrap());

    primary.make_synchronous(&["r1"]).unwrap();
    assert_eq!(sync_states(&primary), "r1=sync,r2=async");
    assert_eq!(sql(&primary, "SHOW synchronous_commit"), "on");
    primary.make_synchronous(&[]).unwrap();
    assert_eq!(sync_states(&primary), "r1=async,r2=async");
    primary.make_synchronous(&["r1", "r2"]).unwrap();
    assert_eq!(sync_states(&primary), "r1=sync,r2=potential");
    // A commit waits for r1's flush and returns because r1 streams.
    sql(&primary, "INSERT INTO t VALUES (3)");

    r2.pause_replay().unwrap();
    sql(&primary, "INSERT INTO t VALUES (4)");
    r1.wait_caught_up(&primary).unwrap();
    assert_eq!(rows(&r1), "1,2,3,4");
    assert!(!rows(&r2).contains('4'), "paused r2 replayed the row");
    r2.resume_replay().unwrap();
    r2.wait_caught_up(&primary).unwrap();
    assert_eq!(rows(&r2), "1,2,3,4");

    primary.kill9();
    assert_eq!(primary.pid(), None);
    assert!(
        r1.pid().is_some() && r2.pid().is_some(),
        "replicas died with the primary"
    );
    r1.promote().unwrap();
    assert!(!r1.is_in_recovery().unwrap());
    assert!(r2.is_in_recovery().unwrap());
    sql(&r1, "INSERT INTO t VALUES (5)");
    assert_eq!(rows(&r1), "1,2,3,4,5");

    drop((primary, r1, r2));
    for root in &roots {
        assert!(!root.exists(), "{} still exists", root.display());
        assert!(
            !process_mentions(&root.to_string_lossy()),
            "{}",
            root.display()
        );
    }
}

/// Opens a trust-authenticated protocol session and returns it with its backend's pid.
fn connect(server: &PgServer) -> (TcpStream, u32) {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let params = b"user\0postgres\0database\0postgres\0\0";
    let mut startup = ((8 + params.len()) as u32).to_be_bytes().to_vec();
    startup.extend(196_608u32.to_be_bytes());
    startup.extend(params);
    stream.write_all(&startup).unwrap();
    let mut backend_pid = None;
    loop {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).unwrap();
        let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).unwrap();
        match head[0] {
            b'K' => backend_pid = Some(u32::from_be_bytes(body[..4].try_into().unwrap())),
            b'Z' => return (stream, backend_pid.unwrap()),
            b'E' => panic!("startup failed: {}", String::from_utf8_lossy(&body)),
            _ => {}
        }
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

#[test]
fn kill9_kills_backends_so_clients_see_a_dropped_connection() {
    let mut server = PgBuilder::new().start().unwrap();
    let (mut client, backend) = connect(&server);
    assert!(alive(backend));

    server.kill9();
    // Gone when kill9 returns, not once it noticed the postmaster's death on its own.
    assert!(!alive(backend), "backend {backend} outlived kill9");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    match client.read(&mut buf) {
        // A crash drops the connection; a lingering backend would send a FATAL 'E' first.
        Ok(n) => assert_eq!(n, 0, "got {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    // Nothing of the killed server stands in the way of crash recovery on the same port.
    server.start_again().unwrap();
    assert_eq!(sql(&server, "SELECT 1"), "1");
}
