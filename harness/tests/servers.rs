//! End-to-end checks of the harness against real PostgreSQL servers: authentication methods,
//! TLS, streaming replicas, crashes and clean-up.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use attache_harness::{pg_bin, HbaAuth, PgBuilder, PgServer, TestCerts};

/// Runs the real `psql` binary against `conninfo` with `PGPASSWORD`, like an application would.
fn psql_as(conninfo: &str, password: Option<&str>, sql: &str) -> Output {
    let mut cmd = Command::new(pg_bin("psql").unwrap());
    cmd.args(["-X", "-A", "-t", "-d", conninfo, "-c", sql])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/dev/null")
        .env("PGCONNECT_TIMEOUT", "10");
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    cmd.output().unwrap()
}

fn login(server: &PgServer, user: &str, password: &str, db: &str, sql: &str) -> Output {
    let conninfo = format!(
        "host=127.0.0.1 port={} user={user} dbname={db} sslmode=disable",
        server.port()
    );
    psql_as(&conninfo, Some(password), sql)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn password_logins(auth: HbaAuth, stored_prefix: &str) {
    let server = PgBuilder::new()
        .auth(auth)
        .user("app", "s3cret pass'word")
        .database("appdb")
        .start()
        .unwrap();
    assert_eq!(server.psql("postgres", "SELECT 1").unwrap(), "1");
    assert_eq!(
        server.psql("postgres", "SELECT 1; SELECT 2").unwrap(),
        "1\n2"
    );
    let stored = server
        .psql(
            "postgres",
            "SELECT left(rolpassword, 6) FROM pg_authid WHERE rolname = 'app'",
        )
        .unwrap();
    assert!(
        stored.starts_with(stored_prefix),
        "stored verifier {stored}"
    );

    let ok = login(
        &server,
        "app",
        "s3cret pass'word",
        "appdb",
        "SELECT current_user",
    );
    assert_eq!(stdout(&ok), "app");
    // The role owns appdb and may create tables in public of other databases too.
    for db in ["appdb", "postgres"] {
        let created = login(
            &server,
            "app",
            "s3cret pass'word",
            db,
            "CREATE TABLE t (x int)",
        );
        stdout(&created);
    }
    let owner = server
        .psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'",
        )
        .unwrap();
    assert_eq!(owner, "app");

    let bad = login(&server, "app", "wrong", "appdb", "SELECT 1");
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("password authentication failed"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn scram_user_logs_in_with_password_and_superuser_is_trusted() {
    password_logins(HbaAuth::Scram, "SCRAM-");
}

#[test]
fn md5_user_logs_in_with_password() {
    password_logins(HbaAuth::Md5, "md5");
}

#[test]
fn tls_server_verifies_against_the_test_ca() {
    let certs = TestCerts::generate(&["localhost", "127.0.0.1"]).unwrap();
    let server = PgBuilder::new()
        .tls(&certs)
        .setting("max_connections", "'50'")
        .start()
        .unwrap();
    assert_eq!(
        server.psql("postgres", "SHOW max_connections").unwrap(),
        "50"
    );
    let conninfo = |ca: &Path| {
        format!(
            "sslmode=verify-full sslrootcert={} host=localhost port={} user=postgres dbname=postgres",
            ca.display(),
            server.port()
        )
    };
    let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert_eq!(stdout(&psql_as(&conninfo(&certs.ca_cert), None, sql)), "t");

    let wrong_ca = psql_as(&conninfo(&certs.other_ca_cert), None, sql);
    assert!(!wrong_ca.status.success());
    assert!(
        stderr(&wrong_ca).contains("certificate verify failed"),
        "{}",
        stderr(&wrong_ca)
    );
}

#[test]
fn replica_streams_from_primary() {
    let primary = PgBuilder::new().start().unwrap();
    let replica = primary.start_replica("replica").unwrap();
    assert_ne!(replica.port(), primary.port());
    assert_eq!(
        primary
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "f"
    );
    assert_eq!(
        replica
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "t"
    );

    // -q: command tags are not printed, only query results.
    let tags = primary
        .psql(
            "postgres",
            "CREATE TABLE replicated (x int); INSERT INTO replicated VALUES (7)",
        )
        .unwrap();
    assert_eq!(tags, "");
    poll("the row to reach the replica", || {
        replica
            .psql("postgres", "SELECT x FROM replicated")
            .ok()
            .as_deref()
            == Some("7")
    });
    let write = replica.psql("postgres", "INSERT INTO replicated VALUES (8)");
    assert!(write.unwrap_err().to_string().contains("read-only"));
}

#[test]
fn kill9_restart_and_drop_clean_up() {
    let mut server = PgBuilder::new().start().unwrap();
    let root: PathBuf = server.data_dir().parent().unwrap().to_path_buf();
    let pid = server.pid().unwrap();
    // A synchronous commit writes the WAL before kill9, so crash recovery must keep the table.
    server
        .psql(
            "postgres",
            "SET synchronous_commit = on; CREATE TABLE survives (x int)",
        )
        .unwrap();

    server.kill9();
    assert!(proc_gone(pid));
    assert_eq!(server.pid(), None);
    assert!(server.psql("postgres", "SELECT 1").is_err());

    server.start_again().unwrap();
    assert_eq!(
        server
            .psql("postgres", "SELECT count(*) FROM survives")
            .unwrap(),
        "0"
    );
    server.stop();
    assert_eq!(server.pid(), None);
    server.start_again().unwrap();
    let pid = server.pid().unwrap();

    server.kill9();
    drop(server);
    assert!(proc_gone(pid));
    assert!(!root.exists(), "{} still exists", root.display());
}

#[test]
fn drop_during_panic_stops_server_and_removes_dir() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let server = PgBuilder::new().start().unwrap();
        seen = Some((server.pid().unwrap(), server.data_dir().to_path_buf()));
        panic!("test failure while a server runs");
    }));
    assert!(result.is_err());
    let (pid, data) = seen.unwrap();
    assert!(proc_gone(pid));
    assert!(!data.exists());
}

/// Child half of `watchdog_cleans_up_after_sigkill`: starts a server, reports it, then waits
/// to be killed. Ignored unless run by that test.
#[test]
#[ignore = "helper process for watchdog_cleans_up_after_sigkill"]
fn orphan_helper() {
    if std::env::var_os("ATTACHE_HARNESS_ORPHAN").is_none() {
        return;
    }
    let server = PgBuilder::new().start().unwrap();
    println!(
        "READY {} {}",
        server.pid().unwrap(),
        server.data_dir().display()
    );
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn watchdog_cleans_up_after_sigkill() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "orphan_helper",
            "--include-ignored",
            "--nocapture",
        ])
        .env("ATTACHE_HARNESS_ORPHAN", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines
        .find_map(|l| l.unwrap().strip_prefix("READY ").map(str::to_string))
        .expect("helper never reported its server");
    let (pid, data) = ready.split_once(' ').unwrap();
    let (pid, data): (u32, PathBuf) = (pid.parse().unwrap(), PathBuf::from(data));
    assert!(!proc_gone(pid));

    child.kill().unwrap(); // SIGKILL: no Drop runs in the helper
    child.wait().unwrap();
    poll("the orphaned postmaster to stop", || proc_gone(pid));
    poll("the orphaned data dir to disappear", || !data.exists());
}
