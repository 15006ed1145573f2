//! `login`: `role` + `jwt` (a service account token) → a token, in the order of OpenBao's
//! `pathLogin`:
//!
//! 1. `role` and `jwt` are required (400 "missing role" / "missing jwt"); an unknown role is
//!    400 `invalid role name "x"`; a client outside the role's `token_bound_cidrs` gets 403.
//! 2. The JWT is parsed and its claims checked locally: its signature only when `pem_keys`
//!    are configured (RS*/ES*), the issuer unless `disable_iss_validation`, the role's
//!    `audience`, and the time claims when present. Then the service account name and
//!    namespace it claims must match the role's bounds (globs): 403 "service account name not
//!    authorized" / "namespace not authorized". This happens before any call to the cluster.
//! 3. The TokenReview API must confirm the token (`status.authenticated`), for the role's
//!    audience if it has one, and name the same service account (name, namespace, UID) as the
//!    claims ([`super::review`]). A denial is a 403 with the reason; a failure to ask the
//!    cluster (unreachable, bad CA, reviewer not allowed) is a 500 with the reason.

use super::review::{self, Outcome};
use super::role::ALIAS_NAME;
use super::{Kubernetes, LOCAL_CA, LOCAL_JWT};
use crate::jwt::claims::{self, any_glob, Expected};
use crate::jwt::keys::{self, Alg, VerifyingKey};
use crate::token_fields::check_token_cidrs;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

/// The issuer of legacy service account tokens.
pub const DEFAULT_ISSUER: &str = "kubernetes/serviceaccount";

/// Algorithms Kubernetes signs service account tokens with.
const ALGS: [Alg; 6] = [
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::ES256,
    Alg::ES384,
    Alg::ES512,
];

pub(crate) fn paths() -> Vec<Path<Kubernetes>> {
    vec![Path::new("login")
        .field("role", Field::string("Name of the role against which the login is being attempted. This field is required"))
        .field("jwt", Field::string("A signed JWT for authenticating a service account. This field is required."))
        .op(Update, login)
        .help("Authenticates Kubernetes service accounts with Tresor.")]
}

fn denied(msg: impl Into<String>) -> Error {
    Error::Forbidden(msg.into())
}

/// The service account a token's claims name (legacy secret-based tokens carry flat
/// `kubernetes.io/serviceaccount/*` claims; projected tokens a `kubernetes.io` object).
#[derive(Debug, Default, Clone)]
pub struct ServiceAccount {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub secret_name: String,
    pub audiences: Vec<String>,
}

impl ServiceAccount {
    pub fn from_claims(c: &Map<String, Value>) -> ServiceAccount {
        let flat = |k: &str| {
            c.get(&format!("kubernetes.io/serviceaccount/{k}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut sa = ServiceAccount {
            name: flat("service-account.name"),
            uid: flat("service-account.uid"),
            namespace: flat("namespace"),
            secret_name: flat("secret.name"),
            audiences: match claims::get(c, "aud") {
                Some(v) => v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                None => vec![],
            },
        };
        if let Some(k) = c.get("kubernetes.io").and_then(Value::as_object) {
            let s = |p: &str| {
                Value::Object(k.clone())
                    .pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            sa.namespace = s("/namespace");
            if k.get("serviceaccount").is_some_and(Value::is_object) {
                sa.name = s("/serviceaccount/name");
                sa.uid = s("/serviceaccount/uid");
            }
        }
        sa
    }
}

async fn login(b: Arc<Kubernetes>, c: Call) -> Result<Response> {
    let role_name = c.fields.str("role").to_string();
    if role_name.is_empty() {
        return Err(Error::bad("missing role"));
    }
    let jwt = c.fields.str("jwt").trim().to_string();
    if jwt.is_empty() {
        return Err(Error::bad("missing jwt"));
    }
    let role = b
        .role(&c.storage, &role_name)
        .await?
        .ok_or_else(|| Error::bad(format!("invalid role name {role_name:?}")))?;
    check_token_cidrs(c.remote_addr.as_deref(), &role.token.token_bound_cidrs)?;
    let cfg = b
        .config(&c.storage)
        .await?
        .ok_or_else(|| Error::bad("could not load backend configuration"))?;

    // Local checks of the token, before asking the cluster.
    let jws = keys::parse(&jwt).map_err(denied)?;
    if !cfg.pem_keys.is_empty() {
        let alg = jws
            .algorithm(&ALGS)
            .map_err(|e| denied(format!("invalid algorithm (alg) header parameter: {e}")))?;
        let mut keys: Vec<VerifyingKey> = Vec::new();
        for p in &cfg.pem_keys {
            keys.extend(VerifyingKey::from_pem(p).map_err(Error::internal)?);
        }
        if !jws.verified_by(alg, &keys) {
            return Err(denied(
                "error verifying token signature: failed to verify id token signature",
            ));
        }
    }
    let issuer = if cfg.disable_iss_validation {
        ""
    } else if cfg.issuer.is_empty() {
        DEFAULT_ISSUER
    } else {
        cfg.issuer.as_str()
    };
    let audiences: Vec<String> = if role.audience.is_empty() {
        vec![]
    } else {
        vec![role.audience.clone()]
    };
    claims::validate(
        &jws.claims,
        &Expected {
            issuer,
            audiences: &audiences,
            allow_missing_times: true,
            ..Default::default()
        },
        OffsetDateTime::now_utc().unix_timestamp(),
    )
    .map_err(denied)?;
    let sa = ServiceAccount::from_claims(&jws.claims);
    let names = &role.bound_service_account_names;
    // `*` alone allows every name; globs do the rest.
    if !any_glob(names, &sa.name) {
        return Err(denied("service account name not authorized"));
    }
    let namespaces = &role.bound_service_account_namespaces;
    if !any_glob(namespaces, &sa.namespace) {
        return Err(denied("namespace not authorized"));
    }
    let alias_name = if role.alias_name_source == ALIAS_NAME {
        if sa.namespace.is_empty() || sa.name.is_empty() {
            return Err(Error::bad("service account namespace and name must be set"));
        }
        format!("{}/{}", sa.namespace, sa.name)
    } else {
        if sa.uid.is_empty() {
            return Err(Error::bad("could not parse UID from claims"));
        }
        sa.uid.clone()
    };

    // The cluster's word.
    let local = !cfg.disable_local_ca_jwt;
    let ca = if cfg.kubernetes_ca_cert.is_empty() && local {
        std::fs::read_to_string(LOCAL_CA).unwrap_or_default()
    } else {
        cfg.kubernetes_ca_cert.clone()
    };
    let bearer = if !cfg.token_reviewer_jwt.is_empty() {
        cfg.token_reviewer_jwt.clone()
    } else if local {
        std::fs::read_to_string(LOCAL_JWT)
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| jwt.clone())
    } else {
        jwt.clone()
    };
    let want_aud = if role.audience.is_empty() {
        sa.audiences.clone()
    } else {
        vec![role.audience.clone()]
    };
    let r = review::review(&cfg.kubernetes_host, &ca, &bearer, &jwt, &want_aud)
        .await
        .map_err(|o| match o {
            Outcome::Denied(m) => denied(m),
            Outcome::Failed(m) => Error::internal(m),
        })?;
    if r.name != sa.name {
        return Err(denied("JWT names did not match"));
    }
    if r.uid != sa.uid {
        return Err(denied("JWT UIDs did not match"));
    }
    if r.namespace != sa.namespace {
        return Err(denied("JWT namespaces did not match"));
    }

    let alias_metadata = BTreeMap::from([
        ("service_account_uid".to_string(), sa.uid.clone()),
        ("service_account_name".to_string(), sa.name.clone()),
        (
            "service_account_namespace".to_string(),
            sa.namespace.clone(),
        ),
        (
            "service_account_secret_name".to_string(),
            sa.secret_name.clone(),
        ),
    ]);
    let mut metadata = alias_metadata.clone();
    metadata.insert("role".into(), role_name.clone());
    let (mut grant, warnings) =
        role.token
            .grant(&c.mount, format!("{}-{}", sa.namespace, sa.name), metadata);
    grant.alias_name = Some(alias_name);
    grant.alias_metadata = alias_metadata;
    Ok(Response {
        login: Some(Box::new(grant)),
        warnings,
        ..Default::default()
    })
}
