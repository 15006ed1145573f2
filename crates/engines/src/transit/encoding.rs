//! Encodings the transit engine speaks on the wire, none of them cryptographic: base64 with
//! Go's rules (what Vault clients send and expect, including Go's error text), PEM armour, and
//! the few DER structures that must be taken apart or checked by hand (a PKCS#8 wrapper around
//! an RSA key, whose PKCS#1 body Vault exports; an ECDSA signature's `SEQUENCE { r, s }`).
//!
//! All cryptography stays in aws-lc-rs (see [`super::policy`]); this module only moves bytes.

pub use tresor_core::go_base64::{b64, b64_decode, b64url, b64url_decode};

/// PEM armour with 64-character lines; `trailing_newline` as Go's `pem.EncodeToMemory` (true)
/// or trimmed (false), matching what Vault returns for each key kind.
pub fn pem(label: &str, der: &[u8], trailing_newline: bool) -> String {
    let body = b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----"));
    if trailing_newline {
        out.push('\n');
    }
    out
}

/// The DER body of the first PEM block in `s`, with its label.
pub fn pem_decode(s: &str) -> Option<(String, Vec<u8>)> {
    let start = s.find("-----BEGIN ")?;
    let rest = &s[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let body: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = b64_decode(&body).ok()?;
    Some((label, der))
}

/// One DER element: its tag, its contents, and what follows it.
pub struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    pub rest: &'a [u8],
}

/// Reads one DER TLV (definite lengths only, as DER requires).
pub fn der_read(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, after_tag) = input.split_first()?;
    let (&first, mut after_len) = after_tag.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || after_len.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &after_len[..n] {
            len = (len << 8) | b as usize;
        }
        // DER: the long form only when needed, no leading zero byte.
        if len < 0x80 || after_len[0] == 0 {
            return None;
        }
        after_len = &after_len[n..];
        len
    };
    if after_len.len() < len {
        return None;
    }
    Some(Tlv {
        tag,
        value: &after_len[..len],
        rest: &after_len[len..],
    })
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;

/// The `RSAPrivateKey` (PKCS#1) inside a PKCS#8 `PrivateKeyInfo`.
pub fn pkcs8_inner_key(pkcs8: &[u8]) -> Option<&[u8]> {
    let outer = der_read(pkcs8)?;
    if outer.tag != SEQUENCE {
        return None;
    }
    let version = der_read(outer.value)?;
    let algorithm = der_read(version.rest)?;
    let key = der_read(algorithm.rest)?;
    (version.tag == INTEGER && algorithm.tag == SEQUENCE && key.tag == OCTET_STRING)
        .then_some(key.value)
}

/// Why an ASN.1 ECDSA signature is unusable, in Vault's words.
#[derive(Debug, PartialEq, Eq)]
pub enum SigShape {
    Invalid,
    ExtraData,
}

/// Checks that `sig` is `SEQUENCE { INTEGER r, INTEGER s }` and nothing else.
pub fn check_ecdsa_asn1(sig: &[u8]) -> Result<(), SigShape> {
    let seq = der_read(sig).ok_or(SigShape::Invalid)?;
    if seq.tag != SEQUENCE {
        return Err(SigShape::Invalid);
    }
    let r = der_read(seq.value).ok_or(SigShape::Invalid)?;
    let s = der_read(r.rest).ok_or(SigShape::Invalid)?;
    if r.tag != INTEGER || s.tag != INTEGER || !s.rest.is_empty() {
        return Err(SigShape::Invalid);
    }
    if !seq.rest.is_empty() {
        return Err(SigShape::ExtraData);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_follows_go() {
        assert_eq!(b64_decode("aGVsbG8=").unwrap(), b"hello");
        // Go ignores non-zero trailing bits and newlines.
        assert_eq!(b64_decode("aGVsbG9=").unwrap(), b"hello");
        assert_eq!(b64_decode("aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(
            b64_decode("!!").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
        assert!(b64_decode("aGVsbG8").is_err());
        assert_eq!(b64url_decode(&b64url(b"\xff\xfe")).unwrap(), b"\xff\xfe");
    }

    #[test]
    fn pem_round_trip_and_der_walk() {
        let p = pem("PUBLIC KEY", &[1, 2, 3], true);
        assert!(p.ends_with("-----END PUBLIC KEY-----\n"));
        assert_eq!(
            pem_decode(&p).unwrap(),
            ("PUBLIC KEY".to_string(), vec![1, 2, 3])
        );
        assert!(!pem("X", &[0; 100], false).ends_with('\n'));
        // SEQUENCE { INTEGER 1, INTEGER 2 }
        assert_eq!(check_ecdsa_asn1(&[0x30, 6, 2, 1, 1, 2, 1, 2]), Ok(()));
        assert_eq!(
            check_ecdsa_asn1(&[0x30, 6, 2, 1, 1, 2, 1, 2, 0]),
            Err(SigShape::ExtraData)
        );
        assert_eq!(check_ecdsa_asn1(&[0, 0, 0]), Err(SigShape::Invalid));
        assert!(der_read(&[0x30, 0x81, 0x05]).is_none());
    }
}
