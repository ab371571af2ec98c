//! Backend → respond (HTTP): the upstream's response body as the pool
//! hands it out, which gives its HTTP/1.1 connection back to the pool once
//! read to its end.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1;

use super::{Body, BoxError, Pool};

/// The upstream's response body; gives its HTTP/1.1 connection back at the
/// end of the stream (dropped early, the connection closes instead).
pub(super) struct PooledBody {
    inner: Incoming,
    back: Option<Return>,
}

pub(super) struct Return {
    pub(super) tx: http1::SendRequest<Body>,
    pub(super) addr: SocketAddr,
    pub(super) pool: Weak<Pool>,
}

impl Return {
    fn give_back(self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put_back(self.addr, self.tx);
        }
    }
}

impl PooledBody {
    pub(super) fn new(inner: Incoming, back: Option<Return>) -> Self {
        let mut body = PooledBody { inner, back };
        if body.inner.is_end_stream() {
            body.finish();
        }
        body
    }

    fn finish(&mut self) {
        if let Some(back) = self.back.take() {
            back.give_back();
        }
    }

    pub(super) fn boxed(self) -> Body {
        BoxBody::new(self)
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
