//! Route → backend (HTTP): the request body across tries. A small body
//! (up to `max_retry_body`) is read whole so every try can send a copy; a
//! bigger or unknown-length one streams through once, and its request is
//! then retried only if it failed before the body was handed to a
//! connection.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;

use super::idle::{Deadline, Idle};
use super::upload::{ClientBody, Upload};
use crate::core::http::{Body, BoxError};

/// How long the app may take over a streamed body: each quiet spell
/// (`stream_idle_timeout`), and, when configured, all of it
/// (`request_body_timeout`: when it runs out, and the configured length).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub idle: Duration,
    pub deadline: Option<(tokio::time::Instant, Duration)>,
}

/// A request body as the retry loop holds it.
pub enum ReqBody {
    /// Kept whole: any number of tries.
    Buffered(Bytes),
    /// One try only, and only until [`ReqBody::for_try`] hands it out;
    /// with the record of its waits for the app.
    Streaming(Option<Body>, Arc<Upload>),
}

impl ReqBody {
    /// Reads up to `limit` bytes of `body`; the rest (if any) stays a
    /// stream behind what was read.
    /// What stays a stream is held to `limits`.
    pub async fn read(
        mut body: Incoming,
        limit: u64,
        limits: BodyLimits,
    ) -> Result<Self, hyper::Error> {
        if body.is_end_stream() {
            return Ok(ReqBody::Buffered(Bytes::new()));
        }
        if body.size_hint().lower() > limit {
            return Self::stream_from_first(body, limits).await;
        }
        let mut buf = BytesMut::new();
        let mut extra = VecDeque::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            match frame.into_data() {
                Ok(data) if (buf.len() + data.len()) as u64 <= limit && extra.is_empty() => {
                    buf.extend_from_slice(&data)
                }
                Ok(data) => extra.push_back(Frame::data(data)),
                // Trailers: rare on requests; kept by streaming.
                Err(frame) => extra.push_back(frame),
            }
            if !extra.is_empty() {
                let mut frames = VecDeque::from([Frame::data(buf.freeze())]);
                frames.extend(extra);
                let rest = Prefixed {
                    frames,
                    rest: Some(body),
                };
                return Ok(Self::streaming(BodyExt::boxed(rest), limits));
            }
        }
        Ok(ReqBody::Buffered(buf.freeze()))
    }

    /// The body streams without being kept (no retry will need it), once
    /// its first frame is in: a request takes no cluster slot while its
    /// app sends nothing (reading also answers `Expect: 100-continue`).
    pub async fn stream_from_first(
        mut body: Incoming,
        limits: BodyLimits,
    ) -> Result<Self, hyper::Error> {
        let Some(first) = body.frame().await.transpose()? else {
            return Ok(ReqBody::Buffered(Bytes::new()));
        };
        let rest = Prefixed {
            frames: VecDeque::from([first]),
            rest: Some(body),
        };
        Ok(Self::streaming(BodyExt::boxed(rest), limits))
    }

    /// The body streams without being read first (no retry will need it).
    pub fn stream(body: Incoming, limits: BodyLimits) -> Self {
        if body.is_end_stream() {
            return ReqBody::Buffered(Bytes::new());
        }
        Self::streaming(body.map_err(BoxError::from).boxed(), limits)
    }

    /// The app's body as it streams: cut when quiet too long or past its
    /// deadline, its waits for the app recorded.
    fn streaming(body: Body, limits: BodyLimits) -> Self {
        let mut body = Idle::wrap(body, limits.idle);
        if let Some((at, limit)) = limits.deadline {
            body = Deadline::wrap(body, at, limit);
        }
        let (body, upload) = ClientBody::wrap(body);
        ReqBody::Streaming(Some(body), upload)
    }

    /// What the app's side of a streamed body cost (`None` when buffered).
    pub fn upload(&self) -> Option<Arc<Upload>> {
        match self {
            ReqBody::Buffered(_) => None,
            ReqBody::Streaming(_, upload) => Some(upload.clone()),
        }
    }

    /// Whether a try that sent this body may be repeated.
    pub fn replayable(&self) -> bool {
        matches!(self, ReqBody::Buffered(_))
    }

    /// The body for the next try; `None` once a stream was handed out.
    pub fn for_try(&mut self) -> Option<Body> {
        match self {
            ReqBody::Buffered(b) if b.is_empty() => {
                Some(Empty::new().map_err(|never| match never {}).boxed())
            }
            ReqBody::Buffered(b) => {
                Some(Full::new(b.clone()).map_err(|never| match never {}).boxed())
            }
            ReqBody::Streaming(s, _) => s.take(),
        }
    }

    /// Puts back a stream that was handed out but never sent (hyper gave
    /// the request back).
    pub fn restore(&mut self, body: Body) {
        if let ReqBody::Streaming(s, _) = self {
            *s = Some(body);
        }
    }
}

/// Frames read ahead while deciding whether to buffer, then the rest.
struct Prefixed {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<Incoming>,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx).map_err(Into::into),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ahead: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        let rest = self
            .rest
            .as_ref()
            .map(|r| r.size_hint())
            .unwrap_or_default();
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + ahead);
        }
        hint.set_lower(rest.lower() + ahead);
        hint
    }
}
