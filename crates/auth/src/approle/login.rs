//! `login`: `role_id` + `secret_id` → a token with the role's policies and TTLs, and metadata
//! (the secret ID's, plus `role_name`).
//!
//! As in Vault: an unknown `role_id`, an unknown, destroyed, expired or used-up `secret_id`
//! all answer 400 "invalid role or secret ID"; a client outside the secret ID's `cidr_list` or
//! the role's `secret_id_bound_cidrs` gets 400 "source address ... unauthorized ..."; a missing
//! `role_id` or `secret_id` is a 400 (Vault answers 500 for the first). A role with
//! `bind_secret_id = false` needs only the `role_id` (it must then have CIDR bounds).
//!
//! Differences: all CIDR checks run before a use of the secret ID is spent (Vault spends it
//! first, so a refused login from the wrong address burns a use); and since the core cannot yet
//! bind tokens to `token_bound_cidrs`, a login from outside them is refused (403) instead of
//! yielding a token that would be unusable from there.

use super::{now_ns, secret_key, AppRole, SecretId};
use crate::cidr;
use crate::token_fields::check_token_cidrs;
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};
use tresor_storage::WriteOp;

pub(crate) fn paths() -> Vec<Path<AppRole>> {
    vec![Path::new("login")
        .field("role_id", Field::string("Unique identifier of the Role. Required to be supplied when the 'bind_secret_id' constraint is set."))
        .field("secret_id", Field::string("SecretID belong to the App role").default(""))
        .op(Update, login)
        .help("Issue a token based on the credentials supplied.")]
}

fn invalid() -> Error {
    Error::bad("invalid role or secret ID")
}

/// The client's address, required when a CIDR bound applies.
fn remote(c: &Call) -> Result<&str> {
    c.remote_addr
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::internal("failed to get connection information"))
}

async fn login(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let role_id = c.fields.str("role_id").trim().to_string();
    if role_id.is_empty() {
        return Err(Error::bad("missing role_id"));
    }
    let role = b
        .role_by_id(&c.storage, &role_id)
        .await?
        .ok_or_else(invalid)?;
    let attempt = b.lockout.begin(&c.storage, &role_id).await?;
    let mut metadata = BTreeMap::new();
    let mut token_cidrs = role.token.token_bound_cidrs.clone();
    if role.bind_secret_id {
        let secret = c.fields.str("secret_id").trim().to_string();
        if secret.is_empty() {
            return Err(Error::bad("missing secret_id"));
        }
        let hmac = b.salt.hmac(&c.storage, &secret).await?;
        let key = secret_key(&role.name, &hmac);
        let entry = match c.storage.get_json::<SecretId>(&key).await? {
            Some(e) if e.is_expired(now_ns()) => {
                b.delete_secret(&c.storage, &role.name, &hmac, &e.secret_id_accessor)
                    .await?;
                None
            }
            e => e,
        };
        let Some(entry) = entry else {
            if let Some(a) = attempt {
                a.fail(&c.storage, &b.salt, true).await?;
            }
            return Err(invalid());
        };
        // A secret ID whose accessor index is gone is invalid (and removed), as in Vault.
        if c.storage
            .get(
                &b.accessor_key(&c.storage, &entry.secret_id_accessor)
                    .await?,
            )
            .await?
            .is_none()
        {
            c.storage.delete(&key).await?;
            return Err(invalid());
        }
        super::secret_id::check_subset(role.bound_cidrs(), &entry.cidr_list)?;
        if !entry.cidr_list.is_empty() {
            let r = remote(&c)?;
            if !cidr::remote_in(r, &entry.cidr_list) {
                return Err(Error::bad(format!(
                    "source address {r:?} unauthorized by CIDR restrictions on the secret ID"
                )));
            }
        }
        check_role_cidrs(&c, role.bound_cidrs())?;
        if !entry.token_bound_cidrs.is_empty() {
            token_cidrs = entry.token_bound_cidrs.clone();
        }
        check_token_cidrs(c.remote_addr.as_deref(), &token_cidrs)?;
        // Spend one use, atomically (of racing logins with one secret ID, as many succeed as
        // it had uses left, whichever server they reach); the last one removes the secret ID.
        let accessor_key = if entry.secret_id_accessor.is_empty() {
            None
        } else {
            Some(
                b.accessor_key(&c.storage, &entry.secret_id_accessor)
                    .await?,
            )
        };
        let spent = c
            .storage
            .update_json::<SecretId, _>(&key, |stored| {
                let Some(mut stored) = stored else {
                    return Ok((vec![], false));
                };
                let ops = match stored.secret_id_num_uses {
                    0 => vec![],
                    1 => {
                        let mut ops = vec![WriteOp::Delete(key.clone())];
                        ops.extend(accessor_key.clone().map(WriteOp::Delete));
                        ops
                    }
                    _ => {
                        stored.secret_id_num_uses -= 1;
                        stored.last_updated_ns = now_ns();
                        vec![WriteOp::Put(key.clone(), serde_json::to_vec(&stored)?)]
                    }
                };
                Ok((ops, true))
            })
            .await?;
        if !spent {
            if let Some(a) = attempt {
                a.fail(&c.storage, &b.salt, true).await?;
            }
            return Err(invalid());
        }
        metadata = entry.metadata;
    } else {
        check_role_cidrs(&c, role.bound_cidrs())?;
        check_token_cidrs(c.remote_addr.as_deref(), &token_cidrs)?;
    }
    if let Some(a) = attempt {
        a.succeed(&c.storage, &b.salt).await?;
    }
    metadata.insert("role_name".into(), role.name.clone());
    let (mut grant, warnings) = role.token.grant(&c.mount, String::new(), metadata);
    // The entity alias of an AppRole login is its role_id, as in Vault.
    grant.alias_name = Some(role_id.clone());
    grant.alias_metadata = BTreeMap::from([("role_name".to_string(), role.name.clone())]);
    Ok(Response {
        login: Some(Box::new(grant)),
        warnings,
        ..Default::default()
    })
}

fn check_role_cidrs(c: &Call, bound: &[String]) -> Result<()> {
    if bound.is_empty() {
        return Ok(());
    }
    let r = remote(c)?;
    if !cidr::remote_in(r, bound) {
        return Err(Error::bad(format!(
            "source address {r:?} unauthorized by CIDR restrictions on the role"
        )));
    }
    Ok(())
}
