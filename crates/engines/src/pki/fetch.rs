//! Reading what the mount issued and who issued it: `ca` (DER) and `ca/pem`, `ca_chain`,
//! `cert/:serial` (with the special serials `ca`, `ca_chain`, `crl`, `delta-crl`),
//! `cert/:serial/raw(/pem)` and `certs` (LIST). Also the certificate store itself
//! ([`CertRecord`] at `certs/<serial>`).

use super::crl;
use super::issuers;
use super::revoke::get_revoked;
use super::x509::{b64, cert_pem, normalize_serial, serial_key, unb64, CertInfo, IssuedCert};
use super::{bad, raw, Pki};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Path};
use tresor_core::logical::{Operation::*, Response};

pub const CERT_PREFIX: &str = "certs/";

/// An issued certificate in the store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertRecord {
    /// Base64 DER.
    pub certificate: String,
    #[serde(default)]
    pub issuer_id: String,
    #[serde(default)]
    pub not_after: i64,
    #[serde(default)]
    pub serial_number: String,
}

impl CertRecord {
    pub fn new(cert: &IssuedCert, issuer_id: &str) -> CertRecord {
        CertRecord {
            certificate: b64(&cert.der),
            issuer_id: issuer_id.to_string(),
            not_after: cert.not_after,
            serial_number: cert.serial.clone(),
        }
    }
    pub fn der(&self) -> Result<Vec<u8>> {
        unb64(&self.certificate).ok_or_else(|| Error::internal("corrupt stored certificate"))
    }
}

pub async fn store_cert(s: &View, r: &CertRecord) -> Result<()> {
    s.put_json(&format!("{CERT_PREFIX}{}", serial_key(&r.serial_number)), r)
        .await
}

pub async fn get_cert(s: &View, serial: &str) -> Result<Option<CertRecord>> {
    s.get_json(&format!("{CERT_PREFIX}{}", serial_key(serial)))
        .await
}

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("ca(?P<pem>/pem)?")
            .op(Read, ca)
            .help("The default issuer's certificate (DER, or PEM at ca/pem)."),
        Path::new("ca_chain|cert/ca_chain/raw")
            .op(Read, ca_chain)
            .help("The default issuer's chain (PEM)."),
        Path::new(r"cert/(?P<serial>[0-9A-Za-z_:\-]+)/raw(?P<pem>/pem)?")
            .op(Read, cert_raw)
            .help("A certificate, DER (or PEM at .../raw/pem)."),
        Path::new(r"cert/(?P<serial>[0-9A-Za-z_:\-]+)")
            .op(Read, cert)
            .help("A certificate by serial number, or ca, ca_chain, crl."),
        Path::new("certs/?")
            .op(List, list)
            .help("List the serial numbers of stored certificates."),
    ]
}

async fn default_issuer(s: &View) -> Result<Option<issuers::IssuerEntry>> {
    let cfg = issuers::issuers_config(s).await?;
    if cfg.default.is_empty() {
        return Ok(None);
    }
    issuers::get_issuer(s, &cfg.default).await
}

async fn ca(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let pem = c.fields.has("pem") && !c.fields.str("pem").is_empty();
    let ct = if pem {
        "application/pem-certificate-chain"
    } else {
        "application/pkix-cert"
    };
    let Some(i) = default_issuer(&c.storage).await? else {
        return Ok(raw(204, ct, vec![]));
    };
    if pem {
        return Ok(raw(200, ct, format!("{}\n", i.certificate).into_bytes()));
    }
    Ok(raw(200, ct, CertInfo::from_pem(&i.certificate)?.der))
}

async fn ca_chain(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let Some(i) = default_issuer(&c.storage).await? else {
        return Ok(raw(204, "application/pkix-cert", vec![]));
    };
    Ok(raw(
        200,
        "application/pkix-cert",
        format!("{}\n", i.ca_chain.join("\n")).into_bytes(),
    ))
}

async fn cert_raw(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let serial = normalize_serial(c.fields.str("serial"));
    let der = match serial.as_str() {
        "ca" => match default_issuer(&c.storage).await? {
            Some(i) => CertInfo::from_pem(&i.certificate)?.der,
            None => return Err(bad("no default issuer currently configured")),
        },
        _ => match get_cert(&c.storage, &serial).await? {
            Some(r) => r.der()?,
            None => return Err(Error::NotFound),
        },
    };
    if c.fields.has("pem") && !c.fields.str("pem").is_empty() {
        Ok(raw(
            200,
            "application/pem-certificate-chain",
            format!("{}\n", cert_pem(&der)).into_bytes(),
        ))
    } else {
        Ok(raw(200, "application/pkix-cert", der))
    }
}

async fn cert(b: Arc<Pki>, c: Call) -> Result<Response> {
    let serial = normalize_serial(c.fields.str("serial"));
    let plain = |certificate: String| {
        Response::data(json!({
            "certificate": certificate,
            "revocation_time": 0,
            "revocation_time_rfc3339": "",
        }))
    };
    match serial.as_str() {
        "ca" | "ca_chain" => {
            let Some(i) = default_issuer(&c.storage).await? else {
                return Err(bad("no default issuer currently configured"));
            };
            let mut r = plain(i.certificate.clone());
            if serial == "ca_chain" {
                if let Some(d) = r.data.as_mut() {
                    d.insert("ca_chain".into(), json!(i.ca_chain.join("\n")));
                }
            }
            return Ok(r);
        }
        "crl" | "delta-crl" | "delta_crl" => {
            let Some(i) = default_issuer(&c.storage).await? else {
                return Err(bad("no default issuer currently configured"));
            };
            let der = crl::current(&b, &c.storage, &i.id).await?;
            return Ok(plain(super::x509::pem_encode("X509 CRL", &der)));
        }
        _ => {}
    }
    let Some(rec) = get_cert(&c.storage, &serial).await? else {
        return Err(Error::NotFound);
    };
    let certificate = cert_pem(&rec.der()?);
    match get_revoked(&c.storage, &serial).await? {
        Some(rev) => Ok(Response::data(json!({
            "certificate": certificate,
            "issuer_id": rev.issuer_id,
            "revocation_time": rev.revocation_time,
            "revocation_time_rfc3339": rev.revocation_time_rfc3339,
        }))),
        None => Ok(plain(certificate)),
    }
}

async fn list(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let mut keys: Vec<String> = c
        .storage
        .list(CERT_PREFIX)
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
