//! Physical storage for Tresor: the [`Storage`] trait and its backends.
//!
//! Everything here sees only opaque bytes: the core's barrier encrypts values before they reach a
//! backend, so nothing in this crate ever holds plaintext secrets.
//!
//! * [`Storage`]: get / put / delete / list plus [`Storage::write_batch`], an atomic multi-key
//!   write (OpenBao's lesson: engines need transactions, e.g. KV v2 metadata and version data
//!   must change together), and [`Storage::write_batch_if`], the same batch applied only if
//!   some keys still hold the exact bytes the caller read (compare-and-swap). The second is the
//!   one mechanism behind every check-then-act on stored state (use counts, single-use tokens,
//!   nonces, check-and-set): a writer that lost the race gets [`StorageError::Conflict`] and
//!   re-reads. It holds across processes sharing one database, because the backend checks
//!   inside its own transaction, not behind a process-local lock.
//! * [`memory::MemoryStorage`]: a `BTreeMap` behind a lock, for `-dev` servers and tests.
//! * [`file::FileStorage`]: the embedded durable store, built on `redb` (a pure-Rust, ACID,
//!   copy-on-write B-tree that fsyncs on commit). Concurrent writers are grouped into one
//!   commit (group commit), so throughput is not capped at the disk's fsync rate, and a write
//!   is acknowledged only once its commit is durable.
//! * [`postgres::PostgresStorage`]: one table in PostgreSQL, shared by several server
//!   processes; group commit too, every transaction serialized by the HA row's lock.
//!
//! Keys are `/`-separated strings; [`Storage::list`] returns the immediate children of a prefix,
//! folders with a trailing `/`, as Vault's physical layer does.

pub mod file;
mod group;
pub mod memory;
pub mod postgres;

use async_trait::async_trait;

/// A storage failure. Messages name keys, never values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("storage is closed")]
    Closed,
    /// A precondition of [`Storage::write_batch_if`] did not hold: another writer changed the
    /// key since it was read. Nothing of the batch was applied.
    #[error("concurrent write to {0}")]
    Conflict(String),
    /// A write on a node that does not hold the HA lease (a standby, or a node that lost
    /// it): refused inside the write's own transaction. Nothing was applied.
    #[error("this node is not the active node")]
    NotActive,
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// One write inside an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put(String, Vec<u8>),
    Delete(String),
}

/// A precondition of a conditional batch: `key` holds exactly `value` (`None`: the key is
/// absent). Values are compared byte for byte; the barrier encrypts every write with a fresh
/// nonce, so a key rewritten with the same plaintext still compares unequal (no ABA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// A node as it records itself when it becomes the active one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub id: String,
    pub api_addr: String,
    pub cluster_addr: String,
    pub hostname: String,
    pub version: String,
}

/// A node as its last heartbeat recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub node: NodeInfo,
    /// Unix seconds of its last heartbeat.
    pub last_seen: i64,
}

/// The active node as the storage records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub node: NodeInfo,
    /// Bumped by every takeover: the fencing token.
    pub epoch: i64,
}

/// A lease just taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// The new epoch (the fencing token of this node's writes).
    pub epoch: i64,
    /// Taken from a holder whose lease had not run out, because its database session is gone
    /// (see [`HaLock::session_lost`]). Such a holder, if it lives after all, may still count
    /// itself active until it notices; the taker gives it that moment before it activates.
    pub from_live_holder: bool,
}

/// What the active node committed after some index: each commit's index and the keys it
/// wrote or deleted, in commit order.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The index of the latest commit.
    pub head: i64,
    pub commits: Vec<(i64, Vec<String>)>,
    /// `false`: commits after the asked index are no longer all in the log (it was trimmed);
    /// whoever caches anything must drop it all.
    pub complete: bool,
}

/// Leadership among the nodes sharing one storage (PostgreSQL with `ha_enabled`): a lease
/// with an epoch. While a storage has one, every write commits only if this node holds the
/// lease under the epoch it acquired, checked inside the write's own transaction; a node
/// that lost the lease (paused, partitioned) cannot commit anything, even before it notices.
#[async_trait]
pub trait HaLock: Send + Sync {
    /// Takes the lease if nobody holds a live one (or its holder's session is gone).
    async fn try_acquire(&self, me: &NodeInfo) -> Result<Option<Acquired>>;
    /// Extends the lease; `false` when it is no longer this node's (stop acting as active).
    async fn renew(&self) -> Result<bool>;
    /// Gives the lease up (step-down, shutdown), so another node takes over at once.
    async fn release(&self);
    /// Forgets the lease locally without telling the database (it was lost).
    fn abandon(&self);
    /// Whether the database session the lease is held on has closed. The database then
    /// lets another node take the lease at once (a dead holder's session is gone too), so a
    /// holder that sees this stops acting as active at once.
    fn session_lost(&self) -> bool {
        false
    }
    /// The holder of a live lease, if any.
    async fn leader(&self) -> Result<Option<Leader>>;
    /// How long a lease lives without renewal.
    fn lease_ttl(&self) -> std::time::Duration;
    /// Records that this node is alive (every node, active or not, every few seconds).
    async fn heartbeat(&self, me: &NodeInfo) -> Result<()>;
    /// The nodes heard from within `within`, for `sys/ha-status`.
    async fn nodes(&self, within: std::time::Duration) -> Result<Vec<NodeStatus>>;
    /// Up to `limit` commits after index `after` (the change log standbys keep their caches
    /// coherent with).
    async fn changes_since(&self, after: i64, limit: usize) -> Result<Changes>;
    /// The index of this process's latest commit (0 before any): a client that saw it and
    /// reads elsewhere can ask for a state at least that new.
    fn last_commit(&self) -> i64;
}

/// What a grouping store committed since open ([`Storage::commit_counts`]): `batches /
/// commits` is how many writes shared an `fdatasync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitCounts {
    pub commits: u64,
    /// Batches applied by those commits (a batch whose expectation failed is not counted).
    pub batches: u64,
}

/// A key/value store with atomic batches and folder-style listing.
///
/// A backend for several server processes on one database (PostgreSQL) implements
/// [`Storage::write_batch_if`] inside one database transaction (lock or re-read the expected
/// rows, compare, apply), so its guarantee does not depend on which process asks.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Applies every op or none, but only if every [`Expect`] holds at the moment of applying;
    /// otherwise applies nothing and answers [`StorageError::Conflict`]. Returns once the batch
    /// is durable (for durable backends).
    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<WriteOp>) -> Result<()>;
    /// Up to `limit` immediate children of `prefix` (which is empty or ends in `/`) that sort
    /// after the child `after` (exclusive), in order; sub-folders end in `/`. A folder's
    /// contents are skipped, not read: the cost follows the page, not the folder.
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;
    /// Every immediate child of `prefix` (which is empty or ends in `/`), sorted; sub-folders
    /// end in `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_page(prefix, None, usize::MAX).await
    }
    /// Up to `limit` full keys that start with `prefix` and sort after `after` (exclusive), in
    /// order, without folding folders: a paginated range scan (time-ordered indexes use it to
    /// read only what is due, never everything).
    async fn scan(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>>;
    /// Every entry, in key order, as of one moment: a commit is in it whole or not at all
    /// (what a snapshot saves while the server keeps writing). Held in memory.
    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>>;

    /// Makes `entries` the whole content of the store, in one atomic batch: every key not
    /// among them is deleted (what a snapshot restore writes). Through [`Storage::write_batch`],
    /// so it is fenced and logged for standbys like any other write.
    async fn replace_all(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let keep: std::collections::HashSet<&str> =
            entries.iter().map(|(k, _)| k.as_str()).collect();
        // Only the keys of what is there now: a key-only scan, page by page.
        let mut ops = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.scan("", after.as_deref(), 1000).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            ops.extend(
                page.into_iter()
                    .filter(|k| !keep.contains(k.as_str()))
                    .map(WriteOp::Delete),
            );
            after = Some(last);
        }
        drop(keep);
        ops.extend(entries.into_iter().map(|(k, v)| WriteOp::Put(k, v)));
        self.write_batch(ops).await
    }

    /// Applies every op or none; returns once the batch is durable (for durable backends).
    async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.write_batch_if(Vec::new(), ops).await
    }
    /// Finishes what is queued and releases the store (a durable backend closes its files
    /// cleanly, so the next open needs no recovery). Afterwards every call answers
    /// [`StorageError::Closed`]. The default does nothing.
    async fn close(&self) {}

    /// For a store that groups concurrent write batches into commits (one `fdatasync` each):
    /// what it committed since open. `None` for the others.
    fn commit_counts(&self) -> Option<CommitCounts> {
        None
    }

    /// The leadership lease of a storage several nodes share; `None` for single-node ones.
    fn ha(&self) -> Option<std::sync::Arc<dyn HaLock>> {
        None
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.write_batch(vec![WriteOp::Put(key.to_string(), value)])
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.write_batch(vec![WriteOp::Delete(key.to_string())])
            .await
    }
}

/// The first key a listing of `prefix` reads when it resumes after the child `after`: just
/// past that key, or, for a folder (`a/`), past everything in it (`a0`: `0` follows `/`).
pub(crate) fn list_start(prefix: &str, after: Option<&str>) -> String {
    match after {
        None | Some("") => prefix.to_string(),
        Some(a) => match a.strip_suffix('/') {
            Some(folder) => format!("{prefix}{folder}0"),
            None => format!("{prefix}{a}\0"),
        },
    }
}

/// A folder listing over an ordered key source (`keys_from(start)`: the keys at or after
/// `start`, in order). Each sub-folder is named once and its contents skipped by starting a
/// new range past them, so a page reads about one key per child.
pub(crate) fn list_children<I>(
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    mut keys_from: impl FnMut(&str) -> Result<I>,
) -> Result<Vec<String>>
where
    I: Iterator<Item = Result<String>>,
{
    let mut out = Vec::new();
    let mut start = list_start(prefix, after);
    'seek: while out.len() < limit {
        for key in keys_from(&start)? {
            let key = key?;
            let Some(rest) = key.strip_prefix(prefix) else {
                break 'seek;
            };
            match rest.find('/') {
                Some(i) => {
                    out.push(rest[..=i].to_string());
                    start = format!("{prefix}{}0", &rest[..i]);
                    continue 'seek;
                }
                None if rest.is_empty() => {}
                None => {
                    out.push(rest.to_string());
                    if out.len() >= limit {
                        break 'seek;
                    }
                }
            }
        }
        break;
    }
    Ok(out)
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
        // Pages: `after` is a child (a folder's contents are skipped whole), `limit` caps.
        s.put("dir/sub-x", b"5".to_vec()).await.unwrap();
        s.put("dir/sub/z/deep", b"6".to_vec()).await.unwrap();
        s.put("dir/y", b"7".to_vec()).await.unwrap();
        // A key equal to the prefix is no child of it (and takes no place in a page).
        s.put("dir/", b"8".to_vec()).await.unwrap();
        let page = |after, limit| s.list_page("dir/", after, limit);
        assert_eq!(s.list("dir/").await.unwrap(), ["sub-x", "sub/", "x", "y"]);
        assert_eq!(page(None, 2).await.unwrap(), ["sub-x", "sub/"]);
        assert_eq!(page(Some("sub-x"), 2).await.unwrap(), ["sub/", "x"]);
        assert_eq!(page(Some("sub/"), 10).await.unwrap(), ["x", "y"]);
        assert_eq!(page(Some("sub"), 1).await.unwrap(), ["sub-x"]);
        assert_eq!(page(Some("w"), 10).await.unwrap(), ["x", "y"]);
        assert_eq!(page(Some("y"), 10).await.unwrap(), Vec::<String>::new());
        assert_eq!(page(None, 0).await.unwrap(), Vec::<String>::new());
        assert_eq!(s.list_page("", Some("a"), 1).await.unwrap(), ["dir/"]);
        assert_eq!(s.list_page("", Some("dir/"), 5).await.unwrap(), ["dir2"]);
        assert_eq!(s.list("").await.unwrap(), ["a", "dir/", "dir2"]);
        for k in ["dir/sub-x", "dir/sub/z/deep", "dir/y", "dir/"] {
            s.delete(k).await.unwrap();
        }
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

    /// Conditional batches: applied only when every expectation holds, else nothing at all.
    pub async fn conditional_batches(s: &dyn Storage) {
        let expect = |k: &str, v: Option<&[u8]>| Expect {
            key: k.into(),
            value: v.map(<[u8]>::to_vec),
        };
        // Absent expected absent: applies.
        s.write_batch_if(
            vec![expect("c", None)],
            vec![WriteOp::Put("c".into(), b"1".to_vec())],
        )
        .await
        .unwrap();
        // Expected absent but present: nothing applies, not even the unrelated op.
        let err = s
            .write_batch_if(
                vec![expect("c", None)],
                vec![
                    WriteOp::Put("other".into(), b"x".to_vec()),
                    WriteOp::Put("c".into(), b"2".to_vec()),
                ],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::Conflict(ref k) if k == "c"),
            "{err}"
        );
        assert_eq!(s.get("other").await.unwrap(), None);
        assert_eq!(s.get("c").await.unwrap(), Some(b"1".to_vec()));
        // Wrong value: conflict; right value: applies, deletes included.
        assert!(matches!(
            s.write_batch_if(
                vec![expect("c", Some(b"0"))],
                vec![WriteOp::Delete("c".into())]
            )
            .await,
            Err(StorageError::Conflict(_))
        ));
        s.write_batch_if(
            vec![expect("c", Some(b"1")), expect("d", None)],
            vec![
                WriteOp::Delete("c".into()),
                WriteOp::Put("d".into(), vec![]),
            ],
        )
        .await
        .unwrap();
        assert_eq!(s.get("c").await.unwrap(), None);
        assert_eq!(s.get("d").await.unwrap(), Some(vec![]));
        // Expected present but absent.
        assert!(matches!(
            s.write_batch_if(vec![expect("c", Some(b"1"))], vec![])
                .await,
            Err(StorageError::Conflict(_))
        ));
    }

    /// `export` sees whole commits only, however many land meanwhile, and `replace_all`
    /// leaves exactly what it was given.
    pub async fn export_is_consistent_and_replace_all_replaces(s: std::sync::Arc<dyn Storage>) {
        s.put("old/gone", b"x".to_vec()).await.unwrap();
        let writer = {
            let s = s.clone();
            tokio::spawn(async move {
                for n in 0..200u32 {
                    let v = n.to_be_bytes().to_vec();
                    s.write_batch(vec![
                        WriteOp::Put("pair/a".into(), v.clone()),
                        WriteOp::Put("pair/b".into(), v),
                    ])
                    .await
                    .unwrap();
                }
            })
        };
        let mut seen = 0;
        while !writer.is_finished() || seen == 0 {
            let all = s.export().await.unwrap();
            let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "export is in key order");
            let get = |k: &str| all.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            assert_eq!(
                get("pair/a"),
                get("pair/b"),
                "a commit is whole in an export"
            );
            seen += 1;
        }
        writer.await.unwrap();
        s.replace_all(vec![
            ("new/one".into(), b"1".to_vec()),
            ("pair/a".into(), b"2".to_vec()),
        ])
        .await
        .unwrap();
        assert_eq!(
            s.export().await.unwrap(),
            vec![
                ("new/one".to_string(), b"1".to_vec()),
                ("pair/a".to_string(), b"2".to_vec()),
            ]
        );
        assert_eq!(s.get("old/gone").await.unwrap(), None);
        assert_eq!(s.list("").await.unwrap(), vec!["new/", "pair/"]);
    }

    /// Many concurrent read-increment-write loops on one counter: with compare-and-swap no
    /// increment is lost, whatever the interleaving.
    pub async fn compare_and_swap_loses_no_update(s: std::sync::Arc<dyn Storage>) {
        compare_and_swap_loses_no_update_across(&[s]).await
    }

    /// The same with the workers spread over several stores of one database (as several
    /// server processes would be).
    pub async fn compare_and_swap_loses_no_update_across(stores: &[std::sync::Arc<dyn Storage>]) {
        let s = &stores[0];
        let workers: u32 = 16;
        let per_worker = 25;
        let mut tasks = Vec::new();
        for w in 0..workers {
            let s = stores[w as usize % stores.len()].clone();
            tasks.push(tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..per_worker {
                    loop {
                        let cur = s.get("counter").await.unwrap();
                        let n = cur
                            .as_deref()
                            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
                            .unwrap_or(0);
                        let put = WriteOp::Put("counter".into(), (n + 1).to_be_bytes().to_vec());
                        let expect = Expect {
                            key: "counter".into(),
                            value: cur,
                        };
                        match s.write_batch_if(vec![expect], vec![put]).await {
                            Ok(()) => break,
                            Err(StorageError::Conflict(_)) => {
                                conflicts += 1;
                                tokio::task::yield_now().await;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = s.get("counter").await.unwrap().unwrap();
        assert_eq!(
            u32::from_be_bytes(n.try_into().unwrap()),
            workers * per_worker
        );
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
