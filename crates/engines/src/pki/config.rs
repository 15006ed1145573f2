//! Mount configuration: `config/urls` (the AIA URLs put in issued certificates: CA issuers,
//! CRL distribution points, OCSP servers) and `config/ca` = `issuers/import/bundle` (import a
//! PEM bundle of CA certificates and keys; `issuers/import/cert` takes certificates only;
//! `intermediate/set-signed` uses the same import).

use super::issuers::{self, ImportResult};
use super::keys::PrivKey;
use super::x509::{pem_blocks, CertInfo};
use super::{bad, Pki};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::Result;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use zeroize::Zeroizing;

pub const URLS_CONFIG: &str = "config/urls";

/// The warning Vault gives when a new issuer has no AIA information to go by.
pub const AIA_WARNING: &str = "This mount hasn't configured any authority information access (AIA) fields; this may make it harder for systems to find missing certificates in the chain or to validate revocation status of certificates. Consider updating /config/urls or the newly generated issuer with this information.";

#[derive(Clone, Default, Debug, Serialize, Deserialize)]
pub struct UrlsConfig {
    #[serde(default)]
    pub issuing_certificates: Vec<String>,
    #[serde(default)]
    pub crl_distribution_points: Vec<String>,
    #[serde(default)]
    pub ocsp_servers: Vec<String>,
    #[serde(default)]
    pub delta_crl_distribution_points: Vec<String>,
    #[serde(default)]
    pub enable_templating: bool,
}

impl UrlsConfig {
    pub fn is_empty(&self) -> bool {
        self.issuing_certificates.is_empty()
            && self.crl_distribution_points.is_empty()
            && self.ocsp_servers.is_empty()
    }
    fn to_json(&self) -> serde_json::Value {
        json!({
            "crl_distribution_points": self.crl_distribution_points,
            "delta_crl_distribution_points": self.delta_crl_distribution_points,
            "enable_templating": self.enable_templating,
            "issuing_certificates": self.issuing_certificates,
            "ocsp_servers": self.ocsp_servers,
        })
    }
}

pub async fn urls_config(s: &View) -> Result<UrlsConfig> {
    Ok(s.get_json(URLS_CONFIG).await?.unwrap_or_default())
}

impl Pki {
    /// `config/urls`, cached (every issue reads it); [`write_urls`] clears the cache.
    pub async fn urls(&self, s: &View) -> Result<Arc<UrlsConfig>> {
        let urls = self
            .urls
            .get_or_load("", async { Ok(Some(urls_config(s).await?)) })
            .await?;
        Ok(urls.unwrap_or_default())
    }
}

/// Whether a string is an absolute URL (scheme, `://`, no whitespace), as Vault requires.
pub fn valid_url(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !u.chars().any(char::is_whitespace)
}

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("config/urls")
            .field("issuing_certificates", Field::list("CA issuer URLs"))
            .field(
                "crl_distribution_points",
                Field::list("CRL distribution point URLs"),
            )
            .field("ocsp_servers", Field::list("OCSP server URLs"))
            .field(
                "delta_crl_distribution_points",
                Field::list("delta CRL distribution point URLs"),
            )
            .field("enable_templating", Field::bool("template the URLs"))
            .op(Read, read_urls)
            .op(Update, write_urls)
            .help("The AIA URLs put in issued certificates."),
        Path::new("config/ca")
            .field(
                "pem_bundle",
                Field::string("PEM bundle of CA certificates and keys"),
            )
            .op(Update, write_ca)
            .help("Import CA certificates and private keys."),
        Path::new("issuers/import/bundle")
            .field(
                "pem_bundle",
                Field::string("PEM bundle of CA certificates and keys"),
            )
            .op(Update, write_ca)
            .help("Import CA certificates and private keys (as config/ca)."),
        Path::new("issuers/import/cert")
            .field("pem_bundle", Field::string("PEM bundle of CA certificates"))
            .op(Update, import_certs)
            .help("Import CA certificates only; a bundle with a private key is refused."),
    ]
}

async fn read_urls(_b: Arc<Pki>, c: Call) -> Result<Response> {
    Ok(Response::data(urls_config(&c.storage).await?.to_json()))
}

async fn write_urls(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let mut cfg = urls_config(&c.storage).await?;
    for (name, target) in [
        ("issuing_certificates", &mut cfg.issuing_certificates),
        ("crl_distribution_points", &mut cfg.crl_distribution_points),
        ("ocsp_servers", &mut cfg.ocsp_servers),
        (
            "delta_crl_distribution_points",
            &mut cfg.delta_crl_distribution_points,
        ),
    ] {
        if c.fields.has(name) {
            let urls = c.fields.strings(name);
            for u in &urls {
                if !valid_url(u) {
                    return Err(bad(format!(
                        "invalid URL found in Authority Information Access (AIA) parameter {name}: {u}"
                    )));
                }
            }
            *target = urls;
        }
    }
    if c.fields.has("enable_templating") {
        cfg.enable_templating = c.fields.bool("enable_templating");
    }
    c.storage.put_json(URLS_CONFIG, &cfg).await?;
    b.urls.clear();
    Ok(Response::data(cfg.to_json()))
}

/// Splits a PEM bundle into CA certificates and private keys.
pub fn parse_bundle(pem: &str) -> Result<(Vec<CertInfo>, Vec<PrivKey>)> {
    if pem.trim().len() < 75 {
        return Err(bad("provided data for import was too short; perhaps a path was passed to the API rather than the contents of a PEM file"));
    }
    let blocks = pem_blocks(pem);
    if blocks.is_empty() {
        return Err(bad("no data found in PEM block"));
    }
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for (label, der) in blocks {
        let der = Zeroizing::new(der);
        if label == "CERTIFICATE" {
            let info = CertInfo::parse(&der)?;
            if !info.is_ca {
                return Err(bad(format!(
                    "refusing to import non-CA certificate with serial {}",
                    info.serial
                )));
            }
            certs.push(info);
        } else if label.ends_with("PRIVATE KEY") {
            keys.push(PrivKey::from_der(&der)?);
        } else {
            return Err(bad(format!("unsupported PEM block type: {label}")));
        }
    }
    Ok((certs, keys))
}

/// Imports a bundle and answers as Vault does (with the AIA warning when no URLs are set).
pub async fn import_response(
    b: &Pki,
    s: &View,
    certs: Vec<CertInfo>,
    keys: Vec<PrivKey>,
) -> Result<Response> {
    let r: ImportResult = issuers::import(b, s, certs, keys, "").await?;
    let mut resp = Response::data(r.to_json());
    if urls_config(s).await?.is_empty() {
        resp = resp.with_warning(AIA_WARNING);
    }
    Ok(resp)
}

async fn import_certs(b: Arc<Pki>, c: Call) -> Result<Response> {
    let (certs, keys) = parse_bundle(c.fields.str("pem_bundle"))?;
    if !keys.is_empty() {
        return Err(bad(
            "private keys found in the PEM bundle but not allowed by the path; use /issuers/import/bundle",
        ));
    }
    let _guard = b.write_lock.lock().await;
    import_response(&b, &c.storage, certs, keys).await
}

async fn write_ca(b: Arc<Pki>, c: Call) -> Result<Response> {
    let (certs, keys) = parse_bundle(c.fields.str("pem_bundle"))?;
    let _guard = b.write_lock.lock().await;
    import_response(&b, &c.storage, certs, keys).await
}
