//! The server configuration file, in Vault's shape (HCL or JSON):
//!
//! ```hcl
//! storage "file" { path = "/var/lib/tresor" }     # or: storage "inmem" {}  (`backend` is an alias)
//! #   file: `cache_size` = bytes of pages kept in memory (beyond Vault; default 64 MiB)
//! # or: storage "postgresql" { connection_url = "postgres://...", table = "tresor_kv",
//! #       ha_table = "tresor_ha", max_parallel = 16, max_idle_connections = 4,
//! #       skip_create_table = false }
//! listener "tcp" {
//!   address       = "127.0.0.1:8200"
//!   tls_cert_file = "cert.pem"
//!   tls_key_file  = "key.pem"
//!   tls_disable   = false
//! }
//! api_addr = "https://127.0.0.1:8200"
//! default_lease_ttl = "768h"
//! max_lease_ttl = "768h"
//! disable_mlock = false          # lock memory (see `hardening`); `-dev` sets it
//! disable_performance_standby = false   # HA: standbys forward reads too
//! log_level = "info"             # trace, debug, info, warn, error (-log-level wins)
//! log_format = "standard"        # or "json" (-log-format wins)
//! ```
//! Listener timeouts and limits use Vault's keys (`http_read_header_timeout`, default 10s;
//! `http_read_timeout`, the request body, 30s; `http_idle_timeout`, 5m; `max_request_size`,
//! 32 MiB) plus `max_connections` (beyond Vault; default: the open-files limit less 256).
//! `graceful_shutdown_timeout` (beyond Vault, default 20s) bounds how long SIGTERM/SIGINT wait
//! for requests in flight. Keys Tresor does not act on are accepted, so Vault config files load
//! unchanged, and each is named in a warning (unknown ones, and Vault's without effect here).
//! `-config` may name a directory: every `.hcl` and `.json` file in it, in name order.
//! Why hcl-rs: the maintained Rust HCL parser with serde support.

use crate::connections::Limits;
use crate::logging::LogFormat;
use crate::BoxError;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing_subscriber::filter::LevelFilter;
use tresor_core::audit::AuditEntry;
use tresor_core::framework::parse_duration;
use tresor_storage::postgres::PostgresConfig;

#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    Memory,
    File(FileConfig),
    Postgres(PostgresConfig),
}

/// `storage "file" { path = "...", cache_size = <bytes> }`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    pub path: PathBuf,
    /// The page cache the server keeps in its own memory (beyond Vault; default 64 MiB):
    /// the store's working set read without a system call, and a bound on the server's RSS.
    pub cache_bytes: usize,
}

impl FileConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileConfig {
            path: path.into(),
            cache_bytes: tresor_storage::file::DEFAULT_CACHE_BYTES,
        }
    }
}

impl StorageConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            StorageConfig::Memory => "inmem",
            StorageConfig::File(_) => "file",
            StorageConfig::Postgres(_) => "postgresql",
        }
    }
}

/// One `storage "<type>" { ... }` block (also `storage_source` / `storage_destination` of
/// `operator migrate`).
pub fn storage_block(v: &Value) -> Result<StorageConfig, BoxError> {
    let (kind, body) = single_block(v).ok_or("storage must name one type")?;
    Ok(match kind.as_str() {
        "inmem" => StorageConfig::Memory,
        "file" | "raft" => {
            let mut cfg = FileConfig::new(
                body.get("path")
                    .and_then(Value::as_str)
                    .ok_or("storage \"file\" needs a path")?,
            );
            if let Some(v) = body.get("cache_size") {
                cfg.cache_bytes =
                    number(v)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            format!(
                                "storage \"file\": cache_size must be a number of bytes, not {v}"
                            )
                        })?;
            }
            StorageConfig::File(cfg)
        }
        "postgresql" => StorageConfig::Postgres(postgres_config(&body)?),
        other => {
            return Err(format!(
                "unsupported storage type {other:?} (supported: file, postgresql, inmem)"
            )
            .into())
        }
    })
}

/// Parses one HCL or JSON config file into its JSON value.
pub fn read_file(path: &Path) -> Result<Value, BoxError> {
    merge_files(&[path.to_path_buf()])
}

/// A whole number written as a number or as a string of digits (HCL allows both).
fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `storage "postgresql" { ... }` with Vault's keys (and OpenBao's `skip_create_table`); the
/// connection string may come from `VAULT_PG_CONNECTION_URL` (or `BAO_PG_CONNECTION_URL`)
/// instead, which wins, as in Vault.
fn postgres_config(body: &serde_json::Map<String, Value>) -> Result<PostgresConfig, BoxError> {
    let text = |k: &str| {
        body.get(k).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let connection_url = ["VAULT_PG_CONNECTION_URL", "BAO_PG_CONNECTION_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(|| text("connection_url"))
        .ok_or("storage \"postgresql\" needs a connection_url")?;
    let mut cfg = PostgresConfig {
        connection_url,
        ..PostgresConfig::default()
    };
    if let Some(t) = text("table") {
        cfg.table = t;
    }
    if let Some(t) = text("ha_table") {
        cfg.ha_table = t;
    }
    if let Some(n) = text("max_parallel") {
        cfg.max_parallel = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("storage \"postgresql\": max_parallel must be a positive number")?;
    }
    if let Some(n) = text("max_idle_connections") {
        cfg.max_idle_connections = Some(
            n.parse()
                .map_err(|_| "storage \"postgresql\": max_idle_connections must be a number")?,
        );
    }
    cfg.skip_create_table = body.get("skip_create_table").is_some_and(truthy);
    cfg.ha_enabled = body.get("ha_enabled").is_some_and(truthy);
    if let Some(v) = body.get("lease_ttl") {
        cfg.lease_ttl = parse_duration(v)
            .filter(|d| *d >= Duration::from_secs(1))
            .ok_or("storage \"postgresql\": lease_ttl must be a duration of at least 1s")?;
    }
    Ok(cfg)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    pub address: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest accepted request body, bytes.
    pub max_request_size: usize,
    pub limits: Limits,
    /// Where the cluster listener binds (Vault's `cluster_address`), for HA forwarding.
    pub cluster_address: Option<String>,
    /// `telemetry { unauthenticated_metrics_access = true }`: `sys/metrics` without a token.
    pub unauthenticated_metrics_access: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub api_addr: Option<String>,
    /// Where other nodes reach this one (`cluster_addr`), recorded with the HA lease.
    pub cluster_addr: Option<String>,
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    /// The directory API-created file audit devices are confined to (beyond Vault).
    pub audit_dir: Option<PathBuf>,
    /// `audit "file" "name" { file_path = ... }` blocks (beyond Vault).
    pub audit_devices: Vec<AuditEntry>,
    /// Vault's `disable_mlock`: do not lock memory.
    pub disable_mlock: bool,
    /// Vault's `disable_performance_standby`: HA standbys forward reads too, instead of
    /// serving them.
    pub disable_performance_standby: bool,
    /// How long shutdown waits for requests in flight (beyond Vault).
    pub graceful_shutdown_timeout: Duration,
    /// `log_level` and `log_format` (flags and environment win over them).
    pub log: LogSettings,
    /// `snapshot_auto { ... }`: scheduled snapshots (beyond Vault's open-source server).
    pub snapshot_auto: Option<AutoSnapshot>,
    /// The `telemetry` block.
    pub telemetry: tresor_core::core::Telemetry,
}

/// The log settings of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogSettings {
    pub level: Option<LevelFilter>,
    pub format: Option<LogFormat>,
}

impl LogSettings {
    /// `log_level` and `log_format` of a configuration (empty = not set, as in Vault).
    fn of(v: &Value) -> Result<Self, BoxError> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        Ok(LogSettings {
            level: match text("log_level") {
                None => None,
                Some(l) => Some(crate::logging::parse_level(l).ok_or_else(|| {
                    format!("invalid log_level {l:?}: use trace, debug, info, warn or error")
                })?),
            },
            format: match text("log_format") {
                None => None,
                Some(f) => Some(
                    LogFormat::parse(f)
                        .ok_or_else(|| format!("invalid log_format {f:?}: use standard or json"))?,
                ),
            },
        })
    }

    /// The log settings of config files, read before the log exists (so the rest of the
    /// configuration's warnings are logged as configured).
    pub fn load(paths: &[PathBuf]) -> Result<Self, BoxError> {
        if paths.is_empty() {
            return Ok(Self::default());
        }
        Self::of(&merge_files(paths)?)
    }
}

/// An unlabelled block (`telemetry { ... }`); HCL may give it as a list of one.
fn unlabelled_block(v: Option<&Value>) -> Option<&serde_json::Map<String, Value>> {
    match v? {
        Value::Array(a) if a.len() == 1 => a[0].as_object(),
        other => other.as_object(),
    }
}

/// Vault's `telemetry` block: the settings Tresor acts on.
fn telemetry_block(v: Option<&Value>) -> Result<tresor_core::core::Telemetry, BoxError> {
    let mut t = tresor_core::core::Telemetry::default();
    let Some(body) = unlabelled_block(v) else {
        return Ok(t);
    };
    if let Some(r) = body.get("prometheus_retention_time") {
        t.prometheus_retention = parse_duration(r).ok_or_else(|| {
            format!("telemetry: invalid prometheus_retention_time {r} (a duration such as \"24h\"; 0 turns it off)")
        })?;
    }
    t.disable_hostname = body.get("disable_hostname").is_some_and(truthy);
    Ok(t)
}

/// Scheduled snapshots: every `interval`, into `path_prefix`, keeping the newest `retain`
/// (Vault Enterprise's names for the same settings).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoSnapshot {
    pub interval: Duration,
    pub retain: usize,
    pub path_prefix: PathBuf,
    pub file_prefix: String,
}

fn snapshot_auto_block(v: Option<&Value>) -> Result<Option<AutoSnapshot>, BoxError> {
    let Some(v) = v else {
        return Ok(None);
    };
    let body = unlabelled_block(Some(v)).ok_or(
        "snapshot_auto: one block, e.g. snapshot_auto { interval = \"1h\" retain = 24 path_prefix = \"/var/lib/tresor/snapshots\" }",
    )?;
    if let Some(k) = body
        .keys()
        .find(|k| !["interval", "retain", "path_prefix", "file_prefix"].contains(&k.as_str()))
    {
        return Err(format!("snapshot_auto: unknown key {k:?}").into());
    }
    let interval = duration_key(body, "interval")?.ok_or("snapshot_auto: interval is required")?;
    let retain = match body.get("retain") {
        None => 1,
        Some(v) => number(v)
            .filter(|n| *n > 0)
            .ok_or("snapshot_auto: retain must be a positive number")? as usize,
    };
    let path_prefix = body
        .get("path_prefix")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or("snapshot_auto: path_prefix (the directory snapshots go to) is required")?;
    let file_prefix = body
        .get("file_prefix")
        .and_then(Value::as_str)
        .unwrap_or("tresor-snapshot");
    if file_prefix.is_empty() || file_prefix.contains('/') {
        return Err("snapshot_auto: file_prefix must be a non-empty file name".into());
    }
    Ok(Some(AutoSnapshot {
        interval,
        retain,
        path_prefix: PathBuf::from(path_prefix),
        file_prefix: file_prefix.to_string(),
    }))
}

pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
const DEFAULT_TTL: u64 = 768 * 3600;

impl ServerConfig {
    /// `-dev`: in memory, plain HTTP on 127.0.0.1:8200 (or the given address).
    pub fn dev(addr: Option<&str>) -> Self {
        ServerConfig {
            storage: StorageConfig::Memory,
            listeners: vec![ListenerConfig {
                address: addr.unwrap_or("127.0.0.1:8200").to_string(),
                tls: None,
                max_request_size: DEFAULT_MAX_REQUEST_SIZE,
                limits: Limits::default(),
                cluster_address: None,
                unauthenticated_metrics_access: false,
            }],
            api_addr: None,
            cluster_addr: None,
            default_lease_ttl: DEFAULT_TTL,
            max_lease_ttl: DEFAULT_TTL,
            audit_dir: None,
            audit_devices: Vec::new(),
            // As Vault's dev mode: a throwaway in-memory server need not lock memory.
            disable_mlock: true,
            disable_performance_standby: false,
            graceful_shutdown_timeout: DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
            log: LogSettings::default(),
            snapshot_auto: None,
            telemetry: Default::default(),
        }
    }

    /// Loads and merges config files (Vault allows a config split across files): later files
    /// override single settings; `listener` and `audit` blocks add up.
    pub fn load_all(paths: &[PathBuf]) -> Result<Self, BoxError> {
        Self::from_value(&merge_files(paths)?)
    }

    /// `-dev` plus config files: they may add audit settings and TTLs.
    pub fn dev_with(addr: Option<&str>, paths: &[PathBuf]) -> Result<Self, BoxError> {
        let mut c = Self::dev(addr);
        if !paths.is_empty() {
            let v = merge_files(paths)?;
            if let Some(d) = v.get("audit_dir").and_then(Value::as_str) {
                c.audit_dir = Some(PathBuf::from(d));
            }
            c.audit_devices = audit_blocks(v.get("audit"))?;
            c.log = LogSettings::of(&v)?;
            c.telemetry = telemetry_block(v.get("telemetry"))?;
        }
        Ok(c)
    }

    /// Parses one HCL or JSON text; relative file paths stay relative to the working directory
    /// (as Vault).
    pub fn parse(text: &str, _base: &Path) -> Result<Self, BoxError> {
        Self::from_value(&parse_text(text)?)
    }

    fn from_value(v: &Value) -> Result<Self, BoxError> {
        let obj = v.as_object().ok_or("configuration must be an object")?;
        for warning in unused_keys(v) {
            tracing::warn!("{warning}");
        }
        let storage = match obj.get("storage").or_else(|| obj.get("backend")) {
            None => return Err(
                "no storage configured (storage \"file\" { path = ... } or storage \"inmem\" {})"
                    .into(),
            ),
            Some(s) => storage_block(s)?,
        };
        let mut listeners = Vec::new();
        for block in blocks(obj.get("listener")) {
            let (kind, body) = block;
            if kind != "tcp" {
                return Err(format!("unsupported listener type {kind:?}").into());
            }
            let address = body
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or("127.0.0.1:8200")
                .to_string();
            let tls_disable = body.get("tls_disable").map(truthy).unwrap_or(false);
            let tls = if tls_disable {
                None
            } else {
                let cert = body.get("tls_cert_file").and_then(Value::as_str);
                let key = body.get("tls_key_file").and_then(Value::as_str);
                match (cert, key) {
                    (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
                    _ => return Err("listener: tls_cert_file and tls_key_file are required unless tls_disable = true".into()),
                }
            };
            let max_request_size = match body.get("max_request_size") {
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|n| *n > 0)
                    .map(|n| n as usize)
                    .unwrap_or(DEFAULT_MAX_REQUEST_SIZE),
                None => DEFAULT_MAX_REQUEST_SIZE,
            };
            let defaults = Limits::default();
            let limits = Limits {
                header_read_timeout: duration_key(&body, "http_read_header_timeout")?
                    .unwrap_or(defaults.header_read_timeout),
                read_timeout: duration_key(&body, "http_read_timeout")?
                    .unwrap_or(defaults.read_timeout),
                idle_timeout: duration_key(&body, "http_idle_timeout")?
                    .unwrap_or(defaults.idle_timeout),
                max_connections: match body.get("max_connections") {
                    None => defaults.max_connections,
                    Some(v) => number(v)
                        .filter(|n| *n > 0)
                        .ok_or("listener: max_connections must be a positive number")?
                        as usize,
                },
            };
            listeners.push(ListenerConfig {
                address,
                tls,
                max_request_size,
                limits,
                cluster_address: body
                    .get("cluster_address")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                unauthenticated_metrics_access: unlabelled_block(body.get("telemetry"))
                    .and_then(|t| t.get("unauthenticated_metrics_access"))
                    .is_some_and(truthy),
            });
        }
        if listeners.is_empty() {
            return Err("no listener configured".into());
        }
        let ttl = |k: &str| -> Result<u64, BoxError> {
            match obj.get(k) {
                None => Ok(DEFAULT_TTL),
                Some(v) => parse_duration(v)
                    .map(|d| d.as_secs())
                    .ok_or_else(|| format!("invalid {k}").into()),
            }
        };
        // Vault's environment variables win over the file.
        let addr = |key: &str, env: &str| {
            std::env::var(env)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| obj.get(key).and_then(Value::as_str).map(str::to_string))
        };
        let api_addr = addr("api_addr", "VAULT_API_ADDR");
        let cluster_addr = addr("cluster_addr", "VAULT_CLUSTER_ADDR");
        if matches!(&storage, StorageConfig::Postgres(pg) if pg.ha_enabled) && api_addr.is_none() {
            return Err("ha_enabled needs api_addr: the address standbys send clients to".into());
        }
        Ok(ServerConfig {
            storage,
            listeners,
            api_addr,
            cluster_addr,
            default_lease_ttl: ttl("default_lease_ttl")?,
            max_lease_ttl: ttl("max_lease_ttl")?,
            audit_dir: obj
                .get("audit_dir")
                .and_then(Value::as_str)
                .map(PathBuf::from),
            audit_devices: audit_blocks(obj.get("audit"))?,
            disable_mlock: obj.get("disable_mlock").is_some_and(truthy),
            disable_performance_standby: obj.get("disable_performance_standby").is_some_and(truthy),
            graceful_shutdown_timeout: duration_key(obj, "graceful_shutdown_timeout")?
                .unwrap_or(DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT),
            log: LogSettings::of(v)?,
            snapshot_auto: snapshot_auto_block(obj.get("snapshot_auto"))?,
            telemetry: telemetry_block(obj.get("telemetry"))?,
        })
    }
}

impl ServerConfig {
    /// `sys/config/state/sanitized`: the running configuration in Vault's shape, built from an
    /// allowlist of settings, so nothing secret can appear: no storage settings but the type
    /// (a PostgreSQL `connection_url` carries a password), no audit device options, and none
    /// of the keys Tresor does not act on (`seal` blocks with their PINs, `telemetry` tokens).
    pub fn sanitized(&self) -> serde_json::Map<String, Value> {
        let listeners: Vec<Value> = self
            .listeners
            .iter()
            .map(|l| {
                let mut c = serde_json::json!({
                    "address": l.address,
                    "tls_disable": l.tls.is_none(),
                    "max_request_size": l.max_request_size,
                    "http_read_header_timeout": l.limits.header_read_timeout.as_secs(),
                    "http_read_timeout": l.limits.read_timeout.as_secs(),
                    "http_idle_timeout": l.limits.idle_timeout.as_secs(),
                    "max_connections": l.limits.max_connections,
                });
                if let Some((cert, key)) = &l.tls {
                    c["tls_cert_file"] = cert.display().to_string().into();
                    c["tls_key_file"] = key.display().to_string().into();
                }
                if let Some(a) = &l.cluster_address {
                    c["cluster_address"] = a.clone().into();
                }
                c["telemetry"] = serde_json::json!({
                    "unauthenticated_metrics_access": l.unauthenticated_metrics_access,
                });
                serde_json::json!({ "type": "tcp", "config": c })
            })
            .collect();
        let audit: Vec<Value> = self
            .audit_devices
            .iter()
            .map(|a| serde_json::json!({ "type": a.kind, "path": a.path, "description": a.description }))
            .collect();
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let v = serde_json::json!({
            "api_addr": text(&self.api_addr),
            "cluster_addr": text(&self.cluster_addr),
            "default_lease_ttl": self.default_lease_ttl,
            "max_lease_ttl": self.max_lease_ttl,
            "disable_mlock": self.disable_mlock,
            "disable_performance_standby": self.disable_performance_standby,
            "graceful_shutdown_timeout": self.graceful_shutdown_timeout.as_secs(),
            "log_level": self.log.level.map(|l| l.to_string().to_lowercase()).unwrap_or_default(),
            "log_format": self.log.format.map(LogFormat::as_str).unwrap_or_default(),
            "listeners": listeners,
            "storage": {
                "type": self.storage.kind(),
                "redirect_addr": text(&self.api_addr),
                "cluster_addr": text(&self.cluster_addr),
                "disable_clustering": self.cluster_addr.is_none(),
            },
            "seals": [{ "type": "shamir", "disabled": false }],
            "telemetry": {
                "prometheus_retention_time": self.telemetry.prometheus_retention.as_secs(),
                "disable_hostname": self.telemetry.disable_hostname,
            },
            "audit_dir": self.audit_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
            "audit": audit,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object"),
        }
    }
}

/// A duration setting (`"10s"`, or a number of seconds); a zero or malformed one is an error.
fn duration_key(
    obj: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<Duration>, BoxError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => parse_duration(v)
            .filter(|d| !d.is_zero())
            .map(Some)
            .ok_or_else(|| {
                format!("invalid {key}: {v} (a positive duration such as \"10s\")").into()
            }),
    }
}

fn parse_text(text: &str) -> Result<Value, BoxError> {
    Ok(if text.trim_start().starts_with('{') {
        serde_json::from_str(text)?
    } else {
        hcl::from_str(text)?
    })
}

/// Top-level keys Tresor reads.
const TOP_LEVEL_KEYS: &[&str] = &[
    "storage",
    "backend",
    "listener",
    "api_addr",
    "cluster_addr",
    "default_lease_ttl",
    "max_lease_ttl",
    "audit_dir",
    "audit",
    "disable_mlock",
    "disable_performance_standby",
    "graceful_shutdown_timeout",
    "log_level",
    "log_format",
    "snapshot_auto",
    "telemetry",
];
/// Vault keys Tresor accepts without acting on them (so Vault configs load unchanged).
const VAULT_KEYS_WITHOUT_EFFECT: &[&str] = &[
    "ui",
    "cluster_name",
    "log_file",
    "pid_file",
    "plugin_directory",
    "seal",
    "ha_storage",
    "disable_cache",
    "disable_clustering",
    "raw_storage_endpoint",
    "introspection_endpoint",
    "enable_response_header_hostname",
    "enable_response_header_raft_node_id",
    "license_path",
    "service_registration",
];
/// Listener keys Tresor reads.
const LISTENER_KEYS: &[&str] = &[
    "address",
    "cluster_address",
    "tls_disable",
    "tls_cert_file",
    "tls_key_file",
    "max_request_size",
    "http_read_header_timeout",
    "http_read_timeout",
    "http_idle_timeout",
    "max_connections",
    "telemetry",
];
/// Vault listener keys Tresor accepts without acting on them.
const LISTENER_KEYS_WITHOUT_EFFECT: &[&str] = &[
    "tls_min_version",
    "tls_client_ca_file",
    "tls_disable_client_certs",
    "tls_require_and_verify_client_cert",
    "x_forwarded_for_authorized_addrs",
    "x_forwarded_for_reject_not_authorized",
    "x_forwarded_for_reject_not_present",
    "profiling",
    "proxy_protocol_behavior",
];

/// Warnings for the keys of a configuration that Tresor does not act on: unknown ones (a
/// typo silently ignored would leave a setting unapplied) and Vault's that have no effect here.
pub fn unused_keys(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(obj) = v.as_object() else {
        return out;
    };
    for key in obj.keys() {
        if VAULT_KEYS_WITHOUT_EFFECT.contains(&key.as_str()) {
            out.push(format!("configuration key {key:?} has no effect in Tresor"));
        } else if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            out.push(format!("unknown configuration key {key:?} (ignored)"));
        }
    }
    for (_, body) in blocks(obj.get("listener")) {
        for key in body.keys() {
            if LISTENER_KEYS_WITHOUT_EFFECT.contains(&key.as_str()) {
                out.push(format!("listener key {key:?} has no effect in Tresor"));
            } else if !LISTENER_KEYS.contains(&key.as_str()) {
                out.push(format!("unknown listener key {key:?} (ignored)"));
            }
        }
    }
    out
}

/// The files a `-config` argument names: the file itself, or every `.hcl` and `.json` file
/// of a directory, in name order (as Vault).
fn config_files(path: &Path) -> Result<Vec<PathBuf>, BoxError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("error loading configuration from {}: {e}", path.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "hcl" || x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no .hcl or .json configuration files in {}", path.display()).into());
    }
    Ok(files)
}

fn merge_files(paths: &[PathBuf]) -> Result<Value, BoxError> {
    let mut merged = serde_json::Map::new();
    let mut files = Vec::new();
    for path in paths {
        files.extend(config_files(path)?);
    }
    for path in &files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("error loading configuration from {}: {e}", path.display()))?;
        let v = parse_text(&text)
            .map_err(|e| format!("error loading configuration from {}: {e}", path.display()))?;
        let Value::Object(obj) = v else {
            return Err(format!("configuration in {} must be an object", path.display()).into());
        };
        for (k, v) in obj {
            match (k.as_str(), merged.get_mut(&k)) {
                ("listener" | "audit", Some(existing)) => {
                    let mut items = match existing.take() {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    match v {
                        Value::Array(a) => items.extend(a),
                        other => items.push(other),
                    }
                    *existing = Value::Array(items);
                }
                _ => {
                    merged.insert(k, v);
                }
            }
        }
    }
    Ok(Value::Object(merged))
}

/// `audit "<type>" "<path>" { ... }`: every attribute but `description` is a device option.
fn audit_blocks(v: Option<&Value>) -> Result<Vec<AuditEntry>, BoxError> {
    let mut out = Vec::new();
    for (kind, by_path) in blocks(v) {
        for (path, body) in by_path {
            let Value::Object(body) = body else {
                return Err(format!("audit \"{kind}\" \"{path}\" must be a block").into());
            };
            // Options flat in the block (Tresor's first form) or in an `options { ... }`
            // block (OpenBao's), with `description` and `local` beside them.
            let as_string = |v: Value| match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let mut options = serde_json::Map::new();
            let mut description = String::new();
            let mut local = false;
            for (k, v) in body {
                match (k.as_str(), v) {
                    ("description", v) => description = as_string(v),
                    ("local", v) => local = truthy(&v),
                    ("options", v) => {
                        let nested = unlabelled_block(Some(&v)).ok_or_else(|| {
                            format!("audit \"{kind}\" \"{path}\": options must be a block")
                        })?;
                        for (k, v) in nested.clone() {
                            options.insert(k, Value::String(as_string(v)));
                        }
                    }
                    (_, v) => {
                        options.insert(k, Value::String(as_string(v)));
                    }
                }
            }
            out.push(AuditEntry {
                path: format!("{}/", path.trim_end_matches('/')),
                kind: kind.clone(),
                description,
                options,
                local,
                from_config: true,
            });
        }
    }
    Ok(out)
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() != Some(0),
        Value::String(s) => matches!(s.as_str(), "true" | "1" | "yes"),
        _ => false,
    }
}

/// `{ "file": { ... } }` (or a one-element list of it) → ("file", body).
fn single_block(v: &Value) -> Option<(String, serde_json::Map<String, Value>)> {
    blocks(Some(v)).into_iter().next()
}

/// Labelled blocks, whichever way the parser shaped them: an object keyed by label (whose
/// value may be an object or a list of objects), or a list of such objects.
fn blocks(v: Option<&Value>) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    match v {
        Some(Value::Array(items)) => {
            for i in items {
                out.extend(blocks(Some(i)));
            }
        }
        Some(Value::Object(m)) => {
            for (label, body) in m {
                match body {
                    Value::Object(b) => out.push((label.clone(), b.clone())),
                    Value::Array(bs) => out.extend(
                        bs.iter()
                            .filter_map(|b| b.as_object().map(|b| (label.clone(), b.clone()))),
                    ),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod key_and_directory_tests {
    use super::*;

    #[test]
    fn keys_without_effect_are_named() {
        let v = parse_text(
            r#"
            storage "inmem" {}
            listener "tcp" {
              address = "127.0.0.1:8200"
              tls_disable = true
              tls_cert_fiel = "typo.pem"
              tls_min_version = "tls13"
            }
            ui = true
            max_lease_tll = "1h"
            "#,
        )
        .unwrap();
        let mut w = unused_keys(&v);
        w.sort();
        assert_eq!(
            w,
            [
                "configuration key \"ui\" has no effect in Tresor",
                "listener key \"tls_min_version\" has no effect in Tresor",
                "unknown configuration key \"max_lease_tll\" (ignored)",
                "unknown listener key \"tls_cert_fiel\" (ignored)",
            ]
        );
        // A config that only uses what Tresor reads has nothing to say.
        let clean = parse_text(
            "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\napi_addr = \"http://x\"",
        )
        .unwrap();
        assert!(unused_keys(&clean).is_empty());
    }

    #[test]
    fn a_directory_is_every_hcl_and_json_file_in_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-storage.hcl"), "storage \"inmem\" {}\n").unwrap();
        std::fs::write(
            dir.path().join("20-listener.json"),
            r#"{"listener": {"tcp": {"address": "127.0.0.1:9999", "tls_disable": true}}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("30-ttl.hcl"), "max_lease_ttl = \"2h\"\n").unwrap();
        std::fs::write(dir.path().join("README.txt"), "not a config").unwrap();
        let c = ServerConfig::load_all(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(c.listeners[0].address, "127.0.0.1:9999");
        assert_eq!(c.max_lease_ttl, 7200);
        let empty = tempfile::tempdir().unwrap();
        let e = ServerConfig::load_all(&[empty.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no .hcl or .json configuration files"), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_stores_cache_size_is_a_number_of_bytes() {
        let parse = |body: &str| {
            let hcl = format!(
                "storage \"file\" {{\n path = \"/tmp/x\"\n {body}\n}}\n\
                 listener \"tcp\" {{\n address = \"127.0.0.1:8200\"\n tls_disable = true\n}}"
            );
            ServerConfig::parse(&hcl, Path::new(".")).map(|c| c.storage)
        };
        let file = |cache_bytes| {
            StorageConfig::File(FileConfig {
                path: "/tmp/x".into(),
                cache_bytes,
            })
        };
        assert_eq!(parse("").unwrap(), file(64 << 20));
        assert_eq!(parse("cache_size = 268435456").unwrap(), file(256 << 20));
        assert_eq!(parse("cache_size = \"1048576\"").unwrap(), file(1 << 20));
        for bad in [
            "cache_size = \"64MiB\"",
            "cache_size = -1",
            "cache_size = true",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("cache_size must be a number of bytes"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn parses_vault_hcl() {
        let c = ServerConfig::parse(
            r#"
            storage "file" { path = "/tmp/x" }
            listener "tcp" {
              address = "127.0.0.1:8300"
              tls_disable = true
            }
            listener "tcp" {
              address = "127.0.0.1:8301"
              tls_cert_file = "c.pem"
              tls_key_file = "k.pem"
            }
            ui = true
            disable_mlock = true
            default_lease_ttl = "1h"
            "#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.storage, StorageConfig::File(FileConfig::new("/tmp/x")));
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[0].tls, None);
        assert_eq!(c.listeners[1].tls, Some(("c.pem".into(), "k.pem".into())));
        assert_eq!(c.default_lease_ttl, 3600);
        assert_eq!(c.max_lease_ttl, DEFAULT_TTL);
        assert!(c.disable_mlock);
        assert_eq!(c.listeners[0].limits, Limits::default());
    }

    #[test]
    fn sanitized_config_names_no_secret() {
        let c = ServerConfig::parse(
            r#"
            storage "postgresql" {
              connection_url = "postgres://tresor:pg-password-xyzzy@db/tresor"
            }
            listener "tcp" {
              address = "127.0.0.1:8200"
              tls_cert_file = "/etc/tresor/cert.pem"
              tls_key_file = "/etc/tresor/key.pem"
            }
            seal "pkcs11" { pin = "seal-pin-xyzzy" }
            telemetry { circonus_api_token = "telemetry-token-xyzzy" }
            audit "file" "main" {
              file_path = "/var/log/a.log"
              hmac_key = "audit-opt-xyzzy"
            }
            log_level = "debug"
            log_format = "json"
            "#,
            Path::new("."),
        )
        .unwrap();
        let s = Value::Object(c.sanitized());
        let text = s.to_string();
        assert!(!text.contains("xyzzy"), "{text}");
        assert_eq!(s["storage"]["type"], "postgresql");
        assert_eq!(s["listeners"][0]["config"]["tls_disable"], false);
        assert_eq!(
            s["listeners"][0]["config"]["tls_key_file"],
            "/etc/tresor/key.pem"
        );
        assert_eq!(s["log_level"], "debug");
        assert_eq!(s["log_format"], "json");
        assert_eq!(s["audit"][0]["path"], "main/");
        assert_eq!(s["seals"][0]["type"], "shamir");
    }

    #[test]
    fn log_settings_are_checked() {
        let base = "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\n";
        let c = ServerConfig::parse(
            &format!("{base}log_level = \"WARN\"\nlog_format = \"\""),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.log.level, Some(LevelFilter::WARN));
        assert_eq!(c.log.format, None);
        for (bad, want) in [
            ("log_level = \"loud\"", "invalid log_level"),
            ("log_format = \"xml\"", "invalid log_format"),
        ] {
            let e = ServerConfig::parse(&format!("{base}{bad}"), Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn parses_postgresql_storage() {
        let c = ServerConfig::parse(
            r#"
            storage "postgresql" {
              connection_url = "postgres://tresor@pg1,pg2/tresor?target_session_attrs=read-write"
              table          = "kv"
              ha_table       = "kv_ha"
              max_parallel   = "8"
              max_idle_connections = 2
            }
            listener "tcp" { tls_disable = true }
            "#,
            Path::new("."),
        )
        .unwrap();
        let StorageConfig::Postgres(pg) = &c.storage else {
            panic!("{:?}", c.storage)
        };
        assert_eq!(pg.table, "kv");
        assert_eq!(pg.ha_table, "kv_ha");
        assert_eq!(pg.max_parallel, 8);
        assert_eq!(pg.max_idle_connections, Some(2));
        assert!(pg.connection_url.contains("pg1,pg2"));
        let e = ServerConfig::parse(
            "storage \"postgresql\" {\n connection_url = \"postgres://h/db\"\n max_idle_connections = \"some\"\n}\nlistener \"tcp\" { tls_disable = true }",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_idle_connections must be a number"), "{e}");
        let e = ServerConfig::parse(
            "storage \"postgresql\" { max_parallel = 0 }\nlistener \"tcp\" { tls_disable = true }",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("connection_url") || e.contains("max_parallel"),
            "{e}"
        );
    }

    #[test]
    fn parses_scheduled_snapshots() {
        let base = "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\n";
        let c = ServerConfig::parse(
            &format!("{base}snapshot_auto {{\n interval = \"1h\"\n retain = 24\n path_prefix = \"/backups\"\n}}\n"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            c.snapshot_auto,
            Some(AutoSnapshot {
                interval: Duration::from_secs(3600),
                retain: 24,
                path_prefix: PathBuf::from("/backups"),
                file_prefix: "tresor-snapshot".into(),
            })
        );
        assert_eq!(
            ServerConfig::parse(base, Path::new("."))
                .unwrap()
                .snapshot_auto,
            None
        );
        for (bad, says) in [
            ("retain = 2\npath_prefix = \"/b\"", "interval is required"),
            ("interval = \"1h\"", "path_prefix"),
            ("interval = \"0s\"\npath_prefix = \"/b\"", "interval"),
            (
                "interval = \"1h\"\nretain = 0\npath_prefix = \"/b\"",
                "retain",
            ),
            (
                "interval = \"1h\"\npath_prefix = \"/b\"\nfile_prefix = \"a/b\"",
                "file_prefix",
            ),
            (
                "interval = \"1h\"\npath_prefix = \"/b\"\nretention = 3",
                "unknown key \"retention\"",
            ),
        ] {
            let err = ServerConfig::parse(
                &format!("{base}snapshot_auto {{\n{bad}\n}}\n"),
                Path::new("."),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn parses_listener_limits() {
        let c = ServerConfig::parse(
            r#"
            storage "inmem" {}
            listener "tcp" {
              tls_disable = true
              http_read_header_timeout = "3s"
              http_read_timeout = 7
              http_idle_timeout = "2m"
              max_connections = 500
            }
            graceful_shutdown_timeout = "45s"
            "#,
            Path::new("."),
        )
        .unwrap();
        let l = &c.listeners[0].limits;
        assert_eq!(l.header_read_timeout, Duration::from_secs(3));
        assert_eq!(l.read_timeout, Duration::from_secs(7));
        assert_eq!(l.idle_timeout, Duration::from_secs(120));
        assert_eq!(l.max_connections, 500);
        assert_eq!(c.graceful_shutdown_timeout, Duration::from_secs(45));
        assert!(!c.disable_mlock);
        for bad in [
            "http_read_header_timeout = \"soon\"",
            "http_idle_timeout = 0",
            "max_connections = 0",
        ] {
            let text = format!(
                "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  tls_disable = true\n  {bad}\n}}\n"
            );
            assert!(ServerConfig::parse(&text, Path::new(".")).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_audit_blocks_and_dir() {
        let c = ServerConfig::parse(
            r#"
            storage "inmem" {}
            listener "tcp" { tls_disable = true }
            audit_dir = "/var/log/tresor"
            audit "file" "main" {
              file_path = "/var/log/tresor/audit.log"
              mode = "0600"
              description = "primary"
            }
            "#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.audit_dir, Some(PathBuf::from("/var/log/tresor")));
        assert_eq!(c.audit_devices.len(), 1);
        let d = &c.audit_devices[0];
        assert_eq!(
            (d.kind.as_str(), d.path.as_str(), d.description.as_str()),
            ("file", "main/", "primary")
        );
        assert_eq!(d.options["file_path"], "/var/log/tresor/audit.log");
        // OpenBao's form: the options in a block of their own.
        let c = ServerConfig::parse(
            r#"
            storage "inmem" {}
            listener "tcp" { tls_disable = true }
            audit "file" "main" {
              description = "primary"
              local = true
              options {
                file_path = "/var/log/tresor/audit.log"
                mode = "0600"
              }
            }
            "#,
            Path::new("."),
        )
        .unwrap();
        let d = &c.audit_devices[0];
        assert_eq!((d.description.as_str(), d.local), ("primary", true));
        assert_eq!(d.options["file_path"], "/var/log/tresor/audit.log");
        assert_eq!(d.options["mode"], "0600");
        assert!(!d.options.contains_key("options"));
        let bad = "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\naudit \"file\" \"m\" {\n options = \"x\"\n}\n";
        assert!(ServerConfig::parse(bad, Path::new("."))
            .unwrap_err()
            .to_string()
            .contains("options must be a block"));
    }

    #[test]
    fn config_files_merge() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.hcl");
        std::fs::write(&a, r#"{"backend": {"inmem": {}}, "listener": {"tcp": {"address": "127.0.0.1:1", "tls_disable": true}}}"#).unwrap();
        std::fs::write(&b, "audit_dir = \"/tmp\"\nlistener \"tcp\" {\n  address = \"127.0.0.1:2\"\n  tls_disable = true\n}\n").unwrap();
        let c = ServerConfig::load_all(&[a, b.clone()]).unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.audit_dir, Some(PathBuf::from("/tmp")));
        // A fragment alone is not a whole config.
        assert!(ServerConfig::load_all(&[b])
            .unwrap_err()
            .to_string()
            .contains("no storage"));
    }

    #[test]
    fn parses_hvac_style_json() {
        let c = ServerConfig::parse(
            r#"{"backend": {"inmem": {}}, "listener": {"tcp": {"tls_cert_file": "a", "tls_key_file": "b", "address": "127.0.0.1:1234"}}, "disable_mlock": true, "default_lease_ttl": "768h", "max_lease_ttl": "768h"}"#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.storage, StorageConfig::Memory);
        assert_eq!(c.listeners[0].address, "127.0.0.1:1234");
    }

    #[test]
    fn rejects_bad_configs_clearly() {
        for (text, want) in [
            ("listener \"tcp\" { tls_disable = true }", "no storage"),
            (
                "storage \"consul\" {}\nlistener \"tcp\" { tls_disable = true }",
                "unsupported storage",
            ),
            ("storage \"inmem\" {}", "no listener"),
            (
                "storage \"inmem\" {}\nlistener \"tcp\" { address = \"x\" }",
                "tls_cert_file",
            ),
            ("storage \"inmem\" {", ""),
        ] {
            let e = ServerConfig::parse(text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
