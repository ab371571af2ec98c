//! Tests for config loading: env → TOML → validate → render, before accept.

use std::path::Path;

use super::*;

const FULL: &str = r#"
[general]
shutdown_timeout = "45s"

[postgres]
listen = "0.0.0.0:6432"
auth = "md5"
pool_size = 25
server_lifetime = "0"
client_idle_timeout = "15m"

[postgres.databases.app]
dbname = "app_prod"
nodes = [{ addr = "db1:5432" }, { addr = "[::1]:5433", role = "replica" }]
server_tls = { sslmode = "require", server_name = "db.internal" }
pool_mode = "session"
max_message_size = "64MiB"

[postgres.databases."*"]
nodes = [{ addr = "127.0.0.1:5432", role = "auto" }]

[postgres.users.batch]
pool_size = 3
auth = "trust"
server_user = "batch_role"
"#;

#[test]
fn empty_file_has_no_postgres_section() {
    let cfg = parse("").unwrap();
    assert!(cfg.postgres.is_none());
    assert_eq!(
        cfg.general.shutdown_timeout.0,
        std::time::Duration::from_secs(30)
    );
}

#[test]
fn load_none_is_the_builtin_default() {
    let cfg = load(None).unwrap();
    let pg = cfg.postgres.unwrap();
    assert_eq!(pg.listen, "127.0.0.1:6432");
    assert_eq!(pg.auth, AuthMethod::Passthrough);
    let (key, db) = pg.database("whatever").unwrap();
    assert_eq!(key, "*");
    assert_eq!(db.nodes.len(), 1);
    assert_eq!(db.nodes[0].addr, "127.0.0.1:5432");
    assert_eq!(db.pool, PoolSettings::default());
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attache.toml");
    std::fs::write(&path, FULL).unwrap();
    let cfg = load(Some(&path)).unwrap();
    assert_eq!(cfg.postgres.unwrap().pool.pool_size, Some(25));

    let missing = dir.path().join("nope.toml");
    let err = load(Some(Path::new(&missing))).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn unknown_fields_are_rejected_by_name_at_every_level() {
    let cases = [
        ("[general]\nshutdown = \"1s\"\n", "shutdown", 2),
        ("[postgres]\npool_sise = 3\n", "pool_sise", 2),
        (
            "[postgres.databases.app]\nnodes = [{ addr = \"a:1\" }]\nmin_idel = 1\n",
            "min_idel",
            3,
        ),
        ("[postgres.users.bob]\npasword = \"x\"\n", "pasword", 2),
        (
            "[postgres.databases.app]\nnodes = [{ addr = \"a:1\", weight = 2 }]\n",
            "weight",
            2,
        ),
        ("[memcached]\nlisten = \"x\"\n", "memcached", 1),
        ("[redis]\nnodes = [\"a:1\"]\nnode = \"b:2\"\n", "node", 3),
    ];
    for (text, field, line) in cases {
        let err = parse(text).unwrap_err();
        let ConfigError::Toml(toml_err) = &err else {
            panic!("expected a TOML error for {text:?}, got {err}");
        };
        assert!(
            toml_err
                .message
                .contains(&format!("unknown field `{field}`")),
            "{err}"
        );
        assert_eq!(toml_err.line, Some(line), "{err}");
    }
}

#[test]
fn value_errors_name_the_line_of_the_key() {
    let err = parse("[postgres]\n\npool_size = \"x\"\n").unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with("TOML parse error at line 3, column 13"),
        "{shown}"
    );
    assert!(shown.contains("3 | pool_size = \"x\""), "{shown}");
    assert!(
        shown.contains("invalid type: string \"x\", expected usize"),
        "{shown}"
    );

    let err = parse("[postgres]\nconnect_timeout = \"5 parsecs\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("expected a duration like \"5s\" or \"250ms\", got \"5 parsecs\""),
        "{err}"
    );
}

#[test]
fn toml_errors_quote_the_original_line_not_the_secret() {
    std::env::set_var("ATTACHE_CONFIG_TEST_SECRET", "hunter2-do-not-print");
    let text = "[postgres.users.bob]\npassword = \"${ATTACHE_CONFIG_TEST_SECRET}\" oops\n";
    let err = parse(text).unwrap_err();
    let shown = err.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("${ATTACHE_CONFIG_TEST_SECRET}"), "{shown}");
    assert!(shown.contains("line 2"), "{shown}");
}

#[test]
fn env_errors_surface_from_parse() {
    let err = parse("[postgres]\nlisten = \"${ATTACHE_CONFIG_TEST_UNSET_VAR}\"\n").unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Env(EnvError::Unset { line: 2, .. })
    ));
    assert!(
        err.to_string().contains("ATTACHE_CONFIG_TEST_UNSET_VAR"),
        "{err}"
    );
}

#[test]
fn render_redacted_hides_secrets() {
    let text = "[postgres.users.bob]\npassword = \"hunter2-in-file\"\nserver_password = \"other-secret\"\n";
    let cfg = parse(text).unwrap();
    let shown = render_redacted(&cfg);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("other-secret"), "{shown}");
    assert_eq!(shown.matches("\"<redacted>\"").count(), 2, "{shown}");
    // Debug output is redacted too.
    assert!(!format!("{cfg:?}").contains("hunter2"));
}

#[test]
fn render_redacted_spells_out_builtin_defaults() {
    let shown = render_redacted(&builtin_default());
    for line in [
        "pool_size = 20",
        "pool_mode = \"transaction\"",
        "connect_timeout = \"5s\"",
        "server_idle_timeout = \"10m\"",
        "max_message_size = \"256MiB\"",
        "server_reset_query = \"DISCARD ALL\"",
        "client_idle_timeout = \"0\"",
    ] {
        assert!(shown.contains(line), "missing {line:?} in\n{shown}");
    }
}

#[test]
fn render_round_trips_through_parse() {
    for text in [FULL, "", "[postgres]\n"] {
        let cfg = parse(text).unwrap();
        let shown = render_redacted(&cfg);
        let again = parse(&shown).unwrap_or_else(|e| panic!("{e}\n---\n{shown}"));
        assert_eq!(render_redacted(&again), shown);
        assert_eq!(again.general.shutdown_timeout, cfg.general.shutdown_timeout);
        let (Some(a), Some(b)) = (&cfg.postgres, &again.postgres) else {
            assert_eq!(cfg.postgres.is_none(), again.postgres.is_none());
            continue;
        };
        assert_eq!(a.listen, b.listen);
        assert_eq!(
            a.databases.keys().collect::<Vec<_>>(),
            b.databases.keys().collect::<Vec<_>>()
        );
        for (name, db) in &a.databases {
            let db2 = &b.databases[name];
            assert_eq!(db.nodes.len(), db2.nodes.len());
            assert_eq!(db.dbname, db2.dbname);
            assert_eq!(a.auth_for(db, None), b.auth_for(db2, None));
            assert_eq!(a.resolve_pool(db, None), b.resolve_pool(db2, None));
            for (user, u) in &a.users {
                assert_eq!(
                    a.resolve_pool(db, Some(u)),
                    b.resolve_pool(db2, Some(&b.users[user]))
                );
            }
        }
    }
}

#[test]
fn render_escapes_dollars_for_the_round_trip() {
    let cfg = parse("[postgres]\nserver_reset_query = \"SELECT $$$${x}$$$$\"\n").unwrap();
    let want = Some("SELECT $${x}$$".to_string());
    assert_eq!(cfg.postgres.as_ref().unwrap().pool.server_reset_query, want);
    let again = parse(&render_redacted(&cfg)).unwrap();
    assert_eq!(again.postgres.unwrap().pool.server_reset_query, want);
}

#[test]
fn builtin_default_renders_and_validates() {
    validate(&builtin_default()).unwrap();
    let again = parse(&render_redacted(&builtin_default())).unwrap();
    assert_eq!(
        again.postgres.unwrap().databases["*"].nodes[0].addr,
        "127.0.0.1:5432"
    );
}
