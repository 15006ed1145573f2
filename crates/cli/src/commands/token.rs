//! `tresor token ...`: the token store under `auth/token/`: `create`, `lookup`, `renew`,
//! `revoke`, and `capabilities` (`sys/capabilities*`).

use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::commands::{duration_value, expect_args, success, Ctx};
use crate::error::{CliError, CliResult, Context};
use crate::input::parse_pairs;
use crate::output::emit;

/// `tresor token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token
    Create(Box<CreateArgs>),
    /// Look up a token (yours when TOKEN is omitted)
    Lookup(LookupArgs),
    /// Renew a token (yours when TOKEN is omitted)
    Renew(RenewArgs),
    /// Revoke a token and its children
    Revoke(RevokeArgs),
    /// Show a token's capabilities on a path
    Capabilities(CapabilitiesArgs),
}

/// Flags of `token create`.
#[derive(Args, Debug, Default)]
pub struct CreateArgs {
    /// Token ID (default: generated)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Display name of the token
    #[arg(long = "display-name", value_name = "NAME")]
    pub display_name: Option<String>,
    /// Initial TTL (e.g. 1h, or seconds)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Explicit maximum lifetime
    #[arg(long = "explicit-max-ttl", value_name = "DURATION")]
    pub explicit_max_ttl: Option<String>,
    /// Make a periodic token renewed for this period
    #[arg(long, value_name = "DURATION")]
    pub period: Option<String>,
    /// Whether the token can be renewed (default true)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_name = "BOOL")]
    pub renewable: Option<bool>,
    /// Create the token without a parent
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub orphan: bool,
    /// Do not attach the "default" policy
    #[arg(long = "no-default-policy", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub no_default_policy: bool,
    /// Number of uses before the token is revoked (0: unlimited)
    #[arg(long = "num-uses", alias = "use-limit", value_name = "N")]
    pub num_uses: Option<u64>,
    /// Policy to attach (repeatable, or comma-separated)
    #[arg(long, value_name = "NAME", action = ArgAction::Append, value_delimiter = ',')]
    pub policy: Vec<String>,
    /// Metadata key=value (repeatable)
    #[arg(long, value_name = "K=V", action = ArgAction::Append)]
    pub metadata: Vec<String>,
    /// Create the token through this token role
    #[arg(long, value_name = "NAME")]
    pub role: Option<String>,
    /// Token type: service or batch
    #[arg(long = "type", value_name = "TYPE")]
    pub token_type: Option<String>,
    /// Entity alias to associate the token with
    #[arg(long = "entity-alias", value_name = "NAME")]
    pub entity_alias: Option<String>,
}

/// Flags of `token lookup`.
#[derive(Args, Debug)]
pub struct LookupArgs {
    /// Treat the argument as a token accessor
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub accessor: bool,
    /// Token (or accessor with -accessor)
    // A distinct id: "token" is taken by the global -token flag.
    #[arg(id = "token_arg", value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Flags of `token renew`.
#[derive(Args, Debug)]
pub struct RenewArgs {
    /// Requested extension of the TTL (e.g. 1h)
    #[arg(long, short = 'i', value_name = "DURATION")]
    pub increment: Option<String>,
    /// Treat the argument as a token accessor
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub accessor: bool,
    /// Token (or accessor with -accessor)
    // A distinct id: "token" is taken by the global -token flag.
    #[arg(id = "token_arg", value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Flags of `token revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Treat the argument as a token accessor
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub accessor: bool,
    /// Revoke the token used by this command
    #[arg(long = "self", num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub self_: bool,
    /// "orphan" revokes only the token, leaving its children as orphans
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Token (or accessor with -accessor)
    // A distinct id: "token" is taken by the global -token flag.
    #[arg(id = "token_arg", value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Flags of `token capabilities`.
#[derive(Args, Debug)]
pub struct CapabilitiesArgs {
    /// Treat the token argument as an accessor
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub accessor: bool,
    /// [TOKEN] PATH
    pub args: Vec<String>,
}

/// Runs a token subcommand.
pub fn run(ctx: &Ctx, cmd: TokenCommand) -> CliResult {
    match cmd {
        TokenCommand::Create(a) => create(ctx, *a),
        TokenCommand::Lookup(a) => lookup(ctx, a),
        TokenCommand::Renew(a) => renew(ctx, a),
        TokenCommand::Revoke(a) => revoke(ctx, a),
        TokenCommand::Capabilities(a) => capabilities(ctx, a),
    }
}

/// The API path and body of `token create`.
pub fn create_request(a: &CreateArgs) -> CliResult<(String, Value)> {
    let mut body = Map::new();
    if let Some(id) = &a.id {
        body.insert("id".into(), json!(id));
    }
    let policies: Vec<String> = a
        .policy
        .iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if !policies.is_empty() {
        body.insert("policies".into(), json!(policies));
    }
    if !a.metadata.is_empty() {
        body.insert(
            "meta".into(),
            Value::Object(parse_pairs(&a.metadata, "metadata")?),
        );
    }
    for (k, v) in [
        ("ttl", &a.ttl),
        ("explicit_max_ttl", &a.explicit_max_ttl),
        ("period", &a.period),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), duration_value(v));
        }
    }
    if let Some(n) = &a.display_name {
        body.insert("display_name".into(), json!(n));
    }
    if let Some(n) = a.num_uses {
        body.insert("num_uses".into(), json!(n));
    }
    if a.no_default_policy {
        body.insert("no_default_policy".into(), json!(true));
    }
    if let Some(r) = a.renewable {
        body.insert("renewable".into(), json!(r));
    }
    if let Some(t) = &a.token_type {
        match t.as_str() {
            "service" | "batch" | "default" | "default-service" | "default-batch" => {}
            other => {
                return Err(CliError::usage(format!(
                    "Invalid -type {other:?}: use service or batch"
                )))
            }
        }
        body.insert("type".into(), json!(t));
    }
    if let Some(e) = &a.entity_alias {
        body.insert("entity_alias".into(), json!(e));
    }
    let path = match (&a.role, a.orphan) {
        (Some(r), _) if r.trim().is_empty() => {
            return Err(CliError::usage("-role must not be empty"))
        }
        (Some(r), orphan) => {
            if orphan {
                body.insert("no_parent".into(), json!(true));
            }
            format!("auth/token/create/{}", r.trim())
        }
        (None, true) => "auth/token/create-orphan".to_string(),
        (None, false) => "auth/token/create".to_string(),
    };
    Ok((path, Value::Object(body)))
}

fn create(ctx: &Ctx, a: CreateArgs) -> CliResult {
    let (path, body) = create_request(&a)?;
    let client = ctx.client()?;
    let resp = client
        .post(&path, &body)
        .context("Error creating token")?
        .ok_or_else(|| CliError::other("Error creating token: empty response"))?;
    ctx.out.secret(&resp)
}

fn lookup(ctx: &Ctx, a: LookupArgs) -> CliResult {
    let client = ctx.client()?;
    let resp = match (a.accessor, &a.token) {
        (true, None) => return Err(CliError::usage("-accessor requires an accessor argument")),
        (true, Some(acc)) => client.post("auth/token/lookup-accessor", &json!({"accessor": acc})),
        (false, Some(t)) => client.post("auth/token/lookup", &json!({"token": t})),
        (false, None) => client.read("auth/token/lookup-self", &[]),
    }
    .context("Error looking up token")?
    .ok_or_else(|| CliError::other("Error looking up token: no token information returned"))?;
    ctx.out.secret(&resp)
}

fn renew(ctx: &Ctx, a: RenewArgs) -> CliResult {
    let client = ctx.client()?;
    let mut body = Map::new();
    if let Some(i) = &a.increment {
        body.insert("increment".into(), duration_value(i));
    }
    let resp = match (a.accessor, &a.token) {
        (true, None) => return Err(CliError::usage("-accessor requires an accessor argument")),
        (true, Some(acc)) => {
            body.insert("accessor".into(), json!(acc));
            client.post("auth/token/renew-accessor", &Value::Object(body))
        }
        (false, Some(t)) => {
            body.insert("token".into(), json!(t));
            client.post("auth/token/renew", &Value::Object(body))
        }
        (false, None) => client.post("auth/token/renew-self", &Value::Object(body)),
    }
    .context("Error renewing token")?
    .ok_or_else(|| CliError::other("Error renewing token: empty response"))?;
    ctx.out.secret(&resp)
}

/// The API path and body of `token revoke`.
pub fn revoke_request(a: &RevokeArgs) -> CliResult<(String, Value)> {
    let mode = a.mode.as_deref().unwrap_or("");
    if !matches!(mode, "" | "orphan") {
        return Err(CliError::usage(format!(
            "Invalid -mode {mode:?}: the only supported mode is \"orphan\""
        )));
    }
    if a.self_ {
        if a.token.is_some() || a.accessor || !mode.is_empty() {
            return Err(CliError::usage(
                "-self cannot be combined with a token, -accessor or -mode",
            ));
        }
        return Ok(("auth/token/revoke-self".into(), json!({})));
    }
    let Some(token) = &a.token else {
        return Err(CliError::usage(
            "Not enough arguments: give a TOKEN (or an accessor with -accessor), or use -self",
        ));
    };
    if a.accessor {
        if !mode.is_empty() {
            return Err(CliError::usage("-mode cannot be used with -accessor"));
        }
        return Ok((
            "auth/token/revoke-accessor".into(),
            json!({"accessor": token}),
        ));
    }
    if mode == "orphan" {
        return Ok(("auth/token/revoke-orphan".into(), json!({"token": token})));
    }
    Ok(("auth/token/revoke".into(), json!({"token": token})))
}

fn revoke(ctx: &Ctx, a: RevokeArgs) -> CliResult {
    let (path, body) = revoke_request(&a)?;
    let client = ctx.client()?;
    client.post(&path, &body).context("Error revoking token")?;
    success("Revoked token (if it existed)")
}

fn capabilities(ctx: &Ctx, a: CapabilitiesArgs) -> CliResult {
    expect_args(&a.args, 1, 2)?;
    let client = ctx.client()?;
    let (path, target, body) = match a.args.as_slice() {
        [p] => {
            if a.accessor {
                return Err(CliError::usage("-accessor requires an ACCESSOR and a PATH"));
            }
            ("sys/capabilities-self", p.clone(), json!({"paths": [p]}))
        }
        [t, p] if a.accessor => (
            "sys/capabilities-accessor",
            p.clone(),
            json!({"accessor": t, "paths": [p]}),
        ),
        [t, p] => (
            "sys/capabilities",
            p.clone(),
            json!({"token": t, "paths": [p]}),
        ),
        _ => unreachable!("checked by expect_args"),
    };
    let resp = client
        .post(path, &body)
        .context("Error listing capabilities")?
        .unwrap_or(Value::Null);
    let caps = extract_capabilities(&resp, &target);
    if ctx.out.is_structured() {
        ctx.out.structured(&json!(caps));
    } else {
        emit(&format!("{}\n", caps.join(", ")));
    }
    Ok(0)
}

/// Capabilities on `path` from a `sys/capabilities*` answer, sorted.
pub fn extract_capabilities(resp: &Value, path: &str) -> Vec<String> {
    let data = resp.get("data").filter(|d| d.is_object()).unwrap_or(resp);
    let list = data
        .get(path)
        .or_else(|| data.get("capabilities"))
        .or_else(|| resp.get(path))
        .or_else(|| resp.get("capabilities"))
        .and_then(Value::as_array);
    let mut caps: Vec<String> = list
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    caps.sort();
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body() {
        let a = CreateArgs {
            policy: vec!["a".into(), "b".into()],
            ttl: Some("1h".into()),
            num_uses: Some(3),
            metadata: vec!["team=x".into()],
            renewable: Some(false),
            orphan: true,
            ..Default::default()
        };
        let (path, body) = create_request(&a).unwrap();
        assert_eq!(path, "auth/token/create-orphan");
        assert_eq!(
            body,
            json!({"policies": ["a", "b"], "meta": {"team": "x"}, "ttl": "1h", "num_uses": 3, "renewable": false})
        );
        let a = CreateArgs {
            role: Some("r1".into()),
            ..Default::default()
        };
        assert_eq!(create_request(&a).unwrap().0, "auth/token/create/r1");
        let a = CreateArgs {
            metadata: vec!["bad".into()],
            ..Default::default()
        };
        assert_eq!(create_request(&a).unwrap_err().code, 1);
    }

    #[test]
    fn revoke_paths() {
        let base = RevokeArgs {
            accessor: false,
            self_: false,
            mode: None,
            token: Some("t".into()),
        };
        assert_eq!(revoke_request(&base).unwrap().0, "auth/token/revoke");
        let a = RevokeArgs {
            mode: Some("orphan".into()),
            ..base
        };
        assert_eq!(revoke_request(&a).unwrap().0, "auth/token/revoke-orphan");
        let a = RevokeArgs {
            accessor: true,
            self_: false,
            mode: None,
            token: Some("acc".into()),
        };
        assert_eq!(
            revoke_request(&a).unwrap(),
            (
                "auth/token/revoke-accessor".to_string(),
                json!({"accessor": "acc"})
            )
        );
        let a = RevokeArgs {
            accessor: false,
            self_: true,
            mode: None,
            token: None,
        };
        assert_eq!(revoke_request(&a).unwrap().0, "auth/token/revoke-self");
        let a = RevokeArgs {
            accessor: false,
            self_: false,
            mode: None,
            token: None,
        };
        assert_eq!(revoke_request(&a).unwrap_err().code, 1);
        let a = RevokeArgs {
            accessor: false,
            self_: false,
            mode: Some("path".into()),
            token: Some("t".into()),
        };
        assert_eq!(revoke_request(&a).unwrap_err().code, 1);
    }

    #[test]
    fn capabilities_shapes() {
        let r = json!({"capabilities": ["update", "read"], "secret/x": ["update", "read"]});
        assert_eq!(extract_capabilities(&r, "secret/x"), vec!["read", "update"]);
        let r = json!({"data": {"secret/x": ["deny"]}});
        assert_eq!(extract_capabilities(&r, "secret/x"), vec!["deny"]);
    }
}
