//! Parse (sans-IO) → route: PostgreSQL's legacy MD5 password exchange.
//!
//! The stored form is `"md5" + hex(md5(password ++ user))`; on the wire the
//! client answers a 4-byte salt with `"md5" + hex(md5(stored_hex ++ salt))`.
//! Because the wire answer only needs the stored hash, Attaché can both check
//! clients and log into servers while holding nothing but that hash.

use ::md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::AuthError;

/// Length of `"md5"` followed by 32 hex digits.
const HASH_LEN: usize = 35;

/// The hash PostgreSQL stores in `pg_authid.rolpassword` for MD5 roles.
pub fn stored_hash(user: &str, password: &str) -> String {
    md5_hex_prefixed(&[password.as_bytes(), user.as_bytes()])
}

/// What a client sends in its PasswordMessage for the given salt.
pub fn client_response(user: &str, password: &str, salt: [u8; 4]) -> String {
    let stored = stored_hash(user, password);
    md5_hex_prefixed(&[&stored.as_bytes()[3..], &salt])
}

/// The wire answer computed from a stored hash alone, for checking clients
/// or logging into a server when only the hash is configured.
pub fn response_from_stored(stored_hash: &str, salt: [u8; 4]) -> Result<String, AuthError> {
    if !is_md5_hash(stored_hash) {
        return Err(AuthError::InvalidVerifier(
            "an MD5 password hash must be \"md5\" followed by 32 lowercase hex digits".into(),
        ));
    }
    Ok(md5_hex_prefixed(&[&stored_hash.as_bytes()[3..], &salt]))
}

/// Checks a client's answer in constant time, so response timing does not
/// reveal how many leading characters matched. A malformed stored hash never
/// verifies.
pub fn verify(stored_hash: &str, salt: [u8; 4], response: &str) -> bool {
    match response_from_stored(stored_hash, salt) {
        Ok(expected) => bool::from(expected.as_bytes().ct_eq(response.as_bytes())),
        Err(_) => false,
    }
}

/// Whether `s` has the exact shape PostgreSQL stores: `"md5"` + 32 lowercase hex.
pub fn is_md5_hash(s: &str) -> bool {
    s.len() == HASH_LEN
        && s.starts_with("md5")
        && s.bytes()
            .skip(3)
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn md5_hex_prefixed(parts: &[&[u8]]) -> String {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(HASH_LEN);
    out.push_str("md5");
    for byte in digest {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

#[cfg(test)]
mod tests;
