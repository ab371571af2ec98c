use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};

use super::*;

/// A body that yields a byte every `every`, forever (an app trickling).
fn trickle(every: Duration) -> Body {
    let frames = futures_util::stream::unfold((), move |()| async move {
        tokio::time::sleep(every).await;
        Some((Ok(Frame::data(Bytes::from_static(b"x"))), ()))
    });
    Body::new(StreamBody::new(frames))
}

/// Frames until the body ends or fails; how many, and the error.
async fn drain(mut body: Body) -> (usize, Option<BoxError>) {
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(_) => n += 1,
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

#[tokio::test(start_paused = true)]
async fn a_trickle_is_cut_at_its_deadline_though_never_idle() {
    let limit = Duration::from_secs(1);
    let start = Instant::now();
    let body = Idle::wrap(trickle(Duration::from_millis(100)), Duration::from_secs(5));
    let body = Deadline::wrap(body, start + limit, limit);
    let (frames, error) = drain(body).await;
    let error = error.expect("cut");
    assert!(error.downcast_ref::<BodyDeadline>().is_some(), "{error}");
    assert_eq!(start.elapsed(), limit);
    assert!((9..=10).contains(&frames), "{frames}");
}

#[tokio::test(start_paused = true)]
async fn frames_always_ready_are_cut_too_and_a_body_in_time_is_whole() {
    let limit = Duration::from_secs(1);
    // Always a frame ready: the deadline still holds once it has passed.
    let frames = futures_util::stream::repeat_with(|| Ok(Frame::data(Bytes::from_static(b"x"))));
    let mut body = Deadline::wrap(
        Body::new(StreamBody::new(frames)),
        Instant::now() + limit,
        limit,
    );
    assert!(body.frame().await.is_some_and(|f| f.is_ok()));
    tokio::time::advance(limit).await;
    let late = body.frame().await.expect("a frame");
    assert!(late.is_err_and(|e| e.downcast_ref::<BodyDeadline>().is_some()));

    let whole = Full::new(Bytes::from_static(b"ok"))
        .map_err(|never| match never {})
        .boxed();
    let body = Deadline::wrap(whole, Instant::now() + limit, limit);
    assert_eq!(body.collect().await.unwrap().to_bytes(), "ok");
}
