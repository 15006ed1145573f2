//! Certificate parsing and checks for the cert method: PEM bundles, the chain to an entry's
//! CA certificates (with `webpki`: signatures with aws-lc-rs, validity periods, CA basic
//! constraints and path lengths, name constraints, and the `clientAuth` extended key usage
//! when the leaf lists usages), and an entry's name and extension constraints (with
//! `x509-parser`).

use super::CertEntry;
use crate::jwt::claims::glob;
use pki_types::{CertificateDer, UnixTime};
use std::collections::BTreeMap;
use x509_parser::der_parser;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

/// The DER certificates of a PEM text (`CERTIFICATE` blocks that parse).
pub fn pem_certs(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(|b| b.ok())
        .filter(|b| b.label == "CERTIFICATE" && b.parse_x509().is_ok())
        .map(|b| b.contents)
        .collect()
}

/// What a login needs to know of one certificate.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub is_ca: bool,
    pub common_name: String,
    pub dns: Vec<String>,
    pub emails: Vec<String>,
    pub uris: Vec<String>,
    pub ous: Vec<String>,
    /// Decimal, as Go's `big.Int.String()`.
    pub serial: String,
    /// Hex bytes separated by `:` (Vault's `GetHexFormatted`).
    pub subject_key_id: String,
    pub authority_key_id: String,
    /// Extended key usages are listed, and none is clientAuth or anyExtendedKeyUsage.
    pub eku_excludes_client_auth: bool,
    /// Extension OID → its value as a string (when it is one) and in hex.
    pub extensions: BTreeMap<String, (Option<String>, String)>,
    pub valid_now: bool,
    pub not_before: String,
    pub not_after: String,
}

fn hex_colons(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses one DER certificate.
pub fn facts(der: &[u8]) -> Result<Facts, String> {
    let (_, c) = X509Certificate::from_der(der).map_err(|e| format!("invalid certificate: {e}"))?;
    let mut f = Facts {
        is_ca: c.is_ca(),
        common_name: c
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string(),
        ous: c
            .subject()
            .iter_organizational_unit()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect(),
        serial: c.serial.to_string(),
        valid_now: c.validity().is_valid_at(ASN1Time::now()),
        not_before: c.validity().not_before.to_string(),
        not_after: c.validity().not_after.to_string(),
        ..Default::default()
    };
    for ext in c.extensions() {
        let value = der_parser::parse_der(ext.value)
            .ok()
            .and_then(|(_, o)| o.as_str().ok().map(str::to_string));
        f.extensions
            .insert(ext.oid.to_id_string(), (value, hex::encode(ext.value)));
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => f.subject_key_id = hex_colons(k.0),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                if let Some(k) = &a.key_identifier {
                    f.authority_key_id = hex_colons(k.0);
                }
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(s) => f.dns.push(s.to_string()),
                        GeneralName::RFC822Name(s) => f.emails.push(s.to_string()),
                        GeneralName::URI(s) => f.uris.push(s.to_string()),
                        _ => {}
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                f.eku_excludes_client_auth = !(eku.any || eku.client_auth);
            }
            _ => {}
        }
    }
    Ok(f)
}

/// Why a chain did not verify against an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// The chain does not lead to these anchors (try another entry).
    UnknownIssuer,
    /// The chain leads there but is not acceptable (expired, wrong usage, bad signature...).
    Invalid(String),
}

/// Verifies `leaf` (with the client's `intermediates`) up to one of `anchors` (DER
/// certificates trusted as roots, which may themselves be intermediates), for client
/// authentication, now.
pub fn verify_chain(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &[Vec<u8>],
) -> Result<(), ChainError> {
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let trust: Vec<_> = anchor_ders
        .iter()
        .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
        .collect();
    if trust.is_empty() {
        return Err(ChainError::UnknownIssuer);
    }
    let leaf_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| ChainError::Invalid(format!("invalid client certificate: {e}")))?;
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    match ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust,
        &inter,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    ) {
        Ok(_) => Ok(()),
        Err(webpki::Error::UnknownIssuer) => Err(ChainError::UnknownIssuer),
        Err(webpki::Error::CertExpired { .. }) => {
            Err(ChainError::Invalid("certificate has expired".into()))
        }
        Err(webpki::Error::CertNotValidYet { .. }) => {
            Err(ChainError::Invalid("certificate is not valid yet".into()))
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(_)) => Err(ChainError::Invalid(
            "certificate is not valid for client authentication (extended key usage)".into(),
        )),
        Err(e) => Err(ChainError::Invalid(format!("{e:?}"))),
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn any_glob_of(patterns: &[String], values: &[&str]) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| values.iter().any(|v| glob(p, v)))
}

/// Whether the leaf satisfies an entry's name and extension constraints (Vault's
/// `matchesNames`, `matchesCommonName`, `matches*SANs`, `matchesOrganizationalUnits`,
/// `matchesCertificateExtensions`). Returns the first failed constraint's name.
pub fn constraints(e: &CertEntry, f: &Facts) -> Result<(), &'static str> {
    let mut names: Vec<&str> = vec![f.common_name.as_str()];
    names.extend(f.dns.iter().map(String::as_str));
    names.extend(f.emails.iter().map(String::as_str));
    if !any_glob_of(&e.allowed_names, &names) {
        return Err("allowed_names");
    }
    if !any_glob_of(&e.allowed_common_names, &[f.common_name.as_str()]) {
        return Err("allowed_common_names");
    }
    if !any_glob_of(&e.allowed_dns_sans, &strs(&f.dns)) {
        return Err("allowed_dns_sans");
    }
    if !any_glob_of(&e.allowed_email_sans, &strs(&f.emails)) {
        return Err("allowed_email_sans");
    }
    if !any_glob_of(&e.allowed_uri_sans, &strs(&f.uris)) {
        return Err("allowed_uri_sans");
    }
    if !any_glob_of(&e.allowed_organizational_units, &strs(&f.ous)) {
        return Err("allowed_organizational_units");
    }
    for req in &e.required_extensions {
        let ok = match req.split_once(':') {
            Some(("hex", rest)) => match rest.split_once(':') {
                Some((oid, pat)) => f
                    .extensions
                    .get(oid)
                    .is_some_and(|(_, hex)| glob(&pat.to_lowercase(), hex)),
                None => false,
            },
            Some((oid, pat)) => f
                .extensions
                .get(oid)
                .is_some_and(|(v, _)| glob(pat, v.as_deref().unwrap_or(""))),
            None => false,
        };
        if !ok {
            return Err("required_extensions");
        }
    }
    Ok(())
}

/// Metadata from `allowed_metadata_extensions` (OID dots become dashes, as in Vault).
pub fn extension_metadata(e: &CertEntry, f: &Facts) -> BTreeMap<String, String> {
    e.allowed_metadata_extensions
        .iter()
        .filter_map(|oid| {
            let (v, _) = f.extensions.get(oid)?;
            Some((oid.replace('.', "-"), v.clone()?))
        })
        .collect()
}
