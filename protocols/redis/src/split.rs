//! Route → respond: runs a multi-key command against several shards and
//! rebuilds the one reply the client expects.
//!
//! `MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS` and `TOUCH` are the multi-key
//! commands whose effect is the same whether sent whole or per shard, so a
//! sharding proxy splits them (as twemproxy does): one sub-command per
//! shard, keys kept in their original order within each, and a
//! [`MergePlan`] to put the replies back together. Other multi-key
//! commands cannot be split without changing their meaning; in a cluster
//! they must have all keys in one slot, which [`same_slot_or_crossslot`]
//! checks with the error Redis Cluster itself returns.

use crate::command::{routing_keys, Command, CommandInfo};
use crate::frame::Frame;
use crate::slot::hash_slot;
use bytes::Bytes;

/// How to run a command across shards.
#[derive(Debug, Clone, PartialEq)]
pub enum Split {
    /// Every key lives on this shard: forward the command unchanged.
    Single(usize),
    /// One sub-command per shard, in first-key order; merge the replies
    /// (in the same order) with `merge`.
    Multi {
        parts: Vec<(usize, Command)>,
        merge: MergePlan,
    },
}

/// How the per-shard replies become the client's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergePlan {
    /// `MGET`: part `i`'s values go to the original key positions
    /// `positions[i]`, out of `total` keys.
    Mget {
        positions: Vec<Vec<usize>>,
        total: usize,
    },
    /// `DEL`, `UNLINK`, `EXISTS`, `TOUCH`: the integers add up.
    Sum,
    /// `MSET`: `OK` once every part said `OK`.
    AllOk,
}

/// The reply when a shard answers a split part with something unexpected.
const UNEXPECTED: &str = "ERR unexpected reply from a shard to a split command";

impl MergePlan {
    /// Merges the parts' replies, given in the order of `Split::Multi::parts`.
    /// The first error reply, if any, is the result.
    pub fn merge(&self, replies: Vec<Frame>) -> Frame {
        if let Some(error) = replies.iter().find(|r| r.is_error()) {
            return error.clone();
        }
        match self {
            MergePlan::Mget { positions, total } => merge_mget(positions, *total, replies),
            MergePlan::Sum => replies
                .iter()
                .try_fold(0i64, |sum, r| match r {
                    Frame::Integer(n) => sum.checked_add(*n),
                    _ => None,
                })
                .map_or_else(|| Frame::error(UNEXPECTED), Frame::Integer),
            MergePlan::AllOk => {
                let all_ok = replies
                    .iter()
                    .all(|r| matches!(r, Frame::Simple(s) if s.as_ref() == b"OK"));
                if all_ok {
                    Frame::ok()
                } else {
                    Frame::error(UNEXPECTED)
                }
            }
        }
    }
}

fn merge_mget(positions: &[Vec<usize>], total: usize, replies: Vec<Frame>) -> Frame {
    if replies.len() != positions.len() {
        return Frame::error(UNEXPECTED);
    }
    let mut values: Vec<Option<Frame>> = vec![None; total];
    for (reply, slots) in replies.into_iter().zip(positions) {
        let Frame::Array(items) = reply else {
            return Frame::error(UNEXPECTED);
        };
        if items.len() != slots.len() {
            return Frame::error(UNEXPECTED);
        }
        for (item, &at) in items.into_iter().zip(slots) {
            if let Some(slot) = values.get_mut(at) {
                *slot = Some(item);
            }
        }
    }
    match values.into_iter().collect::<Option<Vec<_>>>() {
        Some(values) => Frame::Array(values),
        None => Frame::error(UNEXPECTED),
    }
}

/// The shape of a splittable command's arguments after the name.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// `key …`, reply merged by position.
    Mget,
    /// `key …`, integer replies summed.
    Counting,
    /// `key value …`.
    Mset,
}

fn shape(cmd: &Command) -> Option<Shape> {
    if cmd.is("MGET") {
        Some(Shape::Mget)
    } else if ["DEL", "UNLINK", "EXISTS", "TOUCH"]
        .iter()
        .any(|n| cmd.is(n))
    {
        Some(Shape::Counting)
    } else if cmd.is("MSET") {
        Some(Shape::Mset)
    } else {
        None
    }
}

/// Splits `cmd` by the shard of each key. `None` if `cmd` is not one of
/// the splittable commands, or has the wrong number of arguments (route it
/// whole and let the server report the error).
pub fn split(cmd: &Command, shard_of: impl Fn(&[u8]) -> usize) -> Option<Split> {
    let shape = shape(cmd)?;
    let width = if shape == Shape::Mset { 2 } else { 1 };
    let rest = &cmd.args[1..];
    // (`is_multiple_of` is newer than the workspace's minimum Rust.)
    let unpaired = rest.len() % width;
    if rest.is_empty() || unpaired > 0 {
        return None;
    }
    // (shard, arguments after the name, original key positions)
    let mut groups: Vec<(usize, Vec<Bytes>, Vec<usize>)> = Vec::new();
    for (position, chunk) in rest.chunks(width).enumerate() {
        let shard = shard_of(&chunk[0]);
        let group = match groups.iter().position(|g| g.0 == shard) {
            Some(i) => &mut groups[i],
            None => {
                groups.push((shard, Vec::new(), Vec::new()));
                groups.last_mut()?
            }
        };
        group.1.extend(chunk.iter().cloned());
        group.2.push(position);
    }
    if let [(shard, _, _)] = groups[..] {
        return Some(Split::Single(shard));
    }
    let merge = match shape {
        Shape::Mget => MergePlan::Mget {
            positions: groups.iter().map(|g| g.2.clone()).collect(),
            total: rest.len(),
        },
        Shape::Counting => MergePlan::Sum,
        Shape::Mset => MergePlan::AllOk,
    };
    let parts = groups
        .into_iter()
        .map(|(shard, args, _)| {
            let all = std::iter::once(cmd.args[0].clone()).chain(args).collect();
            (shard, Command { args: all })
        })
        .collect();
    Some(Split::Multi { parts, merge })
}

/// Redis Cluster's error for keys in different slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CROSSSLOT Keys in request don't hash to the same slot")]
pub struct CrossSlot;

impl CrossSlot {
    /// The error reply, as Redis Cluster sends it.
    pub fn to_frame(self) -> Frame {
        Frame::error(self.to_string())
    }
}

/// The one slot all of `cmd`'s keys (and shard channels) hash to; `None`
/// for a command without keys.
pub fn same_slot_or_crossslot(cmd: &Command, info: &CommandInfo) -> Result<Option<u16>, CrossSlot> {
    let mut slot = None;
    for key in routing_keys(info, cmd) {
        let this = hash_slot(key);
        match slot {
            None => slot = Some(this),
            Some(s) if s != this => return Err(CrossSlot),
            Some(_) => {}
        }
    }
    Ok(slot)
}

#[cfg(test)]
mod tests;
