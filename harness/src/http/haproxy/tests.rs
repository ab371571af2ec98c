//! Tests of the haproxy harness: config rendering and a real haproxy proxying to test
//! upstreams.

use http::StatusCode;

use super::super::tests::get;
use super::super::Upstream;
use super::*;
use crate::proc::is_alive;

#[test]
fn cfg_has_http_mode_reuse_and_servers() {
    let ups = [
        "127.0.0.1:9001".parse().unwrap(),
        "127.0.0.1:9002".parse().unwrap(),
    ];
    let cfg = render_cfg(8443, Some(1), &ups);
    assert!(cfg.contains("    mode http\n"));
    assert!(cfg.contains("    http-reuse always\n"));
    assert!(cfg.contains("    nbthread 1\n"));
    assert!(cfg.contains("    bind 127.0.0.1:8443\n"));
    assert!(cfg.contains("    server up1 127.0.0.1:9002\n"));
    assert!(!render_cfg(1, None, &ups).contains("nbthread"));
}

#[tokio::test]
async fn reverse_proxy_reaches_the_upstreams() {
    let a = Upstream::start("ha-a").await.unwrap();
    let b = Upstream::start("ha-b").await.unwrap();
    let proxy = Haproxy::reverse_proxy(&[a.addr(), b.addr()]).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, resp, _) = get(proxy.addr(), "/via/haproxy").await;
        assert_eq!(status, StatusCode::OK, "{}", proxy.log());
        seen.push(resp.headers()["x-upstream"].to_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["ha-a", "ha-a", "ha-b", "ha-b"]);
    let pid = proxy.pid().unwrap();
    let dir = proxy.dir().to_path_buf();
    drop(proxy);
    assert!(!is_alive(pid));
    assert!(!dir.exists());
}

#[test]
fn reverse_proxy_needs_upstreams() {
    assert!(matches!(
        Haproxy::reverse_proxy(&[]),
        Err(HttpError::Invalid(_))
    ));
}
