//! Route (Redis Sentinel): what the sentinels' answers and messages mean,
//! without servers: `SENTINEL REPLICAS` replies, pub/sub events, the
//! primary's address, and how the primary and replica set are replaced.

use std::sync::Arc;

use attache_redis_protocol::frame::Frame;
use bytes::Bytes;

use super::*;
use crate::config;

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// One replica as RESP2 sends it: a flat list of field names and values.
fn replica(fields: &[(&str, &str)]) -> Frame {
    Frame::Array(
        fields
            .iter()
            .flat_map(|(k, v)| [bulk(k), bulk(v)])
            .collect(),
    )
}

/// A replica as a sentinel lists it, with `flags` and `link` varied.
fn listed(ip: &str, port: &str, flags: &str, link: &str) -> Frame {
    replica(&[
        ("name", &format!("{ip}:{port}")),
        ("ip", ip),
        ("port", port),
        ("runid", "abc"),
        ("flags", flags),
        ("master-link-status", link),
        ("slave-priority", "100"),
    ])
}

#[test]
fn healthy_replicas_skips_down_disconnected_and_unlinked_ones() {
    // (flags, master-link-status, listed for reads?)
    let table = [
        ("slave", "ok", true),
        ("slave,s_down", "ok", false),
        ("slave,o_down", "ok", false),
        ("s_down,slave", "ok", false),
        ("slave,disconnected", "ok", false),
        ("slave,s_down,disconnected", "ok", false),
        ("slave", "err", false),
        ("slave", "", false),
        // Other flags do not matter; only whole flag names count.
        ("slave,promoted", "ok", true),
        ("slave,s_down_soon", "ok", true),
    ];
    for (flags, link, want) in table {
        let reply = Frame::Array(vec![listed("10.0.0.5", "6380", flags, link)]);
        let got = healthy_replicas(&reply).expect("a list");
        let expected = if want {
            vec!["10.0.0.5:6380".to_owned()]
        } else {
            Vec::new()
        };
        assert_eq!(got, expected, "flags {flags:?}, link {link:?}");
    }
}

#[test]
fn healthy_replicas_reads_fields_by_name_in_any_order() {
    let reply = Frame::Array(vec![
        replica(&[
            ("master-link-status", "ok"),
            ("port", "7001"),
            ("flags", "slave"),
            ("ip", "10.0.0.1"),
        ]),
        listed("10.0.0.2", "7002", "slave,s_down", "ok"),
        // IPv6 addresses are bracketed so the port stays separable.
        listed("fe80::1", "7003", "slave", "ok"),
        // Simple strings are strings too.
        Frame::Array(vec![
            Frame::Simple(Bytes::from_static(b"ip")),
            Frame::Simple(Bytes::from_static(b"10.0.0.4")),
            Frame::Simple(Bytes::from_static(b"port")),
            Frame::Simple(Bytes::from_static(b"7004")),
            Frame::Simple(Bytes::from_static(b"master-link-status")),
            Frame::Simple(Bytes::from_static(b"ok")),
        ]),
    ]);
    assert_eq!(
        healthy_replicas(&reply),
        Some(vec![
            "10.0.0.1:7001".to_owned(),
            "[fe80::1]:7003".to_owned(),
            "10.0.0.4:7004".to_owned(),
        ])
    );
}

#[test]
fn healthy_replicas_skips_entries_without_an_address() {
    let table: [(&str, Frame); 5] = [
        (
            "no ip",
            replica(&[("port", "1"), ("master-link-status", "ok")]),
        ),
        (
            "no port",
            replica(&[("ip", "10.0.0.1"), ("master-link-status", "ok")]),
        ),
        (
            "port with no value (odd field list)",
            Frame::Array(vec![
                bulk("ip"),
                bulk("10.0.0.1"),
                bulk("master-link-status"),
                bulk("ok"),
                bulk("port"),
            ]),
        ),
        (
            "an ip that is not a string",
            Frame::Array(vec![
                bulk("ip"),
                Frame::Integer(10),
                bulk("port"),
                bulk("1"),
                bulk("master-link-status"),
                bulk("ok"),
            ]),
        ),
        ("no fields at all", Frame::Array(Vec::new())),
    ];
    for (what, entry) in table {
        let reply = Frame::Array(vec![entry, listed("10.0.0.9", "9", "slave", "ok")]);
        assert_eq!(
            healthy_replicas(&reply),
            Some(vec!["10.0.0.9:9".to_owned()]),
            "{what}: skipped, the next replica still listed"
        );
    }
}

#[test]
fn healthy_replicas_rejects_what_is_not_a_replica_list() {
    // Replies are read as RESP2: a RESP3 map, an error, a null or a list
    // whose entries are not field lists are not understood.
    let map_entry = Frame::Map(vec![
        (bulk("ip"), bulk("10.0.0.1")),
        (bulk("port"), bulk("1")),
        (bulk("master-link-status"), bulk("ok")),
    ]);
    let table = [
        ("empty list", Frame::Array(Vec::new()), Some(Vec::new())),
        ("error", Frame::error("ERR unknown master"), None),
        ("null", Frame::Null, None),
        ("bulk", bulk("ip"), None),
        ("map reply", Frame::Map(Vec::new()), None),
        ("map entry", Frame::Array(vec![map_entry]), None),
        (
            "a string entry",
            Frame::Array(vec![listed("10.0.0.1", "1", "slave", "ok"), bulk("x")]),
            None,
        ),
    ];
    for (what, reply, want) in table {
        assert_eq!(healthy_replicas(&reply), want, "{what}");
    }
}

/// A pub/sub `message` as the sentinel sends it.
fn message(channel: &str, payload: &str) -> Frame {
    Frame::Array(vec![bulk("message"), bulk(channel), bulk(payload)])
}

#[test]
fn events_that_switch_or_refresh() {
    let replica_of = |m: &str| format!("slave 10.0.0.2:6380 10.0.0.2 6380 @ {m} 10.0.0.1 6379");
    let table: Vec<(&str, String, Option<Event>)> = vec![
        (
            "+switch-master",
            "mymaster 10.0.0.1 6379 10.0.0.2 6380".into(),
            Some(Event::Switch("10.0.0.2:6380".into())),
        ),
        (
            "+switch-master",
            "mymaster ::1 6379 fe80::2 6380".into(),
            Some(Event::Switch("[fe80::2]:6380".into())),
        ),
        // Another primary the same sentinels watch.
        (
            "+switch-master",
            "other 10.0.0.1 6379 10.0.0.2 6380".into(),
            None,
        ),
        // A name that only starts like ours.
        (
            "+switch-master",
            "mymaster2 10.0.0.1 6379 10.0.0.2 6380".into(),
            None,
        ),
        ("+switch-master", "mymaster 10.0.0.1 6379".into(), None),
        ("+switch-master", String::new(), None),
        ("+slave", replica_of("mymaster"), Some(Event::Replicas)),
        ("+sdown", replica_of("mymaster"), Some(Event::Replicas)),
        ("-sdown", replica_of("mymaster"), Some(Event::Replicas)),
        (
            "+convert-to-slave",
            replica_of("mymaster"),
            Some(Event::Replicas),
        ),
        ("+slave", replica_of("other"), None),
        ("+sdown", replica_of("other"), None),
        // The primary itself going down is not a replica event; the
        // failover that may follow announces itself with +switch-master.
        ("+sdown", "master mymaster 10.0.0.1 6379".into(), None),
        (
            "+sdown",
            "sentinel 10.0.0.7:26379 10.0.0.7 26379 @ mymaster 10.0.0.1 6379".into(),
            None,
        ),
        ("+sdown", "slave 10.0.0.2:6380 10.0.0.2 6380".into(), None),
    ];
    for (channel, payload, want) in table {
        assert_eq!(
            event(&message(channel, &payload), "mymaster"),
            want,
            "{channel} {payload:?}"
        );
    }
}

#[test]
fn frames_that_are_not_messages_are_no_events() {
    let table = [
        // The confirmation of each SUBSCRIBE.
        Frame::Array(vec![
            bulk("subscribe"),
            bulk("+switch-master"),
            Frame::Integer(1),
        ]),
        Frame::Array(vec![bulk("message"), bulk("+switch-master")]),
        Frame::Array(vec![
            bulk("message"),
            Frame::Integer(1),
            bulk("mymaster 10.0.0.1 6379 10.0.0.2 6380"),
        ]),
        Frame::Array(vec![
            bulk("message"),
            bulk("+switch-master"),
            Frame::Bulk(Bytes::from_static(b"mymaster \xff 6379 10.0.0.2 6380")),
        ]),
        bulk("mymaster 10.0.0.1 6379 10.0.0.2 6380"),
        Frame::Null,
    ];
    for frame in table {
        assert_eq!(event(&frame, "mymaster"), None, "{frame:?}");
    }
}

#[test]
fn the_replica_events_subscribed_are_those_event_understands() {
    let payload = "slave 10.0.0.2:6380 10.0.0.2 6380 @ m 10.0.0.1 6379";
    for channel in REPLICA_EVENTS {
        let channel = std::str::from_utf8(channel).unwrap();
        assert_eq!(
            event(&message(channel, payload), "m"),
            Some(Event::Replicas),
            "{channel}"
        );
    }
    assert!(!REPLICA_EVENTS.contains(&&b"+switch-master"[..]));
}

#[test]
fn host_port_brackets_ipv6_only() {
    assert_eq!(host_port("10.0.0.1", "6379"), "10.0.0.1:6379");
    assert_eq!(host_port("redis.internal", "6379"), "redis.internal:6379");
    assert_eq!(host_port("::1", "6379"), "[::1]:6379");
}

/// A sentinel view whose sentinel (port 1) never answers, so only the
/// test changes its primary and replicas.
fn sentinel(read_from: &str) -> Arc<Sentinel> {
    sentinel_with(&format!("read_from = \"{read_from}\""))
}

/// The same, with `extra` lines in its `[redis]` section.
pub(super) fn sentinel_with(extra: &str) -> Arc<Sentinel> {
    let cfg = config::parse(&format!(
        "[redis]\nlisten = \"127.0.0.1:0\"\nmode = \"sentinel\"\nmaster_name = \"mymaster\"\n\
         nodes = [\"127.0.0.1:1\"]\n{extra}\n"
    ))
    .unwrap();
    let template = TargetTemplate::new(&cfg.redis.unwrap()).unwrap();
    Sentinel::start(template, vec!["127.0.0.1:1".into()])
}

fn addrs(nodes: &[Arc<Node>]) -> Vec<&str> {
    nodes.iter().map(|n| n.addr.as_str()).collect()
}

#[tokio::test]
async fn primary_from_reads_get_master_addr_by_name() {
    let s = sentinel("primary");
    let pair = |a: Frame, b: Frame| Some(Frame::Array(vec![a, b]));
    assert_eq!(
        s.primary_from(pair(bulk("10.0.0.1"), bulk("6379")))
            .unwrap(),
        "10.0.0.1:6379"
    );
    assert_eq!(
        s.primary_from(pair(bulk("::1"), bulk("6379"))).unwrap(),
        "[::1]:6379"
    );
    assert!(matches!(
        s.primary_from(pair(bulk("10.0.0.1"), Frame::Integer(6379))),
        Err(RedisBackendError::Protocol(_))
    ));
    // A sentinel that does not know the name answers a null.
    for unknown in [Some(Frame::Null), None, Some(Frame::Array(vec![bulk("x")]))] {
        match s.primary_from(unknown) {
            Err(RedisBackendError::Refused(m)) => assert!(m.contains("mymaster"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn set_primary_signals_only_a_change() {
    let s = sentinel("primary");
    let mut changes = s.changed.subscribe();
    assert_eq!(
        s.primary().addr,
        "127.0.0.1:0",
        "placeholder before any answer"
    );
    s.set_primary("10.0.0.1:6379".into());
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();
    let first = s.primary();
    assert_eq!(first.addr, "10.0.0.1:6379");
    s.set_primary("10.0.0.1:6379".into());
    assert!(!changes.has_changed().unwrap(), "same primary: no retry");
    assert!(Arc::ptr_eq(&first, &s.primary()), "connections kept");
    s.set_primary("10.0.0.2:6379".into());
    assert!(changes.has_changed().unwrap());
    assert_eq!(s.primary().addr, "10.0.0.2:6379");
}

#[tokio::test]
async fn set_replicas_keeps_the_nodes_that_stay() {
    let s = sentinel("replica");
    assert!(s.reads_from_replicas());
    assert!(s.replicas().is_empty());
    assert!(s.replica_for_read(0).is_none(), "no replica: the primary");
    s.set_replicas(vec![
        "10.0.0.3:1".into(),
        "10.0.0.2:1".into(),
        "10.0.0.3:1".into(),
    ]);
    let before = s.replicas();
    assert_eq!(
        addrs(&before),
        ["10.0.0.2:1", "10.0.0.3:1"],
        "sorted, once each"
    );
    s.set_replicas(vec!["10.0.0.4:1".into(), "10.0.0.3:1".into()]);
    let after = s.replicas();
    assert_eq!(addrs(&after), ["10.0.0.3:1", "10.0.0.4:1"]);
    assert!(
        Arc::ptr_eq(&before[1], &after[0]),
        "10.0.0.3 keeps its node"
    );
    // One client stays on one replica: its reads remain ordered.
    let lane = s.replica_for_read(7).unwrap();
    assert!(Arc::ptr_eq(&lane, &s.replica_for_read(7).unwrap()));
    s.set_replicas(Vec::new());
    assert!(s.replicas().is_empty());
    assert!(s.replica_for_read(7).is_none());
}

#[tokio::test]
async fn read_from_primary_uses_no_replica() {
    let s = sentinel("primary");
    assert!(!s.reads_from_replicas());
    s.set_replicas(vec!["10.0.0.2:1".into()]);
    assert!(s.replica_for_read(0).is_none());
}
