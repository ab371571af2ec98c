use super::*;

fn cmd(parts: &[&str]) -> Command {
    Command::from_parts(parts).unwrap()
}

#[test]
fn classifies_connection_affinity() {
    use Affinity::*;
    use DedicatedReason::*;
    let cases: Vec<(&[&str], Affinity)> = vec![
        (&["GET", "k"], Shared),
        (&["set", "k", "v"], Shared),
        (&["PUBLISH", "ch", "m"], Shared),
        (&["XREAD", "COUNT", "1", "STREAMS", "s", "0"], Shared),
        (&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"], Blocking),
        (
            &[
                "xreadgroup",
                "GROUP",
                "g",
                "c",
                "block",
                "10",
                "STREAMS",
                "s",
                ">",
            ],
            Blocking,
        ),
        (
            &["XREADGROUP", "GROUP", "block", "c", "STREAMS", "s", ">"],
            Shared,
        ),
        (
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "NOACK",
                "BLOCK",
                "5",
                "STREAMS",
                "s",
                ">",
            ],
            Blocking,
        ),
        (&["BLPOP", "a", "0"], Blocking),
        (&["BRPOP", "a", "1"], Blocking),
        (&["BLMOVE", "a", "b", "LEFT", "LEFT", "0"], Blocking),
        (&["BRPOPLPUSH", "a", "b", "0"], Blocking),
        (&["BZPOPMIN", "z", "0"], Blocking),
        (&["BZPOPMAX", "z", "0"], Blocking),
        (&["BLMPOP", "0", "1", "a", "LEFT"], Blocking),
        (&["BZMPOP", "0", "1", "a", "MIN"], Blocking),
        (&["WAIT", "1", "0"], Blocking),
        (&["MULTI"], Dedicated(Transaction)),
        (&["exec"], Dedicated(Transaction)),
        (&["DISCARD"], Dedicated(Transaction)),
        (&["WATCH", "k"], Dedicated(Transaction)),
        (&["UNWATCH"], Dedicated(Transaction)),
        (&["SUBSCRIBE", "a"], Dedicated(PubSub)),
        (&["PSUBSCRIBE", "a*"], Dedicated(PubSub)),
        (&["SSUBSCRIBE", "a"], Dedicated(PubSub)),
        (&["UNSUBSCRIBE"], Dedicated(PubSub)),
        (&["PUNSUBSCRIBE"], Dedicated(PubSub)),
        (&["SUNSUBSCRIBE"], Dedicated(PubSub)),
        (&["CLIENT", "TRACKING", "on"], Dedicated(ClientTracking)),
        (&["client", "caching", "yes"], Dedicated(ClientTracking)),
        (&["CLIENT", "REPLY", "OFF"], Dedicated(ClientReply)),
        (&["CLIENT", "LIST"], Shared),
        (&["MONITOR"], Dedicated(Monitor)),
        (&["SELECT", "1"], Dedicated(Select)),
        (&["NOSUCHCOMMAND"], Shared),
    ];
    for (parts, expected) in cases {
        assert_eq!(connection_affinity(&cmd(parts)), expected, "{parts:?}");
    }
}

#[test]
fn every_flagged_blocking_command_is_blocking_except_plain_xread() {
    let flagged: Vec<_> = crate::command::table::all()
        .iter()
        .filter(|c| c.has(Flags::BLOCKING))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        flagged,
        [
            "blmove",
            "blmpop",
            "blpop",
            "brpop",
            "brpoplpush",
            "bzmpop",
            "bzpopmax",
            "bzpopmin",
            "xread",
            "xreadgroup"
        ]
    );
    let xread = crate::command::table::lookup(b"xread").unwrap();
    assert!(!is_blocking(xread, &cmd(&["XREAD", "STREAMS", "s", "0"])));
    assert!(is_blocking(
        xread,
        &cmd(&["XREAD", "COUNT", "5", "BLOCK", "0", "STREAMS", "s", "0"])
    ));
}
