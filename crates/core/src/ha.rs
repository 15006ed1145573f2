//! High availability: several nodes on one shared storage (PostgreSQL with `ha_enabled`), one
//! of them active. The storage owns the lease and fences every write (see
//! `tresor_storage::HaLock`); this module decides what the node does with it.
//!
//! * An unsealed node starts as a **standby**: its barrier is open, but it has no active state
//!   (mount table, tokens, leases, periodic work) and answers requests with
//!   [`Error::Standby`], which the HTTP layer turns into a 307 to the active node.
//! * A background loop tries to take the lease every [`STANDBY_POLL`] (a dead holder is replaced
//!   at once, after [`TAKEOVER_GRACE`]; a silent one after the lease runs out). Taking it
//!   **activates** the node: the keyring is re-read (the old active node may have rotated it),
//!   the active state is loaded fresh from storage, periodic work starts.
//! * The active node renews every third of the lease. It **steps down** (drops its active
//!   state, keeps its barrier open) when a renewal says the lease is gone, when renewals
//!   fail for longer than the lease minus a margin, or at once when the database session its
//!   lease is held on closes (the database then lets a standby take over; it stops serving
//!   the moment it sees the session closed, and the standby waits [`TAKEOVER_GRACE`] for it).
//!   After such a failure it stays out of the contest for a lease's time, so a standby with
//!   a sound connection takes over first.
//!   Independently, it refuses to serve anything once its last successful renewal is older
//!   than that: a node that was paused past its lease answers nothing from stale state before
//!   it finds out, and cannot write at all (fenced).
//! * `sys/step-down` releases the lease and keeps the node from contending for
//!   [`STEP_DOWN_PAUSE`], so another node takes over.

use crate::core::Core;
use crate::error::{Error, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tresor_storage::Leader;

/// How often a standby tries to take the lease.
pub const STANDBY_POLL: Duration = Duration::from_millis(250);
/// How long a node that stepped down stays out of the contest.
pub const STEP_DOWN_PAUSE: Duration = Duration::from_secs(10);
/// How often the active node checks that its lease's database session is still open.
pub const SESSION_WATCH: Duration = Duration::from_millis(20);
/// How long a node that took the lease from a live holder (its database session gone, its
/// lease not run out) waits before it activates: the old holder, if it lives after all, watches
/// that session every [`SESSION_WATCH`] and has stepped down by then, so the two never call
/// themselves active at one moment. (Its writes are fenced from the takeover on regardless.)
pub const TAKEOVER_GRACE: Duration = Duration::from_millis(250);
/// How often every node records that it is alive (`sys/ha-status`).
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Nodes silent for longer are not listed by `sys/ha-status`.
pub const NODE_SILENCE: Duration = Duration::from_secs(30);

/// What this node knows about the cluster.
#[derive(Debug, Clone, Default)]
pub struct HaView {
    /// The active node as last seen (this node while active).
    pub leader: Option<Leader>,
    /// When this node last became active (unix seconds).
    pub active_since: Option<i64>,
    /// Until when the lease is certainly still this node's (its last successful renewal, plus
    /// the lease less a margin, on the monotonic clock).
    pub(crate) lease_valid_until: Option<Instant>,
    /// No contending before this (after a step-down).
    pub(crate) contend_after: Option<Instant>,
}

/// The safety margin kept between the local view of the lease and the database's.
fn margin(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_millis(250))
}

impl Core {
    /// Whether several nodes share this storage.
    pub fn ha_enabled(&self) -> bool {
        self.ha.is_some()
    }

    /// What this node knows about the cluster.
    pub fn ha_view(&self) -> HaView {
        self.ha_view.read().clone()
    }

    /// Whether this node is the active one and may serve (its lease certainly holds, and the
    /// database session it is held on is open).
    pub(crate) fn lease_holds(&self) -> bool {
        match &self.ha {
            None => true,
            Some(lease) => {
                self.ha_view
                    .read()
                    .lease_valid_until
                    .is_some_and(|t| Instant::now() < t)
                    && !lease.session_lost()
            }
        }
    }

    /// The error a standby answers: where the active node is, if known.
    pub(crate) fn standby_error(&self) -> Error {
        let leader = self.ha_view.read().leader.clone();
        Error::Standby(
            leader
                .filter(|l| l.node.id != self.node.id && !l.node.api_addr.is_empty())
                .map(|l| Box::new(l.node)),
        )
    }

    /// Starts the election loop of a freshly unsealed node (HA storage only). It ends when the
    /// node seals (releasing the lease if held).
    pub(crate) fn start_ha(&self) {
        let Some(lease) = self.ha.clone() else {
            return;
        };
        let me = self.me.clone();
        tokio::spawn(async move {
            let ttl = lease.lease_ttl();
            let renew_every = ttl / 3;
            let mut last_renewed = Instant::now();
            let mut last_heartbeat: Option<Instant> = None;
            loop {
                let Some(core) = me.upgrade() else {
                    return;
                };
                if last_heartbeat.is_none_or(|t| t.elapsed() >= HEARTBEAT) {
                    if let Err(e) = lease.heartbeat(&core.node).await {
                        tracing::debug!(error = %e, "HA heartbeat failed");
                    }
                    last_heartbeat = Some(Instant::now());
                }
                if core.barrier.is_sealed() {
                    core.step_down("sealed");
                    lease.release().await;
                    return;
                }
                if core.has_active_state() {
                    drop(core);
                    // Until the next renewal, watch the lease's session: once the database
                    // has dropped it, another node may take the lease at once.
                    let due = Instant::now() + renew_every;
                    let mut lost = false;
                    while Instant::now() < due && !lost {
                        tokio::time::sleep(SESSION_WATCH.min(renew_every)).await;
                        lost = lease.session_lost();
                    }
                    let Some(core) = me.upgrade() else {
                        return;
                    };
                    if !core.has_active_state() {
                        continue;
                    }
                    if lost {
                        tracing::warn!("the HA lease's database session was lost; stepping down");
                        lease.abandon();
                        core.step_down_after_failure("lease session lost", ttl);
                        continue;
                    }
                    let started = Instant::now();
                    match lease.renew().await {
                        Ok(true) => {
                            last_renewed = started;
                            core.ha_view.write().lease_valid_until =
                                Some(started + ttl - margin(ttl));
                        }
                        Ok(false) => {
                            tracing::warn!("the HA lease was lost; stepping down");
                            core.step_down("lease lost");
                        }
                        Err(e) if last_renewed.elapsed() + margin(ttl) >= ttl => {
                            tracing::warn!(error = %e, "the HA lease could not be renewed in time; stepping down");
                            lease.abandon();
                            core.step_down_after_failure("renewal failed", ttl);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "renewing the HA lease failed; retrying")
                        }
                    }
                    continue;
                }
                let may_contend = core
                    .ha_view
                    .read()
                    .contend_after
                    .is_none_or(|t| Instant::now() >= t);
                if may_contend {
                    if let Some(started) = core.contend().await {
                        last_renewed = started;
                        continue;
                    }
                }
                match lease.leader().await {
                    Ok(leader) => core.ha_view.write().leader = leader,
                    Err(e) => tracing::debug!(error = %e, "reading the HA leader failed"),
                }
                drop(core);
                tokio::time::sleep(STANDBY_POLL).await;
            }
        });
    }

    /// Tries to take the lease and, taken, to activate; when this node is now the active one,
    /// the moment the lease was taken (its renewals count from there).
    async fn contend(&self) -> Option<Instant> {
        let lease = self.ha.clone()?;
        let ttl = lease.lease_ttl();
        let mut started = Instant::now();
        let taken = match lease.try_acquire(&self.node).await {
            Ok(taken) => taken?,
            Err(e) => {
                tracing::debug!(error = %e, "taking the HA lease failed");
                return None;
            }
        };
        if taken.from_live_holder {
            tokio::time::sleep(TAKEOVER_GRACE).await;
            // The grace came out of the lease: renew it before counting on it.
            started = Instant::now();
            if !matches!(lease.renew().await, Ok(true)) {
                lease.abandon();
                return None;
            }
        }
        match self
            .activate(taken.epoch, started + ttl - margin(ttl))
            .await
        {
            Ok(()) => {
                tracing::info!(epoch = taken.epoch, "this node is now the active node");
                Some(started)
            }
            Err(e) => {
                tracing::error!(error = %e, "activation failed; releasing the lease");
                self.step_down("activation failed");
                lease.release().await;
                None
            }
        }
    }

    /// A freshly unsealed node: takes the lease at once if nobody holds it (so the first node
    /// unsealed is active when its unseal answers), then runs the election loop and, as a
    /// standby, the change-log tailer.
    pub(crate) async fn start_unsealed_ha(&self) {
        self.contend().await;
        self.start_ha();
        self.start_standby_tailer();
    }

    /// Becomes the active node under `epoch`: fresh keyring, the cluster identity, fresh active
    /// state, periodic work.
    async fn activate(&self, epoch: i64, valid_until: Instant) -> Result<()> {
        self.ha_view.write().lease_valid_until = Some(valid_until);
        // Before this node names itself active, so standbys can always forward to it.
        self.load_active_state().await?;
        let mut view = self.ha_view.write();
        view.active_since = Some(crate::util::unix_now());
        view.leader = Some(Leader {
            node: self.node.clone(),
            epoch,
        });
        Ok(())
    }

    /// Stops acting as the active node (the barrier stays open: a standby).
    pub(crate) fn step_down(&self, why: &str) {
        let was_active = self.drop_active_state();
        let mut view = self.ha_view.write();
        view.lease_valid_until = None;
        view.active_since = None;
        if view
            .leader
            .as_ref()
            .is_some_and(|l| l.node.id == self.node.id)
        {
            view.leader = None;
        }
        if was_active {
            tracing::info!(reason = why, "stepped down: this node is a standby");
        }
    }

    /// Steps down because this node's hold on the lease failed (its database session was
    /// dropped, its renewals failed) and stays out of the contest for a lease's time: a
    /// standby whose database connection is sound takes over first (this node could take the
    /// lease back at once on an older pooled session). Alone, it waits no longer than the
    /// lease it lost would have taken to run out.
    fn step_down_after_failure(&self, why: &str, ttl: Duration) {
        self.ha_view.write().contend_after = Some(Instant::now() + ttl);
        self.step_down(why);
    }

    /// `sys/step-down`: give the lease up and stay out of the contest for a while, so another
    /// node becomes active.
    pub async fn step_down_now(self: &Arc<Self>) -> Result<()> {
        let Some(lease) = self.ha.clone() else {
            return Ok(());
        };
        self.ha_view.write().contend_after = Some(Instant::now() + STEP_DOWN_PAUSE);
        self.step_down("sys/step-down");
        lease.release().await;
        Ok(())
    }

    /// Vault's `sys/ha-status`: every node heard from lately, and which one is active.
    pub async fn ha_status(&self) -> Result<serde_json::Value> {
        let Some(lease) = &self.ha else {
            return Ok(serde_json::json!({ "nodes": [] }));
        };
        let leader = lease.leader().await?;
        let nodes: Vec<serde_json::Value> = lease
            .nodes(NODE_SILENCE)
            .await?
            .into_iter()
            .map(|n| {
                let active = leader.as_ref().is_some_and(|l| l.node.id == n.node.id);
                serde_json::json!({
                    "hostname": n.node.hostname,
                    "api_address": n.node.api_addr,
                    "cluster_address": n.node.cluster_addr,
                    "active_node": active,
                    "last_echo": if active { serde_json::Value::Null } else { crate::util::rfc3339(n.last_seen).into() },
                    "version": n.node.version,
                    "upgrade_version": n.node.version,
                    "redundancy_zone": "",
                })
            })
            .collect();
        Ok(serde_json::json!({ "nodes": nodes }))
    }

    /// Gives the lease up (shutdown), so a standby takes over without waiting for it to run out.
    pub(crate) async fn release_lease(&self) {
        if let Some(lease) = &self.ha {
            lease.release().await;
        }
    }
}
