//! `export/:type/:name(/:version)`: a key's material, for keys created `exportable` (public keys
//! always). Types and formats are Vault's:
//!
//! | type             | AES / ChaCha | HMAC    | Ed25519                | ECDSA                   | RSA                       |
//! |------------------|--------------|---------|------------------------|-------------------------|---------------------------|
//! | `encryption-key` | base64 key   | —       | —                      | —                       | PKCS#1 PEM                |
//! | `signing-key`    | —            | —       | base64 `seed‖public`   | SEC1 PEM `EC PRIVATE KEY` | PKCS#1 PEM              |
//! | `hmac-key`       | base64       | base64  | base64                 | base64                  | base64                    |
//! | `public-key`     | —            | —       | base64 public key      | PKIX PEM                | PKIX PEM                  |
//!
//! The answer is `{"name", "type", "keys": {"<version>": "<material>"}}` with every version at
//! or above `min_decryption_version`, or the one asked for (`latest` or a number).
//!
//! Crypto: re-encoding keys uses aws-lc-rs (see [`super::policy`] for why aws-lc-rs); the
//! PKCS#1 body of an RSA key is taken out of its PKCS#8 wrapper by [`super::encoding`].

use super::encoding::{b64, pem, pkcs8_inner_key};
use super::policy::{KeyEntry, KeyType, Policy};
use super::{Transit, NAME};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![Path::new(&format!(
        "export/(?P<type>[^/]+)/{NAME}(?:/(?P<version>[^/]+))?"
    ))
    .field(
        "type",
        Field::string("encryption-key, signing-key, hmac-key or public-key"),
    )
    .field("name", Field::string("Name of the key"))
    .field(
        "version",
        Field::string("A version number, or \"latest\"; all versions when absent"),
    )
    .op(Read, export)
    .help("Export a named key's material (exportable keys only, except public keys).")]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Encryption,
    Signing,
    Hmac,
    Public,
}

async fn export(t: Arc<Transit>, c: Call) -> Result<Response> {
    let ty = c.fields.str("type");
    let kind = match ty {
        "encryption-key" => Kind::Encryption,
        "signing-key" => Kind::Signing,
        "hmac-key" => Kind::Hmac,
        "public-key" => Kind::Public,
        other => return Err(Error::bad(format!("invalid export type: {other}"))),
    };
    let Some(key) = t.get(&c.storage, c.fields.str("name")).await? else {
        return Err(Error::NotFound);
    };
    let p = &key.policy;
    if !p.exportable && kind != Kind::Public {
        return Err(Error::bad("private key material is not exportable"));
    }
    let kt = p.key_type;
    match kind {
        Kind::Encryption if !kt.encryption_supported() => {
            return Err(Error::bad("encryption not supported for the key"))
        }
        Kind::Signing if !kt.signing_supported() => {
            return Err(Error::bad("signing not supported for the key"))
        }
        Kind::Public if !kt.signing_supported() => {
            return Err(Error::bad(format!(
                "unknown key type {} for export type public-key",
                kt.as_str()
            )))
        }
        _ => {}
    }
    let mut keys = Map::new();
    let visible = p.keys.range(p.min_decryption_version.max(1)..);
    if c.fields.has("version") && !c.fields.str("version").is_empty() {
        let ver = match c.fields.str("version") {
            "latest" => p.latest_version,
            s => s
                .parse::<i64>()
                .map_err(|_| Error::bad("invalid key version"))?,
        };
        let entry = visible
            .into_iter()
            .find(|(v, _)| **v == ver)
            .map(|(_, e)| e)
            .ok_or_else(|| Error::bad("version does not exist or cannot be found"))?;
        keys.insert(ver.to_string(), json!(material(p, kind, ver, entry)?));
    } else {
        for (v, e) in visible {
            keys.insert(v.to_string(), json!(material(p, kind, *v, e)?));
        }
    }
    Ok(Response::data(json!({
        "name": p.name,
        "type": kt.as_str(),
        "keys": Value::Object(keys),
    })))
}

/// One version's material in Vault's format for `kind`.
fn material(p: &Policy, kind: Kind, ver: i64, e: &KeyEntry) -> Result<String> {
    let kt = p.key_type;
    let encode_err = |_| Error::internal("could not encode the key");
    let need_private = || {
        if e.key.is_empty() {
            Err(Error::bad(format!(
                "private key not imported for key version: {ver}"
            )))
        } else {
            Ok(())
        }
    };
    Ok(match (kind, kt) {
        (Kind::Hmac, _) => b64(p.hmac_key(ver).map_err(Error::bad)?),
        (Kind::Encryption, t) if t.aead().is_some() => b64(&e.key),
        (Kind::Encryption | Kind::Signing, t) if t.is_rsa() => {
            need_private()?;
            let pkcs1 = pkcs8_inner_key(&e.key)
                .ok_or_else(|| Error::internal("could not encode the key"))?;
            pem("RSA PRIVATE KEY", pkcs1, true)
        }
        (Kind::Signing, KeyType::Ed25519) => b64(&e.key),
        (Kind::Signing, t) if t.is_ecdsa() => {
            need_private()?;
            let alg = match t {
                KeyType::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                KeyType::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                _ => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            };
            let kp = signature::EcdsaKeyPair::from_pkcs8(alg, &e.key)
                .map_err(|_| Error::internal("could not load the key"))?;
            let der = kp.private_key().as_der().map_err(encode_err)?;
            pem("EC PRIVATE KEY", der.as_ref(), false)
        }
        (Kind::Public, KeyType::Ed25519) => {
            if p.derived {
                return Err(Error::bad(
                    "the public key of a derived key depends on a context: read keys/:name with context",
                ));
            }
            b64(&e.public_key)
        }
        (Kind::Public, t) if t.is_ecdsa() => pem("PUBLIC KEY", &e.public_key, false),
        (Kind::Public, _) => pem("PUBLIC KEY", &e.public_key, true),
        _ => return Err(Error::bad("unsupported export type for this key")),
    })
}
