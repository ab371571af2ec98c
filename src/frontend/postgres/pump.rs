//! Route → backend (Postgres): writing a client's requests to its server
//! without ever waiting on a server that waits on us.
//!
//! A client may pipeline more than the sockets on the way hold. A server
//! that is busy stops reading; once it answers, it blocks writing results
//! nobody reads, and a proxy blocked writing the rest of the requests to
//! it would wait forever (the pipeline deadlock libpq avoids with
//! non-blocking IO). So while requests go out, the server's replies are
//! read and relayed to the client as they come.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::AsyncWrite;

use super::error::FrontendError;
use super::session::Session;
use crate::core::pg::ServerConn;

/// Buffers that grew past this while serving one large message are
/// replaced once empty, so one 100 MB COPY row does not pin 100 MB.
pub(super) const BUF_KEEP: usize = 1 << 20;

/// What a step of [`pump`] did first.
enum Step {
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
}

impl Session {
    /// Writes `out` to the attached server, relaying whatever the server
    /// answers meanwhile. Stops early when that server is lost (its loss
    /// is handled: the rest of `out` was for it alone). True when replies
    /// were relayed.
    pub(super) async fn write_server(&mut self, out: &[u8]) -> Result<bool, FrontendError> {
        let Some(id) = self.server.as_ref().map(|s| s.id) else {
            return Ok(false);
        };
        let (mut written, mut relayed) = (0, false);
        while written < out.len() {
            // A server lost meanwhile may have been replaced (a read
            // retried elsewhere): nothing of `out` is for the new one.
            let Some(conn) = self.server.as_mut().filter(|s| s.id == id) else {
                break;
            };
            match pump(conn, &out[written..]).await {
                Step::Wrote(Ok(n)) if n > 0 => written += n,
                Step::Read(Ok(n)) if n > 0 => {
                    relayed = true;
                    self.on_server_bytes().await?;
                    self.flush_client().await?;
                }
                Step::Wrote(Ok(_)) | Step::Read(Ok(_)) => {
                    self.server_lost("server closed the connection").await?;
                    break;
                }
                Step::Wrote(Err(e)) | Step::Read(Err(e)) => {
                    self.server_lost(&e.to_string()).await?;
                    break;
                }
            }
        }
        Ok(relayed)
    }
}

/// Writes some of `out`, or else reads what the server sent into its read
/// buffer, whichever can go first.
fn pump<'a>(conn: &'a mut ServerConn, out: &'a [u8]) -> impl Future<Output = Step> + 'a {
    let (stream, rbuf) = (&mut conn.stream, &mut conn.rbuf);
    if rbuf.capacity() - rbuf.len() < 4096 {
        rbuf.reserve(16 * 1024);
    }
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(r) = Pin::new(&mut *stream).poll_write(cx, out) {
            return Poll::Ready(Step::Wrote(r));
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, rbuf).map(Step::Read)
    })
}

/// After the complete messages in `buf` were consumed: an empty buffer
/// that grew large is let go, and a large message arriving in parts gets
/// room for all of it at once.
pub(super) fn settle(buf: &mut BytesMut, max: usize) {
    if buf.is_empty() {
        shrink(buf);
    } else if let Ok(Some(total)) = attache_postgres_protocol::frame::peek_len(buf, max) {
        buf.reserve(total.saturating_sub(buf.len()));
    }
}

pub(super) fn shrink(buf: &mut BytesMut) {
    if buf.capacity() > BUF_KEEP {
        *buf = BytesMut::with_capacity(8 * 1024);
    }
}

#[cfg(test)]
mod tests;
