use super::*;

#[test]
fn crc16_xmodem_check_value() {
    // The CRC-16/XMODEM check value, quoted in the Redis Cluster spec.
    assert_eq!(crc16(b"123456789"), 0x31c3);
    assert_eq!(crc16(b""), 0);
}

#[test]
fn hash_tags_follow_the_cluster_spec() {
    let cases: [(&[u8], &[u8]); 9] = [
        (b"{user1000}.following", b"user1000"),
        (b"{user1000}.followers", b"user1000"),
        (b"foo{}{bar}", b"foo{}{bar}"),
        (b"foo{{bar}}zap", b"{bar"),
        (b"foo{bar}{zap}", b"bar"),
        (b"{}", b"{}"),
        (b"{", b"{"),
        (b"}{a}", b"a"),
        (b"no tag", b"no tag"),
    ];
    for (key, tag) in cases {
        assert_eq!(hash_tag(key), tag, "{:?}", String::from_utf8_lossy(key));
    }
    assert_eq!(
        hash_slot(b"{user1000}.following"),
        hash_slot(b"{user1000}.followers")
    );
    assert_eq!(hash_slot(b"foo{bar}{zap}"), hash_slot(b"bar"));
}

/// Slots reported by `CLUSTER KEYSLOT` on a real Redis 7.0.15 started with
/// `--cluster-enabled yes` (tests/live_redis.rs asks a live server too).
#[test]
fn slots_match_a_real_cluster() {
    let cases: [(&[u8], u16); 20] = [
        (b"123456789", 12739),
        (b"{user1000}.following", 3443),
        (b"{user1000}.followers", 3443),
        (b"foo{}{bar}", 8363),
        (b"foo{{bar}}zap", 4015),
        (b"foo{bar}{zap}", 5061),
        (b"", 0),
        (b"a", 15495),
        (b"foo", 12182),
        (b"bar", 5061),
        (b"hello", 866),
        (b"key:1", 6657),
        (b"{}", 15257),
        (b"{", 4092),
        (b"}", 12090),
        (b"}{a}", 15495),
        (b"a{b", 13340),
        (b"{a}}", 15495),
        (b"user:1000", 1649),
        (b"\xff\xfe\x80", 11813),
    ];
    for (key, slot) in cases {
        assert_eq!(hash_slot(key), slot, "{:?}", String::from_utf8_lossy(key));
    }
}

#[test]
fn every_slot_is_in_range() {
    for i in 0..100_000u32 {
        assert!(hash_slot(&i.to_le_bytes()) < SLOTS);
    }
}
