//! Parse (sans-IO) → route: SCRAM-SHA-256 (RFC 5802 / RFC 7677) the way
//! PostgreSQL speaks it — no channel binding, and the username inside the
//! exchange is ignored (the startup packet already named the role).
//!
//! [`ScramServer`] checks a client that logs into Attaché; [`ScramClient`]
//! logs Attaché into a backend. Both are plain state machines fed with the
//! SASL payloads; nonces and salts come from the caller.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::digest::{Key as MacKey, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AuthError;

/// The SASL mechanism name announced in AuthenticationSASL.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// Largest PBKDF2 iteration count Attaché computes. A hostile server could
/// otherwise pin a CPU core by asking for billions of rounds.
pub const MAX_ITERATIONS: u32 = 10_000_000;

const KEY_LEN: usize = 32;
type Key = [u8; KEY_LEN];
type HmacSha256 = Hmac<Sha256>;

/// A role's stored SCRAM secret, as in `pg_authid.rolpassword`.
///
/// Holding it lets Attaché check clients without knowing the password; it is
/// still sensitive (it allows offline guessing), so `Debug` hides the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// PBKDF2 salt (raw bytes, not base64).
    pub salt: Vec<u8>,
    /// `H(ClientKey)`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

impl ScramVerifier {
    /// Parses `SCRAM-SHA-256$<iter>:<salt-b64>$<StoredKey-b64>:<ServerKey-b64>`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let invalid = |what: &str| AuthError::InvalidVerifier(what.to_owned());
        let rest = s
            .strip_prefix(MECHANISM)
            .and_then(|r| r.strip_prefix('$'))
            .ok_or_else(|| invalid("it does not start with \"SCRAM-SHA-256$\""))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or_else(|| invalid("missing '$' between parameters and keys"))?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or_else(|| invalid("missing ':' between iteration count and salt"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or_else(|| invalid("missing ':' between StoredKey and ServerKey"))?;
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|&i| i > 0)
            .ok_or_else(|| invalid("the iteration count is not a positive integer"))?;
        let salt = B64
            .decode(salt)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("the salt is not non-empty base64"))?;
        let stored_key = decode_key(stored_key).ok_or_else(|| invalid("bad StoredKey"))?;
        let server_key = decode_key(server_key).ok_or_else(|| invalid("bad ServerKey"))?;
        Ok(Self {
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    /// Derives the verifier PostgreSQL would store for `password`.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Result<Self, AuthError> {
        check_iterations(u64::from(iterations))?;
        let keys = SaltedKeys::derive(&prepare_password(password), salt, iterations);
        Ok(Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        })
    }

    /// Whether `s` parses as a SCRAM-SHA-256 verifier.
    pub fn is_verifier(s: &str) -> bool {
        Self::parse(s).is_ok()
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{MECHANISM}${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

/// Server side of the exchange: Attaché checking a connecting client.
pub struct ScramServer {
    verifier: ScramVerifier,
    server_nonce: String,
    state: ServerState,
}

enum ServerState {
    AwaitClientFirst,
    AwaitClientFinal(Box<ServerPending>),
    Done { client_key: Key },
    Failed,
}

/// What the server remembers between its first and final message.
struct ServerPending {
    gs2_header: Vec<u8>,
    client_first_bare: Vec<u8>,
    server_first: Vec<u8>,
    nonce: Vec<u8>,
}

impl ScramServer {
    /// `server_nonce` must be printable ASCII without commas (e.g. base64 of
    /// 18 random bytes); the caller draws it so this type stays deterministic.
    pub fn new(verifier: ScramVerifier, server_nonce: &str) -> Self {
        Self {
            verifier,
            server_nonce: server_nonce.to_owned(),
            state: ServerState::AwaitClientFirst,
        }
    }

    /// Takes the SASLInitialResponse data (`n,,n=,r=<cnonce>`) and returns the
    /// server-first message (`r=<cnonce><snonce>,s=<salt>,i=<iter>`).
    pub fn handle_client_first(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(
            std::mem::replace(&mut self.state, ServerState::Failed),
            ServerState::AwaitClientFirst
        ) {
            return Err(AuthError::OutOfOrder("client-first message sent twice"));
        }
        if !is_printable_nonce(self.server_nonce.as_bytes()) {
            return Err(AuthError::Malformed(
                "server nonce must be printable ASCII without commas",
            ));
        }
        let first = parse_client_first(data)?;
        let mut nonce = first.nonce.to_vec();
        nonce.extend_from_slice(self.server_nonce.as_bytes());
        let mut server_first = b"r=".to_vec();
        server_first.extend_from_slice(&nonce);
        server_first.extend_from_slice(
            format!(
                ",s={},i={}",
                B64.encode(&self.verifier.salt),
                self.verifier.iterations
            )
            .as_bytes(),
        );
        self.state = ServerState::AwaitClientFinal(Box::new(ServerPending {
            gs2_header: first.gs2_header.to_vec(),
            client_first_bare: first.bare.to_vec(),
            server_first: server_first.clone(),
            nonce,
        }));
        Ok(server_first)
    }

    /// Takes the client-final message (`c=biws,r=…,p=…`), checks the proof
    /// and returns the server-final message (`v=<ServerSignature>`).
    pub fn handle_client_final(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let pending = match std::mem::replace(&mut self.state, ServerState::Failed) {
            ServerState::AwaitClientFinal(pending) => pending,
            _ => return Err(AuthError::OutOfOrder("client-final before client-first")),
        };
        let fin = parse_client_final(data)?;
        let binding = B64
            .decode(fin.channel_binding)
            .map_err(|_| AuthError::Malformed("channel-binding attribute (c=) is not base64"))?;
        if binding != pending.gs2_header {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if !bool::from(fin.nonce.ct_eq(&pending.nonce)) {
            return Err(AuthError::NonceMismatch);
        }
        let proof = decode_key_bytes(fin.proof).ok_or(AuthError::Malformed(
            "client proof (p=) is not 32 bytes of base64",
        ))?;
        let auth_message = join_auth_message(
            &pending.client_first_bare,
            &pending.server_first,
            fin.without_proof,
        );
        let signature = hmac_sha256(&self.verifier.stored_key, &auth_message);
        let client_key = xor(&proof, &signature);
        let stored_key: Key = Sha256::digest(client_key).into();
        if !bool::from(stored_key.ct_eq(&self.verifier.stored_key)) {
            return Err(AuthError::WrongPassword);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, &auth_message);
        self.state = ServerState::Done { client_key };
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }

    /// The client's ClientKey (`ClientProof XOR ClientSignature`), available
    /// after a successful exchange. With it Attaché can log into a backend as
    /// this user without ever learning the password.
    pub fn client_key(&self) -> Option<[u8; 32]> {
        match self.state {
            ServerState::Done { client_key } => Some(client_key),
            _ => None,
        }
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl ServerState {
    fn name(&self) -> &'static str {
        match self {
            Self::AwaitClientFirst => "await-client-first",
            Self::AwaitClientFinal(_) => "await-client-final",
            Self::Done { .. } => "done",
            Self::Failed => "failed",
        }
    }
}

/// Client side of the exchange: Attaché logging into a backend.
pub struct ScramClient {
    /// SASLprep-ed password bytes.
    password: Vec<u8>,
    /// Always empty in production (PostgreSQL ignores it); tests set it to
    /// replay the RFC 7677 vector byte for byte.
    username: String,
    client_nonce: String,
    state: ClientState,
}

enum ClientState {
    Initial,
    AwaitServerFinal { server_signature: Key },
    Done,
    Failed,
}

impl ScramClient {
    /// `client_nonce` must be printable ASCII without commas (e.g. base64 of
    /// 18 random bytes); the caller draws it.
    pub fn new(password: &str, client_nonce: &str) -> Self {
        Self {
            password: prepare_password(password),
            username: String::new(),
            client_nonce: client_nonce.to_owned(),
            state: ClientState::Initial,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_username(mut self, username: &str) -> Self {
        self.username = username.to_owned();
        self
    }

    /// The SASLInitialResponse data: `n,,n=,r=<nonce>`.
    pub fn client_first(&self) -> Vec<u8> {
        let mut out = b"n,,".to_vec();
        out.extend_from_slice(&self.client_first_bare());
        out
    }

    fn client_first_bare(&self) -> Vec<u8> {
        format!("n={},r={}", self.username, self.client_nonce).into_bytes()
    }

    /// Takes the server-first message and returns client-final
    /// (`c=biws,r=<nonce>,p=<proof>`).
    pub fn handle_server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(
            std::mem::replace(&mut self.state, ClientState::Failed),
            ClientState::Initial
        ) {
            return Err(AuthError::OutOfOrder("server-first message received twice"));
        }
        if !is_printable_nonce(self.client_nonce.as_bytes()) {
            return Err(AuthError::Malformed(
                "client nonce must be printable ASCII without commas",
            ));
        }
        let first = parse_server_first(data)?;
        let ours = self.client_nonce.as_bytes();
        if first.nonce.len() <= ours.len() || !first.nonce.starts_with(ours) {
            return Err(AuthError::NonceMismatch);
        }
        let keys = SaltedKeys::derive(&self.password, &first.salt, first.iterations);
        let mut without_proof = b"c=biws,r=".to_vec();
        without_proof.extend_from_slice(first.nonce);
        let auth_message = join_auth_message(&self.client_first_bare(), data, &without_proof);
        let signature = hmac_sha256(&keys.stored_key, &auth_message);
        let proof = xor(&keys.client_key, &signature);
        self.state = ClientState::AwaitServerFinal {
            server_signature: hmac_sha256(&keys.server_key, &auth_message),
        };
        without_proof.extend_from_slice(b",p=");
        without_proof.extend_from_slice(B64.encode(proof).as_bytes());
        Ok(without_proof)
    }

    /// Checks the server-final message: `v=<sig>` must prove the server knows
    /// the verifier; `e=<text>` is the server refusing us.
    pub fn handle_server_final(&mut self, data: &[u8]) -> Result<(), AuthError> {
        let expected = match std::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::AwaitServerFinal { server_signature } => server_signature,
            _ => return Err(AuthError::OutOfOrder("server-final before server-first")),
        };
        let first = data.split(|&b| b == b',').next().unwrap_or_default();
        if let Some(text) = first.strip_prefix(b"e=") {
            return Err(AuthError::ServerError(
                String::from_utf8_lossy(text).into_owned(),
            ));
        }
        let signature = first
            .strip_prefix(b"v=")
            .ok_or(AuthError::Malformed("server-final lacks the verifier (v=)"))?;
        let signature = decode_key_bytes(signature).ok_or(AuthError::Malformed(
            "server signature (v=) is not 32 bytes of base64",
        ))?;
        if !bool::from(signature.ct_eq(&expected)) {
            return Err(AuthError::BadServerSignature);
        }
        self.state = ClientState::Done;
        Ok(())
    }

    /// Whether the server proved itself (after [`Self::handle_server_final`]).
    pub fn is_done(&self) -> bool {
        matches!(self.state, ClientState::Done)
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            ClientState::Initial => "initial",
            ClientState::AwaitServerFinal { .. } => "await-server-final",
            ClientState::Done => "done",
            ClientState::Failed => "failed",
        };
        f.debug_struct("ScramClient")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// The three keys derived from a password (RFC 5802 §3).
struct SaltedKeys {
    client_key: Key,
    stored_key: Key,
    server_key: Key,
}

impl SaltedKeys {
    fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let mut salted = [0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Self {
            client_key,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }
}

/// SASLprep the password as PostgreSQL does, keeping the raw bytes when
/// SASLprep refuses it (prohibited or unassigned characters), so passwords
/// set by libpq with the same fallback still match.
fn prepare_password(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(prepared) => prepared.as_bytes().to_vec(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

fn check_iterations(iterations: u64) -> Result<u32, AuthError> {
    match u32::try_from(iterations) {
        Ok(i) if (1..=MAX_ITERATIONS).contains(&i) => Ok(i),
        _ => Err(AuthError::Iterations(iterations)),
    }
}

fn hmac_sha256(key: &Key, message: &[u8]) -> Key {
    // HMAC zero-pads keys shorter than its 64-byte block, so padding the
    // 32-byte key ourselves yields the same MAC through the infallible
    // fixed-size constructor.
    let mut block = MacKey::<HmacSha256>::default();
    block[..KEY_LEN].copy_from_slice(key);
    let mut mac = <HmacSha256 as KeyInit>::new(&block);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn xor(a: &Key, b: &Key) -> Key {
    let mut out = [0u8; KEY_LEN];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

fn join_auth_message(client_first_bare: &[u8], server_first: &[u8], final_bare: &[u8]) -> Vec<u8> {
    [client_first_bare, server_first, final_bare].join(&b","[..])
}

fn decode_key(b64: &str) -> Option<Key> {
    decode_key_bytes(b64.as_bytes())
}

fn decode_key_bytes(b64: &[u8]) -> Option<Key> {
    B64.decode(b64).ok()?.try_into().ok()
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E, at least one character.
fn is_printable_nonce(nonce: &[u8]) -> bool {
    !nonce.is_empty()
        && nonce
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// The parts of client-first the server needs, borrowed from the input.
struct ClientFirst<'a> {
    gs2_header: &'a [u8],
    bare: &'a [u8],
    nonce: &'a [u8],
}

fn parse_client_first(data: &[u8]) -> Result<ClientFirst<'_>, AuthError> {
    let mut commas = data
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b',')
        .map(|(i, _)| i);
    let (first, second) = match (commas.next(), commas.next()) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(AuthError::Malformed("client-first lacks a GS2 header")),
    };
    match &data[..first] {
        b"n" | b"y" => {}
        flag if flag.starts_with(b"p=") => return Err(AuthError::UnsupportedChannelBinding),
        _ => return Err(AuthError::Malformed("unknown GS2 channel-binding flag")),
    }
    if second != first + 1 {
        return Err(AuthError::Malformed(
            "authorization identity (a=) is not supported",
        ));
    }
    let bare = &data[second + 1..];
    let mut attrs = bare.split(|&b| b == b',');
    match attrs.next() {
        Some(a) if a.starts_with(b"m=") => {
            return Err(AuthError::Malformed(
                "mandatory extension (m=) is not supported",
            ))
        }
        Some(a) if a.starts_with(b"n=") => {}
        _ => return Err(AuthError::Malformed("client-first lacks the username (n=)")),
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix(b"r="))
        .ok_or(AuthError::Malformed("client-first lacks the nonce (r=)"))?;
    if !is_printable_nonce(nonce) {
        return Err(AuthError::Malformed(
            "client nonce (r=) is not printable ASCII",
        ));
    }
    Ok(ClientFirst {
        gs2_header: &data[..=second],
        bare,
        nonce,
    })
}

/// The parts of client-final, borrowed from the input.
struct ClientFinal<'a> {
    channel_binding: &'a [u8],
    nonce: &'a [u8],
    proof: &'a [u8],
    without_proof: &'a [u8],
}

fn parse_client_final(data: &[u8]) -> Result<ClientFinal<'_>, AuthError> {
    let last_comma = data
        .iter()
        .rposition(|&b| b == b',')
        .ok_or(AuthError::Malformed("client-final lacks the proof (p=)"))?;
    let proof = data[last_comma + 1..]
        .strip_prefix(b"p=")
        .ok_or(AuthError::Malformed(
            "client-final does not end with the proof (p=)",
        ))?;
    let without_proof = &data[..last_comma];
    let mut attrs = without_proof.split(|&b| b == b',');
    let channel_binding =
        attrs
            .next()
            .and_then(|a| a.strip_prefix(b"c="))
            .ok_or(AuthError::Malformed(
                "client-final lacks channel binding (c=)",
            ))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix(b"r="))
        .ok_or(AuthError::Malformed("client-final lacks the nonce (r=)"))?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

/// The parts of server-first the client needs.
struct ServerFirst<'a> {
    nonce: &'a [u8],
    salt: Vec<u8>,
    iterations: u32,
}

fn parse_server_first(data: &[u8]) -> Result<ServerFirst<'_>, AuthError> {
    let mut attrs = data.split(|&b| b == b',');
    let nonce = match attrs.next() {
        Some(a) if a.starts_with(b"m=") => {
            return Err(AuthError::Malformed(
                "mandatory extension (m=) is not supported",
            ))
        }
        Some(a) => a
            .strip_prefix(b"r=")
            .ok_or(AuthError::Malformed("server-first lacks the nonce (r=)"))?,
        None => return Err(AuthError::Malformed("server-first is empty")),
    };
    if !is_printable_nonce(nonce) {
        return Err(AuthError::Malformed(
            "server nonce (r=) is not printable ASCII",
        ));
    }
    let salt = attrs
        .next()
        .and_then(|a| a.strip_prefix(b"s="))
        .ok_or(AuthError::Malformed("server-first lacks the salt (s=)"))?;
    let salt = B64
        .decode(salt)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Malformed("salt (s=) is not non-empty base64"))?;
    let iterations =
        attrs
            .next()
            .and_then(|a| a.strip_prefix(b"i="))
            .ok_or(AuthError::Malformed(
                "server-first lacks the iteration count (i=)",
            ))?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations: check_iterations(parse_decimal(iterations)?)?,
    })
}

/// Decimal digits to u64, saturating so absurd counts report as out of range.
fn parse_decimal(digits: &[u8]) -> Result<u64, AuthError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(AuthError::Malformed("iteration count (i=) is not a number"));
    }
    Ok(digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests;
