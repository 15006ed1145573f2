//! OpenSSH certificates (PROTOCOL.certkeys): the to-be-signed body encoded with
//! `ssh-encoding`, signed by the CA's [`SigningKey`], rendered as an `authorized_keys` line.
//!
//! `ssh-key` can build certificates too, but its builder checks the signature it just made
//! with its own crypto features, which Tresor leaves out (aws-lc-rs is the one crypto
//! library); the body is a fixed sequence of strings and integers, so it is encoded here
//! with the same encoder `ssh-key` uses, and `ssh-key` parses the result in the tests.

use super::keys::{key_blob, RsaHash, SigningKey};
use ssh_encoding::Encode;
use ssh_key::public::KeyData;
use std::collections::BTreeMap;
use tresor_core::error::{Error, Result};

/// `SSH_CERT_TYPE_USER`.
pub const USER_CERT: u32 = 1;
/// `SSH_CERT_TYPE_HOST`.
pub const HOST_CERT: u32 = 2;

/// What a certificate says.
pub struct CertSpec {
    pub public_key: KeyData,
    pub serial: u64,
    pub cert_type: u32,
    pub key_id: String,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub critical_options: BTreeMap<String, String>,
    pub extensions: BTreeMap<String, String>,
}

fn enc_err(_: ssh_encoding::Error) -> Error {
    Error::internal("certificate encoding failed")
}

/// Critical options and extensions: name, then the value as a string inside a string (an
/// empty value is an empty string), sorted by name (a `BTreeMap` iterates in order).
fn encode_options(options: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (name, value) in options {
        name.as_str().encode(&mut out).map_err(enc_err)?;
        let mut inner = Vec::new();
        if !value.is_empty() {
            value.as_str().encode(&mut inner).map_err(enc_err)?;
        }
        inner.as_slice().encode(&mut out).map_err(enc_err)?;
    }
    Ok(out)
}

/// Signs `spec` with `ca`: the certificate as `<type>-cert-v01@openssh.com <base64>\n`.
pub fn sign(spec: &CertSpec, ca: &SigningKey, rsa: RsaHash) -> Result<String> {
    // OpenSSH's certificate type names (`sk-ssh-ed25519-cert-v01@openssh.com`, ...).
    let cert_type = spec.public_key.algorithm().to_certificate_type();
    let mut body = Vec::new();
    cert_type.as_str().encode(&mut body).map_err(enc_err)?;
    let nonce = tresor_core::barrier::random_bytes(32);
    nonce.as_slice().encode(&mut body).map_err(enc_err)?;
    // The key's fields: its wire encoding without the leading algorithm-name string.
    let blob = key_blob(&spec.public_key)?;
    let name_len = u32::from_be_bytes(blob[..4].try_into().expect("4 bytes")) as usize;
    body.extend_from_slice(&blob[4 + name_len..]);
    spec.serial.encode(&mut body).map_err(enc_err)?;
    spec.cert_type.encode(&mut body).map_err(enc_err)?;
    spec.key_id.as_str().encode(&mut body).map_err(enc_err)?;
    let mut principals = Vec::new();
    for p in &spec.principals {
        p.as_str().encode(&mut principals).map_err(enc_err)?;
    }
    principals.as_slice().encode(&mut body).map_err(enc_err)?;
    spec.valid_after.encode(&mut body).map_err(enc_err)?;
    spec.valid_before.encode(&mut body).map_err(enc_err)?;
    encode_options(&spec.critical_options)?
        .as_slice()
        .encode(&mut body)
        .map_err(enc_err)?;
    encode_options(&spec.extensions)?
        .as_slice()
        .encode(&mut body)
        .map_err(enc_err)?;
    // reserved
    "".encode(&mut body).map_err(enc_err)?;
    key_blob(&ca.public_key()?)?
        .as_slice()
        .encode(&mut body)
        .map_err(enc_err)?;
    let signature = ca.sign(&body, rsa)?;
    signature.as_slice().encode(&mut body).map_err(enc_err)?;
    Ok(format!(
        "{cert_type} {}\n",
        tresor_core::barrier::b64_encode(&body)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::certificate::CertType;
    use ssh_key::Certificate;

    #[test]
    fn certificates_parse_back_with_every_field() {
        for (ca_type, bits) in [("ed25519", 0), ("ec", 256), ("ec", 384), ("rsa", 2048)] {
            let ca = SigningKey::generate(ca_type, bits, 2048).unwrap();
            let user = SigningKey::generate("ed25519", 0, 2048).unwrap();
            let spec = CertSpec {
                public_key: user.public_key().unwrap(),
                serial: 0xdead_beef,
                cert_type: USER_CERT,
                key_id: "kid".into(),
                principals: vec!["alice".into(), "bob".into()],
                valid_after: 1000,
                valid_before: 2000,
                critical_options: [("force-command".to_string(), "id".to_string())].into(),
                extensions: [
                    ("permit-pty".to_string(), String::new()),
                    ("permit-agent-forwarding".to_string(), String::new()),
                ]
                .into(),
            };
            let line = sign(&spec, &ca, RsaHash::Sha256).unwrap();
            let cert = Certificate::from_openssh(line.trim()).unwrap();
            assert_eq!(cert.serial(), 0xdead_beef);
            assert_eq!(cert.cert_type(), CertType::User);
            assert_eq!(cert.key_id(), "kid");
            assert_eq!(cert.valid_principals(), ["alice", "bob"]);
            assert_eq!((cert.valid_after(), cert.valid_before()), (1000, 2000));
            assert_eq!(cert.critical_options().get("force-command").unwrap(), "id");
            assert!(cert.extensions().contains_key("permit-pty"));
            assert_eq!(cert.public_key(), &user.public_key().unwrap());
            assert_eq!(cert.signature_key(), &ca.public_key().unwrap());
        }
    }
}
