//! The generic path commands `read`, `write`, `list` and `delete`, which work on any API
//! path (`secret/foo`, `sys/mounts`, `transit/keys/k`, ...).
//!
//! `read PATH [k=v...]` sends the pairs as query parameters; `write PATH k=v...` sends them
//! as a JSON body (`-force` allows an empty body); `list` uses the `LIST` method;
//! `delete PATH [k=v...]` sends the pairs as query parameters.

use clap::{ArgAction, Args};
use serde_json::Value;

use crate::commands::{sanitize_path, success, Ctx};
use crate::error::{CliError, CliResult, Context};
use crate::input::{parse_kv_args, to_query};
use crate::output::{list_keys, no_value};

/// Flags of `read`.
#[derive(Args, Debug)]
pub struct ReadArgs {
    /// API path, e.g. secret/foo
    pub path: String,
    /// key=value query parameters
    #[arg(value_name = "K=V")]
    pub data: Vec<String>,
}

/// Flags of `write`.
#[derive(Args, Debug)]
pub struct WriteArgs {
    /// Allow writing without any data
    #[arg(long, short = 'f', num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub force: bool,
    /// API path, e.g. secret/foo
    pub path: String,
    /// key=value pairs (value @file or - for stdin), or - / @file.json for a JSON object
    #[arg(value_name = "K=V")]
    pub data: Vec<String>,
}

/// Flags of `list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// API path, e.g. secret/
    pub path: String,
}

/// Flags of `delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// API path, e.g. secret/foo
    pub path: String,
    /// key=value query parameters
    #[arg(value_name = "K=V")]
    pub data: Vec<String>,
}

fn checked_path(p: &str) -> CliResult<String> {
    let p = sanitize_path(p);
    if p.is_empty() {
        return Err(CliError::usage("A path is required"));
    }
    Ok(p)
}

/// Runs `read`.
pub fn read(ctx: &Ctx, a: ReadArgs) -> CliResult {
    let path = checked_path(&a.path)?;
    let data = parse_kv_args(&a.data, &mut std::io::stdin())?;
    let client = ctx.client()?;
    if ctx.out.format == crate::output::Format::Raw {
        // The body as sent, as Vault's `read -format=raw` prints it.
        return match client
            .read_raw(&path, &to_query(&data))
            .context(format!("Error reading: {path}"))?
        {
            None => no_value(&path),
            Some(body) => {
                crate::output::emit(&format!("{body}\n"));
                Ok(0)
            }
        };
    }
    match client
        .read(&path, &to_query(&data))
        .context(format!("Error reading {path}"))?
    {
        None => no_value(&path),
        Some(Value::String(raw)) => {
            // Non-JSON answer (e.g. a PEM certificate): print it as-is.
            crate::output::emit(&raw);
            Ok(0)
        }
        Some(resp) => ctx.out.secret(&resp),
    }
}

/// Runs `write`.
pub fn write(ctx: &Ctx, a: WriteArgs) -> CliResult {
    let path = checked_path(&a.path)?;
    let data = parse_kv_args(&a.data, &mut std::io::stdin())?;
    if data.is_empty() && !a.force {
        return Err(CliError::usage(
            "Must supply data or use -force (e.g. tresor write secret/foo key=value)",
        ));
    }
    let client = ctx.client()?;
    let resp = client
        .put(&path, &Value::Object(data))
        .context(format!("Error writing data to {path}"))?;
    match resp {
        None => success(format!("Data written to: {path}")),
        Some(r) if is_empty_response(&r) => success(format!("Data written to: {path}")),
        Some(r) => ctx.out.secret(&r),
    }
}

/// Whether a response carries nothing worth printing.
fn is_empty_response(r: &Value) -> bool {
    let empty = |k: &str| match r.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    r.is_object() && empty("data") && empty("auth") && empty("wrap_info") && empty("warnings")
}

/// Runs `list`.
pub fn list(ctx: &Ctx, a: ListArgs) -> CliResult {
    let path = checked_path(&a.path)?;
    let client = ctx.client()?;
    let shown = format!("{path}/");
    match client
        .list(&path)
        .context(format!("Error listing {shown}"))?
    {
        Some(r) if !list_keys(&r).is_empty() => ctx.out.list(&r),
        _ => no_value(&shown),
    }
}

/// Runs `delete`.
pub fn delete(ctx: &Ctx, a: DeleteArgs) -> CliResult {
    let path = checked_path(&a.path)?;
    let data = parse_kv_args(&a.data, &mut std::io::stdin())?;
    let client = ctx.client()?;
    let resp = client
        .delete(&path, &to_query(&data))
        .context(format!("Error deleting {path}"))?;
    match resp {
        Some(r) if !is_empty_response(&r) => ctx.out.secret(&r),
        _ => success(format!("Data deleted (if it existed) at: {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_responses() {
        assert!(is_empty_response(
            &json!({"request_id": "x", "data": null, "warnings": null})
        ));
        assert!(!is_empty_response(&json!({"data": {"a": 1}})));
        assert!(!is_empty_response(&json!({"warnings": ["w"]})));
        assert!(!is_empty_response(&json!({"auth": {"client_token": "t"}})));
    }

    #[test]
    fn paths() {
        assert_eq!(checked_path("/secret/x/").unwrap(), "secret/x");
        assert_eq!(checked_path("  ").unwrap_err().code, 1);
    }
}
