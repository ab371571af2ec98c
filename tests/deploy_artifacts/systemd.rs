//! Deploy → deploy/systemd/attache.service: the command line, the drain
//! time and the hardening, and `systemd-analyze verify` where it exists.

use std::collections::BTreeMap;

use attache::config::Config;

use super::{config_arg, duration, read, CONFIG_PATH};

const UNIT: &str = "deploy/systemd/attache.service";

/// `[Service]` of the unit: key → every value it is given, in order.
fn unit_section(section: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in read(UNIT).lines() {
        let t = line.trim();
        if t.starts_with('#') || t.starts_with(';') || t.is_empty() {
            continue;
        }
        if t.starts_with('[') {
            current = t.trim_matches(['[', ']']).to_string();
        } else if current == section {
            let (k, v) = t.split_once('=').unwrap_or_else(|| panic!("{UNIT}: {t:?}"));
            out.entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    out
}

#[test]
fn systemd_unit_starts_attache_hardened() {
    let svc = unit_section("Service");
    let one = |k: &str| -> &str {
        let v = svc.get(k).unwrap_or_else(|| panic!("{UNIT} lacks {k}="));
        v.last().unwrap()
    };
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(exec[0], "/usr/local/bin/attache");
    assert_eq!(config_arg(&exec), CONFIG_PATH);
    for (k, v) in [
        ("Type", "simple"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("LimitNOFILE", "65536"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(k), v, "{k}=");
    }
    assert!(
        one("DynamicUser") == "yes" || svc.get("User").is_some_and(|u| u[0] != "root"),
        "runs as a dynamic or dedicated user"
    );
    let stop = duration(one("TimeoutStopSec"));
    let default_drain = Config::default().general.shutdown_timeout.0;
    assert!(
        stop > default_drain,
        "TimeoutStopSec {stop:?} vs shutdown_timeout"
    );
    // SIGHUP's default action ends a process: reload only if it is handled.
    if let Some(reload) = svc.get("ExecReload") {
        assert_eq!(reload[0], "/bin/kill -HUP $MAINPID");
        assert!(
            read("src/main.rs").contains("SignalKind::hangup()"),
            "SIGHUP unhandled"
        );
    }
    assert!(unit_section("Install").contains_key("WantedBy"));
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let available = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        println!("note: systemd-analyze not installed; skipping `systemd-analyze verify`");
        return;
    }
    // verify checks that ExecStart's binary exists: point it at the one
    // cargo built for this test run.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("attache.service");
    let text = read(UNIT).replace("/usr/local/bin/attache", env!("CARGO_BIN_EXE_attache"));
    std::fs::write(&unit, text).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        !stderr.contains("attache.service:"),
        "warnings about the unit:\n{stderr}"
    );
}
