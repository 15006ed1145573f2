//! `role` (LIST) and `role/:name`: what a token must assert to log in through a role, and what
//! the Tresor token it gets carries. Checks, messages and the read shape follow OpenBao's
//! `path_role.go` (a role of type `jwt` needs at least one bound constraint; one of type
//! `oidc`, the default, needs `allowed_redirect_uris`).

use super::Jwt;
use crate::token_fields::{self, Legacy, TokenFields};
use crate::{named, null_if_empty, sorted_data};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::framework::{parse_duration_str, Call, Field, FieldData, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

/// The deprecated token-field aliases JWT roles accept (`num_uses` is handled here).
pub const LEGACY: &[Legacy] = &[
    Legacy::Policies,
    Legacy::BoundCidrs,
    Legacy::Ttl,
    Legacy::MaxTtl,
    Legacy::Period,
];

/// Metadata keys a claim mapping may not target.
const RESERVED_METADATA: &[&str] = &["role"];

/// One role, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub role_type: String,
    pub bound_audiences: Vec<String>,
    pub bound_subject: String,
    pub bound_claims: Map<String, Value>,
    pub bound_claims_type: String,
    pub claim_mappings: BTreeMap<String, String>,
    pub user_claim: String,
    pub user_claim_json_pointer: bool,
    pub groups_claim: String,
    /// Seconds; 0 = the default, negative = none.
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    pub allowed_redirect_uris: Vec<String>,
    pub oidc_scopes: Vec<String>,
    pub oauth2_metadata: Vec<String>,
    pub callback_mode: String,
    pub verbose_oidc_logging: bool,
    pub oidc_disable_confirmation: bool,
    pub max_age: i64,
    pub token_policies_template_claims: bool,
    /// Deprecated `num_uses`, as last written.
    pub num_uses: i64,
    #[serde(flatten)]
    pub token: TokenFields,
}

pub(crate) fn paths() -> Vec<Path<Jwt>> {
    let p = Path::new(&format!("role/{}", named("name")))
        .field("name", Field::string("Name of the role."))
        .field("role_type", Field::string("Type of the role, either 'jwt' or 'oidc'."))
        .field("bound_audiences", Field::list("Comma-separated list of 'aud' claims that are valid for login; any match is sufficient"))
        .field("bound_subject", Field::string("The 'sub' claim that is valid for login. Optional."))
        .field("bound_claims_type", Field::string("How to interpret values in the map of claims/values (which must match for login): allowed values are 'string' or 'glob'").default("string"))
        .field("bound_claims", Field::map("Map of claims/values which must match for login"))
        .field("claim_mappings", Field::map("Mappings of claims (key) that will be copied to a metadata field (value)"))
        .field("user_claim", Field::string("The claim to use for the Identity entity alias name"))
        .field("user_claim_json_pointer", Field::bool("If true, the user_claim value will use JSON pointer syntax for referencing claims."))
        .field("groups_claim", Field::string("The claim to use for the Identity group alias names"))
        .field("clock_skew_leeway", Field::raw("Duration in seconds of leeway when validating all claims to account for clock skew. Defaults to 60 (1 minute) if set to 0 and can be disabled if set to -1."))
        .field("expiration_leeway", Field::raw("Duration in seconds of leeway when validating expiration of a token to account for clock skew. Defaults to 150 (2.5 minutes) if set to 0 and can be disabled if set to -1."))
        .field("not_before_leeway", Field::raw("Duration in seconds of leeway when validating not before values of a token to account for clock skew. Defaults to 150 (2.5 minutes) if set to 0 and can be disabled if set to -1."))
        .field("allowed_redirect_uris", Field::list("Comma-separated list of allowed values for redirect_uri"))
        .field("oidc_scopes", Field::list("Comma-separated list of OIDC scopes"))
        .field("oauth2_metadata", Field::list("Comma-separated list of OAuth2 tokens to add to the token metadata (id_token, refresh_token, access_token)"))
        .field("callback_mode", Field::string("OIDC callback mode: 'client', 'direct' or 'device'").default("client"))
        .field("verbose_oidc_logging", Field::bool("Log received OIDC tokens and claims when debug-level logging is active."))
        .field("oidc_disable_confirmation", Field::bool("OpenBao: skip the confirmation page of the OIDC flow (stored only)."))
        .field("max_age", Field::duration("Allowed elapsed time in seconds since the last time the user was actively authenticated."))
        .field("token_policies_template_claims", Field::bool("OpenBao: template token_policies with claims (stored only)."))
        .field("num_uses", Field::int("Use \"token_num_uses\" instead."));
    vec![
        Path::new("role/?")
            .op(List, list)
            .help("Lists all the roles registered with the backend."),
        token_fields::declare(p, LEGACY)
            .exists(|b: Arc<Jwt>, c: Call| async move {
                Ok(b.role(&c.storage, c.fields.str("name")).await?.is_some())
            })
            .op(Create, write)
            .op(Update, write)
            .op(Read, read)
            .op(Delete, delete)
            .help("Register a role with the backend: what a JWT must assert to log in."),
    ]
}

/// A leeway given as seconds, a Go duration, or a negative number (none).
fn leeway(f: &FieldData, name: &str) -> Result<i64> {
    let bad = || {
        Error::bad(format!(
            "error converting input for field \"{name}\": expected duration"
        ))
    };
    match f.get(name) {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|x| x as i64))
            .ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            if let Some(rest) = s.strip_prefix('-') {
                Ok(-(parse_duration_str(rest).ok_or_else(bad)?.as_secs() as i64))
            } else {
                Ok(parse_duration_str(s).ok_or_else(bad)?.as_secs() as i64)
            }
        }
        Value::Null => Ok(0),
        _ => Err(bad()),
    }
}

async fn list(_b: Arc<Jwt>, c: Call) -> Result<Response> {
    let keys = c.storage.list("role/").await?;
    Response::list_or_not_found(keys)
}

async fn write(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let name = c.fields.str("name").to_lowercase();
    let _guard = b.role_locks.lock(&name).await;
    let mut role = b.role(&c.storage, &name).await?.unwrap_or_default();
    let f = &c.fields;
    let role_type = match f.str("role_type") {
        "" => "oidc",
        t => t,
    };
    if role_type != "jwt" && role_type != "oidc" {
        return Err(Error::bad(format!("invalid 'role_type': {role_type}")));
    }
    role.role_type = role_type.to_string();
    let mut warnings = role.token.parse(f, LEGACY, false)?;
    if f.has("num_uses") {
        role.num_uses = f.int("num_uses");
        if !f.has("token_num_uses") {
            role.token.token_num_uses = role.num_uses;
        } else {
            role.num_uses = role.token.token_num_uses;
        }
    } else if f.has("token_num_uses") {
        role.num_uses = 0;
    }
    if role.token.token_num_uses < 0 {
        return Err(Error::bad("'token_num_uses' cannot be negative"));
    }
    let max = crate::mount_max_ttl(&c.mount);
    if role.token.token_period > max {
        return Err(Error::bad(format!(
            "'period' of '{:?}' is greater than the backend's maximum lease TTL of '{:?}'",
            crate::go_duration(role.token.token_period),
            crate::go_duration(max)
        )));
    }
    for (field, slot) in [
        ("expiration_leeway", &mut role.expiration_leeway),
        ("not_before_leeway", &mut role.not_before_leeway),
        ("clock_skew_leeway", &mut role.clock_skew_leeway),
    ] {
        if f.has(field) {
            *slot = leeway(f, field)?;
        }
    }
    if f.has("bound_audiences") {
        role.bound_audiences = f.strings("bound_audiences");
    }
    if f.has("bound_subject") {
        role.bound_subject = f.str("bound_subject").to_string();
    }
    if f.has("verbose_oidc_logging") {
        role.verbose_oidc_logging = f.bool("verbose_oidc_logging");
    }
    if f.has("oidc_disable_confirmation") {
        role.oidc_disable_confirmation = f.bool("oidc_disable_confirmation");
    }
    if f.has("max_age") {
        role.max_age = f.duration("max_age").as_secs() as i64;
    }
    if f.has("token_policies_template_claims") {
        role.token_policies_template_claims = f.bool("token_policies_template_claims");
    }
    let claims_type = f.str("bound_claims_type");
    if claims_type != "string" && claims_type != "glob" {
        return Err(Error::bad(format!(
            "invalid 'bound_claims_type': {claims_type}"
        )));
    }
    role.bound_claims_type = claims_type.to_string();
    if f.has("bound_claims") {
        role.bound_claims = f.map("bound_claims");
    }
    for v in role.bound_claims.values() {
        let ok_scalar =
            |v: &Value| matches!(v, Value::String(_) | Value::Bool(_) | Value::Number(_));
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for i in items {
            if !ok_scalar(i) {
                return Err(Error::bad(format!(
                    "claim is not a string, bool, int or list: {v}"
                )));
            }
            if role.bound_claims_type == "glob" && !i.is_string() {
                return Err(Error::bad(format!("claim is not a string: {i}")));
            }
        }
    }
    if f.has("claim_mappings") {
        let mut mappings = BTreeMap::new();
        let mut targets = std::collections::BTreeSet::new();
        for (k, v) in f.map("claim_mappings") {
            let target = match v {
                Value::String(s) => s,
                other => {
                    return Err(Error::bad(format!(
                        "claim_mappings values must be strings, got {other} for {k:?}"
                    )))
                }
            };
            if RESERVED_METADATA.contains(&target.as_str()) {
                return Err(Error::bad(format!(
                    "metadata key {target:?} is reserved and may not be a mapping destination"
                )));
            }
            if !targets.insert(target.clone()) {
                return Err(Error::bad(format!(
                    "multiple keys are mapped to metadata key {target:?}"
                )));
            }
            mappings.insert(k, target);
        }
        role.claim_mappings = mappings;
    }
    if f.has("oauth2_metadata") {
        role.oauth2_metadata = f.strings("oauth2_metadata");
        for m in &role.oauth2_metadata {
            if !["id_token", "refresh_token", "access_token"].contains(&m.as_str()) {
                return Err(Error::bad(format!("Unrecognized oauth2 metadata name {m}")));
            }
        }
    }
    if f.has("user_claim") {
        role.user_claim = f.str("user_claim").to_string();
    }
    if role.user_claim.is_empty() {
        return Err(Error::bad("a user claim must be defined on the role"));
    }
    if f.has("user_claim_json_pointer") {
        role.user_claim_json_pointer = f.bool("user_claim_json_pointer");
    }
    if f.has("groups_claim") {
        role.groups_claim = f.str("groups_claim").to_string();
    }
    if f.has("oidc_scopes") {
        role.oidc_scopes = f.strings("oidc_scopes");
    }
    if f.has("allowed_redirect_uris") {
        role.allowed_redirect_uris = f.strings("allowed_redirect_uris");
    }
    let mode = f.str("callback_mode");
    if !["client", "direct", "device"].contains(&mode) {
        return Err(Error::bad(format!("invalid 'callback_mode': {mode}")));
    }
    role.callback_mode = mode.to_string();
    if role.role_type == "oidc" && role.allowed_redirect_uris.is_empty() {
        return Err(Error::bad(
            "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.",
        ));
    }
    if role.role_type != "oidc"
        && role.bound_audiences.is_empty()
        && role.token.token_bound_cidrs.is_empty()
        && role.bound_subject.is_empty()
        && role.bound_claims.is_empty()
    {
        return Err(Error::bad(
            "must have at least one bound constraint when creating/updating a role",
        ));
    }
    if role.token.token_max_ttl > max {
        warnings.push("token max ttl is greater than the system or backend mount's maximum TTL value; issued tokens' max TTL value will be truncated".into());
    }
    if role.verbose_oidc_logging {
        warnings.push("verbose_oidc_logging has been enabled for this role. This is not recommended in production since sensitive information may be present in OIDC responses.".into());
    }
    c.storage.put_json(&format!("role/{name}"), &role).await?;
    Ok(Response {
        warnings,
        ..Default::default()
    })
}

async fn read(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let role = b
        .role(&c.storage, c.fields.str("name"))
        .await?
        .ok_or(Error::NotFound)?;
    let mut m = Map::new();
    m.insert("role_type".into(), json!(role.role_type));
    m.insert(
        "bound_audiences".into(),
        null_if_empty(&role.bound_audiences),
    );
    m.insert("bound_subject".into(), json!(role.bound_subject));
    m.insert(
        "bound_claims_type".into(),
        json!(if role.bound_claims_type.is_empty() {
            "string"
        } else {
            &role.bound_claims_type
        }),
    );
    m.insert(
        "bound_claims".into(),
        if role.bound_claims.is_empty() {
            Value::Null
        } else {
            Value::Object(role.bound_claims.clone())
        },
    );
    m.insert(
        "claim_mappings".into(),
        if role.claim_mappings.is_empty() {
            Value::Null
        } else {
            json!(role.claim_mappings)
        },
    );
    m.insert(
        "oauth2_metadata".into(),
        null_if_empty(&role.oauth2_metadata),
    );
    m.insert("user_claim".into(), json!(role.user_claim));
    m.insert(
        "user_claim_json_pointer".into(),
        json!(role.user_claim_json_pointer),
    );
    m.insert("groups_claim".into(), json!(role.groups_claim));
    m.insert(
        "allowed_redirect_uris".into(),
        null_if_empty(&role.allowed_redirect_uris),
    );
    m.insert(
        "callback_mode".into(),
        json!(if role.callback_mode.is_empty() {
            "client"
        } else {
            &role.callback_mode
        }),
    );
    m.insert("oidc_scopes".into(), null_if_empty(&role.oidc_scopes));
    m.insert(
        "verbose_oidc_logging".into(),
        json!(role.verbose_oidc_logging),
    );
    m.insert(
        "oidc_disable_confirmation".into(),
        json!(role.oidc_disable_confirmation),
    );
    m.insert("max_age".into(), json!(role.max_age));
    m.insert(
        "token_policies_template_claims".into(),
        json!(role.token_policies_template_claims),
    );
    m.insert("clock_skew_leeway".into(), json!(role.clock_skew_leeway));
    m.insert("expiration_leeway".into(), json!(role.expiration_leeway));
    m.insert("not_before_leeway".into(), json!(role.not_before_leeway));
    role.token.populate(&mut m, LEGACY);
    if role.num_uses > 0 {
        m.insert("num_uses".into(), json!(role.num_uses));
    }
    Ok(sorted_data(m))
}

async fn delete(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let name = c.fields.str("name").to_lowercase();
    let _guard = b.role_locks.lock(&name).await;
    c.storage.delete(&format!("role/{name}")).await?;
    Ok(Response::default())
}
