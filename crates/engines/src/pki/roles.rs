//! Roles: what `issue/:role` and `sign/:role` may put in a certificate, with Vault's fields and
//! defaults (`roles/:name` read, write, patch, delete; `roles` LIST).
//!
//! A write (`POST`) replaces the whole role, unset fields taking their defaults, as Vault does;
//! `PATCH` changes only the fields sent. Fields Tresor stores but does not enforce (identity
//! templates, policy identifiers, serial-number and user-id constraints, not_before/not_after
//! bounds) are kept and returned so clients round-trip them.

use super::issuers;
use super::keys::key_spec;
use super::{bad, Pki};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, FieldType, Path};
use tresor_core::logical::{Operation::*, Response};

pub const ROLE_PREFIX: &str = "role/";
/// A role name in a path (Vault's `GenericNameRegex`).
pub const ROLE_NAME: &str = r"(?P<name>\w(([\w\-.@]+)?\w)?)";

/// A role, with Vault's field names (its JSON is the `roles/:name` answer).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub allow_any_name: bool,
    pub allow_bare_domains: bool,
    pub allow_glob_domains: bool,
    pub allow_globs_in_identity_templates: bool,
    pub allow_ip_sans: bool,
    pub allow_localhost: bool,
    pub allow_subdomains: bool,
    pub allow_token_displayname: bool,
    pub allow_wildcard_certificates: bool,
    pub allowed_domains: Vec<String>,
    pub allowed_domains_template: bool,
    pub allowed_ip_sans_cidr: Vec<String>,
    pub allowed_other_sans: Vec<String>,
    pub allowed_serial_numbers: Vec<String>,
    pub allowed_uri_sans: Vec<String>,
    pub allowed_uri_sans_template: bool,
    pub allowed_user_ids: Vec<String>,
    pub basic_constraints_valid_for_non_ca: bool,
    pub client_flag: bool,
    pub cn_validations: Vec<String>,
    pub code_signing_flag: bool,
    pub country: Vec<String>,
    pub email_protection_flag: bool,
    pub enforce_hostnames: bool,
    pub ext_key_usage: Vec<String>,
    pub ext_key_usage_oids: Vec<String>,
    pub generate_lease: bool,
    pub issuer_ref: String,
    pub key_bits: i64,
    pub key_type: String,
    pub key_usage: Vec<String>,
    pub locality: Vec<String>,
    pub max_ttl: u64,
    pub no_store: bool,
    pub not_after: String,
    pub not_after_bound: String,
    pub not_before: String,
    pub not_before_bound: String,
    pub not_before_duration: u64,
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub policy_identifiers: Vec<String>,
    pub postal_code: Vec<String>,
    pub province: Vec<String>,
    pub require_cn: bool,
    pub server_flag: bool,
    pub signature_bits: i64,
    pub street_address: Vec<String>,
    pub ttl: u64,
    pub use_csr_common_name: bool,
    pub use_csr_sans: bool,
    pub use_pss: bool,
}

impl Default for Role {
    fn default() -> Self {
        Role {
            allow_any_name: false,
            allow_bare_domains: false,
            allow_glob_domains: false,
            allow_globs_in_identity_templates: false,
            allow_ip_sans: true,
            allow_localhost: true,
            allow_subdomains: false,
            allow_token_displayname: false,
            allow_wildcard_certificates: true,
            allowed_domains: vec![],
            allowed_domains_template: false,
            allowed_ip_sans_cidr: vec![],
            allowed_other_sans: vec![],
            allowed_serial_numbers: vec![],
            allowed_uri_sans: vec![],
            allowed_uri_sans_template: false,
            allowed_user_ids: vec![],
            basic_constraints_valid_for_non_ca: false,
            client_flag: true,
            cn_validations: vec!["email".into(), "hostname".into()],
            code_signing_flag: false,
            country: vec![],
            email_protection_flag: false,
            enforce_hostnames: true,
            ext_key_usage: vec![],
            ext_key_usage_oids: vec![],
            generate_lease: false,
            issuer_ref: "default".into(),
            key_bits: 2048,
            key_type: "rsa".into(),
            key_usage: default_key_usage(),
            locality: vec![],
            max_ttl: 0,
            no_store: false,
            not_after: String::new(),
            not_after_bound: "permit".into(),
            not_before: String::new(),
            not_before_bound: "permit".into(),
            not_before_duration: 30,
            organization: vec![],
            ou: vec![],
            policy_identifiers: vec![],
            postal_code: vec![],
            province: vec![],
            require_cn: true,
            server_flag: true,
            signature_bits: 0,
            street_address: vec![],
            ttl: 0,
            use_csr_common_name: true,
            use_csr_sans: true,
            use_pss: false,
        }
    }
}

fn default_key_usage() -> Vec<String> {
    vec![
        "DigitalSignature".into(),
        "KeyAgreement".into(),
        "KeyEncipherment".into(),
    ]
}

impl Role {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The implicit role of `sign-verbatim` without a role: any name, any key, the mount's TTLs
    /// and the key usages the request asks for.
    pub fn verbatim(c: &Call) -> Role {
        Role {
            allow_any_name: true,
            enforce_hostnames: false,
            allow_ip_sans: true,
            key_type: "any".into(),
            key_bits: 0,
            server_flag: false,
            client_flag: false,
            key_usage: c.fields.strings("key_usage"),
            ext_key_usage: c.fields.strings("ext_key_usage"),
            ext_key_usage_oids: c.fields.strings("ext_key_usage_oids"),
            cn_validations: vec!["disabled".into()],
            allowed_other_sans: vec!["*".into()],
            allowed_uri_sans: vec!["*".into()],
            ..Role::default()
        }
    }
}

pub async fn get_role(s: &View, name: &str) -> Result<Option<Role>> {
    s.get_json(&format!("{ROLE_PREFIX}{name}")).await
}

impl Pki {
    /// A role, from the cache or storage.
    pub async fn role(&self, s: &View, name: &str) -> Result<Option<Arc<Role>>> {
        self.roles.get_or_load(name, get_role(s, name)).await
    }
}

/// The declared fields of a role write, typed as Vault declares them.
fn role_fields() -> &'static [(&'static str, Field)] {
    static FIELDS: std::sync::OnceLock<Vec<(&'static str, Field)>> = std::sync::OnceLock::new();
    FIELDS.get_or_init(build_role_fields)
}

fn build_role_fields() -> Vec<(&'static str, Field)> {
    let d = serde_json::to_value(Role::default()).unwrap_or(Value::Null);
    let mut out = Vec::new();
    if let Value::Object(m) = d {
        for (k, v) in m {
            let name: &'static str = Box::leak(k.into_boxed_str());
            let f = match name {
                "ttl" | "max_ttl" | "not_before_duration" => Field::duration("a duration"),
                "key_bits" | "signature_bits" => Field::int("an integer"),
                _ => match &v {
                    Value::Bool(_) => Field::bool("a boolean"),
                    Value::Array(_) => Field::list("a list"),
                    _ => Field::string("a string"),
                },
            };
            // Vault's key_bits default is 0: the key type's default size.
            let v = if name == "key_bits" {
                Value::from(0)
            } else {
                v
            };
            out.push((name, f.default(v)));
        }
    }
    out
}

pub fn paths() -> Vec<Path<Pki>> {
    let mut p = Path::new(format!("roles/{ROLE_NAME}").as_str());
    for (name, f) in role_fields() {
        p = p.field(name, f.clone());
    }
    vec![
        Path::new("roles/?").op(List, list).help("List the roles."),
        p.exists(exists)
            .op(Read, read)
            .op(Create, write)
            .op(Update, write)
            .op(Patch, write)
            .op(Delete, delete)
            .help("Manage a role: the constraints on what certificates it may issue."),
    ]
}

async fn exists(_b: Arc<Pki>, c: Call) -> Result<bool> {
    Ok(get_role(&c.storage, c.fields.str("name")).await?.is_some())
}

async fn list(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let mut keys = c.storage.list(ROLE_PREFIX).await?;
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    keys.sort();
    Ok(Response::list(keys))
}

async fn read(_b: Arc<Pki>, c: Call) -> Result<Response> {
    match get_role(&c.storage, c.fields.str("name")).await? {
        Some(r) => Ok(Response::data(r.to_json())),
        None => Err(Error::NotFound),
    }
}

async fn delete(b: Arc<Pki>, c: Call) -> Result<Response> {
    c.storage
        .delete(&format!("{ROLE_PREFIX}{}", c.fields.str("name")))
        .await?;
    b.roles.clear();
    Ok(Response::default())
}

async fn write(b: Arc<Pki>, c: Call) -> Result<Response> {
    let name = c.fields.str("name").to_string();
    let existing = get_role(&c.storage, &name).await?;
    let patch = c.operation == Patch;
    let base = match (&existing, patch) {
        (Some(r), true) => r.clone(),
        (None, true) => return Err(Error::NotFound),
        _ => Role::default(),
    };
    let mut obj: Map<String, Value> = match base.to_json() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for (field, decl) in role_fields() {
        let field = *field;
        if patch && !c.fields.has(field) {
            continue;
        }
        let v = c.fields.get(field);
        if !v.is_null() {
            let v = match (decl.ty, v) {
                (FieldType::StringList, Value::Array(a)) => Value::Array(
                    a.iter()
                        .filter(|x| x.as_str().is_some_and(|s| !s.is_empty()))
                        .cloned()
                        .collect(),
                ),
                (_, v) => v.clone(),
            };
            obj.insert(field.to_string(), v);
        }
    }
    let mut role: Role = serde_json::from_value(Value::Object(obj))
        .map_err(|e| bad(format!("invalid role: {e}")))?;
    let mut warnings = Vec::new();

    if role.key_type == "any" {
        role.key_bits = 0;
    } else {
        let spec = key_spec(&role.key_type, role.key_bits)?;
        role.key_bits = spec.bits as i64;
    }
    if role.max_ttl > 0 && role.ttl > role.max_ttl {
        return Err(bad("\"ttl\" value must be less than \"max_ttl\" value"));
    }
    for v in &role.cn_validations {
        if !["email", "hostname", "disabled"].contains(&v.as_str()) {
            return Err(bad(format!("unknown cn_validations value: {v}")));
        }
    }
    if role.cn_validations.iter().any(|v| v == "disabled") && role.cn_validations.len() > 1 {
        return Err(bad(
            "cn_validations value incorrect: cannot specify disabled along with other modes",
        ));
    }
    if role.cn_validations.is_empty() {
        role.cn_validations = vec!["email".into(), "hostname".into()];
    }
    if role.no_store && role.generate_lease {
        warnings.push("mutually exclusive values no_store=true and generate_lease=true were both specified; no_store=true takes priority".to_string());
    }
    if role.generate_lease {
        warnings.push("it is encouraged to disable generate_lease and rely on PKI's native capabilities when possible; this option can cause instance-wide issues with large numbers of issued certificates".to_string());
    }
    if role.issuer_ref.is_empty() {
        role.issuer_ref = "default".into();
    }
    if issuers::resolve_id(&c.storage, &role.issuer_ref)
        .await
        .is_err()
    {
        if role.issuer_ref == "default" {
            warnings.push("Issuing Certificate was set to default, but no default issuing certificate (configurable at /config/issuers) is currently set".to_string());
        } else {
            warnings.push(format!(
                "Issuing Certificate was set to {} but no issuing certificate currently has that name",
                role.issuer_ref
            ));
        }
    }
    c.storage
        .put_json(&format!("{ROLE_PREFIX}{name}"), &role)
        .await?;
    b.roles.clear();
    let mut resp = Response::data(role.to_json());
    resp.warnings = warnings;
    Ok(resp)
}
