//! `tresor operator migrate`: copies every entry of one storage backend into another, offline,
//! as Vault's `operator migrate` does. The config file names both, in the server config's
//! storage syntax:
//!
//! ```hcl
//! storage_source "file" { path = "/var/lib/tresor" }
//! storage_destination "postgresql" { connection_url = "postgres://tresor@pg/tresor" }
//! ```
//!
//! Entries are copied as stored (barrier ciphertext, the keyring and the seal configuration
//! with them), so the destination unseals with the same keys. The source must not be in use:
//! a file store is locked by a running server (opening it fails), and a PostgreSQL source with
//! a live HA lease is refused. The destination must be empty; it is written without fencing
//! (no node may run on it during the copy). Copying is paged, so memory stays flat.

use crate::config::{self, StorageConfig};
use crate::BoxError;
use std::path::Path;
use tresor_storage::{Storage, WriteOp};

/// Keys read (and written, as one batch) per page.
const PAGE: usize = 500;

/// Both ends of a migration.
pub struct Migration {
    pub source: StorageConfig,
    pub destination: StorageConfig,
}

impl Migration {
    /// Reads `storage_source` and `storage_destination` from a config file.
    pub fn load(path: &Path) -> Result<Migration, BoxError> {
        let v = config::read_file(path)?;
        let block = |k: &str| -> Result<StorageConfig, BoxError> {
            let b = v
                .get(k)
                .ok_or_else(|| format!("the migration config needs a {k} block"))?;
            config::storage_block(b).map_err(|e| format!("{k}: {e}").into())
        };
        let mut destination = block("storage_destination")?;
        // The copy is the only writer of the destination: no lease, no fence.
        if let StorageConfig::Postgres(pg) = &mut destination {
            pg.ha_enabled = false;
        }
        Ok(Migration {
            source: block("storage_source")?,
            destination,
        })
    }

    /// Copies everything (from the key `start` on, when given); returns how many entries.
    pub async fn run(&self, start: Option<&str>) -> Result<usize, BoxError> {
        if self.source == self.destination {
            return Err("the source and the destination are the same storage".into());
        }
        let source = crate::open_storage(&self.source).await?;
        if let Some(lease) = source.ha() {
            if let Some(leader) = lease.leader().await? {
                return Err(format!(
                    "a node ({}) is active on the source: stop every node before migrating",
                    leader.node.api_addr
                )
                .into());
            }
        }
        let destination = crate::open_storage(&self.destination).await?;
        if start.is_none() && !destination.scan("", None, 1).await?.is_empty() {
            return Err("the destination is not empty; migrate into an empty storage".into());
        }
        let copied = copy(source.as_ref(), destination.as_ref(), start).await?;
        source.close().await;
        destination.close().await;
        Ok(copied)
    }
}

async fn copy(
    source: &dyn Storage,
    destination: &dyn Storage,
    start: Option<&str>,
) -> Result<usize, BoxError> {
    let mut after: Option<String> = None;
    let mut copied = 0;
    // `start` is inclusive: resume just before it.
    let first = start.map(|s| {
        let mut b = s.as_bytes().to_vec();
        b.pop();
        String::from_utf8_lossy(&b).into_owned()
    });
    loop {
        let from = after.as_deref().or(first.as_deref());
        let keys = source.scan("", from, PAGE).await?;
        let Some(last) = keys.last().cloned() else {
            break;
        };
        let mut ops = Vec::with_capacity(keys.len());
        for k in keys {
            if start.is_some_and(|s| k.as_str() < s) {
                continue;
            }
            // Deleted since it was listed: nothing to copy.
            if let Some(v) = source.get(&k).await? {
                ops.push(WriteOp::Put(k, v));
            }
        }
        copied += ops.len();
        destination.write_batch(ops).await?;
        after = Some(last);
    }
    Ok(copied)
}
