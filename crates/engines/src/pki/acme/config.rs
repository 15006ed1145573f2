//! ACME settings: `config/acme` (Vault's fields, plus Tresor's `http_01_port`) and
//! `config/cluster` (the mount's public URL, from which every ACME URL is built).
//!
//! `config/acme` fields, as Vault and OpenBao have them:
//!
//! * `enabled` (false): ACME paths answer 404 until this is set; setting it needs
//!   `config/cluster`'s `path`.
//! * `allowed_issuers` (`["*"]`): issuers ACME may sign with (names or ids).
//! * `allowed_roles` (`["*"]`): roles usable as `roles/:role/acme/` directories or as the
//!   default directory's policy.
//! * `allow_role_ext_key_usage` (false): use the role's extended key usages; otherwise ACME
//!   certificates get ServerAuth only.
//! * `default_directory_policy` (`sign-verbatim`): what `acme/` issues under: `sign-verbatim`
//!   (any name the client proves control of), `role:<name>` (the role's constraints), or
//!   `forbid` (only role directories).
//! * `eab_policy` (`not-required`): external account binding; Tresor supports only
//!   `not-required`.
//! * `dns_resolver`: accepted and ignored (only `http-01` is offered, which uses the system
//!   resolver).
//!
//! Beyond Vault: `http_01_port` (80) is the port `http-01` validation connects to. RFC 8555
//! fixes it at 80; another port is for tests and for setups that forward port 80.

use super::super::config::valid_url;
use super::super::issuers;
use super::super::roles::get_role;
use super::super::{bad, Pki};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::Result;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub const ACME_CONFIG: &str = "config/acme";
pub const CLUSTER_CONFIG: &str = "config/cluster";

fn star() -> Vec<String> {
    vec!["*".into()]
}
fn verbatim() -> String {
    "sign-verbatim".into()
}
fn not_required() -> String {
    "not-required".into()
}
fn port_80() -> u16 {
    80
}

/// `config/acme`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AcmeConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "star")]
    pub allowed_issuers: Vec<String>,
    #[serde(default = "star")]
    pub allowed_roles: Vec<String>,
    #[serde(default)]
    pub allow_role_ext_key_usage: bool,
    #[serde(default = "verbatim")]
    pub default_directory_policy: String,
    #[serde(default)]
    pub dns_resolver: String,
    #[serde(default = "not_required")]
    pub eab_policy: String,
    /// Tresor only: the port `http-01` validation connects to.
    #[serde(default = "port_80")]
    pub http_01_port: u16,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        serde_json::from_value(json!({})).expect("defaults")
    }
}

impl AcmeConfig {
    fn to_json(&self) -> Value {
        json!({
            "allow_role_ext_key_usage": self.allow_role_ext_key_usage,
            "allowed_issuers": self.allowed_issuers,
            "allowed_roles": self.allowed_roles,
            "default_directory_policy": self.default_directory_policy,
            "dns_resolver": self.dns_resolver,
            "eab_policy": self.eab_policy,
            "enabled": self.enabled,
            "http_01_port": self.http_01_port,
        })
    }
    /// Whether `role` may back a directory.
    pub fn role_allowed(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }
}

/// `config/cluster`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// The mount's URL as clients reach it, e.g. `https://tresor.example:8200/v1/pki`.
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub aia_path: String,
}

pub async fn acme_config(s: &View) -> Result<AcmeConfig> {
    Ok(s.get_json(ACME_CONFIG).await?.unwrap_or_default())
}

pub async fn cluster_config(s: &View) -> Result<ClusterConfig> {
    Ok(s.get_json(CLUSTER_CONFIG).await?.unwrap_or_default())
}

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("config/acme")
            .field("enabled", Field::bool("whether ACME is enabled"))
            .field(
                "allowed_issuers",
                Field::list("issuers ACME may use (names or ids, or *)"),
            )
            .field(
                "allowed_roles",
                Field::list("roles ACME directories may use (or *)"),
            )
            .field(
                "allow_role_ext_key_usage",
                Field::bool("use the role's extended key usages instead of ServerAuth"),
            )
            .field(
                "default_directory_policy",
                Field::string("sign-verbatim, forbid, or role:<name>"),
            )
            .field("dns_resolver", Field::string("ignored"))
            .field(
                "eab_policy",
                Field::string("external account binding policy (not-required only)"),
            )
            .field(
                "http_01_port",
                Field::int("Tresor only: the port http-01 validation connects to (80)"),
            )
            .op(Read, read_acme)
            .op(Update, write_acme)
            .help("Configure the ACME (RFC 8555) server of this mount."),
        Path::new("config/cluster")
            .field("path", Field::string("the mount's URL as clients reach it"))
            .field(
                "aia_path",
                Field::string("the mount's URL for AIA (may be plain HTTP)"),
            )
            .op(Read, read_cluster)
            .op(Update, write_cluster)
            .help("The mount's public URLs, used to build ACME URLs."),
    ]
}

async fn read_acme(_b: Arc<Pki>, c: Call) -> Result<Response> {
    Ok(Response::data(acme_config(&c.storage).await?.to_json()))
}

async fn write_acme(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let mut cfg = acme_config(&c.storage).await?;
    let f = &c.fields;
    if f.has("enabled") {
        cfg.enabled = f.bool("enabled");
    }
    if f.has("allowed_issuers") {
        cfg.allowed_issuers = f.strings("allowed_issuers");
    }
    if f.has("allowed_roles") {
        cfg.allowed_roles = f.strings("allowed_roles");
    }
    if f.has("allow_role_ext_key_usage") {
        cfg.allow_role_ext_key_usage = f.bool("allow_role_ext_key_usage");
    }
    if f.has("default_directory_policy") {
        cfg.default_directory_policy = f.str("default_directory_policy").trim().to_string();
        if cfg.default_directory_policy.is_empty() {
            cfg.default_directory_policy = verbatim();
        }
    }
    if f.has("dns_resolver") {
        cfg.dns_resolver = f.str("dns_resolver").to_string();
    }
    if f.has("eab_policy") {
        cfg.eab_policy = f.str("eab_policy").to_string();
    }
    if f.has("http_01_port") {
        cfg.http_01_port = u16::try_from(f.int("http_01_port"))
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("http_01_port must be a TCP port (1-65535)"))?;
    }
    if cfg.eab_policy != "not-required" {
        return Err(bad(format!(
            "eab_policy {} is not supported: Tresor does not implement external account binding (only not-required)",
            cfg.eab_policy
        )));
    }
    for r in &cfg.allowed_roles {
        if r != "*" && get_role(&c.storage, r).await?.is_none() {
            return Err(bad(format!(
                "allowed_role {r} is not a valid acme role: role does not exist"
            )));
        }
    }
    for i in &cfg.allowed_issuers {
        if i != "*" {
            issuers::resolve_id(&c.storage, i)
                .await
                .map_err(|_| bad(format!("allowed_issuers contains an unknown issuer: {i}")))?;
        }
    }
    match cfg.default_directory_policy.as_str() {
        "sign-verbatim" | "forbid" => {}
        p => match p.strip_prefix("role:") {
            Some(role) => {
                if get_role(&c.storage, role).await?.is_none() {
                    return Err(bad(format!(
                        "default directory policy role {role} is not a valid ACME role: role does not exist"
                    )));
                }
                if !cfg.role_allowed(role) {
                    return Err(bad(format!(
                        "default directory policy role {role} is not in allowed_roles"
                    )));
                }
            }
            None => {
                return Err(bad(format!(
                "invalid default_directory_policy: string {p} not a valid Default Directory Policy"
            )))
            }
        },
    }
    if cfg.enabled && cluster_config(&c.storage).await?.path.is_empty() {
        return Err(bad(
            "ACME feature requires local cluster 'path' field configuration to be set",
        ));
    }
    c.storage.put_json(ACME_CONFIG, &cfg).await?;
    Ok(Response::data(cfg.to_json()))
}

async fn read_cluster(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let cfg = cluster_config(&c.storage).await?;
    Ok(Response::data(
        json!({ "aia_path": cfg.aia_path, "path": cfg.path }),
    ))
}

async fn write_cluster(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let mut cfg = cluster_config(&c.storage).await?;
    for (name, target) in [("path", &mut cfg.path), ("aia_path", &mut cfg.aia_path)] {
        if c.fields.has(name) {
            let v = c.fields.str(name).trim().trim_end_matches('/').to_string();
            if !v.is_empty() && !valid_url(&v) {
                return Err(bad(format!("invalid URL in {name}: {v}")));
            }
            *target = v;
        }
    }
    c.storage.put_json(CLUSTER_CONFIG, &cfg).await?;
    Ok(Response::data(
        json!({ "aia_path": cfg.aia_path, "path": cfg.path }),
    ))
}
