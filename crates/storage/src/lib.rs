//! Physical storage for Tresor: the [`Storage`] trait and its backends.
//!
//! Everything here sees only opaque bytes: the core's barrier encrypts values before they reach a
//! backend, so nothing in this crate ever holds plaintext secrets.
//!
//! * [`Storage`]: get / put / delete / list plus [`Storage::write_batch`], an atomic multi-key
//!   write (OpenBao's lesson: engines need transactions, e.g. KV v2 metadata and version data
//!   must change together).
//! * [`memory::MemoryStorage`]: a `BTreeMap` behind a lock, for `-dev` servers and tests.
//! * [`file::FileStorage`]: the embedded durable store, built on `redb` (a pure-Rust, ACID,
//!   copy-on-write B-tree that fsyncs on commit). Concurrent writers are grouped into one
//!   commit (group commit), so throughput is not capped at the disk's fsync rate, and a write
//!   is acknowledged only once its commit is durable.
//!
//! Keys are `/`-separated strings; [`Storage::list`] returns the immediate children of a prefix,
//! folders with a trailing `/`, as Vault's physical layer does.

pub mod file;
pub mod memory;

use async_trait::async_trait;

/// A storage failure. Messages name keys, never values.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("storage is closed")]
    Closed,
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// One write inside an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put(String, Vec<u8>),
    Delete(String),
}

/// A key/value store with atomic batches and folder-style listing.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Applies every op or none; returns once the batch is durable (for durable backends).
    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<()>;
    /// Immediate children of `prefix` (which is empty or ends in `/`), sorted; sub-folders end in `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Up to `limit` full keys that start with `prefix` and sort after `after` (exclusive), in
    /// order, without folding folders: a paginated range scan (time-ordered indexes use it to
    /// read only what is due, never everything).
    async fn scan(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>>;

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.write_batch(vec![WriteOp::Put(key.to_string(), value)])
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.write_batch(vec![WriteOp::Delete(key.to_string())])
            .await
    }
}

/// Turns the keys found under `prefix` (in sorted order) into the immediate-children listing.
pub(crate) fn children<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if child.is_empty() {
            continue;
        }
        if out.last().map(|l| l.as_str()) != Some(child) {
            out.push(child.to_string());
        }
    }
    // A folder "a/" and a key "a" sort apart from each other; dedupe and keep order.
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
pub(crate) mod conformance {
    //! Behaviour every backend must share; each backend's tests call these.
    use super::*;

    pub async fn basic(s: &dyn Storage) {
        assert_eq!(s.get("a").await.unwrap(), None);
        s.put("a", b"1".to_vec()).await.unwrap();
        s.put("dir/x", b"2".to_vec()).await.unwrap();
        s.put("dir/sub/y", b"3".to_vec()).await.unwrap();
        s.put("dir2", b"4".to_vec()).await.unwrap();
        assert_eq!(s.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.list("").await.unwrap(), vec!["a", "dir/", "dir2"]);
        assert_eq!(s.list("dir/").await.unwrap(), vec!["sub/", "x"]);
        assert_eq!(s.list("nope/").await.unwrap(), Vec::<String>::new());
        s.delete("a").await.unwrap();
        assert_eq!(s.get("a").await.unwrap(), None);
        s.delete("never-there").await.unwrap();
    }

    pub async fn scan_pages_in_order(s: &dyn Storage) {
        for k in ["t/003/b", "t/001/a", "t/002/c", "t/002/a", "u/1", "s/9"] {
            s.put(k, vec![]).await.unwrap();
        }
        assert_eq!(
            s.scan("t/", None, 2).await.unwrap(),
            vec!["t/001/a", "t/002/a"]
        );
        assert_eq!(
            s.scan("t/", Some("t/002/a"), 10).await.unwrap(),
            vec!["t/002/c", "t/003/b"]
        );
        assert_eq!(
            s.scan("t/", Some("t/003/b"), 10).await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(s.scan("v/", None, 10).await.unwrap(), Vec::<String>::new());
    }

    pub async fn batch_is_atomic_and_ordered(s: &dyn Storage) {
        s.write_batch(vec![
            WriteOp::Put("k1".into(), b"v1".to_vec()),
            WriteOp::Put("k2".into(), b"v2".to_vec()),
            WriteOp::Delete("k1".into()),
        ])
        .await
        .unwrap();
        assert_eq!(s.get("k1").await.unwrap(), None);
        assert_eq!(s.get("k2").await.unwrap(), Some(b"v2".to_vec()));
    }
}
