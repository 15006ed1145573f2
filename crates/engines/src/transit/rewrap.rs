//! `rewrap/:name`: decrypts a ciphertext and encrypts it again with the key's latest version
//! (or `key_version`), without the plaintext ever leaving the engine — how data moves off old
//! versions before `min_decryption_version` is raised. Batches report failures per item and
//! answer 200, as Vault does for rewrap.
//!
//! Crypto: aws-lc-rs through [`super::policy::Keyring`] (see there for why aws-lc-rs).

use super::{batch_input, item_b64, item_int, item_str, single_item, Transit, NAME};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![Path::new(&format!("rewrap/{NAME}"))
        .field("name", Field::string("Name of the key"))
        .field("ciphertext", Field::string("The ciphertext to re-encrypt"))
        .field(
            "context",
            Field::string("Base64 context for key derivation (derived keys)"),
        )
        .field(
            "nonce",
            Field::string("Accepted for compatibility and ignored"),
        )
        .field(
            "key_version",
            Field::int("The version to re-encrypt with; 0 (default) is the latest"),
        )
        .field(
            "reference",
            Field::string("Returned unchanged in the batch result"),
        )
        .field(
            "batch_input",
            Field::raw("A list of items, each with ciphertext, context, key_version, reference"),
        )
        .op(Update, rewrap)
        .help("Re-encrypt a ciphertext with the latest (or a given) version of a named key.")]
}

async fn rewrap(t: Arc<Transit>, c: Call) -> Result<Response> {
    let batch = batch_input(&c)?;
    let items = match &batch {
        Some(items) => {
            super::check_int_fields(items, &["key_version"])?;
            items.clone()
        }
        None => {
            if c.fields.str("ciphertext").is_empty() {
                return Err(Error::bad("missing ciphertext to decrypt"));
            }
            vec![single_item(&c, &["ciphertext", "context", "key_version"])]
        }
    };
    let Some(key) = t.get(&c.storage, c.fields.str("name")).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let mut results: Vec<std::result::Result<(String, i64), String>> = Vec::new();
    for item in &items {
        let r = (|| -> std::result::Result<_, String> {
            let context = item_b64(item, "context")?;
            let version = item_int(item, "key_version")?;
            let ciphertext = item_str(item, "ciphertext");
            if ciphertext.is_empty() {
                return Err("missing ciphertext to decrypt".to_string());
            }
            Ok((context, version, ciphertext))
        })();
        let (context, version, ciphertext) = match r {
            Ok(v) => v,
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        let out = key
            .decrypt(&context, &ciphertext, &[])
            .and_then(|p| key.encrypt(version, &context, &p, &[]));
        match out {
            Ok(r) => results.push(Ok(r)),
            Err(e) if batch.is_none() => return Err(e.into()),
            Err(e) => results.push(Err(e.message().to_string())),
        }
    }
    if batch.is_none() {
        return match results.remove(0) {
            Ok((ct, v)) => Ok(Response::data(json!({"ciphertext": ct, "key_version": v}))),
            Err(e) => Err(Error::bad(e)),
        };
    }
    let out: Vec<Value> = items
        .iter()
        .zip(results)
        .map(|(item, r)| {
            let mut m = Map::new();
            match r {
                Ok((ct, v)) => {
                    m.insert("ciphertext".into(), json!(ct));
                    m.insert("key_version".into(), json!(v));
                }
                Err(e) => {
                    m.insert("error".into(), json!(e));
                }
            }
            m.insert("reference".into(), json!(item_str(item, "reference")));
            Value::Object(m)
        })
        .collect();
    Ok(Response::data(json!({ "batch_results": out })))
}
