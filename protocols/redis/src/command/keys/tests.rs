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

/// `testdata/key_cases.txt`: one case a line, `<command> => <keys>`, both
/// sides in inline syntax. tests/live_redis.rs checks the same file against
/// `COMMAND GETKEYS` on a live server.
const CASES: &str = include_str!("../../../testdata/key_cases.txt");

fn cases() -> Vec<(Vec<String>, Vec<String>)> {
    let text = |args: Vec<Bytes>| -> Vec<String> {
        args.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    CASES
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let line = line.split("  # ").next().unwrap();
            let (command, keys) = line.split_once(" =>").unwrap();
            let command = crate::inline::split_args(command.as_bytes()).unwrap();
            let keys = crate::inline::split_args(keys.as_bytes()).unwrap();
            (text(command), text(keys))
        })
        .collect()
}

#[test]
fn keys_match_redis_for_the_case_table() {
    let cases = cases();
    assert!(cases.len() >= 90, "{} cases", cases.len());
    for (command, expected) in cases {
        let parts: Vec<&str> = command.iter().map(String::as_str).collect();
        assert_eq!(keys_of(&parts), expected, "{command:?}");
    }
}

#[test]
fn positions_index_into_the_arguments() {
    let c = cmd(&["MSET", "a", "1", "b", "2"]);
    let info = lookup(b"mset").unwrap();
    assert_eq!(key_positions(info, &c, false), vec![1, 3]);
    let c = cmd(&["EVAL", "s", "2", "k1", "k2", "x"]);
    assert_eq!(
        key_positions(lookup(b"eval").unwrap(), &c, false),
        vec![3, 4]
    );
}

#[test]
fn shard_channels_route_but_are_not_keys() {
    let c = cmd(&["SSUBSCRIBE", "a", "b"]);
    let info = lookup(b"ssubscribe").unwrap();
    assert!(keys(info, &c).is_empty());
    assert_eq!(routing_keys(info, &c), vec![&b"a"[..], b"b"]);
    let c = cmd(&["SPUBLISH", "ch", "msg"]);
    assert_eq!(
        routing_keys(lookup(b"spublish").unwrap(), &c),
        vec![&b"ch"[..]]
    );
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
    // A zero start (never in Redis's table) searches from the last argument.
    assert_eq!(find_keyword(&args, b"z", 0), Some(5));
}
