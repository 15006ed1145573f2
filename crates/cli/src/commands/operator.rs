//! `tresor operator ...`: barrier lifecycle commands over `sys/`:
//! `init` (`sys/init`), `unseal` (`sys/unseal`), `seal` (`sys/seal`), `rotate`
//! (`sys/rotate`), `key-status` (`sys/key-status`) and `rekey` (`sys/rekey/*`, falling
//! back to OpenBao's authenticated `sys/rotate/root/*` when the server refuses the
//! legacy endpoints with 404/405); `migrate` copies storage offline (no server involved).

use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Value};

use crate::client::Client;
use crate::commands::{status, success, Ctx};
use crate::error::{CliError, CliResult, Context};
use crate::input::prompt_hidden;
use crate::output::{emit, format_value};

/// `tresor operator` subcommands.
#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Initialize the server: create the unseal keys and the root token
    Init(InitArgs),
    /// Provide an unseal key (prompted for when omitted)
    Unseal(UnsealArgs),
    /// Seal the server
    Seal,
    /// Make the active node of an HA cluster give up the lease (another node takes over)
    StepDown,
    /// Rotate the barrier encryption key
    Rotate,
    /// Show the barrier key term and install time
    KeyStatus,
    /// Generate new unseal keys (-init, then provide keys with -nonce; -status, -cancel)
    Rekey(RekeyArgs),
    /// Make a new root token from a threshold of unseal keys (-generate-otp, -init, keys,
    /// -decode; -status, -cancel)
    GenerateRoot(GenerateRootArgs),
    /// Copy all data between storage backends, offline (storage_source -> storage_destination)
    Migrate(MigrateArgs),
    /// Save, restore or inspect a snapshot of all data (also `operator raft snapshot`)
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Vault's name for the snapshot commands: `operator raft snapshot save|restore|inspect`
    #[command(subcommand)]
    Raft(RaftCommand),
}

/// `operator raft ...` (only its `snapshot` commands: Tresor has no raft peers).
#[derive(Subcommand, Debug)]
pub enum RaftCommand {
    /// Save, restore or inspect a snapshot of all data
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

/// `operator snapshot ...`.
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save a snapshot of all data, taken online, to FILE
    Save {
        /// Where to write it (replaced atomically)
        file: std::path::PathBuf,
    },
    /// Restore the snapshot in FILE: replaces all data
    Restore {
        /// Restore even if the snapshot was taken with other unseal keys (the server then
        /// seals; the snapshot's keys unseal it)
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value = "false", action = ArgAction::Set)]
        force: bool,
        file: std::path::PathBuf,
    },
    /// Check the snapshot in FILE and show what it holds (offline, no server involved)
    Inspect { file: std::path::PathBuf },
}

/// Flags of `operator migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The migration config: `storage_source` and `storage_destination` blocks
    #[arg(long, value_name = "FILE")]
    pub config: std::path::PathBuf,
    /// Resume from this key (inclusive) into a destination that has the keys before it
    #[arg(long, value_name = "KEY")]
    pub start: Option<String>,
}

/// Flags of `operator init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Number of key shares to split the root key into
    #[arg(
        long = "key-shares",
        alias = "n",
        default_value_t = 5,
        value_name = "N"
    )]
    pub key_shares: u32,
    /// Number of key shares required to unseal
    #[arg(
        long = "key-threshold",
        alias = "t",
        default_value_t = 3,
        value_name = "N"
    )]
    pub key_threshold: u32,
    /// Only check whether the server is initialized (exit 0 if so, 2 if not)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub status: bool,
}

/// Flags of `operator unseal`.
#[derive(Args, Debug)]
pub struct UnsealArgs {
    /// Discard the unseal keys provided so far
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub reset: bool,
    /// Unseal key (base64 or hex); prompted for when omitted
    pub key: Option<String>,
}

/// Flags of `operator generate-root`.
#[derive(Args, Debug)]
pub struct GenerateRootArgs {
    /// Start a root token generation (with -otp, or the server makes and prints one)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub init: bool,
    /// Cancel the generation in progress
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub cancel: bool,
    /// Show the progress of the generation
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub status: bool,
    /// Print a new one-time password (OTP) to start a generation with
    #[arg(long = "generate-otp", num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub generate_otp: bool,
    /// Decode this encoded root token with -otp
    #[arg(long, value_name = "ENCODED")]
    pub decode: Option<String>,
    /// The one-time password (with -init or -decode)
    #[arg(long, value_name = "OTP")]
    pub otp: Option<String>,
    /// Not supported: PGP-encrypted root tokens
    #[arg(long = "pgp-key", value_name = "KEY")]
    pub pgp_key: Option<String>,
    /// Nonce of the generation (read from the status when omitted)
    #[arg(long, value_name = "NONCE")]
    pub nonce: Option<String>,
    /// An unseal key (prompted for when omitted; `-` reads stdin)
    pub key: Option<String>,
}

/// Flags of `operator rekey`.
#[derive(Args, Debug)]
pub struct RekeyArgs {
    /// Start a rekey operation
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub init: bool,
    /// Cancel the rekey operation in progress
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub cancel: bool,
    /// Show the progress of the rekey operation
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub status: bool,
    /// Number of new key shares (with -init)
    #[arg(
        long = "key-shares",
        alias = "n",
        default_value_t = 5,
        value_name = "N"
    )]
    pub key_shares: u32,
    /// Number of new key shares required to unseal (with -init)
    #[arg(
        long = "key-threshold",
        alias = "t",
        default_value_t = 3,
        value_name = "N"
    )]
    pub key_threshold: u32,
    /// Nonce of the rekey operation (read from the status when omitted)
    #[arg(long, value_name = "NONCE")]
    pub nonce: Option<String>,
    /// An existing unseal key (prompted for when omitted)
    pub key: Option<String>,
}

/// Runs an operator subcommand.
pub fn run(ctx: &Ctx, cmd: OperatorCommand) -> CliResult {
    let cmd = match cmd {
        OperatorCommand::Migrate(a) => return migrate(a),
        OperatorCommand::Raft(RaftCommand::Snapshot(s)) => OperatorCommand::Snapshot(s),
        other => other,
    };
    match &cmd {
        OperatorCommand::Snapshot(SnapshotCommand::Inspect { file }) => {
            return snapshot_inspect(ctx, file)
        }
        // Offline: no server involved.
        OperatorCommand::GenerateRoot(a) if a.generate_otp || a.decode.is_some() => {
            return generate_root_offline(ctx, a)
        }
        _ => {}
    }
    let client = ctx.client()?;
    match cmd {
        OperatorCommand::Init(a) => init(ctx, &client, a),
        OperatorCommand::Unseal(a) => unseal(ctx, &client, a),
        OperatorCommand::Seal => {
            client
                .put("sys/seal", &json!({}))
                .context("Error sealing")?;
            success("Tresor is sealed.")
        }
        OperatorCommand::StepDown => {
            client
                .put("sys/step-down", &json!({}))
                .context("Error stepping down")?;
            success("Success! Stepped down the active node.")
        }
        OperatorCommand::Rotate => {
            client
                .put("sys/rotate", &json!({}))
                .context("Error rotating key")?;
            let st = key_status(&client)?;
            if ctx.out.is_structured() || ctx.out.field.is_some() {
                return ctx.out.rows_or_json(&key_status_rows(&st), &st);
            }
            emit("Success! Rotated key\n\n");
            ctx.out.rows_or_json(&key_status_rows(&st), &st)
        }
        OperatorCommand::KeyStatus => {
            let st = key_status(&client)?;
            ctx.out.rows_or_json(&key_status_rows(&st), &st)
        }
        OperatorCommand::Rekey(a) => rekey(ctx, &client, a),
        OperatorCommand::GenerateRoot(a) => generate_root(ctx, &client, a),
        OperatorCommand::Snapshot(s) => snapshot(&client, s),
        OperatorCommand::Migrate(_) | OperatorCommand::Raft(_) => unreachable!("handled above"),
    }
}

fn read_snapshot_file(file: &std::path::Path) -> CliResult<Vec<u8>> {
    std::fs::read(file)
        .map_err(|e| CliError::other(format!("Error reading {}: {e}", file.display())))
}

/// `operator snapshot save|restore`.
fn snapshot(client: &Client, cmd: SnapshotCommand) -> CliResult {
    const PATH: &str = "sys/storage/raft/snapshot";
    match cmd {
        SnapshotCommand::Save { file } => {
            let bytes = client
                .request_bytes(reqwest::Method::GET, PATH, None)
                .context("Error taking the snapshot")?;
            // Checked before it is kept: a truncated transfer must not pass for a backup.
            let snap = tresor_core::snapshot::Snapshot::decode(&bytes)
                .map_err(|e| CliError::other(format!("Error checking the snapshot: {e}")))?;
            tresor_core::snapshot::write_file_durably(&file, &bytes)
                .map_err(|e| CliError::other(format!("Error writing {}: {e}", file.display())))?;
            success(format!(
                "Snapshot saved to {} ({} entries, {} bytes).",
                file.display(),
                snap.meta.entries,
                bytes.len()
            ))
        }
        SnapshotCommand::Restore { force, file } => {
            let bytes = read_snapshot_file(&file)?;
            let path = if force {
                "sys/storage/raft/snapshot-force"
            } else {
                PATH
            };
            client
                .request_bytes(reqwest::Method::POST, path, Some(bytes))
                .context("Error restoring the snapshot")?;
            success("Snapshot restored.")
        }
        SnapshotCommand::Inspect { .. } => unreachable!("offline, handled by run"),
    }
}

/// `operator snapshot inspect FILE`: checks the checksums and sums up the content.
fn snapshot_inspect(ctx: &Ctx, file: &std::path::Path) -> CliResult {
    let bytes = read_snapshot_file(file)?;
    let snap = tresor_core::snapshot::Snapshot::decode(&bytes)
        .map_err(|e| CliError::other(format!("Error inspecting {}: {e}", file.display())))?;
    let summary = snap.summary();
    let mut rows: Vec<(String, String)> = [
        "created",
        "entries",
        "key_term",
        "storage_type",
        "checksums",
    ]
    .iter()
    .map(|k| (k.to_string(), format_value(&summary[*k])))
    .collect();
    rows.push(("size".into(), bytes.len().to_string()));
    if let Some(areas) = summary["areas"].as_object() {
        for (area, a) in areas {
            rows.push((
                format!("entries under {area}/"),
                format!("{} ({} bytes)", a["entries"], a["bytes"]),
            ));
        }
    }
    ctx.out.rows_or_json(&rows, &summary)
}

/// `operator migrate`: talks to the two storages directly, not to a server.
fn migrate(a: MigrateArgs) -> CliResult {
    let migration = tresor_server::migrate::Migration::load(&a.config)
        .map_err(|e| CliError::usage(format!("Error loading the migration config: {e}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::other(format!("Error starting the runtime: {e}")))?;
    let copied = rt
        .block_on(migration.run(a.start.as_deref()))
        .map_err(|e| CliError::other(format!("Error migrating: {e}")))?;
    success(format!(
        "All of the keys have been migrated ({copied} entries)."
    ))
}

fn check_shares(shares: u32, threshold: u32) -> CliResult<()> {
    if shares == 0 || threshold == 0 {
        return Err(CliError::usage(
            "-key-shares and -key-threshold must be at least 1",
        ));
    }
    if threshold > shares {
        return Err(CliError::usage(format!(
            "-key-threshold ({threshold}) cannot be greater than -key-shares ({shares})"
        )));
    }
    if shares > 1 && threshold == 1 {
        return Err(CliError::usage(
            "-key-threshold must be greater than 1 when -key-shares is greater than 1",
        ));
    }
    if shares > 255 {
        return Err(CliError::usage("-key-shares cannot be greater than 255"));
    }
    Ok(())
}

fn init(ctx: &Ctx, client: &Client, a: InitArgs) -> CliResult {
    if a.status {
        let st = client
            .read("sys/init", &[])
            .context("Error checking init status")?
            .unwrap_or(Value::Null);
        let initialized = st
            .get("initialized")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if initialized {
            emit("Tresor is initialized\n");
            return Ok(0);
        }
        emit("Tresor is not initialized\n");
        return Ok(crate::error::EXIT_REMOTE);
    }
    check_shares(a.key_shares, a.key_threshold)?;
    let resp = client
        .put(
            "sys/init",
            &json!({"secret_shares": a.key_shares, "secret_threshold": a.key_threshold}),
        )
        .context("Error initializing")?
        .ok_or_else(|| CliError::other("Error initializing: empty response"))?;
    let strings = |k: &str| -> Vec<String> {
        resp.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(format_value).collect())
            .unwrap_or_default()
    };
    let keys_b64 = strings("keys_base64");
    let keys_hex = strings("keys");
    let root = resp.get("root_token").map(format_value).unwrap_or_default();
    if ctx.out.is_structured() {
        // Same shape as Vault's `operator init -format=json`.
        ctx.out.structured(&json!({
            "unseal_keys_b64": keys_b64,
            "unseal_keys_hex": keys_hex,
            "unseal_shares": a.key_shares,
            "unseal_threshold": a.key_threshold,
            "recovery_keys_b64": [],
            "recovery_keys_hex": [],
            "recovery_keys_shares": 0,
            "recovery_keys_threshold": 0,
            "root_token": root,
        }));
        return Ok(0);
    }
    let shown = if keys_b64.is_empty() {
        &keys_hex
    } else {
        &keys_b64
    };
    let mut s = String::new();
    for (i, k) in shown.iter().enumerate() {
        s.push_str(&format!("Unseal Key {}: {k}\n", i + 1));
    }
    s.push_str(&format!("\nInitial Root Token: {root}\n\n"));
    s.push_str(&format!(
        "Tresor initialized with {} key shares and a key threshold of {}. Please securely\n\
         distribute the key shares printed above. When the server is re-sealed,\n\
         restarted, or stopped, you must supply at least {} of these keys to unseal it\n\
         before it can start servicing requests.\n",
        a.key_shares, a.key_threshold, a.key_threshold
    ));
    emit(&s);
    Ok(0)
}

fn unseal(ctx: &Ctx, client: &Client, a: UnsealArgs) -> CliResult {
    let body = if a.reset {
        if a.key.is_some() {
            return Err(CliError::usage("-reset does not take an unseal key"));
        }
        json!({"reset": true})
    } else {
        let key = match a.key {
            Some(k) if k == "-" => crate::input::read_file_or_stdin("-")?.trim().to_string(),
            Some(k) => k,
            None => prompt_hidden("Unseal Key (will be hidden): ")?,
        };
        if key.is_empty() {
            return Err(CliError::usage("Missing unseal key"));
        }
        json!({"key": key})
    };
    let resp = client
        .put("sys/unseal", &body)
        .context("Error unsealing")?
        .ok_or_else(|| CliError::other("Error unsealing: empty response"))?;
    status::print_seal_status(ctx, &resp, None)
}

fn key_status(client: &Client) -> CliResult<Value> {
    let resp = client
        .read("sys/key-status", &[])
        .context("Error reading key status")?
        .ok_or_else(|| CliError::other("Error reading key status: empty response"))?;
    // Newer servers wrap the answer in `data`.
    Ok(match resp.get("data") {
        Some(d) if d.get("term").is_some() => d.clone(),
        _ => resp,
    })
}

fn key_status_rows(st: &Value) -> Vec<(String, String)> {
    let g = |k: &str| st.get(k).map(format_value).unwrap_or_default();
    let mut rows = vec![
        ("Key Term".to_string(), g("term")),
        ("Install Time".to_string(), g("install_time")),
    ];
    if st.get("encryptions").is_some() {
        rows.push(("Encryption Count".to_string(), g("encryptions")));
    }
    rows
}

fn rekey_status_rows(st: &Value) -> Vec<(String, String)> {
    let g = |k: &str| st.get(k).map(format_value).unwrap_or_default();
    let mut rows = vec![
        ("Nonce".to_string(), g("nonce")),
        ("Started".to_string(), g("started")),
        (
            "Rekey Progress".to_string(),
            format!("{}/{}", g("progress"), g("required")),
        ),
        ("New Shares".to_string(), g("n")),
        ("New Threshold".to_string(), g("t")),
    ];
    if st.get("verification_required").is_some() {
        rows.push((
            "Verification Required".to_string(),
            g("verification_required"),
        ));
    }
    rows
}

/// Calls `op` with the rekey endpoint prefix: `sys/rekey`, or `sys/rotate/root` when the
/// server answers 404/405 there (OpenBao disables the unauthenticated endpoints).
/// Answers of the authenticated endpoints are wrapped in `data`; unwrap them.
fn rekey_call(op: impl Fn(&str) -> CliResult<Option<Value>>) -> CliResult<Option<Value>> {
    Ok(rekey_call_raw(op)?.map(unwrap_data))
}

fn unwrap_data(v: Value) -> Value {
    match v.get("data") {
        Some(Value::Object(d)) if !d.is_empty() => Value::Object(d.clone()),
        _ => v,
    }
}

fn rekey_call_raw(op: impl Fn(&str) -> CliResult<Option<Value>>) -> CliResult<Option<Value>> {
    call_with_fallback("sys/rekey", "sys/rotate/root", op)
}

/// Calls `op` with `legacy`, or with `authenticated` when the server answers 404/405 there.
fn call_with_fallback(
    legacy: &str,
    authenticated: &str,
    op: impl Fn(&str) -> CliResult<Option<Value>>,
) -> CliResult<Option<Value>> {
    match op(legacy) {
        Err(e) if matches!(e.status, Some(404 | 405)) => op(authenticated).map_err(|e2| {
            if matches!(e2.status, Some(404 | 405)) {
                e
            } else {
                e2
            }
        }),
        other => other,
    }
}

fn rekey_status(client: &Client) -> CliResult<Value> {
    rekey_call(|base| client.read(&format!("{base}/init"), &[]))
        .context("Error reading rekey status")?
        .ok_or_else(|| CliError::other("Error reading rekey status: empty response"))
}

fn rekey(ctx: &Ctx, client: &Client, a: RekeyArgs) -> CliResult {
    let modes = [a.init, a.cancel, a.status].iter().filter(|b| **b).count();
    if modes > 1 {
        return Err(CliError::usage(
            "Only one of -init, -cancel and -status can be given",
        ));
    }
    if (a.init || a.cancel || a.status) && a.key.is_some() {
        return Err(CliError::usage(
            "An unseal key cannot be given with -init, -cancel or -status",
        ));
    }
    if a.init {
        check_shares(a.key_shares, a.key_threshold)?;
        let body = json!({"secret_shares": a.key_shares, "secret_threshold": a.key_threshold});
        let st = rekey_call(|base| client.put(&format!("{base}/init"), &body))
            .context("Error initializing rekey")?;
        let st = match st {
            Some(s) => s,
            None => rekey_status(client)?,
        };
        return ctx.out.rows_or_json(&rekey_status_rows(&st), &st);
    }
    if a.cancel {
        rekey_call(|base| client.delete(&format!("{base}/init"), &[]))
            .context("Error canceling rekey")?;
        return success("Canceled rekeying (if it was started)");
    }
    if a.status {
        let st = rekey_status(client)?;
        return ctx.out.rows_or_json(&rekey_status_rows(&st), &st);
    }
    // Provide a key. The status gives the nonce (unless given) and the new n/t.
    let st = rekey_status(client)?;
    if st.get("started").and_then(Value::as_bool) != Some(true) {
        return Err(CliError::usage(
            "No rekey is in progress; start one with `tresor operator rekey -init`",
        ));
    }
    let nonce = match a.nonce {
        Some(n) => n,
        None => st.get("nonce").map(format_value).unwrap_or_default(),
    };
    let key = match a.key {
        Some(k) if k == "-" => crate::input::read_file_or_stdin("-")?.trim().to_string(),
        Some(k) => k,
        None => prompt_hidden("Unseal Key (will be hidden): ")?,
    };
    if key.is_empty() {
        return Err(CliError::usage("Missing unseal key"));
    }
    let body = json!({"key": key, "nonce": nonce});
    let resp = rekey_call(|base| client.put(&format!("{base}/update"), &body))
        .context("Error posting unseal key")?
        .unwrap_or(Value::Null);
    let complete = resp
        .get("complete")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !complete {
        let st = rekey_status(client)?;
        return ctx.out.rows_or_json(&rekey_status_rows(&st), &st);
    }
    if ctx.out.is_structured() {
        ctx.out.structured(&resp);
        return Ok(0);
    }
    let keys: Vec<String> = resp
        .get("keys_base64")
        .or_else(|| resp.get("keys"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(format_value).collect())
        .unwrap_or_default();
    let threshold = st.get("t").map(format_value).unwrap_or_default();
    let mut s = String::new();
    for (i, k) in keys.iter().enumerate() {
        s.push_str(&format!("Key {}: {k}\n", i + 1));
    }
    s.push_str(&format!(
        "\nOperation nonce: {}\n\nTresor rekeyed with {} key shares and a key threshold of {threshold}.\n\
         Please securely distribute the key shares printed above. When the server is\n\
         re-sealed, restarted, or stopped, you must supply at least {threshold} of these\n\
         keys to unseal it before it can start servicing requests.\n",
        resp.get("nonce").map(format_value).unwrap_or(nonce),
        keys.len(),
    ));
    emit(&s);
    Ok(0)
}

/// Calls `op` with `sys/generate-root` (Vault's), or OpenBao's authenticated
/// `sys/generate-root-token`; answers unwrapped from `data`.
fn generate_root_call(op: impl Fn(&str) -> CliResult<Option<Value>>) -> CliResult<Option<Value>> {
    Ok(call_with_fallback("sys/generate-root", "sys/generate-root-token", op)?.map(unwrap_data))
}

fn generate_root_status(client: &Client) -> CliResult<Value> {
    generate_root_call(|base| client.read(&format!("{base}/attempt"), &[]))
        .context("Error reading root generation status")?
        .ok_or_else(|| CliError::other("Error reading root generation status: empty response"))
}

fn generate_root_rows(st: &Value) -> Vec<(String, String)> {
    let g = |k: &str| st.get(k).map(format_value).unwrap_or_default();
    let mut rows = vec![
        ("Nonce".to_string(), g("nonce")),
        ("Started".to_string(), g("started")),
        (
            "Progress".to_string(),
            format!("{}/{}", g("progress"), g("required")),
        ),
        ("Complete".to_string(), g("complete")),
    ];
    for (key, label) in [("encoded_root_token", "Encoded Token"), ("otp", "OTP")] {
        if st
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
        {
            rows.push((label.to_string(), g(key)));
        }
    }
    rows.push(("OTP Length".to_string(), g("otp_length")));
    rows
}

/// `-generate-otp` and `-decode`: no server needed.
fn generate_root_offline(ctx: &Ctx, a: &GenerateRootArgs) -> CliResult {
    if a.generate_otp {
        let otp = json!({ "otp": tresor_core::sys::generate_root::new_otp().as_str() });
        return ctx.out.field_of_map(&otp, "otp");
    }
    let encoded = a.decode.as_deref().unwrap_or_default();
    let otp = a
        .otp
        .as_deref()
        .ok_or_else(|| CliError::usage("Missing otp: use -otp to supply it"))?;
    let token = tresor_core::sys::generate_root::decode(encoded, otp)
        .map_err(|e| CliError::other(format!("Error decoding root token: {e}")))?;
    // The token alone, as Vault's CLI prints it; `{"token": ...}` with -format=json.
    let root = json!({ "token": token.as_str() });
    if ctx.out.is_structured() {
        ctx.out.structured(&root);
        return Ok(0);
    }
    ctx.out.field_of_map(&root, "token")
}

fn generate_root(ctx: &Ctx, client: &Client, a: GenerateRootArgs) -> CliResult {
    if [a.init, a.cancel, a.status].iter().filter(|b| **b).count() > 1 {
        return Err(CliError::usage(
            "Only one of -init, -cancel and -status can be given",
        ));
    }
    if a.pgp_key.is_some() {
        return Err(CliError::usage(
            "PGP-encrypted root tokens are not supported: use -otp",
        ));
    }
    if a.init {
        let body = match &a.otp {
            Some(otp) => json!({ "otp": otp }),
            None => json!({}),
        };
        let st = generate_root_call(|base| client.put(&format!("{base}/attempt"), &body))
            .context("Error initializing root generation")?
            .unwrap_or(Value::Null);
        return ctx.out.rows_or_json(&generate_root_rows(&st), &st);
    }
    if a.cancel {
        generate_root_call(|base| client.delete(&format!("{base}/attempt"), &[]))
            .context("Error canceling root token generation")?;
        return success("Success! Root token generation canceled (if it was started)");
    }
    let st = generate_root_status(client)?;
    if a.status {
        return ctx.out.rows_or_json(&generate_root_rows(&st), &st);
    }
    if st.get("started").and_then(Value::as_bool) != Some(true) {
        return Err(CliError::usage(
            "No root generation is in progress; start one with `tresor operator generate-root -init`",
        ));
    }
    let nonce = a
        .nonce
        .unwrap_or_else(|| st.get("nonce").map(format_value).unwrap_or_default());
    let key = match a.key {
        Some(k) if k == "-" => crate::input::read_file_or_stdin("-")?.trim().to_string(),
        Some(k) => k,
        None => prompt_hidden("Unseal Key (will be hidden): ")?,
    };
    let body = json!({"key": key, "nonce": nonce});
    let st = generate_root_call(|base| client.put(&format!("{base}/update"), &body))
        .context("Error posting unseal key")?
        .unwrap_or(Value::Null);
    ctx.out.rows_or_json(&generate_root_rows(&st), &st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rekey_fallback() {
        use std::cell::RefCell;
        let seen = RefCell::new(Vec::new());
        let r = rekey_call(|base| {
            seen.borrow_mut().push(base.to_string());
            if base == "sys/rekey" {
                Err(CliError::api(405, "unsupported"))
            } else {
                Ok(Some(json!({"request_id": "x", "data": {"started": true}})))
            }
        })
        .unwrap();
        assert_eq!(*seen.borrow(), ["sys/rekey", "sys/rotate/root"]);
        assert_eq!(r, Some(json!({"started": true})));
        // Both refused: the first error is reported.
        let e = rekey_call(|base| Err(CliError::api(404, base.to_string()))).unwrap_err();
        assert_eq!(e.message, "sys/rekey");
        // Other errors are not retried.
        let e = rekey_call(|base| Err(CliError::api(403, base.to_string()))).unwrap_err();
        assert_eq!(e.message, "sys/rekey");
    }

    #[test]
    fn share_validation() {
        assert!(check_shares(5, 3).is_ok());
        assert!(check_shares(1, 1).is_ok());
        assert_eq!(check_shares(3, 5).unwrap_err().code, 1);
        assert!(check_shares(0, 0).is_err());
        assert!(check_shares(3, 1).is_err());
        assert!(check_shares(256, 3).is_err());
    }
}
