//! `tresor policy ...`: ACL policies under `sys/policies/acl/`: `write`, `read`, `list`,
//! `delete`. Policy names are lower-cased, as Vault does.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::commands::{data_of, success, Ctx};
use crate::error::{CliError, CliResult, Context, EXIT_REMOTE};
use crate::input::read_file_or_stdin;
use crate::output::{emit, list_keys};

/// `tresor policy` subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Upload a policy from a file (or `-` for stdin)
    Write {
        /// Policy name
        name: String,
        /// HCL policy file, or `-` for stdin
        file: String,
    },
    /// Print a policy
    Read {
        /// Policy name
        name: String,
    },
    /// List the policies
    List,
    /// Delete a policy
    Delete {
        /// Policy name
        name: String,
    },
}

/// Normalizes a policy name (trimmed, lower-cased) and rejects empty ones.
pub fn policy_name(raw: &str) -> CliResult<String> {
    let n = raw.trim().to_lowercase();
    if n.is_empty() || n.contains('/') {
        return Err(CliError::usage(format!("Invalid policy name {raw:?}")));
    }
    Ok(n)
}

/// Runs a policy subcommand.
pub fn run(ctx: &Ctx, cmd: PolicyCommand) -> CliResult {
    match cmd {
        PolicyCommand::Write { name, file } => {
            let name = policy_name(&name)?;
            let text = read_file_or_stdin(&file)?;
            if text.trim().is_empty() {
                return Err(CliError::usage(format!("The policy in {file} is empty")));
            }
            let client = ctx.client()?;
            client
                .put(
                    &format!("sys/policies/acl/{name}"),
                    &json!({"policy": text}),
                )
                .context("Error uploading policy")?;
            success(format!("Uploaded policy: {name}"))
        }
        PolicyCommand::Read { name } => {
            let name = policy_name(&name)?;
            let client = ctx.client()?;
            let resp = client
                .read(&format!("sys/policies/acl/{name}"), &[])
                .context(format!("Error reading policy named {name}"))?;
            let Some(resp) = resp else {
                eprintln!("No policy named: {name}");
                return Ok(EXIT_REMOTE);
            };
            let data = data_of(&resp);
            if let Some(f) = &ctx.out.field {
                return ctx.out.field_of_map(&data, f);
            }
            let text = data
                .get("policy")
                .or_else(|| data.get("rules"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if ctx.out.is_structured() {
                // Vault prints `{"policy": <rules>}` alone.
                ctx.out.structured(&json!({ "policy": text }));
                return Ok(0);
            }
            emit(text.trim_end());
            emit("\n");
            Ok(0)
        }
        PolicyCommand::List => {
            let client = ctx.client()?;
            let resp = client
                .list("sys/policies/acl")
                .context("Error listing policies")?
                .unwrap_or(Value::Null);
            let keys = list_keys(&resp);
            if ctx.out.is_structured() {
                ctx.out.structured(&json!(keys));
            } else {
                // Vault prints policy names one per line, without a header.
                let mut s = String::new();
                for k in keys {
                    s.push_str(&k);
                    s.push('\n');
                }
                emit(&s);
            }
            Ok(0)
        }
        PolicyCommand::Delete { name } => {
            let name = policy_name(&name)?;
            let client = ctx.client()?;
            client
                .delete(&format!("sys/policies/acl/{name}"), &[])
                .context(format!("Error deleting {name}"))?;
            success(format!("Deleted policy: {name}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(policy_name(" Admin ").unwrap(), "admin");
        assert_eq!(policy_name("").unwrap_err().code, 1);
        assert!(policy_name("a/b").is_err());
    }
}
