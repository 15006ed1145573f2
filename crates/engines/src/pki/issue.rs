//! Issuing: `issue/:role` (a new key and certificate), `sign/:role` (a certificate for a CSR),
//! `sign-verbatim(/:role)` (a CSR's subject and names as they are), and their issuer-scoped
//! forms `issuer/:ref/issue|sign|sign-verbatim/...`; plus the shared machinery every path
//! that makes a certificate uses: [`Template`] (what goes into a certificate), [`sign`] (rcgen
//! does the encoding and signing), CSR parsing ([`CsrInfo`]), subject names, TTLs bounded by
//! the role, the mount and the issuer, and the role's name, IP, URI and other-SAN rules.

use super::config::UrlsConfig;
use super::fetch::{store_cert, CertRecord};
use super::issuers::{LoadedIssuer, ISSUER_REF};
use super::keys::{generate_leaf, key_spec, KeyType, LeafKey, PrivKey};
use super::names::{common_name_allowed, first_invalid, glob, is_hostname};
use super::roles::{Role, ROLE_NAME};
use super::x509::{
    b64, common_name, dn_from_x509, ext_aia, ext_skid, key_id, pem_blocks, random_serial, rfc3339,
    rfc3339_nanos, serial_colon, CertInfo, IssuedCert,
};
use super::{bad, go_duration, mount_default_ttl, mount_max_ttl, Pki};
use ::time::OffsetDateTime;
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyIdMethod, KeyUsagePurpose,
    NameConstraints, PublicKeyData, SanType, SubjectPublicKeyInfo,
};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response, Secret};
use x509_parser::prelude::*;

/// Everything that goes into a certificate besides its public key and issuer.
#[derive(Clone, Default)]
pub struct Template {
    pub subject: DistinguishedName,
    pub dns: Vec<String>,
    pub emails: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub other_sans: Vec<(Vec<u64>, String)>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// None for a leaf; Some(path length constraint) for a CA.
    pub ca: Option<Option<u8>>,
    /// A leaf with `basicConstraints CA:FALSE`.
    pub leaf_basic_constraints: bool,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub ext_key_usages: Vec<ExtendedKeyUsagePurpose>,
    pub permitted_dns_domains: Vec<String>,
    pub excluded_dns_domains: Vec<String>,
    pub serial: Option<Vec<u8>>,
    /// Extensions copied as they are (self-issued re-signing).
    pub raw_extensions: Vec<CustomExtension>,
}

impl Template {
    fn params(&self, subject_key_bits: &[u8], urls: &UrlsConfig) -> Result<CertificateParams> {
        let mut p = CertificateParams::default();
        p.distinguished_name = self.subject.clone();
        p.serial_number = Some(self.serial.clone().unwrap_or_else(random_serial).into());
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::now_utc());
        p.not_before = self.not_before.unwrap_or(now - Duration::from_secs(30));
        p.not_after = self
            .not_after
            .unwrap_or(now + Duration::from_secs(super::SYSTEM_TTL));
        let mut sans = Vec::new();
        for d in &self.dns {
            sans.push(SanType::DnsName(
                d.clone()
                    .try_into()
                    .map_err(|_| bad(format!("invalid DNS name: {d}")))?,
            ));
        }
        for e in &self.emails {
            sans.push(SanType::Rfc822Name(
                e.clone()
                    .try_into()
                    .map_err(|_| bad(format!("invalid email address: {e}")))?,
            ));
        }
        for ip in &self.ips {
            sans.push(SanType::IpAddress(*ip));
        }
        for u in &self.uris {
            sans.push(SanType::URI(
                u.clone()
                    .try_into()
                    .map_err(|_| bad(format!("invalid URI: {u}")))?,
            ));
        }
        for (oid, v) in &self.other_sans {
            sans.push(SanType::OtherName((oid.clone(), v.clone().into())));
        }
        p.subject_alt_names = sans;
        p.key_usages = self.key_usages.clone();
        p.extended_key_usages = self.ext_key_usages.clone();
        p.use_authority_key_identifier_extension = true;
        let kid = key_id(subject_key_bits);
        p.key_identifier_method = KeyIdMethod::PreSpecified(kid.clone());
        p.is_ca = match self.ca {
            Some(None) => IsCa::Ca(BasicConstraints::Unconstrained),
            Some(Some(n)) => IsCa::Ca(BasicConstraints::Constrained(n)),
            None if self.leaf_basic_constraints => IsCa::ExplicitNoCa,
            None => IsCa::NoCa,
        };
        if matches!(p.is_ca, IsCa::NoCa) && self.raw_extensions.is_empty() {
            p.custom_extensions.push(ext_skid(&kid)?);
        }
        if !self.permitted_dns_domains.is_empty() || !self.excluded_dns_domains.is_empty() {
            p.name_constraints = Some(NameConstraints {
                permitted_subtrees: self
                    .permitted_dns_domains
                    .iter()
                    .map(|d| GeneralSubtree::DnsName(d.clone()))
                    .collect(),
                excluded_subtrees: self
                    .excluded_dns_domains
                    .iter()
                    .map(|d| GeneralSubtree::DnsName(d.clone()))
                    .collect(),
            });
        }
        if self.raw_extensions.is_empty() {
            if let Some(aia) = ext_aia(&urls.issuing_certificates, &urls.ocsp_servers)? {
                p.custom_extensions.push(aia);
            }
            if !urls.crl_distribution_points.is_empty() {
                p.crl_distribution_points = vec![CrlDistributionPoint {
                    uris: urls.crl_distribution_points.clone(),
                }];
            }
        }
        p.custom_extensions
            .extend(self.raw_extensions.iter().cloned());
        Ok(p)
    }
}

/// Signs a template for `public_key` with `issuer`.
pub fn sign(
    t: &Template,
    public_key: &impl PublicKeyData,
    issuer: &LoadedIssuer,
    urls: &UrlsConfig,
) -> Result<IssuedCert> {
    let bits = super::x509::spki_bits(&public_key.subject_public_key_info())?;
    let params = t.params(&bits, urls)?;
    let cert = params
        .signed_by(public_key, issuer.rcgen_issuer()?)
        .map_err(|e| Error::internal(format!("unable to sign the certificate: {e}")))?;
    let der = cert.der().to_vec();
    match (&t.serial, &params.serial_number) {
        // A serial of ours is a positive DER integer as it stands, and times are encoded to
        // the second: what went in is what the certificate says.
        (None, Some(serial)) => Ok(IssuedCert {
            serial: serial_colon(serial.as_ref()),
            not_before: params.not_before.unix_timestamp(),
            not_after: params.not_after.unix_timestamp(),
            der,
        }),
        // A serial from elsewhere may not be in its DER form: read it back.
        _ => Ok(IssuedCert::from(&CertInfo::parse(&der)?)),
    }
}

/// Self-signs a template with `key` (a root).
pub fn self_sign(t: &Template, key: &PrivKey, urls: &UrlsConfig) -> Result<CertInfo> {
    let bits = super::x509::spki_bits(&key.spki())?;
    let params = t.params(&bits, urls)?;
    let cert = params
        .self_signed(&key.pair)
        .map_err(|e| Error::internal(format!("unable to sign the certificate: {e}")))?;
    CertInfo::parse(cert.der())
}

/// The AIA URLs for certificates an issuer signs: the issuer's own when set, else the mount's.
pub fn issuer_urls(issuer: &LoadedIssuer, mount: &UrlsConfig) -> UrlsConfig {
    let e = &issuer.entry;
    if e.issuing_certificates.is_empty()
        && e.crl_distribution_points.is_empty()
        && e.ocsp_servers.is_empty()
    {
        mount.clone()
    } else {
        UrlsConfig {
            issuing_certificates: e.issuing_certificates.clone(),
            crl_distribution_points: e.crl_distribution_points.clone(),
            ocsp_servers: e.ocsp_servers.clone(),
            ..mount.clone()
        }
    }
}

/// A DN attribute value: PrintableString when the text allows it (as Go encodes), else UTF-8.
fn dn_value(s: &str) -> DnValue {
    match rcgen::string::PrintableString::try_from(s) {
        Ok(p) => DnValue::PrintableString(p),
        Err(_) => DnValue::Utf8String(s.to_string()),
    }
}

/// The subject attributes a request or role can set besides the common name.
#[derive(Default, Clone)]
pub struct SubjectFields {
    pub country: Vec<String>,
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
    pub street_address: Vec<String>,
    pub postal_code: Vec<String>,
    pub serial_number: String,
}

impl SubjectFields {
    pub fn from_role(r: &Role) -> Self {
        SubjectFields {
            country: r.country.clone(),
            organization: r.organization.clone(),
            ou: r.ou.clone(),
            locality: r.locality.clone(),
            province: r.province.clone(),
            street_address: r.street_address.clone(),
            postal_code: r.postal_code.clone(),
            serial_number: String::new(),
        }
    }
    pub fn from_call(c: &Call) -> Self {
        SubjectFields {
            country: c.fields.strings("country"),
            organization: c.fields.strings("organization"),
            ou: c.fields.strings("ou"),
            locality: c.fields.strings("locality"),
            province: c.fields.strings("province"),
            street_address: c.fields.strings("street_address"),
            postal_code: c.fields.strings("postal_code"),
            serial_number: c.fields.str("serial_number").to_string(),
        }
    }

    /// A subject name in Go's attribute order (C, O, OU, L, ST, street, postal code, serial
    /// number, CN). rcgen keeps one value per type, so lists contribute their first entry.
    pub fn dn(&self, cn: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        let first = |v: &Vec<String>| v.iter().find(|s| !s.is_empty()).cloned();
        let attrs: [(DnType, Option<String>); 8] = [
            (DnType::CountryName, first(&self.country)),
            (DnType::OrganizationName, first(&self.organization)),
            (DnType::OrganizationalUnitName, first(&self.ou)),
            (DnType::LocalityName, first(&self.locality)),
            (DnType::StateOrProvinceName, first(&self.province)),
            (
                DnType::CustomDnType(vec![2, 5, 4, 9]),
                first(&self.street_address),
            ),
            (
                DnType::CustomDnType(vec![2, 5, 4, 17]),
                first(&self.postal_code),
            ),
            (
                DnType::CustomDnType(vec![2, 5, 4, 5]),
                Some(self.serial_number.clone()).filter(|s| !s.is_empty()),
            ),
        ];
        for (ty, v) in attrs {
            if let Some(v) = v {
                dn.push(ty, dn_value(&v));
            }
        }
        if !cn.is_empty() {
            dn.push(DnType::CommonName, dn_value(cn));
        }
        dn
    }
}

/// A parsed, signature-checked CSR.
pub struct CsrInfo {
    pub subject: DistinguishedName,
    pub cn: String,
    pub dns: Vec<String>,
    pub emails: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub spki: Vec<u8>,
    pub key_type: Option<KeyType>,
    pub key_bits: u32,
    pub ca: Option<Option<u8>>,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub ext_key_usages: Vec<ExtendedKeyUsagePurpose>,
}

impl CsrInfo {
    pub fn parse_pem(pem: &str) -> Result<CsrInfo> {
        let der = pem_blocks(pem)
            .into_iter()
            .find(|(l, _)| l.contains("CERTIFICATE REQUEST"))
            .map(|(_, d)| d)
            .ok_or_else(|| bad("csr contains no data"))?;
        let (_, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|e| bad(format!("certificate request could not be parsed: {e}")))?;
        csr.verify_signature()
            .map_err(|_| bad("request signature invalid"))?;
        let info = &csr.certification_request_info;
        let spki = info.subject_pki.raw.to_vec();
        let key_type = match info.subject_pki.algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.113549.1.1.1" => Some(KeyType::Rsa),
            "1.2.840.10045.2.1" => Some(KeyType::Ec),
            "1.3.101.112" => Some(KeyType::Ed25519),
            _ => None,
        };
        let key_bits = info
            .subject_pki
            .parsed()
            .map(|k| k.key_size() as u32)
            .unwrap_or(0);
        let mut out = CsrInfo {
            subject: dn_from_x509(&info.subject)?,
            cn: common_name(&info.subject),
            dns: vec![],
            emails: vec![],
            ips: vec![],
            uris: vec![],
            spki,
            key_type,
            key_bits,
            ca: None,
            key_usages: vec![],
            ext_key_usages: vec![],
        };
        if let Some(exts) = csr.requested_extensions() {
            for ext in exts {
                match ext {
                    ParsedExtension::SubjectAlternativeName(san) => {
                        for n in &san.general_names {
                            match n {
                                GeneralName::DNSName(d) => out.dns.push(d.to_string()),
                                GeneralName::RFC822Name(e) => out.emails.push(e.to_string()),
                                GeneralName::URI(u) => out.uris.push(u.to_string()),
                                GeneralName::IPAddress(b) => {
                                    if let Some(ip) = ip_from_bytes(b) {
                                        out.ips.push(ip)
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    ParsedExtension::BasicConstraints(bc) if bc.ca => {
                        out.ca = Some(bc.path_len_constraint.map(|n| n.min(255) as u8));
                    }
                    ParsedExtension::KeyUsage(ku) => {
                        let pairs = [
                            (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
                            (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
                            (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
                            (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
                            (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
                            (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
                            (ku.crl_sign(), KeyUsagePurpose::CrlSign),
                            (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
                            (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
                        ];
                        out.key_usages = pairs
                            .into_iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, k)| k)
                            .collect();
                    }
                    ParsedExtension::ExtendedKeyUsage(eku) => {
                        let pairs = [
                            (eku.server_auth, ExtendedKeyUsagePurpose::ServerAuth),
                            (eku.client_auth, ExtendedKeyUsagePurpose::ClientAuth),
                            (eku.code_signing, ExtendedKeyUsagePurpose::CodeSigning),
                            (
                                eku.email_protection,
                                ExtendedKeyUsagePurpose::EmailProtection,
                            ),
                            (eku.time_stamping, ExtendedKeyUsagePurpose::TimeStamping),
                            (eku.ocsp_signing, ExtendedKeyUsagePurpose::OcspSigning),
                            (eku.any, ExtendedKeyUsagePurpose::Any),
                        ];
                        out.ext_key_usages = pairs
                            .into_iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, k)| k)
                            .collect();
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// The CSR's public key in the form rcgen signs for.
    pub fn public_key(&self) -> Result<SubjectPublicKeyInfo> {
        SubjectPublicKeyInfo::from_der(&self.spki)
            .map_err(|_| bad("unsupported public key type in the CSR"))
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// Vault's key usage names (case-insensitive); unknown names are ignored, as in Vault.
pub fn key_usages(names: &[String]) -> Vec<KeyUsagePurpose> {
    let mut out = Vec::new();
    for n in names {
        let k = match n.to_ascii_lowercase().as_str() {
            "digitalsignature" => KeyUsagePurpose::DigitalSignature,
            "contentcommitment" | "nonrepudiation" => KeyUsagePurpose::ContentCommitment,
            "keyencipherment" => KeyUsagePurpose::KeyEncipherment,
            "dataencipherment" => KeyUsagePurpose::DataEncipherment,
            "keyagreement" => KeyUsagePurpose::KeyAgreement,
            "certsign" => KeyUsagePurpose::KeyCertSign,
            "crlsign" => KeyUsagePurpose::CrlSign,
            "encipheronly" => KeyUsagePurpose::EncipherOnly,
            "decipheronly" => KeyUsagePurpose::DecipherOnly,
            _ => continue,
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

fn parse_oid(s: &str) -> Option<Vec<u64>> {
    let parts: Option<Vec<u64>> = s.trim().split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| p.len() >= 2)
}

/// The role's extended key usages: flags, names and OIDs.
pub fn ext_key_usages(role: &Role) -> Result<Vec<ExtendedKeyUsagePurpose>> {
    let mut out = Vec::new();
    let mut add = |e: ExtendedKeyUsagePurpose| {
        if !out.contains(&e) {
            out.push(e)
        }
    };
    if role.server_flag {
        add(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if role.client_flag {
        add(ExtendedKeyUsagePurpose::ClientAuth);
    }
    if role.code_signing_flag {
        add(ExtendedKeyUsagePurpose::CodeSigning);
    }
    if role.email_protection_flag {
        add(ExtendedKeyUsagePurpose::EmailProtection);
    }
    for n in &role.ext_key_usage {
        let e = match n.to_ascii_lowercase().as_str() {
            "any" => ExtendedKeyUsagePurpose::Any,
            "serverauth" => ExtendedKeyUsagePurpose::ServerAuth,
            "clientauth" => ExtendedKeyUsagePurpose::ClientAuth,
            "codesigning" => ExtendedKeyUsagePurpose::CodeSigning,
            "emailprotection" => ExtendedKeyUsagePurpose::EmailProtection,
            "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
            "ocspsigning" => ExtendedKeyUsagePurpose::OcspSigning,
            "ipsecendsystem" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5]),
            "ipsectunnel" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6]),
            "ipsecuser" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7]),
            _ => continue,
        };
        add(e);
    }
    for o in &role.ext_key_usage_oids {
        let oid = parse_oid(o).ok_or_else(|| bad(format!("{o} is not a valid OID")))?;
        add(ExtendedKeyUsagePurpose::Other(oid));
    }
    Ok(out)
}

/// The request's TTL bounded by the role and mount, with Vault's warning when capped.
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Computes notBefore/notAfter: `ttl` (request, else role, else mount default) capped at
/// `max_ttl` (role, else mount max), or an explicit `not_after`; then checked against the
/// issuer's expiry per its `leaf_not_after_behavior` (`permit_with_warning` overrides it for
/// CA signing).
#[allow(clippy::too_many_arguments)]
pub fn validity(
    c: &Call,
    req_ttl: u64,
    role_ttl: u64,
    role_max_ttl: u64,
    not_before_secs: u64,
    issuer: Option<&LoadedIssuer>,
    permit_with_warning: bool,
    warnings: &mut Vec<String>,
) -> Result<Validity> {
    let now = OffsetDateTime::now_utc();
    let mut ttl = if req_ttl > 0 { req_ttl } else { role_ttl };
    if ttl == 0 {
        ttl = mount_default_ttl(c);
    }
    let max = if role_max_ttl > 0 {
        role_max_ttl
    } else {
        mount_max_ttl(c)
    };
    let explicit = c.fields.str("not_after").trim().to_string();
    let mut not_after = if !explicit.is_empty() {
        OffsetDateTime::parse(&explicit, &::time::format_description::well_known::Rfc3339)
            .map_err(|_| bad(format!("unable to parse not_after: {explicit}")))?
    } else {
        if ttl > max {
            warnings.push(format!(
                "TTL {:?} is longer than permitted maxTTL {:?}, so maxTTL is being used",
                go_duration(ttl),
                go_duration(max)
            ));
            ttl = max;
        }
        now + Duration::from_secs(ttl)
    };
    if let Some(i) = issuer {
        let ca_after = OffsetDateTime::from_unix_timestamp(i.info.not_after)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if not_after > ca_after {
            if permit_with_warning {
                warnings.push("The expiration time for the signed certificate is after the CA's expiration time. If the new certificate is not treated as a root, validation paths with the certificate past the issuing CA's expiration time will fail.".into());
            } else {
                match i.entry.leaf_not_after_behavior.as_str() {
                    "permit" => {}
                    "truncate" => not_after = ca_after,
                    _ => {
                        return Err(bad(format!(
                            "cannot satisfy request, as TTL would result in notAfter of {} that is beyond the expiration of the CA certificate at {}",
                            rfc3339_nanos(not_after),
                            rfc3339(i.info.not_after)
                        )))
                    }
                }
            }
        }
    }
    let not_before = now - Duration::from_secs(not_before_secs);
    Ok(Validity {
        not_before: not_before.replace_nanosecond(0).unwrap_or(not_before),
        not_after: not_after.replace_nanosecond(0).unwrap_or(not_after),
    })
}

/// Names for the certificate: the common name (added to the DNS or email SANs unless
/// `exclude_cn_from_sans`), `alt_names` (or the CSR's names with `use_csr_sans`), IP, URI
/// and other SANs, each checked against the role.
pub fn names_for(
    c: &Call,
    role: &Role,
    cn: &str,
    csr: Option<&CsrInfo>,
    t: &mut Template,
) -> Result<()> {
    let use_csr_sans = csr.is_some() && role.use_csr_sans;
    if !cn.is_empty() && !c.fields.bool("exclude_cn_from_sans") {
        if cn.contains('@') {
            t.emails.push(cn.to_string());
        } else if cn.is_ascii() && is_hostname(cn) {
            t.dns.push(cn.to_string());
        }
    }
    if let (true, Some(csr)) = (use_csr_sans, csr) {
        for d in &csr.dns {
            if !t.dns.contains(d) {
                t.dns.push(d.clone());
            }
        }
        for e in &csr.emails {
            if !t.emails.contains(e) {
                t.emails.push(e.clone());
            }
        }
    } else {
        let mut alt = c.fields.strings("alt_names");
        alt.sort();
        alt.dedup();
        for v in alt {
            if v.contains('@') {
                t.emails.push(v);
            } else if v.is_ascii() && is_hostname(&v) {
                t.dns.push(v);
            }
        }
    }
    if !cn.is_empty() && !common_name_allowed(role, cn) {
        return Err(bad(format!("common name {cn} not allowed by this role")));
    }
    if let Some(n) = first_invalid(role, &t.dns) {
        return Err(bad(format!(
            "subject alternate name {n} not allowed by this role"
        )));
    }
    if let Some(n) = first_invalid(role, &t.emails) {
        return Err(bad(format!("email address {n} not allowed by this role")));
    }
    // IP SANs.
    if let (true, Some(csr)) = (use_csr_sans, csr) {
        if !csr.ips.is_empty() {
            if !role.allow_ip_sans {
                return Err(bad("IP Subject Alternative Names are not allowed in this role, but was provided some via CSR"));
            }
            t.ips = csr.ips.clone();
        }
    } else {
        let ips = c.fields.strings("ip_sans");
        if !ips.is_empty() {
            if !role.allow_ip_sans {
                return Err(bad("IP Subject Alternative Names are not allowed in this role, but was provided via the API"));
            }
            for v in ips {
                let ip: IpAddr = v
                    .parse()
                    .map_err(|_| bad(format!("the value {v:?} is not a valid IP address")))?;
                t.ips.push(ip);
            }
        }
    }
    // URI SANs.
    let (uris, via) = match (use_csr_sans, csr) {
        (true, Some(csr)) => (csr.uris.clone(), "CSR"),
        _ => (c.fields.strings("uri_sans"), "the API"),
    };
    if !uris.is_empty() {
        if role.allowed_uri_sans.is_empty() {
            return Err(bad(format!(
                "URI Subject Alternative Names are not allowed in this role, but were provided via {via}"
            )));
        }
        for u in &uris {
            if !role.allowed_uri_sans.iter().any(|p| glob(p, u)) {
                return Err(bad(format!(
                    "URI Subject Alternative Names were provided via {via} which are not valid for this role"
                )));
            }
        }
        t.uris = uris;
    }
    // Other SANs: "oid;UTF8:value".
    for spec in c.fields.strings("other_sans") {
        let (oid_s, rest) = spec.split_once(';').ok_or_else(|| {
            bad(format!(
                "error parsing other SAN {spec:?}: expected oid;type:value"
            ))
        })?;
        let (ty, value) = rest.split_once(':').ok_or_else(|| {
            bad(format!(
                "error parsing other SAN {spec:?}: expected oid;type:value"
            ))
        })?;
        if !matches!(ty.to_ascii_uppercase().as_str(), "UTF8" | "UTF-8") {
            return Err(bad(format!(
                "other SAN type {ty} is not supported; use UTF8"
            )));
        }
        let allowed = role.allowed_other_sans.iter().any(|a| {
            a == "*"
                || a.split_once(';').is_some_and(|(ao, arest)| {
                    ao == oid_s && arest.split_once(':').is_some_and(|(_, av)| glob(av, value))
                })
        });
        if !allowed {
            return Err(bad(format!(
                "other SAN OID {oid_s} not allowed by this role"
            )));
        }
        let oid = parse_oid(oid_s).ok_or_else(|| bad(format!("{oid_s} is not a valid OID")))?;
        t.other_sans.push((oid, value.to_string()));
    }
    Ok(())
}

/// The issuer a role (or an issuer-scoped path) names, checked for issuing.
pub async fn issuing_issuer(b: &Pki, c: &Call, role_ref: &str) -> Result<Arc<LoadedIssuer>> {
    let reference = if c.fields.has("issuer_ref") && !c.fields.str("issuer_ref").is_empty() {
        c.fields.str("issuer_ref").to_string()
    } else if role_ref.is_empty() {
        "default".to_string()
    } else {
        role_ref.to_string()
    };
    let issuer = match b.issuer(&c.storage, &reference).await {
        Ok(i) => i,
        Err(Error::BadRequest(msg)) => {
            return Err(bad(format!(
                "could not fetch the CA certificate (was one set?): {msg}"
            )));
        }
        Err(e) => return Err(e),
    };
    if !issuer.entry.has_usage("issuing-certificates") {
        return Err(bad(format!(
            "error fetching CA certificate: issuer {} does not have the issuing-certificates usage",
            issuer.entry.id
        )));
    }
    issuer.signing_key()?;
    Ok(issuer)
}

/// The issued certificate's answer (`format`: pem, der or pem_bundle).
pub fn cert_response(
    c: &Call,
    cert: &IssuedCert,
    issuer: &LoadedIssuer,
    key: Option<&LeafKey>,
    include_not_before: bool,
) -> Result<Value> {
    let format = match c.fields.str("format") {
        "" => "pem",
        f => f,
    };
    let mut chain = issuer.chain();
    if c.fields.bool("remove_roots_from_chain") {
        chain.retain(|p| CertInfo::from_pem(p).is_ok_and(|i| !i.self_issued()));
    }
    let to_fmt = |pem: &str| -> String {
        if format == "der" {
            CertInfo::from_pem(pem)
                .map(|i| b64(&i.der))
                .unwrap_or_default()
        } else {
            pem.to_string()
        }
    };
    let issuing_ca = to_fmt(&issuer.pem);
    let mut certificate = to_fmt(&cert.pem());
    let mut d = json!({
        "ca_chain": chain.iter().map(|p| to_fmt(p)).collect::<Vec<_>>(),
        "expiration": cert.not_after,
        "issuing_ca": issuing_ca,
        "serial_number": cert.serial,
    });
    if include_not_before {
        d["not_before"] = json!(cert.not_before);
    }
    if let Some(k) = key {
        let pk_format = c.fields.str("private_key_format");
        let pk = k.export(if format == "der" { "der" } else { "pem" }, pk_format)?;
        if format == "pem_bundle" {
            certificate = format!("{pk}\n{certificate}\n{}", issuer.pem);
        }
        d["private_key"] = json!(pk);
        d["private_key_type"] = json!(k.ty.as_str());
    } else if format == "pem_bundle" {
        certificate = format!("{certificate}\n{}", issuer.pem);
    }
    d["certificate"] = json!(certificate);
    Ok(d)
}

/// Fields shared by issue and sign.
fn issue_fields(p: Path<Pki>) -> Path<Pki> {
    p.field("common_name", Field::string("the requested common name"))
        .field(
            "alt_names",
            Field::list("requested DNS names or email addresses"),
        )
        .field("ip_sans", Field::list("requested IP SANs"))
        .field("uri_sans", Field::list("requested URI SANs"))
        .field(
            "other_sans",
            Field::list("requested other SANs (oid;UTF8:value)"),
        )
        .field("ttl", Field::duration("requested TTL"))
        .field("not_after", Field::string("explicit expiry (RFC 3339)"))
        .field(
            "format",
            Field::string("pem, der or pem_bundle").default("pem"),
        )
        .field("private_key_format", Field::string("der, pem or pkcs8"))
        .field(
            "exclude_cn_from_sans",
            Field::bool("leave the CN out of the SANs"),
        )
        .field(
            "serial_number",
            Field::string("the subject's serialNumber attribute"),
        )
        .field(
            "remove_roots_from_chain",
            Field::bool("drop self-signed certs from ca_chain"),
        )
        .field("user_ids", Field::list("user ids (not supported)"))
        .field("key_type", Field::string("ignored: the role decides"))
        .field("key_bits", Field::int("ignored: the role decides"))
}

pub fn paths() -> Vec<Path<Pki>> {
    let csr = |p: Path<Pki>| p.field("csr", Field::string("PEM-encoded CSR"));
    let verbatim_fields = |p: Path<Pki>| {
        csr(issue_fields(p))
            .field(
                "key_usage",
                Field::list("key usages").default(json!([
                    "DigitalSignature",
                    "KeyAgreement",
                    "KeyEncipherment"
                ])),
            )
            .field("ext_key_usage", Field::list("extended key usages"))
            .field("ext_key_usage_oids", Field::list("extended key usage OIDs"))
            .field("signature_bits", Field::int("signature hash size"))
            .field("use_pss", Field::bool("use PSS signatures"))
    };
    vec![
        issue_fields(Path::new(format!("issue/{ROLE_NAME}").as_str()))
            .op(Update, issue)
            .help("Issue a certificate and private key from a role."),
        issue_fields(Path::new(
            format!("issuer/{ISSUER_REF}/issue/{ROLE_NAME}").as_str(),
        ))
        .op(Update, issue)
        .help("Issue a certificate and private key from a role, with a chosen issuer."),
        csr(issue_fields(Path::new(
            format!("sign/{ROLE_NAME}").as_str(),
        )))
        .op(Update, sign_csr)
        .help("Sign a CSR under a role."),
        csr(issue_fields(Path::new(
            format!("issuer/{ISSUER_REF}/sign/{ROLE_NAME}").as_str(),
        )))
        .op(Update, sign_csr)
        .help("Sign a CSR under a role, with a chosen issuer."),
        verbatim_fields(Path::new(format!("sign-verbatim(/{ROLE_NAME})?").as_str()))
            .op(Update, sign_verbatim)
            .help("Sign a CSR as it is."),
        verbatim_fields(Path::new(
            format!("issuer/{ISSUER_REF}/sign-verbatim(/{ROLE_NAME})?").as_str(),
        ))
        .op(Update, sign_verbatim)
        .help("Sign a CSR as it is, with a chosen issuer."),
    ]
}

async fn load_role(b: &Pki, c: &Call) -> Result<Arc<Role>> {
    let name = c.fields.str("name");
    b.role(&c.storage, name)
        .await?
        .ok_or_else(|| bad(format!("unknown role: {name}")))
}

fn require_cn(role: &Role, cn: &str) -> Result<()> {
    if role.require_cn && cn.is_empty() {
        return Err(bad("the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false"));
    }
    Ok(())
}

/// The leaf template a role produces for `cn` (names checked, validity set).
#[allow(clippy::too_many_arguments)]
fn leaf_template(
    c: &Call,
    role: &Role,
    cn: &str,
    csr: Option<&CsrInfo>,
    issuer: &LoadedIssuer,
    warnings: &mut Vec<String>,
) -> Result<Template> {
    let mut t = Template {
        subject: {
            let mut f = SubjectFields::from_role(role);
            f.serial_number = c.fields.str("serial_number").to_string();
            f.dn(cn)
        },
        key_usages: key_usages(&role.key_usage),
        ext_key_usages: ext_key_usages(role)?,
        leaf_basic_constraints: role.basic_constraints_valid_for_non_ca,
        ..Default::default()
    };
    names_for(c, role, cn, csr, &mut t)?;
    let v = validity(
        c,
        c.fields.duration("ttl").as_secs(),
        role.ttl,
        role.max_ttl,
        role.not_before_duration,
        Some(issuer),
        false,
        warnings,
    )?;
    t.not_before = Some(v.not_before);
    t.not_after = Some(v.not_after);
    Ok(t)
}

/// Stores (unless the role says not to) and answers, with a lease when the role asks for one.
async fn finish(
    c: &Call,
    role: &Role,
    cert: IssuedCert,
    issuer: &LoadedIssuer,
    key: Option<&LeafKey>,
    warnings: Vec<String>,
) -> Result<Response> {
    if !role.no_store {
        store_cert(&c.storage, &CertRecord::new(&cert, &issuer.entry.id)).await?;
    }
    let data = cert_response(c, &cert, issuer, key, true)?;
    let mut resp = Response::data(data);
    resp.warnings = warnings;
    if role.generate_lease && !role.no_store {
        let ttl = (cert.not_after - super::x509::now_unix()).max(1) as u64;
        resp.secret = Some(Box::new(Secret {
            ttl: Duration::from_secs(ttl),
            max_ttl: Duration::from_secs(ttl),
            renewable: false,
            internal: json!({ "serial_number": cert.serial }),
        }));
    }
    Ok(resp)
}

async fn issue(b: Arc<Pki>, c: Call) -> Result<Response> {
    let role = load_role(&b, &c).await?;
    if role.key_type == "any" {
        return Err(bad(
            "role key type \"any\" not allowed for issuing certificates, only signing",
        ));
    }
    let issuer = issuing_issuer(&b, &c, &role.issuer_ref).await?;
    let cn = c.fields.str("common_name").trim().to_string();
    require_cn(&role, &cn)?;
    let mut warnings = Vec::new();
    let t = leaf_template(&c, &role, &cn, None, &issuer, &mut warnings)?;
    if c.fields.has("key_type") || c.fields.has("key_bits") {
        warnings
            .push("parameters key_type and key_bits ignored as role had specific values".into());
    }
    let spec = key_spec(&role.key_type, role.key_bits)?;
    let key = generate_leaf(spec).await?;
    let mount_urls = b.urls(&c.storage).await?;
    let cert = sign(&t, &key, &issuer, &issuer_urls(&issuer, &mount_urls))?;
    finish(&c, &role, cert, &issuer, Some(&key), warnings).await
}

/// Checks a CSR's key against the role's key type and size.
fn check_csr_key(role: &Role, csr: &CsrInfo) -> Result<()> {
    let Some(ty) = csr.key_type else {
        return Err(bad("unsupported public key type in the CSR"));
    };
    if ty == KeyType::Rsa && csr.key_bits < 2048 {
        return Err(bad(format!(
            "RSA keys < 2048 bits are unsafe and not supported: got {}",
            csr.key_bits
        )));
    }
    if role.key_type == "any" {
        return Ok(());
    }
    if role.key_type != ty.as_str() {
        return Err(bad(format!("role requires keys of type {}", role.key_type)));
    }
    match ty {
        KeyType::Rsa if (csr.key_bits as i64) < role.key_bits => Err(bad(format!(
            "role requires a minimum of {} bits for RSA keys",
            role.key_bits
        ))),
        KeyType::Ec if (csr.key_bits as i64) < role.key_bits => Err(bad(format!(
            "role requires a minimum of {} bits for EC keys",
            role.key_bits
        ))),
        _ => Ok(()),
    }
}

async fn sign_csr(b: Arc<Pki>, c: Call) -> Result<Response> {
    let role = load_role(&b, &c).await?;
    let issuer = issuing_issuer(&b, &c, &role.issuer_ref).await?;
    let csr = CsrInfo::parse_pem(c.fields.str("csr"))?;
    check_csr_key(&role, &csr)?;
    let mut warnings = Vec::new();
    let requested_cn = c.fields.str("common_name").trim().to_string();
    let cn = if role.use_csr_common_name {
        if !requested_cn.is_empty() {
            warnings.push("the common_name field was provided but the role is set with \"use_csr_common_name\" set to true".into());
        }
        csr.cn.clone()
    } else {
        requested_cn
    };
    require_cn(&role, &cn)?;
    let t = leaf_template(&c, &role, &cn, Some(&csr), &issuer, &mut warnings)?;
    let pk = csr.public_key()?;
    let mount_urls = b.urls(&c.storage).await?;
    let cert = sign(&t, &pk, &issuer, &issuer_urls(&issuer, &mount_urls))?;
    finish(&c, &role, cert, &issuer, None, warnings).await
}

async fn sign_verbatim(b: Arc<Pki>, c: Call) -> Result<Response> {
    let mut role = Role::verbatim(&c);
    if c.fields.has("name") && !c.fields.str("name").is_empty() {
        let named = load_role(&b, &c).await?;
        role.ttl = named.ttl;
        role.max_ttl = named.max_ttl;
        role.generate_lease = named.generate_lease;
        role.no_store = named.no_store;
        role.issuer_ref = named.issuer_ref.clone();
        role.not_before_duration = named.not_before_duration;
    }
    let issuer = issuing_issuer(&b, &c, &role.issuer_ref).await?;
    let csr = CsrInfo::parse_pem(c.fields.str("csr"))?;
    check_csr_key(&role, &csr)?;
    let mut warnings = Vec::new();
    let mut t = Template {
        subject: csr.subject.clone(),
        dns: csr.dns.clone(),
        emails: csr.emails.clone(),
        ips: csr.ips.clone(),
        uris: csr.uris.clone(),
        key_usages: key_usages(&role.key_usage),
        ext_key_usages: ext_key_usages(&role)?,
        ..Default::default()
    };
    let v = validity(
        &c,
        c.fields.duration("ttl").as_secs(),
        role.ttl,
        role.max_ttl,
        role.not_before_duration,
        Some(&issuer),
        false,
        &mut warnings,
    )?;
    t.not_before = Some(v.not_before);
    t.not_after = Some(v.not_after);
    let pk = csr.public_key()?;
    let mount_urls = b.urls(&c.storage).await?;
    let cert = sign(&t, &pk, &issuer, &issuer_urls(&issuer, &mount_urls))?;
    finish(&c, &role, cert, &issuer, None, warnings).await
}
