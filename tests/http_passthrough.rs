//! HTTP egress, the app side's own HTTP/1.1 loop (`frontend/http/fast`):
//! raw bytes from a TCP socket, so what goes over the wire is what is
//! checked: pipelined requests answered in order, a request the loop does
//! not take (a chunked upload) handing the connection to hyper mid-way
//! with the bytes already read, HEAD, large and echoed bodies, an idle
//! upload cut with a 400, an app that stops reading cut off.

mod support;

use std::time::Duration;

use support::http::{one_route, Upstream};
use support::start_attache;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off the wire.
#[derive(Debug)]
struct Wire {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `buf` (filled from `tcp` as needed).
async fn read_response(tcp: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Wire {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut slots);
        if let httparse::Status::Complete(len) = resp.parse(buf).expect("a valid response head") {
            let status = resp.code.unwrap();
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into()))
                .collect();
            buf.drain(..len);
            let mut wire = Wire {
                status,
                headers,
                body: Vec::new(),
            };
            if !head_request {
                wire.body = read_body(tcp, buf, &wire).await;
            }
            return wire;
        }
        fill(tcp, buf).await;
    }
}

async fn fill(tcp: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
        .await
        .expect("a response within 10 s")
        .unwrap();
    assert!(
        n > 0,
        "connection closed mid-response; have {:?}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

async fn read_body(tcp: &mut TcpStream, buf: &mut Vec<u8>, wire: &Wire) -> Vec<u8> {
    if let Some(n) = wire.header("content-length") {
        let n: usize = n.trim().parse().unwrap();
        while buf.len() < n {
            fill(tcp, buf).await;
        }
        return buf.drain(..n).collect();
    }
    assert_eq!(
        wire.header("transfer-encoding"),
        Some("chunked"),
        "{wire:?}"
    );
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            fill(tcp, buf).await;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            fill(tcp, buf).await;
        }
        body.extend(buf.drain(..size));
        assert_eq!(buf.drain(..2).collect::<Vec<_>>(), b"\r\n");
        if size == 0 {
            return body;
        }
    }
}

async fn setup(extra: &str) -> (Upstream, attache::app::Attache, TcpStream) {
    setup_with(extra, "").await
}

/// [`setup`], with `cluster` lines in the cluster's table.
async fn setup_with(extra: &str, cluster: &str) -> (Upstream, attache::app::Attache, TcpStream) {
    let up = Upstream::start("svc").await.unwrap();
    let toml = one_route("/", "svc", up.addr(), "", cluster).replacen(
        "[http]\n",
        &format!("[http]\n{extra}"),
        1,
    );
    let attache = start_attache(&toml).await;
    let tcp = TcpStream::connect(attache.http_addr.unwrap())
        .await
        .unwrap();
    (up, attache, tcp)
}

#[tokio::test]
async fn pipelined_requests_keep_order_across_a_handover_to_hyper() {
    let (_up, _attache, mut tcp) = setup("").await;
    // One write: two requests the loop takes, one it hands to hyper (a
    // chunked upload), and one more after it, which hyper then serves.
    let requests = "GET /first?x=1 HTTP/1.1\r\nHost: app.local\r\nX-Request-Id: id-1\r\n\r\n\
                    POST /echo HTTP/1.1\r\nHost: app.local\r\nContent-Length: 5\r\n\r\nhello\
                    POST /echo HTTP/1.1\r\nHost: app.local\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nworld\r\n0\r\n\r\n\
                    GET /last HTTP/1.1\r\nHost: app.local\r\nConnection: close\r\n\r\n";
    tcp.write_all(requests.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let first = read_response(&mut tcp, &mut buf, false).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-request-id"), Some("id-1"));
    assert_eq!(first.header("x-seen-path"), Some("/first?x=1"));
    assert_eq!(first.header("x-seen-x-forwarded-host"), Some("app.local"));
    assert_eq!(first.header("x-seen-x-forwarded-for"), Some("127.0.0.1"));
    assert!(String::from_utf8_lossy(&first.body).contains("\"path\":\"/first?x=1\""));
    let second = read_response(&mut tcp, &mut buf, false).await;
    assert_eq!(
        (second.status, second.body.as_slice()),
        (200, &b"hello"[..])
    );
    assert_eq!(second.header("x-seen-content-length"), Some("5"));
    let id = second
        .header("x-request-id")
        .expect("a request id is added");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(
        second.header("x-seen-x-request-id"),
        Some(id),
        "the upstream saw the same id"
    );
    let third = read_response(&mut tcp, &mut buf, false).await;
    assert_eq!((third.status, third.body.as_slice()), (200, &b"world"[..]));
    let last = read_response(&mut tcp, &mut buf, false).await;
    assert_eq!(last.status, 200);
    assert!(String::from_utf8_lossy(&last.body).contains("\"path\":\"/last\""));
    assert_eq!(last.header("connection"), Some("close"));
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("the connection closes after `Connection: close`")
        .unwrap();
    assert_eq!(
        n,
        0,
        "nothing after the last response: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[tokio::test]
async fn head_large_bodies_and_close_on_request() {
    let (_up, _attache, mut tcp) = setup("").await;
    let mut buf = Vec::new();
    tcp.write_all(b"HEAD /bytes/1000 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let head = read_response(&mut tcp, &mut buf, true).await;
    assert_eq!(head.status, 200);
    tcp.write_all(b"GET /bytes/3000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let big = read_response(&mut tcp, &mut buf, false).await;
    assert_eq!(big.body.len(), 3_000_000);
    tcp.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let last = read_response(&mut tcp, &mut buf, false).await;
    assert_eq!(last.header("connection"), Some("close"));
    assert!(buf.is_empty(), "no bytes after a HEAD answer: {buf:?}");
    let mut rest = Vec::new();
    let n = tcp.read_to_end(&mut rest).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_stalled_upload_gets_a_408_and_others_are_unaffected() {
    let (_up, attache, mut tcp) = setup("stream_idle_timeout = \"300ms\"\n").await;
    tcp.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let mut other = TcpStream::connect(attache.http_addr.unwrap())
        .await
        .unwrap();
    other
        .write_all(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut obuf = Vec::new();
    assert_eq!(
        read_response(&mut other, &mut obuf, false).await.status,
        200
    );
    let mut buf = Vec::new();
    let cut = read_response(&mut tcp, &mut buf, false).await;
    assert_eq!(cut.status, 408);
    assert_eq!(cut.header("x-attache-error"), Some("request-timeout"));
    assert!(String::from_utf8_lossy(&cut.body).contains("stream_idle_timeout"));
}

/// The status of `GET /ok` on a new connection.
async fn status_of_a_new_request(addr: std::net::SocketAddr) -> u16 {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut tcp, &mut Vec::new(), false).await.status
}

/// An app that stops reading a large response loses it once it has taken
/// nothing for the stream idle timeout, and the upstream connection it
/// held serves others again: on the pass-through path (HTTP/1.1) and on
/// hyper's (HTTP/1.0 is handed over).
#[tokio::test]
async fn an_app_that_stops_reading_gives_its_upstream_connection_back() {
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let (_up, attache, mut stuck) =
            setup_with("stream_idle_timeout = \"1s\"\n", "max_connections = 1\n").await;
        let addr = attache.http_addr.unwrap();
        let req = format!("GET /bytes/{} {version}\r\nHost: a\r\n\r\n", 64 << 20);
        stuck.write_all(req.as_bytes()).await.unwrap();
        let sent = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The one connection the cluster may open is busy with it.
        assert_eq!(status_of_a_new_request(addr).await, 503, "{version}");
        let freed = loop {
            match status_of_a_new_request(addr).await {
                200 => break sent.elapsed(),
                503 => {}
                other => panic!("{version}: status {other}"),
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "{version}: the upstream connection was still held after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            freed >= Duration::from_secs(1),
            "{version}: freed after {freed:?}, before the timeout"
        );
        drop(stuck);
        attache.shutdown().await;
    }
}

/// A `Connection: close` request followed by more bytes (requests the app
/// pipelined anyway): the response arrives and the connection ends
/// cleanly, because Attaché reads and drops the rest before closing
/// instead of leaving it unread, which makes the kernel answer with a
/// reset (seen here as an error after the response).
#[tokio::test]
async fn bytes_after_a_close_request_do_not_reset_the_response() {
    let (_up, _attache, mut tcp) = setup("").await;
    let mut req = b"GET /bytes/1000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec();
    let next = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
    while req.len() < 64 << 10 {
        req.extend_from_slice(next);
    }
    tcp.write_all(&req).await.unwrap();
    // Attaché answers and closes before the app reads anything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut buf = Vec::new();
    let wire = read_response(&mut tcp, &mut buf, false).await;
    assert_eq!(wire.status, 200);
    assert_eq!(wire.body.len(), 1000);
    // And then the connection ends, with nothing more.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .expect("closed within the linger time");
    assert_eq!(n.map(|_| rest.len()).ok(), Some(0), "{buf:?}");
    assert!(buf.is_empty());
}
