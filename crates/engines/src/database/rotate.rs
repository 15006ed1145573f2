//! Crash-safe password rotation, for static roles and for a connection's root credential, and
//! the schedule that drives static rotations.
//!
//! Every rotation follows the same steps, under the mount's rotation lock:
//!
//! 1. generate the new password and store it as *pending* (the current one stays current);
//! 2. change the password in the database;
//! 3. store the new password as current and clear *pending*.
//!
//! A crash between 1 and 3, or a failure at 2, leaves a pending password. It is resolved
//! before the next rotation of that credential (and, after a restart, by the first
//! [`Backend::periodic`](tresor_core::framework::Backend::periodic) tick: `initialize` only
//! schedules it, so unsealing never waits on a database) by logging in with each password: if
//! only the new one works the database has it, so it becomes current; if only the old one works
//! the database never changed, so it is dropped; if neither or both work (the database is down;
//! or it does not check passwords, e.g. `trust` authentication) the change is applied again
//! with the pending password and made current once the database accepted it. So the stored
//! password never silently differs from the database's.
//!
//! The schedule is in memory ([`Database::set_due`]): static role name → next due time, plus
//! pending root rotations. `periodic` compares the earliest entry with the clock, so a tick
//! with nothing due costs one atomic load. Failed attempts back off (5 s doubling, at most
//! 10 minutes).

use super::config::{self, DbConfig};
use super::creds::generate_password;
use super::plugins::{mysql, postgres, Conn, Kind, Vars};
use super::static_roles::{self, Pending, StaticRole};
use super::Database;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::util::unix_now;

/// The schedule key of a connection's pending root rotation (no role name contains `\0`).
pub fn root_key(config: &str) -> String {
    format!("\0root/{config}")
}

fn now_nanos() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

/// Reads every static role and connection once to build the schedule.
pub async fn load_schedule(db: &Database, view: &View) -> Result<()> {
    let now = unix_now();
    for name in view.list("static-role/").await? {
        if let Some(r) = static_roles::load(view, &name).await? {
            let due = if r.pending.is_some() {
                now
            } else {
                r.next_rotation
            };
            db.set_due(&name, Some(due));
        }
    }
    for name in view.list("config/").await? {
        if let Some(c) = config::load(view, &name).await? {
            if c.pending_root_password.is_some() {
                db.set_due(&root_key(&name), Some(now));
            }
        }
    }
    db.loaded.store(true, Ordering::SeqCst);
    Ok(())
}

/// Runs everything due now (called from `periodic`, off the core's loop).
pub async fn run_due(db: &Arc<Database>, view: &View) {
    let now = unix_now();
    let due: Vec<String> = db
        .schedule
        .lock()
        .iter()
        .filter(|(_, t)| **t <= now)
        .map(|(k, _)| k.clone())
        .collect();
    for key in due {
        let work = async {
            match key.strip_prefix("\0root/") {
                Some(cfg) => resolve_root(db, view, cfg).await,
                None => rotate_if_due(db, view, &key).await,
            }
        };
        // A database that hangs (a lock, a black-holed host) must not stall the schedule: the
        // attempt is abandoned (a pending password stays pending) and retried later.
        let r = tokio::time::timeout(super::plugins::OPERATION_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(Error::internal("timed out talking to the database")));
        match r {
            Ok(()) => {
                db.failures.lock().remove(&key);
            }
            Err(e) => {
                let n = {
                    let mut f = db.failures.lock();
                    let n = f.entry(key.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let delay = (5i64 << (n - 1).min(7)).min(600);
                tracing::warn!(item = %key.trim_start_matches('\0'), attempt = n, error = %e, "database rotation failed; will retry");
                db.set_due(&key, Some(unix_now() + delay));
            }
        }
    }
}

/// A static role whose time came (or that has a pending rotation to resolve).
async fn rotate_if_due(db: &Arc<Database>, view: &View, name: &str) -> Result<()> {
    let Some(role) = static_roles::load(view, name).await? else {
        db.set_due(name, None);
        return Ok(());
    };
    let now = unix_now();
    if role.pending.is_some() && role.next_rotation > now {
        let _g = db.rotation_lock.lock().await;
        let role = resolve_static(db, view, name).await?;
        db.set_due(name, Some(role.next_rotation));
        return Ok(());
    }
    if role.next_rotation > now {
        db.set_due(name, Some(role.next_rotation));
        return Ok(());
    }
    // A schedule's window: too late for this slot means waiting for the next one.
    if !role.rotation_schedule.is_empty()
        && role.rotation_window > 0
        && now > role.next_rotation + role.rotation_window as i64
        && role.pending.is_none()
    {
        let _g = db.rotation_lock.lock().await;
        if let Some(mut r) = static_roles::load(view, name).await? {
            r.next_rotation = super::schedule::Cron::parse(&r.rotation_schedule)
                .ok()
                .and_then(|c| c.next_after(now))
                .unwrap_or(i64::MAX);
            static_roles::save(view, name, &r).await?;
            db.set_due(name, Some(r.next_rotation));
        }
        return Ok(());
    }
    rotate_static(db, view, name).await.map(|_| ())
}

/// Sets a user's password in the database: the given statements, or the plugin's default.
async fn set_password(
    conn: &Conn,
    stmts: &[String],
    username: &str,
    password: &str,
) -> std::result::Result<(), String> {
    let vars = Vars {
        name: username,
        password,
        expiration: "",
    };
    if !stmts.is_empty() {
        return config::run(conn, stmts, &vars).await;
    }
    match conn.spec.kind {
        Kind::Postgres => config::run(conn, &[postgres::ROTATION.to_string()], &vars).await,
        Kind::MySql { .. } => match mysql::rotate_default(conn, username, password).await {
            Ok(()) => Ok(()),
            Err(e) => Err(conn.describe(e, &[password]).await),
        },
    }
}

/// Which password the database has, by logging in with each.
enum Verdict {
    New,
    Old,
    Unknown,
}

async fn which_works(conn: &Conn, user: &str, old: &str, new: &str) -> Verdict {
    let new_ok = conn.login_works(user, new).await.is_ok();
    let old_ok = !old.is_empty() && conn.login_works(user, old).await.is_ok();
    match (new_ok, old_ok) {
        (true, false) => Verdict::New,
        (false, true) => Verdict::Old,
        _ => Verdict::Unknown,
    }
}

fn finalize_static(r: &mut StaticRole, password: String) {
    r.password = password;
    r.pending = None;
    r.last_vault_rotation = now_nanos();
    r.next_rotation = r.compute_next(unix_now());
}

/// Settles a static role's pending rotation (the rotation lock must be held).
async fn resolve_static(db: &Database, view: &View, name: &str) -> Result<StaticRole> {
    let mut r = static_roles::load(view, name)
        .await?
        .ok_or_else(|| Error::bad("no static role found for role name"))?;
    let Some(p) = r.pending.clone() else {
        return Ok(r);
    };
    let (_, conn) = db.conn(view, &r.db_name).await?;
    match which_works(&conn, &r.username, &r.password, &p.password).await {
        Verdict::New => finalize_static(&mut r, p.password),
        Verdict::Old => r.pending = None,
        Verdict::Unknown => {
            set_password(&conn, &r.rotation_statements, &r.username, &p.password)
                .await
                .map_err(Error::internal)?;
            finalize_static(&mut r, p.password);
        }
    }
    static_roles::save(view, name, &r).await?;
    Ok(r)
}

/// Rotates a static role's password now. Returns the role as stored afterwards.
pub async fn rotate_static(db: &Database, view: &View, name: &str) -> Result<StaticRole> {
    let _g = db.rotation_lock.lock().await;
    let mut r = resolve_static(db, view, name).await?;
    let (cfg, conn) = db.conn(view, &r.db_name).await?;
    let password = generate_password(view, &cfg).await?;
    // 1. pending first ...
    r.pending = Some(Pending {
        password: password.clone(),
        since: unix_now(),
    });
    static_roles::save(view, name, &r).await?;
    // 2. ... then the database ...
    if let Err(e) = set_password(&conn, &r.rotation_statements, &r.username, &password).await {
        // The pending password is settled by the next attempt.
        db.set_due(name, Some(unix_now() + 5));
        return Err(Error::internal(e));
    }
    // 3. ... then current.
    finalize_static(&mut r, password);
    static_roles::save(view, name, &r).await?;
    db.set_due(name, Some(r.next_rotation));
    Ok(r)
}

async fn root_statements_run(
    conn: &Conn,
    cfg: &DbConfig,
    password: &str,
) -> std::result::Result<(), String> {
    set_password(
        conn,
        &cfg.root_rotation_statements,
        &cfg.username(),
        password,
    )
    .await
}

fn finalize_root(cfg: &mut DbConfig, password: String) {
    cfg.connection_details
        .insert("password".into(), serde_json::Value::String(password));
    cfg.pending_root_password = None;
}

/// Settles a connection's pending root rotation (takes the rotation lock).
pub async fn resolve_root(db: &Database, view: &View, name: &str) -> Result<()> {
    let _g = db.rotation_lock.lock().await;
    resolve_root_locked(db, view, name).await
}

async fn resolve_root_locked(db: &Database, view: &View, name: &str) -> Result<()> {
    let Some(mut cfg) = config::load(view, name).await? else {
        db.set_due(&root_key(name), None);
        return Ok(());
    };
    let Some(pending) = cfg.pending_root_password.clone() else {
        db.set_due(&root_key(name), None);
        return Ok(());
    };
    let conn = db.conn_for(name, &cfg).await?;
    match which_works(&conn, &cfg.username(), &cfg.password(), &pending).await {
        Verdict::New => finalize_root(&mut cfg, pending),
        Verdict::Old => cfg.pending_root_password = None,
        Verdict::Unknown => {
            root_statements_run(&conn, &cfg, &pending)
                .await
                .map_err(|e| Error::internal(format!("failed to update user: {e}")))?;
            finalize_root(&mut cfg, pending);
        }
    }
    config::save(view, name, &cfg).await?;
    db.set_due(&root_key(name), None);
    db.drop_conn(name).await;
    Ok(())
}

/// `rotate-root/:name`: a new root password that only Tresor knows.
pub async fn rotate_root(db: &Database, view: &View, name: &str) -> Result<()> {
    let _g = db.rotation_lock.lock().await;
    let cfg = config::load(view, name)
        .await?
        .ok_or_else(|| config::missing(name))?;
    if cfg.username().is_empty() {
        return Err(Error::bad(
            "unable to rotate root credentials: no username in configuration",
        ));
    }
    if cfg.pending_root_password.is_some() {
        resolve_root_locked(db, view, name).await?;
    }
    let mut cfg = config::load(view, name)
        .await?
        .ok_or_else(|| config::missing(name))?;
    let conn = db.conn_for(name, &cfg).await?;
    let password = generate_password(view, &cfg).await?;
    cfg.pending_root_password = Some(password.clone());
    config::save(view, name, &cfg).await?;
    if let Err(e) = root_statements_run(&conn, &cfg, &password).await {
        db.set_due(&root_key(name), Some(unix_now() + 5));
        return Err(Error::internal(format!("failed to update user: {e}")));
    }
    finalize_root(&mut cfg, password);
    config::save(view, name, &cfg).await?;
    db.drop_conn(name).await;
    Ok(())
}
