//! TCP listeners: accept connections (within the limits of [`crate::connections`]), optionally
//! terminate TLS with rustls, and serve HTTP/1.1 and HTTP/2 (hyper-util's auto builder) with
//! the handler in [`crate::http`]. On shutdown the accept loop stops (new connections are
//! refused), quiet connections close, and busy ones finish their requests first. A TLS
//! listener's certificate and key are read again on SIGHUP ([`CertificateFiles::reload`]):
//! new connections get the new certificate; if the new files are unusable the old one stays.
//!
//! Why hyper directly (and not a web framework): the API has one route (`/v1/*`) whose routing
//! lives in the core's mount table, so a router would add a layer and no value.

use crate::cluster::Cluster;
use crate::config::ListenerConfig;
use crate::connections::{Limits, Metered, RateLimitedLog, Registration, Registry};
use crate::http::{ListenerContext, RequestLimits};
use crate::ops::Operations;
use crate::BoxError;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tresor_core::core::Core;

pub struct Bound {
    pub local_addr: SocketAddr,
    pub tls: bool,
    /// The listener's open connections.
    pub connections: Arc<Registry>,
    /// The certificate files of a TLS API listener (reloaded on SIGHUP).
    pub certificate: Option<Arc<CertificateFiles>>,
}

/// A TLS listener's certificate and key files, and the pair in use (what every new handshake
/// presents).
#[derive(Debug)]
pub struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
    current: parking_lot::RwLock<Arc<CertifiedKey>>,
}

impl CertificateFiles {
    fn open(cert: &Path, key: &Path) -> Result<Arc<Self>, BoxError> {
        Ok(Arc::new(CertificateFiles {
            current: parking_lot::RwLock::new(Self::read(cert, key)?),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }))
    }

    fn read(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, BoxError> {
        let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
            std::fs::File::open(cert)
                .map_err(|e| format!("error loading TLS certificate {}: {e}", cert.display()))?,
        ))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("error loading TLS certificate {}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!("no certificate found in {}", cert.display()).into());
        }
        let key_der = rustls_pemfile::private_key(&mut std::io::BufReader::new(
            std::fs::File::open(key)
                .map_err(|e| format!("error loading TLS key {}: {e}", key.display()))?,
        ))
        .map_err(|e| format!("error loading TLS key {}: {e}", key.display()))?
        .ok_or_else(|| format!("no private key found in {}", key.display()))?;
        let pair = CertifiedKey::from_der(certs, key_der, &provider()).map_err(|e| {
            format!(
                "TLS certificate {} and key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;
        Ok(Arc::new(pair))
    }

    /// Reads the files again; on any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), BoxError> {
        let pair = Self::read(&self.cert, &self.key)?;
        *self.current.write() = pair;
        Ok(())
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

impl rustls::server::ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn tls_acceptor(files: Arc<CertificateFiles>) -> Result<TlsAcceptor, BoxError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(RequestClientCert::new()))
        .with_cert_resolver(files);
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

/// How a listener's connections start: plain, TLS with the listener's certificate, or (the
/// cluster listener) mutual TLS with the cluster identity, available only while unsealed.
#[derive(Clone)]
enum ListenerTls {
    Plain,
    Fixed(TlsAcceptor),
    Cluster(Arc<Cluster>),
}

/// Binds an API listener and serves it in the background until `stop` is cancelled; every
/// connection is a task of `tracker`, so the caller can wait for them to finish. With
/// `cluster`, a standby forwards what it cannot serve to the active node.
pub async fn bind(
    cfg: &ListenerConfig,
    core: Arc<Core>,
    ops: Arc<Operations>,
    cluster: Option<Arc<Cluster>>,
    tracker: TaskTracker,
) -> Result<Bound, BoxError> {
    let certificate = match &cfg.tls {
        Some((c, k)) => Some(CertificateFiles::open(c, k)?),
        None => None,
    };
    let tls = match &certificate {
        Some(files) => ListenerTls::Fixed(tls_acceptor(files.clone())?),
        None => ListenerTls::Plain,
    };
    let ctx = ListenerContext {
        core,
        limits: RequestLimits {
            max_body: cfg.max_request_size,
            read_timeout: cfg.limits.read_timeout,
        },
        cluster,
        forwarded: false,
        ops,
        unauthenticated_metrics: cfg.unauthenticated_metrics_access,
    };
    let mut bound = serve_listener(&cfg.address, cfg.limits.clone(), tls, ctx, tracker).await?;
    bound.certificate = certificate;
    Ok(bound)
}

/// Binds the cluster listener (`cluster_addr`): forwarded requests from standbys, mutual TLS
/// with the cluster identity.
pub async fn bind_cluster(
    address: &str,
    max_body: usize,
    core: Arc<Core>,
    ops: Arc<Operations>,
    cluster: Arc<Cluster>,
    tracker: TaskTracker,
) -> Result<Bound, BoxError> {
    let ctx = ListenerContext {
        core,
        limits: RequestLimits {
            max_body,
            read_timeout: crate::connections::DEFAULT_READ_TIMEOUT,
        },
        cluster: None,
        forwarded: true,
        ops,
        unauthenticated_metrics: false,
    };
    let tls = ListenerTls::Cluster(cluster);
    serve_listener(address, Limits::default(), tls, ctx, tracker).await
}

async fn serve_listener(
    address: &str,
    limits: Limits,
    tls: ListenerTls,
    ctx: ListenerContext,
    tracker: TaskTracker,
) -> Result<Bound, BoxError> {
    let stop = ctx.ops.stop.clone();
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("error binding listener to {address}: {e}"))?;
    let local_addr = listener.local_addr()?;
    let is_tls = !matches!(tls, ListenerTls::Plain);
    let registry = Registry::new(limits);
    registry.spawn_reaper(stop.clone());
    let ctx = Arc::new(ctx);
    let connections = registry.clone();
    tokio::spawn(async move {
        let accept_errors = RateLimitedLog::new();
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        accept_errors.warn_with("accept failed", &e.to_string());
                        if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                            // Out of descriptors: the longest-quiet connection makes room.
                            registry.shed_one();
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let Some(registration) = registry.open() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tracker.spawn(serve(
                Metered::new(stream, registration.conn.clone()),
                peer,
                registration,
                Served {
                    ctx: ctx.clone(),
                    tls: tls.clone(),
                    registry: registry.clone(),
                    stop: stop.clone(),
                },
            ));
        }
    });
    Ok(Bound {
        local_addr,
        tls: is_tls,
        connections,
        certificate: None,
    })
}

/// What every connection of a listener shares.
struct Served {
    ctx: Arc<ListenerContext>,
    tls: ListenerTls,
    registry: Arc<Registry>,
    stop: CancellationToken,
}

/// Serves one connection: TLS, then HTTP/1.1 or HTTP/2, until the client leaves, the registry
/// closes it (deadline, eviction; never with a request in flight), or shutdown drains it.
async fn serve(io: Metered<TcpStream>, peer: SocketAddr, registration: Registration, s: Served) {
    let conn = registration.conn.clone();
    let acceptor = match &s.tls {
        ListenerTls::Plain => None,
        ListenerTls::Fixed(a) => Some(a.clone()),
        // Sealed nodes have no cluster identity: nobody can connect.
        ListenerTls::Cluster(c) => match c.acceptor().await {
            Some(a) => Some(a),
            None => return,
        },
    };
    let (io, certs) = match &acceptor {
        None => (Io::Plain(io), Vec::new()),
        Some(a) => {
            let handshake = tokio::select! {
                r = a.accept(io) => r,
                _ = conn.closing() => return,
                _ = s.stop.cancelled() => return,
            };
            match handshake {
                Ok(tls) => {
                    let certs: Vec<Vec<u8>> = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .map(|cs| cs.iter().map(|c| c.to_vec()).collect())
                        .unwrap_or_default();
                    (Io::Tls(Box::new(tls)), certs)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
            }
        }
    };
    let remote = Some(peer.ip().to_string());
    let certs = Arc::new(certs);
    let (ctx, registry) = (s.ctx.clone(), s.registry.clone());
    let request_conn = conn.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let in_flight = request_conn.request(&registry);
        let id = tresor_core::util::request_id();
        let tracked = ctx
            .ops
            .in_flight
            .track(&id, peer, req.method(), req.uri().path());
        let (ctx, remote, certs) = (ctx.clone(), remote.clone(), certs.clone());
        async move {
            let mut resp = crate::http::handle(&ctx, req, id, remote, certs).await;
            // A streamed answer is in flight until its stream ends.
            if let http_body_util::Either::Right(stream) = resp.body_mut() {
                stream.hold(in_flight);
                stream.hold(tracked);
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let builder = Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection error");
                }
                return;
            }
            _ = s.stop.cancelled(), if !draining => {
                // Shutdown: nothing in flight, close now; else finish what is in flight
                // (HTTP/1 answers with `Connection: close`, HTTP/2 sends GOAWAY).
                if conn.is_quiet() {
                    return;
                }
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = conn.closing() => {
                if conn.is_quiet() {
                    return;
                }
                conn.reprieve();
            }
        }
    }
}

/// A connection's transport.
enum Io {
    Plain(Metered<TcpStream>),
    Tls(Box<tokio_rustls::server::TlsStream<Metered<TcpStream>>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
