//! JSON Web Signatures as ACME uses them (RFC 8555 §6.2): the flattened JSON serialization
//! (RFC 7515 §7.2.2) with a protected header only, `alg` one of ES256, ES384, RS256 or EdDSA,
//! and either the account key itself (`jwk`, RFC 7517) or the account URL (`kid`).
//!
//! Signatures are verified with aws-lc-rs; the JSON and base64url handling is done here.
//! [`Jwk::thumbprint`] is RFC 7638's SHA-256 thumbprint, used in key authorizations and to find
//! the account that owns a key.

use super::Problem;
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use serde_json::{json, Map, Value};

/// The signature algorithms the server accepts, as advertised in `badSignatureAlgorithm`.
pub const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "EdDSA"];

/// Base64url without padding (RFC 7515 §2).
pub fn b64u(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url without padding, as JWS requires; `None` for anything else.
pub fn unb64u(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .ok()
}

/// An account public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    /// `kty: EC` on P-256 or P-384: the curve name and the base64url coordinates as sent.
    Ec { crv: String, x: String, y: String },
    /// `kty: RSA`: base64url modulus and exponent as sent.
    Rsa { n: String, e: String },
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519 { x: String },
}

fn member<'a>(o: &'a Map<String, Value>, name: &str) -> Result<&'a str, Problem> {
    o.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Problem::bad_public_key(format!("the JWK has no '{name}' member")))
}

fn decoded(o: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Problem> {
    unb64u(member(o, name)?)
        .ok_or_else(|| Problem::bad_public_key(format!("the JWK's '{name}' is not base64url")))
}

impl Jwk {
    /// Parses and sanity-checks a public JWK (private members are refused).
    pub fn from_json(v: &Value) -> Result<Jwk, Problem> {
        let o = v
            .as_object()
            .ok_or_else(|| Problem::malformed("'jwk' in the protected header is not an object"))?;
        if o.contains_key("d") {
            return Err(Problem::bad_public_key("the JWK contains a private key"));
        }
        match member(o, "kty")? {
            "EC" => {
                let crv = member(o, "crv")?;
                let len = match crv {
                    "P-256" => 32,
                    "P-384" => 48,
                    other => {
                        return Err(Problem::bad_public_key(format!(
                            "unsupported elliptic curve {other}"
                        )))
                    }
                };
                if decoded(o, "x")?.len() != len || decoded(o, "y")?.len() != len {
                    return Err(Problem::bad_public_key(format!(
                        "the {crv} coordinates must be {len} bytes"
                    )));
                }
                Ok(Jwk::Ec {
                    crv: crv.to_string(),
                    x: member(o, "x")?.to_string(),
                    y: member(o, "y")?.to_string(),
                })
            }
            "RSA" => {
                let n = decoded(o, "n")?;
                decoded(o, "e")?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(Problem::bad_public_key(format!(
                        "RSA keys must be 2048 to 8192 bits, not {bits}"
                    )));
                }
                Ok(Jwk::Rsa {
                    n: member(o, "n")?.to_string(),
                    e: member(o, "e")?.to_string(),
                })
            }
            "OKP" => match member(o, "crv")? {
                "Ed25519" if decoded(o, "x")?.len() == 32 => Ok(Jwk::Ed25519 {
                    x: member(o, "x")?.to_string(),
                }),
                "Ed25519" => Err(Problem::bad_public_key("an Ed25519 key must be 32 bytes")),
                other => Err(Problem::bad_public_key(format!(
                    "unsupported OKP curve {other}"
                ))),
            },
            other => Err(Problem::bad_public_key(format!(
                "unsupported key type {other}"
            ))),
        }
    }

    /// The key's required members only, in RFC 7638's lexicographic order: what is stored and
    /// what the thumbprint hashes.
    pub fn to_json(&self) -> Value {
        match self {
            Jwk::Ec { crv, x, y } => json!({ "crv": crv, "kty": "EC", "x": x, "y": y }),
            Jwk::Rsa { n, e } => json!({ "e": e, "kty": "RSA", "n": n }),
            Jwk::Ed25519 { x } => json!({ "crv": "Ed25519", "kty": "OKP", "x": x }),
        }
    }

    /// RFC 7638: base64url(SHA-256(the required members, lexicographic, no whitespace)).
    pub fn thumbprint(&self) -> String {
        // serde_json keeps insertion order (preserve_order), and `to_json` inserts in order.
        let canonical = serde_json::to_vec(&self.to_json()).unwrap_or_default();
        b64u(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical).as_ref())
    }

    /// The subjectPublicKey bits an X.509 certificate for this key carries (uncompressed EC
    /// point, DER RSAPublicKey, raw Ed25519 key), to match a certificate to its key.
    pub fn public_key_bits(&self) -> Vec<u8> {
        let d = |s: &str| unb64u(s).unwrap_or_default();
        match self {
            Jwk::Ec { x, y, .. } => [vec![4u8], d(x), d(y)].concat(),
            Jwk::Ed25519 { x } => d(x),
            Jwk::Rsa { n, e } => {
                let body = [der_uint(&d(n)), der_uint(&d(e))].concat();
                [vec![0x30], der_len(body.len()), body].concat()
            }
        }
    }

    /// Verifies `sig` over `msg` for the JWS algorithm `alg`, which must suit the key.
    pub fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> Result<(), Problem> {
        let d = |s: &str| unb64u(s).unwrap_or_default();
        let ok = match (alg, self) {
            ("ES256", Jwk::Ec { crv, x, y }) if crv == "P-256" => {
                let point = [vec![4u8], d(x), d(y)].concat();
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            ("ES384", Jwk::Ec { crv, x, y }) if crv == "P-384" => {
                let point = [vec![4u8], d(x), d(y)].concat();
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            ("RS256", Jwk::Rsa { n, e }) => {
                let (n, e) = (d(n), d(e));
                let strip = |v: &[u8]| v.iter().skip_while(|b| **b == 0).copied().collect();
                let (n, e): (Vec<u8>, Vec<u8>) = (strip(&n), strip(&e));
                RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                    .is_ok()
            }
            ("EdDSA", Jwk::Ed25519 { x }) => UnparsedPublicKey::new(&signature::ED25519, d(x))
                .verify(msg, sig)
                .is_ok(),
            (a, _) if ALGORITHMS.contains(&a) => {
                return Err(Problem::bad_signature_algorithm(format!(
                    "algorithm {a} does not match the account key"
                )))
            }
            (a, _) => {
                return Err(Problem::bad_signature_algorithm(format!(
                    "unsupported signature algorithm {a}"
                )))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Problem::malformed(
                "JWS verification error: the signature is invalid",
            ))
        }
    }
}

/// A DER length.
fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    [vec![0x80 | bytes.len() as u8], bytes].concat()
}

/// A DER INTEGER holding an unsigned big-endian value.
fn der_uint(v: &[u8]) -> Vec<u8> {
    let mut body: Vec<u8> = v.iter().skip_while(|b| **b == 0).copied().collect();
    if body.is_empty() || body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    [vec![0x02], der_len(body.len()), body].concat()
}

/// Who signed a request: a new key, or an existing account by URL.
#[derive(Debug, Clone)]
pub enum Signer {
    Jwk(Jwk),
    Kid(String),
}

/// A parsed (not yet verified) JWS.
#[derive(Debug, Clone)]
pub struct Jws {
    pub protected_b64: String,
    pub payload_b64: String,
    pub signature: Vec<u8>,
    pub alg: String,
    pub nonce: Option<String>,
    pub url: String,
    pub signer: Signer,
}

impl Jws {
    /// Parses a flattened JWS from a request body (or a key-change's inner JWS).
    pub fn parse(o: &Map<String, Value>) -> Result<Jws, Problem> {
        let field = |name: &str| -> Result<String, Problem> {
            match o.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(Problem::malformed(format!(
                    "'{name}' must be a base64url string"
                ))),
                None => Err(Problem::malformed(format!(
                    "missing required field '{name}'"
                ))),
            }
        };
        if o.contains_key("header") || o.contains_key("signatures") {
            return Err(Problem::malformed(
                "only the flattened JWS serialization with a protected header is accepted",
            ));
        }
        let protected_b64 = field("protected")?;
        let payload_b64 = field("payload")?;
        let signature = unb64u(&field("signature")?)
            .ok_or_else(|| Problem::malformed("'signature' is not base64url"))?;
        let header: Map<String, Value> = unb64u(&protected_b64)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Problem::malformed("'protected' is not a base64url JSON object"))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::malformed("the protected header has no 'alg'"))?
            .to_string();
        if !ALGORITHMS.contains(&alg.as_str()) {
            return Err(Problem::bad_signature_algorithm(format!(
                "unsupported signature algorithm {alg}"
            )));
        }
        if header.get("b64").is_some() || header.get("crit").is_some() {
            return Err(Problem::malformed(
                "the 'b64' and 'crit' header parameters are not supported",
            ));
        }
        let url = header
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::malformed("the protected header has no 'url'"))?
            .to_string();
        let nonce = match header.get("nonce") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Problem::malformed("'nonce' must be a string")),
        };
        let signer = match (header.get("jwk"), header.get("kid")) {
            (Some(j), None) => Signer::Jwk(Jwk::from_json(j)?),
            (None, Some(Value::String(k))) => Signer::Kid(k.clone()),
            (None, Some(_)) => return Err(Problem::malformed("'kid' must be a string")),
            (Some(_), Some(_)) => {
                return Err(Problem::malformed(
                    "the protected header must not have both 'jwk' and 'kid'",
                ))
            }
            (None, None) => {
                return Err(Problem::malformed(
                    "the protected header has neither 'jwk' nor 'kid'",
                ))
            }
        };
        Ok(Jws {
            protected_b64,
            payload_b64,
            signature,
            alg,
            nonce,
            url,
            signer,
        })
    }

    /// What was signed: `protected || '.' || payload` (both base64url).
    pub fn signing_input(&self) -> Vec<u8> {
        format!("{}.{}", self.protected_b64, self.payload_b64).into_bytes()
    }

    /// Verifies the signature with `key`.
    pub fn verify(&self, key: &Jwk) -> Result<(), Problem> {
        key.verify(&self.alg, &self.signing_input(), &self.signature)
    }

    /// The payload: `None` for POST-as-GET (empty payload), else a JSON object.
    pub fn payload(&self) -> Result<Option<Map<String, Value>>, Problem> {
        if self.payload_b64.is_empty() {
            return Ok(None);
        }
        let bytes = unb64u(&self.payload_b64)
            .ok_or_else(|| Problem::malformed("'payload' is not base64url"))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            _ => Err(Problem::malformed("the payload is not a JSON object")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = Jwk::from_json(&json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn der_helpers() {
        assert_eq!(der_uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0x00, 0x01]), vec![0x02, 0x01, 0x01]);
        assert_eq!(der_len(300), vec![0x82, 0x01, 0x2c]);
    }
}
