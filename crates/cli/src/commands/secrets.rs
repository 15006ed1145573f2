//! `tresor secrets ...` (mounts under `sys/mounts`) and `tresor auth ...` (auth methods
//! under `sys/auth`): `enable`, `disable`, `list [-detailed]` and `tune`. Both share the
//! mount request and table code, which is why they live together.

use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::commands::{data_of, sanitize_path, success, with_trailing_slash, Ctx};
use crate::error::{CliError, CliResult, Context};
use crate::input::parse_pairs;
use crate::output::{emit, format_value, table};

/// `tresor secrets` subcommands.
#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Enable a secrets engine (e.g. `secrets enable -path=secret -version=2 kv`)
    Enable(EnableArgs),
    /// Disable the secrets engine mounted at PATH
    Disable {
        /// Mount path
        path: String,
    },
    /// List the enabled secrets engines
    List(ListArgs),
    /// Tune the configuration of the secrets engine at PATH
    Tune(TuneArgs),
}

/// `tresor auth` subcommands.
#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Enable an auth method (e.g. `auth enable userpass`)
    Enable(EnableArgs),
    /// Disable the auth method mounted at PATH
    Disable {
        /// Mount path (without the auth/ prefix)
        path: String,
    },
    /// List the enabled auth methods
    List(ListArgs),
    /// Tune the configuration of the auth method at PATH
    Tune(TuneArgs),
}

/// Flags of `secrets enable` / `auth enable`.
#[derive(Args, Debug, Default)]
pub struct EnableArgs {
    /// Mount path (defaults to the type)
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Human-friendly description
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Default lease TTL (e.g. 1h)
    #[arg(long = "default-lease-ttl", value_name = "DURATION")]
    pub default_lease_ttl: Option<String>,
    /// Maximum lease TTL
    #[arg(long = "max-lease-ttl", value_name = "DURATION")]
    pub max_lease_ttl: Option<String>,
    /// Engine version (e.g. 2 for kv); sets options.version
    #[arg(long, value_name = "N")]
    pub version: Option<String>,
    /// Mount option key=value (repeatable)
    #[arg(long = "options", value_name = "K=V", action = ArgAction::Append)]
    pub options: Vec<String>,
    /// Auth methods: the tokens logins make (service, batch, default-service, default-batch)
    #[arg(long = "token-type", value_name = "TYPE")]
    pub token_type: Option<String>,
    /// Do not replicate the mount (local only)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub local: bool,
    /// Seal-wrap the engine's storage
    #[arg(long = "seal-wrap", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub seal_wrap: bool,
    /// Engine (or auth method) type, e.g. kv, transit, userpass
    #[arg(value_name = "TYPE")]
    pub kind: String,
}

/// Flags of `secrets list` / `auth list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Show more columns (TTLs, options, UUIDs, ...)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub detailed: bool,
}

/// Flags of `secrets tune` / `auth tune`.
#[derive(Args, Debug, Default)]
pub struct TuneArgs {
    /// Default lease TTL (e.g. 1h)
    #[arg(long = "default-lease-ttl", value_name = "DURATION")]
    pub default_lease_ttl: Option<String>,
    /// Maximum lease TTL
    #[arg(long = "max-lease-ttl", value_name = "DURATION")]
    pub max_lease_ttl: Option<String>,
    /// Human-friendly description
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Engine version (e.g. 2 to upgrade kv); sets options.version
    #[arg(long, value_name = "N")]
    pub version: Option<String>,
    /// Mount option key=value (repeatable)
    #[arg(long = "options", value_name = "K=V", action = ArgAction::Append)]
    pub options: Vec<String>,
    /// Auth methods: the tokens logins make (service, batch, default-service, default-batch)
    #[arg(long = "token-type", value_name = "TYPE")]
    pub token_type: Option<String>,
    /// Mount path
    pub path: String,
}

fn options_of(version: &Option<String>, options: &[String]) -> CliResult<Map<String, Value>> {
    let mut m = parse_pairs(options, "options")?;
    if let Some(v) = version {
        let v = v.trim();
        if v.is_empty() || v.parse::<u32>().is_err() {
            return Err(CliError::usage(format!(
                "Invalid -version {v:?}: expected a number"
            )));
        }
        m.insert("version".into(), json!(v));
    }
    Ok(m)
}

/// The mount path and body of `secrets enable` / `auth enable`.
pub fn enable_request(a: &EnableArgs) -> CliResult<(String, Value)> {
    let kind = a.kind.trim();
    if kind.is_empty() {
        return Err(CliError::usage("The type must not be empty"));
    }
    let path = sanitize_path(a.path.as_deref().unwrap_or(kind));
    if path.is_empty() {
        return Err(CliError::usage("-path must not be empty"));
    }
    let mut config = Map::new();
    if let Some(t) = &a.default_lease_ttl {
        config.insert("default_lease_ttl".into(), json!(t));
    }
    if let Some(t) = &a.max_lease_ttl {
        config.insert("max_lease_ttl".into(), json!(t));
    }
    if let Some(t) = &a.token_type {
        config.insert("token_type".into(), json!(t));
    }
    let mut body = Map::new();
    body.insert("type".into(), json!(kind));
    if let Some(d) = &a.description {
        body.insert("description".into(), json!(d));
    }
    body.insert("config".into(), Value::Object(config));
    let options = options_of(&a.version, &a.options)?;
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    if a.local {
        body.insert("local".into(), json!(true));
    }
    if a.seal_wrap {
        body.insert("seal_wrap".into(), json!(true));
    }
    Ok((path, Value::Object(body)))
}

/// The body of `secrets tune` / `auth tune`.
pub fn tune_body(a: &TuneArgs) -> CliResult<Value> {
    let mut body = Map::new();
    if let Some(t) = &a.default_lease_ttl {
        body.insert("default_lease_ttl".into(), json!(t));
    }
    if let Some(t) = &a.max_lease_ttl {
        body.insert("max_lease_ttl".into(), json!(t));
    }
    if let Some(d) = &a.description {
        body.insert("description".into(), json!(d));
    }
    if let Some(t) = &a.token_type {
        body.insert("token_type".into(), json!(t));
    }
    let options = options_of(&a.version, &a.options)?;
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    if body.is_empty() {
        return Err(CliError::usage(
            "Nothing to tune: give -default-lease-ttl, -max-lease-ttl, -description, -token-type, -version or -options",
        ));
    }
    Ok(Value::Object(body))
}

/// Runs a `secrets` subcommand.
pub fn run_secrets(ctx: &Ctx, cmd: SecretsCommand) -> CliResult {
    match cmd {
        SecretsCommand::Enable(a) => {
            let (path, body) = enable_request(&a)?;
            let client = ctx.client()?;
            client
                .post(&format!("sys/mounts/{path}"), &body)
                .context("Error enabling")?;
            success(format!(
                "Enabled the {} secrets engine at: {}",
                a.kind.trim(),
                with_trailing_slash(&path)
            ))
        }
        SecretsCommand::Disable { path } => {
            let path = nonempty_path(&path)?;
            let client = ctx.client()?;
            client
                .delete(&format!("sys/mounts/{path}"), &[])
                .context(format!("Error disabling secrets engine at {path}"))?;
            success(format!(
                "Disabled the secrets engine (if it existed) at: {}",
                with_trailing_slash(&path)
            ))
        }
        SecretsCommand::List(a) => {
            let client = ctx.client()?;
            let resp = client
                .read("sys/mounts", &[])
                .context("Error listing secrets engines")?
                .unwrap_or(Value::Null);
            print_mounts(ctx, &resp, a.detailed, false)
        }
        SecretsCommand::Tune(a) => {
            let body = tune_body(&a)?;
            let path = nonempty_path(&a.path)?;
            let client = ctx.client()?;
            client
                .post(&format!("sys/mounts/{path}/tune"), &body)
                .context("Error tuning secrets engine")?;
            success(format!(
                "Tuned the secrets engine at: {}",
                with_trailing_slash(&path)
            ))
        }
    }
}

/// Runs an `auth` subcommand.
pub fn run_auth(ctx: &Ctx, cmd: AuthCommand) -> CliResult {
    match cmd {
        AuthCommand::Enable(a) => {
            let (path, body) = enable_request(&a)?;
            let path = strip_auth_prefix(&path);
            let client = ctx.client()?;
            client
                .post(&format!("sys/auth/{path}"), &body)
                .context("Error enabling")?;
            success(format!(
                "Enabled {} auth method at: {}",
                a.kind.trim(),
                with_trailing_slash(&path)
            ))
        }
        AuthCommand::Disable { path } => {
            let path = strip_auth_prefix(&nonempty_path(&path)?);
            let client = ctx.client()?;
            client
                .delete(&format!("sys/auth/{path}"), &[])
                .context(format!("Error disabling auth method at {path}"))?;
            success(format!(
                "Disabled the auth method (if it existed) at: {}",
                with_trailing_slash(&path)
            ))
        }
        AuthCommand::List(a) => {
            let client = ctx.client()?;
            let resp = client
                .read("sys/auth", &[])
                .context("Error listing enabled authentications")?
                .unwrap_or(Value::Null);
            print_mounts(ctx, &resp, a.detailed, true)
        }
        AuthCommand::Tune(a) => {
            let body = tune_body(&a)?;
            let path = strip_auth_prefix(&nonempty_path(&a.path)?);
            let client = ctx.client()?;
            client
                .post(&format!("sys/auth/{path}/tune"), &body)
                .context("Error tuning auth method")?;
            success(format!(
                "Tuned the auth method at: {}",
                with_trailing_slash(&path)
            ))
        }
    }
}

fn nonempty_path(p: &str) -> CliResult<String> {
    let p = sanitize_path(p);
    if p.is_empty() {
        return Err(CliError::usage("The path must not be empty"));
    }
    Ok(p)
}

/// `auth/userpass` -> `userpass` (users often include the prefix).
fn strip_auth_prefix(p: &str) -> String {
    p.strip_prefix("auth/").unwrap_or(p).to_string()
}

/// The mounts of a `sys/mounts` / `sys/auth` answer (the `data` object when present),
/// sorted by path.
pub fn mounts_of(resp: &Value) -> Vec<(String, Value)> {
    let data = data_of(resp);
    let source = if data.as_object().is_some_and(|m| !m.is_empty()) {
        data
    } else {
        resp.clone()
    };
    let mut out: Vec<(String, Value)> = source
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_object() && v.get("type").is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A TTL cell of the detailed table, as OpenBao's `calcTTL`: nothing for the system and
/// cubbyhole mounts, `system` for 0, else the seconds.
fn ttl_cell(kind: &str, v: Option<&Value>) -> String {
    if kind == "system" || kind == "cubbyhole" {
        return String::new();
    }
    match v.and_then(Value::as_i64) {
        Some(0) | None => "system".into(),
        Some(n) => n.to_string(),
    }
}

/// Rows of the mounts table, OpenBao's columns: `auth` lists add the plugin version to the
/// simple table and show the token type where secrets engines show force-no-cache.
pub fn mount_rows(
    mounts: &[(String, Value)],
    detailed: bool,
    auth: bool,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let s = |v: &Value, k: &str| match v.get(k) {
        None | Some(Value::Null) => String::new(),
        Some(x) => format_value(x),
    };
    let header = match (detailed, auth) {
        (false, false) => vec!["Path", "Type", "Accessor", "Description"],
        (false, true) => vec!["Path", "Type", "Accessor", "Description", "Version"],
        (true, _) => vec![
            "Path",
            "Plugin",
            "Accessor",
            "Default TTL",
            "Max TTL",
            if auth { "Token Type" } else { "Force No Cache" },
            "Replication",
            "Seal Wrap",
            "External Entropy Access",
            "Options",
            "Description",
            "UUID",
            "Version",
            "Running Version",
            "Running SHA256",
            "Deprecation Status",
        ],
    };
    let rows = mounts
        .iter()
        .map(|(path, m)| {
            let kind = s(m, "type");
            if !detailed {
                let mut row = vec![path.clone(), kind, s(m, "accessor"), s(m, "description")];
                if auth {
                    row.push(s(m, "plugin_version"));
                }
                return row;
            }
            let cfg = m.get("config").cloned().unwrap_or(Value::Null);
            let flag = |v: &Value, k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
            // Go's `%v` of a map[string]string: `map[]` when empty.
            let opts = match m.get("options") {
                Some(Value::Object(o)) => format_value(&Value::Object(o.clone())),
                _ => "map[]".into(),
            };
            vec![
                path.clone(),
                kind.clone(),
                s(m, "accessor"),
                ttl_cell(&kind, cfg.get("default_lease_ttl")),
                ttl_cell(&kind, cfg.get("max_lease_ttl")),
                if auth {
                    s(&cfg, "token_type")
                } else {
                    flag(&cfg, "force_no_cache").to_string()
                },
                if flag(m, "local") {
                    "local"
                } else {
                    "replicated"
                }
                .to_string(),
                flag(m, "seal_wrap").to_string(),
                flag(m, "external_entropy_access").to_string(),
                opts,
                s(m, "description"),
                s(m, "uuid"),
                s(m, "plugin_version"),
                s(m, "running_plugin_version"),
                s(m, "running_sha256"),
                s(m, "deprecation_status"),
            ]
        })
        .collect();
    (header, rows)
}

fn print_mounts(ctx: &Ctx, resp: &Value, detailed: bool, auth: bool) -> CliResult {
    let mounts = mounts_of(resp);
    if ctx.out.is_structured() {
        // As Vault's `MountOutput` marshals: its string fields are never null.
        let m: Map<String, Value> = mounts
            .into_iter()
            .map(|(path, mut entry)| {
                if let Some(o) = entry.as_object_mut() {
                    // The struct's first field.
                    if let Some(uuid) = o.shift_remove("uuid") {
                        o.shift_insert(0, "uuid".into(), uuid);
                    }
                    for k in [
                        "plugin_version",
                        "running_plugin_version",
                        "running_sha256",
                        "deprecation_status",
                    ] {
                        if o.get(k).is_some_and(Value::is_null) {
                            o.insert(k.into(), Value::from(""));
                        }
                    }
                }
                (path, entry)
            })
            .collect();
        ctx.out.structured(&Value::Object(m));
        return Ok(0);
    }
    let (header, rows) = mount_rows(&mounts, detailed, auth);
    emit(&table(&header, &rows));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_body() {
        let a = EnableArgs {
            kind: "kv".into(),
            path: Some("/secret/".into()),
            version: Some("2".into()),
            description: Some("d".into()),
            max_lease_ttl: Some("1h".into()),
            ..Default::default()
        };
        let (path, body) = enable_request(&a).unwrap();
        assert_eq!(path, "secret");
        assert_eq!(
            body,
            json!({"type": "kv", "description": "d", "config": {"max_lease_ttl": "1h"}, "options": {"version": "2"}})
        );
        let a = EnableArgs {
            kind: "transit".into(),
            ..Default::default()
        };
        assert_eq!(enable_request(&a).unwrap().0, "transit");
        let a = EnableArgs {
            kind: "kv".into(),
            version: Some("two".into()),
            ..Default::default()
        };
        assert_eq!(enable_request(&a).unwrap_err().code, 1);
    }

    #[test]
    fn tune_needs_something() {
        let a = TuneArgs {
            path: "x".into(),
            ..Default::default()
        };
        assert_eq!(tune_body(&a).unwrap_err().code, 1);
        let a = TuneArgs {
            path: "x".into(),
            default_lease_ttl: Some("60".into()),
            ..Default::default()
        };
        assert_eq!(tune_body(&a).unwrap(), json!({"default_lease_ttl": "60"}));
    }

    #[test]
    fn mounts_table() {
        let resp = json!({
            "secret/": {"type": "kv", "accessor": "kv_1", "description": "", "options": {"version": "2"}, "config": {"default_lease_ttl": 0}},
            "data": {
                "sys/": {"type": "system", "accessor": "system_1", "description": "system endpoints", "config": {}},
                "secret/": {"type": "kv", "accessor": "kv_1", "description": "", "options": {"version": "2"}, "config": {"default_lease_ttl": 3600}}
            },
            "request_id": "x"
        });
        let mounts = mounts_of(&resp);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].0, "secret/");
        let (h, rows) = mount_rows(&mounts, false, false);
        assert_eq!(
            table(&h, &rows),
            "Path       Type      Accessor    Description\n\
             ----       ----      --------    -----------\n\
             secret/    kv        kv_1        n/a\n\
             sys/       system    system_1    system endpoints\n"
        );
        let (_, rows) = mount_rows(&mounts, true, false);
        assert_eq!(rows[0][3], "3600");
        assert_eq!(rows[0][4], "system");
        assert_eq!(rows[0][9], "map[version:2]");
        assert_eq!(rows[1][3], "", "no TTLs for sys/");
        assert_eq!(rows[1][9], "map[]");
        let (h, _) = mount_rows(&mounts, false, true);
        assert_eq!(h.last(), Some(&"Version"));
    }
}
