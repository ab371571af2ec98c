//! HTTP egress, at the parse → route → backend steps of accept → parse →
//! route → backend → respond: what a slow, broken or silent app costs.
//! The app's own delays and errors are answered as its own (400, 408) and
//! never charged to the upstream: no 504, no ejection of a healthy
//! endpoint, no cluster slots held by apps that send nothing. Apps are raw
//! TCP clients here (to stall or break a request where a real client
//! would not), upstreams real in-process servers.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::http::{Mode, Upstream};
use support::start_attache;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Ejects the endpoint at its first failure of either kind, so one blamed
/// request shows.
const EJECT_AT_ONCE: &str =
    "outlier = { consecutive_5xx = 1, consecutive_connect_failures = 1, max_ejection_percent = 100 }";

/// `[http]` with one route (`route_extra` lines) to one cluster `svc` over
/// `up` (plus `cluster_extra` lines).
fn config(up: &Upstream, route_extra: &str, cluster_extra: &str) -> String {
    support::http::one_route("/", "svc", up.addr(), route_extra, cluster_extra)
}

async fn upstream() -> Upstream {
    Upstream::builder()
        .name("up")
        .mode(Mode::Ok)
        .start()
        .await
        .unwrap()
}

/// Sends `parts` on a new connection, pausing `pause` between them, then
/// reads the answer until the connection closes or 10 s pass.
async fn exchange(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        tcp.write_all(part).await.expect("write");
    }
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// A plain GET on a new connection: the endpoint still takes traffic.
async fn still_served(addr: SocketAddr) {
    let req: &[u8] = b"GET /x HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n";
    let answer = exchange(addr, &[req], Duration::ZERO).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("x-upstream: up"),
        "the endpoint was not charged: {answer}"
    );
}

/// An app that sends its head, then its body later than the route's
/// timeout, gets the upstream's answer: the timeout starts once the body
/// is in (a kept body: the pass-through path and hyper's), and a streamed
/// body's waits for the app are left off the try's clock. The upstream
/// takes 100 ms (of the 300 ms) for kept bodies: the timeout would fire
/// first if it had started with the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_is_not_the_upstreams_timeout() {
    let up = upstream().await;
    let toml = config(&up, "timeout = \"300ms\"", EJECT_AT_ONCE);
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.expect("http listener");
    let cases: [(&str, &[u8], &[u8]); 3] = [
        (
            "content-length (pass-through)",
            b"POST /sleep/100 HTTP/1.1\r\nhost: app\r\ncontent-length: 10\r\nconnection: close\r\n\r\n",
            b"0123456789",
        ),
        (
            "chunked, kept for retries (hyper)",
            b"PUT /sleep/100 HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
        ),
        (
            // The upstream reads the body (its byte count is the answer).
            "chunked, streamed (hyper)",
            b"POST /count HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
        ),
    ];
    let mut failed = Vec::new();
    for (name, head, body) in cases {
        let answer = exchange(addr, &[head, body], Duration::from_millis(800)).await;
        if !(answer.starts_with("HTTP/1.1 200") && answer.contains("x-upstream: up")) {
            failed.push(format!("{name}: {answer}"));
        }
        still_served(addr).await;
    }
    assert!(failed.is_empty(), "{failed:#?}");
    attache.shutdown().await;
}

/// An app that stops sending its body gets 408 Request Timeout (its own
/// delay, not a malformed request) after `stream_idle_timeout`, on both
/// paths, and the upstream is not charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_answered_408() {
    let up = upstream().await;
    let toml = config(&up, "", EJECT_AT_ONCE)
        .replace("[http]\n", "[http]\nstream_idle_timeout = \"300ms\"\n");
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.expect("http listener");
    let cases: [(&str, &[u8]); 2] = [
        (
            "content-length (pass-through)",
            b"POST /count HTTP/1.1\r\nhost: app\r\ncontent-length: 10\r\n\r\n012",
        ),
        (
            "chunked, kept for retries (hyper)",
            b"PUT /count HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\na\r\n012",
        ),
    ];
    let mut failed = Vec::new();
    for (name, req) in cases {
        let answer = exchange(addr, &[req], Duration::ZERO).await;
        if !(answer.starts_with("HTTP/1.1 408")
            && answer.contains("x-attache-error: request-timeout"))
        {
            failed.push(format!("{name}: {answer}"));
        }
        still_served(addr).await;
    }
    assert!(failed.is_empty(), "{failed:#?}");
    attache.shutdown().await;
}

/// A streamed upload that breaks on the app's side (a bad chunk size, the
/// app gone mid-body) is the app's fault: a bad chunk is answered 400,
/// and neither ejects the healthy endpoint (it was at the first failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_upload_does_not_eject_the_endpoint() {
    let up = upstream().await;
    let toml = config(&up, "", EJECT_AT_ONCE);
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.expect("http listener");
    let head: &[u8] = b"POST /count HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n";
    for round in 0..3 {
        let answer = exchange(addr, &[head, b"zz\r\n"], Duration::from_millis(50)).await;
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("x-attache-error: bad-request"),
            "round {round}: {answer}"
        );
        still_served(addr).await;
    }
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(head).await.expect("write");
        tcp.write_all(b"a\r\n012").await.expect("write");
        // Until the upstream has the request head, then the app is gone.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(tcp);
        tokio::time::sleep(Duration::from_millis(100)).await;
        still_served(addr).await;
    }
    attache.shutdown().await;
}

/// Apps that send a request head and then nothing (a chunked PUT kept for
/// retries, a streamed chunked POST, a POST waiting on `Expect:
/// 100-continue`) hold no cluster slot: with one slot and no queue, other
/// requests are still served, and the one that expected 100 Continue gets
/// it, sends its body and is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_uploads_hold_no_cluster_slot() {
    let up = upstream().await;
    let cluster = "max_requests = 1\nmax_pending_requests = 0";
    let toml = config(&up, "", cluster);
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.expect("http listener");
    let heads: [&[u8]; 2] = [
        b"PUT /count HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n",
        b"POST /count HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n",
    ];
    let mut silent = Vec::new();
    for head in heads {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(head).await.expect("write");
        silent.push(tcp);
    }
    let mut expecting = TcpStream::connect(addr).await.expect("connect");
    let head = b"POST /count HTTP/1.1\r\nhost: app\r\ncontent-length: 10\r\n\
                 expect: 100-continue\r\nconnection: close\r\n\r\n";
    expecting.write_all(head).await.expect("write");
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), expecting.read_exact(&mut interim))
        .await
        .expect("100 Continue in time")
        .expect("read");
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    still_served(addr).await;
    still_served(addr).await;

    expecting.write_all(b"0123456789").await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), expecting.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\n10"),
        "{answer}"
    );
    drop(silent);
    attache.shutdown().await;
}

/// A streamed upload that trickles (a byte every 50 ms, never quiet for
/// `stream_idle_timeout`) holds its cluster slot only until
/// `request_body_timeout` after its head: then it is cut with a 408, the
/// upstream not blamed, and the slot serves others again. A kept body
/// (the pass-through path) that trickles is refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_upload_is_cut_at_the_request_body_timeout() {
    let up = upstream().await;
    let cluster = format!("max_requests = 1\nmax_pending_requests = 0\n{EJECT_AT_ONCE}");
    let toml = config(&up, "", &cluster).replace(
        "[http]\n",
        "[http]\nstream_idle_timeout = \"10s\"\nrequest_body_timeout = \"600ms\"\n",
    );
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.expect("http listener");
    let heads: [(&str, &[u8]); 2] = [
        (
            "streamed",
            b"POST /count HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n",
        ),
        (
            "kept",
            b"POST /count HTTP/1.1\r\nhost: app\r\ncontent-length: 1000\r\n\r\n",
        ),
    ];
    for (what, head) in heads {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (mut rx, mut tx) = tcp.into_split();
        tx.write_all(head).await.expect("write");
        let chunked = what == "streamed";
        let started = std::time::Instant::now();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                let piece: &[u8] = if chunked { b"1\r\nx\r\n" } else { b"x" };
                if tx.write_all(piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        if chunked {
            // The trickle has the cluster's one slot meanwhile.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let busy = exchange(
                addr,
                &[b"GET /x HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n"],
                Duration::ZERO,
            )
            .await;
            assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the answer is whole (the connection may stay open).
        while !String::from_utf8_lossy(&got).contains("request_body_timeout") {
            let n = tokio::time::timeout(Duration::from_secs(5), rx.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{what}: no answer within 5 s"))
                .expect("read");
            assert!(n > 0, "{what}: closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let got = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(got.starts_with("http/1.1 408"), "{what}: {got}");
        assert!(
            got.contains("x-attache-error: request-timeout"),
            "{what}: {got}"
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{what}: {took:?}");
        trickle.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        still_served(addr).await;
    }
    attache.shutdown().await;
}

/// An HTTP/2 app that takes a response head but grants no flow-control
/// window for its body would make hyper stop polling that body: the
/// upstream connection (here the cluster's only one, `max_connections =
/// 1`) would stay held for as long as the app keeps its connection. After
/// `stream_idle_timeout` without a frame going out it is let go, and
/// another app's request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_app_that_takes_no_body_data_does_not_hold_the_upstream() {
    let up = upstream().await;
    let toml = config(&up, "", "max_connections = 1")
        .replace("[http]\n", "[http]\nstream_idle_timeout = \"500ms\"\n");
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.expect("http listener");
    let stingy: support::http::TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .http2_initial_stream_window_size(0)
            .build_http();
    let req = hyper::Request::get(format!("http://{addr}/bytes/1000000"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let head = tokio::time::timeout(Duration::from_secs(5), stingy.request(req))
        .await
        .expect("the head is not flow-controlled")
        .expect("a response");
    assert_eq!(head.status(), 200);
    // Kept, never read: the stream stays open with no window.
    let _held = head;
    let other = support::http::h1_client();
    let mut last = None;
    let mut served_after = None;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let r = support::http::get(&other, addr, "/x", &[]).await;
        if r.status == 200 {
            served_after = Some(started.elapsed());
            break;
        }
        last = Some((r.status, r.body));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served_after = served_after.unwrap_or_else(|| panic!("never served: {last:?}"));
    assert!(
        served_after < Duration::from_millis(2500),
        "served {served_after:?} after the stall began"
    );
    attache.shutdown().await;
}
