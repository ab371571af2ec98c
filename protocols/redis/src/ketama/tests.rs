use super::*;

fn servers(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(n, w)| (n.to_string(), *w)).collect()
}

fn named() -> Ketama {
    Ketama::new(&servers(&[("alpha", 1), ("beta", 1), ("gamma", 1)])).unwrap()
}

fn weighted() -> Ketama {
    Ketama::new(&servers(&[
        ("127.0.0.1:6379", 1),
        ("127.0.0.1:6380", 2),
        ("127.0.0.1:6381", 3),
    ]))
    .unwrap()
}

const KEYS: [&[u8]; 10] = [
    b"foo",
    b"bar",
    b"baz",
    b"key:1",
    b"key:2",
    b"key:3",
    b"user:1000",
    b"session:abc",
    b"x",
    b"\xff\xfe",
];

/// Expectations from an independent re-implementation of twemproxy's
/// `ketama_update`/`ketama_dispatch`; tests/twemproxy_placement.rs checks
/// placement against a live nutcracker.
#[test]
fn placement_matches_twemproxy_reference() {
    let cases: [(Ketama, HashKind, [usize; 10]); 3] = [
        (named(), HashKind::Fnv1a_64, [2, 2, 2, 2, 2, 2, 1, 2, 2, 2]),
        (weighted(), HashKind::Murmur, [1, 1, 2, 2, 2, 0, 1, 1, 0, 0]),
        (weighted(), HashKind::Md5, [2, 2, 2, 1, 0, 2, 2, 0, 2, 1]),
    ];
    for (ring, kind, expected) in cases {
        let got: Vec<usize> = KEYS
            .iter()
            .map(|k| ring.server_for_key(kind, None, k))
            .collect();
        assert_eq!(got, expected, "{}", kind.name());
    }
}

#[test]
fn points_are_160_per_server_scaled_by_weight() {
    assert_eq!(named().points_per_server(), vec![160, 160, 160]);
    assert_eq!(weighted().points_per_server(), vec![80, 160, 240]);
    assert_eq!(weighted().len(), 480);
    // A server whose share rounds below one group of four gets no points.
    let tiny = Ketama::new(&servers(&[("a", 1), ("b", 1000)])).unwrap();
    assert_eq!(tiny.points_per_server(), vec![0, 316]);
}

#[test]
fn ring_is_sorted_and_wraps() {
    let ring = named();
    assert!(ring.points.windows(2).all(|w| w[0].value <= w[1].value));
    let first = ring.points[0];
    assert_eq!(first.value, 0x0080_0cf9);
    assert_eq!(ring.server_for(0), first.server as usize);
    assert_eq!(ring.server_for(first.value), first.server as usize);
    // Past the last point wraps to the first.
    assert_eq!(ring.points.last().unwrap().value, 0xfff4_9125);
    assert_eq!(ring.server_for(u32::MAX), first.server as usize);
    let second = ring.points[1];
    assert_eq!(ring.server_for(first.value + 1), second.server as usize);
}

#[test]
fn hash_tag_narrows_the_hashed_part() {
    let tag = HashTag::parse("{}").unwrap();
    let cases: [(&[u8], &[u8]); 6] = [
        (b"{user:1}:name", b"user:1"),
        (b"a{b}c{d}", b"b"),
        (b"a{}b", b"a{}b"),
        (b"a{b", b"a{b"),
        (b"}{x}", b"x"),
        (b"plain", b"plain"),
    ];
    for (key, part) in cases {
        assert_eq!(tag.apply(key), part);
    }
    let ring = named();
    assert_eq!(
        ring.server_for_key(HashKind::Md5, Some(tag), b"{user:1}:name"),
        ring.server_for_key(HashKind::Md5, None, b"user:1"),
    );
    let custom = HashTag::parse("$$").unwrap();
    assert_eq!(custom.apply(b"a$tag$b"), b"tag");
    assert!(HashTag::parse("{").is_none() && HashTag::parse("{}}").is_none());
}

#[test]
fn single_server_and_empty_key_follow_twemproxy() {
    let one = Ketama::new(&servers(&[("only", 1)])).unwrap();
    assert_eq!(one.server_for_key(HashKind::Md5, None, b"anything"), 0);
    let ring = named();
    assert_eq!(
        ring.server_for_key(HashKind::Md5, None, b""),
        ring.server_for(0)
    );
}

#[test]
fn rejects_invalid_server_lists() {
    assert_eq!(Ketama::new(&[]), Err(KetamaError::Empty));
    assert_eq!(
        Ketama::new(&servers(&[("a", 1), ("b", 0)])),
        Err(KetamaError::ZeroWeight { index: 1 })
    );
    let long = "n".repeat(84);
    assert_eq!(
        Ketama::new(&servers(&[("a", 1), (&long, 1)])),
        Err(KetamaError::NameTooLong { index: 1 })
    );
}

#[test]
fn default_names_drop_the_memcached_port() {
    assert_eq!(default_name("10.0.0.1", 6379), "10.0.0.1:6379");
    assert_eq!(default_name("cache", 11211), "cache");
}
