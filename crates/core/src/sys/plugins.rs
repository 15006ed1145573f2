//! `sys/plugins/catalog/*`: the plugin catalog, read-only. Tresor runs no external plugins:
//! every engine, auth method and database plugin is built in, so the catalog lists what this
//! build can mount (`bao plugin list`, `bao plugin info`) and refuses registrations.

use super::Sys;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, Response};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("plugins/catalog/?")
            .op(Read, Sys::plugin_catalog)
            .help("Every plugin this server can run, by type (all built in)."),
        Path::new("plugins/catalog/(?P<type>auth|database|secret)/?")
            .field("type", Field::string("auth, database or secret"))
            .op(List, |s: Arc<Sys>, c: Call| async move {
                let names = s.plugins(c.fields.str("type"))?;
                Response::list_or_not_found(names)
            })
            .help("The plugins of one type."),
        Path::new("plugins/catalog/(?P<type>auth|database|secret)/(?P<name>[^/]+)")
            .field("type", Field::string("auth, database or secret"))
            .field("name", Field::string("the plugin's name"))
            .field("sha256", Field::string("refused: plugins are built in"))
            .field("command", Field::string("refused: plugins are built in"))
            .field("version", Field::string("the plugin's version"))
            .op(Read, Sys::plugin_info)
            .op(Update, Sys::refuse_plugin)
            .op(Delete, Sys::refuse_plugin)
            .help("One plugin. Tresor's are built in: registering or removing one is refused."),
    ]
}

fn version() -> String {
    format!("v{}+builtin.tresor", env!("CARGO_PKG_VERSION"))
}

impl Sys {
    fn plugins(&self, kind: &str) -> Result<Vec<String>> {
        Ok(self.core()?.plugin_names(kind))
    }

    async fn plugin_catalog(self: Arc<Self>, _c: Call) -> Result<Response> {
        let mut data = serde_json::Map::new();
        let mut detailed = Vec::new();
        for kind in ["auth", "database", "secret"] {
            let names = self.plugins(kind)?;
            for name in &names {
                detailed.push(json!({
                    "builtin": true,
                    "deprecation_status": "supported",
                    "name": name,
                    "type": kind,
                    "version": version(),
                }));
            }
            data.insert(kind.into(), json!(names));
        }
        data.insert("detailed".into(), Value::Array(detailed));
        Ok(Response::data(Value::Object(data)))
    }

    async fn plugin_info(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name");
        if !self
            .plugins(c.fields.str("type"))?
            .iter()
            .any(|n| n == name)
        {
            return Err(Error::NotFound);
        }
        Ok(Response::data(json!({
            "args": null,
            "builtin": true,
            "command": "",
            "deprecation_status": "supported",
            "name": name,
            "sha256": "",
            "version": version(),
        })))
    }

    async fn refuse_plugin(self: Arc<Self>, _c: Call) -> Result<Response> {
        Err(Error::bad(
            "Tresor runs no external plugins: its engines, auth methods and database plugins are built in",
        ))
    }
}
