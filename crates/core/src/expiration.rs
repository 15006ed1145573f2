//! The lease manager: every secret that expires gets a lease, and the lease manager revokes it
//! when it ends, by calling back the backend that issued it.
//!
//! Scale is the design goal. Vault loads every lease into memory at unseal, which stalls for
//! minutes with millions of them. Tresor keeps leases only in storage, with a time-ordered index,
//! and never loads them whole:
//!
//! * `id/<lease id>`: the [`LeaseEntry`] (lease ids are paths: `<mount><path>/<random>`, so
//!   `LIST sys/leases/lookup/<prefix>` is a plain folder listing);
//! * `time/<expire unix, 20 digits>/<lease id>`: the expiry index, sorted by time. Each tick
//!   reads only the due page of it (a range scan), so unseal costs nothing and a tick costs
//!   O(leases due);
//! * `token/<token hash>/<lease id>`: leases by owning token, so revoking a token revokes them.
//!
//! A failed revocation (a database that is down) is not dropped: the lease stays, its error is
//! recorded, and it is rescheduled with exponential backoff (capped at an hour).
//!
//! Concurrency: a lease's backend hooks (renew, revoke) never run at the same time in this
//! process (a stripe lock per lease id: two `ALTER ROLE ... VALID UNTIL` on one PostgreSQL user
//! fail with "tuple concurrently updated"), and a renewal's write lands only if the entry is
//! unchanged since it was read ([`View::write_batch_if`]). An index entry whose time is not
//! the lease's current one is stale (left by a renewal) and is only dropped.

use crate::barrier::View;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::framework::LeaseCall;
use crate::locks::Stripes;
use crate::logical::{Lease, Secret};
use crate::mount::{MountEntry, Route};
use crate::util::{random_alnum, unix_now};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Weak;
use tresor_storage::WriteOp;

/// How many due leases one tick handles at most (the rest wait for the next tick).
const TICK_BATCH: usize = 1000;
const MAX_BACKOFF_SECS: i64 = 3600;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseEntry {
    pub lease_id: String,
    /// Route prefix of the issuing mount (`database/`).
    pub mount: String,
    /// The request path that created it.
    pub path: String,
    #[serde(default)]
    pub internal: Value,
    /// Hash of the token that created it; empty when none.
    #[serde(default)]
    pub token_hash: String,
    pub issue_time: i64,
    pub expire_time: i64,
    #[serde(default)]
    pub last_renewal: i64,
    /// The lease may never outlive this (unix time).
    pub max_expire: i64,
    /// The TTL it was issued (or last renewed) with.
    pub ttl: u64,
    pub renewable: bool,
    #[serde(default)]
    pub revoke_attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the next revocation attempt is due (index position); equals expire_time until a
    /// revocation fails.
    #[serde(default)]
    pub next_attempt: i64,
}

impl LeaseEntry {
    pub fn lookup_json(&self) -> Value {
        let now = unix_now();
        serde_json::json!({
            "id": self.lease_id,
            "issue_time": crate::util::rfc3339(self.issue_time),
            "expire_time": crate::util::rfc3339(self.expire_time),
            "last_renewal": if self.last_renewal == 0 { Value::Null } else { Value::String(crate::util::rfc3339(self.last_renewal)) },
            "renewable": self.renewable,
            "ttl": (self.expire_time - now).max(0),
        })
    }
}

fn time_key(at: i64, id: &str) -> String {
    format!("time/{:020}/{id}", at.max(0))
}

fn token_key(hash: &str, id: &str) -> String {
    format!("token/{hash}/{id}")
}

pub struct LeaseManager {
    core: Weak<Core>,
    view: View,
    /// One backend hook at a time per lease.
    hooks: Stripes,
}

impl LeaseManager {
    pub fn new(core: Weak<Core>, view: View) -> Self {
        LeaseManager {
            core,
            view,
            hooks: Stripes::new(256),
        }
    }

    fn core(&self) -> Result<std::sync::Arc<Core>> {
        self.core.upgrade().ok_or(Error::Sealed)
    }

    /// Creates the lease for a secret a backend just issued; returns what the client sees.
    pub async fn register(
        &self,
        mount: &MountEntry,
        path: &str,
        token_hash: &str,
        secret: Secret,
    ) -> Result<Lease> {
        let limits = self.core()?.system_ttl_limits().for_mount(&mount.config);
        let max = match secret.max_ttl.as_secs() {
            0 => limits.max_ttl,
            m => m.min(limits.max_ttl),
        };
        let ttl = limits.calculate(secret.ttl.as_secs(), 0, max).ttl;
        let now = unix_now();
        let lease_id = format!("{}/{}", path.trim_end_matches('/'), random_alnum(24));
        let entry = LeaseEntry {
            lease_id: lease_id.clone(),
            mount: mount.route_prefix(),
            path: path.to_string(),
            internal: secret.internal,
            token_hash: token_hash.to_string(),
            issue_time: now,
            expire_time: now + ttl as i64,
            last_renewal: 0,
            max_expire: now + max as i64,
            ttl,
            renewable: secret.renewable,
            revoke_attempts: 0,
            last_error: None,
            next_attempt: now + ttl as i64,
        };
        let mut ops = vec![
            WriteOp::Put(format!("id/{lease_id}"), serde_json::to_vec(&entry)?),
            WriteOp::Put(time_key(entry.next_attempt, &lease_id), vec![]),
        ];
        if !token_hash.is_empty() {
            ops.push(WriteOp::Put(token_key(token_hash, &lease_id), vec![]));
        }
        self.view.write_batch(ops).await?;
        if let Ok(core) = self.core() {
            core.metrics.count_event(
                "vault.expire.lease.creation",
                &[
                    ("mount_point", &entry.mount),
                    ("creation_ttl", crate::metrics::ttl_bucket(ttl)),
                ],
            );
        }
        Ok(Lease {
            lease_id,
            duration: ttl,
            renewable: entry.renewable,
        })
    }

    pub async fn lookup(&self, lease_id: &str) -> Result<Option<LeaseEntry>> {
        if lease_id.is_empty() || lease_id.contains("..") {
            return Ok(None);
        }
        self.view.get_json(&format!("id/{lease_id}")).await
    }

    /// Immediate children of a lease-id prefix (`LIST sys/leases/lookup/<prefix>`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.view.list(&format!("id/{prefix}")).await
    }

    /// Moves an entry's index position and saves it.
    async fn save(&self, old: &LeaseEntry, new: &LeaseEntry) -> Result<()> {
        self.view.write_batch(Self::save_ops(old, new)?).await
    }

    fn save_ops(old: &LeaseEntry, new: &LeaseEntry) -> Result<Vec<WriteOp>> {
        let mut ops = vec![WriteOp::Put(
            format!("id/{}", new.lease_id),
            serde_json::to_vec(new)?,
        )];
        if old.next_attempt != new.next_attempt {
            ops.push(WriteOp::Delete(time_key(old.next_attempt, &old.lease_id)));
            ops.push(WriteOp::Put(
                time_key(new.next_attempt, &new.lease_id),
                vec![],
            ));
        }
        Ok(ops)
    }

    async fn remove(&self, e: &LeaseEntry) -> Result<()> {
        let mut ops = vec![
            WriteOp::Delete(format!("id/{}", e.lease_id)),
            WriteOp::Delete(time_key(e.next_attempt, &e.lease_id)),
        ];
        if !e.token_hash.is_empty() {
            ops.push(WriteOp::Delete(token_key(&e.token_hash, &e.lease_id)));
        }
        self.view.write_batch(ops).await
    }

    /// The mount behind a lease and the hook call for it; None when the mount is gone.
    fn route_for(&self, e: &LeaseEntry, increment: u64) -> Result<Option<(Route, LeaseCall)>> {
        let core = self.core()?;
        let active = core.active()?;
        let router = active.router.read();
        Ok(router.get(&e.mount).map(|r| {
            let storage = View::new(core.barrier.clone(), r.storage_prefix.clone());
            (
                r.clone(),
                Self::lease_call(e, r.entry.clone(), storage, increment),
            )
        }))
    }

    fn lease_call(
        e: &LeaseEntry,
        mount: std::sync::Arc<MountEntry>,
        storage: View,
        increment: u64,
    ) -> LeaseCall {
        LeaseCall {
            lease_id: e.lease_id.clone(),
            storage,
            mount,
            internal: e.internal.clone(),
            increment,
            issue_time: e.issue_time,
            ttl: e.ttl,
        }
    }

    /// Extends a lease by `increment` seconds (or its TTL), never past its max; the backend's
    /// renew hook runs first (e.g. to extend a database user's validity).
    pub async fn renew(&self, lease_id: &str, increment: u64) -> Result<LeaseEntry> {
        let not_found = || Error::bad("lease not found");
        if lease_id.is_empty() || lease_id.contains("..") {
            return Err(not_found());
        }
        let _hooks = self.hooks.lock(lease_id).await;
        let key = format!("id/{lease_id}");
        loop {
            let (raw, stamp) = self.view.get_stamped(&key).await?;
            let e: LeaseEntry = serde_json::from_slice(&raw.ok_or_else(not_found)?)?;
            let now = unix_now();
            if e.expire_time <= now {
                return Err(Error::bad("lease expired"));
            }
            if !e.renewable {
                return Err(Error::bad("lease is not renewable"));
            }
            let want = if increment > 0 { increment } else { e.ttl };
            let ttl = want.min((e.max_expire - now).max(0) as u64);
            if let Some((route, call)) = self.route_for(&e, ttl)? {
                route.backend.renew_secret(call).await?;
            }
            let mut n = e.clone();
            n.expire_time = now + ttl as i64;
            n.next_attempt = n.expire_time;
            n.last_renewal = now;
            n.ttl = ttl;
            // Changed meanwhile (by another server on the same storage): decide again on what
            // is there now.
            if self
                .view
                .write_batch_if(&[stamp], Self::save_ops(&e, &n)?)
                .await?
            {
                return Ok(n);
            }
        }
    }

    /// Revokes one lease now. With `force`, the lease is removed even if the backend fails.
    pub async fn revoke(&self, lease_id: &str, force: bool) -> Result<()> {
        let Some(e) = self.lookup(lease_id).await? else {
            return Ok(());
        };
        self.revoke_entry(&e, force).await
    }

    async fn revoke_entry(&self, e: &LeaseEntry, force: bool) -> Result<()> {
        let _hooks = self.hooks.lock(&e.lease_id).await;
        if let Some((route, call)) = self.route_for(e, 0)? {
            if let Err(err) = route.backend.revoke_secret(call).await {
                if !force {
                    return Err(Error::internal(format!(
                        "failed to revoke lease {}: {err}",
                        e.lease_id
                    )));
                }
                tracing::warn!(lease_id = %e.lease_id, error = %err, "revoke-force: backend failed, removing the lease anyway");
            }
        }
        self.remove(e).await?;
        if let Ok(core) = self.core() {
            core.metrics.expire_revoke.inc();
        }
        Ok(())
    }

    /// How many leases each mount has (`vault.expire.num_leases`): a keys-only scan of the
    /// lease ids, each counted under the longest of `mounts` it starts with.
    pub async fn count_by_mount(&self, mounts: &[String]) -> Result<Vec<(String, u64)>> {
        let mut counts: Vec<(String, u64)> = mounts.iter().map(|m| (m.clone(), 0)).collect();
        // Longest first, so the first match is the longest prefix.
        counts.sort_by_key(|c| std::cmp::Reverse(c.0.len()));
        let mut after: Option<String> = None;
        loop {
            let page = self.view.scan("id/", after.as_deref(), 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            for key in &page {
                let id = &key["id/".len()..];
                if let Some(c) = counts.iter_mut().find(|(m, _)| id.starts_with(m.as_str())) {
                    c.1 += 1;
                }
            }
        }
        counts.retain(|(_, n)| *n > 0);
        counts.sort();
        Ok(counts)
    }

    /// Every lease id under a prefix (a lease id itself is also a prefix of nothing else).
    async fn ids_under(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        let full = format!("id/{prefix}");
        loop {
            let page = self.view.scan(&full, after.as_deref(), 1000).await?;
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            out.extend(page.into_iter().map(|k| k["id/".len()..].to_string()));
        }
        Ok(out)
    }

    /// Revokes every lease whose id starts with `prefix`.
    pub async fn revoke_prefix(&self, prefix: &str, force: bool) -> Result<usize> {
        let ids = self.ids_under(prefix).await?;
        for id in &ids {
            self.revoke(id, force).await?;
        }
        Ok(ids.len())
    }

    /// Revokes the leases a token created; failures are rescheduled, not lost.
    pub async fn revoke_by_token(&self, token_hash: &str) -> Result<()> {
        let prefix = format!("token/{token_hash}/");
        loop {
            let page = self.view.scan(&prefix, None, 1000).await?;
            if page.is_empty() {
                return Ok(());
            }
            for k in page {
                let id = &k[prefix.len()..];
                match self.lookup(id).await? {
                    Some(e) => {
                        if let Err(err) = self.revoke_entry(&e, false).await {
                            // Keep the lease for the expiry loop's retries, detached from the token.
                            let mut n = e.clone();
                            n.token_hash.clear();
                            n.last_error = Some(err.to_string());
                            n.next_attempt = unix_now();
                            self.save(&e, &n).await?;
                            self.view.delete(&k).await?;
                        }
                    }
                    None => self.view.delete(&k).await?,
                }
            }
        }
    }

    /// Revokes what is due; called about once a second. Reads only the due part of the index.
    pub async fn tick(&self) -> Result<usize> {
        let now = unix_now();
        let due = self.view.scan("time/", None, TICK_BATCH).await?;
        let mut done = 0;
        for k in due {
            let rest = &k["time/".len()..];
            let Some((ts, id)) = rest.split_once('/') else {
                self.view.delete(&k).await?;
                continue;
            };
            if ts.parse::<i64>().unwrap_or(0) > now {
                break;
            }
            let Some(e) = self.lookup(id).await? else {
                self.view.delete(&k).await?;
                continue;
            };
            if time_key(e.next_attempt, id) != k {
                // Stale: the lease was renewed (or rescheduled) since this was written.
                self.view.delete(&k).await?;
                continue;
            }
            match self.revoke_entry(&e, false).await {
                Ok(()) => done += 1,
                Err(err) => {
                    let mut n = e.clone();
                    n.revoke_attempts += 1;
                    n.last_error = Some(err.to_string());
                    n.next_attempt =
                        now + (1i64 << n.revoke_attempts.min(12)).min(MAX_BACKOFF_SECS);
                    tracing::warn!(lease_id = %e.lease_id, attempt = n.revoke_attempts, error = %err, "lease revocation failed; will retry");
                    self.save(&e, &n).await?;
                }
            }
        }
        Ok(done)
    }

    /// Removes index entries that point at no lease (left by a crash between writes).
    pub async fn tidy(&self) -> Result<usize> {
        let mut removed = 0;
        for prefix in ["time/", "token/"] {
            let mut after: Option<String> = None;
            loop {
                let page = self.view.scan(prefix, after.as_deref(), 1000).await?;
                if page.is_empty() {
                    break;
                }
                after = page.last().cloned();
                for k in page {
                    let id = match prefix {
                        "time/" => k["time/".len()..]
                            .split_once('/')
                            .map(|(_, id)| id.to_string()),
                        _ => k["token/".len()..]
                            .split_once('/')
                            .map(|(_, id)| id.to_string()),
                    };
                    let live = match id {
                        Some(id) => self.lookup(&id).await?.is_some(),
                        None => false,
                    };
                    if !live {
                        self.view.delete(&k).await?;
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }
}
