//! TLS on both sides of the Redis listener, against a real TLS-enabled
//! redis-server: verify-full upstream with the right CA works, the wrong CA
//! fails with a clear error (never plaintext), and clients can connect to
//! Attaché with TLS (`redis-cli --tls`).

use std::process::Command;

use attache_harness::{RedisBuilder, TestCerts};

fn cli(port: u16, tls_ca: Option<&std::path::Path>, args: &[&str]) -> String {
    let mut c = Command::new("redis-cli");
    c.args(["-h", "localhost", "-p", &port.to_string()]);
    if let Some(ca) = tls_ca {
        c.arg("--tls").arg("--cacert").arg(ca);
    }
    let out = c.args(args).output().expect("redis-cli runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_owned()
}

async fn start(toml: &str) -> attache::app::Attache {
    let mut cfg = attache::config::parse(toml).expect("valid config");
    cfg.redis.as_mut().expect("[redis]").listen = "127.0.0.1:0".into();
    attache::app::Attache::start(cfg)
        .await
        .expect("attache starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verifies_the_server_and_clients_may_use_tls() {
    let certs = TestCerts::generate(&["localhost", "127.0.0.1"]).unwrap();
    let server = RedisBuilder::new().tls(&certs).start().unwrap();
    let tls_port = server.tls_port().expect("tls port");
    let toml = format!(
        "[redis]\nnodes = [\"127.0.0.1:{tls_port}\"]\nserver_tls = {{ verify = \"full\", ca_file = {:?}, server_name = \"localhost\" }}\ntls = {{ cert = {:?}, key = {:?} }}\n",
        certs.ca_cert, certs.server_cert, certs.server_key
    );
    let attache = start(&toml).await;
    let port = attache.redis_addr.unwrap().port();
    let ca = certs.ca_cert.clone();
    let (set, get, plain) = tokio::task::spawn_blocking(move || {
        (
            cli(port, Some(&ca), &["SET", "k", "over-tls"]),
            cli(port, Some(&ca), &["GET", "k"]),
            cli(port, None, &["PING"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(set, "OK");
    assert_eq!(get, "over-tls");
    assert_ne!(
        plain, "PONG",
        "a plaintext client must not be served on a TLS listener"
    );
    // The value really went to the server over its TLS port.
    assert_eq!(server.cli(&["GET", "k"]).unwrap(), "over-tls");
    attache.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_with_the_wrong_ca_fails_clearly() {
    let certs = TestCerts::generate(&["localhost", "127.0.0.1"]).unwrap();
    let server = RedisBuilder::new().tls(&certs).start().unwrap();
    let tls_port = server.tls_port().expect("tls port");
    let toml = format!(
        "[redis]\nnodes = [\"127.0.0.1:{tls_port}\"]\nserver_tls = {{ ca_file = {:?}, server_name = \"localhost\" }}\nconnect_timeout = \"2s\"\n",
        certs.other_ca_cert
    );
    let attache = start(&toml).await;
    let port = attache.redis_addr.unwrap().port();
    let reply = tokio::task::spawn_blocking(move || cli(port, None, &["SET", "k", "v"]))
        .await
        .unwrap();
    assert!(
        reply.contains("attache") && reply.contains("certificate"),
        "{reply}"
    );
    assert_ne!(server.cli(&["GET", "k"]).unwrap(), "v");
    attache.shutdown().await;
}
