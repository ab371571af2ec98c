//! Backend (Postgres): cancel routing. Clients get BackendKeyData issued by
//! Attaché; while a client has a server connection, its slot names that
//! server's own key, so a CancelRequest reaches exactly the query it meant
//! and is dropped when the client has nothing running.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use attache_postgres_protocol::messages;
use bytes::BytesMut;
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

/// The server a client's cancel should go to right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    pub addr: Arc<str>,
    pub pid: i32,
    pub secret: Arc<[u8]>,
}

pub type CancelSlot = Arc<Mutex<Option<CancelTarget>>>;

#[derive(Debug, Default)]
pub struct CancelRegistry {
    next_pid: AtomicI32,
    map: Mutex<HashMap<i32, (i32, CancelSlot)>>,
}

/// Removes the client's entry when its session ends.
#[derive(Debug)]
pub struct CancelHandle {
    registry: Arc<CancelRegistry>,
    pub pid: i32,
    pub secret: i32,
    pub slot: CancelSlot,
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.map.lock() {
            m.remove(&self.pid);
        }
    }
}

impl CancelRegistry {
    /// Issues a fresh key for a client session.
    pub fn register(self: &Arc<Self>) -> CancelHandle {
        let pid = self
            .next_pid
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            & 0x7fff_ffff;
        let secret: i32 = rand::thread_rng().gen();
        let slot: CancelSlot = Arc::new(Mutex::new(None));
        if let Ok(mut m) = self.map.lock() {
            m.insert(pid, (secret, slot.clone()));
        }
        CancelHandle {
            registry: self.clone(),
            pid,
            secret,
            slot,
        }
    }

    /// Looks up a client key; a wrong secret finds nothing.
    pub fn lookup(&self, pid: i32, secret: &[u8]) -> Option<CancelTarget> {
        let m = self.map.lock().ok()?;
        let (s, slot) = m.get(&pid)?;
        if secret != s.to_be_bytes() {
            return None;
        }
        let target = slot.lock().ok()?.clone();
        target
    }

    /// Forwards a cancel to the server now running that client's work.
    pub async fn cancel(&self, pid: i32, secret: &[u8]) {
        let Some(target) = self.lookup(pid, secret) else {
            debug!(client.pid = pid, "cancel request matched no running query");
            return;
        };
        let mut out = BytesMut::new();
        messages::cancel_request(&mut out, target.pid, &target.secret);
        match TcpStream::connect(&*target.addr).await {
            Ok(mut s) => {
                let _ = s.write_all(&out).await;
                let _ = s.shutdown().await;
            }
            Err(error) => {
                debug!(%error, server.addr = %target.addr, "cancel could not reach server")
            }
        }
    }
}
