//! HTTP egress end to end, backend and respond side: TLS origination to
//! upstreams (verify-full, wrong CA, wrong name, `verify = false`, mTLS,
//! ALPN), gigabyte bodies streamed both ways in bounded memory, chunked
//! uploads, WebSocket upgrades, a real nginx with keep-alive, and h2c from
//! the app with a large body to an HTTP/1.1 upstream.

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use attache_harness::http::{Generated, Nginx};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::http::{get, h1_client, h2_client, one_route, send, Upstream};
use support::{start_attache, TestCerts};
use tokio::net::TcpStream;
use tokio::sync::RwLock;
use tokio_tungstenite::tungstenite::Message;

/// The memory test takes this exclusively; every other test shares it, so
/// no other test's buffers land in the RSS the memory test measures.
static RSS_GATE: RwLock<()> = RwLock::const_new(());

const GIB: u64 = 1 << 30;

/// Runs `fut` or fails the test after `secs` seconds.
async fn bounded<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {secs}s"))
}

/// A cluster `up` reached by every path, with extra cluster lines.
fn one_cluster(endpoint: SocketAddr, cluster_extra: &str) -> String {
    one_route("/", "up", endpoint, "timeout = \"120s\"", cluster_extra)
}

fn tls_line(ca: &Path, extra: &str) -> String {
    format!("tls = {{ ca_file = \"{}\"{extra} }}", ca.display())
}

async fn tls_upstream(certs: &TestCerts) -> Upstream {
    Upstream::builder()
        .name("secure")
        .tls(&certs.server_cert, &certs.server_key)
        .start()
        .await
        .expect("tls upstream")
}

fn certs() -> TestCerts {
    TestCerts::generate(&["localhost", "127.0.0.1"]).expect("certs")
}

/// VmRSS of this process (Attaché and the upstream run in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS value");
    kb * 1024
}

/// One raw HTTP/1.1 client connection to `addr` with body type `B`.
async fn h1_conn<B>(addr: SocketAddr) -> http1::SendRequest<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.expect("connect to attache");
    let (tx, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .expect("h1 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tx
}

/// Prepared frames of unknown total length (chunked on HTTP/1.1).
struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// `len` bytes that do not repeat with any small period, so a dropped,
/// duplicated or reordered chunk shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .collect()
}

#[tokio::test]
async fn tls_verify_full_and_alpn() {
    let _gate = RSS_GATE.read().await;
    bounded(60, async {
        let certs = certs();
        let up = tls_upstream(&certs).await;
        let toml = format!(
            r#"
[http]
[[http.routes]]
prefix = "/auto/"
cluster = "auto"
strip_prefix = true
[[http.routes]]
prefix = "/one/"
cluster = "one"
strip_prefix = true

[http.clusters.auto]
endpoints = ["{addr}"]
{auto_tls}

[http.clusters.one]
endpoints = ["{addr}"]
protocol = "http1"
{one_tls}
"#,
            addr = up.addr(),
            auto_tls = tls_line(&certs.ca_cert, ", server_name = \"localhost\""),
            one_tls = tls_line(&certs.ca_cert, ", server_name = \"localhost\""),
        );
        let attache = start_attache(&toml).await;
        let addr = attache.http_addr.unwrap();
        let c = h1_client();

        let r = get(&c, addr, "/auto/hello", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-upstream"), Some("secure"));
        assert_eq!(r.header("x-seen-tls"), Some("true"));
        assert_eq!(r.header("x-seen-path"), Some("/hello"));
        assert_eq!(r.header("x-seen-version"), Some("HTTP/2.0"), "ALPN h2");
        assert_eq!(up.requests(), 1, "the upstream saw the request");

        let r = get(&c, addr, "/one/hello", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-seen-tls"), Some("true"));
        assert_eq!(
            r.header("x-seen-version"),
            Some("HTTP/1.1"),
            "ALPN http/1.1"
        );
        assert_eq!(up.requests(), 2);
        attache.shutdown().await;
    })
    .await;
}

/// First requests arriving together over TLS: where ALPN picks h2 they
/// share the one connection opened for the first of them; where it picks
/// HTTP/1.1, each still gets a connection of its own after that first one.
#[tokio::test]
async fn concurrent_first_requests_over_tls_open_one_h2_connection() {
    let _gate = RSS_GATE.read().await;
    bounded(60, async {
        let certs = certs();
        let h2 = tls_upstream(&certs).await;
        let h1 = Upstream::builder()
            .name("secure-h1")
            .tls(&certs.server_cert, &certs.server_key)
            .http1_only()
            .start()
            .await
            .expect("tls h1 upstream");
        let tls = tls_line(&certs.ca_cert, ", server_name = \"localhost\"");
        let toml = format!(
            r#"
[http]
[[http.routes]]
prefix = "/two/"
cluster = "two"
[[http.routes]]
prefix = "/one/"
cluster = "one"

[http.clusters.two]
endpoints = ["{two}"]
{tls}

[http.clusters.one]
endpoints = ["{one}"]
{tls}
"#,
            two = h2.addr(),
            one = h1.addr(),
        );
        let attache = start_attache(&toml).await;
        let addr = attache.http_addr.unwrap();
        for (path, version) in [("/two/", "HTTP/2.0"), ("/one/", "HTTP/1.1")] {
            let asks = (0..12)
                .map(|i| async move { get(&h1_client(), addr, &format!("{path}{i}"), &[]).await });
            for r in futures_util::future::join_all(asks).await {
                assert_eq!(r.status, 200, "{path}: {}", r.body);
                assert_eq!(r.header("x-seen-version"), Some(version), "{path}");
            }
        }
        assert_eq!(h2.requests(), 12);
        assert_eq!(h2.connections(), 1, "one shared h2 connection");
        assert_eq!(h1.requests(), 12);
        assert!(
            h1.connections() >= 2,
            "HTTP/1.1 requests did not queue on one connection"
        );
        attache.shutdown().await;
    })
    .await;
}

/// Starts Attaché in front of `up` with cluster lines `extra` and GETs `/x`.
async fn get_through(up: &Upstream, extra: &str) -> support::http::Reply {
    let attache = start_attache(&one_cluster(up.addr(), extra)).await;
    let r = get(&h1_client(), attache.http_addr.unwrap(), "/x", &[]).await;
    attache.shutdown().await;
    r
}

#[tokio::test]
async fn tls_wrong_ca_or_name_fails_verification_unless_disabled() {
    let _gate = RSS_GATE.read().await;
    bounded(60, async {
        let certs = certs();
        let up = tls_upstream(&certs).await;

        let wrong_ca = tls_line(&certs.other_ca_cert, ", server_name = \"localhost\"");
        let r = get_through(&up, &wrong_ca).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
        assert_eq!(r.header("x-attache-error"), Some("tls-verify-failed"));
        assert!(r.body.contains("certificate"), "{}", r.body);

        let wrong_name = tls_line(&certs.ca_cert, ", server_name = \"other.example\"");
        let r = get_through(&up, &wrong_name).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
        assert_eq!(r.header("x-attache-error"), Some("tls-verify-failed"));
        assert!(r.body.contains("certificate"), "{}", r.body);
        assert_eq!(up.requests(), 0, "nothing reached the upstream");

        // No server_name: the endpoint's IP is checked against the IP SAN.
        let by_ip = tls_line(&certs.ca_cert, "");
        let r = get_through(&up, &by_ip).await;
        assert_eq!(r.status, 200, "{}", r.body);

        let unverified = tls_line(&certs.other_ca_cert, ", verify = false");
        let r = get_through(&up, &unverified).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-seen-tls"), Some("true"));
        assert_eq!(up.requests(), 2);
    })
    .await;
}

#[tokio::test]
async fn mtls_needs_the_client_certificate() {
    let _gate = RSS_GATE.read().await;
    bounded(60, async {
        let certs = certs();
        let up = Upstream::builder()
            .name("mtls")
            .tls(&certs.server_cert, &certs.server_key)
            .require_client_cert(&certs.ca_cert)
            .start()
            .await
            .expect("mtls upstream");

        let no_cert = tls_line(&certs.ca_cert, ", server_name = \"localhost\"");
        let r = get_through(&up, &no_cert).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
        assert_eq!(r.header("x-attache-error"), Some("tls-rejected"), "{r:?}");
        assert!(r.body.contains("client_cert"), "{}", r.body);
        assert_eq!(up.requests(), 0);

        let with_cert = tls_line(
            &certs.ca_cert,
            &format!(
                ", server_name = \"localhost\", client_cert = \"{}\", client_key = \"{}\"",
                certs.client_cert.display(),
                certs.client_key.display()
            ),
        );
        let r = get_through(&up, &with_cert).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-upstream"), Some("mtls"));
        assert_eq!(up.requests(), 1);
    })
    .await;
}

/// Uploads `len` generated bytes to `/count`; returns the upstream's count.
async fn upload_count(addr: SocketAddr, len: u64) -> String {
    let mut tx = h1_conn::<Generated>(addr).await;
    let req = Request::post(format!("http://{addr}/count"))
        .header("host", addr.to_string())
        .body(Generated {
            remaining: len,
            exact: true,
        })
        .unwrap();
    let resp = tx.send_request(req).await.expect("count response");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("count body");
    String::from_utf8_lossy(&body.to_bytes()).into_owned()
}

/// Downloads `/bytes/len`, counting (and spot-checking) without storing.
async fn download_count(addr: SocketAddr, len: u64) -> u64 {
    let mut tx = h1_conn::<Full<Bytes>>(addr).await;
    let req = Request::get(format!("http://{addr}/bytes/{len}"))
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tx.send_request(req).await.expect("bytes response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("download frame");
        if let Some(d) = frame.data_ref().filter(|d| !d.is_empty()) {
            // Byte i of /bytes/N is i mod 256: check each frame's ends.
            assert_eq!(d[0], seen as u8, "first byte at offset {seen}");
            let last = seen + d.len() as u64 - 1;
            assert_eq!(d[d.len() - 1], last as u8, "last byte at offset {last}");
            seen += d.len() as u64;
        }
    }
    seen
}

/// 1 GiB each way through Attaché (measured in the debug build on two
/// cores: about 2 s per direction, so no smaller size is needed), with the process RSS — Attaché, upstream and client all live
/// in it — growing by far less than the data moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigabyte_bodies_stream_in_bounded_memory() {
    let _gate = RSS_GATE.write().await;
    bounded(240, async {
        let up = Upstream::start("bulk").await.unwrap();
        let attache = start_attache(&one_cluster(up.addr(), "")).await;
        let addr = attache.http_addr.unwrap();
        // Warm up the pools and buffers so the baseline includes them.
        assert_eq!(upload_count(addr, 4 << 20).await, (4u64 << 20).to_string());
        assert_eq!(download_count(addr, 4 << 20).await, 4 << 20);
        let before = rss_bytes();

        let t = Instant::now();
        assert_eq!(upload_count(addr, GIB).await, "1073741824");
        let up_secs = t.elapsed().as_secs_f64();
        let after_upload = rss_bytes();

        let t = Instant::now();
        assert_eq!(download_count(addr, GIB).await, GIB);
        let down_secs = t.elapsed().as_secs_f64();
        let after = rss_bytes().max(after_upload);

        let growth = after.saturating_sub(before);
        eprintln!(
            "1 GiB upload {up_secs:.1}s, download {down_secs:.1}s, RSS {} MiB -> {} MiB",
            before >> 20,
            after >> 20
        );
        assert!(
            growth < 100 << 20,
            "RSS grew by {} MiB moving 2 GiB",
            growth >> 20
        );
        attache.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn chunked_upload_is_echoed_intact() {
    let _gate = RSS_GATE.read().await;
    bounded(60, async {
        let up = Upstream::start("echo").await.unwrap();
        let attache = start_attache(&one_cluster(up.addr(), "")).await;
        let addr = attache.http_addr.unwrap();
        let data = Bytes::from(patterned(3_000_000));
        // Uneven frame sizes, so chunk boundaries fall anywhere.
        let mut frames = VecDeque::new();
        let (mut at, mut step) = (0, 1usize);
        while at < data.len() {
            let end = (at + step).min(data.len());
            frames.push_back(data.slice(at..end));
            at = end;
            step = step * 3 % 70_001 + 1;
        }
        let mut tx = h1_conn::<Frames>(addr).await;
        let req = Request::post(format!("http://{addr}/echo"))
            .header("host", addr.to_string())
            .body(Frames(frames))
            .unwrap();
        let resp = tx.send_request(req).await.expect("echo response");
        assert_eq!(resp.status(), 200);
        let seen = |h: &str| {
            resp.headers()
                .get(h)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            seen("x-seen-content-length"),
            None,
            "streamed, not buffered"
        );
        let names = seen("x-seen-header-names").unwrap_or_default();
        assert!(names.contains("transfer-encoding"), "{names}");
        let back = resp
            .into_body()
            .collect()
            .await
            .expect("echo body")
            .to_bytes();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "the echoed bytes differ");
        attache.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn websocket_echo_through_attache() {
    let _gate = RSS_GATE.read().await;
    bounded(30, async {
        let up = Upstream::start("ws").await.unwrap();
        let toml = one_route("/chat/", "ws", up.addr(), "rewrite = \"/\"", "");
        let attache = start_attache(&toml).await;
        let addr = attache.http_addr.unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/chat/ws"), tcp)
            .await
            .expect("websocket handshake through attache");
        assert_eq!(resp.status(), 101);
        assert_eq!(
            resp.headers().get("x-seen-path").map(|v| v.as_bytes()),
            Some(&b"/ws"[..])
        );

        let big: Vec<u8> = patterned(200_000);
        let sent = [
            Message::text("hello through attaché"),
            Message::binary(vec![0u8, 1, 2, 255]),
            Message::binary(big),
            Message::text("last"),
        ];
        for m in &sent {
            ws.send(m.clone()).await.expect("send");
            let got = ws.next().await.expect("an answer").expect("a message");
            assert_eq!(&got, m);
        }
        ws.close(None).await.expect("close");
        let mut closed = false;
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(_)) => closed = true,
                Ok(other) => panic!("unexpected {other:?} after close"),
                Err(_) => break,
            }
        }
        assert!(closed, "the upstream acknowledged the close");
        attache.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn nginx_static_with_keep_alive() {
    let _gate = RSS_GATE.read().await;
    bounded(60, async {
        let nginx = tokio::task::spawn_blocking(Nginx::static_ok)
            .await
            .unwrap()
            .expect("nginx starts (Debian package nginx-light)");
        let toml = one_route("/static/", "static", nginx.addr(), "", "");
        let attache = start_attache(&toml).await;
        let addr = attache.http_addr.unwrap();
        let c = h1_client();
        for i in 0..50 {
            let r = get(&c, addr, &format!("/static/file{i}.txt"), &[]).await;
            assert_eq!(r.status, 200, "request {i}: {}", r.body);
            assert_eq!(r.body, "ok\n", "request {i}");
            assert!(r.header("x-attache-error").is_none());
        }
        let ctx = attache.http.as_ref().unwrap();
        assert_eq!(ctx.clients(), 1, "one app connection carried all 50");
        assert_eq!(
            ctx.clusters["static"].pool.opened_total(),
            1,
            "one upstream connection to nginx carried all 50"
        );
        attache.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn h2c_app_large_body_to_h1_upstream() {
    let _gate = RSS_GATE.read().await;
    bounded(60, async {
        let up = Upstream::builder()
            .name("h1")
            .http1_only()
            .start()
            .await
            .unwrap();
        let extra = "protocol = \"http1\"";
        let attache = start_attache(&one_cluster(up.addr(), extra)).await;
        let addr = attache.http_addr.unwrap();
        let data = Bytes::from(patterned(8 << 20));
        // POST with a Content-Length streams at once. PUT is retryable and
        // sent here without a length, so Attaché reads up to
        // `max_retry_body` ahead, then streams the rest behind it.
        let sized = h2_client();
        let unsized_ = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Frames>();
        for method in ["POST", "PUT"] {
            let req = Request::builder()
                .method(method)
                .uri(format!("http://{addr}/echo"));
            let resp = if method == "POST" {
                sized
                    .request(req.body(Full::new(data.clone())).unwrap())
                    .await
            } else {
                let frames = data.chunks(10_000).map(|c| data.slice_ref(c)).collect();
                unsized_.request(req.body(Frames(frames)).unwrap()).await
            }
            .expect("echo response");
            assert_eq!(resp.status(), 200, "{method}");
            assert_eq!(resp.version(), http::Version::HTTP_2, "the app spoke h2c");
            assert_eq!(
                resp.headers().get("x-seen-version").unwrap(),
                "HTTP/1.1",
                "{method}"
            );
            let back = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(back.len(), data.len(), "{method}");
            assert!(back == data, "{method}: the echoed bytes differ");
        }
        // And a small body through the same path, for the buffered case.
        let r = send(
            &sized,
            "PUT",
            addr,
            "/count",
            &[],
            Bytes::from_static(b"12345"),
        )
        .await;
        assert_eq!(r.body, "5");
        attache.shutdown().await;
    })
    .await;
}
