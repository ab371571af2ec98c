use super::*;
use crate::command::lookup;

fn cmd(parts: &[&str]) -> Command {
    Command::from_parts(parts).unwrap()
}

fn bulk(s: &'static str) -> Frame {
    Frame::Bulk(Bytes::from_static(s.as_bytes()))
}

/// Shard = first byte of the key minus 'a', so tests read naturally.
fn by_letter(key: &[u8]) -> usize {
    usize::from(key[0] - b'a')
}

#[test]
fn keys_on_one_shard_are_forwarded_whole() {
    for parts in [
        &["MGET", "a1", "a2"][..],
        &["DEL", "b"],
        &["MSET", "c1", "x", "c2", "y"],
    ] {
        assert_eq!(
            split(&cmd(parts), by_letter),
            Some(Split::Single(by_letter(parts[1].as_bytes())))
        );
    }
}

#[test]
fn mget_splits_and_merges_in_original_order() {
    let original = cmd(&["mget", "a1", "b1", "a2", "c1", "b2", "a1"]);
    let Some(Split::Multi { parts, merge }) = split(&original, by_letter) else {
        panic!("not split");
    };
    assert_eq!(
        parts,
        vec![
            (0, cmd(&["mget", "a1", "a2", "a1"])),
            (1, cmd(&["mget", "b1", "b2"])),
            (2, cmd(&["mget", "c1"])),
        ]
    );
    let replies = vec![
        Frame::Array(vec![bulk("A1"), Frame::Null, bulk("A1")]),
        Frame::Array(vec![bulk("B1"), bulk("B2")]),
        Frame::Array(vec![bulk("C1")]),
    ];
    assert_eq!(
        merge.merge(replies),
        Frame::Array(vec![
            bulk("A1"),
            bulk("B1"),
            Frame::Null,
            bulk("C1"),
            bulk("B2"),
            bulk("A1")
        ])
    );
}

#[test]
fn counting_commands_sum() {
    for name in ["DEL", "UNLINK", "EXISTS", "TOUCH"] {
        let Some(Split::Multi { parts, merge }) = split(&cmd(&[name, "a", "b", "a2"]), by_letter)
        else {
            panic!("{name} not split");
        };
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, cmd(&[name, "a", "a2"]));
        assert_eq!(merge, MergePlan::Sum);
        assert_eq!(
            merge.merge(vec![Frame::Integer(2), Frame::Integer(1)]),
            Frame::Integer(3)
        );
    }
}

#[test]
fn mset_keeps_pairs_together_and_needs_every_ok() {
    let Some(Split::Multi { parts, merge }) =
        split(&cmd(&["MSET", "a", "1", "b", "2", "a2", "3"]), by_letter)
    else {
        panic!("not split");
    };
    assert_eq!(
        parts,
        vec![
            (0, cmd(&["MSET", "a", "1", "a2", "3"])),
            (1, cmd(&["MSET", "b", "2"]))
        ]
    );
    assert_eq!(merge.merge(vec![Frame::ok(), Frame::ok()]), Frame::ok());
    assert!(merge.merge(vec![Frame::ok(), Frame::Integer(1)]).is_error());
}

#[test]
fn first_error_wins() {
    let plan = MergePlan::Sum;
    let replies = vec![
        Frame::Integer(1),
        Frame::error("MOVED 3999 127.0.0.1:6381"),
        Frame::error("ERR second"),
    ];
    assert_eq!(
        plan.merge(replies),
        Frame::error("MOVED 3999 127.0.0.1:6381")
    );
    let mget = MergePlan::Mget {
        positions: vec![vec![0], vec![1]],
        total: 2,
    };
    let blob = Frame::BulkError(Bytes::from_static(b"ERR blob"));
    assert_eq!(
        mget.merge(vec![Frame::Array(vec![Frame::Null]), blob.clone()]),
        blob
    );
}

#[test]
fn malformed_replies_become_errors() {
    let mget = MergePlan::Mget {
        positions: vec![vec![0, 2], vec![1]],
        total: 3,
    };
    let short = vec![
        Frame::Array(vec![Frame::Null]),
        Frame::Array(vec![Frame::Null]),
    ];
    assert!(mget.merge(short).is_error());
    assert!(mget.merge(vec![Frame::Null]).is_error());
    assert!(MergePlan::Sum
        .merge(vec![Frame::Integer(i64::MAX), Frame::Integer(1)])
        .is_error());
    assert!(MergePlan::Sum.merge(vec![Frame::ok()]).is_error());
}

#[test]
fn other_or_malformed_commands_are_not_split() {
    for parts in [
        &["GET", "a"][..],
        &["MGET"],
        &["MSET", "a"],
        &["MSET", "a", "1", "b"],
        &["MSETNX", "a", "1", "b", "2"],
    ] {
        assert_eq!(split(&cmd(parts), by_letter), None, "{parts:?}");
    }
}

#[test]
fn cluster_slots_group_by_hash_tag() {
    let c = cmd(&["MGET", "{u1}a", "{u1}b", "{u2}a"]);
    let Some(Split::Multi { parts, .. }) = split(&c, |k| usize::from(hash_slot(k))) else {
        panic!("not split");
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].1.args.len(), 3);
}

#[test]
fn crossslot_check_uses_every_key_and_shard_channel() {
    let check = |parts: &[&str]| {
        let c = cmd(parts);
        same_slot_or_crossslot(&c, lookup(c.name()).unwrap())
    };
    assert_eq!(check(&["GET", "foo"]), Ok(Some(12182)));
    assert_eq!(
        check(&["ZUNIONSTORE", "{t}d", "2", "{t}a", "{t}b"]),
        Ok(Some(hash_slot(b"t")))
    );
    assert_eq!(check(&["ZUNIONSTORE", "d", "2", "a", "b"]), Err(CrossSlot));
    assert_eq!(
        check(&["SSUBSCRIBE", "{c}1", "{c}2"]),
        Ok(Some(hash_slot(b"c")))
    );
    assert_eq!(check(&["SSUBSCRIBE", "a", "b"]), Err(CrossSlot));
    assert_eq!(check(&["PING"]), Ok(None));
    assert_eq!(
        CrossSlot.to_frame().to_bytes(crate::Version::Resp2),
        Bytes::from_static(b"-CROSSSLOT Keys in request don't hash to the same slot\r\n")
    );
}
