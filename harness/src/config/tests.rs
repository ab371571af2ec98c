use super::*;

fn conf(tls: bool, settings: Vec<(String, String)>) -> ServerConf {
    ServerConf {
        port: 54321,
        socket_dir: PathBuf::from("/tmp/it's/data"),
        password_encryption: "md5",
        tls,
        settings,
    }
}

#[test]
fn defaults_come_before_caller_settings() {
    let text = conf(false, vec![("synchronous_commit".into(), "on".into())]).render();
    let default = text.find("synchronous_commit = 'off'").unwrap();
    let caller = text.find("synchronous_commit = 'on'").unwrap();
    assert!(default < caller, "{text}");
    assert!(text.contains("port = '54321'"));
    assert!(text.contains("unix_socket_directories = '/tmp/it''s/data'"));
    assert!(text.contains("password_encryption = 'md5'"));
    assert!(text.contains("listen_addresses = '127.0.0.1'"));
    assert!(!text.contains("ssl"));
}

#[test]
fn tls_turns_on_ssl_with_data_dir_files() {
    let text = conf(true, vec![]).render();
    assert!(text.contains("ssl = 'on'"));
    assert!(text.contains("ssl_cert_file = 'server.crt'"));
    assert!(text.contains("ssl_key_file = 'server.key'"));
}

#[test]
fn settings_are_validated_and_unquoted() {
    assert_eq!(
        validate_setting("log_statement", "'all'").unwrap(),
        ("log_statement".into(), "all".into())
    );
    assert_eq!(validate_setting("work_mem", "4MB").unwrap().1, "4MB");
    assert!(validate_setting("Bad Key", "1").is_err());
    assert!(validate_setting("work_mem", "1\nfsync = on").is_err());
    assert!(validate_setting("", "1").is_err());
}

#[test]
fn hba_trusts_superuser_and_puts_catch_all_last() {
    let extra = vec!["hostssl all certy 127.0.0.1/32 cert".to_string()];
    let text = render_hba(HbaAuth::Md5, &extra);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "local all all trust",
            "host all postgres 127.0.0.1/32 trust",
            "host replication all 127.0.0.1/32 trust",
            "hostssl all certy 127.0.0.1/32 cert",
            "host all all 127.0.0.1/32 md5",
        ]
    );
}

#[test]
fn auth_methods_map_to_hba_and_password_encryption() {
    assert_eq!(HbaAuth::Scram.method(), "scram-sha-256");
    assert_eq!(HbaAuth::Password.method(), "password");
    assert_eq!(HbaAuth::Trust.method(), "trust");
    assert_eq!(HbaAuth::Md5.password_encryption(), "md5");
    assert_eq!(HbaAuth::Password.password_encryption(), "scram-sha-256");
    assert_eq!(HbaAuth::default(), HbaAuth::Scram);
}

#[test]
fn quoting_doubles_embedded_quotes() {
    assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    assert_eq!(quote_literal("it's"), "'it''s'");
}
