//! `sign/:name(/:hash)` and `verify/:name(/:hash)`: signatures with Ed25519, ECDSA (P-256,
//! P-384, P-521) and RSA (PSS or PKCS#1 v1.5) keys, with Vault's options: `hash_algorithm`
//! (the input is hashed first unless `prehashed`; Ed25519 signs the input itself),
//! `marshaling_algorithm` (`asn1`, or `jws` for fixed-size ECDSA and unpadded URL-safe
//! base64), `signature_algorithm` and `salt_length` (RSA-PSS), `context` (derived Ed25519
//! keys), and `batch_input`. A `verify` request carrying `hmac` instead of `signature` is an
//! HMAC verification (see `hmac`).
//!
//! Crypto: aws-lc-rs signs and verifies (see [`super::policy`] for why aws-lc-rs and how an
//! ECDSA key signs a digest of another length). RSA signatures over SHA-1, SHA-224, SHA-3 or a
//! raw (`none`) digest are not available in aws-lc-rs and answer 400.

use super::encoding::{b64, b64_decode};
use super::policy::{HashAlg, Marshaling, OpError, SaltLength, SignOptions};
use super::{batch_input, item_int, item_str, Transit, NAME};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

fn common(p: Path<Transit>) -> Path<Transit> {
    p.field("name", Field::string("Name of the key"))
        .field("input", Field::string("Base64 input to sign or verify"))
        .field("context", Field::string("Base64 context for key derivation (derived Ed25519 keys)"))
        .field("key_version", Field::int("The version to sign with; 0 (default) is the latest"))
        .field("hash_algorithm", Field::string("sha1, sha2-224, sha2-256 (default), sha2-384, sha2-512, sha3-256, sha3-384, sha3-512, or none"))
        .field("algorithm", Field::string("Deprecated: use hash_algorithm"))
        .field("urlalgorithm", Field::string("The hash algorithm, from the path"))
        .field("prehashed", Field::bool("Whether the input is already a digest"))
        .field("signature_algorithm", Field::string("RSA only: pss (default) or pkcs1v15"))
        .field("marshaling_algorithm", Field::string("asn1 (default) or jws").default("asn1"))
        .field("salt_length", Field::string("RSA-PSS salt length: auto (default), hash, or a number of bytes").default("auto"))
        .field("reference", Field::string("Returned unchanged in the batch result"))
        .field("batch_input", Field::raw("A list of items, each with input, context, reference (and signature or hmac to verify)"))
}

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![
        common(Path::new(&format!(
            "sign/{NAME}(?:/(?P<urlalgorithm>[^/]+))?"
        )))
        .op(Update, sign)
        .help("Sign input data with a named key."),
        common(Path::new(&format!(
            "verify/{NAME}(?:/(?P<urlalgorithm>[^/]+))?"
        )))
        .field("signature", Field::string("The signature to verify"))
        .field(
            "hmac",
            Field::string("The HMAC to verify (instead of a signature)"),
        )
        .op(Update, verify)
        .help("Verify a signature or HMAC with a named key."),
    ]
}

/// The signing options of a request, validated as Vault does before the key is looked up.
fn options(c: &Call) -> Result<SignOptions> {
    let hash_name = super::hmac::algorithm_name(c);
    let hash = HashAlg::parse(&hash_name)
        .ok_or_else(|| Error::bad(format!("invalid hash algorithm {hash_name:?}")))?;
    let marshaling = match c.fields.str("marshaling_algorithm") {
        "asn1" => Marshaling::Asn1,
        "jws" => Marshaling::Jws,
        other => return Err(Error::bad(format!("invalid marshaling type {other:?}"))),
    };
    let prehashed = c.fields.bool("prehashed");
    let signature_algorithm = c.fields.str("signature_algorithm").to_string();
    let salt = SaltLength::parse(c.fields.str("salt_length")).map_err(Error::bad)?;
    if hash == HashAlg::None && (!prehashed || signature_algorithm != "pkcs1v15") {
        return Err(Error::bad(
            "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
        ));
    }
    Ok(SignOptions {
        hash,
        prehashed,
        marshaling,
        salt,
        signature_algorithm,
    })
}

fn items_of(
    c: &Call,
    batch: &Option<Vec<Map<String, Value>>>,
    fields: &[&str],
) -> Vec<Map<String, Value>> {
    match batch {
        Some(items) => items.clone(),
        None => {
            let mut m = Map::new();
            m.insert("input".into(), json!(c.fields.str("input")));
            for f in fields {
                if c.fields.has(f) {
                    m.insert(f.to_string(), c.fields.get(f).clone());
                }
            }
            vec![m]
        }
    }
}

fn decode_input(item: &Map<String, Value>) -> std::result::Result<Vec<u8>, String> {
    if !item.contains_key("input") {
        return Err("missing input".to_string());
    }
    b64_decode(&item_str(item, "input"))
        .map_err(|e| format!("unable to decode input as base64: {e}"))
}

fn decode_context(item: &Map<String, Value>) -> std::result::Result<Vec<u8>, String> {
    match item_str(item, "context") {
        s if s.is_empty() => Ok(vec![]),
        s => b64_decode(&s).map_err(|_| "failed to base64-decode context".to_string()),
    }
}

async fn sign(t: Arc<Transit>, c: Call) -> Result<Response> {
    let opts = options(&c)?;
    let Some(key) = t.get(&c.storage, c.fields.str("name")).await? else {
        return Err(Error::bad("signing key not found"));
    };
    let kt = key.policy.key_type;
    if !kt.signing_supported() {
        return Err(Error::bad(format!(
            "key type {} does not support signing",
            kt.as_str()
        )));
    }
    let batch = batch_input(&c)?;
    let items = items_of(&c, &batch, &["context", "key_version"]);
    let version = c.fields.int("key_version");
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let r = (|| {
            let input = decode_input(item).map_err(OpError::User)?;
            let context = decode_context(item).map_err(OpError::User)?;
            let ver = if batch.is_some() {
                match item_int(item, "key_version").map_err(OpError::User)? {
                    0 => version,
                    v => v,
                }
            } else {
                version
            };
            let ver = if ver == 0 {
                key.policy.latest_version
            } else {
                ver
            };
            // The signing's own error says whose fault it is (a version the key does not
            // have is the caller's; OpenBao answers 500 for every signing error).
            key.sign(ver, &context, &input, &opts).map(|s| (s, ver))
        })();
        match r {
            Err(e) if batch.is_none() => return Err(e.into()),
            r => out.push(r),
        }
    }
    if batch.is_none() {
        let (s, ver) = out.remove(0).map_err(Error::from)?;
        let mut data = json!({"signature": s.signature, "key_version": ver});
        if let Some(pk) = s.public_key {
            data["public_key"] = json!(b64(&pk));
        }
        return Ok(Response::data(data));
    }
    let results: Vec<Value> = items
        .iter()
        .zip(out)
        .map(|(item, r)| {
            let mut m = Map::new();
            match r {
                Ok((s, ver)) => {
                    m.insert("signature".into(), json!(s.signature));
                    if let Some(pk) = s.public_key {
                        m.insert("publickey".into(), json!(b64(&pk)));
                    }
                    m.insert("key_version".into(), json!(ver));
                }
                Err(e) => {
                    m.insert("key_version".into(), json!(0));
                    m.insert("error".into(), json!(e.message()));
                }
            }
            m.insert("reference".into(), json!(item_str(item, "reference")));
            Value::Object(m)
        })
        .collect();
    Ok(Response::data(json!({ "batch_results": results })))
}

async fn verify(t: Arc<Transit>, c: Call) -> Result<Response> {
    let batch = batch_input(&c)?;
    let items = items_of(&c, &batch, &["signature", "hmac", "context"]);
    let (mut sig_found, mut hmac_found, mut missing) = (false, false, false);
    for item in &items {
        if item.contains_key("signature") {
            sig_found = true;
        } else if item.contains_key("hmac") {
            hmac_found = true;
        } else {
            missing = true;
        }
    }
    match (batch.is_some(), sig_found, hmac_found, missing) {
        (false, true, _, _) | (true, true, false, false) => {}
        (false, false, true, _) | (true, false, true, false) => {
            return super::hmac::verify(&t, &c, items, batch.is_some()).await;
        }
        (true, true, true, _) => {
            return Err(Error::bad(
                "elements of batch_input must all provide 'signature' or all provide 'hmac'",
            ))
        }
        (true, _, _, true) => {
            return Err(Error::bad(
                "some elements of batch_input are missing 'signature'",
            ))
        }
        _ => {
            return Err(Error::bad(
                "neither a 'signature' nor an 'hmac' were given to verify",
            ))
        }
    }
    let opts = options(&c)?;
    let Some(key) = t.get(&c.storage, c.fields.str("name")).await? else {
        return Err(Error::bad("signature verification key not found"));
    };
    let kt = key.policy.key_type;
    if !kt.signing_supported() {
        return Err(Error::bad(format!(
            "key type {} does not support verification",
            kt.as_str()
        )));
    }
    let out: Vec<std::result::Result<bool, OpError>> = items
        .iter()
        .map(|item| {
            let input = decode_input(item).map_err(OpError::User)?;
            let context = decode_context(item).map_err(OpError::User)?;
            if !item.contains_key("signature") {
                return Err(OpError::User("missing signature".into()));
            }
            key.verify(&context, &input, &item_str(item, "signature"), &opts)
        })
        .collect();
    if batch.is_none() {
        let valid = out.into_iter().next().expect("one item")?;
        return Ok(Response::data(json!({ "valid": valid })));
    }
    let results: Vec<Value> = items
        .iter()
        .zip(out)
        .map(|(item, r)| {
            let mut m = Map::new();
            match r {
                Ok(v) => {
                    m.insert("valid".into(), json!(v));
                }
                Err(e) => {
                    m.insert("valid".into(), json!(false));
                    m.insert("error".into(), json!(e.message()));
                }
            }
            m.insert("reference".into(), json!(item_str(item, "reference")));
            Value::Object(m)
        })
        .collect();
    Ok(Response::data(json!({ "batch_results": results })))
}
