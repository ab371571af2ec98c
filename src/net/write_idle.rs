//! Net → respond: a stream whose writes fail once the peer has taken no
//! bytes for a while. An app that stops reading its responses would
//! otherwise hold the upstream connection, the request slot and the body
//! behind them for ever (`http.stream_idle_timeout` covers both
//! directions, as Envoy's does). The timer only exists once a write has
//! had to wait: a write the socket takes at once costs one store.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
#[error("the peer took no bytes for {0:?} (http.stream_idle_timeout)")]
pub struct WriteStalled(pub Duration);

/// `inner`, whose writes fail with [`WriteStalled`] (as `TimedOut`) once
/// one has waited `timeout` without the peer taking a byte.
///
/// The wait is timed from a write's first `Pending` to its next `Ready`,
/// so a caller must retry a pending write until it completes (hyper,
/// `write_all` and `copy_bidirectional` all do); a write given up while
/// pending leaves its deadline to the next one that waits.
#[derive(Debug)]
pub struct WriteIdle<S> {
    inner: S,
    timeout: Duration,
    /// Kept between waits, so a connection allocates it at most once.
    timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting, and `timer` runs from its first `Pending`.
    waiting: bool,
}

impl<S> WriteIdle<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            timer: None,
            waiting: false,
        }
    }

    /// Applies from the next write that has to wait (a reload's new
    /// timeout, taken per request).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Passes a finished write through; a waiting one starts (or checks)
    /// the timer, whose wake-up comes back here through the caller.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.waiting = false;
            return r;
        }
        if !self.waiting {
            self.waiting = true;
            let now = Instant::now();
            // A timeout too large to add is no timeout (as tokio's own).
            let deadline = now
                .checked_add(self.timeout)
                .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match self.timer.as_mut().map(|t| t.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                self.waiting = false;
                let stalled = WriteStalled(self.timeout);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, stalled)))
            }
            _ => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteIdle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteIdle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Not timed: a socket's flush has nothing to wait for, and counting
    /// its `Ready` as progress would restart a waiting write's deadline.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
