use super::coalesce::{MISSES_BEFORE_SKIP, PROBE_EVERY};
use super::*;

#[test]
fn coalesce_yields_while_turns_bring_company() {
    let mut c = Coalesce::default();
    for _ in 0..100 {
        assert!(c.try_now());
        c.record(true);
    }
}

#[test]
fn coalesce_stops_yielding_for_a_lone_client_but_probes() {
    let mut c = Coalesce::default();
    for _ in 0..MISSES_BEFORE_SKIP {
        assert!(c.try_now());
        c.record(false);
    }
    // Now skipping: only one batch in PROBE_EVERY yields.
    let yields = (0..PROBE_EVERY * 4)
        .filter(|_| {
            let y = c.try_now();
            if y {
                c.record(false);
            }
            y
        })
        .count();
    assert_eq!(yields, 4);
}

#[test]
fn coalesce_resumes_yielding_once_a_probe_finds_company() {
    let mut c = Coalesce::default();
    for _ in 0..MISSES_BEFORE_SKIP {
        c.try_now();
        c.record(false);
    }
    while !c.try_now() {}
    c.record(true);
    assert!((0..10).all(|_| c.try_now()));
}

/// A fake server answering `+PONG` to each `PING` one command late (it
/// holds the latest back until the next arrives, so its client always owes
/// one reply), and to none once `answering` is cleared.
async fn late_pong_server(answering: Arc<std::sync::atomic::AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut chunk = [0u8; 4096];
        // The connection's setup PING is answered at once.
        let mut setup = true;
        let mut held = 0;
        loop {
            let n = match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            held += chunk[..n].windows(4).filter(|w| w == b"PING").count();
            if !answering.load(Ordering::Relaxed) {
                continue;
            }
            let answer = if std::mem::take(&mut setup) {
                held
            } else {
                held - 1
            };
            held -= answer;
            if tcp.write_all(&b"+PONG\r\n".repeat(answer)).await.is_err() {
                return;
            }
        }
    });
    addr
}

/// A mux of one pipe to `addr`.
fn one_pipe(addr: String) -> Mux {
    let target = Arc::new(RedisTarget {
        addr,
        tls: None,
        username: None,
        password: None,
        connect_timeout: Duration::from_secs(5),
        limits: frame::Limits::default(),
        readonly: false,
    });
    let setup = Setup {
        version: Version::Resp2,
        db: 0,
    };
    Mux::new(target, setup, 1)
}

fn ping() -> Bytes {
    Bytes::from_static(b"*1\r\n$4\r\nPING\r\n")
}

fn now() -> u64 {
    load::stamp(std::time::Instant::now())
}

const STALL_MS: u64 = load::STALL.as_millis() as u64;

/// The pipe stamps its progress: one that always owes a reply, for longer
/// than [`load::STALL`], but keeps answering never looks stalled; one that
/// stops answering does.
#[tokio::test]
async fn a_pipe_looks_stalled_only_while_it_answers_nothing() {
    let answering = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mux = one_pipe(late_pong_server(answering.clone()).await);
    let pipe = &mux.loads.pipes[0];
    let mut owed = mux.send(0, ping());
    let until = std::time::Instant::now() + load::STALL * 3;
    while std::time::Instant::now() < until {
        let next = mux.send(0, ping());
        let reply = owed.await.expect("a reply").expect("PONG");
        assert_eq!(&reply[..], b"+PONG\r\n");
        assert!(pipe.unanswered.load(Ordering::Relaxed) > 0);
        assert!(
            !pipe.stalled(&mut { now }),
            "a pipe that answers looked stalled"
        );
        owed = next;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Now it answers nothing; the last command stays owed.
    answering.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Not stalled just short of STALL after its last progress (a clock
    // fixed there: a slow machine may oversleep any real margin).
    let last = pipe.progress.load(Ordering::Relaxed);
    assert!(!pipe.stalled(&mut || last + STALL_MS - 1), "stalled early");
    tokio::time::sleep(load::STALL).await;
    assert!(
        pipe.stalled(&mut { now }),
        "a silent pipe did not look stalled"
    );
    drop(owed);
}

/// A server that takes the connection but never answers the handshake:
/// the pipe owes what it was given from the moment it starts connecting,
/// so once that has lasted [`load::STALL`] it looks stalled (and batches
/// free to move go to another pipe), and not before.
#[tokio::test]
async fn a_pipe_stuck_connecting_looks_stalled() {
    let answering = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mux = one_pipe(late_pong_server(answering).await);
    let pipe = &mux.loads.pipes[0];
    assert!(!pipe.connecting.load(Ordering::Relaxed));
    // Past the process's first stamp, so an unstamped 0 cannot pass.
    let _ = now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let sent = now();
    let owed = mux.send(0, ping());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(pipe.connecting.load(Ordering::Relaxed));
    assert_eq!(pipe.unanswered.load(Ordering::Relaxed), 0);
    // The connect's start is its progress stamp; just short of STALL
    // after it (a fixed clock), the pipe is not stalled yet.
    let began = pipe.progress.load(Ordering::Relaxed);
    assert!(began >= sent, "the connect's start was not stamped");
    assert!(!pipe.stalled(&mut || began + STALL_MS - 1), "stalled early");
    tokio::time::sleep(load::STALL).await;
    assert!(
        pipe.stalled(&mut { now }),
        "a pipe stuck connecting did not look stalled"
    );
    drop(owed);
}

/// A connect that ends, here by failing, clears the mark.
#[tokio::test]
async fn a_failed_connect_is_no_longer_connecting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let mux = one_pipe(addr);
    let reply = mux.send(0, ping()).await.expect("an answer");
    assert!(reply.is_err(), "a refused connect answered {reply:?}");
    let pipe = &mux.loads.pipes[0];
    assert!(!pipe.connecting.load(Ordering::Relaxed));
    assert!(pipe.down.load(Ordering::Relaxed));
}
