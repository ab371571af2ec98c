use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::types::{AuthMethod, Config, PoolMode, PostgresConfig, SslMode};

/// Imports `ini` (with `userlist.txt` beside it when given) and loads the
/// result; the tempdir lives as long as the returned value.
fn run(ini: &str, userlist: Option<&str>) -> (Imported, PostgresConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(u) = userlist {
        std::fs::write(dir.path().join("userlist.txt"), u).unwrap();
    }
    let imported = import(ini, dir.path(), "pgbouncer.ini").unwrap();
    let cfg: Config =
        crate::config::parse(&imported.toml).unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    (imported, cfg.postgres.unwrap(), dir)
}

fn unmapped<'a>(i: &'a Imported, key: &str) -> &'a Unmapped {
    i.unmapped
        .iter()
        .find(|u| u.key == key)
        .unwrap_or_else(|| panic!("{key} not in {:#?}", i.unmapped))
}

fn has_unmapped(i: &Imported, key: &str) -> bool {
    i.unmapped.iter().any(|u| u.key == key)
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

#[test]
fn the_fixture_maps_to_an_equivalent_config() {
    let imported = crate::import::import_file(&fixture().join("pgbouncer.ini"), None).unwrap();
    let cfg = crate::config::parse(&imported.toml).unwrap();
    let pg = cfg.postgres.unwrap();
    assert_eq!(pg.listen, "0.0.0.0:6432");
    assert_eq!(pg.auth, AuthMethod::ScramSha256);
    assert_eq!(pg.max_client_connections, 5000);
    let r = pg.pool.resolve();
    assert_eq!(r.pool_mode, PoolMode::Transaction);
    assert_eq!((r.pool_size, r.min_idle), (20, 2));
    assert_eq!(r.connect_timeout, Duration::from_secs(5));
    assert_eq!(r.checkout_timeout, Duration::from_secs(10));
    assert_eq!(r.server_idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(r.client_idle_timeout, None);
    assert_eq!(r.max_message_size, 256 << 20);
    assert_eq!(r.server_reset_query.as_deref(), Some("DISCARD ALL"));

    let billing = &pg.databases["billing"];
    assert_eq!(billing.nodes[0].addr, "10.0.0.10:5432");
    assert_eq!(billing.dbname.as_deref(), Some("billing_production"));
    assert_eq!(billing.pool.pool_size, Some(40));
    assert_eq!(billing.server_tls.sslmode, SslMode::Prefer);
    let reports = &pg.databases["reports"];
    assert_eq!(reports.nodes[0].addr, "10.0.0.11:5433");
    assert_eq!(reports.pool.pool_mode, Some(PoolMode::Session));
    assert_eq!(pg.databases["legacy"].nodes[0].addr, "10.0.0.10:5432");
    assert_eq!(pg.databases["*"].dbname, None);

    let users: Vec<&str> = pg.users.keys().map(String::as_str).collect();
    assert_eq!(
        users,
        ["app", "batch", "reporting"],
        "legacy_app's md5 hash cannot do SCRAM"
    );
    assert_eq!(
        pg.users["app"].password.as_ref().unwrap().expose(),
        "app-secret"
    );
    assert!(pg.users["reporting"]
        .password
        .as_ref()
        .unwrap()
        .expose()
        .starts_with("SCRAM-SHA-256$4096:"));
    assert_eq!(pg.users["batch"].pool.pool_mode, Some(PoolMode::Session));

    for key in [
        "%include (line 4)",
        "databases.reports.connect_query",
        "databases.legacy.user",
        "databases.legacy.password",
        "users.batch.max_user_connections",
        "auth_file.legacy_app",
        "auth_file.reporting",
        "pgbouncer.logfile",
        "pgbouncer.pidfile",
        "pgbouncer.unix_socket_dir",
        "pgbouncer.admin_users",
        "pgbouncer.stats_users",
        "pgbouncer.reserve_pool_size",
        "pgbouncer.ignore_startup_parameters",
    ] {
        assert!(
            has_unmapped(&imported, key),
            "{key}: {:#?}",
            imported.unmapped
        );
        assert!(
            imported.toml.contains(&format!("# not mapped: {key} = ")),
            "{key}"
        );
    }
    assert_eq!(imported.unmapped.len(), 14, "{:#?}", imported.unmapped);
    let report: String = imported.unmapped.iter().map(|u| u.to_string()).collect();
    assert!(!report.contains("legacy-db-secret"));
    assert!(!report.contains("md511ad2f"));
    assert!(!imported.toml.contains("legacy-db-secret"));
}

#[test]
fn pgbouncer_defaults_that_differ_are_written_out() {
    let (imported, pg, _d) = run("[databases]\napp = host=db.internal\n", None);
    let r = pg.pool.resolve();
    assert_eq!(r.pool_mode, PoolMode::Session);
    assert_eq!(pg.max_client_connections, 100);
    assert_eq!(r.connect_timeout, Duration::from_secs(15));
    assert_eq!(r.checkout_timeout, Duration::from_secs(120));
    assert_eq!(pg.auth, AuthMethod::Md5);
    assert!(imported
        .toml
        .contains("pool_mode = \"session\"  # PgBouncer default"));
    assert_eq!(pg.listen, "127.0.0.1:6432");
    assert_eq!(
        unmapped(&imported, "pgbouncer.listen_addr").value,
        "(not set)"
    );
    assert_eq!(pg.databases["app"].nodes[0].addr, "db.internal:5432");
    assert_eq!(pg.databases["app"].dbname, None);
}

#[test]
fn md5_switches_to_scram_for_verifiers_and_plain_maps_to_md5() {
    let users = "\"v\" \"SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$dDAQURXaNx00K0V/dx6tagPt0IjSDc3zYPEWntiUOEw=:dOrJr++EBn4Lk3KvZ5JkDPVJr79TmLPTcH28z6tIwvc=\"\n\"p\" \"pw\"\n\"h\" \"md511ad2f8aab838ecc0045d58772751ac3\"\n";
    for auth_type in ["md5", "plain"] {
        let ini = format!(
            "[databases]\napp = host=db\n[pgbouncer]\nauth_type = {auth_type}\nauth_file = userlist.txt\n"
        );
        let (imported, pg, _d) = run(&ini, Some(users));
        assert_eq!(pg.auth, AuthMethod::Md5, "{auth_type}");
        assert_eq!(pg.users["v"].auth, Some(AuthMethod::ScramSha256));
        assert_eq!(pg.users["p"].auth, None);
        assert_eq!(pg.users["h"].auth, None);
        assert_eq!(
            has_unmapped(&imported, "pgbouncer.auth_type"),
            auth_type == "plain"
        );
    }
}

#[test]
fn auth_user_leaves_unlisted_users_to_the_server() {
    let ini = "[databases]\napp = host=db\n[pgbouncer]\nauth_type = scram-sha-256\nauth_file = userlist.txt\nauth_user = pgbouncer\nauth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1\n";
    let (imported, pg, _d) = run(ini, Some("\"app\" \"pw\"\n"));
    assert_eq!(pg.auth, AuthMethod::Passthrough);
    assert_eq!(pg.users["app"].auth, Some(AuthMethod::ScramSha256));
    assert!(has_unmapped(&imported, "pgbouncer.auth_user"));
    let q = unmapped(&imported, "pgbouncer.auth_query");
    assert!(q.value.contains("$1"), "the query is shown as written");
}

#[test]
fn unsupported_auth_types_fall_back_to_passthrough() {
    for t in ["hba", "cert", "pam"] {
        let ini = format!("[databases]\napp = host=db\n[pgbouncer]\nauth_type = {t}\n");
        let (imported, pg, _d) = run(&ini, None);
        assert_eq!(pg.auth, AuthMethod::Passthrough, "{t}");
        assert_eq!(unmapped(&imported, "pgbouncer.auth_type").value, t);
    }
    let (_, pg, _d) = run("[pgbouncer]\nauth_type = trust\n", None);
    assert_eq!(pg.auth, AuthMethod::Trust);
}

#[test]
fn knob_edge_cases() {
    let ini = "[databases]\napp = host=db pool_mode=statement pool_size=0\n[pgbouncer]\n\
               query_wait_timeout = 0\nserver_connect_timeout = 0.25\nserver_lifetime = 0\n\
               max_packet_size = 2147483647\nmax_prepared_statements = 0\n\
               client_idle_timeout = 5min\ndefault_pool_size = 12\n\
               idle_transaction_timeout = 30\n";
    let (imported, pg, _d) = run(ini, None);
    let r = pg.pool.resolve();
    assert_eq!(
        r.checkout_timeout,
        Duration::from_secs(10),
        "Attaché's default"
    );
    assert_eq!(r.connect_timeout, Duration::from_millis(250));
    assert_eq!(r.server_lifetime, None);
    assert_eq!(r.max_message_size, 1 << 30);
    assert_eq!(r.client_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(r.idle_transaction_timeout, Some(Duration::from_secs(30)));
    assert_eq!(r.pool_size, 12);
    let app = &pg.databases["app"];
    assert_eq!(app.pool.pool_mode, Some(PoolMode::Transaction));
    assert_eq!(app.pool.pool_size, None);
    for key in [
        "pgbouncer.query_wait_timeout",
        "pgbouncer.max_packet_size",
        "pgbouncer.max_prepared_statements",
        "databases.app.pool_mode",
        "databases.app.pool_size",
    ] {
        assert!(has_unmapped(&imported, key), "{key}");
    }
    assert!(!has_unmapped(&imported, "pgbouncer.server_lifetime"));
}

#[test]
fn sub_second_idle_transaction_timeout_rounds_up_to_attaches_minimum() {
    let ini = "[databases]\napp = host=db\n[pgbouncer]\nidle_transaction_timeout = 0.5\n";
    let (imported, pg, _d) = run(ini, None);
    assert_eq!(
        pg.pool.resolve().idle_transaction_timeout,
        Some(Duration::from_secs(1))
    );
    let u = unmapped(&imported, "pgbouncer.idle_transaction_timeout");
    assert!(u.reason.contains("1s"), "{u:?}");
}

#[test]
fn hosts_sockets_and_listen_addresses() {
    let ini = "[databases]\nsock = host=/var/run/postgresql port=5433\nmulti = host=a,b port=6000,6001\nv6 = host=::1\n\
               [pgbouncer]\nlisten_addr = 127.0.0.1, ::1\nlisten_port = 7432\n";
    let (imported, pg, _d) = run(ini, None);
    assert_eq!(pg.listen, "127.0.0.1:7432");
    assert_eq!(unmapped(&imported, "pgbouncer.listen_addr").value, "::1");
    assert_eq!(pg.databases["sock"].nodes[0].addr, "127.0.0.1:5433");
    assert_eq!(pg.databases["multi"].nodes[0].addr, "a:6000");
    assert_eq!(unmapped(&imported, "databases.multi.host").value, "b");
    assert_eq!(pg.databases["v6"].nodes[0].addr, "[::1]:5432");
    let (_, pg, _d) = run("[pgbouncer]\nlisten_addr = ::\n", None);
    assert_eq!(pg.listen, "[::]:6432");
}

#[test]
fn client_tls_only_when_pgbouncer_would_offer_it() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["server.crt", "server.key"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let files = "client_tls_key_file = server.key\nclient_tls_cert_file = server.crt\n";
    let off = import(&format!("[pgbouncer]\n{files}"), dir.path(), "p.ini").unwrap();
    let pg = crate::config::parse(&off.toml).unwrap().postgres.unwrap();
    assert!(pg.tls.is_none());
    assert!(has_unmapped(&off, "pgbouncer.client_tls_key_file"));
    let on = format!("[pgbouncer]\nclient_tls_sslmode = require\n{files}");
    let on = import(&on, dir.path(), "p.ini").unwrap();
    let pg = crate::config::parse(&on.toml).unwrap().postgres.unwrap();
    let tls = pg.tls.unwrap();
    assert_eq!(tls.cert, dir.path().join("server.crt"));
    assert_eq!(tls.key, dir.path().join("server.key"));
    assert!(has_unmapped(&on, "pgbouncer.client_tls_sslmode"));
    assert!(on.warnings.is_empty());
}

#[test]
fn server_tls_on_every_database_and_missing_files_are_warnings() {
    let ini =
        "[databases]\na = host=db\nb = host=db2\n[pgbouncer]\nserver_tls_sslmode = verify-full\n\
               server_tls_ca_file = /nonexistent/root.crt\n";
    let dir = tempfile::tempdir().unwrap();
    let imported = import(ini, dir.path(), "p.ini").unwrap();
    assert_eq!(imported.warnings.len(), 2, "{:?}", imported.warnings);
    assert!(imported.warnings[0].contains("file not found: /nonexistent/root.crt"));
    assert!(imported
        .toml
        .contains("# warning: postgres.databases.a.server_tls.ca_file"));
    assert!(imported.toml.contains(
        "server_tls = { sslmode = \"verify-full\", ca_file = \"/nonexistent/root.crt\" }"
    ));
}

#[test]
fn users_section_needs_a_password_when_auth_does() {
    let ini = "[databases]\napp = host=db\n[users]\nghost = pool_mode=session\n[pgbouncer]\nauth_type = md5\n";
    let (imported, pg, _d) = run(ini, None);
    assert!(pg.users.is_empty());
    assert!(has_unmapped(&imported, "users.ghost"));
    let ini = ini.replace("md5", "trust");
    let (_, pg, _d) = run(&ini, None);
    assert_eq!(pg.users["ghost"].pool.pool_mode, Some(PoolMode::Session));
}

#[test]
fn later_lines_win_and_other_sections_are_reported() {
    let ini = "[databases]\napp = host=old\napp = host=new\n[peers]\n1 = host=/tmp\n[pgbouncer]\n\
               default_pool_size = 5\ndefault_pool_size = 7\n";
    let (imported, pg, _d) = run(ini, None);
    assert_eq!(pg.databases["app"].nodes[0].addr, "new:5432");
    assert_eq!(pg.pool.pool_size, Some(7));
    assert!(unmapped(&imported, "peers.1").reason.contains("peers"));
}

#[test]
fn broken_input_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let e = import(
        "[pgbouncer]\nauth_file = missing.txt\n",
        dir.path(),
        "p.ini",
    )
    .unwrap_err();
    assert!(matches!(e, ImportError::Read { .. }), "{e}");
    let e = import(
        "[databases]\napp = host=db port=nope\n",
        dir.path(),
        "p.ini",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.ini:2: [databases] app: port \"nope\" is not a port number"
    );
    let e = import(
        "[databases]\napp = host=db password='x\n",
        dir.path(),
        "p.ini",
    )
    .unwrap_err();
    assert!(matches!(e, ImportError::Syntax { line: 2, .. }), "{e}");
    // min_pool_size above the pool: Attaché's loader refuses, so does the import.
    let e = import(
        "[pgbouncer]\ndefault_pool_size = 2\nmin_pool_size = 5\n",
        dir.path(),
        "p.ini",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("min_idle (5) must not exceed pool_size (2)"),
        "{e}"
    );
}
