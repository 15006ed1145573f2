//! The CLI's TLS trust when `VAULT_CACERT` / `-ca-cert` names CA certificates.
//!
//! Certificates chain to them as usual (rustls with webpki). Beyond that, as Vault's Go CLI
//! does, the server may present one of those very certificates: the usual self-signed server
//! certificate (`openssl req -x509`) is marked a CA, which webpki refuses as an end entity
//! ("CaUsedAsEndEntity"), while Go accepts it because it is in the trusted pool. It is then
//! accepted if it is within its validity period and names the host (subject alternative
//! names, as Go checks); the handshake's signatures are verified as for any certificate.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// A client TLS configuration trusting `ca_pem`'s certificates, presenting `identity` (a
/// certificate chain and its key) when given.
pub fn client_config(
    ca_pem: &[u8],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, String> {
    let cas: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &ca_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if cas.is_empty() {
        return Err("no certificate found".into());
    }
    let mut roots = RootCertStore::empty();
    for ca in &cas {
        roots.add(ca.clone()).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaFileVerifier { webpki, cas }));
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[derive(Debug)]
struct CaFileVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    cas: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(e) => {
                let trusted_itself = self.cas.iter().any(|ca| ca.as_ref() == end_entity.as_ref());
                if trusted_itself && valid_for(end_entity, server_name, now) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether `der` is valid at `now` and one of its subject alternative names is `name`.
fn valid_for(der: &CertificateDer<'_>, name: &ServerName<'_>, now: UnixTime) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return false;
    };
    let now = now.as_secs() as i64;
    let validity = cert.validity();
    if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
        return false;
    }
    let Ok(Some(sans)) = cert.subject_alternative_name() else {
        return false;
    };
    sans.value.general_names.iter().any(|n| match (n, name) {
        (GeneralName::DNSName(d), ServerName::DnsName(want)) => dns_matches(d, want.as_ref()),
        (GeneralName::IPAddress(bytes), ServerName::IpAddress(ip)) => {
            let want: std::net::IpAddr = (*ip).into();
            match (bytes.len(), want) {
                (4, std::net::IpAddr::V4(v4)) => bytes[..] == v4.octets(),
                (16, std::net::IpAddr::V6(v6)) => bytes[..] == v6.octets(),
                _ => false,
            }
        }
        _ => false,
    })
}

/// A DNS name against a certificate's name, with a `*.` wildcard for one leftmost label.
fn dns_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(dns_matches("*.example.com", "a.example.com"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_matches("*.example.com", "example.com"));
        assert!(dns_matches("Vault.Example.com", "vault.example.com"));
    }
}
