//! `attache demo` runs end to end: real PostgreSQL, Attaché, a workload, a
//! live summary, and a clean stop.

use std::process::Command;

#[test]
fn demo_runs_a_workload_and_cleans_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_attache"))
        .arg("demo")
        .env("ATTACHE_DEMO_SECONDS", "3")
        .output()
        .expect("run attache demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("psql \"postgres://app:app-secret@127.0.0.1:"),
        "{stdout}"
    );
    // The last summary must show queries flowing and no errors.
    let last = stdout
        .rsplit('\r')
        .find(|s| s.contains("queries/s"))
        .unwrap_or_default();
    let qps: u64 = last
        .split("queries/s")
        .nth(1)
        .and_then(|s| s.split('|').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    assert!(qps > 0, "no queries flowed: {last:?}");
    assert!(last.contains("errors 0"), "{last:?}");
    assert!(stdout.contains("Stopped; PostgreSQL and its data directory are removed."));
    // The Redis part: keys spread over all three shards, none lost.
    let spread = stdout
        .lines()
        .find(|l| l.contains("keys written through Attaché landed"))
        .unwrap_or_else(|| panic!("no Redis line: {stdout}"));
    let counts: Vec<u64> = spread
        .split("shard")
        .skip(1)
        .filter_map(|p| {
            p.split_whitespace()
                .nth(1)
                .and_then(|n| n.trim_end_matches(',').parse().ok())
        })
        .collect();
    assert_eq!(counts.len(), 3, "{spread}");
    assert!(
        counts.iter().all(|c| *c > 0),
        "every shard should get keys: {spread}"
    );
    assert_eq!(counts.iter().sum::<u64>(), 3000, "{spread}");
}
