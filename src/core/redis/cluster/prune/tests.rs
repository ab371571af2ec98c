use std::sync::Arc;

use attache_redis_protocol::frame::{Frame, Version};
use bytes::Bytes;

use super::super::Cluster;
use crate::core::redis::conn::Setup;
use crate::core::redis::topology::TargetTemplate;

/// A `CLUSTER SLOTS` reply: per range, its primary's port and its
/// replicas' ports (all on 127.0.0.1).
fn slots(ranges: &[(i64, i64, i64, &[i64])]) -> Frame {
    let node = |port: i64| {
        Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(b"127.0.0.1")),
            Frame::Integer(port),
        ])
    };
    Frame::Array(
        ranges
            .iter()
            .map(|(start, end, primary, replicas)| {
                let mut items = vec![Frame::Integer(*start), Frame::Integer(*end), node(*primary)];
                items.extend(replicas.iter().map(|p| node(*p)));
                Frame::Array(items)
            })
            .collect(),
    )
}

fn known(c: &Cluster) -> Vec<String> {
    let mut keys: Vec<String> = c.known.read().expect("lock").keys().cloned().collect();
    keys.sort();
    keys
}

/// A node (or replica) the cluster no longer lists is forgotten, and so
/// are its shared connections once nothing else holds them.
#[tokio::test]
async fn nodes_that_leave_the_slot_map_are_forgotten_with_their_connections() {
    let cfg = crate::config::parse(
        "[redis]\nlisten = \"127.0.0.1:0\"\nmode = \"cluster\"\nnodes = [\"127.0.0.1:1\"]\n",
    )
    .expect("config")
    .redis
    .expect("redis");
    let template = TargetTemplate::new(&cfg).expect("template");
    let c = Cluster::start(template, vec!["127.0.0.1:1".into()]);
    let first = slots(&[(0, 8000, 7001, &[7004]), (8001, 16383, 7002, &[7005])]);
    let first = c.parse_slots(first, "127.0.0.1").expect("slots");
    let leaving = Arc::downgrade(&first.nodes[1]);
    let setup = Setup {
        version: Version::Resp2,
        db: 0,
    };
    let mux = Arc::downgrade(&first.nodes[1].mux(setup));
    let replica = Arc::downgrade(&first.replicas[1][0]);
    c.install(first);
    assert_eq!(
        known(&c),
        [
            "127.0.0.1:7001",
            "127.0.0.1:7002",
            "127.0.0.1:7004#readonly",
            "127.0.0.1:7005#readonly"
        ]
    );
    // 7002 hands its slots to 7001, and its replica goes with it.
    let second = slots(&[(0, 16383, 7001, &[7004])]);
    let second = c.parse_slots(second, "127.0.0.1").expect("slots");
    c.install(second);
    assert_eq!(known(&c), ["127.0.0.1:7001", "127.0.0.1:7004#readonly"]);
    assert!(leaving.upgrade().is_none(), "the node is dropped");
    assert!(mux.upgrade().is_none(), "and its shared connections");
    assert!(replica.upgrade().is_none(), "and the replica's node");
    // Routing uses the new map.
    assert_eq!(c.node_for_slot(9000).addr, "127.0.0.1:7001");
}
