//! Private keys: types and sizes (Vault's `key_type`/`key_bits` rules and messages), generation
//! (aws-lc-rs; RSA runs on a blocking thread because it takes tens to hundreds of milliseconds),
//! import of PKCS#1, SEC1 and PKCS#8 keys, the export formats Vault answers with, and the
//! mount's stored keys with their paths: `keys` (LIST), `key/:key_ref` (read, update, delete),
//! `keys/generate/:type`, `keys/import` and `config/keys`.
//!
//! A stored key is its DER (as generated: PKCS#8; as imported: whatever form it came in) in
//! `config/key/<id>`; rcgen's [`KeyPair`] detects the form when it loads it.

use super::x509::{b64, hex_colon, key_id, pem_blocks, pem_encode, spki_bits, unb64};
use super::{bad, Pki};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::EcdsaKeyPair;
use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use zeroize::Zeroizing;

/// Where keys live.
pub const KEY_PREFIX: &str = "config/key/";
/// The default-key config.
pub const KEYS_CONFIG: &str = "config/keys";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ec,
    Ed25519,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ec => "ec",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// A key to generate: type and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub ty: KeyType,
    pub bits: u32,
}

/// Validates `key_type` and `key_bits` as Vault does, filling in the default size (RSA 2048,
/// EC 256). `any` is not a generatable type; callers that accept it check for it first.
pub fn key_spec(key_type: &str, key_bits: i64) -> Result<KeySpec> {
    match key_type {
        "rsa" => {
            let bits = if key_bits == 0 { 2048 } else { key_bits };
            if bits < 2048 {
                return Err(bad(format!(
                    "RSA keys < 2048 bits are unsafe and not supported: got {bits}"
                )));
            }
            if ![2048, 3072, 4096, 8192].contains(&bits) {
                return Err(bad(format!("unsupported bit length for RSA key: {bits}")));
            }
            Ok(KeySpec {
                ty: KeyType::Rsa,
                bits: bits as u32,
            })
        }
        "ec" => {
            let bits = if key_bits == 0 { 256 } else { key_bits };
            if ![256, 384, 521].contains(&bits) {
                return Err(bad(format!("unsupported bit length for EC key: {bits}")));
            }
            Ok(KeySpec {
                ty: KeyType::Ec,
                bits: bits as u32,
            })
        }
        "ed25519" => Ok(KeySpec {
            ty: KeyType::Ed25519,
            bits: 0,
        }),
        other => Err(bad(format!("unknown key type {other}"))),
    }
}

/// A private key ready to sign: rcgen's key pair plus what we report about it.
pub struct PrivKey {
    pub pair: KeyPair,
    pub ty: KeyType,
    pub bits: u32,
    /// The DER as stored (PKCS#8 for generated keys).
    pub der: Zeroizing<Vec<u8>>,
}

impl PrivKey {
    /// Loads a key from DER in any of PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub fn from_der(der: &[u8]) -> Result<PrivKey> {
        let pair = KeyPair::try_from(der).map_err(|_| bad("unable to parse private key"))?;
        let (ty, bits) = describe(&pair)?;
        Ok(PrivKey {
            pair,
            ty,
            bits,
            der: Zeroizing::new(der.to_vec()),
        })
    }

    /// Loads the first private key block of a PEM string.
    pub fn from_pem(pem: &str) -> Result<PrivKey> {
        let der = pem_blocks(pem)
            .into_iter()
            .find(|(l, _)| l.ends_with("PRIVATE KEY"))
            .map(|(_, d)| Zeroizing::new(d))
            .ok_or_else(|| bad("no private key found in the PEM data"))?;
        Self::from_der(&der)
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// The subject key identifier Vault would compute for this key (SHA-1 of the key bits).
    pub fn key_id(&self) -> Vec<u8> {
        spki_bits(&self.spki())
            .map(|b| key_id(&b))
            .unwrap_or_default()
    }

    pub fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.pair.algorithm()
    }

    /// The key as Vault returns it: `format` is `pem` (default), `der` or `pem_bundle`;
    /// `private_key_format` is `""`/`der`/`pem` (traditional: PKCS#1 for RSA, SEC1 for EC,
    /// PKCS#8 for Ed25519) or `pkcs8`.
    pub fn export(&self, format: &str, private_key_format: &str) -> Result<String> {
        let (label, der) = if private_key_format == "pkcs8" || self.ty == KeyType::Ed25519 {
            ("PRIVATE KEY", Zeroizing::new(self.pkcs8()?))
        } else {
            match self.ty {
                KeyType::Rsa => ("RSA PRIVATE KEY", Zeroizing::new(self.pkcs1()?)),
                KeyType::Ec => ("EC PRIVATE KEY", Zeroizing::new(self.sec1()?)),
                KeyType::Ed25519 => unreachable!("handled above"),
            }
        };
        Ok(encode_private(format, label, &der))
    }

    /// PKCS#8 DER (generated keys are stored that way; imported ones are converted).
    pub fn pkcs8(&self) -> Result<Vec<u8>> {
        if is_pkcs8(&self.der) {
            return Ok(self.der.to_vec());
        }
        let err = || Error::internal("unable to convert the private key to PKCS#8");
        match self.ty {
            KeyType::Rsa => {
                let k = aws_lc_rs::rsa::KeyPair::from_der(&self.der).map_err(|_| err())?;
                Ok(k.as_der().map_err(|_| err())?.as_ref().to_vec())
            }
            KeyType::Ec => {
                let k = EcdsaKeyPair::from_private_key_der(ec_alg(self.bits), &self.der)
                    .map_err(|_| err())?;
                Ok(k.to_pkcs8v1().map_err(|_| err())?.as_ref().to_vec())
            }
            KeyType::Ed25519 => Err(err()),
        }
    }

    /// PKCS#1 RSAPrivateKey DER: the privateKey OCTET STRING of the PKCS#8 structure.
    fn pkcs1(&self) -> Result<Vec<u8>> {
        if !is_pkcs8(&self.der) {
            return Ok(self.der.to_vec());
        }
        pkcs8_inner(&self.der)
    }

    /// SEC1 ECPrivateKey DER with the curve parameters (RFC 5915), as `openssl ec` expects.
    fn sec1(&self) -> Result<Vec<u8>> {
        if !is_pkcs8(&self.der) {
            return Ok(self.der.to_vec());
        }
        let err = || Error::internal("unable to convert the EC key");
        let k = EcdsaKeyPair::from_pkcs8(ec_alg(self.bits), &self.der).map_err(|_| err())?;
        let der = k.private_key().as_der().map_err(|_| err())?;
        Ok(der.as_ref().to_vec())
    }
}

fn ec_alg(bits: u32) -> &'static aws_lc_rs::signature::EcdsaSigningAlgorithm {
    match bits {
        384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        521 => &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        _ => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

/// A private key as an answer carries it: base64 DER for `format=der`, else PEM.
fn encode_private(format: &str, label: &str, der: &[u8]) -> String {
    if format == "der" {
        b64(der)
    } else {
        pem_encode(label, der)
    }
}

/// Whether DER is a PKCS#8 PrivateKeyInfo (SEQUENCE { INTEGER, SEQUENCE { OID ... }, ... }).
fn is_pkcs8(der: &[u8]) -> bool {
    use x509_parser::der_parser::ber::BerObjectContent;
    match x509_parser::der_parser::parse_der(der) {
        Ok((_, obj)) => match obj.as_sequence() {
            Ok(items) => {
                items.len() >= 3 && matches!(items[1].content, BerObjectContent::Sequence(_))
            }
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// The privateKey OCTET STRING content of a PKCS#8 PrivateKeyInfo.
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

/// The type and size of a loaded key pair.
fn describe(pair: &KeyPair) -> Result<(KeyType, u32)> {
    let alg = pair.algorithm();
    if alg == &rcgen::PKCS_ED25519 {
        return Ok((KeyType::Ed25519, 0));
    }
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Ok((KeyType::Ec, 256));
    }
    if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        return Ok((KeyType::Ec, 384));
    }
    if alg == &rcgen::PKCS_ECDSA_P521_SHA512
        || alg == &rcgen::PKCS_ECDSA_P521_SHA384
        || alg == &rcgen::PKCS_ECDSA_P521_SHA256
    {
        return Ok((KeyType::Ec, 521));
    }
    if alg == &rcgen::PKCS_RSA_SHA256
        || alg == &rcgen::PKCS_RSA_SHA384
        || alg == &rcgen::PKCS_RSA_SHA512
    {
        use x509_parser::prelude::FromDer;
        let spki = pair.subject_public_key_info();
        let bits = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki)
            .ok()
            .and_then(|(_, s)| s.parsed().ok().map(|k| k.key_size()))
            .unwrap_or(0);
        return Ok((KeyType::Rsa, bits as u32));
    }
    Err(bad("unsupported private key type"))
}

/// Generates a key (blocking: RSA takes a while; see [`generate_async`]).
pub fn generate(spec: KeySpec) -> Result<PrivKey> {
    let err = |e: aws_lc_rs::error::Unspecified| Error::internal(format!("key generation: {e}"));
    let der: Vec<u8> = match spec.ty {
        KeyType::Rsa => {
            let size = match spec.bits {
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                8192 => aws_lc_rs::rsa::KeySize::Rsa8192,
                _ => aws_lc_rs::rsa::KeySize::Rsa2048,
            };
            let k = aws_lc_rs::rsa::KeyPair::generate(size).map_err(err)?;
            k.as_der().map_err(err)?.as_ref().to_vec()
        }
        KeyType::Ec => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            EcdsaKeyPair::generate_pkcs8(ec_alg(spec.bits), &rng)
                .map_err(err)?
                .as_ref()
                .to_vec()
        }
        KeyType::Ed25519 => {
            let k = aws_lc_rs::signature::Ed25519KeyPair::generate().map_err(err)?;
            k.to_pkcs8v1().map_err(err)?.as_ref().to_vec()
        }
    };
    PrivKey::from_der(&der)
}

/// Generates a key without blocking the async runtime: RSA runs on a blocking thread, EC and
/// Ed25519 (microseconds) inline.
pub async fn generate_async(spec: KeySpec) -> Result<PrivKey> {
    if spec.ty == KeyType::Rsa {
        tokio::task::spawn_blocking(move || generate(spec))
            .await
            .map_err(|e| Error::internal(format!("key generation task failed: {e}")))?
    } else {
        generate(spec)
    }
}

/// A key generated for one issued certificate (`issue/:role`): its public half goes into the
/// certificate, its private half into the answer, and it never signs anything. Unlike
/// [`PrivKey`] it holds no rcgen `KeyPair`: building one means parsing the PKCS#8 back, and
/// aws-lc re-derives and checks the public point on every parse, which (with a second parse
/// for the SEC1 export) took over a third of an EC P-256 issue's CPU. The private key is
/// encoded only in the one format the answer asks for.
pub struct LeafKey {
    pub ty: KeyType,
    /// The public key as the certificate's SubjectPublicKeyInfo carries it.
    public: Vec<u8>,
    alg: &'static SignatureAlgorithm,
    private: LeafPrivate,
}

enum LeafPrivate {
    Ec(EcdsaKeyPair),
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
    /// RSA keys come through [`PrivKey`] (generated on a blocking thread): PKCS#8 and PKCS#1.
    Rsa(Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>),
}

impl PublicKeyData for LeafKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl LeafKey {
    /// The private key for the answer, as [`PrivKey::export`]: PKCS#8 when asked (and always
    /// for Ed25519), else SEC1 (EC) or PKCS#1 (RSA); PEM, or base64 DER for `format=der`.
    pub fn export(&self, format: &str, private_key_format: &str) -> Result<String> {
        let err = |_| Error::internal("unable to encode the private key");
        let pkcs8 = private_key_format == "pkcs8";
        let (label, der): (&str, Zeroizing<Vec<u8>>) = match &self.private {
            LeafPrivate::Ec(k) if pkcs8 => (
                "PRIVATE KEY",
                Zeroizing::new(k.to_pkcs8v1().map_err(err)?.as_ref().to_vec()),
            ),
            LeafPrivate::Ec(k) => (
                "EC PRIVATE KEY",
                Zeroizing::new(k.private_key().as_der().map_err(err)?.as_ref().to_vec()),
            ),
            LeafPrivate::Ed25519(k) => (
                "PRIVATE KEY",
                Zeroizing::new(k.to_pkcs8v1().map_err(err)?.as_ref().to_vec()),
            ),
            LeafPrivate::Rsa(p8, _) if pkcs8 => ("PRIVATE KEY", p8.clone()),
            LeafPrivate::Rsa(_, p1) => ("RSA PRIVATE KEY", p1.clone()),
        };
        Ok(encode_private(format, label, &der))
    }
}

/// Generates a leaf key: EC and Ed25519 straight from aws-lc-rs, inline (microseconds); RSA
/// (slow everywhere) on a blocking thread, so other requests go on meanwhile.
pub async fn generate_leaf(spec: KeySpec) -> Result<LeafKey> {
    use aws_lc_rs::signature::KeyPair as _;
    let err = |e: aws_lc_rs::error::Unspecified| Error::internal(format!("key generation: {e}"));
    Ok(match spec.ty {
        KeyType::Rsa => {
            let k = generate_async(spec).await?;
            LeafKey {
                ty: KeyType::Rsa,
                public: k.pair.der_bytes().to_vec(),
                alg: k.pair.algorithm(),
                private: LeafPrivate::Rsa(Zeroizing::new(k.pkcs8()?), Zeroizing::new(k.pkcs1()?)),
            }
        }
        KeyType::Ec => {
            let k = EcdsaKeyPair::generate(ec_alg(spec.bits)).map_err(err)?;
            LeafKey {
                ty: KeyType::Ec,
                public: k.public_key().as_ref().to_vec(),
                alg: match spec.bits {
                    384 => &rcgen::PKCS_ECDSA_P384_SHA384,
                    521 => &rcgen::PKCS_ECDSA_P521_SHA512,
                    _ => &rcgen::PKCS_ECDSA_P256_SHA256,
                },
                private: LeafPrivate::Ec(k),
            }
        }
        KeyType::Ed25519 => {
            let k = aws_lc_rs::signature::Ed25519KeyPair::generate().map_err(err)?;
            LeafKey {
                ty: KeyType::Ed25519,
                public: k.public_key().as_ref().to_vec(),
                alg: &rcgen::PKCS_ED25519,
                private: LeafPrivate::Ed25519(k),
            }
        }
    })
}

/// A key stored in the mount.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub key_type: String,
    #[serde(default)]
    pub key_bits: u32,
    /// Base64 DER of the private key.
    pub private_key: String,
}

impl KeyEntry {
    pub fn new(key: &PrivKey, name: &str) -> KeyEntry {
        KeyEntry {
            id: tresor_core::util::uuid(),
            name: name.to_string(),
            key_type: key.ty.as_str().to_string(),
            key_bits: key.bits,
            private_key: b64(&key.der),
        }
    }

    pub fn load(&self) -> Result<PrivKey> {
        let der = Zeroizing::new(
            unb64(&self.private_key).ok_or_else(|| Error::internal("corrupt stored key"))?,
        );
        PrivKey::from_der(&der)
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct KeysConfig {
    #[serde(default)]
    pub default: String,
}

pub async fn get_key(s: &View, id: &str) -> Result<Option<KeyEntry>> {
    s.get_json(&format!("{KEY_PREFIX}{id}")).await
}

pub async fn put_key(s: &View, k: &KeyEntry) -> Result<()> {
    s.put_json(&format!("{KEY_PREFIX}{}", k.id), k).await
}

pub async fn list_keys(s: &View) -> Result<Vec<KeyEntry>> {
    let mut out = Vec::new();
    for id in s.list(KEY_PREFIX).await? {
        if let Some(k) = get_key(s, &id).await? {
            out.push(k);
        }
    }
    Ok(out)
}

pub async fn keys_config(s: &View) -> Result<KeysConfig> {
    Ok(s.get_json(KEYS_CONFIG).await?.unwrap_or_default())
}

/// Stores a key unless the mount already has the same one; returns (id, newly stored).
pub async fn import_key(s: &View, key: &PrivKey, name: &str) -> Result<(String, bool)> {
    let spki = key.spki();
    for k in list_keys(s).await? {
        if let Ok(existing) = k.load() {
            if existing.spki() == spki {
                return Ok((k.id, false));
            }
        }
    }
    let entry = KeyEntry::new(key, name);
    put_key(s, &entry).await?;
    let mut cfg = keys_config(s).await?;
    if cfg.default.is_empty() {
        cfg.default = entry.id.clone();
        s.put_json(KEYS_CONFIG, &cfg).await?;
    }
    Ok((entry.id, true))
}

/// Resolves `default`, a key id or a key name.
pub async fn resolve_key(s: &View, reference: &str) -> Result<KeyEntry> {
    let reference = reference.trim();
    let not_found = || super::bad(format!("unable to find PKI key for reference: {reference}"));
    if reference.is_empty() || reference == "default" {
        let cfg = keys_config(s).await?;
        if cfg.default.is_empty() {
            return Err(super::bad("no default key currently configured"));
        }
        return get_key(s, &cfg.default).await?.ok_or_else(not_found);
    }
    if let Some(k) = get_key(s, reference).await? {
        return Ok(k);
    }
    list_keys(s)
        .await?
        .into_iter()
        .find(|k| !k.name.is_empty() && k.name == reference)
        .ok_or_else(not_found)
}

/// Checks a key or issuer name as Vault does.
pub fn check_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty() {
        return Ok(());
    }
    if name == "default" {
        return Err(bad(format!(
            "reserved keyword 'default' can not be used as {what} name"
        )));
    }
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        return Err(bad(format!("{what} name contained invalid characters")));
    }
    Ok(())
}

/// A key reference in a path.
pub const KEY_REF: &str = r"(?P<key_ref>\w(([\w\-.]+)?\w)?)";

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("keys/?")
            .op(List, list)
            .help("List the mount's private keys."),
        Path::new(r"keys/generate/(?P<exported>internal|exported|kms)")
            .field(
                "key_type",
                Field::string("rsa, ec or ed25519").default("rsa"),
            )
            .field("key_bits", Field::int("key size in bits").default(0))
            .field("key_name", Field::string("name of the new key"))
            .op(Update, generate_key)
            .help("Generate a new private key in the mount."),
        Path::new("keys/import")
            .field("pem_bundle", Field::string("PEM-encoded private key"))
            .field("key_name", Field::string("name of the key"))
            .op(Update, import)
            .help("Import a private key."),
        Path::new(format!("key/{KEY_REF}").as_str())
            .field("key_name", Field::string("new name of the key"))
            .op(Read, read)
            .op(Update, update)
            .op(Delete, delete)
            .help("Read, rename or delete a private key."),
        Path::new("config/keys")
            .field(
                "default",
                Field::string("key reference to make the default"),
            )
            .op(Read, read_config)
            .op(Update, write_config)
            .help("The mount's default key."),
    ]
}

async fn list(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let keys = list_keys(&c.storage).await?;
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    let default = keys_config(&c.storage).await?.default;
    let mut ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    ids.sort();
    let mut info = Map::new();
    for k in &keys {
        info.insert(
            k.id.clone(),
            json!({ "is_default": k.id == default, "key_name": k.name }),
        );
    }
    Ok(Response::data(json!({ "keys": ids, "key_info": info })))
}

fn key_json(k: &KeyEntry) -> Value {
    let skid = k.load().map(|p| hex_colon(&p.key_id())).unwrap_or_default();
    json!({
        "key_id": k.id,
        "key_name": k.name,
        "key_type": k.key_type,
        "subject_key_id": skid,
    })
}

async fn read(_b: Arc<Pki>, c: Call) -> Result<Response> {
    let k = resolve_key(&c.storage, c.fields.str("key_ref")).await?;
    Ok(Response::data(key_json(&k)))
}

async fn update(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let mut k = resolve_key(&c.storage, c.fields.str("key_ref")).await?;
    let name = c.fields.str("key_name").to_string();
    check_name(&name, "key")?;
    if !name.is_empty() {
        for other in list_keys(&c.storage).await? {
            if other.id != k.id && other.name == name {
                return Err(bad(format!("key name {name} is already in use")));
            }
        }
    }
    k.name = name;
    put_key(&c.storage, &k).await?;
    Ok(Response::data(key_json(&k)))
}

async fn delete(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let k = match resolve_key(&c.storage, c.fields.str("key_ref")).await {
        Ok(k) => k,
        Err(_) => return Ok(Response::default()),
    };
    for i in super::issuers::list_issuers(&c.storage).await? {
        if i.key_id == k.id {
            return Err(bad(format!(
                "unable to delete key {} as it is in use by issuer {}",
                k.id, i.id
            )));
        }
    }
    c.storage.delete(&format!("{KEY_PREFIX}{}", k.id)).await?;
    let mut cfg = keys_config(&c.storage).await?;
    if cfg.default == k.id {
        cfg.default.clear();
        c.storage.put_json(KEYS_CONFIG, &cfg).await?;
        return Ok(Response::default()
            .with_warning("Deleted key was the default key; a new default key has not been set."));
    }
    Ok(Response::default())
}

async fn generate_key(b: Arc<Pki>, c: Call) -> Result<Response> {
    let exported = match c.fields.str("exported") {
        "kms" => return Err(bad("managed keys are not supported")),
        e => e == "exported",
    };
    let spec = key_spec(c.fields.str("key_type"), c.fields.int("key_bits"))?;
    let name = c.fields.str("key_name").to_string();
    check_name(&name, "key")?;
    let key = generate_async(spec).await?;
    let _guard = b.write_lock.lock().await;
    let (id, _) = import_key(&c.storage, &key, &name).await?;
    let mut d = json!({ "key_id": id, "key_name": name, "key_type": spec.ty.as_str() });
    if exported {
        d["private_key"] = json!(key.export("pem", "")?);
    }
    Ok(Response::data(d))
}

async fn import(b: Arc<Pki>, c: Call) -> Result<Response> {
    let name = c.fields.str("key_name").to_string();
    check_name(&name, "key")?;
    let key = PrivKey::from_pem(c.fields.str("pem_bundle"))?;
    let _guard = b.write_lock.lock().await;
    let (id, _) = import_key(&c.storage, &key, &name).await?;
    let k = get_key(&c.storage, &id)
        .await?
        .ok_or_else(|| Error::internal("imported key vanished"))?;
    Ok(Response::data(key_json(&k)))
}

async fn read_config(_b: Arc<Pki>, c: Call) -> Result<Response> {
    Ok(Response::data(
        json!({ "default": keys_config(&c.storage).await?.default }),
    ))
}

async fn write_config(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    let reference = c.fields.str("default");
    if reference.is_empty() || reference == "default" {
        return Err(bad(
            "Invalid key specification; must be non-empty and can't be 'default'.",
        ));
    }
    let k = resolve_key(&c.storage, reference).await?;
    c.storage
        .put_json(
            KEYS_CONFIG,
            &KeysConfig {
                default: k.id.clone(),
            },
        )
        .await?;
    Ok(Response::data(json!({ "default": k.id })))
}
