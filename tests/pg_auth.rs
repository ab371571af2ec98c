//! Parse → route → backend, end to end: how clients prove who they are to
//! Attaché (configured users with md5, SCRAM and trust, or passthrough to the
//! server), how Attaché proves itself to real PostgreSQL servers with
//! configured credentials, and how database names are routed.

mod support;

use std::time::Duration;

use attache_postgres_protocol::auth::md5;
use attache_postgres_protocol::auth::scram::ScramVerifier;
use support::*;

/// Every connect is bounded: a failure must be an error, never a hang.
const CONNECT_BUDGET: Duration = Duration::from_secs(15);

async fn try_conn(
    addr: std::net::SocketAddr,
    user: &str,
    db: &str,
    password: Option<&str>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    tokio::time::timeout(CONNECT_BUDGET, try_connect(addr, user, db, password))
        .await
        .unwrap_or_else(|_| panic!("connect as {user} to {db} hung for {CONNECT_BUDGET:?}"))
}

/// Connects and proves the session works with a query naming the user.
async fn assert_works(addr: std::net::SocketAddr, user: &str, db: &str, password: Option<&str>) {
    let c = try_conn(addr, user, db, password)
        .await
        .unwrap_or_else(|e| panic!("{user} with the right password must get in: {e:?}"));
    let row = c
        .query_one("select current_user::text, 1 + 1", &[])
        .await
        .unwrap_or_else(|e| panic!("query as {user} failed: {e:?}"));
    assert_eq!(row.get::<_, String>(0), user);
    assert_eq!(row.get::<_, i32>(1), 2);
}

/// Asserts a refused login with `code`, and returns the server message.
async fn assert_refused(
    addr: std::net::SocketAddr,
    user: &str,
    db: &str,
    password: Option<&str>,
    code: &str,
) -> String {
    let e = match try_conn(addr, user, db, password).await {
        Ok(_) => panic!("{user} on {db} must be refused"),
        Err(e) => e,
    };
    assert_eq!(sqlstate(&e).as_deref(), Some(code), "{user} on {db}: {e:?}");
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default()
}

fn scram_verifier(password: &str) -> String {
    ScramVerifier::from_password(password, b"fixed-test-salt!", 4096)
        .expect("verifier")
        .to_string()
}

/// Configured users with each client auth method. The server trusts every
/// role, so only Attaché's own check decides who gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_users_md5_scram_and_trust() {
    let pg = PgBuilder::new()
        .auth(HbaAuth::Trust)
        .user("md5plain", "x")
        .user("md5hash", "x")
        .user("scramplain", "x")
        .user("scramver", "x")
        .user("trusty", "x")
        .database("app")
        .start()
        .unwrap();
    let md5_stored = md5::stored_hash("md5hash", "pw-md5hash");
    assert!(md5_stored.starts_with("md5") && md5_stored.len() == 35);
    let verifier = scram_verifier("pw-scramver");
    let users = format!(
        r#"
[postgres.users.md5plain]
password = "pw-md5plain"
auth = "md5"
[postgres.users.md5hash]
password = "{md5_stored}"
auth = "md5"
[postgres.users.scramplain]
password = "pw-scramplain"
auth = "scram-sha-256"
[postgres.users.scramver]
password = "{verifier}"
auth = "scram-sha-256"
[postgres.users.trusty]
auth = "trust"
"#
    );
    let mut toml = pg_config(&pg, "app", "auth = \"scram-sha-256\"", "");
    toml.push_str(&users);
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();

    for user in ["md5plain", "md5hash", "scramplain", "scramver"] {
        let right = format!("pw-{user}");
        assert_works(addr, user, "app", Some(&right)).await;
        let msg = assert_refused(addr, user, "app", Some("wrong"), "28P01").await;
        assert!(msg.contains(user), "message must name {user}: {msg}");
    }
    // Trust lets the user in without any password, or with any.
    assert_works(addr, "trusty", "app", None).await;
    assert_works(addr, "trusty", "app", Some("anything")).await;
    attache.shutdown().await;
}

/// A user Attaché does not know is refused like a wrong password under md5
/// and SCRAM (whichever level sets the method), without telling which it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_refused_under_md5_and_scram() {
    let pg = PgBuilder::new()
        .auth(HbaAuth::Trust)
        .user("ghost", "x")
        .database("app")
        .start()
        .unwrap();
    let toml = format!(
        r#"
[postgres]
auth = "md5"
[postgres.databases.app]
nodes = [{{ addr = "{addr}" }}]
[postgres.databases.app_scram]
dbname = "app"
auth = "scram-sha-256"
nodes = [{{ addr = "{addr}" }}]
[postgres.users.known]
password = "known-pw"
"#,
        addr = pg.addr()
    );
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    for db in ["app", "app_scram"] {
        let msg = assert_refused(addr, "ghost", db, Some("x"), "28P01").await;
        assert!(msg.contains("ghost"), "{msg}");
    }
    attache.shutdown().await;
}

/// Attaché logs into an md5 server with the configured plaintext password
/// while its own clients are trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_password_logs_into_md5_server() {
    let pg = PgBuilder::new()
        .auth(HbaAuth::Md5)
        .user("app", "app-secret")
        .database("app")
        .start()
        .unwrap();
    let toml = pg_config(&pg, "app", "auth = \"trust\"", "")
        + "[postgres.users.app]\npassword = \"app-secret\"\n";
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    assert_works(addr, "app", "app", None).await;
    // The server really did check a password: its hba line is md5.
    let method = pg
        .psql(
            "postgres",
            "select auth_method from pg_hba_file_rules where database = '{all}' and user_name = '{all}' and address = '127.0.0.1'",
        )
        .unwrap();
    assert_eq!(method, "md5");
    attache.shutdown().await;
}

/// Attaché logs into a SCRAM server with the configured plaintext password
/// while checking its own clients with SCRAM too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_password_logs_into_scram_server() {
    let pg = app_server();
    let toml = pg_config(&pg, "app", "auth = \"scram-sha-256\"", "")
        + "[postgres.users.app]\npassword = \"app-secret\"\n";
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    assert_works(addr, "app", "app", Some("app-secret")).await;
    assert_works(addr, "app", "app", Some("app-secret")).await;
    assert_refused(addr, "app", "app", Some("nope"), "28P01").await;
    attache.shutdown().await;
}

/// A wrong `server_password` is reported to the client at connect time as a
/// login failure, not as a hang or a later broken query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_server_password_fails_at_connect() {
    let pg = app_server();
    let toml = pg_config(&pg, "app", "auth = \"trust\"", "")
        + "[postgres.users.app]\npassword = \"client-pw\"\nserver_password = \"not-the-server-pw\"\n";
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    let started = std::time::Instant::now();
    // Transaction mode still logs in once at connect, to learn the server's
    // parameters, so the failure shows up there.
    let e = match try_conn(addr, "app", "app", None).await {
        Ok(_) => panic!("a wrong server_password must fail the connect"),
        Err(e) => e,
    };
    let code = sqlstate(&e);
    assert!(
        matches!(code.as_deref(), Some("28P01") | Some("08001")),
        "expected 28P01 or 08001, got {e:?}"
    );
    let msg = e.as_db_error().map(|d| d.message().to_owned()).unwrap();
    // The server's own reason is passed on, so the operator sees which
    // credential is wrong.
    assert!(
        msg.contains("password authentication failed") && msg.contains("app"),
        "message should say what failed: {msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    attache.shutdown().await;
}

/// The default: the server judges the password the client gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_lets_the_server_judge() {
    let pg = app_server();
    let attache = start_attache(&pg_config(&pg, "app", "", "")).await;
    let addr = attache.postgres_addr.unwrap();
    let msg = assert_refused(addr, "app", "app", Some("wrong"), "28P01").await;
    assert!(msg.contains("app"), "{msg}");
    assert_works(addr, "app", "app", Some("app-secret")).await;
    // A second client reuses the credential Attaché learned…
    let second = try_conn(addr, "app", "app", Some("app-secret"))
        .await
        .unwrap();
    let third = try_conn(addr, "app", "app", Some("app-secret"))
        .await
        .unwrap();
    for c in [&second, &third] {
        let n: i64 = c
            .query_one("select count(*) from pg_class", &[])
            .await
            .unwrap()
            .get(0);
        assert!(n > 0);
    }
    // …but a wrong password is still refused after one was learned.
    assert_refused(addr, "app", "app", Some("app-secret-not"), "28P01").await;
    // Attaché still asks for a password (tokio-postgres has none to give).
    let e = match try_conn(addr, "app", "app", None).await {
        Ok(_) => panic!("no password must not get in once one was learned"),
        Err(e) => e,
    };
    assert!(format!("{e:?}").contains("password missing"), "{e:?}");
    attache.shutdown().await;
}

/// Passthrough against a server that trusts the role asks for no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_to_trusting_server_needs_no_password() {
    let pg = PgBuilder::new()
        .auth(HbaAuth::Trust)
        .user("app", "unused")
        .database("app")
        .start()
        .unwrap();
    let attache = start_attache(&pg_config(&pg, "app", "", "")).await;
    let addr = attache.postgres_addr.unwrap();
    assert_works(addr, "app", "app", None).await;
    assert_works(addr, "app", "app", None).await;
    attache.shutdown().await;
}

/// A database Attaché has no entry for is refused with 3D000 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_is_refused() {
    let pg = app_server();
    let attache = start_attache(&pg_config(&pg, "app", "", "")).await;
    let addr = attache.postgres_addr.unwrap();
    let msg = assert_refused(addr, "app", "nosuchdb", Some("app-secret"), "3D000").await;
    assert!(msg.contains("nosuchdb"), "{msg}");
    // The configured one still works.
    assert_works(addr, "app", "app", Some("app-secret")).await;
    attache.shutdown().await;
}

/// A `"*"` entry forwards any database name to the server's database of the
/// same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_database_forwards_the_name() {
    let pg = PgBuilder::new()
        .auth(HbaAuth::Scram)
        .user("app", "app-secret")
        .database("app")
        .database("other")
        .start()
        .unwrap();
    let toml = format!(
        "[postgres]\n[postgres.databases.\"*\"]\nnodes = [{{ addr = \"{}\" }}]\n",
        pg.addr()
    );
    let attache = start_attache(&toml).await;
    let addr = attache.postgres_addr.unwrap();
    for db in ["other", "app"] {
        let c = try_conn(addr, "app", db, Some("app-secret")).await.unwrap();
        let name: String = c
            .query_one("select current_database()::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(name, db);
    }
    // A name the server does not have is the server's 3D000, passed on.
    let msg = assert_refused(addr, "app", "missing_db", Some("app-secret"), "3D000").await;
    assert!(msg.contains("missing_db"), "{msg}");
    attache.shutdown().await;
}
