//! Parse: splits a RESP2 or RESP3 byte stream into frames without copying.
//!
//! Sits at the parse step of accept → parse → route → backend → respond, for
//! both directions: client requests and server replies. Each decoded frame
//! comes with the exact bytes it occupied, split off the read buffer as
//! [`Bytes`], so the proxy can forward a reply (or a request it did not need
//! to rewrite) unchanged, at no cost.
//!
//! Decoding is two passes over a complete frame. A small structural scan
//! ([`frame_len`]) walks the headers only: it decides whether the frame is
//! complete, rejects sizes over the limit *from the header*, before the body
//! is buffered, and bounds nesting depth so that a hostile peer cannot blow
//! the stack. Only a complete frame within limits is handed to the
//! `redis-protocol` crate, which validates the contents and yields ranges
//! that become zero-copy [`Bytes`] slices in our own [`Frame`].
//!
//! A frame arriving over several reads is rescanned from its start on each
//! attempt; the scan reads headers only and skips string bodies. That suits
//! server replies; client requests, which an untrusted peer can trickle in,
//! go through `command::next_command_from`, which resumes where it stopped.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::RangeFrame as Range2;
use redis_protocol::resp3::types::{RangeFrame as Range3, VerbatimStringFormat};

pub mod encode;

/// Redis's own `proto-max-bulk-len` default: 512 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 512 << 20;

/// Redis replies nest a few levels (COMMAND DOCS is the deepest at about
/// ten); 64 leaves room while keeping recursion far from the stack limit.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Length headers are decimal integers; nothing legitimate is longer.
const MAX_HEADER_LINE: usize = 32;

/// The RESP version spoken on a connection, chosen by `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Version {
    #[default]
    Resp2,
    Resp3,
}

/// Bounds applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole frame (headers included), and so largest bulk string.
    pub max_frame_size: usize,
    /// Deepest nesting of aggregates (arrays, maps, sets, pushes, attributes).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of at least {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame nesting exceeds the limit of {max} levels")]
    TooDeep { max: usize },
    #[error("invalid RESP type byte {0:#04x}")]
    BadType(u8),
    #[error("RESP3 type '{}' on a RESP2 connection", char::from(*.0))]
    NotResp2(u8),
    #[error("invalid length header")]
    BadLength,
    #[error("streamed RESP3 frames ('?' lengths) are not supported")]
    Streamed,
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// A decoded RESP2/RESP3 value. Strings are zero-copy slices of the frame's
/// raw bytes. RESP3 attributes (`|`) are consumed but not represented: they
/// stay in the raw bytes, which is what gets forwarded.
///
/// `Debug` shows contents; log [`crate::command::Command`] rather than a
/// request frame, since its `Debug` redacts credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`
    Simple(Bytes),
    /// `-ERR message` (RESP2 error, RESP3 simple error).
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`
    Bulk(Bytes),
    /// `*n`
    Array(Vec<Frame>),
    /// RESP2 `$-1` / `*-1`, RESP3 `_`.
    Null,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,3.14`.
    Double(f64),
    /// RESP3 `(1234…`, kept as its decimal text.
    BigNumber(Bytes),
    /// RESP3 `!n` blob error.
    BulkError(Bytes),
    /// RESP3 `=n\r\ntxt:…`.
    Verbatim { format: [u8; 3], text: Bytes },
    /// RESP3 `%n`, in wire order.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~n`, in wire order.
    Set(Vec<Frame>),
    /// RESP3 `>n` out-of-band data (pub/sub messages, invalidations).
    Push(Vec<Frame>),
}

impl Frame {
    /// The `+OK` reply.
    pub fn ok() -> Self {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// An error reply; `message` includes its code, e.g. `"ERR unknown"`.
    pub fn error(message: impl Into<Bytes>) -> Self {
        Frame::Error(message.into())
    }

    /// True for both error kinds.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_) | Frame::BulkError(_))
    }

    /// The bytes of a simple or bulk string (or verbatim text).
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::Simple(b) | Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => Some(b),
            _ => None,
        }
    }
}

/// One frame split off a read buffer, with the bytes it occupied.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub frame: Frame,
    pub raw: Bytes,
}

/// Splits one complete frame off the front of `buf` and decodes it. Returns
/// `None` when more bytes are needed; `buf` is then untouched.
pub fn decode(
    buf: &mut BytesMut,
    version: Version,
    limits: &Limits,
) -> Result<Option<Decoded>, FrameError> {
    let Some(len) = frame_len(buf, version, limits)? else {
        return Ok(None);
    };
    let raw = buf.split_to(len).freeze();
    let frame = match version {
        Version::Resp2 => {
            let parsed = redis_protocol::resp2::decode::decode_range(&raw);
            let range = checked(parsed, len)?;
            from_range2(range, &raw)
        }
        Version::Resp3 => {
            let parsed = redis_protocol::resp3::decode::complete::decode_range(&raw);
            let range = checked(parsed, len)?;
            from_range3(range, &raw)?
        }
    };
    Ok(Some(Decoded { frame, raw }))
}

/// Splits one complete frame's bytes off `buf` after the structural scan
/// only, without validating scalar contents: for forwarding replies whose
/// value the proxy does not need.
pub fn split_raw(
    buf: &mut BytesMut,
    version: Version,
    limits: &Limits,
) -> Result<Option<Bytes>, FrameError> {
    Ok(frame_len(buf, version, limits)?.map(|len| buf.split_to(len).freeze()))
}

/// The byte length of the complete frame at the front of `buf`, or `None`
/// if it is not complete yet. Checks size and depth limits from headers.
pub fn frame_len(
    buf: &[u8],
    version: Version,
    limits: &Limits,
) -> Result<Option<usize>, FrameError> {
    Scanner {
        buf,
        version,
        limits,
    }
    .frame(0, 0)
}

fn checked<T>(
    parsed: Result<Option<(T, usize)>, redis_protocol::error::RedisProtocolError>,
    expected: usize,
) -> Result<T, FrameError> {
    match parsed {
        Ok(Some((range, used))) if used == expected => Ok(range),
        Ok(Some((_, used))) => Err(FrameError::Malformed(format!(
            "frame boundary mismatch ({used} of {expected} bytes)"
        ))),
        Ok(None) => Err(FrameError::Malformed("frame incomplete after scan".into())),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

/// Walks frame headers to find where a frame ends.
struct Scanner<'a> {
    buf: &'a [u8],
    version: Version,
    limits: &'a Limits,
}

impl Scanner<'_> {
    /// End offset of the frame starting at `pos`, `None` if incomplete.
    fn frame(&self, pos: usize, depth: usize) -> Result<Option<usize>, FrameError> {
        if depth > self.limits.max_depth {
            return Err(FrameError::TooDeep {
                max: self.limits.max_depth,
            });
        }
        let Some(&kind) = self.buf.get(pos) else {
            return Ok(None);
        };
        let resp3 = self.version == Version::Resp3;
        match kind {
            b'+' | b'-' | b':' => self.line(pos + 1),
            b'$' => self.blob(pos + 1, true),
            b'*' => self.aggregate(pos + 1, 1, depth, true),
            b'_' | b',' | b'#' | b'(' | b'!' | b'=' | b'~' | b'>' | b'%' | b'|' if !resp3 => {
                Err(FrameError::NotResp2(kind))
            }
            b'_' | b',' | b'#' | b'(' => self.line(pos + 1),
            b'!' | b'=' => self.blob(pos + 1, false),
            b'~' | b'>' => self.aggregate(pos + 1, 1, depth, false),
            b'%' => self.aggregate(pos + 1, 2, depth, false),
            b'|' => match self.aggregate(pos + 1, 2, depth, false)? {
                // An attribute annotates the frame that follows it.
                Some(end) => self.frame(end, depth + 1),
                None => Ok(None),
            },
            other => Err(FrameError::BadType(other)),
        }
    }

    /// End of a CRLF-terminated line starting at `start`.
    fn line(&self, start: usize) -> Result<Option<usize>, FrameError> {
        let max = self.limits.max_frame_size;
        let window = &self.buf[start.min(self.buf.len())..];
        match find_crlf(window) {
            Some(i) => self.within(start + i + 2).map(Some),
            None if self.buf.len() > max => Err(FrameError::TooLarge {
                len: self.buf.len(),
                max,
            }),
            None => Ok(None),
        }
    }

    /// A signed decimal header at `start`: its value and the offset after it.
    fn header(&self, start: usize) -> Result<Option<(i64, usize)>, FrameError> {
        let window = &self.buf[start.min(self.buf.len())..];
        let Some(i) = find_crlf(&window[..window.len().min(MAX_HEADER_LINE)]) else {
            if window.len() >= MAX_HEADER_LINE {
                return Err(FrameError::BadLength);
            }
            return Ok(None);
        };
        let digits = &window[..i];
        if digits == b"?" {
            return Err(FrameError::Streamed);
        }
        let value = parse_i64(digits).ok_or(FrameError::BadLength)?;
        Ok(Some((value, self.within(start + i + 2)?)))
    }

    /// A length-prefixed string (`$`, `!`, `=`) whose header starts at `start`.
    fn blob(&self, start: usize, nullable: bool) -> Result<Option<usize>, FrameError> {
        let Some((len, body)) = self.header(start)? else {
            return Ok(None);
        };
        if len == -1 && nullable && self.version == Version::Resp2 {
            return Ok(Some(body));
        }
        let len = usize::try_from(len).map_err(|_| FrameError::BadLength)?;
        let max = self.limits.max_frame_size;
        if len > max {
            return Err(FrameError::TooLarge { len, max });
        }
        let end = self.within(body + len + 2)?;
        if self.buf.len() < end {
            return Ok(None);
        }
        if &self.buf[end - 2..end] != b"\r\n" {
            return Err(FrameError::Malformed(
                "string not terminated by CRLF".into(),
            ));
        }
        Ok(Some(end))
    }

    /// An aggregate of `count × per` frames whose header starts at `start`.
    fn aggregate(
        &self,
        start: usize,
        per: usize,
        depth: usize,
        nullable: bool,
    ) -> Result<Option<usize>, FrameError> {
        let Some((count, mut pos)) = self.header(start)? else {
            return Ok(None);
        };
        if count == -1 && nullable && self.version == Version::Resp2 {
            return Ok(Some(pos));
        }
        let count = usize::try_from(count).map_err(|_| FrameError::BadLength)?;
        let elements = count.checked_mul(per).ok_or(FrameError::BadLength)?;
        // Every element takes at least 3 bytes (`_\r\n`): refuse counts that
        // could never fit before walking them.
        let floor = elements.saturating_mul(3).saturating_add(pos);
        self.within(floor)?;
        for _ in 0..elements {
            match self.frame(pos, depth + 1)? {
                Some(end) => pos = end,
                None => return Ok(None),
            }
        }
        Ok(Some(pos))
    }

    /// `offset` if a frame reaching it stays within the size limit.
    fn within(&self, offset: usize) -> Result<usize, FrameError> {
        let max = self.limits.max_frame_size;
        if offset > max {
            return Err(FrameError::TooLarge { len: offset, max });
        }
        Ok(offset)
    }
}

fn find_crlf(window: &[u8]) -> Option<usize> {
    window.windows(2).position(|w| w == b"\r\n")
}

/// A decimal integer as Redis's `string2ll` reads it: optional `-`, then
/// digits, no `+`, no leading zeros, no `-0`.
pub(crate) fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || negative) {
        return None;
    }
    let magnitude = digits.iter().try_fold(0i64, |acc, d| {
        acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })?;
    Some(if negative { -magnitude } else { magnitude })
}

fn slice(raw: &Bytes, (start, end): (usize, usize)) -> Bytes {
    raw.slice(start..end)
}

fn from_range2(range: Range2, raw: &Bytes) -> Frame {
    match range {
        Range2::SimpleString(r) => Frame::Simple(slice(raw, r)),
        Range2::Error(r) => Frame::Error(slice(raw, r)),
        Range2::Integer(i) => Frame::Integer(i),
        Range2::BulkString(r) => Frame::Bulk(slice(raw, r)),
        Range2::Array(items) => {
            Frame::Array(items.into_iter().map(|f| from_range2(f, raw)).collect())
        }
        Range2::Null => Frame::Null,
    }
}

fn from_range3(range: Range3, raw: &Bytes) -> Result<Frame, FrameError> {
    let list = |items: Vec<Range3>| -> Result<Vec<Frame>, FrameError> {
        items.into_iter().map(|f| from_range3(f, raw)).collect()
    };
    Ok(match range {
        Range3::BlobString { data, .. } => Frame::Bulk(slice(raw, data)),
        Range3::BlobError { data, .. } => Frame::BulkError(slice(raw, data)),
        Range3::SimpleString { data, .. } => Frame::Simple(slice(raw, data)),
        Range3::SimpleError { data, .. } => Frame::Error(slice(raw, data)),
        Range3::Boolean { data, .. } => Frame::Boolean(data),
        Range3::Null => Frame::Null,
        Range3::Number { data, .. } => Frame::Integer(data),
        Range3::Double { data, .. } => Frame::Double(data),
        Range3::BigNumber { data, .. } => Frame::BigNumber(slice(raw, data)),
        Range3::VerbatimString { data, format, .. } => Frame::Verbatim {
            format: match format {
                VerbatimStringFormat::Text => *b"txt",
                VerbatimStringFormat::Markdown => *b"mkd",
            },
            text: slice(raw, data),
        },
        Range3::Array { data, .. } => Frame::Array(list(data)?),
        Range3::Push { data, .. } => Frame::Push(list(data)?),
        Range3::Set { data, .. } => Frame::Set(list(data.into_iter().collect())?),
        // redis-protocol fills its map from the last pair backwards.
        Range3::Map { data, .. } => Frame::Map(
            data.into_iter()
                .rev()
                .map(|(k, v)| Ok((from_range3(k, raw)?, from_range3(v, raw)?)))
                .collect::<Result<_, FrameError>>()?,
        ),
        Range3::Hello { .. } | Range3::ChunkedString(_) => {
            return Err(FrameError::Malformed(
                "unexpected HELLO or chunk frame".into(),
            ))
        }
    })
}

#[cfg(test)]
mod tests;
