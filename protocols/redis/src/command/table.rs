//! Route: the Redis 7.0 command table, kept as data in `commands.json`.
//!
//! The router needs, per command, its arity, flags (write, readonly,
//! blocking, pubsub, …) and where its keys are. Rather than hand-maintain
//! that, `tools/gen_commands.py` asks a real Redis (`COMMAND`, `COMMAND
//! DOCS`) and writes the JSON embedded here; upgrading Redis means
//! re-running it and reviewing the diff. The JSON is parsed once, on first
//! look-up, into an index keyed by lower-case name.

use super::{lower_into, Command};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE_JSON: &str = include_str!("../../commands.json");

/// Command flags as Redis reports them in `COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct Flags(u32);

impl Flags {
    pub const WRITE: Flags = Flags(1);
    pub const READONLY: Flags = Flags(1 << 1);
    pub const DENYOOM: Flags = Flags(1 << 2);
    pub const ADMIN: Flags = Flags(1 << 3);
    pub const PUBSUB: Flags = Flags(1 << 4);
    pub const NOSCRIPT: Flags = Flags(1 << 5);
    pub const BLOCKING: Flags = Flags(1 << 6);
    pub const LOADING: Flags = Flags(1 << 7);
    pub const STALE: Flags = Flags(1 << 8);
    pub const SKIP_MONITOR: Flags = Flags(1 << 9);
    pub const SKIP_SLOWLOG: Flags = Flags(1 << 10);
    pub const ASKING: Flags = Flags(1 << 11);
    pub const FAST: Flags = Flags(1 << 12);
    pub const NO_AUTH: Flags = Flags(1 << 13);
    pub const NO_MANDATORY_KEYS: Flags = Flags(1 << 14);
    pub const NO_MULTI: Flags = Flags(1 << 15);
    pub const MOVABLEKEYS: Flags = Flags(1 << 16);
    pub const NO_ASYNC_LOADING: Flags = Flags(1 << 17);
    pub const ALLOW_BUSY: Flags = Flags(1 << 18);

    const NAMES: [(&'static str, Flags); 19] = [
        ("write", Self::WRITE),
        ("readonly", Self::READONLY),
        ("denyoom", Self::DENYOOM),
        ("admin", Self::ADMIN),
        ("pubsub", Self::PUBSUB),
        ("noscript", Self::NOSCRIPT),
        ("blocking", Self::BLOCKING),
        ("loading", Self::LOADING),
        ("stale", Self::STALE),
        ("skip_monitor", Self::SKIP_MONITOR),
        ("skip_slowlog", Self::SKIP_SLOWLOG),
        ("asking", Self::ASKING),
        ("fast", Self::FAST),
        ("no_auth", Self::NO_AUTH),
        ("no_mandatory_keys", Self::NO_MANDATORY_KEYS),
        ("no_multi", Self::NO_MULTI),
        ("movablekeys", Self::MOVABLEKEYS),
        ("no_async_loading", Self::NO_ASYNC_LOADING),
        ("allow_busy", Self::ALLOW_BUSY),
    ];

    /// True if every flag in `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl From<Vec<String>> for Flags {
    /// Unknown names (from a newer Redis) are ignored.
    fn from(names: Vec<String>) -> Self {
        let bits = names
            .iter()
            .filter_map(|n| Self::NAMES.iter().find(|(name, _)| name == n))
            .fold(0, |acc, (_, f)| acc | f.0);
        Flags(bits)
    }
}

/// Key-spec flags: how a command uses the keys a spec finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(from = "Vec<String>")]
pub struct KeySpecFlags(u16);

impl KeySpecFlags {
    pub const RO: KeySpecFlags = KeySpecFlags(1);
    pub const RW: KeySpecFlags = KeySpecFlags(1 << 1);
    pub const OW: KeySpecFlags = KeySpecFlags(1 << 2);
    pub const RM: KeySpecFlags = KeySpecFlags(1 << 3);
    pub const ACCESS: KeySpecFlags = KeySpecFlags(1 << 4);
    pub const UPDATE: KeySpecFlags = KeySpecFlags(1 << 5);
    pub const INSERT: KeySpecFlags = KeySpecFlags(1 << 6);
    pub const DELETE: KeySpecFlags = KeySpecFlags(1 << 7);
    /// The "key" is a shard channel: hashed to a slot, but not a key.
    pub const NOT_KEY: KeySpecFlags = KeySpecFlags(1 << 8);
    /// The spec may miss keys; Redis then uses the command's own logic.
    pub const INCOMPLETE: KeySpecFlags = KeySpecFlags(1 << 9);
    pub const VARIABLE_FLAGS: KeySpecFlags = KeySpecFlags(1 << 10);

    const NAMES: [(&'static str, KeySpecFlags); 11] = [
        ("RO", Self::RO),
        ("RW", Self::RW),
        ("OW", Self::OW),
        ("RM", Self::RM),
        ("access", Self::ACCESS),
        ("update", Self::UPDATE),
        ("insert", Self::INSERT),
        ("delete", Self::DELETE),
        ("not_key", Self::NOT_KEY),
        ("incomplete", Self::INCOMPLETE),
        ("variable_flags", Self::VARIABLE_FLAGS),
    ];

    pub fn contains(self, other: KeySpecFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl From<Vec<String>> for KeySpecFlags {
    fn from(names: Vec<String>) -> Self {
        let bits = names
            .iter()
            .filter_map(|n| Self::NAMES.iter().find(|(name, _)| name == n))
            .fold(0, |acc, (_, f)| acc | f.0);
        KeySpecFlags(bits)
    }
}

/// Where a key spec starts looking.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BeginSearch {
    /// At a fixed argument index.
    Index {
        index: i32,
    },
    /// After `keyword`, searched from `start_from` (backwards if negative).
    Keyword {
        keyword: String,
        #[serde(rename = "startfrom")]
        start_from: i32,
    },
    Unknown {},
}

/// How many keys a spec covers from where it starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FindKeys {
    /// Up to `last_key` (relative to the start; negative counts from the
    /// end), every `step`; with `limit > 0`, `1/limit` of what remains.
    Range {
        #[serde(rename = "lastkey")]
        last_key: i32,
        #[serde(rename = "keystep")]
        step: i32,
        limit: i32,
    },
    /// The argument at `key_num_index` (relative) says how many keys follow,
    /// starting `first_key` after it.
    Keynum {
        #[serde(rename = "keynumidx")]
        key_num_index: i32,
        #[serde(rename = "firstkey")]
        first_key: i32,
        #[serde(rename = "keystep")]
        step: i32,
    },
    Unknown {},
}

/// One Redis 7 key specification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeySpec {
    pub flags: KeySpecFlags,
    pub begin_search: BeginSearch,
    pub find_keys: FindKeys,
}

/// What the table knows about one command or subcommand.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommandInfo {
    /// Lower case; subcommands are `container|sub`, as in ACL rules.
    pub name: String,
    /// Exact argument count (name included) if positive, minimum if negative.
    pub arity: i32,
    pub flags: Flags,
    /// Legacy key range; prefer [`super::keys()`], which uses the key specs.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub key_specs: Vec<KeySpec>,
    /// Cluster hints such as `request_policy:all_shards`.
    pub tips: Vec<String>,
    pub acl_categories: Vec<String>,
    /// Documentation group (`string`, `pubsub`, `server`, …).
    pub group: String,
    #[serde(skip)]
    pub subcommands: Vec<CommandInfo>,
    /// Whether the command may need more than a shared connection (see
    /// [`super::affinity::affinity_of`]); false for the plain majority, so
    /// their classification is one field read.
    #[serde(skip)]
    pub special: bool,
}

impl CommandInfo {
    pub fn has(&self, flag: Flags) -> bool {
        self.flags.contains(flag)
    }

    /// Whether `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let need = self.arity.unsigned_abs() as usize;
        if self.arity >= 0 {
            argc == need
        } else {
            argc >= need
        }
    }

    /// A subcommand of this container command, case-insensitively.
    pub fn subcommand(&self, sub: &[u8]) -> Option<&CommandInfo> {
        self.subcommands.iter().find(|info| {
            info.name
                .split_once('|')
                .is_some_and(|(_, s)| s.as_bytes().eq_ignore_ascii_case(sub))
        })
    }
}

#[derive(Deserialize)]
struct RawTable {
    redis_version: String,
    commands: Vec<CommandInfo>,
}

struct Table {
    redis_version: String,
    commands: Vec<CommandInfo>,
    by_name: HashMap<Vec<u8>, usize, NameHash>,
}

/// FNV-1a for command names: several lookups per command sit on the hot
/// path, names are a few bytes, and the keys are the fixed table's (input
/// only looks up, never inserts), so SipHash's flooding defence buys
/// nothing here and costs more than the lookup itself.
#[derive(Clone, Copy, Default)]
struct NameHash;

impl std::hash::BuildHasher for NameHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The JSON is compiled in and checked by the tests, so a failure
        // here is a build defect, not something input can cause.
        let raw: RawTable = serde_json::from_str(TABLE_JSON).expect("commands.json is valid");
        build(raw)
    })
}

fn build(raw: RawTable) -> Table {
    let (subs, mut commands): (Vec<_>, Vec<_>) =
        raw.commands.into_iter().partition(|c| c.name.contains('|'));
    let by_name: HashMap<Vec<u8>, usize, NameHash> = commands
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_bytes().to_vec(), i))
        .collect();
    for c in &mut commands {
        c.special = super::affinity::is_special(c);
    }
    for mut sub in subs {
        sub.special = super::affinity::is_special(&sub);
        let container = sub.name.split('|').next().unwrap_or_default();
        if let Some(&i) = by_name.get(container.as_bytes()) {
            commands[i].subcommands.push(sub);
        }
    }
    Table {
        redis_version: raw.redis_version,
        commands,
        by_name,
    }
}

/// The Redis version the table was generated from.
pub fn redis_version() -> &'static str {
    &table().redis_version
}

/// Every top-level command (subcommands hang off their container).
pub fn all() -> &'static [CommandInfo] {
    &table().commands
}

/// A command by name, case-insensitively; `container|sub` finds a
/// subcommand.
pub fn lookup(name: &[u8]) -> Option<&'static CommandInfo> {
    if let Some(bar) = name.iter().position(|&b| b == b'|') {
        return lookup(&name[..bar])?.subcommand(&name[bar + 1..]);
    }
    let mut buf = [0u8; 32];
    let lower = lower_into(name, &mut buf)?;
    let table = table();
    table.by_name.get(lower).map(|&i| &table.commands[i])
}

/// The most specific entry for a command: the subcommand for containers
/// such as `OBJECT ENCODING` (or the container itself if the subcommand is
/// missing or unknown, so the server reports it).
pub fn lookup_command(cmd: &Command) -> Option<&'static CommandInfo> {
    let info = lookup(cmd.name())?;
    if info.subcommands.is_empty() {
        return Some(info);
    }
    Some(
        cmd.arg(1)
            .and_then(|sub| info.subcommand(sub))
            .unwrap_or(info),
    )
}

#[cfg(test)]
mod tests;
