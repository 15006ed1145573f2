//! The `database` secrets engine: dynamic credentials and password rotation for PostgreSQL and
//! MySQL/MariaDB, with Vault's paths, answer shapes and status codes (hvac's
//! `secrets.database` works unchanged).
//!
//! * [`config`]: `config/:name` (connections), `reset/:name`, `rotate-root/:name`;
//! * [`roles`]: `roles/:name`, dynamic roles;
//! * [`creds`]: `creds/:role` issues a user with a lease; the lease hooks renew it (`VALID
//!   UNTIL`) and revoke it (drop the user) when the lease ends;
//! * [`static_roles`]: `static-roles/:name`, `static-creds/:name`, `rotate-role/:name`;
//! * [`rotate`]: crash-safe password rotation (static roles and the root credential) and the
//!   schedule that drives it from [`Backend::periodic`];
//! * [`schedule`]: cron expressions for `rotation_schedule`;
//! * [`templates`]: `username_template` (the Go-template subset Vault uses);
//! * [`plugins`]: what differs between PostgreSQL and MySQL, and the connection pools.
//!
//! Why sqlx: one pure-Rust crate speaks both PostgreSQL and MySQL/MariaDB (tokio-postgres plus
//! mysql_async would be two protocol stacks, two pool designs and two TLS integrations), it has
//! a pool with a size limit (`max_open_connections`), and its rustls backend runs on aws-lc-rs
//! like the rest of Tresor. Only its runtime parts are used (no macros, no compile-time
//! checks), and statement logging is turned off because statements carry passwords.
//!
//! Storage layout in the mount's view:
//!
//! | key                  | value                                                     |
//! |----------------------|-----------------------------------------------------------|
//! | `config/<name>`      | a connection ([`config::DbConfig`]), with its password    |
//! | `role/<name>`        | a dynamic role ([`roles::Role`])                          |
//! | `static-role/<name>` | a static role ([`static_roles::StaticRole`]) and its password |
//!
//! A password change (static role or root) is written to storage as *pending* before the
//! database is touched, and made current after; a pending change found later (after a crash,
//! or a failed attempt) is resolved by testing which password logs in, and re-applied when that
//! cannot tell, so the stored password never silently differs from the database's.

pub mod config;
pub mod creds;
pub mod plugins;
pub mod roles;
pub mod rotate;
pub mod schedule;
pub mod static_roles;
pub mod templates;

use async_trait::async_trait;
use parking_lot::Mutex;
use plugins::Conn;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Backend, Call, LeaseCall, Path, PathBackend};
use tresor_core::logical::Response;
use tresor_core::mount::MountEntry;

/// Names of configs and roles (Vault's `GenericNameRegex`).
pub const NAME: &str = r"\w(?:[\w.-]*\w)?";

/// One mount's state: connection pools and the rotation schedule.
pub struct Database {
    /// Open pools by config name, with a fingerprint of the settings they were built from.
    conns: tokio::sync::Mutex<HashMap<String, (String, Arc<Conn>)>>,
    mount_uuid: parking_lot::RwLock<String>,
    /// Static role name → when it is next due (unix seconds); pending root rotations are
    /// scheduled as `"\0root/<config>"`.
    schedule: Mutex<BTreeMap<String, i64>>,
    /// The earliest entry of `schedule` (i64::MAX when empty): `periodic` compares only this.
    next_due: AtomicI64,
    /// Failed attempts per schedule entry, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    loaded: AtomicBool,
    /// A periodic batch is running.
    busy: Arc<AtomicBool>,
    /// Serializes password changes, so two rotations never race on one password.
    rotation_lock: tokio::sync::Mutex<()>,
}

impl Database {
    fn new(mount_uuid: &str) -> Database {
        Database {
            conns: tokio::sync::Mutex::new(HashMap::new()),
            mount_uuid: parking_lot::RwLock::new(mount_uuid.to_string()),
            schedule: Mutex::new(BTreeMap::new()),
            next_due: AtomicI64::new(i64::MAX),
            failures: Mutex::new(HashMap::new()),
            loaded: AtomicBool::new(false),
            busy: Arc::new(AtomicBool::new(false)),
            rotation_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Remembers the mount's uuid (it identifies the core for password policy lookups).
    fn seen(&self, c: &Call) {
        if *self.mount_uuid.read() != c.mount.uuid && !c.mount.uuid.is_empty() {
            *self.mount_uuid.write() = c.mount.uuid.clone();
        }
    }

    pub fn mount_uuid(&self) -> String {
        self.mount_uuid.read().clone()
    }

    /// Puts `key` on the schedule at `at` (or takes it off with `None`).
    pub(crate) fn set_due(&self, key: &str, at: Option<i64>) {
        let mut s = self.schedule.lock();
        match at {
            Some(t) => {
                s.insert(key.to_string(), t);
            }
            None => {
                s.remove(key);
                self.failures.lock().remove(key);
            }
        }
        let min = s.values().copied().min().unwrap_or(i64::MAX);
        self.next_due.store(min, Ordering::SeqCst);
    }

    /// The pool for a config, built (or rebuilt after the config changed) on demand.
    pub async fn conn(&self, view: &View, name: &str) -> Result<(config::DbConfig, Arc<Conn>)> {
        let cfg = config::load(view, name)
            .await?
            .ok_or_else(|| config::missing(name))?;
        let conn = self.conn_for(name, &cfg).await?;
        Ok((cfg, conn))
    }

    pub async fn conn_for(&self, name: &str, cfg: &config::DbConfig) -> Result<Arc<Conn>> {
        let spec = cfg.spec()?;
        let fp = tresor_core::util::sha256_hex(
            format!(
                "{}\0{}\0{}\0{}\0{:?}\0{:?}",
                spec.url, spec.username, spec.password, spec.max_open, spec.max_lifetime, spec.kind
            )
            .as_bytes(),
        );
        let mut conns = self.conns.lock().await;
        if let Some((have, c)) = conns.get(name) {
            if *have == fp {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(Conn::new(spec)?);
        if let Some((_, old)) = conns.insert(name.to_string(), (fp, c.clone())) {
            tokio::spawn(async move { old.pool.close().await });
        }
        Ok(c)
    }

    /// Closes and forgets a config's pool.
    pub async fn drop_conn(&self, name: &str) {
        if let Some((_, old)) = self.conns.lock().await.remove(name) {
            old.pool.close().await;
        }
    }
}

/// The mounted engine: the declared paths plus the scheduled work.
pub struct DatabaseBackend {
    paths: PathBackend<Database>,
}

/// Builds the backend for a `database` mount.
pub fn factory(entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    let mut paths: Vec<Path<Database>> = Vec::new();
    paths.extend(config::paths());
    paths.extend(roles::paths());
    paths.extend(creds::paths());
    paths.extend(static_roles::paths());
    let b = PathBackend::new(Database::new(&entry.uuid), paths)
        .help(
            "The database secrets engine generates database credentials dynamically based on \
             configured roles, and rotates the passwords of static database users.",
        )
        .on_revoke(creds::revoke)
        .on_renew(creds::renew);
    Ok(Arc::new(DatabaseBackend { paths: b }))
}

#[async_trait]
impl Backend for DatabaseBackend {
    /// Credentials are made in the database before their lease is stored.
    fn reads_on_standby(&self) -> bool {
        false
    }
    async fn handle(&self, call: Call) -> Result<Response> {
        self.paths.inner().seen(&call);
        self.paths.handle(call).await
    }

    async fn exists(&self, call: &Call) -> Result<Option<bool>> {
        self.paths.exists(call).await
    }

    fn describe(&self) -> Value {
        self.paths.describe()
    }

    /// Loads the rotation schedule. Never touches a database (that would make unseal wait
    /// on one): pending rotations are scheduled now and resolved by `periodic`.
    async fn initialize(&self, storage: &View) -> Result<()> {
        rotate::load_schedule(self.paths.inner(), storage).await
    }

    async fn periodic(&self, storage: &View) -> Result<()> {
        let db = self.paths.inner();
        if !db.loaded.load(Ordering::SeqCst) {
            rotate::load_schedule(db, storage).await?;
        }
        if db.next_due.load(Ordering::SeqCst) > tresor_core::util::unix_now() {
            return Ok(());
        }
        if db.busy.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Rotations talk to databases: run them off the core's periodic loop.
        let db = db.clone();
        let view = storage.clone();
        tokio::spawn(async move {
            rotate::run_due(&db, &view).await;
            db.busy.store(false, Ordering::SeqCst);
        });
        Ok(())
    }

    async fn revoke_secret(&self, lease: LeaseCall) -> Result<()> {
        self.paths.revoke_secret(lease).await
    }

    async fn renew_secret(&self, lease: LeaseCall) -> Result<()> {
        self.paths.renew_secret(lease).await
    }
}

/// `{"keys": [...]}`, or Vault's 404 when there is nothing to list.
pub(crate) fn list_or_404(keys: Vec<String>) -> Result<Response> {
    Response::list_or_not_found(keys)
}

/// Statement lists: a JSON array of strings, a JSON array in a string, a base64-encoded
/// string or array, or one string (Vault accepts all of these). Unlike a comma-split string
/// list, SQL with commas in it stays whole.
pub(crate) fn statements(v: &Value) -> Result<Vec<String>> {
    use base64::Engine;
    let from_str = |s: &str| -> Vec<String> {
        let s = s.trim();
        if s.is_empty() {
            return vec![];
        }
        if s.starts_with('[') {
            if let Ok(list) = serde_json::from_str::<Vec<String>>(s) {
                return list;
            }
        }
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s) {
            if let Ok(text) = String::from_utf8(bytes) {
                let t = text.trim();
                if t.starts_with('[') {
                    if let Ok(list) = serde_json::from_str::<Vec<String>>(t) {
                        return list;
                    }
                }
                if !t.is_empty() && t.chars().all(|c| !c.is_control() || c.is_whitespace()) {
                    return vec![t.to_string()];
                }
            }
        }
        vec![s.to_string()]
    };
    Ok(match v {
        Value::Null => vec![],
        Value::String(s) => from_str(s),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                match i {
                    Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
                    Value::String(_) => {}
                    _ => return Err(Error::bad("statements must be strings")),
                }
            }
            out
        }
        _ => {
            return Err(Error::bad(
                "statements must be a string or a list of strings",
            ))
        }
    })
}

/// `true` when `name` matches one of Vault's `allowed_roles` globs (`*` matches anything).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(pos) => rest = &rest[pos + p.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statement_forms() {
        assert_eq!(
            statements(&json!("GRANT SELECT, INSERT ON t TO x;")).unwrap(),
            vec!["GRANT SELECT, INSERT ON t TO x;"]
        );
        assert_eq!(statements(&json!(["a", "", "b"])).unwrap(), vec!["a", "b"]);
        assert_eq!(statements(&json!("[\"a\",\"b\"]")).unwrap(), vec!["a", "b"]);
        // base64 of "CREATE ROLE x;"
        assert_eq!(
            statements(&json!("Q1JFQVRFIFJPTEUgeDs=")).unwrap(),
            vec!["CREATE ROLE x;"]
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "x"));
        assert!(glob_match("dev-*", "dev-a"));
        assert!(!glob_match("dev-*", "prod-a"));
        assert!(glob_match("*-ro", "app-ro"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("r1", "r2"));
    }
}
