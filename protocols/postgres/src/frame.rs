//! Parse: splits a byte stream into PostgreSQL messages without copying.
//!
//! Every message after startup is `tag:u8, len:i32 (including itself), body`.
//! The startup packet has no tag. Both are split off the front of a read
//! buffer as `BytesMut` views, so forwarding a message costs no parse and no
//! allocation. The size limit is checked from the header alone, before the
//! body is buffered, so a client cannot make us grow a buffer past it.

use bytes::{Buf, BytesMut};

/// PostgreSQL's own ceiling for one message is 1 GiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 256 << 20;

/// Startup packets are small; PostgreSQL itself rejects ones over 10000 bytes.
pub const MAX_STARTUP_PACKET: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("invalid message length {0}")]
    BadLength(i32),
}

/// One complete tagged message: the whole frame (tag and length included),
/// so it can be forwarded as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tag: u8,
    pub frame: BytesMut,
}

impl Message {
    /// The body after the 5-byte header.
    pub fn body(&self) -> &[u8] {
        &self.frame[5..]
    }
}

impl Message {
    /// A borrowed view of this message.
    pub fn as_ref(&self) -> MessageRef<'_> {
        MessageRef {
            tag: self.tag,
            frame: &self.frame,
        }
    }
}

impl From<MessageRef<'_>> for Message {
    /// An owned copy, for a message that must outlive its read buffer.
    fn from(m: MessageRef<'_>) -> Self {
        Message {
            tag: m.tag,
            frame: BytesMut::from(m.frame),
        }
    }
}

/// A complete tagged message still inside the read buffer: what a relay
/// that copies the frame onward needs, without splitting it off (no
/// reference count taken and dropped per message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    pub tag: u8,
    pub frame: &'a [u8],
}

impl MessageRef<'_> {
    /// The body after the 5-byte header.
    pub fn body(&self) -> &[u8] {
        &self.frame[5..]
    }
}

/// The complete tagged message at the front of `buf`, left in place, or
/// `None` when more bytes are needed. The caller advances past
/// `frame.len()` bytes once done with it.
pub fn peek_message(buf: &[u8], max: usize) -> Result<Option<MessageRef<'_>>, FrameError> {
    let Some(total) = peek_len(buf, max)? else {
        return Ok(None);
    };
    Ok(buf.get(..total).map(|frame| MessageRef {
        tag: frame[0],
        frame,
    }))
}

/// The total frame size announced by a tagged header, if the header is complete.
pub fn peek_len(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(FrameError::BadLength(len));
    }
    let total = len as usize + 1;
    if total > max {
        return Err(FrameError::TooLarge { len: total, max });
    }
    Ok(Some(total))
}

/// Splits one complete tagged message off the front of `buf`, or returns
/// `None` when more bytes are needed (reserving room for the rest).
pub fn next_message(buf: &mut BytesMut, max: usize) -> Result<Option<Message>, FrameError> {
    let Some(total) = peek_len(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let tag = buf[0];
    Ok(Some(Message {
        tag,
        frame: buf.split_to(total),
    }))
}

/// Splits the untagged startup packet (length included) off `buf`.
pub fn next_startup(buf: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if !(8..=MAX_STARTUP_PACKET as i32).contains(&len) {
        if len > 8 {
            return Err(FrameError::TooLarge {
                len: len as usize,
                max: MAX_STARTUP_PACKET,
            });
        }
        return Err(FrameError::BadLength(len));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let mut packet = buf.split_to(len);
    packet.advance(4);
    Ok(Some(packet))
}

#[cfg(test)]
mod tests;
