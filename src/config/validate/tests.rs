//! Tests for config validation: one exact, path-named message per rule.

use super::{password_kind, valid_host_port, PasswordKind};
use crate::config::{builtin_default, parse, validate, ConfigError};

const SCRAM: &str = "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$dDAQURXaNx00K0V/dx6tagPt0IjSDc3zYPEWntiUOEw=:dOrJr++EBn4Lk3KvZ5JkDPVJr79TmLPTcH28z6tIwvc=";
const MD5: &str = "md511ad2f8aab838ecc0045d58772751ac3";

/// All validation messages for `text`, or a panic if it fails earlier.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(e @ (ConfigError::Invalid { .. } | ConfigError::Many(_))) => {
            e.problems().iter().map(|p| p.to_string()).collect()
        }
        Err(other) => panic!("expected validation errors, got {other}"),
    }
}

fn one_db(extra: &str) -> String {
    format!("[postgres.databases.app]\nnodes = [{{ addr = \"db1:5432\" }}]\n{extra}")
}

#[test]
fn builtin_default_and_empty_file_are_valid() {
    validate(&builtin_default()).unwrap();
    let cfg = parse("").unwrap();
    assert!(cfg.postgres.is_none());
}

#[test]
fn listen_must_be_a_socket_address() {
    assert_eq!(
        problems("[postgres]\nlisten = \"localhost\"\n"),
        ["postgres.listen: invalid socket address \"localhost\""]
    );
    assert!(problems("[postgres]\nlisten = \"[::1]:6432\"\n").is_empty());
}

#[test]
fn node_addresses_are_host_port() {
    let text = r#"
[postgres.databases.app]
nodes = [
  { addr = "db1:5432" },
  { addr = "x", role = "replica" },
  { addr = "[::1]:5432", role = "replica" },
  { addr = ":5432", role = "replica" },
  { addr = "db:99999", role = "replica" },
  { addr = "::1:5432", role = "replica" },
]
"#;
    assert_eq!(
        problems(text),
        [
            "postgres.databases.app.nodes[1].addr: invalid socket address \"x\"",
            "postgres.databases.app.nodes[3].addr: invalid socket address \":5432\"",
            "postgres.databases.app.nodes[4].addr: invalid socket address \"db:99999\"",
            "postgres.databases.app.nodes[5].addr: invalid socket address \"::1:5432\"",
        ]
    );
}

#[test]
fn host_port_table() {
    for ok in [
        "db:5432",
        "10.0.0.1:5432",
        "[::1]:5432",
        "[fe80::1]:1",
        "my-db.internal:6543",
    ] {
        assert!(valid_host_port(ok), "{ok}");
    }
    for bad in [
        "db",
        "db:",
        "db:0",
        ":5432",
        "[::1]",
        "[nope]:5432",
        "db :5432",
        "a:b:5432",
    ] {
        assert!(!valid_host_port(bad), "{bad}");
    }
}

#[test]
fn databases_need_nodes_and_names() {
    let text = "[postgres.databases.app]\nnodes = []\n[postgres.databases.\"\"]\nnodes = [{ addr = \"db:1\" }]\n";
    assert_eq!(
        problems(text),
        [
            "postgres.databases.\"\": database name must not be empty",
            "postgres.databases.app.nodes: at least one node is required",
        ]
    );
}

#[test]
fn at_most_one_primary() {
    let text = "[postgres.databases.app]\nnodes = [{ addr = \"a:1\" }, { addr = \"b:1\", role = \"replica\" }, { addr = \"c:1\" }]\n";
    let got = problems(text);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with(
            "postgres.databases.app.nodes[2].role: at most one node per database may be primary, and nodes[0] already is"
        ),
        "{}",
        got[0]
    );
}

#[test]
fn pool_size_range_at_every_layer() {
    let text = format!(
        "[postgres]\npool_size = 0\n{}[postgres.users.bob]\npool_size = 10001\n",
        one_db("pool_size = 20000\n")
    );
    assert_eq!(
        problems(&text),
        [
            "postgres.pool_size: must be between 1 and 10000, got 0",
            "postgres.databases.app.pool_size: must be between 1 and 10000, got 20000",
            "postgres.users.bob.pool_size: must be between 1 and 10000, got 10001",
        ]
    );
}

#[test]
fn min_idle_is_checked_after_resolution() {
    // Each layer alone is fine; the combination is not.
    let text = format!(
        "[postgres]\nmin_idle = 5\n{}[postgres.users.bob]\npool_size = 3\n",
        one_db("")
    );
    assert_eq!(
        problems(&text),
        ["postgres.users.bob: min_idle (5) must not exceed pool_size (3) (with database \"app\")"]
    );
    let text = format!("[postgres]\nmin_idle = 5\n{}", one_db("pool_size = 4\n"));
    assert_eq!(
        problems(&text),
        ["postgres.databases.app: min_idle (5) must not exceed pool_size (4)"]
    );
    // Reported once at the layer that breaks it, not for every database.
    let text = "[postgres]\nmin_idle = 30\n[postgres.databases.a]\nnodes = [{ addr = \"a:1\" }]\n[postgres.databases.b]\nnodes = [{ addr = \"b:1\" }]\n";
    assert_eq!(
        problems(text),
        ["postgres: min_idle (30) must not exceed pool_size (20)"]
    );
}

#[test]
fn max_message_size_range() {
    let text = format!(
        "[postgres]\nmax_message_size = \"100B\"\n{}",
        one_db("max_message_size = \"2GiB\"\n")
    );
    assert_eq!(
        problems(&text),
        [
            "postgres.max_message_size: must be between 1KiB and 1GiB, got \"100B\"",
            "postgres.databases.app.max_message_size: must be between 1KiB and 1GiB, got \"2GiB\"",
        ]
    );
}

#[test]
fn idle_transaction_timeout_is_off_or_at_least_a_second() {
    let text = format!(
        "[postgres]\nidle_transaction_timeout = \"500ms\"\n{}",
        one_db("idle_transaction_timeout = \"0\"\n")
    );
    assert_eq!(
        problems(&text),
        ["postgres.idle_transaction_timeout: must be 0 (never) or at least 1s, got \"500ms\""]
    );
    let fine = format!(
        "[postgres]\nidle_transaction_timeout = \"1s\"\n{}",
        one_db("idle_transaction_timeout = \"5m\"\n")
    );
    assert_eq!(problems(&fine), Vec::<String>::new());
}

#[test]
fn client_cert_and_key_come_together_and_files_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("client.crt");
    std::fs::write(&cert, "x").unwrap();
    let missing = dir.path().join("missing.pem");
    let text = format!(
        "{}server_tls = {{ sslmode = \"verify-full\", client_cert = {:?}, ca_file = {:?} }}\n",
        one_db(""),
        cert.display().to_string(),
        missing.display().to_string(),
    );
    assert_eq!(
        problems(&text),
        [
            "postgres.databases.app.server_tls.client_key: required when client_cert is set"
                .to_string(),
            format!(
                "postgres.databases.app.server_tls.ca_file: file not found: {}",
                missing.display()
            ),
        ]
    );
    let text = format!(
        "{}server_tls = {{ client_key = {:?} }}\n",
        one_db(""),
        cert.display().to_string()
    );
    assert_eq!(
        problems(&text),
        ["postgres.databases.app.server_tls.client_cert: required when client_key is set"]
    );
}

#[test]
fn local_tls_files_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server.key");
    std::fs::write(&key, "x").unwrap();
    let text = format!(
        "[postgres]\ntls = {{ cert = {:?}, key = {:?} }}\n",
        "/nonexistent/attache/server.crt",
        key.display().to_string()
    );
    assert_eq!(
        problems(&text),
        ["postgres.tls.cert: file not found: /nonexistent/attache/server.crt"]
    );
    let text = format!(
        "[postgres]\ntls = {{ cert = {:?}, key = {:?} }}\n",
        dir.path().display().to_string(),
        key.display().to_string()
    );
    assert_eq!(
        problems(&text),
        [format!(
            "postgres.tls.cert: not a file: {}",
            dir.path().display()
        )]
    );
}

#[test]
fn md5_users_cannot_use_scram_verifiers() {
    let text = format!(
        "[postgres]\nauth = \"md5\"\n{}[postgres.users.bob]\npassword = \"{SCRAM}\"\n[postgres.users.ann]\npassword = \"{MD5}\"\n[postgres.users.cid]\npassword = \"plain\"\n",
        one_db("")
    );
    assert_eq!(
        problems(&text),
        ["postgres.users.bob.password: auth md5 needs a plaintext password or an md5 hash, not a SCRAM verifier (a SCRAM verifier cannot check an md5 response)"]
    );
}

#[test]
fn scram_users_cannot_use_md5_hashes() {
    let text = format!(
        "{}[postgres.users.bob]\nauth = \"scram-sha-256\"\npassword = \"{MD5}\"\n[postgres.users.ann]\nauth = \"scram-sha-256\"\npassword = \"{SCRAM}\"\n[postgres.users.cid]\nauth = \"scram-sha-256\"\n",
        one_db("")
    );
    assert_eq!(
        problems(&text),
        [
            "postgres.users.bob.password: auth scram-sha-256 needs a plaintext password or a SCRAM verifier, not an md5 hash",
            "postgres.users.cid.password: auth scram-sha-256 needs a password for this user",
        ]
    );
}

#[test]
fn effective_auth_includes_database_override() {
    // `[postgres]` says passthrough, the database says md5: the user's
    // verifier is useless there.
    let text = format!(
        "{}[postgres.users.bob]\npassword = \"{SCRAM}\"\n",
        one_db("auth = \"md5\"\n")
    );
    assert_eq!(problems(&text).len(), 1);
    assert!(problems(&text)[0].starts_with("postgres.users.bob.password: auth md5"));
}

#[test]
fn password_kinds() {
    assert_eq!(password_kind(SCRAM), PasswordKind::ScramVerifier);
    assert_eq!(password_kind(MD5), PasswordKind::Md5Hash);
    assert_eq!(password_kind("md5short"), PasswordKind::Plain);
    assert_eq!(password_kind("hunter2"), PasswordKind::Plain);
    assert_eq!(
        password_kind("SCRAM-SHA-256$x"),
        PasswordKind::MalformedScram
    );
    assert_eq!(
        password_kind("SCRAM-SHA-256$0:AA==$AA==:AA=="),
        PasswordKind::MalformedScram
    );
}

#[test]
fn names_and_counts() {
    let text = format!(
        "[postgres]\nmax_client_connections = 0\n{}[postgres.users.\"\"]\n[postgres.users.bob]\nserver_user = \"\"\n",
        one_db("dbname = \"\"\n")
    );
    assert_eq!(
        problems(&text),
        [
            "postgres.max_client_connections: must be at least 1",
            "postgres.databases.app.dbname: must not be empty",
            "postgres.users.\"\": user name must not be empty",
            "postgres.users.bob.server_user: must not be empty",
        ]
    );
}

#[test]
fn many_errors_display_all() {
    let err = parse("[postgres]\nlisten = \"x\"\nmax_client_connections = 0\n").unwrap_err();
    let shown = err.to_string();
    assert_eq!(
        shown,
        "2 problems in the config:\n  postgres.listen: invalid socket address \"x\"\n  postgres.max_client_connections: must be at least 1"
    );
}

#[test]
fn topology_settings_are_checked_with_their_paths() {
    let errs = problems(
        "[postgres.databases.app]\nnodes = [{ addr = \"127.0.0.1:5432\" }]\n\
         failover_timeout = 0\nread_only_functions = [\"a.b.c\", \"\"]\n\
         [postgres.databases.app.health]\ninterval = 0\nban_time = \"10s\"\nmax_ban_time = \"1s\"\n\
         password = \"x\"\n",
    )
    .join("\n");
    for want in [
        "postgres.databases.app.failover_timeout: must be greater than 0",
        "postgres.databases.app.health.interval: must be greater than 0",
        "postgres.databases.app.health.max_ban_time: must be at least health.ban_time",
        "postgres.databases.app.health.password: needs health.user",
        "postgres.databases.app.read_only_functions[0]",
        "postgres.databases.app.read_only_functions[1]",
    ] {
        assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
    }
}

#[test]
fn admin_users_must_exist_and_have_a_password_unless_trusted() {
    let errs = problems(&format!(
        "[postgres]\nadmin_users = [\"admin\", \"ghost\", \"nopass\", \"trusted\"]\n\
         [postgres.users.admin]\npassword = \"pw\"\n\
         [postgres.users.nopass]\n\
         [postgres.users.trusted]\nauth = \"trust\"\n{}",
        one_db("")
    ));
    assert_eq!(
        errs,
        [
            "postgres.admin_users[1]: \"ghost\" has no [postgres.users.ghost] entry",
            "postgres.admin_users[2]: admin user \"nopass\" needs a password in \
             [postgres.users.nopass] (the console cannot pass a password through to a server)",
        ]
    );
    let cfg = parse(&format!(
        "[postgres]\nadmin_users = [\"admin\"]\n[postgres.users.admin]\npassword = \"pw\"\n{}",
        one_db("")
    ))
    .unwrap();
    assert_eq!(cfg.postgres.unwrap().admin_users, ["admin"]);
}

#[test]
fn http_rules_name_their_paths() {
    let text = r#"
[http]
listen = "nowhere"
request_id_header = "bad header"
stream_idle_timeout = "0s"
request_body_timeout = "0s"

[[http.routes]]
prefix = "payments"
cluster = "missing"
timeout = "1s"
per_try_timeout = "2s"

[[http.routes]]
cluster = "svc"
rewrite = "v2"
retries = 11

[http.clusters.svc]
endpoints = ["db1", "h:0", "h:80 weight=0", "ok:80 weight=3", "x:80 color=red"]
max_requests = 0
tls = { client_cert = "/nonexistent/c.crt" }
outlier = { max_ejection_percent = 101, base_ejection = "10s", max_ejection = "1s" }
health_check = { path = "healthz" }
retry_budget = { percent = 150.0 }
"#;
    let got = problems(text);
    let want = [
        "http.listen: invalid socket address \"nowhere\"",
        "http.request_id_header: \"bad header\" is not a valid header name",
        "http.stream_idle_timeout: must be more than 0",
        "http.request_body_timeout: must be more than 0 (unset: no limit)",
        "http.routes[0].cluster: no cluster named \"missing\" in [http.clusters]",
        "http.routes[0].prefix: must start with /",
        "http.routes[0].per_try_timeout: must be more than 0 and at most timeout",
        "http.routes[1].rewrite: must start with /",
        "http.routes[1].retries: must be at most 10",
        "http.clusters.svc.endpoints[0]: \"db1\" is not host:port",
        "http.clusters.svc.endpoints[1]: invalid port in \"h:0\"",
        "http.clusters.svc.endpoints[2]: weight must be 1..=1000, got \"0\"",
        "http.clusters.svc.endpoints[4]: unknown endpoint option \"color=red\" (expected weight=N)",
        "http.clusters.svc.tls.client_cert: file not found: /nonexistent/c.crt",
        "http.clusters.svc.tls: client_cert and client_key go together",
        "http.clusters.svc.max_requests: must be at least 1",
        "http.clusters.svc.outlier.max_ejection_percent: must be 0..=100",
        "http.clusters.svc.outlier.max_ejection: must be at least base_ejection",
        "http.clusters.svc.health_check.path: must start with /",
        "http.clusters.svc.retry_budget.percent: must be 0..=100",
    ];
    assert_eq!(got, want);
}

#[test]
fn http_defaults_are_valid_and_unknown_keys_refused() {
    let cfg = parse("[http]\n[[http.routes]]\ncluster = \"a\"\n[http.clusters.a]\nendpoints = [\"127.0.0.1:8080\"]\n").unwrap();
    let h = cfg.http.unwrap();
    assert_eq!(h.listen, "127.0.0.1:15000");
    assert_eq!(h.routes[0].prefix, "/");
    assert_eq!(h.routes[0].retries, 2);
    assert!(h.clusters["a"].tls.is_none());
    assert!(parse("[http]\ncolour = 1\n[http.clusters.a]\nendpoints = []\n").is_err());
    assert_eq!(
        problems("[http]\n[http.clusters.a]\nendpoints = []\n"),
        ["http.clusters.a.endpoints: at least one endpoint is required"]
    );
}
