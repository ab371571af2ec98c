use super::*;

#[test]
fn strings_are_escaped_and_dollars_doubled() {
    assert_eq!(quote("plain"), "\"plain\"");
    assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(
        quote("SCRAM-SHA-256$4096:x$y:z"),
        "\"SCRAM-SHA-256$$4096:x$$y:z\""
    );
    assert_eq!(quote("line\nbreak\u{1}"), "\"line\\nbreak\\u0001\"");
}

#[test]
fn tables_render_with_quoted_keys_and_notes() {
    let mut doc = Doc::default();
    let mut t = Table::new(&["postgres", "databases", "*"]);
    t.set("pool_size", Value::Int(5));
    t.set_noted(
        "pool_mode",
        Value::str("session"),
        Some("PgBouncer default"),
    );
    t.set(
        "nodes",
        Value::Array(vec![Value::Inline(vec![(
            "addr".into(),
            Value::str("db:5432"),
        )])]),
    );
    t.set("pool_size", Value::Int(6));
    doc.push(t);
    let mut u = Table::new(&["postgres", "users", "odd name"]);
    u.set("ok", Value::Bool(true));
    doc.push(u);
    assert_eq!(
        doc.render(),
        "[postgres.databases.\"*\"]\npool_size = 6\npool_mode = \"session\"  # PgBouncer default\n\
         nodes = [{ addr = \"db:5432\" }]\n\n[postgres.users.\"odd name\"]\nok = true\n"
    );
}

#[test]
fn rendered_text_reads_back_through_the_loader() {
    let mut doc = Doc::default();
    let mut pg = Table::new(&["postgres"]);
    pg.set("listen", Value::str("127.0.0.1:6432"));
    pg.set("auth", Value::str("scram-sha-256"));
    doc.push(pg);
    let mut db = Table::new(&["postgres", "databases", "app"]);
    db.set(
        "nodes",
        Value::Array(vec![Value::Inline(vec![(
            "addr".into(),
            Value::str("127.0.0.1:5432"),
        )])]),
    );
    doc.push(db);
    let verifier = "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$dDAQURXaNx00K0V/dx6tagPt0IjSDc3zYPEWntiUOEw=:dOrJr++EBn4Lk3KvZ5JkDPVJr79TmLPTcH28z6tIwvc=";
    let mut u = Table::new(&["postgres", "users", "x"]);
    u.set("password", Value::str(verifier));
    doc.push(u);
    let text = format!(
        "{}\n{}",
        comments(&["a ${NOT_SET} comment\nsecond".into()]),
        doc.render()
    );
    assert!(text.starts_with("# a ${NOT_SET} comment second\n"));
    let cfg = crate::config::parse(&text).expect("loads");
    let pg = cfg.postgres.unwrap();
    assert_eq!(pg.users["x"].password.as_ref().unwrap().expose(), verifier);
}
