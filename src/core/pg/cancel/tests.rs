use std::sync::Arc;
use std::time::Duration;

use super::{CancelTarget, InFlight};

fn target() -> Arc<CancelTarget> {
    CancelTarget::new("127.0.0.1:1".into(), 7, vec![1, 2, 3, 4].into())
}

#[tokio::test]
async fn the_gate_opens_when_the_last_cancel_in_flight_ends() {
    let t = target();
    assert!(!t.gate.busy());
    assert!(t.gate.wait_idle(Duration::ZERO).await);
    let first = InFlight::begin(t.clone());
    let second = InFlight::begin(t.clone());
    assert!(t.gate.busy());
    assert!(!t.gate.wait_idle(Duration::from_millis(20)).await);
    let waiter = {
        let t = t.clone();
        tokio::spawn(async move { t.gate.wait_idle(Duration::from_secs(5)).await })
    };
    drop(first);
    tokio::task::yield_now().await;
    assert!(t.gate.busy(), "one cancel is still in flight");
    drop(second);
    assert!(waiter.await.unwrap(), "the waiter saw the gate open");
    assert!(!t.gate.busy());
}

/// The forwarder holds the gate until the server closes the cancel
/// connection; a wrong key or an idle client forwards nothing.
#[tokio::test]
async fn a_forwarded_cancel_holds_the_gate_until_the_server_closes() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let registry = Arc::new(super::CancelRegistry::default());
    let handle = registry.register();
    let key = handle.secret.to_be_bytes();
    // No server held: nothing is forwarded.
    registry.cancel(handle.pid, &key).await;
    let t = CancelTarget::new(addr.into(), 4242, vec![9, 8, 7, 6].into());
    *handle.slot.lock().unwrap() = Some(t.clone());
    // A wrong secret forwards nothing either.
    registry.cancel(handle.pid, &[0, 0, 0, 0]).await;
    let none = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(none.is_err(), "nothing may reach the server");

    let forward = {
        let registry = registry.clone();
        tokio::spawn(async move { registry.cancel(handle.pid, &key).await })
    };
    let (mut s, _) = listener.accept().await.unwrap();
    let mut got = [0u8; 16];
    s.read_exact(&mut got).await.unwrap();
    // Length 16, code 80877102, the server's pid and secret.
    assert_eq!(got[..8], [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e]);
    assert_eq!(got[8..12], 4242i32.to_be_bytes());
    assert_eq!(got[12..], [9, 8, 7, 6]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(t.gate.busy(), "in flight until the server closes");
    assert!(!forward.is_finished());
    drop(s);
    forward.await.unwrap();
    assert!(!t.gate.busy());
}

/// A cancel whose end was never seen (the cancel connection broke after
/// the request went out) leaves the connection untrusted: a late signal
/// may still come. One that never reached a server leaves it as it was.
#[tokio::test]
async fn a_cancel_that_never_finished_taints_the_connection() {
    use tokio::io::AsyncReadExt;
    let registry = Arc::new(super::CancelRegistry::default());
    let handle = registry.register();
    let key = handle.secret.to_be_bytes();

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let unreached = CancelTarget::new(addr.into(), 1, vec![0; 4].into());
    *handle.slot.lock().unwrap() = Some(unreached.clone());
    registry.cancel(handle.pid, &key).await;
    assert!(!unreached.gate.busy(), "nothing was sent: still trusted");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let broken = CancelTarget::new(addr.into(), 2, vec![0; 4].into());
    *handle.slot.lock().unwrap() = Some(broken.clone());
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = [0u8; 16];
        s.read_exact(&mut got).await.unwrap();
        // Reset instead of a clean close: the forwarder cannot tell
        // whether the server finished. (A zero linger never blocks the
        // drop, which is what the deprecation warns about.)
        #[allow(deprecated)]
        s.set_linger(Some(Duration::ZERO)).unwrap();
    });
    registry.cancel(handle.pid, &key).await;
    server.await.unwrap();
    assert!(broken.gate.busy(), "tainted");
    assert!(!broken.gate.wait_idle(Duration::from_secs(1)).await);
}
