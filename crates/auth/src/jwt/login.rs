//! `login`: `role` + `jwt` → a token, in the order and with the messages of OpenBao's
//! `pathLogin` (all denials are 400 "error validating token: ..." and the like, except a
//! client outside the role's `token_bound_cidrs`, 403).
//!
//! Steps: configuration and role (`default_role` when none is named; a role of type `oidc`
//! is refused); the token's algorithm (`none` and `HS*` always refused, then
//! `jwt_supported_algs`); its signature (static keys, or the cached JWKS, refreshed once on an
//! unknown `kid`); the claims (issuer, subject, audiences, time claims with the role's
//! leeways); an `aud` claim with no audience bound to the role is refused; the `user_claim`
//! (the alias name), `claim_mappings` and `groups_claim`; the bound claims.

use super::claims::{self, Expected};
use super::config::Source;
use super::keys::{self, parse_supported, Alg};
use super::Jwt;
use crate::token_fields::check_token_cidrs;
use serde_json::{Map, Value};
use std::sync::Arc;
use time::OffsetDateTime;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

pub(crate) fn paths() -> Vec<Path<Jwt>> {
    vec![Path::new("login")
        .field("role", Field::string("The role to log in against."))
        .field("jwt", Field::string("The signed JWT to validate."))
        .op(Update, login)
        .help("Authenticates to Tresor using a JWT (or OIDC) token.")]
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::bad(format!("error validating token: {e}"))
}

/// Verifies the token's signature against the configured key source; returns its claims.
pub(crate) async fn verify_signature(
    b: &Jwt,
    source: &Source,
    jws: &keys::Jws,
    alg: Alg,
) -> std::result::Result<(), String> {
    match source {
        Source::Static(keys) => {
            if jws.verified_by(alg, keys) {
                Ok(())
            } else {
                Err("error verifying token signature: failed to verify id token signature".into())
            }
        }
        Source::Remote(loc) => {
            let kid = jws.kid.as_deref();
            let keys = b
                .keys
                .keys(loc, kid, false)
                .await
                .map_err(|e| format!("error verifying token signature: fetching keys: {e}"))?;
            if jws.verified_by(alg, &keys) {
                return Ok(());
            }
            // Keys rotate: refresh (rate-limited) and try once more.
            let keys = b
                .keys
                .keys(loc, kid, true)
                .await
                .map_err(|e| format!("error verifying token signature: fetching keys: {e}"))?;
            if keys.is_empty() {
                if let Some(k) = kid {
                    return Err(format!(
                        "error verifying token signature: no key with ID (kid) {k:?} in the key set"
                    ));
                }
            }
            if jws.verified_by(alg, &keys) {
                Ok(())
            } else {
                Err("error verifying token signature: failed to verify id token signature".into())
            }
        }
    }
}

async fn login(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let cfg = b
        .config(&c.storage)
        .await?
        .ok_or_else(|| Error::bad("could not load configuration"))?;
    let mut role_name = c.fields.str("role").to_lowercase();
    if role_name.is_empty() {
        role_name = cfg.default_role.clone();
    }
    if role_name.is_empty() {
        return Err(Error::bad("missing role"));
    }
    let role = b
        .role(&c.storage, &role_name)
        .await?
        .ok_or_else(|| Error::bad(format!("role {role_name:?} could not be found")))?;
    if role.role_type == "oidc" {
        return Err(Error::bad("role with oidc role_type is not allowed"));
    }
    let token = c.fields.str("jwt");
    if token.is_empty() {
        return Err(Error::bad("missing token"));
    }
    check_token_cidrs(c.remote_addr.as_deref(), &role.token.token_bound_cidrs)?;
    let source = cfg
        .source()
        .map_err(|e| Error::bad(format!("error configuring token validator: {e}")))?;
    let allowed: Vec<Alg> = cfg
        .jwt_supported_algs
        .iter()
        .filter_map(|a| parse_supported(a).ok())
        .collect();

    let jws = keys::parse(token).map_err(invalid)?;
    let alg = jws
        .algorithm(&allowed)
        .map_err(|e| invalid(format!("invalid algorithm (alg) header parameter: {e}")))?;
    verify_signature(&b, &source, &jws, alg)
        .await
        .map_err(invalid)?;
    let claims_map = &jws.claims;
    let expected = Expected {
        issuer: &cfg.bound_issuer,
        subject: &role.bound_subject,
        audiences: &role.bound_audiences,
        not_before_leeway: role.not_before_leeway,
        expiration_leeway: role.expiration_leeway,
        clock_skew_leeway: role.clock_skew_leeway,
        allow_missing_times: false,
    };
    claims::validate(
        claims_map,
        &expected,
        OffsetDateTime::now_utc().unix_timestamp(),
    )
    .map_err(invalid)?;
    if role.bound_audiences.is_empty()
        && claims::get(claims_map, "aud")
            .and_then(|a| a.as_array().map(|a| !a.is_empty()))
            .unwrap_or(false)
    {
        return Err(Error::bad(
            "audience claim found in JWT but no audiences bound to the role",
        ));
    }

    let user = user_claim(claims_map, &role.user_claim, role.user_claim_json_pointer)?;
    let mut alias_metadata =
        claims::metadata(claims_map, &role.claim_mappings).map_err(Error::bad)?;
    alias_metadata.insert("role".into(), role_name.clone());
    let groups = if role.groups_claim.is_empty() {
        vec![]
    } else {
        claims::groups(claims_map, &role.groups_claim)
            .map_err(|e| Error::bad(format!("failed to fetch groups: {e}")))?
    };
    claims::check_bound(
        &role.bound_claims,
        role.bound_claims_type == "glob",
        claims_map,
    )
    .map_err(|e| Error::bad(format!("error validating claims: {e}")))?;

    let (mut grant, warnings) = role
        .token
        .grant(&c.mount, user.clone(), alias_metadata.clone());
    grant.alias_name = Some(user);
    grant.alias_metadata = alias_metadata;
    grant.group_aliases = groups;
    Ok(Response {
        login: Some(Box::new(grant)),
        warnings,
        ..Default::default()
    })
}

/// The user claim's value (the alias name): a string claim, by name or JSON pointer.
pub(crate) fn user_claim(claims: &Map<String, Value>, name: &str, pointer: bool) -> Result<String> {
    let v = if pointer {
        claims::get(claims, name).map(|v| v.into_owned())
    } else {
        claims.get(name).filter(|v| !v.is_null()).cloned()
    };
    let v = v.ok_or_else(|| Error::bad(format!("claim {name:?} not found in token")))?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::bad(format!("claim {name:?} could not be converted to string")))
}
