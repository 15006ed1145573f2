//! JWS compact tokens and their signature check, done directly with aws-lc-rs (the crypto the
//! rest of Tresor uses) from JWKs or PEM public keys.
//!
//! Why not the `jsonwebtoken` crate: its releases use `ring` (or, from v10, a crypto backend
//! chosen by feature) and its claim checks do not have Vault's semantics (three separate
//! leeways, defaults when a leeway is 0, `nbf` derived from `exp` when absent, JSON-pointer
//! claims), so it would only have saved the few lines below that turn a JWK into an aws-lc-rs
//! public key. Doing it here keeps one crypto provider and makes the accepted algorithms
//! explicit: RS256/384/512, PS256/384/512, ES256/384/512 and EdDSA (Ed25519). `none` and the
//! HMAC algorithms (`HS*`) are refused before any key is looked at: a public key must never be
//! usable as an HMAC secret.

use aws_lc_rs::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// A JWS signing algorithm Tresor accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// Every accepted algorithm (Vault's default `jwt_supported_algs`).
pub const ALL_ALGS: [Alg; 10] = [
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::ES256,
    Alg::ES384,
    Alg::ES512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
    Alg::EdDSA,
];

impl Alg {
    pub fn parse(s: &str) -> Option<Alg> {
        ALL_ALGS.into_iter().find(|a| a.name() == s)
    }
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
        }
    }
    fn rsa_params(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

/// Parses a `jwt_supported_algs` entry, naming the refused ones.
pub fn parse_supported(s: &str) -> Result<Alg, String> {
    Alg::parse(s).ok_or_else(|| format!("unsupported signing algorithm: {s}"))
}

/// An elliptic curve of an EC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn coord_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
    fn from_jwk(crv: &str) -> Option<Curve> {
        match crv {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }
    fn from_oid(oid: &str) -> Option<Curve> {
        match oid {
            "1.2.840.10045.3.1.7" => Some(Curve::P256),
            "1.3.132.0.34" => Some(Curve::P384),
            "1.3.132.0.35" => Some(Curve::P521),
            _ => None,
        }
    }
}

/// Public key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// Big-endian modulus and exponent, without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point (`04 || x || y`).
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

/// A key that can verify token signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The JWK's `kid`, if any.
    pub kid: Option<String>,
    /// The JWK's `alg`, if any: the key is then used for that algorithm only.
    pub alg: Option<String>,
    pub material: Material,
}

fn b64(field: &str, v: &Value) -> Result<Vec<u8>, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("JWK member {field:?} is missing or not a string"))?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| format!("JWK member {field:?} is not base64url"))
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let nz = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.drain(..nz);
    v
}

fn ec_point(curve: Curve, x: &[u8], y: &[u8]) -> Result<Vec<u8>, String> {
    let n = curve.coord_len();
    if x.len() > n || y.len() > n {
        return Err("EC JWK coordinates are too long for the curve".into());
    }
    let mut p = vec![4u8];
    p.extend(std::iter::repeat_n(0, n - x.len()));
    p.extend_from_slice(x);
    p.extend(std::iter::repeat_n(0, n - y.len()));
    p.extend_from_slice(y);
    Ok(p)
}

impl VerifyingKey {
    /// A key from one JWK. `Ok(None)` for keys that cannot verify signatures (`use: enc`,
    /// symmetric `oct` keys, unknown key types or curves), which a key set may contain.
    pub fn from_jwk(jwk: &Value) -> Result<Option<VerifyingKey>, String> {
        let o = jwk.as_object().ok_or("a JWK must be a JSON object")?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        if s("use").is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let material = match s("kty").as_deref() {
            Some("RSA") => Material::Rsa {
                n: strip_zeros(b64("n", o.get("n").unwrap_or(&Value::Null))?),
                e: strip_zeros(b64("e", o.get("e").unwrap_or(&Value::Null))?),
            },
            Some("EC") => {
                let Some(curve) = s("crv").as_deref().and_then(Curve::from_jwk) else {
                    return Ok(None);
                };
                let x = b64("x", o.get("x").unwrap_or(&Value::Null))?;
                let y = b64("y", o.get("y").unwrap_or(&Value::Null))?;
                Material::Ec {
                    curve,
                    point: ec_point(curve, &x, &y)?,
                }
            }
            Some("OKP") if s("crv").as_deref() == Some("Ed25519") => {
                let x = b64("x", o.get("x").unwrap_or(&Value::Null))?;
                if x.len() != 32 {
                    return Err("Ed25519 JWK must have a 32-byte \"x\"".into());
                }
                Material::Ed25519(x)
            }
            _ => return Ok(None),
        };
        Ok(Some(VerifyingKey {
            kid: s("kid"),
            alg: s("alg"),
            material,
        }))
    }

    /// The keys of a JWK set (`{"keys": [...]}`), skipping keys that cannot verify signatures.
    pub fn from_jwks(set: &Value) -> Result<Vec<VerifyingKey>, String> {
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS document has no \"keys\" array")?;
        let mut out = Vec::new();
        for k in keys {
            if let Some(k) = VerifyingKey::from_jwk(k)? {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// A key from a DER SubjectPublicKeyInfo (RSA, P-256/384/521, Ed25519).
    pub fn from_spki_der(der: &[u8]) -> Result<VerifyingKey, String> {
        let (_, spki) =
            SubjectPublicKeyInfo::from_der(der).map_err(|e| format!("invalid public key: {e}"))?;
        Self::from_spki(&spki)
    }

    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<VerifyingKey, String> {
        let oid = spki.algorithm.algorithm.to_id_string();
        let material = match oid.as_str() {
            "1.3.101.112" => Material::Ed25519(spki.subject_public_key.data.to_vec()),
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .and_then(|o| Curve::from_oid(&o.to_id_string()))
                    .ok_or("unsupported elliptic curve")?;
                Material::Ec {
                    curve,
                    point: spki.subject_public_key.data.to_vec(),
                }
            }
            _ => match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => Material::Rsa {
                    n: strip_zeros(rsa.modulus.to_vec()),
                    e: strip_zeros(rsa.exponent.to_vec()),
                },
                _ => return Err(format!("unsupported public key algorithm {oid}")),
            },
        };
        Ok(VerifyingKey {
            kid: None,
            alg: None,
            material,
        })
    }

    /// The keys of a PEM text: `PUBLIC KEY` blocks, and the public keys of `CERTIFICATE`
    /// blocks (as Vault's `ParsePublicKeyPEM` accepts). Errors when there is none.
    pub fn from_pem(text: &str) -> Result<Vec<VerifyingKey>, String> {
        let none = || "data does not contain any valid public keys".to_string();
        let mut out = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
            let block = block.map_err(|_| none())?;
            match block.label.as_str() {
                "PUBLIC KEY" => out.push(Self::from_spki_der(&block.contents)?),
                "CERTIFICATE" => {
                    let (_, cert) = X509Certificate::from_der(&block.contents)
                        .map_err(|e| format!("invalid certificate: {e}"))?;
                    out.push(Self::from_spki(cert.public_key())?);
                }
                _ => {}
            }
        }
        if out.is_empty() {
            return Err(none());
        }
        Ok(out)
    }

    /// Whether this key can check a signature made with `alg`.
    pub fn fits(&self, alg: Alg) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        match (&self.material, alg) {
            (Material::Rsa { .. }, a) => a.rsa_params().is_some(),
            (Material::Ec { curve, .. }, Alg::ES256) => *curve == Curve::P256,
            (Material::Ec { curve, .. }, Alg::ES384) => *curve == Curve::P384,
            (Material::Ec { curve, .. }, Alg::ES512) => *curve == Curve::P521,
            (Material::Ed25519(_), Alg::EdDSA) => true,
            _ => false,
        }
    }

    /// Checks `sig` over `msg`. False for a wrong signature or a key that does not fit `alg`.
    pub fn verify(&self, alg: Alg, msg: &[u8], sig: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match &self.material {
            Material::Rsa { n, e } => alg.rsa_params().is_some_and(|p| {
                RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .verify(p, msg, sig)
                .is_ok()
            }),
            Material::Ec { curve, point } => {
                let a: &'static dyn signature::VerificationAlgorithm = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                    Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
                };
                UnparsedPublicKey::new(a, point).verify(msg, sig).is_ok()
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, sig)
                .is_ok(),
        }
    }
}

/// A JWS in compact serialization, split and decoded, not yet verified.
#[derive(Debug, Clone)]
pub struct Jws {
    pub header: Map<String, Value>,
    /// The `alg` header as sent.
    pub alg: String,
    pub kid: Option<String>,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub signing_input: String,
    pub claims: Map<String, Value>,
    pub signature: Vec<u8>,
}

fn part(name: &str, s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| format!("illegal base64 data in the JWS {name}"))
}

/// Splits and decodes a compact JWS whose payload is a JSON object of claims.
pub fn parse(token: &str) -> Result<Jws, String> {
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("compact JWS format must have three parts".into());
    }
    let header: Map<String, Value> = serde_json::from_slice(&part("header", parts[0])?)
        .map_err(|_| "the JWS header is not a JSON object".to_string())?;
    let claims: Map<String, Value> = serde_json::from_slice(&part("payload", parts[1])?)
        .map_err(|_| "the JWT claims are not a JSON object".to_string())?;
    let signature = part("signature", parts[2])?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if header.contains_key("crit") {
        return Err("unsupported critical JWS header parameters".into());
    }
    Ok(Jws {
        kid: header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string),
        alg,
        header,
        signing_input: format!("{}.{}", parts[0], parts[1]),
        claims,
        signature,
    })
}

impl Jws {
    /// The token's algorithm, if Tresor accepts it and `allowed` (empty: every accepted one)
    /// lists it. `none` and `HS*` are always refused.
    pub fn algorithm(&self, allowed: &[Alg]) -> Result<Alg, String> {
        let alg = Alg::parse(&self.alg)
            .ok_or_else(|| format!("unsupported signing algorithm {:?}", self.alg))?;
        if !allowed.is_empty() && !allowed.contains(&alg) {
            return Err(format!(
                "token signed with unexpected algorithm {:?}",
                self.alg
            ));
        }
        if self.signature.is_empty() {
            return Err("token must be signed".into());
        }
        Ok(alg)
    }

    /// Whether one of `keys` verifies the signature.
    pub fn verified_by(&self, alg: Alg, keys: &[VerifyingKey]) -> bool {
        keys.iter()
            .any(|k| k.verify(alg, self.signing_input.as_bytes(), &self.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn token(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let si = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = sign(si.as_bytes());
        format!("{si}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn es256_and_eddsa_round_trip_and_tampering() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let kp =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .unwrap();
        let pt = kp.public_key().as_ref().to_vec();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(&pt[1..33]), "y": URL_SAFE_NO_PAD.encode(&pt[33..]),
        });
        let key = VerifyingKey::from_jwk(&jwk).unwrap().unwrap();
        let t = token(
            &serde_json::json!({"alg": "ES256", "kid": "k1"}),
            &serde_json::json!({"sub": "a"}),
            |m| kp.sign(&rng, m).unwrap().as_ref().to_vec(),
        );
        let jws = parse(&t).unwrap();
        let alg = jws.algorithm(&[]).unwrap();
        assert!(jws.verified_by(alg, std::slice::from_ref(&key)));
        // ES384 is refused by the key even if the signature bytes were right.
        assert!(!key.fits(Alg::ES384));
        // A changed payload fails.
        let mut bad = jws.clone();
        bad.signing_input.push('x');
        assert!(!bad.verified_by(alg, &[key]));

        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
            .unwrap();
        let edk = VerifyingKey::from_jwk(&serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref()),
        }))
        .unwrap()
        .unwrap();
        let t = token(
            &serde_json::json!({"alg": "EdDSA"}),
            &serde_json::json!({}),
            |m| ed.sign(m).as_ref().to_vec(),
        );
        let jws = parse(&t).unwrap();
        assert!(jws.verified_by(Alg::EdDSA, &[edk]));
    }

    #[test]
    fn refused_algorithms_and_shapes() {
        let t = token(
            &serde_json::json!({"alg": "none"}),
            &serde_json::json!({}),
            |_| vec![],
        );
        assert_eq!(
            parse(&t).unwrap().algorithm(&[]).unwrap_err(),
            "unsupported signing algorithm \"none\""
        );
        let t = token(
            &serde_json::json!({"alg": "HS256"}),
            &serde_json::json!({}),
            |_| vec![1],
        );
        assert!(parse(&t).unwrap().algorithm(&[]).is_err());
        let t = token(
            &serde_json::json!({"alg": "RS256"}),
            &serde_json::json!({}),
            |_| vec![1],
        );
        assert_eq!(
            parse(&t).unwrap().algorithm(&[Alg::ES256]).unwrap_err(),
            "token signed with unexpected algorithm \"RS256\""
        );
        assert_eq!(
            parse("a.b").unwrap_err(),
            "compact JWS format must have three parts"
        );
        assert!(VerifyingKey::from_pem("junk").is_err());
        assert!(
            VerifyingKey::from_jwk(&serde_json::json!({"kty": "oct", "k": "AAAA"}))
                .unwrap()
                .is_none()
        );
    }
}
