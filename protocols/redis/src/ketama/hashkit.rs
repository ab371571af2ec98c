//! Route: the key hash functions twemproxy (nutcracker) offers, bit for bit.
//!
//! A deployment moving from twemproxy to Attaché must find every key on the
//! server twemproxy put it on, so these reproduce twemproxy's `hashkit`
//! exactly, including its quirks:
//! - `fnv1a_64` and `fnv1_64` are truncated to 32 bits (`fnv1a_64` even
//!   computes in 32 bits with the 64-bit offset basis and prime truncated);
//! - `fnv1*`, `one_at_a_time` and one byte of `hsieh` read key bytes as C
//!   `char`, which is signed on x86 and x86-64, so bytes ≥ 0x80 are
//!   sign-extended (these functions match twemproxy built for those CPUs);
//! - `crc16` keeps a 32-bit register (values exceed 16 bits);
//! - `crc32` is libmemcached's 15-bit variant; `crc32a` is standard CRC-32.

use md5::{Digest, Md5};
use std::str::FromStr;

/// A twemproxy `hash:` setting. Variant names follow twemproxy's.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    OneAtATime,
    Md5,
    Crc16,
    Crc32,
    Crc32a,
    Fnv1_64,
    Fnv1a_64,
    Fnv1_32,
    Fnv1a_32,
    Hsieh,
    Murmur,
    Jenkins,
}

impl HashKind {
    /// Every kind, with its twemproxy configuration name.
    pub const ALL: [(HashKind, &'static str); 12] = [
        (HashKind::OneAtATime, "one_at_a_time"),
        (HashKind::Md5, "md5"),
        (HashKind::Crc16, "crc16"),
        (HashKind::Crc32, "crc32"),
        (HashKind::Crc32a, "crc32a"),
        (HashKind::Fnv1_64, "fnv1_64"),
        (HashKind::Fnv1a_64, "fnv1a_64"),
        (HashKind::Fnv1_32, "fnv1_32"),
        (HashKind::Fnv1a_32, "fnv1a_32"),
        (HashKind::Hsieh, "hsieh"),
        (HashKind::Murmur, "murmur"),
        (HashKind::Jenkins, "jenkins"),
    ];

    /// The twemproxy configuration name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("", |(_, name)| name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash {0:?}; expected one of twemproxy's: one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur, jenkins")]
pub struct UnknownHash(pub String);

impl FromStr for HashKind {
    type Err = UnknownHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(kind, _)| *kind)
            .ok_or_else(|| UnknownHash(s.to_string()))
    }
}

/// Hashes `key` as twemproxy's `hash: <kind>` does.
pub fn hash(kind: HashKind, key: &[u8]) -> u32 {
    match kind {
        HashKind::OneAtATime => one_at_a_time(key),
        HashKind::Md5 => md5_u32(key, 0),
        HashKind::Crc16 => crc16_wide(key),
        HashKind::Crc32 => (!crc32_raw(key) >> 16) & 0x7fff,
        HashKind::Crc32a => !crc32_raw(key),
        HashKind::Fnv1_64 => fnv1_64(key),
        HashKind::Fnv1a_64 => fnv1a_64(key),
        HashKind::Fnv1_32 => fnv1_32(key),
        HashKind::Fnv1a_32 => fnv1a_32(key),
        HashKind::Hsieh => hsieh(key),
        HashKind::Murmur => murmur2(key),
        HashKind::Jenkins => jenkins(key),
    }
}

/// A byte as C's signed `char` widened to 32 bits.
fn schar(b: u8) -> u32 {
    b as i8 as i32 as u32
}

/// Little-endian u32 number `word` (0–3) of the MD5 digest of `data`;
/// ketama takes all four, the `md5` key hash takes the first.
pub(crate) fn md5_u32(data: &[u8], word: usize) -> u32 {
    let digest = Md5::digest(data);
    let at = word * 4;
    u32::from_le_bytes([digest[at], digest[at + 1], digest[at + 2], digest[at + 3]])
}

const FNV_64_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_32_BASIS: u32 = 0x811c_9dc5;
const FNV_32_PRIME: u32 = 0x0100_0193;

fn fnv1_64(key: &[u8]) -> u32 {
    let h = key.iter().fold(FNV_64_BASIS, |h, &b| {
        h.wrapping_mul(FNV_64_PRIME) ^ (b as i8 as i64 as u64)
    });
    h as u32
}

/// twemproxy's "64-bit" FNV-1a: 32-bit arithmetic with truncated constants.
fn fnv1a_64(key: &[u8]) -> u32 {
    key.iter().fold(FNV_64_BASIS as u32, |h, &b| {
        (h ^ schar(b)).wrapping_mul(FNV_64_PRIME as u32)
    })
}

fn fnv1_32(key: &[u8]) -> u32 {
    key.iter().fold(FNV_32_BASIS, |h, &b| {
        h.wrapping_mul(FNV_32_PRIME) ^ schar(b)
    })
}

fn fnv1a_32(key: &[u8]) -> u32 {
    key.iter().fold(FNV_32_BASIS, |h, &b| {
        (h ^ schar(b)).wrapping_mul(FNV_32_PRIME)
    })
}

fn one_at_a_time(key: &[u8]) -> u32 {
    let mut v = key.iter().fold(0u32, |mut v, &b| {
        v = v.wrapping_add(schar(b));
        v = v.wrapping_add(v << 10);
        v ^ (v >> 6)
    });
    v = v.wrapping_add(v << 3);
    v ^= v >> 11;
    v.wrapping_add(v << 15)
}

/// Reflected CRC table for polynomial `poly`.
const fn reflected_table(poly: u32) -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

const CRC32_TABLE: [u32; 256] = reflected_table(0xedb8_8320);

/// CRC-32 register after `key`, before the final inversion.
fn crc32_raw(key: &[u8]) -> u32 {
    key.iter().fold(u32::MAX, |crc, &b| {
        (crc >> 8) ^ CRC32_TABLE[((crc ^ u32::from(b)) & 0xff) as usize]
    })
}

/// twemproxy's `crc16`: the XMODEM table (as Redis Cluster), but the
/// register is 32 bits wide and never truncated, so long keys give values
/// above 16 bits.
fn crc16_wide(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |crc, &b| {
        (crc << 8)
            ^ u32::from(crate::slot::CRC16_TABLE[(((crc >> 8) ^ u32::from(b)) & 0xff) as usize])
    })
}

fn hsieh(key: &[u8]) -> u32 {
    if key.is_empty() {
        return 0;
    }
    let get16 = |d: &[u8]| u32::from(d[0]) | u32::from(d[1]) << 8;
    let mut hash = 0u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        hash = hash.wrapping_add(get16(&c[..2]));
        let tmp = (get16(&c[2..]) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        hash = hash.wrapping_add(hash >> 11);
    }
    let rest = chunks.remainder();
    match rest.len() {
        3 => {
            hash = hash.wrapping_add(get16(rest));
            hash ^= hash << 16;
            hash ^= schar(rest[2]) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        2 => {
            hash = hash.wrapping_add(get16(rest));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        1 => {
            hash = hash.wrapping_add(u32::from(rest[0]));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash.wrapping_add(hash >> 6)
}

/// MurmurHash2 with twemproxy's length-dependent seed.
fn murmur2(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let len = key.len() as u32;
    let mut h = 0xdead_beef_u32.wrapping_mul(len) ^ len;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// Bob Jenkins' lookup3 `hashlittle`, initval 13, as twemproxy seeds it.
fn jenkins(key: &[u8]) -> u32 {
    let init = 0xdead_beef_u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(13);
    let (mut a, mut b, mut c) = (init, init, init);
    let word = |w: &[u8]| {
        w.iter()
            .enumerate()
            .fold(0u32, |acc, (i, &byte)| acc | u32::from(byte) << (8 * i))
    };
    let mut rest = key;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        (a, b, c) = mix(a, b, c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return c;
    }
    a = a.wrapping_add(word(&rest[..rest.len().min(4)]));
    if rest.len() > 4 {
        b = b.wrapping_add(word(&rest[4..rest.len().min(8)]));
    }
    if rest.len() > 8 {
        c = c.wrapping_add(word(&rest[8..]));
    }
    final_mix(a, b, c)
}

fn mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(c) ^ c.rotate_left(4);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a) ^ a.rotate_left(6);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b) ^ b.rotate_left(8);
    b = b.wrapping_add(a);
    a = a.wrapping_sub(c) ^ c.rotate_left(16);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a) ^ a.rotate_left(19);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b) ^ b.rotate_left(4);
    b = b.wrapping_add(a);
    (a, b, c)
}

fn final_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

#[cfg(test)]
mod tests;
