use super::*;

fn cmd(parts: &[&str]) -> Command {
    Command::from_parts(parts).unwrap()
}

fn next(input: &[u8]) -> Result<Option<Request>, CommandError> {
    let mut buf = BytesMut::from(input);
    next_command(&mut buf, &RequestLimits::default())
}

#[test]
fn array_and_inline_forms_give_the_same_command() {
    let resp = next(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$3\r\nb c\r\n")
        .unwrap()
        .unwrap();
    let inline = next(b"SET a \"b c\"\r\n").unwrap().unwrap();
    assert_eq!(resp.command, inline.command);
    assert_eq!(resp.command, Some(cmd(&["SET", "a", "b c"])));
    assert_eq!(&inline.raw[..], b"SET a \"b c\"\r\n");
}

#[test]
fn requests_are_split_one_at_a_time() {
    let mut buf = BytesMut::from(&b"PING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET"[..]);
    let limits = RequestLimits::default();
    let first = next_command(&mut buf, &limits).unwrap().unwrap();
    let second = next_command(&mut buf, &limits).unwrap().unwrap();
    assert_eq!(first.command, second.command);
    assert_eq!(next_command(&mut buf, &limits).unwrap(), None);
    assert_eq!(&buf[..], b"*2\r\n$3\r\nGET");
    assert_eq!(next_command(&mut BytesMut::new(), &limits).unwrap(), None);
}

#[test]
fn empty_requests_carry_no_command() {
    for input in [&b"*0\r\n"[..], b"*-1\r\n", b"\r\n", b"   \n"] {
        let request = next(input).unwrap().unwrap();
        assert_eq!(request.command, None, "{input:?}");
        assert_eq!(&request.raw[..], input);
    }
}

#[test]
fn requests_must_be_arrays_of_bulk_strings() {
    assert_eq!(next(b"*1\r\n:1\r\n"), Err(CommandError::NotBulk(b':')));
    assert_eq!(next(b"*1\r\n*0\r\n"), Err(CommandError::NotBulk(b'*')));
    // Like Redis: refused at the element's first byte, whatever follows.
    assert_eq!(
        next(b"*1\r\n*1\r\n$1\r\na\r\n"),
        Err(CommandError::NotBulk(b'*'))
    );
    assert_eq!(next(b"*1\r\n_\r\n"), Err(CommandError::NotBulk(b'_')));
    assert_eq!(
        next(b"*3\r\n$1\r\na\r\n:"),
        Err(CommandError::NotBulk(b':'))
    );
    assert_eq!(next(b"*2\r\n$-1\r\n"), Err(CommandError::NotBulk(b'_')));
    assert_eq!(
        next(b"SET a \"b\r\n"),
        Err(CommandError::Inline(InlineError::UnbalancedQuotes))
    );
    assert_eq!(
        CommandError::NotBulk(b':').to_string(),
        "Protocol error: expected '$', got ':'"
    );
    assert_eq!(
        Command::from_frame(Frame::Integer(1)),
        Err(CommandError::NotArray)
    );
}

#[test]
fn request_size_limit_applies_to_bulk_headers() {
    let limits = RequestLimits {
        frame: Limits {
            max_frame_size: 100,
            ..Limits::default()
        },
        max_inline_len: 10,
        unauthenticated: false,
    };
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1000\r\n"[..]);
    assert!(matches!(
        next_command(&mut buf, &limits),
        Err(CommandError::Frame(FrameError::TooLarge {
            len: 1000,
            max: 100
        }))
    ));
    let mut buf = BytesMut::from(&b"GET aaaaaaaaaaaaaaa"[..]);
    assert!(matches!(
        next_command(&mut buf, &limits),
        Err(CommandError::Inline(InlineError::TooLong { .. }))
    ));
}

#[test]
fn names_compare_case_insensitively_without_allocating() {
    let c = cmd(&["gEt", "k"]);
    assert!(c.is("GET") && c.is("get") && !c.is("GETEX"));
    let upper = c.name_upper().unwrap();
    assert_eq!(&upper[..], b"GET");
    assert_eq!(upper.as_str(), Some("GET"));
    assert_eq!(
        cmd(&["georadiusbymember_ro"])
            .name_upper()
            .unwrap()
            .as_str(),
        Some("GEORADIUSBYMEMBER_RO")
    );
    assert_eq!(cmd(&[&"x".repeat(33)]).name_upper(), None);
    assert_eq!(Command { args: vec![] }.name(), b"");
    assert_eq!(Command { args: vec![] }.name_upper(), None);
    assert_eq!(Command::new(vec![]), None);
}

#[test]
fn encodes_as_an_array_of_bulk_strings() {
    let c = cmd(&["SET", "k", ""]);
    assert_eq!(
        &c.to_bytes()[..],
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    );
    let mut buf = BytesMut::from(&c.to_bytes()[..]);
    let back = next_command(&mut buf, &RequestLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(back.command, Some(c));
}

#[test]
fn debug_redacts_credentials() {
    let cases = [
        (
            cmd(&["AUTH", "user", "s3cret"]),
            "Command(AUTH <2 args redacted>)",
        ),
        (
            cmd(&["hello", "3", "AUTH", "u", "s3cret"]),
            "Command(hello <4 args redacted>)",
        ),
        (
            cmd(&["CONFIG", "SET", "requirepass", "s3cret"]),
            "Command(CONFIG <3 args redacted>)",
        ),
        (
            cmd(&["ACL", "SETUSER", "u", ">s3cret"]),
            "Command(ACL <3 args redacted>)",
        ),
    ];
    for (c, want) in cases {
        let shown = format!("{c:?}");
        assert_eq!(shown, want);
        assert!(!shown.contains("s3cret"));
    }
    assert_eq!(
        format!("{:?}", cmd(&["GET", "k"])),
        r#"Command("GET", "k")"#
    );
}
