//! Tests for the shared Postgres frontend state that need no server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::PgContext;

const CONFIG: &str = r#"
[postgres]
auth = "scram-sha-256"

[postgres.databases.app]
nodes = [{ addr = "10.0.0.1:5432" }]
"#;

/// Deriving a SCRAM verifier from a plaintext password (PBKDF2, 4096
/// rounds) runs off the runtime's thread: on a single-threaded runtime,
/// other sessions (here, a ticker) keep running meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn deriving_a_verifier_leaves_the_runtime_free() {
    let cfg = crate::config::parse(CONFIG).unwrap();
    let ctx = PgContext::new(cfg.postgres.unwrap()).unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let counter = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    tokio::task::yield_now().await;
    for i in 0..8 {
        let v = ctx.scram_verifier(&format!("u{i}"), "secret").await;
        assert!(v.is_some());
    }
    ticker.abort();
    let ticks = ticks.load(Ordering::Relaxed);
    assert!(ticks >= 2, "the runtime was blocked: {ticks} ticks");
    // Derived once per user (same random salt): later logins find it.
    let first = ctx.scram_verifier("u0", "secret").await.unwrap();
    let again = ctx.scram_verifier("u0", "secret").await.unwrap();
    assert_eq!(first.to_string(), again.to_string());
}

/// The cache is keyed by password too: a verifier derived for an old
/// password (a reload changed it while a login was deriving, or a console
/// admin shares the user's name) is never served for another one.
#[tokio::test(flavor = "current_thread")]
async fn a_cached_verifier_serves_only_its_own_password() {
    let cfg = crate::config::parse(CONFIG).unwrap();
    let ctx = PgContext::new(cfg.postgres.unwrap()).unwrap();
    let old = ctx.scram_verifier("u", "old secret").await.unwrap();
    let new = ctx.scram_verifier("u", "new secret").await.unwrap();
    assert_ne!(
        old.to_string(),
        new.to_string(),
        "the old password's verifier was served"
    );
    let old_again = ctx.scram_verifier("u", "old secret").await.unwrap();
    assert_eq!(old.to_string(), old_again.to_string());
}
