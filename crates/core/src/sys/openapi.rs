//! `sys/internal/specs/openapi`: the OpenAPI 3 document of every mounted path, generated from
//! the same path declarations that drive routing and validation (see [`crate::framework`]).

use super::Sys;
use crate::error::Result;
use crate::framework::Call;
use crate::logical::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Turns a path regex into an OpenAPI template: named groups become `{name}`, optional
/// trailing slashes and non-capturing wrappers disappear.
pub fn template(pattern: &str) -> String {
    let re_named = regex::Regex::new(r"\(\?P<([A-Za-z0-9_]+)>[^()]*(?:\([^()]*\)[^()]*)*\)")
        .expect("valid regex");
    let mut t = re_named.replace_all(pattern, "{$1}").into_owned();
    for (from, to) in [
        ("/?", ""),
        ("(?:", ""),
        (")?", ""),
        (")", ""),
        ("^", ""),
        ("$", ""),
        (".*", "{path}"),
    ] {
        t = t.replace(from, to);
    }
    t
}

fn method_for(op: &str) -> Option<(&'static str, &'static str)> {
    Some(match op {
        "read" => ("get", "Read"),
        "list" => ("get", "List (with ?list=true, or the LIST method)"),
        "create" | "update" => ("post", "Create or update"),
        "patch" => ("patch", "Patch"),
        "delete" => ("delete", "Delete"),
        _ => return None,
    })
}

impl Sys {
    pub(super) async fn openapi(self: Arc<Self>, _c: Call) -> Result<Response> {
        let core = self.core()?;
        let active = core.active()?;
        let routes: Vec<_> = active.router.read().routes().to_vec();
        let mut paths = Map::new();
        let placeholder = regex::Regex::new(r"\{([A-Za-z0-9_]+)\}").expect("valid regex");
        for route in routes {
            let desc = route.backend.describe();
            for p in desc["paths"].as_array().into_iter().flatten() {
                let url = format!(
                    "/{}{}",
                    route.prefix,
                    template(p["pattern"].as_str().unwrap_or(""))
                );
                let mut item = Map::new();
                let params: Vec<Value> = placeholder
                    .captures_iter(&url)
                    .map(|c| json!({ "name": &c[1], "in": "path", "required": true, "schema": { "type": "string" } }))
                    .collect();
                let body_props: Map<String, Value> = p["fields"]
                    .as_object()
                    .map(|f| {
                        f.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    json!({ "type": v["type"], "description": v["description"] }),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for op in p["operations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let Some((method, summary)) = method_for(op) else {
                        continue;
                    };
                    if item.contains_key(method) {
                        continue;
                    }
                    let mut o = json!({
                        "summary": format!("{summary}. {}", p["help"].as_str().unwrap_or("")),
                        "tags": [route.entry.kind.clone()],
                        "parameters": params,
                        "responses": { "200": { "description": "OK" }, "204": { "description": "empty body" } },
                    });
                    if method == "post" || method == "patch" {
                        o["requestBody"] = json!({ "content": { "application/json": { "schema": { "type": "object", "properties": body_props } } } });
                    }
                    item.insert(method.to_string(), o);
                }
                if !item.is_empty() {
                    paths.insert(url, Value::Object(item));
                }
            }
        }
        Ok(Response::raw_json(
            200,
            &json!({
                "openapi": "3.0.2",
                "info": { "title": "Tresor API", "description": "Vault-compatible HTTP API of Tresor", "version": env!("CARGO_PKG_VERSION") },
                "paths": paths,
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn templates_from_patterns() {
        assert_eq!(template("data/(?P<path>.+)"), "data/{path}");
        assert_eq!(template("mounts/(?P<path>.+?)/?"), "mounts/{path}");
        assert_eq!(template("roles/?"), "roles");
        assert_eq!(template("lookup"), "lookup");
    }
}
