use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::server::ShutdownTrigger;

/// An upstream that answers every request head it reads with `200 ok`.
async fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
                        if tcp.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A request the fast path read and handed over is answered even when
/// shutdown began before hyper took the connection: hyper gets its turn
/// before it is told to shut down, so it is not idle then. Repeated
/// because, without the bias, `select!` starts with a random branch and
/// the shutdown would win about half the time (hyper then closes at once,
/// the request unanswered).
#[tokio::test]
async fn a_handed_over_request_is_answered_though_shutdown_has_begun() {
    let up = upstream().await;
    let cfg = crate::config::parse(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[[http.routes]]\nprefix = \"/\"\n\
         cluster = \"up\"\n\n[http.clusters.up]\nendpoints = [\"{up}\"]\n"
    ))
    .expect("config");
    let ctx = Arc::new(HttpContext::new(cfg.http.expect("[http]")).expect("context"));
    ctx.start();
    let trigger = ShutdownTrigger::new();
    trigger.trigger();
    for round in 0..16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut app = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (tcp, _) = listener.accept().await.expect("accept");
        // What the fast path read and handed over: a whole request.
        let read = BytesMut::from(&b"GET /x HTTP/1.1\r\nhost: app\r\n\r\n"[..]);
        let mut shutdown = trigger.subscribe();
        let serve = ctx.serve_hyper(
            read,
            WriteIdle::new(tcp, Duration::from_secs(5)),
            HeaderValue::from_static("127.0.0.1"),
            &mut shutdown,
        );
        let answer = async {
            let mut got = Vec::new();
            let _ = app.read_to_end(&mut got).await;
            got
        };
        let ((), got) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(serve, answer)
        })
        .await
        .expect("the connection ended");
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("ok\n"),
            "round {round}: the handed-over request got {text:?}"
        );
    }
}

/// A context over one (unused) upstream, and a fresh app connection to it:
/// the app's end and Attaché's.
async fn context_and_connection() -> (Arc<HttpContext>, TcpStream, TcpStream) {
    let cfg = crate::config::parse(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[[http.routes]]\nprefix = \"/\"\n\
         cluster = \"up\"\n\n[http.clusters.up]\nendpoints = [\"127.0.0.1:9\"]\n",
    )
    .expect("config");
    let ctx = Arc::new(HttpContext::new(cfg.http.expect("[http]")).expect("context"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (tcp, _) = listener.accept().await.expect("accept");
    (ctx, app, tcp)
}

/// A client that stops inside the HTTP/2 preface (what the fast path
/// handed over) loses its connection after the head timeout; hyper's
/// version detection alone would wait for the rest forever.
#[tokio::test(start_paused = true)]
async fn a_half_sent_http2_preface_is_closed_in_time() {
    let (ctx, _app, tcp) = context_and_connection().await;
    let trigger = ShutdownTrigger::new();
    let mut shutdown = trigger.subscribe();
    let serve = ctx.serve_hyper(
        BytesMut::from(&b"PRI * HTTP/2.0\r\n"[..]),
        WriteIdle::new(tcp, Duration::from_secs(300)),
        HeaderValue::from_static("127.0.0.1"),
        &mut shutdown,
    );
    let started = tokio::time::Instant::now();
    tokio::time::timeout(HEAD_TIMEOUT * 3, serve)
        .await
        .expect("the connection was closed");
    assert!(started.elapsed() <= HEAD_TIMEOUT + Duration::from_secs(1));
}

/// An HTTP/2 client that opens no stream (and answers pings, as a live
/// one does) is closed after between one and two head timeouts.
#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_is_closed_in_time() {
    let (ctx, app, tcp) = context_and_connection().await;
    let trigger = ShutdownTrigger::new();
    let mut shutdown = trigger.subscribe();
    // Nothing read yet: the preface comes from the client itself.
    let serve = ctx.serve_hyper(
        BytesMut::new(),
        WriteIdle::new(tcp, Duration::from_secs(300)),
        HeaderValue::from_static("127.0.0.1"),
        &mut shutdown,
    );
    let client = async {
        let (_send, conn) = h2::client::handshake(app).await.expect("h2 handshake");
        let _ = conn.await;
    };
    let started = tokio::time::Instant::now();
    tokio::time::timeout(HEAD_TIMEOUT * 4, async { tokio::join!(serve, client) })
        .await
        .expect("the connection was closed");
    let took = started.elapsed();
    assert!(took >= HEAD_TIMEOUT && took <= HEAD_TIMEOUT * 2 + Duration::from_secs(1));
}
