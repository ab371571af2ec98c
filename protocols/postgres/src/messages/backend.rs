//! Respond: messages from a server (or from Attaché posing as one).

use bytes::{Buf, Bytes, BytesMut};
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, SecretKey,
};
use pgwire::messages::Message as _;

use super::{cstr, header, malformed, MalformedMessage};

/// Fields of an ErrorResponse or NoticeResponse that Attaché looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
}

/// Appends an ErrorResponse with severity ERROR.
pub fn error(out: &mut BytesMut, code: &str, message: &str) {
    error_full(out, "ERROR", code, message, None);
}

/// Appends an ErrorResponse with the given severity (`FATAL` closes the
/// session in the client's eyes) and an optional hint.
pub fn error_full(
    out: &mut BytesMut,
    severity: &str,
    code: &str,
    message: &str,
    hint: Option<&str>,
) {
    let mut fields = vec![
        (b'S', severity.to_owned()),
        (b'V', severity.to_owned()),
        (b'C', code.to_owned()),
        (b'M', message.to_owned()),
    ];
    if let Some(h) = hint {
        fields.push((b'H', h.to_owned()));
    }
    // Encoding only fails for oversized messages; ours are small.
    let _ = ErrorResponse::new(fields).encode(out);
}

pub fn notice(out: &mut BytesMut, code: &str, message: &str) {
    let fields = vec![
        (b'S', "NOTICE".to_owned()),
        (b'V', "NOTICE".to_owned()),
        (b'C', code.to_owned()),
        (b'M', message.to_owned()),
    ];
    let _ = NoticeResponse::new(fields).encode(out);
}

pub fn auth_ok(out: &mut BytesMut) {
    let _ = Authentication::Ok.encode(out);
}

pub fn auth_cleartext(out: &mut BytesMut) {
    let _ = Authentication::CleartextPassword.encode(out);
}

pub fn auth_md5(out: &mut BytesMut, salt: [u8; 4]) {
    let _ = Authentication::MD5Password(salt.to_vec()).encode(out);
}

pub fn auth_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    let mechs = mechanisms.iter().map(|m| (*m).to_owned()).collect();
    let _ = Authentication::SASL(mechs).encode(out);
}

pub fn auth_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    let _ = Authentication::SASLContinue(Bytes::copy_from_slice(data)).encode(out);
}

pub fn auth_sasl_final(out: &mut BytesMut, data: &[u8]) {
    let _ = Authentication::SASLFinal(Bytes::copy_from_slice(data)).encode(out);
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    let _ = ParameterStatus::new(name.to_owned(), value.to_owned()).encode(out);
}

pub fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    let _ = BackendKeyData::new(pid, SecretKey::I32(secret)).encode(out);
}

pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    let status = match status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    let _ = ReadyForQuery::new(status).encode(out);
}

/// Tells a client asking for protocol 3.`minor` (> 0) or `_pq_.` options that
/// we speak 3.0 and which options we did not recognise.
pub fn negotiate_protocol_version(out: &mut BytesMut, unrecognized: &[String]) {
    let _ = NegotiateProtocolVersion::new(0, unrecognized.to_vec()).encode(out);
}

/// ParseComplete, BindComplete and CloseComplete have empty bodies.
pub fn parse_complete(out: &mut BytesMut) {
    header(out, b'1', 0);
}

pub fn close_complete(out: &mut BytesMut) {
    header(out, b'3', 0);
}

/// What a server asks for during login (an `R` message body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    Ok,
    Cleartext,
    Md5([u8; 4]),
    Sasl(Vec<String>),
    SaslContinue(Vec<u8>),
    SaslFinal(Vec<u8>),
    Unsupported(i32),
}

pub fn read_auth_request(mut body: &[u8]) -> Result<AuthRequest, MalformedMessage> {
    if body.len() < 4 {
        return Err(malformed("Authentication"));
    }
    let code = body.get_i32();
    Ok(match code {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => {
            let salt: [u8; 4] = body
                .try_into()
                .map_err(|_| malformed("AuthenticationMD5"))?;
            AuthRequest::Md5(salt)
        }
        10 => {
            let mut mechs = Vec::new();
            let mut rest = body;
            while !rest.is_empty() && rest[0] != 0 {
                let (m, r) = cstr(rest, "AuthenticationSASL")?;
                mechs.push(m.to_owned());
                rest = r;
            }
            AuthRequest::Sasl(mechs)
        }
        11 => AuthRequest::SaslContinue(body.to_vec()),
        12 => AuthRequest::SaslFinal(body.to_vec()),
        other => AuthRequest::Unsupported(other),
    })
}

/// Reads an ErrorResponse/NoticeResponse body.
pub fn read_error_fields(mut body: &[u8]) -> ErrorFields {
    let mut f = ErrorFields::default();
    while let Some((&kind, rest)) = body.split_first() {
        if kind == 0 {
            break;
        }
        let Ok((value, rest)) = cstr(rest, "ErrorResponse") else {
            break;
        };
        match kind {
            b'V' => f.severity = value.to_owned(),
            b'S' if f.severity.is_empty() => f.severity = value.to_owned(),
            b'C' => f.code = value.to_owned(),
            b'M' => f.message = value.to_owned(),
            b'D' => f.detail = Some(value.to_owned()),
            _ => {}
        }
        body = rest;
    }
    f
}

pub fn read_parameter_status(body: &[u8]) -> Result<(&str, &str), MalformedMessage> {
    let (name, rest) = cstr(body, "ParameterStatus")?;
    let (value, _) = cstr(rest, "ParameterStatus")?;
    Ok((name, value))
}

/// BackendKeyData: the pid and the secret (4 bytes in 3.0).
pub fn read_backend_key(mut body: &[u8]) -> Result<(i32, Vec<u8>), MalformedMessage> {
    if body.len() < 8 {
        return Err(malformed("BackendKeyData"));
    }
    let pid = body.get_i32();
    Ok((pid, body.to_vec()))
}

/// The transaction status byte of a ReadyForQuery: `I`, `T` or `E`.
pub fn read_ready_status(body: &[u8]) -> Result<u8, MalformedMessage> {
    match body {
        [s @ (b'I' | b'T' | b'E')] => Ok(*s),
        _ => Err(malformed("ReadyForQuery")),
    }
}

/// DataRow: each column's bytes, `None` for NULL.
pub fn read_data_row(mut body: &[u8]) -> Result<Vec<Option<&[u8]>>, MalformedMessage> {
    if body.len() < 2 {
        return Err(malformed("DataRow"));
    }
    let n = body.get_i16();
    let mut cols = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n.max(0) {
        if body.len() < 4 {
            return Err(malformed("DataRow"));
        }
        let len = body.get_i32();
        if len < 0 {
            cols.push(None);
            continue;
        }
        let len = len as usize;
        if body.len() < len {
            return Err(malformed("DataRow"));
        }
        let (value, rest) = body.split_at(len);
        cols.push(Some(value));
        body = rest;
    }
    Ok(cols)
}
