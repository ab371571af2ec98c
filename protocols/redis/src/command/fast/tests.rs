use bytes::BytesMut;

use super::*;
use crate::command::{next_command, next_command_from, CommandError, Request, RequestLimits};
use crate::frame::Limits;

const MAX: usize = 1 << 20;

#[test]
fn scans_the_common_shape_and_its_prefixes() {
    let whole = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
    assert_eq!(
        scan(whole, MAX),
        Some(Scan::Complete {
            len: whole.len(),
            count: 3
        })
    );
    let spans: Vec<_> = args(whole, 3).map(|(s, e)| &whole[s..e]).collect();
    assert_eq!(spans, [&b"SET"[..], b"k", b"hello"]);
    for cut in 0..whole.len() {
        assert_eq!(
            scan(&whole[..cut], MAX),
            Some(Scan::Incomplete),
            "cut {cut}"
        );
    }
    let mut two = whole.to_vec();
    two.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(
        scan(&two, MAX),
        Some(Scan::Complete {
            len: whole.len(),
            count: 3
        })
    );
}

#[test]
fn leaves_everything_else_to_the_general_decoder() {
    let cases: &[&[u8]] = &[
        b"PING\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"*1\r\n:1\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$3\r\nabcX\n",
        b"*1x\r\n",
        b"*\r\n",
        b"*1\r\n$99999999999\r\n",
        b"*1\r\n$2000000\r\n",
        b"*1\n",
    ];
    for c in cases {
        assert_eq!(scan(c, MAX), None, "{:?}", String::from_utf8_lossy(c));
    }
}

/// Whatever the input, `next_command` (fast path first) agrees with the
/// general decoder alone, except that it may refuse a request before the
/// general decoder has seen all of it (an element that is not a bulk
/// string, or an array too long to fit).
#[test]
fn agrees_with_the_general_decoder() {
    let limits = RequestLimits {
        frame: Limits {
            max_frame_size: 64,
            max_depth: 1,
        },
        max_inline_len: 64,
        unauthenticated: false,
    };
    let samples: &[&[u8]] = &[
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"*1\r\n$70\r\n",
        b"*40\r\n",
        b"*1\r\n$3\r\nabc\r\n*1\r\n$4\r\nPING\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\r",
    ];
    for s in samples {
        for cut in 0..=s.len() {
            let mut fast = BytesMut::from(&s[..cut]);
            let mut slow = BytesMut::from(&s[..cut]);
            let a = next_command(&mut fast, &limits);
            let b = crate::command::next_command_general(&mut slow, &limits);
            let whole = crate::command::next_command_general(&mut BytesMut::from(*s), &limits);
            match (&a, &b) {
                (Err(_), Ok(None)) => assert!(whole.is_err(), "{:?}", &s[..cut]),
                (Err(x), Err(y)) => assert_eq!(
                    std::mem::discriminant(x),
                    std::mem::discriminant(y),
                    "{:?}",
                    &s[..cut]
                ),
                _ => {
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "{:?}", &s[..cut]);
                    assert_eq!(fast, slow);
                }
            }
        }
    }
}

#[test]
fn plain_len_takes_only_complete_plain_commands() {
    let get = b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n";
    let mut two = get.to_vec();
    two.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(plain_len(get, MAX), Some(get.len()));
    assert_eq!(plain_len(&two, MAX), Some(get.len()));
    assert_eq!(
        plain_len(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", MAX),
        Some(27)
    );
    let general: &[&[u8]] = &[
        &get[..get.len() - 1],                          // incomplete
        b"GET k\r\n",                                   // inline
        b"*1\r\n$4\r\nPING\r\n",                        // answered by the proxy
        b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n",        // pub/sub
        b"*3\r\n$5\r\nBLPOP\r\n$1\r\nk\r\n$1\r\n0\r\n", // blocking
        b"*1\r\n$5\r\nMULTI\r\n",                       // transaction
        b"*2\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n",         // container
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n",           // connection state
        b"*1\r\n$4\r\nNOPE\r\n",                        // unknown
        b"*1\r\n$3\r\nGET\r\r",                         // malformed
    ];
    for c in general {
        assert_eq!(plain_len(c, MAX), None, "{:?}", String::from_utf8_lossy(c));
    }
    // A frame over the limit is the general decoder's to refuse.
    assert_eq!(plain_len(get, 8), None);
}

/// One request, trickled in a byte at a time into a growing buffer.
fn trickle(request: &[u8], limits: &RequestLimits) -> (Request, Progress) {
    let mut progress = Progress::default();
    let mut buf = BytesMut::new();
    for (i, b) in request.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        let got = next_command_from(&mut buf, limits, &mut progress).expect("valid request");
        if let Some(req) = got {
            assert_eq!(i + 1, request.len(), "complete only at its last byte");
            assert!(buf.is_empty());
            return (req, progress);
        }
    }
    panic!("request never complete");
}

/// A request arriving in many small reads is scanned on from where the
/// previous read stopped: header bytes examined stay linear in its size
/// (rescanning from the start on every read examined ~n²/2 of them).
#[test]
fn a_trickled_request_is_not_rescanned() {
    let limits = RequestLimits::default();
    let mut request = b"*5001\r\n$5\r\nRPUSH\r\n".to_vec();
    for _ in 0..5000 {
        request.extend_from_slice(b"$1\r\na\r\n");
    }
    let (req, progress) = trickle(&request, &limits);
    assert_eq!(req.command.map(|c| c.args.len()), Some(5001));
    assert!(
        progress.examined() <= request.len(),
        "{} header bytes examined for a {}-byte request",
        progress.examined(),
        request.len()
    );
    // A large bulk string: its body is skipped, never examined.
    let mut big = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 100_000));
    big.extend_from_slice(b"\r\n");
    let (_, progress) = trickle(&big, &limits);
    assert!(progress.examined() < 64, "{}", progress.examined());
}

#[test]
fn a_trickled_inline_line_is_searched_once() {
    let mut searched = 0;
    let mut buf = BytesMut::new();
    for _ in 0..1000 {
        buf.extend_from_slice(b"a");
        let line = crate::inline::next_line_from(&mut buf, 4096, &mut searched);
        assert_eq!(line, Ok(None));
        assert_eq!(searched, buf.len());
    }
    buf.extend_from_slice(b" b\r\n");
    let line = crate::inline::next_line_from(&mut buf, 4096, &mut searched);
    assert_eq!(line.map(|l| l.map(|l| l.args.len())), Ok(Some(2)));
    // What `searched` covers is not searched again (here, wrongly
    // claimed, a newline in it goes unseen).
    let mut buf = BytesMut::from(&b"a\nbc"[..]);
    let mut searched = 2;
    assert_eq!(
        crate::inline::next_line_from(&mut buf, 4096, &mut searched),
        Ok(None)
    );
    assert_eq!(searched, 4);
}

/// Redis's bounds for a client that must authenticate and has not.
#[test]
fn unauthenticated_clients_get_redis_lower_bounds() {
    let strict = RequestLimits {
        unauthenticated: true,
        ..RequestLimits::default()
    };
    let next = |input: &[u8], limits: &RequestLimits| {
        next_command(&mut BytesMut::from(input), limits).map(|r| r.is_some())
    };
    let cases: &[(&[u8], Result<bool, CommandError>)] = &[
        (b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n", Ok(true)),
        (b"*10\r\n", Ok(false)),
        (b"*11\r\n", Err(CommandError::UnauthenticatedMultibulk)),
        (
            b"*100000\r\n$1\r\n",
            Err(CommandError::UnauthenticatedMultibulk),
        ),
        (b"*2\r\n$4\r\nAUTH\r\n$16384\r\n", Ok(false)),
        (
            b"*2\r\n$4\r\nAUTH\r\n$16385\r\n",
            Err(CommandError::UnauthenticatedBulk),
        ),
        (b"*1\r\n$999999\r\n", Err(CommandError::UnauthenticatedBulk)),
    ];
    for (input, want) in cases {
        let got = next(input, &strict);
        assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(input));
        // Authenticated (or no password required), none of it applies.
        assert!(next(input, &RequestLimits::default()).is_ok());
    }
    assert_eq!(
        CommandError::UnauthenticatedMultibulk.to_string(),
        "Protocol error: unauthenticated multibulk length"
    );
    assert_eq!(
        CommandError::UnauthenticatedBulk.to_string(),
        "Protocol error: unauthenticated bulk length"
    );
}
