//! Parse → route: a client request as a list of arguments, plus what the
//! router needs to know about it (see the submodules).
//!
//! Requests arrive as RESP arrays of bulk strings or as inline lines;
//! [`next_command`] accepts both, exactly as Redis does (a first byte of `*`
//! means an array), and yields the same [`Command`] either way together with
//! the raw bytes, which can be forwarded unchanged when the proxy does not
//! rewrite the command.
//!
//! - [`table`]: the Redis 7.0 command table (`commands.json`), looked up by name.
//! - [`keys`](mod@keys): which arguments are keys, from the table's key specs.
//! - [`affinity`]: blocking commands and commands that need their own connection.

use crate::frame::{self, Frame, FrameError, Limits, Version};
use crate::inline::{self, InlineError};
use bytes::{Bytes, BytesMut};
use std::fmt;

pub mod affinity;
pub mod fast;
pub mod keys;
pub mod table;

pub use affinity::{affinity_of, connection_affinity, is_blocking, Affinity, DedicatedReason};
pub use keys::{key_positions, keys, routing_keys};
pub use table::{lookup, lookup_command, CommandInfo, Flags, KeySpec, KeySpecFlags};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Inline(#[from] InlineError),
    /// Display text is the reply Redis sends (after `-ERR `).
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    NotBulk(u8),
    #[error("Protocol error: a request must be an array of bulk strings")]
    NotArray,
    /// See [`RequestLimits::unauthenticated`].
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulk,
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulk,
}

/// Bounds for parsing client requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Applies to RESP requests; their nesting depth is always 1.
    pub frame: Limits,
    /// Longest inline line.
    pub max_inline_len: usize,
    /// The client has not authenticated yet and must: Redis's own lower
    /// bounds apply, as Redis 6.2 and later apply them (arrays of at most
    /// 10 elements, bulk strings of at most 16 KiB; see [`fast`]).
    pub unauthenticated: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            frame: Limits::default(),
            max_inline_len: inline::DEFAULT_MAX_INLINE_LEN,
            unauthenticated: false,
        }
    }
}

/// One request split off a client's read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `None` for an empty array or a blank inline line, which Redis skips
    /// without replying.
    pub command: Option<Command>,
    /// The request as received.
    pub raw: Bytes,
}

/// Splits one request (RESP array or inline line) off the front of `buf`.
/// Returns `None` while it is incomplete.
pub fn next_command(
    buf: &mut BytesMut,
    limits: &RequestLimits,
) -> Result<Option<Request>, CommandError> {
    next_command_from(buf, limits, &mut fast::Progress::default())
}

/// [`next_command`] for a buffer that grows by reads: `progress` carries
/// how far the previous attempt got through an incomplete request, so a
/// request trickling in is not rescanned from its start on every read
/// (which would make it quadratic). Keep one `progress` per buffer and
/// reset it if bytes leave the buffer other than through this function.
///
/// A request is an array of bulk strings, as Redis reads it: an element
/// of any other type is refused as soon as its first byte arrives.
pub fn next_command_from(
    buf: &mut BytesMut,
    limits: &RequestLimits,
    progress: &mut fast::Progress,
) -> Result<Option<Request>, CommandError> {
    let Some(&first) = buf.first() else {
        progress.restart();
        return Ok(None);
    };
    if first != b'*' {
        let line = inline::next_line_from(buf, limits.max_inline_len, &mut progress.searched);
        if !matches!(line, Ok(None)) {
            progress.restart();
        }
        return Ok(line?.map(|line| Request {
            command: Command::new(line.args),
            raw: line.raw,
        }));
    }
    let max = limits.frame.max_frame_size;
    let scanned = fast::scan_from(buf, max, limits.unauthenticated, progress);
    if !matches!(scanned, Ok(fast::Scan::Incomplete)) {
        progress.restart();
    }
    match scanned {
        Ok(fast::Scan::Incomplete) => Ok(None),
        Ok(fast::Scan::Complete { len, count }) => {
            let raw = buf.split_to(len).freeze();
            let mut args = Vec::with_capacity(count);
            args.extend(fast::args(&raw, count).map(|(s, e)| raw.slice(s..e)));
            Ok(Some(Request {
                command: Command::new(args),
                raw,
            }))
        }
        Err(fast::Reject::UnauthenticatedMultibulk) => Err(CommandError::UnauthenticatedMultibulk),
        Err(fast::Reject::UnauthenticatedBulk) => Err(CommandError::UnauthenticatedBulk),
        Err(fast::Reject::TooLarge { len }) => Err(FrameError::TooLarge { len, max }.into()),
        Err(fast::Reject::Other { at: 0 }) => next_command_general(buf, limits),
        Err(fast::Reject::Other { at }) => odd_element(buf, at, max).map(|()| None),
    }
}

/// Element `at` of a request array is not a plain bulk string (the fast
/// scan said so): the error for it, or `Ok` while its header is still
/// incomplete. Looks at that element only, never at what came before.
fn odd_element(buf: &[u8], at: usize, max: usize) -> Result<(), CommandError> {
    let element = &buf[at..];
    if element.first() != Some(&b'$') {
        return Err(CommandError::NotBulk(
            element.first().copied().unwrap_or(b'?'),
        ));
    }
    let flat = Limits {
        max_frame_size: max,
        max_depth: 0,
    };
    match frame::frame_len(element, Version::Resp2, &flat)? {
        None => Ok(()),
        Some(end) if at + end > max => Err(FrameError::TooLarge { len: at + end, max }.into()),
        // `$-1`: a null where a string must be.
        Some(5) if element.starts_with(b"$-1\r\n") => Err(CommandError::NotBulk(b'_')),
        Some(_) => Err(FrameError::Malformed("unexpected request element".into()).into()),
    }
}

/// [`next_command`] without the fast path: every shape, every error.
pub fn next_command_general(
    buf: &mut BytesMut,
    limits: &RequestLimits,
) -> Result<Option<Request>, CommandError> {
    if buf.first() != Some(&b'*') {
        return next_command(buf, limits);
    }
    let flat = Limits {
        max_depth: 1,
        ..limits.frame
    };
    match frame::decode(buf, Version::Resp2, &flat)? {
        Some(decoded) => Ok(Some(Request {
            command: Command::from_frame(decoded.frame)?,
            raw: decoded.raw,
        })),
        None => Ok(None),
    }
}

/// A command and its arguments; `args[0]` is the name, in the client's case.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    pub args: Vec<Bytes>,
}

impl Command {
    /// `None` when `args` is empty (nothing to run).
    pub fn new(args: Vec<Bytes>) -> Option<Self> {
        (!args.is_empty()).then_some(Self { args })
    }

    /// Builds a command from arguments given as byte strings (tests, the
    /// proxy's own commands to servers).
    pub fn from_parts<I, A>(parts: I) -> Option<Self>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        Self::new(
            parts
                .into_iter()
                .map(|a| Bytes::copy_from_slice(a.as_ref()))
                .collect(),
        )
    }

    /// From a decoded request frame: an array of bulk strings. `Ok(None)`
    /// for an empty or null array, which Redis ignores.
    pub fn from_frame(frame: Frame) -> Result<Option<Self>, CommandError> {
        let items = match frame {
            Frame::Array(items) => items,
            Frame::Null => return Ok(None),
            _ => return Err(CommandError::NotArray),
        };
        let args = items
            .into_iter()
            .map(|item| match item {
                Frame::Bulk(b) => Ok(b),
                other => Err(CommandError::NotBulk(type_byte(&other))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(args))
    }

    /// The name as sent.
    pub fn name(&self) -> &[u8] {
        self.args.first().map_or(&[], |b| &b[..])
    }

    /// Case-insensitive name comparison, without allocating.
    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name.as_bytes())
    }

    /// The name upper-cased in a stack buffer; `None` if it is longer than
    /// any Redis command name could be.
    pub fn name_upper(&self) -> Option<UpperName> {
        UpperName::new(self.name())
    }

    /// Argument `i` (0 is the name).
    pub fn arg(&self, i: usize) -> Option<&Bytes> {
        self.args.get(i)
    }

    /// Appends the command as a RESP array of bulk strings.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(16 + self.args.iter().map(|a| a.len() + 16).sum::<usize>());
        frame::encode::array_header(out, self.args.len());
        for arg in &self.args {
            frame::encode::bulk(out, arg);
        }
    }

    /// The command as a RESP array of bulk strings.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// Commands whose arguments carry credentials; `Debug` hides them.
const SECRET_BEARING: &[&str] = &["AUTH", "HELLO", "MIGRATE", "ACL", "CONFIG"];

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = String::from_utf8_lossy(self.name());
        if SECRET_BEARING.iter().any(|s| self.is(s)) {
            return write!(
                f,
                "Command({name} <{} args redacted>)",
                self.args.len().saturating_sub(1)
            );
        }
        let mut list = f.debug_tuple("Command");
        for arg in &self.args {
            list.field(&String::from_utf8_lossy(arg));
        }
        list.finish()
    }
}

/// The longest Redis command name is 20 bytes (`GEORADIUSBYMEMBER_RO`).
const MAX_NAME: usize = 32;

/// An upper-cased command name held on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UpperName {
    buf: [u8; MAX_NAME],
    len: u8,
}

impl UpperName {
    fn new(name: &[u8]) -> Option<Self> {
        if name.is_empty() || name.len() > MAX_NAME {
            return None;
        }
        let mut buf = [0u8; MAX_NAME];
        buf[..name.len()].copy_from_slice(name);
        buf[..name.len()].make_ascii_uppercase();
        Some(Self {
            buf,
            len: name.len() as u8,
        })
    }

    /// The name as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self).ok()
    }
}

impl std::ops::Deref for UpperName {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl fmt::Debug for UpperName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

fn type_byte(frame: &Frame) -> u8 {
    match frame {
        Frame::Simple(_) => b'+',
        Frame::Error(_) => b'-',
        Frame::Integer(_) => b':',
        Frame::Array(_) => b'*',
        Frame::Null => b'_',
        _ => b'?',
    }
}

/// Writes `name` lower-cased into `buf`, for table look-ups without
/// allocating; `None` if it does not fit.
pub(crate) fn lower_into<'b>(name: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..name.len())?;
    out.copy_from_slice(name);
    out.make_ascii_lowercase();
    Some(out)
}

#[cfg(test)]
mod tests;
