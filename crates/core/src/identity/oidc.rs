//! Vault's OIDC identity token provider (`identity/oidc/*`): named signing keys that rotate,
//! roles that say which key signs and which claims a token carries, signed ID tokens for the
//! calling token's entity, introspection, and the public discovery documents.
//!
//! Keys are generated and used through aws-lc-rs only (RSA PKCS#1 v1.5 with SHA-256/384/512,
//! ECDSA P-256/P-384/P-521, Ed25519); the JWT is assembled by hand (base64url and JSON are all
//! it takes, and it keeps the claims exactly as Vault orders them).
//!
//! Storage (inside the identity view): `oidc/config`, `oidc/key/<name>` (each key keeps its
//! current signing key, the pre-published next one, and rotated-out keys until their
//! `verification_ttl` ends, as PKCS#8 inside the barrier), `oidc/role/<name>`.
//!
//! Rotation happens when a key is next used or published (signing, JWKS, introspection) once
//! its `rotation_period` has passed; Vault does it on a timer, which only matters for the
//! `verification_ttl` of a key nobody touches.

use super::backend::Identity;
use super::template::{self, Mode};
use super::{IdentityStore, NAMESPACE_ID};
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, Response};
use crate::util::{random_alnum, unix_now};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const DEFAULT_KEY: &str = "default";
const DAY: u64 = 86_400;

/// Claims a role template may not set (Vault's list).
const RESERVED_CLAIMS: [&str; 10] = [
    "iat",
    "aud",
    "exp",
    "iss",
    "sub",
    "namespace",
    "nonce",
    "auth_time",
    "at_hash",
    "c_hash",
];

const ALGORITHMS: [&str; 7] = [
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA",
];

fn config_key() -> &'static str {
    "oidc/config"
}
fn key_key(name: &str) -> String {
    format!("oidc/key/{name}")
}
fn role_key(name: &str) -> String {
    format!("oidc/role/{name}")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Config {
    #[serde(default)]
    issuer: String,
}

/// One signing key version.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyVersion {
    kid: String,
    algorithm: String,
    /// Base64 PKCS#8.
    pkcs8: String,
    /// Unix time after which it is no longer published; 0 while current or next.
    #[serde(default)]
    expire_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NamedKey {
    name: String,
    algorithm: String,
    rotation_period: u64,
    verification_ttl: u64,
    #[serde(default)]
    allowed_client_ids: Vec<String>,
    next_rotation: i64,
    /// The kid signing now.
    current: String,
    /// The kid that will sign after the next rotation (already published).
    next: String,
    keys: Vec<KeyVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Role {
    name: String,
    key: String,
    #[serde(default)]
    template: String,
    client_id: String,
    ttl: u64,
}

// ---------------------------------------------------------------------------------------------
// Keys and signatures

enum KeyKind {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed signing key with its public JWK.
pub(crate) struct Signer {
    algorithm: String,
    key: KeyKind,
    jwk: Value,
}

fn crypto_err<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::internal(format!("{what}: {e:?}"))
}

fn ec_signing(alg: &str) -> Option<&'static signature::EcdsaSigningAlgorithm> {
    match alg {
        "ES256" => Some(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
        "ES384" => Some(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        "ES512" => Some(&signature::ECDSA_P521_SHA512_FIXED_SIGNING),
        _ => None,
    }
}

/// A new private key for `alg`, as PKCS#8. RSA keys are 2048 bits, as Vault's.
fn generate(alg: &str) -> Result<Vec<u8>> {
    if alg.starts_with("RS") {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(crypto_err("RSA key generation failed"))?;
        let der = kp.as_der().map_err(crypto_err("RSA key encoding failed"))?;
        return Ok(AsRef::<[u8]>::as_ref(&*der).to_vec());
    }
    if let Some(a) = ec_signing(alg) {
        let kp = EcdsaKeyPair::generate(a).map_err(crypto_err("EC key generation failed"))?;
        let doc = kp
            .to_pkcs8v1()
            .map_err(crypto_err("EC key encoding failed"))?;
        return Ok(doc.as_ref().to_vec());
    }
    if alg == "EdDSA" {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(crypto_err("Ed25519 key generation failed"))?;
        return Ok(doc.as_ref().to_vec());
    }
    Err(Error::bad(format!("unknown signing algorithm {alg:?}")))
}

impl Signer {
    fn load(kid: &str, algorithm: &str, pkcs8: &[u8]) -> Result<Signer> {
        let reject = crypto_err("stored signing key is invalid");
        let (key, mut jwk) = if algorithm.starts_with("RS") {
            let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map_err(reject)?;
            let pk = kp.public_key();
            let jwk = json!({
                "kty": "RSA",
                "n": B64URL.encode(pk.modulus().big_endian_without_leading_zero()),
                "e": B64URL.encode(pk.exponent().big_endian_without_leading_zero()),
            });
            (KeyKind::Rsa(kp), jwk)
        } else if let Some(a) = ec_signing(algorithm) {
            let kp = EcdsaKeyPair::from_pkcs8(a, pkcs8).map_err(reject)?;
            // Uncompressed point: 0x04 || X || Y.
            let point = kp.public_key().as_ref().to_vec();
            let n = (point.len() - 1) / 2;
            let crv = match algorithm {
                "ES256" => "P-256",
                "ES384" => "P-384",
                _ => "P-521",
            };
            let jwk = json!({
                "kty": "EC",
                "crv": crv,
                "x": B64URL.encode(&point[1..1 + n]),
                "y": B64URL.encode(&point[1 + n..]),
            });
            (KeyKind::Ec(kp), jwk)
        } else if algorithm == "EdDSA" {
            let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(reject)?;
            let jwk = json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": B64URL.encode(kp.public_key().as_ref()),
            });
            (KeyKind::Ed(kp), jwk)
        } else {
            return Err(Error::internal(format!(
                "unknown signing algorithm {algorithm:?}"
            )));
        };
        jwk["use"] = json!("sig");
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(algorithm);
        Ok(Signer {
            algorithm: algorithm.to_string(),
            key,
            jwk,
        })
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let failed = crypto_err("signing failed");
        match &self.key {
            KeyKind::Rsa(kp) => {
                let enc: &'static dyn signature::RsaEncoding = match self.algorithm.as_str() {
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(enc, &SystemRandom::new(), msg, &mut sig)
                    .map_err(failed)?;
                Ok(sig)
            }
            KeyKind::Ec(kp) => Ok(kp
                .sign(&SystemRandom::new(), msg)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            KeyKind::Ed(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let (alg, public): (&dyn signature::VerificationAlgorithm, &[u8]) = match &self.key {
            KeyKind::Rsa(kp) => (
                match self.algorithm.as_str() {
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    _ => &signature::RSA_PKCS1_2048_8192_SHA256,
                },
                kp.public_key().as_ref(),
            ),
            KeyKind::Ec(kp) => (
                match self.algorithm.as_str() {
                    "ES384" => &signature::ECDSA_P384_SHA384_FIXED,
                    "ES512" => &signature::ECDSA_P521_SHA512_FIXED,
                    _ => &signature::ECDSA_P256_SHA256_FIXED,
                },
                kp.public_key().as_ref(),
            ),
            KeyKind::Ed(kp) => (&signature::ED25519, kp.public_key().as_ref()),
        };
        signature::UnparsedPublicKey::new(alg, public)
            .verify(msg, sig)
            .is_ok()
    }
}

impl IdentityStore {
    /// The parsed key for a version (cached by kid).
    fn signer(&self, v: &KeyVersion) -> Result<Arc<Signer>> {
        if let Some(s) = self.signers.read().get(&v.kid) {
            return Ok(s.clone());
        }
        let der = B64
            .decode(&v.pkcs8)
            .map_err(|_| Error::internal("stored signing key is not base64"))?;
        let s = Arc::new(Signer::load(&v.kid, &v.algorithm, &der)?);
        let mut cache = self.signers.write();
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(v.kid.clone(), s.clone());
        Ok(s)
    }
}

/// A new key version, generated off the async runtime (RSA generation takes a while).
async fn new_version(alg: &str) -> Result<KeyVersion> {
    let a = alg.to_string();
    let der = tokio::task::spawn_blocking(move || generate(&a))
        .await
        .map_err(|e| Error::internal(format!("key generation task failed: {e}")))??;
    Ok(KeyVersion {
        kid: crate::util::uuid(),
        algorithm: alg.to_string(),
        pkcs8: B64.encode(der),
        expire_at: 0,
    })
}

impl NamedKey {
    /// Fresh current and next keys (new key, or a new algorithm); the old ones stay published
    /// for `verification_ttl`.
    async fn regenerate(&mut self, now: i64) -> Result<()> {
        let expire = now + self.verification_ttl as i64;
        for k in &mut self.keys {
            if k.expire_at == 0 {
                k.expire_at = expire;
            }
        }
        let current = new_version(&self.algorithm).await?;
        let next = new_version(&self.algorithm).await?;
        self.current = current.kid.clone();
        self.next = next.kid.clone();
        self.keys.push(current);
        self.keys.push(next);
        self.prune(now);
        Ok(())
    }

    /// The next key signs from now on; the current one stays published for `verification_ttl`.
    async fn rotate(&mut self, verification_ttl: u64, now: i64) -> Result<()> {
        let expire = now + verification_ttl as i64;
        let current = self.current.clone();
        for k in &mut self.keys {
            if k.kid == current {
                k.expire_at = expire;
            }
        }
        let next = new_version(&self.algorithm).await?;
        self.current = std::mem::replace(&mut self.next, next.kid.clone());
        self.keys.push(next);
        self.next_rotation = now + self.rotation_period as i64;
        self.prune(now);
        Ok(())
    }

    fn prune(&mut self, now: i64) {
        self.keys.retain(|k| k.expire_at == 0 || k.expire_at > now);
    }

    fn version(&self, kid: &str) -> Option<&KeyVersion> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    fn allows(&self, client_id: &str) -> bool {
        self.allowed_client_ids
            .iter()
            .any(|c| c == "*" || c == client_id)
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

pub(crate) fn paths() -> Vec<Path<Identity>> {
    const NAME: &str = r"(?P<name>\w(?:[\w.-]*\w)?)";
    let key_fields = |p: Path<Identity>| {
        p.field("name", Field::string("name of the key"))
            .field(
                "rotation_period",
                Field::duration("how often the key rotates"),
            )
            .field(
                "verification_ttl",
                Field::duration("how long a rotated-out key stays published"),
            )
            .field(
                "allowed_client_ids",
                Field::list("role client ids allowed to use the key (\"*\": all)"),
            )
            .field(
                "algorithm",
                Field::string("RS256, RS384, RS512, ES256, ES384, ES512 or EdDSA"),
            )
    };
    let role_fields = |p: Path<Identity>| {
        p.field("name", Field::string("name of the role"))
            .field("key", Field::string("the named key that signs"))
            .field("template", Field::string("JSON claims template"))
            .field("client_id", Field::string("the token's audience"))
            .field("ttl", Field::duration("token lifetime"))
    };
    vec![
        Path::new("oidc/config/?")
            .field("issuer", Field::string("issuer URL (scheme, host, port)"))
            .op(Read, Identity::oidc_config_read)
            .op(Update, Identity::oidc_config_write)
            .help("OIDC provider configuration."),
        Path::new("oidc/key/?")
            .op(List, Identity::oidc_key_list)
            .help("List named keys."),
        Path::new(&format!("oidc/key/{NAME}/rotate/?"))
            .field(
                "verification_ttl",
                Field::duration("how long the rotated-out key stays published"),
            )
            .op(Update, Identity::oidc_key_rotate)
            .help("Rotate a named key now."),
        key_fields(Path::new(&format!("oidc/key/{NAME}")))
            .exists(|b: Arc<Identity>, c: Call| async move {
                Ok(b.store
                    .get_json::<NamedKey>(&key_key(c.fields.str("name")))
                    .await?
                    .is_some())
            })
            .op(Read, Identity::oidc_key_read)
            .op(Create, Identity::oidc_key_write)
            .op(Update, Identity::oidc_key_write)
            .op(Delete, Identity::oidc_key_delete)
            .help("Create, read, update or delete a named key."),
        Path::new("oidc/role/?")
            .op(List, Identity::oidc_role_list)
            .help("List roles."),
        role_fields(Path::new(&format!("oidc/role/{NAME}")))
            .exists(|b: Arc<Identity>, c: Call| async move {
                Ok(b.store
                    .get_json::<Role>(&role_key(c.fields.str("name")))
                    .await?
                    .is_some())
            })
            .op(Read, Identity::oidc_role_read)
            .op(Create, Identity::oidc_role_write)
            .op(Update, Identity::oidc_role_write)
            .op(Delete, Identity::oidc_role_delete)
            .help("Create, read, update or delete a role."),
        Path::new(&format!("oidc/token/{NAME}"))
            .field("name", Field::string("role name"))
            .op(Read, Identity::oidc_token)
            .help("A signed ID token for the calling token's entity."),
        Path::new("oidc/introspect/?")
            .field("token", Field::string("the token to check"))
            .field("client_id", Field::string("the audience to expect"))
            .op(Update, Identity::oidc_introspect)
            .help("Whether an ID token is valid."),
        Path::new("oidc/.well-known/openid-configuration/?")
            .op(Read, Identity::oidc_discovery)
            .help("OpenID discovery document."),
        Path::new("oidc/.well-known/keys/?")
            .op(Read, Identity::oidc_jwks)
            .help("Public signing keys (JWKS)."),
    ]
}

/// Vault's rule: a scheme (http or https), a host, an optional port; nothing else.
fn valid_issuer(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    if scheme != "https" && scheme != "http" {
        return false;
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace)
    {
        return false;
    }
    // An IPv6 literal keeps its colons inside brackets.
    let (host, port) = match rest.strip_prefix('[') {
        Some(r) => match r.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return false,
            },
            None => return false,
        },
        None => match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        },
    };
    !host.is_empty() && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

impl Identity {
    async fn config(&self) -> Result<Config> {
        Ok(self
            .store
            .get_json::<Config>(config_key())
            .await?
            .unwrap_or_default())
    }

    /// `<issuer or api_addr>/v1/identity/oidc`.
    async fn issuer(&self, c: &Call) -> Result<String> {
        let base = match self.config().await?.issuer {
            i if i.is_empty() => self.store.api_addr(),
            i => i,
        };
        let mount = match c.mount.path.trim_matches('/') {
            "" => "identity",
            p => p,
        };
        Ok(format!("{}/v1/{mount}/oidc", base.trim_end_matches('/')))
    }

    async fn ensure_default_key(&self) -> Result<()> {
        if self
            .store
            .get_json::<NamedKey>(&key_key(DEFAULT_KEY))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let mut k = NamedKey {
            name: DEFAULT_KEY.into(),
            algorithm: "RS256".into(),
            rotation_period: DAY,
            verification_ttl: DAY,
            allowed_client_ids: vec!["*".into()],
            next_rotation: unix_now() + DAY as i64,
            current: String::new(),
            next: String::new(),
            keys: vec![],
        };
        k.regenerate(unix_now()).await?;
        let mut tx = self.store.begin().await;
        if tx.get::<NamedKey>(&key_key(DEFAULT_KEY)).await?.is_none() {
            tx.put(key_key(DEFAULT_KEY), &k)?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// A key, rotated first if its time has come.
    async fn fresh_key(&self, name: &str) -> Result<Option<NamedKey>> {
        let Some(k) = self.store.get_json::<NamedKey>(&key_key(name)).await? else {
            return Ok(None);
        };
        let now = unix_now();
        if now < k.next_rotation {
            return Ok(Some(k));
        }
        let mut tx = self.store.begin().await;
        let Some(mut k) = tx.get::<NamedKey>(&key_key(name)).await? else {
            return Ok(None);
        };
        if now >= k.next_rotation {
            let ttl = k.verification_ttl;
            k.rotate(ttl, now).await?;
            tx.put(key_key(name), &k)?;
            tx.commit().await?;
        }
        Ok(Some(k))
    }

    async fn all_keys(&self) -> Result<Vec<NamedKey>> {
        let mut names = self.store.list("oidc/key/").await?;
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if let Some(k) = self.fresh_key(&n).await? {
                out.push(k);
            }
        }
        Ok(out)
    }

    async fn roles(&self) -> Result<Vec<Role>> {
        let mut names = self.store.list("oidc/role/").await?;
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if let Some(r) = self.store.get_json::<Role>(&role_key(&n)).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn oidc_config_read(self: Arc<Self>, _c: Call) -> Result<Response> {
        Ok(Response::data(
            json!({ "issuer": self.config().await?.issuer }),
        ))
    }

    async fn oidc_config_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let issuer = c.fields.str("issuer").trim().to_string();
        if !issuer.is_empty() && !valid_issuer(&issuer) {
            return Err(Error::bad(
                "invalid issuer, which must include only a scheme, host, and optional port (e.g. https://example.com:8200)",
            ));
        }
        let mut tx = self.store.begin().await;
        let mut cfg: Config = tx.get(config_key()).await?.unwrap_or_default();
        if c.fields.has("issuer") {
            cfg.issuer = issuer.clone();
        }
        tx.put(config_key().to_string(), &cfg)?;
        tx.commit().await?;
        if issuer.is_empty() {
            return Ok(Response::default());
        }
        Ok(Response::default().with_warning(
            "If \"issuer\" is set explicitly, all tokens must be validated against that address, including those issued by secondary clusters. Setting issuer to \"\" will restore the default behavior of using the cluster's api_addr as the issuer.",
        ))
    }

    async fn oidc_key_list(self: Arc<Self>, _c: Call) -> Result<Response> {
        self.ensure_default_key().await?;
        let mut names = self.store.list("oidc/key/").await?;
        names.sort();
        Response::list_or_not_found(names)
    }

    async fn oidc_key_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name");
        if name == DEFAULT_KEY {
            self.ensure_default_key().await?;
        }
        let k = self
            .store
            .get_json::<NamedKey>(&key_key(name))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(json!({
            "algorithm": k.algorithm,
            "allowed_client_ids": k.allowed_client_ids,
            "rotation_period": k.rotation_period,
            "verification_ttl": k.verification_ttl,
        })))
    }

    async fn oidc_key_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_string();
        if name == DEFAULT_KEY {
            self.ensure_default_key().await?;
        }
        let algorithm = if given(&c, "algorithm") {
            let a = c.fields.str("algorithm").trim().to_string();
            if !ALGORITHMS.contains(&a.as_str()) {
                return Err(Error::bad(format!("unknown signing algorithm {a:?}")));
            }
            Some(a)
        } else {
            None
        };
        let roles = self.roles().await?;
        let mut tx = self.store.begin().await;
        let now = unix_now();
        let existing: Option<NamedKey> = tx.get(&key_key(&name)).await?;
        let is_new = existing.is_none();
        let mut k = existing.unwrap_or_else(|| NamedKey {
            name: name.clone(),
            algorithm: "RS256".into(),
            rotation_period: DAY,
            verification_ttl: DAY,
            allowed_client_ids: vec![],
            next_rotation: 0,
            current: String::new(),
            next: String::new(),
            keys: vec![],
        });
        let old_period = k.rotation_period;
        if given(&c, "rotation_period") {
            k.rotation_period = c.fields.duration("rotation_period").as_secs();
        }
        if k.rotation_period < 60 {
            return Err(Error::bad("rotation_period must be at least one minute"));
        }
        if given(&c, "verification_ttl") {
            k.verification_ttl = c.fields.duration("verification_ttl").as_secs();
        }
        if k.verification_ttl > 10 * k.rotation_period {
            return Err(Error::bad(
                "verification_ttl cannot be longer than 10x rotation_period",
            ));
        }
        if given(&c, "allowed_client_ids") {
            k.allowed_client_ids = c.fields.strings("allowed_client_ids");
        }
        if !is_new
            && roles
                .iter()
                .any(|r| r.key == name && r.ttl > k.verification_ttl)
        {
            return Err(Error::bad(format!(
                "unable to update key {name:?} because it is currently referenced by one or more roles with a token ttl greater than {} seconds",
                k.verification_ttl
            )));
        }
        let new_alg = algorithm.as_ref().is_some_and(|a| *a != k.algorithm);
        if let Some(a) = algorithm {
            k.algorithm = a;
        }
        if is_new || new_alg {
            k.regenerate(now).await?;
        }
        if is_new || old_period != k.rotation_period {
            k.next_rotation = now + k.rotation_period as i64;
        }
        tx.put(key_key(&name), &k)?;
        tx.commit().await?;
        Ok(Response::default())
    }

    async fn oidc_key_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_string();
        if name == DEFAULT_KEY {
            return Err(Error::bad(format!(
                "deletion of key {DEFAULT_KEY:?} not allowed"
            )));
        }
        let users: Vec<String> = self
            .roles()
            .await?
            .into_iter()
            .filter(|r| r.key == name)
            .map(|r| r.name)
            .collect();
        if !users.is_empty() {
            return Err(Error::bad(format!(
                "unable to delete key {name:?} because it is currently referenced by these roles: {}",
                users.join(", ")
            )));
        }
        let mut tx = self.store.begin().await;
        tx.delete(key_key(&name));
        tx.commit().await?;
        Ok(Response::default())
    }

    async fn oidc_key_rotate(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_string();
        if name == DEFAULT_KEY {
            self.ensure_default_key().await?;
        }
        let mut tx = self.store.begin().await;
        let mut k: NamedKey = tx
            .get(&key_key(&name))
            .await?
            .ok_or_else(|| Error::bad(format!("no named key found at {name:?}")))?;
        let ttl = match c.fields.duration("verification_ttl").as_secs() {
            0 => k.verification_ttl,
            t => t,
        };
        k.rotate(ttl, unix_now()).await?;
        tx.put(key_key(&name), &k)?;
        tx.commit().await?;
        Ok(Response::default())
    }

    async fn oidc_role_list(self: Arc<Self>, _c: Call) -> Result<Response> {
        let mut names = self.store.list("oidc/role/").await?;
        names.sort();
        Response::list_or_not_found(names)
    }

    async fn oidc_role_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let r = self
            .store
            .get_json::<Role>(&role_key(c.fields.str("name")))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(json!({
            "client_id": r.client_id,
            "key": r.key,
            "template": r.template,
            "ttl": r.ttl,
        })))
    }

    async fn oidc_role_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_string();
        let template = if given(&c, "template") {
            let raw = c.fields.str("template").to_string();
            // Vault accepts the template base64-encoded too.
            let t = B64
                .decode(raw.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or(raw);
            validate_template(&t)?;
            Some(t)
        } else {
            None
        };
        if c.fields.str("key") == DEFAULT_KEY {
            self.ensure_default_key().await?;
        }
        let mut tx = self.store.begin().await;
        let existing: Option<Role> = tx.get(&role_key(&name)).await?;
        let mut r = existing.unwrap_or_else(|| Role {
            name: name.clone(),
            key: String::new(),
            template: String::new(),
            client_id: String::new(),
            ttl: DAY,
        });
        if given(&c, "key") {
            r.key = c.fields.str("key").trim().to_string();
        }
        if r.key.is_empty() {
            return Err(Error::bad("the key parameter is required"));
        }
        if let Some(t) = template {
            r.template = t;
        }
        if given(&c, "client_id") {
            r.client_id = c.fields.str("client_id").trim().to_string();
        }
        if r.client_id.is_empty() {
            r.client_id = random_alnum(26);
        }
        if given(&c, "ttl") {
            r.ttl = c.fields.duration("ttl").as_secs();
        }
        let k: NamedKey = tx
            .get(&key_key(&r.key))
            .await?
            .ok_or_else(|| Error::bad(format!("cannot find key {:?}", r.key)))?;
        if r.ttl > k.verification_ttl {
            return Err(Error::bad(
                "a role's token ttl cannot be longer than the verification_ttl of the key it references",
            ));
        }
        tx.put(role_key(&name), &r)?;
        tx.commit().await?;
        Ok(Response::default())
    }

    async fn oidc_role_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        let mut tx = self.store.begin().await;
        tx.delete(role_key(c.fields.str("name")));
        tx.commit().await?;
        Ok(Response::default())
    }

    async fn oidc_token(self: Arc<Self>, c: Call) -> Result<Response> {
        let entity_id = c
            .caller
            .as_ref()
            .map(|cl| cl.entry.entity_id.clone())
            .unwrap_or_default();
        if entity_id.is_empty() {
            return Err(Error::bad("no entity associated with the request's token"));
        }
        let name = c.fields.str("name");
        let role = self
            .store
            .get_json::<Role>(&role_key(name))
            .await?
            .ok_or_else(|| Error::bad(format!("role {name:?} not found")))?;
        let key = self
            .fresh_key(&role.key)
            .await?
            .ok_or_else(|| Error::bad(format!("key {:?} not found", role.key)))?;
        if !key.allows(&role.client_id) {
            return Err(Error::bad(format!(
                "the key {:?} does not list the client ID of the role {:?} as an allowed client ID",
                role.key, role.name
            )));
        }
        let entity = self
            .store
            .entity_resolved(&entity_id)
            .await?
            .ok_or_else(|| Error::bad("entity not found"))?;
        if entity.disabled {
            return Err(Error::PermissionDenied);
        }
        let now = unix_now();
        let mut claims = Map::new();
        claims.insert("aud".into(), json!(role.client_id));
        claims.insert("exp".into(), json!(now + role.ttl as i64));
        claims.insert("iat".into(), json!(now));
        claims.insert("iss".into(), json!(self.issuer(&c).await?));
        claims.insert("namespace".into(), json!(NAMESPACE_ID));
        claims.insert("sub".into(), json!(entity.id));
        if !role.template.trim().is_empty() {
            let (mut groups, inherited) = self.store.reader().groups_of(&entity).await?;
            groups.extend(inherited);
            let ctx = template::Context {
                entity: Some(&entity),
                groups: &groups,
                now,
            };
            let filled = template::populate(&role.template, &ctx, Mode::Json)
                .map_err(|e| Error::internal(format!("error populating template: {e}")))?;
            let extra: Map<String, Value> = serde_json::from_str(&filled)
                .map_err(|e| Error::internal(format!("error parsing template JSON: {e}")))?;
            for (k, v) in extra {
                if !RESERVED_CLAIMS.contains(&k.as_str()) {
                    claims.insert(k, v);
                }
            }
        }
        let version = key
            .version(&key.current)
            .ok_or_else(|| Error::internal("named key has no signing key"))?;
        let signer = self.store.signer(version)?;
        let header = json!({ "alg": version.algorithm, "kid": version.kid });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(serde_json::to_vec(&header)?),
            B64URL.encode(serde_json::to_vec(&Value::Object(claims))?)
        );
        let sig = signer.sign(signing_input.as_bytes())?;
        let token = format!("{signing_input}.{}", B64URL.encode(sig));
        Ok(Response::data(json!({
            "client_id": role.client_id,
            "token": token,
            "ttl": role.ttl,
        })))
    }

    async fn oidc_introspect(self: Arc<Self>, c: Call) -> Result<Response> {
        let answer = match self
            .introspect(&c, c.fields.str("token"), c.fields.str("client_id"))
            .await?
        {
            Ok(()) => json!({ "active": true }),
            Err(e) => json!({ "active": false, "error": e }),
        };
        Ok(Response::raw_json(200, &answer))
    }

    /// `Ok(Err(reason))` for a token that is not active.
    async fn introspect(
        &self,
        c: &Call,
        token: &str,
        client_id: &str,
    ) -> Result<std::result::Result<(), String>> {
        let parts: Vec<&str> = token.trim().split('.').collect();
        let [h, p, s] = parts.as_slice() else {
            return Ok(Err(
                "error parsing token: compact JWS format must have three parts".into(),
            ));
        };
        let decode = |x: &str| -> std::result::Result<Vec<u8>, String> {
            B64URL
                .decode(x)
                .map_err(|e| format!("error parsing token: {e}"))
        };
        let parse = |x: &str| -> std::result::Result<Map<String, Value>, String> {
            serde_json::from_slice(&decode(x)?).map_err(|e| format!("error parsing token: {e}"))
        };
        let (header, claims, sig) = match (parse(h), parse(p), decode(s)) {
            (Ok(h), Ok(p), Ok(s)) => (h, p, s),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(Err(e)),
        };
        let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let mut found = None;
        for k in self.all_keys().await? {
            if let Some(v) = k.version(kid) {
                found = Some(v.clone());
                break;
            }
        }
        let Some(version) = found else {
            return Ok(Err(
                "error validating signature: no key matches the token's key id".into(),
            ));
        };
        if version.algorithm != alg {
            return Ok(Err(
                "error validating signature: unexpected signing algorithm".into(),
            ));
        }
        let signer = self.store.signer(&version)?;
        if !signer.verify(format!("{h}.{p}").as_bytes(), &sig) {
            return Ok(Err("error validating signature: invalid signature".into()));
        }
        let now = unix_now();
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer(c).await?.as_str()) {
            return Ok(Err(
                "error validating claims: validation failed, invalid issuer claim (iss)".into(),
            ));
        }
        if claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|exp| now >= exp)
        {
            return Ok(Err(
                "error validating claims: validation failed, token is expired (exp)".into(),
            ));
        }
        if claims
            .get("iat")
            .and_then(Value::as_i64)
            .is_some_and(|iat| iat > now + 60)
        {
            return Ok(Err(
                "error validating claims: validation failed, token issued in the future (iat)"
                    .into(),
            ));
        }
        if !client_id.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => a == client_id,
                Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client_id)),
                _ => false,
            };
            if !ok {
                return Ok(Err(
                    "error validating claims: validation failed, invalid audience claim (aud)"
                        .into(),
                ));
            }
        }
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        match self.store.entity_resolved(sub).await? {
            None => Ok(Err(
                "error matching token with entity: entity not found".into()
            )),
            Some(e) if e.disabled => Ok(Err("entity is disabled".into())),
            Some(_) => Ok(Ok(())),
        }
    }

    async fn oidc_discovery(self: Arc<Self>, c: Call) -> Result<Response> {
        let issuer = self.issuer(&c).await?;
        Ok(Response::raw_json(
            200,
            &json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/.well-known/keys"),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ALGORITHMS,
            }),
        ))
    }

    async fn oidc_jwks(self: Arc<Self>, _c: Call) -> Result<Response> {
        self.ensure_default_key().await?;
        let mut keys = Vec::new();
        for k in self.all_keys().await? {
            for v in &k.keys {
                keys.push(self.store.signer(v)?.jwk.clone());
            }
        }
        Ok(Response::raw_json(200, &json!({ "keys": keys })))
    }
}

fn given(c: &Call, k: &str) -> bool {
    c.data.get(k).is_some_and(|v| !v.is_null())
}

/// A role template must fill (for an empty entity) into a JSON object with no reserved claim.
fn validate_template(t: &str) -> Result<()> {
    if t.trim().is_empty() {
        return Ok(());
    }
    let empty = super::Entity::default();
    let ctx = template::Context {
        entity: Some(&empty),
        groups: &[],
        now: unix_now(),
    };
    let filled = template::populate(t, &ctx, Mode::Json)
        .map_err(|e| Error::bad(format!("error populating template: {e}")))?;
    let obj: Map<String, Value> = serde_json::from_str(&filled)
        .map_err(|e| Error::bad(format!("error parsing template JSON: {e}")))?;
    for k in obj.keys() {
        if RESERVED_CLAIMS.contains(&k.as_str()) {
            return Err(Error::bad(format!(
                "top level key {k:?} not allowed. Restricted keys: {}",
                RESERVED_CLAIMS.join(", ")
            )));
        }
    }
    Ok(())
}
