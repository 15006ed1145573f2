//! Tidying: removing certificates (and revocations) that expired more than `safety_buffer` ago,
//! and optionally expired issuers. `tidy` starts a run in the background (202), `tidy-status`
//! reports the last or current run, `tidy-cancel` stops it, and `config/auto-tidy` schedules
//! runs every `interval_duration`, driven by [`periodic`] (called about once a second by the
//! core; a tick with nothing due is one atomic load).
//!
//! The certificate store is walked a page at a time (storage range scans), so a tidy never
//! holds the whole store in memory.

use super::crl;
use super::fetch::{CertRecord, CERT_PREFIX};
use super::issuers;
use super::revoke::{RevokedRecord, REVOKED_PREFIX};
use super::x509::{now_unix, rfc3339_nanos};
use super::{bad, Pki};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::Result;
use tresor_core::framework::{parse_duration_str, Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub const AUTO_TIDY_CONFIG: &str = "config/auto-tidy";
pub const LAST_AUTO_TIDY: &str = "tidy/last-auto";
const PAGE: usize = 500;

/// What a tidy run does.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TidyParams {
    pub tidy_cert_store: bool,
    pub tidy_revoked_certs: bool,
    pub tidy_revoked_cert_issuer_associations: bool,
    pub tidy_expired_issuers: bool,
    pub tidy_move_legacy_ca_bundle: bool,
    pub tidy_acme: bool,
    pub tidy_invalid_certs: bool,
    pub safety_buffer: u64,
    pub issuer_safety_buffer: u64,
    pub acme_account_safety_buffer: u64,
    pub revoked_safety_buffer: u64,
    pub pause_duration: String,
    pub page_size: u64,
}

impl Default for TidyParams {
    fn default() -> Self {
        TidyParams {
            tidy_cert_store: false,
            tidy_revoked_certs: false,
            tidy_revoked_cert_issuer_associations: false,
            tidy_expired_issuers: false,
            tidy_move_legacy_ca_bundle: false,
            tidy_acme: false,
            tidy_invalid_certs: false,
            safety_buffer: 259200,
            issuer_safety_buffer: 31536000,
            acme_account_safety_buffer: 2592000,
            revoked_safety_buffer: 259200,
            pause_duration: "0s".into(),
            page_size: 1000,
        }
    }
}

impl TidyParams {
    fn any(&self) -> bool {
        self.tidy_cert_store
            || self.tidy_revoked_certs
            || self.tidy_revoked_cert_issuer_associations
            || self.tidy_expired_issuers
            || self.tidy_move_legacy_ca_bundle
            || self.tidy_acme
            || self.tidy_invalid_certs
    }
}

/// `config/auto-tidy`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoTidy {
    pub enabled: bool,
    pub interval_duration: u64,
    pub maintain_stored_certificate_counts: bool,
    pub publish_stored_certificate_count_metrics: bool,
    #[serde(flatten)]
    pub params: TidyParams,
}

impl Default for AutoTidy {
    fn default() -> Self {
        AutoTidy {
            enabled: false,
            interval_duration: 43200,
            maintain_stored_certificate_counts: false,
            publish_stored_certificate_count_metrics: false,
            params: TidyParams::default(),
        }
    }
}

/// The last or current run, as `tidy-status` reports it.
#[derive(Clone, Debug, Default)]
pub struct TidyStatus {
    pub state: String,
    pub params: Option<TidyParams>,
    pub time_started: String,
    pub time_finished: String,
    pub message: String,
    pub error: String,
    pub cert_store_deleted_count: u64,
    pub revoked_cert_deleted_count: u64,
    pub missing_issuer_cert_count: u64,
    pub last_auto_tidy_finished: String,
}

/// A mount's tidy bookkeeping.
#[derive(Default)]
pub struct TidyState {
    pub status: Mutex<TidyStatus>,
    running: AtomicBool,
    cancel: AtomicBool,
    /// When auto-tidy should next look (unix); 0 = read the config first.
    next_check: AtomicI64,
}

fn tidy_fields(p: Path<Pki>) -> Path<Pki> {
    let d = TidyParams::default();
    p.field(
        "tidy_cert_store",
        Field::bool("remove expired certificates"),
    )
    .field(
        "tidy_revoked_certs",
        Field::bool("remove expired revoked certificates"),
    )
    .field(
        "tidy_revoked_cert_issuer_associations",
        Field::bool("fix revoked certificates' issuers"),
    )
    .field(
        "tidy_expired_issuers",
        Field::bool("remove expired issuers"),
    )
    .field("tidy_move_legacy_ca_bundle", Field::bool("unused"))
    .field("tidy_acme", Field::bool("unused"))
    .field("tidy_invalid_certs", Field::bool("unused"))
    .field(
        "safety_buffer",
        Field::duration("how long after expiry to keep certificates").default(d.safety_buffer),
    )
    .field(
        "issuer_safety_buffer",
        Field::duration("how long after expiry to keep issuers").default(d.issuer_safety_buffer),
    )
    .field(
        "acme_account_safety_buffer",
        Field::duration("unused").default(d.acme_account_safety_buffer),
    )
    .field(
        "revoked_safety_buffer",
        Field::duration("unused").default(d.revoked_safety_buffer),
    )
    .field(
        "pause_duration",
        Field::string("pause between certificates").default("0s"),
    )
    .field("page_size", Field::int("storage page size").default(1000))
}

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        tidy_fields(Path::new("tidy"))
            .op(Update, tidy)
            .help("Remove expired certificates from the store."),
        Path::new("tidy-status")
            .op(Read, status)
            .help("The last or current tidy run."),
        Path::new("tidy-cancel")
            .op(Update, cancel)
            .help("Cancel the running tidy."),
        tidy_fields(Path::new("config/auto-tidy"))
            .field("enabled", Field::bool("run tidy on a schedule"))
            .field(
                "interval_duration",
                Field::duration("interval between runs").default(43200),
            )
            .field("maintain_stored_certificate_counts", Field::bool("unused"))
            .field(
                "publish_stored_certificate_count_metrics",
                Field::bool("unused"),
            )
            .op(Read, read_auto)
            .op(Update, write_auto)
            .help("Scheduled tidying."),
    ]
}

fn params_from(c: &Call, base: &TidyParams, only_present: bool) -> Result<TidyParams> {
    let mut p = base.clone();
    let set = |n: &str| !only_present || c.fields.has(n);
    macro_rules! flag {
        ($f:ident) => {
            if set(stringify!($f)) {
                p.$f = c.fields.bool(stringify!($f));
            }
        };
    }
    macro_rules! dur {
        ($f:ident) => {
            if set(stringify!($f)) {
                p.$f = c.fields.duration(stringify!($f)).as_secs();
            }
        };
    }
    flag!(tidy_cert_store);
    flag!(tidy_revoked_certs);
    flag!(tidy_revoked_cert_issuer_associations);
    flag!(tidy_expired_issuers);
    flag!(tidy_move_legacy_ca_bundle);
    flag!(tidy_acme);
    flag!(tidy_invalid_certs);
    dur!(safety_buffer);
    dur!(issuer_safety_buffer);
    dur!(acme_account_safety_buffer);
    dur!(revoked_safety_buffer);
    if set("pause_duration") {
        let v = c.fields.str("pause_duration").to_string();
        if parse_duration_str(&v).is_none() {
            return Err(bad(format!(
                "Error parsing pause_duration: invalid duration {v:?}"
            )));
        }
        p.pause_duration = v;
    }
    if set("page_size") {
        p.page_size = c.fields.int("page_size").max(1) as u64;
    }
    if p.safety_buffer < 1 {
        return Err(bad("safety_buffer must be greater than zero"));
    }
    Ok(p)
}

async fn tidy(b: Arc<Pki>, c: Call) -> Result<Response> {
    let p = params_from(&c, &TidyParams::default(), false)?;
    if !p.any() {
        return Ok(Response {
            status: Some(202),
            ..Default::default()
        }
        .with_warning("Manual tidy requested but no tidy operations were set. Enable at least one tidy operation to be run (tidy_cert_store / tidy_revoked_certs / tidy_invalid_certs / tidy_revoked_cert_issuer_associations / tidy_expired_issuers / tidy_move_legacy_ca_bundle / tidy_acme)."));
    }
    if !start(&b, c.storage.clone(), p, false) {
        return Err(bad("Tidy operation already in progress."));
    }
    Ok(Response {
        status: Some(202),
        ..Default::default()
    }
    .with_warning("Tidy operation successfully started. Any information from the operation will be printed to the server's logs."))
}

/// Starts a run in the background unless one is running; returns whether it started.
pub fn start(b: &Arc<Pki>, s: View, p: TidyParams, auto: bool) -> bool {
    if b.tidy
        .running
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return false;
    }
    b.tidy.cancel.store(false, Ordering::SeqCst);
    {
        let mut st = b.tidy.status.lock();
        let last_auto = st.last_auto_tidy_finished.clone();
        *st = TidyStatus {
            state: "Running".into(),
            params: Some(p.clone()),
            time_started: rfc3339_nanos(time::OffsetDateTime::now_utc()),
            last_auto_tidy_finished: last_auto,
            ..Default::default()
        };
    }
    let b = b.clone();
    tokio::spawn(async move {
        let result = run(&b, &s, &p).await;
        let finished = rfc3339_nanos(time::OffsetDateTime::now_utc());
        {
            let mut st = b.tidy.status.lock();
            st.time_finished = finished.clone();
            match &result {
                Ok(()) if b.tidy.cancel.load(Ordering::SeqCst) => st.state = "Cancelled".into(),
                Ok(()) => st.state = "Finished".into(),
                Err(e) => {
                    st.state = "Error".into();
                    st.error = e.to_string();
                }
            }
            if auto {
                st.last_auto_tidy_finished = finished.clone();
            }
        }
        if auto {
            let _ = s.put_json(LAST_AUTO_TIDY, &now_unix()).await;
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "PKI tidy failed");
        }
        b.tidy.running.store(false, Ordering::SeqCst);
    });
    true
}

/// One run (also used directly by tests).
pub async fn run(b: &Pki, s: &View, p: &TidyParams) -> Result<()> {
    let now = now_unix();
    let buffer = p.safety_buffer as i64;
    let pause = parse_duration_str(&p.pause_duration).unwrap_or_default();
    let page = (p.page_size as usize).clamp(1, PAGE);
    let mut crl_dirty = false;
    let cancelled = || b.tidy.cancel.load(Ordering::SeqCst);

    if p.tidy_cert_store {
        let mut after: Option<String> = None;
        'store: loop {
            let keys = s.scan(CERT_PREFIX, after.as_deref(), page).await?;
            if keys.is_empty() {
                break;
            }
            after = keys.last().cloned();
            for k in keys {
                if cancelled() {
                    break 'store;
                }
                let Some(rec): Option<CertRecord> = s.get_json(&k).await? else {
                    continue;
                };
                if rec.not_after + buffer < now {
                    s.delete(&k).await?;
                    b.tidy.status.lock().cert_store_deleted_count += 1;
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
    if p.tidy_revoked_certs || p.tidy_revoked_cert_issuer_associations {
        let issuer_ids: Vec<String> = issuers::list_issuers(s)
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect();
        let mut after: Option<String> = None;
        'revoked: loop {
            let keys = s.scan(REVOKED_PREFIX, after.as_deref(), page).await?;
            if keys.is_empty() {
                break;
            }
            after = keys.last().cloned();
            for k in keys {
                if cancelled() {
                    break 'revoked;
                }
                let Some(mut rec): Option<RevokedRecord> = s.get_json(&k).await? else {
                    continue;
                };
                if p.tidy_revoked_certs && rec.not_after() + buffer < now {
                    s.delete(&k).await?;
                    let serial_key = &k[REVOKED_PREFIX.len()..];
                    s.delete(&format!("{CERT_PREFIX}{serial_key}")).await?;
                    b.tidy.status.lock().revoked_cert_deleted_count += 1;
                    crl_dirty = true;
                } else if p.tidy_revoked_cert_issuer_associations
                    && !issuer_ids.contains(&rec.issuer_id)
                {
                    b.tidy.status.lock().missing_issuer_cert_count += 1;
                    if let Some(d) = super::x509::unb64(&rec.certificate) {
                        if let Ok(info) = super::x509::CertInfo::parse(&d) {
                            for i in issuers::list_issuers(s).await? {
                                if let Ok(pi) = super::x509::CertInfo::from_pem(&i.certificate) {
                                    if info.signed_by(&pi) {
                                        rec.issuer_id = i.id.clone();
                                        s.put_json(&k, &rec).await?;
                                        crl_dirty = true;
                                        break;
                                    }
                                }
                            }
                        }
                    }
                }
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
    if p.tidy_expired_issuers && !cancelled() {
        let default = issuers::issuers_config(s).await?.default;
        let ibuf = p.issuer_safety_buffer as i64;
        let mut removed = false;
        for i in issuers::list_issuers(s).await? {
            if i.id == default {
                continue;
            }
            if let Ok(info) = super::x509::CertInfo::from_pem(&i.certificate) {
                if info.not_after + ibuf < now {
                    s.delete(&format!("{}{}", issuers::ISSUER_PREFIX, i.id))
                        .await?;
                    s.delete(&format!("{}{}", crl::CRL_PREFIX, i.id)).await?;
                    removed = true;
                }
            }
        }
        if removed {
            issuers::rebuild_chains(s).await?;
            b.invalidate();
        }
    }
    if crl_dirty {
        crl::rebuild_all(b, s).await?;
    }
    Ok(())
}

fn status_json(st: &TidyStatus, mount_uuid: &str) -> Value {
    let p = st.params.clone().unwrap_or_default();
    let opt = |s: &str| {
        if s.is_empty() {
            Value::Null
        } else {
            json!(s)
        }
    };
    json!({
        "acme_account_deleted_count": 0,
        "acme_account_revoked_count": 0,
        "acme_account_safety_buffer": p.acme_account_safety_buffer,
        "acme_orders_deleted_count": 0,
        "cert_store_deleted_count": st.cert_store_deleted_count,
        "current_cert_store_count": null,
        "current_revoked_cert_count": null,
        "error": opt(&st.error),
        "internal_backend_uuid": mount_uuid,
        "issuer_safety_buffer": p.issuer_safety_buffer,
        "last_auto_tidy_finished": opt(&st.last_auto_tidy_finished),
        "message": opt(&st.message),
        "missing_issuer_cert_count": st.missing_issuer_cert_count,
        "page_size": p.page_size,
        "pause_duration": p.pause_duration,
        "revoked_cert_deleted_count": st.revoked_cert_deleted_count,
        "revoked_safety_buffer": p.revoked_safety_buffer,
        "safety_buffer": p.safety_buffer,
        "state": if st.state.is_empty() { "Inactive" } else { st.state.as_str() },
        "tidy_acme": p.tidy_acme,
        "tidy_cert_store": p.tidy_cert_store,
        "tidy_expired_issuers": p.tidy_expired_issuers,
        "tidy_invalid_certs": p.tidy_invalid_certs,
        "tidy_move_legacy_ca_bundle": p.tidy_move_legacy_ca_bundle,
        "tidy_revoked_cert_issuer_associations": p.tidy_revoked_cert_issuer_associations,
        "tidy_revoked_certs": p.tidy_revoked_certs,
        "time_finished": opt(&st.time_finished),
        "time_started": opt(&st.time_started),
        "total_acme_account_count": 0,
    })
}

async fn status(b: Arc<Pki>, c: Call) -> Result<Response> {
    let st = b.tidy.status.lock().clone();
    Ok(Response::data(status_json(&st, &c.mount.uuid)))
}

async fn cancel(b: Arc<Pki>, c: Call) -> Result<Response> {
    if !b.tidy.running.load(Ordering::SeqCst) {
        return Ok(Response {
            status: Some(200),
            ..Default::default()
        }
        .with_warning("Tidy operation cannot be cancelled as none is currently running."));
    }
    b.tidy.cancel.store(true, Ordering::SeqCst);
    b.tidy.status.lock().state = "Cancelling".into();
    let st = b.tidy.status.lock().clone();
    Ok(Response::data(status_json(&st, &c.mount.uuid)))
}

pub async fn auto_config(s: &View) -> Result<AutoTidy> {
    Ok(s.get_json(AUTO_TIDY_CONFIG).await?.unwrap_or_default())
}

fn auto_json(a: &AutoTidy) -> Value {
    serde_json::to_value(a).unwrap_or_default()
}

async fn read_auto(_b: Arc<Pki>, c: Call) -> Result<Response> {
    Ok(Response::data(auto_json(&auto_config(&c.storage).await?)))
}

async fn write_auto(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let mut a = auto_config(&c.storage).await?;
    a.params = params_from(&c, &a.params, true)?;
    if c.fields.has("enabled") {
        a.enabled = c.fields.bool("enabled");
    }
    if c.fields.has("interval_duration") {
        a.interval_duration = c.fields.duration("interval_duration").as_secs();
    }
    for (n, t) in [
        (
            "maintain_stored_certificate_counts",
            &mut a.maintain_stored_certificate_counts,
        ),
        (
            "publish_stored_certificate_count_metrics",
            &mut a.publish_stored_certificate_count_metrics,
        ),
    ] {
        if c.fields.has(n) {
            *t = c.fields.bool(n);
        }
    }
    if a.enabled && !a.params.any() {
        return Err(bad("Auto-tidy enabled but no tidy operations were requested. Enable at least one tidy operation to be run (tidy_cert_store / tidy_revoked_certs / tidy_revoked_cert_issuer_associations / tidy_expired_issuers / tidy_move_legacy_ca_bundle / tidy_acme)."));
    }
    c.storage.put_json(AUTO_TIDY_CONFIG, &a).await?;
    b.tidy.next_check.store(0, Ordering::SeqCst);
    Ok(Response::data(auto_json(&a)))
}

/// Called about once a second: starts an auto-tidy run when one is due.
pub async fn periodic(b: &Arc<Pki>, s: &View) -> Result<()> {
    let now = now_unix();
    let next = b.tidy.next_check.load(Ordering::Relaxed);
    if next != 0 && now < next {
        return Ok(());
    }
    let a = auto_config(s).await?;
    if !a.enabled {
        // Nothing scheduled; config writes reset the check, so look again only now and then.
        b.tidy.next_check.store(now + 300, Ordering::Relaxed);
        return Ok(());
    }
    let last: i64 = s.get_json(LAST_AUTO_TIDY).await?.unwrap_or(0);
    let due = last + a.interval_duration.max(1) as i64;
    if now < due {
        b.tidy.next_check.store(due, Ordering::Relaxed);
        return Ok(());
    }
    // Record the start so a crash mid-run does not retry in a tight loop.
    s.put_json(LAST_AUTO_TIDY, &now).await?;
    b.tidy
        .next_check
        .store(now + a.interval_duration.max(1) as i64, Ordering::Relaxed);
    start(b, s.clone(), a.params, true);
    Ok(())
}
