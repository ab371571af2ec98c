use super::*;

#[test]
fn split_table() {
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("   \n\t ", &[]),
        (";;; ;", &[]),
        ("SELECT 1", &["SELECT 1"]),
        ("SELECT 1;", &["SELECT 1"]),
        ("  SELECT 1 ;  SELECT 2  ", &["SELECT 1", "SELECT 2"]),
        ("SELECT 1;;SELECT 2", &["SELECT 1", "SELECT 2"]),
        ("SELECT 'a;b'; SELECT 2", &["SELECT 'a;b'", "SELECT 2"]),
        (
            "SELECT 'it''s;'; SELECT 2",
            &["SELECT 'it''s;'", "SELECT 2"],
        ),
        // Outside E'' a backslash is an ordinary character…
        (r"SELECT 'a\'; SELECT 2", &[r"SELECT 'a\'", "SELECT 2"]),
        // …inside E'' it escapes the quote.
        (
            r"SELECT E'a\';b'; SELECT 2",
            &[r"SELECT E'a\';b'", "SELECT 2"],
        ),
        (r"SELECT e'\\'; SELECT 2", &[r"SELECT e'\\'", "SELECT 2"]),
        // `xe'…'` is an identifier followed by a plain literal.
        (r"SELECT xe'\'; SELECT 2", &[r"SELECT xe'\'", "SELECT 2"]),
        (
            r#"SELECT "a;""b"; SELECT 2"#,
            &[r#"SELECT "a;""b""#, "SELECT 2"],
        ),
        ("SELECT $$a;b$$; SELECT 2", &["SELECT $$a;b$$", "SELECT 2"]),
        (
            "SELECT $x$ $$; $x$; SELECT 2",
            &["SELECT $x$ $$; $x$", "SELECT 2"],
        ),
        ("SELECT $1; SELECT 2", &["SELECT $1", "SELECT 2"]),
        // `$` inside an identifier does not open a dollar quote.
        ("SELECT a$b$; SELECT 2", &["SELECT a$b$", "SELECT 2"]),
        (
            "SELECT 1 -- c;\n; SELECT 2",
            &["SELECT 1 -- c;", "SELECT 2"],
        ),
        (
            "SELECT /* a; /* b; */ c; */ 1; SELECT 2",
            &["SELECT /* a; /* b; */ c; */ 1", "SELECT 2"],
        ),
        ("SELECT 1; -- trailing comment", &["SELECT 1"]),
        ("/* only */ ; -- comments\n;", &[]),
        (
            "/* lead */ SET x = 1; SELECT 2",
            &["/* lead */ SET x = 1", "SELECT 2"],
        ),
        (
            "SELECT 'unterminated; SELECT 2",
            &["SELECT 'unterminated; SELECT 2"],
        ),
        // Kept so that the server reports the unterminated comment itself.
        (
            "SELECT 1; /* open; SELECT 2",
            &["SELECT 1", "/* open; SELECT 2"],
        ),
        (
            "SELECT 1; SELECT $q$ open;",
            &["SELECT 1", "SELECT $q$ open;"],
        ),
        ("SELECT 'ü;é'; SELECT 'ß'", &["SELECT 'ü;é'", "SELECT 'ß'"]),
        ("SELECT ü; SELECT 2", &["SELECT ü", "SELECT 2"]),
    ];
    for (sql, expected) in cases {
        assert_eq!(split_statements(sql), *expected, "split of {sql:?}");
    }
}

fn set(name: &str, value: &str) -> SessionCommand {
    SessionCommand::Set {
        name: name.into(),
        value: SetValue::Value(value.into()),
    }
}

fn set_default(name: &str) -> SessionCommand {
    SessionCommand::Set {
        name: name.into(),
        value: SetValue::Default,
    }
}

fn reset(name: &str) -> SessionCommand {
    SessionCommand::Reset { name: name.into() }
}

#[test]
fn classify_table() {
    use SessionCommand::*;
    let slot = SetLocalOrTransaction;
    let cases: Vec<(&str, SessionCommand)> = vec![
        ("SET TimeZone = 'UTC'", set("timezone", "'UTC'")),
        (
            "set search_path to public, \"My Schema\"",
            set("search_path", "public, \"My Schema\""),
        ),
        (
            "SET SESSION statement_timeout TO 10",
            set("statement_timeout", "10"),
        ),
        ("SET statement_timeout=10;", set("statement_timeout", "10")),
        ("SET work_mem TO '64MB' -- note", set("work_mem", "'64MB'")),
        ("  /* c */ -- d\n SET x TO 1", set("x", "1")),
        (
            "SET attache.role = 'reader'",
            set("attache.role", "'reader'"),
        ),
        ("SET \"Attache\".\"Mixed\" = on", set("Attache.Mixed", "on")),
        ("SET \"a\"\"b\" = 1", set("a\"b", "1")),
        ("SET search_path TO DEFAULT", set_default("search_path")),
        ("SET x = default", set_default("x")),
        ("SET x = 'default'", set("x", "'default'")),
        ("SET x = $$v;w$$", set("x", "$$v;w$$")),
        ("SET session = 1", set("session", "1")),
        ("SET session.x = 1", set("session.x", "1")),
        (
            "SET TIME ZONE 'Europe/Paris'",
            set("timezone", "'Europe/Paris'"),
        ),
        ("set time zone local", set_default("timezone")),
        ("SET TIME ZONE DEFAULT", set_default("timezone")),
        (
            "SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE",
            set("timezone", "INTERVAL '+02:00' HOUR TO MINUTE"),
        ),
        ("SET SESSION TIME ZONE 'UTC'", set("timezone", "'UTC'")),
        ("SET SCHEMA 'app'", set("search_path", "'app'")),
        ("SET NAMES 'UTF8'", set("client_encoding", "'UTF8'")),
        ("SET NAMES", set_default("client_encoding")),
        ("SET XML OPTION DOCUMENT", set("xmloption", "DOCUMENT")),
        ("SET LOCAL statement_timeout = 5", slot.clone()),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", slot.clone()),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            slot.clone(),
        ),
        ("SET CONSTRAINTS ALL DEFERRED", slot.clone()),
        ("SET ROLE admin", SetIdentity),
        ("SET role = admin", SetIdentity),
        ("SET SESSION ROLE admin", SetIdentity),
        ("SET SESSION AUTHORIZATION alice", SetIdentity),
        ("SET LOCAL ROLE admin", slot.clone()),
        ("set session authorization default", SetIdentity),
        ("SET transaction_isolation = 'serializable'", slot.clone()),
        ("RESET TimeZone", reset("timezone")),
        ("reset \"Mixed\"", reset("Mixed")),
        ("RESET attache.role;", reset("attache.role")),
        ("RESET TIME ZONE", reset("timezone")),
        ("RESET ROLE", reset("role")),
        (
            "RESET SESSION AUTHORIZATION",
            reset("session_authorization"),
        ),
        ("RESET TRANSACTION ISOLATION LEVEL", slot.clone()),
        ("RESET ALL", ResetAll),
        ("reset all;", ResetAll),
        ("DISCARD ALL", DiscardAll),
        ("discard all ; ", DiscardAll),
        ("DISCARD PLANS", Other),
        ("DISCARD TEMP", Other),
        (
            "DEALLOCATE stmt1",
            Deallocate {
                name: Some("stmt1".into()),
            },
        ),
        (
            "DEALLOCATE PREPARE \"S_1\"",
            Deallocate {
                name: Some("S_1".into()),
            },
        ),
        ("DEALLOCATE ALL", Deallocate { name: None }),
        ("deallocate prepare all", Deallocate { name: None }),
        (
            "DEALLOCATE prepare",
            Deallocate {
                name: Some("prepare".into()),
            },
        ),
        ("LISTEN jobs", Listen),
        ("UNLISTEN jobs", Unlisten),
        ("UNLISTEN *", Unlisten),
        ("SELECT 1", Other),
        ("SELECT set_config('x', '1', false)", Other),
        ("PREPARE s AS SELECT 1", Other),
        ("SETTINGS x = 1", Other),
        ("SET", Other),
        ("SET x", Other),
        ("SET x TO", Other),
        ("SET x 1", Other),
        ("SET x FROM CURRENT", Other),
        ("SET x = 'unterminated", Other),
        ("SET x = 1 /* open", Other),
        ("RESET", Other),
        ("RESET ALL x", Other),
        ("DEALLOCATE", Other),
        ("DEALLOCATE a b", Other),
        ("LISTEN", Other),
        ("UNLISTEN 'x'", Other),
        ("-- SET x = 1", Other),
        ("", Other),
    ];
    for (sql, expected) in cases {
        assert_eq!(classify_session(sql), expected, "classify {sql:?}");
    }
}

#[test]
fn classify_only_reads_the_first_statement() {
    assert_eq!(classify_session("SET a = 1; SET b = 2"), set("a", "1"));
    assert_eq!(
        classify_session("SELECT 1; DISCARD ALL"),
        SessionCommand::Other
    );
}

#[test]
fn split_then_classify_a_typical_driver_query() {
    let sql = "SET extra_float_digits = 3; SET application_name = 'PostgreSQL JDBC Driver';\
               SELECT 1; DISCARD ALL";
    let kinds: Vec<SessionCommand> = split_statements(sql)
        .into_iter()
        .map(classify_session)
        .collect();
    assert_eq!(
        kinds,
        vec![
            set("extra_float_digits", "3"),
            set("application_name", "'PostgreSQL JDBC Driver'"),
            SessionCommand::Other,
            SessionCommand::DiscardAll,
        ]
    );
}

#[test]
fn odd_input_never_panics() {
    let mut inputs: Vec<String> = [
        "'",
        "\"",
        "$",
        "$$",
        "$a",
        "$a$",
        "$a$ $b$",
        "E'",
        "e'\\",
        "E'\\'",
        "--",
        "/*",
        "/*/",
        "/* /* */",
        "*/",
        ";",
        "SET ;",
        "SET \"",
        "SET \"\" = 1",
        "SET a. = 1",
        "SET .a = 1",
        "SET a..b = 1",
        "RESET \"",
        "DEALLOCATE \"",
        "SET TIME",
        "SET TIME ZONE",
        "SET XML",
        "SET SCHEMA",
        "SET SESSION",
        "SET LOCAL",
        "\0SET\0",
        "SET x = \u{0}",
        "SET ü = ö",
        "SET 名前 = '値'",
        "ÿ'ÿ\"ÿ$ÿ$ÿ",
        "\u{feff}SET x = 1",
        "SET x = 1\u{a0}",
        "$\u{e9}$ ; $\u{e9}$",
        "E'\\\u{e9}';",
        "'\u{1f600}''",
        "1.5e-3;2",
        "U&'\\0041'",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every prefix of a tricky statement, cut at each char boundary.
    let tricky = "SET \"é\".x = E'a\\';b' /* ü /* */ */; $t$é$t$ -- z";
    inputs.extend(tricky.char_indices().map(|(i, _)| tricky[..i].to_string()));
    for input in &inputs {
        for piece in split_statements(input) {
            assert!(!piece.is_empty());
            assert!(input.contains(piece));
            let _ = classify_session(piece);
        }
        let _ = classify_session(input);
    }
}

#[test]
fn leading_comments_are_skipped_to_the_first_token() {
    let cases: &[(&str, &str)] = &[
        ("SET x TO 1", "SET x TO 1"),
        ("  \n\tSET x", "SET x"),
        ("/* app */ SET x", "SET x"),
        ("-- c\nDISCARD ALL", "DISCARD ALL"),
        (
            "/* a /* nested */ still */ -- d\n  /**/LISTEN c",
            "LISTEN c",
        ),
        ("/* unterminated", ""),
        ("-- only a comment", ""),
        ("/*/ SET x", ""),
        ("select 1 /* c */", "select 1 /* c */"),
        ("-", "-"),
        ("/", "/"),
    ];
    for (sql, rest) in cases {
        assert_eq!(skip_leading_comments(sql), *rest, "{sql:?}");
    }
}
