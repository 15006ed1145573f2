//! `metadata/:path`: a key's settings and version history. Read answers the whole record; write
//! (POST) sets the named settings, creating the record if needed; patch changes named settings
//! of an existing record (custom_metadata merges, null removes); delete removes the key and
//! every version for good; LIST enumerates keys and folders (with `after` / `limit` paging).
//! `detailed-metadata/:path` lists with each key's metadata in `key_info` (OpenBao).
//!
//! Metadata writes honour OpenBao's metadata check-and-set: `metadata_cas` must equal the key's
//! `current_metadata_version` (0 to create) when given, and is required when the mount or the
//! key sets `metadata_cas_required`.

use super::model::{
    now_nanos, parse_custom_metadata, parse_duration_secs, patch_custom_metadata, Config, Key,
    KeyMeta, META_PREFIX,
};
use super::{ignored_params, not_found_empty, put_meta, read_key, with_warnings, write_key, V2};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_storage::WriteOp;

/// The parameters of `metadata/:path`, besides the path itself.
const FIELDS: &[&str] = &[
    "max_versions",
    "cas_required",
    "metadata_cas_required",
    "metadata_cas",
    "delete_version_after",
    "custom_metadata",
    "after",
    "limit",
];

pub fn paths() -> Vec<Path<V2>> {
    vec![
        Path::new("metadata/(?P<path>.*)")
            .field("path", Field::string("Location of the secret."))
            .field("max_versions", Field::int("The number of versions to keep; the mount's setting when 0."))
            .field("cas_required", Field::bool("If true, every data write to this key must set the cas option."))
            .field("metadata_cas_required", Field::bool("If true, every metadata write to this key must set metadata_cas."))
            .field("metadata_cas", Field::int("Write only if the key's current_metadata_version matches (0: only if there is no metadata)."))
            .field("delete_version_after", Field::raw("How long a version lives before it is deleted; 0 uses the mount's setting."))
            .field("custom_metadata", Field::raw("User-provided key/value strings describing the secret."))
            .field("after", Field::string("List keys after this one (LIST only)."))
            .field("limit", Field::int("List at most this many keys (LIST only)."))
            .exists(exists)
            .op(Read, read)
            .op(Create, write)
            .op(Update, write)
            .op(Patch, patch)
            .op(Delete, delete)
            .op(List, list)
            .help("Read and write a key's settings and version history; delete a key and all its versions; list keys."),
        Path::new("detailed-metadata/(?P<path>.*)")
            .field("path", Field::string("The folder to list."))
            .field("after", Field::string("List keys after this one."))
            .field("limit", Field::int("List at most this many keys."))
            .op(List, list_detailed)
            .help("List keys with their metadata."),
    ]
}

async fn exists(b: Arc<V2>, c: Call) -> Result<bool> {
    match read_key(&c) {
        Some(k) => Ok(b.load_meta(&c.storage, &Key::new(k)).await?.is_some()),
        None => Ok(false),
    }
}

async fn read(b: Arc<V2>, c: Call) -> Result<Response> {
    let Some(name) = read_key(&c) else {
        return Err(Error::NotFound);
    };
    match b.load_meta(&c.storage, &Key::new(name)).await? {
        Some(meta) => Ok(Response {
            data: Some(meta.to_json()),
            warnings: ignored_params(&c, FIELDS).into_iter().collect(),
            ..Default::default()
        }),
        None => Err(Error::NotFound),
    }
}

/// The settings a metadata write or patch names, validated.
struct Changes {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    metadata_cas_required: Option<bool>,
    delete_version_after: Option<i64>,
    custom_metadata: Option<Value>,
}

impl Changes {
    fn parse(c: &Call) -> Result<Self> {
        let f = &c.fields;
        let max_versions = if f.has("max_versions") {
            let m = f.int("max_versions");
            Some(u32::try_from(m).map_err(|_| {
                Error::bad(format!(
                    "max_versions must be between 0 and {}, got {m}",
                    u32::MAX
                ))
            })?)
        } else {
            None
        };
        let delete_version_after = if f.has("delete_version_after") {
            let secs = parse_duration_secs(f.get("delete_version_after")).map_err(|e| {
                Error::bad(format!(
                    "error converting input for field \"delete_version_after\": {e}"
                ))
            })?;
            if secs < 0 {
                return Err(Error::bad(format!("error converting input for field \"delete_version_after\": cannot provide negative value '{secs}'")));
            }
            Some(secs)
        } else {
            None
        };
        Ok(Changes {
            max_versions,
            cas_required: f.has("cas_required").then(|| f.bool("cas_required")),
            metadata_cas_required: f
                .has("metadata_cas_required")
                .then(|| f.bool("metadata_cas_required")),
            delete_version_after,
            custom_metadata: f
                .has("custom_metadata")
                .then(|| f.get("custom_metadata").clone()),
        })
    }

    fn is_empty(&self) -> bool {
        self.max_versions.is_none()
            && self.cas_required.is_none()
            && self.metadata_cas_required.is_none()
            && self.delete_version_after.is_none()
            && self.custom_metadata.is_none()
    }

    /// Vault warns (and keeps the mount's rule) when a key tries to relax a mount-wide requirement.
    fn warnings(&self, config: &Config) -> Vec<String> {
        let mut w = Vec::new();
        if self.cas_required == Some(false) && config.cas_required {
            w.push("\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.".to_string());
        }
        if self.metadata_cas_required == Some(false) && config.metadata_cas_required {
            w.push("\"metadata_cas_required\" set to false, but is mandated by backend config. This value will be ignored.".to_string());
        }
        w
    }

    /// Applies the changes and stamps the record as a new metadata version.
    fn apply(&self, meta: &mut KeyMeta, custom: Option<BTreeMap<String, String>>, now: i64) {
        if let Some(m) = self.max_versions {
            meta.max_versions = m;
        }
        if let Some(v) = self.cas_required {
            meta.cas_required = v;
        }
        if let Some(v) = self.metadata_cas_required {
            meta.metadata_cas_required = v;
        }
        if let Some(d) = self.delete_version_after {
            meta.delete_version_after = d;
        }
        if let Some(cm) = custom {
            meta.custom_metadata = (!cm.is_empty()).then_some(cm);
        }
        meta.updated_time = now;
        meta.current_metadata_version += 1;
    }
}

/// OpenBao's metadata check-and-set.
fn check_metadata_cas(c: &Call, config: &Config, existing: Option<&KeyMeta>) -> Result<()> {
    let cas = c
        .fields
        .has("metadata_cas")
        .then(|| c.fields.int("metadata_cas"));
    let required =
        config.metadata_cas_required || existing.is_some_and(|m| m.metadata_cas_required);
    match (cas, existing) {
        (None, _) if required => Err(Error::bad(
            "metadata check-and-set parameter required for this call",
        )),
        (None, _) => Ok(()),
        (Some(0), None) => Ok(()),
        (Some(_), None) => Err(Error::bad(
            "metadata_cas must be 0 when creating new metadata",
        )),
        (Some(cas), Some(m)) if u64::try_from(cas).ok() != Some(m.current_metadata_version) => Err(
            Error::bad("metadata check-and-set parameter does not match the current version"),
        ),
        (Some(_), Some(_)) => Ok(()),
    }
}

async fn write(b: Arc<V2>, c: Call) -> Result<Response> {
    let name = write_key(&c)?;
    let changes = Changes::parse(&c)?;
    if changes.is_empty() {
        return Ok(Response::default());
    }
    let custom = match &changes.custom_metadata {
        Some(v) => Some(parse_custom_metadata(v).map_err(Error::BadRequest)?),
        None => None,
    };
    let config = b.config(&c.storage).await?;
    let warnings = changes.warnings(&config);
    let key = Key::new(name);
    b.modify_meta(&c.storage, &key, |existing| {
        check_metadata_cas(&c, &config, existing.as_ref())?;
        let now = now_nanos();
        let mut meta = existing.unwrap_or_else(|| KeyMeta::new(now));
        changes.apply(&mut meta, custom.clone(), now);
        Ok((vec![put_meta(&key, &meta)?], ()))
    })
    .await?;
    Ok(with_warnings(warnings))
}

async fn patch(b: Arc<V2>, c: Call) -> Result<Response> {
    let name = write_key(&c)?;
    let changes = Changes::parse(&c)?;
    let config = b.config(&c.storage).await?;
    let key = Key::new(name);
    b.modify_meta(&c.storage, &key, |meta| {
        let Some(mut meta) = meta else {
            return Ok((vec![], not_found_empty()));
        };
        if changes.is_empty() {
            return Ok((vec![], Response::default()));
        }
        let custom = match &changes.custom_metadata {
            Some(v) => Some(
                patch_custom_metadata(meta.custom_metadata.clone(), v)
                    .map_err(Error::BadRequest)?,
            ),
            None => None,
        };
        check_metadata_cas(&c, &config, Some(&meta))?;
        let warnings = changes.warnings(&config);
        changes.apply(&mut meta, custom, now_nanos());
        Ok((vec![put_meta(&key, &meta)?], with_warnings(warnings)))
    })
    .await
}

async fn delete(b: Arc<V2>, c: Call) -> Result<Response> {
    let Some(name) = read_key(&c) else {
        return Ok(Response::default());
    };
    let key = Key::new(name);
    b.modify_meta(&c.storage, &key, |meta| {
        let Some(meta) = meta else {
            return Ok((vec![], ()));
        };
        let mut ops: Vec<WriteOp> = meta
            .versions
            .keys()
            .map(|n| WriteOp::Delete(key.version_key(*n)))
            .collect();
        ops.push(WriteOp::Delete(key.meta_key()));
        Ok((ops, ()))
    })
    .await?;
    Ok(Response::default())
}

/// The children of the folder named by a LIST, after `after`, at most `limit`.
async fn list_keys(c: &Call) -> Result<Vec<String>> {
    let mut prefix = c.fields.str("path").to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let after = Some(c.fields.str("after")).filter(|a| !a.is_empty());
    let limit = match c.fields.int("limit") {
        n if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    // The storage reads only this page, whatever the folder holds.
    c.storage
        .list_page(&format!("{META_PREFIX}{prefix}"), after, limit)
        .await
}

async fn list(_b: Arc<V2>, c: Call) -> Result<Response> {
    let keys = list_keys(&c).await?;
    Response::list_or_not_found(keys)
}

async fn list_detailed(b: Arc<V2>, c: Call) -> Result<Response> {
    let keys = list_keys(&c).await?;
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    let mut prefix = c.fields.str("path").to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let mut info = Map::new();
    for k in &keys {
        let entry = if k.ends_with('/') {
            Map::new()
        } else {
            b.load_meta(&c.storage, &Key::new(&format!("{prefix}{k}")))
                .await?
                .map(|m| m.to_json())
                .unwrap_or_default()
        };
        info.insert(k.clone(), Value::Object(entry));
    }
    let mut data = Map::new();
    data.insert("key_info".into(), Value::Object(info));
    data.insert("keys".into(), Value::from(keys));
    Ok(Response {
        data: Some(data),
        ..Default::default()
    })
}
