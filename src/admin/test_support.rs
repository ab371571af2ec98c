//! Test fixtures shared by the admin modules' unit tests (respond step).

use std::sync::Arc;

use crate::config;
use crate::frontend::postgres::PgContext;

/// `app`: a primary and a replica; `other`: one `auto` node, so no primary
/// until a probe answers (none will: nothing listens there).
pub const PG: &str = r#"
[postgres]
listen = "127.0.0.1:0"
min_idle = 0
[postgres.databases.app]
nodes = [{ addr = "127.0.0.1:1" }, { addr = "127.0.0.1:2", role = "replica" }]
[postgres.databases.other]
nodes = [{ addr = "127.0.0.1:3", role = "auto" }]
"#;

pub fn pg_context() -> Arc<PgContext> {
    let cfg = config::parse(PG).unwrap();
    Arc::new(PgContext::new(cfg.postgres.unwrap()).unwrap())
}
