//! Route: a consistent-hash ring that places keys exactly as twemproxy's
//! `distribution: ketama` does, so Attaché can replace a twemproxy in front
//! of existing Redis shards without moving a single key.
//!
//! twemproxy's ring, reproduced here:
//! - each server gets `floor(weight / total_weight × 40 × servers) × 4`
//!   points, computed in `f32` as twemproxy does (160 per server at equal
//!   weights);
//! - the points of a server come from MD5 digests of `"<name>-<i>"` for
//!   `i` in `0..points/4`, each digest giving four little-endian `u32`s;
//! - `<name>` is the server's configured name, or `host:port` without one
//!   (just `host` when the port is 11211; see [`default_name`]);
//! - a key goes to the first point at or after its hash, wrapping to the
//!   first point; points with equal values keep server order (twemproxy
//!   sorts with glibc's merge-sort `qsort`, which is stable).
//!
//! Key hashing ([`hash`], [`HashKind`]) and `hash_tag` are twemproxy's too;
//! see [`Ketama::server_for_key`].

mod hashkit;

pub use hashkit::{hash, HashKind, UnknownHash};

/// twemproxy formats `"<name>-<i>"` into an 86-byte buffer; longer names
/// would make it hash past its buffer, so they are refused.
const MAX_HOST_LEN: usize = 85;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KetamaError {
    #[error("a ketama ring needs at least one server")]
    Empty,
    #[error("server {index} has weight 0; weights must be at least 1")]
    ZeroWeight { index: usize },
    #[error("server {index}: name too long for twemproxy's ketama (at most {MAX_HOST_LEN} bytes with its point suffix)")]
    NameTooLong { index: usize },
}

/// The name twemproxy hashes for a server configured without one.
pub fn default_name(host: &str, port: u16) -> String {
    if port == 11211 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// twemproxy's `hash_tag: "XY"`: hash only what lies between the first `X`
/// and the next `Y` after it, if that is non-empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashTag {
    pub open: u8,
    pub close: u8,
}

impl HashTag {
    /// From the two-character config value, e.g. `"{}"`.
    pub fn parse(tag: &str) -> Option<Self> {
        match tag.as_bytes() {
            [open, close] => Some(Self {
                open: *open,
                close: *close,
            }),
            _ => None,
        }
    }

    /// The part of `key` that is hashed.
    pub fn apply<'k>(&self, key: &'k [u8]) -> &'k [u8] {
        let Some(open) = key.iter().position(|&b| b == self.open) else {
            return key;
        };
        let rest = &key[open + 1..];
        match rest.iter().position(|&b| b == self.close) {
            Some(close) if close > 0 => &rest[..close],
            _ => key,
        }
    }
}

/// A built ring: points sorted by value, each naming a server index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ketama {
    points: Vec<Point>,
    servers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Point {
    value: u32,
    server: u32,
}

impl Ketama {
    /// Builds the ring for `(name, weight)` servers in configuration order;
    /// [`Ketama::server_for`] returns indexes into this list.
    pub fn new(servers: &[(String, u32)]) -> Result<Self, KetamaError> {
        if servers.is_empty() {
            return Err(KetamaError::Empty);
        }
        if let Some(index) = servers.iter().position(|(_, w)| *w == 0) {
            return Err(KetamaError::ZeroWeight { index });
        }
        let total: u64 = servers.iter().map(|(_, w)| u64::from(*w)).sum();
        let count = servers.len();
        let mut points = Vec::new();
        for (index, (name, weight)) in servers.iter().enumerate() {
            let groups = point_groups(*weight, total, count);
            for group in 0..groups {
                let host = format!("{name}-{group}");
                if host.len() > MAX_HOST_LEN {
                    return Err(KetamaError::NameTooLong { index });
                }
                for word in 0..4 {
                    points.push(Point {
                        value: hashkit::md5_u32(host.as_bytes(), word),
                        server: index as u32,
                    });
                }
            }
        }
        // Stable, so equal values keep server order, as in twemproxy.
        points.sort_by_key(|p| p.value);
        Ok(Self {
            points,
            servers: count,
        })
    }

    /// The server owning `hash`: the first point at or after it, wrapping.
    pub fn server_for(&self, hash: u32) -> usize {
        let at = self.points.partition_point(|p| p.value < hash);
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map_or(0, |p| p.server as usize)
    }

    /// The server for `key` as twemproxy routes it: apply the hash tag, then
    /// hash (an empty key hashes to 0), except that a single-server pool
    /// needs no hashing at all.
    pub fn server_for_key(&self, kind: HashKind, tag: Option<HashTag>, key: &[u8]) -> usize {
        if self.servers == 1 {
            return 0;
        }
        let key = tag.map_or(key, |t| t.apply(key));
        let hashed = if key.is_empty() { 0 } else { hash(kind, key) };
        self.server_for(hashed)
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True if no server received any point (cannot happen with valid input).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Points held by each server, in server order (for diagnostics).
    pub fn points_per_server(&self) -> Vec<usize> {
        let mut counts = vec![0; self.servers];
        for p in &self.points {
            counts[p.server as usize] += 1;
        }
        counts
    }
}

/// twemproxy's `floorf(pct * 160 / 4 * nlive + 1e-10)`, evaluated in `f32`
/// like the C expression (the tiny epsilon is added in `f64` and rounded
/// back to `f32`, as C promotes it).
fn point_groups(weight: u32, total: u64, servers: usize) -> u32 {
    let pct = weight as f32 / total as f32;
    let scaled = pct * 160.0f32 / 4.0f32 * servers as f32;
    ((f64::from(scaled) + 0.000_000_000_1) as f32).floor() as u32
}

#[cfg(test)]
mod tests;
