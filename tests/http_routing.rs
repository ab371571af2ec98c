//! HTTP egress end to end: routes by prefix and Host, prefix strip and
//! rewrite, 404 for no route, forwarded headers, request ids and
//! traceparent, over HTTP/1.1 and h2c from the app to real upstream servers.

mod support;

use support::http::{get, h1_client, h2_client, Upstream};
use support::start_attache;

async fn two_services() -> (Upstream, Upstream, attache::app::Attache) {
    let payments = Upstream::start("payments").await.unwrap();
    let users = Upstream::start("users").await.unwrap();
    let toml = format!(
        r#"
[http]
[[http.routes]]
prefix = "/payments/"
cluster = "payments"
strip_prefix = true

[[http.routes]]
prefix = "/v1/"
cluster = "users"
rewrite = "/api/v2/"

[[http.routes]]
host = "users.local"
cluster = "users"

[http.clusters.payments]
endpoints = ["{}"]

[http.clusters.users]
endpoints = ["{}"]
"#,
        payments.addr(),
        users.addr()
    );
    let attache = start_attache(&toml).await;
    (payments, users, attache)
}

#[tokio::test]
async fn routes_by_prefix_and_host_with_strip_and_rewrite() {
    let (_p, _u, attache) = two_services().await;
    let addr = attache.http_addr.unwrap();
    let c = h1_client();

    let r = get(&c, addr, "/payments/charge?id=7", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-upstream"), Some("payments"));
    assert_eq!(r.header("x-seen-path"), Some("/charge?id=7"));

    let r = get(&c, addr, "/v1/users/3", &[]).await;
    assert_eq!(r.header("x-upstream"), Some("users"));
    assert_eq!(r.header("x-seen-path"), Some("/api/v2/users/3"));

    let r = get(&c, addr, "/anything", &[("host", "users.local:15000")]).await;
    assert_eq!(r.header("x-upstream"), Some("users"));
    assert_eq!(r.header("x-seen-path"), Some("/anything"));

    let r = get(&c, addr, "/nowhere", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-attache-error"), Some("no-route"));
    assert!(r.body.contains("no route matched /nowhere"), "{}", r.body);
    attache.shutdown().await;
}

#[tokio::test]
async fn forwarded_headers_request_id_and_traceparent() {
    let (_p, _u, attache) = two_services().await;
    let addr = attache.http_addr.unwrap();
    let c = h1_client();

    let r = get(&c, addr, "/payments/x", &[]).await;
    assert_eq!(r.header("x-seen-x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(r.header("x-seen-x-forwarded-proto"), Some("http"));
    assert_eq!(
        r.header("x-seen-x-forwarded-host"),
        Some(addr.to_string().as_str())
    );
    let id = r
        .header("x-seen-x-request-id")
        .expect("a request id is made");
    assert_eq!(
        r.header("x-request-id"),
        Some(id),
        "the app sees the id too"
    );
    let tp = r.header("x-seen-traceparent").expect("a trace is started");
    assert!(tp.starts_with("00-") && tp.len() == 55, "{tp}");

    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = get(
        &c,
        addr,
        "/payments/x",
        &[
            ("traceparent", given),
            ("x-request-id", "req-42"),
            ("x-forwarded-for", "10.9.9.9"),
        ],
    )
    .await;
    assert_eq!(r.header("x-seen-traceparent"), Some(given));
    assert_eq!(r.header("x-seen-x-request-id"), Some("req-42"));
    assert_eq!(
        r.header("x-seen-x-forwarded-for"),
        Some("10.9.9.9, 127.0.0.1")
    );
    attache.shutdown().await;
}

/// An upstream that speaks HTTP/2 only (h2c).
async fn h2_upstream() -> Upstream {
    Upstream::builder()
        .name("h2")
        .http2_only()
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn h2c_from_the_app_and_h1_or_h2_upstream() {
    let h1 = Upstream::builder()
        .name("h1")
        .http1_only()
        .start()
        .await
        .unwrap();
    let h2 = h2_upstream().await;
    let toml = format!(
        r#"
[http]
[[http.routes]]
prefix = "/one/"
cluster = "one"
[[http.routes]]
prefix = "/two/"
cluster = "two"
[http.clusters.one]
endpoints = ["{}"]
protocol = "http1"
[http.clusters.two]
endpoints = ["{}"]
protocol = "http2"
"#,
        h1.addr(),
        h2.addr()
    );
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.unwrap();
    for client in [h1_client(), h2_client()] {
        let r = get(&client, addr, "/one/a", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-seen-version"), Some("HTTP/1.1"));
        let r = get(&client, addr, "/two/a", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-seen-version"), Some("HTTP/2.0"));
        assert_eq!(r.header("x-seen-host"), Some(addr.to_string().as_str()));
    }
    attache.shutdown().await;
}

#[tokio::test]
async fn concurrent_first_requests_share_one_h2_upstream_connection() {
    let h2 = h2_upstream().await;
    let toml = format!(
        r#"
[http]
[[http.routes]]
prefix = "/"
cluster = "two"
[http.clusters.two]
endpoints = ["{}"]
protocol = "http2"
"#,
        h2.addr()
    );
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.unwrap();
    // Twenty apps' connections ask at once, before any upstream connection
    // exists: one HTTP/2 connection carries them all.
    let asks = (0..20).map(|i| async move {
        let client = h1_client();
        get(&client, addr, &format!("/first/{i}"), &[]).await
    });
    for r in futures_util::future::join_all(asks).await {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-seen-version"), Some("HTTP/2.0"));
    }
    assert_eq!(h2.requests(), 20);
    assert_eq!(h2.connections(), 1, "one shared h2 connection");
    attache.shutdown().await;
}

/// An endpoint whose connects hang: the requests waiting for the one
/// HTTP/2 connection being opened fail with it, after one
/// `connect_timeout`, instead of each then waiting out its own.
#[tokio::test]
async fn waiters_on_a_failed_h2_connect_fail_with_it() {
    // A listener that never accepts, its backlog full: SYNs are dropped.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let dead = listener.local_addr().unwrap();
    let mut fill = Vec::new();
    for _ in 0..4 {
        let connect = tokio::net::TcpStream::connect(dead);
        if let Ok(Ok(s)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), connect).await
        {
            fill.push(s);
        }
    }
    let toml = format!(
        r#"
[http]
[[http.routes]]
prefix = "/"
cluster = "dead"
retries = 0
[http.clusters.dead]
endpoints = ["{dead}"]
protocol = "http2"
connect_timeout = "1s"
"#
    );
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.unwrap();
    let t0 = std::time::Instant::now();
    let asks = (0..8).map(|i| async move {
        let client = h1_client();
        get(&client, addr, &format!("/x/{i}"), &[]).await
    });
    for r in futures_util::future::join_all(asks).await {
        assert!(r.status.is_server_error(), "{} {}", r.status, r.body);
        assert!(r.header("x-attache-error").is_some(), "{:?}", r.headers);
    }
    let took = t0.elapsed();
    assert!(
        took < std::time::Duration::from_millis(1800),
        "waiters each waited out a connect of their own: {took:?}"
    );
    attache.shutdown().await;
}

#[tokio::test]
async fn reload_changes_routes_for_connected_keep_alive_clients() {
    let (payments, users, attache) = two_services().await;
    let addr = attache.http_addr.unwrap();
    let c = h1_client();
    let r = get(&c, addr, "/payments/x", &[]).await;
    assert_eq!(r.header("x-upstream"), Some("payments"));

    // Swap: /payments/ now goes to the users service; keep the address.
    let mut next = attache.reloader.current();
    let h = next.http.as_mut().unwrap();
    h.listen = addr.to_string();
    h.clusters.get_mut("payments").unwrap().endpoints = vec![users.addr().to_string()];
    let outcome = attache.reloader.reload(next).expect("reload");
    assert!(
        outcome
            .applied
            .iter()
            .any(|a| a.starts_with("http: new routes")),
        "{:?}",
        outcome.applied
    );
    // The same pooled client connection (no reconnect) sees the new route.
    for _ in 0..3 {
        let r = get(&c, addr, "/payments/x", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-upstream"), Some("users"));
    }
    // A new client does too.
    let r = get(&h1_client(), addr, "/payments/y", &[]).await;
    assert_eq!(r.header("x-upstream"), Some("users"));
    assert_eq!(
        payments.connections(),
        1,
        "the old cluster got no new connection"
    );
    attache.shutdown().await;
}

#[tokio::test]
async fn endpoints_by_name_are_resolved_and_named_in_host() {
    let up = Upstream::start("named").await.unwrap();
    let port = up.addr().port();
    let toml = support::http::one_route(
        "/",
        "svc",
        format!("localhost:{port}"),
        "",
        "dns_refresh = \"200ms\"",
    );
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.unwrap();
    let cluster = attache.http.as_ref().unwrap().clusters["svc"].clone();
    assert!(
        support::eventually(std::time::Duration::from_secs(5), || {
            let c = cluster.clone();
            async move { !c.endpoints().is_empty() }
        })
        .await,
        "localhost never resolved"
    );
    assert!(cluster
        .endpoints()
        .iter()
        .all(|e| e.host == "localhost" && e.port == port));
    // localhost may also resolve to ::1, where nothing listens: the
    // connect failure is retried on the IPv4 address.
    for _ in 0..5 {
        let r = get(&h1_client(), addr, "/x", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.header("x-seen-host"),
            Some(format!("localhost:{port}").as_str())
        );
    }
    attache.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_limit_get_a_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start("one").await.unwrap();
    let toml = format!(
        "[http]\nmax_client_connections = 1\n[[http.routes]]\ncluster = \"svc\"\n\
         [http.clusters.svc]\nendpoints = [\"{}\"]\n",
        up.addr()
    );
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.unwrap();
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    second.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("x-attache-error: overflow"), "{text}");
    drop(first);
    attache.shutdown().await;
}

#[tokio::test]
async fn oversized_request_heads_are_refused_without_harm() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_p, _u, attache) = two_services().await;
    let addr = attache.http_addr.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let big = "a".repeat(200 << 10);
    let req = format!("GET /payments/x HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // Others are served as before.
    let r = get(&h1_client(), addr, "/payments/x", &[]).await;
    assert_eq!(r.status, 200);
    attache.shutdown().await;
}

/// An upstream that sends headers and part of a body, then stalls: the
/// app's response ends (with an error) after `stream_idle_timeout`
/// instead of hanging, and other requests are not held up.
#[tokio::test]
async fn a_stalled_body_is_cut_after_the_idle_timeout() {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall_addr = stall.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = stall.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                    .await;
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            });
        }
    });
    let up = Upstream::start("fine").await.unwrap();
    let toml = format!(
        "[http]\nstream_idle_timeout = \"300ms\"\n\
         [[http.routes]]\nprefix = \"/stall/\"\ncluster = \"stall\"\n\
         [[http.routes]]\ncluster = \"fine\"\n\
         [http.clusters.stall]\nendpoints = [\"{stall_addr}\"]\n\
         [http.clusters.fine]\nendpoints = [\"{}\"]\n",
        up.addr()
    );
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.unwrap();
    let client = h1_client();
    let started = std::time::Instant::now();
    let req = http::Request::get(format!("http://{addr}/stall/x"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.expect("headers arrive");
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        resp.into_body().collect(),
    )
    .await
    .expect("the body ends instead of hanging");
    assert!(body.is_err(), "a cut body is an error, not a short success");
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(250) && took < std::time::Duration::from_secs(3),
        "{took:?}"
    );
    let r = get(&h1_client(), addr, "/ok", &[]).await;
    assert_eq!(r.status, 200);
    attache.shutdown().await;
}

/// HEAD answers carry no body whatever their Content-Length says, and the
/// upstream connection is reused afterwards (HTTP/1.1 fast path).
#[tokio::test]
async fn head_requests_and_connection_reuse() {
    let (payments, _u, attache) = two_services().await;
    let addr = attache.http_addr.unwrap();
    let c = h1_client();
    for _ in 0..3 {
        let r =
            support::http::send(&c, "HEAD", addr, "/payments/x", &[], bytes::Bytes::new()).await;
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        assert_eq!(r.header("x-seen-method"), Some("HEAD"));
        let r = get(&c, addr, "/payments/y", &[]).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("payments"), "{}", r.body);
    }
    let r = support::http::send(
        &c,
        "POST",
        addr,
        "/payments/z",
        &[],
        bytes::Bytes::from_static(b"abc"),
    )
    .await;
    assert_eq!(r.header("x-seen-content-length"), Some("3"));
    assert_eq!(
        payments.connections(),
        1,
        "one upstream connection served all"
    );
    attache.shutdown().await;
}

/// An upstream that sends both `Transfer-Encoding: chunked` and a wrong
/// `Content-Length`: chunked wins (RFC 9112), the app gets the whole body
/// with no conflicting length, and a 1xx interim answer is skipped.
#[tokio::test]
async fn chunked_framing_wins_over_content_length() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = up.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
                    if s.write_all(resp).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let toml = support::http::one_route("/", "c", up_addr, "", "");
    let attache = start_attache(&toml).await;
    let addr = attache.http_addr.unwrap();
    let c = h1_client();
    for _ in 0..3 {
        let r = get(&c, addr, "/x", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "hello world");
        assert_ne!(r.header("content-length"), Some("3"));
    }
    attache.shutdown().await;
}
