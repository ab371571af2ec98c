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
