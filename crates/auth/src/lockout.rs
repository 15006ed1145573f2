//! Vault's user lockout, for both auth methods: after `lockout_threshold` failed logins (default
//! 5) of one alias (a userpass username, an AppRole `role_id`), each within
//! `lockout_counter_reset_duration` (default 15m) of the previous one, further logins of that
//! alias are refused with 403 for `lockout_duration` (default 15m), even with the right
//! credentials. A successful login resets the counter. Only bad credentials count: a login
//! refused for its source address does not.
//!
//! Deviations from Vault, and why:
//! * Configuration: Vault sets this per mount through `sys/auth/:path/tune`
//!   (`user_lockout_config`) or the server config. Tuning is the core's; here the same four
//!   settings live in the backend at `config/lockout` (`lockout_threshold`, `lockout_duration`,
//!   `lockout_counter_reset_duration`, `lockout_disable`: the names of Vault's
//!   `user_lockout_config` object).
//! * Inspection and unlock: Vault has `sys/locked-users` and
//!   `sys/locked-users/:mount_accessor/unlock/:alias_identifier`. Here each mount answers
//!   `locked-users` (READ and LIST) and `locked-users/unlock/:alias_identifier` (UPDATE).
//! * Unknown aliases: OpenBao tracks failures of existing users only, so after N failures a
//!   real username answers 403 and an unknown one still 400, which tells an attacker which
//!   usernames exist. Here unknown aliases are tracked too (in memory only, bounded), so both
//!   answer the same.
//! * Concurrency: a login in progress counts against the threshold, so a burst of parallel
//!   guesses cannot all be checked before the first failures are recorded.
//!
//! State: every record lives in memory; records of real users/roles are also written (encrypted)
//! under `lockout/<HMAC(alias)>` so a lock survives a restart or a seal, and reloaded on first
//! use.

use crate::salt::Salt;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::OnceCell;
use tresor_core::barrier::View;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::util::{rfc3339, unix_now};
use tresor_core::{Error, Result};

/// Most in-memory records kept for aliases that are not persisted (unknown users).
const MAX_VOLATILE: usize = 10_000;
const CONFIG_KEY: &str = "config/lockout";

/// The lockout settings of one mount (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutConfig {
    pub lockout_threshold: u64,
    pub lockout_duration: u64,
    pub lockout_counter_reset_duration: u64,
    pub lockout_disable: bool,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            lockout_threshold: 5,
            lockout_duration: 900,
            lockout_counter_reset_duration: 900,
            lockout_disable: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    alias: String,
    failed: u64,
    last_failure: i64,
    locked_since: Option<i64>,
    /// Logins of this alias being checked right now.
    #[serde(skip)]
    in_flight: u64,
    /// Whether the record is written to storage (the alias is a real user or role).
    #[serde(skip)]
    persist: bool,
}

impl Record {
    fn new(alias: &str) -> Self {
        Record {
            alias: alias.to_string(),
            failed: 0,
            last_failure: 0,
            locked_since: None,
            in_flight: 0,
            persist: false,
        }
    }
    fn is_idle(&self) -> bool {
        self.failed == 0 && self.locked_since.is_none() && self.in_flight == 0
    }
    /// Forgets a lock that has run out and failures older than the counter reset.
    fn expire(&mut self, cfg: &LockoutConfig, now: i64) {
        if let Some(t) = self.locked_since {
            if now >= t + cfg.lockout_duration as i64 {
                self.locked_since = None;
                self.failed = 0;
            }
        }
        if self.locked_since.is_none()
            && self.failed > 0
            && now >= self.last_failure + cfg.lockout_counter_reset_duration as i64
        {
            self.failed = 0;
        }
    }
}

/// The lockout state of one mount.
#[derive(Default)]
pub struct Lockout {
    records: Mutex<HashMap<String, Record>>,
    loaded: OnceCell<()>,
    config: RwLock<Option<LockoutConfig>>,
    /// Orders storage writes of records, so the last write is the latest state.
    persist_lock: tokio::sync::Mutex<()>,
    /// Signalled whenever an attempt ends: logins waiting for a free slot re-check.
    finished: tokio::sync::Notify,
}

/// How long a login waits for a slot under the failure budget before giving up.
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One login being checked; report how it ended with [`Attempt::fail`] or [`Attempt::succeed`].
/// Dropping it without either (the login failed for another reason) counts nothing.
pub struct Attempt {
    lockout: Arc<Lockout>,
    alias: String,
    threshold: u64,
    finished: bool,
}

impl Lockout {
    /// The mount's settings (defaults until `config/lockout` is written).
    pub async fn config(&self, view: &View) -> Result<LockoutConfig> {
        if let Some(c) = *self.config.read() {
            return Ok(c);
        }
        let c = view
            .get_json::<LockoutConfig>(CONFIG_KEY)
            .await?
            .unwrap_or_default();
        *self.config.write() = Some(c);
        Ok(c)
    }

    async fn set_config(&self, view: &View, c: Option<LockoutConfig>) -> Result<()> {
        match c {
            Some(c) => view.put_json(CONFIG_KEY, &c).await?,
            None => view.delete(CONFIG_KEY).await?,
        }
        *self.config.write() = Some(c.unwrap_or_default());
        Ok(())
    }

    async fn load(&self, view: &View) -> Result<()> {
        self.loaded
            .get_or_try_init(|| async {
                let mut loaded = Vec::new();
                for k in view.list("lockout/").await? {
                    if let Some(mut r) = view.get_json::<Record>(&format!("lockout/{k}")).await? {
                        r.persist = true;
                        loaded.push(r);
                    }
                }
                let mut map = self.records.lock();
                for r in loaded {
                    map.entry(r.alias.clone()).or_insert(r);
                }
                Ok::<(), Error>(())
            })
            .await?;
        Ok(())
    }

    /// Starts a login of `alias`: `Err(PermissionDenied)` when it is locked out, `Ok(None)` when
    /// lockout is disabled.
    ///
    /// At most (threshold - failures so far) logins of one alias are checked at once, so a burst
    /// of parallel guesses cannot exceed the failure budget; further logins wait for one of
    /// those to finish (bounded), rather than being refused, so many clients sharing a role or
    /// user all get in.
    pub async fn begin(self: &Arc<Self>, view: &View, alias: &str) -> Result<Option<Attempt>> {
        let cfg = self.config(view).await?;
        if cfg.lockout_disable {
            return Ok(None);
        }
        self.load(view).await?;
        let deadline = tokio::time::Instant::now() + SLOT_WAIT;
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            // Register interest before looking, so an attempt ending in between is not missed.
            notified.as_mut().enable();
            {
                let now = unix_now();
                let mut map = self.records.lock();
                if !map.contains_key(alias) && map.len() >= MAX_VOLATILE {
                    evict(&mut map, &cfg, now);
                }
                let r = map
                    .entry(alias.to_string())
                    .or_insert_with(|| Record::new(alias));
                r.expire(&cfg, now);
                if r.locked_since.is_some() || r.failed >= cfg.lockout_threshold {
                    return Err(Error::PermissionDenied);
                }
                if r.failed + r.in_flight < cfg.lockout_threshold {
                    r.in_flight += 1;
                    return Ok(Some(Attempt {
                        lockout: self.clone(),
                        alias: alias.to_string(),
                        threshold: cfg.lockout_threshold,
                        finished: false,
                    }));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::PermissionDenied);
            }
        }
    }

    async fn save(&self, view: &View, salt: &Salt, alias: &str) -> Result<()> {
        let key = format!("lockout/{}", salt.hmac(view, alias).await?);
        let _order = self.persist_lock.lock().await;
        let snapshot = self
            .records
            .lock()
            .get(alias)
            .filter(|r| r.persist && (r.failed > 0 || r.locked_since.is_some()))
            .cloned();
        match snapshot {
            Some(r) => view.put_json(&key, &r).await,
            None => view.delete(&key).await,
        }
    }

    /// Clears any failures and lock of `alias` (operator unlock, user or role deleted).
    pub async fn unlock(&self, view: &View, salt: &Salt, alias: &str) -> Result<()> {
        self.load(view).await?;
        {
            let mut map = self.records.lock();
            if let Some(r) = map.get_mut(alias) {
                r.failed = 0;
                r.locked_since = None;
                if r.in_flight == 0 {
                    map.remove(alias);
                }
            }
        }
        self.save(view, salt, alias).await
    }

    /// The aliases locked out right now: (alias, failed attempts, locked since).
    pub async fn locked(&self, view: &View) -> Result<Vec<(String, u64, i64)>> {
        let cfg = self.config(view).await?;
        self.load(view).await?;
        let now = unix_now();
        let mut out: Vec<(String, u64, i64)> = self
            .records
            .lock()
            .values_mut()
            .filter_map(|r| {
                r.expire(&cfg, now);
                r.locked_since.map(|t| (r.alias.clone(), r.failed, t))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

/// Drops idle or expired volatile records; if still full, the oldest volatile ones.
fn evict(map: &mut HashMap<String, Record>, cfg: &LockoutConfig, now: i64) {
    map.retain(|_, r| {
        r.expire(cfg, now);
        r.persist || !r.is_idle()
    });
    if map.len() >= MAX_VOLATILE {
        let mut volatile: Vec<(i64, String)> = map
            .values()
            .filter(|r| !r.persist && r.in_flight == 0)
            .map(|r| (r.last_failure, r.alias.clone()))
            .collect();
        volatile.sort();
        for (_, a) in volatile.into_iter().take(MAX_VOLATILE / 10) {
            map.remove(&a);
        }
    }
}

impl Attempt {
    /// Bad credentials: counts a failure; at the threshold the alias is locked. `persist` says
    /// whether the alias is real (its record is then stored).
    pub async fn fail(mut self, view: &View, salt: &Salt, persist: bool) -> Result<()> {
        self.finished = true;
        let now = unix_now();
        {
            let mut map = self.lockout.records.lock();
            let r = map
                .entry(self.alias.clone())
                .or_insert_with(|| Record::new(&self.alias));
            r.in_flight = r.in_flight.saturating_sub(1);
            r.failed += 1;
            r.last_failure = now;
            r.persist |= persist;
            if r.failed >= self.threshold {
                r.locked_since = Some(now);
            }
        }
        self.lockout.finished.notify_waiters();
        if persist {
            self.lockout.save(view, salt, &self.alias).await?;
        }
        Ok(())
    }

    /// A successful login: the failure counter starts over.
    pub async fn succeed(mut self, view: &View, salt: &Salt) -> Result<()> {
        self.finished = true;
        let had = {
            let mut map = self.lockout.records.lock();
            let Some(r) = map.get_mut(&self.alias) else {
                drop(map);
                self.lockout.finished.notify_waiters();
                return Ok(());
            };
            r.in_flight = r.in_flight.saturating_sub(1);
            let had = r.persist && r.failed > 0;
            r.failed = 0;
            r.locked_since = None;
            if r.is_idle() {
                map.remove(&self.alias);
            }
            had
        };
        self.lockout.finished.notify_waiters();
        if had {
            self.lockout.save(view, salt, &self.alias).await?;
        }
        Ok(())
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        {
            let mut map = self.lockout.records.lock();
            if let Some(r) = map.get_mut(&self.alias) {
                r.in_flight = r.in_flight.saturating_sub(1);
                if r.is_idle() {
                    map.remove(&self.alias);
                }
            }
        }
        self.lockout.finished.notify_waiters();
    }
}

/// What a backend must offer to serve the lockout paths.
pub(crate) trait HasLockout: Send + Sync + 'static {
    fn lockout(&self) -> &Arc<Lockout>;
    fn salt(&self) -> &Salt;
}

/// `config/lockout`, `locked-users` and `locked-users/unlock/:alias_identifier`.
pub(crate) fn paths<B: HasLockout>() -> Vec<Path<B>> {
    vec![
        Path::new("config/lockout")
            .field(
                "lockout_threshold",
                Field::int("Failed logins before an alias is locked out (default 5)"),
            )
            .field(
                "lockout_duration",
                Field::duration("How long a lockout lasts (default 15m)"),
            )
            .field(
                "lockout_counter_reset_duration",
                Field::duration(
                    "Quiet time after which the failure counter starts over (default 15m)",
                ),
            )
            .field(
                "lockout_disable",
                Field::bool("Disable user lockout on this mount"),
            )
            .op(Read, read_config::<B>)
            .op(Update, write_config::<B>)
            .op(Delete, |b: Arc<B>, c: Call| async move {
                b.lockout().set_config(&c.storage, None).await?;
                Ok(Response::default())
            })
            .help("User lockout settings of this mount (Vault's user_lockout_config)."),
        Path::new("locked-users/?")
            .op(Read, read_locked::<B>)
            .op(List, list_locked::<B>)
            .help("The aliases locked out on this mount."),
        Path::new("locked-users/unlock/(?P<alias_identifier>.+)")
            .field(
                "alias_identifier",
                Field::string("The username (userpass) or role_id (approle) to unlock"),
            )
            .op(Update, |b: Arc<B>, c: Call| async move {
                b.lockout()
                    .unlock(&c.storage, b.salt(), c.fields.str("alias_identifier"))
                    .await?;
                Ok(Response::default())
            })
            .help("Unlock a locked-out alias."),
    ]
}

async fn read_config<B: HasLockout>(b: Arc<B>, c: Call) -> Result<Response> {
    let cfg = b.lockout().config(&c.storage).await?;
    Ok(Response::data(serde_json::to_value(cfg)?))
}

async fn write_config<B: HasLockout>(b: Arc<B>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let mut cfg = b.lockout().config(&c.storage).await?;
    if f.has("lockout_threshold") {
        let t = f.int("lockout_threshold");
        if t < 1 {
            return Err(Error::bad("lockout_threshold must be at least 1"));
        }
        cfg.lockout_threshold = t as u64;
    }
    if f.has("lockout_duration") {
        cfg.lockout_duration = f.duration("lockout_duration").as_secs();
    }
    if f.has("lockout_counter_reset_duration") {
        cfg.lockout_counter_reset_duration = f.duration("lockout_counter_reset_duration").as_secs();
    }
    if f.has("lockout_disable") {
        cfg.lockout_disable = f.bool("lockout_disable");
    }
    b.lockout().set_config(&c.storage, Some(cfg)).await?;
    Ok(Response::default())
}

async fn read_locked<B: HasLockout>(b: Arc<B>, c: Call) -> Result<Response> {
    let cfg = b.lockout().config(&c.storage).await?;
    let locked = b.lockout().locked(&c.storage).await?;
    let details: serde_json::Map<String, serde_json::Value> = locked
        .iter()
        .map(|(alias, failed, since)| {
            (
                alias.clone(),
                json!({
                    "failed_login_attempts": failed,
                    "locked_since": rfc3339(*since),
                    "unlocks_at": rfc3339(since + cfg.lockout_duration as i64),
                }),
            )
        })
        .collect();
    Ok(Response::data(json!({
        "mount_accessor": c.mount.accessor,
        "counts": locked.len(),
        "alias_identifiers": locked.iter().map(|l| l.0.clone()).collect::<Vec<_>>(),
        "details": details,
    })))
}

async fn list_locked<B: HasLockout>(b: Arc<B>, c: Call) -> Result<Response> {
    let locked = b.lockout().locked(&c.storage).await?;
    if locked.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Response::list(locked.into_iter().map(|l| l.0).collect()))
}
