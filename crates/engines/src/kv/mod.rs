//! The `kv` secrets engine, versions 1 and 2, with Vault's paths, answer shapes and status codes
//! (hvac's `secrets.kv.v1` / `secrets.kv.v2` work unchanged).
//!
//! [`factory`] builds one [`Kv`] backend per mount. It holds both versions and picks one per
//! request from the mount's `options.version` ("1" when missing), so a mount tuned from version
//! 1 to 2 switches at once; the first v2 request then migrates the v1 data (see
//! [`v2::upgrade`]).
//!
//! * [`v1`]: unversioned storage at any path.
//! * [`v2`]: versioned storage: `config`, `data/`, `metadata/`, `detailed-metadata/`,
//!   `delete/`, `undelete/`, `destroy/`, `subkeys/`.
//!
//! Storage layout in the mount's view (prefixes never collide, whatever the key names):
//!
//! | key                        | value                                            |
//! |----------------------------|--------------------------------------------------|
//! | `v1/<key>`                 | a v1 entry: the JSON request body                |
//! | `v2/config`                | the v2 mount config                              |
//! | `v2/meta/<key>`            | a v2 key's metadata and version list             |
//! | `v2/ver/<sha256(key)>/<n>` | the `data` of version `n` of a v2 key            |
//! | `v2/upgrade`               | when a v1 → v2 migration finished                |

pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Backend, Call, PathBackend};
use tresor_core::logical::Response;
use tresor_core::mount::MountEntry;

/// The KV engine version a mount entry asks for: `options.version`, "1" when missing.
pub fn version_of(entry: &MountEntry) -> Result<u8> {
    match entry.options.get("version") {
        None | Some(Value::Null) => Ok(1),
        Some(Value::String(s)) if s.is_empty() || s == "1" => Ok(1),
        Some(Value::String(s)) if s == "2" => Ok(2),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(1),
        Some(Value::Number(n)) if n.as_u64() == Some(2) => Ok(2),
        Some(v) => Err(Error::bad(format!(
            "unsupported kv version {v}: use 1 or 2"
        ))),
    }
}

/// Builds the backend for a `kv` mount.
pub fn factory(entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    let version = version_of(entry)?;
    Ok(Arc::new(Kv {
        v1: v1::backend(),
        v2: v2::backend(),
        versioned: AtomicBool::new(version == 2),
    }))
}

/// One `kv` mount: both versions' paths, chosen per request by the mount's current version.
pub struct Kv {
    v1: PathBackend<v1::V1>,
    v2: PathBackend<v2::V2>,
    /// Whether the mount was last seen as version 2 (for [`Backend::describe`] and
    /// [`Backend::initialize`], which get no mount entry).
    versioned: AtomicBool,
}

impl Kv {
    /// The version to serve `call` with; for version 2, after any pending v1 migration.
    async fn select(&self, call: &Call) -> Result<u8> {
        let version = version_of(&call.mount)?;
        if version == 2 {
            // Load first: a store on every read would bounce the cache line between cores.
            if !self.versioned.load(Ordering::Relaxed) {
                self.versioned.store(true, Ordering::Relaxed);
            }
            v2::upgrade::ensure(self.v2.inner(), &call.storage).await?;
        }
        Ok(version)
    }
}

#[async_trait]
impl Backend for Kv {
    async fn handle(&self, call: Call) -> Result<Response> {
        match self.select(&call).await? {
            2 => self.v2.handle(call).await,
            _ => self.v1.handle(call).await,
        }
    }

    async fn exists(&self, call: &Call) -> Result<Option<bool>> {
        match self.select(call).await? {
            2 => self.v2.exists(call).await,
            _ => self.v1.exists(call).await,
        }
    }

    fn describe(&self) -> Value {
        let versioned = self.versioned.load(Ordering::Relaxed);
        let mut d = if versioned {
            self.v2.describe()
        } else {
            self.v1.describe()
        };
        if let Some(o) = d.as_object_mut() {
            o.insert("version".into(), json!(if versioned { 2 } else { 1 }));
        }
        d
    }

    async fn initialize(&self, storage: &View) -> Result<()> {
        if self.versioned.load(Ordering::Relaxed) {
            v2::upgrade::ensure(self.v2.inner(), storage).await?;
        }
        Ok(())
    }
}
