//! Deploy → docker-compose.test.yml: each Attaché service mounts a config
//! that loads, publishes its listeners, and names only upstreams that are
//! compose services listening on that port.

use std::collections::{BTreeMap, BTreeSet};

use attache::config::{self, Config};
use yaml_rust2::Yaml;

use super::{config_arg, duration, listen_ports, root, s, strings, yaml, COMPOSE};

/// The compose file's services, and the Attaché configs its attache services mount.
fn compose_services() -> Yaml {
    let docs = yaml(COMPOSE);
    assert_eq!(docs.len(), 1);
    docs[0]["services"].clone()
}

/// `service → ports it listens on` for every service that says (`expose`).
fn exposed(services: &Yaml) -> BTreeMap<String, BTreeSet<u16>> {
    let hash = services.as_hash().expect("services");
    hash.iter()
        .filter(|(_, svc)| !svc["expose"].is_badvalue())
        .map(|(name, svc)| {
            let ports = strings(&svc["expose"], "expose")
                .iter()
                .map(|p| p.parse::<u16>().unwrap())
                .collect();
            (s(name, "service").to_string(), ports)
        })
        .collect()
}

/// Every upstream address of a config, as `host:port`.
fn upstreams(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for db in cfg.postgres.iter().flat_map(|p| p.databases.values()) {
        out.extend(db.nodes.iter().map(|n| n.addr.clone()));
    }
    if let Some(r) = &cfg.redis {
        for n in r.nodes.iter().chain(&r.replicas) {
            out.push(config::redis::NodeSpec::parse(n).unwrap().addr);
        }
    }
    out
}

/// Checks one attache service; returns the config it mounts.
fn check_compose_attache(services: &Yaml, name: &str, mounted: &str) -> Config {
    let svc = &services[name];
    assert_eq!(s(&svc["build"]["context"], "build.context"), ".");
    assert_eq!(
        s(&svc["build"]["dockerfile"], "build.dockerfile"),
        "Dockerfile"
    );
    let command = strings(&svc["command"], "command");
    let target = config_arg(&command);
    let volumes = strings(&svc["volumes"], "volumes");
    let want = format!("./{mounted}:{target}:ro");
    assert!(volumes.contains(&want), "{name}: {want} not in {volumes:?}");
    let cfg = config::load(Some(&root().join(mounted)))
        .unwrap_or_else(|e| panic!("{mounted} does not load:\n{e}"));

    let exposed = exposed(services);
    let addrs = upstreams(&cfg);
    assert!(!addrs.is_empty());
    for addr in &addrs {
        let (host, p) = addr.rsplit_once(':').unwrap();
        let ports = exposed
            .get(host)
            .unwrap_or_else(|| panic!("{mounted}: {addr} names no compose service with expose"));
        assert!(
            ports.contains(&p.parse().unwrap()),
            "{addr}: {host} exposes {ports:?}"
        );
    }
    let published: BTreeSet<u16> = strings(&svc["ports"], "ports")
        .iter()
        .map(|p| p.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let listens = listen_ports(&cfg);
    assert_eq!(
        published,
        listens.values().copied().collect(),
        "{name} ports"
    );
    for l in [
        cfg.postgres.as_ref().map(|p| &p.listen),
        cfg.redis.as_ref().map(|r| &r.listen),
    ]
    .into_iter()
    .flatten()
    .chain(cfg.admin.as_ref().map(|a| &a.listen))
    {
        assert!(
            l.starts_with("0.0.0.0:"),
            "{mounted}: {l} unreachable from outside the container"
        );
    }
    let grace = duration(s(&svc["stop_grace_period"], "stop_grace_period"));
    assert!(
        grace > cfg.general.shutdown_timeout.0,
        "{name}: stop_grace_period"
    );
    cfg
}

#[test]
fn compose_attache_services_mount_configs_that_match_the_topology() {
    let services = compose_services();
    let cfg = check_compose_attache(&services, "attache", "config/docker-compose.toml");
    let db = &cfg.postgres.as_ref().unwrap().databases["app"];
    let roles: Vec<_> = db.nodes.iter().map(|n| n.role).collect();
    use attache::config::NodeRole::{Primary, Replica};
    assert_eq!(
        roles,
        [Primary, Replica],
        "a primary and its streaming replica"
    );
    let redis = cfg.redis.as_ref().unwrap();
    assert_eq!(redis.mode, config::redis::RedisMode::Sharded);
    assert_eq!(redis.nodes.len(), 2, "two Redis shards");

    let cluster = check_compose_attache(
        &services,
        "attache-redis-cluster",
        "deploy/compose/attache-redis-cluster.toml",
    );
    let r = cluster.redis.as_ref().unwrap();
    assert_eq!(r.mode, config::redis::RedisMode::Cluster);
    let nodes = exposed(&services)
        .keys()
        .filter(|n| n.starts_with("redis-cluster-"))
        .count();
    assert_eq!(nodes, 6, "three primaries and three replicas");
}

#[test]
fn compose_references_resolve() {
    let services = compose_services();
    let hash = services.as_hash().unwrap();
    let names: BTreeSet<&str> = hash.keys().map(|k| s(k, "service")).collect();
    for (name, svc) in hash {
        let name = s(name, "service");
        assert!(
            !svc["image"].is_badvalue() || !svc["build"].is_badvalue(),
            "{name} has neither image nor build"
        );
        for dep in svc["depends_on"]
            .as_hash()
            .into_iter()
            .flat_map(|h| h.keys())
        {
            assert!(
                names.contains(s(dep, "depends_on")),
                "{name} depends on {dep:?}"
            );
        }
        for v in svc["volumes"].as_vec().into_iter().flatten() {
            let source = s(v, "volume").split(':').next().unwrap();
            if let Some(rel) = source.strip_prefix("./") {
                assert!(root().join(rel).is_file(), "{name} mounts missing {source}");
            }
        }
    }
}
