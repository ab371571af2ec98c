use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

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
        host: &host,
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
    let (status, headers) = parse_head(&mut buf).unwrap().unwrap();
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["content-length"], "2");
    let xa: Vec<_> = headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(&buf[..], b"ok", "the body stays in the buffer");
    let mut bad = BytesMut::from(&b"HTTP/1.1 2x0 What\r\n\r\n"[..]);
    assert!(parse_head(&mut bad).is_err());
}

#[test]
fn framing_follows_method_status_and_headers() {
    let h = |pairs: &[(&'static str, &'static str)]| {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    };
    let cases = [
        (
            Method::GET,
            200,
            h(&[("content-length", "10")]),
            Framing::Length(10),
        ),
        (
            Method::GET,
            200,
            h(&[("content-length", "0")]),
            Framing::Empty,
        ),
        (
            Method::HEAD,
            200,
            h(&[("content-length", "10")]),
            Framing::Empty,
        ),
        (Method::GET, 204, h(&[]), Framing::Empty),
        (
            Method::GET,
            304,
            h(&[("content-length", "10")]),
            Framing::Empty,
        ),
        (
            Method::GET,
            200,
            h(&[("transfer-encoding", "chunked"), ("content-length", "3")]),
            Framing::Chunked(Chunk::Size),
        ),
        (Method::GET, 200, h(&[]), Framing::Close),
    ];
    for (m, s, headers, want) in cases {
        let status = StatusCode::from_u16(s).unwrap();
        assert_eq!(Framing::of(&m, status, &headers).unwrap(), want, "{m} {s}");
    }
    let bad = h(&[("content-length", "ten")]);
    assert!(Framing::of(&Method::GET, StatusCode::OK, &bad).is_err());
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
