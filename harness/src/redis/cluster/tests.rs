use super::*;

#[test]
fn key_slot_matches_redis_reference_values() {
    // Reference values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"bar"), 5061);
    assert_eq!(key_slot(b""), 0);
}

#[test]
fn key_slot_hashes_only_a_non_empty_hash_tag() {
    assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    // `{}` is empty, so the whole key is hashed; an unclosed `{` likewise.
    assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
    assert_eq!(key_slot(b"foo{bar"), crc16(b"foo{bar") % SLOTS);
}

#[test]
fn parses_cluster_nodes_lines() {
    let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,host.example master - 0 1426238316232 2 connected 5461-10922 [5460-<-e7d1]
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 16383 [5461->-67ed]
garbage line
";
    let nodes = parse_nodes(text);
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0].primary.as_deref(), Some("e7d1"));
    assert!(nodes[0].slots.is_empty());
    assert_eq!(nodes[1].port, 30002);
    assert_eq!(nodes[1].slots, vec![(5461, 10922)]);
    let me = &nodes[2];
    assert!(me.has_flag("myself") && me.has_flag("master"));
    assert_eq!(me.primary, None);
    assert_eq!(me.slots, vec![(0, 5460), (16383, 16383)]);
    assert!(me.owns(0) && me.owns(5460) && me.owns(16383));
    assert!(!me.owns(5461));
}
