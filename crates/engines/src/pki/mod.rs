//! The `pki` secrets engine: a certificate authority with Vault's paths, fields, answer shapes,
//! error messages and status codes (hvac's `secrets.pki` works unchanged).
//!
//! A mount holds keys and issuers (CA certificates bound to a key), roles that constrain what
//! may be issued, the certificates it issued, and their revocations. It generates roots and
//! intermediate CSRs, signs intermediates, imports CA bundles, issues and signs leaf
//! certificates, revokes them (also when their lease, with `generate_lease`, is revoked),
//! publishes CRLs and answers OCSP (RFC 6960), and tidies expired certificates (on demand and
//! on a schedule).
//!
//! * [`keys`]: key types, generation, import/export formats; `keys`, `key/:ref`, `config/keys`.
//! * [`issuers`]: issuers, chains, imports; `issuers`, `issuer/:ref(/json|pem|der|revoke)`,
//!   `config/issuers`.
//! * [`root`]: `root/generate/:type`, `root/sign-intermediate`, `root/sign-self-issued`,
//!   `DELETE root`.
//! * [`intermediate`]: `intermediate/generate/:type` (a CSR), `intermediate/set-signed`.
//! * [`roles`]: `roles/:name`; [`names`]: the role's name constraints (Vault's rules).
//! * [`issue`]: `issue/:role`, `sign/:role`, `sign-verbatim(/:role)` and the shared certificate
//!   builder.
//! * [`revoke`]: `revoke`, `certs/revoked`, the lease revoke hook.
//! * [`crl`]: `crl`, `crl/pem`, `crl/rotate`, `config/crl`, per-issuer CRLs.
//! * [`ocsp`]: `ocsp/<base64 request>` (GET) and `ocsp` (POST, DER body).
//! * [`fetch`]: `ca`, `ca/pem`, `ca_chain`, `cert/:serial`, `certs`.
//! * [`config`]: `config/urls`, `config/ca`.
//! * [`tidy`]: `tidy`, `tidy-status`, `tidy-cancel`, `config/auto-tidy` (run from
//!   [`Backend::periodic`]).
//! * [`acme`]: an ACME server (RFC 8555, `http-01`) under `acme/` and `roles/:role/acme/`,
//!   with `config/acme` and `config/cluster`.
//! * [`cache`]: the in-memory copies of roles, loaded issuers and `config/urls` that issuing
//!   reads on every request.
//!
//! Crates: rcgen builds certificates, CSRs and CRLs (with its aws-lc-rs backend, so the
//! workspace keeps one crypto library; keys are generated with aws-lc-rs directly). Parsing
//! uses x509-parser rather than RustCrypto's `x509-cert`: rcgen already depends on it (CSR and
//! CA-certificate import), its accessors for extensions, SANs and validity are direct, and it
//! verifies CSR and chain signatures with aws-lc-rs. OCSP needs typed ASN.1 that neither has,
//! so requests and responses use RustCrypto's `x509-ocsp` (with `x509-cert`/`der`), signed with
//! the issuer's key through rcgen. No primitive is hand-rolled.
//!
//! Known limits: rcgen keeps one value per subject attribute type (so `ou`/`organization`
//! lists use their first entry) and cannot sign with an issuer whose subject has a
//! multi-valued RDN; issuer-scoped paths other than `issuer/:ref/{json,pem,der}` are not
//! unauthenticated (the core's unauthenticated list has no per-segment wildcard); OCSP over
//! POST needs the HTTP layer to pass the DER body as `http_raw_body` (base64).
//!
//! Storage layout in the mount's view:
//!
//! | key                      | value                                              |
//! |--------------------------|----------------------------------------------------|
//! | `config/key/<id>`        | a private key ([`keys::KeyEntry`])                 |
//! | `config/keys`            | the default key                                    |
//! | `config/issuer/<id>`     | an issuer ([`issuers::IssuerEntry`])               |
//! | `config/issuers`         | the default issuer                                 |
//! | `config/urls`            | AIA URLs                                           |
//! | `config/crl`             | CRL and OCSP settings                              |
//! | `config/auto-tidy`       | scheduled tidy settings                            |
//! | `role/<name>`            | a role ([`roles::Role`])                           |
//! | `certs/<serial>`         | an issued certificate (serial as `aa-bb-...`)      |
//! | `revoked/<serial>`       | a revocation ([`revoke::RevokedRecord`])           |
//! | `crls/<issuer id>`       | the issuer's current CRL and its number            |
//! | `tidy/last-auto`         | when auto-tidy last ran                            |
//! | `acme/...`, `config/acme`, `config/cluster` | ACME state ([`acme::store`])    |

pub mod acme;
pub mod cache;
pub mod config;
pub mod crl;
pub mod fetch;
pub mod intermediate;
pub mod issue;
pub mod issuers;
pub mod keys;
pub mod names;
pub mod ocsp;
pub mod revoke;
pub mod roles;
pub mod root;
pub mod tidy;
pub mod x509;

use async_trait::async_trait;
use issuers::LoadedIssuer;
use serde_json::Value;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Backend, Call, LeaseCall, PathBackend};
use tresor_core::logical::{RawResponse, Response};
use tresor_core::mount::MountEntry;

/// Vault's system default and maximum lease TTL (768h), used when the mount sets none.
pub const SYSTEM_TTL: u64 = 768 * 3600;

/// Builds the backend for a `pki` mount.
pub fn factory(
    entry: &tresor_core::mount::MountEntry,
) -> tresor_core::Result<std::sync::Arc<dyn tresor_core::framework::Backend>> {
    let _: &MountEntry = entry;
    Ok(Arc::new(backend()))
}

/// One mount's in-memory state; everything durable is in the mount's storage.
#[derive(Default)]
pub struct Pki {
    /// Serializes read-modify-write of issuers, keys, configs and CRL numbers.
    pub write_lock: tokio::sync::Mutex<()>,
    /// Loaded issuers by reference (`default`, an id or a name); cleared on every issuer, key
    /// or default-issuer change.
    issuers: cache::Cache<LoadedIssuer>,
    /// Roles by name; cleared on every role write or delete.
    pub roles: cache::Cache<roles::Role>,
    /// The `config/urls` record (under ""); cleared when it is written.
    pub urls: cache::Cache<config::UrlsConfig>,
    /// The last (or running) tidy.
    pub tidy: tidy::TidyState,
    /// When spent ACME nonces are next swept (unix seconds).
    next_nonce_sweep: std::sync::atomic::AtomicI64,
}

/// The PKI backend as the core sees it: its paths plus scheduled tidying.
pub struct PkiBackend {
    paths: PathBackend<Pki>,
}

/// Builds a PKI backend.
pub fn backend() -> PkiBackend {
    let mut paths = Vec::new();
    paths.extend(fetch::paths());
    paths.extend(root::paths());
    paths.extend(intermediate::paths());
    paths.extend(issuers::paths());
    paths.extend(keys::paths());
    paths.extend(roles::paths());
    paths.extend(issue::paths());
    paths.extend(revoke::paths());
    paths.extend(crl::paths());
    paths.extend(ocsp::paths());
    paths.extend(config::paths());
    paths.extend(tidy::paths());
    paths.extend(acme::paths());
    PkiBackend {
        paths: PathBackend::new(Pki::default(), paths)
            .unauthenticated(&[
                "cert/*",
                "ca",
                "ca/pem",
                "ca_chain",
                "crl",
                "crl/pem",
                "crl/delta",
                "crl/delta/pem",
                "ocsp",
                "ocsp/*",
                "issuers",
                "issuers/",
                // ACME authenticates with JWS. The `+` forms (scoped directories) wait for
                // per-segment wildcards in the core; until then they match nothing.
                "acme/*",
                "roles/+/acme/*",
                "issuer/+/acme/*",
                "issuer/+/roles/+/acme/*",
            ])
            .sudo(&["root", "root/sign-self-issued"])
            .on_revoke(revoke::lease_revoked)
            .help(
                "The PKI backend issues X.509 certificates from roles, signs CSRs, and \
                 publishes CRLs and OCSP answers for what it issued.",
            ),
    }
}

#[async_trait]
impl Backend for PkiBackend {
    async fn handle(&self, call: Call) -> Result<Response> {
        self.paths.handle(call).await
    }
    async fn exists(&self, call: &Call) -> Result<Option<bool>> {
        self.paths.exists(call).await
    }
    fn unauthenticated_paths(&self) -> &[String] {
        self.paths.unauthenticated_paths()
    }
    fn sudo_paths(&self) -> &[String] {
        self.paths.sudo_paths()
    }
    fn describe(&self) -> Value {
        self.paths.describe()
    }
    async fn periodic(&self, storage: &View) -> Result<()> {
        use std::sync::atomic::Ordering;
        let pki = self.paths.inner();
        let now = tresor_core::util::unix_now();
        if now >= pki.next_nonce_sweep.load(Ordering::Relaxed) {
            pki.next_nonce_sweep.store(now + 60, Ordering::Relaxed);
            acme::nonce::sweep(storage).await?;
        }
        tidy::periodic(pki, storage).await
    }
    async fn revoke_secret(&self, lease: LeaseCall) -> Result<()> {
        self.paths.revoke_secret(lease).await
    }
    async fn renew_secret(&self, lease: LeaseCall) -> Result<()> {
        self.paths.renew_secret(lease).await
    }
}

/// A 400.
pub fn bad(msg: impl Into<String>) -> Error {
    Error::bad(msg)
}

/// A non-JSON answer.
pub fn raw(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    Response {
        raw: Some(Box::new(RawResponse {
            status,
            content_type: content_type.to_string(),
            body,
            headers: Vec::new(),
        })),
        ..Default::default()
    }
}

/// The mount's maximum lease TTL in seconds (the server's when unset).
pub fn mount_max_ttl(c: &Call) -> u64 {
    c.ttl_limits.max_ttl
}

/// The mount's default lease TTL in seconds (the server's when unset).
pub fn mount_default_ttl(c: &Call) -> u64 {
    c.ttl_limits.default_ttl
}

pub use tresor_core::util::go_duration;
