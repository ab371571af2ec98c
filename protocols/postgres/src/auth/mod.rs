//! Parse (sans-IO) → route: password authentication state machines, used on
//! both sides of the proxy — as a server when a client logs into Attaché, and
//! as a client when Attaché logs into a backend.
//!
//! Nothing here does IO or draws random numbers: callers pass nonces and salts
//! in, so every exchange is deterministic and can be replayed from a table.

pub mod md5;
pub mod scram;

#[cfg(test)]
mod tests;

/// Why an authentication exchange failed.
///
/// Messages name the offending part but never echo passwords, keys or proofs.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The client proved knowledge of a different password.
    #[error("password authentication failed: wrong password")]
    WrongPassword,
    /// A SCRAM or MD5 message did not follow the expected syntax.
    #[error("malformed authentication message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding (`p=…`), which Attaché does not offer.
    #[error("the client requested SCRAM channel binding, which is not supported")]
    UnsupportedChannelBinding,
    /// The `c=` attribute does not repeat the GS2 header the client sent first.
    #[error("SCRAM channel-binding attribute does not match the client's first message")]
    ChannelBindingMismatch,
    /// The nonce echoed by the peer is not the one this exchange uses.
    #[error("SCRAM nonce does not match the one agreed for this exchange")]
    NonceMismatch,
    /// The server could not prove it knows the password verifier.
    #[error("the server's SCRAM signature is wrong: it does not know this password")]
    BadServerSignature,
    /// The server aborted the SCRAM exchange with `e=<text>`.
    #[error("the server rejected SCRAM authentication: {0}")]
    ServerError(String),
    /// A stored SCRAM verifier or MD5 hash could not be parsed.
    #[error("invalid password verifier: {0}")]
    InvalidVerifier(String),
    /// A PBKDF2 iteration count of zero or one too large to compute safely.
    #[error("SCRAM iteration count {0} is out of range (1..={max})", max = scram::MAX_ITERATIONS)]
    Iterations(u64),
    /// A message arrived when the exchange was not waiting for it.
    #[error("authentication message out of order: {0}")]
    OutOfOrder(&'static str),
}
