use super::*;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn decode_all(input: &[u8], version: Version) -> Result<Option<Decoded>, FrameError> {
    let mut buf = BytesMut::from(input);
    decode(&mut buf, version, &Limits::default())
}

fn one(input: &str, version: Version) -> Frame {
    let decoded = decode_all(input.as_bytes(), version)
        .unwrap()
        .unwrap_or_else(|| panic!("incomplete: {input:?}"));
    assert_eq!(decoded.raw, input.as_bytes(), "raw bytes of {input:?}");
    decoded.frame
}

#[test]
fn decodes_resp2_frames() {
    use Frame::*;
    let cases: Vec<(&str, Frame)> = vec![
        ("+OK\r\n", Simple(b("OK"))),
        ("+\r\n", Simple(b(""))),
        ("-ERR unknown command\r\n", Error(b("ERR unknown command"))),
        (":0\r\n", Integer(0)),
        (":-42\r\n", Integer(-42)),
        (":9223372036854775807\r\n", Integer(i64::MAX)),
        ("$3\r\nfoo\r\n", Bulk(b("foo"))),
        ("$0\r\n\r\n", Bulk(b(""))),
        ("$4\r\na\r\nb\r\n", Bulk(b("a\r\nb"))),
        ("$-1\r\n", Null),
        ("*-1\r\n", Null),
        ("*0\r\n", Array(vec![])),
        (
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
            Array(vec![Bulk(b("SET")), Bulk(b("k")), Bulk(b("v"))]),
        ),
        (
            "*2\r\n*1\r\n:1\r\n$-1\r\n",
            Array(vec![Array(vec![Integer(1)]), Null]),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(one(input, Version::Resp2), expected, "{input:?}");
    }
}

#[test]
fn decodes_resp3_frames() {
    use Frame::*;
    let cases: Vec<(&str, Frame)> = vec![
        ("_\r\n", Null),
        ("#t\r\n", Boolean(true)),
        ("#f\r\n", Boolean(false)),
        (",3.25\r\n", Double(3.25)),
        (",-1.5e3\r\n", Double(-1500.0)),
        (",inf\r\n", Double(f64::INFINITY)),
        (",-inf\r\n", Double(f64::NEG_INFINITY)),
        (
            "(3492890328409238509324850943850943825024385\r\n",
            BigNumber(b("3492890328409238509324850943850943825024385")),
        ),
        (
            "!21\r\nSYNTAX invalid syntax\r\n",
            BulkError(b("SYNTAX invalid syntax")),
        ),
        (
            "=15\r\ntxt:Some string\r\n",
            Verbatim {
                format: *b"txt",
                text: b("Some string"),
            },
        ),
        (
            "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
            Map(vec![
                (Simple(b("first")), Integer(1)),
                (Simple(b("second")), Integer(2)),
            ]),
        ),
        (
            "~2\r\n+b\r\n+a\r\n",
            Set(vec![Simple(b("b")), Simple(b("a"))]),
        ),
        (
            ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            Push(vec![Bulk(b("message")), Bulk(b("ch")), Bulk(b("hi"))]),
        ),
        // Attributes are consumed with the frame they annotate.
        ("|1\r\n+ttl\r\n:3600\r\n:7\r\n", Integer(7)),
        (
            "*2\r\n|1\r\n+a\r\n+b\r\n$1\r\nx\r\n:2\r\n",
            Array(vec![Bulk(b("x")), Integer(2)]),
        ),
        ("+OK\r\n", Simple(b("OK"))),
        ("-ERR x\r\n", Error(b("ERR x"))),
    ];
    for (input, expected) in cases {
        assert_eq!(one(input, Version::Resp3), expected, "{input:?}");
    }
    match one(",nan\r\n", Version::Resp3) {
        Double(d) => assert!(d.is_nan()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn map_order_is_wire_order() {
    let input = "%3\r\n+z\r\n:1\r\n+a\r\n:2\r\n+m\r\n:3\r\n";
    let Frame::Map(pairs) = one(input, Version::Resp3) else {
        panic!("not a map");
    };
    let keys: Vec<_> = pairs
        .iter()
        .map(|(k, _)| k.as_bytes().unwrap().clone())
        .collect();
    assert_eq!(keys, vec![b("z"), b("a"), b("m")]);
}

#[test]
fn leaves_following_bytes_in_the_buffer() {
    let mut buf = BytesMut::from(&b"+OK\r\n:1\r\n$3\r\nab"[..]);
    let first = decode(&mut buf, Version::Resp2, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.frame, &first.raw[..]),
        (Frame::ok(), &b"+OK\r\n"[..])
    );
    let second = decode(&mut buf, Version::Resp2, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(second.frame, Frame::Integer(1));
    assert_eq!(
        decode(&mut buf, Version::Resp2, &Limits::default()).unwrap(),
        None
    );
    assert_eq!(&buf[..], b"$3\r\nab");
}

#[test]
fn every_proper_prefix_is_incomplete_and_untouched() {
    let frames: [(&str, Version); 5] = [
        (
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n",
            Version::Resp2,
        ),
        ("*2\r\n*1\r\n:1\r\n$-1\r\n", Version::Resp2),
        ("%1\r\n+k\r\n~2\r\n#t\r\n,1.5\r\n", Version::Resp3),
        ("|1\r\n+a\r\n+b\r\n>2\r\n+x\r\n(12\r\n", Version::Resp3),
        ("=8\r\ntxt:abcd\r\n", Version::Resp3),
    ];
    for (frame, version) in frames {
        for cut in 0..frame.len() {
            let mut buf = BytesMut::from(&frame.as_bytes()[..cut]);
            let got = decode(&mut buf, version, &Limits::default());
            assert_eq!(got, Ok(None), "{frame:?} cut at {cut}");
            assert_eq!(&buf[..], &frame.as_bytes()[..cut]);
        }
        assert!(decode_all(frame.as_bytes(), version).unwrap().is_some());
    }
}

#[test]
fn strings_are_slices_of_the_raw_frame() {
    let decoded = decode_all(b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n", Version::Resp2)
        .unwrap()
        .unwrap();
    let Frame::Array(items) = &decoded.frame else {
        panic!("not an array");
    };
    let raw = decoded.raw.as_ptr_range();
    for item in items {
        let data = item.as_bytes().unwrap().as_ptr_range();
        assert!(
            raw.start <= data.start && data.end <= raw.end,
            "copied, not sliced"
        );
    }
}

#[test]
fn rejects_resp3_types_on_resp2() {
    for input in [
        "_\r\n",
        "#t\r\n",
        ",1\r\n",
        "%0\r\n",
        "~0\r\n",
        ">0\r\n",
        "|0\r\n+a\r\n",
        "!1\r\nx\r\n",
        "=5\r\ntxt:a\r\n",
        "(1\r\n",
    ] {
        let kind = input.as_bytes()[0];
        assert_eq!(
            decode_all(input.as_bytes(), Version::Resp2),
            Err(FrameError::NotResp2(kind)),
            "{input:?}"
        );
    }
}

#[test]
fn rejects_malformed_headers_and_types() {
    let cases: [(&str, Version, FrameError); 10] = [
        ("?\r\n", Version::Resp2, FrameError::BadType(b'?')),
        ("HELLO 3\r\n", Version::Resp3, FrameError::BadType(b'H')),
        ("$-2\r\n", Version::Resp2, FrameError::BadLength),
        ("$abc\r\n", Version::Resp2, FrameError::BadLength),
        ("$\r\n", Version::Resp2, FrameError::BadLength),
        ("*01\r\n", Version::Resp2, FrameError::BadLength),
        ("*+1\r\n", Version::Resp2, FrameError::BadLength),
        ("$-1\r\n", Version::Resp3, FrameError::BadLength),
        (
            "$?\r\n;3\r\nabc\r\n;0\r\n",
            Version::Resp3,
            FrameError::Streamed,
        ),
        (
            "*99999999999999999999999999999999999\r\n",
            Version::Resp2,
            FrameError::BadLength,
        ),
    ];
    for (input, version, expected) in cases {
        assert_eq!(
            decode_all(input.as_bytes(), version),
            Err(expected),
            "{input:?}"
        );
    }
    assert!(matches!(
        decode_all(b"$3\r\nabcd\r\n", Version::Resp2),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        decode_all(b":12a\r\n", Version::Resp2),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        decode_all(b"#x\r\n", Version::Resp3),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn size_limit_is_checked_from_the_header() {
    let limits = Limits {
        max_frame_size: 1000,
        ..Limits::default()
    };
    let mut buf = BytesMut::from(&b"$1000000\r\n"[..]);
    assert_eq!(
        decode(&mut buf, Version::Resp2, &limits),
        Err(FrameError::TooLarge {
            len: 1_000_000,
            max: 1000
        })
    );
    // The bulk fits alone but not with its header.
    let mut buf = BytesMut::from(&b"$995\r\n"[..]);
    assert!(matches!(
        decode(&mut buf, Version::Resp2, &limits),
        Err(FrameError::TooLarge { .. })
    ));
    // An element count that could never fit.
    let mut buf = BytesMut::from(&b"*100000\r\n"[..]);
    assert!(matches!(
        decode(&mut buf, Version::Resp2, &limits),
        Err(FrameError::TooLarge { .. })
    ));
    // A line that never ends.
    let mut buf = BytesMut::from(&vec![b'+'; 1001][..]);
    assert!(matches!(
        decode(&mut buf, Version::Resp2, &limits),
        Err(FrameError::TooLarge { .. })
    ));
    // Just under the limit decodes.
    let body = "x".repeat(990);
    let input = format!("$990\r\n{body}\r\n");
    let mut buf = BytesMut::from(input.as_bytes());
    assert!(decode(&mut buf, Version::Resp2, &limits).unwrap().is_some());
}

#[test]
fn default_limit_is_redis_proto_max_bulk_len() {
    assert_eq!(Limits::default().max_frame_size, 512 * 1024 * 1024);
    let mut buf = BytesMut::from(&b"$536870913\r\n"[..]);
    assert!(matches!(
        decode(&mut buf, Version::Resp2, &Limits::default()),
        Err(FrameError::TooLarge {
            len: 536_870_913,
            ..
        })
    ));
}

#[test]
fn nesting_depth_is_bounded() {
    let nested = |depth: usize| {
        let mut s = "*1\r\n".repeat(depth);
        s.push_str(":1\r\n");
        s
    };
    let limits = Limits::default();
    let ok = nested(DEFAULT_MAX_DEPTH);
    let mut buf = BytesMut::from(ok.as_bytes());
    assert!(decode(&mut buf, Version::Resp2, &limits).unwrap().is_some());
    let deep = nested(DEFAULT_MAX_DEPTH + 1);
    let mut buf = BytesMut::from(deep.as_bytes());
    assert_eq!(
        decode(&mut buf, Version::Resp2, &limits),
        Err(FrameError::TooDeep {
            max: DEFAULT_MAX_DEPTH
        })
    );
    // A chain of attributes counts as nesting too.
    let chain = format!("{}:1\r\n", "|0\r\n".repeat(100));
    let mut buf = BytesMut::from(chain.as_bytes());
    assert!(matches!(
        decode(&mut buf, Version::Resp3, &limits),
        Err(FrameError::TooDeep { .. })
    ));
}

#[test]
fn split_raw_and_frame_len_skip_contents() {
    let input = b"*2\r\n:12a\r\n+x\r\n+next\r\n";
    assert_eq!(
        frame_len(input, Version::Resp2, &Limits::default()),
        Ok(Some(14))
    );
    let mut buf = BytesMut::from(&input[..]);
    let raw = split_raw(&mut buf, Version::Resp2, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(&raw[..], b"*2\r\n:12a\r\n+x\r\n");
    assert_eq!(&buf[..], b"+next\r\n");
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random RESP-looking input: fragments of real syntax mixed with noise.
fn random_input(rng: &mut XorShift) -> Vec<u8> {
    const PIECES: [&[u8]; 24] = [
        b"*",
        b"$",
        b"+",
        b"-",
        b":",
        b"_",
        b"#",
        b",",
        b"(",
        b"!",
        b"=",
        b"%",
        b"~",
        b">",
        b"|",
        b"\r\n",
        b"1",
        b"2",
        b"-1",
        b"0",
        b"?",
        b"txt:",
        b"abc",
        b"99999999999",
    ];
    let mut out = Vec::new();
    for _ in 0..rng.below(40) {
        if rng.below(5) == 0 {
            out.push(rng.next() as u8);
        } else {
            out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
        }
    }
    out
}

/// Decodes `input` to exhaustion, checking the invariants that must hold
/// whatever the bytes are.
fn check_invariants(input: &[u8], version: Version) {
    let limits = Limits {
        max_frame_size: 4096,
        max_depth: 16,
    };
    let mut buf = BytesMut::from(input);
    let mut consumed = 0;
    loop {
        let before = buf.clone();
        match decode(&mut buf, version, &limits) {
            Ok(Some(decoded)) => {
                assert!(!decoded.raw.is_empty());
                assert_eq!(
                    &input[consumed..consumed + decoded.raw.len()],
                    &decoded.raw[..]
                );
                consumed += decoded.raw.len();
            }
            Ok(None) => {
                assert_eq!(buf, before, "incomplete input must stay buffered");
                return;
            }
            Err(_) => return,
        }
    }
}

#[test]
fn random_and_truncated_input_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let input = random_input(&mut rng);
        check_invariants(&input, Version::Resp2);
        check_invariants(&input, Version::Resp3);
    }
    let valid = b"*4\r\n%1\r\n+a\r\n~1\r\n#t\r\n$3\r\nabc\r\n>1\r\n,1.5\r\n=7\r\ntxt:abc\r\n";
    for _ in 0..5_000 {
        let mut mutated = valid.to_vec();
        let at = rng.below(mutated.len());
        mutated[at] = rng.next() as u8;
        mutated.truncate(rng.below(mutated.len() + 1));
        check_invariants(&mutated, Version::Resp3);
        check_invariants(&mutated, Version::Resp2);
    }
}

#[test]
fn ten_thousand_frame_pipeline_splits_correctly_in_any_chunking() {
    let mut rng = XorShift(42);
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for i in 0..10_000 {
        let value = "v".repeat(rng.below(300));
        let cmd = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\nkey:{i}\r\n${}\r\n{value}\r\n",
            format!("key:{i}").len(),
            value.len()
        );
        stream.extend_from_slice(cmd.as_bytes());
        expected.push(cmd);
    }
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut got = Vec::new();
    while got.len() < expected.len() {
        if fed < stream.len() {
            let n = (1 + rng.below(4096)).min(stream.len() - fed);
            buf.extend_from_slice(&stream[fed..fed + n]);
            fed += n;
        }
        while let Some(decoded) = decode(&mut buf, Version::Resp2, &Limits::default()).unwrap() {
            let Frame::Array(items) = &decoded.frame else {
                panic!("not an array");
            };
            assert_eq!(items.len(), 3);
            got.push(decoded.raw);
        }
        assert!(fed < stream.len() || got.len() == expected.len(), "stalled");
    }
    assert!(buf.is_empty());
    for (raw, want) in got.iter().zip(&expected) {
        assert_eq!(&raw[..], want.as_bytes());
    }
}

#[test]
fn parse_i64_follows_redis_string2ll() {
    let cases: [(&str, Option<i64>); 10] = [
        ("0", Some(0)),
        ("7", Some(7)),
        ("-7", Some(-7)),
        ("9223372036854775807", Some(i64::MAX)),
        ("9223372036854775808", None),
        ("01", None),
        ("-0", None),
        ("+1", None),
        ("", None),
        ("1 ", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_i64(text.as_bytes()), expected, "{text:?}");
    }
}
