//! `decrypt/:name`: decrypts a `vault:v<N>:` ciphertext (or each item of `batch_input`) with
//! a named key, answering the base64 plaintext. A ciphertext from a version below the key's
//! `min_decryption_version`, from a version the key does not have, or that fails
//! authentication is refused; batch items fail one by one, and a batch with failures answers
//! 400 (500 if the engine failed) or `partial_failure_response_code`, as Vault.
//!
//! Crypto: AEAD opening and RSA-OAEP decryption are aws-lc-rs's, through
//! [`super::policy::Keyring`] (see there for why aws-lc-rs).

use super::encoding::b64;
use super::policy::OpError;
use super::{batch_input, batch_status, item_b64, item_str, single_item, Transit, NAME};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![Path::new(&format!("decrypt/{NAME}"))
        .field("name", Field::string("Name of the key"))
        .field(
            "ciphertext",
            Field::string("The ciphertext to decrypt (vault:v<N>:...)"),
        )
        .field(
            "context",
            Field::string("Base64 context for key derivation (derived keys)"),
        )
        .field(
            "nonce",
            Field::string("Accepted for compatibility and ignored"),
        )
        .field(
            "associated_data",
            Field::string("Base64 associated data given at encryption"),
        )
        .field(
            "reference",
            Field::string("Returned unchanged in the batch result"),
        )
        .field(
            "batch_input",
            Field::raw(
                "A list of items, each with ciphertext, context, associated_data, reference",
            ),
        )
        .field(
            "partial_failure_response_code",
            Field::int("The status of a batch where some items failed and some succeeded"),
        )
        .op(Update, decrypt)
        .help("Decrypt a ciphertext with a named key.")]
}

async fn decrypt(t: Arc<Transit>, c: Call) -> Result<Response> {
    let batch = batch_input(&c)?;
    let items = match &batch {
        Some(items) => items.clone(),
        None => {
            if c.fields.str("ciphertext").is_empty() {
                return Err(Error::bad("missing ciphertext to decrypt"));
            }
            vec![single_item(
                &c,
                &["ciphertext", "context", "associated_data"],
            )]
        }
    };
    let Some(key) = t.get(&c.storage, c.fields.str("name")).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let mut plaintexts: Vec<String> = vec![String::new(); items.len()];
    let mut errors: Vec<Option<String>> = vec![None; items.len()];
    let (mut user, mut internal, mut any_ok) = (false, false, false);
    for (i, item) in items.iter().enumerate() {
        let inputs =
            item_b64(item, "context").and_then(|ctx| Ok((ctx, item_b64(item, "associated_data")?)));
        let (context, aad) = match inputs {
            Ok(v) => v,
            Err(e) => {
                errors[i] = Some(e);
                user = true;
                continue;
            }
        };
        match key.decrypt(&context, &item_str(item, "ciphertext"), &aad) {
            Ok(p) => {
                plaintexts[i] = b64(&p);
                any_ok = true;
            }
            Err(e) => {
                if batch.is_none() {
                    return Err(e.into());
                }
                if let OpError::Internal(_) = e {
                    internal = true;
                } else {
                    user = true;
                }
                errors[i] = Some(e.message().to_string());
            }
        }
    }
    if batch.is_none() {
        if let Some(e) = errors[0].take() {
            return Err(Error::bad(e));
        }
        return Ok(Response::data(json!({ "plaintext": plaintexts[0] })));
    }
    let out: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut m = Map::new();
            m.insert("plaintext".into(), json!(plaintexts[i]));
            if let Some(e) = &errors[i] {
                m.insert("error".into(), json!(e));
            }
            m.insert("reference".into(), json!(item_str(item, "reference")));
            Value::Object(m)
        })
        .collect();
    Ok(batch_status(
        &c,
        Response::data(json!({ "batch_results": out })),
        any_ok,
        user,
        internal,
    ))
}
