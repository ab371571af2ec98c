//! Route → backend (HTTP): the app's side of a streamed request body. A
//! body that streams to the upstream during a try is read from the app as
//! the upstream takes it, so the try's time mixes the upstream's with the
//! app's. [`ClientBody`] keeps the app's share apart ([`Upload`]): how long
//! the try waited for the app to send more, so the try's timer can leave
//! that time out and the upstream is not blamed for a slow upload, and
//! how the body failed if it did (a bad chunk, the app gone, the app
//! quiet too long or past `request_body_timeout`), so the try's failure
//! is answered as the app's (400, 408) and never reported to outlier
//! detection.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::error::LocalError;
use super::idle::{BodyDeadline, IdleTimeout};
use crate::core::http::{Body, BoxError};

/// What the app's side of one streamed body cost so far, shared between
/// the body (polled by the upstream connection) and the retry loop.
#[derive(Debug, Default)]
pub struct Upload {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Waits for the app that have ended.
    waited: Duration,
    /// Since when the body has been waiting for the app, if it is now.
    since: Option<Instant>,
    /// The answer for the app once its body failed.
    fault: Option<LocalError>,
}

impl Upload {
    /// Time spent waiting for the app's bytes up to `now`, the wait going
    /// on now included.
    pub fn waited(&self, now: Instant) -> Duration {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.waited
            + s.since
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// The app's fault, if its body failed: a try that failed after it
    /// did is answered with this, and the upstream not blamed.
    pub fn fault(&self) -> Option<LocalError> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.fault.clone()
    }
}

/// What the app is told when its body failed with `error`.
fn fault(error: &BoxError) -> LocalError {
    if let Some(IdleTimeout(idle)) = error.downcast_ref() {
        return LocalError::RequestTimeout(*idle);
    }
    match error.downcast_ref::<BodyDeadline>() {
        Some(BodyDeadline(limit)) => LocalError::RequestBodyTimeout(*limit),
        None => LocalError::BadRequest(error.to_string()),
    }
}

/// A streamed request body that records its waits for the app in an
/// [`Upload`].
pub struct ClientBody {
    inner: Body,
    upload: Arc<Upload>,
}

impl ClientBody {
    /// `inner` (the app's body), and the record the retry loop reads.
    pub fn wrap(inner: Body) -> (Body, Arc<Upload>) {
        let upload = Arc::new(Upload::default());
        let body = ClientBody {
            inner,
            upload: upload.clone(),
        };
        (Body::new(body), upload)
    }
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let mut s = this
            .upload
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &polled {
            Poll::Pending => {
                if s.since.is_none() {
                    s.since = Some(Instant::now());
                }
            }
            Poll::Ready(ready) => {
                if let Some(since) = s.since.take() {
                    s.waited += since.elapsed();
                }
                if let Some(Err(error)) = ready {
                    s.fault.get_or_insert_with(|| fault(error));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
