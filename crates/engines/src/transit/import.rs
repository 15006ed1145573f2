//! Bring your own key: `wrapping_key`, `keys/:name/import` and `keys/:name/import_version`.
//!
//! The mount has one RSA-4096 wrapping key, made on first use and kept in storage; its public
//! half is `wrapping_key`. A client imports key material as Vault specifies: it makes an
//! ephemeral AES-256 key, wraps the material with it using AES key wrap with padding (KWP,
//! RFC 5649), encrypts the ephemeral key with RSA-OAEP (`hash_function`, SHA-256 by default)
//! under the wrapping key, and sends `base64(oaep(ephemeral) || kwp(material))` as
//! `ciphertext`. Material is the raw key for symmetric and HMAC keys and PKCS#8 DER for
//! private asymmetric keys. ECDSA and RSA keys can instead be imported as a PEM `public_key`
//! (verify and, for RSA, encrypt only); `import_version` later adds the private half or new
//! versions. Imported keys rotate only if `allow_rotation` was set. As in Vault, refusals
//! here answer 500 except for malformed parameters.
//!
//! Crypto: RSA-OAEP, AES-KWP and key parsing are aws-lc-rs's (`aws_lc_rs::rsa`,
//! `aws_lc_rs::key_wrap`); see [`super::policy`] for why aws-lc-rs.

use super::encoding::{b64, b64_decode, pem, pem_decode};
use super::policy::{KeyEntry, KeyType, NewKey, OpError, Policy};
use super::{keys::check_rotate_period, Transit, NAME};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrapPadded, AES_256};
use aws_lc_rs::rsa;
use aws_lc_rs::signature::KeyPair as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use zeroize::Zeroizing;

const STORAGE_KEY: &str = "import/wrapping-key";
/// The length of the RSA-OAEP part of an import ciphertext (a 4096-bit modulus).
const ENCRYPTED_KEY_BYTES: usize = 512;

/// The mount's BYOK wrapping key.
pub struct WrappingKey {
    decrypt: rsa::OaepPrivateDecryptingKey,
    public_pem: String,
}

#[derive(Serialize, Deserialize)]
struct StoredWrappingKey {
    /// PKCS#8 DER, base64.
    key: String,
}

pub(super) fn paths() -> Vec<Path<Transit>> {
    let import_fields = |p: Path<Transit>| {
        p.field("name", Field::string("Name of the key"))
            .field(
                "ciphertext",
                Field::string(
                    "base64(RSA-OAEP(ephemeral AES-256 key) || AES-KWP(ephemeral, key material))",
                ),
            )
            .field(
                "public_key",
                Field::string(
                    "A PEM public key to import instead of private material (ECDSA, RSA)",
                ),
            )
            .field(
                "hash_function",
                Field::string("The OAEP hash: SHA1, SHA256 (default), SHA384, SHA512")
                    .default("SHA256"),
            )
    };
    vec![
        Path::new("wrapping_key")
            .op(Read, read_wrapping_key)
            .help("The public key to wrap keys for import with."),
        import_fields(Path::new(&format!("keys/{NAME}/import")))
            .field(
                "type",
                Field::string("The imported key's type").default("aes256-gcm96"),
            )
            .field(
                "allow_rotation",
                Field::bool("Whether the key may be rotated in Tresor"),
            )
            .field("derived", Field::bool("Enables key derivation mode"))
            .field("exportable", Field::bool("Whether the key may be exported"))
            .field(
                "allow_plaintext_backup",
                Field::bool("Whether the key may be backed up in plaintext"),
            )
            .field(
                "context",
                Field::string("Base64 context for key derivation"),
            )
            .field(
                "auto_rotate_period",
                Field::duration("Automatic rotation period (needs allow_rotation)").default(0),
            )
            .op(Update, import)
            .help("Import externally generated key material as a new key."),
        import_fields(Path::new(&format!("keys/{NAME}/import_version")))
            .field(
                "version",
                Field::int("The version to complete with a private key; a new version when absent"),
            )
            .op(Update, import_version)
            .help("Import key material as a new version of an imported key."),
    ]
}

impl Transit {
    /// The wrapping key, made (RSA-4096) and stored on first use.
    pub(crate) async fn wrapping_key(&self, storage: &View) -> Result<Arc<WrappingKey>> {
        if let Some(w) = self.wrapping.read().clone() {
            return Ok(w);
        }
        let _w = self.write.lock().await;
        if let Some(w) = self.wrapping.read().clone() {
            return Ok(w);
        }
        let pkcs8 = match storage.get_json::<StoredWrappingKey>(STORAGE_KEY).await? {
            Some(s) => Zeroizing::new(b64_decode(&s.key).map_err(Error::internal)?),
            None => {
                // Seconds of CPU: off the runtime's workers.
                let kp =
                    tokio::task::spawn_blocking(|| rsa::KeyPair::generate(rsa::KeySize::Rsa4096))
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                        .ok_or_else(|| Error::internal("error generating the wrapping key"))?;
                let der = Zeroizing::new(
                    kp.as_der()
                        .map_err(|_| Error::internal("error encoding the wrapping key"))?
                        .as_ref()
                        .to_vec(),
                );
                storage
                    .put_json(STORAGE_KEY, &StoredWrappingKey { key: b64(&der) })
                    .await?;
                der
            }
        };
        let load_err = |_| Error::internal("error loading the wrapping key");
        let kp = rsa::KeyPair::from_pkcs8(&pkcs8).map_err(load_err)?;
        let public = kp
            .public_key()
            .as_der()
            .map_err(|_| Error::internal("error encoding the wrapping key"))?;
        let decrypt = rsa::PrivateDecryptingKey::from_pkcs8(&pkcs8)
            .map_err(load_err)
            .and_then(|k| {
                rsa::OaepPrivateDecryptingKey::new(k)
                    .map_err(|_| Error::internal("error loading the wrapping key"))
            })?;
        let w = Arc::new(WrappingKey {
            decrypt,
            public_pem: pem("PUBLIC KEY", public.as_ref(), true),
        });
        *self.wrapping.write() = Some(w.clone());
        Ok(w)
    }
}

async fn read_wrapping_key(t: Arc<Transit>, c: Call) -> Result<Response> {
    let w = t.wrapping_key(&c.storage).await?;
    Ok(Response::data(json!({ "public_key": w.public_pem })))
}

/// Unwraps an import `ciphertext` into the key material.
async fn unwrap(t: &Transit, c: &Call) -> Result<Zeroizing<Vec<u8>>> {
    let oaep = match c.fields.str("hash_function").to_ascii_uppercase().as_str() {
        "SHA1" => &rsa::OAEP_SHA1_MGF1SHA1,
        "SHA256" => &rsa::OAEP_SHA256_MGF1SHA256,
        "SHA384" => &rsa::OAEP_SHA384_MGF1SHA384,
        "SHA512" => &rsa::OAEP_SHA512_MGF1SHA512,
        "SHA224" => {
            return Err(Error::bad(
                "unsupported hash function: SHA224 is not available for RSA-OAEP in Tresor's crypto library (aws-lc-rs)",
            ))
        }
        other => return Err(Error::bad(format!("unknown hash function: {other}"))),
    };
    let ciphertext = b64_decode(c.fields.str("ciphertext")).map_err(Error::bad)?;
    if ciphertext.len() <= ENCRYPTED_KEY_BYTES {
        return Err(Error::bad("provided ciphertext is too short"));
    }
    let (wrapped_eph, wrapped_key) = ciphertext.split_at(ENCRYPTED_KEY_BYTES);
    let w = t.wrapping_key(&c.storage).await?;
    let mut eph = Zeroizing::new(vec![0u8; w.decrypt.min_output_size()]);
    let n = w
        .decrypt
        .decrypt(oaep, wrapped_eph, &mut eph, None)
        .map_err(|_| Error::bad("crypto/rsa: decryption error"))?
        .len();
    eph.truncate(n);
    if eph.len() != 32 {
        return Err(Error::bad("expected ephemeral AES key to be 256-bit"));
    }
    let kek = KeyEncryptionKey::new(&AES_256, &eph)
        .map_err(|_| Error::bad("expected ephemeral AES key to be 256-bit"))?;
    let mut out = Zeroizing::new(vec![0u8; wrapped_key.len()]);
    let n = kek
        .unwrap_with_padding(wrapped_key, &mut out)
        .map_err(|_| Error::bad("kwp: failed to unwrap key"))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// The material of an import request and whether it is private.
async fn material(t: &Transit, c: &Call, kt: KeyType) -> Result<(Zeroizing<Vec<u8>>, bool)> {
    if c.data.contains_key("ciphertext") {
        return Ok((unwrap(t, c).await?, true));
    }
    if !kt.supports_import_public_key() {
        return Err(Error::bad(
            "provided type does not support public_key import",
        ));
    }
    if !c.data.contains_key("public_key") {
        return Err(Error::bad(
            "one of the following fields, ciphertext xor public_key, has to be set",
        ));
    }
    let (_, der) = pem_decode(c.fields.str("public_key"))
        .ok_or_else(|| Error::bad("error parsing public key: not a PEM block"))?;
    Ok((Zeroizing::new(der), false))
}

fn import_err(e: OpError) -> Error {
    if e.is_internal() {
        Error::internal(e.message().to_string())
    } else {
        Error::bad(e.message().to_string())
    }
}

async fn import(t: Arc<Transit>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let name = f.str("name");
    if c.data.contains_key("convergent_encryption") {
        return Err(Error::bad(
            "import cannot be used on keys with convergent encryption enabled",
        ));
    }
    let period = f.duration("auto_rotate_period").as_secs();
    if period > 0 && !f.bool("allow_rotation") {
        return Err(Error::bad(
            "allow_rotation must be set to true if auto-rotation is enabled",
        ));
    }
    check_rotate_period(period)?;
    let type_name = f.str("type").to_ascii_lowercase();
    let kt = KeyType::parse(&type_name)
        .ok_or_else(|| Error::bad(format!("unknown key type: {type_name}")))?;
    if t.get(&c.storage, name).await?.is_some() {
        return Err(Error::bad(
            "the import path cannot be used with an existing key; use import-version to rotate an existing imported key",
        ));
    }
    let (material, private) = material(&t, &c, kt).await?;
    let mut p = Policy::new(
        name,
        kt,
        &NewKey {
            derived: f.bool("derived"),
            exportable: f.bool("exportable"),
            allow_plaintext_backup: f.bool("allow_plaintext_backup"),
            auto_rotate_period: period,
            key_size: if kt == KeyType::Hmac {
                material.len()
            } else {
                0
            },
            ..Default::default()
        },
    )
    .map_err(import_err)?;
    p.imported = true;
    p.allow_imported_key_rotation = f.bool("allow_rotation");
    p.add_version(KeyEntry::import(kt, &material, private, &t.now()).map_err(import_err)?);
    let _w = t.write.lock().await;
    if t.get_locked(&c.storage, name).await?.is_some() {
        return Err(Error::bad(
            "the import path cannot be used with an existing key; use import-version to rotate an existing imported key",
        ));
    }
    t.store(&c.storage, p).await?;
    Ok(Response::default())
}

async fn import_version(t: Arc<Transit>, c: Call) -> Result<Response> {
    let name = c.fields.str("name");
    let Some(k) = t.get(&c.storage, name).await? else {
        return Err(Error::bad(format!(
            "no key found with name {name}; to import a new key, use the import/ endpoint"
        )));
    };
    if !k.policy.imported {
        return Err(Error::bad(
            "the import_version endpoint can only be used with an imported key",
        ));
    }
    if k.policy.convergent_encryption {
        return Err(Error::bad(
            "import_version cannot be used on keys with convergent encryption enabled",
        ));
    }
    let kt = k.policy.key_type;
    let (material, private) = material(&t, &c, kt).await?;
    let entry = KeyEntry::import(kt, &material, private, &t.now()).map_err(import_err)?;
    let _w = t.write.lock().await;
    let Some(k) = t.get_locked(&c.storage, name).await? else {
        return Err(Error::bad(format!(
            "no key found with name {name}; to import a new key, use the import/ endpoint"
        )));
    };
    let mut p = k.policy.clone();
    // A private key completes a version that has only its public half: the one asked for, or
    // the latest when it is public-only. Otherwise the material is a new version.
    let target = if c.fields.has("version") {
        Some(c.fields.int("version"))
    } else if private
        && p.keys
            .get(&p.latest_version)
            .is_some_and(|e| e.public_key_imported)
    {
        Some(p.latest_version)
    } else {
        None
    };
    match target {
        Some(v) if kt.supports_import_public_key() => {
            let existing = p.entry(v).map_err(import_err)?;
            if !private {
                return Err(Error::bad(
                    "cannot import a public key to a key version that already has a public key set",
                ));
            }
            if !existing.public_key_imported {
                return Err(Error::bad(
                    "private key imported, cannot be updated or add a public key",
                ));
            }
            if existing.public_key != entry.public_key {
                return Err(Error::bad("keys do not match"));
            }
            let mut updated = entry;
            updated.time = existing.time.clone();
            updated.creation_time = existing.creation_time;
            updated.hmac_key = existing.hmac_key.clone();
            p.keys.insert(v, updated);
        }
        _ => p.add_version(entry),
    }
    t.store(&c.storage, p).await?;
    Ok(Response::default())
}
