//! `sys/internal/specs/openapi`: the OpenAPI 3.0 document of every mounted path, generated from
//! the same path declarations that drive routing and validation (see [`crate::framework`]).
//!
//! A path pattern is a regex; the document needs `/literal/{param}` templates. The pattern is
//! parsed with `regex-syntax` (the parser behind the `regex` crate) and expanded as Vault's
//! generator does: a named group becomes `{name}`, an alternation one template per branch, an
//! optional part one template with and one without it, an unnamed wildcard `{path}`. Field
//! types map to OpenAPI schemas (`duration`: a string or a number of seconds; a list: an array
//! of strings; a raw value: any JSON).

use super::Sys;
use crate::error::Result;
use crate::framework::Call;
use crate::logical::Response;
use regex_syntax::ast::{self, Ast, GroupKind, RepetitionKind};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Templates per pattern at most (a pattern with many optional parts would multiply).
const MAX_TEMPLATES: usize = 16;

/// The OpenAPI path templates a path pattern matches.
pub fn templates(pattern: &str) -> Vec<String> {
    let Ok(ast) = ast::parse::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for t in expand(&ast) {
        let t = dedupe_params(&collapse_params(&t));
        let t = t.trim_end_matches('/').to_string();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Every string a pattern can match, with each variable part as a `{param}`.
fn expand(ast: &Ast) -> Vec<String> {
    let wildcard = || vec!["{path}".to_string()];
    match ast {
        Ast::Empty(_) | Ast::Flags(_) | Ast::Assertion(_) => vec![String::new()],
        Ast::Literal(l) => vec![l.c.to_string()],
        Ast::Dot(_) | Ast::ClassUnicode(_) | Ast::ClassPerl(_) | Ast::ClassBracketed(_) => {
            wildcard()
        }
        Ast::Repetition(r) => match r.op.kind {
            RepetitionKind::ZeroOrOne => {
                let mut v = vec![String::new()];
                v.extend(expand(&r.ast));
                v
            }
            // `/+` is still a slash; anything else repeated is a variable part.
            _ => match r.ast.as_ref() {
                Ast::Literal(l) => vec![l.c.to_string()],
                _ => wildcard(),
            },
        },
        Ast::Group(g) => match &g.kind {
            GroupKind::CaptureName { name, .. } => vec![format!("{{{}}}", name.name)],
            _ => expand(&g.ast),
        },
        Ast::Alternation(a) => a.asts.iter().flat_map(expand).take(MAX_TEMPLATES).collect(),
        Ast::Concat(c) => c.asts.iter().fold(vec![String::new()], |acc, part| {
            let parts = expand(part);
            acc.iter()
                .flat_map(|a| parts.iter().map(move |p| format!("{a}{p}")))
                .take(MAX_TEMPLATES)
                .collect()
        }),
    }
}

/// `{path}{path}` (two wildcards in a row) is one variable part.
fn collapse_params(t: &str) -> String {
    let mut t = t.to_string();
    while let Some(i) = t.find("}{") {
        let close = t[i + 2..]
            .find('}')
            .map(|j| i + 2 + j + 1)
            .unwrap_or(t.len());
        t.replace_range(i + 1..close, "");
    }
    t
}

/// Parameter names must be unique in a template: `{path}` twice becomes `{path}`, `{path2}`.
fn dedupe_params(t: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..open + len];
        let mut unique = name.to_string();
        let mut n = 2;
        while seen.contains(&unique) {
            unique = format!("{name}{n}");
            n += 1;
        }
        out.push_str(&format!("{{{unique}}}"));
        seen.push(unique);
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    out
}

/// The OpenAPI schema of a field type as the framework names it.
fn schema_for(field_type: &str) -> Value {
    match field_type {
        "string" => json!({ "type": "string" }),
        "integer" => json!({ "type": "integer" }),
        "boolean" => json!({ "type": "boolean" }),
        "object" => json!({ "type": "object" }),
        "array" => json!({ "type": "array", "items": { "type": "string" } }),
        "duration" => json!({ "oneOf": [
            { "type": "string", "description": "a Go duration such as \"1h30m\"" },
            { "type": "integer", "description": "seconds" }
        ] }),
        // Any JSON value.
        _ => json!({}),
    }
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
        let active = core.active_or_standby()?;
        let routes: Vec<_> = active.router.read().routes().to_vec();
        let mut paths = Map::new();
        for route in routes {
            let desc = route.backend.describe();
            for p in desc["paths"].as_array().into_iter().flatten() {
                let fields = p["fields"].as_object().cloned().unwrap_or_default();
                let mut properties = Map::new();
                let mut required = Vec::new();
                for (name, f) in &fields {
                    let mut schema = schema_for(f["type"].as_str().unwrap_or(""));
                    schema["description"] = f["description"].clone();
                    properties.insert(name.clone(), schema);
                    if f["required"].as_bool() == Some(true) {
                        required.push(name.clone());
                    }
                }
                for template in templates(p["pattern"].as_str().unwrap_or("")) {
                    let url = format!("/{}{template}", route.prefix).replace("//", "/");
                    let url = if url.len() > 1 {
                        url.trim_end_matches('/').to_string()
                    } else {
                        url
                    };
                    let params: Vec<Value> = path_params(&url)
                        .into_iter()
                        .map(|name| {
                            let description = fields
                                .get(&name)
                                .and_then(|f| f["description"].as_str())
                                .unwrap_or("")
                                .to_string();
                            json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
                        })
                        .collect();
                    // Fields carried in the URL are not body properties.
                    let mut body = properties.clone();
                    let mut body_required = required.clone();
                    for name in path_params(&url) {
                        body.remove(&name);
                        body_required.retain(|r| r != &name);
                    }
                    let Value::Object(item) = paths
                        .entry(url.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                    else {
                        continue;
                    };
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
                            "responses": {
                                "200": { "description": "OK" },
                                "204": { "description": "empty body" },
                                "default": { "description": "an error: {\"errors\": [...]}" }
                            },
                        });
                        if method == "post" || method == "patch" {
                            let mut schema = json!({ "type": "object", "properties": body });
                            if !body_required.is_empty() {
                                schema["required"] = json!(body_required);
                            }
                            let media = if method == "patch" {
                                "application/merge-patch+json"
                            } else {
                                "application/json"
                            };
                            o["requestBody"] =
                                json!({ "content": { media: { "schema": schema } } });
                        }
                        item.insert(method.to_string(), o);
                    }
                }
            }
        }
        paths.retain(|_, v| v.as_object().is_some_and(|m| !m.is_empty()));
        Ok(Response::raw_json(
            200,
            &json!({
                "openapi": "3.0.2",
                "info": { "title": "Tresor API", "description": "Vault-compatible HTTP API of Tresor", "version": env!("CARGO_PKG_VERSION") },
                "servers": [{ "url": "/v1" }],
                "components": { "securitySchemes": { "token": { "type": "apiKey", "in": "header", "name": "X-Vault-Token" } } },
                "security": [{ "token": [] }],
                "paths": paths,
            }),
        ))
    }
}

/// The `{name}` parameters of a template, in order.
fn path_params(template: &str) -> Vec<String> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(n, _)| n.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_from_patterns() {
        assert_eq!(templates("data/(?P<path>.+)"), ["data/{path}"]);
        assert_eq!(templates("mounts/(?P<path>.+?)/?"), ["mounts/{path}"]);
        assert_eq!(templates("roles/?"), ["roles"]);
        assert_eq!(templates("lookup"), ["lookup"]);
        assert_eq!(
            templates("(?P<kind>issue|sign)/(?P<role>\\w(([\\w.-]+)?\\w)?)"),
            ["{kind}/{role}"]
        );
        assert_eq!(
            templates("(encrypt|decrypt)/(?P<name>[^/]+)"),
            ["encrypt/{name}", "decrypt/{name}"]
        );
        assert_eq!(
            templates("keys/(?P<name>[^/]+)(/rotate)?"),
            ["keys/{name}", "keys/{name}/rotate"]
        );
        assert_eq!(templates("cert/.*"), ["cert/{path}"]);
        assert_eq!(templates("a/.+/b/.+"), ["a/{path}/b/{path2}"]);
        assert_eq!(templates("^export/(?P<type>[^/]+)$"), ["export/{type}"]);
    }
}
