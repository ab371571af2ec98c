use super::*;

#[test]
fn error_messages_say_what_is_wrong() {
    let cases = [
        (AuthError::WrongPassword, "wrong password"),
        (
            AuthError::Malformed("client-first lacks the nonce (r=)"),
            "lacks the nonce (r=)",
        ),
        (AuthError::UnsupportedChannelBinding, "channel binding"),
        (AuthError::NonceMismatch, "nonce"),
        (AuthError::BadServerSignature, "server's SCRAM signature"),
        (
            AuthError::ServerError("invalid-proof".into()),
            "rejected SCRAM authentication: invalid-proof",
        ),
        (
            AuthError::InvalidVerifier("bad StoredKey".into()),
            "invalid password verifier: bad StoredKey",
        ),
        (
            AuthError::Iterations(0),
            "iteration count 0 is out of range (1..=10000000)",
        ),
        (
            AuthError::OutOfOrder("client-final before client-first"),
            "out of order",
        ),
    ];
    for (error, expected) in cases {
        let text = error.to_string();
        assert!(text.contains(expected), "{text:?} lacks {expected:?}");
    }
}
