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
