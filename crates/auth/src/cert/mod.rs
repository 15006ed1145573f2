//! The `cert` auth method, as Vault's: a client logs in with the TLS client certificate it
//! presented on the connection, verified against certificates registered as trusted.
//!
//! Paths (relative to the mount, e.g. `auth/cert/`):
//! * `certs` (LIST), `certs/:name` (create, update, read, delete): `certificate` (PEM: CA
//!   certificates that issue client certificates, or a pinned non-CA client certificate),
//!   `display_name`, the name constraints `allowed_names`, `allowed_common_names`,
//!   `allowed_dns_sans`, `allowed_email_sans`, `allowed_uri_sans`,
//!   `allowed_organizational_units` (globs), `required_extensions`,
//!   `allowed_metadata_extensions`, and the common `token_*` fields.
//! * `config` (read, update): `disable_binding`, `enable_identity_alias_metadata`,
//!   `ocsp_cache_size` (stored).
//! * `login` (unauthenticated): optionally `name`, to try one entry only. See [`login`].
//!
//! The certificate: the HTTP layer's TLS listener asks for (without requiring) a client
//! certificate and hands the presented chain (DER, leaf first) to the core as
//! `Request::client_certs`, which reaches the backend as [`tresor_core::framework::Call`]'s
//! `client_certs`. The listener's handshake already proved that the client holds the leaf's
//! private key; this backend decides whether the chain is trusted (with `webpki`) and whether
//! the leaf satisfies an entry's constraints ([`verify`]).
//!
//! The login's identity: `alias_name` is the leaf's subject common name; the token metadata
//! holds `cert_name`, `common_name`, `serial_number`, `subject_key_id`, `authority_key_id`
//! (and the allowed metadata extensions), also put on the alias with
//! `enable_identity_alias_metadata`.
//!
//! Not done: CRLs (`crls/*`) and OCSP (a certificate entry with `ocsp_enabled` is refused
//! rather than silently not checked); renewal does not re-check the certificate
//! (`disable_binding` is stored only): the core calls no backend on token renewal.
//!
//! Storage (the mount's barrier view): `config` ([`Config`]), `cert/<name>` ([`CertEntry`]).

pub mod certs;
pub mod login;
pub mod verify;

use crate::token_fields::TokenFields;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::framework::{Backend, PathBackend};
use tresor_core::locks::Stripes;
use tresor_core::mount::MountEntry;
use tresor_core::Result;

/// One trusted certificate entry, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CertEntry {
    pub name: String,
    /// The PEM text as given.
    pub certificate: String,
    pub display_name: String,
    pub allowed_names: Vec<String>,
    pub allowed_common_names: Vec<String>,
    pub allowed_dns_sans: Vec<String>,
    pub allowed_email_sans: Vec<String>,
    pub allowed_uri_sans: Vec<String>,
    pub allowed_organizational_units: Vec<String>,
    pub required_extensions: Vec<String>,
    pub allowed_metadata_extensions: Vec<String>,
    pub ocsp_enabled: bool,
    pub ocsp_ca_certificates: String,
    pub ocsp_servers_override: Vec<String>,
    pub ocsp_fail_open: bool,
    pub ocsp_query_all_servers: bool,
    #[serde(flatten)]
    pub token: TokenFields,
}

/// The mount's configuration, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub disable_binding: bool,
    pub enable_identity_alias_metadata: bool,
    pub ocsp_cache_size: i64,
}

/// The state of one cert mount.
#[derive(Default)]
pub struct Cert {
    pub(crate) locks: Stripes,
}

impl Cert {
    pub(crate) async fn entry(&self, view: &View, name: &str) -> Result<Option<CertEntry>> {
        view.get_json(&format!("cert/{}", name.to_lowercase()))
            .await
    }
    pub(crate) async fn config(&self, view: &View) -> Result<Config> {
        Ok(view.get_json("config").await?.unwrap_or_default())
    }
}

/// Builds a cert backend for a mount (registered by the server as `cert`).
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    let mut paths = certs::paths();
    paths.extend(login::paths());
    Ok(Arc::new(
        PathBackend::new(Cert::default(), paths)
            .unauthenticated(&["login"])
            .help("The cert auth method: log in with a TLS client certificate."),
    ))
}
