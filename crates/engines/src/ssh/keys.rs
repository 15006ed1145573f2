//! SSH keys: generating key pairs, reading private keys in the formats Vault accepts, and
//! making SSH signatures, all with aws-lc-rs; the OpenSSH encodings come from `ssh-key`.
//!
//! A CA key ([`SigningKey`]) is Ed25519, ECDSA (P-256, P-384, P-521) or RSA (2048 bits and
//! up). Private keys are read from PEM: OpenSSH (`OPENSSH PRIVATE KEY`, unencrypted; RSA ones
//! included, their CRT exponents derived from `d`, `p` and `q`), PKCS#8 (`PRIVATE KEY`),
//! PKCS#1 (`RSA PRIVATE KEY`) and SEC1 (`EC PRIVATE KEY`). Keys are written as Vault writes
//! them: PKCS#1 for RSA, SEC1 for ECDSA, OpenSSH for Ed25519.
//!
//! Signatures follow RFC 4253 §6.6, RFC 5656 §3.1.2 and RFC 8332: a string naming the
//! algorithm and a string holding the signature (for ECDSA, the two `mpint`s `r` and `s`).
//! RSA signs with `rsa-sha2-256` or `rsa-sha2-512`; aws-lc-rs has no SHA-1 signing, so
//! `ssh-rsa` signatures (refused by OpenSSH since 8.8 anyway) are refused with a clear error.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeyPairComponents, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use num_bigint::BigUint;
use ssh_encoding::{Encode, LineEnding};
use ssh_key::private::{Ed25519Keypair, Ed25519PrivateKey, KeypairData};
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};
use ssh_key::{EcdsaCurve, Mpint, PrivateKey, PublicKey};
use tresor_core::error::{Error, Result};
use zeroize::Zeroizing;

/// A private key that signs certificates (a CA's, or a key `issue` generated).
pub enum SigningKey {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair, EcdsaCurve),
    Rsa(RsaKeyPair),
}

/// The RSA signature algorithm a role asks for (`algorithm_signer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaHash {
    Sha256,
    Sha512,
}

fn ec_fixed(curve: EcdsaCurve) -> &'static signature::EcdsaSigningAlgorithm {
    match curve {
        EcdsaCurve::NistP256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        EcdsaCurve::NistP384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        EcdsaCurve::NistP521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
    }
}

fn internal(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> Error + '_ {
    move |_| Error::internal(format!("{what} failed"))
}

impl SigningKey {
    /// Generates a key pair: `key_type` is an algorithm (`rsa`, `ec`, `ed25519`) or an OpenSSH
    /// key type (`ssh-rsa`, `ecdsa-sha2-nistp256`, ...); `bits` picks the RSA size (default
    /// 4096 for CAs, as Vault) or the curve for `ec` (256, 384, 521). Errors are the client's.
    pub fn generate(key_type: &str, bits: i64, default_rsa_bits: i64) -> Result<SigningKey> {
        let fail = internal("key generation");
        match key_type {
            "rsa" | "ssh-rsa" => {
                let bits = if bits == 0 { default_rsa_bits } else { bits };
                if bits < 2048 {
                    return Err(Error::bad(format!(
                        "refusing to generate weak {key_type} key: {bits} bits < 2048 bits"
                    )));
                }
                let size = match bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    8192 => KeySize::Rsa8192,
                    _ => {
                        return Err(Error::bad(format!(
                            "unsupported RSA key size {bits}: use 2048, 3072, 4096 or 8192"
                        )))
                    }
                };
                Ok(SigningKey::Rsa(RsaKeyPair::generate(size).map_err(fail)?))
            }
            "ec" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
                let curve = match (key_type, bits) {
                    ("ecdsa-sha2-nistp256", _) | ("ec", 0 | 256) => EcdsaCurve::NistP256,
                    ("ecdsa-sha2-nistp384", _) | ("ec", 384) => EcdsaCurve::NistP384,
                    ("ecdsa-sha2-nistp521", _) | ("ec", 521) => EcdsaCurve::NistP521,
                    _ => {
                        return Err(Error::bad(format!(
                            "unknown ECDSA key pair algorithm and bits: {key_type} / {bits}"
                        )))
                    }
                };
                let pair = EcdsaKeyPair::generate(ec_fixed(curve)).map_err(fail)?;
                Ok(SigningKey::Ecdsa(pair, curve))
            }
            "ed25519" | "ssh-ed25519" => Ok(SigningKey::Ed25519(
                Ed25519KeyPair::generate().map_err(fail)?,
            )),
            _ => Err(Error::bad(format!(
                "unknown ssh key pair algorithm: {key_type}"
            ))),
        }
    }

    /// [`SigningKey::generate`] off the async runtime (RSA generation takes a while).
    pub async fn generate_async(
        key_type: String,
        bits: i64,
        default_rsa_bits: i64,
    ) -> Result<SigningKey> {
        tokio::task::spawn_blocking(move || Self::generate(&key_type, bits, default_rsa_bits))
            .await
            .map_err(|e| Error::internal(format!("key generation: {e}")))?
    }

    /// Reads a private key from PEM (see the module doc for the formats).
    pub fn from_pem(pem: &str) -> Result<SigningKey> {
        let pem = pem.trim();
        if pem.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            return Self::from_openssh(pem);
        }
        let (label, der) = ssh_encoding::pem::decode_vec(pem.as_bytes())
            .map_err(|e| Error::bad(format!("invalid PEM: {e}")))?;
        let der = Zeroizing::new(der);
        let bad = || Error::bad("unsupported or invalid private key");
        match label {
            "RSA PRIVATE KEY" => Ok(SigningKey::Rsa(
                RsaKeyPair::from_der(&der).map_err(|_| bad())?,
            )),
            "EC PRIVATE KEY" => {
                for curve in [
                    EcdsaCurve::NistP256,
                    EcdsaCurve::NistP384,
                    EcdsaCurve::NistP521,
                ] {
                    if let Ok(k) = EcdsaKeyPair::from_private_key_der(ec_fixed(curve), &der) {
                        return Ok(SigningKey::Ecdsa(k, curve));
                    }
                }
                Err(bad())
            }
            "PRIVATE KEY" => {
                if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                    return Ok(SigningKey::Ed25519(k));
                }
                if let Ok(k) = RsaKeyPair::from_pkcs8(&der) {
                    return Ok(SigningKey::Rsa(k));
                }
                for curve in [
                    EcdsaCurve::NistP256,
                    EcdsaCurve::NistP384,
                    EcdsaCurve::NistP521,
                ] {
                    if let Ok(k) = EcdsaKeyPair::from_pkcs8(ec_fixed(curve), &der) {
                        return Ok(SigningKey::Ecdsa(k, curve));
                    }
                }
                Err(bad())
            }
            "ENCRYPTED PRIVATE KEY" => Err(Error::bad("encrypted private keys are not supported")),
            other => Err(Error::bad(format!("unsupported PEM block {other:?}"))),
        }
    }

    /// Reads an unencrypted OpenSSH private key file.
    fn from_openssh(pem: &str) -> Result<SigningKey> {
        let key = PrivateKey::from_openssh(pem)
            .map_err(|e| Error::bad(format!("invalid OpenSSH private key: {e}")))?;
        if key.is_encrypted() {
            return Err(Error::bad("encrypted private keys are not supported"));
        }
        let bad = |what: &str| Error::bad(format!("invalid {what} private key"));
        match key.key_data() {
            KeypairData::Ed25519(k) => Ok(SigningKey::Ed25519(
                Ed25519KeyPair::from_seed_and_public_key(
                    Zeroizing::new(k.private.to_bytes()).as_ref(),
                    &k.public.0,
                )
                .map_err(|_| bad("Ed25519"))?,
            )),
            KeypairData::Ecdsa(k) => {
                let curve = k.curve();
                Ok(SigningKey::Ecdsa(
                    EcdsaKeyPair::from_private_key_and_public_key(
                        ec_fixed(curve),
                        k.private_key_bytes(),
                        k.public_key_bytes(),
                    )
                    .map_err(|_| bad("ECDSA"))?,
                    curve,
                ))
            }
            KeypairData::Rsa(k) => {
                // OpenSSH keeps n, e, d, iqmp, p, q; PKCS#1 also wants d mod (p-1), d mod (q-1).
                let num = |m: &Mpint| BigUint::from_bytes_be(m.as_positive_bytes().unwrap_or(&[]));
                let (d, p, q) = (num(&k.private.d), num(&k.private.p), num(&k.private.q));
                let one = BigUint::from(1u8);
                if p <= one || q <= one {
                    return Err(bad("RSA"));
                }
                let dp = Zeroizing::new((&d % (&p - &one)).to_bytes_be());
                let dq = Zeroizing::new((&d % (&q - &one)).to_bytes_be());
                let pos = |m: &Mpint| m.as_positive_bytes().unwrap_or(&[]).to_vec();
                let components = KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: pos(&k.public.n),
                        e: pos(&k.public.e),
                    },
                    d: Zeroizing::new(pos(&k.private.d)),
                    p: Zeroizing::new(pos(&k.private.p)),
                    q: Zeroizing::new(pos(&k.private.q)),
                    dP: dp,
                    dQ: dq,
                    qInv: Zeroizing::new(pos(&k.private.iqmp)),
                };
                Ok(SigningKey::Rsa(
                    RsaKeyPair::from_components(&components).map_err(|_| bad("RSA"))?,
                ))
            }
            _ => Err(Error::bad(format!(
                "unsupported private key type {}",
                key.algorithm()
            ))),
        }
    }

    /// The key as Vault writes it (PEM): PKCS#1 for RSA, SEC1 for ECDSA, OpenSSH for Ed25519.
    pub fn to_pem(&self) -> Result<Zeroizing<String>> {
        let fail = |_| Error::internal("unable to encode the private key");
        let (label, der): (&str, Zeroizing<Vec<u8>>) = match self {
            SigningKey::Rsa(k) => {
                let pkcs8 = k.as_der().map_err(fail)?;
                (
                    "RSA PRIVATE KEY",
                    Zeroizing::new(pkcs8_inner(pkcs8.as_ref())?),
                )
            }
            SigningKey::Ecdsa(k, _) => {
                let der = k.private_key().as_der().map_err(fail)?;
                ("EC PRIVATE KEY", Zeroizing::new(der.as_ref().to_vec()))
            }
            SigningKey::Ed25519(k) => {
                let seed = k.seed().map_err(fail)?;
                let seed: aws_lc_rs::encoding::Curve25519SeedBin =
                    aws_lc_rs::encoding::AsBigEndian::as_be_bytes(&seed).map_err(fail)?;
                let seed: [u8; 32] = seed
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::internal("bad Ed25519 seed"))?;
                let public: [u8; 32] = k
                    .public_key()
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::internal("bad Ed25519 key"))?;
                let pair = Ed25519Keypair {
                    public: Ed25519PublicKey(public),
                    private: Ed25519PrivateKey::from_bytes(&seed),
                };
                let key = PrivateKey::new(KeypairData::Ed25519(pair), "")
                    .map_err(|_| Error::internal("unable to encode the private key"))?;
                let text = key
                    .to_openssh(LineEnding::LF)
                    .map_err(|_| Error::internal("unable to encode the private key"))?;
                return Ok(Zeroizing::new(text.to_string()));
            }
        };
        ssh_encoding::pem::encode_string(label, ssh_encoding::pem::LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|_| Error::internal("unable to encode the private key"))
    }

    /// The public half, as OpenSSH key data.
    pub fn public_key(&self) -> Result<KeyData> {
        let fail = |_| Error::internal("unable to encode the public key");
        Ok(match self {
            SigningKey::Ed25519(k) => KeyData::Ed25519(Ed25519PublicKey(
                k.public_key()
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::internal("bad Ed25519 key"))?,
            )),
            SigningKey::Ecdsa(k, _) => KeyData::Ecdsa(
                EcdsaPublicKey::from_sec1_bytes(k.public_key().as_ref()).map_err(fail)?,
            ),
            SigningKey::Rsa(k) => {
                let p = k.public_key();
                KeyData::Rsa(RsaPublicKey {
                    e: Mpint::from_positive_bytes(p.exponent().big_endian_without_leading_zero())
                        .map_err(fail)?,
                    n: Mpint::from_positive_bytes(p.modulus().big_endian_without_leading_zero())
                        .map_err(fail)?,
                })
            }
        })
    }

    /// The public half as an `authorized_keys` line (with a trailing newline, as Vault).
    pub fn public_key_line(&self) -> Result<String> {
        Ok(format!("{}\n", authorized_key(&self.public_key()?)?))
    }

    /// Whether this is an RSA key.
    pub fn is_rsa(&self) -> bool {
        matches!(self, SigningKey::Rsa(_))
    }

    /// An SSH signature blob over `data`; `rsa` picks the hash for RSA keys.
    pub fn sign(&self, data: &[u8], rsa: RsaHash) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        let fail = internal("signing");
        let (name, sig): (&str, Vec<u8>) = match self {
            SigningKey::Ed25519(k) => ("ssh-ed25519", k.sign(data).as_ref().to_vec()),
            SigningKey::Ecdsa(k, curve) => {
                let raw = k.sign(&rng, data).map_err(fail)?;
                let (r, s) = raw.as_ref().split_at(raw.as_ref().len() / 2);
                let mut inner = Vec::new();
                for half in [r, s] {
                    Mpint::from_positive_bytes(half)
                        .map_err(|_| Error::internal("signature encoding failed"))?
                        .encode(&mut inner)
                        .map_err(|_| Error::internal("signature encoding failed"))?;
                }
                let name = match curve {
                    EcdsaCurve::NistP256 => "ecdsa-sha2-nistp256",
                    EcdsaCurve::NistP384 => "ecdsa-sha2-nistp384",
                    EcdsaCurve::NistP521 => "ecdsa-sha2-nistp521",
                };
                (name, inner)
            }
            SigningKey::Rsa(k) => {
                let (name, alg) = match rsa {
                    RsaHash::Sha256 => ("rsa-sha2-256", &signature::RSA_PKCS1_SHA256),
                    RsaHash::Sha512 => ("rsa-sha2-512", &signature::RSA_PKCS1_SHA512),
                };
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(alg, &rng, data, &mut out).map_err(fail)?;
                (name, out)
            }
        };
        let mut blob = Vec::new();
        name.encode(&mut blob)
            .and_then(|_| sig.as_slice().encode(&mut blob))
            .map_err(|_| Error::internal("signature encoding failed"))?;
        Ok(blob)
    }
}

/// The privateKey OCTET STRING of a PKCS#8 PrivateKeyInfo (for RSA: the PKCS#1 key).
fn pkcs8_inner(der: &[u8]) -> Result<Vec<u8>> {
    let err = || Error::internal("unable to read the PKCS#8 key");
    let (_, obj) = x509_parser::der_parser::parse_der(der).map_err(|_| err())?;
    let items = obj.as_sequence().map_err(|_| err())?;
    let inner = items
        .get(2)
        .ok_or_else(err)?
        .as_slice()
        .map_err(|_| err())?;
    Ok(inner.to_vec())
}

/// The wire encoding of a public key (RFC 4253 §6.6).
pub fn key_blob(key: &KeyData) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    key.encode(&mut out)
        .map_err(|_| Error::internal("unable to encode the public key"))?;
    Ok(out)
}

/// `<type> <base64>`: a public key as `authorized_keys` and `TrustedUserCAKeys` read it.
pub fn authorized_key(key: &KeyData) -> Result<String> {
    PublicKey::new(key.clone(), "")
        .to_openssh()
        .map(|s| s.trim().to_string())
        .map_err(|_| Error::internal("unable to encode the public key"))
}

/// Parses a public key as Vault does: an `authorized_keys` line (`type base64 [comment]`) or
/// the bare base64 blob.
pub fn parse_public_key(text: &str) -> std::result::Result<KeyData, String> {
    let text = text.trim();
    let parts: Vec<&str> = text.split_whitespace().collect();
    let b64 = match parts.len() {
        0 => return Err("empty key".into()),
        1 => parts[0],
        _ => parts[1],
    };
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "illegal base64 data".to_string())?;
    let key = PublicKey::from_bytes(&blob).map_err(|e| format!("ssh: {e}"))?;
    if matches!(key.key_data(), KeyData::Other(_)) {
        return Err(format!(
            "ssh: unsupported key type {}",
            key.algorithm().as_str()
        ));
    }
    Ok(key.key_data().clone())
}

/// The type and size of a user key, as roles' `allowed_user_key_lengths` name them: `rsa`
/// (modulus bits), `ecdsa` (curve bits), `ed25519` (0), `dsa`; other types are refused.
pub fn key_type_and_bits(key: &KeyData) -> std::result::Result<(&'static str, i64), String> {
    match key {
        KeyData::Rsa(k) => {
            let n = k.n.as_positive_bytes().unwrap_or(&[]);
            let bits = n
                .first()
                .map(|b| (n.len() * 8) as i64 - b.leading_zeros() as i64)
                .unwrap_or(0);
            Ok(("rsa", bits))
        }
        KeyData::Ecdsa(k) => Ok((
            "ecdsa",
            match k.curve() {
                EcdsaCurve::NistP256 => 256,
                EcdsaCurve::NistP384 => 384,
                EcdsaCurve::NistP521 => 521,
            },
        )),
        KeyData::Ed25519(_) => Ok(("ed25519", 0)),
        KeyData::Dsa(_) => Ok(("dsa", 1024)),
        other => Err(format!(
            "public key type of {} is not allowed",
            other.algorithm()
        )),
    }
}

/// SHA-256 of the key blob, hex (what `{{public_key_hash}}` in `key_id_format` expands to).
pub fn key_hash_hex(key: &KeyData) -> Result<String> {
    Ok(hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &key_blob(key)?,
    )))
}

/// `SHA256:<base64, unpadded>`: the fingerprint `ssh-keygen -l` prints.
pub fn fingerprint(key: &KeyData) -> Result<String> {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key_blob(key)?);
    Ok(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(d.as_ref())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_their_pem() {
        for (t, bits) in [
            ("ed25519", 0),
            ("ec", 256),
            ("ec", 384),
            ("ec", 521),
            ("rsa", 2048),
        ] {
            let k = SigningKey::generate(t, bits, 4096).unwrap();
            let pem = k.to_pem().unwrap();
            let back = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(
                key_blob(&k.public_key().unwrap()).unwrap(),
                key_blob(&back.public_key().unwrap()).unwrap(),
                "{t}"
            );
            let line = k.public_key_line().unwrap();
            assert_eq!(parse_public_key(&line).unwrap(), k.public_key().unwrap());
        }
    }

    #[test]
    fn weak_or_unknown_keys_are_refused() {
        assert!(SigningKey::generate("rsa", 1024, 4096)
            .err()
            .unwrap()
            .to_string()
            .contains("refusing to generate weak"));
        assert!(SigningKey::generate("dsa", 0, 4096).is_err());
        assert!(SigningKey::generate("ec", 123, 4096).is_err());
        assert!(parse_public_key("ssh-ed25519 !!!").is_err());
        assert!(parse_public_key("ssh-ed25519 AAAA").is_err());
        assert!(SigningKey::from_pem("not a key").is_err());
    }

    #[test]
    fn key_sizes_are_reported() {
        let k = SigningKey::generate("rsa", 3072, 4096).unwrap();
        assert_eq!(
            key_type_and_bits(&k.public_key().unwrap()).unwrap(),
            ("rsa", 3072)
        );
        let k = SigningKey::generate("ec", 384, 4096).unwrap();
        assert_eq!(
            key_type_and_bits(&k.public_key().unwrap()).unwrap(),
            ("ecdsa", 384)
        );
    }
}
