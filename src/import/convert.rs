//! Config import → units: PgBouncer's seconds and byte counts and
//! twemproxy's milliseconds, turned into the `"30s"` / `"256MiB"` strings
//! `attache.toml` takes.
//!
//! Why: a bare number in `attache.toml` is refused for durations
//! (`timeout = 5` is ambiguous), so every imported time gets its unit here.

use std::time::Duration;

use crate::config::units::{ByteSize, Dur};

/// PgBouncer's time settings: seconds, possibly fractional (`0.5`), or with
/// a PostgreSQL-style unit (`500ms`, `15s`, `5min`, `1h`, `1d`).
pub(crate) fn seconds(value: &str) -> Result<Dur, String> {
    scaled(value, 1.0, "seconds")
}

/// twemproxy's time settings: whole milliseconds.
pub(crate) fn millis(value: &str) -> Result<Dur, String> {
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number of milliseconds"))?;
    Ok(Dur(Duration::from_millis(n)))
}

fn scaled(value: &str, unit_secs: f64, what: &str) -> Result<Dur, String> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = (&v[..split], v[split..].trim());
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{value:?} is not a number of {what}"))?;
    let factor = match unit {
        "" => unit_secs,
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(format!("{value:?}: unknown time unit {unit:?}")),
    };
    let secs = n * factor;
    if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
        return Err(format!("{value:?} is out of range"));
    }
    // Whole milliseconds: PgBouncer's own resolution for these settings.
    let ms = (secs * 1000.0).round() as u64;
    Ok(Dur(Duration::from_millis(ms)))
}

/// PgBouncer's size settings: bytes, or with a unit (`kB`, `MB`, `GB` in
/// PostgreSQL's binary sense).
pub(crate) fn bytes(value: &str) -> Result<ByteSize, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split]
        .parse()
        .map_err(|_| format!("{value:?} is not a number of bytes"))?;
    let factor: u64 = match v[split..].trim() {
        "" | "B" => 1,
        "kB" | "KB" | "k" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        other => return Err(format!("{value:?}: unknown size unit {other:?}")),
    };
    n.checked_mul(factor)
        .map(ByteSize)
        .ok_or_else(|| format!("{value:?} is too large"))
}

/// A whole, non-negative count (`pool_size`, `max_client_conn`).
pub(crate) fn count(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

#[cfg(test)]
mod tests;
