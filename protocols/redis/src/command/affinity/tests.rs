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

/// The precomputed shortcut never changes a classification: for every
/// command and subcommand in the table, with and without a BLOCK option.
#[test]
fn affinity_of_agrees_with_connection_affinity_for_the_whole_table() {
    use crate::command::table::{all, lookup_command};
    let mut checked = 0;
    for info in all() {
        let mut names: Vec<Vec<String>> = vec![vec![info.name.clone()]];
        for sub in &info.subcommands {
            let (container, s) = sub.name.split_once('|').unwrap();
            names.push(vec![container.to_owned(), s.to_owned()]);
        }
        for parts in names {
            for extra in [
                &[][..],
                &["BLOCK", "0", "STREAMS", "s", "0"][..],
                &["x"][..],
            ] {
                let args = parts
                    .iter()
                    .map(String::as_str)
                    .chain(extra.iter().copied());
                let cmd = Command::from_parts(args).unwrap();
                let found = lookup_command(&cmd).unwrap();
                assert_eq!(
                    affinity_of(found, &cmd),
                    connection_affinity(&cmd),
                    "{:?}",
                    cmd
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 600, "{checked}");
}
