//! Deploy → deploy/kubernetes: the sidecar's ports, probes, mounts and
//! Secret-backed environment agree with the attache.toml in the ConfigMap.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use attache::config::{self, Config};
use yaml_rust2::Yaml;

use super::dockerfile::dockerfile_uid;
use super::{
    config_arg, list, listen_ports, root, s, strings, yaml, yaml_files, CONFIG_PATH, K8S_DIR,
};

/// The values the test gives the Secret-backed variables of the ConfigMap.
const K8S_ENV: [(&str, &str); 2] = [
    ("APP_PASSWORD", "k8s-app-secret"),
    ("REDIS_PASSWORD", "k8s-redis-secret"),
];

/// Sets the ConfigMap's `${VAR}`s once; tests share the process environment.
fn k8s_env() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        for (k, v) in K8S_ENV {
            std::env::set_var(k, v);
        }
    });
}

/// Every document of every manifest in deploy/kubernetes.
fn k8s_docs() -> Vec<Yaml> {
    yaml_files()
        .iter()
        .filter(|p| p.starts_with(root().join(K8S_DIR)))
        .flat_map(|p| yaml(p.strip_prefix(root()).unwrap().to_str().unwrap()))
        .collect()
}

fn the_one<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let found: Vec<_> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in {K8S_DIR}");
    found[0]
}

fn containers(pod: &Yaml) -> impl Iterator<Item = &Yaml> {
    ["containers", "initContainers"]
        .into_iter()
        .flat_map(|k| pod[k].as_vec().map(|v| v.as_slice()).unwrap_or_default())
}

fn container<'a>(pod: &'a Yaml, name: &str) -> &'a Yaml {
    containers(pod)
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container {name:?} in the pod"))
}

/// `name → containerPort` of a container.
fn container_ports(c: &Yaml) -> BTreeMap<String, u16> {
    list(&c["ports"], "ports")
        .iter()
        .map(|p| {
            let n = p["containerPort"].as_i64().expect("containerPort");
            (s(&p["name"], "port name").to_string(), n as u16)
        })
        .collect()
}

/// A probe's or Service's port: a number, or a container port's name.
fn resolve_port(c: &Yaml, port: &Yaml) -> u16 {
    match port {
        Yaml::Integer(n) => *n as u16,
        Yaml::String(name) => *container_ports(c)
            .get(name)
            .unwrap_or_else(|| panic!("no container port named {name:?}")),
        other => panic!("port {other:?} is neither a number nor a name"),
    }
}

/// The Deployment's pod spec, its attache sidecar and its ConfigMap's config.
struct K8s {
    docs: Vec<Yaml>,
}

impl K8s {
    fn load() -> Self {
        K8s { docs: k8s_docs() }
    }
    fn pod(&self) -> &Yaml {
        &the_one(&self.docs, "Deployment")["spec"]["template"]["spec"]
    }
    fn sidecar(&self) -> &Yaml {
        container(self.pod(), "attache")
    }
    fn args(&self) -> Vec<String> {
        strings(&self.sidecar()["args"], "attache args")
    }
    fn config_text(&self) -> String {
        let file = Path::new(config_arg(&self.args()))
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let cm = the_one(&self.docs, "ConfigMap");
        s(&cm["data"][file.as_str()], "ConfigMap data").to_string()
    }
    fn config(&self) -> Config {
        k8s_env();
        config::parse(&self.config_text())
            .unwrap_or_else(|e| panic!("the ConfigMap's attache.toml does not load:\n{e}"))
    }
}

#[test]
fn k8s_configmap_config_validates_with_secrets_from_the_env() {
    let k = K8s::load();
    let cfg = k.config();
    let admin = cfg.admin.as_ref().expect("[admin] is what the probes hit");
    assert_eq!(admin.listen, "0.0.0.0:15001", "probes come to the pod IP");
    // httpGet probes cannot send a bearer token: with one, /readyz is 401.
    assert!(
        admin.token.is_none(),
        "an admin token would fail the probes"
    );
    let pg = cfg.postgres.as_ref().expect("[postgres]");
    assert_eq!(pg.listen, "127.0.0.1:6432", "the app is in the same pod");
    assert_eq!(
        cfg.redis.as_ref().expect("[redis]").listen,
        "127.0.0.1:6380"
    );
    let app = pg.users["app"].password.as_ref().expect("app password");
    assert_eq!(app.expose(), K8S_ENV[0].1, "${{APP_PASSWORD}} substituted");
    let redis = cfg.redis.as_ref().unwrap().password.as_ref().unwrap();
    assert_eq!(redis.expose(), K8S_ENV[1].1);
}

#[test]
fn k8s_sidecar_env_provides_every_variable_the_config_needs() {
    let k = K8s::load();
    let text = k.config_text();
    let needed: BTreeSet<String> = text
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .filter(|(inner, _)| !inner.contains(":-"))
        .map(|(inner, _)| inner.to_string())
        .collect();
    assert_eq!(
        needed,
        K8S_ENV.iter().map(|(k, _)| k.to_string()).collect(),
        "the variables the ConfigMap takes from a Secret"
    );
    let env = list(&k.sidecar()["env"], "attache env");
    for var in &needed {
        let e = env
            .iter()
            .find(|e| e["name"].as_str() == Some(var))
            .unwrap_or_else(|| panic!("sidecar env lacks {var}"));
        s(
            &e["valueFrom"]["secretKeyRef"]["name"],
            &format!("{var} secret"),
        );
    }
}

#[test]
fn k8s_sidecar_ports_and_app_urls_match_the_listeners() {
    let k = K8s::load();
    let cfg = k.config();
    let listens = listen_ports(&cfg);
    assert_eq!(
        listens,
        BTreeMap::from([("admin", 15001), ("postgres", 6432), ("redis", 6380)])
    );
    let declared: BTreeSet<u16> = container_ports(k.sidecar()).into_values().collect();
    let opened: BTreeSet<u16> = listens.values().copied().collect();
    assert_eq!(declared, opened, "containerPorts vs the config's listeners");

    let app = container(k.pod(), "app");
    let env = |name: &str| -> String {
        let e = list(&app["env"], "app env")
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("app env lacks {name}"));
        s(&e["value"], name).to_string()
    };
    assert_eq!(env("DATABASE_URL"), "postgres://app@127.0.0.1:6432/app");
    assert_eq!(env("REDIS_URL"), "redis://127.0.0.1:6380");
    let pg = cfg.postgres.unwrap();
    assert!(
        pg.database("app").is_some(),
        "DATABASE_URL's database is configured"
    );
}

#[test]
fn k8s_probes_hit_the_admin_endpoints() {
    let k = K8s::load();
    let admin = listen_ports(&k.config())["admin"];
    let c = k.sidecar();
    for (probe, path) in [
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &c[probe]["httpGet"];
        if probe == "startupProbe" && c[probe].is_badvalue() {
            continue;
        }
        assert_eq!(s(&get["path"], probe), path, "{probe} path");
        assert_eq!(resolve_port(c, &get["port"]), admin, "{probe} port");
        assert!(
            get["httpHeaders"].is_badvalue(),
            "{probe} sends headers: /healthz and /readyz need none"
        );
    }
}

#[test]
fn k8s_sidecar_runs_locked_down() {
    let k = K8s::load();
    let c = k.sidecar();
    assert_eq!(s(&c["image"], "image"), "attache:latest");
    assert_eq!(
        k.args(),
        ["--config", CONFIG_PATH, "--log-format", "json"].map(String::from)
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&sc["capabilities"]["drop"], "drop"), ["ALL"]);
    let uid = sc["runAsUser"].as_i64().expect("runAsUser");
    assert_eq!(
        Some(uid.to_string()),
        dockerfile_uid(),
        "image USER vs runAsUser"
    );
    for kind in ["requests", "limits"] {
        s(
            &c["resources"][kind]["memory"],
            &format!("resources.{kind}.memory"),
        );
    }
    // An init container that never exits blocks the pod, unless it is a
    // native sidecar.
    let is_init = k.pod()["initContainers"]
        .as_vec()
        .into_iter()
        .flatten()
        .any(|i| i["name"].as_str() == Some("attache"));
    if is_init {
        assert_eq!(c["restartPolicy"].as_str(), Some("Always"));
    }
    let grace = k.pod()["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    let drain = k.config().general.shutdown_timeout.0;
    assert!(
        Duration::from_secs(grace as u64) > drain,
        "grace {grace}s must outlast shutdown_timeout {drain:?}"
    );
}

#[test]
fn k8s_configmap_is_mounted_where_the_args_look() {
    let k = K8s::load();
    let args = k.args();
    let path = Path::new(config_arg(&args));
    let (dir, file) = (path.parent().unwrap(), path.file_name().unwrap());
    let mount = list(&k.sidecar()["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == dir.to_str())
        .unwrap_or_else(|| panic!("nothing mounted at {}", dir.display()));
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    assert!(
        mount["subPath"].is_badvalue(),
        "subPath mounts never update"
    );
    let vol_name = s(&mount["name"], "volumeMount name");
    let volume = list(&k.pod()["volumes"], "volumes")
        .iter()
        .find(|v| v["name"].as_str() == Some(vol_name))
        .unwrap_or_else(|| panic!("no volume {vol_name:?}"));
    let cm = the_one(&k.docs, "ConfigMap");
    assert_eq!(
        volume["configMap"]["name"].as_str(),
        cm["metadata"]["name"].as_str(),
        "the volume is the ConfigMap"
    );
    let file = file.to_str().unwrap();
    s(&cm["data"][file], &format!("ConfigMap key {file}"));
    if let Some(items) = volume["configMap"]["items"].as_vec() {
        assert!(items
            .iter()
            .any(|i| i["key"].as_str() == Some(file) && i["path"].as_str() == Some(file)));
    }
}

#[test]
fn k8s_metrics_service_targets_the_admin_port() {
    let k = K8s::load();
    let admin = listen_ports(&k.config())["admin"];
    let svc = the_one(&k.docs, "Service");
    let ann = &svc["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(
        ann["prometheus.io/port"].as_str(),
        Some(admin.to_string().as_str())
    );
    assert_eq!(ann["prometheus.io/path"].as_str(), Some("/metrics"));
    let ports = list(&svc["spec"]["ports"], "Service ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(resolve_port(k.sidecar(), &ports[0]["targetPort"]), admin);
    let labels = &the_one(&k.docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    let selector = svc["spec"]["selector"].as_hash().expect("selector");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(
            &labels[s(key, "selector key")],
            value,
            "selector vs pod labels"
        );
    }
}
