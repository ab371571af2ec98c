use super::*;

#[test]
fn node_specs_parse_like_twemproxy() {
    let n = NodeSpec::parse("127.0.0.1:6379").unwrap();
    assert_eq!(
        (n.addr.as_str(), n.weight, n.name.as_str()),
        ("127.0.0.1:6379", 1, "127.0.0.1:6379")
    );
    let n = NodeSpec::parse("10.0.0.1:6379:3 cache1").unwrap();
    assert_eq!(
        (n.addr.as_str(), n.weight, n.name.as_str()),
        ("10.0.0.1:6379", 3, "cache1")
    );
    let n = NodeSpec::parse("redis.internal:7000 shard-a").unwrap();
    assert_eq!(
        (n.addr.as_str(), n.weight, n.name.as_str()),
        ("redis.internal:7000", 1, "shard-a")
    );
    for bad in ["x", ":6379", "h:0", "h:99999", "h:6379:0", "h:6379:x"] {
        assert!(NodeSpec::parse(bad).is_err(), "{bad}");
    }
}
