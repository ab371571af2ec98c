use super::*;
use crate::command::table::lookup;

fn cmd(parts: &[&str]) -> Command {
    Command::from_parts(parts).unwrap()
}

fn keys_of(parts: &[&str]) -> Vec<String> {
    let c = cmd(parts);
    let Some(info) = lookup(c.name()) else {
        return Vec::new();
    };
    keys(info, &c)
        .into_iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// Each expectation was checked against `COMMAND GETKEYS` on Redis 7.0.15
/// (tests/live_redis.rs repeats the comparison against a live server).
/// The one exception is marked below.
const CASES: &[(&[&str], &[&str])] = &[
    (&["GET", "k"], &["k"]),
    (&["SET", "k", "v", "EX", "10"], &["k"]),
    (&["MGET", "a", "b", "c"], &["a", "b", "c"]),
    (&["MSET", "a", "1", "b", "2"], &["a", "b"]),
    (&["MSETNX", "a", "1", "b", "2"], &["a", "b"]),
    (&["DEL", "a", "b"], &["a", "b"]),
    (&["EXISTS", "a", "a"], &["a", "a"]),
    (&["BLPOP", "a", "b", "0"], &["a", "b"]),
    (&["BRPOPLPUSH", "src", "dst", "0"], &["src", "dst"]),
    (&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"], &["src", "dst"]),
    (&["BZPOPMIN", "z1", "z2", "1.5"], &["z1", "z2"]),
    (&["EVAL", "script", "2", "k1", "k2", "a1"], &["k1", "k2"]),
    (&["EVAL", "s", "0", "a"], &[]),
    (&["EVALSHA", "sha", "1", "k", "a"], &["k"]),
    (&["EVAL_RO", "s", "1", "k"], &["k"]),
    (&["FCALL", "f", "2", "a", "b", "x"], &["a", "b"]),
    (&["FCALL_RO", "f", "1", "a"], &["a"]),
    (&["ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"], &["dst", "a", "b"]),
    (&["ZINTERSTORE", "dst", "1", "a"], &["dst", "a"]),
    (&["ZDIFFSTORE", "dst", "2", "a", "b"], &["dst", "a", "b"]),
    (&["ZUNION", "2", "a", "b", "WITHSCORES"], &["a", "b"]),
    (&["ZINTER", "2", "a", "b"], &["a", "b"]),
    (&["ZDIFF", "2", "a", "b"], &["a", "b"]),
    (&["ZINTERCARD", "2", "a", "b", "LIMIT", "5"], &["a", "b"]),
    (&["SINTERCARD", "3", "a", "b", "c"], &["a", "b", "c"]),
    (&["LMPOP", "2", "a", "b", "LEFT", "COUNT", "2"], &["a", "b"]),
    (&["BLMPOP", "0", "2", "a", "b", "LEFT"], &["a", "b"]),
    (&["ZMPOP", "1", "z", "MIN"], &["z"]),
    (&["BZMPOP", "1", "2", "a", "b", "MAX"], &["a", "b"]),
    (&["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"], &["s1", "s2"]),
    (&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"], &["s"]),
    (&["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s1", "s2", ">", ">"], &["s1", "s2"]),
    (&["XREADGROUP", "GROUP", "streams", "streams", "STREAMS", "s", ">"], &["s"]),
    (&["XREAD", "COUNT", "1", "STREAMS", "a", "b", "0"], &["a"]),
    (&["OBJECT", "ENCODING", "k"], &["k"]),
    (&["object", "freq", "k"], &["k"]),
    (&["MEMORY", "USAGE", "k", "SAMPLES", "5"], &["k"]),
    (&["XINFO", "STREAM", "s", "FULL"], &["s"]),
    (&["XINFO", "GROUPS", "s"], &["s"]),
    (&["XINFO", "CONSUMERS", "s", "g"], &["s"]),
    (&["SORT", "k", "BY", "w_*", "GET", "#", "STORE", "dst"], &["k", "dst"]),
    (&["SORT", "k", "LIMIT", "0", "10", "ALPHA"], &["k"]),
    (&["SORT_RO", "k", "BY", "x"], &["k"]),
    (&["SORT", "k", "STORE", "STORE", "x"], &["k", "x"]),
    (&["SORT", "k", "GET", "store", "STORE", "d"], &["k", "d"]),
    (&["MIGRATE", "host", "6379", "k", "0", "5000"], &["k"]),
    (&["MIGRATE", "host", "6379", "", "0", "5000", "COPY", "AUTH", "pw", "KEYS", "a", "b"], &["a", "b"]),
    (&["MIGRATE", "host", "6379", "", "0", "5000", "AUTH2", "u", "keys", "KEYS", "a"], &["a"]),
    (&["GEORADIUS", "g", "0", "0", "10", "km", "STORE", "dst"], &["g", "dst"]),
    (&["GEORADIUSBYMEMBER", "g", "m", "10", "km", "STOREDIST", "dst"], &["g", "dst"]),
    (&["GEOSEARCHSTORE", "dst", "src", "FROMMEMBER", "m", "BYRADIUS", "1", "km"], &["dst", "src"]),
    (&["BITOP", "AND", "dst", "a", "b"], &["dst", "a", "b"]),
    (&["PFMERGE", "dst", "a", "b"], &["dst", "a", "b"]),
    (&["SDIFFSTORE", "dst", "a", "b"], &["dst", "a", "b"]),
    (&["RENAME", "a", "b"], &["a", "b"]),
    (&["COPY", "a", "b"], &["a", "b"]),
    (&["LMOVE", "a", "b", "LEFT", "RIGHT"], &["a", "b"]),
    (&["SMOVE", "a", "b", "m"], &["a", "b"]),
    (&["WATCH", "a", "b"], &["a", "b"]),
    (&["LCS", "a", "b"], &["a", "b"]),
    (&["BITFIELD", "k", "GET", "u8", "0"], &["k"]),
    (&["XADD", "s", "*", "f", "v"], &["s"]),
    (&["SPUBLISH", "ch", "msg"], &[]),
    (&["SSUBSCRIBE", "a", "b"], &[]),
    (&["PUBLISH", "ch", "msg"], &[]),
    (&["KEYS", "*"], &[]),
    (&["PING"], &[]),
    (&["ZUNIONSTORE", "dst", "3", "a", "b"], &[]),
    (&["EVAL", "s", "x", "k"], &[]),
    (&["EVAL", "s", "-1", "k"], &[]),
    (&["GETEX", "k", "PERSIST"], &["k"]),
    (&["TOUCH", "a", "b"], &["a", "b"]),
    (&["UNLINK", "a"], &["a"]),
    (&["SUNIONSTORE", "dst", "a"], &["dst", "a"]),
    (&["RESTORE", "k", "0", "payload"], &["k"]),
    (&["OBJECT", "HELP"], &[]),
    (&["CLIENT", "LIST"], &[]),
    (&["XAUTOCLAIM", "s", "g", "c", "0", "0"], &["s"]),
    (&["LPOS", "k", "e"], &["k"]),
    (&["EXPIRETIME", "k"], &["k"]),
    (&["PFCOUNT", "a", "b"], &["a", "b"]),
    (&["RPOPLPUSH", "a", "b"], &["a", "b"]),
    (&["ZRANGESTORE", "dst", "src", "0", "-1"], &["dst", "src"]),
    (&["GEOSEARCH", "k", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"], &["k"]),
    (&["SINTERSTORE", "d", "a", "b"], &["d", "a", "b"]),
    // Redis falls back to `atoi` here and reports [a, dst]; the command
    // itself rejects "01", so no keys is the useful answer for routing.
    (&["ZUNIONSTORE", "dst", "01", "a"], &[]),
];

#[test]
fn keys_match_redis_for_the_case_table() {
    assert!(CASES.len() >= 80);
    for (parts, expected) in CASES {
        assert_eq!(keys_of(parts), *expected, "{parts:?}");
    }
}

#[test]
fn positions_index_into_the_arguments() {
    let c = cmd(&["MSET", "a", "1", "b", "2"]);
    let info = lookup(b"mset").unwrap();
    assert_eq!(key_positions(info, &c, false), vec![1, 3]);
    let c = cmd(&["EVAL", "s", "2", "k1", "k2", "x"]);
    assert_eq!(key_positions(lookup(b"eval").unwrap(), &c, false), vec![3, 4]);
}

#[test]
fn shard_channels_route_but_are_not_keys() {
    let c = cmd(&["SSUBSCRIBE", "a", "b"]);
    let info = lookup(b"ssubscribe").unwrap();
    assert!(keys(info, &c).is_empty());
    assert_eq!(routing_keys(info, &c), vec![&b"a"[..], b"b"]);
    let c = cmd(&["SPUBLISH", "ch", "msg"]);
    assert_eq!(routing_keys(lookup(b"spublish").unwrap(), &c), vec![&b"ch"[..]]);
    // Plain pub/sub channels are not slot-bound at all.
    let c = cmd(&["PUBLISH", "ch", "msg"]);
    assert!(routing_keys(lookup(b"publish").unwrap(), &c).is_empty());
}

#[test]
fn subcommands_resolve_from_the_container_entry() {
    let c = cmd(&["xinfo", "stream", "s"]);
    let container = lookup(b"XINFO").unwrap();
    assert!(!container.subcommands.is_empty());
    assert_eq!(keys(container, &c), vec![&b"s"[..]]);
    // Given the subcommand entry directly, the same.
    let sub = lookup(b"xinfo|stream").unwrap();
    assert_eq!(keys(sub, &c), vec![&b"s"[..]]);
    // An unknown subcommand has no keys.
    let c = cmd(&["OBJECT", "NOPE", "k"]);
    assert!(keys(lookup(b"object").unwrap(), &c).is_empty());
}

#[test]
fn keyword_search_directions() {
    let args: Vec<Bytes> = ["MIGRATE", "KEYS", "x", "KEYS", "y", "z"]
        .iter()
        .map(|s| Bytes::from_static(s.as_bytes()))
        .collect();
    // Forwards from 1 stops before the last argument.
    assert_eq!(find_keyword(&args, b"keys", 1), Some(1));
    assert_eq!(find_keyword(&args, b"z", 1), None);
    // Backwards from argc-2.
    assert_eq!(find_keyword(&args, b"KEYS", -2), Some(3));
    assert_eq!(find_keyword(&args, b"KEYS", -6), None);
}
