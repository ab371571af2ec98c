use super::*;
use crate::frame::next_message;
use bytes::BytesMut;

fn one(buf: &mut BytesMut) -> crate::frame::Message {
    next_message(buf, 1 << 20).unwrap().unwrap()
}

#[test]
fn parse_and_bind_rename_round_trip() {
    let mut out = BytesMut::new();
    write_parse(&mut out, "s1", b"select $1", &[0, 1, 0, 0, 0, 23]);
    let m = one(&mut out);
    assert_eq!(m.tag, b'P');
    let p = read_parse(m.body()).unwrap();
    assert_eq!((p.name, p.query), ("s1", &b"select $1"[..]));
    let mut renamed = BytesMut::new();
    write_parse(&mut renamed, "attache_9", p.query, p.param_types);
    let p2 = one(&mut renamed);
    let p2 = read_parse(p2.body()).unwrap();
    assert_eq!((p2.name, p2.param_types), ("attache_9", p.param_types));

    let mut out = BytesMut::new();
    write_bind(&mut out, "", "s1", &[0, 0, 0, 0, 0, 0]);
    let m = one(&mut out);
    assert_eq!(
        read_bind(m.body()).unwrap(),
        ("", "s1", &[0u8, 0, 0, 0, 0, 0][..])
    );
}

#[test]
fn malformed_parse_is_an_error_not_a_panic() {
    for body in [
        &b""[..],
        b"s1",
        b"s1\0select",
        b"s1\0q\0\0",
        b"s1\0q\0\0\x02\0\0",
    ] {
        assert!(read_parse(body).is_err(), "{body:?}");
    }
    assert!(read_target(b"X\0", "Close").is_err());
    assert!(read_target(b"", "Close").is_err());
    assert_eq!(read_target(b"Sname\0", "Close").unwrap(), (b'S', "name"));
}

#[test]
fn auth_requests_decode() {
    let mut out = BytesMut::new();
    auth_md5(&mut out, [1, 2, 3, 4]);
    auth_sasl(&mut out, &["SCRAM-SHA-256"]);
    auth_ok(&mut out);
    let m = one(&mut out);
    assert_eq!(
        read_auth_request(m.body()).unwrap(),
        AuthRequest::Md5([1, 2, 3, 4])
    );
    let m = one(&mut out);
    assert_eq!(
        read_auth_request(m.body()).unwrap(),
        AuthRequest::Sasl(vec!["SCRAM-SHA-256".into()])
    );
    let m = one(&mut out);
    assert_eq!(read_auth_request(m.body()).unwrap(), AuthRequest::Ok);
}

#[test]
fn error_fields_round_trip() {
    let mut out = BytesMut::new();
    error_full(
        &mut out,
        "FATAL",
        "28P01",
        "password authentication failed",
        None,
    );
    let m = one(&mut out);
    assert_eq!(m.tag, b'E');
    let f = read_error_fields(m.body());
    assert_eq!(f.severity, "FATAL");
    assert_eq!(f.code, "28P01");
    assert_eq!(f.message, "password authentication failed");
}

#[test]
fn startup_message_parses_back() {
    let mut out = BytesMut::new();
    startup(&mut out, &[("user", "app"), ("database", "db")]);
    let body = crate::frame::next_startup(&mut out).unwrap().unwrap();
    let crate::startup::StartupPacket::Startup(s) = crate::startup::parse(&body).unwrap() else {
        panic!("not startup")
    };
    assert_eq!(s.param("user"), Some("app"));
    assert_eq!(s.param("database"), Some("db"));
}

#[test]
fn ready_status_and_sasl_initial() {
    assert_eq!(read_ready_status(b"T").unwrap(), b'T');
    assert!(read_ready_status(b"X").is_err());
    let mut out = BytesMut::new();
    sasl_initial_response(&mut out, "SCRAM-SHA-256", b"n,,n=,r=abc");
    let m = one(&mut out);
    assert_eq!(
        read_sasl_initial(m.body()).unwrap(),
        ("SCRAM-SHA-256", &b"n,,n=,r=abc"[..])
    );
}

#[test]
fn data_row_columns_and_nulls() {
    let mut body = Vec::new();
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.push(b't');
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&3i32.to_be_bytes());
    body.extend_from_slice(b"123");
    let cols = read_data_row(&body).unwrap();
    assert_eq!(cols, vec![Some(&b"t"[..]), None, Some(&b"123"[..])]);
    // Truncated: a length that runs past the end.
    assert!(read_data_row(&body[..body.len() - 1]).is_err());
    assert!(read_data_row(&[0]).is_err());
}

#[test]
fn query_text_in_another_encoding_is_kept_byte_for_byte() {
    // LATIN1 'é' is 0xE9, not valid UTF-8: the bytes pass unchanged and
    // only the copy used for classification has the byte replaced.
    let body = b"select 'caf\xe9'\0";
    let sql = read_query(body).unwrap();
    assert_eq!(sql, b"select 'caf\xe9'");
    assert_eq!(sql_text(sql), "select 'caf\u{fffd}'");
    assert!(matches!(
        sql_text(b"select 1"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert!(read_query(b"no terminator").is_err());

    let mut out = BytesMut::new();
    write_parse(&mut out, "s", b"select '\xe9'", &[0, 0]);
    let m = one(&mut out);
    let p = read_parse(m.body()).unwrap();
    assert_eq!((p.name, p.query), ("s", &b"select '\xe9'"[..]));
}
