//! Route (Postgres): PAUSE and RESUME, as PgBouncer operators know them.
//! A paused database lets running transactions finish, then holds every
//! new transaction (clients stay connected and simply wait) until RESUME:
//! the window for a server restart or a manual switchover.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::context::PgContext;

/// The paused database keys; `None` in the set's place means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paused {
    pub all: bool,
    pub databases: BTreeSet<String>,
}

impl Paused {
    pub fn covers(&self, db_key: &str) -> bool {
        self.all || self.databases.contains(db_key)
    }
}

/// Shared by the context; a watch channel so waiting sessions wake on
/// RESUME without polling.
#[derive(Debug)]
pub struct PauseState {
    tx: watch::Sender<Paused>,
    /// Anything paused at all: every transaction checks, and almost always
    /// nothing is, so one load answers without the channel's lock.
    any: AtomicBool,
}

impl Default for PauseState {
    fn default() -> Self {
        PauseState {
            tx: watch::channel(Paused::default()).0,
            any: AtomicBool::new(false),
        }
    }
}

impl PauseState {
    fn modify(&self, f: impl FnOnce(&mut Paused)) {
        self.tx.send_modify(|p| {
            f(p);
            // Set inside the update: a session that sees the new set also
            // sees the flag.
            self.any
                .store(p.all || !p.databases.is_empty(), Ordering::Release);
        });
    }
}

impl PgContext {
    /// Pauses `database` (a config key), or every database with `None`,
    /// then waits up to `wait` for transactions in flight there to finish.
    /// Returns whether they all did.
    pub async fn pause(&self, database: Option<&str>, wait: Duration) -> bool {
        self.begin_pause(database);
        let deadline = Instant::now() + wait;
        loop {
            if self.active_connections(database) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Marks `database` (or all) paused without waiting; returns how many
    /// server connections are still busy there.
    pub fn begin_pause(&self, database: Option<&str>) -> usize {
        self.pause_state.modify(|p| match database {
            Some(db) => {
                p.databases.insert(db.to_owned());
            }
            None => p.all = true,
        });
        self.active_connections(database)
    }

    fn active_connections(&self, database: Option<&str>) -> usize {
        self.pools
            .all()
            .iter()
            .filter(|pool| database.is_none_or(|db| pool.origin.db_key == db))
            .map(|pool| {
                let s = pool.status();
                s.size.saturating_sub(s.idle)
            })
            .sum()
    }

    /// Resumes `database`, or everything with `None` (which also clears
    /// per-database pauses).
    pub fn resume(&self, database: Option<&str>) {
        self.pause_state.modify(|p| match database {
            Some(db) => {
                p.databases.remove(db);
            }
            None => *p = Paused::default(),
        });
    }

    /// Whether `db_key` is paused, without copying the set (per transaction).
    pub fn is_paused(&self, db_key: &str) -> bool {
        self.pause_state.any.load(Ordering::Acquire) && self.pause_state.tx.borrow().covers(db_key)
    }

    pub fn paused(&self) -> Paused {
        self.pause_state.tx.borrow().clone()
    }

    /// Waits while `db_key` is paused (a session about to start a
    /// transaction).
    pub(super) async fn wait_unpaused(&self, db_key: &str) {
        let mut rx = self.pause_state.tx.subscribe();
        loop {
            if !rx.borrow_and_update().covers(db_key) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}
