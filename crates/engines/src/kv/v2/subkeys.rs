//! `subkeys/:path`: the structure of a version without its values. Every leaf (and every empty
//! object) becomes null; `depth` limits how many levels of nested objects are walked (0: all);
//! `version` picks a version (latest when 0 or absent). Deleted and destroyed versions answer
//! 404 with their metadata and `"subkeys": null`, like a data read.

use super::model::{now_nanos, Key};
use super::{ignored_params, non_negative, not_found_with, read_key, V2};
use serde_json::{Map, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub fn paths() -> Vec<Path<V2>> {
    vec![Path::new("subkeys/(?P<path>.*)")
        .field("path", Field::string("Location of the secret."))
        .field(
            "version",
            Field::int("The version to read; the latest when 0 or absent."),
        )
        .field(
            "depth",
            Field::int("How deep to walk nested objects; 0 for no limit."),
        )
        .op(Read, read)
        .help("Read the structure of a secret's data without its values.")]
}

/// The keys of `m`, nested objects walked while `depth` allows (Vault's semantics).
pub fn subkeys(m: &Map<String, Value>, depth: u64, level: u64) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| {
                let sub = match v {
                    Value::Object(inner) if !inner.is_empty() && (depth == 0 || level < depth) => {
                        subkeys(inner, depth, level + 1)
                    }
                    _ => Value::Null,
                };
                (k.clone(), sub)
            })
            .collect(),
    )
}

async fn read(b: Arc<V2>, c: Call) -> Result<Response> {
    let version = non_negative(&c, "version")?;
    let depth = non_negative(&c, "depth")?;
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
    let mut body = Map::new();
    body.insert(
        "metadata".into(),
        Value::Object(vm.to_json(n, &meta.custom_metadata)),
    );
    if vm.is_gone(now_nanos()) {
        body.insert("subkeys".into(), Value::Null);
        return Ok(not_found_with(body));
    }
    let Some(raw) = c.storage.get(&key.version_key(n)).await? else {
        return Err(Error::NotFound);
    };
    let data: Value = serde_json::from_slice(&raw)?;
    let sub = match &data {
        Value::Object(m) => subkeys(m, depth, 1),
        _ => Value::Null,
    };
    body.insert("subkeys".into(), sub);
    Ok(Response {
        data: Some(body),
        warnings: ignored_params(&c, &["version", "depth"])
            .into_iter()
            .collect(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::subkeys;
    use serde_json::json;

    #[test]
    fn depth_limits_the_walk() {
        let d = json!({"a": {"b": {"c": 1, "d": [1, 2]}, "e": "x"}, "f": null, "g": {}});
        let m = d.as_object().unwrap();
        assert_eq!(
            subkeys(m, 0, 1),
            json!({"a": {"b": {"c": null, "d": null}, "e": null}, "f": null, "g": null})
        );
        assert_eq!(subkeys(m, 1, 1), json!({"a": null, "f": null, "g": null}));
        assert_eq!(
            subkeys(m, 2, 1),
            json!({"a": {"b": null, "e": null}, "f": null, "g": null})
        );
    }
}
