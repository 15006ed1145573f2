//! KV version 1: an unversioned key/value store at any path under the mount. A write stores the
//! request body as-is (create vs update decided by an existence check, so the `create` and
//! `update` capabilities work); a read returns it as `data`; LIST returns a folder's children
//! (sub-folders end in `/`, 404 when there are none); delete removes the entry.
//!
//! Storage: each entry is the JSON of the request body at `v1/<key>` in the mount's view. Vault's
//! `ttl` (or legacy `lease`) entry in the data is a hint only: a read reports it as
//! `lease_duration`, and otherwise the mount's default lease TTL.

use serde_json::Value;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{parse_duration, Call, Path, PathBackend};
use tresor_core::logical::{Data, Lease, Operation::*, Response};
use tresor_core::mount::MountEntry;

/// Where v1 entries live in the mount's view.
pub const PREFIX: &str = "v1/";

/// Vault's system default lease TTL (768h), reported when neither the entry nor the mount sets one.
pub const SYSTEM_DEFAULT_LEASE_TTL: u64 = 768 * 3600;

pub struct V1;

pub fn backend() -> PathBackend<V1> {
    PathBackend::new(
        V1,
        vec![Path::new(".*")
            .exists(exists)
            .op(Read, read)
            .op(Create, write)
            .op(Update, write)
            .op(Delete, delete)
            .op(List, list)
            .help("Pass-through secret storage: the request body is stored at the path and returned on read.")],
    )
    .help("An unversioned key/value store.")
}

/// The key a call names; `None` when it is empty or ends in `/` (a folder).
fn key(c: &Call) -> Option<&str> {
    (!c.path.is_empty() && !c.path.ends_with('/')).then_some(c.path.as_str())
}

async fn exists(_b: Arc<V1>, c: Call) -> Result<bool> {
    match key(&c) {
        Some(k) => Ok(c.storage.get(&format!("{PREFIX}{k}")).await?.is_some()),
        None => Ok(false),
    }
}

/// The lease duration a read reports: the entry's `ttl` (else `lease`) when it parses as a
/// duration, else the mount's default lease TTL, else the system default.
fn lease_ttl(data: &Data, mount: &MountEntry) -> u64 {
    let hint = data
        .get("ttl")
        .or_else(|| data.get("lease"))
        .filter(|v| !matches!(v, Value::Null));
    if let Some(d) = hint.and_then(parse_duration) {
        return d.as_secs();
    }
    match mount.config.default_lease_ttl {
        0 => SYSTEM_DEFAULT_LEASE_TTL,
        t => t,
    }
}

async fn read(_b: Arc<V1>, c: Call) -> Result<Response> {
    let Some(k) = key(&c) else {
        return Err(Error::NotFound);
    };
    let Some(raw) = c.storage.get(&format!("{PREFIX}{k}")).await? else {
        return Err(Error::NotFound);
    };
    let data: Data = serde_json::from_slice(&raw)?;
    let lease = Lease {
        lease_id: String::new(),
        duration: lease_ttl(&data, &c.mount),
        renewable: false,
    };
    let mut resp = Response {
        data: Some(data),
        lease: Some(Box::new(lease)),
        ..Default::default()
    };
    if !c.data.is_empty() {
        let mut unknown: Vec<&str> = c.data.keys().map(String::as_str).collect();
        unknown.sort_unstable();
        resp.warnings.push(format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            unknown.join(" ")
        ));
    }
    Ok(resp)
}

async fn write(_b: Arc<V1>, c: Call) -> Result<Response> {
    let Some(k) = key(&c) else {
        return Err(Error::bad("cannot write to a path ending in '/'"));
    };
    if c.data.is_empty() {
        return Err(Error::bad("missing data fields"));
    }
    c.storage
        .put(&format!("{PREFIX}{k}"), serde_json::to_vec(&c.data)?)
        .await?;
    Ok(Response::default())
}

async fn delete(_b: Arc<V1>, c: Call) -> Result<Response> {
    if let Some(k) = key(&c) {
        c.storage.delete(&format!("{PREFIX}{k}")).await?;
    }
    Ok(Response::default())
}

async fn list(_b: Arc<V1>, c: Call) -> Result<Response> {
    let mut prefix = c.path.clone();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let keys = c.storage.list(&format!("{PREFIX}{prefix}")).await?;
    Response::list_or_not_found(keys)
}
