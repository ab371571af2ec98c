use super::*;

/// (user, password, salt, stored hash, client response), computed with
/// Python's hashlib independently of this crate; the stored hash for "m" was
/// written by PostgreSQL 15 (`SET password_encryption = 'md5'; CREATE ROLE m …`).
const VECTORS: &[(&str, &str, [u8; 4], &str, &str)] = &[
    (
        "postgres",
        "postgres",
        [1, 2, 3, 4],
        "md53175bce1d3201d16594cebf9d7eb3f9d",
        "md568be9ed08db75f318087ab337aaea044",
    ),
    (
        "alice",
        "s3cr3t",
        [0xde, 0xad, 0xbe, 0xef],
        "md58505fe3f3de8521be02f7b633dae545d",
        "md5f4ae1027427ba7f70c4ff1f49b2de6b2",
    ),
    (
        "ünï",
        "pässwörd",
        [0, 0, 0, 0],
        "md53a1175821c3d307868bb13998fbfb33a",
        "md53820cffbafcb90d3b3b3d1bd3f29c4cb",
    ),
    (
        "m",
        "postgres",
        [9, 8, 7, 6],
        "md5e55f71fef883ee8efa627b60ba1e4c26",
        "md58e8320ff7ead1d58b31e6863a02f202a",
    ),
];

#[test]
fn known_vectors() {
    for &(user, password, salt, stored, response) in VECTORS {
        assert_eq!(
            stored_hash(user, password),
            stored,
            "stored hash for {user}"
        );
        assert_eq!(
            client_response(user, password, salt),
            response,
            "response for {user}"
        );
        assert_eq!(response_from_stored(stored, salt).unwrap(), response);
        assert!(verify(stored, salt, response), "verify for {user}");
        assert!(is_md5_hash(stored));
    }
}

#[test]
fn verify_rejects_wrong_answers() {
    let (_, _, salt, stored, response) = VECTORS[0];
    // Wrong salt, wrong password, truncated, upper-cased, empty.
    assert!(!verify(stored, [4, 3, 2, 1], response));
    assert!(!verify(
        stored,
        salt,
        &client_response("postgres", "nope", salt)
    ));
    assert!(!verify(stored, salt, &response[..34]));
    assert!(!verify(stored, salt, &response.to_uppercase()));
    assert!(!verify(stored, salt, ""));
    // The stored hash itself is not a valid answer (no pass-the-hash on the wire).
    assert!(!verify(stored, salt, stored));
}

#[test]
fn malformed_stored_hash_is_an_error_and_never_verifies() {
    let bad = [
        "",
        "md5",
        "3175bce1d3201d16594cebf9d7eb3f9d",
        "md53175BCE1D3201D16594CEBF9D7EB3F9D",
        "md53175bce1d3201d16594cebf9d7eb3f9",
        "md53175bce1d3201d16594cebf9d7eb3f9dd",
        "md53175bce1d3201d16594cebf9d7eb3f9g",
        "SCRAM-SHA-256$4096:c2FsdA==$a:b",
        "md5ééééééééééééééé",
    ];
    for s in bad {
        assert!(!is_md5_hash(s), "{s:?} accepted as md5 hash");
        assert!(
            matches!(
                response_from_stored(s, [0; 4]),
                Err(AuthError::InvalidVerifier(_))
            ),
            "{s:?}"
        );
        assert!(!verify(s, [0; 4], "md568be9ed08db75f318087ab337aaea044"));
    }
}
