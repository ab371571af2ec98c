use super::*;
use crate::frame::{decode, Limits};

fn written(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut out = BytesMut::new();
    f(&mut out);
    out.to_vec()
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

#[test]
fn helpers_write_exact_bytes() {
    let cases: Vec<(Vec<u8>, &[u8])> = vec![
        (written(|o| simple(o, b"OK")), b"+OK\r\n"),
        (
            written(|o| error(o, b"ERR unknown command 'x'")),
            b"-ERR unknown command 'x'\r\n",
        ),
        (
            written(|o| error(o, b"ERR two\r\nlines")),
            b"-ERR two  lines\r\n",
        ),
        (written(|o| simple(o, b"a\nb")), b"+a b\r\n"),
        (written(|o| integer(o, 0)), b":0\r\n"),
        (written(|o| integer(o, -12)), b":-12\r\n"),
        (
            written(|o| integer(o, i64::MIN)),
            b":-9223372036854775808\r\n",
        ),
        (
            written(|o| integer(o, i64::MAX)),
            b":9223372036854775807\r\n",
        ),
        (written(|o| bulk(o, b"a\r\nb")), b"$4\r\na\r\nb\r\n"),
        (written(|o| bulk(o, b"")), b"$0\r\n\r\n"),
        (written(|o| null(o, Version::Resp2)), b"$-1\r\n"),
        (written(|o| null(o, Version::Resp3)), b"_\r\n"),
        (written(|o| array_header(o, 3)), b"*3\r\n"),
        (written(|o| map_header(o, 2, Version::Resp3)), b"%2\r\n"),
        (written(|o| map_header(o, 2, Version::Resp2)), b"*4\r\n"),
    ];
    for (got, want) in cases {
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(want));
    }
}

fn sample() -> Frame {
    Frame::Array(vec![
        Frame::Map(vec![
            (Frame::Simple(b("server")), Frame::Bulk(b("redis"))),
            (Frame::Simple(b("proto")), Frame::Integer(3)),
        ]),
        Frame::Set(vec![Frame::Bulk(b("a"))]),
        Frame::Boolean(true),
        Frame::Double(1.5),
        Frame::BigNumber(b("12345678901234567890")),
        Frame::BulkError(b("ERR bad")),
        Frame::Verbatim {
            format: *b"txt",
            text: b("hello"),
        },
        Frame::Null,
        Frame::Error(b("ERR x")),
    ])
}

#[test]
fn resp3_encoding_round_trips() {
    let bytes = sample().to_bytes(Version::Resp3);
    let mut buf = BytesMut::from(&bytes[..]);
    let decoded = decode(&mut buf, Version::Resp3, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(decoded.frame, sample());
    assert!(buf.is_empty());
}

#[test]
fn resp2_encoding_downgrades_like_redis() {
    let bytes = sample().to_bytes(Version::Resp2);
    let expected = concat!(
        "*9\r\n",
        "*4\r\n+server\r\n$5\r\nredis\r\n+proto\r\n:3\r\n",
        "*1\r\n$1\r\na\r\n",
        ":1\r\n",
        "$3\r\n1.5\r\n",
        "$20\r\n12345678901234567890\r\n",
        "-ERR bad\r\n",
        "$5\r\nhello\r\n",
        "$-1\r\n",
        "-ERR x\r\n",
    );
    assert_eq!(&bytes[..], expected.as_bytes());
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(decode(&mut buf, Version::Resp2, &Limits::default())
        .unwrap()
        .is_some());
}

#[test]
fn doubles_use_resp3_spellings() {
    let cases: [(f64, &[u8]); 5] = [
        (f64::INFINITY, b",inf\r\n"),
        (f64::NEG_INFINITY, b",-inf\r\n"),
        (f64::NAN, b",nan\r\n"),
        (0.1, b",0.1\r\n"),
        (1e300, b",1e300\r\n"),
    ];
    for (value, want) in cases {
        assert_eq!(&Frame::Double(value).to_bytes(Version::Resp3)[..], want);
    }
}

#[test]
fn push_is_an_array_for_resp2_clients() {
    let push = Frame::Push(vec![Frame::Bulk(b("message")), Frame::Bulk(b("ch"))]);
    assert_eq!(
        &push.to_bytes(Version::Resp2)[..],
        b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n"
    );
    assert_eq!(
        &push.to_bytes(Version::Resp3)[..],
        b">2\r\n$7\r\nmessage\r\n$2\r\nch\r\n"
    );
    assert_eq!(
        &Frame::Boolean(false).to_bytes(Version::Resp3)[..],
        b"#f\r\n"
    );
    assert_eq!(
        &Frame::Boolean(false).to_bytes(Version::Resp2)[..],
        b":0\r\n"
    );
}
