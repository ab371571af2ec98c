use super::*;

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn splits_messages_and_waits_for_partial_ones() {
    let mut bytes = msg(b'Q', b"select 1\0");
    bytes.extend(msg(b'S', b""));
    let mut partial = msg(b'X', b"");
    partial.truncate(3);
    bytes.extend(&partial);
    let mut buf = BytesMut::from(&bytes[..]);
    let m = next_message(&mut buf, 1024).unwrap().unwrap();
    assert_eq!(m.tag, b'Q');
    assert_eq!(m.body(), b"select 1\0");
    let m = next_message(&mut buf, 1024).unwrap().unwrap();
    assert_eq!((m.tag, m.body().len()), (b'S', 0));
    assert_eq!(next_message(&mut buf, 1024).unwrap(), None);
    assert_eq!(buf.len(), 3);
}

#[test]
fn rejects_oversized_from_the_header_alone() {
    let mut header = vec![b'd'];
    header.extend_from_slice(&(1_000_000i32).to_be_bytes());
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(
        next_message(&mut buf, 1000),
        Err(FrameError::TooLarge {
            len: 1_000_001,
            max: 1000
        })
    );
}

#[test]
fn rejects_negative_and_short_lengths() {
    for len in [-1i32, 0, 3] {
        let mut v = vec![b'Q'];
        v.extend_from_slice(&len.to_be_bytes());
        let mut buf = BytesMut::from(&v[..]);
        assert_eq!(
            next_message(&mut buf, 1000),
            Err(FrameError::BadLength(len))
        );
    }
}

#[test]
fn startup_packet_bounds() {
    let mut v = 12i32.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 0]);
    let mut buf = BytesMut::from(&v[..]);
    let p = next_startup(&mut buf).unwrap().unwrap();
    assert_eq!(&p[..], &[0, 3, 0, 0, 0, 0, 0, 0]);
    for len in [0i32, 7, -5] {
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        assert_eq!(next_startup(&mut buf), Err(FrameError::BadLength(len)));
    }
    let mut buf = BytesMut::from(&100_000i32.to_be_bytes()[..]);
    assert!(matches!(
        next_startup(&mut buf),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn peeks_messages_in_place_and_waits_for_partial_ones() {
    let mut bytes = msg(b'D', b"\0\x01row");
    bytes.extend(msg(b'Z', b"I"));
    let m = peek_message(&bytes, 1024).unwrap().unwrap();
    assert_eq!(
        (m.tag, m.body(), m.frame.len()),
        (b'D', &b"\0\x01row"[..], 10)
    );
    let rest = &bytes[m.frame.len()..];
    let z = peek_message(rest, 1024).unwrap().unwrap();
    assert_eq!((z.tag, z.body()), (b'Z', &b"I"[..]));
    // Header complete, body not yet: more bytes are needed.
    assert_eq!(peek_message(&bytes[..7], 1024).unwrap(), None);
    assert_eq!(peek_message(&bytes[..3], 1024).unwrap(), None);
    assert_eq!(
        peek_message(&bytes, 5),
        Err(FrameError::TooLarge { len: 10, max: 5 })
    );
}
