use bytes::BytesMut;

use super::*;

const ID: &[u8] = b"x-request-id";

fn complete(req: &str) -> ReqHead {
    match parse(req.as_bytes(), ID) {
        Parsed::Complete(h) => h,
        other => panic!("{req:?}: {other:?}"),
    }
}

#[test]
fn a_head_is_partial_until_its_blank_line() {
    let req = "GET /a?b=1 HTTP/1.1\r\nHost: svc\r\nAccept: */*\r\n\r\nNEXT";
    let end = req.len() - 4;
    for cut in 0..end {
        assert!(
            matches!(parse(&req.as_bytes()[..cut], ID), Parsed::Partial),
            "cut {cut}"
        );
    }
    let head = complete(req);
    assert_eq!(head.len, end, "the next request's bytes are not the head's");
    assert_eq!(head.method, Method::GET);
    assert_eq!(head.target(req.as_bytes()), "/a?b=1");
    assert_eq!(head.host(req.as_bytes()), "svc");
    assert_eq!(head.content_length, 0);
    assert_eq!(head.field_count(), 2);
    assert!(!head.close);
}

#[test]
fn requests_hyper_must_serve_are_not_ours() {
    let not_ours = [
        "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: three\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
        "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
    ];
    for req in not_ours {
        assert!(
            matches!(parse(req.as_bytes(), ID), Parsed::NotForUs),
            "{req:?}"
        );
    }
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..MAX_FIELDS {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert!(matches!(parse(many.as_bytes(), ID), Parsed::NotForUs));
}

#[test]
fn length_and_close_are_read() {
    let req = "PUT /x HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nConnection: Close\r\n\r\nhello";
    let head = complete(req);
    assert_eq!(head.content_length, 5);
    assert!(head.close);
    assert_eq!(head.method, Method::PUT);
}

fn fields(req: &str, add: &Added<'_>) -> String {
    let head = complete(req);
    let mut out = BytesMut::new();
    head.write_fields(req.as_bytes(), &mut out, add);
    String::from_utf8(out.to_vec()).unwrap()
}

const ADD: Added<'static> = Added {
    peer: b"127.0.0.1",
    request_id_name: ID,
    request_id: b"new-id",
    traceparent: b"00-new-01",
};

#[test]
fn upstream_fields_drop_hop_by_hop_and_add_the_proxy_headers() {
    let req =
        "GET / HTTP/1.1\r\nHost: app.local\r\nAccept: */*\r\nConnection: keep-alive, X-Secret\r\n\
               Keep-Alive: timeout=5\r\nX-Secret: s\r\nProxy-Authorization: Basic x\r\nTE: gzip\r\n\
               Content-Length: 0\r\n\r\n";
    assert_eq!(
        fields(req, &ADD),
        "Accept: */*\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n\
         x-forwarded-host: app.local\r\nx-request-id: new-id\r\ntraceparent: 00-new-01\r\n"
    );
}

#[test]
fn what_the_app_set_is_kept_and_extended() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: public.example\r\nX-Request-Id: abc\r\ntraceparent: {tp}\r\nTE: trailers\r\n\r\n"
    );
    let head = complete(&req);
    assert!(head.keeps_traceparent());
    assert_eq!(head.request_id(req.as_bytes()), Some(&b"abc"[..]));
    assert_eq!(
        fields(&req, &ADD),
        format!(
            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\nX-Request-Id: abc\r\n\
             traceparent: {tp}\r\nTE: trailers\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\n"
        )
    );
    let bad_tp = "GET / HTTP/1.1\r\nHost: a\r\ntraceparent: 00-zz-01\r\nx-request-id:\r\n\r\n";
    let out = fields(bad_tp, &ADD);
    assert!(out.contains("traceparent: 00-new-01\r\n"), "{out}");
    assert!(!out.contains("00-zz"), "{out}");
    assert!(
        out.contains("x-request-id: new-id\r\n"),
        "an empty id is replaced: {out}"
    );
}

#[test]
fn fields_named_by_connection_give_way_to_the_proxys_own() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: traceparent, x-forwarded-for, te\r\n\
         traceparent: {tp}\r\nX-Forwarded-For: 6.6.6.6\r\nTE: trailers\r\n\r\n"
    );
    assert!(!complete(&req).keeps_traceparent());
    let out = fields(&req, &ADD);
    assert_eq!(
        out,
        "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n\
         x-request-id: new-id\r\ntraceparent: 00-new-01\r\n"
    );
}

#[test]
fn the_first_request_id_counts() {
    let req = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id:\r\nX-Request-Id: second\r\n\r\n";
    let head = complete(req);
    assert_eq!(
        head.request_id(req.as_bytes()),
        None,
        "empty first: a new id"
    );
    assert!(fields(req, &ADD).ends_with("x-request-id: new-id\r\ntraceparent: 00-new-01\r\n"));
    assert!(!fields(req, &ADD).contains("second"));
    let two = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: one\r\nX-Request-Id: two\r\n\r\n";
    assert_eq!(complete(two).request_id(two.as_bytes()), Some(&b"one"[..]));
    assert!(fields(two, &ADD).starts_with("X-Request-Id: one\r\nX-Request-Id: two\r\n"));
}

#[test]
fn a_forwarded_header_named_by_connection_is_replaced() {
    let req = "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-forwarded-proto\r\nX-Forwarded-Proto: spoof\r\n\r\n";
    let out = fields(req, &ADD);
    assert!(out.contains("x-forwarded-proto: http\r\n"), "{out}");
    assert!(!out.contains("spoof"), "{out}");
}

fn response_head(resp: &str, chunked: bool, close: bool) -> String {
    let mut buf = BytesMut::from(resp.as_bytes());
    let head = crate::core::http::h1::parse_head_for_tests(&mut buf);
    let mut out = BytesMut::new();
    write_response_head(&mut out, &head, chunked, (ID, b"rid"), close);
    String::from_utf8(out.to_vec()).unwrap()
}

#[test]
fn response_heads_drop_hop_by_hop_and_carry_the_request_id() {
    let resp = "HTTP/1.1 200 Whatever\r\nServer: up\r\nConnection: keep-alive, X-Internal\r\n\
                Keep-Alive: timeout=5\r\nX-Internal: 1\r\nContent-Length: 3\r\nDate: d\r\n\r\n";
    assert_eq!(
        response_head(resp, false, false),
        "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 3\r\nDate: d\r\nx-request-id: rid\r\n\r\n"
    );
    let chunked = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\
                   X-Request-Id: up-id\r\n\r\n";
    let out = response_head(chunked, true, true);
    let (head, date) = out.split_once("date: ").expect("a missing Date is added");
    assert_eq!(head, "HTTP/1.1 404 Not Found\r\nX-Request-Id: up-id\r\n");
    let (date, rest) = date.split_once("\r\n").unwrap();
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    assert_eq!(
        rest,
        "transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn transfer_codings_besides_chunked_stay_before_attaches_chunking() {
    for (fields, want) in [
        ("Transfer-Encoding: gzip, chunked\r\n", "gzip, chunked"),
        ("Transfer-Encoding: gzip\r\n", "gzip, chunked"),
        (
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: br , chunked\r\n",
            "gzip, br, chunked",
        ),
        ("Transfer-Encoding: chunked\r\n", "chunked"),
    ] {
        let resp = format!("HTTP/1.1 200 OK\r\nDate: d\r\n{fields}\r\n");
        let out = response_head(&resp, true, false);
        assert!(
            out.ends_with(&format!("\r\ntransfer-encoding: {want}\r\n\r\n")),
            "{fields:?}: {out}"
        );
        assert_eq!(out.matches("ransfer-").count(), 1, "{out}");
    }
}
