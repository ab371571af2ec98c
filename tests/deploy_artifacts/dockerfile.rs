//! Deploy → the Dockerfile: a Rust builder stage with libclang, a slim
//! runtime stage as a non-root user, the example config's ports exposed.

use std::collections::BTreeSet;

use attache::config;

use super::{listen_ports, read, root, CONFIG_PATH};

/// The Dockerfile's instructions as (KEYWORD, arguments), continuations joined.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => current.push_str(&format!("{part} ")),
            None => {
                current.push_str(t);
                if let Some((k, rest)) = current.trim().split_once(char::is_whitespace) {
                    out.push((k.to_uppercase(), rest.trim().to_string()));
                }
                current.clear();
            }
        }
    }
    out
}

/// The final stage's `USER` (uid part), if any.
pub(super) fn dockerfile_uid() -> Option<String> {
    let ins = dockerfile();
    let last_from = ins.iter().rposition(|(k, _)| k == "FROM")?;
    ins[last_from..]
        .iter()
        .rfind(|(k, _)| k == "USER")
        .map(|(_, v)| v.split(':').next().unwrap().to_string())
}

fn exec_form(v: &str) -> Vec<String> {
    serde_json::from_str(v).unwrap_or_else(|e| panic!("{v} is not the exec (JSON) form: {e}"))
}

#[test]
fn dockerfile_builds_in_stages_and_runs_unprivileged() {
    let ins = dockerfile();
    let froms: Vec<usize> = (0..ins.len()).filter(|&i| ins[i].0 == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage: {} FROM", froms.len());
    let builder = &ins[froms[0]..froms[1]];
    assert_eq!(ins[froms[0]].1, "rust:1-bookworm AS builder");
    let runs: Vec<&str> = builder
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(runs
        .iter()
        .any(|r| r.contains("apt-get install") && r.contains("libclang-dev")));
    assert!(runs
        .iter()
        .any(|r| r.contains("cargo build --release --locked -p attache")));

    let last = *froms.last().unwrap();
    let runtime = ins[last].1.split_whitespace().next().unwrap();
    assert!(
        runtime == "debian:bookworm-slim" || runtime.starts_with("gcr.io/distroless/cc"),
        "runtime image {runtime}"
    );
    let stage = &ins[last..];
    assert!(stage
        .iter()
        .any(|(k, v)| k == "COPY" && v.starts_with("--from=builder")));
    let uid = dockerfile_uid().expect("the final stage sets USER");
    assert!(uid != "root" && uid != "0", "USER {uid}");

    let exposed: BTreeSet<u16> = stage
        .iter()
        .filter(|(k, _)| k == "EXPOSE")
        .flat_map(|(_, v)| {
            v.split_whitespace()
                .map(|p| p.trim_end_matches("/tcp").parse::<u16>().unwrap())
        })
        .collect();
    let example = config::load(Some(&root().join("config/docker-compose.toml"))).unwrap();
    let listens: BTreeSet<u16> = listen_ports(&example).into_values().collect();
    assert_eq!(exposed, listens, "EXPOSE vs config/docker-compose.toml");

    let last_of = |kw: &str| {
        stage
            .iter()
            .rev()
            .find(|(k, _)| k == kw)
            .map(|(_, v)| exec_form(v))
            .unwrap_or_else(|| panic!("no {kw}"))
    };
    assert_eq!(last_of("ENTRYPOINT"), ["attache"]);
    assert_eq!(last_of("CMD"), ["--config", CONFIG_PATH]);

    let ignore = read(".dockerignore");
    assert!(ignore
        .lines()
        .any(|l| l.trim().trim_end_matches('/') == "target"));
}
