//! Parse: messages from a client (or from Attaché posing as one), including
//! the renaming of prepared statements for transaction pooling.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Password, SASLInitialResponse, SASLResponse, SecretKey};
use pgwire::messages::terminate::Terminate;
use pgwire::messages::Message as _;

use super::{cbytes, cstr, header, malformed, put_cstr, MalformedMessage};

/// A startup message for protocol 3.0 with the given parameters.
pub fn startup(out: &mut BytesMut, params: &[(&str, &str)]) {
    let body_len: usize = 4
        + params
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
        + 1;
    out.put_i32((body_len + 4) as i32);
    out.put_i32(crate::startup::PROTOCOL_3_0);
    for (k, v) in params {
        put_cstr(out, k);
        put_cstr(out, v);
    }
    out.put_u8(0);
}

pub fn ssl_request(out: &mut BytesMut) {
    out.put_i32(8);
    out.put_i32(crate::startup::SSL_REQUEST_CODE);
}

pub fn cancel_request(out: &mut BytesMut, pid: i32, secret: &[u8]) {
    let key = SecretKey::Bytes(Bytes::copy_from_slice(secret));
    let key = key.as_i32().map(SecretKey::I32).unwrap_or(key);
    let _ = CancelRequest::new(pid, key).encode(out);
}

pub fn password(out: &mut BytesMut, password: &str) {
    let _ = Password::new(password.to_owned()).encode(out);
}

pub fn sasl_initial_response(out: &mut BytesMut, mechanism: &str, data: &[u8]) {
    let msg = SASLInitialResponse::new(mechanism.to_owned(), Some(Bytes::copy_from_slice(data)));
    let _ = msg.encode(out);
}

pub fn sasl_response(out: &mut BytesMut, data: &[u8]) {
    let _ = SASLResponse::new(Bytes::copy_from_slice(data)).encode(out);
}

pub fn query(out: &mut BytesMut, sql: &str) {
    let _ = Query::new(sql.to_owned()).encode(out);
}

pub fn terminate(out: &mut BytesMut) {
    let _ = Terminate::new().encode(out);
}

pub fn sync(out: &mut BytesMut) {
    header(out, b'S', 0);
}

/// CopyFail: ends copy-in with an error carrying `reason`.
pub fn copy_fail(out: &mut BytesMut, reason: &str) {
    header(out, b'f', reason.len() + 1);
    put_cstr(out, reason);
}

/// The query text of a Query message, as bytes: it is in the client's
/// `client_encoding`, which need not be UTF-8 (LATIN1, SJIS, …), and is
/// forwarded unchanged. See [`sql_text`] for classifying it.
pub fn read_query(body: &[u8]) -> Result<&[u8], MalformedMessage> {
    cbytes(body, "Query").map(|(s, _)| s)
}

/// Query text for classification: borrowed when it is UTF-8 (the usual
/// case), otherwise a copy with the foreign bytes replaced. Keywords are
/// ASCII in every server encoding, so the verdict is the same; values
/// taken from a replaced copy are not the client's (see the callers).
pub fn sql_text(query: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(query)
}

/// The body of a PasswordMessage (cleartext password, md5 response or SASL
/// data depending on the exchange), without its trailing NUL if any.
pub fn read_password(body: &[u8]) -> &[u8] {
    body.strip_suffix(&[0]).unwrap_or(body)
}

/// SASLInitialResponse: the chosen mechanism and its data.
pub fn read_sasl_initial(body: &[u8]) -> Result<(&str, &[u8]), MalformedMessage> {
    let (mech, rest) = cstr(body, "SASLInitialResponse")?;
    if rest.len() < 4 {
        return Err(malformed("SASLInitialResponse"));
    }
    let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let data = &rest[4..];
    if len >= 0 && len as usize != data.len() {
        return Err(malformed("SASLInitialResponse"));
    }
    Ok((mech, data))
}

/// A Parse message, borrowed: statement name, query text and the raw
/// parameter-type section (count and OIDs) to copy unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseRef<'a> {
    pub name: &'a str,
    /// In the client's encoding, like [`read_query`]'s.
    pub query: &'a [u8],
    pub param_types: &'a [u8],
}

pub fn read_parse(body: &[u8]) -> Result<ParseRef<'_>, MalformedMessage> {
    let (name, rest) = cstr(body, "Parse")?;
    let (query, param_types) = cbytes(rest, "Parse")?;
    if param_types.len() < 2 {
        return Err(malformed("Parse"));
    }
    let n = i16::from_be_bytes([param_types[0], param_types[1]]);
    if n < 0 || param_types.len() != 2 + 4 * n as usize {
        return Err(malformed("Parse"));
    }
    Ok(ParseRef {
        name,
        query,
        param_types,
    })
}

/// Writes a Parse for `p` under another statement name.
pub fn write_parse(out: &mut BytesMut, name: &str, query: &[u8], param_types: &[u8]) {
    header(out, b'P', name.len() + query.len() + 2 + param_types.len());
    put_cstr(out, name);
    out.put_slice(query);
    out.put_u8(0);
    out.put_slice(param_types);
}

/// Bind: (portal, statement, rest of the body).
pub fn read_bind(body: &[u8]) -> Result<(&str, &str, &[u8]), MalformedMessage> {
    let (portal, rest) = cstr(body, "Bind")?;
    let (stmt, rest) = cstr(rest, "Bind")?;
    Ok((portal, stmt, rest))
}

pub fn write_bind(out: &mut BytesMut, portal: &str, stmt: &str, rest: &[u8]) {
    header(out, b'B', portal.len() + stmt.len() + 2 + rest.len());
    put_cstr(out, portal);
    put_cstr(out, stmt);
    out.put_slice(rest);
}

/// Describe or Close: (`S` statement or `P` portal, name).
pub fn read_target<'a>(
    body: &'a [u8],
    what: &'static str,
) -> Result<(u8, &'a str), MalformedMessage> {
    let (&kind, rest) = body.split_first().ok_or(malformed(what))?;
    if kind != b'S' && kind != b'P' {
        return Err(malformed(what));
    }
    let (name, _) = cstr(rest, what)?;
    Ok((kind, name))
}

/// Writes a Describe (`tag` = `D`) or Close (`C`) for a target.
pub fn write_target(out: &mut BytesMut, tag: u8, kind: u8, name: &str) {
    header(out, tag, 1 + name.len() + 1);
    out.put_u8(kind);
    put_cstr(out, name);
}
