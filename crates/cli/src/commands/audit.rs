//! `tresor audit ...`: audit devices under `sys/audit/`: `enable`, `disable`, `list`, and
//! (beyond Vault) `verify`, which checks a file device's tamper-evident chain offline and
//! reports the first altered, removed or reordered entry.

use clap::Subcommand;
use serde_json::json;

use crate::commands::{data_of, success, Ctx};
use crate::error::{CliError, CliResult, Context};
use crate::input::parse_kv_args;
use crate::output::emit;

/// `tresor audit` subcommands.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Enable an audit device: `tresor audit enable file file_path=/var/log/tresor/audit.log`
    Enable {
        /// Where to mount the device (default: its type)
        #[arg(long)]
        path: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Device type: file, socket or syslog
        kind: String,
        /// Device options as key=value
        options: Vec<String>,
    },
    /// Disable an audit device
    Disable { path: String },
    /// List enabled audit devices
    List,
    /// Verify a file audit device's hash chain
    Verify {
        /// The chain key in hex (else it is fetched from the server with -device)
        #[arg(long)]
        key: Option<String>,
        /// The device whose chain key to fetch (needs sudo on sys/audit-chain-key)
        #[arg(long)]
        device: Option<String>,
        /// The audit log file
        file: String,
    },
}

pub fn run(ctx: &Ctx, cmd: AuditCommand) -> CliResult {
    match cmd {
        AuditCommand::Enable {
            path,
            description,
            kind,
            options,
        } => {
            let path = path.unwrap_or_else(|| kind.clone());
            let options = parse_kv_args(&options, &mut std::io::stdin())?;
            ctx.client()?
                .put(
                    &format!("sys/audit/{}", path.trim_matches('/')),
                    &json!({ "type": kind, "description": description, "options": options }),
                )
                .context("Error enabling audit device")?;
            success(format!(
                "Enabled the {kind} audit device at: {}/",
                path.trim_matches('/')
            ))
        }
        AuditCommand::Disable { path } => {
            ctx.client()?
                .delete(&format!("sys/audit/{}", path.trim_matches('/')), &[])
                .context("Error disabling audit device")?;
            success(format!(
                "Disabled audit device (if it was enabled) at: {}/",
                path.trim_matches('/')
            ))
        }
        AuditCommand::List => {
            let resp = ctx
                .client()?
                .read("sys/audit", &[])
                .context("Error listing audit devices")?
                .unwrap_or_default();
            let data = data_of(&resp);
            let mut rows =
                String::from("Path    Type    Description\n----    ----    -----------\n");
            for (path, d) in data.as_object().into_iter().flatten() {
                rows.push_str(&format!(
                    "{path}    {}    {}\n",
                    d["type"].as_str().unwrap_or(""),
                    d["description"].as_str().unwrap_or("n/a")
                ));
            }
            emit(&rows);
            Ok(0)
        }
        AuditCommand::Verify { key, device, file } => {
            let key_hex = match (key, device) {
                (Some(k), _) => k,
                (None, Some(d)) => {
                    let resp = ctx
                        .client()?
                        .read(&format!("sys/audit-chain-key/{}", d.trim_matches('/')), &[])
                        .context("Error reading the chain key")?
                        .unwrap_or_default();
                    data_of(&resp)["key"].as_str().unwrap_or("").to_string()
                }
                (None, None) => return Err(CliError::usage(
                    "give the chain key with -key=HEX, or -device=PATH to fetch it from the server",
                )),
            };
            let key = tresor_core::util::hex_decode(&key_hex)
                .ok_or_else(|| CliError::usage("the key must be hex"))?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::other(format!("cannot read {file}: {e}")))?;
            match tresor_core::audit::chain::verify(&key, &text) {
                Ok(n) => {
                    emit(&format!("OK: {n} entries verified; the chain is intact.\n"));
                    Ok(0)
                }
                Err(b) => Err(CliError::other(format!(
                    "FAILED at line {}: {}",
                    b.line, b.reason
                ))),
            }
        }
    }
}
