use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::body::{step, Chunk, Step};
use super::*;

#[test]
fn request_head_is_one_buffer_with_our_host_and_length() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("app.local"));
    headers.insert("content-length", HeaderValue::from_static("999"));
    headers.insert("x-request-id", HeaderValue::from_static("r1"));
    let host = HeaderValue::from_static("svc:8080");
    let body = Bytes::from_static(b"hello");
    let out = Outgoing {
        method: &Method::POST,
        target: "/charge?x=1",
        host: host.as_bytes(),
        headers: &headers,
        body: &body,
    };
    let head = encode_request(&out);
    assert_eq!(
        &head[..],
        b"POST /charge?x=1 HTTP/1.1\r\nhost: svc:8080\r\nx-request-id: r1\r\ncontent-length: 5\r\n\r\n"
    );
    let empty = Bytes::new();
    let get = Outgoing {
        method: &Method::GET,
        body: &empty,
        ..out
    };
    assert_eq!(
        &encode_request(&get)[..],
        b"GET /charge?x=1 HTTP/1.1\r\nhost: svc:8080\r\nx-request-id: r1\r\n\r\n"
    );
}

#[test]
fn response_heads_parse_when_complete() {
    let whole = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nok";
    for cut in 0..whole.len() - 2 {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert!(parse_head(&mut buf).unwrap().is_none(), "cut {cut}");
    }
    let mut buf = BytesMut::from(&whole[..]);
    let head = parse_head(&mut buf).unwrap().unwrap();
    assert_eq!(head.status, StatusCode::CREATED);
    let fields: Vec<_> = head.fields().collect();
    assert_eq!(fields[1], (&b"X-A"[..], &b"1"[..]), "names as spelled");
    let headers = head.header_map().unwrap();
    assert_eq!(headers["content-length"], "2");
    let xa: Vec<_> = headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(&buf[..], b"ok", "the body stays in the buffer");
    let mut bad = BytesMut::from(&b"HTTP/1.1 2x0 What\r\n\r\n"[..]);
    assert!(parse_head(&mut bad).is_err());
}

#[test]
fn framing_follows_method_status_and_headers() {
    let head = |status: u16, fields: &str| {
        let text = format!("HTTP/1.1 {status} X\r\n{fields}\r\n");
        let mut buf = BytesMut::from(text.as_bytes());
        parse_head(&mut buf).unwrap().unwrap()
    };
    let cases = [
        (false, 200, "content-length: 10\r\n", Framing::Length(10)),
        (false, 200, "Content-Length: 0\r\n", Framing::Empty),
        (true, 200, "content-length: 10\r\n", Framing::Empty),
        (false, 204, "", Framing::Empty),
        (false, 304, "content-length: 10\r\n", Framing::Empty),
        (
            false,
            200,
            "transfer-encoding: chunked\r\ncontent-length: 3\r\n",
            Framing::Chunked(Chunk::Size),
        ),
        (
            false,
            200,
            "Transfer-Encoding: gzip, Chunked\r\n",
            Framing::Chunked(Chunk::Size),
        ),
        (
            false,
            200,
            "content-length: 7\r\ncontent-length: 7\r\n",
            Framing::Length(7),
        ),
        (false, 200, "", Framing::Close),
        // Encoded, not chunked: ends when the upstream closes.
        (false, 200, "transfer-encoding: gzip\r\n", Framing::Close),
        (
            false,
            200,
            "transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
            Framing::Chunked(Chunk::Size),
        ),
        // An empty list element names no coding (RFC 9110 §5.6.1).
        (
            false,
            200,
            "transfer-encoding: chunked,\r\n",
            Framing::Chunked(Chunk::Size),
        ),
        // A field naming none: still not framed by a length.
        (
            false,
            200,
            "transfer-encoding: \r\ncontent-length: 2\r\n",
            Framing::Close,
        ),
    ];
    for (head_method, s, fields, want) in cases {
        let got = Framing::of(head_method, &head(s, fields)).unwrap();
        assert_eq!(got, want, "{head_method} {s} {fields:?}");
    }
    for bad in [
        "content-length: ten\r\n",
        "content-length: 1\r\ncontent-length: 2\r\n",
        // A coding after chunked: re-chunking would apply chunked twice.
        "transfer-encoding: chunked, gzip\r\n",
        "transfer-encoding: chunked\r\ntransfer-encoding: gzip\r\n",
    ] {
        assert!(Framing::of(false, &head(200, bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn connection_close_is_a_token_of_the_connection_field() {
    let head = |fields: &str| {
        let text = format!("HTTP/1.1 200 OK\r\n{fields}\r\n");
        parse_head(&mut BytesMut::from(text.as_bytes()))
            .unwrap()
            .unwrap()
    };
    assert!(head("Connection: keep-alive, Close\r\n").connection_close());
    assert!(!head("Connection: keep-alive\r\nx-close: close\r\n").connection_close());
}

/// Drains a framing over `input` fed in pieces of `piece` bytes.
fn drain(mut framing: Framing, input: &[u8], piece: usize) -> Result<(Vec<u8>, bool), H1Error> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    loop {
        match step(&mut framing, &mut buf)? {
            Step::Data(d) => out.extend_from_slice(&d),
            Step::Done => return Ok((out, true)),
            Step::More => {
                if fed >= input.len() {
                    return Ok((out, false));
                }
                let end = (fed + piece).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

#[test]
fn chunked_bodies_decode_in_any_pieces() {
    let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
    for piece in [1, 2, 3, 7, 64] {
        let (body, done) = drain(Framing::Chunked(Chunk::Size), wire, piece).unwrap();
        assert_eq!(body, b"hello, world", "piece {piece}");
        assert!(done, "piece {piece}");
    }
    let (body, done) = drain(Framing::Chunked(Chunk::Size), b"5\r\nhel", 64).unwrap();
    assert_eq!((body.as_slice(), done), (&b"hel"[..], false));
    assert!(drain(Framing::Chunked(Chunk::Size), b"zz\r\n", 64).is_err());
    assert!(drain(Framing::Chunked(Chunk::Size), b"2\r\nabXY", 64).is_err());
}

#[test]
fn length_bodies_stop_at_their_length() {
    for piece in [1, 4, 100] {
        let (body, done) = drain(Framing::Length(6), b"abcdefEXTRA", piece).unwrap();
        assert_eq!(&body[..6], b"abcdef");
        assert!(done);
        assert!(body.len() <= 6, "never past the length: {piece}");
    }
}
