//! Parsing of Vault's policy language into [`PathRule`]s.
//!
//! Both surface syntaxes Vault accepts end up in the same intermediate form (a path string and a
//! list of `key = value` pairs with JSON values), and one function, [`build_rule`], applies
//! Vault's rules to it (`parsePaths` in Vault's `vault/policy.go`): key validation, the legacy
//! `policy = "write"` form, capability names, parameter maps (keys lowercased), wrapping TTLs,
//! `expiration`, glob classification and the `+*` check.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Capability bits, as in Vault's `cap2Int`.
pub(crate) const CAP_DENY: u32 = 1;
pub(crate) const CAP_CREATE: u32 = 1 << 1;
pub(crate) const CAP_READ: u32 = 1 << 2;
pub(crate) const CAP_UPDATE: u32 = 1 << 3;
pub(crate) const CAP_DELETE: u32 = 1 << 4;
pub(crate) const CAP_LIST: u32 = 1 << 5;
pub(crate) const CAP_SUDO: u32 = 1 << 6;
pub(crate) const CAP_PATCH: u32 = 1 << 7;
/// OpenBao's `scan`, Vault's `subscribe` and `recover`: accepted and reported by
/// `sys/capabilities`, but no [`crate::logical::Operation`] maps to them.
pub(crate) const CAP_SCAN: u32 = 1 << 8;
pub(crate) const CAP_SUBSCRIBE: u32 = 1 << 9;
pub(crate) const CAP_RECOVER: u32 = 1 << 10;

/// Capability names in alphabetical order (the order `sys/capabilities` answers in), with bits.
pub(crate) const CAPABILITY_NAMES: [(&str, u32); 10] = [
    ("create", CAP_CREATE),
    ("delete", CAP_DELETE),
    ("list", CAP_LIST),
    ("patch", CAP_PATCH),
    ("read", CAP_READ),
    ("recover", CAP_RECOVER),
    ("scan", CAP_SCAN),
    ("subscribe", CAP_SUBSCRIBE),
    ("sudo", CAP_SUDO),
    ("update", CAP_UPDATE),
];

fn capability_bit(name: &str) -> Option<u32> {
    if name == "deny" {
        return Some(CAP_DENY);
    }
    CAPABILITY_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bit)| *bit)
}

/// Sorted capability names of a bitmap; `["deny"]` if it denies or grants nothing.
pub(crate) fn capability_names(bits: u32) -> Vec<String> {
    if bits & CAP_DENY != 0 {
        return vec!["deny".to_string()];
    }
    let names: Vec<String> = CAPABILITY_NAMES
        .iter()
        .filter(|(_, bit)| bits & bit != 0)
        .map(|(n, _)| n.to_string())
        .collect();
    if names.is_empty() {
        vec!["deny".to_string()]
    } else {
        names
    }
}

/// Keys Vault (and OpenBao) accept inside a `path` block. Only the ones Tresor enforces are
/// interpreted; the others (MFA, control groups, pagination, event types) are validated for
/// shape only where cheap and otherwise ignored.
const VALID_PATH_KEYS: [&str; 14] = [
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "pagination_limit",
    "expiration",
    "list_scan_response_keys_filter_path",
    "control_group",
    "subscribe_event_types",
];

/// How a rule's path is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// The path must equal the request path.
    Exact,
    /// A trailing `*`: the path (without the `*`) must be a prefix of the request path.
    Prefix,
    /// Contains `+` segment wildcards (and possibly a trailing `*`).
    Segment,
}

/// The permissions one `path` block grants (before merging), or the merged permissions of all
/// blocks with the same path string (after [`super::Acl::new`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permissions {
    /// Capability bitmap; a deny rule holds only the deny bit.
    pub(crate) capabilities: u32,
    /// Zero when unset (as in Vault).
    pub min_wrapping_ttl: Duration,
    /// Zero when unset (as in Vault).
    pub max_wrapping_ttl: Duration,
    /// Lowercased parameter name -> allowed values (empty list: any value).
    pub allowed_parameters: HashMap<String, Vec<Value>>,
    /// Lowercased parameter name -> denied values (empty list: any value).
    pub denied_parameters: HashMap<String, Vec<Value>>,
    pub required_parameters: Vec<String>,
}

impl Permissions {
    /// Sorted capability names, `["deny"]` for a deny rule or one without capabilities.
    pub fn capabilities(&self) -> Vec<String> {
        capability_names(self.capabilities)
    }
}

/// One `path "..." { ... }` block of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The path as written, minus one leading `/`, including any trailing `*`.
    pub path: String,
    pub kind: RuleKind,
    pub permissions: Permissions,
    /// Unix seconds after which the rule no longer applies (OpenBao's `expiration`).
    pub expiration: Option<i64>,
    /// The path uses identity templating (`{{identity.entity.id}}`). Tresor has no identity
    /// store, so, as Vault does for a token without an entity, such rules are ignored by the ACL.
    pub templated: bool,
}

impl PathRule {
    /// The key the ACL files the rule under: the path without its trailing `*` for prefix
    /// rules, the path as written otherwise.
    pub(crate) fn key(&self) -> &str {
        match self.kind {
            RuleKind::Prefix => &self.path[..self.path.len() - 1],
            _ => &self.path,
        }
    }
}

/// A `path` block in the shape both syntaxes share.
struct RawPath {
    path: String,
    attrs: Vec<(String, Value)>,
}

type PResult<T> = std::result::Result<T, String>;

/// Parses policy text (HCL, or JSON when it starts with `{`, as Vault's HCL parser does).
/// Errors carry no "failed to parse policy" prefix; the caller adds it.
pub(crate) fn parse_rules(text: &str) -> PResult<Vec<PathRule>> {
    let raw = if text.trim_start().starts_with('{') {
        from_json(text)?
    } else {
        from_hcl(text)?
    };
    let now = crate::util::unix_now();
    let mut rules = Vec::with_capacity(raw.len());
    for r in raw {
        if let Some(rule) = build_rule(r, now)? {
            rules.push(rule);
        }
    }
    Ok(rules)
}

// ---------------------------------------------------------------------------------------------
// HCL

fn from_hcl(text: &str) -> PResult<Vec<RawPath>> {
    let body = hcl::parse(text).map_err(hcl_error)?;
    let mut out = Vec::new();
    for structure in body.iter() {
        match structure {
            hcl::Structure::Attribute(attr) if attr.key.as_str() == "name" => {}
            hcl::Structure::Attribute(attr) => {
                return Err(format!("invalid key {:?}", attr.key.as_str()));
            }
            hcl::Structure::Block(block) if block.identifier.as_str() == "path" => {
                let path = match block.labels.as_slice() {
                    [label] => label.as_str().to_string(),
                    [] => {
                        return Err(
                            "path block without a path (expected path \"...\" { ... })".into()
                        )
                    }
                    _ => return Err("path block with more than one label".into()),
                };
                let mut attrs = Vec::new();
                for s in block.body.iter() {
                    match s {
                        hcl::Structure::Attribute(a) => {
                            let v = expr_to_value(&a.expr)
                                .map_err(|e| format!("path {path:?}: {}: {e}", a.key.as_str()))?;
                            attrs.push((a.key.as_str().to_string(), v));
                        }
                        // HCL1 allowed `allowed_parameters { ... }` as an object; keep that form.
                        hcl::Structure::Block(b) => {
                            let v = block_to_value(b).map_err(|e| {
                                format!("path {path:?}: {}: {e}", b.identifier.as_str())
                            })?;
                            attrs.push((b.identifier.as_str().to_string(), v));
                        }
                    }
                }
                out.push(RawPath { path, attrs });
            }
            hcl::Structure::Block(block) => {
                return Err(format!("invalid key {:?}", block.identifier.as_str()));
            }
        }
    }
    Ok(out)
}

fn hcl_error(e: hcl::Error) -> String {
    match e {
        hcl::Error::Parse(p) => {
            let loc = p.location();
            format!("At {}:{}: {}", loc.line(), loc.column(), p.message())
        }
        other => other.to_string(),
    }
}

/// A block nested in a `path` block, as a JSON object (labels become nested keys).
fn block_to_value(block: &hcl::Block) -> PResult<Value> {
    let mut obj = Map::new();
    for s in block.body.iter() {
        match s {
            hcl::Structure::Attribute(a) => {
                obj.insert(a.key.as_str().to_string(), expr_to_value(&a.expr)?);
            }
            hcl::Structure::Block(b) => {
                obj.insert(b.identifier.as_str().to_string(), block_to_value(b)?);
            }
        }
    }
    let mut v = Value::Object(obj);
    for label in block.labels.iter().rev() {
        let mut m = Map::new();
        m.insert(label.as_str().to_string(), v);
        v = Value::Object(m);
    }
    Ok(v)
}

/// Literal HCL expressions to JSON. Policies are data: variables, functions and operators are
/// rejected, and a quoted string containing `${...}` stays literal text, as it did in HCL1.
fn expr_to_value(expr: &hcl::Expression) -> PResult<Value> {
    use hcl::Expression as E;
    Ok(match expr {
        E::Null => Value::Null,
        E::Bool(b) => Value::Bool(*b),
        E::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| "invalid number".to_string())?
            }
        }
        E::String(s) => Value::String(s.clone()),
        E::Array(items) => Value::Array(items.iter().map(expr_to_value).collect::<PResult<_>>()?),
        E::Object(obj) => {
            let mut m = Map::new();
            for (k, v) in obj.iter() {
                let key = match k {
                    hcl::ObjectKey::Identifier(i) => i.as_str().to_string(),
                    hcl::ObjectKey::Expression(e) => match expr_to_value(e)? {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return Err("object keys must be strings".into()),
                    },
                    _ => return Err("unsupported object key".into()),
                };
                m.insert(key, expr_to_value(v)?);
            }
            Value::Object(m)
        }
        E::TemplateExpr(t) => match t.as_ref() {
            hcl::TemplateExpr::QuotedString(s) => Value::String(unescape_quoted(s)),
            hcl::TemplateExpr::Heredoc(h) => Value::String(h.template.clone()),
        },
        E::Parenthesis(inner) => expr_to_value(inner)?,
        _ => {
            return Err(
                "unsupported expression: only literal strings, numbers, booleans, lists and objects are allowed"
                    .into(),
            )
        }
    })
}

/// The raw text of a quoted template keeps its escape sequences; resolve the common ones.
fn unescape_quoted(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// JSON

fn from_json(text: &str) -> PResult<Vec<RawPath>> {
    let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(root) = root else {
        return Err("does not contain a root object".into());
    };
    let mut out = Vec::new();
    for (key, value) in root {
        match key.as_str() {
            "name" => {}
            "path" => json_paths(value, &mut out)?,
            other => return Err(format!("invalid key {other:?}")),
        }
    }
    Ok(out)
}

/// `"path": {"a": {...}, "b": {...}}`, or the list forms HCL's JSON dialect also produces
/// (`"path": [{"a": {...}}]`, `"a": [{...}]`).
fn json_paths(value: Value, out: &mut Vec<RawPath>) -> PResult<()> {
    match value {
        Value::Object(paths) => {
            for (path, body) in paths {
                json_path_body(path, body, out)?;
            }
            Ok(())
        }
        Value::Array(items) => items.into_iter().try_for_each(|v| json_paths(v, out)),
        _ => Err("\"path\" must be an object of path rules".into()),
    }
}

fn json_path_body(path: String, body: Value, out: &mut Vec<RawPath>) -> PResult<()> {
    match body {
        Value::Object(attrs) => {
            out.push(RawPath {
                path,
                attrs: attrs.into_iter().collect(),
            });
            Ok(())
        }
        Value::Array(items) => items
            .into_iter()
            .try_for_each(|v| json_path_body(path.clone(), v, out)),
        _ => Err(format!("path {path:?}: must be an object")),
    }
}

// ---------------------------------------------------------------------------------------------
// Rule construction (Vault's parsePaths)

fn string_list(v: &Value, what: &str) -> PResult<Vec<String>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(format!("{what}: expected a list of strings")),
            })
            .collect(),
        _ => Err(format!("{what}: expected a list of strings")),
    }
}

fn param_map(v: &Value, what: &str, into: &mut HashMap<String, Vec<Value>>) -> PResult<()> {
    let Value::Object(m) = v else {
        return Err(format!(
            "{what}: expected a map of parameter names to lists of values"
        ));
    };
    for (k, vals) in m {
        let Value::Array(vals) = vals else {
            return Err(format!("{what}: value for {k:?} must be a list"));
        };
        // Duplicate keys (several blocks) concatenate, as HCL1's decoder did.
        into.entry(k.to_lowercase())
            .or_default()
            .extend(vals.iter().cloned());
    }
    Ok(())
}

/// Vault's `parseutil.ParseDurationSecond`: a number (seconds), a string of digits (seconds),
/// `<n>d` (days), or a Go duration (`1h30m`, `90s`, `500ms`).
pub(crate) fn parse_duration_second(v: &Value) -> PResult<Duration> {
    match v {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(Duration::from_secs(u))
            } else if let Some(f) = n.as_f64() {
                if f < 0.0 || !f.is_finite() {
                    Err("cannot parse a negative duration".into())
                } else {
                    Ok(Duration::from_secs(f as u64))
                }
            } else {
                Err("cannot parse a negative duration".into())
            }
        }
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(Duration::ZERO);
            }
            if let Ok(i) = s.parse::<i64>() {
                return u64::try_from(i)
                    .map(Duration::from_secs)
                    .map_err(|_| "cannot parse a negative duration".to_string());
            }
            if let Some(days) = s.strip_suffix('d') {
                if let Ok(d) = days.parse::<u64>() {
                    return Ok(Duration::from_secs(d * 86_400));
                }
            }
            parse_go_duration(s).ok_or_else(|| format!("time: invalid duration {s:?}"))
        }
        _ => Err("could not parse duration from input".into()),
    }
}

/// Go's `time.ParseDuration` for non-negative values.
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// OpenBao's `expiration`: RFC 3339, or Unix seconds.
fn parse_expiration(v: &Value) -> PResult<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| "invalid unix time".to_string()),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => {
            if let Ok(i) = s.parse::<i64>() {
                return Ok(Some(i));
            }
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| Some(t.unix_timestamp()))
                .map_err(|e| e.to_string())
        }
        _ => Err("expected a time string".into()),
    }
}

/// Vault's identity templating marker (`{{identity.entity.id}}` and friends).
fn is_templated(path: &str) -> bool {
    path.find("{{")
        .is_some_and(|start| path[start..].contains("}}"))
}

fn build_rule(raw: RawPath, now: i64) -> PResult<Option<PathRule>> {
    let key = raw.path;
    let templated = is_templated(&key);

    let mut policy: Option<String> = None;
    let mut capabilities: Vec<String> = Vec::new();
    let mut allowed: Option<HashMap<String, Vec<Value>>> = None;
    let mut denied: Option<HashMap<String, Vec<Value>>> = None;
    let mut required: Vec<String> = Vec::new();
    let mut min_ttl: Option<&Value> = None;
    let mut max_ttl: Option<&Value> = None;
    let mut expiration: Option<&Value> = None;

    for (k, _) in &raw.attrs {
        if !VALID_PATH_KEYS.contains(&k.as_str()) {
            return Err(format!("path {key:?}: invalid key {k:?}"));
        }
    }
    for (k, v) in &raw.attrs {
        let what = || format!("path {key:?}: {k}");
        match k.as_str() {
            "policy" => match v {
                Value::String(s) => policy = Some(s.clone()),
                _ => return Err(format!("{}: expected a string", what())),
            },
            "capabilities" => capabilities.extend(string_list(v, &what())?),
            "allowed_parameters" => {
                param_map(v, &what(), allowed.get_or_insert_with(HashMap::new))?
            }
            "denied_parameters" => param_map(v, &what(), denied.get_or_insert_with(HashMap::new))?,
            "required_parameters" => required.extend(string_list(v, &what())?),
            "min_wrapping_ttl" => min_ttl = Some(v),
            "max_wrapping_ttl" => max_ttl = Some(v),
            "expiration" => expiration = Some(v),
            "mfa_methods" | "subscribe_event_types" => {
                string_list(v, &what())?;
            }
            "pagination_limit" if !v.is_i64() && !v.is_u64() => {
                return Err(format!("{}: expected an integer", what()));
            }
            "list_scan_response_keys_filter_path" if !v.is_string() => {
                return Err(format!("{}: expected a string", what()));
            }
            _ => {} // comment, control_group
        }
    }

    let expiration = match expiration {
        Some(v) => parse_expiration(v)
            .map_err(|e| format!("path {key:?}: invalid expiration time: {e}"))?,
        None => None,
    };
    if expiration.is_some_and(|exp| now > exp) {
        // An expired path is dropped, as OpenBao does.
        return Ok(None);
    }

    let path = key.strip_prefix('/').unwrap_or(&key).to_string();
    if path.contains("+*") {
        return Err(format!(
            "path {path:?}: invalid use of wildcards ('+*' is forbidden)"
        ));
    }
    let kind = if path == "+" || path.contains("/+") || path.starts_with("+/") {
        RuleKind::Segment
    } else if path.ends_with('*') {
        RuleKind::Prefix
    } else {
        RuleKind::Exact
    };

    if let Some(p) = &policy {
        let legacy: &[&str] = match p.as_str() {
            "deny" => {
                capabilities.clear();
                &["deny"]
            }
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            _ => return Err(format!("path {key:?}: invalid policy {p:?}")),
        };
        capabilities.extend(legacy.iter().map(|s| s.to_string()));
    }

    let mut perms = Permissions::default();
    for cap in &capabilities {
        match capability_bit(cap) {
            Some(CAP_DENY) => {
                // Deny overrides everything else in the block; nothing more is parsed.
                perms.capabilities = CAP_DENY;
                return Ok(Some(PathRule {
                    path,
                    kind,
                    permissions: perms,
                    expiration,
                    templated,
                }));
            }
            Some(bit) => perms.capabilities |= bit,
            None => return Err(format!("path {key:?}: invalid capability {cap:?}")),
        }
    }

    perms.allowed_parameters = allowed.unwrap_or_default();
    perms.denied_parameters = denied.unwrap_or_default();
    if let Some(v) = min_ttl {
        perms.min_wrapping_ttl = parse_duration_second(v)
            .map_err(|e| format!("path {key:?}: error parsing min_wrapping_ttl: {e}"))?;
    }
    if let Some(v) = max_ttl {
        perms.max_wrapping_ttl = parse_duration_second(v)
            .map_err(|e| format!("path {key:?}: error parsing max_wrapping_ttl: {e}"))?;
    }
    if !perms.min_wrapping_ttl.is_zero()
        && !perms.max_wrapping_ttl.is_zero()
        && perms.max_wrapping_ttl < perms.min_wrapping_ttl
    {
        return Err(format!(
            "path {key:?}: max_wrapping_ttl cannot be less than min_wrapping_ttl"
        ));
    }
    perms.required_parameters = required;

    Ok(Some(PathRule {
        path,
        kind,
        permissions: perms,
        expiration,
        templated,
    }))
}
