//! Backend (Postgres): starting health probes at startup (and after a
//! reload) for databases that name their probe login (`health.user`).
//! Others start probing at their first client login, whose credentials the
//! probes borrow; until then `/readyz` can only trust the configured
//! primary.

use tracing::warn;

use super::context::{host_of, PgContext};
use crate::core::pg::cluster::monitor::{self, ProbeLogin};
use crate::core::pg::conn::ServerSecret;
use crate::core::pg::ServerTarget;
use crate::net::tls;

impl PgContext {
    /// Starts the probers of every cluster whose database sets
    /// `health.user` (the `"*"` entry has no database name to log in to).
    pub fn start_configured_probes(&self) {
        let state = self.state();
        for (key, cluster) in &state.clusters {
            let t = &cluster.topology;
            let (Some(user), Some(db)) = (&t.probe_user, state.config.databases.get(key)) else {
                continue;
            };
            if key == "*" || cluster.monitored() {
                continue;
            }
            let tls_cfg = state.upstream_tls.get(key).cloned().flatten();
            let dbname = db.server_dbname(key, key).to_owned();
            let mut targets = Vec::with_capacity(db.nodes.len());
            for node in &db.nodes {
                let host = host_of(&node.addr);
                let tls = match &tls_cfg {
                    Some(c) => match tls::server_name(&db.server_tls, &host) {
                        Ok(name) => Some((c.clone(), name)),
                        Err(error) => {
                            warn!(database = %key, %error, "cannot start health probes");
                            return;
                        }
                    },
                    None => None,
                };
                targets.push(ServerTarget {
                    addr: node.addr.clone(),
                    host,
                    dbname: dbname.clone(),
                    user: user.clone(),
                    sslmode: db.server_tls.sslmode,
                    tls,
                    connect_timeout: t.timeout,
                    max_message_size: 1 << 20,
                });
            }
            let secret = t
                .probe_password
                .as_ref()
                .and_then(ServerSecret::from_configured);
            monitor::start(cluster, ProbeLogin { targets, secret });
        }
    }
}
