//! Route, shown: a few kinds of statement sent through Attaché, each asking
//! `inet_server_port()`, so the demo can print which server answered. Reads
//! (as PostgreSQL's grammar classifies them) go to the replica; writes and
//! locking reads go to the primary.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{connect, DemoError};

/// Statements of each kind the table is built from.
const ROUNDS: usize = 10;

/// Label, statement. Each returns the answering server's port first.
const READS: (&str, &str) = ("reads", "SELECT inet_server_port()");
const WRITES: (&str, &str) = (
    "writes",
    "INSERT INTO routing_log DEFAULT VALUES RETURNING inet_server_port()",
);
const LOCKING: (&str, &str) = (
    "locking reads",
    "SELECT inet_server_port() FROM accounts WHERE id = 1 FOR UPDATE",
);

/// Which server answered how many times, by port.
pub(super) type Tally = BTreeMap<u16, usize>;

/// Runs every kind of statement through Attaché at `addr` and prints where
/// each went. Reads use a client of their own: under read-your-writes a
/// client that has just written reads from the primary until the replica
/// has caught up, which would hide the split this table is meant to show.
pub(super) async fn show(addr: SocketAddr, primary: u16, replica: u16) -> Result<(), DemoError> {
    let reader = connect(addr).await?;
    let writer = connect(addr).await?;
    let reads = tally(&reader, READS.1).await?;
    let writes = tally(&writer, WRITES.1).await?;
    let locking = tally(&writer, LOCKING.1).await?;
    println!(
        "\nRouting through Attaché (primary :{primary}, replica :{replica}), {ROUNDS} statements of each kind, each asking inet_server_port():"
    );
    for ((label, sql), t) in [(READS, &reads), (WRITES, &writes), (LOCKING, &locking)] {
        println!("  {}", route_line(label, sql, t, primary, replica));
    }
    println!(
        "  (A client that has just written reads from the primary until the replica has replayed\n   \
         its write: consistency = \"read-your-writes\", the default.)\n"
    );
    Ok(())
}

async fn tally(c: &tokio_postgres::Client, sql: &str) -> Result<Tally, DemoError> {
    let mut t = Tally::new();
    for _ in 0..ROUNDS {
        let row = c.query_one(sql, &[]).await?;
        let port: i32 = row.try_get(0)?;
        let port = u16::try_from(port)
            .map_err(|_| DemoError::Other(format!("{sql} answered port {port}")))?;
        *t.entry(port).or_default() += 1;
    }
    Ok(t)
}

/// `reads          → replica :5434 (10 of 10)   SELECT …`; a kind split
/// over several servers lists each.
pub(super) fn route_line(label: &str, sql: &str, t: &Tally, primary: u16, replica: u16) -> String {
    let total: usize = t.values().sum();
    let servers: Vec<String> = t
        .iter()
        .map(|(port, n)| {
            let role = match *port {
                p if p == primary => "primary",
                p if p == replica => "replica",
                _ => "unknown server",
            };
            format!("{role} :{port} ({n} of {total})")
        })
        .collect();
    format!("{label:<13} → {:<28} {sql}", servers.join(", "))
}

#[cfg(test)]
mod tests;
