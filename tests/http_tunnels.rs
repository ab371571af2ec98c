//! HTTP egress, upgraded connections (WebSocket) at the backend → respond
//! steps of accept → parse → route → backend → respond: a tunnel is still
//! its request, so it keeps the cluster's request slot (and its upstream
//! connection counts against `max_connections`) while it runs, and one
//! where nothing moves for `stream_idle_timeout` is closed. The app is a
//! raw TCP client, the upstream the harness's WebSocket echo.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::http::{one_route, Upstream};
use support::start_attache;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A GET on a new connection: the status line's code.
async fn get_status(addr: SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = b"GET /x HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n";
    tcp.write_all(req).await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got)
        .chars()
        .skip(9)
        .take(3)
        .collect()
}

/// A WebSocket upgrade on a new connection, its 101 answer read.
async fn open_websocket(addr: SocketAddr) -> TcpStream {
    let mut ws = TcpStream::connect(addr).await.expect("connect");
    let upgrade = b"GET /ws HTTP/1.1\r\nhost: app\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
                    sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    ws.write_all(upgrade).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        ws.read_exact(&mut byte).await.expect("the upgrade answer");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_holds_its_slot_and_is_closed_when_idle() {
    let up = Upstream::start("ws").await.unwrap();
    let cluster = "max_requests = 1\nmax_pending_requests = 0";
    let toml = one_route("/", "ws", up.addr(), "", cluster)
        .replace("[http]\n", "[http]\nstream_idle_timeout = \"300ms\"\n");
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.expect("http listener");

    let mut ws = open_websocket(addr).await;
    let opened = Instant::now();

    // The tunnel has the cluster's one slot.
    assert_eq!(get_status(addr).await, "503", "the tunnel keeps its slot");

    // Nothing moves: the tunnel is closed between 1× and 2× the timeout.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), ws.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the idle tunnel was closed");
    assert!(
        opened.elapsed() < Duration::from_millis(1500),
        "{:?}",
        opened.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get_status(addr).await, "200", "its slot is free again");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_holds_its_upstream_connection_permit() {
    let up = Upstream::start("ws").await.unwrap();
    // Requests are not limited, connections are: one.
    let cluster = "max_connections = 1";
    let attache = start_attache(&one_route("/", "ws", up.addr(), "", cluster)).await;
    let addr = attache.http_addr.expect("http listener");

    let ws = open_websocket(addr).await;
    // The tunnel's upstream connection is the cluster's one: another
    // request finds the limit reached, as it would behind any open one.
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = b"GET /x HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n";
    tcp.write_all(req).await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    let got = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(got.starts_with("http/1.1 503"), "{got}");
    assert!(got.contains("x-attache-error: overflow"), "{got}");

    // The app closes the tunnel: the upstream connection, and its permit,
    // go with it.
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = get_status(addr).await;
        if status == "200" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the tunnel closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    attache.shutdown().await;
}
