//! In-memory copies of the stored records every issue reads (its role, its issuer with the
//! certificate parsed and the key loaded, the mount's URL config), so a request does not decrypt
//! and decode them again.
//!
//! Each record is written only through this mount's handlers, and each handler clears the
//! matching cache after storage has the change. A read that raced a change must not put the old
//! value back: every cache has a generation, bumped by each clear, and a value read from storage
//! is kept only if the generation did not move while it was being read.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Values by key, cleared as a whole.
pub struct Cache<V> {
    map: RwLock<HashMap<String, Arc<V>>>,
    generation: AtomicU64,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Cache {
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }
}

impl<V> Cache<V> {
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.map.read().get(key).cloned()
    }

    /// The generation to hand to [`Cache::insert`]: take it before reading storage.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `value` under each of `keys` unless the cache was cleared since `generation`.
    pub fn insert(&self, generation: u64, keys: &[&str], value: Arc<V>) {
        let mut map = self.map.write();
        if self.generation.load(Ordering::Acquire) == generation {
            for k in keys {
                map.insert(k.to_string(), value.clone());
            }
        }
    }

    /// Forgets everything (after a write of what it caches).
    pub fn clear(&self) {
        let mut map = self.map.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_clear_is_not_kept() {
        let c: Cache<u32> = Cache::default();
        let g = c.generation();
        c.insert(g, &["a", "b"], Arc::new(1));
        assert_eq!(c.get("a").as_deref(), Some(&1));
        assert_eq!(c.get("b").as_deref(), Some(&1));
        // A reader takes the generation, a writer changes storage and clears, then the reader
        // comes back with what it read before the change.
        let g = c.generation();
        c.clear();
        c.insert(g, &["a"], Arc::new(2));
        assert_eq!(c.get("a"), None);
        let g = c.generation();
        c.insert(g, &["a"], Arc::new(3));
        assert_eq!(c.get("a").as_deref(), Some(&3));
    }
}
