//! Route (read/write classification): a bounded cache of classifications
//! keyed by the exact query text, so an application's repeated statements are
//! parsed once.
//!
//! Eviction is a clock-style second chance: a hit marks its entry as
//! referenced; when the cache is full, one sweep drops every entry not
//! referenced since the previous sweep and clears the marks of the rest. If a
//! sweep frees less than a quarter of the capacity (everything is hot),
//! arbitrary entries go too, so each sweep pays for many inserts. One mutex
//! guards the map: the critical section is a hash lookup, far cheaper than
//! the parse it saves.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::Classified;

/// Query texts longer than this are not cached: they are rarely repeated and
/// would make the cache's memory use depend on client input sizes.
pub(super) const MAX_CACHED_LEN: usize = 8 * 1024;

#[derive(Debug)]
struct Slot {
    value: Classified,
    referenced: bool,
}

#[derive(Debug)]
pub(super) struct Cache {
    capacity: usize,
    map: Mutex<HashMap<Box<str>, Slot>>,
}

impl Cache {
    /// A cache of at most `capacity` entries; 0 disables caching.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn get(&self, sql: &str) -> Option<Classified> {
        if self.capacity == 0 || sql.len() > MAX_CACHED_LEN {
            return None;
        }
        let mut map = self.lock();
        let slot = map.get_mut(sql)?;
        slot.referenced = true;
        Some(slot.value)
    }

    pub(super) fn insert(&self, sql: &str, value: Classified) {
        if self.capacity == 0 || sql.len() > MAX_CACHED_LEN {
            return;
        }
        let mut map = self.lock();
        if let Some(slot) = map.get_mut(sql) {
            slot.value = value;
            return;
        }
        if map.len() >= self.capacity {
            evict(&mut map, self.capacity);
        }
        map.insert(
            sql.into(),
            Slot {
                value,
                referenced: false,
            },
        );
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// A panic elsewhere while holding the lock cannot leave the map in a
    /// state worse than "some entries missing", so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Slot>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Makes room in a full map (see the module docs).
fn evict(map: &mut HashMap<Box<str>, Slot>, capacity: usize) {
    map.retain(|_, slot| std::mem::take(&mut slot.referenced));
    let target = capacity - capacity / 4;
    if map.len() >= target {
        let mut excess = map.len() + 1 - target;
        map.retain(|_, _| {
            if excess == 0 {
                return true;
            }
            excess -= 1;
            false
        });
    }
}
