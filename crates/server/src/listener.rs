//! TCP listeners: accept connections, optionally terminate TLS with rustls, and serve HTTP/1.1
//! and HTTP/2 (hyper-util's auto builder) with the handler in [`crate::http`].
//!
//! Why hyper directly (and not a web framework): the API has one route (`/v1/*`) whose routing
//! lives in the core's mount table, so a router would add a layer and no value.

use crate::config::ListenerConfig;
use crate::BoxError;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tresor_core::core::Core;

pub struct Bound {
    pub local_addr: SocketAddr,
    pub tls: bool,
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, BoxError> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert)
            .map_err(|e| format!("error loading TLS certificate {}: {e}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key)
            .map_err(|e| format!("error loading TLS key {}: {e}", key.display()))?,
    ))?
    .ok_or("no private key found in tls_key_file")?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_client_cert_verifier(Arc::new(RequestClientCert::new()))
    .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Asks for a client certificate without requiring or judging it (Vault's listener does the
/// same): the handshake still proves the client holds the certificate's key, and the `cert`
/// auth method decides whether the chain is trusted. Without a certificate nothing changes.
#[derive(Debug)]
struct RequestClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    fn new() -> Self {
        RequestClientCert {
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
        }
    }

    /// Checks the handshake signature against the certificate's public key directly. webpki
    /// refuses X.509 v1 certificates (which Go, and so Vault, accept, and which hvac's test
    /// client presents); the proof of key possession is the same either way.
    fn verify_with_public_key(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let bad = rustls::Error::InvalidCertificate;
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|_| bad(rustls::CertificateError::BadEncoding))?;
        let key = &parsed.public_key().subject_public_key.data;
        let algs = self
            .algorithms
            .mapping
            .iter()
            .find(|(s, _)| *s == dss.scheme)
            .map(|(_, a)| *a)
            .unwrap_or(&[]);
        // A signature verifies only under the key that made it, whatever algorithms are tried.
        if algs
            .iter()
            .any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
        {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        } else {
            Err(bad(rustls::CertificateError::BadSignature))
        }
    }
}

impl rustls::server::danger::ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms).or_else(|e| {
            match e {
                rustls::Error::InvalidCertificate(_) => {
                    self.verify_with_public_key(message, cert, dss)
                }
                e => Err(e),
            }
        })
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms).or_else(|e| {
            match e {
                rustls::Error::InvalidCertificate(_) => {
                    self.verify_with_public_key(message, cert, dss)
                }
                e => Err(e),
            }
        })
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Binds the listener and serves it in the background.
pub async fn bind(cfg: &ListenerConfig, core: Arc<Core>) -> Result<Bound, BoxError> {
    let listener = TcpListener::bind(&cfg.address)
        .await
        .map_err(|e| format!("error binding listener to {}: {e}", cfg.address))?;
    let local_addr = listener.local_addr()?;
    let acceptor = match &cfg.tls {
        Some((c, k)) => Some(tls_acceptor(c, k)?),
        None => None,
    };
    let tls = acceptor.is_some();
    let max_body = cfg.max_request_size;
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let core = core.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let remote = Some(peer.ip().to_string());
                let service = move |certs: Arc<Vec<Vec<u8>>>| {
                    service_fn(move |req| {
                        let (core, remote, certs) = (core.clone(), remote.clone(), certs.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                crate::http::handle(core, req, max_body, remote, certs).await,
                            )
                        }
                    })
                };
                let builder = Builder::new(TokioExecutor::new());
                let result = match acceptor {
                    Some(a) => match a.accept(stream).await {
                        Ok(tls) => {
                            let certs: Vec<Vec<u8>> = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .map(|cs| cs.iter().map(|c| c.to_vec()).collect())
                                .unwrap_or_default();
                            builder
                                .serve_connection(TokioIo::new(tls), service(Arc::new(certs)))
                                .await
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                    },
                    None => {
                        builder
                            .serve_connection(TokioIo::new(stream), service(Arc::new(Vec::new())))
                            .await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection error");
                }
            });
        }
    });
    Ok(Bound { local_addr, tls })
}
