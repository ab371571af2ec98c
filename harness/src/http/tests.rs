//! Tests of the HTTP test upstream against real hyper clients (HTTP/1.1, h2c, TLS, mTLS),
//! raw sockets and a WebSocket client; nginx and haproxy have their own test files.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::handler::json_escape;
use super::{HttpError, Mode, Upstream};
use crate::TestCerts;

/// Sends `req` (path-only URI) to `addr` over clear text, HTTP/1.1 or h2c prior knowledge.
pub(super) async fn send<B>(addr: SocketAddr, h2: bool, req: Request<B>) -> Response<Incoming>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let client = Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build_http::<B>();
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{addr}{}", parts.uri).parse().unwrap();
    client
        .request(Request::from_parts(parts, body))
        .await
        .unwrap()
}

/// GET `path` over HTTP/1.1; returns status, the response and its whole body as text.
pub(super) async fn get(addr: SocketAddr, path: &str) -> (StatusCode, Response<()>, String) {
    let req = Request::get(path).body(Empty::<Bytes>::new()).unwrap();
    collect(send(addr, false, req).await).await
}

async fn collect(resp: Response<Incoming>) -> (StatusCode, Response<()>, String) {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (parts.status, Response::from_parts(parts, ()), text)
}

fn header<'a>(resp: &'a Response<()>, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn http1_request_is_echoed_in_headers_and_body() {
    let up = Upstream::start("alpha").await.unwrap();
    let req = Request::get("/some/path?q=1")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example")
        .header("x-request-id", "req-42")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("host", "svc.internal")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (status, resp, body) = collect(send(up.addr(), false, req).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&resp, "x-upstream"), "alpha");
    assert_eq!(header(&resp, "x-seen-method"), "GET");
    assert_eq!(header(&resp, "x-seen-path"), "/some/path?q=1");
    assert_eq!(header(&resp, "x-seen-host"), "svc.internal");
    assert_eq!(header(&resp, "x-seen-version"), "HTTP/1.1");
    assert_eq!(header(&resp, "x-seen-tls"), "false");
    assert_eq!(header(&resp, "x-seen-x-forwarded-for"), "10.0.0.1");
    assert_eq!(header(&resp, "x-seen-x-forwarded-proto"), "https");
    assert_eq!(header(&resp, "x-seen-x-forwarded-host"), "api.example");
    assert_eq!(header(&resp, "x-seen-x-request-id"), "req-42");
    assert!(header(&resp, "x-seen-traceparent").starts_with("00-0af7"));
    assert!(header(&resp, "x-seen-header-names").contains("x-request-id"));
    assert!(header(&resp, "x-seen-peer").starts_with("127.0.0.1:"));
    assert_eq!(
        body,
        "{\"upstream\":\"alpha\",\"method\":\"GET\",\"path\":\"/some/path?q=1\",\"version\":\"HTTP/1.1\"}\n"
    );
    assert_eq!((up.requests(), up.connections()), (1, 1));
}

#[tokio::test]
async fn h2c_request_sees_http2_and_authority() {
    let up = Upstream::start("beta").await.unwrap();
    let req = Request::post("/p")
        .header("x-request-id", "r2")
        .body(Full::new(Bytes::from_static(b"abc")))
        .unwrap();
    let (status, resp, _) = collect(send(up.addr(), true, req).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&resp, "x-upstream"), "beta");
    assert_eq!(header(&resp, "x-seen-version"), "HTTP/2.0");
    assert_eq!(header(&resp, "x-seen-method"), "POST");
    assert_eq!(header(&resp, "x-seen-host"), up.addr().to_string());
    assert_eq!(header(&resp, "x-seen-x-request-id"), "r2");
}

#[tokio::test]
async fn status_mode_and_health() {
    let up = Upstream::start("s").await.unwrap();
    assert_eq!(get(up.addr(), "/healthz").await.0, StatusCode::OK);
    up.set_mode(Mode::Status(502));
    assert_eq!(get(up.addr(), "/x").await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(
        get(up.addr(), "/healthz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    up.set_mode(Mode::Status(404));
    assert_eq!(get(up.addr(), "/x").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(up.addr(), "/healthz").await.0, StatusCode::OK);
    up.set_mode(Mode::Ok);
    up.set_healthy(false);
    assert_eq!(
        get(up.addr(), "/healthz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(up.addr(), "/x").await.0, StatusCode::OK);
    assert_eq!((up.requests(), up.health_checks()), (3, 4));
}

#[tokio::test]
async fn fail_every_fails_each_nth_request() {
    let up = Upstream::start("f").await.unwrap();
    up.set_mode(Mode::FailEvery(3));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get(up.addr(), "/").await.0.as_u16());
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
}

#[tokio::test]
async fn fail_every_zero_never_fails_and_initial_mode_applies() {
    let up = Upstream::builder()
        .mode(Mode::FailEvery(0))
        .start()
        .await
        .unwrap();
    assert_eq!(up.mode(), Mode::FailEvery(0));
    for _ in 0..3 {
        assert_eq!(get(up.addr(), "/").await.0, StatusCode::OK);
    }
    let down = Upstream::builder()
        .mode(Mode::Status(500))
        .start()
        .await
        .unwrap();
    assert_eq!(
        get(down.addr(), "/").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn http1_only_and_http2_only_refuse_the_other_version() {
    let h1 = Upstream::builder().http1_only().start().await.unwrap();
    let h2 = Upstream::builder().http2_only().start().await.unwrap();
    let req = || Request::get("/").body(Empty::<Bytes>::new()).unwrap();
    let client = |h2c: bool| {
        Client::builder(TokioExecutor::new())
            .http2_only(h2c)
            .build_http::<Empty<Bytes>>()
    };
    let url = |up: &Upstream| format!("http://{}/", up.addr());
    let with_uri = |up: &Upstream| {
        let (mut parts, body) = req().into_parts();
        parts.uri = url(up).parse().unwrap();
        Request::from_parts(parts, body)
    };
    assert!(client(true).request(with_uri(&h1)).await.is_err());
    assert!(client(false).request(with_uri(&h2)).await.is_err());
    let resp = send(h2.addr(), true, req()).await;
    assert_eq!(resp.headers()["x-seen-version"], "HTTP/2.0");
    let resp = send(h1.addr(), false, req()).await;
    assert_eq!(resp.headers()["x-seen-version"], "HTTP/1.1");
}

#[tokio::test]
async fn reset_mode_closes_without_answer() {
    let up = Upstream::start("r").await.unwrap();
    up.set_mode(Mode::Reset);
    let mut sock = TcpStream::connect(up.addr()).await.unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // EOF or a reset both mean "no answer"; what matters is that no byte came back.
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut buf))
        .await
        .expect("connection must be closed");
    assert!(buf.is_empty(), "got {:?}", String::from_utf8_lossy(&buf));
    let req = Request::get("/healthz")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{}/healthz", up.addr()).parse().unwrap();
    assert!(client
        .request(Request::from_parts(parts, body))
        .await
        .is_err());
    assert_eq!((up.requests(), up.health_checks()), (1, 1));
    // HTTP/2: the stream is reset, the client sees an error rather than a response.
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let req = Request::get(format!("http://{}/", up.addr()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert!(client.request(req).await.is_err());
    up.set_mode(Mode::Ok);
    assert_eq!(get(up.addr(), "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn delay_mode_and_sleep_endpoint_wait() {
    let up = Upstream::start("d").await.unwrap();
    let t = Instant::now();
    assert_eq!(get(up.addr(), "/sleep/150").await.0, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(150));
    up.set_mode(Mode::Delay(Duration::from_millis(120)));
    let t = Instant::now();
    assert_eq!(get(up.addr(), "/").await.0, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(120));
    assert_eq!(get(up.addr(), "/sleep/x").await.0, StatusCode::BAD_REQUEST);
}

/// A request body fed chunk by chunk from a channel.
struct ChanBody(mpsc::Receiver<Bytes>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn echo_streams_before_the_request_body_ends() {
    for h2 in [false, true] {
        let up = Upstream::start("e").await.unwrap();
        let (tx, rx) = mpsc::channel(1);
        tx.send(Bytes::from_static(b"first")).await.unwrap();
        let req = Request::post("/echo").body(ChanBody(rx)).unwrap();
        let mut body = send(up.addr(), h2, req).await.into_body();
        let frame = |f: Option<Result<Frame<Bytes>, hyper::Error>>| {
            f.unwrap().unwrap().into_data().unwrap()
        };
        // The request body is still open: only streaming can deliver this frame.
        assert_eq!(frame(body.frame().await), "first");
        tx.send(Bytes::from_static(b"second")).await.unwrap();
        assert_eq!(frame(body.frame().await), "second");
        drop(tx);
        let rest = body.collect().await.unwrap().to_bytes();
        assert!(rest.is_empty(), "h2={h2}");
    }
}

#[tokio::test]
async fn count_and_bytes_stream_large_bodies() {
    let up = Upstream::start("c").await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for _ in 0..160 {
            tx.send(Bytes::from(vec![7u8; 65536])).await.unwrap();
        }
    });
    let req = Request::put("/count").body(ChanBody(rx)).unwrap();
    let (status, _, body) = collect(send(up.addr(), false, req).await).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "10485760"));

    let req = Request::get("/bytes/200001")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send(up.addr(), false, req).await;
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes.len(), 200_001);
    assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
    assert_eq!(get(up.addr(), "/bytes/0").await.2, "");
}

#[tokio::test]
async fn websocket_echoes_text_and_binary() {
    let up = Upstream::start("w").await.unwrap();
    let sock = TcpStream::connect(up.addr()).await.unwrap();
    let url = format!("ws://{}/ws", up.addr());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, sock).await.unwrap();
    assert_eq!(resp.headers()["x-upstream"], "w");
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("hello".into())
    );
    ws.send(Message::Binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(vec![1, 2, 3])
    );
    ws.close(None).await.unwrap();
    // A plain GET is no upgrade.
    assert_eq!(get(up.addr(), "/ws").await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stop_refuses_and_restart_serves_again() {
    let up = Upstream::start("x").await.unwrap();
    let mut idle = TcpStream::connect(up.addr()).await.unwrap();
    up.stop().await;
    assert!(!up.is_running());
    let err = TcpStream::connect(up.addr()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // The already-open connection was closed too.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    up.restart().await.unwrap();
    assert_eq!(get(up.addr(), "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn drop_closes_the_port() {
    let up = Upstream::start("gone").await.unwrap();
    let addr = up.addr();
    drop(up);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "port still open after drop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn invalid_builders_are_rejected() {
    let err = Upstream::builder().name("").start().await.unwrap_err();
    assert!(matches!(err, HttpError::Invalid(_)), "{err}");
    let err = Upstream::builder()
        .require_client_cert("/nonexistent")
        .start()
        .await;
    assert!(matches!(err, Err(HttpError::Invalid(_))));
    let err = Upstream::builder()
        .tls("/nonexistent.crt", "/nonexistent.key")
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Tls(_)), "{err}");
}

#[test]
fn json_escape_quotes_and_controls() {
    assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
}

/// A TLS client trusting `ca`, optionally presenting a client certificate.
fn tls_connector(
    ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// GET `/` over TLS with the negotiated protocol; Err on any handshake or request failure.
async fn tls_get(
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
) -> Result<Response<()>, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let req = Request::get(format!("https://localhost:{}/", addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await
    };
    let (parts, body) = resp.map_err(|e| e.to_string())?.into_parts();
    body.collect().await.map_err(|e| e.to_string())?;
    Ok(Response::from_parts(parts, ()))
}

#[tokio::test]
async fn tls_serves_h2_and_http1_by_alpn() {
    let certs = TestCerts::generate(&["localhost", "127.0.0.1"]).unwrap();
    let up = Upstream::builder()
        .name("secure")
        .tls(&certs.server_cert, &certs.server_key)
        .start()
        .await
        .unwrap();
    assert!(up.url().starts_with("https://127.0.0.1:"));
    for (alpn, version) in [(&b"h2"[..], "HTTP/2.0"), (&b"http/1.1"[..], "HTTP/1.1")] {
        let resp = tls_get(up.addr(), tls_connector(&certs.ca_cert, None, &[alpn]))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "x-seen-tls"), "true");
        assert_eq!(header(&resp, "x-seen-version"), version);
    }
    // A client trusting another CA refuses the server.
    let wrong = tls_connector(&certs.other_ca_cert, None, &[b"http/1.1"]);
    assert!(tls_get(up.addr(), wrong).await.is_err());
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_ca() {
    let certs = TestCerts::generate(&["localhost"]).unwrap();
    let up = Upstream::builder()
        .name("mtls")
        .tls(&certs.server_cert, &certs.server_key)
        .require_client_cert(&certs.ca_cert)
        .start()
        .await
        .unwrap();
    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    let anonymous = tls_connector(&certs.ca_cert, None, alpn);
    assert!(tls_get(up.addr(), anonymous).await.is_err());
    let other = (&*certs.other_client_cert, &*certs.other_client_key);
    let wrong = tls_connector(&certs.ca_cert, Some(other), alpn);
    assert!(tls_get(up.addr(), wrong).await.is_err());
    let good = (&*certs.client_cert, &*certs.client_key);
    let resp = tls_get(up.addr(), tls_connector(&certs.ca_cert, Some(good), alpn))
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-upstream"), "mtls");
    assert_eq!(up.requests(), 1);
}
