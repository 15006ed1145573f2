//! [`Core`]: the request pipeline. A request is normalized, routed to its mount, authenticated
//! (token lookup), authorized (ACL), handed to the backend, and its answer post-processed (a
//! login becomes a token). Sealed, the core answers only the seal API.

use crate::audit::{self, AuditBroker};
use crate::barrier::{Barrier, View};
use crate::error::{Error, Result};
use crate::expiration::LeaseManager;
use crate::framework::{path_matches_any, Backend, Call, Caller, FieldData};
use crate::identity::IdentityStore;
use crate::logical::{Operation, Request, Response};
use crate::mount::{MountConfig, MountEntry, Router};
use crate::policy_store::PolicyStore;
use crate::seal::{Progress, SealConfig, SealStore};
use crate::token::backend::{sanitize_policies, TokenBackend};
use crate::token::{TokenParams, TokenStore, TokenType, Use};
use crate::ttl::TtlLimits;
use crate::util::random_alnum;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use tresor_storage::{HaLock, NodeInfo, Storage};
use zeroize::Zeroizing;

const AUDIT_TABLE: &str = "core/audit";
/// Where audit devices' salts and chain keys live (inside the barrier).
const AUDIT_KEYS: &str = "sys/audit/";

/// How often backends' periodic hooks run.
const PERIODIC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Builds a backend for a new mount of some type.
pub type Factory = Arc<dyn Fn(&MountEntry) -> Result<Arc<dyn Backend>> + Send + Sync>;

/// The engine and auth-method types this server can mount.
#[derive(Default, Clone)]
pub struct Registry {
    secrets: HashMap<String, Factory>,
    auth: HashMap<String, Factory>,
    /// The database plugin names the database engine accepts (`sys/plugins/catalog`).
    database_plugins: Vec<String>,
}

impl Registry {
    pub fn secrets(mut self, kind: &str, f: Factory) -> Self {
        self.secrets.insert(kind.to_string(), f);
        self
    }
    pub fn auth(mut self, kind: &str, f: Factory) -> Self {
        self.auth.insert(kind.to_string(), f);
        self
    }
    pub fn database_plugins(mut self, names: &[&str]) -> Self {
        self.database_plugins = names.iter().map(|n| n.to_string()).collect();
        self
    }
}

/// Server-wide settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Seconds; Vault's default is 768h.
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    /// Reported by `sys/seal-status` (`inmem`, `file`).
    pub storage_type: String,
    pub cluster_name: String,
    /// The server's API address (`api_addr`): the identity token issuer by default, and where
    /// standbys send clients when this node is active.
    pub api_addr: Option<String>,
    /// The address other nodes reach this one at (`cluster_addr`).
    pub cluster_addr: Option<String>,
    /// The only directory API-created file audit devices may write in (`audit_dir`).
    pub audit_dir: Option<std::path::PathBuf>,
    /// Audit devices declared in the config file; always on while unsealed.
    pub audit_devices: Vec<audit::AuditEntry>,
    /// HA: standbys serve reads themselves (see `standby.rs`); `false` forwards everything.
    pub standby_reads: bool,
    /// The server running this core: loggers, in-flight requests, its configuration, the
    /// host (`sys/loggers`, `sys/monitor`, `sys/in-flight-req` ...; see `sys::operator`).
    pub server: Option<Arc<dyn crate::sys::operator::ServerOps>>,
    /// The `telemetry` block.
    pub telemetry: Telemetry,
}

/// Leases by mount as counted at some moment (see `sys/metrics.rs`).
pub(crate) type LeaseCounts = (std::time::Instant, Vec<(String, u64)>);

/// Vault's `telemetry` settings Tresor acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// `prometheus_retention_time` (default 24h); zero turns `?format=prometheus` off.
    pub prometheus_retention: std::time::Duration,
    /// `disable_hostname`: gauge names without the host name in them.
    pub disable_hostname: bool,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            prometheus_retention: std::time::Duration::from_secs(24 * 3600),
            disable_hostname: false,
        }
    }
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_lease_ttl: 768 * 3600,
            max_lease_ttl: 768 * 3600,
            storage_type: "inmem".into(),
            api_addr: None,
            cluster_addr: None,
            audit_dir: None,
            audit_devices: Vec::new(),
            standby_reads: true,
            server: None,
            telemetry: Telemetry::default(),
            cluster_name: format!("tresor-cluster-{}", &random_alnum(8).to_lowercase()),
        }
    }
}

/// State that exists only while unsealed.
pub struct Active {
    pub router: RwLock<Router>,
    pub tokens: Arc<TokenStore>,
    pub leases: Arc<LeaseManager>,
    pub policies: Arc<PolicyStore>,
    pub identity: Arc<IdentityStore>,
    /// Rate-limit quotas (`sys/quotas/*`).
    pub quotas: Arc<crate::quotas::Quotas>,
    /// Serializes changes to the mount tables.
    pub mount_lock: tokio::sync::Mutex<()>,
}

/// Answer of a successful `sys/init`.
pub struct InitResult {
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    pub root_token: String,
}

/// A rekey in flight (`sys/rekey/*`).
pub struct RekeyState {
    pub config: SealConfig,
    pub nonce: String,
    pub progress: Progress,
    /// `require_verification`: the new keys take effect only once a threshold of them is
    /// given back (`sys/rekey/verify`), proving their holders received them.
    pub require_verification: bool,
    /// With verification: the new unseal key, handed out and awaiting that proof.
    pub pending: Option<PendingRekey>,
}

/// New unseal key shares handed out, not yet in effect (`sys/rekey/verify`).
pub struct PendingRekey {
    pub unseal_key: Zeroizing<Vec<u8>>,
    pub root_key: Zeroizing<Vec<u8>>,
    pub verification_nonce: String,
    pub progress: Progress,
}

/// A root token generation in flight (`sys/generate-root/*`): the OTP the new token will be
/// encoded with, and the unseal key shares given so far.
pub struct RootGeneration {
    pub nonce: String,
    pub otp: Zeroizing<String>,
    pub progress: Progress,
}

pub struct Core {
    pub(crate) me: Weak<Core>,
    pub barrier: Arc<Barrier>,
    pub seal_store: SealStore,
    pub unseal_progress: tokio::sync::Mutex<Progress>,
    pub rekey: tokio::sync::Mutex<Option<RekeyState>>,
    pub root_generation: tokio::sync::Mutex<Option<RootGeneration>>,
    /// The latest mount moves (`sys/remount/status/:id`): id and outcome, oldest first.
    pub(crate) remounts:
        parking_lot::Mutex<std::collections::VecDeque<(String, serde_json::Value)>>,
    active: RwLock<Option<Arc<Active>>>,
    registry: Registry,
    pub config: CoreConfig,
    pub cluster_id: String,
    seal_api: Arc<dyn Backend>,
    pub audit: AuditBroker,
    /// What `sys/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// When this core was made (`vault.core.uptime`-like gauges).
    pub(crate) started: std::time::Instant,
    /// `vault.expire.num_leases` by mount, counted at most once a minute (a scan of the
    /// lease index).
    pub(crate) lease_counts: tokio::sync::Mutex<Option<LeaseCounts>>,
    /// This node, as it records itself when it becomes the active one.
    pub node: NodeInfo,
    /// The HA lease of a storage several nodes share (`None`: active whenever unsealed).
    pub(crate) ha: Option<Arc<dyn HaLock>>,
    pub(crate) ha_view: RwLock<crate::ha::HaView>,
    /// A standby's read-only copy of the unsealed state, and the change-log index it reflects
    /// (see `standby.rs`).
    pub(crate) standby: RwLock<Option<Arc<Active>>>,
    pub(crate) standby_applied: std::sync::atomic::AtomicI64,
    /// Serializes building unsealed state (active or standby): both (re)load the audit devices.
    pub(crate) state_lock: tokio::sync::Mutex<()>,
}

/// Paths about the node asked (its log, loggers, host, requests in flight, configuration,
/// metrics): answered by that node, never forwarded (Vault's `handleLogicalNoForward`).
fn local_only(path: &str) -> bool {
    matches!(
        path,
        "sys/monitor"
            | "sys/loggers"
            | "sys/host-info"
            | "sys/in-flight-req"
            | "sys/config/state/sanitized"
            | "sys/metrics"
    ) || path.starts_with("sys/loggers/")
}

/// One debug line per request: what was asked, by which token accessor (never the token),
/// the answer's status and how long it took. Never request or response data.
fn log_request(
    req: &Request,
    ctx: &audit::Context,
    result: &Result<Response>,
    took: std::time::Duration,
) {
    let status = match result {
        Ok(r) => r.http_status(),
        Err(e) => e.status(),
    };
    let accessor = ctx
        .caller
        .as_ref()
        .map(|c| c.entry.accessor.as_str())
        .unwrap_or("");
    tracing::debug!(
        target: "tresor::request",
        path = %loggable_path(&req.path),
        operation = ?req.operation,
        status,
        duration_us = took.as_micros() as u64,
        accessor = %accessor,
        remote = %req.remote_addr.as_deref().unwrap_or(""),
        "request"
    );
}

/// A request path fit for a log or a report: Vault's legacy token endpoints carry the token in
/// the path (`auth/token/lookup/<token>`), which is cut off.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const TOKEN_IN_PATH: [&str; 4] = ["lookup/", "renew/", "revoke/", "revoke-orphan/"];
    if let Some(rest) = path.strip_prefix("auth/token/") {
        if let Some(op) = TOKEN_IN_PATH.iter().find(|op| rest.starts_with(*op)) {
            return format!("auth/token/{op}<redacted>").into();
        }
    }
    path.into()
}

/// Splits a path into clean segments; refuses traversal and empty segments in the middle.
fn normalize_path(path: &str) -> Result<String> {
    let trimmed = path.trim_start_matches('/');
    for seg in trimmed.split('/') {
        if seg == ".." || seg == "." {
            return Err(Error::bad(
                "invalid path: relative path segments are not allowed",
            ));
        }
    }
    if trimmed.contains("//") {
        return Err(Error::bad("invalid path: empty path segment"));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(Error::bad(
            "invalid path: control characters are not allowed",
        ));
    }
    Ok(trimmed.to_string())
}

impl Core {
    pub fn new(storage: Arc<dyn Storage>, registry: Registry, config: CoreConfig) -> Arc<Core> {
        let node = NodeInfo {
            id: crate::util::uuid(),
            api_addr: config.api_addr.clone().unwrap_or_default(),
            cluster_addr: config.cluster_addr.clone().unwrap_or_default(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            version: crate::sys::seal::VAULT_API_VERSION.to_string(),
        };
        let ha = storage.ha();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        Arc::new_cyclic(|me: &Weak<Core>| Core {
            metrics: metrics.clone(),
            started: std::time::Instant::now(),
            lease_counts: tokio::sync::Mutex::new(None),
            me: me.clone(),
            node,
            ha,
            ha_view: RwLock::new(Default::default()),
            standby: RwLock::new(None),
            standby_applied: Default::default(),
            state_lock: tokio::sync::Mutex::new(()),
            barrier: Arc::new(Barrier::with_metrics(storage.clone(), metrics)),
            seal_store: SealStore::new(storage),
            unseal_progress: tokio::sync::Mutex::new(Progress::default()),
            rekey: tokio::sync::Mutex::new(None),
            root_generation: tokio::sync::Mutex::new(None),
            remounts: Default::default(),
            active: RwLock::new(None),
            registry,
            config,
            cluster_id: crate::util::uuid(),
            seal_api: Arc::new(crate::sys::seal::backend(me.clone())),
            audit: AuditBroker::default(),
        })
    }

    pub fn arc(&self) -> Arc<Core> {
        self.me.upgrade().expect("core alive")
    }

    /// Sealed: the barrier is closed, or (without HA) the unsealed state is not loaded yet,
    /// so health checks do not report a node that cannot serve yet. An HA node with an open
    /// barrier is unsealed: active or standby.
    pub fn is_sealed(&self) -> bool {
        self.barrier.is_sealed() || (self.ha.is_none() && !self.has_active_state())
    }

    /// Unsealed, but not the active node (HA only).
    pub fn is_standby(&self) -> bool {
        self.ha.is_some() && !self.barrier.is_sealed() && self.active().is_err()
    }

    /// The active state; a standby (or a node whose lease may have run out) has none.
    pub fn active(&self) -> Result<Arc<Active>> {
        match self.active.read().clone() {
            Some(a) if self.lease_holds() => Ok(a),
            _ if self.barrier.is_sealed() || self.ha.is_none() => Err(Error::Sealed),
            _ => Err(self.standby_error()),
        }
    }

    pub(crate) fn has_active_state(&self) -> bool {
        self.active.read().is_some()
    }

    /// Drops the active state and the audit devices; whether there was any.
    pub(crate) fn drop_active_state(&self) -> bool {
        let was = self.active.write().take().is_some();
        self.audit.clear();
        was
    }

    pub async fn is_initialized(&self) -> Result<bool> {
        Ok(self.seal_store.config().await?.is_some())
    }

    /// Initializes a new server: keyring, root key, unseal key shares, root token. Leaves it sealed.
    pub async fn initialize(
        &self,
        cfg: SealConfig,
        root_token_id: Option<String>,
    ) -> Result<InitResult> {
        cfg.validate()?;
        if self.is_initialized().await? {
            return Err(Error::bad("Vault is already initialized"));
        }
        // On shared storage, initializing writes: it takes the lease for the time it needs.
        if let Some(lease) = &self.ha {
            if lease.try_acquire(&self.node).await?.is_none() {
                return Err(Error::bad(
                    "another node holds the HA lease; initialize through it",
                ));
            }
        }
        let result = self.initialize_locked(cfg, root_token_id).await;
        self.release_lease().await;
        result
    }

    async fn initialize_locked(
        &self,
        cfg: SealConfig,
        root_token_id: Option<String>,
    ) -> Result<InitResult> {
        let root_key = self.barrier.initialize().await?;
        let keys = self.seal_store.protect_root_key(&root_key, &cfg).await?;
        self.barrier.unseal(root_key).await?;
        let active = self.post_unseal().await?;
        let (root_token, _) = active
            .tokens
            .create(TokenParams {
                id: root_token_id,
                policies: vec!["root".into()],
                path: "auth/token/root".into(),
                display_name: "root".into(),
                ..Default::default()
            })
            .await?;
        self.seal_now();
        Ok(InitResult { keys, root_token })
    }

    /// Adds one unseal key share; unseals when enough are in. Returns whether it is now unsealed.
    pub async fn submit_unseal_key(&self, key: Zeroizing<Vec<u8>>) -> Result<bool> {
        if !self.is_sealed() {
            return Ok(true);
        }
        let cfg = self.seal_store.required_config().await?;
        let mut progress = self.unseal_progress.lock().await;
        if !self.is_sealed() {
            return Ok(true);
        }
        if cfg.secret_shares == 1 && key.len() != 32 || cfg.secret_shares > 1 && key.len() != 33 {
            return Err(Error::bad(format!(
                "'key' must be a valid hex or base64 string of a key share ({} bytes)",
                if cfg.secret_shares == 1 { 32 } else { 33 }
            )));
        }
        if progress.nonce.is_empty() {
            progress.nonce = crate::util::uuid();
        }
        progress.add(key);
        if progress.shares.len() < cfg.secret_threshold as usize {
            return Ok(false);
        }
        let shares = std::mem::take(&mut progress.shares);
        progress.reset();
        let root_key = self.seal_store.recover_root_key(&shares, &cfg).await?;
        self.barrier.unseal(root_key).await.map_err(|_| {
            Error::bad("failed to unseal: the key shares do not reconstruct the unseal key")
        })?;
        if self.ha.is_some() {
            tracing::info!("unsealed; a standby until this node takes the HA lease");
            self.start_unsealed_ha().await;
            return Ok(true);
        }
        let active = match self.post_unseal().await {
            Ok(a) => a,
            Err(e) => {
                self.seal_now();
                return Err(e);
            }
        };
        self.start_periodic(&active);
        tracing::info!("unsealed");
        Ok(true)
    }

    /// Runs every backend's `periodic` hook about once a second until this unsealed state ends
    /// (seal, or the core is dropped).
    pub(crate) fn start_periodic(&self, active: &Arc<Active>) {
        let weak_active = Arc::downgrade(active);
        let core = self.me.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PERIODIC_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                ticks += 1;
                let (Some(core), Some(active)) = (core.upgrade(), weak_active.upgrade()) else {
                    return;
                };
                if !core
                    .active
                    .read()
                    .as_ref()
                    .is_some_and(|a| Arc::ptr_eq(a, &active))
                {
                    return;
                }
                // Automatic key rotation; the running encryption count recorded every 5 min.
                match core
                    .barrier
                    .rotate_if_due(crate::util::unix_now(), ticks.is_multiple_of(300))
                    .await
                {
                    Ok(Some(reason)) => tracing::info!(reason, "barrier key rotated automatically"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "automatic key rotation check failed"),
                }
                if let Err(e) = active.tokens.tick().await {
                    tracing::warn!(error = %e, "token expiry failed");
                }
                if let Err(e) = active.leases.tick().await {
                    tracing::warn!(error = %e, "lease expiry failed");
                }
                let routes: Vec<_> = active.router.read().routes().to_vec();
                for r in routes {
                    let view = View::new(core.barrier.clone(), r.entry.storage_prefix());
                    if let Err(e) = r.backend.periodic(&view).await {
                        tracing::warn!(mount = %r.prefix, error = %e, "periodic task failed");
                    }
                }
            }
        });
    }

    /// The end of the process: seals (keys dropped and zeroized), then closes storage cleanly.
    /// Requests in flight should have finished (the server drains them first).
    pub async fn shutdown(&self) {
        self.seal_now();
        self.release_lease().await;
        self.barrier.storage().close().await;
    }

    /// Seals: drops every key and all unsealed state (an HA node's election loop then gives
    /// the lease up).
    pub fn seal_now(&self) {
        self.drop_active_state();
        self.barrier.seal();
        tracing::info!("sealed");
    }

    /// The server config's default and max TTL (mounts tune theirs on top).
    pub fn system_ttl_limits(&self) -> TtlLimits {
        TtlLimits {
            default_ttl: self.config.default_lease_ttl,
            max_ttl: self.config.max_lease_ttl,
        }
    }

    /// Loads everything afresh from storage as the active node: the keyring (another node, or
    /// a snapshot restore, may have changed it), the HA cluster identity, the active state,
    /// periodic work. On activation, and after a restore.
    pub(crate) async fn load_active_state(&self) -> Result<()> {
        self.barrier.reload_keyring().await?;
        if self.ha.is_some() {
            crate::cluster_identity::ensure(&self.root_view()).await?;
        }
        let active = self.post_unseal().await?;
        self.start_periodic(&active);
        Ok(())
    }

    /// Loads mount tables, policies and tokens after the barrier opened (or this node became
    /// the active one) and installs them as the active state.
    pub(crate) async fn post_unseal(&self) -> Result<Arc<Active>> {
        let _building = self.state_lock.lock().await;
        self.standby.write().take();
        let active = self.build_state(false).await?;
        *self.active.write() = Some(active.clone());
        Ok(active)
    }

    /// The unsealed state as storage holds it. A standby's copy (`read_only`) writes nothing:
    /// a mount table that lacks a built-in mount fails it (the active node adds those).
    pub(crate) async fn build_state(&self, read_only: bool) -> Result<Arc<Active>> {
        let root = View::new(self.barrier.clone(), "");
        let tokens = Arc::new(TokenStore::open(root.sub("sys/token/")).await?);
        if read_only {
            tokens.set_read_only();
        }
        let policies = Arc::new(PolicyStore::open(root.sub("sys/policy/")).await?);
        let leases = Arc::new(LeaseManager::new(self.me.clone(), root.sub("sys/expire/")));
        let identity = Arc::new(IdentityStore::open(root.sub("sys/identity/")).await?);
        tokens.set_lease_manager(Arc::downgrade(&leases));
        let mut router = Router::default();
        for table in ["mounts", "auth"] {
            let mut entries = self.load_table(table).await?;
            // Built-in mounts a table lacks (a new table, or one from an older version) are added.
            let missing: Vec<MountEntry> = self
                .default_mounts(table)
                .into_iter()
                .filter(|d| !entries.iter().any(|e| e.kind == d.kind))
                .collect();
            if !missing.is_empty() {
                if read_only {
                    return Err(Error::internal(
                        "the mount tables lack built-in mounts the active node has not added yet",
                    ));
                }
                entries.extend(missing);
                self.store_table(table, &entries).await?;
            }
            for entry in entries {
                let backend = self.build_backend(&entry, &tokens, &identity)?;
                backend
                    .initialize(&View::new(self.barrier.clone(), entry.storage_prefix()))
                    .await?;
                router.insert(entry, backend, &self.metrics);
            }
        }
        self.load_audit_devices(&root).await?;
        let quotas = Arc::new(crate::quotas::Quotas::load(&root).await?);
        let active = Arc::new(Active {
            router: RwLock::new(router),
            tokens,
            leases,
            policies,
            identity,
            quotas,
            mount_lock: tokio::sync::Mutex::new(()),
        });
        // The identity store names auth mounts by accessor, as the mount table says now.
        let weak = Arc::downgrade(&active);
        active
            .identity
            .set_mount_resolver(Arc::new(move |accessor: &str| {
                let active = weak.upgrade()?;
                let router = active.router.read();
                router
                    .routes()
                    .iter()
                    .find(|r| r.entry.accessor == accessor)
                    .map(|r| (*r.entry).clone())
            }));
        if let Some(addr) = &self.config.api_addr {
            active.identity.set_api_addr(addr);
        }
        Ok(active)
    }

    /// Starts the config-declared and the stored audit devices. A device that cannot start
    /// fails the unseal: running unaudited would be failing open.
    ///
    /// The new set replaces the old at once, so requests in flight are never unaudited; a
    /// device whose entry is unchanged keeps running (its file stays open, its chain intact).
    async fn load_audit_devices(&self, root: &View) -> Result<()> {
        let stored: Vec<audit::AuditEntry> = root.get_json(AUDIT_TABLE).await?.unwrap_or_default();
        let declared = self.config.audit_devices.iter().cloned().map(|mut e| {
            e.from_config = true;
            e
        });
        let mut devices = Vec::new();
        for entry in declared.chain(stored) {
            if let Some(running) = self.audit.running(&entry) {
                devices.push(running);
                continue;
            }
            let path = entry.path.clone();
            let device = AuditBroker::build(entry, &root.sub(AUDIT_KEYS))
                .await
                .map_err(|e| {
                    Error::internal(format!("audit device {path} failed to start: {e}"))
                })?;
            devices.push(Arc::new(device));
        }
        self.audit.replace(devices);
        Ok(())
    }

    /// Enables an audit device over the API and stores it in the audit table.
    pub async fn enable_audit(&self, entry: audit::AuditEntry) -> Result<()> {
        let active = self.active()?;
        let _guard = active.mount_lock.lock().await;
        if self.audit.device(&entry.path).is_some() {
            return Err(Error::bad(format!("path already in use: {}", entry.path)));
        }
        let root = self.root_view();
        let device = AuditBroker::build(entry.clone(), &root.sub(AUDIT_KEYS)).await?;
        let mut table: Vec<audit::AuditEntry> =
            root.get_json(AUDIT_TABLE).await?.unwrap_or_default();
        table.push(entry);
        root.put_json(AUDIT_TABLE, &table).await?;
        self.audit.add(device);
        Ok(())
    }

    /// Disables an API-enabled audit device.
    pub async fn disable_audit(&self, path: &str) -> Result<()> {
        let active = self.active()?;
        let _guard = active.mount_lock.lock().await;
        let path = format!("{}/", path.trim_end_matches('/'));
        if self
            .audit
            .device(&path)
            .is_some_and(|d| d.entry.from_config)
        {
            return Err(Error::bad(format!(
                "audit device {path} is declared in the server config; remove it there"
            )));
        }
        let root = self.root_view();
        let mut table: Vec<audit::AuditEntry> =
            root.get_json(AUDIT_TABLE).await?.unwrap_or_default();
        table.retain(|e| e.path != path);
        root.put_json(AUDIT_TABLE, &table).await?;
        self.audit.remove(&path);
        Ok(())
    }

    fn default_mounts(&self, table: &str) -> Vec<MountEntry> {
        let mk = |path: &str, kind: &str, description: &str| MountEntry {
            path: path.into(),
            kind: kind.into(),
            description: description.into(),
            uuid: crate::util::uuid(),
            accessor: format!("{kind}_{}", &random_alnum(8).to_lowercase()),
            config: MountConfig::default(),
            options: Default::default(),
            local: kind == "cubbyhole",
            seal_wrap: false,
            external_entropy_access: false,
            table: table.into(),
        };
        if table == "auth" {
            vec![mk("token/", "token", "token based credentials")]
        } else {
            vec![
                mk(
                    "sys/",
                    "system",
                    "system endpoints used for control, policy and debugging",
                ),
                mk("identity/", "identity", "identity store"),
                mk(
                    "cubbyhole/",
                    "cubbyhole",
                    "per-token private secret storage",
                ),
            ]
        }
    }

    /// The stored mount table `table` (`mounts` or `auth`).
    async fn load_table(&self, table: &str) -> Result<Vec<MountEntry>> {
        Ok(self
            .root_view()
            .get_json(&format!("core/{table}"))
            .await?
            .unwrap_or_default())
    }

    async fn store_table(&self, table: &str, entries: &[MountEntry]) -> Result<()> {
        self.root_view()
            .put_json(&format!("core/{table}"), &entries)
            .await
    }

    /// A backend instance for a mount entry.
    pub fn build_backend(
        &self,
        entry: &MountEntry,
        tokens: &Arc<TokenStore>,
        identity: &Arc<IdentityStore>,
    ) -> Result<Arc<dyn Backend>> {
        match entry.kind.as_str() {
            "system" => Ok(Arc::new(crate::sys::backend(self.me.clone()))),
            "identity" => Ok(Arc::new(crate::identity::backend(identity.clone()))),
            "token" => Ok(Arc::new(
                TokenBackend {
                    store: tokens.clone(),
                    limits: self.system_ttl_limits(),
                    identity: identity.clone(),
                }
                .backend(),
            )),
            "cubbyhole" => Ok(Arc::new(crate::cubbyhole::backend())),
            kind => {
                let registry = if entry.table == "auth" {
                    &self.registry.auth
                } else {
                    &self.registry.secrets
                };
                let factory = registry.get(kind).ok_or_else(|| {
                    Error::bad(format!("plugin not found in the catalog: {kind}"))
                })?;
                factory(entry)
            }
        }
    }

    /// Mounts a new secrets engine or auth method and persists the table.
    pub async fn mount(&self, mut entry: MountEntry) -> Result<()> {
        let active = self.active()?;
        let _guard = active.mount_lock.lock().await;
        if !entry.path.ends_with('/') {
            entry.path.push('/');
        }
        let prefix = entry.route_prefix();
        for reserved in ["sys/", "auth/", "cubbyhole/", "identity/"] {
            if entry.table == "mounts"
                && (prefix.starts_with(reserved) || reserved.starts_with(prefix.as_str()))
            {
                return Err(Error::bad(format!(
                    "cannot mount at {prefix:?}: the path is reserved"
                )));
            }
        }
        if let Some(existing) = active.router.read().conflicts(&prefix) {
            return Err(Error::bad(format!("path is already in use at {existing}")));
        }
        let backend = self.build_backend(&entry, &active.tokens, &active.identity)?;
        backend
            .initialize(&View::new(self.barrier.clone(), entry.storage_prefix()))
            .await?;
        let mut entries = self.load_table(&entry.table).await?;
        entries.push(entry.clone());
        self.store_table(&entry.table, &entries).await?;
        active.router.write().insert(entry, backend, &self.metrics);
        Ok(())
    }

    /// Unmounts and deletes the mount's data.
    pub async fn unmount(&self, table: &str, path: &str) -> Result<()> {
        let active = self.active()?;
        let _guard = active.mount_lock.lock().await;
        let path = with_slash(path);
        let root = View::new(self.barrier.clone(), "");
        let mut entries = self.load_table(table).await?;
        let Some(pos) = entries.iter().position(|e| e.path == path) else {
            return Ok(()); // Vault answers 204 for a path that is not mounted.
        };
        let entry = entries.remove(pos);
        if matches!(
            entry.kind.as_str(),
            "system" | "token" | "cubbyhole" | "identity"
        ) {
            return Err(Error::bad(format!("cannot unmount {path:?}")));
        }
        // Its secrets end with it: revoke every lease it issued (force: the backend is going).
        active
            .leases
            .revoke_prefix(&entry.route_prefix(), true)
            .await?;
        self.store_table(table, &entries).await?;
        active.router.write().remove(&entry.route_prefix());
        root.clear(&entry.storage_prefix()).await?;
        if table == "auth" {
            // Its aliases go with it; the entities stay (as in Vault).
            active.identity.purge_mount(&entry.accessor).await?;
        }
        Ok(())
    }

    /// Moves a mount to a new path; its data (keyed by the mount's uuid) stays where it is.
    pub async fn remount(&self, from: &str, to: &str) -> Result<()> {
        let active = self.active()?;
        let _guard = active.mount_lock.lock().await;
        let split = |p: &str| -> (String, String) {
            let p = format!("{}/", p.trim_matches('/'));
            match p.strip_prefix("auth/") {
                Some(rest) => ("auth".to_string(), rest.to_string()),
                None => ("mounts".to_string(), p),
            }
        };
        let ((table, from), (to_table, to)) = (split(from), split(to));
        if table != to_table {
            return Err(Error::bad(
                "cannot remount between secrets engines and auth methods",
            ));
        }
        let mut entries = self.load_table(&table).await?;
        let pos = entries
            .iter()
            .position(|e| e.path == from)
            .ok_or_else(|| Error::bad(format!("no mount at {from:?}")))?;
        if matches!(
            entries[pos].kind.as_str(),
            "system" | "token" | "cubbyhole" | "identity"
        ) {
            return Err(Error::bad(format!("cannot remount {from:?}")));
        }
        let mut moved = entries[pos].clone();
        moved.path = to.clone();
        let new_prefix = moved.route_prefix();
        if let Some(existing) = active.router.read().conflicts(&new_prefix) {
            return Err(Error::bad(format!("path is already in use at {existing}")));
        }
        let old_prefix = entries[pos].route_prefix();
        entries[pos] = moved.clone();
        self.store_table(&table, &entries).await?;
        let mut router = active.router.write();
        if let Some(route) = router.remove(&old_prefix) {
            router.insert(moved, route.backend, &self.metrics);
        }
        Ok(())
    }

    /// Changes a mount's tunable config and persists it.
    pub async fn tune(
        &self,
        table: &str,
        path: &str,
        f: impl FnOnce(&mut MountEntry) -> Result<()>,
    ) -> Result<()> {
        let active = self.active()?;
        let _guard = active.mount_lock.lock().await;
        let path = with_slash(path);
        let mut entries = self.load_table(table).await?;
        let entry = entries
            .iter_mut()
            .find(|e| e.path == path)
            .ok_or_else(|| Error::bad(format!("no mount at {path:?}")))?;
        f(entry)?;
        let entry = entry.clone();
        self.store_table(table, &entries).await?;
        let mut router = active.router.write();
        if let Some(route) = router.get(&entry.route_prefix()).cloned() {
            router.insert(entry, route.backend, &self.metrics);
        }
        Ok(())
    }

    /// The mount entries of one table.
    pub fn mounts(&self, table: &str) -> Result<Vec<MountEntry>> {
        let active = self.active_or_standby()?;
        let router = active.router.read();
        let mut v: Vec<MountEntry> = router
            .routes()
            .iter()
            .filter(|r| r.entry.table == table)
            .map(|r| (*r.entry).clone())
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(v)
    }

    /// The sorted names of the built-in plugins of one catalog type (`auth`, `database`,
    /// `secret`).
    pub fn plugin_names(&self, kind: &str) -> Vec<String> {
        let mut names: Vec<String> = match kind {
            "auth" => self.registry.auth.keys().cloned().collect(),
            "secret" => self.registry.secrets.keys().cloned().collect(),
            "database" => self.registry.database_plugins.clone(),
            _ => Vec::new(),
        };
        names.sort();
        names
    }

    /// Resolves the caller's token and ACL; `Err(PermissionDenied)` for a missing or bad token.
    pub async fn authenticate(&self, token: Option<&str>, remote: Option<&str>) -> Result<Caller> {
        let active = self.active_or_standby()?;
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(Error::PermissionDenied)?;
        let entry = active
            .tokens
            .lookup(token)
            .await?
            .ok_or_else(|| Error::Forbidden("permission denied".into()))?;
        if !entry.allows_address(remote) {
            return Err(Error::PermissionDenied);
        }
        let acl = self.acl_for(&entry).await?;
        Ok(Caller {
            token: token.to_string(),
            entry,
            acl,
        })
    }

    /// A token's effective ACL. The entity's and its groups' policies join the token's, and
    /// templated policies are expanded for that entity; a disabled entity's tokens are refused.
    pub async fn acl_for(
        &self,
        entry: &crate::token::TokenEntry,
    ) -> Result<Arc<crate::policy::Acl>> {
        let active = self.active_or_standby()?;
        if entry.entity_id.is_empty() {
            return active.policies.acl(&entry.policies, None).await;
        }
        let mut names = entry.policies.clone();
        names.extend(active.identity.policies(&entry.entity_id).await?);
        names.sort();
        names.dedup();
        active
            .policies
            .acl(&names, Some((&entry.entity_id, &active.identity)))
            .await
    }

    /// The whole barrier, unscoped (for core-owned records).
    pub fn root_view(&self) -> View {
        View::new(self.barrier.clone(), "")
    }

    /// Handles one request end to end.
    pub async fn handle(&self, mut req: Request) -> Result<Response> {
        let started = std::time::Instant::now();
        req.path = normalize_path(&req.path)?;
        if req.operation == Operation::List && !req.path.ends_with('/') && !req.path.is_empty() {
            req.path.push('/');
        }
        let mut ctx = audit::Context::default();
        let mut used_up = None;
        let mut on_standby = false;
        let mut result = self
            .dispatch(&req, &mut ctx, &mut used_up, &mut on_standby)
            .await;
        if on_standby && matches!(result, Err(Error::Standby(None))) {
            // A standby's read wanted to write, which the storage refused before anything
            // was stored: the whole request goes to the active node. (On a node that lost
            // its lease mid-request the error stays: some of it may have been stored.)
            result = Err(self.standby_error());
        }
        if let (Some(hash), Ok(active)) = (used_up, self.active()) {
            // The request spent its token's last use: the token goes now that the request is
            // done (with any lease it created), as in Vault. It is already marked used up, so
            // a failure here (or a seal by the request itself) leaves it unusable, only not
            // yet cleaned away.
            if let Err(e) = Box::pin(active.tokens.revoke_tree(&hash)).await {
                tracing::warn!(error = %e, "revoking a used-up token failed");
            }
        }
        if let (Some(ttl), Ok(resp)) = (req.wrap_ttl, &result) {
            if resp.raw.is_none() && !resp.is_empty() {
                let resp = std::mem::take(result.as_mut().expect("checked ok"));
                // Boxed, like the other rare branches below: an inline sub-future would make
                // every request's future as large as the largest of them.
                result = Box::pin(crate::sys::wrapping::wrap(self, resp, ttl, &req.path)).await;
            }
        }
        // A request sent on to the active node is audited (and measured) there.
        let sent_on = matches!(result, Err(Error::Standby(Some(_))));
        if !sent_on {
            let took = started.elapsed();
            let login =
                req.path.starts_with("auth/") && result.as_ref().is_ok_and(|r| r.auth.is_some());
            if login {
                self.metrics.handle_login_request.observe(took);
            } else {
                self.metrics.handle_request.observe(took);
            }
            if let Some(route) = &ctx.route_metrics {
                route.observe(req.operation, took);
            }
            if let (Ok(resp), Some(mount)) = (&result, &ctx.mount) {
                if let Some(auth) = &resp.auth {
                    self.metrics.count_event(
                        "vault.token.creation",
                        &[
                            ("auth_method", &mount.kind),
                            ("mount_point", &mount.route_prefix()),
                            (
                                "creation_ttl",
                                crate::metrics::ttl_bucket(auth.lease_duration),
                            ),
                            ("token_type", &auth.token_type),
                        ],
                    );
                }
            }
        }
        if self.audit.is_enabled() && !ctx.seal_api && !sent_on && !ctx.unaudited {
            // Fail closed: if no device can record the request or its answer, the client gets
            // a 500 and nothing else.
            let error = result.as_ref().err().map(|e| e.to_string());
            if !ctx.request_logged {
                self.audit_log("request", &req, &ctx, None, error.as_deref())
                    .await?;
            }
            self.audit_log(
                "response",
                &req,
                &ctx,
                result.as_ref().ok(),
                error.as_deref(),
            )
            .await?;
        }
        if !sent_on {
            log_request(&req, &ctx, &result, started.elapsed());
        }
        let mut resp = result?;
        if resp.request_id.is_empty() {
            resp.request_id = req.id.clone();
        }
        if let Some(a) = ctx.rate_limit {
            resp.rate_limit = Some(Box::new(a));
        }
        Ok(resp)
    }

    /// Writes an audit entry (`vault.audit.log_request`/`log_response`, and their failures).
    async fn audit_log(
        &self,
        kind: &str,
        req: &Request,
        ctx: &audit::Context,
        resp: Option<&Response>,
        error: Option<&str>,
    ) -> Result<()> {
        if !self.audit.is_enabled() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let written = self.audit.log(kind, req, ctx, resp, error).await;
        let (timer, failures) = if kind == "request" {
            (
                &self.metrics.audit_log_request,
                &self.metrics.audit_log_request_failure,
            )
        } else {
            (
                &self.metrics.audit_log_response,
                &self.metrics.audit_log_response_failure,
            )
        };
        timer.observe(started.elapsed());
        if written.is_err() {
            failures.inc();
        }
        written
    }

    /// Routes, authenticates, authorizes and runs one request. A request that spends its
    /// token's last use sets `used_up` to the token's hash, for [`Core::handle`] to revoke;
    /// one served from a standby's state sets `on_standby`.
    async fn dispatch(
        &self,
        req: &Request,
        ctx: &mut audit::Context,
        used_up: &mut Option<String>,
        on_standby: &mut bool,
    ) -> Result<Response> {
        // The seal API answers whether sealed or not.
        if let Some(rel) = req.path.strip_prefix("sys/") {
            if crate::sys::seal::handles(rel) {
                ctx.seal_api = true;
                let call = self.call(
                    req,
                    rel.to_string(),
                    None,
                    Arc::new(seal_api_entry()),
                    View::new(self.barrier.clone(), "sys/"),
                );
                return self.seal_api.handle(call).await;
            }
        }
        // A standby serves what it may from its read-only state; the rest goes to the active
        // node (see `standby.rs`).
        let active = match self.active() {
            Ok(a) => a,
            // As Vault: sealing is for the node asked, and a standby is not sealed this way
            // (forwarded, it would seal the active node).
            Err(Error::Standby(_)) if req.path == "sys/seal" => {
                return Err(Error::bad(
                    "vault cannot seal when in standby mode; please restart instead",
                ))
            }
            // About this node, never another's (Vault's local-only requests): served from
            // the standby's own state, whatever the operation.
            Err(Error::Standby(_)) if local_only(&req.path) => {
                let state = self.standby.read().clone().ok_or_else(|| {
                    Error::bad("cannot forward local-only request: this standby serves no requests itself (performance standby disabled or not ready)")
                })?;
                *on_standby = true;
                state
            }
            Err(e @ Error::Standby(_)) => {
                let state = self.standby_state_for(req).await.ok_or(e)?;
                *on_standby = true;
                state
            }
            Err(e) => return Err(e),
        };
        let on_standby = *on_standby;
        // Rate-limit quotas, per client address, before anything else is spent on it. A login
        // to a mount with a role quota first learns which role it asks for.
        let role = if active.quotas.wants_role(&req.path) {
            Box::pin(self.login_role(&active, req)).await
        } else {
            None
        };
        match active.quotas.check(
            &req.path,
            req.remote_addr.as_deref().unwrap_or(""),
            role.as_deref(),
        ) {
            // Headers only when `sys/quotas/config` asks for them.
            Ok(allowance) => {
                ctx.rate_limit = allowance.filter(|_| active.quotas.response_headers())
            }
            Err(e) => {
                ctx.unaudited = !active.quotas.audit_refused();
                return Err(e);
            }
        }
        let (route, rel) = {
            let router = active.router.read();
            let (route, rel) = router.route(&req.path).ok_or_else(|| {
                Error::UnsupportedPath(format!(
                    "no handler for route \"{}\". route entry not found.",
                    req.path
                ))
            })?;
            (route.clone(), rel)
        };
        let backend = route.backend.clone();
        if on_standby && !backend.reads_on_standby() {
            return Err(self.standby_error());
        }
        ctx.mount = Some(route.entry.clone());
        ctx.route_metrics = Some(route.metrics.clone());
        let view = View::new(self.barrier.clone(), route.storage_prefix.clone());
        let unauthenticated = path_matches_any(backend.unauthenticated_paths(), &rel);
        // Unauthenticated paths (logins) still learn who is calling when a token comes along.
        let token = req.token.as_deref().filter(|t| !t.is_empty());
        let caller = if unauthenticated && token.is_none() {
            None
        } else {
            match self.authenticate(token, req.remote_addr.as_deref()).await {
                Ok(c) => Some(c),
                Err(_) if unauthenticated => None,
                Err(e) => return Err(e),
            }
        };
        ctx.caller = caller.clone();
        let sudo = path_matches_any(backend.sudo_paths(), &rel);
        let mut call = self.call(req, rel, caller, route.entry.clone(), view);
        // Create vs update: backends may act on it (transit upserts a key only on create), so
        // the existence check runs whenever the path declares one.
        if call.operation == Operation::Update
            && !unauthenticated
            && backend.exists(&call).await? == Some(false)
        {
            call.operation = Operation::Create;
        }
        if let (false, Some(c)) = (unauthenticated, &call.caller) {
            c.acl
                .check_wrapped(&req.path, call.operation, &req.data, sudo, req.wrap_ttl)?;
            if c.entry.num_uses > 0 {
                // Spending a use is a write: the active node's.
                if on_standby {
                    return Err(self.standby_error());
                }
                match Box::pin(active.tokens.use_token(&c.entry)).await? {
                    Use::Granted => {}
                    Use::Exhausted => return Err(Error::PermissionDenied),
                    Use::Last => *used_up = Some(c.entry.hash.clone()),
                }
            }
        }
        // The request is on record before anything happens.
        self.audit_log("request", req, ctx, None, None).await?;
        ctx.request_logged = true;
        let mut resp = backend.handle(call).await?;
        if on_standby && (resp.secret.is_some() || resp.login.is_some()) {
            // A lease or a token to store: the backend stored nothing itself (it would have
            // failed), so the active node runs the request again in full.
            return Err(self.standby_error());
        }
        resp.mount_type = route.entry.kind.clone();
        if let Some(mut secret) = resp.secret.take() {
            // A lease belongs to the token that asked; a batch token's to its parent (none for
            // an orphan), and it ends no later than the batch token.
            let owner = match ctx.caller.as_ref().map(|c| &c.entry) {
                Some(e) if e.batch => {
                    let left = e.ttl_remaining(crate::util::unix_now()).max(1) as u64;
                    let max = match secret.max_ttl.as_secs() {
                        0 => left,
                        m => m.min(left),
                    };
                    secret.max_ttl = std::time::Duration::from_secs(max);
                    e.parent.clone()
                }
                Some(e) => e.hash.clone(),
                None => String::new(),
            };
            resp.lease = Some(Box::new(
                Box::pin(
                    active
                        .leases
                        .register(&route.entry, &req.path, &owner, *secret),
                )
                .await?,
            ));
        }
        if let Some(grant) = resp.login.take() {
            resp.auth = Some(Box::new(
                Box::pin(self.issue_login_token(&active, &route.entry, &req.path, *grant)).await?,
            ));
        }
        Ok(resp)
    }

    /// The role a login request asks for, as its auth method names it (for role quotas).
    async fn login_role(&self, active: &Active, req: &Request) -> Option<String> {
        let (route, rel) = {
            let router = active.router.read();
            let (route, rel) = router.route(&req.path)?;
            (route.clone(), rel)
        };
        if route.entry.table != "auth" || !route.backend.resolves_roles() {
            return None;
        }
        let view = View::new(self.barrier.clone(), route.storage_prefix.clone());
        let call = self.call(req, rel, None, route.entry.clone(), view);
        route.backend.resolve_role(&call).await
    }

    fn call(
        &self,
        req: &Request,
        rel: String,
        caller: Option<Caller>,
        mount: Arc<MountEntry>,
        storage: View,
    ) -> Call {
        Call {
            operation: req.operation,
            path: rel,
            fields: FieldData::default(),
            data: req.data.clone(),
            storage,
            caller,
            request_id: req.id.clone(),
            remote_addr: req.remote_addr.clone(),
            wrap_ttl: req.wrap_ttl,
            client_certs: req.client_certs.clone(),
            ttl_limits: self.system_ttl_limits().for_mount(&mount.config),
            mount,
        }
    }

    /// Turns a successful login into a token, with TTLs bounded by the mount and the system.
    async fn issue_login_token(
        &self,
        active: &Active,
        mount: &MountEntry,
        path: &str,
        grant: crate::logical::LoginGrant,
    ) -> Result<crate::logical::Auth> {
        // The grant's max TTL and explicit max both bound the token; its period is capped
        // like its TTL, by them and the mount's max.
        let explicit_max = [grant.explicit_max_ttl, grant.max_ttl]
            .into_iter()
            .flatten()
            .map(|d| d.as_secs())
            .filter(|s| *s > 0)
            .min()
            .unwrap_or(0);
        let granted = self.system_ttl_limits().for_mount(&mount.config).calculate(
            grant.ttl.map(|d| d.as_secs()).unwrap_or(0),
            grant.period.map(|d| d.as_secs()).unwrap_or(0),
            explicit_max,
        );
        let (ttl, period) = (granted.ttl, granted.period);
        let mount_type = mount.config.token_type.as_deref().unwrap_or_default();
        let batch = TokenType::parse(mount_type)
            .unwrap_or(TokenType::DefaultService)
            .batch_for_login(TokenType::parse(&grant.token_type).unwrap_or(TokenType::Default));
        if batch && grant.num_uses > 0 {
            // Vault drops the limit silently; a batch token cannot count uses, so refusing is
            // the only way not to hand out more than the role allows.
            return Err(Error::bad(
                "batch tokens cannot have a use limit: the role sets token_num_uses",
            ));
        }
        let policies = sanitize_policies(grant.policies, !grant.no_default_policy);
        // Every login resolves to one entity (created on first login), through its alias.
        let entity_id = match grant.alias_name.as_deref().filter(|a| !a.is_empty()) {
            Some(alias) => {
                active
                    .identity
                    .resolve_login(mount, alias, &grant.alias_metadata, &grant.group_aliases)
                    .await?
            }
            None => String::new(),
        };
        let (token, entry) = active
            .tokens
            .create(TokenParams {
                id: None,
                parent_hash: String::new(),
                policies: policies.clone(),
                path: path.to_string(),
                meta: grant.metadata.clone(),
                display_name: format!(
                    "{}-{}",
                    mount.path.trim_end_matches('/'),
                    grant.display_name
                )
                .trim_end_matches('-')
                .to_string(),
                num_uses: grant.num_uses as i64,
                ttl,
                // Renewals stop at the tighter of the two ceilings (a batch token has its
                // TTL, already bounded by them, and never renews).
                explicit_max_ttl: if batch { 0 } else { explicit_max },
                period: if batch { 0 } else { period },
                renewable: grant.renewable && !batch,
                entity_id: entity_id.clone(),
                role: String::new(),
                bound_cidrs: grant.bound_cidrs.clone(),
                batch,
            })
            .await?;
        let identity_policies = if entity_id.is_empty() {
            Vec::new()
        } else {
            active.identity.policies(&entity_id).await?
        };
        let mut all_policies = policies.clone();
        all_policies.extend(identity_policies.iter().cloned());
        all_policies.sort();
        all_policies.dedup();
        Ok(crate::logical::Auth {
            client_token: token,
            accessor: entry.accessor.clone(),
            policies: all_policies,
            token_policies: policies,
            identity_policies: if identity_policies.is_empty() {
                None
            } else {
                Some(identity_policies)
            },
            metadata: Some(grant.metadata),
            lease_duration: ttl,
            renewable: entry.renewable,
            entity_id,
            token_type: entry.type_name().into(),
            orphan: true,
            mfa_requirement: None,
            num_uses: grant.num_uses,
        })
    }
}

/// A mount path with its trailing `/`.
fn with_slash(path: &str) -> String {
    if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

fn seal_api_entry() -> MountEntry {
    MountEntry {
        path: "sys/".into(),
        kind: "system".into(),
        description: String::new(),
        uuid: String::new(),
        accessor: String::new(),
        config: MountConfig::default(),
        options: Default::default(),
        local: false,
        seal_wrap: false,
        external_entropy_access: false,
        table: "mounts".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalization_refuses_traversal() {
        assert_eq!(normalize_path("/secret/data/x").unwrap(), "secret/data/x");
        assert!(normalize_path("secret/../sys/raw").is_err());
        assert!(normalize_path("secret/./x").is_err());
        assert!(normalize_path("secret//x").is_err());
    }
}
