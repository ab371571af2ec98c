//! Route (Redis): which node runs a command, and how commands that span
//! nodes are split and their replies merged.
//!
//! Keys are grouped into shards: ketama nodes, or cluster slots. Keyed
//! commands go to their shard's node; all keys must be in one shard except
//! for MGET, MSET, DEL, UNLINK, EXISTS and TOUCH, which are split per shard
//! and merged. Keyless commands go to the first node, except DBSIZE
//! (summed), KEYS (concatenated), SCAN (node after node, the node's index
//! in the cursor's low byte) and FLUSHDB/FLUSHALL (every node). In a
//! cluster every request follows MOVED/ASK inside Attaché.

use std::sync::Arc;

use attache_redis_protocol::command::{lookup_command, routing_keys, Flags};
use attache_redis_protocol::frame::{self, encode, Frame, Limits, Version};
use attache_redis_protocol::split::{self, Split};
use attache_redis_protocol::Command;
use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::session::Session;
use super::CROSSSLOT;
use crate::core::redis::{LaneChoice, Node, RedisBackendError, Reply};

pub(super) fn route(s: &mut Session, cmd: &Command, raw: Bytes) {
    let read = s.ctx.topology.reads_from_replicas()
        && lookup_command(cmd).is_some_and(|i| i.flags.contains(Flags::READONLY));
    if let Some(sentinel) = s.ctx.topology.sentinel() {
        // Reads may go to a replica the sentinels list (falling back to
        // the primary); everything else waits out failovers on the primary.
        // Queued now, in the client's order (unless a failover is under
        // way: see `sentinel::order`); only the wait is a task.
        let (setup, choice) = (s.setup(), s.lane_choice(true));
        let sentinel = sentinel.clone();
        let (lane, rx) = s.sentinel_order.submit(&sentinel, choice, raw, setup, read);
        s.lane = lane;
        return s.wait_reply(rx);
    }
    if !s.ctx.topology.is_sharded() {
        let rx = match read
            .then(|| s.ctx.topology.replica_for_read(s.spread, None))
            .flatten()
        {
            Some(replica) => read_with_fallback(s, replica, raw),
            None => s.primary_mux().send(s.lane, raw),
        };
        return s.wait_reply(rx);
    }
    let topo = &s.ctx.topology;
    if let Some(split) = split::split(cmd, |k| topo.shard_of(k)) {
        let rx = match split {
            Split::Single(shard) => send_to_shard(s, Some(shard), raw, read, true),
            Split::Multi { parts, merge } => {
                let rxs = parts
                    .into_iter()
                    .map(|(sh, c)| send_to_shard(s, Some(sh), c.to_bytes(), read, false))
                    .collect();
                gather(s, rxs, move |replies| merge.merge(replies))
            }
        };
        return s.wait_reply(rx);
    }
    match s.node_for(cmd) {
        Err(()) => s.error(CROSSSLOT),
        Ok(Some(shard)) => {
            let rx = send_to_shard(s, Some(shard), raw, read, true);
            s.wait_reply(rx);
        }
        Ok(None) => keyless(s, cmd, raw),
    }
}

/// A read on a replica; if the replica cannot be reached the read never
/// ran, so the primary takes it and the client sees no error.
fn read_with_fallback(s: &Session, replica: Arc<Node>, raw: Bytes) -> oneshot::Receiver<Reply> {
    let (setup, lane) = (s.setup(), s.lane);
    let primary = s.ctx.topology.first();
    // Queued now, so the client's reads reach the replica in its order;
    // only the wait (and the fallback) is a task.
    let first = replica.mux(setup).send(lane, raw.clone());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let first = first.await;
        let reply = match first.unwrap_or(Err(RedisBackendError::Lost)) {
            Err(RedisBackendError::Unavailable { .. }) => primary
                .mux(setup)
                .send(lane, raw)
                .await
                .unwrap_or(Err(RedisBackendError::Lost)),
            other => other,
        };
        let _ = tx.send(reply);
    });
    rx
}

/// Sends to the node of a shard (any node for `None`); in a cluster,
/// through the redirect-following request.
///
/// `may_move`: a client with nothing unanswered may move to the shared
/// connection of the node that suits one command best (see
/// `Mux::pick_lane`); with anything unanswered it keeps its lane, so its
/// commands to a node stay on one connection. The parts of a command split
/// over several nodes do not move: moving per part would leave the earlier
/// parts on another connection than the lane. In a cluster the choice is
/// made on the slot owner as the map has it (a redirected command keeps
/// the lane on the node it is sent to); reads sent to a replica keep the
/// lane.
fn send_to_shard(
    s: &mut Session,
    shard: Option<usize>,
    raw: Bytes,
    read: bool,
    may_move: bool,
) -> oneshot::Receiver<Reply> {
    let setup = s.setup();
    if let Some(cluster) = s.ctx.topology.cluster() {
        // Queued now, in the client's order; only the wait (and any
        // redirect) is a task.
        let choice = s.lane_choice(may_move);
        let sent = cluster.send(choice, shard.map(|sh| sh as u16), &raw, setup, read);
        s.lane = sent.lane;
        let (tx, rx) = oneshot::channel();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let _ = tx.send(cluster.follow(sent, raw, setup).await);
        });
        return rx;
    }
    let node = match shard {
        Some(sh) => s.ctx.topology.node_for_shard(sh),
        None => s.ctx.topology.first(),
    };
    let (lane, rx) = s.lane_choice(may_move).send(&node.mux(setup), raw, true);
    s.lane = lane;
    rx
}

fn send_to_node(s: &Session, node: &Arc<Node>, raw: Bytes) -> oneshot::Receiver<Reply> {
    node.mux(s.setup()).send(s.lane, raw)
}

impl Session {
    /// The client's lane, whether it may move now (`may_move` and nothing
    /// unanswered), and its replica spread.
    fn lane_choice(&self, may_move: bool) -> LaneChoice {
        LaneChoice {
            lane: self.lane,
            may_move: may_move && !self.unanswered(),
            spread: self.spread,
        }
    }

    /// The shard of `cmd`'s keys: `Ok(None)` without keys, `Err` when they
    /// are in different shards.
    pub(super) fn node_for(&self, cmd: &Command) -> Result<Option<usize>, ()> {
        let topo = &self.ctx.topology;
        if !topo.is_sharded() {
            return Ok(None);
        }
        let Some(info) = lookup_command(cmd) else {
            return Ok(None);
        };
        let mut shard = None;
        for key in routing_keys(info, cmd) {
            let n = topo.shard_of(key);
            match shard {
                None => shard = Some(n),
                Some(m) if m != n => return Err(()),
                Some(_) => {}
            }
        }
        Ok(shard)
    }
}

fn keyless(s: &mut Session, cmd: &Command, raw: Bytes) {
    let nodes = s.ctx.topology.all_nodes();
    let fan_out = |s: &Session| {
        nodes
            .iter()
            .map(|n| send_to_node(s, n, raw.clone()))
            .collect::<Vec<_>>()
    };
    let rx = if cmd.is("DBSIZE") {
        gather(s, fan_out(s), |replies| {
            let sum = replies
                .iter()
                .map(|r| if let Frame::Integer(i) = r { *i } else { 0 })
                .sum();
            first_error(&replies).unwrap_or(Frame::Integer(sum))
        })
    } else if cmd.is("KEYS") {
        gather(s, fan_out(s), |replies| {
            let keys = replies
                .iter()
                .flat_map(|r| {
                    if let Frame::Array(a) = r {
                        a.clone()
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            first_error(&replies).unwrap_or(Frame::Array(keys))
        })
    } else if cmd.is("FLUSHDB") || cmd.is("FLUSHALL") {
        gather(s, fan_out(s), |replies| {
            first_error(&replies).unwrap_or_else(Frame::ok)
        })
    } else if everywhere(cmd) {
        let exists = cmd.is("SCRIPT") && sub_is(cmd, &["EXISTS"]);
        gather(s, fan_out(s), move |replies| match first_error(&replies) {
            Some(e) => e,
            None if exists => all_exist(replies),
            None => replies.into_iter().next().unwrap_or_else(Frame::ok),
        })
    } else if cmd.is("SCAN") {
        match scan(s, cmd, &nodes) {
            Some(rx) => rx,
            None => return s.error("ERR invalid cursor"),
        }
    } else {
        send_to_shard(s, None, raw, false, false)
    };
    s.wait_reply(rx);
}

/// Scripts and function libraries live on each node: loaded on one only,
/// an EVALSHA or FCALL routed by its key to another fails with NOSCRIPT.
/// So loading, deleting and flushing them reach every node, and SCRIPT
/// EXISTS says 1 only for a script every node has.
fn everywhere(cmd: &Command) -> bool {
    (cmd.is("SCRIPT") && sub_is(cmd, &["LOAD", "FLUSH", "EXISTS"]))
        || (cmd.is("FUNCTION") && sub_is(cmd, &["LOAD", "DELETE", "FLUSH", "RESTORE"]))
}

/// Whether `cmd`'s subcommand is one of `names` (any case, no copy).
fn sub_is(cmd: &Command, names: &[&str]) -> bool {
    cmd.arg(1)
        .is_some_and(|a| names.iter().any(|n| a.eq_ignore_ascii_case(n.as_bytes())))
}

/// SCRIPT EXISTS over all nodes: 1 where every node answered 1.
fn all_exist(replies: Vec<Frame>) -> Frame {
    let mut out: Option<Vec<Frame>> = None;
    for r in replies {
        let Frame::Array(a) = r else {
            return Frame::error("ERR attache: unexpected SCRIPT EXISTS reply from a node");
        };
        out = Some(match out {
            None => a,
            Some(prev) => prev
                .into_iter()
                .zip(a)
                .map(|(x, y)| match (x, y) {
                    (Frame::Integer(1), Frame::Integer(1)) => Frame::Integer(1),
                    _ => Frame::Integer(0),
                })
                .collect(),
        });
    }
    Frame::Array(out.unwrap_or_default())
}

fn first_error(replies: &[Frame]) -> Option<Frame> {
    replies.iter().find(|r| r.is_error()).cloned()
}

/// SCAN over every node in turn: the low byte of the cursor is the node.
fn scan(s: &mut Session, cmd: &Command, nodes: &[Arc<Node>]) -> Option<oneshot::Receiver<Reply>> {
    let cursor: u64 = std::str::from_utf8(cmd.arg(1)?).ok()?.parse().ok()?;
    let count = nodes.len() as u64;
    let (node, inner) = (cursor & 0xff, cursor >> 8);
    let target = nodes.get(node as usize)?;
    let mut args = cmd.args.clone();
    args[1] = Bytes::from(inner.to_string());
    let rx = send_to_node(s, target, Command { args }.to_bytes());
    Some(gather(s, vec![rx], move |mut replies| {
        let Some(Frame::Array(mut pair)) = replies.pop() else {
            return Frame::error("ERR unexpected SCAN reply from a shard");
        };
        if pair.len() != 2 {
            return Frame::error("ERR unexpected SCAN reply from a shard");
        }
        let next_inner: u64 = pair[0]
            .as_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let next = match (next_inner, node + 1 < count) {
            (0, true) => node + 1,
            (0, false) => 0,
            (i, _) => (i << 8) | node,
        };
        pair[0] = Frame::Bulk(Bytes::from(next.to_string()));
        Frame::Array(pair)
    }))
}

/// Awaits the parts' replies and merges the decoded frames (in part order)
/// into one reply in the client's protocol version.
fn gather(
    s: &Session,
    rxs: Vec<oneshot::Receiver<Reply>>,
    merge: impl FnOnce(Vec<Frame>) -> Frame + Send + 'static,
) -> oneshot::Receiver<Reply> {
    let version = s.version;
    let limits = s.ctx.topology.first().target.limits;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        // Every part is awaited, even after one failed: the client's
        // answer ends its wait, and a part still queued must not be
        // overtaken by the client's next command.
        let mut frames = Vec::with_capacity(rxs.len());
        let mut failed = None;
        for r in rxs {
            match r.await.unwrap_or(Err(RedisBackendError::Lost)) {
                Ok(raw) => frames.push(decode(raw, version, &limits)),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            let _ = tx.send(Err(e));
            return;
        }
        let mut out = BytesMut::new();
        encode::encode(&merge(frames), version, &mut out);
        let _ = tx.send(Ok(out.freeze()));
    });
    rx
}

fn decode(raw: Bytes, version: Version, limits: &Limits) -> Frame {
    let mut buf = BytesMut::from(&raw[..]);
    match frame::decode(&mut buf, version, limits) {
        Ok(Some(d)) => d.frame,
        _ => Frame::error("ERR attache: malformed reply from a shard"),
    }
}
