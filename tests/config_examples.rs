//! Config → every shipped example in `config/` loads and validates, so the
//! files users copy from stay in step with the schema. New files in the
//! directory are covered automatically.

use std::path::{Path, PathBuf};

use attache::config::{self, AuthMethod, PoolMode};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// A CA, a server certificate and a client certificate signed by it, written
/// where `tls.toml` looks for them.
fn write_example_certs(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    for (name, san) in [("server", "localhost"), ("client", "app")] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![san.to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// One test so the environment is set once, before any example is read
/// (tests in one binary share the process environment).
#[test]
fn every_example_loads_and_validates() {
    let certs = tempfile::tempdir().unwrap();
    write_example_certs(certs.path());
    std::env::set_var("ATTACHE_EXAMPLE_CERT_DIR", certs.path());
    for var in [
        "APP_PASSWORD",
        "REPORTING_SERVER_PASSWORD",
        "LEGACY_SERVER_PASSWORD",
        "BATCH_PASSWORD",
    ] {
        std::env::remove_var(var);
    }

    let files = example_files();
    let names: Vec<_> = files
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .collect();
    for expected in [
        "minimal.toml",
        "pgbouncer-like.toml",
        "tls.toml",
        "postgres-replicas.toml",
        "admin.toml",
        "http-egress.toml",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for file in &files {
        let cfg = config::load(Some(file))
            .unwrap_or_else(|e| panic!("{} does not load:\n{e}", file.display()));
        assert!(
            cfg.postgres.is_some() || cfg.redis.is_some() || cfg.http.is_some(),
            "{} serves nothing",
            file.display()
        );
        if let Some(pg) = &cfg.postgres {
            assert!(
                !pg.databases.is_empty(),
                "{} has no database",
                file.display()
            );
        }
        // What `attache check` prints must be a loadable config too.
        let shown = config::render_redacted(&cfg);
        config::parse(&shown).unwrap_or_else(|e| {
            panic!("rendered {} does not parse:\n{e}\n{shown}", file.display())
        });
    }

    check_minimal();
    check_redis_single();
    check_pgbouncer_like();
    check_tls(certs.path());
    check_postgres_replicas();
    check_http_egress(certs.path());
}

fn check_http_egress(certs: &Path) {
    use attache::config::http::{EndpointSpec, HttpBalance, RetryOn};
    let cfg = load("http-egress.toml");
    let h = cfg.http.expect("[http]");
    assert_eq!(h.listen, "127.0.0.1:15000");
    assert_eq!(h.routes.len(), 3);
    assert!(h.routes[0].strip_prefix);
    assert_eq!(h.routes[0].retries, 2);
    assert_eq!(h.routes[0].retry_on.len(), 4);
    assert!(h.routes[0].retry_on.contains(&RetryOn::GatewayError));
    assert_eq!(h.routes[1].rewrite.as_deref(), Some("/api/v2/"));
    assert_eq!(h.routes[2].host.as_deref(), Some("search.internal"));
    let p = &h.clusters["payments"];
    assert_eq!(p.balance, HttpBalance::P2cEwma);
    assert_eq!(EndpointSpec::parse(&p.endpoints[0]).unwrap().weight, 2);
    assert_eq!(
        p.outlier.max_ejection.0,
        std::time::Duration::from_secs(300)
    );
    let tls = p.tls.as_ref().unwrap();
    assert!(tls.verify, "verify-full is the default");
    assert_eq!(tls.ca_file.as_deref(), Some(certs.join("ca.crt").as_path()));
    assert!(h.clusters["users"].health_check.is_some());
    assert_eq!(
        h.clusters["search"].host_header.as_deref(),
        Some("search.local")
    );
}

fn check_postgres_replicas() {
    use attache::config::topology::{Balance, Consistency, PrimaryReads, SplitMode, Topology};
    let cfg = load("postgres-replicas.toml");
    let db = &cfg.postgres.as_ref().unwrap().databases["app"];
    assert_eq!(db.nodes.len(), 3);
    let t = Topology::resolve(db);
    assert_eq!(t.split, SplitMode::Auto);
    assert_eq!(t.consistency, Consistency::ReadYourWrites);
    assert_eq!(t.balance, Balance::P2c);
    assert_eq!(t.primary_reads, PrimaryReads::Fallback);
    assert_eq!(t.failover_timeout, std::time::Duration::from_secs(30));
    assert_eq!(t.max_lag_bytes, Some(16 << 20));
    assert_eq!(t.read_only_functions.len(), 2);
}

fn load(name: &str) -> config::Config {
    config::load(Some(&examples_dir().join(name))).unwrap()
}

fn check_redis_single() {
    let cfg = load("redis-single.toml");
    let r = cfg.redis.expect("[redis]");
    assert_eq!(r.nodes, vec!["127.0.0.1:6379".to_string()]);
    assert_eq!(r.connections_per_node, 16);
    assert!(r.deny_commands.iter().any(|c| c == "FLUSHALL"));
    assert!(cfg.postgres.is_none());
}

fn check_minimal() {
    let cfg = load("minimal.toml");
    let pg = cfg.postgres.unwrap();
    assert_eq!(pg.listen, "127.0.0.1:6432");
    let (key, db) = pg.database("app").unwrap();
    assert_eq!(key, "app");
    assert_eq!(db.nodes[0].addr, "127.0.0.1:5432");
    assert_eq!(pg.auth_for(db, None), AuthMethod::Passthrough);
    assert!(pg.database("other").is_none());
}

fn check_pgbouncer_like() {
    let cfg = load("pgbouncer-like.toml");
    let pg = cfg.postgres.as_ref().unwrap();
    let app = &pg.databases["app"];
    assert_eq!(app.server_dbname("app", "app"), "app_production");

    let app_user = &pg.users["app"];
    assert_eq!(
        app_user.password.as_ref().map(|s| s.expose()),
        Some("dev-only-password"),
        "the ${{APP_PASSWORD:-…}} fallback applies when the variable is unset"
    );
    let r = pg.resolve_pool(app, Some(app_user));
    assert_eq!(
        (r.pool_mode, r.pool_size, r.min_idle),
        (PoolMode::Transaction, 40, 2)
    );
    assert_eq!(pg.auth_for(app, Some(app_user)), AuthMethod::ScramSha256);

    let batch = pg.resolve_pool(app, Some(&pg.users["batch"]));
    assert_eq!((batch.pool_mode, batch.pool_size), (PoolMode::Session, 4));
    assert_eq!(batch.server_reset_query.as_deref(), Some("DISCARD ALL"));

    assert_eq!(
        pg.auth_for(app, Some(&pg.users["legacy_app"])),
        AuthMethod::Md5
    );
    let (key, any) = pg.database("sales").unwrap();
    assert_eq!((key, any.server_dbname(key, "sales")), ("*", "sales"));
    assert_eq!(pg.resolve_pool(any, None).pool_size, 5);

    // The secret from the environment wins over the fallback and never
    // shows in what `attache check` prints.
    std::env::set_var("APP_PASSWORD", "from-the-environment");
    let cfg = load("pgbouncer-like.toml");
    let pg = cfg.postgres.as_ref().unwrap();
    assert_eq!(
        pg.users["app"].password.as_ref().map(|s| s.expose()),
        Some("from-the-environment")
    );
    let shown = config::render_redacted(&cfg);
    assert!(!shown.contains("from-the-environment"));
    assert!(!shown.contains("dev-only-password"));
    assert!(shown.contains("<redacted>"));
    std::env::remove_var("APP_PASSWORD");
}

fn check_tls(certs: &Path) {
    let cfg = load("tls.toml");
    let pg = cfg.postgres.unwrap();
    let tls = pg.tls.unwrap();
    assert_eq!(tls.cert, certs.join("server.crt"));
    assert_eq!(tls.key, certs.join("server.key"));
    let up = &pg.databases["app"].server_tls;
    assert_eq!(up.sslmode, config::types::SslMode::VerifyFull);
    assert_eq!(up.ca_file.as_deref(), Some(certs.join("ca.crt").as_path()));
    assert_eq!(
        up.client_key.as_deref(),
        Some(certs.join("client.key").as_path())
    );
    assert_eq!(up.server_name.as_deref(), Some("db.internal"));
}
