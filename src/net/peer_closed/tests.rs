use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::peer_closed;

/// Wake-ups of `peer_closed` (only this test runs it in this binary).
pub(super) static WAKEUPS: AtomicUsize = AtomicUsize::new(0);

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    (client, server)
}

/// Unread bytes neither end the wait (nor spin it: a wake-up per arrival
/// at most) nor get lost to the socket's reader; the peer's close ends it
/// while they are still unread.
#[tokio::test]
async fn notices_the_close_behind_unread_bytes_and_leaves_them_readable() {
    let (mut client, mut server) = pair().await;
    client.write_all(&[7u8; 100_000]).await.expect("write");
    let waiting = timeout(Duration::from_millis(200), peer_closed(&server)).await;
    assert!(waiting.is_err(), "no close yet: still waiting");
    // Bytes arriving while watched stay readable afterwards.
    client.write_all(b"tail").await.expect("write");
    let waiting = timeout(Duration::from_millis(200), peer_closed(&server)).await;
    assert!(waiting.is_err(), "more bytes are not a close");
    // Two waits of 200 ms, a look every 100 ms: a handful of wake-ups
    // (a spin on the unread bytes would count in the millions).
    let wakeups = WAKEUPS.load(Ordering::Relaxed);
    assert!(wakeups <= 10, "{wakeups} wake-ups");
    drop(client);
    timeout(Duration::from_secs(2), peer_closed(&server))
        .await
        .expect("the close is noticed")
        .expect("no error");
    let mut all = Vec::new();
    timeout(Duration::from_secs(2), server.read_to_end(&mut all))
        .await
        .expect("the unread bytes are still there")
        .expect("read");
    assert_eq!(all.len(), 100_004);
}
