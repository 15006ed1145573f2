//! `encrypt/:name`: encrypts base64 plaintext (or each item of `batch_input`) with a named key,
//! answering `vault:v<N>:<base64>` and the version N. Writing to a key that does not exist
//! creates it (Vault's upsert; needs the `create` capability, and can be disabled with
//! `config/keys`), as `type` (AES-GCM or ChaCha20-Poly1305), derived when a `context` is
//! given, convergent when asked.
//!
//! Batches: every item is processed, failures are reported per item (`error`), and a batch
//! with any failure answers 400 (500 if the engine failed), or `partial_failure_response_code`
//! when some items succeeded — Vault's `batchRequestResponse`.
//!
//! Crypto: AEAD sealing and RSA-OAEP are aws-lc-rs's, through [`super::policy::Keyring`] (see
//! there for why aws-lc-rs).

use super::encoding::b64_decode;
use super::policy::{KeyType, NewKey, OpError, Policy};
use super::{batch_input, batch_status, item_b64, item_int, item_str, single_item, Transit, NAME};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![Path::new(&format!("encrypt/{NAME}"))
        .field("name", Field::string("Name of the key"))
        .field("plaintext", Field::string("Base64 plaintext to encrypt"))
        .field("context", Field::string("Base64 context for key derivation (derived keys)"))
        .field("nonce", Field::string("Accepted for compatibility and ignored: nonces are always generated (random, or derived for convergent keys)"))
        .field("key_version", Field::int("The key version to encrypt with; 0 (default) is the latest"))
        .field("type", Field::string("The type of key to create if the key does not exist").default("aes256-gcm96"))
        .field("convergent_encryption", Field::bool("When creating the key, whether it is convergent"))
        .field("associated_data", Field::string("Base64 associated data, authenticated but not encrypted (AEAD keys)"))
        .field("reference", Field::string("Returned unchanged in the batch result"))
        .field("batch_input", Field::raw("A list of items, each with plaintext, context, key_version, associated_data, reference"))
        .field("partial_failure_response_code", Field::int("The status of a batch where some items failed and some succeeded"))
        .exists(exists)
        .op(Create, encrypt)
        .op(Update, encrypt)
        .help("Encrypt base64 plaintext with a named key.")]
}

/// Whether the key exists (an encrypt to a missing key is a `create`).
pub(super) async fn exists(t: Arc<Transit>, c: Call) -> Result<bool> {
    Ok(t.get(&c.storage, c.fields.str("name")).await?.is_some())
}

struct Decoded {
    plaintext: Vec<u8>,
    context: Vec<u8>,
    aad: Vec<u8>,
    version: i64,
}

/// Creates a key for an encrypt request that names a missing one.
async fn upsert(t: &Transit, c: &Call, context_set: bool) -> Result<Arc<super::policy::Keyring>> {
    let name = c.fields.str("name");
    let not_found = || Error::bad("encryption key not found");
    if c.operation != Create || super::keys::keys_config(&c.storage).await?.disable_upsert {
        return Err(not_found());
    }
    let convergent = c.fields.bool("convergent_encryption");
    if convergent && !context_set {
        return Err(Error::bad(
            "convergent encryption requires derivation to be enabled, so context is required",
        ));
    }
    let type_name = c.fields.str("type");
    let kt = match KeyType::parse(type_name) {
        Some(kt) if kt.aead().is_some() => kt,
        Some(KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521) => {
            return Err(Error::bad(format!(
                "key type {type_name} not supported for this operation"
            )))
        }
        _ => return Err(Error::bad(format!("unknown key type {type_name}"))),
    };
    let _w = t.write.lock().await;
    if let Some(k) = t.get_locked(&c.storage, name).await? {
        return Ok(k);
    }
    let mut p = Policy::new(
        name,
        kt,
        &NewKey {
            derived: context_set,
            convergent,
            ..Default::default()
        },
    )?;
    p.rotate(&t.now()).await?;
    t.store(&c.storage, p).await
}

async fn encrypt(t: Arc<Transit>, c: Call) -> Result<Response> {
    let batch = batch_input(&c)?;
    let items = match &batch {
        Some(items) => {
            super::check_int_fields(items, &["key_version"])?;
            items.clone()
        }
        None => {
            if !c.fields.has("plaintext") {
                return Err(Error::bad("missing plaintext to encrypt"));
            }
            vec![single_item(
                &c,
                &["plaintext", "context", "key_version", "associated_data"],
            )]
        }
    };
    let context_set = !item_str(&items[0], "context").is_empty();
    let mut errors: Vec<Option<String>> = vec![None; items.len()];
    let mut decoded: Vec<Option<Decoded>> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if item_str(item, "context").is_empty() == context_set {
            return Err(Error::bad(
                "context should be set either in all the request blocks or in none",
            ));
        }
        let d = (|| {
            Ok::<_, String>(Decoded {
                plaintext: b64_decode(&item_str(item, "plaintext"))?,
                context: item_b64(item, "context")?,
                aad: item_b64(item, "associated_data")?,
                version: item_int(item, "key_version")?,
            })
        })();
        match d {
            Ok(d) => decoded.push(Some(d)),
            Err(e) => {
                errors[i] = Some(e);
                decoded.push(None);
            }
        }
    }
    let name = c.fields.str("name");
    let key = match t.get(&c.storage, name).await? {
        Some(k) => k,
        None => upsert(&t, &c, context_set).await?,
    };
    let mut results: Vec<Option<(String, i64)>> = vec![None; items.len()];
    let mut internal = false;
    let mut user = errors.iter().any(Option::is_some);
    for (i, d) in decoded.iter().enumerate() {
        let Some(d) = d else { continue };
        if !d.aad.is_empty() && key.policy.key_type.aead().is_none() {
            errors[i] = Some(format!(
                "'[{i}].associated_data' provided for non-AEAD cipher suite {}",
                key.policy.key_type.as_str()
            ));
            user = true;
            continue;
        }
        match key.encrypt(d.version, &d.context, &d.plaintext, &d.aad) {
            Ok(r) => results[i] = Some(r),
            Err(OpError::Internal(m)) if batch.is_none() => return Err(Error::internal(m)),
            Err(e) => {
                internal |= e.is_internal();
                user |= !e.is_internal();
                errors[i] = Some(e.message().to_string());
            }
        }
    }
    if batch.is_none() {
        if let Some(e) = errors[0].take() {
            return Err(Error::bad(e));
        }
        let (ciphertext, version) = results[0].take().unwrap_or_default();
        return Ok(Response::data(
            json!({"ciphertext": ciphertext, "key_version": version}),
        ));
    }
    let mut any_ok = false;
    let out: Vec<Value> = items
        .iter()
        .zip(results.into_iter().zip(errors.iter()))
        .map(|(item, (r, e))| {
            let mut m = Map::new();
            if let Some((ct, v)) = r {
                any_ok = true;
                m.insert("ciphertext".into(), json!(ct));
                m.insert("key_version".into(), json!(v));
            }
            if let Some(e) = e {
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
