//! Parse: inline commands, the `SET a "b c"\r\n` form that telnet, health
//! checks and `redis-cli` pipes send instead of RESP arrays.
//!
//! Sits at the parse step of accept → parse → route → backend → respond,
//! next to [`crate::frame`]: a request whose first byte is not `*` is inline,
//! as in Redis. The splitting rules are Redis's own (`sdssplitargs`), so a
//! line means the same thing through Attaché as it does to the server:
//! - arguments are separated by whitespace;
//! - `"…"` allows `\n \r \t \b \a`, `\xHH` and `\<any>` escapes;
//! - `'…'` allows only `\'`;
//! - a quote may open mid-token (`a"b c"` is `ab c`), but a closing quote
//!   must be followed by whitespace or the end of the line;
//!
//! One deliberate difference: Redis looks for the newline with `strchr`, so
//! a NUL byte hides it and the connection stalls until the inline limit.
//! Attaché rejects a line containing NUL instead.

use bytes::{Bytes, BytesMut};

/// Redis's `PROTO_INLINE_MAX_SIZE`.
pub const DEFAULT_MAX_INLINE_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InlineError {
    /// Display text is the reply Redis sends (after `-ERR `).
    #[error("Protocol error: too big inline request")]
    TooLong { max: usize },
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: NUL byte in inline request")]
    Nul,
}

/// One inline line split off a read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineLine {
    /// The arguments; empty for a blank line, which Redis silently skips.
    pub args: Vec<Bytes>,
    /// The line as received, terminator included.
    pub raw: Bytes,
}

/// Splits one `\n`-terminated line (an optional `\r` before it is dropped)
/// off the front of `buf` and splits it into arguments. Returns `None` while
/// the line is incomplete; a line longer than `max_len` is an error even
/// before its end arrives, so a client cannot grow the buffer without bound.
pub fn next_line(buf: &mut BytesMut, max_len: usize) -> Result<Option<InlineLine>, InlineError> {
    next_line_from(buf, max_len, &mut 0)
}

/// [`next_line`] for a buffer that grows by reads: the first `searched`
/// bytes are known to hold no newline, so only the rest is searched, and
/// `searched` is updated while the line is incomplete (the caller resets
/// it once a line, or an error, has been taken).
pub fn next_line_from(
    buf: &mut BytesMut,
    max_len: usize,
    searched: &mut usize,
) -> Result<Option<InlineLine>, InlineError> {
    let from = (*searched).min(buf.len());
    let found = buf[from..].iter().position(|&b| b == b'\n');
    let Some(newline) = found.map(|i| from + i) else {
        *searched = buf.len();
        if buf.len() > max_len {
            return Err(InlineError::TooLong { max: max_len });
        }
        return Ok(None);
    };
    if newline > max_len {
        return Err(InlineError::TooLong { max: max_len });
    }
    let raw = buf.split_to(newline + 1).freeze();
    let mut line = &raw[..newline];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    Ok(Some(InlineLine {
        args: split_args(line)?,
        raw,
    }))
}

/// Splits one line into arguments with Redis's quoting rules.
pub fn split_args(line: &[u8]) -> Result<Vec<Bytes>, InlineError> {
    if line.contains(&0) {
        return Err(InlineError::Nul);
    }
    let mut args = Vec::new();
    let mut pos = 0;
    loop {
        while pos < line.len() && is_c_space(line[pos]) {
            pos += 1;
        }
        if pos == line.len() {
            return Ok(args);
        }
        let (arg, next) = token(line, pos)?;
        args.push(Bytes::from(arg));
        pos = next;
    }
}

#[derive(PartialEq)]
enum Mode {
    Bare,
    Double,
    Single,
}

/// One argument starting at `pos`: its bytes and where scanning resumes.
fn token(line: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), InlineError> {
    let at = |i: usize| line.get(i).copied();
    let mut out = Vec::new();
    let mut mode = Mode::Bare;
    loop {
        let Some(c) = at(pos) else {
            return match mode {
                Mode::Bare => Ok((out, pos)),
                _ => Err(InlineError::UnbalancedQuotes),
            };
        };
        match mode {
            Mode::Bare => match c {
                b' ' | b'\n' | b'\r' | b'\t' => return Ok((out, pos + 1)),
                b'"' => mode = Mode::Double,
                b'\'' => mode = Mode::Single,
                _ => out.push(c),
            },
            Mode::Double => match (c, at(pos + 1)) {
                (b'\\', Some(b'x')) if hex_pair(at(pos + 2), at(pos + 3)).is_some() => {
                    out.extend(hex_pair(at(pos + 2), at(pos + 3)));
                    pos += 3;
                }
                (b'\\', Some(escaped)) => {
                    out.push(match escaped {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    pos += 1;
                }
                (b'"', next) => return closed(out, pos, next),
                _ => out.push(c),
            },
            Mode::Single => match (c, at(pos + 1)) {
                (b'\\', Some(b'\'')) => {
                    out.push(b'\'');
                    pos += 1;
                }
                (b'\'', next) => return closed(out, pos, next),
                _ => out.push(c),
            },
        }
        pos += 1;
    }
}

/// A closing quote at `pos` must be followed by whitespace or the end.
fn closed(out: Vec<u8>, pos: usize, next: Option<u8>) -> Result<(Vec<u8>, usize), InlineError> {
    match next {
        Some(b) if !is_c_space(b) => Err(InlineError::UnbalancedQuotes),
        _ => Ok((out, pos + 1)),
    }
}

fn hex_pair(hi: Option<u8>, lo: Option<u8>) -> Option<u8> {
    let digit = |c: Option<u8>| char::from(c?).to_digit(16);
    Some((digit(hi)? * 16 + digit(lo)?) as u8)
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(test)]
mod tests;
