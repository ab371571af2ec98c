//! Deploy → the artifacts that put accept → parse → route → backend →
//! respond into production (Dockerfile, docker-compose.test.yml, the
//! Kubernetes manifests, the systemd unit) agree with each other and with
//! the Attaché configs they ship. Nothing here needs Docker or a cluster:
//! the files are parsed and their ports, paths and probes cross-checked, so
//! a port changed in one place and not the other fails here, not in a pod.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use attache::config::{units::Dur, Config};
use yaml_rust2::{Yaml, YamlLoader};

#[path = "deploy_artifacts/compose.rs"]
mod compose;
#[path = "deploy_artifacts/dockerfile.rs"]
mod dockerfile;
#[path = "deploy_artifacts/kubernetes.rs"]
mod kubernetes;
#[path = "deploy_artifacts/systemd.rs"]
mod systemd;

const CONFIG_PATH: &str = "/etc/attache/attache.toml";
const COMPOSE: &str = "docker-compose.test.yml";
const K8S_DIR: &str = "deploy/kubernetes";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// `s` as a string, or the test fails naming `what`.
fn s<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {y:?}"))
}

fn list<'a>(y: &'a Yaml, what: &str) -> &'a [Yaml] {
    y.as_vec()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {y:?}"))
}

fn strings(y: &Yaml, what: &str) -> Vec<String> {
    list(y, what)
        .iter()
        .map(|v| s(v, what).to_string())
        .collect()
}

fn port(addr: &str) -> u16 {
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr:?}: {e}"))
        .port()
}

/// Ports of the Postgres, Redis and admin listeners a config opens.
fn listen_ports(cfg: &Config) -> BTreeMap<&'static str, u16> {
    let mut ports = BTreeMap::new();
    if let Some(pg) = &cfg.postgres {
        ports.insert("postgres", port(&pg.listen));
    }
    if let Some(r) = &cfg.redis {
        ports.insert("redis", port(&r.listen));
    }
    if let Some(a) = &cfg.admin {
        ports.insert("admin", port(&a.listen));
    }
    ports
}

fn duration(text: &str) -> Duration {
    text.trim()
        .parse::<Dur>()
        .unwrap_or_else(|e| panic!("{text:?} is not a duration: {e}"))
        .0
}

/// The value after `--config` in an argument list.
fn config_arg(args: &[String]) -> &str {
    let at = args
        .iter()
        .position(|a| a == "--config" || a == "-c")
        .unwrap_or_else(|| panic!("no --config in {args:?}"));
    args.get(at + 1)
        .unwrap_or_else(|| panic!("--config without a value in {args:?}"))
}

fn yaml_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut files = vec![root().join(COMPOSE)];
    walk(&root().join("deploy"), &mut files);
    files.sort();
    files
}

#[test]
fn every_yaml_file_parses_and_every_manifest_is_named() {
    let files = yaml_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    for expected in [
        COMPOSE,
        "deploy/kubernetes/configmap.yaml",
        "deploy/kubernetes/deployment.yaml",
        "deploy/kubernetes/service-metrics.yaml",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing");
    }
    for name in &names {
        let docs = yaml(name);
        assert!(!docs.is_empty(), "{name} has no document");
        for (i, doc) in docs.iter().enumerate() {
            assert!(doc.as_hash().is_some(), "{name} document {i} is not a map");
            if name.starts_with(K8S_DIR) {
                for key in ["apiVersion", "kind"] {
                    s(&doc[key], &format!("{name}[{i}].{key}"));
                }
                s(
                    &doc["metadata"]["name"],
                    &format!("{name}[{i}].metadata.name"),
                );
            }
        }
    }
}
