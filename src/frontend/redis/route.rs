//! Route (Redis): which node runs a command, and how commands that span
//! nodes are split and their replies merged.
//!
//! Keyed commands go to the node of their keys; all keys must be on one
//! node except for MGET, MSET, DEL, UNLINK, EXISTS and TOUCH, which are
//! split per node and merged. Keyless commands go to the first node, except
//! DBSIZE (summed), KEYS (concatenated), SCAN (iterates node after node,
//! with the node index in the cursor's low byte) and FLUSHDB/FLUSHALL (sent
//! to every node).

use attache_redis_protocol::command::{lookup_command, routing_keys};
use attache_redis_protocol::frame::{self, encode, Frame, Limits, Version};
use attache_redis_protocol::split::{self, Split};
use attache_redis_protocol::Command;
use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::session::Session;
use crate::core::redis::{RedisBackendError, Reply};

const CROSS: &str = "CROSSSLOT Keys in request don't hash to the same slot";

pub(super) fn route(s: &mut Session, cmd: &Command, raw: Bytes) {
    if !s.ctx.topology.is_sharded() {
        let rx = s.ctx.mux(0, s.version, s.db).send(raw);
        return s.wait_reply(rx);
    }
    let topo = &s.ctx.topology;
    if let Some(split) = split::split(cmd, |k| topo.shard_of(k)) {
        match split {
            Split::Single(node) => {
                let rx = s.ctx.mux(node, s.version, s.db).send(raw);
                s.wait_reply(rx);
            }
            Split::Multi { parts, merge } => {
                let parts = parts.into_iter().map(|(n, c)| (n, c.to_bytes())).collect();
                let rx = gather(s, parts, move |replies| merge.merge(replies));
                s.wait_reply(rx);
            }
        }
        return;
    }
    match s.node_for(cmd) {
        Err(()) => s.error(CROSS),
        Ok(Some(node)) => {
            let rx = s.ctx.mux(node, s.version, s.db).send(raw);
            s.wait_reply(rx);
        }
        Ok(None) => keyless(s, cmd, raw),
    }
}

impl Session {
    /// The node of `cmd`'s keys: `Ok(None)` without keys, `Err` when they
    /// are on different nodes.
    pub(super) fn node_for(&self, cmd: &Command) -> Result<Option<usize>, ()> {
        let topo = &self.ctx.topology;
        if !topo.is_sharded() {
            return Ok(None);
        }
        let Some(info) = lookup_command(cmd) else {
            return Ok(None);
        };
        let mut node = None;
        for key in routing_keys(info, cmd) {
            let n = topo.shard_of(key);
            match node {
                None => node = Some(n),
                Some(m) if m != n => return Err(()),
                Some(_) => {}
            }
        }
        Ok(node)
    }
}

fn keyless(s: &mut Session, cmd: &Command, raw: Bytes) {
    let all: Vec<(usize, Bytes)> = (0..s.ctx.topology.nodes.len())
        .map(|n| (n, raw.clone()))
        .collect();
    let rx = if cmd.is("DBSIZE") {
        gather(s, all, |replies| {
            let sum = replies
                .iter()
                .map(|r| if let Frame::Integer(i) = r { *i } else { 0 })
                .sum();
            first_error(&replies).unwrap_or(Frame::Integer(sum))
        })
    } else if cmd.is("KEYS") {
        gather(s, all, |replies| {
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
        gather(s, all, |replies| {
            first_error(&replies).unwrap_or_else(Frame::ok)
        })
    } else if cmd.is("SCAN") {
        match scan(s, cmd) {
            Some(rx) => rx,
            None => return s.error("ERR invalid cursor"),
        }
    } else {
        s.ctx.mux(0, s.version, s.db).send(raw)
    };
    s.wait_reply(rx);
}

fn first_error(replies: &[Frame]) -> Option<Frame> {
    replies.iter().find(|r| r.is_error()).cloned()
}

/// SCAN over every node in turn: the low byte of the cursor is the node.
fn scan(s: &mut Session, cmd: &Command) -> Option<oneshot::Receiver<Reply>> {
    let cursor: u64 = std::str::from_utf8(cmd.arg(1)?).ok()?.parse().ok()?;
    let nodes = s.ctx.topology.nodes.len() as u64;
    let (node, inner) = (cursor & 0xff, cursor >> 8);
    if node >= nodes {
        return None;
    }
    let mut args = cmd.args.clone();
    args[1] = Bytes::from(inner.to_string());
    let part = Command { args }.to_bytes();
    Some(gather(
        s,
        vec![(node as usize, part)],
        move |mut replies| {
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
            let next = match (next_inner, node + 1 < nodes) {
                (0, true) => node + 1,
                (0, false) => 0,
                (i, _) => (i << 8) | node,
            };
            pair[0] = Frame::Bulk(Bytes::from(next.to_string()));
            Frame::Array(pair)
        },
    ))
}

/// Sends each part to its node and merges the decoded replies (in part
/// order) into one reply in the client's protocol version.
fn gather(
    s: &Session,
    parts: Vec<(usize, Bytes)>,
    merge: impl FnOnce(Vec<Frame>) -> Frame + Send + 'static,
) -> oneshot::Receiver<Reply> {
    let version = s.version;
    let rxs: Vec<_> = parts
        .into_iter()
        .map(|(n, bytes)| s.ctx.mux(n, version, s.db).send(bytes))
        .collect();
    let limits = s.ctx.topology.node(0).target.limits;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut frames = Vec::with_capacity(rxs.len());
        for r in rxs {
            match r.await.unwrap_or(Err(RedisBackendError::Lost)) {
                Ok(raw) => frames.push(decode(raw, version, &limits)),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
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
