//! Parse (Redis): the one request shape nearly every client sends,
//! `*N\r\n` then N `$len\r\n<bytes>\r\n`, read in a single pass. Anything
//! else (inline commands, other types, limits exceeded, malformed input)
//! falls back to the general decoder, which also words the errors, so this
//! path only has to be right about the common case.

/// What the scan found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// A well-formed prefix: wait for more bytes.
    Incomplete,
    /// `len` bytes hold an array of `count` bulk strings.
    Complete { len: usize, count: usize },
}

/// Why [`scan_from`] stopped short of the common shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The bytes from `at` (0: the array header; otherwise the start of an
    /// element) are not the common shape: the general decoder decides.
    Other { at: usize },
    /// An array whose bulk strings cannot fit in `max_frame`: at least
    /// `len` bytes.
    TooLarge { len: usize },
    /// A client that has not authenticated sent an array of more than
    /// [`UNAUTHENTICATED_MAX_ARGS`] elements.
    UnauthenticatedMultibulk,
    /// … or a bulk string longer than [`UNAUTHENTICATED_MAX_BULK`].
    UnauthenticatedBulk,
}

/// Redis (6.2 and later) refuses a longer array from a client that has
/// not authenticated yet, when a password is required.
pub const UNAUTHENTICATED_MAX_ARGS: usize = 10;

/// Redis's bound on one bulk string from a client not authenticated yet.
pub const UNAUTHENTICATED_MAX_BULK: usize = 16384;

/// How far the scan of an incomplete request at the front of a buffer got,
/// so that the next scan of the same buffer, grown by a read, resumes there
/// instead of starting over: each byte of a request is examined a bounded
/// number of times however finely it trickles in. Reset it (`default()`)
/// whenever bytes leave the front of the buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Elements of the array, once its header is read.
    count: usize,
    /// Elements complete so far.
    done: usize,
    /// Offset of the next element; 0 until the header is read.
    pos: usize,
    /// Inline requests: bytes already searched for the line's end.
    pub(crate) searched: usize,
    /// Header and element bytes examined since the last reset (tests).
    examined: usize,
}

impl Progress {
    /// Bytes the scans have examined since the last reset: what a test
    /// checks to see that a trickled request is not rescanned.
    pub fn examined(&self) -> usize {
        self.examined
    }

    /// Starts over for the next request (bytes left the buffer's front);
    /// the count of examined bytes goes on.
    pub fn restart(&mut self) {
        *self = Progress {
            examined: self.examined,
            ..Progress::default()
        };
    }
}

/// Scans a bulk-string array at the front of `buf`; `None` when the bytes
/// are not (only) that, or exceed `max_frame` (the general decoder then
/// decides).
pub fn scan(buf: &[u8], max_frame: usize) -> Option<Scan> {
    scan_from(buf, max_frame, false, &mut Progress::default()).ok()
}

/// [`scan`], resuming where `progress` says the previous scan of `buf`
/// stopped and recording where this one stops. With `unauthenticated`,
/// Redis's lower bounds for a client that has not authenticated apply.
pub fn scan_from(
    buf: &[u8],
    max_frame: usize,
    unauthenticated: bool,
    progress: &mut Progress,
) -> Result<Scan, Reject> {
    if progress.pos > buf.len() || (progress.pos > 0 && buf.first() != Some(&b'*')) {
        progress.restart();
    }
    if progress.pos == 0 {
        let (count, next) = match header(buf, 0, b'*').ok_or(Reject::Other { at: 0 })? {
            Header::Incomplete => return Ok(Scan::Incomplete),
            Header::Value(n, next) => (n, next),
        };
        progress.examined += next;
        if unauthenticated && count > UNAUTHENTICATED_MAX_ARGS {
            return Err(Reject::UnauthenticatedMultibulk);
        }
        // Empty and null arrays are rare; the general decoder knows them.
        if count == 0 {
            return Err(Reject::Other { at: 0 });
        }
        // Every bulk string takes at least 6 bytes (`$0\r\n\r\n`).
        let floor = count.saturating_mul(6).saturating_add(next);
        if floor > max_frame {
            return Err(Reject::TooLarge { len: floor });
        }
        (progress.count, progress.done, progress.pos) = (count, 0, next);
    }
    while progress.done < progress.count {
        match element(buf, progress.pos, max_frame, unauthenticated)? {
            None => return Ok(Scan::Incomplete),
            Some((end, header)) => {
                progress.examined += header;
                (progress.done, progress.pos) = (progress.done + 1, end);
            }
        }
    }
    Ok(Scan::Complete {
        len: progress.pos,
        count: progress.count,
    })
}

/// The end of the bulk string at `pos` and how many of its bytes were
/// examined (its header and terminator; the body is skipped), `None` while
/// it is incomplete.
fn element(
    buf: &[u8],
    pos: usize,
    max_frame: usize,
    unauthenticated: bool,
) -> Result<Option<(usize, usize)>, Reject> {
    let other = Reject::Other { at: pos };
    if pos >= buf.len() {
        return Ok(None);
    }
    let (len, start) = match header(buf, pos, b'$').ok_or(other)? {
        Header::Incomplete => return Ok(None),
        Header::Value(n, next) => (n, next),
    };
    if unauthenticated && len > UNAUTHENTICATED_MAX_BULK {
        return Err(Reject::UnauthenticatedBulk);
    }
    let end = start.checked_add(len).ok_or(other)?;
    if end > max_frame {
        return Err(other);
    }
    if end + 2 > buf.len() {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(other);
    }
    Ok(Some((end + 2, start - pos + 2)))
}

/// The `[start, end)` of each argument of a frame `scan` found complete.
pub fn args(raw: &[u8], count: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = match header(raw, 0, b'*') {
        Some(Header::Value(_, next)) => next,
        _ => raw.len(),
    };
    (0..count).map_while(move |_| match header(raw, pos, b'$') {
        Some(Header::Value(len, start)) => {
            pos = start + len + 2;
            Some((start, start + len))
        }
        _ => None,
    })
}

/// The length of a complete command at the front of `buf` that a proxy may
/// forward as it is to any shared server connection, judged by its name
/// alone: a known command that is neither special (stateful, blocking,
/// answered by the proxy; see [`super::affinity::is_special`]) nor a
/// container whose subcommands differ. `None` means "take the general
/// path", never "invalid". Finds the name without splitting the buffer or
/// allocating, which is what a pipelined GET/SET stream spends most on.
pub fn plain_len(buf: &[u8], max_frame: usize) -> Option<usize> {
    plain_len_from(buf, max_frame, &mut Progress::default())
}

/// [`plain_len`], resuming from and recording `progress` (see
/// [`scan_from`]). When it returns `Some`, the caller takes those bytes off
/// the buffer and `progress` is already reset for what follows.
pub fn plain_len_from(buf: &[u8], max_frame: usize, progress: &mut Progress) -> Option<usize> {
    let Ok(Scan::Complete { len, count }) = scan_from(buf, max_frame, false, progress) else {
        return None;
    };
    let (start, end) = args(&buf[..len], count).next()?;
    let info = super::table::lookup(&buf[start..end])?;
    let plain = !info.special && info.subcommands.is_empty();
    if plain {
        progress.restart();
    }
    plain.then_some(len)
}

enum Header {
    Incomplete,
    /// The number and the offset just past its `\r\n`.
    Value(usize, usize),
}

/// `<kind><digits>\r\n` at `at`. Signs, empty numbers, more than 10
/// digits and stray bytes are left to the general decoder.
fn header(buf: &[u8], at: usize, kind: u8) -> Option<Header> {
    if buf.get(at) != Some(&kind) {
        return if at >= buf.len() {
            Some(Header::Incomplete)
        } else {
            None
        };
    }
    let mut n: usize = 0;
    let mut i = at + 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Some(Header::Incomplete);
        };
        match b {
            b'0'..=b'9' if i - at <= 10 => n = n * 10 + usize::from(b - b'0'),
            b'\r' if i > at + 1 => break,
            _ => return None,
        }
        i += 1;
    }
    match buf.get(i + 1) {
        None => Some(Header::Incomplete),
        Some(b'\n') => Some(Header::Value(n, i + 2)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests;
