//! Route: Redis Cluster hash slots.
//!
//! A cluster splits the key space into 16384 slots by CRC16 of the key, or
//! of its `{hash tag}` so that related keys can share a slot. The router
//! must compute slots exactly as Redis does to send each command to the
//! node that owns its keys without a MOVED round trip.

/// Number of slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM (poly 0x1021, init 0, no reflection), Redis Cluster's key hash.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

pub(crate) const CRC16_TABLE: [u16; 256] = crc16_table();

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// The part of `key` that is hashed: the content of the first `{…}` if it is
/// non-empty (from the first `{` to the first `}` after it), else the key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}') {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    key
}

/// The cluster slot of `key`.
pub fn hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS - 1)
}

#[cfg(test)]
mod tests;
