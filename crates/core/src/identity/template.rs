//! Vault's identity templating (`sdk/helper/identitytpl`): `{{identity.entity.name}}` and
//! friends, in two modes. ACL mode fills policy paths with plain strings and fails on anything
//! missing (the path block is then dropped); JSON mode fills OIDC token templates with JSON
//! values (strings quoted, lists and maps encoded, a missing metadata key an empty string).
//!
//! Beyond Vault 1.x, and as later upstream versions do, an ACL-mode value containing a glob
//! character (`*` or `+`) fails too: an entity or alias attribute must never widen a path.

use super::{Alias, Entity, Group};
use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Acl,
    Json,
}

/// What a template can refer to.
pub(crate) struct Context<'a> {
    pub entity: Option<&'a Entity>,
    /// Every group the entity belongs to, directly or not.
    pub groups: &'a [Group],
    /// Unix time, for `{{time.now}}`.
    pub now: i64,
}

/// A value a directive resolved to, before the mode renders it.
enum Val<'a> {
    Str(&'a str),
    List(Vec<&'a str>),
    Map(&'a BTreeMap<String, String>),
    MapKey(&'a BTreeMap<String, String>, &'a str),
}

fn render(v: Val<'_>, mode: Mode) -> std::result::Result<String, String> {
    const NOT_FOUND: &str = "no value could be found for one of the template directives";
    match mode {
        Mode::Acl => {
            let s = match v {
                Val::Str("") | Val::List(_) | Val::Map(_) => return Err(NOT_FOUND.into()),
                Val::Str(s) => s,
                Val::MapKey(m, k) => m.get(k).ok_or(NOT_FOUND)?.as_str(),
            };
            if s.contains(['*', '+']) {
                return Err("templated value contains a glob character".into());
            }
            Ok(s.to_string())
        }
        Mode::Json => Ok(match v {
            Val::Str(s) => Value::String(s.to_string()).to_string(),
            Val::List(l) if l.is_empty() => "null".to_string(),
            Val::List(l) => serde_json::to_string(&l).unwrap_or_default(),
            Val::Map(m) => serde_json::to_string(m).unwrap_or_default(),
            Val::MapKey(m, k) => Value::String(m.get(k).cloned().unwrap_or_default()).to_string(),
        }),
    }
}

/// Fills every `{{...}}` of `s`. Errors name the first directive that failed.
pub(crate) fn populate(
    s: &str,
    ctx: &Context<'_>,
    mode: Mode,
) -> std::result::Result<String, String> {
    let mut parts = s.split("{{");
    let first = parts.next().unwrap_or("");
    if first.contains("}}") {
        return Err("unbalanced templating characters".into());
    }
    let mut out = String::with_capacity(s.len() * 2);
    out.push_str(first);
    for piece in parts {
        let mut split = piece.split("}}");
        let (Some(directive), Some(rest), None) = (split.next(), split.next(), split.next()) else {
            return Err("unbalanced templating characters".into());
        };
        out.push_str(&directive_value(directive.trim(), ctx, mode)?);
        out.push_str(rest);
    }
    Ok(out)
}

fn directive_value(
    input: &str,
    ctx: &Context<'_>,
    mode: Mode,
) -> std::result::Result<String, String> {
    if let Some(rest) = input.strip_prefix("identity.entity.") {
        let e = ctx
            .entity
            .ok_or("string contains entity template directives but no entity was provided")?;
        return entity_value(rest, e, ctx, mode);
    }
    if let Some(rest) = input.strip_prefix("identity.groups.") {
        if ctx.groups.is_empty() {
            return Err(
                "string contains groups template directives but no groups were provided".into(),
            );
        }
        return group_value(rest, ctx, mode);
    }
    if let Some(rest) = input.strip_prefix("time.") {
        return time_value(rest, ctx.now);
    }
    Err("no value could be found for one of the template directives".into())
}

fn entity_value(
    sel: &str,
    e: &Entity,
    ctx: &Context<'_>,
    mode: Mode,
) -> std::result::Result<String, String> {
    match sel {
        "id" => return render(Val::Str(&e.id), mode),
        "name" => return render(Val::Str(&e.name), mode),
        "metadata" => return render(Val::Map(&e.metadata), mode),
        "groups.names" => {
            return render(
                Val::List(ctx.groups.iter().map(|g| g.name.as_str()).collect()),
                mode,
            )
        }
        "groups.ids" => {
            return render(
                Val::List(ctx.groups.iter().map(|g| g.id.as_str()).collect()),
                mode,
            )
        }
        _ => {}
    }
    if let Some(key) = sel.strip_prefix("metadata.") {
        return render(Val::MapKey(&e.metadata, key), mode);
    }
    if let Some(rest) = sel.strip_prefix("aliases.") {
        let Some((accessor, field)) = rest.split_once('.') else {
            return Err("invalid alias selector".into());
        };
        let empty = Alias::default();
        let alias = match e.aliases.iter().find(|a| a.mount_accessor == accessor) {
            Some(a) => a,
            None if mode == Mode::Acl => return Err("alias not found".into()),
            // An empty alias is enough to render defaults.
            None => &empty,
        };
        return match field {
            "id" => render(Val::Str(&alias.id), mode),
            "name" => render(Val::Str(&alias.name), mode),
            "metadata" => render(Val::Map(&alias.metadata), mode),
            "custom_metadata" => render(Val::Map(&alias.custom_metadata), mode),
            f => {
                if let Some(k) = f.strip_prefix("metadata.") {
                    render(Val::MapKey(&alias.metadata, k), mode)
                } else if let Some(k) = f.strip_prefix("custom_metadata.") {
                    render(Val::MapKey(&alias.custom_metadata, k), mode)
                } else {
                    Err("no value could be found for one of the template directives".into())
                }
            }
        };
    }
    Err("no value could be found for one of the template directives".into())
}

fn group_value(sel: &str, ctx: &Context<'_>, mode: Mode) -> std::result::Result<String, String> {
    let (by_id, rest) = match sel.split_once('.') {
        Some(("ids", rest)) => (true, rest),
        Some(("names", rest)) => (false, rest),
        _ => return Err("invalid groups selector".into()),
    };
    // Group names and ids hold no dots in practice; Vault splits on the first one too.
    let Some((key, field)) = rest.split_once('.') else {
        return Err("invalid groups accessor".into());
    };
    let found = ctx
        .groups
        .iter()
        .find(|g| if by_id { g.id == key } else { g.name == key })
        .ok_or_else(|| format!("entity is not a member of group {key:?}"))?;
    match field {
        "id" => render(Val::Str(&found.id), mode),
        "name" => render(Val::Str(&found.name), mode),
        f => match f.strip_prefix("metadata.") {
            Some(k) if found.metadata.contains_key(k) => {
                render(Val::MapKey(&found.metadata, k), mode)
            }
            _ => Err("no value could be found for one of the template directives".into()),
        },
    }
}

fn time_value(sel: &str, now: i64) -> std::result::Result<String, String> {
    let parts: Vec<&str> = sel.splitn(3, '.').collect();
    if parts[0] != "now" {
        return Err(format!("invalid time selector {:?}", parts[0]));
    }
    let t = match parts.as_slice() {
        [_] => now,
        [_, _] => return Err("missing time operand".into()),
        [_, op, d] => {
            let secs = crate::framework::parse_duration_str(d)
                .filter(|_| !d.trim().is_empty())
                .ok_or_else(|| format!("invalid duration: {d:?}"))?
                .as_secs() as i64;
            match *op {
                "plus" => now + secs,
                "minus" => now - secs,
                o => return Err(format!("invalid time operator {o:?}")),
            }
        }
        _ => unreachable!("splitn(3) yields at most three parts"),
    };
    Ok(t.to_string())
}

/// Expands the templated `path` labels of a policy's text (HCL, or JSON when it starts with
/// `{`); blocks that cannot be resolved are dropped. Everything else is kept as parsed.
pub(crate) fn expand_policy_text(text: &str, ctx: &Context<'_>) -> Result<String> {
    if text.trim_start().starts_with('{') {
        return expand_json(text, ctx);
    }
    let body = hcl::parse(text).map_err(|e| Error::bad(format!("failed to parse policy: {e}")))?;
    let mut out: Vec<hcl::Structure> = Vec::new();
    for s in body.into_inner() {
        match s {
            hcl::Structure::Block(mut b)
                if b.identifier.as_str() == "path"
                    && b.labels.len() == 1
                    && b.labels[0].as_str().contains("{{") =>
            {
                match populate(b.labels[0].as_str(), ctx, Mode::Acl) {
                    Ok(path) => {
                        b.labels[0] = hcl::BlockLabel::String(path);
                        out.push(hcl::Structure::Block(b));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "dropping templated policy path");
                    }
                }
            }
            other => out.push(other),
        }
    }
    hcl::to_string(&hcl::Body::from(out))
        .map_err(|e| Error::internal(format!("failed to render policy: {e}")))
}

fn expand_json(text: &str, ctx: &Context<'_>) -> Result<String> {
    let mut root: Value = serde_json::from_str(text)
        .map_err(|e| Error::bad(format!("failed to parse policy: {e}")))?;
    if let Some(paths) = root.get_mut("path") {
        expand_json_paths(paths, ctx);
    }
    Ok(serde_json::to_string(&root)?)
}

/// `"path": {"<path>": {...}}` or its list forms (`[{"<path>": {...}}]`).
fn expand_json_paths(v: &mut Value, ctx: &Context<'_>) {
    match v {
        Value::Object(m) => {
            let old = std::mem::take(m);
            let mut new = Map::new();
            for (k, v) in old {
                if !k.contains("{{") {
                    new.insert(k, v);
                    continue;
                }
                match populate(&k, ctx, Mode::Acl) {
                    Ok(path) => {
                        new.insert(path, v);
                    }
                    Err(e) => tracing::debug!(error = %e, "dropping templated policy path"),
                }
            }
            *m = new;
        }
        Value::Array(items) => items.iter_mut().for_each(|i| expand_json_paths(i, ctx)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity() -> Entity {
        Entity {
            id: "eid".into(),
            name: "alice".into(),
            metadata: [("team".to_string(), "blue".to_string())].into(),
            aliases: vec![Alias {
                id: "aid".into(),
                name: "al".into(),
                mount_accessor: "auth_userpass_1".into(),
                metadata: [("org".to_string(), "x".to_string())].into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn acl_mode_fills_and_fails_like_vault() {
        let e = entity();
        let groups = vec![Group {
            id: "gid".into(),
            name: "devs".into(),
            ..Default::default()
        }];
        let ctx = Context {
            entity: Some(&e),
            groups: &groups,
            now: 100,
        };
        let p = |s: &str| populate(s, &ctx, Mode::Acl);
        assert_eq!(p("a/{{identity.entity.id}}/b").unwrap(), "a/eid/b");
        assert_eq!(p("{{ identity.entity.name }}").unwrap(), "alice");
        assert_eq!(p("{{identity.entity.metadata.team}}").unwrap(), "blue");
        assert!(p("{{identity.entity.metadata.nope}}").is_err());
        assert_eq!(
            p("{{identity.entity.aliases.auth_userpass_1.metadata.org}}").unwrap(),
            "x"
        );
        assert!(p("{{identity.entity.aliases.other.name}}").is_err());
        assert_eq!(p("{{identity.groups.ids.gid.name}}").unwrap(), "devs");
        assert_eq!(p("{{identity.groups.names.devs.id}}").unwrap(), "gid");
        assert!(p("{{identity.groups.names.ops.id}}").is_err());
        assert!(p("{{identity.entity.groups.names}}").is_err());
        assert!(p("a}}b").is_err());
        assert!(p("{{identity.entity.id").is_err());
        assert_eq!(p("{{time.now.plus.1h}}").unwrap(), "3700");
    }

    #[test]
    fn json_mode_quotes_and_defaults() {
        let e = entity();
        let ctx = Context {
            entity: Some(&e),
            groups: &[],
            now: 0,
        };
        let p = |s: &str| populate(s, &ctx, Mode::Json).unwrap();
        assert_eq!(p("{{identity.entity.name}}"), "\"alice\"");
        assert_eq!(p("{{identity.entity.metadata.nope}}"), "\"\"");
        assert_eq!(p("{{identity.entity.metadata}}"), r#"{"team":"blue"}"#);
        assert_eq!(p("{{identity.entity.groups.names}}"), "null");
        assert_eq!(p("{{identity.entity.aliases.zz.name}}"), "\"\"");
    }

    #[test]
    fn glob_values_never_reach_a_path() {
        let mut e = entity();
        e.metadata.insert("team".into(), "*".into());
        let ctx = Context {
            entity: Some(&e),
            groups: &[],
            now: 0,
        };
        assert!(populate("kv/{{identity.entity.metadata.team}}", &ctx, Mode::Acl).is_err());
    }
}
