//! Secret IDs: generate (`role/:role_name/secret-id`), assign (`custom-secret-id`), list
//! accessors, look up and destroy by value or by accessor.
//!
//! A secret ID is stored only as `HMAC(salt, secret_id)` in its storage key; its accessor (a
//! UUID that can list, look up and destroy it but not log in) is indexed the same way. Expired
//! secret IDs read as absent and are removed by login or `tidy/secret-id`. Status codes follow
//! OpenBao, including its quirks: 500 for an unknown role on lookup/destroy and for malformed
//! CIDR lists, 204 for a secret ID that does not exist, 404 with `data.error` for an unknown
//! accessor on lookup.

use super::role::role_name;
use super::{
    now_ns, role_does_not_exist, secret_key, AccessorEntry, AppRole, Role, SecretId, MAX_HMAC_INPUT,
};
use crate::{cidr, mount_max_ttl, named};
use base64::Engine;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::util::uuid;
use tresor_core::{Error, Result};
use tresor_storage::WriteOp;

fn role_path(suffix: &str) -> Path<AppRole> {
    Path::new(&format!("role/{}/{suffix}", named("role_name")))
        .field("role_name", Field::string("Name of the role."))
}

fn generate_fields(p: Path<AppRole>) -> Path<AppRole> {
    p.field("metadata", Field::string("Metadata tied to the secret ID: a JSON object of strings (or key=value pairs), attached to tokens issued with it."))
        .field("cidr_list", Field::list("CIDR blocks the secret ID may log in from; a subset of the role's secret_id_bound_cidrs."))
        .field("token_bound_cidrs", Field::list("CIDR blocks the issued tokens are bound to; a subset of the role's token_bound_cidrs."))
        .field("num_uses", Field::int("Number of times this secret ID can be used; defaults to the role's secret_id_num_uses."))
        .field("ttl", Field::duration("Lifetime of this secret ID; defaults to the role's secret_id_ttl."))
}

pub(crate) fn paths() -> Vec<Path<AppRole>> {
    vec![
        generate_fields(role_path("secret-id/?"))
            .op(Update, |b: Arc<AppRole>, c: Call| async move { b.create(c, uuid()).await })
            .op(List, list)
            .help("Generate a SecretID against this role (POST), or list the accessors of its SecretIDs (LIST)."),
        generate_fields(role_path("custom-secret-id/?"))
            .field("secret_id", Field::string("SecretID to be attached to the role."))
            .op(Update, |b: Arc<AppRole>, c: Call| async move {
                let s = c.fields.str("secret_id").to_string();
                b.create(c, s).await
            })
            .help("Assign a SecretID of choice against the role."),
        role_path("secret-id/lookup/?").field("secret_id", Field::string("SecretID attached to the role.")).op(Update, lookup).help("Read the properties of an issued secret_id."),
        role_path("secret-id/destroy/?")
            .field("secret_id", Field::string("SecretID attached to the role."))
            .op(Update, destroy)
            .op(Delete, destroy)
            .help("Invalidate an issued secret_id."),
        role_path("secret-id-accessor/lookup/?")
            .field("secret_id_accessor", Field::string("Accessor of the SecretID"))
            .op(Update, accessor_lookup)
            .help("Read an issued secret_id, using its accessor."),
        role_path("secret-id-accessor/destroy/?")
            .field("secret_id_accessor", Field::string("Accessor of the SecretID"))
            .op(Update, accessor_destroy)
            .op(Delete, accessor_destroy)
            .help("Delete an issued secret_id, using its accessor."),
    ]
}

/// Vault's `strutil.ParseArbitraryKeyValues`: a JSON object of strings, possibly base64-encoded,
/// or comma-separated `key=value` pairs (lower-cased, as Vault does).
pub fn parse_metadata(input: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut input = input.trim().to_string();
    if input.is_empty() {
        return Ok(BTreeMap::new());
    }
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&input) {
        if let Ok(s) = String::from_utf8(decoded) {
            input = s;
        }
    }
    let out = match serde_json::from_str::<BTreeMap<String, String>>(&input) {
        Ok(m) => m,
        Err(_) => {
            let mut m = BTreeMap::new();
            let mut pairs: Vec<String> = input
                .split(',')
                .map(|p| p.trim().to_lowercase())
                .filter(|p| !p.is_empty())
                .collect();
            pairs.sort();
            pairs.dedup();
            for kv in pairs {
                let parts: Vec<&str> = kv.split('=').collect();
                let (k, v) = match parts.as_slice() {
                    [k, v] if !k.trim().is_empty() && !v.trim().is_empty() => (k.trim(), v.trim()),
                    _ => return Err("failed to parse the input: invalid <key,value> format".into()),
                };
                m.insert(k.to_string(), v.to_string());
            }
            m
        }
    };
    if let Some((k, _)) = out.iter().find(|(k, v)| !k.is_empty() && v.is_empty()) {
        return Err(format!("invalid value for key {k:?}"));
    }
    Ok(out)
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    format!(
        "[{}]",
        list.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn subset_error(role: &[String], secret: &[String]) -> Error {
    Error::bad(format!(
        "failed to verify subset relationship between CIDR blocks on the role {} and CIDR blocks on the secret ID {}",
        go_quoted(role),
        go_quoted(secret)
    ))
}

/// Checks that a secret ID's blocks lie inside the role's (bare IPs on the role are hosts).
pub(crate) fn check_subset(role: &[String], secret: &[String]) -> Result<()> {
    if secret.is_empty() || cidr::is_subset(role, secret) {
        Ok(())
    } else {
        Err(subset_error(role, secret))
    }
}

/// The secret ID behind an accessor, if the accessor belongs to `role`.
async fn by_accessor(
    b: &AppRole,
    view: &View,
    role: &Role,
    accessor: &str,
) -> Result<Option<(AccessorEntry, Option<SecretId>)>> {
    let key = b.accessor_key(view, accessor).await?;
    let Some(a) = view.get_json::<AccessorEntry>(&key).await? else {
        return Ok(None);
    };
    let secret = if a.role_name == role.name {
        view.get_json::<SecretId>(&secret_key(&role.name, &a.secret_id_hmac))
            .await?
    } else {
        None
    };
    Ok(Some((a, secret)))
}

impl AppRole {
    /// Vault's `handleRoleSecretIDCommon`.
    async fn create(self: Arc<Self>, c: Call, secret_id: String) -> Result<Response> {
        let f = &c.fields;
        let name = role_name(&c);
        if secret_id.is_empty() {
            return Err(Error::bad("missing secret_id"));
        }
        if secret_id.len() > MAX_HMAC_INPUT {
            return Err(Error::bad(format!("failed to create HMAC of secret_id: value is longer than maximum of {MAX_HMAC_INPUT} bytes")));
        }
        let _guard = self.role_locks.lock(&name).await;
        let role = self
            .role(&c.storage, &name)
            .await?
            .ok_or_else(|| Error::NotFoundMsg(role_does_not_exist(&name)))?;
        if !role.bind_secret_id {
            return Err(Error::bad("bind_secret_id is not set on the role"));
        }
        let cidr_list = f.strings("cidr_list");
        cidr::validate_blocks(&cidr_list)
            .map_err(|e| Error::bad(format!("failed to validate CIDR blocks: {e}")))?;
        check_subset(role.bound_cidrs(), &cidr_list)?;
        let token_cidrs = f.strings("token_bound_cidrs");
        cidr::validate_blocks(&token_cidrs)
            .map_err(|e| Error::bad(format!("failed to validate token CIDR blocks: {e}")))?;
        check_subset(&role.token.token_bound_cidrs, &token_cidrs)?;
        let num_uses = if f.has("num_uses") {
            let n = f.int("num_uses");
            if n < 0 {
                return Err(Error::bad("num_uses cannot be negative"));
            }
            if role.secret_id_num_uses > 0 && (n == 0 || n > role.secret_id_num_uses) {
                return Err(Error::bad(
                    "num_uses cannot be higher than the role's secret_id_num_uses",
                ));
            }
            n
        } else {
            role.secret_id_num_uses
        };
        let ttl = if f.has("ttl") {
            let t = f.duration("ttl").as_secs();
            if role.secret_id_ttl > 0 && (t == 0 || t > role.secret_id_ttl) {
                return Err(Error::bad(
                    "ttl cannot be longer than the role's secret_id_ttl",
                ));
            }
            t
        } else {
            role.secret_id_ttl
        };
        let metadata = parse_metadata(f.str("metadata"))
            .map_err(|e| Error::bad(format!("failed to parse metadata: {e}")))?;
        // Vault caps a secret ID's life at the mount's max lease TTL.
        let ttl = ttl.min(mount_max_ttl(&c.mount));
        let hmac = self.salt.hmac(&c.storage, &secret_id).await?;
        let _s = self.secret_locks.lock(&hmac).await;
        let key = secret_key(&name, &hmac);
        if c.storage.get(&key).await?.is_some() {
            return Err(Error::bad(
                "failed to store secret_id: SecretID is already registered",
            ));
        }
        let now = now_ns();
        let entry = SecretId {
            secret_id_accessor: uuid(),
            secret_id_num_uses: num_uses,
            secret_id_ttl: ttl,
            creation_ns: now,
            expiration_ns: if ttl > 0 {
                now + (ttl as i64) * 1_000_000_000
            } else {
                0
            },
            last_updated_ns: now,
            metadata,
            cidr_list,
            token_bound_cidrs: token_cidrs,
        };
        let accessor = AccessorEntry {
            secret_id_hmac: hmac.clone(),
            role_name: name.clone(),
        };
        c.storage
            .write_batch(vec![
                WriteOp::Put(
                    self.accessor_key(&c.storage, &entry.secret_id_accessor)
                        .await?,
                    serde_json::to_vec(&accessor)?,
                ),
                WriteOp::Put(key, serde_json::to_vec(&entry)?),
            ])
            .await?;
        Ok(Response::data(json!({
            "secret_id": secret_id,
            "secret_id_accessor": entry.secret_id_accessor,
            "secret_id_num_uses": entry.secret_id_num_uses,
            "secret_id_ttl": entry.secret_id_ttl,
        })))
    }
}

async fn list(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let name = role_name(&c);
    b.role(&c.storage, &name)
        .await?
        .ok_or_else(|| Error::bad(role_does_not_exist(&name)))?;
    let mut keys = Vec::new();
    for h in c.storage.list(&format!("secret_id/{name}/")).await? {
        if let Some(s) = c
            .storage
            .get_json::<SecretId>(&secret_key(&name, &h))
            .await?
        {
            keys.push(s.secret_id_accessor);
        }
    }
    Response::list_or_not_found(keys)
}

/// The role and the secret ID's HMAC for the lookup/destroy-by-value endpoints.
async fn by_value(b: &AppRole, c: &Call) -> Result<(Role, String)> {
    let secret = c.fields.str("secret_id");
    if secret.is_empty() {
        return Err(Error::bad("missing secret_id"));
    }
    let name = role_name(c);
    let role = b
        .role(&c.storage, &name)
        .await?
        .ok_or_else(|| Error::bad(role_does_not_exist(&name)))?;
    if secret.len() > MAX_HMAC_INPUT {
        return Err(Error::bad(format!("failed to create HMAC of secret_id: value is longer than maximum of {MAX_HMAC_INPUT} bytes")));
    }
    Ok((role, b.salt.hmac(&c.storage, secret).await?))
}

async fn lookup(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let (role, hmac) = by_value(&b, &c).await?;
    let Some(entry) = c
        .storage
        .get_json::<SecretId>(&secret_key(&role.name, &hmac))
        .await?
    else {
        return Ok(Response::default());
    };
    if entry.is_expired(now_ns()) {
        return Ok(Response::default());
    }
    // A secret ID without its accessor index is invalid: remove it (as Vault).
    if c.storage
        .get(
            &b.accessor_key(&c.storage, &entry.secret_id_accessor)
                .await?,
        )
        .await?
        .is_none()
    {
        let _s = b.secret_locks.lock(&hmac).await;
        c.storage.delete(&secret_key(&role.name, &hmac)).await?;
        return Err(Error::bad("invalid secret id"));
    }
    Ok(crate::sorted_data(
        entry.to_json().as_object().cloned().unwrap_or_default(),
    ))
}

async fn destroy(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let (role, hmac) = by_value(&b, &c).await?;
    let _s = b.secret_locks.lock(&hmac).await;
    if let Some(entry) = c
        .storage
        .get_json::<SecretId>(&secret_key(&role.name, &hmac))
        .await?
    {
        b.delete_secret(&c.storage, &role.name, &hmac, &entry.secret_id_accessor)
            .await?;
    }
    Ok(Response::default())
}

/// The role and accessor for the by-accessor endpoints.
async fn accessor_args(b: &AppRole, c: &Call) -> Result<(Role, String)> {
    let accessor = c.fields.str("secret_id_accessor");
    if accessor.is_empty() {
        return Err(Error::bad("missing secret_id_accessor"));
    }
    let name = role_name(c);
    let role = b
        .role(&c.storage, &name)
        .await?
        .ok_or_else(|| Error::bad(role_does_not_exist(&name)))?;
    Ok((role, accessor.to_string()))
}

fn no_accessor(accessor: &str) -> String {
    format!("failed to find accessor entry for secret_id_accessor: {accessor:?}")
}

async fn accessor_lookup(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let (role, accessor) = accessor_args(&b, &c).await?;
    match by_accessor(&b, &c.storage, &role, &accessor).await? {
        None => Ok(Response {
            status: Some(404),
            ..Response::data(json!({ "error": no_accessor(&accessor) }))
        }),
        Some((_, Some(entry))) if !entry.is_expired(now_ns()) => Ok(crate::sorted_data(
            entry.to_json().as_object().cloned().unwrap_or_default(),
        )),
        Some(_) => Ok(Response::default()),
    }
}

async fn accessor_destroy(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let (role, accessor) = accessor_args(&b, &c).await?;
    let (a, entry) = by_accessor(&b, &c.storage, &role, &accessor)
        .await?
        .ok_or_else(|| Error::bad(no_accessor(&accessor)))?;
    let _s = b.secret_locks.lock(&a.secret_id_hmac).await;
    if entry.is_none() {
        return Err(Error::Forbidden("invalid secret id accessor".into()));
    }
    b.delete_secret(&c.storage, &role.name, &a.secret_id_hmac, &accessor)
        .await?;
    Ok(Response::default())
}

#[cfg(test)]
mod tests {
    use super::parse_metadata;

    #[test]
    fn metadata_forms() {
        assert!(parse_metadata("").unwrap().is_empty());
        assert_eq!(
            parse_metadata(r#"{"foo":"bar","B":"two"}"#)
                .unwrap()
                .get("B")
                .unwrap(),
            "two"
        );
        let b64 =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, r#"{"k":"v"}"#);
        assert_eq!(parse_metadata(&b64).unwrap().get("k").unwrap(), "v");
        assert_eq!(parse_metadata("A=1, b=2").unwrap().get("a").unwrap(), "1");
        assert_eq!(
            parse_metadata("bad").unwrap_err(),
            "failed to parse the input: invalid <key,value> format"
        );
        assert!(parse_metadata(r#"{"foo":1}"#).is_err());
        assert!(parse_metadata(r#"{"foo":""}"#).is_err());
    }
}
