//! The `transit` secrets engine: encryption as a service, with Vault's paths, fields, answer
//! shapes, error messages and status codes (hvac's `secrets.transit` works unchanged).
//!
//! Applications never see key material: they name a key and send data. Keys are versioned;
//! ciphertexts, signatures and HMACs name the version that made them (`vault:v3:...`), so a
//! key can rotate (by hand or on a schedule) while old data keeps decrypting until
//! `min_decryption_version` moves past it.
//!
//! * [`policy`]: the key model (a policy and its versions) and every cryptographic operation.
//! * `keys`: `keys/` (LIST), `keys/:name` (create, read, delete), `keys/:name/config`,
//!   `keys/:name/rotate`, `keys/:name/trim`, and `config/keys` (upsert on encrypt).
//! * `encrypt`, `decrypt`, `rewrap`: `encrypt/:name`, `decrypt/:name`, `rewrap/:name`, each
//!   with `batch_input`.
//! * `datakey`: `datakey/plaintext|wrapped/:name`.
//! * `sign_verify`: `sign/:name(/:hash)`, `verify/:name(/:hash)` (signatures; HMACs are handed to
//!   `hmac`).
//! * `hmac`: `hmac/:name(/:hash)` and HMAC verification.
//! * `export`: `export/:type/:name(/:version)`.
//! * `backup`: `backup/:name`, `restore(/:name)`.
//! * `import`: `wrapping_key`, `keys/:name/import`, `keys/:name/import_version` (BYOK: an
//!   ephemeral AES-256 key wrapped with RSA-OAEP under the mount's RSA-4096 wrapping key, the
//!   key material wrapped with AES-KWP (RFC 5649) under the ephemeral key, as Vault does).
//! * `random(/:source)(/:bytes)`, `hash(/:algorithm)`: `tresor_core::tools` (shared with
//!   `sys/tools/*`).
//! * `cache_config`: `cache-config`.
//!
//! Performance: parsed keys ([`policy::Keyring`]) are cached in memory per mount, so encrypt,
//! decrypt and sign do no storage read and no key parsing; every change to a key (create,
//! config, rotate, trim, delete, restore, import) writes storage and replaces the cached entry
//! under one writer lock. Cache misses also load under that lock, so a stale load can never
//! overwrite a fresher entry.
//!
//! Automatic rotation: keys with `auto_rotate_period` rotate when their latest version is that
//! old. The core calls [`Backend::periodic`] about once a second; the engine keeps the next due
//! time in memory (computed in [`Backend::initialize`] from storage, so schedules survive
//! restarts and overdue keys rotate right after unseal), so a tick with nothing due is a single
//! atomic load.
//!
//! Storage layout in the mount's view:
//!
//! | key                    | value                                             |
//! |------------------------|---------------------------------------------------|
//! | `policy/<name>`        | a key: [`policy::Policy`] as JSON, all versions   |
//! | `import/wrapping-key`  | the BYOK wrapping key (RSA-4096, PKCS#8)          |
//! | `config/cache`         | `cache-config`                                    |
//! | `config/keys`          | `config/keys` (`disable_upsert`)                  |
//!
//! Why aws-lc-rs: see [`policy`]; it is the workspace's single, FIPS-validated crypto library.

mod backup;
mod cache_config;
mod datakey;
mod decrypt;
mod encoding;
mod encrypt;
mod export;
mod hmac;
mod import;
mod keys;
pub mod policy;
mod rewrap;
mod sign_verify;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use parking_lot::RwLock;
use policy::{Keyring, Now, Policy};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Backend, Call, PathBackend};
use tresor_core::logical::Response;
use tresor_core::mount::MountEntry;

/// A key name, as Vault's `GenericNameRegex`.
pub(crate) const NAME: &str = r"(?P<name>[A-Za-z0-9_](?:[A-Za-z0-9_\-.@]*[A-Za-z0-9_])?)";
/// Where keys live in the mount's view.
pub(crate) const POLICY_PREFIX: &str = "policy/";

/// Builds the backend for a `transit` mount.
pub fn factory(
    entry: &tresor_core::mount::MountEntry,
) -> tresor_core::Result<std::sync::Arc<dyn tresor_core::framework::Backend>> {
    let _: &MountEntry = entry;
    Ok(Arc::new(backend()))
}

/// A transit backend: the paths over one [`Transit`] state.
pub fn backend() -> TransitBackend {
    let mut paths = Vec::new();
    paths.extend(keys::paths());
    paths.extend(import::paths());
    paths.extend(encrypt::paths());
    paths.extend(decrypt::paths());
    paths.extend(rewrap::paths());
    paths.extend(datakey::paths());
    paths.extend(sign_verify::paths());
    paths.extend(hmac::paths());
    paths.extend(export::paths());
    paths.extend(backup::paths());
    paths.extend(tresor_core::tools::random_paths(""));
    paths.extend(tresor_core::tools::hash_paths(""));
    paths.extend(cache_config::paths());
    TransitBackend {
        paths: PathBackend::new(Transit::default(), paths).help(
            "The transit backend encrypts, decrypts, signs, verifies and HMACs data with named \
             keys it never reveals (unless a key is made exportable).",
        ),
    }
}

/// The transit backend as the core sees it: its paths, plus initialization and scheduled
/// rotation.
pub struct TransitBackend {
    paths: PathBackend<Transit>,
}

impl TransitBackend {
    /// The engine state (tests use it to move the clock).
    pub fn state(&self) -> &Arc<Transit> {
        self.paths.inner()
    }
}

#[async_trait]
impl Backend for TransitBackend {
    async fn handle(&self, call: Call) -> Result<Response> {
        self.paths.handle(call).await
    }
    async fn exists(&self, call: &Call) -> Result<Option<bool>> {
        self.paths.exists(call).await
    }
    fn describe(&self) -> Value {
        self.paths.describe()
    }
    async fn initialize(&self, storage: &View) -> Result<()> {
        self.state().initialize(storage).await
    }
    async fn periodic(&self, storage: &View) -> Result<()> {
        self.state().periodic(storage).await
    }
}

/// One mount's state: the key cache, the writer lock, and the rotation schedule.
pub struct Transit {
    cache: RwLock<HashMap<String, Arc<Keyring>>>,
    /// `cache-config` size: 0 = unbounded.
    cache_size: AtomicUsize,
    /// Serializes every change to keys (and cache fills).
    write: tokio::sync::Mutex<()>,
    /// Unix time when the next key is due for automatic rotation (`i64::MAX`: none).
    next_rotation: AtomicI64,
    /// Seconds added to the wall clock (tests of scheduled rotation).
    clock_skew: AtomicI64,
    /// The BYOK wrapping key, once loaded.
    wrapping: RwLock<Option<Arc<import::WrappingKey>>>,
}

impl Default for Transit {
    fn default() -> Self {
        Transit {
            cache: RwLock::new(HashMap::new()),
            cache_size: AtomicUsize::new(0),
            write: tokio::sync::Mutex::new(()),
            next_rotation: AtomicI64::new(i64::MAX),
            clock_skew: AtomicI64::new(0),
            wrapping: RwLock::new(None),
        }
    }
}

impl Transit {
    /// The current time as the engine sees it.
    pub fn now(&self) -> Now {
        Now::at(self.clock_skew.load(Ordering::Relaxed))
    }

    /// Moves the engine's clock forward (tests of scheduled rotation).
    pub fn advance_clock(&self, secs: i64) {
        self.clock_skew.fetch_add(secs, Ordering::Relaxed);
    }

    /// When the next key is due for rotation (unix seconds), if any.
    pub fn next_rotation(&self) -> Option<i64> {
        let t = self.next_rotation.load(Ordering::Relaxed);
        (t != i64::MAX).then_some(t)
    }

    async fn load_policy(storage: &View, name: &str) -> Result<Option<Policy>> {
        storage.get_json(&format!("{POLICY_PREFIX}{name}")).await
    }

    /// The names of all keys.
    async fn key_names(storage: &View) -> Result<Vec<String>> {
        let mut names = storage.list(POLICY_PREFIX).await?;
        names.retain(|n| !n.ends_with('/'));
        names.sort();
        Ok(names)
    }

    /// A key, from the cache or (under the writer lock) from storage.
    pub(crate) async fn get(&self, storage: &View, name: &str) -> Result<Option<Arc<Keyring>>> {
        if let Some(k) = self.cache.read().get(name) {
            return Ok(Some(k.clone()));
        }
        let _w = self.write.lock().await;
        self.get_locked(storage, name).await
    }

    /// [`Self::get`] for a caller that holds the writer lock.
    pub(crate) async fn get_locked(
        &self,
        storage: &View,
        name: &str,
    ) -> Result<Option<Arc<Keyring>>> {
        if let Some(k) = self.cache.read().get(name) {
            return Ok(Some(k.clone()));
        }
        let Some(policy) = Self::load_policy(storage, name).await? else {
            return Ok(None);
        };
        let k = Arc::new(Keyring::new(policy)?);
        self.cache_insert(name, k.clone());
        Ok(Some(k))
    }

    /// Persists a key and makes it the cached one; the caller holds the writer lock.
    pub(crate) async fn store(&self, storage: &View, policy: Policy) -> Result<Arc<Keyring>> {
        storage
            .put_json(&format!("{POLICY_PREFIX}{}", policy.name), &policy)
            .await?;
        if let Some(due) = policy.next_rotation() {
            self.next_rotation.fetch_min(due, Ordering::Relaxed);
        }
        let name = policy.name.clone();
        let k = Arc::new(Keyring::new(policy)?);
        self.cache_insert(&name, k.clone());
        Ok(k)
    }

    /// Deletes a key; the caller holds the writer lock.
    pub(crate) async fn remove(&self, storage: &View, name: &str) -> Result<()> {
        storage.delete(&format!("{POLICY_PREFIX}{name}")).await?;
        self.cache.write().remove(name);
        Ok(())
    }

    fn cache_insert(&self, name: &str, k: Arc<Keyring>) {
        // A cache size of 0 means no limit.
        let max = match self.cache_size.load(Ordering::Relaxed) {
            0 => usize::MAX,
            n => n,
        };
        tresor_core::util::insert_bounded(&mut self.cache.write(), name.to_string(), k, max);
    }

    async fn initialize(&self, storage: &View) -> Result<()> {
        if let Some(cfg) = storage
            .get_json::<cache_config::CacheConfig>(cache_config::STORAGE_KEY)
            .await?
        {
            self.cache_size.store(cfg.size, Ordering::Relaxed);
        }
        let mut next = i64::MAX;
        for name in Self::key_names(storage).await? {
            if let Some(due) = Self::load_policy(storage, &name)
                .await?
                .and_then(|p| p.next_rotation())
            {
                next = next.min(due);
            }
        }
        self.next_rotation.store(next, Ordering::Relaxed);
        Ok(())
    }

    /// Rotates every key whose period has elapsed; nearly free when none is due.
    async fn periodic(&self, storage: &View) -> Result<()> {
        if self.next_rotation.load(Ordering::Relaxed) > self.now().unix {
            return Ok(());
        }
        let _w = self.write.lock().await;
        let now = self.now();
        let mut next = i64::MAX;
        for name in Self::key_names(storage).await? {
            let Some(mut p) = Self::load_policy(storage, &name).await? else {
                continue;
            };
            let Some(mut due) = p.next_rotation() else {
                continue;
            };
            if due <= now.unix {
                let rotated = if p.imported && !p.allow_imported_key_rotation {
                    Err(Error::bad("imported key does not allow rotation"))
                } else {
                    match p.rotate(&now).await {
                        Ok(()) => self.store(storage, p.clone()).await.map(|_| ()),
                        Err(e) => Err(e.into()),
                    }
                };
                match rotated {
                    Ok(()) => {
                        tracing::info!(key = %name, version = p.latest_version, "transit key rotated on schedule");
                        due = p.next_rotation().unwrap_or(i64::MAX);
                    }
                    Err(e) => {
                        tracing::warn!(key = %name, error = %e, "scheduled rotation of a transit key failed; retrying in a minute");
                        due = now.unix + 60;
                    }
                }
            }
            next = next.min(due);
        }
        self.next_rotation.store(next, Ordering::Relaxed);
        Ok(())
    }
}

/// The items of `batch_input`, or `None` when the request has none.
pub(crate) fn batch_input(c: &Call) -> Result<Option<Vec<Map<String, Value>>>> {
    let raw = match c.data.get("batch_input") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let kind = |v: &Value| match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Object(_) => "map",
        _ => "slice",
    };
    let Value::Array(items) = raw else {
        return Err(Error::bad(format!(
            "failed to parse batch input: source data must be an array or slice, got {}",
            kind(raw)
        )));
    };
    if items.is_empty() {
        return Err(Error::bad("missing batch input to process"));
    }
    items
        .iter()
        .enumerate()
        .map(|(n, i)| match i {
            Value::Object(m) => Ok(m.clone()),
            other => Err(Error::bad(format!(
                "failed to parse batch input: [{n}] expected a map, got '{}'",
                kind(other)
            ))),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Batch items whose integer fields are not JSON numbers fail the whole request, as Vault's
/// strict decoding of `batch_input` does.
pub(crate) fn check_int_fields(items: &[Map<String, Value>], fields: &[&str]) -> Result<()> {
    for (n, item) in items.iter().enumerate() {
        for f in fields {
            if let Some(v) = item.get(*f) {
                if !v.is_null() && !v.is_i64() && !v.is_u64() {
                    let got = match v {
                        Value::String(_) => "string",
                        Value::Bool(_) => "bool",
                        Value::Number(_) => "float64",
                        Value::Array(_) => "slice",
                        _ => "map",
                    };
                    return Err(Error::bad(format!(
                        "failed to parse batch input: '[{n}].{f}' expected type 'int', got unconvertible type '{got}'"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A string field of a batch item (numbers and booleans as text, as Go's weak decoding).
pub(crate) fn item_str(item: &Map<String, Value>, key: &str) -> String {
    match item.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// An integer field of a batch item (0 when absent).
pub(crate) fn item_int(item: &Map<String, Value>, key: &str) -> std::result::Result<i64, String> {
    match item.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| format!("invalid {key}")),
        Some(Value::String(s)) if s.is_empty() => Ok(0),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("cannot parse '{key}' as int: {s}")),
        Some(Value::Bool(b)) => Ok(*b as i64),
        Some(_) => Err(format!("invalid {key}")),
    }
}

/// The fields of a non-batch request as a one-item batch.
pub(crate) fn single_item(c: &Call, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .filter(|f| c.fields.has(f))
        .map(|f| (f.to_string(), c.fields.get(f).clone()))
        .collect()
}

/// Vault's `batchRequestResponse`: a batch with failed items answers 400 (500 when an item
/// failed inside the engine); a partial success may ask for another code with
/// `partial_failure_response_code`.
pub(crate) fn batch_status(
    c: &Call,
    mut resp: Response,
    successes: bool,
    user_errors: bool,
    internal_errors: bool,
) -> Response {
    if !user_errors && !internal_errors {
        return resp;
    }
    let mut code = if user_errors { 400 } else { 500 };
    if successes && c.fields.has("partial_failure_response_code") {
        let wanted = c.fields.int("partial_failure_response_code");
        if (1..=599).contains(&wanted) {
            code = wanted as u16;
        } else {
            resp.warnings.push(format!(
                "invalid HTTP response code override from partial_failure_response_code, reverting to {code}"
            ));
        }
    }
    resp.status = Some(code);
    resp
}

/// Decodes an optional base64 field of an item: empty when absent.
pub(crate) fn item_b64(
    item: &Map<String, Value>,
    key: &str,
) -> std::result::Result<Vec<u8>, String> {
    let s = item_str(item, key);
    if s.is_empty() {
        Ok(vec![])
    } else {
        encoding::b64_decode(&s)
    }
}
