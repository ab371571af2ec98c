use super::*;

#[test]
fn sections_comments_and_values() {
    let text = "\
; a comment
# another comment
[databases]
app = host=db port=5432 ; not a comment: part of the value
\"my \"\"odd\"\" db\" = dbname=x

[PgBouncer]
  listen_port   =   6432  
server_reset_query = \"DISCARD ALL\"
quoted_single = 'it''s'
empty =
";
    let ini = parse_ini(text, "t.ini").unwrap();
    assert_eq!(ini.sections.len(), 2);
    let dbs = &ini.sections[0];
    assert_eq!(dbs.name, "databases");
    assert_eq!(dbs.entries[0].key, "app");
    assert_eq!(
        dbs.entries[0].value,
        "host=db port=5432 ; not a comment: part of the value"
    );
    assert_eq!(dbs.entries[0].line, 4);
    assert_eq!(dbs.entries[1].key, "my \"odd\" db");
    let pgb = &ini.sections[1];
    assert_eq!(pgb.name, "pgbouncer", "section names are case-insensitive");
    let get = |k: &str| {
        pgb.entries
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.as_str())
    };
    assert_eq!(get("listen_port"), Some("6432"));
    assert_eq!(get("server_reset_query"), Some("DISCARD ALL"));
    assert_eq!(get("quoted_single"), Some("it's"));
    assert_eq!(get("empty"), Some(""));
}

#[test]
fn include_is_recorded_not_followed() {
    let ini = parse_ini("%include /etc/pgbouncer/extra.ini\n[pgbouncer]\n", "t.ini").unwrap();
    assert_eq!(
        ini.includes,
        vec![(1, "/etc/pgbouncer/extra.ini".to_string())]
    );
}

#[test]
fn errors_name_the_line_without_quoting_it() {
    let cases = [
        ("secret = hunter2\n", 1, "before the first"),
        (
            "[pgbouncer]\nno equals sign hunter2\n",
            2,
            "expected key = value",
        ),
        ("[pgbouncer\n", 1, "closing ]"),
        ("[databases]\n\"unterminated = x\n", 2, "closing"),
        ("%frobnicate x\n", 1, "directive"),
    ];
    for (text, line, needle) in cases {
        let e = parse_ini(text, "t.ini").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("t.ini:{line}: ")), "{msg}");
        assert!(msg.contains(needle), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}

#[test]
fn connection_strings() {
    let got = parse_connstring(
        "host=db.internal port = 5433 dbname='my db' password='it\\'s' user=a\\ b",
    )
    .unwrap();
    let want = [
        ("host", "db.internal"),
        ("port", "5433"),
        ("dbname", "my db"),
        ("password", "it's"),
        ("user", "a b"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(parse_connstring("   ").unwrap(), vec![]);
    assert!(parse_connstring("host").is_err());
    assert!(parse_connstring("dbname='open").is_err());
}

#[test]
fn userlist_lines() {
    let text = "\
;; users
\"app\" \"app-secret\"
\"legacy\" \"md511ad2f8aab838ecc0045d58772751ac3\"   trailing is ignored
\"we\"\"ird\" \"pa\"\"ss\"

# done
";
    let users = parse_userlist(text, "userlist.txt").unwrap();
    let got: Vec<(&str, &str, usize)> = users
        .iter()
        .map(|u| (u.user.as_str(), u.password.as_str(), u.line))
        .collect();
    assert_eq!(
        got,
        vec![
            ("app", "app-secret", 2),
            ("legacy", "md511ad2f8aab838ecc0045d58772751ac3", 3),
            ("we\"ird", "pa\"ss", 4),
        ]
    );
    assert!(!format!("{users:?}").contains("app-secret"));
}

#[test]
fn malformed_userlist_line_is_an_error_without_the_password() {
    let e = parse_userlist("\"app\" \"unterminated-secret\n", "userlist.txt").unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("userlist.txt:1:"), "{msg}");
    assert!(!msg.contains("unterminated-secret"));
    assert!(parse_userlist("app secret\n", "u").is_err());
}
