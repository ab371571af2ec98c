use bytes::BytesMut;

use super::*;
use crate::command::{next_command, RequestLimits};
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
/// general decoder alone.
#[test]
fn agrees_with_the_general_decoder() {
    let limits = RequestLimits {
        frame: Limits {
            max_frame_size: 64,
            max_depth: 1,
        },
        max_inline_len: 64,
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
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{:?}", &s[..cut]);
            assert_eq!(fast, slow);
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
