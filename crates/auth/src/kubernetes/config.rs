//! `config`: where the cluster's API server is and how to reach it. Checks and messages as
//! OpenBao's `pathConfigWrite`; the CA is not required to parse when written (Vault accepts
//! anything there), but a warning says so, and logins then fail with a clear error.

use super::{Config, Kubernetes};
use crate::jwt::keys::VerifyingKey;
use crate::jwt::remote::ca_certificates;
use crate::sorted_data;
use serde_json::{json, Map};
use std::sync::Arc;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

pub(crate) fn paths() -> Vec<Path<Kubernetes>> {
    vec![Path::new("config")
        .field("kubernetes_host", Field::string("Host must be a host string, a host:port pair, or a URL to the base of the Kubernetes API server."))
        .field("kubernetes_ca_cert", Field::string("PEM encoded CA cert for use by the TLS client used to talk with the API."))
        .field("token_reviewer_jwt", Field::string("A service account JWT (or other token) used as a bearer token to access the TokenReview API. If not set, the JWT used for login will be used to access the API."))
        .field("pem_keys", Field::list("Optional list of PEM-formated public keys or certificates used to verify the signatures of kubernetes service account JWTs."))
        .field("issuer", Field::string("Optional JWT issuer. If no issuer is specified, then this plugin will use kubernetes/serviceaccount as the default issuer."))
        .field("disable_iss_validation", Field::bool("Disable JWT issuer validation (default true).").default(true))
        .field("disable_local_ca_jwt", Field::bool("Disable defaulting to the local CA cert and service account JWT when running in a Kubernetes pod."))
        .op(Read, read)
        .op(Update, write)
        .help("Configures the JWT Public Key and Kubernetes API information.")]
}

async fn read(b: Arc<Kubernetes>, c: Call) -> Result<Response> {
    let cfg = b.config(&c.storage).await?.ok_or(Error::NotFound)?;
    let mut m = Map::new();
    m.insert("kubernetes_host".into(), json!(cfg.kubernetes_host));
    m.insert("kubernetes_ca_cert".into(), json!(cfg.kubernetes_ca_cert));
    m.insert("pem_keys".into(), json!(cfg.pem_keys));
    m.insert("issuer".into(), json!(cfg.issuer));
    m.insert(
        "disable_iss_validation".into(),
        json!(cfg.disable_iss_validation),
    );
    m.insert(
        "disable_local_ca_jwt".into(),
        json!(cfg.disable_local_ca_jwt),
    );
    m.insert(
        "token_reviewer_jwt_set".into(),
        json!(!cfg.token_reviewer_jwt.is_empty()),
    );
    Ok(sorted_data(m))
}

async fn write(b: Arc<Kubernetes>, c: Call) -> Result<Response> {
    let _ = &b;
    let f = &c.fields;
    let cfg = Config {
        kubernetes_host: f.str("kubernetes_host").trim().to_string(),
        kubernetes_ca_cert: f.str("kubernetes_ca_cert").to_string(),
        token_reviewer_jwt: f.str("token_reviewer_jwt").trim().to_string(),
        pem_keys: f.strings("pem_keys"),
        issuer: f.str("issuer").to_string(),
        disable_iss_validation: f.bool("disable_iss_validation"),
        disable_local_ca_jwt: f.bool("disable_local_ca_jwt"),
    };
    if cfg.kubernetes_host.is_empty() {
        return Err(Error::bad("no host provided"));
    }
    if cfg.disable_local_ca_jwt && cfg.kubernetes_ca_cert.is_empty() {
        return Err(Error::bad(
            "kubernetes_ca_cert must be given when disable_local_ca_jwt is true",
        ));
    }
    for p in &cfg.pem_keys {
        VerifyingKey::from_pem(p).map_err(Error::bad)?;
    }
    let scheme_ok =
        cfg.kubernetes_host.starts_with("https://") || cfg.kubernetes_host.starts_with("http://");
    let mut warnings = Vec::new();
    if !scheme_ok {
        warnings.push(format!(
            "kubernetes_host {:?} has no scheme; https:// is assumed",
            cfg.kubernetes_host
        ));
    }
    if !cfg.kubernetes_ca_cert.is_empty() && ca_certificates(&cfg.kubernetes_ca_cert).is_err() {
        warnings.push("kubernetes_ca_cert holds no valid PEM certificate: logins will fail until it is corrected".into());
    }
    c.storage.put_json("config", &cfg).await?;
    Ok(Response {
        warnings,
        ..Default::default()
    })
}
