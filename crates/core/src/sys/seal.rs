//! The seal API, served whether the barrier is sealed or not: `sys/init`, `sys/unseal`,
//! `sys/seal-status`, `sys/health`, `sys/leader` and `sys/rekey/*`. None needs a token, as in
//! Vault (rekey is protected by needing a threshold of the current unseal keys).

use crate::barrier::b64_encode;
use crate::core::{Core, PendingRekey, RekeyState};
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path, PathBackend};
use crate::logical::{Operation::*, Response};
use crate::seal::{combine, decode_key, new_unseal_key, split, Progress, SealConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Weak};

/// The Vault API version Tresor implements; reported where Vault reports its version.
pub const VAULT_API_VERSION: &str = "1.17.0";

/// Whether `rel` (after `sys/`) belongs to the seal API.
pub fn handles(rel: &str) -> bool {
    matches!(rel, "init" | "unseal" | "seal-status" | "health" | "leader")
        || rel.starts_with("rekey/")
}

pub struct SealApi {
    core: Weak<Core>,
}

impl SealApi {
    fn core(&self) -> Result<Arc<Core>> {
        self.core.upgrade().ok_or(Error::Sealed)
    }
}

pub fn backend(core: Weak<Core>) -> PathBackend<SealApi> {
    PathBackend::new(
        SealApi { core },
        vec![
            Path::new("init")
                .field("secret_shares", Field::int("number of key shares").required())
                .field("secret_threshold", Field::int("shares needed to unseal").required())
                .field("pgp_keys", Field::list("not supported"))
                .field("root_token_pgp_key", Field::string("not supported"))
                .field("stored_shares", Field::int("not supported"))
                .field("recovery_shares", Field::int("not supported"))
                .op(Read, SealApi::init_status)
                .op(Update, SealApi::init)
                .help("Initialize a new server: creates the keyring and returns the unseal key shares and a root token."),
            Path::new("unseal")
                .field("key", Field::string("an unseal key share, hex or base64"))
                .field("reset", Field::bool("discard the shares given so far"))
                .field("migrate", Field::bool("not supported"))
                .op(Update, SealApi::unseal)
                .help("Submit one unseal key share."),
            Path::new("seal-status").op(Read, SealApi::seal_status).help("Seal state and unseal progress."),
            Path::new("health")
                .field("standbyok", Field::bool(""))
                .field("perfstandbyok", Field::bool(""))
                .field("activecode", Field::int("").default(200))
                .field("standbycode", Field::int("").default(429))
                .field("drsecondarycode", Field::int("").default(472))
                .field("performancestandbycode", Field::int("").default(473))
                .field("sealedcode", Field::int("").default(503))
                .field("uninitcode", Field::int("").default(501))
                .op(Read, SealApi::health)
                .help("Health check with Vault's status codes."),
            Path::new("leader").op(Read, SealApi::leader),
            Path::new("rekey/init")
                .field("secret_shares", Field::int("new share count"))
                .field("secret_threshold", Field::int("new threshold"))
                .field("pgp_keys", Field::list("not supported"))
                .field("backup", Field::bool("not supported"))
                .field("require_verification", Field::bool("the new keys take effect only once a threshold of them is given to rekey/verify"))
                .op(Read, SealApi::rekey_status)
                .op(Update, SealApi::rekey_init)
                .op(Delete, SealApi::rekey_cancel)
                .help("Start, read or cancel a rekey (new unseal key shares)."),
            Path::new("rekey/update")
                .field("key", Field::string("a current unseal key share"))
                .field("nonce", Field::string("the rekey nonce"))
                .op(Update, SealApi::rekey_update),
            Path::new("rekey/verify")
                .field("key", Field::string("a new unseal key share"))
                .field("nonce", Field::string("the verification nonce"))
                .op(Read, SealApi::rekey_verify_status)
                .op(Update, SealApi::rekey_verify)
                .op(Delete, SealApi::rekey_verify_restart)
                .help("Prove receipt of the new key shares of a rekey started with require_verification: they take effect once a threshold is given back."),
            Path::new("rekey/backup")
                .op(Read, |_s: Arc<SealApi>, _c| async move {
                    Err::<Response, _>(Error::bad("no backed-up keys found"))
                })
                .op(Delete, |_s: Arc<SealApi>, _c| async move { Ok(Response::default()) })
                .help("PGP-encrypted key backups: Tresor takes no PGP keys, so there is never one."),
        ],
    )
}

impl SealApi {
    async fn init_status(self: Arc<Self>, _c: Call) -> Result<Response> {
        Ok(Response::raw_json(
            200,
            &json!({ "initialized": self.core()?.is_initialized().await? }),
        ))
    }

    async fn init(self: Arc<Self>, c: Call) -> Result<Response> {
        let f = &c.fields;
        if !f.strings("pgp_keys").is_empty() || !f.str("root_token_pgp_key").is_empty() {
            return Err(Error::bad("PGP-encrypted key shares are not supported"));
        }
        let shares = f.int("secret_shares");
        let threshold = f.int("secret_threshold");
        if !(0..=255).contains(&shares) || !(0..=255).contains(&threshold) {
            return Err(Error::bad(
                "secret_shares and secret_threshold must be between 1 and 255",
            ));
        }
        let cfg = SealConfig {
            secret_shares: shares as u8,
            secret_threshold: threshold as u8,
        };
        let r = self.core()?.initialize(cfg, None).await?;
        Ok(Response::raw_json(
            200,
            &json!({
                "keys": r.keys.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
                "keys_base64": r.keys.iter().map(|k| b64_encode(k)).collect::<Vec<_>>(),
                "root_token": r.root_token,
            }),
        ))
    }

    async fn unseal(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        if c.fields.bool("reset") {
            core.unseal_progress.lock().await.reset();
        } else {
            let key = c.fields.str("key");
            if key.is_empty() {
                return Err(Error::bad(
                    "'key' must be specified in request body as JSON, or 'reset' set to true",
                ));
            }
            core.submit_unseal_key(decode_key(key)?).await?;
        }
        Ok(Response::raw_json(200, &seal_status_json(&core).await?))
    }

    async fn seal_status(self: Arc<Self>, _c: Call) -> Result<Response> {
        Ok(Response::raw_json(
            200,
            &seal_status_json(&*self.core()?).await?,
        ))
    }

    async fn health(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let f = &c.fields;
        let initialized = core.is_initialized().await?;
        let sealed = core.is_sealed();
        let standby = core.is_standby();
        // `perfstandbyok` is accepted as `standbyok`: Tresor's standbys are one kind.
        let standby_ok = f.bool("standbyok") || f.bool("perfstandbyok");
        let code = if !initialized {
            f.int("uninitcode")
        } else if sealed {
            f.int("sealedcode")
        } else if standby && !standby_ok {
            f.int("standbycode")
        } else {
            f.int("activecode")
        };
        let body = json!({
            "initialized": initialized,
            "sealed": sealed,
            // As Vault: a sealed node is not active, so it counts as a standby.
            "standby": standby || sealed,
            "performance_standby": false,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": crate::util::unix_now(),
            "version": VAULT_API_VERSION,
            "enterprise": false,
            "cluster_name": core.config.cluster_name,
            "cluster_id": core.cluster_id,
            "echo_duration_ms": 0,
            "clock_skew_ms": 0,
            "replication_primary_canary_age_ms": 0,
            "removed_from_cluster": false,
        });
        // Vault's HEAD-style checks look at the code only; GET gets the body too.
        Ok(Response::raw_json(code.clamp(100, 599) as u16, &body))
    }

    /// Vault's `sys/leader`: whether HA is on, whether this node is the active one, and
    /// where the active node is. Answered sealed or not, so `status` can show it.
    async fn leader(self: Arc<Self>, _c: Call) -> Result<Response> {
        let core = self.core()?;
        let view = core.ha_view();
        let is_self = core.ha_enabled() && core.active().is_ok();
        let leader = view.leader.as_ref().map(|l| &l.node);
        let active_time = match (is_self, view.active_since) {
            (true, Some(t)) => crate::util::rfc3339(t),
            _ => "0001-01-01T00:00:00Z".to_string(),
        };
        Ok(Response::raw_json(
            200,
            &json!({
                "ha_enabled": core.ha_enabled(),
                "is_self": is_self,
                "active_time": active_time,
                "leader_address": leader.map(|n| n.api_addr.as_str()).unwrap_or(""),
                "leader_cluster_address": leader.map(|n| n.cluster_addr.as_str()).unwrap_or(""),
                "performance_standby": false,
                "performance_standby_last_remote_wal": 0,
            }),
        ))
    }

    async fn rekey_status(self: Arc<Self>, _c: Call) -> Result<Response> {
        let core = self.core()?;
        let seal = core.seal_store.required_config().await?;
        let st = core.rekey.lock().await;
        Ok(Response::raw_json(200, &rekey_status_json(&st, &seal)))
    }

    async fn rekey_init(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        // Rekeying writes: only the active node does it (a standby redirects).
        core.active()?;
        let seal = core.seal_store.required_config().await?;
        if !c.fields.strings("pgp_keys").is_empty() {
            return Err(Error::bad("PGP-encrypted key shares are not supported"));
        }
        let cfg = SealConfig {
            secret_shares: c.fields.int("secret_shares").clamp(0, 255) as u8,
            secret_threshold: c.fields.int("secret_threshold").clamp(0, 255) as u8,
        };
        cfg.validate()?;
        let mut st = core.rekey.lock().await;
        if st.is_some() {
            return Err(Error::bad("rekey already in progress"));
        }
        *st = Some(RekeyState {
            config: cfg,
            nonce: crate::util::uuid(),
            progress: Progress::default(),
            require_verification: c.fields.bool("require_verification"),
            pending: None,
        });
        Ok(Response::raw_json(200, &rekey_status_json(&st, &seal)))
    }

    async fn rekey_cancel(self: Arc<Self>, _c: Call) -> Result<Response> {
        *self.core()?.rekey.lock().await = None;
        Ok(Response::default())
    }

    async fn rekey_update(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let seal = core.seal_store.required_config().await?;
        let mut st = core.rekey.lock().await;
        let state = st
            .as_mut()
            .ok_or_else(|| Error::bad("no rekey in progress"))?;
        if state.pending.is_some() {
            return Err(Error::bad(
                "rekey complete; the new keys await verification (sys/rekey/verify)",
            ));
        }
        if c.fields.str("nonce") != state.nonce {
            return Err(Error::bad(format!(
                "incorrect nonce; expected {:?}",
                state.nonce
            )));
        }
        let key = c.fields.str("key");
        if key.is_empty() {
            return Err(Error::bad(
                "'key' must be specified in request body as JSON",
            ));
        }
        state.progress.add(decode_key(key)?);
        if state.progress.shares.len() < seal.secret_threshold as usize {
            return Ok(Response::raw_json(200, &rekey_status_json(&st, &seal)));
        }
        let shares = std::mem::take(&mut state.progress.shares);
        let new_cfg = state.config.clone();
        let nonce = state.nonce.clone();
        let root_key = match core.seal_store.recover_root_key(&shares, &seal).await {
            Ok(k) => k,
            Err(e) => {
                // As Vault: wrong shares end the attempt.
                *st = None;
                return Err(e);
            }
        };
        let unseal_key = new_unseal_key();
        let keys = split(&unseal_key, &new_cfg);
        let mut body = json!({
            "nonce": nonce,
            "complete": true,
            "keys": keys.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
            "keys_base64": keys.iter().map(|k| b64_encode(k)).collect::<Vec<_>>(),
            "pgp_fingerprints": Value::Null,
            "backup": false,
            "verification_required": state.require_verification,
        });
        if state.require_verification {
            let verification_nonce = crate::util::uuid();
            body["verification_nonce"] = json!(verification_nonce);
            state.pending = Some(PendingRekey {
                unseal_key,
                root_key,
                verification_nonce,
                progress: Progress::default(),
            });
        } else {
            *st = None;
            core.seal_store
                .protect_with(&root_key, &unseal_key, &new_cfg)
                .await?;
        }
        Ok(Response::raw_json(200, &body))
    }

    async fn rekey_verify_status(self: Arc<Self>, _c: Call) -> Result<Response> {
        let core = self.core()?;
        let mut st = core.rekey.lock().await;
        let (cfg, pending) = pending_rekey(&mut st)?;
        Ok(Response::raw_json(200, &verify_status_json(cfg, pending)))
    }

    /// Starts the verification over: progress dropped, a new nonce (the new keys stay).
    async fn rekey_verify_restart(self: Arc<Self>, _c: Call) -> Result<Response> {
        let core = self.core()?;
        let mut st = core.rekey.lock().await;
        let (cfg, pending) = pending_rekey(&mut st)?;
        pending.progress.reset();
        pending.verification_nonce = crate::util::uuid();
        Ok(Response::raw_json(200, &verify_status_json(cfg, pending)))
    }

    /// One new key share back; at the threshold, the new keys take effect.
    async fn rekey_verify(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        core.active()?;
        let mut st = core.rekey.lock().await;
        let (cfg, pending) = pending_rekey(&mut st)?;
        let cfg = cfg.clone();
        if c.fields.str("nonce") != pending.verification_nonce {
            return Err(Error::bad(format!(
                "incorrect nonce supplied; nonce for this verify operation is {:?}",
                pending.verification_nonce
            )));
        }
        let key = c.fields.str("key");
        if key.is_empty() {
            return Err(Error::bad(
                "'key' must be specified in request body as JSON",
            ));
        }
        pending.progress.add(decode_key(key)?);
        if pending.progress.shares.len() < cfg.secret_threshold as usize {
            return Ok(Response::raw_json(200, &verify_status_json(&cfg, pending)));
        }
        let shares = std::mem::take(&mut pending.progress.shares);
        let given = combine(&shares, &cfg);
        if !given
            .as_ref()
            .is_ok_and(|k| crate::util::ct_eq(k, &pending.unseal_key))
        {
            pending.progress.reset();
            return Err(Error::bad(
                "the given keys are not the new ones; verification progress was reset",
            ));
        }
        let nonce = pending.verification_nonce.clone();
        core.seal_store
            .protect_with(&pending.root_key, &pending.unseal_key, &cfg)
            .await?;
        *st = None;
        Ok(Response::raw_json(
            200,
            &json!({ "nonce": nonce, "complete": true }),
        ))
    }
}

/// The new seal config and the keys awaiting verification of the rekey in flight, or the
/// error saying there are none.
fn pending_rekey(st: &mut Option<RekeyState>) -> Result<(&SealConfig, &mut PendingRekey)> {
    match st {
        Some(RekeyState {
            config,
            pending: Some(p),
            ..
        }) => Ok((config, p)),
        Some(_) => Err(Error::bad("no rekey verification in progress")),
        None => Err(Error::bad("no rekey configuration found")),
    }
}

fn verify_status_json(cfg: &SealConfig, pending: &PendingRekey) -> Value {
    json!({
        "nonce": pending.verification_nonce,
        "started": true,
        "t": cfg.secret_threshold,
        "n": cfg.secret_shares,
        "progress": pending.progress.shares.len(),
    })
}

fn rekey_status_json(st: &Option<RekeyState>, seal: &SealConfig) -> Value {
    match st {
        Some(s) => json!({
            "nonce": s.nonce, "started": true, "t": s.config.secret_threshold, "n": s.config.secret_shares,
            "progress": s.progress.shares.len(), "required": seal.secret_threshold, "pgp_fingerprints": Value::Null,
            "backup": false, "verification_required": s.require_verification,
            "verification_nonce": s.pending.as_ref().map(|p| p.verification_nonce.as_str()).unwrap_or(""),
        }),
        None => json!({
            "nonce": "", "started": false, "t": 0, "n": 0, "progress": 0, "required": seal.secret_threshold,
            "pgp_fingerprints": Value::Null, "backup": false, "verification_required": false, "verification_nonce": "",
        }),
    }
}

pub async fn seal_status_json(core: &Core) -> Result<Value> {
    let cfg = core.seal_store.config().await?;
    let progress = core.unseal_progress.lock().await;
    Ok(json!({
        "type": "shamir",
        "initialized": cfg.is_some(),
        "sealed": core.is_sealed(),
        "t": cfg.as_ref().map(|c| c.secret_threshold).unwrap_or(0),
        "n": cfg.as_ref().map(|c| c.secret_shares).unwrap_or(0),
        "progress": progress.shares.len(),
        "nonce": progress.nonce,
        "version": VAULT_API_VERSION,
        "build_date": "2026-11-23T00:00:00Z",
        "migration": false,
        "cluster_name": if core.is_sealed() { "" } else { core.config.cluster_name.as_str() },
        "cluster_id": if core.is_sealed() { "" } else { core.cluster_id.as_str() },
        "recovery_seal": false,
        "storage_type": core.config.storage_type,
        "removed_from_cluster": false,
    }))
}
