use super::*;

// RFC 7677 §3 test vector.
const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
/// ClientKey for "pencil" with the RFC salt, computed with Python's hashlib.
const RFC_CLIENT_KEY_B64: &str = "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos=";
/// The same secret as PostgreSQL stores it, computed with Python's hashlib.
const RFC_VERIFIER: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
                            WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:\
                            wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

/// Verifiers written by PostgreSQL 15 (`CREATE ROLE … PASSWORD …`).
const PG15_VERIFIERS: &[(&str, &str)] = &[
    (
        "pencil",
        "SCRAM-SHA-256$4096:zBYsI2OiIwgSofk3FzQbYA==$KX1f/D2e5nEi1+lWxgiAh5qz6r8WjneSwoY+G3Cva0g=:+vttdJzzt++VV9LjA0Sq2Vd4hJX6BTY0VwPn/L7Vp5g=",
    ),
    (
        "pässwörd ñ",
        "SCRAM-SHA-256$4096:rBi5Ny7ufgcPe4JAgzBW/g==$aqSQA/9zpIc9XEXYpQGFs2FmjuuEWcsOa0kmoVOAaYU=:nkbFOqDMEkDiOgLkLiEbNDmg0aiq2TanyeEJixj4FIg=",
    ),
    // Soft hyphen: SASLprep maps it to nothing, so this is "pencil".
    (
        "pen\u{ad}cil",
        "SCRAM-SHA-256$4096:mKNx0FZAnRjPwn7/ylZkew==$nTyoq/tCnfvH0BbzU+QdOgrEwbZ5HKKp6K/Eg/S51U4=:iRcKypZraoC7fQBtaywtom/KZ+ftM8UdwYtO9Z3T6TE=",
    ),
    // A control character makes SASLprep fail: PostgreSQL uses the raw bytes.
    (
        "bell\u{7}pw",
        "SCRAM-SHA-256$4096:JpLBUGD/eSOECJQlEQlnFA==$3IC5xIdUly15VNmiy2derAnma3I6Eo3WrR9L04sBPh4=:sYG6oAfIlRCnSWuFebCMOmIfmAlQQl4CvNNDKff7Q2w=",
    ),
];

/// Whether an error is the expected kind.
type Check = fn(&AuthError) -> bool;

fn rfc_salt() -> Vec<u8> {
    B64.decode(RFC_SALT_B64).unwrap()
}

fn rfc_verifier() -> ScramVerifier {
    ScramVerifier::from_password("pencil", &rfc_salt(), 4096).unwrap()
}

/// Runs a whole exchange; returns the server (to inspect) and the result.
fn exchange(verifier: ScramVerifier, password: &str) -> (ScramServer, Result<(), AuthError>) {
    let mut server = ScramServer::new(verifier, "srvNONCE+/=");
    let mut client = ScramClient::new(password, "cliNONCE");
    let result = (|| {
        let server_first = server.handle_client_first(&client.client_first())?;
        let client_final = client.handle_server_first(&server_first)?;
        let server_final = server.handle_client_final(&client_final)?;
        client.handle_server_final(&server_final)?;
        assert!(client.is_done());
        Ok(())
    })();
    (server, result)
}

#[test]
fn verifier_from_password_matches_independent_computation() {
    let verifier = rfc_verifier();
    assert_eq!(verifier.to_string(), RFC_VERIFIER);
    assert_eq!(ScramVerifier::parse(RFC_VERIFIER).unwrap(), verifier);
}

#[test]
fn rfc7677_vector_client_side() {
    let mut client = ScramClient::new("pencil", RFC_CLIENT_NONCE).with_username("user");
    assert_eq!(client.client_first(), RFC_CLIENT_FIRST.as_bytes());
    let client_final = client
        .handle_server_first(RFC_SERVER_FIRST.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(client_final).unwrap(), RFC_CLIENT_FINAL);
    client
        .handle_server_final(RFC_SERVER_FINAL.as_bytes())
        .unwrap();
    assert!(client.is_done());
}

#[test]
fn rfc7677_vector_server_side_and_client_key_recovery() {
    let mut server = ScramServer::new(rfc_verifier(), RFC_SERVER_NONCE);
    let server_first = server
        .handle_client_first(RFC_CLIENT_FIRST.as_bytes())
        .unwrap();
    assert_eq!(server_first, RFC_SERVER_FIRST.as_bytes());
    assert_eq!(server.client_key(), None);
    let server_final = server
        .handle_client_final(RFC_CLIENT_FINAL.as_bytes())
        .unwrap();
    assert_eq!(server_final, RFC_SERVER_FINAL.as_bytes());
    let expected: [u8; 32] = B64.decode(RFC_CLIENT_KEY_B64).unwrap().try_into().unwrap();
    assert_eq!(server.client_key(), Some(expected));
}

#[test]
fn postgres_client_first_has_empty_username() {
    let client = ScramClient::new("pencil", "abc");
    assert_eq!(client.client_first(), b"n,,n=,r=abc");
}

#[test]
fn round_trip_right_and_wrong_password() {
    let (server, result) = exchange(rfc_verifier(), "pencil");
    result.unwrap();
    let expected: [u8; 32] = B64.decode(RFC_CLIENT_KEY_B64).unwrap().try_into().unwrap();
    assert_eq!(server.client_key(), Some(expected));

    let (server, result) = exchange(rfc_verifier(), "pencils");
    assert!(
        matches!(result, Err(AuthError::WrongPassword)),
        "{result:?}"
    );
    assert_eq!(server.client_key(), None);
}

#[test]
fn postgres15_verifiers_parse_round_trip_and_authenticate() {
    for &(password, verifier) in PG15_VERIFIERS {
        let parsed = ScramVerifier::parse(verifier).unwrap();
        assert_eq!(parsed.to_string(), verifier);
        assert!(ScramVerifier::is_verifier(verifier));
        let rebuilt = ScramVerifier::from_password(password, &parsed.salt, parsed.iterations);
        assert_eq!(rebuilt.unwrap(), parsed, "from_password for {password:?}");
        let (_, result) = exchange(parsed.clone(), password);
        result.unwrap_or_else(|e| panic!("{password:?}: {e}"));
        let (_, result) = exchange(parsed, "wrong");
        assert!(matches!(result, Err(AuthError::WrongPassword)));
    }
}

#[test]
fn malformed_verifiers_are_rejected() {
    let key = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=";
    let bad = [
        String::new(),
        "md53175bce1d3201d16594cebf9d7eb3f9d".into(),
        "SCRAM-SHA-1$4096:c2FsdA==$a:b".into(),
        format!("SCRAM-SHA-256$4096:c2FsdA==${key}"),
        format!("SCRAM-SHA-256$4096c2FsdA==${key}:{key}"),
        format!("SCRAM-SHA-256$0:c2FsdA==${key}:{key}"),
        format!("SCRAM-SHA-256$-1:c2FsdA==${key}:{key}"),
        format!("SCRAM-SHA-256$4096:${key}:{key}"),
        format!("SCRAM-SHA-256$4096:!!!${key}:{key}"),
        format!("SCRAM-SHA-256$4096:c2FsdA==${key}:c2FsdA=="),
        format!("SCRAM-SHA-256$4096:c2FsdA==$:{key}"),
    ];
    for s in &bad {
        assert!(
            matches!(ScramVerifier::parse(s), Err(AuthError::InvalidVerifier(_))),
            "{s:?}"
        );
        assert!(!ScramVerifier::is_verifier(s));
    }
}

#[test]
fn from_password_rejects_iteration_extremes() {
    for i in [0, MAX_ITERATIONS + 1, u32::MAX] {
        let result = ScramVerifier::from_password("x", b"salt", i);
        assert!(matches!(result, Err(AuthError::Iterations(n)) if n == u64::from(i)));
    }
}

#[test]
fn server_rejects_malformed_client_first() {
    let cases: &[(&[u8], Check)] = &[
        (b"", |e| matches!(e, AuthError::Malformed(_))),
        (b"n,", |e| matches!(e, AuthError::Malformed(_))),
        (b"n,,", |e| matches!(e, AuthError::Malformed(_))),
        (b"n,,n=", |e| matches!(e, AuthError::Malformed(_))),
        (b"n,,n=,r=", |e| matches!(e, AuthError::Malformed(_))),
        (b"n,,r=abc", |e| matches!(e, AuthError::Malformed(_))),
        (b"n,,m=ext,n=,r=abc", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (b"n,a=admin,n=,r=abc", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (b"x,,n=,r=abc", |e| matches!(e, AuthError::Malformed(_))),
        (b"n,,n=,r=ab\x7fc", |e| matches!(e, AuthError::Malformed(_))),
        (b"p=tls-server-end-point,,n=,r=abc", |e| {
            matches!(e, AuthError::UnsupportedChannelBinding)
        }),
    ];
    for (input, expected) in cases {
        let mut server = ScramServer::new(rfc_verifier(), "srv");
        let err = server.handle_client_first(input).unwrap_err();
        assert!(
            expected(&err),
            "{:?} gave {err:?}",
            String::from_utf8_lossy(input)
        );
        // A failed exchange stays failed.
        assert!(server.handle_client_final(b"c=biws,r=abcsrv,p=").is_err());
        assert_eq!(server.client_key(), None);
    }
}

#[test]
fn server_accepts_y_flag_and_extensions() {
    let mut server = ScramServer::new(rfc_verifier(), "srv");
    let first = server
        .handle_client_first(b"y,,n=ignored,r=abc,x=ext")
        .unwrap();
    assert!(first.starts_with(b"r=abcsrv,s="));
    // With `y` the client must echo `y,,` (eSws), not `n,,` (biws).
    let err = server
        .handle_client_final(b"c=biws,r=abcsrv,p=AAAA")
        .unwrap_err();
    assert!(matches!(err, AuthError::ChannelBindingMismatch), "{err:?}");
}

/// Client-final variants of a valid exchange, each broken in one place.
#[test]
fn server_rejects_malformed_client_final() {
    let nonce = "cliNONCEsrvNONCE+/=";
    let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let cases: Vec<(String, Check)> = vec![
        (String::new(), |e| matches!(e, AuthError::Malformed(_))),
        (format!("c=biws,r={nonce}"), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (format!("r={nonce},p={proof}"), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (format!("c=biws,p={proof}"), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (format!("c=b!ws,r={nonce},p={proof}"), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (format!("c=eSws,r={nonce},p={proof}"), |e| {
            matches!(e, AuthError::ChannelBindingMismatch)
        }),
        (format!("c=biws,r=cliNONCEother,p={proof}"), |e| {
            matches!(e, AuthError::NonceMismatch)
        }),
        (format!("c=biws,r={nonce},p=not base64"), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (format!("c=biws,r={nonce},p=AAAA"), |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        (format!("c=biws,r={nonce},p={proof}"), |e| {
            matches!(e, AuthError::WrongPassword)
        }),
    ];
    for (input, expected) in cases {
        let mut server = ScramServer::new(rfc_verifier(), "srvNONCE+/=");
        server.handle_client_first(b"n,,n=,r=cliNONCE").unwrap();
        let err = server.handle_client_final(input.as_bytes()).unwrap_err();
        assert!(expected(&err), "{input:?} gave {err:?}");
        assert_eq!(server.client_key(), None);
    }
}

#[test]
fn server_rejects_out_of_order_and_bad_nonce() {
    let mut server = ScramServer::new(rfc_verifier(), "srv");
    let err = server
        .handle_client_final(RFC_CLIENT_FINAL.as_bytes())
        .unwrap_err();
    assert!(matches!(err, AuthError::OutOfOrder(_)));

    let mut server = ScramServer::new(rfc_verifier(), "has,comma");
    let err = server.handle_client_first(b"n,,n=,r=abc").unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)));

    let mut server = ScramServer::new(rfc_verifier(), RFC_SERVER_NONCE);
    server
        .handle_client_first(RFC_CLIENT_FIRST.as_bytes())
        .unwrap();
    server
        .handle_client_final(RFC_CLIENT_FINAL.as_bytes())
        .unwrap();
    let err = server
        .handle_client_first(RFC_CLIENT_FIRST.as_bytes())
        .unwrap_err();
    assert!(matches!(err, AuthError::OutOfOrder(_)));
}

#[test]
fn client_rejects_malformed_server_first() {
    let cases: &[(&str, Check)] = &[
        ("", |e| matches!(e, AuthError::Malformed(_))),
        ("r=cliXYZ", |e| matches!(e, AuthError::Malformed(_))),
        ("r=cliXYZ,s=c2FsdA==", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("s=c2FsdA==,i=4096", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("m=x,r=cliXYZ,s=c2FsdA==,i=4096", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("r=cliXYZ,s=***,i=4096", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("r=cliXYZ,s=,i=4096", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("r=cliXYZ,s=c2FsdA==,i=abc", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("r=cliXYZ,s=c2FsdA==,i=", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("r=cliXYZ,s=c2FsdA==,i=-1", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("r=cliXYZ,s=c2FsdA==,i=0", |e| {
            matches!(e, AuthError::Iterations(0))
        }),
        ("r=cliXYZ,s=c2FsdA==,i=10000001", |e| {
            matches!(e, AuthError::Iterations(10_000_001))
        }),
        ("r=cliXYZ,s=c2FsdA==,i=99999999999999999999999", |e| {
            matches!(e, AuthError::Iterations(u64::MAX))
        }),
        ("r=cli,s=c2FsdA==,i=4096", |e| {
            matches!(e, AuthError::NonceMismatch)
        }),
        ("r=XYZcli,s=c2FsdA==,i=4096", |e| {
            matches!(e, AuthError::NonceMismatch)
        }),
        ("r=clXYZ,s=c2FsdA==,i=4096", |e| {
            matches!(e, AuthError::NonceMismatch)
        }),
    ];
    for (input, expected) in cases {
        let mut client = ScramClient::new("pencil", "cli");
        let err = client.handle_server_first(input.as_bytes()).unwrap_err();
        assert!(expected(&err), "{input:?} gave {err:?}");
        assert!(client
            .handle_server_final(RFC_SERVER_FINAL.as_bytes())
            .is_err());
        assert!(!client.is_done());
    }
}

#[test]
fn client_rejects_bad_server_final() {
    let cases: &[(&str, Check)] = &[
        ("", |e| matches!(e, AuthError::Malformed(_))),
        ("v=", |e| matches!(e, AuthError::Malformed(_))),
        ("v=AAAA", |e| matches!(e, AuthError::Malformed(_))),
        ("x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", |e| {
            matches!(e, AuthError::Malformed(_))
        }),
        ("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", |e| {
            matches!(e, AuthError::BadServerSignature)
        }),
        (
            "e=invalid-proof",
            |e| matches!(e, AuthError::ServerError(text) if text == "invalid-proof"),
        ),
    ];
    for (input, expected) in cases {
        let mut client = ScramClient::new("pencil", RFC_CLIENT_NONCE).with_username("user");
        client
            .handle_server_first(RFC_SERVER_FIRST.as_bytes())
            .unwrap();
        let err = client.handle_server_final(input.as_bytes()).unwrap_err();
        assert!(expected(&err), "{input:?} gave {err:?}");
        assert!(!client.is_done());
    }
}

#[test]
fn client_rejects_out_of_order_and_bad_own_nonce() {
    let mut client = ScramClient::new("pencil", "cli");
    let err = client
        .handle_server_final(RFC_SERVER_FINAL.as_bytes())
        .unwrap_err();
    assert!(matches!(err, AuthError::OutOfOrder(_)));

    let mut client = ScramClient::new("pencil", "c,li");
    let err = client
        .handle_server_first(b"r=c,liX,s=c2FsdA==,i=1")
        .unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)));
}

#[test]
fn debug_output_hides_secrets() {
    let verifier = rfc_verifier();
    let text = format!("{verifier:?}");
    assert!(text.contains("4096"), "{text}");
    assert!(!text.contains("stored_key") && !text.contains(&B64.encode(verifier.stored_key)));
    let client = ScramClient::new("hunter2", "nonce");
    assert!(!format!("{client:?}").contains("hunter2"));
    let server = ScramServer::new(verifier, "nonce");
    assert!(!format!("{server:?}").contains("key"));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![b','; 10],
        vec![0xff, 0xfe, b',', 0x00],
        b"n,,n=\xff\xfe,r=abc".to_vec(),
        b"=,=,=,=".to_vec(),
        b"p=,p=,p=".to_vec(),
        "n,,n=ü,r=ü".as_bytes().to_vec(),
        b"v=,e=".to_vec(),
        b"r=,s=,i=,p=".to_vec(),
    ];
    for input in &inputs {
        let mut server = ScramServer::new(rfc_verifier(), "srv");
        let _ = server.handle_client_first(input);
        let _ = server.handle_client_final(input);
        let mut server = ScramServer::new(rfc_verifier(), "srv");
        if server.handle_client_first(b"n,,n=,r=abc").is_ok() {
            assert!(server.handle_client_final(input).is_err());
        }
        let mut client = ScramClient::new("pencil", "cli");
        let _ = client.handle_server_first(input);
        let _ = client.handle_server_final(input);
        assert!(!client.is_done());
    }
}
