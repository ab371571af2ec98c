use super::*;

fn body(code: i32, rest: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(rest);
    v
}

#[test]
fn recognises_requests() {
    assert_eq!(
        parse(&body(SSL_REQUEST_CODE, &[])),
        Ok(StartupPacket::SslRequest)
    );
    assert_eq!(
        parse(&body(GSSENC_REQUEST_CODE, &[])),
        Ok(StartupPacket::GssEncRequest)
    );
    let mut rest = 42i32.to_be_bytes().to_vec();
    rest.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(
        parse(&body(CANCEL_REQUEST_CODE, &rest)),
        Ok(StartupPacket::Cancel {
            pid: 42,
            secret: vec![1, 2, 3, 4]
        })
    );
    assert_eq!(
        parse(&body(CANCEL_REQUEST_CODE, &[0, 0])),
        Err(StartupError::BadCancelKey)
    );
}

#[test]
fn parses_startup_params() {
    let p = parse(&body(PROTOCOL_3_0, b"user\0app\0database\0db\0\0")).unwrap();
    let StartupPacket::Startup(s) = p else {
        panic!("not a startup")
    };
    assert_eq!((s.major, s.minor), (3, 0));
    assert_eq!(s.param("user"), Some("app"));
    assert_eq!(s.param("database"), Some("db"));
    assert_eq!(s.param("options"), None);
}

#[test]
fn rejects_malformed_startup() {
    for rest in [
        &b"user\0app"[..],
        b"user\0",
        b"user\0app\0\0junk",
        b"\xff\xfe\0x\0\0",
    ] {
        assert_eq!(
            parse(&body(PROTOCOL_3_0, rest)),
            Err(StartupError::BadParameters),
            "{rest:?}"
        );
    }
    assert_eq!(
        parse(&body(2 << 16, b"\0")),
        Err(StartupError::UnsupportedVersion { major: 2, minor: 0 })
    );
    assert_eq!(parse(&[0, 3]), Err(StartupError::TooShort));
}

#[test]
fn keeps_minor_version_for_negotiation() {
    let p = parse(&body(PROTOCOL_3_0 + 2, b"user\0u\0_pq_.x\0y\0\0")).unwrap();
    let StartupPacket::Startup(s) = p else {
        panic!("not a startup")
    };
    assert_eq!(s.minor, 2);
    assert_eq!(s.param("_pq_.x"), Some("y"));
}
