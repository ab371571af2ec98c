//! Route (Postgres): the list of logged-in clients, for the admin console's
//! SHOW CLIENTS, SHOW SERVERS and the client counts of SHOW POOLS.
//!
//! A session adds itself once routed and is removed when its guard drops.
//! Whether it holds a server is read from its cancel slot, which the
//! session already fills on checkout and clears on release: the listing
//! costs the hot path nothing beyond one insert and one remove per client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::core::pg::cancel::{CancelSlot, CancelTarget};
use crate::net::Stream;

use super::session::Session;

/// What the console shows about one client.
#[derive(Debug)]
pub struct ClientInfo {
    /// The client's BackendKeyData pid: unique while it is connected.
    pub id: i32,
    pub user: String,
    /// The database name the client asked for.
    pub database: String,
    /// The `[postgres.databases]` key it was routed by (empty for the
    /// console).
    pub db_key: String,
    /// The node whose pool the client counts against while it has no
    /// server: the one it was routed to at login.
    pub home_node: String,
    pub addr: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub connected: SystemTime,
    pub application_name: String,
    /// TLS version and cipher suite, empty for a plain connection.
    pub tls: String,
    /// The server the client holds right now, if any (its cancel slot).
    pub server: CancelSlot,
}

impl ClientInfo {
    /// The server attached to this client now.
    pub fn server(&self) -> Option<Arc<CancelTarget>> {
        self.server.lock().ok().and_then(|s| s.clone())
    }
}

/// Every logged-in client of one listener.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    map: Mutex<BTreeMap<i32, Arc<ClientInfo>>>,
}

/// Removes its client from the registry when the session ends.
#[derive(Debug)]
pub struct ClientGuard {
    registry: Arc<ClientRegistry>,
    id: i32,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.map.lock() {
            m.remove(&self.id);
        }
    }
}

impl ClientRegistry {
    /// Lists `info` until the returned guard drops.
    pub fn register(self: &Arc<Self>, info: ClientInfo) -> ClientGuard {
        let id = info.id;
        if let Ok(mut m) = self.map.lock() {
            m.insert(id, Arc::new(info));
        }
        ClientGuard {
            registry: self.clone(),
            id,
        }
    }

    /// A snapshot, ordered by id.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.map
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Session {
    /// Lists this session in the context's client registry until the
    /// guard drops.
    pub(super) fn list_client(&self) -> ClientGuard {
        let application_name = self
            .settings
            .startup
            .get("application_name")
            .map(|quoted| unquote(quoted))
            .unwrap_or_default();
        self.ctx.clients.register(ClientInfo {
            id: self.cancel.pid,
            user: self.user.clone(),
            database: self.database.clone(),
            db_key: self.db_key.clone(),
            home_node: self.pool.key.node.clone(),
            addr: self.client.peer_addr().ok(),
            local: self.client.local_addr().ok(),
            connected: SystemTime::now(),
            application_name,
            tls: tls_description(&self.client),
            server: self.cancel.slot.clone(),
        })
    }
}

/// `TLSv1_3/TLS13_AES_256_GCM_SHA384`, as PgBouncer names a client's TLS.
fn tls_description(stream: &Stream) -> String {
    let Stream::ServerTls(tls) = stream else {
        return String::new();
    };
    let conn = tls.get_ref().1;
    match (conn.protocol_version(), conn.negotiated_cipher_suite()) {
        (Some(v), Some(c)) => format!("{v:?}/{:?}", c.suite()),
        _ => "TLS".to_owned(),
    }
}

/// The session keeps startup values as SQL literals (`'x'`, quotes doubled).
fn unquote(quoted: &str) -> String {
    quoted
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(quoted)
        .replace("''", "'")
}

#[cfg(test)]
mod tests;
