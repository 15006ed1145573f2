//! The OIDC browser flow of the `jwt`/`oidc` method (`oidc/auth_url`, `oidc/callback`,
//! `oidc/poll`) end to end through `Core::handle`, unauthenticated as a browser and a CLI call
//! them.
//!
//! The identity provider is a test double: an external OIDC provider (Okta, Keycloak, Google,
//! ...) cannot run here, so the test serves a small one itself over HTTPS on 127.0.0.1 (the
//! `jwt_harness` stub: hyper + rustls with an rcgen certificate): a discovery document, a
//! JWKS, a token endpoint answering whatever the test set (an ID token it signed with a test
//! key, or an error), a userinfo endpoint and a device authorization endpoint. The browser's
//! part (logging in at the provider, which then redirects with a code) is played by the test:
//! it reads `state` and `nonce` from the authorization URL and calls the callback itself.
//!
//! Covered: the happy path (PKCE, client authentication, claims to metadata, userinfo merge,
//! `oauth2_metadata`, the entity alias), unknown and reused states (expiry is in
//! `oidc_expiry.rs`, which changes a process-wide timeout), `client_nonce`, a nonce mismatch,
//! a redirect URI that is not allowed, token endpoint errors, ID tokens with a wrong audience,
//! a bad signature, an expired token, a wrong issuer, bound claims, a provider error, the
//! `form_post` POST callback, and the `direct` (poll) and `device` callback modes.

#[path = "jwt_harness.rs"]
mod harness;

use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use harness::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tresor_core::error::Error;
use tresor_core::logical::Response;

const M: &str = "auth/oidc";
const CLIENT_ID: &str = "tresor-client";
const CLIENT_SECRET: &str = "s3cret/+&=";
const REDIRECT: &str = "https://tresor.example:8200/v1/auth/oidc/oidc/callback";
const ACCESS_TOKEN: &str = "access-token-123";

/// What the provider double answers.
struct Answers {
    /// The token endpoint's status and body.
    token: (u16, String),
    /// The userinfo endpoint's body.
    userinfo: Value,
    /// The device authorization endpoint's body.
    device: Value,
}

/// The OIDC provider double and its signing key.
struct Idp {
    stub: Stub,
    signer: Signer,
    answers: Arc<parking_lot::Mutex<Answers>>,
}

impl Idp {
    async fn start() -> Idp {
        let signer = Signer::es256("idp-key-1");
        let jwks_doc = jwks(&[&signer]);
        let answers = Arc::new(parking_lot::Mutex::new(Answers {
            token: (500, "{}".into()),
            userinfo: json!({}),
            device: json!({}),
        }));
        let base = Arc::new(parking_lot::Mutex::new(String::new()));
        let (a2, b2) = (answers.clone(), base.clone());
        let stub = https_stub(Arc::new(move |r: &StubReq| {
            let b = b2.lock().clone();
            match r.path.as_str() {
                "/.well-known/openid-configuration" => (
                    200,
                    json!({
                        "issuer": b,
                        "authorization_endpoint": format!("{b}/authorize"),
                        "token_endpoint": format!("{b}/token"),
                        "userinfo_endpoint": format!("{b}/userinfo"),
                        "device_authorization_endpoint": format!("{b}/device"),
                        "jwks_uri": format!("{b}/jwks"),
                    })
                    .to_string(),
                ),
                "/jwks" => (200, jwks_doc.to_string()),
                "/token" => a2.lock().token.clone(),
                "/userinfo" => (200, a2.lock().userinfo.to_string()),
                "/device" => (200, a2.lock().device.to_string()),
                _ => (404, "{}".into()),
            }
        }))
        .await;
        *base.lock() = stub.base();
        Idp {
            stub,
            signer,
            answers,
        }
    }
    fn issuer(&self) -> String {
        self.stub.base()
    }
    /// The claims of a valid ID token for `nonce`.
    fn claims(&self, nonce: &str) -> Value {
        json!({
            "iss": self.issuer(), "aud": CLIENT_ID, "sub": "user-1", "nonce": nonce,
            "iat": now(), "exp": now() + 300, "email": "u1@example.com", "groups": ["eng", "ops"],
            "at_hash": at_hash(ACCESS_TOKEN),
        })
    }
    /// The token endpoint answers these tokens.
    fn answer_tokens(&self, id_token: &str) {
        self.answers.lock().token = (
            200,
            json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 300,
                   "refresh_token": "refresh-1", "id_token": id_token})
            .to_string(),
        );
    }
    /// The token endpoint answers a token for `claims`, signed with the provider's key.
    fn answer_claims(&self, claims: &Value) {
        self.answer_tokens(&self.signer.sign(claims));
    }
    /// The requests the token endpoint received, as form fields (plus their Authorization).
    fn token_requests(&self) -> Vec<(HashMap<String, String>, Option<String>)> {
        self.stub
            .requests
            .lock()
            .iter()
            .filter(|r| r.path == "/token")
            .map(|r| {
                (
                    url::form_urlencoded::parse(&r.body)
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect(),
                    r.authorization.clone(),
                )
            })
            .collect()
    }
}

fn at_hash(access_token: &str) -> String {
    let h = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&h.as_ref()[..16])
}

/// A core with the `oidc/` mount configured for the provider double, and role `r1`
/// (plus `role_extra`).
async fn setup(cfg_extra: Value, role_extra: Value) -> (Env, Idp) {
    let e = env().await;
    let idp = Idp::start().await;
    let mut cfg = json!({
        "oidc_discovery_url": idp.issuer(), "oidc_discovery_ca_pem": idp.stub.ca_pem,
        "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET,
    });
    for (k, v) in cfg_extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    e.root(Update, &format!("{M}/config"), cfg).await.unwrap();
    let mut role = json!({
        "allowed_redirect_uris": [REDIRECT, "http://localhost:8250/oidc/callback"],
        "user_claim": "sub", "groups_claim": "groups", "oidc_scopes": ["profile"],
        "claim_mappings": {"email": "email", "department": "dept"},
        "token_policies": ["p1"], "token_ttl": "1h",
    });
    for (k, v) in role_extra.as_object().unwrap() {
        role[k] = v.clone();
    }
    e.root(Update, &format!("{M}/role/r1"), role).await.unwrap();
    (e, idp)
}

/// An authorization URL for role `r1`, and its query parameters.
async fn start(e: &Env, extra: Value) -> (String, HashMap<String, String>) {
    let mut body = json!({"role": "r1", "redirect_uri": REDIRECT});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = e
        .anon(Update, &format!("{M}/oidc/auth_url"), body)
        .await
        .unwrap();
    let d = data(&r);
    let url = d["auth_url"].as_str().unwrap().to_string();
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (url, params)
}

async fn callback(e: &Env, fields: Value) -> Result<Response, Error> {
    e.anon(Read, &format!("{M}/oidc/callback"), fields).await
}

fn html_of(r: &Response) -> (u16, String) {
    let raw = r.raw.as_ref().expect("an HTML answer");
    assert!(
        raw.content_type.starts_with("text/html"),
        "{}",
        raw.content_type
    );
    (raw.status, String::from_utf8(raw.body.clone()).unwrap())
}

const EXPIRED_STATE: &str = "Vault login failed. Expired or missing OAuth state.";

#[tokio::test]
async fn happy_path_code_flow_with_pkce() {
    let (e, idp) = setup(json!({}), json!({"oauth2_metadata": ["access_token"]})).await;
    idp.answers.lock().userinfo = json!({"sub": "user-1", "department": "R&D"});
    let (url, q) = start(&e, json!({})).await;
    // The provider's authorization endpoint, parameters sorted by name (Go's encoding).
    assert!(
        url.starts_with(&format!(
            "{}/authorize?client_id={CLIENT_ID}&code_challenge=",
            idp.issuer()
        )),
        "{url}"
    );
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "openid profile");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"].len(), 40);
    assert_eq!(q["nonce"].len(), 40);
    assert_ne!(q["state"], q["nonce"]);
    assert!(!q.contains_key("response_mode"));

    idp.answer_claims(&idp.claims(&q["nonce"]));
    let r = callback(&e, json!({"state": q["state"], "code": "the-code"}))
        .await
        .unwrap();
    let auth = r.auth.clone().expect("a token");
    assert!(!auth.client_token.is_empty());
    assert!(
        auth.policies.contains(&"p1".to_string()),
        "{:?}",
        auth.policies
    );
    assert_eq!(auth.lease_duration, 3600);
    let md = meta(&r);
    assert_eq!(md["role"], "r1");
    assert_eq!(md["email"], "u1@example.com");
    // From the userinfo endpoint, merged into the claims.
    assert_eq!(md["dept"], "R&D");
    assert_eq!(md["oauth2_access_token"], ACCESS_TOKEN);
    let alias = e.alias_of(&r, "oidc").await;
    assert_eq!(alias["name"], "user-1");
    assert_eq!(alias["metadata"]["role"], "r1");
    assert!(alias["metadata"].get("oauth2_access_token").is_none());
    // The token works.
    let look = e.lookup(&auth.client_token).await;
    assert_eq!(look["meta"]["role"], "r1");

    // The code exchange: HTTP Basic client authentication, the code, the redirect URI and the
    // PKCE verifier matching the challenge.
    let reqs = idp.token_requests();
    assert_eq!(reqs.len(), 1);
    let (f, authz) = &reqs[0];
    assert_eq!(f["grant_type"], "authorization_code");
    assert_eq!(f["code"], "the-code");
    assert_eq!(f["redirect_uri"], REDIRECT);
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(
        &digest::SHA256,
        f["code_verifier"].as_bytes(),
    ));
    assert_eq!(challenge, q["code_challenge"]);
    assert!(!f.contains_key("client_secret"));
    let basic = authz.as_deref().unwrap().strip_prefix("Basic ").unwrap();
    let basic = String::from_utf8(STANDARD.decode(basic).unwrap()).unwrap();
    assert_eq!(basic, format!("{CLIENT_ID}:s3cret%2F%2B%26%3D"));
}

#[tokio::test]
async fn states_are_single_use_and_must_exist() {
    let (e, idp) = setup(json!({}), json!({})).await;
    assert_eq!(
        err(callback(&e, json!({"state": "nope", "code": "c"})).await),
        (400, EXPIRED_STATE.into())
    );
    assert_eq!(
        err(callback(&e, json!({"code": "c"})).await),
        (400, EXPIRED_STATE.into())
    );
    let (_, q) = start(&e, json!({})).await;
    idp.answer_claims(&idp.claims(&q["nonce"]));
    callback(&e, json!({"state": q["state"], "code": "c"}))
        .await
        .unwrap();
    assert_eq!(
        err(callback(&e, json!({"state": q["state"], "code": "c"})).await),
        (400, EXPIRED_STATE.into())
    );
    // A failed callback consumes the state too.
    let (_, q) = start(&e, json!({})).await;
    idp.answer_claims(&idp.claims("another nonce"));
    let (s, _) = err(callback(&e, json!({"state": q["state"], "code": "c"})).await);
    assert_eq!(s, 400);
    assert_eq!(
        err(callback(&e, json!({"state": q["state"], "code": "c"})).await),
        (400, EXPIRED_STATE.into())
    );
}

#[tokio::test]
async fn client_nonce_must_match() {
    let (e, idp) = setup(json!({}), json!({})).await;
    let (_, q) = start(&e, json!({"client_nonce": "cn-1"})).await;
    idp.answer_claims(&idp.claims(&q["nonce"]));
    assert_eq!(
        err(callback(
            &e,
            json!({"state": q["state"], "code": "c", "client_nonce": "other"})
        )
        .await),
        (400, "invalid client_nonce".into())
    );
    let (_, q) = start(&e, json!({"client_nonce": "cn-1"})).await;
    idp.answer_claims(&idp.claims(&q["nonce"]));
    callback(
        &e,
        json!({"state": q["state"], "code": "c", "client_nonce": "cn-1"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn nonce_mismatch_is_refused() {
    let (e, idp) = setup(json!({}), json!({})).await;
    let (_, q) = start(&e, json!({})).await;
    idp.answer_claims(&idp.claims("not-the-nonce"));
    let (s, m) = err(callback(&e, json!({"state": q["state"], "code": "c"})).await);
    assert_eq!(s, 400);
    assert_eq!(
        m,
        "Vault login failed. Error exchanging oidc code: \"Provider.Exchange: id_token failed verification: invalid id_token nonce\"."
    );
    // No nonce at all.
    let (_, q) = start(&e, json!({})).await;
    let mut c = idp.claims(&q["nonce"]);
    c.as_object_mut().unwrap().remove("nonce");
    idp.answer_claims(&c);
    let (_, m) = err(callback(&e, json!({"state": q["state"], "code": "c"})).await);
    assert!(m.contains("invalid id_token nonce"), "{m}");
}

#[tokio::test]
async fn redirect_uri_must_be_allowed() {
    let (e, _idp) = setup(json!({}), json!({})).await;
    // As Vault: an empty auth_url, no reason (the endpoint is unauthenticated).
    for uri in [
        "https://evil.example/v1/auth/oidc/oidc/callback",
        "https://tresor.example:8200/v1/auth/oidc/oidc/callback/",
        "https://tresor.example:9999/v1/auth/oidc/oidc/callback",
    ] {
        let r = e
            .anon(
                Update,
                &format!("{M}/oidc/auth_url"),
                json!({"role": "r1", "redirect_uri": uri}),
            )
            .await
            .unwrap();
        assert_eq!(data(&r), json!({"auth_url": ""}), "{uri}");
    }
    // Loopback redirect URIs match on any port (RFC 8252).
    let (url, q) = start(
        &e,
        json!({"redirect_uri": "http://localhost:51234/oidc/callback"}),
    )
    .await;
    assert!(!url.is_empty());
    assert_eq!(q["redirect_uri"], "http://localhost:51234/oidc/callback");
    // Other refusals.
    let bad = |body: Value| {
        let e = &e;
        async move { err(e.anon(Update, &format!("{M}/oidc/auth_url"), body).await) }
    };
    assert_eq!(
        bad(json!({"redirect_uri": REDIRECT})).await,
        (400, "missing role".into())
    );
    assert_eq!(
        bad(json!({"role": "r1"})).await,
        (400, "missing redirect_uri".into())
    );
    assert_eq!(
        bad(json!({"role": "nope", "redirect_uri": REDIRECT})).await,
        (400, "role \"nope\" could not be found".into())
    );
}

#[tokio::test]
async fn auth_url_needs_an_oidc_configuration() {
    let e = env().await;
    assert_eq!(
        err(e
            .anon(
                Update,
                "auth/jwt/oidc/auth_url",
                json!({"role": "r", "redirect_uri": REDIRECT})
            )
            .await),
        (400, "could not load configuration".into())
    );
    let s = Signer::es256("k");
    e.root(
        Update,
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [s.public_pem()]}),
    )
    .await
    .unwrap();
    assert_eq!(
        err(e
            .anon(
                Update,
                "auth/jwt/oidc/auth_url",
                json!({"role": "r", "redirect_uri": REDIRECT})
            )
            .await),
        (400, "OIDC login is not configured for this mount".into())
    );
}

#[tokio::test]
async fn token_endpoint_errors() {
    let (e, idp) = setup(json!({}), json!({})).await;
    let (_, q) = start(&e, json!({})).await;
    idp.answers.lock().token = (
        400,
        json!({"error": "invalid_grant", "error_description": "code expired"}).to_string(),
    );
    let (s, m) = err(callback(&e, json!({"state": q["state"], "code": "c"})).await);
    assert_eq!(s, 400);
    assert_eq!(
        m,
        "Vault login failed. Error exchanging oidc code: \"Provider.Exchange: unable to exchange auth code with provider: oauth2: \\\"invalid_grant\\\" \\\"code expired\\\"\"."
    );
    // Basic authentication first, then the credentials in the form (Go's auto-detection).
    let reqs = idp.token_requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].1.as_deref().unwrap().starts_with("Basic "));
    assert_eq!(reqs[1].1, None);
    assert_eq!(reqs[1].0["client_id"], CLIENT_ID);
    assert_eq!(reqs[1].0["client_secret"], CLIENT_SECRET);

    // A 500 without an OAuth error body.
    let (_, q) = start(&e, json!({})).await;
    idp.answers.lock().token = (500, "upstream down".into());
    let (_, m) = err(callback(&e, json!({"state": q["state"], "code": "c"})).await);
    assert!(
        m.contains("oauth2: cannot fetch token: 500 Internal Server Error"),
        "{m}"
    );
    // A success without an ID token.
    let (_, q) = start(&e, json!({})).await;
    idp.answers.lock().token = (
        200,
        json!({"access_token": "a", "token_type": "Bearer"}).to_string(),
    );
    let (_, m) = err(callback(&e, json!({"state": q["state"], "code": "c"})).await);
    assert!(
        m.contains("id_token is missing from auth code exchange"),
        "{m}"
    );
    // Neither a code nor an ID token.
    let (_, q) = start(&e, json!({})).await;
    assert_eq!(
        err(callback(&e, json!({"state": q["state"]})).await),
        (
            400,
            "Vault login failed. No code or id_token received.".into()
        )
    );
}

#[tokio::test]
async fn id_tokens_with_a_wrong_audience_or_signature_are_refused() {
    let (e, idp) = setup(json!({}), json!({})).await;
    let go = |claims: Value, signer: Option<Signer>| {
        let (e, idp) = (&e, &idp);
        async move {
            let (_, q) = start(e, json!({})).await;
            let mut c = claims;
            c["nonce"] = json!(q["nonce"]);
            match signer {
                Some(s) => idp.answer_tokens(&s.sign(&c)),
                None => idp.answer_claims(&c),
            }
            err(callback(e, json!({"state": q["state"], "code": "c"})).await)
        }
    };
    let base = idp.claims("");
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let (s, m) = go(with("aud", json!("someone-else")), None).await;
    assert_eq!(s, 400);
    assert!(
        m.contains("id_token failed verification: oidc: expected audience \\\"tresor-client\\\""),
        "{m}"
    );
    // Same kid, another key: the signature does not verify.
    let (_, m) = go(base.clone(), Some(Signer::es256("idp-key-1"))).await;
    assert!(m.contains("failed to verify id token signature"), "{m}");
    // A key the provider does not publish.
    let (_, m) = go(base.clone(), Some(Signer::es256("unknown-kid"))).await;
    assert!(
        m.contains("no key with ID (kid) \\\"unknown-kid\\\""),
        "{m}"
    );
    let (_, m) = go(with("iss", json!("https://other.example")), None).await;
    assert!(m.contains("id token issued by a different provider"), "{m}");
    let (_, m) = go(with("exp", json!(now() - 3600)), None).await;
    assert!(m.contains("token is expired"), "{m}");
    let mut no_exp = base.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let (_, m) = go(no_exp, None).await;
    assert!(m.contains("no expiration (exp) claim"), "{m}");
    let (_, m) = go(with("at_hash", json!("AAAAAAAAAAAAAAAAAAAAAA")), None).await;
    assert!(m.contains("at_hash"), "{m}");
    let (_, m) = go(with("aud", json!([CLIENT_ID, "other"])), None).await;
    assert!(m.contains("azp"), "{m}");
    let (_, q) = start(&e, json!({})).await;
    let mut c = base.clone();
    c["nonce"] = json!(q["nonce"]);
    idp.answer_tokens(&unsigned(&c));
    let (_, m) = err(callback(&e, json!({"state": q["state"], "code": "c"})).await);
    assert!(
        m.contains("unsupported signing algorithm \\\"none\\\""),
        "{m}"
    );
}

#[tokio::test]
async fn role_constraints_apply() {
    let (e, idp) = setup(
        json!({}),
        json!({"bound_claims": {"groups": "admins"}, "bound_audiences": [CLIENT_ID]}),
    )
    .await;
    let (_, q) = start(&e, json!({})).await;
    idp.answer_claims(&idp.claims(&q["nonce"]));
    assert_eq!(
        err(callback(&e, json!({"state": q["state"], "code": "c"})).await),
        (
            400,
            "Vault login failed. error validating claims: claim \"groups\" does not match any associated bound claim values".into()
        )
    );
    e.root(
        Update,
        &format!("{M}/role/r1"),
        json!({"bound_claims": {"groups": "ops"}, "bound_subject": "user-2"}),
    )
    .await
    .unwrap();
    let (_, q) = start(&e, json!({})).await;
    idp.answer_claims(&idp.claims(&q["nonce"]));
    assert_eq!(
        err(callback(&e, json!({"state": q["state"], "code": "c"})).await),
        (
            400,
            "Vault login failed. sub claim does not match bound subject".into()
        )
    );
    e.root(
        Update,
        &format!("{M}/role/r1"),
        json!({"bound_subject": "", "user_claim": "missing_claim"}),
    )
    .await
    .unwrap();
    let (_, q) = start(&e, json!({})).await;
    idp.answer_claims(&idp.claims(&q["nonce"]));
    assert_eq!(
        err(callback(&e, json!({"state": q["state"], "code": "c"})).await),
        (
            400,
            "Vault login failed. claim \"missing_claim\" not found in token".into()
        )
    );
}

#[tokio::test]
async fn provider_errors_are_reported() {
    let (e, _idp) = setup(json!({}), json!({})).await;
    let (_, q) = start(&e, json!({})).await;
    assert_eq!(
        err(callback(&e, json!({"state": q["state"], "error": "access_denied"})).await),
        (400, "Vault login failed. access_denied".into())
    );
    let (_, q) = start(&e, json!({})).await;
    let (_, m) = err(callback(&e, json!({"state": q["state"], "error": "weird<script>"})).await);
    assert!(m.contains("An unknown error occurred"), "{m}");
}

#[tokio::test]
async fn form_post_callback() {
    let (e, idp) = setup(
        json!({"oidc_response_mode": "form_post", "oidc_response_types": ["code"]}),
        json!({}),
    )
    .await;
    let (_, q) = start(&e, json!({})).await;
    assert_eq!(q["response_mode"], "form_post");
    // The provider posts the code; the page continues with a GET of the callback.
    let r = e
        .anon(
            Update,
            &format!("{M}/oidc/callback"),
            json!({"state": q["state"], "code": "posted-code"}),
        )
        .await
        .unwrap();
    let (status, body) = html_of(&r);
    assert_eq!(status, 200);
    assert!(
        body.contains("/v1/auth/oidc/oidc/callback?state="),
        "{body}"
    );
    assert!(body.contains("code=no_code"), "{body}");
    idp.answer_claims(&idp.claims(&q["nonce"]));
    let r = callback(&e, json!({"state": q["state"], "code": "no_code"}))
        .await
        .unwrap();
    assert!(r.auth.is_some());
    assert_eq!(idp.token_requests()[0].0["code"], "posted-code");
    // An unknown state.
    let r = e
        .anon(
            Update,
            &format!("{M}/oidc/callback"),
            json!({"state": "nope", "code": "x"}),
        )
        .await
        .unwrap();
    let (status, body) = html_of(&r);
    assert_eq!(status, 400);
    assert!(body.contains("Expired or missing OAuth state."));

    // The implicit flow: the provider posts the ID token itself.
    e.root(
        Update,
        &format!("{M}/config"),
        json!({"oidc_discovery_url": idp.issuer(), "oidc_discovery_ca_pem": idp.stub.ca_pem,
               "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET,
               "oidc_response_mode": "form_post", "oidc_response_types": ["id_token"]}),
    )
    .await
    .unwrap();
    let (_, q) = start(&e, json!({})).await;
    assert_eq!(q["response_type"], "id_token");
    assert!(!q.contains_key("code_challenge"));
    let mut c = idp.claims(&q["nonce"]);
    c.as_object_mut().unwrap().remove("at_hash");
    e.anon(
        Update,
        &format!("{M}/oidc/callback"),
        json!({"state": q["state"], "id_token": idp.signer.sign(&c)}),
    )
    .await
    .unwrap();
    let r = callback(&e, json!({"state": q["state"], "code": "no_code"}))
        .await
        .unwrap();
    assert_eq!(meta(&r)["email"], "u1@example.com");
}

#[tokio::test]
async fn form_post_needs_the_form_post_mode() {
    let (e, _idp) = setup(json!({}), json!({})).await;
    let (_, q) = start(&e, json!({})).await;
    // Vault's bare 405, and the state is untouched.
    let r = e
        .anon(
            Update,
            &format!("{M}/oidc/callback"),
            json!({"state": q["state"], "code": "x"}),
        )
        .await
        .unwrap();
    let raw = r.raw.expect("a raw answer");
    assert_eq!((raw.status, raw.body.len()), (405, 0));
    let (_, m) = err(callback(&e, json!({"state": q["state"], "code": "c"})).await);
    assert!(m.contains("Error exchanging oidc code"), "{m}");
}

#[tokio::test]
async fn direct_mode_polls() {
    let (e, idp) = setup(json!({}), json!({"callback_mode": "direct"})).await;
    // A client nonce is required.
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{M}/oidc/auth_url"),
                json!({"role": "r1", "redirect_uri": REDIRECT})
            )
            .await),
        (400, "missing client_nonce".into())
    );
    let r = e
        .anon(
            Update,
            &format!("{M}/oidc/auth_url"),
            json!({"role": "r1", "redirect_uri": REDIRECT, "client_nonce": "cn"}),
        )
        .await
        .unwrap();
    let d = data(&r);
    let state = d["state"].as_str().unwrap().to_string();
    assert_eq!(d["poll_interval"], "5");
    let url = d["auth_url"].as_str().unwrap();
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    assert_eq!(q["state"], state);
    let poll = |nonce: &str| {
        let (e, state) = (&e, state.clone());
        let nonce = nonce.to_string();
        async move {
            e.anon(
                Update,
                &format!("{M}/oidc/poll"),
                json!({"state": state, "client_nonce": nonce}),
            )
            .await
        }
    };
    assert_eq!(err(poll("cn").await), (400, "authorization_pending".into()));
    // The browser first gets a confirmation page; the state survives it.
    let r = callback(&e, json!({"state": state, "code": "c"}))
        .await
        .unwrap();
    let (status, body) = html_of(&r);
    assert_eq!(status, 200);
    assert!(body.contains("name=\"confirmation\""), "{body}");
    assert!(body.contains("127.0.0.1"), "{body}");
    idp.answer_claims(&idp.claims(&q["nonce"]));
    let r = callback(
        &e,
        json!({"state": state, "code": "c", "confirmation": "true"}),
    )
    .await
    .unwrap();
    let (status, _) = html_of(&r);
    assert_eq!(status, 200);
    // The browser got no token; the client does, once.
    assert!(r.auth.is_none());
    let r = poll("cn").await.unwrap();
    assert_eq!(meta(&r)["role"], "r1");
    assert!(r.auth.is_some());
    assert_eq!(err(poll("cn").await), (400, EXPIRED_STATE.into()));
}

#[tokio::test]
async fn direct_mode_failures_reach_the_poller() {
    let (e, idp) = setup(
        json!({}),
        json!({"callback_mode": "direct", "oidc_disable_confirmation": true}),
    )
    .await;
    let (_, q) = start(&e, json!({"client_nonce": "cn"})).await;
    // A wrong client nonce ends the request.
    let (_, q2) = start(&e, json!({"client_nonce": "cn"})).await;
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{M}/oidc/poll"),
                json!({"state": q2["state"], "client_nonce": "x"})
            )
            .await),
        (400, "invalid client_nonce".into())
    );
    idp.answer_claims(&idp.claims("bad nonce"));
    let r = callback(&e, json!({"state": q["state"], "code": "c"}))
        .await
        .unwrap();
    let (status, body) = html_of(&r);
    assert_eq!(status, 400);
    assert!(body.contains("invalid id_token nonce"), "{body}");
    let (s, m) = err(e
        .anon(
            Update,
            &format!("{M}/oidc/poll"),
            json!({"state": q["state"], "client_nonce": "cn"}),
        )
        .await);
    assert_eq!(s, 400);
    assert!(m.contains("invalid id_token nonce"), "{m}");
}

#[tokio::test]
async fn device_mode() {
    let (e, idp) = setup(json!({}), json!({"callback_mode": "device"})).await;
    idp.answers.lock().device = json!({
        "device_code": "dev-code-1", "user_code": "ABCD-EFGH",
        "verification_uri": "https://idp.example/device", "interval": 3,
    });
    let r = e
        .anon(
            Update,
            &format!("{M}/oidc/auth_url"),
            json!({"role": "r1", "client_nonce": "cn"}),
        )
        .await
        .unwrap();
    let d = data(&r);
    assert_eq!(d["auth_url"], "https://idp.example/device");
    assert_eq!(d["user_code"], "ABCD-EFGH");
    assert_eq!(d["poll_interval"], "3");
    let state = d["state"].as_str().unwrap().to_string();
    let poll = || {
        let (e, state) = (&e, state.clone());
        async move {
            e.anon(
                Update,
                &format!("{M}/oidc/poll"),
                json!({"state": state, "client_nonce": "cn"}),
            )
            .await
        }
    };
    idp.answers.lock().token = (400, json!({"error": "authorization_pending"}).to_string());
    assert_eq!(err(poll().await), (400, "authorization_pending".into()));
    let mut c = idp.claims("");
    c.as_object_mut().unwrap().remove("nonce");
    idp.answer_claims(&c);
    let r = poll().await.unwrap();
    assert_eq!(e.alias_of(&r, "oidc").await["name"], "user-1");
    let reqs = idp.token_requests();
    let last = &reqs.last().unwrap().0;
    assert_eq!(
        last["grant_type"],
        "urn:ietf:params:oauth:grant-type:device_code"
    );
    assert_eq!(last["device_code"], "dev-code-1");
    assert_eq!(err(poll().await), (400, EXPIRED_STATE.into()));
}
