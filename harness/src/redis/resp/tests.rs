use super::*;

fn parse_all(bytes: &[u8]) -> std::io::Result<Reply> {
    parse(&mut std::io::Cursor::new(bytes))
}

#[test]
fn encodes_commands_as_bulk_string_arrays() {
    assert_eq!(
        encode(&[b"SET", b"k", b"a\r\nb"]),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n".to_vec()
    );
}

#[test]
fn parses_every_resp2_type() {
    assert_eq!(parse_all(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
    assert_eq!(
        parse_all(b"-ERR nope\r\n").unwrap(),
        Reply::Error("ERR nope".into())
    );
    assert_eq!(parse_all(b":-7\r\n").unwrap(), Reply::Int(-7));
    assert_eq!(
        parse_all(b"$5\r\na\r\nbc\r\n").unwrap(),
        Reply::Bulk(Some(b"a\r\nbc".to_vec()))
    );
    assert_eq!(parse_all(b"$-1\r\n").unwrap(), Reply::Bulk(None));
    assert_eq!(parse_all(b"*-1\r\n").unwrap(), Reply::Array(None));
    assert_eq!(
        parse_all(b"*2\r\n$1\r\nx\r\n*1\r\n:1\r\n").unwrap(),
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"x".to_vec())),
            Reply::Array(Some(vec![Reply::Int(1)])),
        ]))
    );
}

#[test]
fn rejects_malformed_replies() {
    for bad in [
        &b"?x\r\n"[..],
        b"+OK\n",
        b"$3\r\nabcd\r\n",
        b"$-2\r\n",
        b":x\r\n",
        b"*2\r\n:1\r\n",
    ] {
        assert!(parse_all(bad).is_err(), "{bad:?} accepted");
    }
    let eof = parse_all(b"").unwrap_err();
    assert_eq!(eof.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn flat_field_arrays_are_searchable() {
    let reply = Reply::Array(Some(vec![
        Reply::Bulk(Some(b"name".to_vec())),
        Reply::Bulk(Some(b"mymaster".to_vec())),
        Reply::Bulk(Some(b"num-other-sentinels".to_vec())),
        Reply::Bulk(Some(b"2".to_vec())),
    ]));
    assert_eq!(reply.field("num-other-sentinels").as_deref(), Some("2"));
    assert_eq!(reply.field("mymaster"), None);
    assert_eq!(Reply::Int(3).field("x"), None);
}

#[test]
fn describe_cuts_before_credentials() {
    assert_eq!(
        describe(&[b"MIGRATE", b"127.0.0.1", b"1", b"AUTH", b"secret", b"KEYS"]),
        "MIGRATE 127.0.0.1 1 …"
    );
    assert_eq!(describe(&[b"auth2", b"u", b"pw"]), "…");
    assert_eq!(describe(&[b"CLUSTER", b"INFO"]), "CLUSTER INFO");
}

#[test]
fn auth_debug_hides_the_password() {
    let auth = Auth {
        user: Some("alice".into()),
        password: Some("hunter2".into()),
    };
    let shown = format!("{auth:?}");
    assert!(shown.contains("alice"));
    assert!(!shown.contains("hunter2"));
}

#[test]
fn info_fields_are_found_by_exact_name() {
    let info =
        "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_link_status_x:down\r\n";
    assert_eq!(info_field(info, "role").as_deref(), Some("slave"));
    assert_eq!(
        info_field(info, "master_link_status").as_deref(),
        Some("up")
    );
    assert_eq!(info_field(info, "missing"), None);
}
