//! Roles: `roles/:role` (write, read, delete) and `roles` (LIST, with each role's `key_type`
//! and, for CA roles, `issuer_ref` in `key_info`).
//!
//! A role is either `key_type=otp` (one-time passwords for `default_user` or `allowed_users`
//! on hosts inside `cidr_list`) or `key_type=ca` (what `sign`/`issue` may certify). A write
//! replaces the whole role, unset fields taking their defaults, as Vault does; a read shows
//! the fields of the role's type only, with Vault's names and types (TTLs in seconds).

use super::{zeroaddress, Ssh, ROLE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub const ROLE_PREFIX: &str = "roles/";

/// A stored role (both types; each reads back only its own fields).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub key_type: String,
    pub default_user: String,
    pub default_user_template: bool,
    pub cidr_list: String,
    pub exclude_cidr_list: String,
    pub port: i64,
    pub allowed_users: String,
    pub allowed_users_template: bool,
    pub allowed_domains: String,
    pub allowed_domains_template: bool,
    pub ttl: u64,
    pub max_ttl: u64,
    pub default_critical_options: BTreeMap<String, String>,
    pub default_extensions: BTreeMap<String, String>,
    pub default_extensions_template: bool,
    pub allowed_critical_options: String,
    pub allowed_extensions: String,
    pub allow_user_certificates: bool,
    pub allow_host_certificates: bool,
    pub allow_bare_domains: bool,
    pub allow_subdomains: bool,
    pub allow_user_key_ids: bool,
    pub allow_empty_principals: bool,
    pub allow_commas_in_identity_templates: bool,
    pub allow_wildcards_in_identity_templates: bool,
    pub key_id_format: String,
    pub allowed_user_key_lengths: BTreeMap<String, Vec<i64>>,
    pub algorithm_signer: String,
    pub not_before_duration: u64,
    pub issuer_ref: String,
}

impl Role {
    /// The role as `roles/:role` answers it.
    pub fn to_json(&self) -> Value {
        if self.key_type == "otp" {
            return json!({
                "default_user": self.default_user,
                "cidr_list": self.cidr_list,
                "exclude_cidr_list": self.exclude_cidr_list,
                "key_type": self.key_type,
                "port": self.port,
                "allowed_users": self.allowed_users,
            });
        }
        json!({
            "allowed_users": self.allowed_users,
            "allowed_users_template": self.allowed_users_template,
            "allowed_domains": self.allowed_domains,
            "allowed_domains_template": self.allowed_domains_template,
            "default_user": self.default_user,
            "default_user_template": self.default_user_template,
            "ttl": self.ttl,
            "max_ttl": self.max_ttl,
            "allowed_critical_options": self.allowed_critical_options,
            "allowed_extensions": self.allowed_extensions,
            "allow_user_certificates": self.allow_user_certificates,
            "allow_host_certificates": self.allow_host_certificates,
            "allow_bare_domains": self.allow_bare_domains,
            "allow_subdomains": self.allow_subdomains,
            "allow_user_key_ids": self.allow_user_key_ids,
            "allow_commas_in_identity_templates": self.allow_commas_in_identity_templates,
            "allow_empty_principals": self.allow_empty_principals,
            "allow_wildcards_in_identity_templates": self.allow_wildcards_in_identity_templates,
            "key_id_format": self.key_id_format,
            "key_type": self.key_type,
            "default_critical_options": self.default_critical_options,
            "default_extensions": self.default_extensions,
            "default_extensions_template": self.default_extensions_template,
            "allowed_user_key_lengths": self.allowed_user_key_lengths,
            "algorithm_signer": self.algorithm_signer,
            "not_before_duration": self.not_before_duration,
            "issuer_ref": self.issuer_ref,
        })
    }
}

/// A role by name.
pub async fn get(s: &View, name: &str) -> Result<Option<Role>> {
    s.get_json(&format!("{ROLE_PREFIX}{name}")).await
}

/// The names of every role.
pub async fn names(s: &View) -> Result<Vec<String>> {
    let mut names = s.list(ROLE_PREFIX).await?;
    names.retain(|n| !n.ends_with('/'));
    names.sort();
    Ok(names)
}

/// How many roles (of the first `max`) name an issuer by `reference`.
pub async fn count_referencing(s: &View, reference: &str, max: usize) -> Result<usize> {
    let mut n = 0;
    for name in names(s).await?.into_iter().take(max) {
        if get(s, &name)
            .await?
            .is_some_and(|r| r.issuer_ref == reference)
        {
            n += 1;
        }
    }
    Ok(n)
}

pub fn paths() -> Vec<Path<Ssh>> {
    vec![
        Path::new("roles/?$")
            .field("after", Field::string("List entries after this one."))
            .field("limit", Field::int("How many entries to list."))
            .op(List, list)
            .help("Manage the roles that can be created with this backend."),
        Path::new(&format!("roles/{ROLE}"))
            .field("role", Field::string("Name of the role."))
            .field("key_type", Field::string("Type of credential: 'otp' or 'ca'."))
            .field("default_user", Field::string("Default username for credentials and certificates."))
            .field("default_user_template", Field::bool("default_user may hold identity templates."))
            .field("cidr_list", Field::string("[OTP] Comma-separated CIDR blocks the role applies to."))
            .field("exclude_cidr_list", Field::string("[OTP] Comma-separated CIDR blocks excluded."))
            .field("port", Field::int("[OTP] Port number returned with the OTP (default 22)."))
            .field("allowed_users", Field::string("Comma-separated users allowed; '*' for any."))
            .field("allowed_users_template", Field::bool("allowed_users may hold identity templates."))
            .field("allowed_domains", Field::string("[CA] Comma-separated domains host certificates may name."))
            .field("allowed_domains_template", Field::bool("allowed_domains may hold identity templates."))
            .field("ttl", Field::duration("[CA] Default certificate lifetime."))
            .field("max_ttl", Field::duration("[CA] Maximum certificate lifetime."))
            .field("allowed_critical_options", Field::string("[CA] Comma-separated critical options a request may set; empty: any."))
            .field("allowed_extensions", Field::string("[CA] Comma-separated extensions a request may set; '*': any."))
            .field("default_critical_options", Field::map("[CA] Critical options when the request sets none."))
            .field("default_extensions", Field::map("[CA] Extensions when the request sets none."))
            .field("default_extensions_template", Field::bool("default_extensions values may hold identity templates."))
            .field("allow_user_certificates", Field::bool("[CA] Allow user certificates."))
            .field("allow_host_certificates", Field::bool("[CA] Allow host certificates."))
            .field("allow_bare_domains", Field::bool("[CA] Host certificates may name allowed_domains themselves."))
            .field("allow_subdomains", Field::bool("[CA] Host certificates may name subdomains of allowed_domains."))
            .field("allow_user_key_ids", Field::bool("[CA] Requests may set key_id."))
            .field("key_id_format", Field::string("[CA] Key id template: {{token_display_name}}, {{role_name}}, {{public_key_hash}}."))
            .field("allowed_user_key_lengths", Field::map("[CA] Allowed key types and sizes to sign (type -> size or sizes)."))
            .field("algorithm_signer", Field::string("[CA] RSA CA signature algorithm: default, rsa-sha2-256, rsa-sha2-512 (ssh-rsa is refused when signing)."))
            .field("not_before_duration", Field::duration("[CA] How far certificates are backdated.").default(30))
            .field("allow_commas_in_identity_templates", Field::bool("Allow commas in templated values."))
            .field("allow_wildcards_in_identity_templates", Field::bool("Allow wildcards in templated values."))
            .field("allow_empty_principals", Field::bool("[CA] Allow certificates without principals."))
            .field("issuer_ref", Field::string("[CA] The issuer that signs for this role (default: 'default')."))
            .op(Read, read)
            .op(Update, write)
            .op(Delete, delete)
            .help("Manage the 'roles' that can be created with this backend."),
    ]
}

async fn list(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let s = &c.storage;
    let mut keys = names(s).await?;
    let after = c.fields.str("after");
    if !after.is_empty() {
        keys.retain(|k| k.as_str() > after);
    }
    let limit = c.fields.int("limit");
    if limit > 0 {
        keys.truncate(limit as usize);
    }
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    let mut info = Map::new();
    for k in &keys {
        if let Some(role) = get(s, k).await? {
            let mut entry = Map::new();
            entry.insert("key_type".into(), json!(role.key_type));
            if role.key_type == "ca" {
                entry.insert("issuer_ref".into(), json!(role.issuer_ref));
            }
            info.insert(k.clone(), Value::Object(entry));
        }
    }
    Ok(Response::data(json!({ "keys": keys, "key_info": info })))
}

async fn read(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    match get(&c.storage, c.fields.str("role")).await? {
        Some(role) => Ok(Response::data(role.to_json())),
        None => Err(Error::NotFound),
    }
}

async fn delete(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let name = c.fields.str("role");
    zeroaddress::remove_role(&c.storage, name).await?;
    c.storage.delete(&format!("{ROLE_PREFIX}{name}")).await?;
    Ok(Response::default())
}

/// Validates a comma-separated list of CIDR blocks (`cidr_list`, `exclude_cidr_list`).
pub fn parse_cidrs(list: &str) -> std::result::Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .map_err(|_| format!("invalid CIDR entry {s:?}"))
        })
        .collect()
}

/// A map's values as strings (Go's `%v`): what `default_extensions` and options become.
pub fn string_map(m: &Map<String, Value>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// `allowed_user_key_lengths`: each value an integer, a list of them, or a comma-separated
/// string of them.
fn key_lengths(m: &Map<String, Value>) -> std::result::Result<BTreeMap<String, Vec<i64>>, String> {
    let int = |v: &Value| -> std::result::Result<i64, String> {
        match v {
            Value::Number(n) => n.as_i64().ok_or_else(|| format!("invalid number {n}")),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("could not parse {s:?} as an integer")),
            other => Err(format!("unexpected value {other}")),
        }
    };
    m.iter()
        .map(|(k, v)| {
            let list = match v {
                Value::Array(items) => items
                    .iter()
                    .map(int)
                    .collect::<std::result::Result<_, _>>()?,
                Value::String(s) => s
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| int(&Value::String(p.to_string())))
                    .collect::<std::result::Result<_, _>>()?,
                v => vec![int(v)?],
            };
            Ok((k.clone(), list))
        })
        .collect()
}

async fn write(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let name = f.str("role");
    if name.is_empty() {
        return Err(Error::bad("missing role name"));
    }
    let cidr_list = f.str("cidr_list").to_string();
    parse_cidrs(&cidr_list)
        .map_err(|e| Error::bad(format!("failed to validate cidr_list: {e}")))?;
    let exclude_cidr_list = f.str("exclude_cidr_list").to_string();
    parse_cidrs(&exclude_cidr_list)
        .map_err(|e| Error::bad(format!("failed to validate exclude_cidr_list entry: {e}")))?;
    let port = match f.int("port") {
        0 => 22,
        p => p,
    };
    let key_type = f.str("key_type").to_ascii_lowercase();
    let role = match key_type.as_str() {
        "" => return Err(Error::bad("missing key type")),
        "otp" => {
            let default_user = f.str("default_user");
            if default_user.is_empty() {
                return Err(Error::bad("missing default user"));
            }
            Role {
                key_type,
                default_user: default_user.to_string(),
                cidr_list,
                exclude_cidr_list,
                port,
                allowed_users: f.str("allowed_users").to_string(),
                ..Role::default()
            }
        }
        "dynamic" => return Err(Error::bad("dynamic key type roles are no longer supported")),
        "ca" => {
            let algorithm_signer = match f.str("algorithm_signer") {
                "" | "default" => "default",
                s @ ("ssh-rsa" | "rsa-sha2-256" | "rsa-sha2-512") => s,
                other => return Err(Error::bad(format!("unknown algorithm signer {other:?}"))),
            };
            let (ttl, max_ttl) = (f.duration("ttl").as_secs(), f.duration("max_ttl").as_secs());
            let role = Role {
                key_type,
                allowed_critical_options: f.str("allowed_critical_options").to_string(),
                allowed_extensions: f.str("allowed_extensions").to_string(),
                allow_user_certificates: f.bool("allow_user_certificates"),
                allow_host_certificates: f.bool("allow_host_certificates"),
                allowed_users: f.str("allowed_users").to_string(),
                allowed_users_template: f.bool("allowed_users_template"),
                allowed_domains: f.str("allowed_domains").to_string(),
                allowed_domains_template: f.bool("allowed_domains_template"),
                default_user: f.str("default_user").to_string(),
                default_user_template: f.bool("default_user_template"),
                allow_bare_domains: f.bool("allow_bare_domains"),
                allow_subdomains: f.bool("allow_subdomains"),
                allow_user_key_ids: f.bool("allow_user_key_ids"),
                allow_commas_in_identity_templates: f.bool("allow_commas_in_identity_templates"),
                allow_empty_principals: f.bool("allow_empty_principals"),
                allow_wildcards_in_identity_templates: f
                    .bool("allow_wildcards_in_identity_templates"),
                default_extensions_template: f.bool("default_extensions_template"),
                key_id_format: f.str("key_id_format").to_string(),
                algorithm_signer: algorithm_signer.to_string(),
                not_before_duration: f.duration("not_before_duration").as_secs(),
                issuer_ref: match f.str("issuer_ref") {
                    "" => "default".to_string(),
                    r => r.to_string(),
                },
                ttl,
                max_ttl,
                default_critical_options: string_map(&f.map("default_critical_options")),
                default_extensions: string_map(&f.map("default_extensions")),
                allowed_user_key_lengths: key_lengths(&f.map("allowed_user_key_lengths")).map_err(
                    |e| Error::bad(format!("error processing allowed_user_key_lengths: {e}")),
                )?,
                ..Role::default()
            };
            if !role.allow_user_certificates && !role.allow_host_certificates {
                return Err(Error::bad(
                    "Either 'allow_user_certificates' or 'allow_host_certificates' must be set to 'true'",
                ));
            }
            if ttl != 0 && max_ttl != 0 && ttl > max_ttl {
                return Err(Error::bad(
                    r#""ttl" value must be less than "max_ttl" when both are specified"#,
                ));
            }
            role
        }
        _ => return Err(Error::bad("invalid key type")),
    };
    c.storage
        .put_json(&format!("{ROLE_PREFIX}{name}"), &role)
        .await?;
    Ok(Response::default())
}
