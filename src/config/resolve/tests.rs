//! Tests for route-time settings resolution: user > database > [postgres] > built-in.

use std::time::Duration;

use super::ResolvedPool;
use crate::config::types::{AuthMethod, PoolMode, PostgresConfig};
use crate::config::{builtin_default, parse};

fn pg(text: &str) -> PostgresConfig {
    parse(text).unwrap().postgres.unwrap()
}

const LAYERED: &str = r#"
[postgres]
pool_size = 30
connect_timeout = "2s"
server_reset_query = "RESET ALL"
auth = "md5"

[postgres.databases.app]
nodes = [{ addr = "db1:5432" }]
pool_size = 10
pool_mode = "session"
max_message_size = "1MiB"
auth = "scram-sha-256"

[postgres.databases.other]
nodes = [{ addr = "db2:5432" }]

[postgres.users.batch]
password = "x"
pool_size = 2
client_idle_timeout = "30s"
auth = "trust"

[postgres.users.plain]
password = "y"
"#;

#[test]
fn builtin_values_apply_when_nothing_is_set() {
    let cfg = builtin_default();
    let pg = cfg.postgres.as_ref().unwrap();
    let (_, db) = pg.database("anything").unwrap();
    let r = pg.resolve_pool(db, None);
    assert_eq!(
        r,
        ResolvedPool {
            pool_mode: PoolMode::Transaction,
            pool_size: 20,
            min_idle: 0,
            connect_timeout: Duration::from_secs(5),
            checkout_timeout: Duration::from_secs(10),
            server_idle_timeout: Some(Duration::from_secs(600)),
            server_lifetime: Some(Duration::from_secs(3600)),
            client_idle_timeout: None,
            idle_transaction_timeout: None,
            max_message_size: 256 << 20,
            server_reset_query: Some("DISCARD ALL".into()),
            max_prepared_statements: 200,
        }
    );
}

#[test]
fn user_beats_database_beats_postgres_beats_builtin() {
    let pg = pg(LAYERED);
    let app = &pg.databases["app"];
    let other = &pg.databases["other"];
    let batch = &pg.users["batch"];

    let r = pg.resolve_pool(app, Some(batch));
    assert_eq!(r.pool_size, 2, "user wins");
    assert_eq!(
        r.pool_mode,
        PoolMode::Session,
        "database fills what user leaves"
    );
    assert_eq!(r.max_message_size, 1 << 20);
    assert_eq!(r.connect_timeout, Duration::from_secs(2), "[postgres] next");
    assert_eq!(r.server_reset_query.as_deref(), Some("RESET ALL"));
    assert_eq!(r.checkout_timeout, Duration::from_secs(10), "built-in last");
    assert_eq!(r.client_idle_timeout, Some(Duration::from_secs(30)));

    let r = pg.resolve_pool(app, None);
    assert_eq!(r.pool_size, 10);
    assert_eq!(r.client_idle_timeout, None);

    let r = pg.resolve_pool(other, Some(&pg.users["plain"]));
    assert_eq!(r.pool_size, 30);
    assert_eq!(r.pool_mode, PoolMode::Transaction);
    assert_eq!(r.max_message_size, 256 << 20);
}

#[test]
fn zero_durations_and_empty_reset_query_disable() {
    let pg = pg(r#"
[postgres]
server_idle_timeout = 0
server_lifetime = "0"
server_reset_query = ""
[postgres.databases.app]
nodes = [{ addr = "db1:5432" }]
client_idle_timeout = "0s"
"#);
    let r = pg.resolve_pool(&pg.databases["app"], None);
    assert_eq!(r.server_idle_timeout, None);
    assert_eq!(r.server_lifetime, None);
    assert_eq!(r.client_idle_timeout, None);
    assert_eq!(r.server_reset_query, None);
}

#[test]
fn auth_precedence() {
    let pg = pg(LAYERED);
    let app = &pg.databases["app"];
    let other = &pg.databases["other"];
    assert_eq!(
        pg.auth_for(app, Some(&pg.users["batch"])),
        AuthMethod::Trust
    );
    assert_eq!(
        pg.auth_for(app, Some(&pg.users["plain"])),
        AuthMethod::ScramSha256
    );
    assert_eq!(pg.auth_for(app, None), AuthMethod::ScramSha256);
    assert_eq!(pg.auth_for(other, None), AuthMethod::Md5);
}

#[test]
fn database_lookup_prefers_exact_key_then_wildcard() {
    let pg = pg(r#"
[postgres.databases.app]
nodes = [{ addr = "db1:5432" }]
[postgres.databases."*"]
nodes = [{ addr = "db9:5432" }]
"#);
    let (key, db) = pg.database("app").unwrap();
    assert_eq!((key, db.nodes[0].addr.as_str()), ("app", "db1:5432"));
    let (key, db) = pg.database("sales").unwrap();
    assert_eq!((key, db.nodes[0].addr.as_str()), ("*", "db9:5432"));

    let only_app = self::pg("[postgres.databases.app]\nnodes = [{ addr = \"db1:5432\" }]\n");
    assert!(only_app.database("sales").is_none());
}

#[test]
fn server_dbname_rules() {
    let pg = pg(r#"
[postgres.databases.app]
nodes = [{ addr = "db1:5432" }]
dbname = "app_production"
[postgres.databases.plain]
nodes = [{ addr = "db1:5432" }]
[postgres.databases."*"]
nodes = [{ addr = "db9:5432" }]
"#);
    assert_eq!(
        pg.databases["app"].server_dbname("app", "app"),
        "app_production"
    );
    assert_eq!(
        pg.databases["plain"].server_dbname("plain", "plain"),
        "plain"
    );
    assert_eq!(pg.databases["*"].server_dbname("*", "sales"), "sales");
}
