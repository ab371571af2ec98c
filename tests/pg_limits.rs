//! Accept → parse, end to end: the untagged opening of a Postgres connection
//! spoken byte by byte (SSLRequest, GSSENCRequest, protocol negotiation,
//! unsupported versions, garbage, silent clients), the client limit, the cap
//! on a client's prepared statement text, and the `attache` command line
//! (`check`, `--version`).

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::pgwire::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A trusting server and an Attaché with trust client auth, so raw clients
/// need no password exchange.
async fn trust_setup(extra: &str) -> (PgServer, attache::app::Attache, SocketAddr) {
    let pg = trust_app_server();
    let toml = pg_config(&pg, "app", &format!("auth = \"trust\"\n{extra}"), "");
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    (pg, attache, addr)
}

/// Logs in with a 3.0 startup on `s` and checks a query works.
async fn login_and_query(s: &mut TcpStream) {
    let p = startup_packet(PROTOCOL_3_0, &[("user", "app"), ("database", "app")]);
    s.write_all(&p).await.unwrap();
    let seen = read_login(s).await;
    assert_eq!(seen[0].0, b'R', "{}", tags(&seen));
    assert_eq!(raw_query_one(s, "select 40 + 2").await, "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_gssenc_requests_without_tls_are_refused_with_n() {
    let (_pg, attache, addr) = trust_setup("").await;
    for code in [SSL_REQUEST, GSSENC_REQUEST] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&untagged(code, &[])).await.unwrap();
        assert_eq!(read_byte(&mut s).await, b'N', "answer to request {code}");
        // The same connection then carries a normal startup.
        login_and_query(&mut s).await;
    }
    // Both, one after the other, as libpq does with gssencmode=prefer.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&untagged(GSSENC_REQUEST, &[])).await.unwrap();
    assert_eq!(read_byte(&mut s).await, b'N');
    s.write_all(&untagged(SSL_REQUEST, &[])).await.unwrap();
    assert_eq!(read_byte(&mut s).await, b'N');
    login_and_query(&mut s).await;
    attache.shutdown().await;
}

/// NegotiateProtocolVersion body: newest minor, then the options we refused.
fn parse_negotiate(body: &[u8]) -> (i32, Vec<String>) {
    let minor = i32::from_be_bytes(body[0..4].try_into().unwrap());
    let count = i32::from_be_bytes(body[4..8].try_into().unwrap());
    let names: Vec<String> = body[8..]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names.len(), count as usize, "{names:?}");
    (minor, names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_minor_version_and_pq_options_are_negotiated() {
    let (_pg, attache, addr) = trust_setup("").await;
    // The version asked for, and extra startup parameters; every `_pq_.`
    // one must be listed back as not recognized.
    let cases: [(i32, &[(&str, &str)]); 3] = [
        (PROTOCOL_3_0 | 2, &[]),
        (PROTOCOL_3_0, &[("_pq_.foo", "bar")]),
        (PROTOCOL_3_0 | 2, &[("_pq_.foo", "1"), ("_pq_.bar", "2")]),
    ];
    for (version, extra) in cases {
        let mut params = vec![("user", "app"), ("database", "app")];
        params.extend_from_slice(extra);
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&startup_packet(version, &params))
            .await
            .unwrap();
        let seen = read_login(&mut s).await;
        assert_eq!(tags(&seen[..2]), "vR", "all: {}", tags(&seen));
        let (minor, names) = parse_negotiate(&seen[0].1);
        assert_eq!(minor, 0, "Attaché speaks 3.0");
        let mut expected: Vec<String> = extra.iter().map(|(k, _)| k.to_string()).collect();
        let mut names = names;
        names.sort();
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(seen[1].1, 0i32.to_be_bytes(), "AuthenticationOk");
        assert!(seen.iter().any(|(t, _)| *t == b'K'), "BackendKeyData");
        assert_eq!(raw_query_one(&mut s, "select 'ok'").await, "ok");
    }
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_2_gets_an_error_response() {
    let (_pg, attache, addr) = trust_setup("").await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&startup_packet(
        2 << 16,
        &[("user", "app"), ("database", "app")],
    ))
    .await
    .unwrap();
    let (tag, body) = read_message(&mut s)
        .await
        .expect("an error, not a bare close");
    assert_eq!(tag, b'E');
    let (code, message) = error_fields(&body);
    // PostgreSQL says 0A000 here; a protocol violation is as clear.
    assert!(code == "08P01" || code == "0A000", "{code}: {message}");
    assert!(
        message.contains("2.0"),
        "the message names the version: {message}"
    );
    assert!(read_message(&mut s).await.is_none(), "then closes");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_an_error_or_close_never_a_hang() {
    let (_pg, attache, addr) = trust_setup("").await;
    let garbage: [&[u8]; 5] = [
        // A length word smaller than itself.
        &[0, 0, 0, 2, 0, 0, 0, 0],
        // A 3.0 startup whose parameters are not NUL-terminated.
        &[0, 0, 0, 12, 0, 3, 0, 0, b'u', b's', b'e', b'r'],
        // A cancel request with a key too short.
        &[0, 0, 0, 10, 4, 210, 22, 46, 0, 0],
        // A startup packet over PostgreSQL's 10 000-byte limit.
        &[0, 0, 0x27, 0x11, 0, 3, 0, 0],
        // Not Postgres at all: the length word reads as over 1 GB.
        b"GET / HTTP/1.1\r\n\r\n",
    ];
    for bytes in garbage {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let _ = s.shutdown().await;
        match read_message(&mut s).await {
            None => {}
            Some((b'E', body)) => {
                let (code, message) = error_fields(&body);
                assert!(code.starts_with("08"), "{bytes:?}: {code} {message}");
                assert!(read_message(&mut s).await.is_none(), "then closes");
            }
            Some((tag, _)) => panic!("{bytes:?}: unexpected {:?}", tag as char),
        }
    }
    // Attaché is still serving.
    let mut s = TcpStream::connect(addr).await.unwrap();
    login_and_query(&mut s).await;
    attache.shutdown().await;
}

/// A client that connects and says nothing holds only its own socket:
/// others log in meanwhile (it is dropped after the 15 s opening timeout,
/// which this test does not wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_do_not_block_others() {
    let (_pg, attache, addr) = trust_setup("").await;
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // One that stops half-way through its startup packet.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0, 0, 0, 40, 0, 3]).await.unwrap();
    silent.push(half);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let c = connect(addr, "app", "app", None).await;
        let n: i32 = c.query_one("select 7", &[]).await.unwrap().get(0);
        assert_eq!(n, 7);
    }
    let mut s = TcpStream::connect(addr).await.unwrap();
    login_and_query(&mut s).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "others were delayed"
    );
    // The silent ones got nothing, and were not closed yet either.
    for s in &mut silent {
        let mut byte = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(100), s.read(&mut byte)).await;
        assert!(
            r.is_err(),
            "a silent client got an answer or a close: {r:?}"
        );
    }
    // Hanging up ends their sessions at once, so shutdown has nothing to
    // wait for (a still-silent socket would hold the drain until its opening
    // timeout).
    drop(silent);
    let t = std::time::Instant::now();
    attache.shutdown().await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_clients_get_53300_until_one_leaves() {
    let (_pg, attache, addr) = trust_setup("max_client_connections = 2").await;
    let first = connect(addr, "app", "app", None).await;
    let second = connect(addr, "app", "app", None).await;
    let e = match tokio::time::timeout(READ_BUDGET, try_connect(addr, "app", "app", None)).await {
        Ok(Ok(_)) => panic!("the third client must be refused"),
        Ok(Err(e)) => e,
        Err(_) => panic!("the third client hung"),
    };
    assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "{e:?}");
    let message = e.as_db_error().unwrap().message().to_owned();
    assert!(message.contains("too many clients"), "{message}");
    // The raw protocol agrees, including after an SSLRequest.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&untagged(SSL_REQUEST, &[])).await.unwrap();
    assert_eq!(read_byte(&mut s).await, b'N');
    s.write_all(&startup_packet(PROTOCOL_3_0, &[("user", "app")]))
        .await
        .unwrap();
    let (tag, body) = read_message(&mut s).await.expect("an error");
    assert_eq!(tag, b'E');
    assert_eq!(error_fields(&body).0, "53300");
    // Those in are unaffected.
    for c in [&first, &second] {
        c.simple_query("select 1").await.unwrap();
    }
    drop(first);
    let got_in = eventually(Duration::from_secs(5), || async move {
        match try_connect(addr, "app", "app", None).await {
            Ok(c) => c.simple_query("select 1").await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    assert!(got_in, "a slot must free up when a client leaves");
    second.simple_query("select 1").await.unwrap();
    attache.shutdown().await;
}

/// Runs the built binary with a timeout, returning (success, stdout, stderr).
fn run_attache(args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_attache"))
        .args(args)
        .env("ATTACHE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run attache");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("attache {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_resolved_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attache.toml");
    std::fs::write(
        &path,
        r#"
[postgres]
listen = "127.0.0.1:7432"
auth = "scram-sha-256"
[postgres.databases.app]
nodes = [{ addr = "127.0.0.1:5432" }]
[postgres.users.app]
password = "very-secret-pw"
server_password = "other-secret-pw"
"#,
    )
    .unwrap();
    let (ok, stdout, stderr) = run_attache(&["check", "-c", path.to_str().unwrap()]);
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("<redacted>"), "{stdout}");
    for secret in ["very-secret-pw", "other-secret-pw"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{stdout}{stderr}"
        );
    }
    assert!(stdout.contains("127.0.0.1:7432") && stdout.contains("127.0.0.1:5432"));
    // Resolved: built-in pool defaults are spelled out.
    assert!(stdout.contains("pool_size"), "{stdout}");
    // The output is itself a valid config.
    let shown = stdout.replace("<redacted>", "x");
    attache::config::parse(&shown).expect("check output parses back");
}

#[test]
fn check_rejects_an_invalid_config_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attache.toml");
    std::fs::write(
        &path,
        "[postgres]\n[postgres.databases.app]\nnodes = [{ addr = \"x\" }]\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run_attache(&["check", "-c", path.to_str().unwrap()]);
    assert!(!ok, "an invalid config must fail: {stdout}");
    assert!(
        stderr.contains("postgres.databases.app.nodes[0].addr"),
        "stderr: {stderr}"
    );
    // A missing file fails too, naming it.
    let missing = dir.path().join("nope.toml");
    let (ok, _, stderr) = run_attache(&["check", "-c", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("nope.toml"), "{stderr}");
}

#[test]
fn version_flag_prints_the_version() {
    let (ok, stdout, stderr) = run_attache(&["--version"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("attache {}", env!("CARGO_PKG_VERSION")),
        "stderr: {stderr}"
    );
}

/// Prepared statements cost Attaché memory for their text: at most 64 MiB
/// per client. A Parse past that gets 54000 and the session goes on; a
/// Close makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statement_text_is_capped_per_client() {
    let (_pg, attache, addr) = trust_setup("").await;
    let mut s = raw_login(addr, "app", "app").await;
    // 1 MiB of text each (a comment: cheap for the server).
    let sql = format!("select 1 --{}", "x".repeat((1 << 20) - 11));
    assert_eq!(sql.len(), 1 << 20);
    let mut kept = 0;
    let refused = loop {
        assert!(kept < 70, "no cap after {kept} MiB of statements");
        send(&mut s, &[parse(&format!("s{kept}"), &sql), sync()]).await;
        let seen = read_until_ready(&mut s).await;
        match seen.iter().find(|(t, _)| *t == b'E') {
            Some((_, body)) => break error_fields(body),
            None => kept += 1,
        }
    };
    assert_eq!(kept, 63, "64 MiB of statements with their names");
    assert_eq!(refused.0, "54000", "{}", refused.1);
    assert!(refused.1.contains("per client"), "{}", refused.1);
    // The session goes on, with its statements.
    send(&mut s, &[bind("", "s5"), execute(""), sync()]).await;
    let seen = read_until_ready(&mut s).await;
    assert_eq!(first_column(&seen).as_deref(), Some("1"), "{}", tags(&seen));
    send(&mut s, &[close(b'S', "s0"), parse("again", &sql), sync()]).await;
    let seen = read_until_ready(&mut s).await;
    assert_eq!(tags(&seen), "31Z", "a Close makes room");
    attache.shutdown().await;
}
