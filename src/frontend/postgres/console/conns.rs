//! Respond (Postgres admin console): SHOW CLIENTS and SHOW SERVERS, one
//! row per connection, with PgBouncer's columns.
//!
//! Server connections live inside the pools, which count them but do not
//! list them; what Attaché knows of one comes from the client holding it
//! (its server's pid, through the client's cancel slot). So a server held
//! by a client gets a row with that pid and a link to the client; the
//! others (idle, or busy with a reset or a login) get rows with only their
//! pool's facts.

use std::time::{SystemTime, UNIX_EPOCH};

use super::show::{host_port, PoolView, Snapshot};
use super::wire::{Kind, RowSet, Value};

/// The columns both commands share, in PgBouncer's order.
const COLUMNS: &[(&str, Kind)] = &[
    ("type", Kind::Text),
    ("user", Kind::Text),
    ("database", Kind::Text),
    ("replication", Kind::Text),
    ("state", Kind::Text),
    ("addr", Kind::Text),
    ("port", Kind::Int),
    ("local_addr", Kind::Text),
    ("local_port", Kind::Int),
    ("connect_time", Kind::Text),
    ("request_time", Kind::Text),
    ("wait", Kind::Int),
    ("wait_us", Kind::Int),
    ("close_needed", Kind::Int),
    ("ptr", Kind::Text),
    ("link", Kind::Text),
    ("remote_pid", Kind::Int),
    ("tls", Kind::Text),
    ("application_name", Kind::Text),
    ("prepared_statements", Kind::Int),
    ("id", Kind::Int),
];

/// A client's `ptr`: its id in hex, as PgBouncer shows an address.
fn client_ptr(id: i32) -> String {
    format!("{id:#x}")
}

/// SHOW CLIENTS.
pub(super) fn clients(snap: &Snapshot) -> RowSet {
    let mut set = RowSet::new(COLUMNS);
    for c in &snap.clients {
        let state = if c.server().is_some() {
            "active"
        } else {
            "idle"
        };
        set.push(vec![
            "C".into(),
            c.user.as_str().into(),
            c.database.as_str().into(),
            "none".into(),
            state.into(),
            c.addr.map(|a| a.ip().to_string()).into(),
            c.addr.map_or(Value::Null, |a| i32::from(a.port()).into()),
            c.local.map(|a| a.ip().to_string()).into(),
            c.local.map_or(Value::Null, |a| i32::from(a.port()).into()),
            timestamp(c.connected).into(),
            Value::Null,
            0usize.into(),
            0usize.into(),
            0usize.into(),
            client_ptr(c.id).into(),
            Value::Null,
            0usize.into(),
            c.tls.as_str().into(),
            c.application_name.as_str().into(),
            0usize.into(),
            c.id.into(),
        ]);
    }
    set
}

/// SHOW SERVERS.
pub(super) fn servers(snap: &Snapshot) -> RowSet {
    let mut set = RowSet::new(COLUMNS);
    for p in &snap.pools {
        let mut linked = 0usize;
        for c in snap.clients.iter().filter(|c| p.serves(c)) {
            let Some(server) = c.server().filter(|s| *s.addr == *p.node) else {
                continue;
            };
            linked += 1;
            let link = (client_ptr(c.id), c.application_name.clone());
            set.push(server_row(p, "active", Some(link), server.pid));
        }
        // Checked out but by no listed client: a reset, a login check or a
        // min_idle warm-up.
        for _ in 0..p.active().saturating_sub(linked) {
            set.push(server_row(p, "active", None, 0));
        }
        for _ in 0..p.idle {
            set.push(server_row(p, "idle", None, 0));
        }
    }
    set
}

fn server_row(p: &PoolView, state: &str, link: Option<(String, String)>, pid: i32) -> Vec<Value> {
    let (host, port) = host_port(&p.node);
    let (link, application_name) = match link {
        Some((ptr, app)) => (Value::Text(ptr), app),
        None => (Value::Null, String::new()),
    };
    vec![
        "S".into(),
        p.server_user.as_str().into(),
        p.database.as_str().into(),
        "none".into(),
        state.into(),
        host.into(),
        port.map_or(Value::Null, |p| i32::from(p).into()),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        0usize.into(),
        0usize.into(),
        0usize.into(),
        Value::Null,
        link,
        pid.into(),
        Value::Null,
        application_name.into(),
        0usize.into(),
        0usize.into(),
    ]
}

/// `2024-05-01 12:34:56 UTC`, the format PgBouncer shows times in.
pub(super) fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (the well-known
/// era arithmetic: 400-year eras of 146 097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
