//! Tests of the nginx harness: config rendering, and real nginx processes serving, proxying
//! to a test upstream, and leaving nothing behind.

use std::path::Path;

use http::StatusCode;

use super::super::tests::get;
use super::super::Upstream;
use super::*;
use crate::proc::is_alive;

#[test]
fn temp_paths_follow_the_compiled_in_modules() {
    let v = "nginx version: nginx/1.22.1\nconfigure arguments: --with-cc-opt=-O2 \
             --http-client-body-temp-path=/var/lib/nginx/body \
             --http-proxy-temp-path=/var/lib/nginx/proxy \
             --http-uwsgi-temp-path=/var/lib/nginx/uwsgi --without-http_uwsgi_module";
    assert_eq!(
        parse_temp_paths(v),
        ["client_body_temp_path", "proxy_temp_path"]
    );
    assert_eq!(
        parse_temp_paths("nginx version: x"),
        ["client_body_temp_path"]
    );
}

#[test]
fn conf_keeps_every_path_in_the_temp_dir() {
    let temp = [
        "client_body_temp_path".to_string(),
        "proxy_temp_path".to_string(),
    ];
    let site = NginxSite::ReverseProxy(vec!["127.0.0.1:8001".parse().unwrap()]);
    let conf = render_conf(&ConfArgs {
        dir: Path::new("/tmp/attache-nginx-x"),
        port: 8080,
        workers: 1,
        temp_paths: &temp,
        site: &site,
    });
    assert!(conf.contains("master_process off;"));
    assert!(conf.contains("    proxy_temp_path /tmp/attache-nginx-x/proxy;\n"));
    assert!(conf.contains("pid /tmp/attache-nginx-x/nginx.pid;"));
    assert!(conf.contains("listen 127.0.0.1:8080;"));
    assert!(conf.contains("server 127.0.0.1:8001;"));
    assert!(conf.contains("keepalive 64;"));
    assert!(conf.contains("proxy_set_header Connection \"\";"));
    assert!(!conf.contains("/var/"));
}

#[tokio::test]
async fn static_ok_answers_and_drop_cleans_up() {
    let nginx = Nginx::static_ok().unwrap();
    let (status, resp, body) = get(nginx.addr(), "/any/path").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(resp.headers()["content-type"], "text/plain");
    let pid = nginx.pid().unwrap();
    assert_eq!(nginx.pids(), [pid]);
    let dir = nginx.dir().to_path_buf();
    assert!(
        dir.join("client_body").is_dir(),
        "temp paths live in the dir"
    );
    drop(nginx);
    assert!(!is_alive(pid));
    assert!(!dir.exists());
}

#[tokio::test]
async fn multi_worker_nginx_reports_and_kills_all_processes() {
    let nginx = Nginx::start(NginxSite::StaticOk, 2).unwrap();
    assert_eq!(get(nginx.addr(), "/").await.2, "ok\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while nginx.pids().len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pids = nginx.pids();
    assert_eq!(pids.len(), 3, "master and two workers: {pids:?}");
    drop(nginx);
    assert!(pids.iter().all(|&p| !is_alive(p)), "{pids:?}");
}

#[tokio::test]
async fn reverse_proxy_reaches_the_upstreams() {
    let a = Upstream::start("a").await.unwrap();
    let b = Upstream::start("b").await.unwrap();
    let nginx = Nginx::reverse_proxy(&[a.addr(), b.addr()]).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, resp, _) = get(nginx.addr(), "/via/nginx?x=1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(resp.headers()["x-seen-path"], "/via/nginx?x=1");
        seen.push(resp.headers()["x-upstream"].to_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["a", "a", "b", "b"]);
    assert_eq!(a.requests() + b.requests(), 4);
}

#[test]
fn reverse_proxy_needs_upstreams() {
    assert!(matches!(
        Nginx::reverse_proxy(&[]),
        Err(HttpError::Invalid(_))
    ));
}
