//! The mount table and router: which backend serves which path prefix.
//!
//! Secrets engines live in the `mounts` table (`secret/`, `transit/` ...), auth methods in the
//! `auth` table (served under `auth/<path>`). Both tables are stored inside the barrier
//! (`core/mounts`, `core/auth`). The router finds the longest mounted prefix of a request path.

use crate::framework::Backend;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Per-mount settings tunable with `sys/mounts/:path/tune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MountConfig {
    #[serde(default)]
    pub default_lease_ttl: u64,
    #[serde(default)]
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_visibility: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passthrough_request_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_response_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountEntry {
    /// The path with a trailing `/`, without `auth/` for auth mounts (`secret/`, `userpass/`).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    #[serde(default)]
    pub config: MountConfig,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
    #[serde(default)]
    pub external_entropy_access: bool,
    /// `mounts` or `auth`.
    pub table: String,
}

impl MountEntry {
    /// The full routing prefix (`auth/userpass/` for auth mounts).
    pub fn route_prefix(&self) -> String {
        if self.table == "auth" {
            format!("auth/{}", self.path)
        } else {
            self.path.clone()
        }
    }
    /// Where this mount's private data lives in the barrier.
    pub fn storage_prefix(&self) -> String {
        match self.kind.as_str() {
            "system" => "sys/".to_string(),
            "token" => "sys/token/".to_string(),
            _ if self.table == "auth" => format!("auth/{}/", self.uuid),
            _ => format!("logical/{}/", self.uuid),
        }
    }
    /// The mount's answer shape in `sys/mounts` and `sys/auth`.
    pub fn to_json(&self) -> Value {
        let mut config = serde_json::json!({
            "default_lease_ttl": self.config.default_lease_ttl,
            "max_lease_ttl": self.config.max_lease_ttl,
            "force_no_cache": self.config.force_no_cache,
        });
        let c = config.as_object_mut().expect("object");
        if let Some(v) = &self.config.listing_visibility {
            c.insert("listing_visibility".into(), Value::String(v.clone()));
        }
        for (k, v) in [
            (
                "audit_non_hmac_request_keys",
                &self.config.audit_non_hmac_request_keys,
            ),
            (
                "audit_non_hmac_response_keys",
                &self.config.audit_non_hmac_response_keys,
            ),
            (
                "passthrough_request_headers",
                &self.config.passthrough_request_headers,
            ),
            (
                "allowed_response_headers",
                &self.config.allowed_response_headers,
            ),
        ] {
            if !v.is_empty() {
                c.insert(k.into(), serde_json::json!(v));
            }
        }
        if let Some(t) = &self.config.token_type {
            c.insert("token_type".into(), Value::String(t.clone()));
        }
        serde_json::json!({
            "type": self.kind,
            "description": self.description,
            "accessor": self.accessor,
            "uuid": self.uuid,
            "config": config,
            "options": if self.options.is_empty() { Value::Null } else { Value::Object(self.options.clone()) },
            "local": self.local,
            "seal_wrap": self.seal_wrap,
            "external_entropy_access": self.external_entropy_access,
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
            "deprecation_status": if matches!(self.kind.as_str(), "kv" | "system" | "token" | "cubbyhole" | "identity") { Value::Null } else { Value::String("supported".into()) },
        })
    }
}

/// One routing entry.
#[derive(Clone)]
pub struct Route {
    pub prefix: String,
    /// Shared with every call routed here: a request clones a pointer, not the entry.
    pub entry: Arc<MountEntry>,
    /// [`MountEntry::storage_prefix`], computed once.
    pub storage_prefix: Arc<str>,
    pub backend: Arc<dyn Backend>,
    /// This mount's request latencies (`tresor.route.request`).
    pub metrics: Arc<crate::metrics::RouteMetrics>,
}

/// Longest-prefix routing over the mounted backends.
#[derive(Default, Clone)]
pub struct Router {
    /// Sorted by prefix length, longest first.
    routes: Vec<Route>,
}

impl Router {
    pub fn insert(
        &mut self,
        entry: MountEntry,
        backend: Arc<dyn Backend>,
        metrics: &crate::metrics::Metrics,
    ) {
        let prefix = entry.route_prefix();
        self.routes.retain(|r| r.prefix != prefix);
        self.routes.push(Route {
            metrics: metrics.route(&prefix),
            prefix,
            storage_prefix: entry.storage_prefix().into(),
            entry: Arc::new(entry),
            backend,
        });
        self.routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.prefix.cmp(&b.prefix))
        });
    }
    pub fn remove(&mut self, prefix: &str) -> Option<Route> {
        let i = self.routes.iter().position(|r| r.prefix == prefix)?;
        Some(self.routes.remove(i))
    }
    /// The route for `path`; a path equal to a mount without its trailing slash also matches.
    pub fn route(&self, path: &str) -> Option<(&Route, String)> {
        for r in &self.routes {
            if let Some(rest) = path.strip_prefix(r.prefix.as_str()) {
                return Some((r, rest.to_string()));
            }
            if path == r.prefix.trim_end_matches('/') {
                return Some((r, String::new()));
            }
        }
        None
    }
    pub fn get(&self, prefix: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.prefix == prefix)
    }
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
    /// Whether `prefix` would overlap an existing mount (one is a prefix of the other).
    pub fn conflicts(&self, prefix: &str) -> Option<String> {
        self.routes
            .iter()
            .find(|r| r.prefix.starts_with(prefix) || prefix.starts_with(r.prefix.as_str()))
            .map(|r| r.prefix.clone())
    }
}
