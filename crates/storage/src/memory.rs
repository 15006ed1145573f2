//! In-memory storage: a sorted map behind a read/write lock. Used by `-dev` servers and tests;
//! everything is lost when the process exits.

use crate::{list_children, Expect, Result, Storage, StorageError, WriteOp};
use async_trait::async_trait;
use parking_lot::RwLock;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct MemoryStorage {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
    }

    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<WriteOp>) -> Result<()> {
        let mut map = self.map.write();
        if let Some(e) = expect.iter().find(|e| map.get(&e.key) != e.value.as_ref()) {
            return Err(StorageError::Conflict(e.key.clone()));
        }
        for op in ops {
            match op {
                WriteOp::Put(k, v) => {
                    map.insert(k, v);
                }
                WriteOp::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let map = self.map.read();
        list_children(prefix, after, limit, |start| {
            Ok(map
                .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
                .map(|(k, _)| Ok(k.clone())))
        })
    }

    async fn scan(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        use std::ops::Bound;
        let map = self.map.read();
        let start = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Included(prefix.to_string()),
        };
        Ok(map
            .range((start, Bound::Unbounded))
            .map(|(k, _)| k)
            .skip_while(|k| !k.starts_with(prefix) && k.as_str() < prefix)
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let map = self.map.read();
        Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        crate::conformance::basic(&MemoryStorage::new()).await;
        crate::conformance::batch_is_atomic_and_ordered(&MemoryStorage::new()).await;
        crate::conformance::scan_pages_in_order(&MemoryStorage::new()).await;
        crate::conformance::conditional_batches(&MemoryStorage::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_and_replace_all() {
        crate::conformance::export_is_consistent_and_replace_all_replaces(std::sync::Arc::new(
            MemoryStorage::new(),
        ))
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn compare_and_swap_under_contention() {
        crate::conformance::compare_and_swap_loses_no_update(std::sync::Arc::new(
            MemoryStorage::new(),
        ))
        .await;
    }
}
