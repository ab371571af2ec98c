use super::*;

fn cmd(parts: &[&str]) -> Command {
    Command::from_parts(parts).unwrap()
}

#[test]
fn table_is_redis_7_0_with_subcommands() {
    assert!(redis_version().starts_with("7.0."), "{}", redis_version());
    let top = all().len();
    let subs: usize = all().iter().map(|c| c.subcommands.len()).sum();
    assert!(
        top > 200 && subs > 100,
        "{top} commands, {subs} subcommands"
    );
    assert!(all().iter().all(|c| !c.name.contains('|')));
    for c in all() {
        assert!(c
            .subcommands
            .iter()
            .all(|s| s.name.starts_with(&format!("{}|", c.name))));
    }
}

#[test]
fn lookup_is_case_insensitive() {
    for name in [&b"get"[..], b"GET", b"gEt"] {
        assert_eq!(lookup(name).map(|c| c.name.as_str()), Some("get"));
    }
    assert!(lookup(b"NOSUCHCOMMAND").is_none());
    assert!(lookup(b"").is_none());
    assert!(lookup(&[b'a'; 100]).is_none());
    assert_eq!(
        lookup(b"OBJECT|Encoding").map(|c| c.name.as_str()),
        Some("object|encoding")
    );
    assert!(lookup(b"object|nope").is_none());
}

#[test]
fn flags_and_arity_come_from_redis() {
    let cases: [(&[u8], i32, Flags, Flags); 10] = [
        (b"get", 2, Flags::READONLY, Flags::WRITE),
        (b"set", -3, Flags::WRITE, Flags::READONLY),
        (b"blpop", -3, Flags::BLOCKING, Flags::READONLY),
        (b"subscribe", -2, Flags::PUBSUB, Flags::WRITE),
        (b"flushall", -1, Flags::WRITE, Flags::READONLY),
        (b"shutdown", -1, Flags::ADMIN, Flags::READONLY),
        (b"eval", -3, Flags::NOSCRIPT, Flags::READONLY),
        (b"ping", -1, Flags::FAST, Flags::WRITE),
        (b"auth", -2, Flags::NO_AUTH, Flags::WRITE),
        (b"psync", -3, Flags::NO_MULTI, Flags::WRITE),
    ];
    for (name, arity, has, lacks) in cases {
        let info = lookup(name).unwrap();
        assert_eq!(info.arity, arity, "{}", info.name);
        assert!(info.has(has), "{} should have {has:?}", info.name);
        assert!(!info.has(lacks), "{} should lack {lacks:?}", info.name);
    }
    assert!(lookup(b"xread")
        .unwrap()
        .has(Flags::BLOCKING | Flags::MOVABLEKEYS));
    assert!(lookup(b"wait")
        .unwrap()
        .tips
        .iter()
        .any(|t| t == "request_policy:all_shards"));
}

#[test]
fn arity_check() {
    let get = lookup(b"get").unwrap();
    assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
    let set = lookup(b"set").unwrap();
    assert!(set.arity_ok(3) && set.arity_ok(9) && !set.arity_ok(2));
}

#[test]
fn key_specs_are_parsed() {
    let xread = lookup(b"xread").unwrap();
    assert_eq!(
        xread.key_specs[0].begin_search,
        BeginSearch::Keyword {
            keyword: "STREAMS".into(),
            start_from: 1
        }
    );
    assert_eq!(
        xread.key_specs[0].find_keys,
        FindKeys::Range {
            last_key: -1,
            step: 1,
            limit: 2
        }
    );
    let eval = lookup(b"eval").unwrap();
    assert_eq!(
        eval.key_specs[0].find_keys,
        FindKeys::Keynum {
            key_num_index: 0,
            first_key: 1,
            step: 1
        }
    );
    assert!(lookup(b"spublish").unwrap().key_specs[0]
        .flags
        .contains(KeySpecFlags::NOT_KEY));
    assert!(lookup(b"migrate").unwrap().key_specs[1]
        .flags
        .contains(KeySpecFlags::INCOMPLETE));
    assert_eq!(
        lookup(b"sort").unwrap().key_specs[1].begin_search,
        BeginSearch::Unknown {}
    );
}

#[test]
fn lookup_command_picks_the_subcommand() {
    let cases: [(&[&str], &str); 6] = [
        (&["OBJECT", "ENCODING", "k"], "object|encoding"),
        (&["client", "list"], "client|list"),
        (&["CONFIG", "GET", "maxmemory"], "config|get"),
        (&["OBJECT"], "object"),
        (&["OBJECT", "NOPE"], "object"),
        (&["GET", "k"], "get"),
    ];
    for (parts, name) in cases {
        assert_eq!(
            lookup_command(&cmd(parts)).map(|c| c.name.as_str()),
            Some(name)
        );
    }
    assert!(lookup_command(&cmd(&["NOPE"])).is_none());
}

#[test]
fn unknown_flag_names_are_ignored() {
    let flags = Flags::from(vec!["write".to_string(), "from_the_future".to_string()]);
    assert_eq!(flags, Flags::WRITE);
}
