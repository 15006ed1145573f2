//! Output formatting, shaped like Vault's CLI.
//!
//! This module owns the `-format=table|json|yaml|raw` flag (env `TRESOR_FORMAT`, then
//! `VAULT_FORMAT`; `yml` is `yaml`; `raw` only for `read`, which prints the response body),
//! the `-field=NAME` flag, and the renderers:
//! * `Key    Value` tables with a `---    -----` rule, columns padded to the widest cell
//!   plus four spaces, empty cells shown as `n/a` (Vault's columnize settings);
//! * list output with a single `Keys` column;
//! * secrets (API responses) as Vault prints them: lease info, auth info, then the sorted
//!   data keys, with durations of `*_ttl`/`period`-like keys humanized (`768h`, `1m30s`);
//! * `-field` printing one raw value (no trailing newline when stdout is not a terminal,
//!   as Vault does);
//! * `-format=json` / `-format=yaml`: a secret (API response) as Vault's `api.Secret`
//!   (`request_id`, `lease_id`, `lease_duration`, `renewable`, `data`, `warnings`, then `auth`
//!   and `wrap_info` when present), other values as they are; JSON pretty-printed, YAML as
//!   Vault's CLI writes it (see [`crate::yaml`]).
//!
//! Writes go through [`emit`], which ignores broken pipes (`tresor list x | head`).

use std::io::{IsTerminal, Write};

use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::env_first;
use crate::error::{CliError, CliResult};

/// Output flags, accepted by every command.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Output options")]
pub struct OutputFlags {
    /// Output format: table, json, yaml (or raw, for read) [env: TRESOR_FORMAT, VAULT_FORMAT].
    #[arg(long, global = true, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Print only this field of the response, raw.
    #[arg(long, global = true, value_name = "NAME")]
    pub field: Option<String>,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
    /// The response body as the server sent it (`read` only).
    Raw,
}

/// Resolved output settings.
#[derive(Debug, Clone)]
pub struct Output {
    pub format: Format,
    pub field: Option<String>,
}

impl Output {
    /// Resolves flags and environment.
    pub fn resolve(flags: &OutputFlags) -> CliResult<Self> {
        let env = |k: &str| std::env::var(k).ok();
        Self::resolve_with(flags, &env)
    }

    /// Like [`Output::resolve`] with an explicit environment (for tests).
    pub fn resolve_with(
        flags: &OutputFlags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> CliResult<Self> {
        let raw = flags
            .format
            .clone()
            .or_else(|| env_first(env, &["TRESOR_FORMAT", "VAULT_FORMAT"]))
            .unwrap_or_else(|| "table".into());
        // Lowercased as Vault does; an unknown name is an error with exit code 1, as there.
        let format = match raw.trim().to_ascii_lowercase().as_str() {
            "table" | "" => Format::Table,
            "json" => Format::Json,
            "yaml" | "yml" => Format::Yaml,
            "raw" => Format::Raw,
            other => return Err(CliError::other(format!("Invalid output format: {other}"))),
        };
        let field = flags.field.clone().filter(|f| !f.is_empty());
        Ok(Output { format, field })
    }

    /// Whether a structured format (`-format=json` or `-format=yaml`) is in effect.
    pub fn is_structured(&self) -> bool {
        matches!(self.format, Format::Json | Format::Yaml)
    }

    /// Prints a value in the structured format: pretty JSON, or YAML as Vault writes it.
    pub fn structured(&self, v: &Value) {
        emit(&self.render(v));
    }

    /// [`Output::structured`] as the `pki` commands print: their YAML (Go's `yaml.Marshal`
    /// then a line break) ends with a blank line.
    pub fn structured_pki(&self, v: &Value) {
        match self.format {
            Format::Yaml => emit(&format!("{}\n", crate::yaml::to_yaml(v))),
            _ => self.structured(v),
        }
    }

    /// A value rendered in the structured format, with a trailing newline.
    pub fn render(&self, v: &Value) -> String {
        match self.format {
            Format::Yaml => crate::yaml::to_yaml(v),
            _ => format!("{}\n", to_pretty(v)),
        }
    }

    /// Prints an API response the way Vault prints a secret: the raw JSON, a single field
    /// with `-field`, or a Key/Value table. Returns the exit code.
    pub fn secret(&self, resp: &Value) -> CliResult {
        let resp = &vault_secret(resp);
        if let Some(field) = &self.field {
            return self.field_of_secret(resp, field);
        }
        if self.is_structured() {
            self.structured(resp);
            return Ok(0);
        }
        print_warnings(resp);
        let rows = secret_rows(resp);
        if !rows.is_empty() {
            emit(&kv_table(&rows));
        }
        Ok(0)
    }

    /// Prints one field of a secret (see Vault's `PrintRawField`).
    pub fn field_of_secret(&self, resp: &Value, field: &str) -> CliResult {
        match secret_field(resp, field) {
            Some(v) => Ok(self.raw_field(&v)),
            None => Err(field_missing(field)),
        }
    }

    /// Prints one field of a plain map (e.g. the `data` of a KV v2 secret).
    pub fn field_of_map(&self, map: &Value, field: &str) -> CliResult {
        match map.get(field).filter(|v| !v.is_null()) {
            Some(v) => Ok(self.raw_field(v)),
            // OpenBao's words for a field missing from a map (not a whole secret).
            None => Err(CliError::other(format!(
                "Field {field:?} not present in map"
            ))),
        }
    }

    fn raw_field(&self, v: &Value) -> i32 {
        let s = match self.format {
            Format::Json => to_pretty(v),
            Format::Yaml => crate::yaml::to_yaml(v),
            Format::Table | Format::Raw => format_value(v),
        };
        print_raw(&s);
        0
    }

    /// Prints a list response (`data.keys`): a `Keys` table, or the JSON array.
    pub fn list(&self, resp: &Value) -> CliResult {
        let keys = list_keys(resp);
        if self.is_structured() {
            self.structured(&Value::Array(
                keys.iter().map(|k| Value::String(k.clone())).collect(),
            ));
            return Ok(0);
        }
        print_warnings(resp);
        emit(&list_table(&keys));
        Ok(0)
    }

    /// Prints a table of `(key, value)` rows, or the given JSON value with `-format=json`.
    /// `-field` picks a row by key.
    pub fn rows_or_json(&self, rows: &[(String, String)], json: &Value) -> CliResult {
        if let Some(field) = &self.field {
            return match json.get(field) {
                Some(v) if !v.is_null() => Ok(self.raw_field(v)),
                _ => match rows.iter().find(|(k, _)| k == field) {
                    Some((_, v)) => {
                        print_raw(v);
                        Ok(0)
                    }
                    None => Err(field_missing(field)),
                },
            };
        }
        if self.is_structured() {
            self.structured(json);
        } else {
            emit(&kv_table(rows));
        }
        Ok(0)
    }
}

/// A response shaped as Vault's `api.Secret` marshals it: its fields in their order, `auth`
/// and `wrap_info` only when present, and the maps in them (Go maps) with sorted keys.
///
/// A body that sets none of those fields (`sys/seal-status`, `sys/health`) is the secret's
/// data, as Vault's `api.ParseSecret` makes it.
pub fn vault_secret(resp: &Value) -> Value {
    let Some(obj) = resp.as_object() else {
        return resp.clone();
    };
    let unset = |k: &str| match obj.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty() && k != "data",
        Some(Value::Bool(b)) => !b,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(_) => false,
    };
    let fields = [
        "request_id",
        "lease_id",
        "lease_duration",
        "renewable",
        "data",
        "warnings",
        "auth",
        "wrap_info",
    ];
    if !obj.is_empty() && fields.iter().all(|k| unset(k)) {
        let raw = json!({ "data": resp });
        return vault_secret(&raw);
    }
    let get = |k: &str| obj.get(k).cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert(
        "request_id".into(),
        obj.get("request_id").cloned().unwrap_or_else(|| "".into()),
    );
    out.insert(
        "lease_id".into(),
        obj.get("lease_id").cloned().unwrap_or_else(|| "".into()),
    );
    out.insert(
        "lease_duration".into(),
        obj.get("lease_duration")
            .cloned()
            .unwrap_or_else(|| 0.into()),
    );
    out.insert(
        "renewable".into(),
        obj.get("renewable").cloned().unwrap_or(Value::Bool(false)),
    );
    out.insert("data".into(), sorted(&get("data")));
    out.insert("warnings".into(), get("warnings"));
    if let Some(auth) = obj.get("auth").and_then(Value::as_object) {
        let a = |k: &str| auth.get(k).cloned();
        let mut m = Map::new();
        for (k, default) in [
            ("client_token", Value::from("")),
            ("accessor", Value::from("")),
            ("policies", Value::Null),
            ("token_policies", Value::Null),
            ("identity_policies", Value::Null),
            ("metadata", Value::Null),
            ("orphan", Value::Bool(false)),
            ("entity_id", Value::from("")),
            ("lease_duration", Value::from(0)),
            ("renewable", Value::Bool(false)),
            ("mfa_requirement", Value::Null),
        ] {
            m.insert(k.into(), sorted(&a(k).unwrap_or(default)));
        }
        out.insert("auth".into(), Value::Object(m));
    }
    if let Some(wrap) = obj.get("wrap_info").and_then(Value::as_object) {
        let w = |k: &str, d: Value| wrap.get(k).cloned().unwrap_or(d);
        let mut m = Map::new();
        m.insert("token".into(), w("token", "".into()));
        m.insert("accessor".into(), w("accessor", "".into()));
        m.insert("ttl".into(), w("ttl", 0.into()));
        m.insert(
            "creation_time".into(),
            w("creation_time", "0001-01-01T00:00:00Z".into()),
        );
        m.insert("creation_path".into(), w("creation_path", "".into()));
        m.insert("wrapped_accessor".into(), w("wrapped_accessor", "".into()));
        out.insert("wrap_info".into(), Value::Object(m));
    }
    Value::Object(out)
}

/// `v` with every object's keys sorted, as Go's encoding/json writes a map.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k.as_str()])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn field_missing(field: &str) -> CliError {
    CliError::other(format!("Field {field:?} not present in secret"))
}

/// Pretty JSON, two-space indented like Vault's.
pub fn to_pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Writes to stdout, ignoring errors such as a closed pipe.
pub fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Prints a raw value: with a newline on a terminal, without when piped (as Vault does).
pub fn print_raw(s: &str) {
    if std::io::stdout().is_terminal() {
        emit(&format!("{s}\n"));
    } else {
        emit(s);
    }
}

/// Prints the response's warnings on stderr, like Vault.
pub fn print_warnings(resp: &Value) {
    let warnings: Vec<&str> = resp
        .get("warnings")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if warnings.is_empty() {
        return;
    }
    let mut s = String::from("WARNING! The following warnings were returned from the server:\n\n");
    for w in warnings {
        s.push_str(&format!("  * {w}\n\n"));
    }
    eprint!("{s}");
}

/// The `keys` of a list response.
pub fn list_keys(resp: &Value) -> Vec<String> {
    resp.get("data")
        .and_then(|d| d.get("keys"))
        .or_else(|| resp.get("keys"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(format_value).collect())
        .unwrap_or_default()
}

/// Lays out rows in columns: each column but the last is padded to its widest cell plus
/// four spaces; empty cells become `n/a`; trailing spaces are trimmed.
pub fn columnize(rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cell = |r: &Vec<String>, i: usize| -> String {
        match r.get(i) {
            Some(s) if !s.is_empty() => s.clone(),
            _ => "n/a".to_string(),
        }
    };
    let widths: Vec<usize> = (0..ncols)
        .map(|i| {
            rows.iter()
                .map(|r| cell(r, i).chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, w) in widths.iter().enumerate() {
            let c = cell(r, i);
            line.push_str(&c);
            if i + 1 < ncols {
                line.push_str(&" ".repeat(w - c.chars().count() + 4));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table with a header row and a dashed rule under each header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut all = Vec::with_capacity(rows.len() + 2);
    all.push(header.iter().map(|h| h.to_string()).collect());
    all.push(
        header
            .iter()
            .map(|h| "-".repeat(h.chars().count()))
            .collect(),
    );
    all.extend(rows.iter().cloned());
    columnize(&all)
}

/// A `Key    Value` table.
pub fn kv_table(rows: &[(String, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    table(&["Key", "Value"], &rows)
}

/// A `Keys` table.
pub fn list_table(keys: &[String]) -> String {
    let rows: Vec<Vec<String>> = keys.iter().map(|k| vec![k.clone()]).collect();
    table(&["Keys"], &rows)
}

/// Centers a title between `=` signs to span `total_len` (Vault's `padEqualSigns`).
pub fn pad_equal_signs(header: &str, total_len: usize) -> String {
    let len = header.chars().count() + 2;
    if total_len <= len {
        return header.to_string();
    }
    // An odd count rounds up, as in Vault.
    let eq = "=".repeat((total_len - len).div_ceil(2));
    format!("{eq} {header} {eq}")
}

/// Section header sized for a Key/Value table of `map` (Vault's `getHeaderForMap`).
pub fn header_for_map(header: &str, map: &Map<String, Value>) -> String {
    let max_key = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    // Four for the column gap, five for "Value".
    pad_equal_signs(header, max_key + 4 + 5)
}

/// Prints `== Title ==` and the path under it, then a blank line (Vault's `outputPath`).
pub fn path_header(title: &str, path: &str) -> String {
    format!(
        "{}\n{path}\n\n",
        pad_equal_signs(title, path.chars().count())
    )
}

/// Formats a number of seconds like Go's `time.Duration`, trimming zero units
/// (`2764800` -> `768h`, `90` -> `1m30s`, `0` -> `0s`).
pub fn humanize_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let neg = secs < 0;
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    };
    if out.ends_with("m0s") {
        out.truncate(out.len() - 2);
    }
    if out.ends_with("h0m") {
        out.truncate(out.len() - 2);
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Whether a data key holds a duration in seconds (Vault's `looksLikeDuration`).
pub fn looks_like_duration(k: &str) -> bool {
    k == "period"
        || k.ends_with("_period")
        || k == "ttl"
        || k.ends_with("_ttl")
        || k.ends_with("_duration")
        || k == "lease_max"
        || k == "ttl_max"
}

/// Humanizes a numeric duration; other values are formatted as-is.
pub fn format_duration_value(v: &Value) -> String {
    match v.as_i64() {
        Some(n) => humanize_duration(n),
        None => format_value(v),
    }
}

/// Formats a value like Go's `%v` does for decoded JSON: strings raw, `[a b]` for lists,
/// `map[k:v]` for objects (sorted keys), `<nil>` for null.
pub fn format_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(format_value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", format_value(&m[k.as_str()])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Formats a list of strings like Go's `%q` (`["a" "b"]`).
pub fn format_quoted_list(v: Option<&Value>) -> String {
    let items: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => format!("{s:?}"),
                    other => format!("{:?}", format_value(other)),
                })
                .collect()
        })
        .unwrap_or_default();
    format!("[{}]", items.join(" "))
}

/// Key/Value rows of a data map: sorted keys, durations humanized.
pub fn data_rows(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v = &data[k.as_str()];
            let s = if looks_like_duration(k) {
                format_duration_value(v)
            } else {
                format_value(v)
            };
            (k.clone(), s)
        })
        .collect()
}

fn is_nonempty_object(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object).filter(|m| !m.is_empty())
}

/// Key/Value rows for a secret, in Vault's order: lease info, auth info, wrap info, data.
pub fn secret_rows(resp: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut push = |k: &str, v: String| rows.push((k.to_string(), v));
    let lease_duration = resp
        .get("lease_duration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let lease_id = resp.get("lease_id").and_then(Value::as_str).unwrap_or("");
    if lease_duration > 0 {
        if !lease_id.is_empty() {
            push("lease_id", lease_id.to_string());
            push("lease_duration", humanize_duration(lease_duration));
            let renewable = resp
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            push("lease_renewable", renewable.to_string());
        } else {
            push("refresh_interval", humanize_duration(lease_duration));
        }
    }
    if let Some(auth) = resp.get("auth").filter(|a| a.is_object()) {
        let s = |k: &str| {
            auth.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        push("token", s("client_token"));
        push("token_accessor", s("accessor"));
        let d = auth
            .get("lease_duration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        push(
            "token_duration",
            if d == 0 {
                "∞".to_string()
            } else {
                humanize_duration(d)
            },
        );
        let renewable = auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        push("token_renewable", renewable.to_string());
        push(
            "token_policies",
            format_quoted_list(auth.get("token_policies")),
        );
        push(
            "identity_policies",
            format_quoted_list(auth.get("identity_policies")),
        );
        push("policies", format_quoted_list(auth.get("policies")));
        if let Some(meta) = is_nonempty_object(auth.get("metadata")) {
            let mut keys: Vec<&String> = meta.keys().collect();
            keys.sort();
            for k in keys {
                push(&format!("token_meta_{k}"), format_value(&meta[k.as_str()]));
            }
        }
    }
    if let Some(wrap) = resp.get("wrap_info").filter(|w| w.is_object()) {
        let s = |k: &str| wrap.get(k).map(format_value).unwrap_or_default();
        push("wrapping_token:", s("token"));
        push("wrapping_accessor:", s("accessor"));
        push(
            "wrapping_token_ttl:",
            wrap.get("ttl")
                .map(format_duration_value)
                .unwrap_or_default(),
        );
        push("wrapping_token_creation_time:", s("creation_time"));
        push("wrapping_token_creation_path:", s("creation_path"));
    }
    if let Some(data) = is_nonempty_object(resp.get("data")) {
        rows.extend(data_rows(data));
    }
    rows
}

/// One field of a secret, following Vault's `PrintRawField` lookup rules.
pub fn secret_field(resp: &Value, field: &str) -> Option<Value> {
    let data_field = || {
        resp.get("data")
            .and_then(|d| d.get(field))
            .filter(|v| !v.is_null())
            .cloned()
    };
    if let Some(auth) = resp.get("auth").filter(|a| a.is_object()) {
        let key = match field {
            "token" => Some("client_token"),
            "token_accessor" => Some("accessor"),
            "token_duration" => Some("lease_duration"),
            "token_renewable" => Some("renewable"),
            "token_policies" => Some("token_policies"),
            "identity_policies" => Some("identity_policies"),
            "policies" => Some("policies"),
            _ => None,
        };
        if let Some(k) = key {
            return auth.get(k).filter(|v| !v.is_null()).cloned();
        }
        if let Some(meta_key) = field.strip_prefix("token_meta_") {
            if let Some(v) = auth.get("metadata").and_then(|m| m.get(meta_key)) {
                return Some(v.clone());
            }
        }
        return data_field();
    }
    if let Some(wrap) = resp.get("wrap_info").filter(|w| w.is_object()) {
        let key = match field {
            "wrapping_token" => Some("token"),
            "wrapping_accessor" => Some("accessor"),
            "wrapping_token_ttl" => Some("ttl"),
            "wrapping_token_creation_time" => Some("creation_time"),
            "wrapping_token_creation_path" => Some("creation_path"),
            _ => None,
        };
        if let Some(k) = key {
            return wrap.get(k).cloned();
        }
    }
    match field {
        "refresh_interval" | "lease_duration" => resp.get("lease_duration").cloned(),
        "lease_id" => resp.get("lease_id").cloned(),
        "lease_renewable" => resp.get("renewable").cloned(),
        _ => data_field(),
    }
}

/// Exit code used when a value is missing (Vault's "No value found at ...").
pub fn no_value(path: &str) -> CliResult {
    eprintln!("No value found at {path}");
    Ok(crate::error::EXIT_REMOTE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kv_table_layout() {
        let rows = vec![
            ("foo".to_string(), "bar".to_string()),
            ("longer_key".to_string(), "".to_string()),
        ];
        assert_eq!(
            kv_table(&rows),
            "Key           Value\n---           -----\nfoo           bar\nlonger_key    n/a\n"
        );
        assert_eq!(
            kv_table(&[("a".into(), "b".into())]),
            "Key    Value\n---    -----\na      b\n"
        );
    }

    #[test]
    fn list_layout() {
        assert_eq!(
            list_table(&["foo".into(), "bar/".into()]),
            "Keys\n----\nfoo\nbar/\n"
        );
        let resp = json!({"data": {"keys": ["a", "b/"]}});
        assert_eq!(list_keys(&resp), vec!["a", "b/"]);
    }

    #[test]
    fn multi_column_table() {
        let t = table(
            &["Path", "Type", "Description"],
            &[
                vec!["cubbyhole/".into(), "cubbyhole".into(), "per-token".into()],
                vec!["secret/".into(), "kv".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "Path          Type         Description\n\
             ----          ----         -----------\n\
             cubbyhole/    cubbyhole    per-token\n\
             secret/       kv           n/a\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(humanize_duration(0), "0s");
        assert_eq!(humanize_duration(45), "45s");
        assert_eq!(humanize_duration(90), "1m30s");
        assert_eq!(humanize_duration(60), "1m");
        assert_eq!(humanize_duration(3600), "1h");
        assert_eq!(humanize_duration(3660), "1h1m");
        assert_eq!(humanize_duration(3661), "1h1m1s");
        assert_eq!(humanize_duration(2_764_800), "768h");
        assert_eq!(humanize_duration(-30), "-30s");
    }

    #[test]
    fn go_like_values() {
        assert_eq!(format_value(&json!(null)), "<nil>");
        assert_eq!(format_value(&json!(["a", 1, true])), "[a 1 true]");
        assert_eq!(format_value(&json!({"b": 2, "a": "x"})), "map[a:x b:2]");
        assert_eq!(
            format_quoted_list(Some(&json!(["default", "x"]))),
            "[\"default\" \"x\"]"
        );
        assert_eq!(format_quoted_list(None), "[]");
    }

    #[test]
    fn equal_sign_headers() {
        assert_eq!(pad_equal_signs("Data", 12), "=== Data ===");
        let meta = json!({"created_time":"", "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": 1});
        assert_eq!(
            header_for_map("Metadata", meta.as_object().unwrap()),
            "======= Metadata ======="
        );
        assert_eq!(pad_equal_signs("Long header", 3), "Long header");
        assert_eq!(
            path_header("Secret Path", "secret/data/foo"),
            "= Secret Path =\nsecret/data/foo\n\n"
        );
    }

    #[test]
    fn secret_table_rows() {
        let resp = json!({
            "lease_id": "", "lease_duration": 2764800, "renewable": false,
            "data": {"foo": "bar", "ttl": 60, "abc": ["x"]}
        });
        let rows = secret_rows(&resp);
        assert_eq!(
            rows,
            vec![
                ("refresh_interval".to_string(), "768h".to_string()),
                ("abc".to_string(), "[x]".to_string()),
                ("foo".to_string(), "bar".to_string()),
                ("ttl".to_string(), "1m".to_string()),
            ]
        );
        let auth = json!({"auth": {
            "client_token": "s.abc", "accessor": "acc", "lease_duration": 0, "renewable": false,
            "policies": ["root"], "token_policies": ["root"], "metadata": {"user": "bob"}
        }});
        let rows = secret_rows(&auth);
        let t = kv_table(&rows);
        assert!(t.starts_with("Key                  Value\n---                  -----\ntoken                s.abc\n"), "{t}");
        assert!(t.contains("token_duration       ∞\n"));
        assert!(t.contains("identity_policies    []\n"));
        assert!(t.contains("token_policies       [\"root\"]\n"));
        assert!(t.contains("token_meta_user      bob\n"));
    }

    #[test]
    fn field_lookup() {
        let auth = json!({"auth": {"client_token": "s.abc", "metadata": {"u": "x"}}, "data": null});
        assert_eq!(secret_field(&auth, "token"), Some(json!("s.abc")));
        assert_eq!(secret_field(&auth, "token_meta_u"), Some(json!("x")));
        assert_eq!(secret_field(&auth, "nope"), None);
        let s = json!({"lease_duration": 10, "data": {"foo": "bar"}});
        assert_eq!(secret_field(&s, "foo"), Some(json!("bar")));
        assert_eq!(secret_field(&s, "refresh_interval"), Some(json!(10)));
    }

    #[test]
    fn secret_shape() {
        let s = vault_secret(&json!({"initialized": true, "type": "shamir", "request_id": ""}));
        assert_eq!(
            s.to_string(),
            r#"{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,"data":{"initialized":true,"request_id":"","type":"shamir"},"warnings":null}"#
        );
        let s =
            vault_secret(&json!({"data": {"b": 1, "a": 2}, "mount_type": "kv", "request_id": "r"}));
        assert_eq!(
            s.to_string(),
            r#"{"request_id":"r","lease_id":"","lease_duration":0,"renewable":false,"data":{"a":2,"b":1},"warnings":null}"#
        );
    }

    #[test]
    fn format_resolution() {
        let none = |_: &str| None;
        let o = Output::resolve_with(&OutputFlags::default(), &none).unwrap();
        assert_eq!(o.format, Format::Table);
        let env = |k: &str| (k == "VAULT_FORMAT").then(|| "JSON".to_string());
        let o = Output::resolve_with(&OutputFlags::default(), &env).unwrap();
        assert_eq!(o.format, Format::Json);
        let flags = OutputFlags {
            format: Some("table".into()),
            field: None,
        };
        assert_eq!(
            Output::resolve_with(&flags, &env).unwrap().format,
            Format::Table
        );
        let flags = OutputFlags {
            format: Some("yml".into()),
            field: None,
        };
        assert_eq!(
            Output::resolve_with(&flags, &none).unwrap().format,
            Format::Yaml
        );
        let flags = OutputFlags {
            format: Some("xml".into()),
            field: None,
        };
        let e = Output::resolve_with(&flags, &none).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (1, "Invalid output format: xml")
        );
    }
}
