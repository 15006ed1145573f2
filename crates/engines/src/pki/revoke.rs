//! Revocation: `revoke` (by serial or certificate), `revoke-with-key` (proof of possession),
//! `certs/revoked` (LIST), and the lease revoke hook: revoking the lease of a certificate issued
//! with `generate_lease` revokes the certificate. A revocation is recorded at
//! `revoked/<serial>` and the issuer's CRL is rebuilt right away, so CRL and OCSP answers
//! reflect it at once.

use super::crl::{self, crl_config};
use super::fetch::{get_cert, store_cert, CertRecord};
use super::issuers::{self, issuer_with_serial};
use super::keys::PrivKey;
use super::x509::{
    normalize_serial, now_unix, pem_certs, rfc3339_nanos, serial_key, unb64, CertInfo,
};
use super::{bad, Pki};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, LeaseCall, Path};
use tresor_core::logical::{Operation::*, Response};

pub const REVOKED_PREFIX: &str = "revoked/";

/// A revocation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub serial_number: String,
    /// Base64 DER of the revoked certificate.
    pub certificate: String,
    pub revocation_time: i64,
    pub revocation_time_rfc3339: String,
    /// The issuer whose CRL lists it.
    #[serde(default)]
    pub issuer_id: String,
}

impl RevokedRecord {
    pub fn not_after(&self) -> i64 {
        unb64(&self.certificate)
            .and_then(|d| CertInfo::parse(&d).ok())
            .map(|i| i.not_after)
            .unwrap_or(0)
    }
}

pub async fn get_revoked(s: &View, serial: &str) -> Result<Option<RevokedRecord>> {
    s.get_json(&format!("{REVOKED_PREFIX}{}", serial_key(serial)))
        .await
}

pub async fn store_revoked(s: &View, r: &RevokedRecord) -> Result<()> {
    s.put_json(
        &format!("{REVOKED_PREFIX}{}", serial_key(&r.serial_number)),
        r,
    )
    .await
}

/// Every revocation (for CRLs, OCSP and tidy).
pub async fn list_revoked(s: &View) -> Result<Vec<RevokedRecord>> {
    let mut out = Vec::new();
    for k in s.list(REVOKED_PREFIX).await? {
        if let Some(r) = s.get_json(&format!("{REVOKED_PREFIX}{k}")).await? {
            out.push(r);
        }
    }
    Ok(out)
}

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("revoke")
            .field(
                "serial_number",
                Field::string("serial of the certificate to revoke"),
            )
            .field(
                "certificate",
                Field::string("PEM of the certificate to revoke"),
            )
            .op(Update, revoke)
            .help("Revoke a certificate."),
        Path::new("revoke-with-key")
            .field(
                "serial_number",
                Field::string("serial of the certificate to revoke"),
            )
            .field(
                "certificate",
                Field::string("PEM of the certificate to revoke"),
            )
            .field(
                "private_key",
                Field::string("the certificate's private key (PEM)"),
            )
            .op(Update, revoke_with_key)
            .help("Revoke a certificate, proving possession of its key."),
        Path::new("certs/revoked/?")
            .op(List, list)
            .help("List the serial numbers of revoked certificates."),
    ]
}

/// What a revocation answered.
pub enum Outcome {
    Revoked(RevokedRecord),
    /// Already expired: nothing to do (Vault's warning).
    Expired(String),
}

/// Revokes a stored certificate by serial, or the given certificate when it was issued by one
/// of the mount's issuers. Rebuilds the issuer's CRL.
pub async fn revoke_cert(
    b: &Pki,
    s: &View,
    serial: Option<&str>,
    cert_pem: Option<&str>,
) -> Result<Outcome> {
    let (serial, record) = match (serial, cert_pem) {
        (Some(serial), None) => {
            let serial = normalize_serial(serial);
            (serial.clone(), get_cert(s, &serial).await?)
        }
        (None, Some(pem)) => {
            let der = pem_certs(pem)
                .into_iter()
                .next()
                .ok_or_else(|| bad("certificate could not be PEM-decoded"))?;
            let info = CertInfo::parse(&der)?;
            let rec = match get_cert(s, &info.serial).await? {
                Some(r) => Some(r),
                None => {
                    // Not stored (no_store): accept it if one of our issuers signed it.
                    let mut found = None;
                    for i in issuers::list_issuers(s).await? {
                        if let Ok(p) = CertInfo::from_pem(&i.certificate) {
                            if info.signed_by(&p) {
                                found = Some(CertRecord::new(&(&info).into(), &i.id));
                                break;
                            }
                        }
                    }
                    match found {
                        Some(r) => Some(r),
                        None => {
                            return Err(bad(
                                "unable to verify signature on presented cert from any present issuer in this mount; certificates from previous CAs will need to have their issuing CA and key re-imported if revocation is necessary",
                            ))
                        }
                    }
                }
            };
            (info.serial, rec)
        }
        (Some(_), Some(_)) => {
            return Err(bad(
                "Must provide either the certificate or the serial to revoke; not both.",
            ))
        }
        (None, None) => {
            return Err(bad(
                "The serial number or certificate to revoke must be provided.",
            ))
        }
    };
    if let Some(i) = issuer_with_serial(s, &serial).await? {
        return Err(bad(format!(
            "adding issuer (id: {}) to its own CRL is not allowed",
            i.id
        )));
    }
    let Some(record) = record else {
        return Err(bad(format!("certificate with serial {serial} not found.")));
    };
    let guard = b.write_lock.lock().await;
    if let Some(existing) = get_revoked(s, &serial).await? {
        return Ok(Outcome::Revoked(existing));
    }
    if record.not_after < now_unix() && !crl_config(s).await?.allow_expired_cert_revocation {
        return Ok(Outcome::Expired(format!(
            "certificate with serial {serial} already expired; refusing to add to CRL. Enable 'AllowExpiredCertRevocation' to allow revoking expired certificates."
        )));
    }
    if get_cert(s, &serial).await?.is_none() {
        store_cert(s, &record).await?;
    }
    let now = time::OffsetDateTime::now_utc();
    let rec = RevokedRecord {
        serial_number: serial.clone(),
        certificate: record.certificate.clone(),
        revocation_time: now.unix_timestamp(),
        revocation_time_rfc3339: rfc3339_nanos(now),
        issuer_id: record.issuer_id.clone(),
    };
    store_revoked(s, &rec).await?;
    drop(guard);
    if !rec.issuer_id.is_empty() {
        if let Err(e) = crl::rebuild(b, s, &rec.issuer_id).await {
            tracing::warn!(error = %e, "CRL rebuild after revocation failed");
        }
    }
    Ok(Outcome::Revoked(rec))
}

fn answer(o: Outcome) -> Response {
    match o {
        Outcome::Revoked(r) => Response::data(json!({
            "revocation_time": r.revocation_time,
            "revocation_time_rfc3339": r.revocation_time_rfc3339,
            "state": "revoked",
        })),
        Outcome::Expired(w) => Response {
            status: Some(200),
            ..Default::default()
        }
        .with_warning(w),
    }
}

fn inputs(c: &Call) -> (Option<&str>, Option<&str>) {
    let serial = Some(c.fields.str("serial_number")).filter(|s| !s.trim().is_empty());
    let cert = Some(c.fields.str("certificate")).filter(|s| !s.trim().is_empty());
    (serial, cert)
}

async fn revoke(b: Arc<Pki>, c: Call) -> Result<Response> {
    let (serial, cert) = inputs(&c);
    Ok(answer(revoke_cert(&b, &c.storage, serial, cert).await?))
}

async fn revoke_with_key(b: Arc<Pki>, c: Call) -> Result<Response> {
    let (serial, cert) = inputs(&c);
    let der = match (serial, cert) {
        (Some(s), None) => get_cert(&c.storage, s)
            .await?
            .ok_or_else(|| {
                bad(format!(
                    "certificate with serial {} not found.",
                    normalize_serial(s)
                ))
            })?
            .der()?,
        (None, Some(p)) => pem_certs(p)
            .into_iter()
            .next()
            .ok_or_else(|| bad("certificate could not be PEM-decoded"))?,
        _ => return Ok(answer(revoke_cert(&b, &c.storage, serial, cert).await?)),
    };
    let info = CertInfo::parse(&der)?;
    let key = PrivKey::from_pem(c.fields.str("private_key"))
        .map_err(|_| bad("failed to parse provided private key"))?;
    if key.spki() != info.spki {
        return Err(bad(
            "failed to validate that the provided private key matches the certificate",
        ));
    }
    Ok(answer(revoke_cert(&b, &c.storage, serial, cert).await?))
}

async fn list(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let mut keys: Vec<String> = c
        .storage
        .list(REVOKED_PREFIX)
        .await?
        .into_iter()
        .map(|k| k.replace('-', ":"))
        .collect();
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    keys.sort();
    Ok(Response::list(keys))
}

/// The lease revoke hook: a certificate's lease ended (revoked or expired), so the
/// certificate is revoked. Certificates that are gone or already expired need nothing.
pub async fn lease_revoked(b: Arc<Pki>, lease: LeaseCall) -> Result<()> {
    let Some(serial) = lease.internal["serial_number"].as_str() else {
        return Ok(());
    };
    if get_cert(&lease.storage, serial).await?.is_none() {
        return Ok(());
    }
    match revoke_cert(&b, &lease.storage, Some(serial), None).await {
        Ok(_) => Ok(()),
        // Issuers are never revoked through a lease; nothing else can fail on input.
        Err(Error::BadRequest(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
