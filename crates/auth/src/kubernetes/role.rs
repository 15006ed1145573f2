//! `role` (LIST) and `role/:name`: which service accounts may log in through a role, with the
//! checks and messages of OpenBao's `path_role.go`.

use super::Kubernetes;
use crate::token_fields::{self, Legacy};
use crate::{named, sorted_data};
use serde_json::{json, Map};
use std::sync::Arc;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

/// The deprecated token-field aliases Kubernetes roles accept (`num_uses` is handled here).
pub const LEGACY: &[Legacy] = &[
    Legacy::Policies,
    Legacy::BoundCidrs,
    Legacy::Ttl,
    Legacy::MaxTtl,
    Legacy::Period,
];

pub const ALIAS_UID: &str = "serviceaccount_uid";
pub const ALIAS_NAME: &str = "serviceaccount_name";

pub(crate) fn paths() -> Vec<Path<Kubernetes>> {
    let p = Path::new(&format!("role/{}", named("name")))
        .field("name", Field::string("Name of the role."))
        .field("bound_service_account_names", Field::list("List of service account names able to access this role. If set to \"*\" all names are allowed."))
        .field("bound_service_account_namespaces", Field::list("List of namespaces allowed to access this role. If set to \"*\" all namespaces are allowed."))
        .field("bound_service_account_namespace_selector", Field::string("A label selector for Kubernetes namespaces (not supported by Tresor)."))
        .field("audience", Field::string("Optional Audience claim to verify in the jwt."))
        .field("alias_name_source", Field::string("Source to use when deriving the Alias name. valid choices: \"serviceaccount_uid\" : <token.uid> e.g. 474b11b5-0f20-4f9d-8ca5-65715ab325e0 (most secure choice) \"serviceaccount_name\" : <namespace>/<serviceaccount> e.g. vault/vault-agent default: \"serviceaccount_uid\"").default(ALIAS_UID))
        .field("num_uses", Field::int("Use \"token_num_uses\" instead."));
    vec![
        Path::new("role/?")
            .op(List, list)
            .help("Lists all the roles registered with the backend."),
        token_fields::declare(p, LEGACY)
            .exists(|b: Arc<Kubernetes>, c: Call| async move {
                Ok(b.role(&c.storage, c.fields.str("name")).await?.is_some())
            })
            .op(Create, write)
            .op(Update, write)
            .op(Read, read)
            .op(Delete, delete)
            .help("Register a role with the backend: which service accounts may log in."),
    ]
}

async fn list(_b: Arc<Kubernetes>, c: Call) -> Result<Response> {
    let keys = c.storage.list("role/").await?;
    Response::list_or_not_found(keys)
}

async fn write(b: Arc<Kubernetes>, c: Call) -> Result<Response> {
    let name = c.fields.str("name").to_lowercase();
    let _guard = b.role_locks.lock(&name).await;
    let mut role = b.role(&c.storage, &name).await?.unwrap_or_default();
    let f = &c.fields;
    let mut warnings = role.token.parse(f, LEGACY, false)?;
    if f.has("num_uses") {
        role.num_uses = f.int("num_uses");
        if f.has("token_num_uses") {
            role.num_uses = role.token.token_num_uses;
        } else {
            role.token.token_num_uses = role.num_uses;
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
            "token period of '{:?}' is greater than the backend's maximum lease TTL of '{:?}'",
            crate::go_duration(role.token.token_period),
            crate::go_duration(max)
        )));
    }
    if role.token.token_max_ttl > max {
        warnings.push("max_ttl is greater than the system or backend mount's maximum TTL value; issued tokens' max TTL value will be truncated".into());
    }
    if f.has("bound_service_account_names") {
        role.bound_service_account_names = f.strings("bound_service_account_names");
    }
    let names = &role.bound_service_account_names;
    if names.is_empty() {
        return Err(Error::bad(
            "\"bound_service_account_names\" can not be empty",
        ));
    }
    if names.len() > 1 && names.iter().any(|n| n == "*") {
        return Err(Error::bad("can not mix \"*\" with values"));
    }
    if f.has("bound_service_account_namespaces") {
        role.bound_service_account_namespaces = f.strings("bound_service_account_namespaces");
    }
    if !f.str("bound_service_account_namespace_selector").is_empty() {
        return Err(Error::bad(
            "\"bound_service_account_namespace_selector\" is not supported by Tresor; list the namespaces in \"bound_service_account_namespaces\"",
        ));
    }
    let namespaces = &role.bound_service_account_namespaces;
    if namespaces.is_empty() {
        return Err(Error::bad("\"bound_service_account_namespaces\" can not be empty if \"bound_service_account_namespace_selector\" is not set"));
    }
    if namespaces.len() > 1 && namespaces.iter().any(|n| n == "*") {
        return Err(Error::bad("can not mix \"*\" with values"));
    }
    if f.has("audience") {
        role.audience = f.str("audience").to_string();
    }
    let source = f.str("alias_name_source");
    if f.has("alias_name_source") || role.alias_name_source.is_empty() {
        role.alias_name_source = if source.is_empty() {
            ALIAS_UID.to_string()
        } else {
            source.to_string()
        };
    }
    if role.alias_name_source != ALIAS_UID && role.alias_name_source != ALIAS_NAME {
        return Err(Error::bad(format!(
            "invalid alias_name_source, must be one of: {ALIAS_UID}, {ALIAS_NAME}"
        )));
    }
    c.storage.put_json(&format!("role/{name}"), &role).await?;
    Ok(Response {
        warnings,
        ..Default::default()
    })
}

async fn read(b: Arc<Kubernetes>, c: Call) -> Result<Response> {
    let role = b
        .role(&c.storage, c.fields.str("name"))
        .await?
        .ok_or(Error::NotFound)?;
    let mut m = Map::new();
    m.insert(
        "bound_service_account_names".into(),
        json!(role.bound_service_account_names),
    );
    m.insert(
        "bound_service_account_namespaces".into(),
        json!(role.bound_service_account_namespaces),
    );
    m.insert("bound_service_account_namespace_selector".into(), json!(""));
    m.insert("audience".into(), json!(role.audience));
    m.insert("alias_name_source".into(), json!(role.alias_name_source));
    role.token.populate(&mut m, LEGACY);
    if role.num_uses > 0 {
        m.insert("num_uses".into(), json!(role.num_uses));
    }
    Ok(sorted_data(m))
}

async fn delete(b: Arc<Kubernetes>, c: Call) -> Result<Response> {
    let name = c.fields.str("name").to_lowercase();
    let _guard = b.role_locks.lock(&name).await;
    c.storage.delete(&format!("role/{name}")).await?;
    Ok(Response::default())
}
