//! Standby reads (HA): a standby serves read requests itself, from a read-only copy of the
//! unsealed state kept coherent with the active node's writes; everything else goes to the
//! active node (the HTTP layer forwards on [`Error::Standby`]).
//!
//! * **What a standby serves**: `read` and `list` requests, unwrapped, whose token has no use
//!   limit, on backends that allow it ([`Backend::reads_on_standby`]: not those whose reads
//!   act outside Tresor before they write, as the database engine's credentials). A request
//!   that turns out to write (a lease to register, a cache a backend fills in storage) fails at
//!   the storage, which refuses every write of a node without the lease, and is forwarded
//!   whole: nothing of it was stored.
//! * **Coherence, once, by storage area**: storage reads go to the shared database, so they
//!   are always current; what can go stale is what the state holds in memory. The tailer
//!   reads the storage's change log ([`tresor_storage::HaLock::changes_since`], committed
//!   with the data) every [`TAIL_EVERY`] and, per key written: the token, policy and
//!   identity stores drop their caches; a secrets engine or auth method whose storage changed
//!   is rebuilt from scratch (so no backend needs invalidation code of its own, and none can
//!   miss one); a change to the mount, audit or keyring records (`core/`), or a gap in the
//!   log, rebuilds the whole state. Caches refuse to keep what a read fetched while they
//!   were dropped (generation counters), so a revoked token cannot slip back in.
//! * **Bounded staleness**: while the state is rebuilt, or once the change log has been
//!   unreadable for [`UNFOLLOWED_AT_MOST`], there is no standby state and everything is
//!   forwarded. An expired token reads as absent on a standby but is revoked only by the
//!   active node (revocation ends secrets outside Tresor).
//! * **Read your writes**: answers of an HA node carry `X-Vault-Index` (the storage's latest
//!   commit index); a request that sends it back is served by a standby only once the
//!   standby's state reflects that index (it waits up to [`INDEX_WAIT`], then forwards).

use crate::barrier::View;
use crate::core::{Active, Core};
use crate::error::{Error, Result};
use crate::logical::{Operation, Request};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a standby reads the change log.
pub const TAIL_EVERY: Duration = Duration::from_millis(20);
/// How long a standby waits to reach an `X-Vault-Index` a request asks for before it
/// forwards the request instead.
pub const INDEX_WAIT: Duration = Duration::from_secs(2);
/// How long a standby serves from state whose change log it cannot read; then it forwards
/// everything until it can again.
pub const UNFOLLOWED_AT_MOST: Duration = Duration::from_millis(250);
/// Change-log entries read per round.
const TAIL_BATCH: usize = 1000;

/// What one round of changes requires of the standby state.
#[derive(Default)]
struct Invalidation {
    everything: bool,
    tokens: bool,
    policies: bool,
    identity: bool,
    /// Storage prefixes of mounts (`logical/<uuid>/`, `auth/<uuid>/`) whose backend is rebuilt.
    mounts: BTreeSet<String>,
}

impl Invalidation {
    fn add(&mut self, key: &str) {
        if let Some(rest) = key.strip_prefix("core/") {
            // The cluster identity is read afresh where it is used.
            self.everything |= !rest.starts_with("cluster/");
        } else if key.starts_with("sys/token/") {
            self.tokens = true;
        } else if key.starts_with("sys/policy/") {
            self.policies = true;
        } else if key.starts_with("sys/identity/") {
            self.identity = true;
        } else if let Some((area, rest)) = key.split_once('/') {
            if area == "logical" || area == "auth" {
                if let Some((uuid, _)) = rest.split_once('/') {
                    self.mounts.insert(format!("{area}/{uuid}/"));
                }
            }
        }
        // Anything else (`sys/expire/`, wrapping tokens, audit salts) has no copy in memory.
    }
}

impl Core {
    /// The state this node serves from: the active state, else a standby's read-only copy.
    /// For what only reads; what writes uses [`Core::active`].
    pub fn active_or_standby(&self) -> Result<Arc<Active>> {
        match self.active() {
            Err(e @ Error::Standby(_)) => self.standby.read().clone().ok_or(e),
            other => other,
        }
    }

    /// The standby state to serve `req` from, if this standby may serve it at all.
    pub(crate) async fn standby_state_for(&self, req: &Request) -> Option<Arc<Active>> {
        if !self.config.standby_reads
            || !matches!(req.operation, Operation::Read | Operation::List)
            || req.wrap_ttl.is_some()
        {
            return None;
        }
        if let Some(index) = req.min_index {
            let deadline = Instant::now() + INDEX_WAIT;
            while self.standby_applied.load(Ordering::SeqCst) < index {
                if Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(TAIL_EVERY / 2).await;
            }
        }
        self.standby.read().clone()
    }

    /// The latest commit index this node knows of: its own commits while active, the change
    /// log it has applied while a standby (`X-Vault-Index`). `None` without HA.
    pub fn state_index(&self) -> Option<i64> {
        let ha = self.ha.as_ref()?;
        Some(
            ha.last_commit()
                .max(self.standby_applied.load(Ordering::SeqCst)),
        )
    }

    /// Keeps a standby's state coherent with the active node's writes, from unseal to seal
    /// (HA storage with standby reads only).
    pub(crate) fn start_standby_tailer(&self) {
        let (Some(lease), true) = (self.ha.clone(), self.config.standby_reads) else {
            return;
        };
        let me = self.me.clone();
        tokio::spawn(async move {
            let mut last_read = Instant::now();
            loop {
                tokio::time::sleep(TAIL_EVERY).await;
                let Some(core) = me.upgrade() else { return };
                if core.barrier.is_sealed() {
                    core.standby.write().take();
                    return;
                }
                if core.has_active_state() {
                    core.standby.write().take();
                    continue;
                }
                let applied = core.standby_applied.load(Ordering::SeqCst);
                let have_state = core.standby.read().is_some();
                let changes = match lease
                    .changes_since(if have_state { applied } else { i64::MAX }, TAIL_BATCH)
                    .await
                {
                    Ok(c) => {
                        last_read = Instant::now();
                        c
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "reading the change log failed");
                        // Unfollowed caches may be stale: out of service until the log reads.
                        if last_read.elapsed() > UNFOLLOWED_AT_MOST {
                            core.standby.write().take();
                        }
                        continue;
                    }
                };
                if !have_state || !changes.complete {
                    core.rebuild_standby_state(changes.head).await;
                    continue;
                }
                let mut todo = Invalidation::default();
                for (_, keys) in &changes.commits {
                    for k in keys {
                        todo.add(k);
                    }
                }
                let Some(upto) = changes.commits.last().map(|(i, _)| *i) else {
                    continue;
                };
                if todo.everything {
                    core.rebuild_standby_state(upto).await;
                } else {
                    core.apply(&todo).await;
                    core.standby_applied.store(upto, Ordering::SeqCst);
                }
            }
        });
    }

    /// Builds the standby state afresh, reflecting at least change-log index `index` (read
    /// before the build: what commits during it is applied next round).
    async fn rebuild_standby_state(&self, index: i64) {
        let _building = self.state_lock.lock().await;
        // Out of service meanwhile (its caches are no longer followed): requests forward.
        self.standby.write().take();
        if self.has_active_state() || self.barrier.is_sealed() {
            return;
        }
        // The keyring may have been rotated by the active node, or replaced by a forced
        // snapshot restore with another root key: that one this node cannot open, so it seals
        // (the snapshot's unseal keys unseal it).
        match self.barrier.reload_keyring().await {
            Ok(()) => {}
            Err(crate::Error::BadRequest(_)) => {
                tracing::warn!("the stored keyring no longer opens with this node's root key (a snapshot of another cluster was restored); sealing");
                drop(_building);
                self.seal_now();
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "reloading the keyring failed");
                return;
            }
        }
        match self.build_state(true).await {
            Ok(state) => {
                *self.standby.write() = Some(state);
                self.standby_applied.store(index, Ordering::SeqCst);
            }
            Err(e) => {
                // Until it builds (the active node may be mid-change), everything is forwarded.
                tracing::debug!(error = %e, "building the standby state failed; retrying");
                self.standby.write().take();
            }
        }
    }

    /// Drops what changed from the standby state's caches and rebuilds changed backends.
    async fn apply(&self, todo: &Invalidation) {
        let Some(state) = self.standby.read().clone() else {
            return;
        };
        if todo.tokens {
            state.tokens.forget_cached();
        }
        if todo.policies {
            state.policies.forget_cached();
        }
        if todo.identity {
            state.identity.forget_cached();
        }
        for prefix in &todo.mounts {
            let route = state
                .router
                .read()
                .routes()
                .iter()
                .find(|r| &*r.storage_prefix == prefix.as_str())
                .cloned();
            // A mount the state does not know yet comes with a mount-table change.
            let Some(route) = route else { continue };
            let rebuilt = match self.build_backend(&route.entry, &state.tokens, &state.identity) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(mount = %route.prefix, error = %e, "rebuilding a standby backend failed");
                    self.standby.write().take();
                    return;
                }
            };
            let view = View::new(self.barrier.clone(), route.entry.storage_prefix());
            if let Err(e) = rebuilt.initialize(&view).await {
                tracing::debug!(mount = %route.prefix, error = %e, "a rebuilt standby backend failed to load; the standby forwards until it rebuilds");
                self.standby.write().take();
                return;
            }
            state
                .router
                .write()
                .insert((*route.entry).clone(), rebuilt, &self.metrics);
        }
    }
}
