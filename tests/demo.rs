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
}
