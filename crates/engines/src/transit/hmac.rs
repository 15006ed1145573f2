//! `hmac/:name(/:algorithm)`: the HMAC of base64 input under a named key's per-version HMAC key
//! (the key itself for `hmac` keys), as `vault:v<N>:<base64>`; and HMAC verification, which
//! `verify/:name` hands here when the request carries `hmac` instead of `signature`.
//! Verification compares in constant time. Batches report failures per item and answer 200,
//! as Vault does for these endpoints.
//!
//! Crypto: aws-lc-rs's HMAC (SHA-1 and SHA-2). HMAC over SHA-3 is not in aws-lc-rs and answers
//! 400 (see [`super::policy`] for why aws-lc-rs).

use super::encoding::{b64, b64_decode};
use super::policy::HashAlg;
use super::{batch_input, item_str, Transit, NAME};
use aws_lc_rs::hmac;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::util::ct_eq;

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![
        Path::new(&format!("hmac/{NAME}(?:/(?P<urlalgorithm>[^/]+))?"))
            .field("name", Field::string("Name of the key"))
            .field("input", Field::string("Base64 input"))
            .field(
                "algorithm",
                Field::string("sha2-224, sha2-256 (default), sha2-384, sha2-512")
                    .default("sha2-256"),
            )
            .field(
                "urlalgorithm",
                Field::string("The algorithm, from the path"),
            )
            .field(
                "key_version",
                Field::int("The version to use; 0 (default) is the latest"),
            )
            .field(
                "reference",
                Field::string("Returned unchanged in the batch result"),
            )
            .field(
                "batch_input",
                Field::raw("A list of items, each with input and reference"),
            )
            .op(Update, generate)
            .help("Generate an HMAC of input data with a named key."),
    ]
}

/// The HMAC algorithm a request names: path, then `hash_algorithm`, then `algorithm`.
pub(super) fn algorithm_name(c: &Call) -> String {
    for f in ["urlalgorithm", "hash_algorithm", "algorithm"] {
        if c.fields.has(f) && !c.fields.str(f).is_empty() {
            return c.fields.str(f).to_string();
        }
    }
    "sha2-256".to_string()
}

fn hmac_algorithm(name: &str) -> Result<hmac::Algorithm> {
    let h = HashAlg::parse(name)
        .ok_or_else(|| Error::bad(format!("unsupported algorithm {name:?}")))?;
    h.hmac().ok_or_else(|| {
        Error::bad(format!(
            "unsupported algorithm {name:?}: HMAC over {name} is not available in Tresor's crypto library (aws-lc-rs)"
        ))
    })
}

async fn generate(t: Arc<Transit>, c: Call) -> Result<Response> {
    let Some(key) = t.get(&c.storage, c.fields.str("name")).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let p = &key.policy;
    let mut ver = c.fields.int("key_version");
    if ver == 0 {
        ver = p.latest_version;
    } else if ver != p.latest_version
        && p.min_encryption_version > 0
        && ver < p.min_encryption_version
    {
        return Err(Error::bad(
            "cannot generate HMAC: version is too old (disallowed by policy)",
        ));
    }
    let raw_key = p.hmac_key(ver).map_err(Error::bad)?;
    let alg = hmac_algorithm(&algorithm_name(&c))?;
    let hkey = hmac::Key::new(alg, raw_key);
    let batch = batch_input(&c)?;
    let items = match &batch {
        Some(items) => items.clone(),
        None => vec![Map::from_iter([(
            "input".to_string(),
            json!(c.fields.str("input")),
        )])],
    };
    let results: Vec<std::result::Result<String, String>> = items
        .iter()
        .map(|item| {
            if !item.contains_key("input") {
                return Err("missing input for HMAC".to_string());
            }
            let input = b64_decode(&item_str(item, "input"))
                .map_err(|e| format!("unable to decode input as base64: {e}"))?;
            Ok(format!(
                "vault:v{ver}:{}",
                b64(hmac::sign(&hkey, &input).as_ref())
            ))
        })
        .collect();
    if batch.is_none() {
        return match results.into_iter().next().expect("one item") {
            Ok(h) => Ok(Response::data(json!({ "hmac": h }))),
            Err(e) => Err(Error::bad(e)),
        };
    }
    let out: Vec<Value> = items
        .iter()
        .zip(results)
        .map(|(item, r)| {
            let mut m = Map::new();
            match r {
                Ok(h) => m.insert("hmac".into(), json!(h)),
                Err(e) => m.insert("error".into(), json!(e)),
            };
            m.insert("reference".into(), json!(item_str(item, "reference")));
            Value::Object(m)
        })
        .collect();
    Ok(Response::data(json!({ "batch_results": out })))
}

/// Verifies HMACs (`verify/:name` with `hmac`): `items` each carry `input` and `hmac`.
pub(super) async fn verify(
    t: &Transit,
    c: &Call,
    items: Vec<Map<String, Value>>,
    batch: bool,
) -> Result<Response> {
    let alg = hmac_algorithm(&algorithm_name(c))?;
    let Some(key) = t.get(&c.storage, c.fields.str("name")).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let p = &key.policy;
    let results: Vec<std::result::Result<bool, String>> = items
        .iter()
        .map(|item| {
            if !item.contains_key("input") {
                return Err("missing input".to_string());
            }
            let input = b64_decode(&item_str(item, "input"))
                .map_err(|e| format!("unable to decode input as base64: {e}"))?;
            if !item.contains_key("hmac") {
                return Err("missing hmac".to_string());
            }
            let given = item_str(item, "hmac");
            let rest = given
                .strip_prefix("vault:v")
                .ok_or("invalid HMAC to verify: no prefix")?;
            let (ver, body) = rest
                .split_once(':')
                .ok_or("invalid HMAC: wrong number of fields")?;
            let ver: i64 = ver
                .parse()
                .map_err(|_| "invalid HMAC: version number could not be decoded".to_string())?;
            let expected = b64_decode(body)
                .map_err(|e| format!("unable to decode verification HMAC as base64: {e}"))?;
            if ver > p.latest_version {
                return Err("invalid HMAC: version is too new".to_string());
            }
            if p.min_decryption_version > 0 && ver < p.min_decryption_version {
                return Err(
                    "cannot verify HMAC: version is too old (disallowed by policy)".to_string(),
                );
            }
            let raw_key = p.hmac_key(ver)?;
            let actual = hmac::sign(&hmac::Key::new(alg, raw_key), &input);
            Ok(ct_eq(actual.as_ref(), &expected))
        })
        .collect();
    if !batch {
        return match results.into_iter().next().expect("one item") {
            Ok(valid) => Ok(Response::data(json!({ "valid": valid }))),
            Err(e) => Err(Error::bad(e)),
        };
    }
    let out: Vec<Value> = items
        .iter()
        .zip(results)
        .map(|(item, r)| {
            let mut m = Map::new();
            match r {
                Ok(true) => {
                    m.insert("valid".into(), json!(true));
                }
                Ok(false) => {}
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
