//! Request forwarding between HA nodes: a standby sends a request it cannot serve to the
//! active node over the cluster port, with mutual TLS, and answers its client with the active
//! node's answer (Vault's default); a client that sends `X-Vault-No-Request-Forwarding` gets
//! a 307 to the active node instead, as does every client when forwarding fails.
//!
//! Both ends present the cluster's TLS identity (`tresor_core::cluster_identity`), which lives
//! in the barrier: only an unsealed node can read it, so only such a node can connect to or be
//! connected from another one (Vault's rule: unsealed means member).
//!
//! The active node serves forwarded requests on its cluster listener (`cluster_addr`). It trusts
//! the client address and client certificates a forwarded request names (headers only honoured
//! there, after mutual TLS); it never forwards again, and answers 503 if it is not the active
//! node any more (the client retries; the standby learns the new leader within a poll).
//! Hop-by-hop headers are dropped both ways.

use crate::http::HttpResponse;
use crate::BoxError;
use base64::Engine;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tresor_core::cluster_identity::{self, ClusterIdentity, CLUSTER_NAME};
use tresor_core::core::Core;

/// The client address of a forwarded request (trusted on the cluster listener only).
pub const FORWARDED_FOR: &str = "x-tresor-forwarded-for";
/// The client's TLS certificates of a forwarded request, base64 DER, comma-separated.
pub const FORWARDED_CERTS: &str = "x-tresor-forwarded-client-certs";

/// The cluster identity, built into what both ends of a forwarded request need.
struct Tls {
    ca_pem: String,
    acceptor: TlsAcceptor,
    identity_pem: String,
}

/// Forwarding state of one node.
pub struct Cluster {
    core: Arc<Core>,
    tls: RwLock<Option<Arc<Tls>>>,
    /// The client to the current active node (its cluster address), rebuilt when it changes.
    client: RwLock<Option<(String, reqwest::Client)>>,
}

fn build_tls(id: &ClusterIdentity) -> Result<Tls, BoxError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut id.ca.as_bytes()) {
        roots.add(c?)?;
    }
    let certs = rustls_pemfile::certs(&mut id.cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut id.key.as_bytes())?
        .ok_or("the cluster identity has no key")?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: id.ca.clone(),
        acceptor: TlsAcceptor::from(Arc::new(server)),
        identity_pem: format!("{}{}", id.cert, id.key),
    })
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    ) || name == FORWARDED_FOR
        || name == FORWARDED_CERTS
}

impl Cluster {
    /// Forwarding for `core`.
    pub fn new(core: Arc<Core>) -> Arc<Cluster> {
        Arc::new(Cluster {
            core,
            tls: RwLock::new(None),
            client: RwLock::new(None),
        })
    }

    /// The cluster identity: cached, else read from the barrier (the first active node made
    /// it before it named itself active).
    async fn tls(&self) -> Result<Arc<Tls>, BoxError> {
        if let Some(t) = self.tls.read().clone() {
            return Ok(t);
        }
        let stored = cluster_identity::load(&self.core.root_view())
            .await?
            .ok_or("no node has been active yet: the cluster identity does not exist")?;
        let tls = Arc::new(build_tls(&stored)?);
        *self.tls.write() = Some(tls.clone());
        Ok(tls)
    }

    /// Forgets the cached identity and client (the node sealed, or a handshake failed).
    pub fn reset(&self) {
        self.tls.write().take();
        self.client.write().take();
    }

    /// The TLS acceptor of the cluster listener, if the identity is known (unsealed).
    pub async fn acceptor(&self) -> Option<TlsAcceptor> {
        if self.core.is_sealed() {
            self.reset();
            return None;
        }
        match self.tls().await {
            Ok(t) => Some(t.acceptor.clone()),
            Err(e) => {
                tracing::debug!(error = %e, "cluster identity unavailable");
                None
            }
        }
    }

    fn client_for(&self, tls: &Tls, cluster_addr: &str) -> Result<reqwest::Client, BoxError> {
        if let Some((addr, c)) = self.client.read().as_ref() {
            if addr == cluster_addr {
                return Ok(c.clone());
            }
        }
        let url = reqwest::Url::parse(cluster_addr)?;
        let host = url.host_str().ok_or("cluster_addr has no host")?;
        let port = url.port_or_known_default().unwrap_or(8201);
        let target: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
            .next()
            .ok_or("cluster_addr does not resolve")?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(tls.ca_pem.as_bytes())?)
            .identity(reqwest::Identity::from_pem(tls.identity_pem.as_bytes())?)
            .resolve(CLUSTER_NAME, target)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(90))
            .build()?;
        *self.client.write() = Some((cluster_addr.to_string(), client.clone()));
        Ok(client)
    }

    /// Sends a request to the active node at `cluster_addr` and returns its answer.
    #[allow(clippy::too_many_arguments)]
    pub async fn forward(
        &self,
        cluster_addr: &str,
        method: &hyper::Method,
        path_and_query: &str,
        headers: &hyper::HeaderMap,
        body: Bytes,
        remote: Option<&str>,
        client_certs: &[Vec<u8>],
    ) -> Result<HttpResponse, ForwardError> {
        let not_sent = ForwardError::NotSent;
        let tls = self.tls().await.map_err(not_sent)?;
        let client = self.client_for(&tls, cluster_addr).map_err(not_sent)?;
        let port = reqwest::Url::parse(cluster_addr)
            .map_err(|e| not_sent(e.into()))?
            .port_or_known_default()
            .unwrap_or(8201);
        let url = format!("https://{CLUSTER_NAME}:{port}{path_and_query}");
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
            .map_err(|e| not_sent(e.into()))?;
        let mut rb = client.request(method, url).body(body);
        for (name, value) in headers {
            if !hop_by_hop(name.as_str()) {
                rb = rb.header(name.as_str(), value.as_bytes());
            }
        }
        if let Some(r) = remote {
            rb = rb.header(FORWARDED_FOR, r);
        }
        if !client_certs.is_empty() {
            let b64 = base64::engine::general_purpose::STANDARD;
            let certs: Vec<String> = client_certs.iter().map(|c| b64.encode(c)).collect();
            rb = rb.header(FORWARDED_CERTS, certs.join(","));
        }
        let answer = match rb.send().await {
            Ok(a) => a,
            Err(e) => {
                self.client.write().take();
                // Only a connection never made is certain not to have reached the active node.
                return Err(if e.is_connect() {
                    not_sent(e.into())
                } else {
                    ForwardError::Unknown(e.into())
                });
            }
        };
        let unknown = |e: BoxError| ForwardError::Unknown(e);
        let mut resp = hyper::Response::new(crate::http::full(Bytes::new()));
        *resp.status_mut() =
            hyper::StatusCode::from_u16(answer.status().as_u16()).map_err(|e| unknown(e.into()))?;
        for (name, value) in answer.headers() {
            if !hop_by_hop(name.as_str()) {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_str().as_bytes()),
                    HeaderValue::from_bytes(value.as_bytes()),
                ) {
                    resp.headers_mut().append(n, v);
                }
            }
        }
        *resp.body_mut() = crate::http::full(answer.bytes().await.map_err(|e| unknown(e.into()))?);
        Ok(resp)
    }
}

/// Why forwarding failed.
#[derive(Debug)]
pub enum ForwardError {
    /// The request never reached the active node: the client may be sent there (307).
    NotSent(BoxError),
    /// It may have reached it, and run: sending the client there could run it twice.
    Unknown(BoxError),
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::NotSent(e) => write!(f, "not sent: {e}"),
            ForwardError::Unknown(e) => write!(f, "outcome unknown: {e}"),
        }
    }
}

/// The client address and certificates a forwarded request names.
pub fn forwarded_origin(headers: &hyper::HeaderMap) -> (Option<String>, Vec<Vec<u8>>) {
    let remote = headers
        .get(FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let b64 = base64::engine::general_purpose::STANDARD;
    let certs = headers
        .get(FORWARDED_CERTS)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(',')
                .filter_map(|c| b64.decode(c.trim()).ok())
                .collect()
        })
        .unwrap_or_default();
    (remote, certs)
}
