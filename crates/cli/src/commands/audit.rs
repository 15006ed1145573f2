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
    List {
        /// Also show each device's replication and options
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "false", action = clap::ArgAction::Set)]
        detailed: bool,
    },
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
        AuditCommand::List { detailed } => {
            let resp = ctx
                .client()?
                .read("sys/audit", &[])
                .context("Error listing audits")?
                .unwrap_or_default();
            let data = data_of(&resp);
            let mut devices: Vec<(&String, &serde_json::Value)> =
                data.as_object().into_iter().flatten().collect();
            devices.sort_by(|a, b| a.0.cmp(b.0));
            let text = |d: &serde_json::Value, k: &str| d[k].as_str().unwrap_or("").to_string();
            if ctx.out.is_structured() {
                // Vault's `api.Audit` per path.
                let m: serde_json::Map<String, serde_json::Value> = devices
                    .iter()
                    .map(|(path, d)| {
                        let v = serde_json::json!({
                            "type": text(d, "type"),
                            "description": text(d, "description"),
                            "options": crate::output::sorted(&d["options"]),
                            "local": d["local"].as_bool().unwrap_or(false),
                            "path": text(d, "path"),
                        });
                        (path.to_string(), v)
                    })
                    .collect();
                ctx.out.structured(&serde_json::Value::Object(m));
                return Ok(0);
            }
            if devices.is_empty() {
                emit("No audit devices are enabled.\n");
                return Ok(crate::error::EXIT_REMOTE);
            }
            let rows: Vec<Vec<String>> = devices
                .iter()
                .map(|(path, d)| {
                    if !detailed {
                        return vec![text(d, "path"), text(d, "type"), text(d, "description")];
                    }
                    let opts: Vec<String> = d["options"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={}", crate::output::format_value(v)))
                        .collect();
                    let local = d["local"].as_bool().unwrap_or(false);
                    vec![
                        path.to_string(),
                        text(d, "type"),
                        text(d, "description"),
                        if local { "local" } else { "replicated" }.to_string(),
                        opts.join(" "),
                    ]
                })
                .collect();
            let header: &[&str] = if detailed {
                &["Path", "Type", "Description", "Replication", "Options"]
            } else {
                &["Path", "Type", "Description"]
            };
            emit(&crate::output::table(header, &rows));
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
