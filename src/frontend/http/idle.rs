//! Backend → respond (HTTP): a body that goes quiet for too long ends with
//! an error, so a stalled upstream (or app) cannot hold a connection, a
//! request slot and a pooled socket forever. The timer only exists once the
//! body first has to wait: bodies that are already there cost nothing.
//! [`Deadline`] bounds a request body as a whole (`request_body_timeout`),
//! for an app that trickles and so is never quiet for long.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::core::http::{Body, BoxError};

/// Why a body was cut.
#[derive(Debug, thiserror::Error)]
#[error("no body data for {0:?} (http.stream_idle_timeout)")]
pub struct IdleTimeout(pub Duration);

/// `inner`, failing once no frame came for `timeout`.
pub struct Idle {
    inner: Body,
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Idle {
    pub fn wrap(inner: Body, timeout: Duration) -> Body {
        if inner.is_end_stream() {
            return inner;
        }
        Body::new(Idle {
            inner,
            timeout,
            timer: None,
        })
    }
}

impl http_body::Body for Idle {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(timer) = &mut this.timer {
                    timer.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(IdleTimeout(timeout).into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body for an HTTP/2 app, which can stop reading without
/// going quiet: hyper polls the body only while the stream has send
/// window, so an app that grants none (or stops reading) would hold the
/// upstream connection and its pool permit for as long as it keeps its
/// connection open, with [`Idle`]'s timer never polled. A watchdog task
/// drops the upstream side once no frame went out for between one and
/// two `timeout`s; the stream then ends with an error when polled again.
pub struct Watched {
    shared: Arc<Shared>,
    timeout: Duration,
    /// Dropped with the body: ends the watchdog at once.
    _done: oneshot::Sender<()>,
}

struct Shared {
    body: Mutex<Option<Body>>,
    /// Frames handed out: the watchdog's sign of progress (counted, so
    /// no clock is read per frame).
    frames: AtomicU64,
}

impl Watched {
    pub fn wrap(inner: Body, timeout: Duration) -> Body {
        if inner.is_end_stream() {
            return inner;
        }
        let shared = Arc::new(Shared {
            body: Mutex::new(Some(inner)),
            frames: AtomicU64::new(0),
        });
        let (done, mut gone) = oneshot::channel::<()>();
        let watched = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                tokio::select! {
                    _ = &mut gone => return,
                    () = tokio::time::sleep(timeout) => {}
                }
                let Some(shared) = watched.upgrade() else {
                    return;
                };
                let frames = shared.frames.load(Ordering::Relaxed);
                if seen == Some(frames) {
                    let stalled = shared.body.lock().ok().and_then(|mut b| b.take());
                    drop(stalled);
                    tracing::debug!(
                        ?timeout,
                        "app stopped taking the response; upstream side dropped"
                    );
                    return;
                }
                seen = Some(frames);
            }
        });
        Body::new(Watched {
            shared,
            timeout,
            _done: done,
        })
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Ok(mut body) = self.shared.body.lock() else {
            return Poll::Ready(Some(Err(IdleTimeout(self.timeout).into())));
        };
        let Some(inner) = body.as_mut() else {
            return Poll::Ready(Some(Err(IdleTimeout(self.timeout).into())));
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.shared.frames.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let body = self.shared.body.lock();
        body.is_ok_and(|b| b.as_ref().is_some_and(|b| b.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        let body = self.shared.body.lock();
        body.ok()
            .and_then(|b| b.as_ref().map(|b| b.size_hint()))
            .unwrap_or_default()
    }
}

/// Why a request body was cut: not complete by its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not complete within {0:?} (http.request_body_timeout)")]
pub struct BodyDeadline(pub Duration);

/// `inner`, failing if it has not ended by a deadline.
pub struct Deadline {
    inner: Body,
    /// The configured limit, for the error.
    limit: Duration,
    timer: Pin<Box<Sleep>>,
}

impl Deadline {
    /// `inner`, to end by `at` (`limit` after its request's head).
    pub fn wrap(inner: Body, at: Instant, limit: Duration) -> Body {
        if inner.is_end_stream() {
            return inner;
        }
        Body::new(Deadline {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep_until(at)),
        })
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // Its end is in time whenever it comes.
        if let Poll::Ready(None) = polled {
            return polled;
        }
        // A frame, or a wait: either way the timer is asked (a body whose
        // frames are always ready must not outrun it either).
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyDeadline(this.limit).into()))),
            Poll::Pending => polled,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
