//! The key model and every cryptographic operation of the transit engine.
//!
//! A named key is a [`Policy`] (Vault's name for it): its type, its options (derived,
//! convergent, exportable, ...), its version bounds (`min_decryption_version`,
//! `min_encryption_version`, `min_available_version`, `latest_version`) and its keyring, one
//! [`KeyEntry`] per version. The policy is stored as JSON inside the mount's barrier view
//! (`policy/<name>`), so key material is encrypted at rest by the barrier and never leaves it
//! except through `export` and `backup`, which the key's own flags must allow.
//!
//! A [`Keyring`] is a policy with its versions parsed into ready-to-use aws-lc-rs objects
//! (AEAD keys, signing key pairs, RSA keys). The engine caches keyrings in memory (see
//! [`super::Transit`]) so a request never parses key material; every change to a key replaces
//! its cached keyring.
//!
//! Ciphertexts, signatures and HMACs carry the key version as Vault's do:
//! `vault:v<N>:<base64>`. Symmetric ciphertexts are `nonce(12) || ciphertext || tag(16)`;
//! derived keys come from HKDF-SHA256 over the version's key with the caller's `context` as
//! info (Vault's `hkdf_sha256` KDF); convergent encryption (Vault's version 3) derives 32 extra
//! bytes and uses HMAC-SHA256(those bytes, plaintext) truncated to 12 bytes as the nonce, so the
//! same plaintext and context give the same ciphertext. RSA encryption is OAEP with SHA-256.
//!
//! Why aws-lc-rs: it is the workspace's one crypto library (the barrier and rustls use it too),
//! FIPS-validated, and covers every primitive transit needs: AES-GCM, ChaCha20-Poly1305, HKDF,
//! HMAC, SHA-2/SHA-3 digests, Ed25519, ECDSA P-256/384/521, RSA PSS/PKCS#1 v1.5/OAEP, AES key
//! wrap with padding, and a CSPRNG. Nothing here implements a primitive by hand. Where
//! aws-lc-rs lacks something (SHA3-224, HMAC over SHA-3, RSA signatures over SHA-1/SHA-224 or
//! over a raw `none` digest), the operation answers 400 saying so.
//!
//! ECDSA over any digest: aws-lc-rs signs a digest only with the curve's own hash (P-256 with
//! SHA-256, ...), while Vault lets any hash go with any curve. ECDSA turns a digest into an
//! integer by keeping its leftmost `order-bits` bits (FIPS 186-4 `bits2int`), so a digest
//! longer than the curve's is first cut to the curve's byte length and a shorter one is
//! left-padded with zeros — both give the same integer, hence the same signature, as signing
//! the original digest. That is an encoding step only; the signature is aws-lc's.

use super::encoding::{b64, b64_decode, b64url, b64url_decode, check_ecdsa_asn1, SigShape};
use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::signature::{self, KeyPair as _};
use aws_lc_rs::{aead, digest, hkdf, hmac, rsa};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use tresor_core::error::Error;
use zeroize::Zeroizing;

/// The convergent-encryption scheme new keys use (Vault's version 3).
pub const CONVERGENT_VERSION: i64 = 3;
pub const HMAC_MIN_KEY_SIZE: usize = 32;
pub const HMAC_MAX_KEY_SIZE: usize = 512;
pub const ERR_TOO_OLD: &str = "ciphertext or signature version is disallowed by policy (too old)";
const MISSING_CONTEXT: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";
const NONCE_LEN: usize = 12;

/// A failure of one operation: the caller's fault (400) or ours (500). Messages never contain
/// key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    User(String),
    Internal(String),
}

impl OpError {
    pub fn message(&self) -> &str {
        match self {
            OpError::User(m) | OpError::Internal(m) => m,
        }
    }
    pub fn is_internal(&self) -> bool {
        matches!(self, OpError::Internal(_))
    }
}

impl From<OpError> for Error {
    fn from(e: OpError) -> Self {
        match e {
            OpError::User(m) => Error::BadRequest(m),
            OpError::Internal(m) => Error::Internal(m),
        }
    }
}

pub type OpResult<T> = Result<T, OpError>;

pub fn user(msg: impl Into<String>) -> OpError {
    OpError::User(msg.into())
}

fn internal(msg: impl Into<String>) -> OpError {
    OpError::Internal(msg.into())
}

/// The key types transit can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "ecdsa-p521")]
    EcdsaP521,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    #[serde(rename = "hmac")]
    Hmac,
}

impl KeyType {
    pub const ALL: [KeyType; 11] = [
        KeyType::Aes128Gcm96,
        KeyType::Aes256Gcm96,
        KeyType::ChaCha20Poly1305,
        KeyType::Ed25519,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::EcdsaP521,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::Hmac,
    ];

    pub fn parse(s: &str) -> Option<KeyType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::EcdsaP521 => "ecdsa-p521",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Hmac => "hmac",
        }
    }

    /// The AEAD algorithm of a symmetric encryption key.
    pub fn aead(self) -> Option<&'static aead::Algorithm> {
        match self {
            KeyType::Aes128Gcm96 => Some(&aead::AES_128_GCM),
            KeyType::Aes256Gcm96 => Some(&aead::AES_256_GCM),
            KeyType::ChaCha20Poly1305 => Some(&aead::CHACHA20_POLY1305),
            _ => None,
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    pub fn is_ecdsa(self) -> bool {
        matches!(
            self,
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521
        )
    }

    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    pub fn encryption_supported(self) -> bool {
        self.aead().is_some() || self.is_rsa()
    }

    pub fn decryption_supported(self) -> bool {
        self.encryption_supported()
    }

    pub fn signing_supported(self) -> bool {
        self.is_ecdsa() || self.is_rsa() || self == KeyType::Ed25519
    }

    /// Whether sign/verify hash the input first (Ed25519 hashes internally).
    pub fn hash_signature_input(self) -> bool {
        self.is_ecdsa() || self.is_rsa()
    }

    pub fn derivation_supported(self) -> bool {
        self.aead().is_some() || self == KeyType::Ed25519
    }

    pub fn supports_import_public_key(self) -> bool {
        self.is_ecdsa() || self.is_rsa()
    }

    fn ecdsa_algs(
        self,
    ) -> Option<(
        &'static signature::EcdsaSigningAlgorithm,
        &'static signature::EcdsaSigningAlgorithm,
        &'static signature::EcdsaVerificationAlgorithm,
        &'static signature::EcdsaVerificationAlgorithm,
        &'static digest::Algorithm,
    )> {
        Some(match self {
            KeyType::EcdsaP256 => (
                &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &signature::ECDSA_P256_SHA256_ASN1,
                &signature::ECDSA_P256_SHA256_FIXED,
                &digest::SHA256,
            ),
            KeyType::EcdsaP384 => (
                &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &signature::ECDSA_P384_SHA384_ASN1,
                &signature::ECDSA_P384_SHA384_FIXED,
                &digest::SHA384,
            ),
            KeyType::EcdsaP521 => (
                &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
                &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                &signature::ECDSA_P521_SHA512_ASN1,
                &signature::ECDSA_P521_SHA512_FIXED,
                &digest::SHA512,
            ),
            _ => return None,
        })
    }
}

/// Hash algorithms by Vault's names (`hash_algorithm`, `algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    None,
    Sha1,
    Sha2_224,
    Sha2_256,
    Sha2_384,
    Sha2_512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl HashAlg {
    pub fn parse(s: &str) -> Option<HashAlg> {
        Some(match s {
            "none" => HashAlg::None,
            "sha1" => HashAlg::Sha1,
            "sha2-224" => HashAlg::Sha2_224,
            "sha2-256" => HashAlg::Sha2_256,
            "sha2-384" => HashAlg::Sha2_384,
            "sha2-512" => HashAlg::Sha2_512,
            "sha3-224" => HashAlg::Sha3_224,
            "sha3-256" => HashAlg::Sha3_256,
            "sha3-384" => HashAlg::Sha3_384,
            "sha3-512" => HashAlg::Sha3_512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::None => "none",
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha2_224 => "sha2-224",
            HashAlg::Sha2_256 => "sha2-256",
            HashAlg::Sha2_384 => "sha2-384",
            HashAlg::Sha2_512 => "sha2-512",
            HashAlg::Sha3_224 => "sha3-224",
            HashAlg::Sha3_256 => "sha3-256",
            HashAlg::Sha3_384 => "sha3-384",
            HashAlg::Sha3_512 => "sha3-512",
        }
    }

    /// The digest, when aws-lc-rs has it (not SHA3-224).
    pub fn digest(self) -> Option<&'static digest::Algorithm> {
        match self {
            HashAlg::Sha1 => Some(&digest::SHA1_FOR_LEGACY_USE_ONLY),
            HashAlg::Sha2_224 => Some(&digest::SHA224),
            HashAlg::Sha2_256 => Some(&digest::SHA256),
            HashAlg::Sha2_384 => Some(&digest::SHA384),
            HashAlg::Sha2_512 => Some(&digest::SHA512),
            HashAlg::Sha3_256 => Some(&digest::SHA3_256),
            HashAlg::Sha3_384 => Some(&digest::SHA3_384),
            HashAlg::Sha3_512 => Some(&digest::SHA3_512),
            HashAlg::None | HashAlg::Sha3_224 => None,
        }
    }

    /// The HMAC algorithm, when aws-lc-rs has it (SHA-1 and SHA-2 only).
    pub fn hmac(self) -> Option<hmac::Algorithm> {
        match self {
            HashAlg::Sha1 => Some(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
            HashAlg::Sha2_224 => Some(hmac::HMAC_SHA224),
            HashAlg::Sha2_256 => Some(hmac::HMAC_SHA256),
            HashAlg::Sha2_384 => Some(hmac::HMAC_SHA384),
            HashAlg::Sha2_512 => Some(hmac::HMAC_SHA512),
            _ => None,
        }
    }

    /// The digest of `data`, or a 400 naming what the crypto library lacks.
    pub fn hash(self, data: &[u8]) -> OpResult<Vec<u8>> {
        let alg = self.digest().ok_or_else(|| unsupported_hash(self))?;
        Ok(digest::digest(alg, data).as_ref().to_vec())
    }
}

fn unsupported_hash(h: HashAlg) -> OpError {
    user(format!(
        "unsupported hash algorithm {}: not available in Tresor's crypto library (aws-lc-rs)",
        h.name()
    ))
}

/// How an ECDSA or Ed25519 signature is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marshaling {
    Asn1,
    Jws,
}

/// The RSA-PSS salt length, as Vault (Go's `crypto/rsa`) understands `salt_length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltLength {
    /// Largest possible when signing; any length when verifying.
    Auto,
    /// The digest's length.
    Hash,
    Exact(u16),
}

impl SaltLength {
    /// Parses `salt_length`: `auto`, `hash`, or an integer (`-1` = hash, `0` = auto, as in Go).
    pub fn parse(s: &str) -> Result<SaltLength, String> {
        match s {
            "" | "auto" => Ok(SaltLength::Auto),
            "hash" => Ok(SaltLength::Hash),
            other => {
                let n: i64 = other.trim().parse().map_err(|_| {
                    format!("salt length neither 'auto', 'hash', nor an int: {other}")
                })?;
                match n {
                    -1 => Ok(SaltLength::Hash),
                    0 => Ok(SaltLength::Auto),
                    n if n < -1 => Err(format!("salt length is invalid: {n}")),
                    n => Ok(SaltLength::Exact(u16::try_from(n).unwrap_or(u16::MAX))),
                }
            }
        }
    }
}

/// How to sign or verify.
#[derive(Debug, Clone)]
pub struct SignOptions {
    pub hash: HashAlg,
    pub prehashed: bool,
    pub marshaling: Marshaling,
    pub salt: SaltLength,
    /// `pss` (default) or `pkcs1v15`; RSA only.
    pub signature_algorithm: String,
}

pub struct SignResult {
    pub signature: String,
    /// The derived public key (derived Ed25519 keys only).
    pub public_key: Option<Vec<u8>>,
}

/// A moment, both ways Vault reports it.
#[derive(Debug, Clone)]
pub struct Now {
    pub unix: i64,
    pub rfc3339: String,
}

impl Now {
    pub fn at(skew_secs: i64) -> Now {
        let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(skew_secs);
        Now {
            unix: t.unix_timestamp(),
            rfc3339: t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

mod b64z {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;
    pub fn serialize<S: Serializer>(v: &Zeroizing<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::b64(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        super::b64_decode(&s)
            .map(Zeroizing::new)
            .map_err(serde::de::Error::custom)
    }
}

mod b64v {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::b64(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        super::b64_decode(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One version of a key, as stored. `key` is the secret: raw bytes for symmetric and HMAC
/// keys, `seed || public` (64 bytes, Go's layout) for Ed25519, PKCS#8 DER for ECDSA and RSA,
/// empty when only a public key was imported. No `Debug`: it would print key material.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    #[serde(with = "b64z", default)]
    pub key: Zeroizing<Vec<u8>>,
    /// The version's HMAC key (the `hmac` endpoint of non-HMAC keys).
    #[serde(with = "b64z", default)]
    pub hmac_key: Zeroizing<Vec<u8>>,
    /// SubjectPublicKeyInfo DER (ECDSA, RSA) or the raw 32 bytes (Ed25519).
    #[serde(with = "b64v", default, skip_serializing_if = "Vec::is_empty")]
    pub public_key: Vec<u8>,
    /// RFC 3339 creation time.
    pub time: String,
    /// Unix creation time.
    pub creation_time: i64,
    #[serde(default)]
    pub convergent_version: i64,
    #[serde(default)]
    pub public_key_imported: bool,
}

/// Fresh random bytes from aws-lc's CSPRNG.
pub fn random(n: usize) -> OpResult<Zeroizing<Vec<u8>>> {
    let mut b = Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut b).map_err(|_| internal("system randomness unavailable"))?;
    Ok(b)
}

impl KeyEntry {
    fn empty(now: &Now) -> KeyEntry {
        KeyEntry {
            key: Zeroizing::new(vec![]),
            hmac_key: Zeroizing::new(vec![]),
            public_key: vec![],
            time: now.rfc3339.clone(),
            creation_time: now.unix,
            convergent_version: 0,
            public_key_imported: false,
        }
    }

    /// A new random version of a key of type `kt`.
    pub fn generate(kt: KeyType, key_size: usize, now: &Now) -> OpResult<KeyEntry> {
        let mut e = KeyEntry::empty(now);
        e.hmac_key = random(32)?;
        let gen_err = |_| internal("key generation failed");
        match kt {
            KeyType::Aes128Gcm96 => e.key = random(16)?,
            KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => e.key = random(32)?,
            KeyType::Hmac => {
                let n = if key_size == 0 { 32 } else { key_size };
                if !(HMAC_MIN_KEY_SIZE..=HMAC_MAX_KEY_SIZE).contains(&n) {
                    return Err(user(format!(
                        "invalid key size for HMAC key, must be between {HMAC_MIN_KEY_SIZE} and {HMAC_MAX_KEY_SIZE} bytes"
                    )));
                }
                e.key = random(n)?;
            }
            KeyType::Ed25519 => {
                let seed = random(32)?;
                let kp = signature::Ed25519KeyPair::from_seed_unchecked(&seed)
                    .map_err(|_| internal("key generation failed"))?;
                let public = kp.public_key().as_ref().to_vec();
                let mut key = Zeroizing::new(seed.to_vec());
                key.extend_from_slice(&public);
                e.key = key;
                e.public_key = public;
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let (alg, ..) = kt.ecdsa_algs().expect("ecdsa type");
                let kp = signature::EcdsaKeyPair::generate(alg).map_err(gen_err)?;
                e.key = Zeroizing::new(kp.to_pkcs8v1().map_err(gen_err)?.as_ref().to_vec());
                e.public_key = kp.public_key().as_der().map_err(gen_err)?.as_ref().to_vec();
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let size = match kt {
                    KeyType::Rsa2048 => rsa::KeySize::Rsa2048,
                    KeyType::Rsa3072 => rsa::KeySize::Rsa3072,
                    _ => rsa::KeySize::Rsa4096,
                };
                let kp = rsa::KeyPair::generate(size).map_err(gen_err)?;
                e.key = Zeroizing::new(kp.as_der().map_err(gen_err)?.as_ref().to_vec());
                e.public_key = kp.public_key().as_der().map_err(gen_err)?.as_ref().to_vec();
            }
        }
        Ok(e)
    }

    /// A version made from imported material: raw bytes for symmetric and HMAC keys, PKCS#8
    /// DER for private asymmetric keys, SubjectPublicKeyInfo DER for public keys.
    pub fn import(kt: KeyType, material: &[u8], private: bool, now: &Now) -> OpResult<KeyEntry> {
        let mut e = KeyEntry::empty(now);
        if kt != KeyType::Hmac {
            e.hmac_key = random(32)?;
        }
        let size_err = || {
            user(format!(
                "invalid key size {} bytes for key type {}",
                material.len(),
                kt.as_str()
            ))
        };
        let parse_err = |what: &str| {
            user(format!(
                "error parsing asymmetric key: {what} for key type {}",
                kt.as_str()
            ))
        };
        match kt {
            KeyType::Aes128Gcm96 if material.len() != 16 => return Err(size_err()),
            KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 if material.len() != 32 => {
                return Err(size_err())
            }
            KeyType::Hmac if !(HMAC_MIN_KEY_SIZE..=HMAC_MAX_KEY_SIZE).contains(&material.len()) => {
                return Err(size_err())
            }
            KeyType::Aes128Gcm96
            | KeyType::Aes256Gcm96
            | KeyType::ChaCha20Poly1305
            | KeyType::Hmac => e.key = Zeroizing::new(material.to_vec()),
            KeyType::Ed25519 => {
                if !private {
                    return Err(user("provided type does not support public_key import"));
                }
                let kp = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(material)
                    .map_err(|_| parse_err("not a PKCS#8 Ed25519 private key"))?;
                let seed = kp
                    .seed()
                    .and_then(|s| s.as_be_bytes())
                    .map_err(|_| internal("could not read the Ed25519 seed"))?;
                let public = kp.public_key().as_ref().to_vec();
                let mut key = Zeroizing::new(seed.as_ref().to_vec());
                key.extend_from_slice(&public);
                e.key = key;
                e.public_key = public;
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let (alg, _, verify_alg, ..) = kt.ecdsa_algs().expect("ecdsa type");
                if private {
                    let kp = signature::EcdsaKeyPair::from_pkcs8(alg, material)
                        .map_err(|_| parse_err("not a PKCS#8 private key on the key's curve"))?;
                    let enc_err = |_| internal("could not encode the key");
                    e.key = Zeroizing::new(kp.to_pkcs8v1().map_err(enc_err)?.as_ref().to_vec());
                    e.public_key = kp.public_key().as_der().map_err(enc_err)?.as_ref().to_vec();
                } else {
                    let pk = signature::ParsedPublicKey::new(verify_alg, material)
                        .map_err(|_| parse_err("not a public key on the key's curve"))?;
                    e.public_key = pk
                        .as_der()
                        .map_err(|_| internal("could not encode the key"))?
                        .as_ref()
                        .to_vec();
                    e.public_key_imported = true;
                }
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let want = kt.rsa_bits().expect("rsa type") / 8;
                let wrong_size = |got: usize| {
                    user(format!(
                        "invalid key size: expected {want} bytes, got {got} bytes"
                    ))
                };
                if private {
                    let kp = rsa::KeyPair::from_pkcs8(material)
                        .map_err(|_| parse_err("not a PKCS#8 RSA private key"))?;
                    if kp.public_modulus_len() != want {
                        return Err(wrong_size(kp.public_modulus_len()));
                    }
                    let enc_err = |_| internal("could not encode the key");
                    e.key = Zeroizing::new(kp.as_der().map_err(enc_err)?.as_ref().to_vec());
                    e.public_key = kp.public_key().as_der().map_err(enc_err)?.as_ref().to_vec();
                } else {
                    let pk = rsa::PublicEncryptingKey::from_der(material)
                        .map_err(|_| parse_err("not an RSA public key"))?;
                    if pk.key_size_bytes() != want {
                        return Err(wrong_size(pk.key_size_bytes()));
                    }
                    e.public_key = material.to_vec();
                    e.public_key_imported = true;
                }
            }
        }
        Ok(e)
    }

    /// The public key as Vault formats it in `keys/:name` (PEM for ECDSA and RSA, base64 for
    /// Ed25519).
    pub fn formatted_public_key(&self, kt: KeyType) -> String {
        match kt {
            KeyType::Ed25519 => b64(&self.public_key),
            t if t.is_ecdsa() || t.is_rsa() => {
                super::encoding::pem("PUBLIC KEY", &self.public_key, true)
            }
            _ => String::new(),
        }
    }
}

/// When something happened to a key, and at which version (`backup_info`, `restore_info`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionInfo {
    pub time: String,
    pub version: i64,
}

/// A named key with all its versions: what is stored at `policy/<name>`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub keys: BTreeMap<i64, KeyEntry>,
    #[serde(default)]
    pub derived: bool,
    #[serde(default)]
    pub convergent_encryption: bool,
    /// -1 for keys whose versions each record their scheme (all of Tresor's), as Vault.
    #[serde(default)]
    pub convergent_version: i64,
    #[serde(default)]
    pub exportable: bool,
    #[serde(default)]
    pub allow_plaintext_backup: bool,
    #[serde(default)]
    pub deletion_allowed: bool,
    pub min_decryption_version: i64,
    #[serde(default)]
    pub min_encryption_version: i64,
    #[serde(default)]
    pub min_available_version: i64,
    pub latest_version: i64,
    /// Seconds; 0 disables automatic rotation.
    #[serde(default)]
    pub auto_rotate_period: u64,
    /// HMAC keys only: the key length in bytes.
    #[serde(default)]
    pub key_size: usize,
    #[serde(default)]
    pub imported: bool,
    #[serde(default)]
    pub allow_imported_key_rotation: bool,
    #[serde(default)]
    pub backup_info: Option<VersionInfo>,
    #[serde(default)]
    pub restore_info: Option<VersionInfo>,
}

/// Options of a new key.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub derived: bool,
    pub convergent: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub auto_rotate_period: u64,
    pub key_size: usize,
}

impl Policy {
    /// A key with no versions yet (rotate or import to add the first).
    pub fn new(name: &str, key_type: KeyType, o: &NewKey) -> OpResult<Policy> {
        let not_supported = || {
            user(format!(
                "key derivation and convergent encryption not supported for keys of type {}",
                key_type.as_str()
            ))
        };
        match key_type {
            t if t.aead().is_some() => {
                if o.convergent && !o.derived {
                    return Err(user(
                        "convergent encryption requires derivation to be enabled",
                    ));
                }
            }
            KeyType::Ed25519 => {
                if o.convergent {
                    return Err(user(
                        "convergent encryption not supported for keys of type ed25519",
                    ));
                }
            }
            _ => {
                if o.derived || o.convergent {
                    return Err(not_supported());
                }
            }
        }
        Ok(Policy {
            name: name.to_string(),
            key_type,
            keys: BTreeMap::new(),
            derived: o.derived,
            convergent_encryption: o.convergent,
            convergent_version: if o.convergent { -1 } else { 0 },
            exportable: o.exportable,
            allow_plaintext_backup: o.allow_plaintext_backup,
            deletion_allowed: false,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            latest_version: 0,
            auto_rotate_period: o.auto_rotate_period,
            key_size: if key_type == KeyType::Hmac {
                if o.key_size == 0 {
                    32
                } else {
                    o.key_size
                }
            } else {
                0
            },
            imported: false,
            allow_imported_key_rotation: false,
            backup_info: None,
            restore_info: None,
        })
    }

    /// Adds a new latest version.
    pub fn add_version(&mut self, mut entry: KeyEntry) {
        if self.convergent_encryption {
            entry.convergent_version = CONVERGENT_VERSION;
        }
        self.latest_version += 1;
        self.keys.insert(self.latest_version, entry);
        if self.min_decryption_version == 0 {
            self.min_decryption_version = 1;
        }
    }

    /// Adds a new random version. RSA keys take up to seconds of CPU to make, so they are
    /// made on a blocking thread: the runtime's workers keep accepting and answering
    /// (health checks, HA lease renewals) while a key is generated.
    pub async fn rotate(&mut self, now: &Now) -> OpResult<()> {
        let entry = if self.key_type.is_rsa() {
            let (kt, size, now) = (self.key_type, self.key_size, now.clone());
            tokio::task::spawn_blocking(move || KeyEntry::generate(kt, size, &now))
                .await
                .map_err(|_| internal("key generation failed"))??
        } else {
            KeyEntry::generate(self.key_type, self.key_size, now)?
        };
        self.add_version(entry);
        Ok(())
    }

    /// When the latest version was created.
    pub fn latest_creation(&self) -> i64 {
        self.keys
            .get(&self.latest_version)
            .map(|e| e.creation_time)
            .unwrap_or(0)
    }

    /// When the key is due for automatic rotation, if it rotates automatically.
    pub fn next_rotation(&self) -> Option<i64> {
        (self.auto_rotate_period > 0)
            .then(|| self.latest_creation() + self.auto_rotate_period as i64)
    }

    pub fn entry(&self, ver: i64) -> OpResult<&KeyEntry> {
        self.keys
            .get(&ver)
            .ok_or_else(|| user("no such key version"))
    }

    /// The HMAC key of a version (the key itself for `hmac` keys).
    pub fn hmac_key(&self, ver: i64) -> Result<&[u8], String> {
        if ver < 0 {
            return Err("key version does not exist (cannot be negative)".into());
        }
        if ver > self.latest_version {
            return Err(format!(
                "key version does not exist; latest key version is {}",
                self.latest_version
            ));
        }
        // Versions below min_decryption_version are out of use (Vault archives them).
        let e = self
            .keys
            .get(&ver)
            .filter(|_| ver >= self.min_decryption_version)
            .ok_or("no such key version")?;
        let k: &[u8] = if self.key_type == KeyType::Hmac {
            &e.key
        } else {
            &e.hmac_key
        };
        if k.is_empty() {
            return Err("no HMAC key exists for that key version".into());
        }
        Ok(k)
    }
}

/// Splits `vault:v<N>:<rest>`; `what` is "ciphertext" or "signature" for the messages.
pub fn split_versioned<'a>(value: &'a str, what: &str) -> OpResult<(i64, &'a str)> {
    let rest = value
        .strip_prefix("vault:v")
        .ok_or_else(|| user(format!("invalid {what}: no prefix")))?;
    let (ver, body) = rest
        .split_once(':')
        .ok_or_else(|| user(format!("invalid {what}: wrong number of fields")))?;
    let ver: i64 = ver.parse().map_err(|_| {
        user(format!(
            "invalid {what}: version number could not be decoded"
        ))
    })?;
    Ok((ver, body))
}

struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256 with no salt and `info` (Go's `hkdf.New(sha256.New, ikm, nil, info)`).
fn hkdf_sha256(ikm: &[u8], info: &[u8], len: usize) -> OpResult<Zeroizing<Vec<u8>>> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, OkmLen(len))
        .map_err(|_| internal("key derivation failed"))?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    okm.fill(&mut out)
        .map_err(|_| internal("key derivation failed"))?;
    Ok(out)
}

fn aead_key(alg: &'static aead::Algorithm, key: &[u8]) -> OpResult<aead::LessSafeKey> {
    aead::UnboundKey::new(alg, key)
        .map(aead::LessSafeKey::new)
        .map_err(|_| internal("could not load the encryption key"))
}

struct EcdsaParsed {
    asn1: Option<signature::EcdsaKeyPair>,
    fixed: Option<signature::EcdsaKeyPair>,
}

struct RsaParsed {
    sign: Option<rsa::KeyPair>,
    decrypt: Option<rsa::OaepPrivateDecryptingKey>,
    encrypt: rsa::OaepPublicEncryptingKey,
}

/// A version parsed for use.
enum Parsed {
    /// A non-derived symmetric key, ready to seal and open.
    Aead(aead::LessSafeKey),
    /// Used straight from the stored bytes (derived keys, HMAC keys).
    Raw,
    Ed25519(signature::Ed25519KeyPair),
    Ecdsa(Box<EcdsaParsed>),
    Rsa(Box<RsaParsed>),
}

/// A policy with its usable versions parsed into aws-lc-rs objects: what the cache holds.
pub struct Keyring {
    pub policy: Policy,
    parsed: HashMap<i64, Parsed>,
}

fn private_missing(ver: i64) -> OpError {
    user(format!("private key not imported for key version: {ver}"))
}

impl Keyring {
    /// Parses every version a request may use (those at or above `min_decryption_version`).
    pub fn new(policy: Policy) -> OpResult<Keyring> {
        let kt = policy.key_type;
        let load_err = |v: i64| internal(format!("could not load version {v} of the key"));
        let mut parsed = HashMap::new();
        for (&v, e) in policy.keys.range(policy.min_decryption_version.max(1)..) {
            let p = match kt {
                _ if policy.derived || kt == KeyType::Hmac => Parsed::Raw,
                KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
                    Parsed::Aead(aead_key(kt.aead().expect("aead type"), &e.key)?)
                }
                KeyType::Ed25519 => {
                    if e.key.len() != 64 {
                        return Err(load_err(v));
                    }
                    Parsed::Ed25519(
                        signature::Ed25519KeyPair::from_seed_and_public_key(
                            &e.key[..32],
                            &e.key[32..],
                        )
                        .map_err(|_| load_err(v))?,
                    )
                }
                KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                    let (asn1, fixed, ..) = kt.ecdsa_algs().expect("ecdsa type");
                    let (a, f) = if e.key.is_empty() {
                        (None, None)
                    } else {
                        (
                            Some(
                                signature::EcdsaKeyPair::from_pkcs8(asn1, &e.key)
                                    .map_err(|_| load_err(v))?,
                            ),
                            Some(
                                signature::EcdsaKeyPair::from_pkcs8(fixed, &e.key)
                                    .map_err(|_| load_err(v))?,
                            ),
                        )
                    };
                    Parsed::Ecdsa(Box::new(EcdsaParsed { asn1: a, fixed: f }))
                }
                KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                    let (sign, decrypt) = if e.key.is_empty() {
                        (None, None)
                    } else {
                        let kp = rsa::KeyPair::from_pkcs8(&e.key).map_err(|_| load_err(v))?;
                        let dk = rsa::PrivateDecryptingKey::from_pkcs8(&e.key)
                            .map_err(|_| load_err(v))
                            .and_then(|k| {
                                rsa::OaepPrivateDecryptingKey::new(k).map_err(|_| load_err(v))
                            })?;
                        (Some(kp), Some(dk))
                    };
                    let ek = rsa::PublicEncryptingKey::from_der(&e.public_key)
                        .map_err(|_| load_err(v))
                        .and_then(|k| {
                            rsa::OaepPublicEncryptingKey::new(k).map_err(|_| load_err(v))
                        })?;
                    Parsed::Rsa(Box::new(RsaParsed {
                        sign,
                        decrypt,
                        encrypt: ek,
                    }))
                }
                KeyType::Hmac => Parsed::Raw,
            };
            parsed.insert(v, p);
        }
        Ok(Keyring { policy, parsed })
    }

    fn kt(&self) -> KeyType {
        self.policy.key_type
    }

    fn parsed(&self, ver: i64) -> OpResult<(&KeyEntry, &Parsed)> {
        let e = self.policy.entry(ver)?;
        let p = self
            .parsed
            .get(&ver)
            .ok_or_else(|| user("no such key version"))?;
        Ok((e, p))
    }

    /// Vault's `GetKey`/`DeriveKey`: the version's key, or one derived from `context`.
    fn derive(&self, ver: i64, context: &[u8], len: usize) -> OpResult<Zeroizing<Vec<u8>>> {
        if !self.kt().derivation_supported() {
            return Err(user(format!(
                "derivation not supported for key type {}",
                self.kt().as_str()
            )));
        }
        if ver <= 0 || ver > self.policy.latest_version {
            return Err(user("invalid key version"));
        }
        if context.is_empty() {
            return Err(user(MISSING_CONTEXT));
        }
        if ver < self.policy.min_decryption_version {
            return Err(user("no such key version"));
        }
        let e = self.policy.entry(ver)?;
        hkdf_sha256(&e.key, context, len)
    }

    /// The version an encryption or signing request uses (0 = latest), or why it may not.
    fn encryption_version(&self, ver: i64, what: &str) -> OpResult<i64> {
        let p = &self.policy;
        match ver {
            0 => Ok(p.latest_version),
            v if v < 0 => Err(user(format!("requested version for {what} is negative"))),
            v if v > p.latest_version => Err(user(format!(
                "requested version for {what} is higher than the latest key version"
            ))),
            v if p.min_encryption_version > 0 && v < p.min_encryption_version => {
                Err(user(format!(
                    "requested version for {what} is less than the minimum encryption key version"
                )))
            }
            v => Ok(v),
        }
    }

    /// The version a ciphertext or signature names, checked against the policy.
    fn decryption_version(&self, ver: i64, what: &str) -> OpResult<i64> {
        // Vault's very first keys were numbered from 0.
        let ver = if ver == 0 && what == "ciphertext" {
            1
        } else {
            ver
        };
        if ver > self.policy.latest_version {
            return Err(user(format!("invalid {what}: version is too new")));
        }
        if self.policy.min_decryption_version > 0 && ver < self.policy.min_decryption_version {
            return Err(user(ERR_TOO_OLD));
        }
        Ok(ver)
    }

    /// Encrypts `plaintext` with version `ver` (0 = latest): `vault:v<N>:<base64>` and N.
    pub fn encrypt(
        &self,
        ver: i64,
        context: &[u8],
        plaintext: &[u8],
        aad: &[u8],
    ) -> OpResult<(String, i64)> {
        let kt = self.kt();
        if !kt.encryption_supported() {
            return Err(user(format!(
                "message encryption not supported for key type {}",
                kt.as_str()
            )));
        }
        let ver = self.encryption_version(ver, "encryption")?;
        let body = if let Some(alg) = kt.aead() {
            let enc_len = alg.key_len();
            let derived_key;
            let mut nonce_bytes = [0u8; NONCE_LEN];
            let key = if self.policy.derived {
                let convergent = self.policy.convergent_encryption;
                let material =
                    self.derive(ver, context, enc_len + if convergent { 32 } else { 0 })?;
                if convergent {
                    let tag = hmac::sign(
                        &hmac::Key::new(hmac::HMAC_SHA256, &material[enc_len..]),
                        plaintext,
                    );
                    nonce_bytes.copy_from_slice(&tag.as_ref()[..NONCE_LEN]);
                }
                derived_key = aead_key(alg, &material[..enc_len])?;
                &derived_key
            } else {
                match self.parsed(ver)?.1 {
                    Parsed::Aead(k) => k,
                    _ => return Err(internal("key version not loaded")),
                }
            };
            if !self.policy.convergent_encryption {
                aws_lc_rs::rand::fill(&mut nonce_bytes)
                    .map_err(|_| internal("system randomness unavailable"))?;
            }
            let nonce = aead::Nonce::assume_unique_for_key(nonce_bytes);
            let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
            out.extend_from_slice(&nonce_bytes);
            out.extend_from_slice(plaintext);
            let mut sealed = out.split_off(NONCE_LEN);
            key.seal_in_place_append_tag(nonce, aead::Aad::from(aad), &mut sealed)
                .map_err(|_| internal("encryption failed"))?;
            out.extend_from_slice(&sealed);
            out
        } else {
            let Parsed::Rsa(r) = self.parsed(ver)?.1 else {
                return Err(internal("key version not loaded"));
            };
            let mut out = vec![0u8; r.encrypt.ciphertext_size()];
            let n = r
                .encrypt
                .encrypt(&rsa::OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
                .map_err(|_| {
                    user("failed to RSA encrypt the plaintext: message too long for RSA key size")
                })?
                .len();
            out.truncate(n);
            out
        };
        Ok((format!("vault:v{ver}:{}", b64(&body)), ver))
    }

    /// Decrypts a `vault:v<N>:` ciphertext.
    pub fn decrypt(&self, context: &[u8], value: &str, aad: &[u8]) -> OpResult<Zeroizing<Vec<u8>>> {
        let kt = self.kt();
        if !kt.decryption_supported() {
            return Err(user(format!(
                "message decryption not supported for key type {}",
                kt.as_str()
            )));
        }
        let (ver, body) = split_versioned(value, "ciphertext")?;
        let ver = self.decryption_version(ver, "ciphertext")?;
        let decoded =
            b64_decode(body).map_err(|_| user("invalid ciphertext: could not decode base64"))?;
        if let Some(alg) = kt.aead() {
            let derived_key;
            let key = if self.policy.derived {
                let material = self.derive(ver, context, alg.key_len())?;
                derived_key = aead_key(alg, &material)?;
                &derived_key
            } else {
                match self.parsed(ver)?.1 {
                    Parsed::Aead(k) => k,
                    _ => return Err(internal("key version not loaded")),
                }
            };
            if decoded.len() < NONCE_LEN {
                return Err(user("invalid ciphertext length"));
            }
            let nonce = aead::Nonce::try_assume_unique_for_key(&decoded[..NONCE_LEN])
                .map_err(|_| user("invalid ciphertext length"))?;
            let mut buf = Zeroizing::new(decoded[NONCE_LEN..].to_vec());
            let n = key
                .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
                .map_err(|_| user("cipher: message authentication failed"))?
                .len();
            buf.truncate(n);
            Ok(buf)
        } else {
            let Parsed::Rsa(r) = self.parsed(ver)?.1 else {
                return Err(internal("key version not loaded"));
            };
            let dk = r.decrypt.as_ref().ok_or_else(|| private_missing(ver))?;
            let mut out = Zeroizing::new(vec![0u8; dk.min_output_size()]);
            let n = dk
                .decrypt(&rsa::OAEP_SHA256_MGF1SHA256, &decoded, &mut out, None)
                .map_err(|_| user("failed to RSA decrypt the ciphertext: decryption error"))?
                .len();
            out.truncate(n);
            Ok(out)
        }
    }

    /// The bytes a signature covers: the input's digest for ECDSA and RSA unless prehashed,
    /// the input itself for Ed25519.
    fn signed_bytes(&self, input: &[u8], o: &SignOptions) -> OpResult<Vec<u8>> {
        if self.kt().hash_signature_input() && !o.prehashed && o.hash != HashAlg::None {
            o.hash.hash(input)
        } else {
            Ok(input.to_vec())
        }
    }

    /// Signs `input` with version `ver` (0 = latest).
    pub fn sign(
        &self,
        ver: i64,
        context: &[u8],
        input: &[u8],
        o: &SignOptions,
    ) -> OpResult<SignResult> {
        let kt = self.kt();
        if !kt.signing_supported() {
            return Err(user(format!(
                "message signing not supported for key type {}",
                kt.as_str()
            )));
        }
        let ver = self.encryption_version(ver, "signing")?;
        let data = self.signed_bytes(input, o)?;
        let sign_err = |_| internal("signing failed");
        let mut public_key = None;
        let sig: Vec<u8> = match (kt, self.parsed(ver)?.1) {
            (KeyType::Ed25519, p) => {
                if self.policy.derived {
                    let seed = self
                        .derive(ver, context, 32)
                        .map_err(|e| user(format!("error deriving key: {}", e.message())))?;
                    let kp = signature::Ed25519KeyPair::from_seed_unchecked(&seed)
                        .map_err(|_| internal("error deriving key"))?;
                    public_key = Some(kp.public_key().as_ref().to_vec());
                    kp.sign(&data).as_ref().to_vec()
                } else {
                    let Parsed::Ed25519(kp) = p else {
                        return Err(internal("key version not loaded"));
                    };
                    kp.sign(&data).as_ref().to_vec()
                }
            }
            (_, Parsed::Ecdsa(e)) => {
                let digest = ecdsa_digest(kt, &data)?;
                let kp = match o.marshaling {
                    Marshaling::Asn1 => e.asn1.as_ref(),
                    Marshaling::Jws => e.fixed.as_ref(),
                }
                .ok_or_else(|| private_missing(ver))?;
                kp.sign_digest(&digest).map_err(sign_err)?.as_ref().to_vec()
            }
            (_, Parsed::Rsa(r)) => {
                let kp = r.sign.as_ref().ok_or_else(|| private_missing(ver))?;
                let (hash, digest) = rsa_digest(o.hash, &data)?;
                let max_salt = rsa_max_salt(kp.public_modulus_len() * 8, hash.output_len());
                let encoding = rsa_sign_encoding(hash, o, max_salt)?;
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign_digest(encoding, &digest, &mut sig)
                    .map_err(sign_err)?;
                sig
            }
            _ => return Err(internal("key version not loaded")),
        };
        let encoded = match o.marshaling {
            Marshaling::Asn1 => b64(&sig),
            Marshaling::Jws => b64url(&sig),
        };
        Ok(SignResult {
            signature: format!("vault:v{ver}:{encoded}"),
            public_key,
        })
    }

    /// Verifies a `vault:v<N>:` signature of `input`.
    pub fn verify(
        &self,
        context: &[u8],
        input: &[u8],
        sig: &str,
        o: &SignOptions,
    ) -> OpResult<bool> {
        let kt = self.kt();
        if !kt.signing_supported() {
            return Err(user(format!(
                "message verification not supported for key type {}",
                kt.as_str()
            )));
        }
        let (ver, body) = split_versioned(sig, "signature")?;
        let ver = self.decryption_version(ver, "signature")?;
        let sig = match o.marshaling {
            Marshaling::Asn1 => b64_decode(body),
            Marshaling::Jws => b64url_decode(body),
        }
        .map_err(|_| user("invalid base64 signature value"))?;
        let data = self.signed_bytes(input, o)?;
        let (entry, parsed) = self.parsed(ver)?;
        Ok(match (kt, parsed) {
            (KeyType::Ed25519, _) => {
                let public = if self.policy.derived {
                    let seed = self
                        .derive(ver, context, 32)
                        .map_err(|e| user(format!("error deriving key: {}", e.message())))?;
                    signature::Ed25519KeyPair::from_seed_unchecked(&seed)
                        .map_err(|_| internal("error deriving key"))?
                        .public_key()
                        .as_ref()
                        .to_vec()
                } else {
                    entry.public_key.clone()
                };
                signature::UnparsedPublicKey::new(&signature::ED25519, &public)
                    .verify(&data, &sig)
                    .is_ok()
            }
            (_, Parsed::Ecdsa(_)) => {
                let (.., asn1, fixed, _) = kt.ecdsa_algs().expect("ecdsa type");
                let alg = match o.marshaling {
                    Marshaling::Asn1 => {
                        check_ecdsa_asn1(&sig).map_err(|e| match e {
                            SigShape::Invalid => user("supplied signature is invalid"),
                            SigShape::ExtraData => user("supplied signature contains extra data"),
                        })?;
                        asn1
                    }
                    Marshaling::Jws => fixed,
                };
                let digest = ecdsa_digest(kt, &data)?;
                signature::UnparsedPublicKey::new(alg, &entry.public_key)
                    .verify_digest(&digest, &sig)
                    .is_ok()
            }
            (_, Parsed::Rsa(_)) => {
                let (hash, digest) = rsa_digest(o.hash, &data)?;
                let bits = rsa::PublicEncryptingKey::from_der(&entry.public_key)
                    .map_err(|_| internal("could not load the public key"))?
                    .key_size_bits();
                let max_salt = rsa_max_salt(bits, hash.output_len());
                let check = |params: &'static signature::RsaParameters| {
                    signature::UnparsedPublicKey::new(params, &entry.public_key)
                        .verify_digest(&digest, &sig)
                        .is_ok()
                };
                if o.signature_algorithm == "pkcs1v15" {
                    check(rsa_verify_params(hash, None))
                } else if o.signature_algorithm.is_empty() || o.signature_algorithm == "pss" {
                    match o.salt {
                        SaltLength::Hash => {
                            check(rsa_verify_params(hash, Some(rsa::RsaPssSaltLength::Digest)))
                        }
                        SaltLength::Exact(n) => {
                            if n as usize > max_salt {
                                return Err(user(format!("requested salt length {n} is invalid")));
                            }
                            check(rsa_verify_params(
                                hash,
                                Some(rsa::RsaPssSaltLength::Custom(n)),
                            ))
                        }
                        // Go's auto-detection: the lengths Vault and Tresor sign with first,
                        // then any other.
                        SaltLength::Auto => {
                            check(rsa_verify_params(hash, Some(rsa::RsaPssSaltLength::Max)))
                                || check(rsa_verify_params(
                                    hash,
                                    Some(rsa::RsaPssSaltLength::Digest),
                                ))
                                || (0..=max_salt as u16).any(|n| {
                                    check(rsa_verify_params(
                                        hash,
                                        Some(rsa::RsaPssSaltLength::Custom(n)),
                                    ))
                                })
                        }
                    }
                } else {
                    return Err(user(format!(
                        "unsupported rsa signature algorithm {}",
                        o.signature_algorithm
                    )));
                }
            }
            _ => return Err(internal("key version not loaded")),
        })
    }

    /// The public key of a derived Ed25519 key for `context`, per version.
    pub fn derived_public_key(&self, ver: i64, context: &[u8]) -> OpResult<Vec<u8>> {
        let seed = self.derive(ver, context, 32)?;
        Ok(signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| internal("failed to derive key to return public component"))?
            .public_key()
            .as_ref()
            .to_vec())
    }
}

/// The digest ECDSA signs for `data` on this curve: cut to or left-padded to the curve's
/// native digest length (see the module doc: same integer, same signature).
fn ecdsa_digest(kt: KeyType, data: &[u8]) -> OpResult<digest::Digest> {
    let (.., native) = kt.ecdsa_algs().expect("ecdsa type");
    let n = native.output_len();
    let bytes: Vec<u8> = if data.len() >= n {
        if kt == KeyType::EcdsaP521 && data.len() > n {
            // P-521's order has 521 bits: a 65- or 66-byte input would need a bit shift that
            // aws-lc-rs's digest API cannot express.
            return Err(user(
                "input longer than 64 bytes cannot be signed as-is with an ecdsa-p521 key; hash it first",
            ));
        }
        data[..n].to_vec()
    } else {
        let mut v = vec![0u8; n - data.len()];
        v.extend_from_slice(data);
        v
    };
    digest::Digest::import_less_safe(&bytes, native).map_err(|_| user("invalid digest"))
}

/// The digest RSA signs: SHA-2 256/384/512 only (what aws-lc-rs's RSA signing supports).
fn rsa_digest(
    hash: HashAlg,
    data: &[u8],
) -> OpResult<(&'static digest::Algorithm, digest::Digest)> {
    let alg = match hash {
        HashAlg::Sha2_256 => &digest::SHA256,
        HashAlg::Sha2_384 => &digest::SHA384,
        HashAlg::Sha2_512 => &digest::SHA512,
        other => {
            return Err(user(format!(
                "unsupported hash algorithm {} for RSA signatures: not available in Tresor's crypto library (aws-lc-rs), which signs with RSA over sha2-256, sha2-384 and sha2-512 only",
                other.name()
            )))
        }
    };
    let d = digest::Digest::import_less_safe(data, alg)
        .map_err(|_| user("crypto/rsa: input must be hashed with given hash"))?;
    Ok((alg, d))
}

/// Go's `(bits-1+7)/8 - 2 - hashLen`: the largest PSS salt for a modulus and hash.
fn rsa_max_salt(bits: usize, hash_len: usize) -> usize {
    ((bits - 1).div_ceil(8)).saturating_sub(2 + hash_len)
}

fn hash_index(alg: &'static digest::Algorithm) -> u8 {
    if alg == &digest::SHA384 {
        1
    } else if alg == &digest::SHA512 {
        2
    } else {
        0
    }
}

type Leaked<T> = OnceLock<Mutex<HashMap<(u8, u16), &'static T>>>;

/// aws-lc-rs takes RSA-PSS parameters as `&'static`; explicit salt lengths are made once and
/// kept (at most 3 hashes x a few hundred lengths, so bounded).
fn leak_once<T: Sync + 'static>(
    cache: &'static Leaked<T>,
    key: (u8, u16),
    make: impl FnOnce() -> T,
) -> &'static T {
    let mut m = cache
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    m.entry(key).or_insert_with(|| Box::leak(Box::new(make())))
}

fn rsa_sign_encoding(
    hash: &'static digest::Algorithm,
    o: &SignOptions,
    max_salt: usize,
) -> OpResult<&'static signature::RsaSignatureEncoding> {
    use rsa::RsaPssSaltLength as S;
    let i = hash_index(hash);
    match o.signature_algorithm.as_str() {
        "pkcs1v15" => Ok([
            &signature::RSA_PKCS1_SHA256,
            &signature::RSA_PKCS1_SHA384,
            &signature::RSA_PKCS1_SHA512,
        ][i as usize]),
        "" | "pss" => {
            let base = [
                signature::RSA_PSS_SHA256,
                signature::RSA_PSS_SHA384,
                signature::RSA_PSS_SHA512,
            ];
            static ENC: Leaked<signature::RsaSignatureEncoding> = OnceLock::new();
            let (salt, code) = match o.salt {
                SaltLength::Auto => (S::Max, u16::MAX),
                SaltLength::Hash => (S::Digest, u16::MAX - 1),
                SaltLength::Exact(n) => {
                    if n as usize > max_salt {
                        return Err(user(format!("requested salt length {n} is invalid")));
                    }
                    (S::Custom(n), n)
                }
            };
            let [a, b, c] = base;
            let chosen = [a, b, c].into_iter().nth(i as usize).expect("three hashes");
            Ok(leak_once(&ENC, (i, code), || {
                chosen.with_pss_salt_length(salt)
            }))
        }
        other => Err(user(format!("unsupported rsa signature algorithm {other}"))),
    }
}

fn rsa_verify_params(
    hash: &'static digest::Algorithm,
    pss: Option<rsa::RsaPssSaltLength>,
) -> &'static signature::RsaParameters {
    use rsa::RsaPssSaltLength as S;
    let i = hash_index(hash) as usize;
    let Some(salt) = pss else {
        return [
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &signature::RSA_PKCS1_2048_8192_SHA384,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ][i];
    };
    static PARAMS: Leaked<signature::RsaParameters> = OnceLock::new();
    let code = match salt {
        S::Max => u16::MAX,
        S::Custom(n) => n,
        _ => u16::MAX - 1,
    };
    leak_once(&PARAMS, (i as u8, code), || {
        let [a, b, c] = [
            signature::RSA_PSS_2048_8192_SHA256,
            signature::RSA_PSS_2048_8192_SHA384,
            signature::RSA_PSS_2048_8192_SHA512,
        ];
        [a, b, c]
            .into_iter()
            .nth(i)
            .expect("three hashes")
            .with_pss_salt_length(salt)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(kt: KeyType, o: NewKey) -> Keyring {
        let mut p = Policy::new("k", kt, &o).unwrap();
        let entry = KeyEntry::generate(kt, p.key_size, &Now::at(0)).unwrap();
        p.add_version(entry);
        Keyring::new(p).unwrap()
    }

    #[test]
    fn symmetric_round_trip_and_tamper_detection() {
        for kt in [
            KeyType::Aes128Gcm96,
            KeyType::Aes256Gcm96,
            KeyType::ChaCha20Poly1305,
        ] {
            let k = keyring(kt, NewKey::default());
            let (ct, v) = k.encrypt(0, b"", b"hello", b"ad").unwrap();
            assert_eq!(v, 1);
            assert!(ct.starts_with("vault:v1:"));
            assert_eq!(&*k.decrypt(b"", &ct, b"ad").unwrap(), b"hello");
            assert!(k.decrypt(b"", &ct, b"other").is_err());
            let mut raw = b64_decode(&ct[9..]).unwrap();
            raw[20] ^= 1;
            let bad = format!("vault:v1:{}", b64(&raw));
            assert_eq!(
                k.decrypt(b"", &bad, b"ad").unwrap_err(),
                user("cipher: message authentication failed")
            );
        }
    }

    #[test]
    fn convergent_is_deterministic_per_context() {
        let k = keyring(
            KeyType::Aes256Gcm96,
            NewKey {
                derived: true,
                convergent: true,
                ..Default::default()
            },
        );
        let a = k.encrypt(0, b"ctx", b"same", b"").unwrap().0;
        let b = k.encrypt(0, b"ctx", b"same", b"").unwrap().0;
        let c = k.encrypt(0, b"ctx2", b"same", b"").unwrap().0;
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(&*k.decrypt(b"ctx", &a, b"").unwrap(), b"same");
        assert!(k.decrypt(b"ctx2", &a, b"").is_err());
        assert_eq!(
            k.encrypt(0, b"", b"x", b"").unwrap_err(),
            user(MISSING_CONTEXT)
        );
    }

    #[test]
    fn ecdsa_digest_normalization() {
        // A SHA-512 digest on P-256 keeps its first 32 bytes; a short one is left-padded.
        let d = ecdsa_digest(KeyType::EcdsaP256, &[7u8; 64]).unwrap();
        assert_eq!(d.as_ref(), &[7u8; 32]);
        let d = ecdsa_digest(KeyType::EcdsaP384, &[1, 2]).unwrap();
        assert_eq!(d.as_ref().len(), 48);
        assert_eq!(&d.as_ref()[46..], &[1, 2]);
        assert!(ecdsa_digest(KeyType::EcdsaP521, &[0u8; 65]).is_err());
    }

    #[test]
    fn salt_lengths_parse_as_go() {
        assert_eq!(SaltLength::parse("auto"), Ok(SaltLength::Auto));
        assert_eq!(SaltLength::parse("0"), Ok(SaltLength::Auto));
        assert_eq!(SaltLength::parse("-1"), Ok(SaltLength::Hash));
        assert_eq!(SaltLength::parse("hash"), Ok(SaltLength::Hash));
        assert_eq!(SaltLength::parse("5"), Ok(SaltLength::Exact(5)));
        assert!(SaltLength::parse("-2").unwrap_err().contains("invalid: -2"));
        assert!(SaltLength::parse("foo").unwrap_err().contains("nor an int"));
        assert_eq!(rsa_max_salt(2048, 32), 222);
    }
}
