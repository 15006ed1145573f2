//! Tresor's HTTP server: a thin shell that turns Vault's wire format into the core's
//! [`tresor_core::logical::Request`] and the core's answer back into Vault's JSON.
//!
//! * [`config`]: the server config file (Vault's HCL/JSON shape) and dev-mode defaults.
//! * [`http`]: the one request handler (`/v1/*`): methods to operations, headers, body limits,
//!   and the single place where core errors become HTTP status codes.
//! * [`listener`]: TCP listeners, optionally TLS (rustls), serving HTTP/1.1 and HTTP/2.
//! * [`connections`]: per-listener connection limits, timeouts and eviction.
//! * [`cluster`]: request forwarding from standbys to the active node (HA), mutual TLS.
//! * [`hardening`]: no core dumps, locked memory, raised open-files limit.
//! * [`migrate`]: `operator migrate`, copying all entries between storage backends offline.
//! * [`logging`]: log format, run-time log levels (`sys/loggers`), log streams (`sys/monitor`).
//! * [`ops`]: the server's side of the operator endpoints (in-flight requests, sanitized
//!   config; [`host_info`] reads the machine).
//! * [`systemd`]: readiness notifications (`Type=notify`).
//! * [`run`]: starts a server from [`ServeOptions`] (what `tresor server` calls), reloads on
//!   SIGHUP (TLS certificates, log level, audit files) and shuts it down gracefully on
//!   SIGTERM/SIGINT.

pub mod auto_snapshot;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod hardening;
pub mod host_info;
pub mod http;
pub mod listener;
pub mod logging;
pub mod migrate;
pub mod ops;
pub mod systemd;

use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::filter::LevelFilter;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::logical::{Operation, Request};
use tresor_core::seal::SealConfig;
use tresor_storage::Storage;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What `tresor server` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub dev: bool,
    pub dev_root_token_id: Option<String>,
    pub dev_listen_address: Option<String>,
    pub config: Vec<PathBuf>,
    /// `-log-level` (or `VAULT_LOG_LEVEL`): wins over the config's `log_level`.
    pub log_level: Option<String>,
    /// `-log-format` (or `VAULT_LOG_FORMAT`): wins over the config's `log_format`.
    pub log_format: Option<String>,
}

/// Every engine and auth method type this build can mount.
pub fn registry() -> Registry {
    Registry::default()
        .secrets("kv", Arc::new(tresor_engines::kv::factory))
        .secrets("database", Arc::new(tresor_engines::database::factory))
        .secrets("transit", Arc::new(tresor_engines::transit::factory))
        .secrets("pki", Arc::new(tresor_engines::pki::factory))
        .secrets("ssh", Arc::new(tresor_engines::ssh::factory))
        .database_plugins(tresor_engines::database::plugins::Kind::NAMES)
        .auth("approle", Arc::new(tresor_auth::approle::factory))
        .auth("userpass", Arc::new(tresor_auth::userpass::factory))
        .auth("jwt", Arc::new(tresor_auth::jwt::factory))
        .auth("oidc", Arc::new(tresor_auth::jwt::factory))
        .auth("kubernetes", Arc::new(tresor_auth::kubernetes::factory))
        .auth("cert", Arc::new(tresor_auth::cert::factory))
}

/// Opens the configured storage.
pub async fn open_storage(cfg: &config::StorageConfig) -> Result<Arc<dyn Storage>, BoxError> {
    Ok(match cfg {
        config::StorageConfig::Memory => Arc::new(tresor_storage::memory::MemoryStorage::new()),
        config::StorageConfig::File(f) => Arc::new(
            tresor_storage::file::FileStorage::open_with_cache(&f.path, f.cache_bytes)?,
        ),
        config::StorageConfig::Postgres(pg) => {
            Arc::new(tresor_storage::postgres::PostgresStorage::open(pg).await?)
        }
    })
}

/// Builds the core for a config; `server` answers the operator endpoints (`sys/loggers` ...).
pub async fn build_core(
    cfg: &config::ServerConfig,
    server: Option<Arc<dyn tresor_core::sys::operator::ServerOps>>,
) -> Result<Arc<Core>, BoxError> {
    let storage = open_storage(&cfg.storage).await?;
    let core_cfg = CoreConfig {
        default_lease_ttl: cfg.default_lease_ttl,
        max_lease_ttl: cfg.max_lease_ttl,
        storage_type: cfg.storage.kind().into(),
        api_addr: cfg.api_addr.clone(),
        cluster_addr: cfg.cluster_addr.clone(),
        audit_dir: cfg.audit_dir.clone(),
        standby_reads: !cfg.disable_performance_standby,
        audit_devices: cfg.audit_devices.clone(),
        server,
        telemetry: cfg.telemetry.clone(),
        ..CoreConfig::default()
    };
    Ok(Core::new(storage, registry(), core_cfg))
}

/// Dev mode: initialize with one key share, unseal, mount KV v2 at `secret/`. Returns the
/// unseal key (base64) and the root token.
pub async fn dev_setup(
    core: &Core,
    root_token_id: Option<String>,
) -> Result<(String, String), BoxError> {
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 1,
                secret_threshold: 1,
            },
            root_token_id,
        )
        .await?;
    let key = init.keys[0].clone();
    core.submit_unseal_key(key.clone()).await?;
    let req = Request::new(Operation::Update, "sys/mounts/secret")
        .with_token(init.root_token.clone())
        .with_data(serde_json::json!({"type": "kv", "options": {"version": "2"}, "description": "key/value secret storage"}));
    core.handle(req).await?;
    Ok((tresor_core::barrier::b64_encode(&key), init.root_token))
}

/// Runs a server until SIGINT/SIGTERM, then shuts it down gracefully: no new connections,
/// requests in flight finish (within `graceful_shutdown_timeout`), the core seals (keys are
/// dropped and zeroized) and storage closes.
pub async fn run(opts: ServeOptions) -> Result<(), BoxError> {
    // Signals are caught from the start: a SIGHUP (logrotate) or SIGTERM while storage is
    // still opening must not kill the process with the default action. Acted on once the
    // server runs.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut shutdown = ShutdownSignals::listen()?;
    // The log first (so the configuration's warnings are logged as configured): flag or
    // environment, else the config file, else info / standard.
    let file_log = config::LogSettings::load(&opts.config)?;
    let flag_level = match &opts.log_level {
        Some(l) => Some(logging::parse_level(l).ok_or_else(|| format!("invalid log level {l:?}"))?),
        None => None,
    };
    let format = match &opts.log_format {
        Some(f) => {
            logging::LogFormat::parse(f).ok_or_else(|| format!("invalid log format {f:?}"))?
        }
        None => file_log.format.unwrap_or_default(),
    };
    let level = flag_level.or(file_log.level).unwrap_or(LevelFilter::INFO);
    let logging = logging::init(level, format)?;
    let cfg = if opts.dev {
        config::ServerConfig::dev_with(opts.dev_listen_address.as_deref(), &opts.config)?
    } else {
        if opts.config.is_empty() {
            return Err("a configuration file must be specified with -config (or use -dev)".into());
        }
        config::ServerConfig::load_all(&opts.config)?
    };
    // Before any secret exists in this process.
    hardening::disable_core_dumps()?;
    if !cfg.disable_mlock {
        hardening::lock_memory()?;
    }
    let open_files = hardening::raise_open_files_limit();
    let stop = CancellationToken::new();
    let ops = ops::Operations::new(logging.clone(), &cfg, stop.clone());
    let core = build_core(&cfg, Some(ops.clone())).await?;
    if let Some(schedule) = &cfg.snapshot_auto {
        auto_snapshot::spawn(core.clone(), schedule.clone(), stop.clone());
    }
    let connections = TaskTracker::new();
    // HA with a cluster address: standbys forward to the active node's cluster listener.
    let cluster = match (&cfg.cluster_addr, core.ha_enabled()) {
        (Some(addr), true) => Some((addr.clone(), cluster::Cluster::new(core.clone()))),
        _ => None,
    };
    let mut servers = Vec::new();
    for l in &cfg.listeners {
        let forwarding = cluster.as_ref().map(|(_, c)| c.clone());
        servers.push(
            listener::bind(
                l,
                core.clone(),
                ops.clone(),
                forwarding,
                connections.clone(),
            )
            .await?,
        );
    }
    if let Some((addr, c)) = &cluster {
        let listen = cluster_listen_address(addr, &cfg)?;
        // Forwarded requests come from any API listener: the largest body any of them takes.
        let max_body = cfg
            .listeners
            .iter()
            .map(|l| l.max_request_size)
            .max()
            .unwrap_or(config::DEFAULT_MAX_REQUEST_SIZE);
        let bound = listener::bind_cluster(
            &listen,
            max_body,
            core.clone(),
            ops.clone(),
            c.clone(),
            connections.clone(),
        )
        .await?;
        tracing::info!(address = %bound.local_addr, "cluster listener (forwarded requests)");
        servers.push(bound);
    }
    if opts.dev {
        let (key, token) = dev_setup(&core, opts.dev_root_token_id.clone()).await?;
        let addr = cfg
            .listeners
            .first()
            .map(|l| l.address.clone())
            .unwrap_or_default();
        if let Some(home) = std::env::var_os("HOME") {
            if let Err(e) = write_private(&PathBuf::from(home).join(".vault-token"), &token) {
                tracing::warn!(error = %e, "could not write ~/.vault-token");
            }
        }
        println!(
            "WARNING! dev mode is enabled! In this mode, Tresor runs entirely in-memory\n\
             and starts unsealed with a single unseal key. The root token is already\n\
             authenticated to the CLI, so you can immediately begin using Tresor.\n\n\
             You may need to set the following environment variables:\n\n    \
             $ export VAULT_ADDR='http://{addr}'\n\n\
             The unseal key and root token are displayed below in case you want to\n\
             seal/unseal the server or re-authenticate.\n\n\
             Unseal Key: {key}\nRoot Token: {token}\n\n\
             Development mode should NOT be used in production installations!\n"
        );
    }
    for (s, l) in servers.iter().zip(&cfg.listeners) {
        tracing::info!(
            address = %s.local_addr,
            tls = s.tls,
            max_connections = l.limits.max_connections,
            "listening"
        );
    }
    tracing::info!(open_files = ?open_files, mlock = !cfg.disable_mlock, "process limits");
    println!("==> Tresor server started! Log data will stream in below:");
    let reload = Reload {
        core: core.clone(),
        certificates: servers
            .iter()
            .filter_map(|s| s.certificate.clone())
            .collect(),
        logging,
        config: opts.config.clone(),
        flag_level,
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            reload.run();
        }
    });
    systemd::notify("READY=1");
    shutdown.recv().await;
    systemd::notify("STOPPING=1");
    let in_flight: usize = servers.iter().map(|s| s.connections.len()).sum();
    tracing::info!(
        connections = in_flight,
        grace = ?cfg.graceful_shutdown_timeout,
        "shutting down: refusing new connections, finishing requests in flight"
    );
    stop.cancel();
    connections.close();
    if tokio::time::timeout(cfg.graceful_shutdown_timeout, connections.wait())
        .await
        .is_err()
    {
        let left: usize = servers.iter().map(|s| s.connections.len()).sum();
        tracing::warn!(
            connections = left,
            "graceful shutdown timeout reached; closing the remaining connections"
        );
    }
    core.shutdown().await;
    tracing::info!("shut down");
    Ok(())
}

/// What SIGHUP reloads.
struct Reload {
    core: Arc<Core>,
    certificates: Vec<Arc<listener::CertificateFiles>>,
    logging: Arc<logging::Logging>,
    config: Vec<PathBuf>,
    /// `-log-level` / `VAULT_LOG_LEVEL`, which win over the file.
    flag_level: Option<LevelFilter>,
}

impl Reload {
    /// Reopens file audit devices (log rotation), reads the TLS certificates and keys again
    /// (a file that does not load keeps the certificate in use) and, when the flag or the
    /// file names one, sets the log level again (dropping `sys/loggers` changes).
    fn run(&self) {
        systemd::notify("RELOADING=1");
        tracing::info!("SIGHUP: reloading");
        self.core.audit.reopen();
        for c in &self.certificates {
            match c.reload() {
                Ok(()) => {
                    tracing::info!(file = %c.cert_path().display(), "TLS certificate reloaded")
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use")
                }
            }
        }
        let level = match self.flag_level {
            Some(l) => Some(l),
            None => match config::LogSettings::load(&self.config) {
                // As OpenBao: a file without `log_level` leaves the levels as they are.
                Ok(s) => s.level,
                Err(e) => {
                    tracing::error!(error = %e, "log level not reloaded: the configuration does not load");
                    None
                }
            },
        };
        if let Some(level) = level {
            self.logging.set_configured(level);
            tracing::info!(level = %level, "log level set");
        }
        systemd::notify("READY=1");
    }
}

/// Where the cluster listener binds: the listener block's `cluster_address` (Vault's key), else
/// the host and port of `cluster_addr`.
fn cluster_listen_address(
    cluster_addr: &str,
    cfg: &config::ServerConfig,
) -> Result<String, BoxError> {
    if let Some(a) = cfg.listeners.iter().find_map(|l| l.cluster_address.clone()) {
        return Ok(a);
    }
    let rest = cluster_addr
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(cluster_addr);
    let host_port = rest.split('/').next().unwrap_or(rest);
    if !host_port.contains(':') {
        return Err(format!("cluster_addr {cluster_addr:?} needs a port").into());
    }
    Ok(host_port.to_string())
}

/// Writes a file only its owner can read (created 0600, or narrowed to it).
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut f = options.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    options.open(path)?.write_all(contents.as_bytes())
}

/// SIGTERM and SIGINT, listened for from the moment this is made.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! { _ = self.term.recv() => {}, _ = self.int.recv() => {} }
    }
}
