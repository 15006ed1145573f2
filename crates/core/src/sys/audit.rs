//! `sys/audit*`: enable, list and disable audit devices, hash a value with a device's salt,
//! and (beyond Vault) hand an operator a file device's chain key for `tresor audit verify`.

use super::Sys;
use crate::audit::{confine, AuditEntry};
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("audit").op(Read, Sys::audit_list).help("List enabled audit devices."),
        Path::new("audit/(?P<path>.+)")
            .field("type", Field::string("file, socket or syslog"))
            .field("description", Field::string("description"))
            .field("options", Field::map("device options (file_path, mode, log_raw, hmac_accessor, prefix, format, address, socket_type, facility, tag)"))
            .field("local", Field::bool("local only"))
            .op(Update, Sys::audit_enable)
            .op(Delete, Sys::audit_disable)
            .help("Enable or disable an audit device."),
        Path::new("audit-hash/(?P<path>.+)").field("input", Field::string("value to hash")).op(Update, Sys::audit_hash).help("Hash a value with an audit device's salt."),
        Path::new("audit-chain-key/(?P<path>.+)").op(Read, Sys::audit_chain_key).help("The chain key of a file audit device, for `tresor audit verify` (beyond Vault)."),
    ]
}

impl Sys {
    async fn audit_list(self: Arc<Self>, _c: Call) -> Result<Response> {
        let data: Map<String, Value> = self
            .core()?
            .audit
            .entries()
            .into_iter()
            .map(|e| (e.path.clone(), e.to_json()))
            .collect();
        Ok(Response {
            data: Some(data),
            top_level_data: true,
            ..Default::default()
        })
    }

    async fn audit_enable(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let kind = c.fields.str("type").to_string();
        if kind.is_empty() {
            return Err(Error::bad("type is required"));
        }
        let mut options = c.fields.map("options");
        for v in options.values_mut() {
            if let Value::Bool(b) = v {
                *v = Value::String(b.to_string());
            }
        }
        if kind == "file" {
            let given = ["file_path", "path"]
                .iter()
                .filter_map(|k| options.get(*k).and_then(Value::as_str))
                .find(|p| !p.is_empty())
                .ok_or_else(|| Error::bad("file_path is required"))?
                .to_string();
            let confined = confine(&given, core.config.audit_dir.as_deref())?;
            options.remove("path");
            options.insert("file_path".into(), json!(confined.to_string_lossy()));
        }
        let entry = AuditEntry {
            path: format!("{}/", c.fields.str("path").trim_end_matches('/')),
            kind,
            description: c.fields.str("description").to_string(),
            options,
            local: c.fields.bool("local"),
            from_config: false,
        };
        core.enable_audit(entry).await?;
        Ok(Response::default())
    }

    async fn audit_disable(self: Arc<Self>, c: Call) -> Result<Response> {
        self.core()?.disable_audit(c.fields.str("path")).await?;
        Ok(Response::default())
    }

    async fn audit_hash(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let d = core
            .audit
            .device(c.fields.str("path"))
            .ok_or_else(|| Error::bad("unknown audit backend"))?;
        Ok(Response::data(
            json!({ "hash": d.hash(c.fields.str("input")) }),
        ))
    }

    async fn audit_chain_key(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let d = core
            .audit
            .device(c.fields.str("path"))
            .ok_or_else(|| Error::bad("unknown audit backend"))?;
        if d.entry.kind != "file" {
            return Err(Error::bad("only file audit devices keep a chain"));
        }
        let key = core
            .root_view()
            .get(&format!(
                "sys/audit/chain/{}",
                d.entry.path.trim_end_matches('/')
            ))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(json!({ "key": hex::encode(key) })))
    }
}
