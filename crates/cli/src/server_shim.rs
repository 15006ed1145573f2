//! TEMPORARY shim for `tresor_server::{ServeOptions, run}`.
//!
//! The server crate (crates/server) does not export these yet. This module mirrors the
//! agreed signatures so the CLI builds; `commands/server.rs` imports it as
//! `tresor_server`. To wire the real server: delete this file, the `mod server_shim;`
//! line in main.rs, and the `use crate::server_shim as tresor_server;` line in
//! commands/server.rs.

use std::path::PathBuf;

/// Options for `run`, as agreed with crates/server.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub dev: bool,
    pub dev_root_token_id: Option<String>,
    pub dev_listen_address: Option<String>,
    pub config: Vec<PathBuf>,
    pub log_level: Option<String>,
}

/// Placeholder: always fails, since the server is not wired yet.
pub async fn run(opts: ServeOptions) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = opts;
    Err("the server is not wired into this build yet (tresor_server::run is missing)".into())
}
