//! Parse and respond: the few messages the proxy reads or writes itself.
//!
//! Everything else is forwarded as raw frames. Messages Attaché sends on its
//! own account (errors, auth requests, ParameterStatus, …) are encoded with
//! `pgwire`'s message types; the hot-path helpers that rename prepared
//! statements work on borrowed slices and write straight into an output
//! buffer so they allocate nothing per message.

pub mod backend;
pub mod frontend;

pub use backend::*;
pub use frontend::*;

/// A message whose body does not have the shape its tag promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} message")]
pub struct MalformedMessage {
    pub what: &'static str,
}

pub(crate) fn malformed(what: &'static str) -> MalformedMessage {
    MalformedMessage { what }
}

/// Reads a NUL-terminated byte string from the front of `buf`, in
/// whatever encoding it is.
pub(crate) fn cbytes<'a>(
    buf: &'a [u8],
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), MalformedMessage> {
    let nul = buf.iter().position(|b| *b == 0).ok_or(malformed(what))?;
    Ok((&buf[..nul], &buf[nul + 1..]))
}

/// Reads a NUL-terminated UTF-8 string from the front of `buf`.
pub(crate) fn cstr<'a>(
    buf: &'a [u8],
    what: &'static str,
) -> Result<(&'a str, &'a [u8]), MalformedMessage> {
    let nul = buf.iter().position(|b| *b == 0).ok_or(malformed(what))?;
    let s = std::str::from_utf8(&buf[..nul]).map_err(|_| malformed(what))?;
    Ok((s, &buf[nul + 1..]))
}

/// Writes a tag, then `body_len + 4` as the length word.
pub(crate) fn header(out: &mut bytes::BytesMut, tag: u8, body_len: usize) {
    use bytes::BufMut;
    out.put_u8(tag);
    out.put_i32((body_len + 4) as i32);
}

pub(crate) fn put_cstr(out: &mut bytes::BytesMut, s: &str) {
    use bytes::BufMut;
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

#[cfg(test)]
mod tests;
