//! Unit tests of the read buffers' sizing.

use bytes::{BufMut, BytesMut};

use super::{settle, BUF_KEEP};

#[test]
fn an_empty_buffer_that_grew_is_let_go() {
    let mut buf = BytesMut::with_capacity(4 * BUF_KEEP);
    buf.put_slice(b"Q");
    let _ = buf.split_to(1);
    settle(&mut buf, 1 << 30);
    assert!(buf.capacity() <= BUF_KEEP, "kept {}", buf.capacity());
}

#[test]
fn a_small_buffer_is_kept() {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    settle(&mut buf, 1 << 30);
    assert_eq!(buf.capacity(), 64 * 1024);
}

#[test]
fn a_large_message_in_parts_gets_room_for_all_of_it() {
    let mut buf = BytesMut::new();
    buf.put_u8(b'P');
    buf.put_i32(3 * BUF_KEEP as i32);
    settle(&mut buf, 1 << 30);
    assert!(buf.capacity() > 3 * BUF_KEEP);
}
