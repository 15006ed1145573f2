//! Expiry of the OIDC flow's pending requests: a state whose `auth_url` is older than the
//! request timeout is refused at the callback, as an unknown one is.
//!
//! A test binary of its own because it shortens the timeout for the whole process
//! (`jwt::oidc::set_request_timeout`), which would break the other flow tests running in
//! parallel. The identity provider is the same kind of test double as in `oidc_flow.rs` (an
//! external provider cannot run here): a discovery document, a JWKS and a token endpoint
//! served over HTTPS on 127.0.0.1 by the test itself.

#[path = "jwt_harness.rs"]
mod harness;

use harness::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const REDIRECT: &str = "https://tresor.example/v1/auth/oidc/oidc/callback";

#[tokio::test]
async fn expired_states_are_refused() {
    tresor_auth::jwt::oidc::set_request_timeout(Duration::from_millis(1500));
    let signer = Arc::new(Signer::es256("k1"));
    let base = Arc::new(parking_lot::Mutex::new(String::new()));
    let nonce = Arc::new(parking_lot::Mutex::new(String::new()));
    let (b2, n2, s2) = (base.clone(), nonce.clone(), signer.clone());
    let stub = https_stub(Arc::new(move |r: &StubReq| {
        let b = b2.lock().clone();
        match r.path.as_str() {
            "/.well-known/openid-configuration" => (
                200,
                json!({"issuer": b, "authorization_endpoint": format!("{b}/authorize"),
                       "token_endpoint": format!("{b}/token"), "jwks_uri": format!("{b}/jwks")})
                .to_string(),
            ),
            "/jwks" => (200, jwks(&[s2.as_ref()]).to_string()),
            "/token" => {
                let t = s2.sign(&json!({"iss": b, "aud": "cid", "sub": "u", "iat": now(),
                                        "exp": now() + 300, "nonce": n2.lock().clone()}));
                (200, json!({"access_token": "a", "id_token": t}).to_string())
            }
            _ => (404, "{}".into()),
        }
    }))
    .await;
    *base.lock() = stub.base();
    let e = env().await;
    e.root(
        Update,
        "auth/oidc/config",
        json!({"oidc_discovery_url": stub.base(), "oidc_discovery_ca_pem": stub.ca_pem,
               "oidc_client_id": "cid", "oidc_client_secret": "secret"}),
    )
    .await
    .unwrap();
    e.root(
        Update,
        "auth/oidc/role/r",
        json!({"allowed_redirect_uris": [REDIRECT], "user_claim": "sub"}),
    )
    .await
    .unwrap();
    let start = || async {
        let r = e
            .anon(
                Update,
                "auth/oidc/oidc/auth_url",
                json!({"role": "r", "redirect_uri": REDIRECT}),
            )
            .await
            .unwrap();
        let url = data(&r)["auth_url"].as_str().unwrap().to_string();
        let q: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        *nonce.lock() = q["nonce"].clone();
        q["state"].clone()
    };
    // Within the timeout: fine.
    let state = start().await;
    e.anon(
        Read,
        "auth/oidc/oidc/callback",
        json!({"state": state, "code": "c"}),
    )
    .await
    .unwrap();
    // Past it: refused, and the token endpoint is never asked.
    let state = start().await;
    let before = stub.hits();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        err(e
            .anon(
                Read,
                "auth/oidc/oidc/callback",
                json!({"state": state, "code": "c"}),
            )
            .await),
        (
            400,
            "Vault login failed. Expired or missing OAuth state.".into()
        )
    );
    assert_eq!(stub.hits(), before);
}
