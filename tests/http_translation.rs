//! HTTP egress, parse → route → backend → respond where the app's HTTP and
//! the upstream's differ: a response's transfer codings besides `chunked`
//! survive Attaché's re-chunking to an HTTP/1.1 app (RFC 9112 §6.1), and an
//! app that cannot be sent them (HTTP/2, RFC 9113 §8.2.2; HTTP/1.0) gets a 502 that
//! says why rather than a body it cannot decode; the `cookie` fields an
//! HTTP/2 app may split a Cookie header into (RFC 9113 §8.2.3) reach an
//! HTTP/1.1 upstream as one; a request body coded besides `chunked` is
//! refused (501, or 400 when its length is unknown) and its connection
//! closed. The upstream is a small raw TCP server, as no
//! ordinary one sends such responses on demand or shows the request head
//! exactly as it arrived.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use support::http::{get, h2_client, one_route, send};
use support::start_attache;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `hello, gzip\n`, gzipped.
const GZ: [u8; 32] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xd7,
    0x51, 0x48, 0xaf, 0xca, 0x2c, 0xe0, 0x02, 0x00, 0x86, 0x1f, 0x82, 0xa4, 0x0c, 0x00, 0x00, 0x00,
];

/// Where `haystack` first holds `needle`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request (head, then a Content-Length or chunked body); its
/// head, or `None` if the peer closed first.
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_ascii_lowercase();
            let body = &buf[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let done = match length {
                Some(n) => body.len() >= n,
                None if head.contains("transfer-encoding: chunked") => {
                    find(body, b"0\r\n\r\n").is_some()
                }
                None => true,
            };
            if done {
                return Some(String::from_utf8_lossy(&buf[..end + 4]).into_owned());
            }
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An HTTP/1.1 upstream that answers each request with what `answer`
/// makes of its head, then closes the connection.
async fn raw_upstream(answer: fn(&str) -> Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Some(head) = read_request(&mut s).await {
                    let _ = s.write_all(&answer(&head)).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    addr
}

/// The GZ body with `transfer-encoding: gzip, chunked` (`/chunked`) or
/// `transfer-encoding: gzip`, ended by closing (anything else).
fn gzip_coded(head: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if head.contains(" /chunked ") {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
        // Two chunks: the coding must survive however the body is cut.
        for part in [&GZ[..10], &GZ[10..]] {
            out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
        out.extend_from_slice(&GZ);
    }
    out
}

/// A chunked body's data.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = find(body, b"\r\n").expect("a chunk size line");
        let size = std::str::from_utf8(&body[..line]).expect("ascii");
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .expect("a hex chunk size");
        body = &body[line + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Sends `req` on a new connection and reads the answer to its end: the
/// head (lowercased) and the body as sent.
async fn exchange(addr: SocketAddr, req: &[u8]) -> (String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(req).await.expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got))
        .await
        .expect("the answer within 5 s")
        .expect("read");
    let end = find(&got, b"\r\n\r\n").expect("a whole head");
    let head = String::from_utf8_lossy(&got[..end + 4]).to_ascii_lowercase();
    (head, got[end + 4..].to_vec())
}

/// The app got the gzip bytes, and a header saying they are gzip.
fn assert_gzip_relayed(head: &str, body: &[u8]) {
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("\r\ntransfer-encoding: gzip, chunked\r\n"),
        "the gzip coding survives re-chunking: {head}"
    );
    assert_eq!(dechunk(body), GZ, "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_codings_survive_rechunking_or_are_refused() {
    let up = raw_upstream(gzip_coded).await;
    let attache = start_attache(&one_route("/", "coded", up, "", "")).await;
    let addr = attache.http_addr.expect("http listener");

    // The pass-through path: chunked upstream, and one that closes.
    for path in ["/chunked", "/close"] {
        let req = format!("GET {path} HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n");
        let (head, body) = exchange(addr, req.as_bytes()).await;
        assert_gzip_relayed(&head, &body);
    }

    // hyper's path (a streamed upload), through hyper's client.
    for path in ["/chunked", "/close"] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let (head, body) = exchange(addr, req.as_bytes()).await;
        assert_gzip_relayed(&head, &body);
    }

    // HTTP/1.0 has no transfer codings either (hyper's path serves it).
    for path in ["/chunked", "/close"] {
        let req = format!("GET {path} HTTP/1.0\r\nhost: app\r\n\r\n");
        let (head, body) = exchange(addr, req.as_bytes()).await;
        assert!(head.starts_with("http/1.0 502"), "{path}: {head}");
        assert!(
            head.contains("\r\nx-attache-error: transfer-coding\r\n"),
            "{head}"
        );
        assert!(String::from_utf8_lossy(&body).contains("gzip"), "{head}");
    }

    // HTTP/2 has no transfer codings: the body cannot be relayed as it is.
    let h2 = h2_client();
    for path in ["/chunked", "/close"] {
        let reply = get(&h2, addr, path, &[]).await;
        assert_eq!(reply.status, 502, "{path}: {reply:?}");
        assert_eq!(
            reply.header("x-attache-error"),
            Some("transfer-coding"),
            "{reply:?}"
        );
        assert!(reply.body.contains("gzip"), "{reply:?}");
    }
    attache.shutdown().await;
}

/// The request head, as the upstream received it, for the body.
fn echo_head(head: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        head.len()
    )
    .into_bytes();
    out.extend_from_slice(head.as_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_apps_cookie_fields_reach_an_h1_upstream_as_one() {
    let up = raw_upstream(echo_head).await;
    let attache = start_attache(&one_route("/", "echo", up, "", "")).await;
    let addr = attache.http_addr.expect("http listener");
    let h2 = h2_client();
    let cookies = [("cookie", "a=1"), ("x-other", "y"), ("cookie", "b=2")];
    // The pass-through to the upstream (a whole small body), and hyper's
    // client (a body too big to keep, streamed).
    for body in [Bytes::new(), Bytes::from(vec![b'x'; 1 << 20])] {
        let reply = send(&h2, "POST", addr, "/c", &cookies, body.clone()).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let lines: Vec<&str> = reply
            .body
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("cookie:"))
            .collect();
        assert_eq!(
            lines,
            ["cookie: a=1; b=2"],
            "{} byte body: {}",
            body.len(),
            reply.body
        );
    }
    attache.shutdown().await;
}

/// An app's request body coded besides `chunked` (gzip, say) is refused
/// before any upstream sees it, as nginx does: 501 when `chunked` is last
/// (the gzip coding would be lost taking the chunking off), 400 when the
/// body's length cannot be told (`chunked` not last, or twice; RFC 9112
/// §6.3). The connection is closed after the answer: no pipelined request
/// is read from where the framing left off. Plain `chunked` still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_coded_besides_chunked_is_refused_and_closed() {
    let up = raw_upstream(echo_head).await;
    let attache = start_attache(&one_route("/", "echo", up, "", "")).await;
    let addr = attache.http_addr.expect("http listener");
    let body = "5\r\nhello\r\n0\r\n\r\n";
    // After the body, a second request: it must not be answered.
    let next = "GET /next HTTP/1.1\r\nhost: app\r\n\r\n";
    let cases = [
        ("transfer-encoding: gzip, chunked\r\n", 501),
        (
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            501,
        ),
        ("transfer-encoding: chunked, chunked\r\n", 400),
        (
            "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            400,
        ),
        ("transfer-encoding: chunked, gzip\r\n", 400),
        ("transfer-encoding: gzip\r\n", 400),
    ];
    for (fields, status) in cases {
        let req = format!("POST /up HTTP/1.1\r\nhost: app\r\n{fields}\r\n{body}{next}");
        let (head, got) = exchange(addr, req.as_bytes()).await;
        let got = String::from_utf8_lossy(&got);
        assert!(
            head.starts_with(&format!("http/1.1 {status} ")),
            "{fields:?}: {head}{got}"
        );
        assert!(
            head.contains("\r\nconnection: close\r\n"),
            "{fields:?}: {head}"
        );
        assert!(
            !got.contains("HTTP/1.1"),
            "{fields:?}: a second answer: {got}"
        );
        if status == 501 {
            assert!(
                head.contains("\r\nx-attache-error: transfer-coding\r\n"),
                "{head}"
            );
            assert!(got.contains("gzip, chunked"), "{got}");
        }
    }
    // Chunked alone is relayed.
    let req = format!(
        "POST /up HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n{body}"
    );
    let (head, got) = exchange(addr, req.as_bytes()).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&got).contains("POST /up"), "{head}");
    attache.shutdown().await;
}

/// One HTTP/2 frame: its type, flags, stream and payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HTTP/2 request carrying `Transfer-Encoding` is malformed (RFC 9113
/// §8.2.2): it never reaches the upstream; its stream is reset. (hyper's
/// h2 refuses it before Attaché sees it; a real HTTP/2 client will not
/// send one, so the frames are written by hand: HPACK literals, no
/// Huffman.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_request_with_transfer_encoding_is_reset() {
    let up = raw_upstream(echo_head).await;
    let attache = start_attache(&one_route("/", "echo", up, "", "")).await;
    let addr = attache.http_addr.expect("http listener");
    let mut block = vec![0x83, 0x86, 0x84]; // :method POST, :scheme http, :path /
    for (name, value) in [
        (&b":authority"[..], &b"app"[..]),
        (b"transfer-encoding", b"gzip, chunked"),
    ] {
        block.push(0x00); // literal, not indexed, new name
        block.push(u8::try_from(name.len()).expect("short"));
        block.extend_from_slice(name);
        block.push(u8::try_from(value.len()).expect("short"));
        block.extend_from_slice(value);
    }
    let mut req = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    req.extend(h2_frame(4, 0, 0, &[])); // SETTINGS
    req.extend(h2_frame(1, 0x5, 1, &block)); // HEADERS, END_STREAM | END_HEADERS
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&req).await.expect("write");
    let read_frames = async {
        loop {
            let mut head = [0u8; 9];
            tcp.read_exact(&mut head).await.expect("a frame");
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.expect("its payload");
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match (head[3], stream) {
                (3, 1) => return payload, // RST_STREAM
                (1, 1) => panic!("stream 1 was answered: the request was relayed"),
                _ => {}
            }
        }
    };
    let code = tokio::time::timeout(Duration::from_secs(5), read_frames)
        .await
        .expect("stream 1 reset within 5 s");
    assert_eq!(code, [0, 0, 0, 1], "PROTOCOL_ERROR");
    // Closed, or shutdown would wait out the connection.
    drop(tcp);
    attache.shutdown().await;
}
