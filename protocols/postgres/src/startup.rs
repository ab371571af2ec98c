//! Parse: the untagged first packet of a connection. It is either a startup
//! message, a request to upgrade (SSL, GSS encryption) or a cancel request;
//! the code in its first four bytes tells which.

use bytes::Buf;

pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Protocol 3.0; minor versions live in the low 16 bits.
pub const PROTOCOL_3_0: i32 = 196_608;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    /// `secret` is 4 bytes in protocol 3.0 and up to 256 in 3.2.
    Cancel {
        pid: i32,
        secret: Vec<u8>,
    },
    Startup(Startup),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    pub major: u16,
    pub minor: u16,
    /// In the order the client sent them; `user`, `database`, `options`,
    /// `application_name`, … and any `_pq_.` protocol options.
    pub params: Vec<(String, String)>,
}

impl Startup {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    #[error("startup packet too short")]
    TooShort,
    #[error("unsupported frontend protocol {major}.{minor}: Attaché speaks 3.0")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("startup packet parameters are not NUL-terminated UTF-8 pairs")]
    BadParameters,
    #[error("cancel request key must be 4 to 256 bytes")]
    BadCancelKey,
}

/// Parses the packet body (after its length word).
pub fn parse(mut body: &[u8]) -> Result<StartupPacket, StartupError> {
    if body.len() < 4 {
        return Err(StartupError::TooShort);
    }
    let code = body.get_i32();
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            if body.len() < 8 || body.len() > 260 {
                return Err(StartupError::BadCancelKey);
            }
            let pid = body.get_i32();
            Ok(StartupPacket::Cancel {
                pid,
                secret: body.to_vec(),
            })
        }
        _ => {
            let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
            if major != 3 {
                return Err(StartupError::UnsupportedVersion { major, minor });
            }
            let params = parse_params(body)?;
            Ok(StartupPacket::Startup(Startup {
                major,
                minor,
                params,
            }))
        }
    }
}

fn parse_params(body: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let mut fields = body.split(|b| *b == 0);
    let mut params = Vec::new();
    loop {
        let key = fields.next().ok_or(StartupError::BadParameters)?;
        if key.is_empty() {
            // The list ends with an empty key; nothing may follow but the
            // split's own trailing empty piece.
            return match (fields.next(), fields.next()) {
                (Some([]), None) | (None, None) => Ok(params),
                _ => Err(StartupError::BadParameters),
            };
        }
        let value = fields.next().ok_or(StartupError::BadParameters)?;
        let key = std::str::from_utf8(key).map_err(|_| StartupError::BadParameters)?;
        let value = std::str::from_utf8(value).map_err(|_| StartupError::BadParameters)?;
        params.push((key.to_owned(), value.to_owned()));
    }
}

#[cfg(test)]
mod tests;
