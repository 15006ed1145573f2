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
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tresor_core::error::Result;

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

    /// The value under `key`, else what `load` reads from storage, kept under `key` unless the
    /// cache was cleared while it was being read. `load` must not have started: the generation
    /// is taken before it is first polled. `None` (nothing stored) is not kept.
    pub async fn get_or_load(
        &self,
        key: &str,
        load: impl Future<Output = Result<Option<V>>>,
    ) -> Result<Option<Arc<V>>> {
        if let Some(v) = self.get(key) {
            return Ok(Some(v));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(value) = load.await?.map(Arc::new) else {
            return Ok(None);
        };
        let mut map = self.map.write();
        if self.generation.load(Ordering::Acquire) == generation {
            map.insert(key.to_string(), value.clone());
        }
        Ok(Some(value))
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

    #[tokio::test]
    async fn a_read_that_raced_a_clear_is_not_kept() {
        let c: Cache<u32> = Cache::default();
        let got = c.get_or_load("a", async { Ok(Some(1)) }).await.unwrap();
        assert_eq!(got.as_deref(), Some(&1));
        // Cached: the loader does not run again.
        let got = c.get_or_load("a", async { panic!("read again") }).await;
        assert_eq!(got.unwrap().as_deref(), Some(&1));
        // A writer changes storage and clears while a reader is still reading: the reader
        // gets what it read, but the cache does not keep it.
        c.clear();
        let got = c
            .get_or_load("a", async {
                c.clear();
                Ok(Some(2))
            })
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(&2));
        assert_eq!(c.get("a"), None);
        // Nothing stored: nothing kept.
        assert_eq!(c.get_or_load("b", async { Ok(None) }).await.unwrap(), None);
        assert_eq!(c.get("b"), None);
        let got = c.get_or_load("a", async { Ok(Some(3)) }).await.unwrap();
        assert_eq!(got.as_deref(), Some(&3));
        assert_eq!(c.get("a").as_deref(), Some(&3));
    }
}
