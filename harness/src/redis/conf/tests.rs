use super::*;

#[test]
fn quote_survives_quotes_backslashes_and_control_characters() {
    assert_eq!(quote("plain"), "\"plain\"");
    assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(quote("a\nb\x7f"), "\"a\\x0ab\\x7f\"");
    assert_eq!(quote("é ü"), "\"é ü\"");
}

#[test]
fn render_writes_defaults_auth_tls_cluster_and_overrides_last() {
    let spec = Spec {
        password: Some("p\"w".into()),
        users: vec![("alice".into(), "a b".into())],
        settings: vec![("appendonly".into(), "yes".into())],
        tls: Some(TlsFiles {
            cert: "/x/c".into(),
            key: "/x/k".into(),
            ca: "/x/ca".into(),
        }),
        cluster: true,
        replica_of: Some(7000),
    };
    let conf = spec.render(6000, Some(6001), Path::new("/tmp/d"));
    let lines: Vec<&str> = conf.lines().collect();
    for want in [
        "port 6000",
        "bind 127.0.0.1",
        "daemonize no",
        "dir \"/tmp/d\"",
        "save \"\"",
        "requirepass \"p\\\"w\"",
        "masterauth \"p\\\"w\"",
        "user alice on \">a b\" ~* &* +@all",
        "tls-port 6001",
        "tls-cert-file \"/tmp/d/tls-server.crt\"",
        "cluster-enabled yes",
        "replicaof 127.0.0.1 7000",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{conf}");
    }
    let default = lines.iter().position(|l| *l == "appendonly no").unwrap();
    let custom = lines.iter().position(|l| *l == "appendonly yes").unwrap();
    assert!(custom > default, "settings must override defaults");
}

#[test]
fn render_without_options_has_no_auth_tls_or_cluster() {
    let conf = Spec::default().render(6000, None, Path::new("/d"));
    for absent in ["requirepass", "user ", "tls-", "cluster-", "replicaof"] {
        assert!(!conf.contains(absent), "{absent:?} in\n{conf}");
    }
}

#[test]
fn spec_debug_hides_passwords() {
    let spec = Spec {
        password: Some("topsecret".into()),
        users: vec![("bob".into(), "alsosecret".into())],
        ..Spec::default()
    };
    let shown = format!("{spec:?}");
    assert!(shown.contains("bob"));
    assert!(!shown.contains("topsecret") && !shown.contains("alsosecret"));
}

#[test]
fn sentinel_conf_monitors_the_primary_with_short_timeouts() {
    let conf = render_sentinel(26000, Path::new("/s"), "mymaster", 6379, 2, Some("pw"));
    for want in [
        "port 26000",
        "sentinel monitor mymaster 127.0.0.1 6379 2",
        "sentinel down-after-milliseconds mymaster 1000",
        "sentinel failover-timeout mymaster 5000",
        "sentinel auth-pass mymaster \"pw\"",
    ] {
        assert!(conf.lines().any(|l| l == want), "missing {want:?}");
    }
    assert!(!render_sentinel(1, Path::new("/s"), "m", 2, 1, None).contains("auth-pass"));
}

#[test]
fn settings_and_names_are_validated() {
    assert!(validate_setting("maxmemory-policy", "allkeys-lru").is_ok());
    assert!(validate_setting("save", "\"60 1\"").is_ok());
    assert!(validate_setting("Bad Key", "x").is_err());
    assert!(validate_setting("", "x").is_err());
    assert!(validate_setting("k", "a\nrequirepass x").is_err());
    assert!(validate_name("user", "app_1.x-y").is_ok());
    assert!(validate_name("user", "a b").is_err());
    assert!(validate_name("user", "").is_err());
}
