//! Config → human units: `"5s"`, `"250ms"`, `"256MiB"` as they appear in
//! `attache.toml`, before any value reaches the accept → parse → route →
//! backend → respond path as a plain `Duration` or byte count.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written with a unit (`"250ms"`, `"5s"`, `"10m"`, `"1h"`, `"1d"`)
/// or `0` / `"0"` for "zero / disabled". A bare non-zero number is refused
/// because `timeout = 5` is ambiguous (seconds? milliseconds?).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dur(pub Duration);

/// A size in bytes written as `"256MiB"`, `"64KiB"`, `"1GiB"`, `"512KB"`
/// (decimal, 1000), `"100B"` or a bare integer of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

/// Why a unit string was refused; the message is shown to the user as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

/// Duration units, largest first so `Display` can pick the shortest form.
const DUR_UNITS: &[(&str, u128)] = &[
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Size units; matched case-insensitively. `KB` is decimal like a disk
/// vendor's, `KiB` binary like PgBouncer's and Postgres's memory settings.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

fn dur_error(got: &str) -> UnitError {
    UnitError(format!(
        "expected a duration like \"5s\" or \"250ms\", got {got:?}"
    ))
}

fn size_error(got: &str) -> UnitError {
    UnitError(format!(
        "expected a size like \"256MiB\", \"64KiB\" or a number of bytes, got {got:?}"
    ))
}

/// Splits `"250 ms"` into `(250, "ms")`; `None` if there is no leading integer.
fn split_number(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse::<u64>().ok()?;
    Some((n, s[end..].trim_start()))
}

impl FromStr for Dur {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, unit) = split_number(s).ok_or_else(|| dur_error(s))?;
        if unit.is_empty() {
            return if n == 0 {
                Ok(Dur(Duration::ZERO))
            } else {
                Err(UnitError(format!(
                    "expected a duration like \"5s\" or \"250ms\", got {s:?} (a number needs a unit)"
                )))
            };
        }
        let (_, factor) = DUR_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .ok_or_else(|| dur_error(s))?;
        let nanos = u128::from(n) * factor;
        let secs = u64::try_from(nanos / 1_000_000_000)
            .map_err(|_| UnitError(format!("duration {s:?} is too large")))?;
        // The remainder is < 1e9 so the cast cannot truncate.
        let sub = (nanos % 1_000_000_000) as u32;
        Ok(Dur(Duration::new(secs, sub)))
    }
}

impl fmt::Display for Dur {
    /// The shortest exact form: 90s prints as `"90s"`, 120s as `"2m"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0");
        }
        for (unit, factor) in DUR_UNITS {
            if divides(*factor, nanos) {
                return write!(f, "{}{unit}", nanos / factor);
            }
        }
        write!(f, "{nanos}ns")
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, unit) = split_number(s).ok_or_else(|| size_error(s))?;
        let factor = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(u, _)| u.eq_ignore_ascii_case(unit))
                .map(|(_, f)| *f)
                .ok_or_else(|| size_error(s))?
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| UnitError(format!("size {s:?} is too large")))
    }
}

impl fmt::Display for ByteSize {
    /// The shortest exact form among binary and decimal units.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let best = SIZE_UNITS
            .iter()
            .filter(|(_, factor)| divides(u128::from(*factor), u128::from(self.0)))
            .map(|(unit, factor)| format!("{}{unit}", self.0 / factor))
            .min_by_key(String::len);
        match best {
            Some(s) => f.write_str(&s),
            None => write!(f, "{}B", self.0),
        }
    }
}

/// `is_multiple_of` needs Rust 1.87; the workspace declares 1.80.
#[allow(clippy::manual_is_multiple_of)]
fn divides(d: u128, n: u128) -> bool {
    n % d == 0
}

impl Dur {
    /// `None` for zero: the config's way of saying "disabled".
    pub fn non_zero(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct DurVisitor;

impl Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration like \"5s\" or \"250ms\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
        self.visit_str(&v.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size like \"256MiB\" or a number of bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(size_error(&v.to_string())))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests;
