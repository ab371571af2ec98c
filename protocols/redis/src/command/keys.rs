//! Route: which arguments of a command are keys.
//!
//! Sharding (cluster slots, ketama) routes by key, so the router must find
//! keys the way Redis does. Redis 7 describes them with key specs; this
//! module evaluates those specs like Redis's `getKeysUsingKeySpecs`:
//! - `index` / `keyword` (searched forwards, or backwards when negative)
//!   gives the first key;
//! - `range` (negative `last_key` counts from the end; `limit` takes a
//!   fraction of the rest, as `XREAD … STREAMS k1 k2 id1 id2`) or `keynum`
//!   (`EVAL`, `ZUNIONSTORE`, `LMPOP`, …) gives the rest;
//! - any spec that does not fit the arguments (bad `numkeys`, out of range)
//!   voids the whole result, as in Redis, which lets the server report it.
//!
//! Where Redis itself falls back to command-specific code (specs marked
//! `unknown` or `incomplete`: `SORT`, `SORT_RO`, `MIGRATE`), so do we.
//! Container commands (`OBJECT ENCODING key`, `XINFO STREAM key`, …) use
//! their subcommand's specs.

use super::table::{lookup_command, BeginSearch, CommandInfo, FindKeys, KeySpec, KeySpecFlags};
use super::Command;
use crate::frame::parse_i64;
use bytes::Bytes;

/// The keys of `cmd`, in argument order. Shard channels (`SPUBLISH`,
/// `SSUBSCRIBE`) are not keys; see [`routing_keys`].
pub fn keys<'a>(info: &CommandInfo, cmd: &'a Command) -> Vec<&'a [u8]> {
    key_positions(info, cmd, false)
        .into_iter()
        .map(|i| &cmd.args[i][..])
        .collect()
}

/// What a cluster routes by: the keys plus shard channels.
pub fn routing_keys<'a>(info: &CommandInfo, cmd: &'a Command) -> Vec<&'a [u8]> {
    key_positions(info, cmd, true)
        .into_iter()
        .map(|i| &cmd.args[i][..])
        .collect()
}

/// Argument indexes of the keys of `cmd` (for rewriting keys in place).
/// `info` may be the container entry; the subcommand is resolved here.
pub fn key_positions(info: &CommandInfo, cmd: &Command, include_not_keys: bool) -> Vec<usize> {
    let info = resolve(info, cmd);
    let args = &cmd.args;
    let mut out = Vec::new();
    for spec in &info.key_specs {
        let not_key = spec.flags.contains(KeySpecFlags::NOT_KEY);
        if not_key && !include_not_keys {
            continue;
        }
        if spec.flags.contains(KeySpecFlags::INCOMPLETE) {
            return fallback(info, cmd);
        }
        match spec_positions(spec, args) {
            Found::Keys(first, last, step) => out.extend((first..=last).step_by(step)),
            Found::None => {}
            Found::Invalid => return Vec::new(),
            Found::Unknown => return fallback(info, cmd),
        }
    }
    out
}

fn resolve<'i>(info: &'i CommandInfo, cmd: &Command) -> &'i CommandInfo {
    if info.subcommands.is_empty() {
        return info;
    }
    match cmd.arg(1).and_then(|sub| info.subcommand(sub)) {
        Some(sub) => sub,
        // A container given a different entry than its own: look it up.
        None => lookup_command(cmd)
            .filter(|i| i.subcommands.is_empty())
            .unwrap_or(info),
    }
}

enum Found {
    /// Keys at `first..=last` every `step`.
    Keys(usize, usize, usize),
    /// The spec matched nothing (its keyword is absent).
    None,
    /// The arguments contradict the spec.
    Invalid,
    /// The spec cannot be evaluated from the table alone.
    Unknown,
}

/// Evaluates one key spec against the arguments.
fn spec_positions(spec: &KeySpec, args: &[Bytes]) -> Found {
    let argc = args.len() as i64;
    let first = match &spec.begin_search {
        BeginSearch::Index { index } => i64::from(*index),
        BeginSearch::Keyword {
            keyword,
            start_from,
        } => match find_keyword(args, keyword.as_bytes(), i64::from(*start_from)) {
            Some(at) => at + 1,
            None => return Found::None,
        },
        BeginSearch::Unknown {} => return Found::Unknown,
    };
    let (first, last, step) = match &spec.find_keys {
        FindKeys::Range {
            last_key,
            step,
            limit,
        } => {
            let (last_key, limit) = (i64::from(*last_key), i64::from(*limit));
            let last = if last_key >= 0 {
                first + last_key
            } else if limit <= 0 {
                argc + last_key
            } else {
                first + ((argc - first) / limit + last_key)
            };
            (first, last, *step)
        }
        FindKeys::Keynum {
            key_num_index,
            first_key,
            step,
        } => {
            let at = first + i64::from(*key_num_index);
            let count = usize::try_from(at)
                .ok()
                .and_then(|at| args.get(at))
                .and_then(|text| parse_i64(text))
                .filter(|&n| n >= 0);
            let Some(count) = count else {
                return Found::Invalid;
            };
            let first = first + i64::from(*first_key);
            (first, first + count - 1, *step)
        }
        FindKeys::Unknown {} => return Found::Unknown,
    };
    if first < 1 || last < first || last >= argc || step < 1 {
        return Found::Invalid;
    }
    Found::Keys(first as usize, last as usize, step as usize)
}

/// Redis's keyword search: forwards from `start` up to the next-to-last
/// argument, or backwards from `argc + start` down to argument 1.
fn find_keyword(args: &[Bytes], keyword: &[u8], start: i64) -> Option<i64> {
    let argc = args.len() as i64;
    let is_keyword = |i: &i64| args[*i as usize].eq_ignore_ascii_case(keyword);
    if start > 0 {
        (start..argc - 1).find(is_keyword)
    } else {
        (1..=(argc + start).min(argc - 1)).rev().find(is_keyword)
    }
}

/// Command-specific key finding, where Redis's specs are not enough.
fn fallback(info: &CommandInfo, cmd: &Command) -> Vec<usize> {
    match info.name.as_str() {
        "sort" => sort_keys(&cmd.args, true),
        "sort_ro" => sort_keys(&cmd.args, false),
        "migrate" => migrate_keys(&cmd.args),
        _ => Vec::new(),
    }
}

/// `SORT key [BY p] [LIMIT o c] [GET p …] [ASC|DESC] [ALPHA] [STORE dst]`:
/// the key, and the destination of the last `STORE` (BY/GET patterns are
/// not keys of this command).
fn sort_keys(args: &[Bytes], may_store: bool) -> Vec<usize> {
    if args.len() < 2 {
        return Vec::new();
    }
    let mut store = None;
    let mut i = 2;
    while may_store && i < args.len() {
        let arg = &args[i][..];
        if arg.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
            // Like Redis, the word after STORE is still examined, so
            // `STORE STORE x` stores into `x`.
            store = Some(i + 1);
        } else if arg.eq_ignore_ascii_case(b"get") || arg.eq_ignore_ascii_case(b"by") {
            i += 1;
        }
        i += 1;
    }
    std::iter::once(1).chain(store).collect()
}

/// `MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw]
/// [AUTH2 user pw] [KEYS k…]`: the single key, or everything after `KEYS`.
fn migrate_keys(args: &[Bytes]) -> Vec<usize> {
    if args.len() < 4 {
        return Vec::new();
    }
    let mut i = 6;
    while i < args.len() {
        let arg = &args[i][..];
        if arg.eq_ignore_ascii_case(b"keys") {
            return (i + 1..args.len()).collect();
        } else if arg.eq_ignore_ascii_case(b"auth") {
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"auth2") {
            i += 2;
        }
        i += 1;
    }
    vec![3]
}

#[cfg(test)]
mod tests;
