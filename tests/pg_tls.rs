//! Accept and backend, end to end: TLS on both sides of Attaché. Clients
//! reach a TLS listener with the real `psql` (libpq does the verification),
//! and Attaché reaches TLS-enabled PostgreSQL servers with each `sslmode`,
//! a wrong CA, a wrong name and a client certificate.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

/// Runs `psql` with a connection string; returns (success, stdout, stderr).
/// Bounded, so a TLS stall fails the test instead of hanging it.
async fn psql(conninfo: &str, password: Option<&str>, commands: &[&str]) -> (bool, String, String) {
    let bin = attache_harness::pg_bin("psql").expect("psql binary");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    for var in [
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGHOST",
        "PGUSER",
    ] {
        cmd.env_remove(var);
    }
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    cmd.env("PGCONNECT_TIMEOUT", "10").kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(15), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("psql {conninfo:?} hung"))
        .expect("psql runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A libpq connection string to Attaché as `app` on database `app`.
fn conninfo(port: u16, sslmode: &str, root: Option<&Path>) -> String {
    let mut s = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=app dbname=app sslmode={sslmode} gssencmode=disable"
    );
    if let Some(root) = root {
        s.push_str(&format!(" sslrootcert={}", root.display()));
    }
    s
}

/// The `[postgres]` line for a TLS listener with the test certificate.
fn local_tls(certs: &TestCerts) -> String {
    format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        certs.server_cert.display(),
        certs.server_key.display()
    )
}

fn certs() -> TestCerts {
    TestCerts::generate(&["localhost", "127.0.0.1"]).expect("test certificates")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reach_a_tls_listener_with_verify_full() {
    let certs = certs();
    let pg = app_server();
    let tls = local_tls(&certs);
    let attache = start_attache(&pg_config(&pg, "app", &tls, "")).await;
    let port = attache.postgres_addr.unwrap().port();

    let info = conninfo(port, "verify-full", Some(&certs.ca_cert));
    let (ok, out, err) = psql(&info, Some("app-secret"), &["select 1", "\\conninfo"]).await;
    assert!(ok, "verify-full through Attaché: {err}");
    assert!(out.starts_with("1\n"), "{out}");
    assert!(
        out.contains("SSL connection"),
        "psql must report TLS: {out}"
    );

    // libpq really verifies: a CA that did not sign the certificate fails.
    let info = conninfo(port, "verify-full", Some(&certs.other_ca_cert));
    let (ok, out, err) = psql(&info, Some("app-secret"), &["select 1"]).await;
    assert!(!ok, "an unrelated CA must not verify: {out}");
    assert!(err.contains("certificate verify failed"), "{err}");

    // The password is still checked over TLS.
    let info = conninfo(port, "require", None);
    let (ok, _, err) = psql(&info, Some("wrong"), &["select 1"]).await;
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");

    // Plain clients are still welcome on the same listener.
    let info = conninfo(port, "disable", None);
    let (ok, out, err) = psql(&info, Some("app-secret"), &["select 2", "\\conninfo"]).await;
    assert!(ok, "plain client: {err}");
    assert!(out.starts_with("2\n"), "{out}");
    assert!(!out.contains("SSL connection"), "{out}");
    let addr = attache.postgres_addr.unwrap();
    let c = connect(addr, "app", "app", Some("app-secret")).await;
    c.simple_query("select 1").await.unwrap();
    attache.shutdown().await;
}

/// Without `[postgres] tls`, a client that insists on TLS is told no
/// (SSLRequest answered `N`) and libpq says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_by_client_without_local_tls_fails_clearly() {
    let pg = app_server();
    let attache = start_attache(&pg_config(&pg, "app", "", "")).await;
    let port = attache.postgres_addr.unwrap().port();
    let (ok, _, err) = psql(
        &conninfo(port, "require", None),
        Some("app-secret"),
        &["select 1"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("server does not support SSL"), "{err}");
    // sslmode=prefer falls back to plain.
    let (ok, out, err) = psql(
        &conninfo(port, "prefer", None),
        Some("app-secret"),
        &["select 3"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "3");
    attache.shutdown().await;
}

/// Starts Attaché in front of `pg` with `db_extra` for database `app`, and
/// asks through it whether the backend connection is encrypted.
async fn backend_ssl(pg: &PgServer, db_extra: &str) -> Result<bool, tokio_postgres::Error> {
    let attache = start_attache(&pg_config(pg, "app", "", db_extra)).await;
    let addr = attache.postgres_addr.unwrap();
    let result = async {
        let c = tokio::time::timeout(
            Duration::from_secs(15),
            try_connect(addr, "app", "app", Some("app-secret")),
        )
        .await
        .unwrap_or_else(|_| panic!("connect with {db_extra} hung"))?;
        let row = c
            .query_one(
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
                &[],
            )
            .await?;
        Ok(row.get::<_, bool>(0))
    }
    .await;
    attache.shutdown().await;
    result
}

fn server_tls(fields: &str) -> String {
    format!("server_tls = {{ {fields} }}")
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_follows_sslmode() {
    let certs = certs();
    let pg = PgBuilder::new()
        .auth(HbaAuth::Scram)
        .user("app", "app-secret")
        .database("app")
        .tls(&certs)
        .start()
        .unwrap();
    let ca = certs.ca_cert.display();
    let full =
        format!("sslmode = \"verify-full\", ca_file = \"{ca}\", server_name = \"localhost\"");
    assert!(
        backend_ssl(&pg, &server_tls(&full)).await.unwrap(),
        "verify-full"
    );
    // The node's host (127.0.0.1) is an IP SAN of the certificate.
    let by_ip = format!("sslmode = \"verify-full\", ca_file = \"{ca}\"");
    assert!(
        backend_ssl(&pg, &server_tls(&by_ip)).await.unwrap(),
        "verify-full by IP"
    );
    let chain = format!("sslmode = \"verify-ca\", ca_file = \"{ca}\"");
    assert!(
        backend_ssl(&pg, &server_tls(&chain)).await.unwrap(),
        "verify-ca"
    );
    let require = server_tls("sslmode = \"require\"");
    assert!(backend_ssl(&pg, &require).await.unwrap(), "require");
    assert!(backend_ssl(&pg, "").await.unwrap(), "prefer is the default");
    let disable = server_tls("sslmode = \"disable\"");
    assert!(!backend_ssl(&pg, &disable).await.unwrap(), "disable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_certificate_problems_are_reported_to_the_client() {
    let certs = certs();
    let pg = PgBuilder::new()
        .auth(HbaAuth::Scram)
        .user("app", "app-secret")
        .database("app")
        .tls(&certs)
        .start()
        .unwrap();
    let wrong_ca = server_tls(&format!(
        "sslmode = \"verify-full\", ca_file = \"{}\", server_name = \"localhost\"",
        certs.other_ca_cert.display()
    ));
    let wrong_name = server_tls(&format!(
        "sslmode = \"verify-full\", ca_file = \"{}\", server_name = \"db.example.com\"",
        certs.ca_cert.display()
    ));
    for (case, extra) in [("wrong CA", &wrong_ca), ("wrong name", &wrong_name)] {
        let started = std::time::Instant::now();
        let e = backend_ssl(&pg, extra).await.expect_err(case);
        let msg = message(&e);
        assert!(msg.contains("certificate"), "{case}: {msg}");
        assert_eq!(sqlstate(&e).as_deref(), Some("08001"), "{case}: {msg}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{case} was slow"
        );
    }
    // Even `require` fails clearly against a server without TLS.
    let plain = app_server();
    let e = backend_ssl(&plain, &server_tls("sslmode = \"require\""))
        .await
        .expect_err("require against a plain server");
    assert!(message(&e).contains("TLS"), "{}", message(&e));
}

/// mTLS: the server admits `app` by its client certificate (CN `app`) alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_client_certificate_authenticates() {
    let certs = certs();
    let pg = PgBuilder::new()
        .auth(HbaAuth::Scram)
        .user("app", "app-secret")
        .database("app")
        .tls(&certs)
        .hba_line("hostssl all app 127.0.0.1/32 cert")
        .start()
        .unwrap();
    let base = format!(
        "sslmode = \"verify-full\", ca_file = \"{}\", server_name = \"localhost\"",
        certs.ca_cert.display()
    );
    let with_cert = server_tls(&format!(
        "{base}, client_cert = \"{}\", client_key = \"{}\"",
        certs.client_cert.display(),
        certs.client_key.display()
    ));
    let attache = start_attache(&pg_config(&pg, "app", "", &with_cert)).await;
    let addr = attache.postgres_addr.unwrap();
    // No password: the server trusts the certificate.
    let c = connect(addr, "app", "app", None).await;
    let row = c
        .query_one(
            "select ssl, client_dn from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("/CN=app"));
    attache.shutdown().await;

    // Without a certificate the server refuses, and the client hears why.
    let e = backend_ssl(&pg, &server_tls(&base))
        .await
        .expect_err("no cert");
    assert!(message(&e).contains("certificate"), "{}", message(&e));
    // A certificate from an unrelated CA is rejected too.
    let foreign = server_tls(&format!(
        "{base}, client_cert = \"{}\", client_key = \"{}\"",
        certs.other_client_cert.display(),
        certs.other_client_key.display()
    ));
    let e = backend_ssl(&pg, &foreign).await.expect_err("foreign cert");
    assert!(
        sqlstate(&e).is_some(),
        "a clear error, not a dropped connection: {e:?}"
    );
}

/// A client that asks for TLS, is told yes (`S`) and then says nothing is
/// dropped once the opening's time is up, like one that sends no startup:
/// it must not hold a client slot for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_in_the_tls_handshake_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = certs();
    let pg = app_server();
    let tls = local_tls(&certs);
    let attache = start_attache(&pg_config(&pg, "app", &tls, "")).await;
    let addr = attache.postgres_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let ssl_request = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    s.write_all(&ssl_request).await.unwrap();
    assert_eq!(s.read_u8().await.unwrap(), b'S');
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(30), s.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the silent handshake must be closed: {read:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "closed early, after {:?}",
        started.elapsed()
    );
    attache.shutdown().await;
}
