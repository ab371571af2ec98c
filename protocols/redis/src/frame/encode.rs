//! Respond: writes the replies the proxy produces itself (errors, `OK`,
//! merged multi-key results, `HELLO` maps) in the client's RESP version.
//!
//! RESP3-only types are downgraded for RESP2 clients the way Redis itself
//! does it: maps and sets become flat arrays, booleans become integers,
//! doubles and big numbers become bulk strings, blob errors become simple
//! errors. Simple strings and errors cannot carry CR or LF, so those are
//! replaced by spaces (as Redis does for error messages).

use super::{Frame, Version};
use bytes::{BufMut, Bytes, BytesMut};

/// Encodes `frame` for a client speaking `version`.
pub fn encode(frame: &Frame, version: Version, out: &mut BytesMut) {
    let resp3 = version == Version::Resp3;
    match frame {
        Frame::Simple(s) => simple(out, s),
        Frame::Error(e) => error(out, e),
        Frame::Integer(i) => integer(out, *i),
        Frame::Bulk(b) => bulk(out, b),
        Frame::Null => null(out, version),
        Frame::Array(items) => {
            array_header(out, items.len());
            items.iter().for_each(|f| encode(f, version, out));
        }
        Frame::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Boolean(b) => integer(out, i64::from(*b)),
        Frame::Double(d) if resp3 => line(out, b',', format_double(*d).as_bytes()),
        Frame::Double(d) => bulk(out, format_double(*d).as_bytes()),
        Frame::BigNumber(n) if resp3 => line(out, b'(', n),
        Frame::BigNumber(n) => bulk(out, n),
        Frame::BulkError(e) if resp3 => length_prefixed(out, b'!', e),
        Frame::BulkError(e) => error(out, e),
        Frame::Verbatim { format, text } if resp3 => {
            out.put_u8(b'=');
            put_decimal(out, text.len() as i64 + 4);
            out.put_slice(b"\r\n");
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Frame::Verbatim { text, .. } => bulk(out, text),
        Frame::Map(pairs) => {
            map_header(out, pairs.len(), version);
            for (k, v) in pairs {
                encode(k, version, out);
                encode(v, version, out);
            }
        }
        Frame::Set(items) | Frame::Push(items) => {
            let kind = match frame {
                Frame::Set(_) => b'~',
                _ => b'>',
            };
            if resp3 {
                out.put_u8(kind);
                put_decimal(out, items.len() as i64);
                out.put_slice(b"\r\n");
            } else {
                array_header(out, items.len());
            }
            items.iter().for_each(|f| encode(f, version, out));
        }
    }
}

impl Frame {
    /// This frame encoded for a client speaking `version`.
    pub fn to_bytes(&self, version: Version) -> Bytes {
        let mut out = BytesMut::new();
        encode(self, version, &mut out);
        out.freeze()
    }
}

/// `+text\r\n`, CR/LF replaced by spaces.
pub fn simple(out: &mut BytesMut, text: &[u8]) {
    line(out, b'+', text);
}

/// `-message\r\n`; `message` starts with its code (`ERR`, `CROSSSLOT`, …).
pub fn error(out: &mut BytesMut, message: &[u8]) {
    line(out, b'-', message);
}

/// `:n\r\n`
pub fn integer(out: &mut BytesMut, value: i64) {
    out.put_u8(b':');
    put_decimal(out, value);
    out.put_slice(b"\r\n");
}

/// `$len\r\nbytes\r\n`
pub fn bulk(out: &mut BytesMut, data: &[u8]) {
    length_prefixed(out, b'$', data);
}

/// The null reply: `$-1` in RESP2, `_` in RESP3.
pub fn null(out: &mut BytesMut, version: Version) {
    out.put_slice(match version {
        Version::Resp2 => b"$-1\r\n",
        Version::Resp3 => b"_\r\n",
    });
}

/// `*n\r\n`; the caller writes the `n` elements after it.
pub fn array_header(out: &mut BytesMut, len: usize) {
    out.put_u8(b'*');
    put_decimal(out, len as i64);
    out.put_slice(b"\r\n");
}

/// `%n\r\n` in RESP3, `*2n\r\n` (a flat key/value array) in RESP2; the
/// caller writes the `n` key/value pairs after it.
pub fn map_header(out: &mut BytesMut, pairs: usize, version: Version) {
    match version {
        Version::Resp3 => {
            out.put_u8(b'%');
            put_decimal(out, pairs as i64);
            out.put_slice(b"\r\n");
        }
        Version::Resp2 => array_header(out, pairs * 2),
    }
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.put_slice(b"\r\n");
}

fn length_prefixed(out: &mut BytesMut, kind: u8, data: &[u8]) {
    out.reserve(data.len() + 16);
    out.put_u8(kind);
    put_decimal(out, data.len() as i64);
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn put_decimal(out: &mut BytesMut, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[at..]);
}

/// RESP3 spells the specials `inf`, `-inf` and `nan`; `{:?}` gives the
/// shortest text that reads back to the same value.
fn format_double(value: f64) -> String {
    if value.is_nan() {
        "nan".into()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests;
