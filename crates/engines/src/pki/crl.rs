//! CRLs: one per issuer, listing the certificates it issued that were revoked (and revoked
//! child issuers), signed by rcgen with the issuer's key, numbered, and rebuilt on every
//! revocation, on `crl/rotate`, and when read after its `nextUpdate`. Paths: `crl` (DER),
//! `crl/pem`, `crl/delta(/pem)` (no delta CRLs: empty answers), `crl/rotate`,
//! `crl/rotate-delta`, `issuer/:ref/crl(/pem|/der)`, and `config/crl`.

use super::issuers::{self, ISSUER_REF};
use super::revoke::list_revoked;
use super::x509::{b64, key_id, pem_encode, serial_bytes, unb64};
use super::{bad, raw, Pki};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{parse_duration_str, Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub const CRL_PREFIX: &str = "crls/";
pub const CRL_CONFIG: &str = "config/crl";

fn d72h() -> String {
    "72h".into()
}
fn d12h() -> String {
    "12h".into()
}
fn d15m() -> String {
    "15m".into()
}

/// `config/crl`, with Vault's fields and defaults (durations kept as given).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrlConfig {
    #[serde(default = "d72h")]
    pub expiry: String,
    #[serde(default)]
    pub disable: bool,
    #[serde(default)]
    pub ocsp_disable: bool,
    #[serde(default = "d12h")]
    pub ocsp_expiry: String,
    #[serde(default)]
    pub auto_rebuild: bool,
    #[serde(default = "d12h")]
    pub auto_rebuild_grace_period: String,
    #[serde(default)]
    pub enable_delta: bool,
    #[serde(default = "d15m")]
    pub delta_rebuild_interval: String,
    #[serde(default)]
    pub allow_expired_cert_revocation: bool,
}

impl Default for CrlConfig {
    fn default() -> Self {
        serde_json::from_value(json!({})).expect("defaults")
    }
}

impl CrlConfig {
    pub fn expiry_secs(&self) -> u64 {
        parse_duration_str(&self.expiry)
            .map(|d| d.as_secs())
            .unwrap_or(72 * 3600)
    }
    pub fn ocsp_expiry_secs(&self) -> u64 {
        parse_duration_str(&self.ocsp_expiry)
            .map(|d| d.as_secs())
            .unwrap_or(12 * 3600)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

pub async fn crl_config(s: &View) -> Result<CrlConfig> {
    Ok(s.get_json(CRL_CONFIG).await?.unwrap_or_default())
}

/// An issuer's current CRL.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CrlState {
    number: u64,
    /// Base64 DER.
    der: String,
    next_update: i64,
}

/// Builds, signs and stores a new CRL for an issuer; returns its DER.
pub async fn rebuild(b: &Pki, s: &View, issuer_id: &str) -> Result<Vec<u8>> {
    let issuer = b.issuer(s, issuer_id).await?;
    let cfg = crl_config(s).await?;
    let _guard = b.write_lock.lock().await;
    if issuer.key.is_none() {
        return Err(bad(format!(
            "unable to build a CRL for issuer {issuer_id}: the mount does not hold its key"
        )));
    }
    let prev: Option<CrlState> = s.get_json(&format!("{CRL_PREFIX}{issuer_id}")).await?;
    let number = prev.map(|p| p.number + 1).unwrap_or(1);
    let mut revoked = Vec::new();
    if !cfg.disable {
        for r in list_revoked(s).await? {
            if r.issuer_id != issuer.entry.id {
                continue;
            }
            let Some(serial) = serial_bytes(&r.serial_number) else {
                continue;
            };
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: OffsetDateTime::from_unix_timestamp(r.revocation_time)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason_code: None,
                invalidity_date: None,
            });
        }
    }
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let next = now + Duration::from_secs(cfg.expiry_secs().max(1));
    let kid = issuer
        .info
        .skid
        .clone()
        .unwrap_or_else(|| key_id(&issuer.info.public_key_bits));
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: next,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::PreSpecified(kid),
    };
    let crl = params
        .signed_by(issuer.rcgen_issuer()?)
        .map_err(|e| Error::internal(format!("unable to sign the CRL: {e}")))?;
    let der = crl.der().to_vec();
    s.put_json(
        &format!("{CRL_PREFIX}{issuer_id}"),
        &CrlState {
            number,
            der: b64(&der),
            next_update: next.unix_timestamp(),
        },
    )
    .await?;
    Ok(der)
}

/// The issuer's current CRL, rebuilt when missing or past its nextUpdate.
pub async fn current(b: &Pki, s: &View, issuer_id: &str) -> Result<Vec<u8>> {
    let state: Option<CrlState> = s.get_json(&format!("{CRL_PREFIX}{issuer_id}")).await?;
    if let Some(st) = state {
        if st.next_update > super::x509::now_unix() {
            if let Some(der) = unb64(&st.der) {
                return Ok(der);
            }
        }
    }
    rebuild(b, s, issuer_id).await
}

/// Rebuilds the CRL of every issuer that holds a key.
pub async fn rebuild_all(b: &Pki, s: &View) -> Result<()> {
    for i in issuers::list_issuers(s).await? {
        if !i.key_id.is_empty() && i.has_usage("crl-signing") {
            rebuild(b, s, &i.id).await?;
        }
    }
    Ok(())
}

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("crl(?P<pem>/pem)?")
            .op(Read, read_default)
            .help("The default issuer's CRL (DER, or PEM at crl/pem)."),
        Path::new("crl/delta(?P<pem>/pem)?")
            .op(Read, read_delta)
            .help("Delta CRLs are not produced: an empty answer."),
        Path::new("crl/rotate")
            .op(Read, rotate)
            .op(Update, rotate)
            .help("Rebuild every issuer's CRL."),
        Path::new("crl/rotate-delta")
            .op(Read, rotate)
            .op(Update, rotate)
            .help("Rebuild CRLs (there are no delta CRLs)."),
        Path::new(format!("issuer/{ISSUER_REF}/crl(?P<fmt>/pem|/der)?").as_str())
            .op(Read, read_issuer)
            .help("An issuer's CRL."),
        Path::new("config/crl")
            .field("expiry", Field::string("CRL validity").default("72h"))
            .field("disable", Field::bool("publish empty CRLs"))
            .field("ocsp_disable", Field::bool("disable OCSP"))
            .field(
                "ocsp_expiry",
                Field::string("OCSP answer validity").default("12h"),
            )
            .field("auto_rebuild", Field::bool("rebuild CRLs periodically"))
            .field(
                "auto_rebuild_grace_period",
                Field::string("rebuild before expiry").default("12h"),
            )
            .field("enable_delta", Field::bool("produce delta CRLs"))
            .field(
                "delta_rebuild_interval",
                Field::string("delta CRL interval").default("15m"),
            )
            .field(
                "allow_expired_cert_revocation",
                Field::bool("allow revoking expired certificates"),
            )
            .op(Read, read_config)
            .op(Update, write_config)
            .help("CRL and OCSP settings."),
    ]
}

fn crl_answer(der: Vec<u8>, pem: bool) -> Response {
    if pem {
        raw(
            200,
            "application/x-pem-file",
            format!("{}\n", pem_encode("X509 CRL", &der)).into_bytes(),
        )
    } else {
        raw(200, "application/pkix-crl", der)
    }
}

async fn read_default(b: Arc<Pki>, c: Call) -> Result<Response> {
    let pem = c.fields.has("pem") && !c.fields.str("pem").is_empty();
    let cfg = issuers::issuers_config(&c.storage).await?;
    if cfg.default.is_empty() {
        let ct = if pem {
            "application/x-pem-file"
        } else {
            "application/pkix-crl"
        };
        return Ok(raw(204, ct, vec![]));
    }
    Ok(crl_answer(
        current(&b, &c.storage, &cfg.default).await?,
        pem,
    ))
}

async fn read_delta(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let pem = c.fields.has("pem") && !c.fields.str("pem").is_empty();
    let ct = if pem {
        "application/x-pem-file"
    } else {
        "application/pkix-crl"
    };
    Ok(raw(204, ct, vec![]))
}

async fn read_issuer(b: Arc<Pki>, c: Call) -> Result<Response> {
    let id = issuers::resolve_id(&c.storage, c.fields.str("issuer_ref")).await?;
    let der = current(&b, &c.storage, &id).await?;
    match c.fields.str("fmt") {
        "/pem" => Ok(crl_answer(der, true)),
        "/der" => Ok(crl_answer(der, false)),
        _ => Ok(Response::data(
            json!({ "crl": pem_encode("X509 CRL", &der) }),
        )),
    }
}

async fn rotate(b: Arc<Pki>, c: Call) -> Result<Response> {
    rebuild_all(&b, &c.storage).await?;
    Ok(Response::data(json!({ "success": true })))
}

async fn read_config(_b: Arc<Pki>, c: Call) -> Result<Response> {
    Ok(Response::data(crl_config(&c.storage).await?.to_json()))
}

async fn write_config(b: Arc<Pki>, c: Call) -> Result<Response> {
    let guard = b.write_lock.lock().await;
    let mut cfg = crl_config(&c.storage).await?;
    for (name, target, what) in [
        ("expiry", &mut cfg.expiry, "expiry"),
        ("ocsp_expiry", &mut cfg.ocsp_expiry, "ocsp_expiry"),
        (
            "auto_rebuild_grace_period",
            &mut cfg.auto_rebuild_grace_period,
            "auto_rebuild_grace_period",
        ),
        (
            "delta_rebuild_interval",
            &mut cfg.delta_rebuild_interval,
            "delta_rebuild_interval",
        ),
    ] {
        if c.fields.has(name) {
            let v = c.fields.str(name).trim().to_string();
            if parse_duration_str(&v).is_none() {
                return Err(bad(format!(
                    "given {what} could not be decoded: time: invalid duration \"{v}\""
                )));
            }
            *target = v;
        }
    }
    for (name, target) in [
        ("disable", &mut cfg.disable),
        ("ocsp_disable", &mut cfg.ocsp_disable),
        ("auto_rebuild", &mut cfg.auto_rebuild),
        ("enable_delta", &mut cfg.enable_delta),
        (
            "allow_expired_cert_revocation",
            &mut cfg.allow_expired_cert_revocation,
        ),
    ] {
        if c.fields.has(name) {
            *target = c.fields.bool(name);
        }
    }
    c.storage.put_json(CRL_CONFIG, &cfg).await?;
    drop(guard);
    // The expiry or the disable flag may have changed: publish accordingly.
    rebuild_all(&b, &c.storage).await?;
    Ok(Response::data(cfg.to_json()))
}
