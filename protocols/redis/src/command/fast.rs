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

/// Scans a bulk-string array at the front of `buf`; `None` when the bytes
/// are not (only) that, or exceed `max_frame` (the general decoder then
/// decides).
pub fn scan(buf: &[u8], max_frame: usize) -> Option<Scan> {
    let (count, mut pos) = match header(buf, 0, b'*')? {
        Header::Incomplete => return Some(Scan::Incomplete),
        Header::Value(n, next) => (n, next),
    };
    // Empty and null arrays are rare; the general decoder knows them.
    if count == 0 || count > max_frame / 4 {
        return None;
    }
    for _ in 0..count {
        if pos >= buf.len() {
            return Some(Scan::Incomplete);
        }
        let (len, start) = match header(buf, pos, b'$')? {
            Header::Incomplete => return Some(Scan::Incomplete),
            Header::Value(n, next) => (n, next),
        };
        let end = start.checked_add(len)?;
        if end > max_frame {
            return None;
        }
        if end + 2 > buf.len() {
            return Some(Scan::Incomplete);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return None;
        }
        pos = end + 2;
    }
    (pos <= max_frame).then_some(Scan::Complete { len: pos, count })
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
    let Scan::Complete { len, count } = scan(buf, max_frame)? else {
        return None;
    };
    let (start, end) = args(&buf[..len], count).next()?;
    let info = super::table::lookup(&buf[start..end])?;
    (!info.special && info.subcommands.is_empty()).then_some(len)
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
