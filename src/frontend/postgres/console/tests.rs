//! Tests for the admin console's parts that need no server: command
//! parsing, row encoding, the SHOW tables built from hand-made snapshots,
//! admin login decisions and timestamps.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use attache_postgres_protocol::frame;
use attache_postgres_protocol::messages;
use attache_postgres_protocol::startup::Startup;
use bytes::BytesMut;

use super::command::{self, Command, Show};
use super::login::{admin_auth, AdminAuth};
use super::show::{PoolView, Snapshot};
use super::wire::{Kind, RowSet, Value};
use super::{about, conns, is_console, show, still_running, ConsoleError};
use crate::config::types::{PoolMode, PostgresConfig};
use crate::core::pg::cancel::CancelTarget;
use crate::frontend::postgres::clients::ClientInfo;
use crate::frontend::postgres::{Paused, PgContext};

const CONFIG: &str = r#"
[postgres]
listen = "127.0.0.1:6432"
auth = "scram-sha-256"
pool_size = 7
admin_users = ["admin", "old", "ops"]

[postgres.databases.app]
nodes = [{ addr = "10.0.0.1:5432" }, { addr = "10.0.0.2:5433", role = "replica" }]
pool_size = 3
pool_mode = "session"

[postgres.databases."*"]
nodes = [{ addr = "10.0.0.9:5432" }]

[postgres.users.app]
password = "app-secret"

[postgres.users.admin]
password = "admin-secret"

[postgres.users.old]
auth = "passthrough"
password = "md511ad2f8aab838ecc0045d58772751ac3"

[postgres.users.ops]
auth = "trust"
"#;

fn config() -> PostgresConfig {
    crate::config::parse(CONFIG)
        .expect("test config")
        .postgres
        .expect("postgres section")
}

fn pool(size: usize, idle: usize) -> PoolView {
    PoolView {
        database: "app".into(),
        db_key: "app".into(),
        user: "app".into(),
        server_user: "app_server".into(),
        node: "10.0.0.1:5432".into(),
        role: "primary",
        mode: PoolMode::Transaction,
        size,
        idle,
        ..Default::default()
    }
}

fn client(id: i32, server_pid: Option<i32>) -> Arc<ClientInfo> {
    let server =
        server_pid.map(|pid| CancelTarget::new("10.0.0.1:5432".into(), pid, vec![0; 4].into()));
    let addr: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    Arc::new(ClientInfo {
        id,
        user: "app".into(),
        database: "app".into(),
        db_key: "app".into(),
        home_node: "10.0.0.1:5432".into(),
        addr: Some(addr),
        local: None,
        connected: UNIX_EPOCH,
        application_name: format!("worker-{id}"),
        tls: String::new(),
        server: Arc::new(Mutex::new(server)),
    })
}

fn snapshot(pools: Vec<PoolView>, clients: Vec<Arc<ClientInfo>>) -> Snapshot {
    Snapshot {
        pools,
        clients,
        config: Arc::new(config()),
        paused: Paused::default(),
    }
}

fn int(set: &RowSet, row: usize, column: &str) -> i64 {
    match set.get(row, column) {
        Some(Value::Int(n)) => *n,
        other => panic!("{column} in row {row} is {other:?}"),
    }
}

fn text(set: &RowSet, row: usize, column: &str) -> Option<String> {
    match set.get(row, column) {
        Some(Value::Text(s)) => Some(s.clone()),
        Some(Value::Null) => None,
        other => panic!("{column} in row {row} is {other:?}"),
    }
}

#[test]
fn commands_parse_case_insensitively_with_optional_database() {
    assert_eq!(command::parse("show pools"), Ok(Command::Show(Show::Pools)));
    assert_eq!(
        command::parse("Show   Databases"),
        Ok(Command::Show(Show::Databases))
    );
    assert_eq!(command::parse("RELOAD"), Ok(Command::Reload));
    assert_eq!(command::parse("pause"), Ok(Command::Pause(None)));
    assert_eq!(
        command::parse("PAUSE App"),
        Ok(Command::Pause(Some("App".into())))
    );
    assert_eq!(
        command::parse("resume \"my\"\"db\""),
        Ok(Command::Resume(Some("my\"db".into())))
    );
    for bad in ["SHOW", "SHOW POOL", "SELECT 1", "PAUSE a b", "RESUME \"x"] {
        assert!(
            matches!(command::parse(bad), Err(ConsoleError::Syntax(_))),
            "{bad} parsed"
        );
    }
    assert_eq!(
        command::split(" SHOW POOLS ; show stats;  ;"),
        ["SHOW POOLS", "show stats"]
    );
    assert!(command::split(" ; ").is_empty());
}

impl PartialEq for ConsoleError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

#[test]
fn a_row_set_encodes_as_row_description_data_rows_and_command_complete() {
    let mut set = RowSet::new(&[("name", Kind::Text), ("n", Kind::Int)]);
    set.push(vec!["a".into(), 5usize.into()]);
    set.push(vec![Value::Null]);
    let mut out = BytesMut::new();
    set.encode(&mut out, "SHOW");
    let mut tags = Vec::new();
    let mut rows = Vec::new();
    while let Some(m) = frame::next_message(&mut out, 1 << 20).unwrap() {
        tags.push(m.tag);
        if m.tag == b'D' {
            let cols = messages::read_data_row(m.body()).unwrap();
            rows.push(
                cols.iter()
                    .map(|c| c.map(|b| String::from_utf8(b.to_vec()).unwrap()))
                    .collect::<Vec<_>>(),
            );
        }
        if m.tag == b'T' {
            let body = m.body();
            assert_eq!(&body[..2], &2i16.to_be_bytes());
            assert!(body[2..].starts_with(b"name\0"));
            // The second column is int8 (OID 20).
            let n_at = body.windows(2).position(|w| w == b"n\0").unwrap() + 2;
            assert_eq!(&body[n_at + 6..n_at + 10], &20u32.to_be_bytes());
        }
        if m.tag == b'C' {
            assert_eq!(m.body(), b"SHOW\0");
        }
    }
    assert_eq!(tags, b"TDDC");
    assert_eq!(
        rows,
        [
            vec![Some("a".to_owned()), Some("5".to_owned())],
            vec![None, None]
        ]
    );
}

#[test]
fn show_pools_counts_linked_idle_and_waiting_clients() {
    let mut p = pool(3, 1);
    p.waiting = 1;
    // Two clients hold servers, two are idle (one of them is waiting).
    let clients = vec![
        client(1, Some(101)),
        client(2, Some(102)),
        client(3, None),
        client(4, None),
    ];
    let set = show::pools(&snapshot(vec![p], clients));
    assert_eq!(set.rows.len(), 1);
    assert_eq!(text(&set, 0, "database").as_deref(), Some("app"));
    assert_eq!(text(&set, 0, "user").as_deref(), Some("app"));
    assert_eq!(int(&set, 0, "cl_active"), 3);
    assert_eq!(int(&set, 0, "cl_waiting"), 1);
    assert_eq!(int(&set, 0, "sv_active"), 2);
    assert_eq!(int(&set, 0, "sv_idle"), 1);
    assert_eq!(int(&set, 0, "maxwait"), 0);
    assert_eq!(text(&set, 0, "pool_mode").as_deref(), Some("transaction"));
    assert_eq!(text(&set, 0, "node").as_deref(), Some("10.0.0.1:5432"));
}

#[test]
fn show_servers_links_held_connections_to_their_clients() {
    let set = conns::servers(&snapshot(vec![pool(4, 2)], vec![client(9, Some(4242))]));
    let states: Vec<_> = (0..set.rows.len())
        .map(|i| text(&set, i, "state").unwrap())
        .collect();
    assert_eq!(states, ["active", "active", "idle", "idle"]);
    assert_eq!(int(&set, 0, "remote_pid"), 4242);
    assert_eq!(text(&set, 0, "link").as_deref(), Some("0x9"));
    assert_eq!(
        text(&set, 0, "application_name").as_deref(),
        Some("worker-9")
    );
    assert_eq!(text(&set, 0, "user").as_deref(), Some("app_server"));
    assert_eq!(text(&set, 0, "addr").as_deref(), Some("10.0.0.1"));
    assert_eq!(int(&set, 0, "port"), 5432);
    // The second active connection is held by no listed client.
    assert_eq!(int(&set, 1, "remote_pid"), 0);
    assert_eq!(text(&set, 1, "link"), None);
}

#[test]
fn show_clients_lists_state_address_and_times() {
    let set = conns::clients(&snapshot(vec![], vec![client(1, Some(7)), client(2, None)]));
    assert_eq!(set.rows.len(), 2);
    assert_eq!(text(&set, 0, "type").as_deref(), Some("C"));
    assert_eq!(text(&set, 0, "state").as_deref(), Some("active"));
    assert_eq!(text(&set, 1, "state").as_deref(), Some("idle"));
    assert_eq!(text(&set, 0, "addr").as_deref(), Some("192.0.2.7"));
    assert_eq!(int(&set, 0, "port"), 40000);
    assert_eq!(
        text(&set, 0, "connect_time").as_deref(),
        Some("1970-01-01 00:00:00 UTC")
    );
    assert_eq!(text(&set, 0, "request_time"), None);
    assert_eq!(int(&set, 1, "id"), 2);
}

#[test]
fn show_stats_sums_pools_per_database() {
    let mut a = pool(1, 1);
    a.checkouts = 10;
    a.transactions = 12;
    a.wait_micros = 500;
    let mut b = pool(1, 1);
    b.node = "10.0.0.2:5433".into();
    b.checkouts = 5;
    b.transactions = 6;
    let mut other = pool(0, 0);
    other.database = "zeta".into();
    other.transactions = 1;
    let set = show::stats(&snapshot(vec![a, b, other], vec![]));
    assert_eq!(set.rows.len(), 2);
    assert_eq!(text(&set, 0, "database").as_deref(), Some("app"));
    assert_eq!(int(&set, 0, "total_server_assignment_count"), 15);
    assert_eq!(int(&set, 0, "total_xact_count"), 18);
    assert_eq!(int(&set, 0, "total_query_count"), 18);
    assert_eq!(int(&set, 0, "total_wait_time"), 500);
    assert_eq!(int(&set, 0, "avg_xact_count"), 0);
    assert_eq!(int(&set, 1, "total_xact_count"), 1);
}

#[test]
fn show_databases_lists_each_entry_with_resolved_pool_settings() {
    let mut snap = snapshot(vec![pool(2, 1)], vec![client(1, None)]);
    snap.paused.databases.insert("app".into());
    let set = show::databases(&snap);
    let names: Vec<_> = (0..2).map(|i| text(&set, i, "name").unwrap()).collect();
    assert_eq!(names, ["*", "app"]);
    // "*" forwards the name asked for: no fixed server database.
    assert_eq!(text(&set, 0, "database"), None);
    assert_eq!(int(&set, 0, "pool_size"), 7);
    assert_eq!(int(&set, 0, "paused"), 0);
    assert_eq!(text(&set, 1, "host").as_deref(), Some("10.0.0.1"));
    assert_eq!(int(&set, 1, "port"), 5432);
    assert_eq!(text(&set, 1, "database").as_deref(), Some("app"));
    assert_eq!(int(&set, 1, "pool_size"), 3);
    assert_eq!(text(&set, 1, "pool_mode").as_deref(), Some("session"));
    assert_eq!(int(&set, 1, "current_connections"), 2);
    assert_eq!(int(&set, 1, "current_client_connections"), 1);
    assert_eq!(int(&set, 1, "paused"), 1);
    assert_eq!(
        text(&set, 1, "nodes").as_deref(),
        Some("10.0.0.1:5432,10.0.0.2:5433")
    );
}

#[test]
fn show_config_redacts_secrets_and_marks_restart_only_keys() {
    let set = about::config(&config()).unwrap();
    let row = |key: &str| {
        (0..set.rows.len())
            .find(|&i| text(&set, i, "key").as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no {key} row"))
    };
    let pw = row("users.app.password");
    assert_eq!(text(&set, pw, "value").as_deref(), Some("<redacted>"));
    let all: Vec<_> = (0..set.rows.len())
        .filter_map(|i| text(&set, i, "value"))
        .collect();
    assert!(!all.iter().any(|v| v.contains("secret")), "{all:?}");
    let size = row("pool_size");
    assert_eq!(text(&set, size, "value").as_deref(), Some("7"));
    assert_eq!(text(&set, size, "default").as_deref(), Some("20"));
    assert_eq!(text(&set, size, "changeable").as_deref(), Some("yes"));
    assert_eq!(
        text(&set, row("listen"), "changeable").as_deref(),
        Some("no")
    );
    let addr = row("databases.app.nodes[1].addr");
    assert_eq!(text(&set, addr, "value").as_deref(), Some("10.0.0.2:5433"));
    assert_eq!(text(&set, addr, "default"), None);
    assert_eq!(
        text(&set, row("admin_users"), "value").as_deref(),
        Some(r#"["admin","old","ops"]"#)
    );
}

#[test]
fn version_and_help_answer_with_one_table_each() {
    let v = about::version();
    assert_eq!(
        text(&v, 0, "version"),
        Some(format!("Attaché {}", env!("CARGO_PKG_VERSION")))
    );
    let help = about::help();
    let commands: Vec<_> = (0..help.rows.len())
        .map(|i| text(&help, i, "command").unwrap())
        .collect();
    for c in ["SHOW POOLS", "RELOAD", "PAUSE [db]", "RESUME [db]"] {
        assert!(commands.iter().any(|x| x == c), "{c} missing");
    }
}

#[test]
fn only_admin_users_get_in_and_each_with_its_method() {
    let cfg = config();
    let err = admin_auth(&cfg, "app").unwrap_err();
    assert_eq!(err.sqlstate(), "28000");
    assert!(err
        .to_string()
        .contains("not allowed to use the admin console"));
    assert_eq!(admin_auth(&cfg, "admin").unwrap().0, AdminAuth::Scram);
    // Passthrough has no server here: the stored md5 hash decides.
    assert_eq!(admin_auth(&cfg, "old").unwrap().0, AdminAuth::Md5);
    assert_eq!(admin_auth(&cfg, "ops").unwrap().0, AdminAuth::Trust);
}

fn startup(user: &str, database: Option<&str>) -> Startup {
    let mut params = vec![("user".to_owned(), user.to_owned())];
    if let Some(d) = database {
        params.push(("database".to_owned(), d.to_owned()));
    }
    Startup {
        major: 3,
        minor: 0,
        params,
    }
}

#[test]
fn the_console_names_route_to_the_console_unless_configured_as_databases() {
    let ctx = PgContext::new(config()).unwrap();
    assert!(is_console(&ctx, &startup("admin", Some("attache"))));
    assert!(is_console(&ctx, &startup("admin", Some("pgbouncer"))));
    // No database: the user name stands in, as libpq does.
    assert!(is_console(&ctx, &startup("attache", None)));
    assert!(!is_console(&ctx, &startup("admin", Some("app"))));
    let mut cfg = config();
    let app = cfg.databases["app"].clone();
    cfg.databases.insert("pgbouncer".into(), app);
    let ctx = PgContext::new(cfg).unwrap();
    assert!(!is_console(&ctx, &startup("admin", Some("pgbouncer"))));
    assert!(is_console(&ctx, &startup("admin", Some("attache"))));
}

#[test]
fn a_pause_timeout_names_what_is_still_running() {
    let mut busy = pool(3, 1);
    busy.user = "app".into();
    let mut other = pool(1, 0);
    other.db_key = "other".into();
    let msg = still_running(&snapshot(vec![busy, other], vec![]), Some("app"));
    assert!(
        msg.contains("2 server connection(s) of app/app on 10.0.0.1:5432"),
        "{msg}"
    );
    assert!(!msg.contains("other"), "{msg}");
    assert!(msg.contains("RESUME"), "{msg}");
}

#[test]
fn timestamps_are_utc_calendar_dates() {
    let at = |secs: u64| conns::timestamp(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(at(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(at(1_709_210_096), "2024-02-29 12:34:56 UTC");
    assert_eq!(at(4_102_444_799), "2099-12-31 23:59:59 UTC");
    assert!(conns::timestamp(SystemTime::now()).ends_with(" UTC"));
}
