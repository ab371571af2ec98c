use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::server::ShutdownTrigger;

fn parse(text: &str) -> Result<Request, HttpError> {
    parse_head(text.as_bytes())
}

#[test]
fn parses_a_get_with_query_and_headers() {
    let r =
        parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization:  Bearer t \r\n\r\n").unwrap();
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/metrics");
    assert_eq!(r.header("host"), Some("a"));
    assert_eq!(r.header("authorization"), Some("Bearer t"));
    assert!(r.keep_alive);
    assert!(!r.has_body);
}

#[test]
fn absolute_form_targets_are_reduced_to_their_path() {
    let r = parse("GET http://h:1/status HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.path, "/status");
    let r = parse("GET http://h:1 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(r.path, "/");
}

#[test]
fn persistence_follows_version_and_connection_header() {
    assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
    assert!(
        parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .keep_alive
    );
    assert!(
        !parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n")
            .unwrap()
            .keep_alive
    );
}

#[test]
fn bodies_are_noticed() {
    let r = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n").unwrap();
    assert!(r.has_body);
    let r = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    assert!(r.has_body);
    let r = parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert!(!r.has_body);
}

#[test]
fn malformed_heads_are_400_with_a_reason() {
    for (head, why) in [
        ("GET /\r\n\r\n", "request line"),
        ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "request line"),
        ("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "method"),
        ("GET metrics HTTP/1.1\r\nHost: a\r\n\r\n", "target"),
        ("GET / HTTX/1.1\r\nHost: a\r\n\r\n", "version"),
        ("GET / HTTP/1.1\r\n\r\n", "Host"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "Host"),
        ("GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", "header name"),
        ("GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", "colon"),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", "folding"),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
            "Content-Length",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "Content-Length",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "conflicting",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Transfer-Encoding",
        ),
    ] {
        let e = parse(head).unwrap_err();
        assert_eq!(e.status(), Some(400), "{head:?}: {e}");
        assert!(e.to_string().contains(why), "{head:?}: {e}");
    }
    let e = parse_head(b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n").unwrap_err();
    assert_eq!(e.status(), Some(400));
}

#[test]
fn other_http_versions_are_505() {
    let e = parse("GET / HTTP/2.0\r\n\r\n").unwrap_err();
    assert_eq!(e.status(), Some(505));
}

#[test]
fn head_end_finds_the_empty_line() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"), Some(27));
    assert_eq!(head_end(b"GET / HTTP/1.0\n\nrest"), Some(16));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
}

#[test]
fn responses_carry_length_connection_and_extra_headers() {
    let r = Response::text(405, "no").with_header("Allow", "GET");
    let wire = String::from_utf8(r.encode(true, false)).unwrap();
    assert!(
        wire.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{wire}"
    );
    assert!(wire.contains("Content-Length: 3\r\n"));
    assert!(wire.contains("Connection: keep-alive\r\n"));
    assert!(wire.contains("Allow: GET\r\n"));
    assert!(wire.ends_with("\r\n\r\nno\n"));
    let head_only = String::from_utf8(r.encode(false, true)).unwrap();
    assert!(head_only.contains("Content-Length: 3\r\n"));
    assert!(head_only.contains("Connection: close\r\n"));
    assert!(head_only.ends_with("\r\n\r\n"));
}

/// Runs `serve_connection` over an in-memory pipe with a handler that
/// echoes the path, sends `input`, and returns everything written back.
async fn exchange(input: &[u8], limits: Limits, close_input: bool) -> String {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let trigger = ShutdownTrigger::new();
    let task = tokio::spawn(serve_connection(
        server,
        limits,
        trigger.subscribe(),
        |r: &Request| Response::text(200, format!("path {}", r.path)),
    ));
    client.write_all(input).await.unwrap();
    if close_input {
        client.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut out))
        .await
        .expect("server closes")
        .unwrap();
    task.await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_until_close() {
    let out = exchange(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
        Limits::default(),
        false,
    )
    .await;
    let a = out.find("path /a").unwrap();
    let b = out.find("path /b").unwrap();
    assert!(a < b);
    assert!(!out.contains("path /c"), "nothing after Connection: close");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2);
}

#[tokio::test]
async fn a_client_leaving_between_requests_ends_quietly() {
    let out = exchange(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        Limits::default(),
        true,
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1);
    assert!(out.contains("path /a"));
}

#[tokio::test]
async fn garbage_gets_400_and_a_closed_connection() {
    let out = exchange(b"HELLO\r\n\r\n", Limits::default(), false).await;
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert!(out.contains("Connection: close"));
    assert!(out.ends_with("bad request: request line must be METHOD SP TARGET SP HTTP-VERSION\n"));
}

#[tokio::test]
async fn a_head_over_the_limit_is_431() {
    let limits = Limits {
        max_head: 64,
        ..Limits::default()
    };
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(vec![b'a'; 200]);
    let out = exchange(&big, limits, false).await;
    assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
    assert!(out.contains("larger than 64 bytes"));
}

#[tokio::test]
async fn a_truncated_head_is_400() {
    let out = exchange(b"GET / HTTP/1.1\r\nHost", Limits::default(), true).await;
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    assert!(out.contains("closed mid-request"));
}

#[tokio::test]
async fn a_stalled_head_is_408_and_an_idle_connection_is_closed() {
    let limits = Limits {
        max_head: 1024,
        idle_timeout: Duration::from_millis(300),
        head_timeout: Duration::from_millis(200),
    };
    let out = exchange(b"GET / HTTP/1.1\r\n", limits, false).await;
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    let out = exchange(b"", limits, false).await;
    assert_eq!(out, "", "an idle connection is closed without a word");
}

#[tokio::test]
async fn shutdown_ends_an_idle_keep_alive_connection() {
    let (mut client, server) = tokio::io::duplex(4096);
    let trigger = ShutdownTrigger::new();
    let task = tokio::spawn(serve_connection(
        server,
        Limits::default(),
        trigger.subscribe(),
        |_: &Request| Response::text(200, "ok"),
    ));
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = client.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    assert!(!task.is_finished(), "keep-alive holds the connection open");
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("connection ends on shutdown")
        .unwrap();
}
