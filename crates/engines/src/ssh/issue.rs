//! `issue/:role`: generates a key pair (`key_type` `rsa`, `ec` or `ed25519`, `key_bits`), checks
//! it against the role's `allowed_user_key_lengths`, and certifies it as `sign` would. The
//! answer adds `private_key` (PEM: PKCS#1 for RSA, SEC1 for EC, OpenSSH for Ed25519) and
//! `private_key_type` to `sign`'s.

use super::keys::SigningKey;
use super::sign::{cert_fields, certify, key_type_aliases};
use super::{roles, Ssh, ROLE};
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub fn paths() -> Vec<Path<Ssh>> {
    vec![cert_fields(Path::new(&format!("issue/{ROLE}")))
        .field(
            "key_type",
            Field::string("Specifies the desired key type; must be `rsa`, `ed25519` or `ec`")
                .default("rsa"),
        )
        .field(
            "key_bits",
            Field::int("Specifies the number of bits to use for the generated keys.").default(0),
        )
        .op(Update, issue)
        .help("Request a certificate and a generated key pair using a certain role.")]
}

async fn issue(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let name = c.fields.str("role");
    let role = roles::get(&c.storage, name)
        .await?
        .ok_or_else(|| Error::bad(format!("unknown role: {name}")))?;
    if role.key_type != "ca" {
        return Err(Error::bad(format!(
            "role key type '{}' not allowed to issue key pairs",
            role.key_type
        )));
    }
    let key_type = c.fields.str("key_type").to_string();
    let key_bits = c.fields.int("key_bits");
    if !role.allowed_user_key_lengths.is_empty() {
        let ty = if key_type == "ec" {
            "ecdsa"
        } else {
            key_type.as_str()
        };
        let mut key_allowed = false;
        let mut bits_allowed = false;
        for alias in key_type_aliases(ty, key_bits) {
            if let Some(allowed) = role.allowed_user_key_lengths.get(&alias) {
                key_allowed = true;
                bits_allowed |= allowed.contains(&key_bits);
            }
        }
        if !key_allowed {
            return Err(Error::bad(
                "provided key_type value not in allowed_user_key_types",
            ));
        }
        if !bits_allowed {
            return Err(Error::bad(
                "provided key_bits value not in list of role's allowed_user_key_types",
            ));
        }
    }
    if !matches!(key_type.as_str(), "rsa" | "ec" | "ed25519") {
        return Err(Error::bad(format!(
            "unknown ssh key pair algorithm: {key_type}"
        )));
    }
    let key = SigningKey::generate_async(key_type.clone(), key_bits, 4096).await?;
    let mut data = certify(&c, &role, key.public_key()?).await?;
    data.insert("private_key".into(), json!(key.to_pem()?.as_str()));
    data.insert("private_key_type".into(), json!(key_type));
    Ok(Response::data(Value::Object(data)))
}
