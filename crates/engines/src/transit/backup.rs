//! `backup/:name` and `restore(/:name)`: a whole key — every version and its settings — as one
//! base64 blob, and back. Only keys that are both `exportable` and `allow_plaintext_backup`
//! can be backed up (the blob is plaintext key material); a backup records `backup_info` on the
//! key, a restore `restore_info`. Restoring over an existing key needs `force`. Vault answers
//! these refusals with 500, and so does Tresor (hvac's tests expect it).
//!
//! The blob is base64 of `{"policy": <the stored key>, "tresor_backup": 1}`: Tresor's own key
//! layout, so a Tresor backup restores into Tresor; Vault's backups (Go-specific RSA/ECDSA
//! JSON) are not read.
//!
//! Crypto: none here; keys are parsed by aws-lc-rs on restore (see [`super::policy`]).

use super::encoding::{b64, b64_decode};
use super::policy::{Keyring, Policy, VersionInfo};
use super::{Transit, NAME};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use zeroize::Zeroizing;

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Backup {
    policy: Policy,
    tresor_backup: u32,
}

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![
        Path::new(&format!("backup/{NAME}"))
            .field("name", Field::string("Name of the key"))
            .op(Read, backup)
            .help("Back up a named key (exportable keys with allow_plaintext_backup only)."),
        Path::new(&format!("restore(?:/{NAME})?"))
            .field(
                "name",
                Field::string("The name to restore as; the backup's own name when absent"),
            )
            .field(
                "backup",
                Field::string("The backup, as returned by backup/:name"),
            )
            .field("force", Field::bool("Whether to overwrite an existing key"))
            .op(Update, restore)
            .help("Restore a key from a backup."),
    ]
}

async fn backup(t: Arc<Transit>, c: Call) -> Result<Response> {
    let name = c.fields.str("name");
    let _w = t.write.lock().await;
    let Some(k) = t.get_locked(&c.storage, name).await? else {
        return Err(Error::bad(format!("key \"{name}\" not found")));
    };
    let mut p = k.policy.clone();
    if !p.exportable {
        return Err(Error::bad("exporting is disallowed on the policy"));
    }
    if !p.allow_plaintext_backup {
        return Err(Error::bad("plaintext backup is disallowed on the policy"));
    }
    p.backup_info = Some(VersionInfo {
        time: t.now().rfc3339,
        version: p.latest_version,
    });
    let k = t.store(&c.storage, p).await?;
    let blob = Zeroizing::new(serde_json::to_vec(&Backup {
        policy: k.policy.clone(),
        tresor_backup: FORMAT_VERSION,
    })?);
    Ok(Response::data(json!({ "backup": b64(&blob) })))
}

async fn restore(t: Arc<Transit>, c: Call) -> Result<Response> {
    let blob = c.fields.str("backup");
    if blob.is_empty() {
        return Err(Error::bad("'backup' must be supplied"));
    }
    let raw = Zeroizing::new(b64_decode(blob).map_err(Error::bad)?);
    let Backup {
        mut policy,
        tresor_backup,
    } = serde_json::from_slice(&raw)
        .map_err(|_| Error::bad("failed to decode backup: not a Tresor transit key backup"))?;
    if tresor_backup != FORMAT_VERSION {
        return Err(Error::bad(format!(
            "unsupported backup format version {tresor_backup}"
        )));
    }
    let name = match c.fields.str("name") {
        "" => policy.name.clone(),
        n => n.to_string(),
    };
    if name.is_empty() || name.contains('/') {
        return Err(Error::bad("invalid key name in backup"));
    }
    if policy.latest_version < 1 || !policy.keys.contains_key(&policy.latest_version) {
        return Err(Error::bad("failed to decode backup: no key versions"));
    }
    let _w = t.write.lock().await;
    if !c.fields.bool("force") && t.get_locked(&c.storage, &name).await?.is_some() {
        return Err(Error::bad(format!("key \"{name}\" already exists")));
    }
    policy.name = name;
    policy.restore_info = Some(VersionInfo {
        time: t.now().rfc3339,
        version: policy.latest_version,
    });
    // Parse before storing: a corrupt backup must not replace a working key.
    let policy = Keyring::new(policy)
        .map_err(|e| Error::bad(format!("failed to restore key: {}", e.message())))?
        .policy;
    t.store(&c.storage, policy).await?;
    Ok(Response::default())
}
