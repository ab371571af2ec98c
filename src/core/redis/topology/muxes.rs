//! Route (Redis): one node's shared connections per setup (RESP version
//! and database), made on first use. A client may SELECT any of the
//! server's databases, so a setup other than database 0 that has gone
//! unused for [`IDLE`] is let go, with its connections: otherwise clients
//! that each visit a few databases would leave a set of connections open
//! for every database ever visited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::super::conn::Setup;
use super::super::mux::Mux;

/// How long a setup other than database 0 may go unused before its
/// connections are let go.
pub const IDLE: Duration = Duration::from_secs(300);

/// A node's shared connections by setup.
pub(super) struct Muxes {
    inner: Mutex<Inner>,
}

struct Inner {
    by_setup: HashMap<Setup, Entry>,
    /// When unused setups were last looked for.
    swept: Instant,
}

struct Entry {
    mux: Arc<Mux>,
    /// When it was last handed out.
    used: Instant,
}

impl Muxes {
    pub(super) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                by_setup: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// The connections for `setup`, made with `make` on first use. At
    /// most once per [`IDLE`], this also lets go of the setups (database 0
    /// aside) that nobody holds and nobody asked for during [`IDLE`]; a
    /// session that keeps one (`single` mode caches its own) holds it.
    /// Their connections close once the replies in flight on them are in.
    ///
    /// Database 0, which sharded and cluster routing ask for on every
    /// request, is served without a clock read; the sweep runs on the use
    /// of another database.
    pub(super) fn get(&self, setup: Setup, make: impl FnOnce() -> Mux) -> Arc<Mux> {
        let mut inner = match self.inner.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if setup.db == 0 {
            let entry = inner.by_setup.entry(setup).or_insert_with(|| Entry {
                mux: Arc::new(make()),
                used: Instant::now(),
            });
            return entry.mux.clone();
        }
        let now = Instant::now();
        if now.duration_since(inner.swept) >= IDLE {
            inner.swept = now;
            inner.by_setup.retain(|setup, e| {
                setup.db == 0 || Arc::strong_count(&e.mux) > 1 || now.duration_since(e.used) < IDLE
            });
        }
        let entry = inner.by_setup.entry(setup).or_insert_with(|| Entry {
            mux: Arc::new(make()),
            used: now,
        });
        entry.used = now;
        entry.mux.clone()
    }

    /// How many setups have connections now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        match self.inner.lock() {
            Ok(m) => m.by_setup.len(),
            Err(p) => p.into_inner().by_setup.len(),
        }
    }
}

#[cfg(test)]
mod tests;
