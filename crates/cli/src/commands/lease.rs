//! `tresor lease lookup|renew|revoke` (`sys/leases/*`), `tresor unwrap` (`sys/wrapping/unwrap`)
//! and `tresor path-help` (`?help=1`), as Vault's CLI has them.

use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Value};

use crate::commands::{sanitize_path, success, Ctx};
use crate::error::{CliError, CliResult, Context};

/// `tresor lease` subcommands.
#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Show a lease's expiry, issue time and renewability
    Lookup { lease_id: String },
    /// Extend a lease (by -increment, else the mount's default)
    Renew(RenewArgs),
    /// Revoke a lease, or with -prefix every lease under a path
    Revoke(RevokeArgs),
}

/// Flags of `lease renew`.
#[derive(Args, Debug)]
pub struct RenewArgs {
    /// Requested extension (e.g. 1h), from now
    #[arg(long, value_name = "DURATION")]
    pub increment: Option<String>,
    pub lease_id: String,
}

/// Flags of `lease revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Revoke every lease whose id starts with the argument
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub prefix: bool,
    /// With -prefix: remove the leases even if their backend cannot revoke the secrets
    #[arg(long, short = 'f', num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub force: bool,
    /// Wait for the revocation (false: queue it)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", action = ArgAction::Set)]
    pub sync: bool,
    pub lease_id: String,
}

/// Runs a lease subcommand.
pub fn run(ctx: &Ctx, cmd: LeaseCommand) -> CliResult {
    let client = ctx.client()?;
    match cmd {
        LeaseCommand::Lookup { lease_id } => {
            let resp = client
                .put("sys/leases/lookup", &json!({ "lease_id": lease_id }))
                // Vault's text and exit code 2.
                .map_err(|e| {
                    CliError::remote(format!(
                        "error looking up lease id {lease_id}: {}",
                        e.message
                    ))
                })?
                .unwrap_or(Value::Null);
            ctx.out.secret(&resp)
        }
        LeaseCommand::Renew(a) => {
            let mut body = json!({ "lease_id": a.lease_id });
            if let Some(i) = a.increment {
                body["increment"] = json!(i);
            }
            let resp = client
                .put("sys/leases/renew", &body)
                .context("Error renewing lease")?
                .unwrap_or(Value::Null);
            ctx.out.secret(&resp)
        }
        LeaseCommand::Revoke(a) => {
            if a.force && !a.prefix {
                return Err(CliError::usage("-force needs -prefix"));
            }
            let id = a.lease_id.trim().to_string();
            if a.prefix {
                let kind = if a.force {
                    "revoke-force"
                } else {
                    "revoke-prefix"
                };
                client
                    .put(
                        &format!("sys/leases/{kind}/{}", sanitize_path(&id)),
                        &json!({}),
                    )
                    .context("Error revoking leases")?;
                return success(format!(
                    "All revocation operations queued successfully under {id}"
                ));
            }
            client
                .put(
                    "sys/leases/revoke",
                    &json!({ "lease_id": id, "sync": a.sync }),
                )
                .context("Error revoking lease")?;
            success(format!("Revoked lease: {id}"))
        }
    }
}

/// Flags of `unwrap`.
#[derive(Args, Debug)]
pub struct UnwrapArgs {
    /// The wrapping token (default: the client's own token)
    pub token: Option<String>,
}

/// `unwrap [TOKEN]`: the wrapped answer, once.
pub fn unwrap(ctx: &Ctx, a: UnwrapArgs) -> CliResult {
    let client = ctx.client()?;
    let resp = match a.token {
        Some(t) => client.put("sys/wrapping/unwrap", &json!({ "token": t })),
        None => client.put("sys/wrapping/unwrap", &json!({})),
    }
    .context("Error unwrapping")?
    .ok_or_else(|| CliError::other("Error unwrapping: the wrapped response was empty"))?;
    ctx.out.secret(&resp)
}

/// Flags of `path-help`.
#[derive(Args, Debug)]
pub struct PathHelpArgs {
    /// API path, e.g. secret/data/foo or sys/mounts
    pub path: String,
}

/// `path-help PATH`: what a path does and its fields (the server's `?help=1`).
pub fn path_help(ctx: &Ctx, a: PathHelpArgs) -> CliResult {
    let path = sanitize_path(&a.path);
    let client = ctx.client()?;
    let resp = client
        .read(&path, &[("help".to_string(), "1".to_string())])
        .context(format!("Error retrieving help for {path}"))?
        .ok_or_else(|| CliError::other(format!("No help for {path}")))?;
    if ctx.out.is_structured() {
        ctx.out.structured(&resp);
        return Ok(0);
    }
    let help = resp
        .get("help")
        .or_else(|| resp.get("data").and_then(|d| d.get("help")))
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::other(format!("No help for {path}")))?;
    crate::output::emit(&format!("{help}\n"));
    Ok(0)
}
