//! The PKI engine's ACME server (RFC 8555) end to end through a real in-process core, driven
//! by a small ACME client written here: an ES256 account key on aws-lc-rs, flattened JWS,
//! nonces, `kid` after registration. The `http-01` responder is served by the test on a
//! 127.0.0.1 port that `config/acme`'s `http_01_port` points at, so validation really fetches
//! `http://localhost:<port>/.well-known/acme-challenge/<token>`. Issued chains are checked with
//! `openssl verify`.
//!
//! Covered: the full flow (directory, nonce, account, order, authorization, challenge,
//! finalize, download, revoke by account and by certificate key, key rollover,
//! deactivation), role directories and the default directory policy, `config/acme` and
//! `config/cluster`, and the error paths (badNonce, wrong url, bad signature, unknown
//! account, CSR names mismatch, wrong challenge answer, rejected and unsupported
//! identifiers, orderNotReady, unsupported algorithm, disabled ACME).

mod pki_common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pki_common::{s, Env};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tresor_core::logical::{Operation, Request};
use x509_parser::prelude::*;

/// The mount's public URL as `config/cluster` says; the client maps it back to core paths.
const CLUSTER: &str = "https://tresor.test:8200/v1/pki";
const API: &str = "https://tresor.test:8200/v1/";

fn b64u(d: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(d)
}

/// A raw ACME answer.
struct Resp {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
    fn headers(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
    /// The problem type without its URN prefix.
    fn problem(&self) -> String {
        assert_eq!(
            self.content_type,
            "application/problem+json",
            "not a problem: {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        s(&self.json()["type"])
            .trim_start_matches("urn:ietf:params:acme:error:")
            .to_string()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Calls the core as the HTTP layer would for an absolute URL.
async fn call(env: &Env, op: Operation, url: &str, body: Value, token: Option<&str>) -> Resp {
    let path = url.strip_prefix(API).expect("an API URL");
    let mut req = Request::new(op, path).with_data(body);
    if let Some(t) = token {
        req = req.with_token(t);
    }
    let r = env
        .core
        .handle(req)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let raw = r.raw.expect("ACME answers bypass the envelope");
    Resp {
        status: raw.status,
        content_type: raw.content_type,
        body: raw.body,
        headers: raw.headers,
    }
}

/// A minimal ACME client.
struct Acme<'a> {
    env: &'a Env,
    key: EcdsaKeyPair,
    kid: Option<String>,
    dir: Value,
    nonce: Option<String>,
    /// Role directories need a token until the core has per-segment unauthenticated paths.
    token: Option<String>,
}

fn new_key() -> EcdsaKeyPair {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
}

fn jwk_of(key: &EcdsaKeyPair) -> Value {
    let p = key.public_key().as_ref();
    assert_eq!(p.len(), 65);
    json!({ "crv": "P-256", "kty": "EC", "x": b64u(&p[1..33]), "y": b64u(&p[33..]) })
}

fn sign_jws(key: &EcdsaKeyPair, protected: &Value, payload: Option<&Value>) -> Value {
    let p = b64u(protected.to_string().as_bytes());
    let pl = payload
        .map(|v| b64u(v.to_string().as_bytes()))
        .unwrap_or_default();
    let sig = key
        .sign(&SystemRandom::new(), format!("{p}.{pl}").as_bytes())
        .unwrap();
    json!({ "protected": p, "payload": pl, "signature": b64u(sig.as_ref()) })
}

impl<'a> Acme<'a> {
    async fn new(env: &'a Env, directory: &str, token: Option<&str>) -> Acme<'a> {
        let r = call(env, Operation::Read, directory, json!({}), token).await;
        assert_eq!(r.status, 200, "directory: {}", r.text());
        assert_eq!(r.content_type, "application/json");
        Acme {
            env,
            key: new_key(),
            kid: None,
            dir: r.json(),
            nonce: None,
            token: token.map(str::to_string),
        }
    }

    fn url(&self, name: &str) -> String {
        s(&self.dir[name])
    }

    fn jwk(&self) -> Value {
        jwk_of(&self.key)
    }

    /// RFC 7638 thumbprint of the account key.
    fn thumbprint(&self) -> String {
        let j = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            s(&j["x"]),
            s(&j["y"])
        );
        b64u(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    async fn fresh_nonce(&mut self) -> String {
        if let Some(n) = self.nonce.take() {
            return n;
        }
        let r = call(
            self.env,
            Operation::Read,
            &self.url("newNonce"),
            json!({}),
            self.token.as_deref(),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Cache-Control").as_deref(), Some("no-store"));
        r.header("Replay-Nonce").expect("a nonce")
    }

    /// Sends a JWS with the given protected header.
    async fn send(&mut self, url: &str, jws: Value) -> Resp {
        let r = call(self.env, Operation::Update, url, jws, self.token.as_deref()).await;
        self.nonce = r.header("Replay-Nonce");
        assert!(self.nonce.is_some(), "every POST answer carries a nonce");
        r
    }

    fn header(&self, url: &str, nonce: &str) -> Value {
        let mut h = json!({ "alg": "ES256", "nonce": nonce, "url": url });
        match &self.kid {
            Some(k) => h["kid"] = json!(k),
            None => h["jwk"] = self.jwk(),
        }
        h
    }

    /// A signed POST (`payload` None: POST-as-GET).
    async fn post(&mut self, url: &str, payload: Option<Value>) -> Resp {
        let nonce = self.fresh_nonce().await;
        let h = self.header(url, &nonce);
        let jws = sign_jws(&self.key, &h, payload.as_ref());
        self.send(url, jws).await
    }

    async fn register(&mut self) -> Resp {
        let r = self
            .post(
                &self.url("newAccount"),
                Some(json!({ "termsOfServiceAgreed": true, "contact": ["mailto:a@example.com"] })),
            )
            .await;
        assert!(
            r.status == 201 || r.status == 200,
            "new-account: {}",
            r.text()
        );
        self.kid = Some(r.header("Location").expect("account URL"));
        r
    }

    /// A new order; names that parse as IP addresses are `ip` identifiers.
    async fn new_order(&mut self, names: &[&str]) -> Resp {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => json!({ "type": "ip", "value": n }),
                Err(_) => json!({ "type": "dns", "value": n }),
            })
            .collect();
        self.post(&self.url("newOrder"), Some(json!({ "identifiers": ids })))
            .await
    }

    /// Polls an authorization until it leaves `pending`.
    async fn wait_authz(&mut self, url: &str) -> Value {
        for _ in 0..200 {
            let a = self.post(url, None).await.json();
            if a["status"] != "pending" {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("authorization {url} stayed pending");
    }
}

/// The test's http-01 responder: token → body.
struct Responder {
    port: u16,
    answers: Arc<Mutex<HashMap<String, String>>>,
}

impl Responder {
    async fn start() -> Responder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answers: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let map = answers.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let map = map.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let token = path
                        .strip_prefix("/.well-known/acme-challenge/")
                        .unwrap_or("");
                    let answer = map.lock().unwrap().get(token).cloned();
                    let resp = match answer {
                        Some(body) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string(),
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Responder { port, answers }
    }
    fn serve(&self, token: &str, body: &str) {
        self.answers
            .lock()
            .unwrap()
            .insert(token.to_string(), body.to_string());
    }
}

/// A root CA, the cluster path, and ACME enabled with http-01 pointed at the responder.
async fn setup(env: &Env, port: u16) -> Value {
    let root = env.root_ca("pki", json!({})).await;
    env.file("root.pem", s(&root["certificate"]));
    env.write("pki/config/cluster", json!({ "path": CLUSTER }))
        .await;
    env.write(
        "pki/config/acme",
        json!({ "enabled": true, "http_01_port": port }),
    )
    .await;
    root
}

/// A CSR (DER) for `names` with `cn` (none when empty), on a new P-256 key.
fn csr(cn: &str, names: &[&str]) -> (Vec<u8>, rcgen::KeyPair) {
    csr_for(&rcgen::PKCS_ECDSA_P256_SHA256, cn, names)
}

/// A CSR (DER) on a new key of the given algorithm.
fn csr_for(
    alg: &'static rcgen::SignatureAlgorithm,
    cn: &str,
    names: &[&str],
) -> (Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if !cn.is_empty() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    let req = params.serialize_request(&key).unwrap();
    (req.der().to_vec(), key)
}

/// Validates every authorization of an order through the responder; returns the order.
async fn authorize(acme: &mut Acme<'_>, responder: &Responder, order: &Value) {
    for authz_url in order["authorizations"].as_array().unwrap() {
        let authz_url = s(authz_url);
        let authz = acme.post(&authz_url, None).await;
        assert_eq!(authz.status, 200);
        let authz = authz.json();
        assert_eq!(authz["status"], "pending");
        let ch = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "http-01")
            .expect("an http-01 challenge")
            .clone();
        let token = s(&ch["token"]);
        responder.serve(&token, &format!("{token}.{}", acme.thumbprint()));
        let r = acme.post(&s(&ch["url"]), Some(json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["status"], "processing");
        assert!(r
            .headers("Link")
            .contains(&format!("<{authz_url}>;rel=\"up\"")));
        let done = acme.wait_authz(&authz_url).await;
        assert_eq!(done["status"], "valid", "{done}");
        assert_eq!(done["challenges"][0]["status"], "valid");
        assert!(done["challenges"][0]["validated"].is_string());
    }
}

/// Runs an order for `names` to a certificate; returns (order URL, leaf PEM chain, cert key).
async fn obtain(
    acme: &mut Acme<'_>,
    responder: &Responder,
    names: &[&str],
) -> (String, String, rcgen::KeyPair) {
    let r = acme.new_order(names).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let order_url = r.header("Location").unwrap();
    let order = r.json();
    authorize(acme, responder, &order).await;
    let o = acme.post(&order_url, None).await.json();
    assert_eq!(o["status"], "ready");
    let (der, key) = csr(names[0], names);
    let r = acme
        .post(&s(&o["finalize"]), Some(json!({ "csr": b64u(&der) })))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let o = r.json();
    assert_eq!(o["status"], "valid");
    let r = acme.post(&s(&o["certificate"]), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/pem-certificate-chain");
    (order_url, r.text(), key)
}

fn first_der(pem_chain: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem_chain.as_bytes()).unwrap();
    p.contents
}

#[tokio::test]
async fn acme_full_flow_issues_a_chain_that_verifies() {
    let env = Env::new().await;
    let responder = Responder::start().await;
    setup(&env, responder.port).await;

    let mut acme = Acme::new(&env, &format!("{CLUSTER}/acme/directory"), None).await;
    for (k, path) in [
        ("newNonce", "new-nonce"),
        ("newAccount", "new-account"),
        ("newOrder", "new-order"),
        ("revokeCert", "revoke-cert"),
        ("keyChange", "key-change"),
    ] {
        assert_eq!(acme.dir[k], format!("{CLUSTER}/acme/{path}"));
    }
    assert_eq!(acme.dir["meta"]["externalAccountRequired"], false);

    // Registration: 201 and a Location; the same key again finds the same account (200).
    let r = acme.register().await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Link").unwrap(),
        format!("<{CLUSTER}/acme/directory>;rel=\"index\"")
    );
    let kid = acme.kid.clone().unwrap();
    assert!(kid.starts_with(&format!("{CLUSTER}/acme/account/")));
    assert_eq!(r.json()["status"], "valid");
    assert_eq!(r.json()["contact"], json!(["mailto:a@example.com"]));
    acme.kid = None;
    let again = acme
        .post(
            &acme.url("newAccount"),
            Some(json!({ "onlyReturnExisting": true })),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("Location").unwrap(), kid);
    acme.kid = Some(kid.clone());

    // Order → http-01 → ready → finalize → valid → download.
    let (order_url, chain, cert_key) = obtain(&mut acme, &responder, &["localhost"]).await;
    let pem_count = chain.matches("-----BEGIN CERTIFICATE-----").count();
    assert_eq!(pem_count, 2, "leaf and root: {chain}");
    env.file("chain.pem", &chain);
    let (ok, out) = env.openssl(&["verify", "-CAfile", "root.pem", "chain.pem"]);
    assert!(ok, "openssl verify: {out}");
    let leaf_der = first_der(&chain);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect();
    assert_eq!(sans, vec!["DNSName(\"localhost\")".to_string()]);
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let serial = leaf
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    // The engine stored it like any other issued certificate.
    let stored = env.read(&format!("pki/cert/{serial}")).await;
    assert_eq!(stored["revocation_time"], 0);

    // The order and the account's order list.
    let o = acme.post(&order_url, None).await;
    assert_eq!(o.json()["status"], "valid");
    assert_eq!(o.header("Location").unwrap(), order_url);
    let account = acme.post(&kid, None).await.json();
    let list = acme.post(&s(&account["orders"]), None).await.json();
    assert_eq!(list["orders"], json!([order_url]));
    let list = acme
        .post(&format!("{CLUSTER}/acme/orders"), None)
        .await
        .json();
    assert_eq!(list["orders"], json!([order_url]));

    // Revocation by the account, then again: alreadyRevoked.
    let r = acme
        .post(
            &acme.url("revokeCert"),
            Some(json!({ "certificate": b64u(&leaf_der) })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = env.read(&format!("pki/cert/{serial}")).await;
    assert_ne!(stored["revocation_time"], 0);
    let r = acme
        .post(
            &acme.url("revokeCert"),
            Some(json!({ "certificate": b64u(&leaf_der) })),
        )
        .await;
    assert_eq!(r.problem(), "alreadyRevoked");

    // Two identifiers, one an IP address (RFC 8738): two authorizations, both SANs.
    let (_, chain3, _) = obtain(&mut acme, &responder, &["localhost", "127.0.0.1"]).await;
    env.file("chain3.pem", &chain3);
    let (ok, out) = env.openssl(&["verify", "-CAfile", "root.pem", "chain3.pem"]);
    assert!(ok, "openssl verify: {out}");
    let der3 = first_der(&chain3);
    let (_, leaf3) = X509Certificate::from_der(&der3).unwrap();
    let sans3: Vec<String> = leaf3
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(b) => format!("IP:{b:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sans3, vec!["DNS:localhost", "IP:[127, 0, 0, 1]"]);

    // Revocation signed by the certificate's own key (jwk, no account).
    let (_, chain2, key2) = obtain(&mut acme, &responder, &["localhost"]).await;
    let leaf2 = first_der(&chain2);
    let cert_signer =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key2.serialize_der()).unwrap();
    let url = acme.url("revokeCert");
    // Someone else's key may not revoke it.
    let stranger = new_key();
    let nonce = acme.fresh_nonce().await;
    let h = json!({ "alg": "ES256", "nonce": nonce, "url": url, "jwk": jwk_of(&stranger) });
    let r = acme
        .send(
            &url,
            sign_jws(&stranger, &h, Some(&json!({ "certificate": b64u(&leaf2) }))),
        )
        .await;
    assert_eq!(r.problem(), "unauthorized");
    let nonce = acme.fresh_nonce().await;
    let h = json!({ "alg": "ES256", "nonce": nonce, "url": url, "jwk": jwk_of(&cert_signer) });
    let r = acme
        .send(
            &url,
            sign_jws(
                &cert_signer,
                &h,
                Some(&json!({ "certificate": b64u(&leaf2), "reason": 4 })),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(cert_key);

    // Key rollover: the old key stops working, the new one works.
    let new = new_key();
    let url = acme.url("keyChange");
    let inner = sign_jws(
        &new,
        &json!({ "alg": "ES256", "jwk": jwk_of(&new), "url": url }),
        Some(&json!({ "account": kid, "oldKey": acme.jwk() })),
    );
    let r = acme.post(&url, Some(inner)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = acme.post(&kid, None).await;
    assert_eq!(r.problem(), "malformed", "the old key no longer verifies");
    acme.key = new;
    let r = acme.post(&kid, None).await;
    assert_eq!(r.status, 200);

    // Contact update, then deactivation: the account can do nothing more.
    let r = acme
        .post(&kid, Some(json!({ "contact": ["mailto:b@example.com"] })))
        .await;
    assert_eq!(r.json()["contact"], json!(["mailto:b@example.com"]));
    let r = acme
        .post(&kid, Some(json!({ "status": "deactivated" })))
        .await;
    assert_eq!(r.json()["status"], "deactivated");
    let r = acme.new_order(&["localhost"]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.problem(), "unauthorized");
}

#[tokio::test]
async fn acme_error_paths() {
    let env = Env::new().await;
    let responder = Responder::start().await;
    setup(&env, responder.port).await;
    let mut acme = Acme::new(&env, &format!("{CLUSTER}/acme/directory"), None).await;
    let new_account = acme.url("newAccount");
    let payload = json!({ "termsOfServiceAgreed": true });

    // No account for this key yet.
    let r = acme
        .post(&new_account, Some(json!({ "onlyReturnExisting": true })))
        .await;
    assert_eq!(r.problem(), "accountDoesNotExist");

    // A nonce never issued, and one used twice.
    let h = json!({ "alg": "ES256", "nonce": "bm90LWEtbm9uY2U", "url": new_account, "jwk": acme.jwk() });
    let r = acme
        .send(&new_account, sign_jws(&acme.key, &h, Some(&payload)))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.problem(), "badNonce");
    let nonce = acme.fresh_nonce().await;
    let h = json!({ "alg": "ES256", "nonce": nonce, "url": new_account, "jwk": acme.jwk() });
    let r = acme
        .send(
            &new_account,
            sign_jws(&acme.key, &h, Some(&json!({ "onlyReturnExisting": true }))),
        )
        .await;
    assert_eq!(r.problem(), "accountDoesNotExist", "the nonce was good");
    let r = acme
        .send(&new_account, sign_jws(&acme.key, &h, Some(&payload)))
        .await;
    assert_eq!(r.problem(), "badNonce", "a nonce is single use");

    // The signed url must be the request's.
    let nonce = acme.fresh_nonce().await;
    let h =
        json!({ "alg": "ES256", "nonce": nonce, "url": acme.url("newOrder"), "jwk": acme.jwk() });
    let r = acme
        .send(&new_account, sign_jws(&acme.key, &h, Some(&payload)))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.problem(), "unauthorized");
    assert!(s(&r.json()["detail"]).contains("'url'"));

    // A signature that does not verify.
    let nonce = acme.fresh_nonce().await;
    let h = json!({ "alg": "ES256", "nonce": nonce, "url": new_account, "jwk": acme.jwk() });
    let mut jws = sign_jws(&acme.key, &h, Some(&payload));
    let mut sig = URL_SAFE_NO_PAD.decode(s(&jws["signature"])).unwrap();
    sig[5] ^= 1;
    jws["signature"] = json!(b64u(&sig));
    let r = acme.send(&new_account, jws).await;
    assert_eq!(r.problem(), "malformed");
    assert!(s(&r.json()["detail"]).contains("JWS verification"));

    // An algorithm that is not offered; a body that is not a JWS.
    let nonce = acme.fresh_nonce().await;
    let h = json!({ "alg": "HS256", "nonce": nonce, "url": new_account, "jwk": acme.jwk() });
    let r = acme
        .send(&new_account, sign_jws(&acme.key, &h, Some(&payload)))
        .await;
    assert_eq!(r.problem(), "badSignatureAlgorithm");
    assert!(r.json()["algorithms"]
        .as_array()
        .unwrap()
        .contains(&json!("ES256")));
    let r = acme.send(&new_account, json!({ "payload": "" })).await;
    assert_eq!(r.problem(), "malformed");

    // An account URL that names no account.
    acme.kid = Some(format!(
        "{CLUSTER}/acme/account/00000000-0000-0000-0000-000000000000"
    ));
    let r = acme.new_order(&["localhost"]).await;
    assert_eq!(r.problem(), "accountDoesNotExist");
    acme.kid = None;

    acme.register().await;
    let kid = acme.kid.clone().unwrap();

    // Requests other than new-account must use the kid.
    let nonce = acme.fresh_nonce().await;
    let url = acme.url("newOrder");
    let h = json!({ "alg": "ES256", "nonce": nonce, "url": url, "jwk": acme.jwk() });
    let ids = json!({ "identifiers": [{ "type": "dns", "value": "localhost" }] });
    let r = acme.send(&url, sign_jws(&acme.key, &h, Some(&ids))).await;
    assert_eq!(r.problem(), "malformed");

    // Identifiers: wildcards (no dns-01), unknown types, invalid names.
    let r = acme.new_order(&["*.example.com"]).await;
    assert_eq!(r.problem(), "rejectedIdentifier");
    let r = acme
        .post(
            &url,
            Some(json!({ "identifiers": [{ "type": "email", "value": "a@b.c" }] })),
        )
        .await;
    assert_eq!(r.problem(), "unsupportedIdentifier");
    let r = acme.new_order(&["bad_name!"]).await;
    assert_eq!(r.problem(), "malformed");
    let r = acme
        .post(
            &url,
            Some(json!({ "identifiers": [{ "type": "dns", "value": "localhost" }], "notAfter": "2030-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(r.problem(), "malformed");

    // Finalizing before validation: orderNotReady; the certificate isn't there either.
    let r = acme.new_order(&["localhost"]).await;
    let order_url = r.header("Location").unwrap();
    let order = r.json();
    let (der, _) = csr("localhost", &["localhost"]);
    let r = acme
        .post(&s(&order["finalize"]), Some(json!({ "csr": b64u(&der) })))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.problem(), "orderNotReady");
    let r = acme.post(&format!("{order_url}/cert"), None).await;
    assert_eq!(r.problem(), "orderNotReady");

    // Another account may not read this order.
    let mut other = Acme::new(&env, &format!("{CLUSTER}/acme/directory"), None).await;
    other.register().await;
    let r = other.post(&order_url, None).await;
    assert_eq!(r.problem(), "unauthorized");
    let r = other.post(&kid, None).await;
    assert_eq!(r.problem(), "unauthorized");

    // Validate, then finalize with a CSR whose names differ: badCSR, order still ready.
    authorize(&mut acme, &responder, &order).await;
    for (cn, names) in [
        ("localhost", vec!["localhost", "other.example.com"]),
        ("other.example.com", vec!["localhost"]),
    ] {
        let (der, _) = csr(cn, &names);
        let r = acme
            .post(&s(&order["finalize"]), Some(json!({ "csr": b64u(&der) })))
            .await;
        assert_eq!(r.problem(), "badCSR", "{cn} {names:?}");
    }
    let r = acme
        .post(&s(&order["finalize"]), Some(json!({ "csr": "!!" })))
        .await;
    assert_eq!(r.problem(), "badCSR");
    assert_eq!(acme.post(&order_url, None).await.json()["status"], "ready");
    // A CSR without a common name is fine.
    let (der, _) = csr("", &["localhost"]);
    let r = acme
        .post(&s(&order["finalize"]), Some(json!({ "csr": b64u(&der) })))
        .await;
    assert_eq!(r.json()["status"], "valid", "{}", r.text());
    // Finalizing twice: orderNotReady.
    let r = acme
        .post(&s(&order["finalize"]), Some(json!({ "csr": b64u(&der) })))
        .await;
    assert_eq!(r.problem(), "orderNotReady");

    // A wrong key authorization: challenge, authorization and order become invalid.
    let r = acme.new_order(&["localhost"]).await;
    let order_url = r.header("Location").unwrap();
    let authz_url = s(&r.json()["authorizations"][0]);
    let authz = acme.post(&authz_url, None).await.json();
    let ch = authz["challenges"][0].clone();
    responder.serve(&s(&ch["token"]), "not-the-key-authorization");
    acme.post(&s(&ch["url"]), Some(json!({}))).await;
    let done = acme.wait_authz(&authz_url).await;
    assert_eq!(done["status"], "invalid");
    assert_eq!(done["challenges"][0]["status"], "invalid");
    assert_eq!(
        done["challenges"][0]["error"]["type"],
        "urn:ietf:params:acme:error:incorrectResponse"
    );
    let o = acme.post(&order_url, None).await.json();
    assert_eq!(o["status"], "invalid");
    assert!(o["error"].is_object());
    // Retrying the challenge does nothing.
    let r = acme.post(&s(&ch["url"]), Some(json!({}))).await;
    assert_eq!(r.json()["status"], "invalid");

    // Nothing listening on the port: a connection problem, after the retries.
    env.write("pki/config/acme", json!({ "http_01_port": 1 }))
        .await;
    let r = acme.new_order(&["localhost"]).await;
    let authz_url = s(&r.json()["authorizations"][0]);
    let authz = acme.post(&authz_url, None).await.json();
    acme.post(&s(&authz["challenges"][0]["url"]), Some(json!({})))
        .await;
    let done = acme.wait_authz(&authz_url).await;
    assert_eq!(done["status"], "invalid");
    assert_eq!(
        done["challenges"][0]["error"]["type"],
        "urn:ietf:params:acme:error:connection"
    );

    // Unknown order and authorization ids.
    let r = acme.post(&format!("{CLUSTER}/acme/order/nope"), None).await;
    assert_eq!(r.status, 404);
    let r = acme
        .post(&format!("{CLUSTER}/acme/authorization/nope"), None)
        .await;
    assert_eq!(r.status, 404);

    // ACME off: every path is 404.
    env.write("pki/config/acme", json!({ "enabled": false }))
        .await;
    let r = call(
        &env,
        Operation::Read,
        &format!("{CLUSTER}/acme/directory"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = acme.new_order(&["localhost"]).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn acme_role_directories_and_policies() {
    let env = Env::new().await;
    let responder = Responder::start().await;
    setup(&env, responder.port).await;
    env.write(
        "pki/roles/web",
        json!({
            "allowed_domains": "example.com",
            "allow_subdomains": true,
            "key_type": "ec",
            "organization": "Tresor Test",
            "ttl": "1h",
        }),
    )
    .await;

    // roles/:role/acme (with a token: see the module docs).
    let token = env.root.clone();
    let mut acme = Acme::new(
        &env,
        &format!("{CLUSTER}/roles/web/acme/directory"),
        Some(&token),
    )
    .await;
    assert_eq!(
        acme.dir["newOrder"],
        format!("{CLUSTER}/roles/web/acme/new-order")
    );
    acme.register().await;
    let r = acme.new_order(&["other.org"]).await;
    assert_eq!(r.problem(), "rejectedIdentifier");
    assert!(s(&r.json()["detail"]).contains("role (web)"));
    let r = acme
        .post(
            &acme.url("newOrder"),
            Some(json!({ "identifiers": [{ "type": "ip", "value": "127.0.0.1" }] })),
        )
        .await;
    assert_eq!(r.status, 201, "the role allows IP SANs");
    let (_, chain, _) = obtain(&mut acme, &responder, &["localhost"]).await;
    env.file("role-chain.pem", &chain);
    let (ok, out) = env.openssl(&["verify", "-CAfile", "root.pem", "role-chain.pem"]);
    assert!(ok, "openssl verify: {out}");
    let der = first_der(&chain);
    let (_, leaf) = X509Certificate::from_der(&der).unwrap();
    let org = leaf
        .subject()
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .map(str::to_string);
    assert_eq!(org.as_deref(), Some("Tresor Test"));
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert!(
        (3600..=3600 + 60).contains(&lifetime),
        "the role's TTL: {lifetime}"
    );
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(
        eku.server_auth && !eku.client_auth,
        "ServerAuth only unless allow_role_ext_key_usage"
    );

    // Issuer-scoped directories, alone and with a role.
    for dir in ["issuer/default/acme", "issuer/default/roles/web/acme"] {
        let r = call(
            &env,
            Operation::Read,
            &format!("{CLUSTER}/{dir}/directory"),
            json!({}),
            Some(&token),
        )
        .await;
        assert_eq!(r.status, 200, "{dir}: {}", r.text());
        assert_eq!(r.json()["newOrder"], format!("{CLUSTER}/{dir}/new-order"));
    }
    let mut scoped = Acme::new(
        &env,
        &format!("{CLUSTER}/issuer/default/acme/directory"),
        Some(&token),
    )
    .await;
    scoped.register().await;
    let (_, chain, _) = obtain(&mut scoped, &responder, &["localhost"]).await;
    assert!(chain.contains("BEGIN CERTIFICATE"));
    // An issuer outside allowed_issuers: orders are refused.
    env.write(
        "pki/root/generate/internal",
        json!({ "common_name": "Second Root", "issuer_name": "second", "key_type": "ec" }),
    )
    .await;
    env.write("pki/config/acme", json!({ "allowed_issuers": ["second"] }))
        .await;
    let r = scoped.new_order(&["localhost"]).await;
    assert_eq!(r.problem(), "unauthorized");
    assert!(s(&r.json()["detail"]).contains("allowed_issuers"));
    env.write("pki/config/acme", json!({ "allowed_issuers": ["*"] }))
        .await;

    // A role missing or not allowed.
    let r = call(
        &env,
        Operation::Read,
        &format!("{CLUSTER}/roles/nope/acme/directory"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(r.problem(), "malformed");
    env.write("pki/roles/other", json!({ "allow_any_name": true }))
        .await;
    env.write("pki/config/acme", json!({ "allowed_roles": ["web"] }))
        .await;
    let r = call(
        &env,
        Operation::Read,
        &format!("{CLUSTER}/roles/other/acme/directory"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(r.problem(), "unauthorized");

    // The default directory under role:web.
    env.write(
        "pki/config/acme",
        json!({ "default_directory_policy": "role:web" }),
    )
    .await;
    let mut plain = Acme::new(&env, &format!("{CLUSTER}/acme/directory"), None).await;
    plain.register().await;
    let r = plain.new_order(&["other.org"]).await;
    assert_eq!(r.problem(), "rejectedIdentifier");
    let r = plain.new_order(&["www.example.com"]).await;
    assert_eq!(r.status, 201);
    // The role wants EC keys: an Ed25519 CSR is refused at finalize, an EC one is signed.
    let r = plain.new_order(&["localhost"]).await;
    let order = r.json();
    authorize(&mut plain, &responder, &order).await;
    let (der, _) = csr_for(&rcgen::PKCS_ED25519, "localhost", &["localhost"]);
    let r = plain
        .post(&s(&order["finalize"]), Some(json!({ "csr": b64u(&der) })))
        .await;
    assert_eq!(r.problem(), "badCSR");
    assert!(s(&r.json()["detail"]).contains("requires keys of type ec"));
    let (der, _) = csr("localhost", &["localhost"]);
    let r = plain
        .post(&s(&order["finalize"]), Some(json!({ "csr": b64u(&der) })))
        .await;
    assert_eq!(r.json()["status"], "valid", "{}", r.text());

    // forbid: only role directories.
    env.write(
        "pki/config/acme",
        json!({ "default_directory_policy": "forbid" }),
    )
    .await;
    let r = call(
        &env,
        Operation::Read,
        &format!("{CLUSTER}/acme/directory"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(r.problem(), "unauthorized");
}

#[tokio::test]
async fn acme_config_paths() {
    let env = Env::new().await;
    env.root_ca("pki", json!({})).await;
    let cfg = env.read("pki/config/acme").await;
    assert_eq!(
        cfg,
        json!({
            "allow_role_ext_key_usage": false,
            "allowed_issuers": ["*"],
            "allowed_roles": ["*"],
            "default_directory_policy": "sign-verbatim",
            "dns_resolver": "",
            "eab_policy": "not-required",
            "enabled": false,
            "http_01_port": 80,
        })
    );
    assert_eq!(
        env.read("pki/config/cluster").await,
        json!({ "aia_path": "", "path": "" })
    );
    // Enabling needs the cluster path.
    let e = env
        .call(
            Operation::Update,
            "pki/config/acme",
            json!({ "enabled": true }),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cluster 'path'"), "{e}");
    let e = env
        .call(
            Operation::Update,
            "pki/config/cluster",
            json!({ "path": "not a url" }),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400);
    let c = env
        .write(
            "pki/config/cluster",
            json!({ "path": format!("{CLUSTER}/"), "aia_path": "http://aia.test/v1/pki" }),
        )
        .await;
    assert_eq!(c["path"], CLUSTER, "a trailing slash is dropped");
    for (body, msg) in [
        (
            json!({ "default_directory_policy": "bogus" }),
            "not a valid Default Directory Policy",
        ),
        (
            json!({ "default_directory_policy": "role:nope" }),
            "role does not exist",
        ),
        (json!({ "allowed_roles": ["nope"] }), "role does not exist"),
        (json!({ "eab_policy": "always-required" }), "not supported"),
        (json!({ "http_01_port": 70000 }), "http_01_port"),
    ] {
        let e = env
            .call(Operation::Update, "pki/config/acme", body.clone())
            .await
            .unwrap_err();
        assert!(e.to_string().contains(msg), "{body}: {e}");
    }
    let cfg = env
        .write(
            "pki/config/acme",
            json!({ "enabled": true, "http_01_port": 5002 }),
        )
        .await;
    assert_eq!(cfg["enabled"], true);
    assert_eq!(cfg["http_01_port"], 5002);
    // Writes merge: other fields keep their values.
    let cfg = env
        .write("pki/config/acme", json!({ "dns_resolver": "127.0.0.1:53" }))
        .await;
    assert_eq!(cfg["enabled"], true);
    assert_eq!(cfg["http_01_port"], 5002);

    // ACME paths need no token.
    let r = env
        .core
        .handle(Request::new(Operation::Read, "pki/acme/new-nonce"))
        .await
        .unwrap();
    let raw = r.raw.unwrap();
    assert_eq!(raw.status, 200);
    assert!(raw.headers.iter().any(|(n, _)| n == "Replay-Nonce"));
}
