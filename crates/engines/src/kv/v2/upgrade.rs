//! The v1 → v2 upgrade. A KV mount tuned from version 1 to 2 keeps the same backend and
//! storage; before the first v2 request is served (or when a v2 mount is initialized after
//! unseal), every v1 entry (`v1/<key>`) becomes version 1 of the same key (created now, as in
//! Vault), and the v1 record is deleted in the same atomic batch. Requests wait while this runs.
//!
//! The migration is idempotent and resumable: an interrupted run leaves some keys already
//! moved and the rest still under `v1/`, and the next run moves the rest. A v1 entry whose key
//! already has v2 metadata is left where it is rather than overwritten (that can only happen if
//! a v1 write raced the tune). `v2/upgrade` records when a migration finished.

use super::model::{fmt_time, now_nanos, Key, KeyMeta, UPGRADE_KEY};
use super::{put_meta, V2};
use crate::kv::v1;
use serde_json::json;
use std::sync::atomic::Ordering;
use tresor_core::barrier::View;
use tresor_core::error::Result;
use tresor_storage::WriteOp;

/// Keys moved per atomic batch.
const CHUNK: usize = 64;

/// Makes sure no v1 data is left unmigrated; cheap after the first call.
pub async fn ensure(b: &V2, storage: &View) -> Result<()> {
    if b.upgraded.load(Ordering::Acquire) {
        return Ok(());
    }
    let _guard = b.upgrade_lock.lock().await;
    if b.upgraded.load(Ordering::Acquire) {
        return Ok(());
    }
    let keys = storage.list_recursive(v1::PREFIX).await?;
    if !keys.is_empty() {
        let started = now_nanos();
        let mut moved = 0usize;
        for chunk in keys.chunks(CHUNK) {
            moved += migrate(b, storage, chunk).await?;
        }
        storage
            .put_json(UPGRADE_KEY, &json!({ "done": true, "keys": moved, "started_time": fmt_time(started), "finished_time": fmt_time(now_nanos()) }))
            .await?;
    }
    b.upgraded.store(true, Ordering::Release);
    Ok(())
}

async fn migrate(b: &V2, storage: &View, names: &[String]) -> Result<usize> {
    let mut ops = Vec::with_capacity(names.len() * 3);
    let mut moved = 0;
    for name in names {
        let Some(raw) = storage.get(&format!("{}{name}", v1::PREFIX)).await? else {
            continue;
        };
        let key = Key::new(name);
        if b.load_meta(storage, &key).await?.is_some() {
            continue;
        }
        let now = now_nanos();
        let mut meta = KeyMeta::new(now);
        let (n, _) = meta.add_version(now, None, 1);
        ops.push(WriteOp::Put(key.version_key(n), raw));
        ops.push(put_meta(&key, &meta)?);
        ops.push(WriteOp::Delete(format!("{}{name}", v1::PREFIX)));
        moved += 1;
    }
    if !ops.is_empty() {
        storage.write_batch(ops).await?;
    }
    Ok(moved)
}
