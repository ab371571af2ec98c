//! Backend → respond (HTTP/1.1 fast path): how an upstream response's body
//! ends (length, chunks, close) and the body itself, read from the pooled
//! connection's socket as the app side polls it; the connection goes back
//! to the pool at the body's last byte.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use http_body::{Frame, SizeHint};

use super::{H1Error, RawConn, RawHead};
use crate::core::http::pool::{BoxError, Pool};

/// How the response body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes (the connection is not reused).
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

impl Framing {
    pub(super) fn of(head_method: bool, head: &RawHead) -> Result<Self, H1Error> {
        let status = head.status;
        if head_method
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::Empty);
        }
        let mut length = None;
        // The last coding (RFC 9112 §6.3); empty for a field naming none.
        let mut coding: Option<&[u8]> = None;
        let mut after_chunked = false;
        for (name, value) in head.fields() {
            if name.eq_ignore_ascii_case(b"transfer-encoding") {
                coding = Some(b"");
                for t in super::codings(value) {
                    if after_chunked {
                        // Not relayable: re-chunking would apply `chunked`
                        // twice.
                        return Err(H1Error::Invalid(
                            "transfer coding applied after chunked".into(),
                        ));
                    }
                    after_chunked = t.eq_ignore_ascii_case(b"chunked");
                    coding = Some(t);
                }
            } else if name.eq_ignore_ascii_case(b"content-length") {
                let n = super::parse_length(value)
                    .ok_or_else(|| H1Error::Invalid("content-length".into()))?;
                if length.is_some_and(|l| l != n) {
                    return Err(H1Error::Invalid("conflicting content-length".into()));
                }
                length = Some(n);
            }
        }
        match coding {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => {
                return Ok(Framing::Chunked(Chunk::Size))
            }
            // Encoded but not chunked: the body ends when the connection
            // does, whatever a Content-Length says.
            Some(_) => return Ok(Framing::Close),
            None => {}
        }
        Ok(match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        })
    }
}

/// The response body, read straight from the upstream socket.
pub struct RawBody {
    pub(super) conn: Option<RawConn>,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
    pub(super) addr: SocketAddr,
    pub(super) pool: Weak<Pool>,
}

impl RawBody {
    /// Whether the body's end is not given by a length (chunked upstream,
    /// or one that closes): a relay to the app must frame it itself.
    pub fn needs_framing(&self) -> bool {
        matches!(self.framing, Framing::Chunked(_) | Framing::Close)
    }

    /// The body is complete: the connection goes back to the pool if it
    /// may be reused.
    pub(super) fn finish(&mut self) {
        let conn = self.conn.take();
        if let (Some(conn), true, Some(pool)) = (conn, self.keep_alive, self.pool.upgrade()) {
            if conn.buf.is_empty() {
                pool.put_raw(self.addr, conn);
            }
        }
    }

    /// The next piece of body, or `None` at its end; reads as needed.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, BoxError>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            match step(&mut self.framing, &mut conn.buf)? {
                Step::Data(d) => return Poll::Ready(Ok(Some(d))),
                Step::Done => {
                    self.finish();
                    return Poll::Ready(Ok(None));
                }
                Step::More => {}
            }
            let n = ready!(conn.poll_fill(cx))?;
            if n == 0 {
                self.conn = None;
                return Poll::Ready(match self.framing {
                    Framing::Close => Ok(None),
                    _ => Err(H1Error::Closed.into()),
                });
            }
        }
    }
}

pub(super) enum Step {
    Data(Bytes),
    Done,
    More,
}

/// Takes what the framing allows from `buf`.
pub(super) fn step(framing: &mut Framing, buf: &mut BytesMut) -> Result<Step, H1Error> {
    match framing {
        Framing::Empty => Ok(Step::Done),
        Framing::Length(0) => Ok(Step::Done),
        Framing::Length(left) => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            let n = (*left).min(buf.len() as u64) as usize;
            *left -= n as u64;
            Ok(Step::Data(buf.split_to(n).freeze()))
        }
        Framing::Close => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            Ok(Step::Data(buf.split().freeze()))
        }
        Framing::Chunked(state) => chunk_step(state, buf),
    }
}

fn chunk_step(state: &mut Chunk, buf: &mut BytesMut) -> Result<Step, H1Error> {
    loop {
        match *state {
            Chunk::Size => {
                let Some(end) = find_crlf(buf) else {
                    return more_or_err(buf);
                };
                let line = &buf[..end];
                let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                let text = std::str::from_utf8(hex).unwrap_or("").trim();
                let size = u64::from_str_radix(text, 16)
                    .map_err(|_| H1Error::Invalid("chunk size".into()))?;
                buf.advance(end + 2);
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = left.min(buf.len() as u64) as usize;
                *state = if n as u64 == left {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - n as u64)
                };
                return Ok(Step::Data(buf.split_to(n).freeze()));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(H1Error::Invalid("chunk end".into()));
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            // Trailer fields are dropped; an empty line ends the body.
            Chunk::Trailers => {
                let Some(end) = find_crlf(buf) else {
                    return more_or_err(buf);
                };
                buf.advance(end + 2);
                if end == 0 {
                    return Ok(Step::Done);
                }
            }
        }
    }
}

/// A line longer than any sane chunk header or trailer is an error.
fn more_or_err(buf: &BytesMut) -> Result<Step, H1Error> {
    if buf.len() > 8 << 10 {
        return Err(H1Error::Invalid("chunk line too long".into()));
    }
    Ok(Step::More)
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl http_body::Body for RawBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match ready!(self.poll_next(cx)) {
            Ok(Some(data)) => {
                // Return the connection as soon as the last byte is out,
                // not on the next poll (the app side may never make it).
                if matches!(self.framing, Framing::Length(0)) {
                    self.finish();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => Poll::Ready(None),
            Err(e) => {
                self.conn = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.framing, Framing::Empty | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
