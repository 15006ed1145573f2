//! Shared harness of the `jwt_*`, `kubernetes_*` and `cert_*` tests, included by each of them
//! with `#[path = "jwt_harness.rs"] mod harness;` (compiled on its own, it holds no test):
//!
//! * a real in-process core (memory storage, initialized and unsealed) with the `jwt`,
//!   `oidc`, `kubernetes` and `cert` methods registered and mounted through `sys/auth`, driven
//!   only through `Core::handle` (a request can carry a TLS client certificate chain, as the
//!   server's listener fills it in);
//! * certificate authorities and certificates made with `rcgen`;
//! * a small HTTPS server on 127.0.0.1 started by the test itself (hyper + tokio-rustls, with a
//!   certificate from its own test CA), whose answers the test decides: it stands in for a
//!   JWKS or OIDC discovery endpoint and for the Kubernetes TokenReview API;
//! * JWT signers (ES256, RS256, PS256, EdDSA keys generated with aws-lc-rs) that also give
//!   their public key as a JWK and as PEM.

#![allow(dead_code)]

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair as RcKey};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tresor_auth::{cert, jwt, kubernetes};
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::logical::{Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;

pub use Operation::*;

pub struct Env {
    pub core: Arc<Core>,
    pub root: String,
}

/// A core with `jwt/`, `oidc/`, `kubernetes/` and `cert/` mounted.
pub async fn env() -> Env {
    let registry = Registry::default()
        .auth("jwt", Arc::new(jwt::factory))
        .auth("oidc", Arc::new(jwt::factory))
        .auth("kubernetes", Arc::new(kubernetes::factory))
        .auth("cert", Arc::new(cert::factory));
    let core = Core::new(
        Arc::new(MemoryStorage::new()),
        registry,
        CoreConfig::default(),
    );
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 1,
                secret_threshold: 1,
            },
            None,
        )
        .await
        .unwrap();
    assert!(core.submit_unseal_key(init.keys[0].clone()).await.unwrap());
    let env = Env {
        core,
        root: init.root_token,
    };
    for m in ["jwt", "oidc", "kubernetes", "cert"] {
        env.root(Update, &format!("sys/auth/{m}"), json!({ "type": m }))
            .await
            .unwrap();
    }
    env
}

impl Env {
    pub async fn req(
        &self,
        op: Operation,
        path: &str,
        token: Option<&str>,
        data: Value,
        certs: Vec<Vec<u8>>,
    ) -> Result<Response, Error> {
        let mut r = Request::new(op, path).with_data(data);
        r.token = token.map(str::to_string);
        r.remote_addr = Some("127.0.0.1".into());
        r.client_certs = certs;
        self.core.handle(r).await
    }
    pub async fn root(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.req(op, path, Some(&self.root), data, vec![]).await
    }
    /// Without a token.
    pub async fn anon(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.req(op, path, None, data, vec![]).await
    }
    /// A login without a token, presenting a TLS client certificate chain (DER, leaf first).
    pub async fn with_certs(
        &self,
        path: &str,
        data: Value,
        certs: Vec<Vec<u8>>,
    ) -> Result<Response, Error> {
        self.req(Update, path, None, data, certs).await
    }
    /// A token's lookup, as root.
    pub async fn lookup(&self, token: &str) -> Value {
        data(
            &self
                .root(Update, "auth/token/lookup", json!({ "token": token }))
                .await
                .unwrap(),
        )
    }
}

impl Env {
    /// The accessor of an auth mount (`jwt`, `kubernetes`, ...).
    pub async fn accessor(&self, mount: &str) -> String {
        let d = data(&self.root(Read, "sys/auth", json!({})).await.unwrap());
        d[format!("{mount}/")]["accessor"]
            .as_str()
            .unwrap()
            .to_string()
    }
    /// The entity alias (on `mount`) of the entity a login resolved to: `{name, metadata, ...}`.
    pub async fn alias_of(&self, r: &Response, mount: &str) -> Value {
        let id = r.auth.as_ref().expect("an auth block").entity_id.clone();
        assert!(!id.is_empty(), "the login resolved to no entity");
        let acc = self.accessor(mount).await;
        let d = data(
            &self
                .root(Read, &format!("identity/entity/id/{id}"), json!({}))
                .await
                .unwrap(),
        );
        d["aliases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["mount_accessor"] == acc.as_str())
            .cloned()
            .expect("an alias on the mount")
    }
    /// An external group with an alias `alias` on `mount`; returns the group's ID.
    pub async fn external_group(&self, name: &str, mount: &str, alias: &str) -> String {
        let g = data(
            &self
                .root(
                    Update,
                    "identity/group",
                    json!({"name": name, "type": "external"}),
                )
                .await
                .unwrap(),
        );
        let id = g["id"].as_str().unwrap().to_string();
        let acc = self.accessor(mount).await;
        self.root(
            Update,
            "identity/group-alias",
            json!({"name": alias, "mount_accessor": acc, "canonical_id": id}),
        )
        .await
        .unwrap();
        id
    }
}

/// The `data` of an answer (null when none).
pub fn data(r: &Response) -> Value {
    r.data.clone().map(Value::Object).unwrap_or(Value::Null)
}

/// The status and first message of an error.
pub fn err(r: Result<Response, Error>) -> (u16, String) {
    match r {
        Ok(resp) => panic!(
            "expected an error, got data {:?} warnings {:?}",
            resp.data, resp.warnings
        ),
        Err(e) => (
            e.status(),
            e.messages().first().cloned().unwrap_or_default(),
        ),
    }
}

/// The token metadata of a successful login answer.
pub fn meta(r: &Response) -> std::collections::BTreeMap<String, String> {
    r.auth
        .as_ref()
        .expect("an auth block")
        .metadata
        .clone()
        .unwrap_or_default()
}

// ---- certificates ---------------------------------------------------------------------------

/// A certificate authority made with rcgen.
pub struct Ca {
    pub params: CertificateParams,
    pub key: RcKey,
    pub cert: rcgen::Certificate,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca { params, key, cert }
    }
    pub fn pem(&self) -> String {
        self.cert.pem()
    }
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }
    /// A certificate signed by this CA: `sans` (DNS names, IPs), common name `cn`, tuned by `f`.
    pub fn issue(
        &self,
        cn: &str,
        sans: &[&str],
        f: impl FnOnce(&mut CertificateParams),
    ) -> (rcgen::Certificate, RcKey) {
        let key = RcKey::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        f(&mut p);
        let issuer = Issuer::from_params(&self.params, &self.key);
        (p.signed_by(&key, &issuer).unwrap(), key)
    }
    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Ca {
        let key = RcKey::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Ca { params, key, cert }
    }
}

// ---- a small HTTPS server -------------------------------------------------------------------

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct StubReq {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

pub type Handler = Arc<dyn Fn(&StubReq) -> (u16, String) + Send + Sync>;

/// An HTTPS server on 127.0.0.1 answering with a handler the test controls. Stopped on drop.
pub struct Stub {
    pub addr: SocketAddr,
    /// The CA that issued the server's certificate (what a client must trust).
    pub ca_pem: String,
    /// The server's own certificate.
    pub cert_pem: String,
    pub hits: Arc<AtomicUsize>,
    pub requests: Arc<parking_lot::Mutex<Vec<StubReq>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }
    pub fn base(&self) -> String {
        format!("https://{}", self.addr)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Starts an HTTPS stub whose certificate (for 127.0.0.1) is issued by a fresh test CA.
pub async fn https_stub(handler: Handler) -> Stub {
    https_stub_with(handler, false).await
}

/// Starts an HTTPS stub; with `self_signed`, its certificate is a self-signed CA certificate
/// for 127.0.0.1 used as the server's own (as hvac's `server-cert.pem`), and `ca_pem` is it.
pub async fn https_stub_with(handler: Handler, self_signed: bool) -> Stub {
    let ca = Ca::new("Stub Test CA");
    let (cert, key) = if self_signed {
        let key = RcKey::generate().unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "localhost");
        (p.self_signed(&key).unwrap(), key)
    } else {
        ca.issue("127.0.0.1", &["127.0.0.1"], |_| {})
    };
    let chain = if self_signed {
        vec![cert.der().clone()]
    } else {
        vec![cert.der().clone(), ca.cert.der().clone()]
    };
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        chain,
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (h2, r2) = (hits.clone(), requests.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, handler, hits, requests) =
                (acceptor.clone(), handler.clone(), h2.clone(), r2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (handler, hits, requests) =
                            (handler.clone(), hits.clone(), requests.clone());
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_string();
                            let authorization = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let r = StubReq {
                                method,
                                path,
                                authorization,
                                body,
                            };
                            hits.fetch_add(1, Ordering::SeqCst);
                            let (status, text) = handler(&r);
                            requests.lock().push(r);
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Stub {
        addr,
        ca_pem: if self_signed { cert.pem() } else { ca.pem() },
        cert_pem: cert.pem(),
        hits,
        requests,
        task,
    }
}

/// A local address nothing listens on (a port bound and released).
pub async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

// ---- JWT signers ----------------------------------------------------------------------------

pub enum Key {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    Ps256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// A signing key with a `kid`.
pub struct Signer {
    pub kid: String,
    pub key: Key,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

impl Signer {
    pub fn es256(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let kp =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .unwrap();
        Signer {
            kid: kid.into(),
            key: Key::Es256(kp),
        }
    }
    pub fn rs256(kid: &str) -> Signer {
        Signer {
            kid: kid.into(),
            key: Key::Rs256(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
        }
    }
    pub fn ps256(kid: &str) -> Signer {
        Signer {
            kid: kid.into(),
            key: Key::Ps256(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
        }
    }
    pub fn eddsa(kid: &str) -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Signer {
            kid: kid.into(),
            key: Key::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
        }
    }
    pub fn alg(&self) -> &'static str {
        match self.key {
            Key::Es256(_) => "ES256",
            Key::Rs256(_) => "RS256",
            Key::Ps256(_) => "PS256",
            Key::EdDsa(_) => "EdDSA",
        }
    }
    /// The public key as a JWK (with `kid` and `alg`).
    pub fn jwk(&self) -> Value {
        match &self.key {
            Key::Es256(kp) => {
                let p = kp.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                       "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Key::Rs256(kp) | Key::Ps256(kp) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                json!({"kty": "RSA", "kid": self.kid, "alg": self.alg(), "n": b64(&c.n), "e": b64(&c.e)})
            }
            Key::EdDsa(kp) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "x": b64(kp.public_key().as_ref())})
            }
        }
    }
    /// The public key as a `PUBLIC KEY` PEM block.
    pub fn public_pem(&self) -> String {
        let der = match &self.key {
            Key::Es256(kp) => kp.public_key().as_der().unwrap().as_ref().to_vec(),
            Key::Rs256(kp) | Key::Ps256(kp) => kp.public_key().as_der().unwrap().as_ref().to_vec(),
            Key::EdDsa(kp) => kp.public_key().as_der().unwrap().as_ref().to_vec(),
        };
        let b = STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }
    /// A compact JWS of `claims` with the header `{"alg", "kid", "typ"}` plus `extra_header`.
    pub fn sign_with(&self, extra_header: Value, claims: &Value) -> String {
        let mut h = json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"});
        if let Value::Object(m) = extra_header {
            for (k, v) in m {
                if v.is_null() {
                    h.as_object_mut().unwrap().remove(&k);
                } else {
                    h[k] = v;
                }
            }
        }
        let si = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.key {
            Key::Es256(kp) => kp.sign(&rng, si.as_bytes()).unwrap().as_ref().to_vec(),
            Key::Rs256(kp) | Key::Ps256(kp) => {
                let mut s = vec![0u8; kp.public_modulus_len()];
                let pad: &'static dyn signature::RsaEncoding = match self.key {
                    Key::Ps256(_) => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                kp.sign(pad, &rng, si.as_bytes(), &mut s).unwrap();
                s
            }
            Key::EdDsa(kp) => kp.sign(si.as_bytes()).as_ref().to_vec(),
        };
        format!("{si}.{}", b64(&sig))
    }
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(json!({}), claims)
    }
}

/// A JWKS document of these signers' public keys.
pub fn jwks(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() })
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An unsigned token (`alg: none`) of `claims`.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}
