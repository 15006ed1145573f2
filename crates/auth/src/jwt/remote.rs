//! Remote key sets: JWKS documents fetched over HTTP(S) with `reqwest` (rustls), directly
//! (`jwks_url`) or through OIDC discovery (`oidc_discovery_url`), and cached per mount.
//!
//! The cache is refreshed when a token names a `kid` it does not hold, or when no cached key
//! verifies a token without `kid` (keys rotate), but at most once per
//! [`MIN_REFRESH`] so that tokens with made-up key IDs cannot make Tresor hammer the identity
//! provider; it is also refreshed when older than [`MAX_AGE`]. Fetches are bounded in time
//! ([`TIMEOUT`]) and size ([`MAX_BODY`]), and serialized (one fetch at a time per mount).
//!
//! [`http_client`] is shared with the Kubernetes method (TokenReview calls): a configured CA
//! PEM replaces the built-in web PKI roots, as Vault's `createCAContext` does, and a server
//! presenting exactly one of the configured certificates is accepted too (self-signed server
//! certificates, as Go's verifier accepts them; see `PinnedOrWebPki`).

use super::keys::VerifyingKey;
use pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Shortest interval between two fetches of one key set.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);
/// A cached key set older than this is fetched again before use.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// Time limit of one HTTP exchange.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest accepted document (JWKS, discovery, TokenReview answer).
pub const MAX_BODY: usize = 1 << 20;

/// An HTTP client trusting `ca_pem` only (or the built-in web PKI roots when it is empty).
pub fn http_client(ca_pem: &str) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("tresor/", env!("CARGO_PKG_VERSION")));
    if !ca_pem.trim().is_empty() {
        b = b.use_preconfigured_tls(tls_config(&ca_certificates(ca_pem)?)?);
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The DER certificates of a CA PEM; an error when it holds none (Vault: "could not parse CA
/// PEM value successfully").
pub fn ca_certificates(ca_pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let bad = || "could not parse CA PEM value successfully".to_string();
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(ca_pem.as_bytes()) {
        let block = block.map_err(|_| bad())?;
        if block.label == "CERTIFICATE" {
            block.parse_x509().map_err(|_| bad())?;
            out.push(block.contents);
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// A rustls client configuration trusting `cas` only (aws-lc-rs, TLS 1.2 and 1.3).
fn tls_config(cas: &[Vec<u8>]) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(cas.iter().map(|c| CertificateDer::from(c.clone())));
    let inner = if roots.is_empty() {
        None
    } else {
        Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("invalid CA certificates: {e}"))?,
        )
    };
    let verifier = PinnedOrWebPki {
        inner,
        pinned: cas.to_vec(),
        provider: provider.clone(),
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Server certificate verification against configured CAs: the usual web PKI path building,
/// and also a server that presents exactly one of the configured certificates (a self-signed
/// certificate, possibly marked as a CA, which webpki refuses as an end entity but Go's
/// verifier, and so Vault, accepts). The name and validity period are still checked then.
#[derive(Debug)]
struct PinnedOrWebPki {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    pinned: Vec<Vec<u8>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let err = match &self.inner {
            Some(v) => {
                match v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                    Ok(ok) => return Ok(ok),
                    Err(e) => e,
                }
            }
            None => rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        };
        if !self
            .pinned
            .iter()
            .any(|p| p.as_slice() == end_entity.as_ref())
        {
            return Err(err);
        }
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(|_| err.clone())?;
        ee.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            })?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(|_| err.clone())?;
        let at = x509_parser::time::ASN1Time::from_timestamp(now.as_secs() as i64)
            .map_err(|_| err.clone())?;
        if !parsed.validity().is_valid_at(at) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ));
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Describes a transport error with its causes (reqwest's own message is terse).
pub fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Reads a response body of at most [`MAX_BODY`] bytes.
pub async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer is larger than {MAX_BODY} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// GETs a JSON document.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let resp = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {}", describe(&e)))?;
    let status = resp.status();
    let body = read_body(resp)
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("fetching {url}: HTTP {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("fetching {url}: invalid JSON: {e}"))
}

/// The issuer and JWKS address of an OIDC provider (its discovery document). As go-oidc does,
/// the document's `issuer` must be the discovery URL.
pub async fn discover(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let base = url.trim_end_matches('/');
    let doc = get_json(client, &format!("{base}/.well-known/openid-configuration")).await?;
    let issuer = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if issuer.trim_end_matches('/') != base {
        return Err(format!(
            "issuer did not match the issuer returned by provider, expected {url:?} got {issuer:?}"
        ));
    }
    doc.get("jwks_uri")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "the discovery document has no \"jwks_uri\"".into())
}

/// Fetches and parses a JWKS document.
pub async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<Vec<VerifyingKey>, String> {
    let doc = get_json(client, url).await?;
    VerifyingKey::from_jwks(&doc).map_err(|e| format!("fetching {url}: {e}"))
}

/// Where a remote key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Jwks { url: String, ca_pem: String },
    Discovery { url: String, ca_pem: String },
}

impl Location {
    fn ca_pem(&self) -> &str {
        match self {
            Location::Jwks { ca_pem, .. } | Location::Discovery { ca_pem, .. } => ca_pem,
        }
    }
    /// Fetches the key set once, uncached (also used to check a configuration).
    pub async fn fetch(&self, client: &reqwest::Client) -> Result<Vec<VerifyingKey>, String> {
        match self {
            Location::Jwks { url, .. } => fetch_jwks(client, url).await,
            Location::Discovery { url, .. } => {
                let jwks = discover(client, url).await?;
                fetch_jwks(client, &jwks).await
            }
        }
    }
}

struct Cached {
    location: Location,
    client: reqwest::Client,
    keys: Vec<VerifyingKey>,
    /// Last successful fetch.
    fetched: Option<Instant>,
    /// Last attempt, successful or not (rate limit).
    attempted: Option<Instant>,
    error: Option<String>,
}

/// The key set cache of one mount.
#[derive(Default)]
pub struct KeyCache {
    inner: Mutex<Option<Cached>>,
}

impl KeyCache {
    /// Forgets the cached keys (the configuration changed).
    pub async fn reset(&self) {
        *self.inner.lock().await = None;
    }

    /// The keys of `location` for a token with key ID `kid`: those with that `kid`, or all
    /// of them for a token without one. `stale` asks for a refresh (no cached key verified
    /// the token); refreshes are rate-limited, so the answer may be the cached keys again.
    pub async fn keys(
        &self,
        location: &Location,
        kid: Option<&str>,
        stale: bool,
    ) -> Result<Vec<VerifyingKey>, String> {
        let mut guard = self.inner.lock().await;
        if guard.as_ref().is_none_or(|c| &c.location != location) {
            *guard = Some(Cached {
                location: location.clone(),
                client: http_client(location.ca_pem())?,
                keys: vec![],
                fetched: None,
                attempted: None,
                error: None,
            });
        }
        let c = guard.as_mut().expect("just set");
        let pick = |keys: &[VerifyingKey]| -> Vec<VerifyingKey> {
            keys.iter()
                .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
                .cloned()
                .collect()
        };
        let want = match c.fetched {
            None => true,
            Some(t) => t.elapsed() >= MAX_AGE || stale || pick(&c.keys).is_empty(),
        };
        let may = c.attempted.is_none_or(|t| t.elapsed() >= MIN_REFRESH);
        if want && may {
            c.attempted = Some(Instant::now());
            match location.fetch(&c.client).await {
                Ok(keys) => {
                    c.keys = keys;
                    c.fetched = Some(Instant::now());
                    c.error = None;
                }
                // Keep serving the old keys if a refresh fails.
                Err(e) => c.error = Some(e),
            }
        }
        if c.fetched.is_none() {
            return Err(c
                .error
                .clone()
                .unwrap_or_else(|| "the key set could not be fetched".into()));
        }
        Ok(pick(&c.keys))
    }
}
