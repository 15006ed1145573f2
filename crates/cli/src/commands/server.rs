//! `tresor server`: starts the server by handing its flags to `tresor_server::run` on a
//! tokio runtime. Flags mirror Vault's: `-dev`, `-dev-root-token-id`,
//! `-dev-listen-address`, `-config` (repeatable), `-log-level`, `-log-format`.

use std::path::PathBuf;

use clap::{ArgAction, Args};

use crate::error::{CliError, CliResult};

/// Flags of `tresor server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Start a development server: in-memory, initialized, unsealed, with a root token
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub dev: bool,
    /// Root token ID of the dev server [env: VAULT_DEV_ROOT_TOKEN_ID]
    #[arg(
        long = "dev-root-token-id",
        value_name = "ID",
        env = "VAULT_DEV_ROOT_TOKEN_ID"
    )]
    pub dev_root_token_id: Option<String>,
    /// Address the dev server listens on [env: VAULT_DEV_LISTEN_ADDRESS]
    #[arg(
        long = "dev-listen-address",
        value_name = "HOST:PORT",
        env = "VAULT_DEV_LISTEN_ADDRESS"
    )]
    pub dev_listen_address: Option<String>,
    /// Configuration file (repeatable)
    #[arg(long, value_name = "FILE", action = ArgAction::Append)]
    pub config: Vec<PathBuf>,
    /// Log level: trace, debug, info, warn, error [env: VAULT_LOG_LEVEL]
    #[arg(long = "log-level", value_name = "LEVEL", env = "VAULT_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format: standard or json [env: VAULT_LOG_FORMAT]
    #[arg(long = "log-format", value_name = "FORMAT", env = "VAULT_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// Validates the flags and runs the server until it stops.
pub fn run(args: ServerArgs) -> CliResult {
    if !args.dev && args.config.is_empty() {
        return Err(CliError::usage(
            "A configuration file must be given with -config, or use -dev for a development server",
        ));
    }
    if !args.dev && (args.dev_root_token_id.is_some() || args.dev_listen_address.is_some()) {
        return Err(CliError::usage(
            "-dev-root-token-id and -dev-listen-address require -dev",
        ));
    }
    if let Some(level) = &args.log_level {
        if tresor_server::logging::parse_level(level).is_none() {
            return Err(CliError::usage(format!(
                "Invalid -log-level {level:?}: use trace, debug, info, warn or error"
            )));
        }
    }
    if let Some(format) = &args.log_format {
        if tresor_server::logging::LogFormat::parse(format).is_none() {
            return Err(CliError::usage(format!(
                "Invalid -log-format {format:?}: use standard or json"
            )));
        }
    }
    let opts = tresor_server::ServeOptions {
        dev: args.dev,
        dev_root_token_id: args.dev_root_token_id,
        dev_listen_address: args.dev_listen_address,
        config: args.config,
        log_level: args.log_level,
        log_format: args.log_format,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::other(format!("Error starting the async runtime: {e}")))?;
    match rt.block_on(tresor_server::run(opts)) {
        Ok(()) => Ok(0),
        Err(e) => Err(CliError::other(format!(
            "Error running the server: {}",
            crate::client::error_chain(e.as_ref())
        ))),
    }
}
