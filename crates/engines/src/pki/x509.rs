//! X.509 helpers shared by the PKI paths: PEM in and out, serial numbers, key identifiers,
//! subject names, the extensions rcgen does not write itself (subject key identifier for
//! leaves, authority information access), and [`CertInfo`], an owned summary of a parsed
//! certificate so handlers never hold x509-parser's borrowed structures across awaits.
//!
//! Parsing is x509-parser's; encoding of the few extensions rcgen lacks uses the RustCrypto
//! `der`/`x509-cert` types (the same ones the OCSP responder uses). Nothing here signs or hashes
//! by hand: digests are aws-lc-rs's.

use aws_lc_rs::digest;
use base64::Engine;
use rcgen::{CustomExtension, DistinguishedName, DnType, DnValue};
use tresor_core::error::{Error, Result};
use x509_cert::der::Encode;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::*;

/// OID of the subject key identifier extension (2.5.29.14).
pub const OID_SKID: &[u64] = &[2, 5, 29, 14];
/// OID of the authority information access extension (1.3.6.1.5.5.7.1.1).
pub const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];

/// Base64 (standard alphabet, padded).
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard or URL-safe base64, padded or not.
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

/// PEM-encodes `der` under `label`, 64 columns, without a trailing newline (as Vault's JSON
/// answers carry it).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----"));
    out
}

/// A certificate as PEM.
pub fn cert_pem(der: &[u8]) -> String {
    pem_encode("CERTIFICATE", der)
}

/// Every PEM block in `input`: (label, DER).
pub fn pem_blocks(input: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(input.as_bytes()) {
        match pem {
            Ok(p) => out.push((p.label, p.contents)),
            Err(_) => break,
        }
    }
    out
}

/// The DER of every certificate block in `input`.
pub fn pem_certs(input: &str) -> Vec<Vec<u8>> {
    pem_blocks(input)
        .into_iter()
        .filter(|(l, _)| l == "CERTIFICATE")
        .map(|(_, d)| d)
        .collect()
}

/// Serial bytes as Vault prints them: lowercase hex pairs joined by `:`.
pub fn serial_colon(bytes: &[u8]) -> String {
    let trimmed: &[u8] = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        b => b,
    };
    hex_colon(trimmed)
}

/// A serial number as a client may send it (`AA:bb`, `aa-bb`) in Vault's display form.
pub fn normalize_serial(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace('-', ":")
}

/// The storage key form of a serial (`aa-bb-...`).
pub fn serial_key(s: &str) -> String {
    normalize_serial(s).replace(':', "-")
}

/// The bytes of a serial in display form, or None when it is not hex pairs.
pub fn serial_bytes(s: &str) -> Option<Vec<u8>> {
    let hexs: String = normalize_serial(s).chars().filter(|c| *c != ':').collect();
    if hexs.is_empty() {
        return None;
    }
    let padded = if hexs.len() % 2 == 1 {
        format!("0{hexs}")
    } else {
        hexs
    };
    hex::decode(padded).ok()
}

/// A fresh random serial: 20 bytes with the high bit clear (a positive 159-bit integer) and a
/// non-zero first byte, so its encoding is always 20 bytes.
pub fn random_serial() -> Vec<u8> {
    let mut b = tresor_core::barrier::random_bytes(20);
    b[0] &= 0x7f;
    if b[0] == 0 {
        b[0] = 0x01;
    }
    b
}

/// RFC 5280 method 1 key identifier: SHA-1 of the subjectPublicKey BIT STRING's bytes.
pub fn key_id(public_key_bits: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, public_key_bits)
        .as_ref()
        .to_vec()
}

/// Key identifier bytes as Vault prints them (`aa:bb:...`).
pub fn hex_colon(bytes: &[u8]) -> String {
    // Written digit by digit: a `format!` per byte showed at ~1% of a certificate issue.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

/// The subjectPublicKey bits of a DER SubjectPublicKeyInfo.
pub fn spki_bits(spki_der: &[u8]) -> Result<Vec<u8>> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| Error::internal("could not parse a public key"))?;
    Ok(spki.subject_public_key.data.to_vec())
}

/// A subject key identifier extension (for leaf certificates; rcgen writes it only for CAs).
pub fn ext_skid(kid: &[u8]) -> Result<CustomExtension> {
    let content = x509_cert::der::asn1::OctetString::new(kid.to_vec())
        .and_then(|o| o.to_der())
        .map_err(|e| Error::internal(format!("encoding key identifier: {e}")))?;
    Ok(CustomExtension::from_oid_content(OID_SKID, content))
}

/// An authority information access extension with CA-issuer and OCSP URLs.
pub fn ext_aia(issuing: &[String], ocsp: &[String]) -> Result<Option<CustomExtension>> {
    use x509_cert::der::asn1::{Ia5String, ObjectIdentifier};
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
    const OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
    const CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
    let mut descs = Vec::new();
    for (method, urls) in [(OCSP, ocsp), (CA_ISSUERS, issuing)] {
        for u in urls {
            let uri = Ia5String::new(u)
                .map_err(|_| Error::bad(format!("invalid URL in AIA information: {u}")))?;
            descs.push(AccessDescription {
                access_method: method,
                access_location: GeneralName::UniformResourceIdentifier(uri),
            });
        }
    }
    if descs.is_empty() {
        return Ok(None);
    }
    let content = AuthorityInfoAccessSyntax(descs)
        .to_der()
        .map_err(|e| Error::internal(format!("encoding AIA: {e}")))?;
    Ok(Some(CustomExtension::from_oid_content(OID_AIA, content)))
}

/// Converts a parsed X.509 name into rcgen's form, keeping each attribute's string type.
/// rcgen keeps one value per attribute type; a name with repeated types keeps the last.
pub fn dn_from_x509(name: &X509Name<'_>) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let oid: Vec<u64> = attr
                .attr_type()
                .iter()
                .map(|i| i.collect())
                .ok_or_else(|| Error::bad("unsupported attribute in a subject name"))?;
            let data = attr.attr_value().data;
            let text = || {
                std::str::from_utf8(data)
                    .map(str::to_string)
                    .map_err(|_| Error::bad("a subject name is not valid text"))
            };
            let value = match attr.attr_value().header.tag() {
                Tag::PrintableString => DnValue::PrintableString(
                    text()?
                        .try_into()
                        .map_err(|_| Error::bad("invalid PrintableString in a subject name"))?,
                ),
                Tag::Ia5String => DnValue::Ia5String(
                    text()?
                        .try_into()
                        .map_err(|_| Error::bad("invalid IA5String in a subject name"))?,
                ),
                Tag::T61String => DnValue::TeletexString(
                    text()?
                        .try_into()
                        .map_err(|_| Error::bad("invalid TeletexString in a subject name"))?,
                ),
                Tag::BmpString => DnValue::BmpString(
                    rcgen::string::BmpString::from_utf16be(data.to_vec())
                        .map_err(|_| Error::bad("invalid BMPString in a subject name"))?,
                ),
                Tag::UniversalString => DnValue::UniversalString(
                    rcgen::string::UniversalString::from_utf32be(data.to_vec())
                        .map_err(|_| Error::bad("invalid UniversalString in a subject name"))?,
                ),
                _ => DnValue::Utf8String(text()?),
            };
            dn.push(DnType::from_oid(&oid), value);
        }
    }
    Ok(dn)
}

/// The first common name of a parsed name, if any.
pub fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("")
        .to_string()
}

/// A certificate as an answer and the certificate store need it: DER, serial and validity.
/// Signing fills it from what it put in the certificate, without parsing it back (that parse
/// was ~5% of an EC P-256 issue); [`CertInfo`] has the rest when it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    /// Display form (`aa:bb:...`).
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
}

impl IssuedCert {
    pub fn pem(&self) -> String {
        cert_pem(&self.der)
    }
}

impl From<&CertInfo> for IssuedCert {
    fn from(c: &CertInfo) -> IssuedCert {
        IssuedCert {
            der: c.der.clone(),
            serial: c.serial.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
        }
    }
}

/// What the engine needs to know about a certificate, owned.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub der: Vec<u8>,
    /// Display form (`aa:bb:...`).
    pub serial: String,
    pub serial_bytes: Vec<u8>,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub spki: Vec<u8>,
    pub public_key_bits: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub skid: Option<Vec<u8>>,
    pub akid: Option<Vec<u8>>,
    pub common_name: String,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo> {
        let (_, c) = X509Certificate::from_der(der)
            .map_err(|e| Error::bad(format!("unable to parse certificate: {e}")))?;
        let mut skid = None;
        let mut akid = None;
        for ext in c.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => skid = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    akid = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => {}
            }
        }
        Ok(CertInfo {
            der: der.to_vec(),
            serial: serial_colon(c.raw_serial()),
            serial_bytes: c.raw_serial().to_vec(),
            subject_raw: c.subject().as_raw().to_vec(),
            issuer_raw: c.issuer().as_raw().to_vec(),
            spki: c.public_key().raw.to_vec(),
            public_key_bits: c.public_key().subject_public_key.data.to_vec(),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
            is_ca: c.is_ca(),
            skid,
            akid,
            common_name: common_name(c.subject()),
        })
    }

    /// Parses the first certificate of a PEM string.
    pub fn from_pem(pem: &str) -> Result<CertInfo> {
        let der = pem_certs(pem)
            .into_iter()
            .next()
            .ok_or_else(|| Error::bad("no certificate found in the PEM data"))?;
        Self::parse(&der)
    }

    pub fn pem(&self) -> String {
        cert_pem(&self.der)
    }

    /// Whether the subject and issuer names are the same.
    pub fn self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// Whether `parent` issued (signed) this certificate.
    pub fn signed_by(&self, parent: &CertInfo) -> bool {
        if self.issuer_raw != parent.subject_raw {
            return false;
        }
        if let (Some(a), Some(s)) = (&self.akid, &parent.skid) {
            if a != s {
                return false;
            }
        }
        let Ok((_, c)) = X509Certificate::from_der(&self.der) else {
            return false;
        };
        let Ok((_, p)) = X509Certificate::from_der(&parent.der) else {
            return false;
        };
        c.verify_signature(Some(p.public_key())).is_ok()
    }
}

/// Seconds since the epoch now.
pub fn now_unix() -> i64 {
    ::time::OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 with nanoseconds, UTC (`2026-11-23T01:06:14.261610723Z`), as Go prints times.
pub fn rfc3339_nanos(t: ::time::OffsetDateTime) -> String {
    let t = t.to_offset(::time::UtcOffset::UTC);
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// RFC 3339 of a unix time, seconds precision.
pub fn rfc3339(unix: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(unix)
        .map(rfc3339_nanos)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_round_trip() {
        assert_eq!(serial_colon(&[0x00, 0x8a, 0x01]), "8a:01");
        assert_eq!(serial_colon(&[0x00]), "00");
        assert_eq!(hex_colon(&[]), "");
        assert_eq!(hex_colon(&[0x0f, 0xf0, 0xab]), "0f:f0:ab");
        assert_eq!(normalize_serial("8A-01"), "8a:01");
        assert_eq!(serial_key("8a:01"), "8a-01");
        assert_eq!(serial_bytes("8a:01"), Some(vec![0x8a, 0x01]));
        let s = random_serial();
        assert_eq!(s.len(), 20);
        assert!(s[0] > 0 && s[0] < 0x80);
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let p = pem_encode("X", &[7u8; 100]);
        assert!(p.starts_with("-----BEGIN X-----\n"));
        assert!(p.ends_with("-----END X-----"));
        assert!(p.lines().all(|l| l.len() <= 64));
        let blocks = pem_blocks(&p);
        assert_eq!(blocks, vec![("X".to_string(), vec![7u8; 100])]);
    }

    #[test]
    fn times_print_like_go() {
        let t =
            ::time::OffsetDateTime::from_unix_timestamp_nanos(1_795_395_974_261_610_723).unwrap();
        assert_eq!(rfc3339_nanos(t), "2026-11-23T01:06:14.261610723Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
