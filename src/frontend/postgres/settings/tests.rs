use super::*;

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn startup_params_become_quoted_settings() {
    let s = Settings::from_startup(&params(&[
        ("user", "app"),
        ("database", "db"),
        ("application_name", "it's"),
        ("DateStyle", "ISO"),
        (
            "options",
            "-c search_path=a,b --statement-timeout=5s -c x\\ y=1",
        ),
        ("_pq_.opt", "1"),
    ]));
    let v: Vec<_> = s
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        v,
        vec![
            ("application_name", "'it''s'"),
            ("datestyle", "'ISO'"),
            ("search_path", "'a,b'"),
            ("statement_timeout", "'5s'"),
        ]
    );
}

#[test]
fn diff_sets_changed_and_resets_missing() {
    let mut client = Settings::default();
    client.values.insert("a".into(), "'1'".into());
    client.values.insert("b".into(), "'2'".into());
    let mut server = BTreeMap::new();
    server.insert("a".to_string(), "'1'".to_string());
    server.insert("c".to_string(), "'3'".to_string());
    assert_eq!(
        client.diff_sql(&server).as_deref(),
        Some("SET b TO '2';RESET c;")
    );
    server.remove("c");
    server.insert("b".into(), "'2'".into());
    assert_eq!(client.diff_sql(&server), None);
}

#[test]
fn apply_follows_set_reset_and_discard() {
    let mut v = BTreeMap::new();
    Settings::apply_server(
        &mut v,
        &[
            SessionCommand::Set {
                name: "search_path".into(),
                value: SetValue::Value("public".into()),
            },
            SessionCommand::Set {
                name: "x".into(),
                value: SetValue::Value("1".into()),
            },
            SessionCommand::Reset { name: "x".into() },
        ],
    );
    assert_eq!(v.get("search_path").map(String::as_str), Some("public"));
    assert!(!v.contains_key("x"));
    Settings::apply_server(&mut v, &[SessionCommand::DiscardAll]);
    assert!(v.is_empty());
}

#[test]
fn client_reset_returns_to_startup_values() {
    let mut s = Settings::from_startup(&params(&[("application_name", "a")]));
    s.apply_client(&[SessionCommand::Set {
        name: "application_name".into(),
        value: SetValue::Value("'b'".into()),
    }]);
    assert_eq!(s.values["application_name"], "'b'");
    s.apply_client(&[SessionCommand::Reset {
        name: "application_name".into(),
    }]);
    assert_eq!(s.values["application_name"], "'a'");
    s.apply_client(&[SessionCommand::Set {
        name: "x".into(),
        value: SetValue::Value("1".into()),
    }]);
    s.apply_client(&[SessionCommand::ResetAll]);
    assert_eq!(s.values, s.startup);
}
