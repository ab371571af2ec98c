//! A first end-to-end check: simple and extended queries through Attaché
//! to a real PostgreSQL with SCRAM passthrough.

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_pass_through() {
    let pg = app_server();
    let attache = start_attache(&pg_config(&pg, "app", "", "")).await;
    let addr = attache.postgres_addr.unwrap();
    let c = connect(addr, "app", "app", Some("app-secret")).await;
    let rows = c
        .simple_query("select 1 as one; select 'two'")
        .await
        .unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    let row = c.query_one("select $1::int + 1", &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let port: i32 = c
        .query_one("select inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(port as u16, pg.port());
    attache.shutdown().await;
}

/// A client whose `client_encoding` is LATIN1 sends query text that is not
/// UTF-8: it passes byte for byte (the server converts it), answers come
/// back in the client's encoding, and a setting made in it stays with the
/// session. psql, because tokio-postgres insists on UTF-8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_text_in_a_latin1_client_encoding_passes_unchanged() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let pg = app_server();
    let attache = start_attache(&pg_config(&pg, "app", "", "")).await;
    let port = attache.postgres_addr.unwrap().port().to_string();
    let psql = attache_harness::pg_bin("psql").expect("psql");
    // 0xE9 is 'é' in LATIN1; c3 a9 is the same letter in UTF-8.
    let script: &[u8] =
        b"SELECT length('caf\xe9'), 'caf\xe9' = convert_from('\\x636166c3a9'::bytea, 'UTF8');\n\
        SET app.label = 'caf\xe9';\n\
        SELECT 1;\n\
        SHOW app.label;\n";
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(psql)
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "app", "-d", "app"])
            .env("PGPASSWORD", "app-secret")
            .env("PGCLIENTENCODING", "LATIN1")
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script)
            .expect("script written");
        child.wait_with_output().expect("psql finishes")
    })
    .await
    .expect("psql task");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql failed: {stderr}");
    assert_eq!(
        out.stdout,
        b"4|t\n1\ncaf\xe9\n",
        "{:?} / {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    attache.shutdown().await;
}
