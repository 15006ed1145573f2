//! Key management: `keys/` (LIST), `keys/:name` (create, read, delete), `keys/:name/config`,
//! `keys/:name/rotate`, `keys/:name/trim`, and `config/keys` (whether `encrypt` may create a
//! missing key). Every change goes through the engine's writer lock and replaces the cached
//! keyring, so the next encrypt or sign sees it at once.
//!
//! The key read (`keys/:name`, also the answer to create, config, rotate and trim) is Vault's
//! shape: the policy's flags and version bounds, and `keys` with one entry per usable version
//! (creation time for symmetric keys; name, public key and creation time for asymmetric
//! ones). It never contains secret material.
//!
//! Crypto: key generation is aws-lc-rs's (see [`super::policy`] for why aws-lc-rs).

use super::encoding::b64_decode;
use super::policy::{KeyType, NewKey, Policy, HMAC_MAX_KEY_SIZE, HMAC_MIN_KEY_SIZE};
use super::{Transit, NAME};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

const CONFIG_KEYS: &str = "config/keys";

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![
        Path::new("keys/?")
            .op(List, list)
            .help("List the named keys."),
        Path::new(&format!("keys/{NAME}"))
            .field("name", Field::string("Name of the key"))
            .field(
                "type",
                Field::string("The type of key to create: aes128-gcm96, aes256-gcm96 (default), chacha20-poly1305, ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048, rsa-3072, rsa-4096, hmac")
                    .default("aes256-gcm96"),
            )
            .field("derived", Field::bool("Enables key derivation mode (a per-request context derives the key)"))
            .field("convergent_encryption", Field::bool("Whether the same plaintext and context give the same ciphertext; requires derived"))
            .field("exportable", Field::bool("Whether the key material may be exported"))
            .field("allow_plaintext_backup", Field::bool("Whether the key may be backed up in plaintext; cannot be disabled once set"))
            .field("context", Field::string("Base64 context: with a derived Ed25519 key, the read returns the public key for it"))
            .field("auto_rotate_period", Field::duration("How long a version lives before automatic rotation; 0 disables it, else at least 1h").default(0))
            .field("key_size", Field::int("HMAC keys only: the key size in bytes (32 to 512)").default(0))
            .op(Read, read)
            .op(Update, create)
            .op(Create, create)
            .op(Delete, delete)
            .help("Create, read or delete a named encryption key."),
        Path::new(&format!("keys/{NAME}/config"))
            .field("name", Field::string("Name of the key"))
            .field("min_decryption_version", Field::int("The oldest version that may decrypt or verify"))
            .field("min_encryption_version", Field::int("The oldest version that may encrypt or sign; 0 means latest"))
            .field("deletion_allowed", Field::bool("Whether the key may be deleted"))
            .field("exportable", Field::bool("Enables export; cannot be disabled once set"))
            .field("allow_plaintext_backup", Field::bool("Enables plaintext backup; cannot be disabled once set"))
            .field("auto_rotate_period", Field::duration("Automatic rotation period; 0 disables it, else at least 1h"))
            .op(Update, config)
            .help("Configure a named key."),
        Path::new(&format!("keys/{NAME}/rotate"))
            .field("name", Field::string("Name of the key"))
            .op(Update, rotate)
            .help("Rotate a named key: add a new latest version."),
        Path::new(&format!("keys/{NAME}/trim"))
            .field("name", Field::string("Name of the key"))
            .field("min_available_version", Field::int("Versions below this are deleted for good"))
            .op(Update, trim)
            .help("Delete a named key's versions below min_available_version."),
        Path::new(CONFIG_KEYS)
            .field("disable_upsert", Field::bool("Whether encrypt may not create a missing key"))
            .op(Read, read_config_keys)
            .op(Update, write_config_keys)
            .help("Engine-wide key settings."),
    ]
}

/// A key as Vault's `keys/:name` shows it; `context` gives derived Ed25519 public keys.
pub(super) fn format_key(k: &super::policy::Keyring, context: &[u8]) -> Result<Value> {
    let p = &k.policy;
    let kt = p.key_type;
    let mut d: BTreeMap<&str, Value> = BTreeMap::new();
    d.insert("name", json!(p.name));
    d.insert("type", json!(kt.as_str()));
    d.insert("derived", json!(p.derived));
    d.insert("deletion_allowed", json!(p.deletion_allowed));
    d.insert("min_available_version", json!(p.min_available_version));
    d.insert("min_decryption_version", json!(p.min_decryption_version));
    d.insert("min_encryption_version", json!(p.min_encryption_version));
    d.insert("latest_version", json!(p.latest_version));
    d.insert("exportable", json!(p.exportable));
    d.insert("allow_plaintext_backup", json!(p.allow_plaintext_backup));
    d.insert("supports_encryption", json!(kt.encryption_supported()));
    d.insert("supports_decryption", json!(kt.decryption_supported()));
    d.insert("supports_signing", json!(kt.signing_supported()));
    d.insert("supports_derivation", json!(kt.derivation_supported()));
    d.insert("auto_rotate_period", json!(p.auto_rotate_period));
    d.insert("imported_key", json!(p.imported));
    if p.key_size != 0 {
        d.insert("key_size", json!(p.key_size));
    }
    if p.imported {
        d.insert(
            "imported_key_allow_rotation",
            json!(p.allow_imported_key_rotation),
        );
    }
    if let Some(b) = &p.backup_info {
        d.insert("backup_info", json!({"time": b.time, "version": b.version}));
    }
    if let Some(r) = &p.restore_info {
        d.insert(
            "restore_info",
            json!({"time": r.time, "version": r.version}),
        );
    }
    if p.derived {
        d.insert("kdf", json!("hkdf_sha256"));
        d.insert("convergent_encryption", json!(p.convergent_encryption));
        if p.convergent_encryption {
            d.insert("convergent_encryption_version", json!(p.convergent_version));
        }
    }
    let visible = p.keys.range(p.min_decryption_version.max(1)..);
    match kt {
        KeyType::Hmac => {}
        t if t.aead().is_some() => {
            let keys: Map<String, Value> = visible
                .map(|(v, e)| (v.to_string(), json!(e.creation_time)))
                .collect();
            d.insert("keys", Value::Object(keys));
        }
        _ => {
            let mut keys = Map::new();
            for (v, e) in visible {
                let public_key = if kt == KeyType::Ed25519 && p.derived {
                    if context.is_empty() {
                        String::new()
                    } else {
                        super::encoding::b64(&k.derived_public_key(*v, context)?)
                    }
                } else {
                    e.formatted_public_key(kt)
                };
                let name = match kt {
                    KeyType::EcdsaP256 => "P-256",
                    KeyType::EcdsaP384 => "P-384",
                    KeyType::EcdsaP521 => "P-521",
                    other => other.as_str(),
                };
                keys.insert(
                    v.to_string(),
                    json!({
                        "certificate_chain": "",
                        "creation_time": e.time,
                        "name": name,
                        "public_key": public_key,
                    }),
                );
            }
            d.insert("keys", Value::Object(keys));
        }
    }
    Ok(Value::Object(
        d.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    ))
}

async fn list(_t: Arc<Transit>, c: Call) -> Result<Response> {
    let names = Transit::key_names(&c.storage).await?;
    Response::list_or_not_found(names)
}

async fn read(t: Arc<Transit>, c: Call) -> Result<Response> {
    let name = c.fields.str("name");
    let Some(k) = t.get(&c.storage, name).await? else {
        return Err(Error::NotFound);
    };
    let context = match c.fields.str("context") {
        "" => vec![],
        s => b64_decode(s).map_err(|_| Error::bad("failed to base64-decode context"))?,
    };
    Ok(Response::data(format_key(&k, &context)?))
}

/// Validates `auto_rotate_period` (seconds): 0, or at least an hour.
pub(super) fn check_rotate_period(secs: u64) -> Result<()> {
    if secs != 0 && secs < 3600 {
        return Err(Error::bad(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    Ok(())
}

async fn create(t: Arc<Transit>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let name = f.str("name");
    let period = f.duration("auto_rotate_period").as_secs();
    check_rotate_period(period)?;
    let derived = f.bool("derived");
    let convergent = f.bool("convergent_encryption");
    if !derived && convergent {
        return Err(Error::bad(
            "convergent encryption requires derivation to be enabled",
        ));
    }
    let type_name = f.str("type");
    let kt = KeyType::parse(type_name)
        .ok_or_else(|| Error::bad(format!("unknown key type {type_name}")))?;
    let key_size = f.int("key_size");
    if key_size != 0 {
        if kt != KeyType::Hmac {
            return Err(Error::bad(format!(
                "key_size is not valid for algorithm {}",
                kt.as_str()
            )));
        }
        if key_size < HMAC_MIN_KEY_SIZE as i64 || key_size > HMAC_MAX_KEY_SIZE as i64 {
            return Err(Error::bad(format!("invalid key_size {key_size}")));
        }
    }
    let _w = t.write.lock().await;
    if let Some(k) = t.get_locked(&c.storage, name).await? {
        return Ok(Response::data(format_key(&k, &[])?));
    }
    let mut p = Policy::new(
        name,
        kt,
        &NewKey {
            derived,
            convergent,
            exportable: f.bool("exportable"),
            allow_plaintext_backup: f.bool("allow_plaintext_backup"),
            auto_rotate_period: period,
            key_size: key_size as usize,
        },
    )?;
    p.rotate(&t.now()).await?;
    let k = t.store(&c.storage, p).await?;
    Ok(Response::data(format_key(&k, &[])?))
}

async fn delete(t: Arc<Transit>, c: Call) -> Result<Response> {
    let name = c.fields.str("name");
    let _w = t.write.lock().await;
    let Some(k) = t.get_locked(&c.storage, name).await? else {
        return Err(Error::bad(format!(
            "error deleting policy {name}: could not delete key; not found"
        )));
    };
    if !k.policy.deletion_allowed {
        return Err(Error::bad(format!(
            "error deleting policy {name}: deletion is not allowed for this key"
        )));
    }
    t.remove(&c.storage, name).await?;
    Ok(Response::default())
}

async fn config(t: Arc<Transit>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let name = f.str("name");
    let _w = t.write.lock().await;
    let Some(k) = t.get_locked(&c.storage, name).await? else {
        return Err(Error::bad(format!(
            "no existing key named {name} could be found"
        )));
    };
    let mut p = k.policy.clone();
    let mut changed = false;
    let mut warnings = vec![];
    if f.has("min_decryption_version") {
        let mut v = f.int("min_decryption_version");
        if v < 0 {
            return Err(Error::bad("min decryption version cannot be negative"));
        }
        if v == 0 {
            v = 1;
            warnings.push(
                "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                    .to_string(),
            );
        }
        if v != p.min_decryption_version {
            if v > p.latest_version {
                return Err(Error::bad(format!(
                    "cannot set min decryption version of {v}, latest key version is {}",
                    p.latest_version
                )));
            }
            p.min_decryption_version = v;
            changed = true;
        }
    }
    if f.has("min_encryption_version") {
        let v = f.int("min_encryption_version");
        if v < 0 {
            return Err(Error::bad("min encryption version cannot be negative"));
        }
        if v != p.min_encryption_version {
            if v > p.latest_version {
                return Err(Error::bad(format!(
                    "cannot set min encryption version of {v}, latest key version is {}",
                    p.latest_version
                )));
            }
            p.min_encryption_version = v;
            changed = true;
        }
    }
    if p.min_encryption_version > 0 && p.min_encryption_version < p.min_decryption_version {
        return Err(Error::bad(format!(
            "cannot set min encryption/decryption values; min encryption version of {} must be greater than or equal to min decryption version of {}",
            p.min_encryption_version, p.min_decryption_version
        )));
    }
    if f.has("deletion_allowed") && f.bool("deletion_allowed") != p.deletion_allowed {
        p.deletion_allowed = f.bool("deletion_allowed");
        changed = true;
    }
    // Exportability and plaintext backup can be switched on, never off (as Vault: a request
    // to switch them off is ignored).
    if f.bool("exportable") && !p.exportable {
        p.exportable = true;
        changed = true;
    }
    if f.bool("allow_plaintext_backup") && !p.allow_plaintext_backup {
        p.allow_plaintext_backup = true;
        changed = true;
    }
    if f.has("auto_rotate_period") {
        let period = f.duration("auto_rotate_period").as_secs();
        if period != p.auto_rotate_period {
            check_rotate_period(period)?;
            if period > 0 && p.imported && !p.allow_imported_key_rotation {
                return Err(Error::bad(
                    "auto rotation cannot be enabled for an imported key that does not allow rotation",
                ));
            }
            p.auto_rotate_period = period;
            changed = true;
        }
    }
    let k = if changed {
        if p.min_available_version > p.min_encryption_version {
            return Err(Error::bad(
                "min encryption version should not be less than min available version",
            ));
        }
        if p.min_available_version > p.min_decryption_version {
            return Err(Error::bad(
                "min decryption version should not be less then min available version",
            ));
        }
        t.store(&c.storage, p).await?
    } else {
        k
    };
    let mut resp = Response::data(format_key(&k, &[])?);
    resp.warnings = warnings;
    Ok(resp)
}

async fn rotate(t: Arc<Transit>, c: Call) -> Result<Response> {
    let name = c.fields.str("name");
    let _w = t.write.lock().await;
    let Some(k) = t.get_locked(&c.storage, name).await? else {
        return Err(Error::bad("key not found"));
    };
    let mut p = k.policy.clone();
    if p.imported && !p.allow_imported_key_rotation {
        return Err(Error::bad(format!(
            "imported key {name} does not allow rotation within Vault"
        )));
    }
    p.rotate(&t.now()).await?;
    let k = t.store(&c.storage, p).await?;
    Ok(Response::data(format_key(&k, &[])?))
}

async fn trim(t: Arc<Transit>, c: Call) -> Result<Response> {
    let name = c.fields.str("name");
    let _w = t.write.lock().await;
    let Some(k) = t.get_locked(&c.storage, name).await? else {
        return Err(Error::bad("invalid key name"));
    };
    if !c.fields.has("min_available_version") {
        return Err(Error::bad("missing min_available_version"));
    }
    let v = c.fields.int("min_available_version");
    let mut p = k.policy.clone();
    let msg = if v < p.min_available_version {
        Some("minimum available version cannot be decremented")
    } else if p.min_encryption_version == 0 {
        Some("minimum available version cannot be set when minimum encryption version is not set")
    } else if p.min_decryption_version == 0 {
        Some("minimum available version cannot be set when minimum decryption version is not set")
    } else if v > p.min_encryption_version {
        Some("minimum available version cannot be greater than minmum encryption version")
    } else if v > p.min_decryption_version {
        Some("minimum available version cannot be greater than minimum decryption version")
    } else if v < 0 {
        Some("minimum available version cannot be negative")
    } else if v == 0 {
        Some("minimum available version should be positive")
    } else {
        None
    };
    if let Some(m) = msg {
        return Err(Error::bad(m));
    }
    if v == p.min_available_version {
        return Ok(Response::data(format_key(&k, &[])?));
    }
    p.min_available_version = v;
    p.keys.retain(|ver, _| *ver >= v);
    let k = t.store(&c.storage, p).await?;
    Ok(Response::data(format_key(&k, &[])?))
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(super) struct KeysConfig {
    #[serde(default)]
    pub disable_upsert: bool,
}

pub(super) async fn keys_config(storage: &tresor_core::barrier::View) -> Result<KeysConfig> {
    Ok(storage.get_json(CONFIG_KEYS).await?.unwrap_or_default())
}

async fn read_config_keys(_t: Arc<Transit>, c: Call) -> Result<Response> {
    let cfg = keys_config(&c.storage).await?;
    Ok(Response::data(
        json!({"disable_upsert": cfg.disable_upsert}),
    ))
}

async fn write_config_keys(_t: Arc<Transit>, c: Call) -> Result<Response> {
    let mut cfg = keys_config(&c.storage).await?;
    if c.fields.has("disable_upsert") {
        cfg.disable_upsert = c.fields.bool("disable_upsert");
        c.storage.put_json(CONFIG_KEYS, &cfg).await?;
    }
    Ok(Response::data(
        json!({"disable_upsert": cfg.disable_upsert}),
    ))
}
