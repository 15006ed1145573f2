//! KV version 2: the versioned key/value engine. This module owns the backend's state (the
//! cached mount config, per-key lock stripes, the upgrade flag), the list of paths, the
//! catch-all answer for paths a versioned mount does not serve, and helpers shared by the path
//! groups, which live one per file as in Vault:
//!
//! * [`config`] owns `config` (max_versions, cas_required, metadata_cas_required,
//!   delete_version_after).
//! * [`data`] owns `data/:path`: read / write / patch / soft-delete of the latest version.
//! * [`metadata`] owns `metadata/:path` (read / write / patch / delete / list) and
//!   `detailed-metadata/`.
//! * [`delete`] owns `delete/:path`, `undelete/:path` and `destroy/:path`.
//! * [`subkeys`] owns `subkeys/:path`.
//! * [`upgrade`] is the one-time migration of KV v1 data when a mount is tuned to version 2.
//! * [`model`] holds the stored records and their conversions.
//!
//! Concurrency: every read-modify-write of a key's metadata goes through [`V2::modify_meta`]: its
//! batch (metadata, version data, deletions) lands only if the metadata is unchanged since it
//! was read, else it is decided again on what is there now ([`View::update`]). So check-and-set
//! and version numbers hold against any writer, in this process or another server on the same
//! database. Writers in one process also take the key's lock stripe (one of 256 async mutexes
//! chosen by the key's hash), which only spares them retries. Reads take no lock: they get the
//! metadata, then the version.

pub mod config;
pub mod data;
pub mod delete;
pub mod metadata;
pub mod model;
pub mod subkeys;
pub mod upgrade;

use model::{Config, Key, KeyMeta, CONFIG_KEY};
use parking_lot::RwLock;
use serde_json::{Map, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tresor_core::barrier::{DecodedCache, View};
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Path, PathBackend};
use tresor_core::logical::{Operation, Response};
use tresor_storage::WriteOp;

const LOCK_STRIPES: usize = 256;

/// The state of one KV v2 mount.
pub struct V2 {
    /// The mount config, loaded once and kept current by `config` writes.
    config: RwLock<Option<Config>>,
    /// Serializes `config` writes.
    config_write: tokio::sync::Mutex<()>,
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Set once we know no v1 data is left to migrate.
    pub(crate) upgraded: AtomicBool,
    pub(crate) upgrade_lock: tokio::sync::Mutex<()>,
    /// Decoded key metadata, checked against the stored bytes on every read.
    meta_cache: DecodedCache<KeyMeta>,
}

/// Key metadata records kept decoded per mount (a few hundred bytes each).
const META_CACHE_ENTRIES: usize = 10_000;

impl Default for V2 {
    fn default() -> Self {
        Self::new()
    }
}

impl V2 {
    pub fn new() -> Self {
        V2 {
            config: RwLock::new(None),
            config_write: tokio::sync::Mutex::new(()),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            upgraded: AtomicBool::new(false),
            upgrade_lock: tokio::sync::Mutex::new(()),
            meta_cache: DecodedCache::new(META_CACHE_ENTRIES),
        }
    }

    /// The mount config (cached after the first load).
    pub async fn config(&self, storage: &View) -> Result<Config> {
        if let Some(c) = self.config.read().clone() {
            return Ok(c);
        }
        let c: Config = storage.get_json(CONFIG_KEY).await?.unwrap_or_default();
        *self.config.write() = Some(c.clone());
        Ok(c)
    }

    async fn store_config(&self, storage: &View, c: Config) -> Result<()> {
        storage.put_json(CONFIG_KEY, &c).await?;
        *self.config.write() = Some(c);
        Ok(())
    }

    /// Changes a key's metadata atomically: `change` sees the stored metadata and returns the
    /// batch to write (with [`put_meta`], version data, deletions) and the result; the batch
    /// lands only if the metadata is still what `change` saw, otherwise `change` runs again.
    pub async fn modify_meta<T>(
        &self,
        storage: &View,
        key: &Key,
        mut change: impl FnMut(Option<KeyMeta>) -> Result<(Vec<WriteOp>, T)>,
    ) -> Result<T> {
        let _stripe = self.locks[key.stripe() % LOCK_STRIPES].lock().await;
        storage
            .update(&key.meta_key(), |raw| {
                change(raw.map(decode_meta).transpose()?)
            })
            .await
    }

    /// A key's metadata (decoded once per stored version of it: see [`DecodedCache`]).
    pub async fn load_meta(&self, storage: &View, key: &Key) -> Result<Option<Arc<KeyMeta>>> {
        storage
            .get_decoded(&key.meta_key(), &self.meta_cache, decode_meta)
            .await
    }
}

fn decode_meta(raw: &[u8]) -> Result<KeyMeta> {
    serde_json::from_slice(raw).map_err(|e| Error::internal(format!("corrupt key metadata: {e}")))
}

/// A `Put` of a key's metadata record, for a write batch.
pub fn put_meta(key: &Key, meta: &KeyMeta) -> Result<WriteOp> {
    Ok(WriteOp::Put(key.meta_key(), serde_json::to_vec(meta)?))
}

/// The backend with every KV v2 path, in matching order.
pub fn backend() -> PathBackend<V2> {
    let mut paths = Vec::new();
    paths.extend(config::paths());
    paths.extend(data::paths());
    paths.extend(metadata::paths());
    paths.extend(delete::paths());
    paths.extend(subkeys::paths());
    // Must stay last: answers everything the paths above do not match.
    paths.push(invalid_path());
    PathBackend::new(V2::new(), paths).help(
        "A versioned key/value store: each write to a key adds a version; versions can be read, \
         soft-deleted, undeleted and destroyed, and old ones are trimmed by max_versions.",
    )
}

/// Vault's answer for paths a versioned mount does not serve: 404 with a warning and no error.
fn invalid_path() -> Path<V2> {
    async fn handler(_b: Arc<V2>, c: Call) -> Result<Response> {
        let warning = if matches!(
            c.path.as_str(),
            "metadata" | "data" | "delete" | "undelete" | "destroy" | "subkeys"
        ) {
            "Non-listing operations on the root of a K/V v2 mount are not supported.".to_string()
        } else {
            let sub = match c.operation {
                Operation::Create | Operation::Update => "put",
                Operation::Patch => "patch",
                Operation::Read => "get",
                Operation::List => "list",
                Operation::Delete => "delete",
                Operation::Help => "help",
            };
            format!(
                "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. \
                 If using the Tresor CLI, use 'tresor kv {sub}' for this operation."
            )
        };
        Ok(Response {
            status: Some(404),
            warnings: vec![warning],
            ..Default::default()
        })
    }
    let mut p = Path::new(".*");
    for op in [
        Operation::Read,
        Operation::List,
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::Patch,
    ] {
        p = p.op(op, handler);
    }
    p.help("Paths other than config, data/, metadata/, delete/, undelete/, destroy/ and subkeys/ are not served by a versioned K/V mount.")
}

/// The key named by a read-style call; `None` for an empty key or one ending in `/`, which
/// cannot exist.
pub fn read_key(c: &Call) -> Option<&str> {
    let k = c.fields.str("path");
    (!k.is_empty() && !k.ends_with('/')).then_some(k)
}

/// The key named by a write-style call; 400 for an empty key or one ending in `/`.
pub fn write_key(c: &Call) -> Result<&str> {
    read_key(c).ok_or_else(|| Error::bad("cannot write to a path ending in '/'"))
}

/// Vault's warning for request parameters a path does not declare.
pub fn ignored_params(c: &Call, known: &[&str]) -> Option<String> {
    let mut unknown: Vec<&str> = c
        .data
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "path" && !known.contains(k))
        .collect();
    if unknown.is_empty() {
        return None;
    }
    unknown.sort_unstable();
    Some(format!(
        "Endpoint ignored these unrecognized parameters: [{}]",
        unknown.join(" ")
    ))
}

/// A 404 with no body at all (Vault's answer to a PATCH of something that does not exist).
pub fn not_found_empty() -> Response {
    Response {
        status: Some(404),
        ..Default::default()
    }
}

/// A 404 that still carries a body (Vault's answer for a deleted or destroyed version).
pub fn not_found_with(data: Map<String, Value>) -> Response {
    Response {
        data: Some(data),
        status: Some(404),
        ..Default::default()
    }
}

/// A `version` (or `depth`) query parameter: 0 when absent, 400 when negative.
pub fn non_negative(c: &Call, field: &str) -> Result<u64> {
    let v = c.fields.int(field);
    u64::try_from(v)
        .map_err(|_| Error::bad(format!("{field} must be a non-negative integer, got {v}")))
}

/// The `versions` of delete / undelete / destroy: a list of integers (or numeric strings), or a
/// comma-separated string. Negative numbers are refused.
pub fn parse_versions(c: &Call) -> Result<Vec<u64>> {
    let conv = |v: &Value| -> Result<u64> {
        let err = || {
            Error::bad(format!("error converting input for field \"versions\": cannot parse {v} as a version number"))
        };
        let n = match v {
            Value::Number(n) => n.as_i64().ok_or_else(err)?,
            Value::String(s) => s.trim().parse::<i64>().map_err(|_| err())?,
            _ => return Err(err()),
        };
        u64::try_from(n).map_err(|_| Error::bad(format!("error converting input for field \"versions\": invalid version number {n}: versions are non-negative")))
    };
    match c.data.get("versions") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items.iter().map(conv).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| conv(&Value::String(p.to_string())))
            .collect(),
        Some(v @ Value::Number(_)) => Ok(vec![conv(v)?]),
        Some(v) => Err(Error::bad(format!(
            "error converting input for field \"versions\": expected a list of integers, got {v}"
        ))),
    }
}

/// A response with the given warnings, or an empty one (HTTP 204).
pub fn with_warnings(warnings: Vec<String>) -> Response {
    Response {
        warnings,
        ..Default::default()
    }
}
