use super::*;

fn scalar_of(p: &Pool, key: &str) -> Option<String> {
    p.entries
        .iter()
        .find(|e| e.key == key)
        .map(|e| match &e.value {
            YValue::Scalar(s) => s.clone(),
            YValue::List(l) => panic!("{key} is a list: {l:?}"),
        })
}

fn list_of(p: &Pool, key: &str) -> Vec<String> {
    match &p.entries.iter().find(|e| e.key == key).unwrap().value {
        YValue::List(l) => l.clone(),
        other => panic!("{key} is not a list: {other:?}"),
    }
}

#[test]
fn pools_with_block_and_flow_lists() {
    let text = "\
# twemproxy
---
alpha:
  listen: 127.0.0.1:22121   # the port
  hash: fnv1a_64
  hash_tag: \"{}\"
  redis_auth: 'it''s # not a comment'
  servers:
   - 127.0.0.1:6379:1 one
   - \"127.0.0.1:6380:2 two\"
beta:
    servers: [127.0.0.1:7000:1, '127.0.0.1:7001:1 b']
    redis: true
";
    let pools = parse_pools(text, "n.yml").unwrap();
    assert_eq!(pools.len(), 2);
    let a = &pools[0];
    assert_eq!((a.name.as_str(), a.line), ("alpha", 3));
    assert_eq!(scalar_of(a, "listen").as_deref(), Some("127.0.0.1:22121"));
    assert_eq!(scalar_of(a, "hash_tag").as_deref(), Some("{}"));
    assert_eq!(
        scalar_of(a, "redis_auth").as_deref(),
        Some("it's # not a comment")
    );
    assert_eq!(
        list_of(a, "servers"),
        vec!["127.0.0.1:6379:1 one", "127.0.0.1:6380:2 two"]
    );
    let b = &pools[1];
    assert_eq!(
        list_of(b, "servers"),
        vec!["127.0.0.1:7000:1", "127.0.0.1:7001:1 b"]
    );
    assert_eq!(scalar_of(b, "redis").as_deref(), Some("true"));
}

#[test]
fn double_quoted_escapes() {
    let pools = parse_pools("p:\n  redis_auth: \"a\\\"b\\\\c\\x41\\u00e9 # in\"\n", "n").unwrap();
    assert_eq!(
        scalar_of(&pools[0], "redis_auth").as_deref(),
        Some("a\"b\\cAé # in")
    );
}

#[test]
fn unsupported_yaml_is_refused_by_line() {
    let cases = [
        ("listen: 1\n", 1, "pool"),
        ("p: x\n", 1, "pool's settings"),
        ("p:\n  a: 1\n    b: 2\n", 3, "nested"),
        ("p:\n  a: &anchor 1\n", 2, "not supported"),
        ("p:\n  a: {x: 1}\n", 2, "not supported"),
        ("p:\n  a: 1\n  - item\n", 3, "outside a list"),
        ("p:\n\ta: 1\n", 2, "tabs"),
        ("p:\n  a: \"open secret\n", 2, "unterminated"),
        ("  a: 1\n", 1, "before the first pool"),
    ];
    for (text, line, needle) in cases {
        let e = parse_pools(text, "n.yml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("n.yml:{line}: ")),
            "{text:?}: {msg}"
        );
        assert!(msg.contains(needle), "{text:?}: {msg}");
        assert!(!msg.contains("secret"), "{msg}");
    }
}
