use std::sync::Arc;

use tokio::sync::watch;

use super::{goes_straight, Settled, Step};
use crate::core::redis::topology::Node;

fn node(addr: &str) -> Arc<Node> {
    let cfg = crate::config::parse(&format!(
        "[redis]\nlisten = \"127.0.0.1:0\"\nmode = \"single\"\nnodes = [\"{addr}\"]\n"
    ))
    .unwrap();
    let template = crate::core::redis::topology::TargetTemplate::new(&cfg.redis.unwrap()).unwrap();
    Arc::new(Node::new(template.target(addr.into()), 1))
}

fn at(step: Step) -> (watch::Sender<Step>, Settled) {
    let (tx, rx) = watch::channel(step);
    (tx, Settled(rx))
}

#[test]
fn a_command_follows_straight_only_behind_one_on_the_same_primary() {
    let (x, y) = (node("10.0.0.1:6379"), node("10.0.0.2:6379"));
    let (_a, on_x) = at(Step::Sent(Arc::downgrade(&x)));
    let (_b, waiting) = at(Step::Waiting);
    let (_c, settled) = at(Step::Settled);
    // (fenced, previous command, retrying, goes straight to x)
    let table: [(bool, Option<&Settled>, usize, bool); 8] = [
        (false, None, 0, true),
        (false, Some(&settled), 0, true),
        (false, Some(&on_x), 0, true),
        (false, Some(&waiting), 0, false),
        (true, None, 0, false),
        (true, Some(&on_x), 0, false),
        (false, Some(&on_x), 1, false),
        (false, None, 1, false),
    ];
    for (i, (fenced, prev, retrying, want)) in table.into_iter().enumerate() {
        assert_eq!(goes_straight(fenced, prev, &x, retrying), want, "row {i}");
    }
    // Behind a command sent to the old primary: not straight to the new.
    assert!(!goes_straight(false, Some(&on_x), &y, 0));
}

#[tokio::test]
async fn settled_waits_for_the_last_step_or_a_gone_sender() {
    let (tx, s) = at(Step::Waiting);
    let waiter = tokio::spawn(s.clone().wait());
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    tx.send_replace(Step::Settled);
    waiter.await.unwrap();
    assert!(s.done());
    let (tx, s) = at(Step::Waiting);
    drop(tx);
    s.wait().await;
}
