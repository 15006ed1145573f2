//! Striped async locks: serialize work on one key (a role, a secret ID, a lease) within this
//! process, without one lock per key and without serializing unrelated keys.
//!
//! They are not what makes a check-then-act atomic: that is the conditional write of
//! [`crate::barrier::View::update`], which also holds across processes. A stripe spares
//! same-process writers of one key retries, and keeps work that must not overlap (a backend's
//! hooks for one lease) apart.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use tokio::sync::{Mutex, MutexGuard};

pub struct Stripes(Vec<Mutex<()>>);

impl Stripes {
    pub fn new(n: usize) -> Self {
        Stripes((0..n.max(1)).map(|_| Mutex::new(())).collect())
    }

    /// Locks the stripe of `key`. Two keys may share a stripe; never hold two guards at once.
    pub async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        self.0[(h.finish() % self.0.len() as u64) as usize]
            .lock()
            .await
    }
}

impl Default for Stripes {
    fn default() -> Self {
        Stripes::new(64)
    }
}
