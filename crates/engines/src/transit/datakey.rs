//! `datakey/plaintext/:name` and `datakey/wrapped/:name`: a fresh random data key (128, 256 or
//! 512 bits) encrypted with a named key, for envelope encryption. `plaintext` also returns the
//! key itself; `wrapped` returns only its ciphertext, for a later `decrypt`.
//!
//! Crypto: the data key comes from aws-lc-rs's CSPRNG and is sealed like any plaintext by
//! [`super::policy::Keyring::encrypt`] (see there for why aws-lc-rs).

use super::encoding::{b64, b64_decode};
use super::policy::random;
use super::{Transit, NAME};
use serde_json::json;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![Path::new(&format!("datakey/(?P<plaintext>[^/]+)/{NAME}"))
        .field(
            "name",
            Field::string("Name of the key that encrypts the data key"),
        )
        .field(
            "plaintext",
            Field::string("\"plaintext\" to also return the data key, \"wrapped\" not to"),
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
            "bits",
            Field::int("The data key's length: 128, 256 (default) or 512").default(256),
        )
        .field(
            "key_version",
            Field::int("The version to encrypt with; 0 (default) is the latest"),
        )
        .field(
            "associated_data",
            Field::string("Base64 associated data (AEAD keys)"),
        )
        .op(Update, datakey)
        .help("Generate a data key encrypted with a named key.")]
}

async fn datakey(t: Arc<Transit>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let with_plaintext = match f.str("plaintext") {
        "plaintext" => true,
        "wrapped" => false,
        _ => return Err(Error::bad("Invalid path, must be 'plaintext' or 'wrapped'")),
    };
    let decode = |field: &str, what: &str| match f.str(field) {
        "" => Ok(vec![]),
        s => b64_decode(s).map_err(|_| Error::bad(format!("failed to base64-decode {what}"))),
    };
    let context = decode("context", "context")?;
    let aad = decode("associated_data", "associated_data")?;
    let Some(key) = t.get(&c.storage, f.str("name")).await? else {
        return Err(Error::bad("encryption key not found"));
    };
    let len = match f.int("bits") {
        128 => 16,
        256 => 32,
        512 => 64,
        _ => return Err(Error::bad("invalid bit length")),
    };
    if !aad.is_empty() && key.policy.key_type.aead().is_none() {
        return Err(Error::bad(format!(
            "'[0].associated_data' provided for non-AEAD cipher suite {}",
            key.policy.key_type.as_str()
        )));
    }
    let data_key = random(len)?;
    let (ciphertext, version) = key.encrypt(f.int("key_version"), &context, &data_key, &aad)?;
    let mut data = json!({"ciphertext": ciphertext, "key_version": version});
    if with_plaintext {
        data["plaintext"] = json!(b64(&data_key));
    }
    Ok(Response::data(data))
}
