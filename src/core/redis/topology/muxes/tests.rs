use std::sync::Arc;

use attache_redis_protocol::frame::Version;

use super::super::Node;
use super::IDLE;
use crate::core::redis::conn::Setup;
use crate::core::redis::topology::TargetTemplate;

fn node() -> Node {
    let cfg =
        crate::config::parse("[redis]\nlisten = \"127.0.0.1:0\"\nnodes = [\"127.0.0.1:1\"]\n")
            .expect("config")
            .redis
            .expect("redis");
    let template = TargetTemplate::new(&cfg).expect("template");
    Node::new(template.target("127.0.0.1:1".into()), 2)
}

fn db(db: u32) -> Setup {
    Setup {
        version: Version::Resp2,
        db,
    }
}

/// Databases visited once are let go after `IDLE` unused, with their
/// connections; database 0, one still asked for, and one a session holds
/// are kept.
#[tokio::test(start_paused = true)]
async fn setups_unused_for_the_idle_period_are_let_go() {
    let node = node();
    let zero = Arc::downgrade(&node.mux(db(0)));
    let visited: Vec<_> = (1..=10).map(|d| Arc::downgrade(&node.mux(db(d)))).collect();
    let held = node.mux(db(11));
    let busy = Arc::downgrade(&node.mux(db(12)));
    assert_eq!(node.muxes.len(), 13);
    tokio::time::advance(IDLE / 2).await;
    // Not yet idle for long enough: nothing goes.
    node.mux(db(12));
    assert_eq!(node.muxes.len(), 13);
    tokio::time::advance(IDLE / 2).await;
    // The sweep runs on the use of a database other than 0.
    node.mux(db(0));
    assert_eq!(node.muxes.len(), 13);
    node.mux(db(12));
    assert_eq!(
        node.muxes.len(),
        3,
        "0, 11 (held) and 12 (used lately) stay"
    );
    assert!(
        visited.iter().all(|m| m.upgrade().is_none()),
        "connections let go"
    );
    assert!(zero.upgrade().is_some() && busy.upgrade().is_some());
    // One let go is made anew when asked for again.
    node.mux(db(1));
    assert_eq!(node.muxes.len(), 4);
    drop(held);
}
