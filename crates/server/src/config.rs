//! The server configuration file, in Vault's shape (HCL or JSON):
//!
//! ```hcl
//! storage "file" { path = "/var/lib/tresor" }     # or: storage "inmem" {}  (`backend` is an alias)
//! listener "tcp" {
//!   address       = "127.0.0.1:8200"
//!   tls_cert_file = "cert.pem"
//!   tls_key_file  = "key.pem"
//!   tls_disable   = false
//! }
//! api_addr = "https://127.0.0.1:8200"
//! default_lease_ttl = "768h"
//! max_lease_ttl = "768h"
//! ```
//! Unknown keys (`ui`, `disable_mlock`, `cluster_addr` ...) are accepted and ignored, so Vault
//! config files load unchanged. Why hcl-rs: the maintained Rust HCL parser with serde support.

use crate::BoxError;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tresor_core::framework::parse_duration;

#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    Memory,
    File(PathBuf),
}

impl StorageConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            StorageConfig::Memory => "inmem",
            StorageConfig::File(_) => "file",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    pub address: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest accepted request body, bytes.
    pub max_request_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub api_addr: Option<String>,
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
}

pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;
const DEFAULT_TTL: u64 = 768 * 3600;

impl ServerConfig {
    /// `-dev`: in memory, plain HTTP on 127.0.0.1:8200 (or the given address).
    pub fn dev(addr: Option<&str>) -> Self {
        ServerConfig {
            storage: StorageConfig::Memory,
            listeners: vec![ListenerConfig {
                address: addr.unwrap_or("127.0.0.1:8200").to_string(),
                tls: None,
                max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            }],
            api_addr: None,
            default_lease_ttl: DEFAULT_TTL,
            max_lease_ttl: DEFAULT_TTL,
        }
    }

    pub fn load(path: &Path) -> Result<Self, BoxError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("error loading configuration from {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
            .map_err(|e| format!("error loading configuration from {}: {e}", path.display()).into())
    }

    /// Parses HCL or JSON text; relative file paths stay relative to the working directory (as Vault).
    pub fn parse(text: &str, _base: &Path) -> Result<Self, BoxError> {
        let v: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text)?
        } else {
            hcl::from_str(text)?
        };
        let obj = v.as_object().ok_or("configuration must be an object")?;
        let storage = match obj.get("storage").or_else(|| obj.get("backend")) {
            None => return Err(
                "no storage configured (storage \"file\" { path = ... } or storage \"inmem\" {})"
                    .into(),
            ),
            Some(s) => {
                let (kind, body) = single_block(s).ok_or("storage must name one type")?;
                match kind.as_str() {
                    "inmem" => StorageConfig::Memory,
                    "file" | "raft" => StorageConfig::File(PathBuf::from(
                        body.get("path")
                            .and_then(Value::as_str)
                            .ok_or("storage \"file\" needs a path")?,
                    )),
                    other => {
                        return Err(format!(
                            "unsupported storage type {other:?} (supported: file, inmem)"
                        )
                        .into())
                    }
                }
            }
        };
        let mut listeners = Vec::new();
        for block in blocks(obj.get("listener")) {
            let (kind, body) = block;
            if kind != "tcp" {
                return Err(format!("unsupported listener type {kind:?}").into());
            }
            let address = body
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or("127.0.0.1:8200")
                .to_string();
            let tls_disable = body.get("tls_disable").map(truthy).unwrap_or(false);
            let tls = if tls_disable {
                None
            } else {
                let cert = body.get("tls_cert_file").and_then(Value::as_str);
                let key = body.get("tls_key_file").and_then(Value::as_str);
                match (cert, key) {
                    (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
                    _ => return Err("listener: tls_cert_file and tls_key_file are required unless tls_disable = true".into()),
                }
            };
            let max_request_size = match body.get("max_request_size") {
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|n| *n > 0)
                    .map(|n| n as usize)
                    .unwrap_or(DEFAULT_MAX_REQUEST_SIZE),
                None => DEFAULT_MAX_REQUEST_SIZE,
            };
            listeners.push(ListenerConfig {
                address,
                tls,
                max_request_size,
            });
        }
        if listeners.is_empty() {
            return Err("no listener configured".into());
        }
        let ttl = |k: &str| -> Result<u64, BoxError> {
            match obj.get(k) {
                None => Ok(DEFAULT_TTL),
                Some(v) => parse_duration(v)
                    .map(|d| d.as_secs())
                    .ok_or_else(|| format!("invalid {k}").into()),
            }
        };
        Ok(ServerConfig {
            storage,
            listeners,
            api_addr: obj
                .get("api_addr")
                .and_then(Value::as_str)
                .map(str::to_string),
            default_lease_ttl: ttl("default_lease_ttl")?,
            max_lease_ttl: ttl("max_lease_ttl")?,
        })
    }

    /// Later config files override and extend earlier ones.
    pub fn merge(&mut self, other: ServerConfig) {
        self.storage = other.storage;
        self.listeners.extend(other.listeners);
        if other.api_addr.is_some() {
            self.api_addr = other.api_addr;
        }
        self.default_lease_ttl = other.default_lease_ttl;
        self.max_lease_ttl = other.max_lease_ttl;
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() != Some(0),
        Value::String(s) => matches!(s.as_str(), "true" | "1" | "yes"),
        _ => false,
    }
}

/// `{ "file": { ... } }` (or a one-element list of it) → ("file", body).
fn single_block(v: &Value) -> Option<(String, serde_json::Map<String, Value>)> {
    blocks(Some(v)).into_iter().next()
}

/// Labelled blocks, whichever way the parser shaped them: an object keyed by label (whose
/// value may be an object or a list of objects), or a list of such objects.
fn blocks(v: Option<&Value>) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    match v {
        Some(Value::Array(items)) => {
            for i in items {
                out.extend(blocks(Some(i)));
            }
        }
        Some(Value::Object(m)) => {
            for (label, body) in m {
                match body {
                    Value::Object(b) => out.push((label.clone(), b.clone())),
                    Value::Array(bs) => out.extend(
                        bs.iter()
                            .filter_map(|b| b.as_object().map(|b| (label.clone(), b.clone()))),
                    ),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_hcl() {
        let c = ServerConfig::parse(
            r#"
            storage "file" { path = "/tmp/x" }
            listener "tcp" {
              address = "127.0.0.1:8300"
              tls_disable = true
            }
            listener "tcp" {
              address = "127.0.0.1:8301"
              tls_cert_file = "c.pem"
              tls_key_file = "k.pem"
            }
            ui = true
            disable_mlock = true
            default_lease_ttl = "1h"
            "#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.storage, StorageConfig::File("/tmp/x".into()));
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[0].tls, None);
        assert_eq!(c.listeners[1].tls, Some(("c.pem".into(), "k.pem".into())));
        assert_eq!(c.default_lease_ttl, 3600);
        assert_eq!(c.max_lease_ttl, DEFAULT_TTL);
    }

    #[test]
    fn parses_hvac_style_json() {
        let c = ServerConfig::parse(
            r#"{"backend": {"inmem": {}}, "listener": {"tcp": {"tls_cert_file": "a", "tls_key_file": "b", "address": "127.0.0.1:1234"}}, "disable_mlock": true, "default_lease_ttl": "768h", "max_lease_ttl": "768h"}"#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.storage, StorageConfig::Memory);
        assert_eq!(c.listeners[0].address, "127.0.0.1:1234");
    }

    #[test]
    fn rejects_bad_configs_clearly() {
        for (text, want) in [
            ("listener \"tcp\" { tls_disable = true }", "no storage"),
            (
                "storage \"consul\" {}\nlistener \"tcp\" { tls_disable = true }",
                "unsupported storage",
            ),
            ("storage \"inmem\" {}", "no listener"),
            (
                "storage \"inmem\" {}\nlistener \"tcp\" { address = \"x\" }",
                "tls_cert_file",
            ),
            ("storage \"inmem\" {", ""),
        ] {
            let e = ServerConfig::parse(text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
