//! `attache demo` runs end to end: a real primary and replica, Attaché, the
//! routing table, a workload, a live summary, and a clean stop; and
//! `attache demo --failover` kills the primary under load and must lose or
//! duplicate no acknowledged write.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The two demos run one after the other: both start servers and load the
/// machine, and the failover demo's timings mean little under a second load.
static SERIAL: Mutex<()> = Mutex::new(());

/// A demo that has not finished by then has hung.
const LIMIT: Duration = Duration::from_secs(90);

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the built binary with `args`, killing it (and failing) if it hangs.
fn run_demo(args: &[&str], env: &[(&str, &str)]) -> Run {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_attache"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start attache demo");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the demo") {
            break s;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`attache {}` still running after {LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The number right after `marker` in `line`.
fn number_after(line: &str, marker: &str) -> Option<i64> {
    let rest = line.split(marker).nth(1)?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

fn line_with<'a>(stdout: &'a str, needle: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{stdout}"))
}

#[test]
fn demo_shows_routing_runs_a_workload_and_cleans_up() {
    let run = run_demo(&["demo"], &[("ATTACHE_DEMO_SECONDS", "3")]);
    let stdout = &run.stdout;
    assert!(
        run.status.success(),
        "demo failed: {stdout}\n{}",
        run.stderr
    );
    assert!(
        stdout.contains("psql \"postgres://app:app-secret@127.0.0.1:"),
        "{stdout}"
    );
    // Routing: reads on the replica, writes and locking reads on the primary.
    let header = line_with(stdout, "Routing through Attaché (primary :");
    let primary = number_after(header, "primary :").expect("primary port");
    let replica = number_after(header, "replica :").expect("replica port");
    assert_ne!(primary, replica, "{header}");
    let reads = line_with(stdout, "  reads ");
    assert!(
        reads.contains(&format!("→ replica :{replica} (10 of 10)")),
        "{reads}"
    );
    let writes = line_with(stdout, "  writes ");
    assert!(
        writes.contains(&format!("→ primary :{primary} (10 of 10)")),
        "{writes}"
    );
    let locking = line_with(stdout, "  locking reads ");
    assert!(
        locking.contains(&format!("→ primary :{primary} (10 of 10)")),
        "{locking}"
    );
    // The last summary must show queries flowing, on both nodes, and no errors.
    let last = stdout
        .rsplit('\r')
        .find(|s| s.contains("queries/s"))
        .unwrap_or_default();
    let qps = number_after(last, "queries/s").unwrap_or(0);
    assert!(qps > 0, "no queries flowed: {last:?}");
    assert!(
        number_after(last, "tx/s primary").unwrap_or(0) > 0,
        "{last:?}"
    );
    assert!(last.contains("errors 0"), "{last:?}");
    assert!(stdout.contains("Stopped; PostgreSQL and its data directory are removed."));
    // The Redis part: keys spread over all three shards, none lost.
    let spread = line_with(stdout, "keys written through Attaché landed");
    let counts: Vec<i64> = spread
        .split("shard")
        .skip(1)
        .filter_map(|p| number_after(p, " "))
        .collect();
    assert_eq!(counts.len(), 3, "{spread}");
    assert!(
        counts.iter().all(|c| *c > 0),
        "every shard should get keys: {spread}"
    );
    assert_eq!(counts.iter().sum::<i64>(), 3000, "{spread}");
    // The HTTP part: retries hide a flaky service, ejection a failing one.
    let flaky = line_with(stdout, "flaky answers 503 to every 2nd request:");
    assert!(flaky.contains("100 of 100 requests OK"), "{flaky}");
    assert!(number_after(flaky, "retries").unwrap_or(0) > 0, "{flaky}");
    let down = line_with(stdout, "flaky answers only 503 now:");
    assert!(down.contains("100 of 100 requests OK"), "{down}");
    assert!(number_after(down, "ejections").unwrap_or(0) >= 1, "{down}");
    let flaky_served = number_after(down, ", flaky").unwrap_or(-1);
    assert!(
        (0..=5).contains(&flaky_served),
        "an ejected service gets (almost) no traffic: {down}"
    );
}

#[test]
fn failover_demo_loses_and_duplicates_no_acknowledged_write() {
    let run = run_demo(&["demo", "--failover"], &[]);
    let stdout = &run.stdout;
    assert!(
        run.status.success(),
        "failover demo failed: {stdout}\n{}",
        run.stderr
    );
    // The timeline shows the kill and the writes moving to the new primary.
    assert!(stdout.contains("← kill -9 primary :"), "{stdout}");
    assert!(stdout.contains("new primary :"), "{stdout}");
    let acked = line_with(stdout, "acknowledged inserts:");
    let n = number_after(acked, "acknowledged inserts:").expect("a count");
    assert!(n > 100, "too little work got through: {acked}");
    assert!(
        acked.contains(&format!("{n} present exactly once")),
        "{acked}"
    );
    assert!(acked.contains(" 0 lost, 0 duplicated"), "{acked}");
    let errors = line_with(stdout, "client errors:");
    assert!(errors.contains("0 after it, 0 before it"), "{errors}");
    let first = line_with(stdout, "time from promotion to the first successful write:");
    let ms = number_after(first, "write:").expect("a time in ms");
    assert!(
        (0..10_000).contains(&ms),
        "writes should resume within seconds of the promotion: {first}"
    );
    assert!(
        stdout
            .contains("Failover OK: every acknowledged insert is on the new primary exactly once."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Stopped; both PostgreSQL servers"),
        "{stdout}"
    );
}
