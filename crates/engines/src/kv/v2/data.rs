//! `data/:path`: reading a version (the latest, or `?version=N`), writing a new version (with
//! check-and-set), patching the latest version (JSON merge patch, RFC 7396), and soft-deleting
//! the latest version (DELETE).
//!
//! A read is one metadata get plus one version get; the version's bytes are parsed once, straight
//! into the response. A write is one atomic batch: the new version, the updated metadata, and
//! the deletion of versions that fell out of the `max_versions` window.

use super::model::{now_nanos, Config, Key, KeyMeta};
use super::{
    ignored_params, non_negative, not_found_empty, not_found_with, put_meta, read_key, write_key,
    V2,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_storage::WriteOp;

const FIELDS: &[&str] = &["version", "options", "data"];

pub fn paths() -> Vec<Path<V2>> {
    vec![Path::new("data/(?P<path>.*)")
        .field("path", Field::string("Location of the secret."))
        .field("version", Field::int("On a read, the version to return; the latest when 0 or absent."))
        .field("options", Field::map("Write options: set \"cas\" to write only if the current version matches (0: only if the key does not exist)."))
        .field("data", Field::raw("The contents of the secret: an object, stored and returned on read."))
        .exists(exists)
        .op(Read, read)
        .op(Create, write)
        .op(Update, write)
        .op(Patch, patch)
        .op(Delete, delete_latest)
        .help("Write, patch, read and soft-delete versions of a secret.")]
}

async fn exists(b: Arc<V2>, c: Call) -> Result<bool> {
    match read_key(&c) {
        Some(k) => Ok(b.load_meta(&c.storage, &Key::new(k)).await?.is_some()),
        None => Ok(false),
    }
}

async fn read(b: Arc<V2>, c: Call) -> Result<Response> {
    let warning = ignored_params(&c, FIELDS);
    let version = non_negative(&c, "version")?;
    let Some(name) = read_key(&c) else {
        return Err(Error::NotFound);
    };
    let key = Key::new(name);
    let Some(meta) = b.load_meta(&c.storage, &key).await? else {
        return Err(Error::NotFound);
    };
    let n = if version > 0 {
        version
    } else {
        meta.current_version
    };
    let Some(vm) = meta.versions.get(&n) else {
        return Err(Error::NotFound);
    };
    let mut body = Map::with_capacity(2);
    if vm.is_gone(now_nanos()) {
        body.insert("data".into(), Value::Null);
        body.insert(
            "metadata".into(),
            Value::Object(vm.to_json(n, &meta.custom_metadata)),
        );
        return Ok(not_found_with(body));
    }
    // A concurrent destroy or trim can remove the version between the two gets.
    let Some(raw) = c.storage.get(&key.version_key(n)).await? else {
        return Err(Error::NotFound);
    };
    let data: Value = serde_json::from_slice(&raw)?;
    body.insert("data".into(), data);
    body.insert(
        "metadata".into(),
        Value::Object(vm.to_json(n, &meta.custom_metadata)),
    );
    Ok(Response {
        data: Some(body),
        warnings: warning.into_iter().collect(),
        ..Default::default()
    })
}

/// The `data` field of a write or patch: an object or null.
fn data_field(c: &Call) -> Result<&Value> {
    match c.data.get("data") {
        None => Err(Error::bad("no data provided")),
        Some(v @ (Value::Object(_) | Value::Null)) => Ok(v),
        Some(_) => Err(Error::bad(
            "error converting input for field \"data\": expected object",
        )),
    }
}

/// The `cas` write option, weakly typed as Vault does (`"3"` is 3); `None` when absent.
fn cas_option(c: &Call) -> Result<Option<i64>> {
    let err = || Error::bad("error parsing check-and-set parameter");
    let Some(v) = c.fields.get("options").get("cas") else {
        return Ok(None);
    };
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i,
            None => n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .ok_or_else(err)? as i64,
        },
        Value::String(s) => s.trim().parse().map_err(|_| err())?,
        Value::Bool(b) => i64::from(*b),
        _ => return Err(err()),
    }))
}

/// Check-and-set: a given `cas` must equal the current version (0 for a new key); without one,
/// the write is refused when the mount or the key requires it.
fn check_cas(cas: Option<i64>, config: &Config, meta: &KeyMeta) -> Result<()> {
    match cas {
        Some(cas) if u64::try_from(cas).ok() != Some(meta.current_version) => Err(Error::bad(
            "check-and-set parameter did not match the current version",
        )),
        Some(_) => Ok(()),
        None if config.cas_required || meta.cas_required => {
            Err(Error::bad("check-and-set parameter required for this call"))
        }
        None => Ok(()),
    }
}

/// The batch that adds `bytes` as the key's next version (with the metadata, and the deletion
/// of versions that fell out of the window), and the write's answer.
fn append_version(
    key: &Key,
    mut meta: KeyMeta,
    config: &Config,
    bytes: Vec<u8>,
) -> Result<(Vec<WriteOp>, Response)> {
    let now = now_nanos();
    let deletion = config.deletion_time(now, meta.delete_version_after);
    let (n, trimmed) = meta.add_version(now, deletion, config.max_versions);
    let mut ops = Vec::with_capacity(2 + trimmed.len());
    ops.push(WriteOp::Put(key.version_key(n), bytes));
    ops.extend(trimmed.iter().map(|v| WriteOp::Delete(key.version_key(*v))));
    ops.push(put_meta(key, &meta)?);
    let vm = &meta.versions[&n];
    let resp = Response {
        data: Some(vm.to_json(n, &meta.custom_metadata)),
        ..Default::default()
    };
    Ok((ops, resp))
}

async fn write(b: Arc<V2>, c: Call) -> Result<Response> {
    let name = write_key(&c)?;
    let bytes = serde_json::to_vec(data_field(&c)?)?;
    let cas = cas_option(&c)?;
    let key = Key::new(name);
    let config = b.config(&c.storage).await?;
    let mut resp = b
        .modify_meta(&c.storage, &key, |meta| {
            let meta = meta.unwrap_or_default();
            check_cas(cas, &config, &meta)?;
            append_version(&key, meta, &config, bytes.clone())
        })
        .await?;
    resp.warnings.extend(ignored_params(&c, FIELDS));
    Ok(resp)
}

/// RFC 7396: objects merge recursively, null removes a member, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("just made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// What a patch found: the merged document to write on top of version `base`, or an answer.
enum Patched {
    Merged { base: u64, bytes: Vec<u8> },
    Answer(Box<Response>),
}

async fn patch(b: Arc<V2>, c: Call) -> Result<Response> {
    let name = write_key(&c)?;
    let patch = data_field(&c)?;
    let cas = cas_option(&c)?;
    let key = Key::new(name);
    let config = b.config(&c.storage).await?;
    loop {
        let Some(meta) = b.load_meta(&c.storage, &key).await? else {
            return Ok(not_found_empty());
        };
        check_cas(cas, &config, &meta)?;
        let (base, bytes) = match merge_latest(&c, &key, &meta, patch).await? {
            Patched::Merged { base, bytes } => (base, bytes),
            Patched::Answer(resp) => return Ok(*resp),
        };
        // The merge is on version `base`: it lands only if that is still the latest (a
        // concurrent write makes the patch start over on the new latest version).
        let written = b
            .modify_meta(&c.storage, &key, |meta| match meta {
                Some(meta) if meta.current_version == base => {
                    check_cas(cas, &config, &meta)?;
                    let (ops, resp) = append_version(&key, meta, &config, bytes.clone())?;
                    Ok((ops, Some(resp)))
                }
                _ => Ok((vec![], None)),
            })
            .await?;
        if let Some(mut resp) = written {
            resp.warnings.extend(ignored_params(&c, FIELDS));
            return Ok(resp);
        }
    }
}

/// Merges the patch into the latest version of `meta`.
async fn merge_latest(c: &Call, key: &Key, meta: &KeyMeta, patch: &Value) -> Result<Patched> {
    let current = meta.current_version;
    let Some(vm) = meta.versions.get(&current) else {
        return Ok(Patched::Answer(Box::new(not_found_empty())));
    };
    if vm.is_gone(now_nanos()) {
        return Ok(Patched::Answer(Box::new(not_found_with(
            vm.to_json(current, &meta.custom_metadata),
        ))));
    }
    let raw = c
        .storage
        .get(&key.version_key(current))
        .await?
        .ok_or_else(|| Error::internal("could not find version data"))?;
    // A version stored as null patches like an empty object.
    let mut doc: Value = serde_json::from_slice(&raw)?;
    merge_patch(&mut doc, patch);
    Ok(Patched::Merged {
        base: current,
        bytes: serde_json::to_vec(&doc)?,
    })
}

async fn delete_latest(b: Arc<V2>, c: Call) -> Result<Response> {
    let Some(name) = read_key(&c) else {
        return Ok(Response::default());
    };
    let key = Key::new(name);
    b.modify_meta(&c.storage, &key, |meta| {
        let Some(mut meta) = meta else {
            return Ok((vec![], ()));
        };
        let now = now_nanos();
        let current = meta.current_version;
        match meta.versions.get_mut(&current) {
            Some(vm) if !vm.is_gone(now) => vm.deletion_time = Some(now),
            _ => return Ok((vec![], ())),
        }
        Ok((vec![put_meta(&key, &meta)?], ()))
    })
    .await?;
    Ok(Response::default())
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The examples of RFC 7396, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
            (json!(null), json!({"a": 1}), json!({"a": 1})),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }
}
