//! Test support for HTTP egress: a plain hyper client (HTTP/1.1, or h2c
//! with prior knowledge) that collects whole responses.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use attache_harness::http::{Mode, Upstream};

pub type TestClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn h1_client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// `GET http://addr/path` with extra headers.
pub async fn get(
    client: &TestClient,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    send(client, "GET", addr, path, headers, Bytes::new()).await
}

pub async fn send(
    client: &TestClient,
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).expect("request");
    let resp = client.request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// An `[http]` config with one route (`prefix`, plus `route_extra` lines)
/// to one cluster `name` at `endpoint` (plus `cluster_extra` lines).
pub fn one_route(
    prefix: &str,
    name: &str,
    endpoint: impl std::fmt::Display,
    route_extra: &str,
    cluster_extra: &str,
) -> String {
    format!(
        "[http]\n[[http.routes]]\nprefix = \"{prefix}\"\ncluster = \"{name}\"\n{route_extra}\n\
         [http.clusters.{name}]\nendpoints = [\"{endpoint}\"]\n{cluster_extra}\n"
    )
}

/// An upstream that answers one request per connection and then closes it
/// without saying so (no `Connection: close`), as a server restarting or
/// enforcing a per-connection limit might. Counts connections.
pub async fn one_answer_per_connection(
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    one_answer_per_connection_after(std::time::Duration::ZERO).await
}

/// Like [`one_answer_per_connection`], answering each request `delay`
/// after it has arrived.
pub async fn one_answer_per_connection_after(
    delay: std::time::Duration,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The head, then as much body as Content-Length says.
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                tokio::time::sleep(delay).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // Dropped here: closed right after the answer.
            });
        }
    });
    (addr, accepted)
}
