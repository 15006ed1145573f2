//! The embedded durable store: one `redb` database file.
//!
//! Why redb: pure Rust (no C toolchain or external service), ACID with copy-on-write pages, a
//! commit is durable (fsync'd) when it returns, and a crash at any point leaves the last committed
//! state. That gives "no acknowledged write lost under `kill -9`" by construction.
//!
//! Group commit: all writes go to one writer thread. It takes the first waiting batch, then every
//! other batch already queued (up to [`MAX_GROUP`]), applies them in order inside one redb write
//! transaction, commits once, and only then acknowledges each caller. Under concurrent load many
//! writes share one fsync; a lone write waits for nobody.
//!
//! Conditional batches ([`Storage::write_batch_if`]) are checked inside that transaction, just
//! before their own ops, against what the batches before them in the group left: a batch whose
//! expectation fails is skipped whole and answered `Conflict`, the others commit.

use crate::group::{Groups, Pending, Queue};
use crate::{list_children, CommitCounts, Expect, Result, Storage, StorageError, WriteOp};
use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("tresor");
/// The most batches folded into one commit.
const MAX_GROUP: usize = 512;
/// redb's page cache, in the server's memory, unless the config sets `cache_size`. redb's
/// default (1 GiB) made the process's RSS follow the data (1.5 GiB with a million secrets and
/// a million tokens stored, see bench/scale.sh); pages beyond the cache come from the
/// operating system's page cache instead, at the cost of a `pread` and a page copy each.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

pub struct FileStorage {
    /// `None` once closed.
    db: RwLock<Option<Arc<Database>>>,
    writer: Queue,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    counts: Arc<Counts>,
}

/// Groups committed since open (one redb commit, so one `fdatasync`, each) and the batches
/// they applied.
#[derive(Default)]
struct Counts {
    commits: AtomicU64,
    batches: AtomicU64,
}

impl Drop for FileStorage {
    /// Closes the queue and waits for the writer, so the file is released on return (a new
    /// `open` of the same path right after succeeds).
    fn drop(&mut self) {
        self.shut();
    }
}

fn io<E: std::fmt::Display>(e: E) -> StorageError {
    StorageError::Io(e.to_string())
}

/// Tells the kernel that the database file is read at random (B-tree pages, one at a time):
/// no readahead, as LMDB's `MDB_NORDAHEAD`. Without it, a page redb's own cache misses that the
/// OS page cache does not hold either costs a read of the pages around it too, which a large
/// store's random lookups (a token, an accessor) never use. Advice only: ignored if refused.
fn advise_random_access(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise reads nothing from memory; the descriptor is open (owned by
        // `file`) for the duration of the call.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

impl FileStorage {
    /// Opens (or creates) the database file `dir/tresor.redb`.
    /// A directory it creates is private to the server's user (0700), and so is the file
    /// (0600), whatever the umask.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`FileStorage::open`] with a page cache of `cache_bytes` (redb's read cache and write
    /// buffer together).
    pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
        let path = dir.join("tresor.redb");
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A file that existed keeps the mode it had: make it private too.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        advise_random_access(&file);
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(redb::backends::FileBackend::new(file).map_err(io)?)
            .map_err(io)?;
        {
            let txn = db.begin_write().map_err(io)?;
            txn.open_table(TABLE).map_err(io)?;
            txn.commit().map_err(io)?;
        }
        let db = Arc::new(db);
        let (writer, groups) = crate::group::queue(MAX_GROUP);
        let wdb = db.clone();
        let counts = Arc::new(Counts::default());
        let counted = counts.clone();
        let thread = std::thread::Builder::new()
            .name("tresor-storage-writer".into())
            .spawn(move || writer_loop(&wdb, groups, &counted))
            .map_err(io)?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            writer,
            thread: Mutex::new(Some(thread)),
            counts,
        })
    }

    fn db(&self) -> Result<Arc<Database>> {
        self.db.read().clone().ok_or(StorageError::Closed)
    }

    /// Stops taking writes, lets the writer commit what is queued, and drops the database
    /// (the last reader in flight releases it).
    fn shut(&self) {
        self.writer.close();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        self.db.write().take();
    }
}

fn writer_loop(db: &Database, mut groups: Groups, counts: &Counts) {
    while let Some(group) = groups.blocking_next() {
        let outcome = commit_group(db, &group).map_err(StorageError::Io);
        if let Ok(conflicts) = &outcome {
            let applied = conflicts.iter().filter(|c| c.is_none()).count() as u64;
            if applied > 0 {
                counts.commits.fetch_add(1, Ordering::Relaxed);
                counts.batches.fetch_add(applied, Ordering::Relaxed);
            }
        }
        crate::group::answer(group, outcome);
    }
}

/// Applies the group in one transaction; per batch, the key whose expectation failed (that
/// batch was skipped) or `None` (applied).
fn commit_group(
    db: &Database,
    group: &[Pending],
) -> std::result::Result<Vec<Option<String>>, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let mut conflicts = Vec::with_capacity(group.len());
    {
        let mut table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
        'batches: for Pending { expect, ops, .. } in group {
            for e in expect {
                let held = table.get(e.key.as_str()).map_err(|e| e.to_string())?;
                if held.as_ref().map(|v| v.value()) != e.value.as_deref() {
                    conflicts.push(Some(e.key.clone()));
                    continue 'batches;
                }
            }
            conflicts.push(None);
            for op in ops {
                match op {
                    WriteOp::Put(k, v) => {
                        table
                            .insert(k.as_str(), v.as_slice())
                            .map_err(|e| e.to_string())?;
                    }
                    WriteOp::Delete(k) => {
                        table.remove(k.as_str()).map_err(|e| e.to_string())?;
                    }
                }
            }
        }
    }
    if conflicts.iter().all(Option::is_some) {
        // Nothing to write: no commit, no fsync.
        txn.abort().map_err(|e| e.to_string())?;
    } else {
        txn.commit().map_err(|e| e.to_string())?;
    }
    Ok(conflicts)
}

#[async_trait]
impl Storage for FileStorage {
    fn commit_counts(&self) -> Option<CommitCounts> {
        Some(CommitCounts {
            commits: self.counts.commits.load(Ordering::Relaxed),
            batches: self.counts.batches.load(Ordering::Relaxed),
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db()?.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        Ok(table.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<WriteOp>) -> Result<()> {
        self.writer.submit(expect, ops).await
    }

    async fn close(&self) {
        self.writer.close();
        let writer = self.thread.lock().take();
        if let Some(t) = writer {
            // The join waits for the last commit: off the async runtime's threads.
            let (joined, rx) = oneshot::channel();
            std::thread::spawn(move || {
                let _ = t.join();
                let _ = joined.send(());
            });
            let _ = rx.await;
        }
        self.db.write().take();
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        use std::ops::Bound;
        let txn = self.db()?.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        list_children(prefix, after, limit, |start| {
            let range = table
                .range::<&str>((Bound::Included(start), Bound::Unbounded))
                .map_err(io)?;
            Ok(range.map(|entry| entry.map(|(k, _)| k.value().to_string()).map_err(io)))
        })
    }

    async fn scan(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        use std::ops::Bound;
        let txn = self.db()?.begin_read().map_err(io)?;
        let table = txn.open_table(TABLE).map_err(io)?;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut keys = Vec::new();
        for entry in table.range::<&str>((start, Bound::Unbounded)).map_err(io)? {
            let (k, _) = entry.map_err(io)?;
            let k = k.value();
            if !k.starts_with(prefix) || keys.len() >= limit {
                break;
            }
            keys.push(k.to_string());
        }
        Ok(keys)
    }

    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>> {
        // One read transaction: redb's copy-on-write gives it the state of one commit,
        // however many commits land meanwhile.
        let db = self.db()?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(io)?;
            let table = txn.open_table(TABLE).map_err(io)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(io)? {
                let (k, v) = entry.map_err(io)?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
        .await
        .map_err(io)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::basic(&FileStorage::open(dir.path()).unwrap()).await;
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::batch_is_atomic_and_ordered(&FileStorage::open(dir.path()).unwrap())
            .await;
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::scan_pages_in_order(&FileStorage::open(dir.path()).unwrap()).await;
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::conditional_batches(&FileStorage::open(dir.path()).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_and_replace_all() {
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::export_is_consistent_and_replace_all_replaces(Arc::new(
            FileStorage::open(dir.path()).unwrap(),
        ))
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn compare_and_swap_under_contention() {
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::compare_and_swap_loses_no_update(Arc::new(
            FileStorage::open(dir.path()).unwrap(),
        ))
        .await;
    }

    #[cfg(unix)]
    #[test]
    fn the_store_is_private_to_its_user() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data/nested");
        let s = FileStorage::open(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&parent.path().join("data")), 0o700);
        let file = dir.join("tresor.redb");
        assert_eq!(mode(&file), 0o600);
        // A file made readable by others (a restore, a copy) is private again once opened.
        drop(s);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _s = FileStorage::open(&dir).unwrap();
        assert_eq!(mode(&file), 0o600);
    }

    #[tokio::test]
    async fn close_commits_what_was_acknowledged_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::open(dir.path()).unwrap();
        s.put("k", b"v".to_vec()).await.unwrap();
        s.close().await;
        assert!(matches!(s.get("k").await, Err(StorageError::Closed)));
        assert!(matches!(
            s.put("k2", vec![]).await,
            Err(StorageError::Closed)
        ));
        // Released: the file opens again at once, with the write.
        let again = FileStorage::open(dir.path()).unwrap();
        assert_eq!(again.get("k").await.unwrap(), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn survives_reopen_and_groups_concurrent_writes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Arc::new(FileStorage::open(dir.path()).unwrap());
            let mut tasks = Vec::new();
            for i in 0..200 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    s.put(&format!("k/{i:03}"), vec![i as u8]).await.unwrap()
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
        // Dropping the store released the file: it opens again at once.
        let s = FileStorage::open(dir.path()).unwrap();
        assert_eq!(s.list("k/").await.unwrap().len(), 200);
        assert_eq!(s.get("k/007").await.unwrap(), Some(vec![7]));
    }

    #[tokio::test]
    async fn concurrent_writes_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::open(dir.path()).unwrap();
        // Holding redb's write lock stops the writer at its first group's transaction, so the
        // other writes all queue behind it, deterministically.
        let held = s.db().unwrap().begin_write().unwrap();
        let mut writes: Vec<_> = (0..200)
            .map(|i| {
                Box::pin(s.write_batch(vec![WriteOp::Put(format!("k/{i:03}"), vec![i as u8])]))
            })
            .collect();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        for w in &mut writes {
            // The first poll queues the batch (and then waits for the commit).
            assert!(std::future::Future::poll(w.as_mut(), &mut cx).is_pending());
        }
        held.abort().unwrap();
        for w in writes {
            w.await.unwrap();
        }
        // The first group (whatever was queued when the writer woke), then all the rest.
        let counts = s.commit_counts().unwrap();
        assert!(counts.commits <= 2, "{counts:?}");
        assert_eq!(counts.batches, 200);
        assert_eq!(s.list("k/").await.unwrap().len(), 200);
    }
}
