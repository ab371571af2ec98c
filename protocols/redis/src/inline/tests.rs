use super::*;

fn args(line: &[u8]) -> Result<Vec<Vec<u8>>, InlineError> {
    split_args(line).map(|v| v.into_iter().map(|b| b.to_vec()).collect())
}

fn ok(line: &str, expected: &[&[u8]]) {
    let expected: Vec<Vec<u8>> = expected.iter().map(|a| a.to_vec()).collect();
    assert_eq!(args(line.as_bytes()), Ok(expected), "{line:?}");
}

#[test]
fn splits_like_sdssplitargs() {
    ok("PING", &[b"PING"]);
    ok("  SET   a  b  ", &[b"SET", b"a", b"b"]);
    ok("SET a \"b c\"", &[b"SET", b"a", b"b c"]);
    ok("SET a 'b c'", &[b"SET", b"a", b"b c"]);
    ok("SET a \"\"", &[b"SET", b"a", b""]);
    ok("SET a ''", &[b"SET", b"a", b""]);
    ok(
        r#"SET a "line\nbreak\ttab\rret""#,
        &[b"SET", b"a", b"line\nbreak\ttab\rret"],
    );
    ok(
        r#"SET a "\x41\x7a\xff\x00!""#,
        &[b"SET", b"a", b"Az\xff\x00!"],
    );
    ok(r#"SET a "\xZZ""#, &[b"SET", b"a", b"xZZ"]);
    ok(r#"SET a "\b\a""#, &[b"SET", b"a", b"\x08\x07"]);
    ok(r#"SET a "q\"uote\\""#, &[b"SET", b"a", b"q\"uote\\"]);
    ok(r#"SET a 'it\'s'"#, &[b"SET", b"a", b"it's"]);
    // Only \' is an escape inside single quotes.
    ok(r#"SET a 'x\ny'"#, &[b"SET", b"a", b"x\\ny"]);
    // A quote may open mid-token; its content joins the token.
    ok(r#"SET a"b c" d"#, &[b"SET", b"ab c", b"d"]);
    ok("SET\ta\tb", &[b"SET", b"a", b"b"]);
    // \v and \f separate tokens only as leading whitespace.
    ok("a\x0bb", &[b"a\x0bb"]);
    ok("a \x0bb", &[b"a", b"b"]);
    ok("", &[]);
    ok("   ", &[]);
}

#[test]
fn rejects_unbalanced_quotes() {
    for line in [
        "SET a \"b",
        "SET a 'b",
        "SET a \"b\"c",
        "SET a 'b'c",
        "SET a \"b\\",
        "\"",
    ] {
        assert_eq!(
            args(line.as_bytes()),
            Err(InlineError::UnbalancedQuotes),
            "{line:?}"
        );
    }
    assert_eq!(args(b"GET a\0b"), Err(InlineError::Nul));
    // A closing quote followed by \v is fine (C isspace).
    assert!(args(b"SET a \"b\"\x0b").is_ok());
}

#[test]
fn next_line_takes_one_line_and_waits_for_the_rest() {
    let mut buf = BytesMut::from(&b"PING\r\nSET a \"b c\"\nGET"[..]);
    let first = next_line(&mut buf, 1024).unwrap().unwrap();
    assert_eq!(first.args, vec![Bytes::from_static(b"PING")]);
    assert_eq!(&first.raw[..], b"PING\r\n");
    let second = next_line(&mut buf, 1024).unwrap().unwrap();
    assert_eq!(second.args.len(), 3);
    assert_eq!(&second.args[2][..], b"b c");
    assert_eq!(next_line(&mut buf, 1024).unwrap(), None);
    assert_eq!(&buf[..], b"GET");
}

#[test]
fn blank_lines_have_no_args() {
    let mut buf = BytesMut::from(&b"\r\n\n"[..]);
    assert!(next_line(&mut buf, 16).unwrap().unwrap().args.is_empty());
    assert!(next_line(&mut buf, 16).unwrap().unwrap().args.is_empty());
    assert!(buf.is_empty());
}

#[test]
fn line_length_is_bounded_before_the_newline_arrives() {
    let mut buf = BytesMut::from(&vec![b'a'; 17][..]);
    assert_eq!(
        next_line(&mut buf, 16),
        Err(InlineError::TooLong { max: 16 })
    );
    let mut buf = BytesMut::from(&vec![b'a'; 16][..]);
    assert_eq!(next_line(&mut buf, 16), Ok(None));
    let mut long = vec![b'a'; 20];
    long.push(b'\n');
    let mut buf = BytesMut::from(&long[..]);
    assert_eq!(
        next_line(&mut buf, 16),
        Err(InlineError::TooLong { max: 16 })
    );
    assert_eq!(
        InlineError::UnbalancedQuotes.to_string(),
        "Protocol error: unbalanced quotes in request"
    );
}
