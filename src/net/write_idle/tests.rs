use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const TIMEOUT: Duration = Duration::from_millis(500);

#[tokio::test(start_paused = true)]
async fn a_peer_that_reads_nothing_fails_the_write_after_the_timeout() {
    let (near, _far) = tokio::io::duplex(1024);
    let mut s = WriteIdle::new(near, TIMEOUT);
    let start = Instant::now();
    // Bounded, so a wrapper that never times out fails instead of hanging.
    let err = tokio::time::timeout(TIMEOUT * 4, s.write_all(&[7u8; 4096]))
        .await
        .expect("the write gave up within the timeout")
        .expect_err("stalled");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("stream_idle_timeout"), "{err}");
    assert!(start.elapsed() >= TIMEOUT, "{:?}", start.elapsed());
    assert!(start.elapsed() < TIMEOUT * 2, "{:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_that_keeps_taking_bytes_is_never_cut() {
    let (near, mut far) = tokio::io::duplex(1024);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            // Slower than a write can wait in total, faster than the timeout.
            tokio::time::sleep(TIMEOUT * 3 / 4).await;
            match far.read(&mut chunk).await.expect("read") {
                0 => return got,
                n => got.extend_from_slice(&chunk[..n]),
            }
        }
    });
    let mut s = WriteIdle::new(near, TIMEOUT);
    let data: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
    s.write_all(&data)
        .await
        .expect("every wait is shorter than the timeout");
    s.shutdown().await.expect("shutdown");
    drop(s);
    assert_eq!(reader.await.expect("reader"), data);
}

#[tokio::test(start_paused = true)]
async fn writes_taken_at_once_make_no_timer() {
    let (near, mut far) = tokio::io::duplex(1 << 16);
    let mut s = WriteIdle::new(near, TIMEOUT);
    for _ in 0..10 {
        s.write_all(b"hello").await.expect("write");
    }
    assert!(s.timer.is_none());
    let mut got = [0u8; 50];
    far.read_exact(&mut got).await.expect("read");
    assert_eq!(&got[..5], b"hello");
}

#[tokio::test(start_paused = true)]
async fn a_new_timeout_applies_to_the_next_wait_and_reads_pass_through() {
    let (near, mut far) = tokio::io::duplex(16);
    let mut s = WriteIdle::new(near, TIMEOUT);
    far.write_all(b"ping").await.expect("write");
    let mut got = [0u8; 4];
    s.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"ping");
    s.set_timeout(TIMEOUT * 4);
    let start = Instant::now();
    let err = s.write_all(&[1u8; 64]).await.expect_err("stalled");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(start.elapsed() >= TIMEOUT * 4, "{:?}", start.elapsed());
}
