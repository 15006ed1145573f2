//! The `kubernetes` auth method end to end through `Core::handle`: configuration and roles
//! (shapes, validation and messages as OpenBao answers, including hvac's cases), and logins
//! whose service account tokens are confirmed by a TokenReview endpoint.
//!
//! That endpoint is NOT a real Kubernetes API server (none can run here): it is a small HTTPS
//! stub started by each test on 127.0.0.1 (hyper + tokio-rustls, with a certificate from a CA
//! made with rcgen in the test), which answers `POST /apis/authentication.k8s.io/v1/tokenreviews`
//! the way the API server does, with whatever the test decides: an authenticated review, an
//! unauthenticated one, a 401, a review naming another service account, and so on. The
//! tokens are signed by keys made in the test and shaped like real ones (projected and legacy).

#[path = "jwt_harness.rs"]
mod harness;

use harness::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

const K: &str = "auth/kubernetes";
const API_AUD: &str = "https://kubernetes.default.svc";

/// What the stub answers for a token: (HTTP status, body).
type Answers = Arc<parking_lot::Mutex<HashMap<String, (u16, Value)>>>;

/// A TokenReview stub: looks the reviewed token up in `answers` (unknown tokens get an
/// unauthenticated review).
async fn token_review_api(answers: Answers) -> Stub {
    https_stub(Arc::new(move |r: &StubReq| {
        if r.method != "POST" || r.path != "/apis/authentication.k8s.io/v1/tokenreviews" {
            return (
                404,
                json!({"kind": "Status", "status": "Failure", "code": 404}).to_string(),
            );
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let token = body["spec"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match answers.lock().get(&token) {
            Some((status, v)) => (*status, v.to_string()),
            None => (
                201,
                json!({"kind": "TokenReview", "status": {"authenticated": false}}).to_string(),
            ),
        }
    }))
    .await
}

/// The API server's answer for an authenticated service account token.
fn authenticated(ns: &str, name: &str, uid: &str, audiences: &[&str]) -> (u16, Value) {
    (
        201,
        json!({
            "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "spec": {}, "status": {
                "authenticated": true,
                "user": {"username": format!("system:serviceaccount:{ns}:{name}"), "uid": uid,
                          "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}")]},
                "audiences": audiences,
            }
        }),
    )
}

/// A projected service account token (what a pod gets today).
fn projected(s: &Signer, ns: &str, name: &str, uid: &str, aud: &[&str]) -> String {
    s.sign(&json!({
        "aud": aud, "iat": now(), "nbf": now(), "exp": now() + 3600,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {"namespace": ns, "pod": {"name": "p-1", "uid": "pod-uid"},
                          "serviceaccount": {"name": name, "uid": uid}},
    }))
}

/// A legacy secret-based service account token (no expiry, flat claims).
fn legacy(s: &Signer, ns: &str, name: &str, uid: &str) -> String {
    s.sign(&json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/secret.name": format!("{name}-token-abcde"),
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
    }))
}

async fn configure(e: &Env, stub: &Stub, extra: Value) {
    let mut body = json!({"kubernetes_host": stub.base(), "kubernetes_ca_cert": stub.ca_pem, "disable_local_ca_jwt": true});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    e.root(Update, &format!("{K}/config"), body).await.unwrap();
}

async fn login(
    e: &Env,
    role: &str,
    jwt: &str,
) -> Result<tresor_core::logical::Response, tresor_core::Error> {
    e.anon(
        Update,
        &format!("{K}/login"),
        json!({"role": role, "jwt": jwt}),
    )
    .await
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn config_and_roles_as_hvac_and_openbao_expect() {
    let e = env().await;
    let host = "https://192.168.99.100:8443";
    // No config yet: read is a 404; listing roles works without a config.
    assert_eq!(
        err(e.root(Read, &format!("{K}/config"), json!({})).await).0,
        404
    );
    assert_eq!(
        err(e.root(List, &format!("{K}/role"), json!({})).await).0,
        404
    );
    assert_eq!(
        err(e.root(Update, &format!("{K}/config"), json!({})).await),
        (400, "no host provided".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{K}/config"),
                json!({"kubernetes_host": host, "disable_local_ca_jwt": true})
            )
            .await),
        (
            400,
            "kubernetes_ca_cert must be given when disable_local_ca_jwt is true".into()
        )
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{K}/config"),
                json!({"kubernetes_host": host, "pem_keys": ["pem_key"]})
            )
            .await),
        (400, "data does not contain any valid public keys".into())
    );
    // hvac writes a placeholder CA (not a certificate): accepted, with a warning.
    let bogus = "-----BEGIN CERTIFICATE-----\\n.....\\n-----END CERTIFICATE-----";
    let r = e
        .root(Update, &format!("{K}/config"), json!({"kubernetes_host": host, "kubernetes_ca_cert": bogus, "issuer": "bob", "token_reviewer_jwt": "reviewer_jwt"}))
        .await
        .unwrap();
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    let d = data(
        &e.root(Read, &format!("{K}/config"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        keys(&d),
        vec![
            "disable_iss_validation",
            "disable_local_ca_jwt",
            "issuer",
            "kubernetes_ca_cert",
            "kubernetes_host",
            "pem_keys",
            "token_reviewer_jwt_set"
        ]
    );
    assert_eq!(d["kubernetes_host"], host);
    assert_eq!(d["kubernetes_ca_cert"], bogus);
    assert_eq!(d["disable_iss_validation"], true);
    assert_eq!(d["token_reviewer_jwt_set"], true);
    assert_eq!(d["pem_keys"], json!([]));
    // Roles.
    let rp = format!("{K}/role/test-role");
    assert_eq!(
        err(e
            .root(
                Update,
                &rp,
                json!({"bound_service_account_namespaces": ["default"]})
            )
            .await)
        .1,
        "\"bound_service_account_names\" can not be empty"
    );
    assert_eq!(
        err(e.root(Update, &rp, json!({"bound_service_account_names": ["vault-auth"]})).await).1,
        "\"bound_service_account_namespaces\" can not be empty if \"bound_service_account_namespace_selector\" is not set"
    );
    assert_eq!(err(e.root(Update, &rp, json!({"bound_service_account_names": ["*", "a"], "bound_service_account_namespaces": ["x"]})).await).1, "can not mix \"*\" with values");
    assert_eq!(
        err(e.root(Update, &rp, json!({"bound_service_account_names": ["a"], "bound_service_account_namespaces": ["x"], "alias_name_source": "bad"})).await).1,
        "invalid alias_name_source, must be one of: serviceaccount_uid, serviceaccount_name"
    );
    assert_eq!(
        err(e.root(Update, &rp, json!({"bound_service_account_names": ["a"], "bound_service_account_namespace_selector": "{\"matchLabels\":{\"a\":\"b\"}}"})).await).0,
        400
    );
    for body in [
        json!({"bound_service_account_names": ["vault-auth"], "bound_service_account_namespaces": ["default"]}),
        json!({"bound_service_account_names": ["*"], "bound_service_account_namespaces": ["*"]}),
        json!({"bound_service_account_names": ["vault-auth"], "bound_service_account_namespaces": ["default"], "token_type": "service"}),
        json!({"bound_service_account_names": ["vault-auth"], "bound_service_account_namespaces": ["default"], "alias_name_source": "serviceaccount_name", "token_type": "service"}),
        json!({"bound_service_account_names": ["vault-auth"], "bound_service_account_namespaces": ["default"], "audience": "vault.example.com"}),
    ] {
        assert!(e.root(Update, &rp, body).await.unwrap().is_empty());
    }
    let d = data(&e.root(Read, &rp, json!({})).await.unwrap());
    assert_eq!(
        keys(&d),
        vec![
            "alias_name_source",
            "audience",
            "bound_service_account_names",
            "bound_service_account_namespace_selector",
            "bound_service_account_namespaces",
            "token_bound_cidrs",
            "token_explicit_max_ttl",
            "token_max_ttl",
            "token_no_default_policy",
            "token_num_uses",
            "token_period",
            "token_policies",
            "token_strictly_bind_ip",
            "token_ttl",
            "token_type",
        ]
    );
    assert_eq!(d["alias_name_source"], "serviceaccount_name");
    assert_eq!(d["audience"], "vault.example.com");
    assert_eq!(d["token_type"], "service");
    e.root(Update, &format!("{K}/role/hvac0"), json!({"bound_service_account_names": "vault-auth", "bound_service_account_namespaces": "default"})).await.unwrap();
    assert_eq!(
        data(&e.root(List, &format!("{K}/role"), json!({})).await.unwrap())["keys"],
        json!(["hvac0", "test-role"])
    );
    assert!(e.root(Delete, &rp, json!({})).await.unwrap().is_empty());
    assert!(e.root(Delete, &rp, json!({})).await.unwrap().is_empty());
    assert_eq!(err(e.root(Read, &rp, json!({})).await).0, 404);
}

#[tokio::test]
async fn login_confirmed_by_token_review() {
    let e = env().await;
    let answers: Answers = Default::default();
    let api = token_review_api(answers.clone()).await;
    let sa_key = Signer::rs256("sa");
    configure(&e, &api, json!({"token_reviewer_jwt": "reviewer-token"})).await;
    e.root(Update, &format!("{K}/role/app"), json!({
        "bound_service_account_names": ["vault-*"], "bound_service_account_namespaces": ["default", "team-*"],
        "audience": API_AUD, "token_policies": "app", "token_ttl": "20m"
    })).await.unwrap();
    let t = projected(&sa_key, "team-a", "vault-auth", "uid-1", &[API_AUD]);
    answers.lock().insert(
        t.clone(),
        authenticated("team-a", "vault-auth", "uid-1", &[API_AUD]),
    );
    let r = login(&e, "app", &t).await.unwrap();
    let auth = r.auth.clone().unwrap();
    assert_eq!(auth.policies, vec!["app", "default"]);
    assert_eq!(auth.lease_duration, 1200);
    let m = meta(&r);
    assert_eq!(m["role"], "app");
    assert_eq!(m["service_account_name"], "vault-auth");
    assert_eq!(m["service_account_namespace"], "team-a");
    assert_eq!(m["service_account_uid"], "uid-1");
    // The alias is the service account UID (Vault's default alias_name_source).
    let alias = e.alias_of(&r, "kubernetes").await;
    assert_eq!(alias["name"], "uid-1");
    assert_eq!(alias["metadata"]["service_account_namespace"], "team-a");
    // The review was asked with the reviewer JWT as bearer, for the role's audience.
    let req = api.requests.lock().last().cloned().unwrap();
    assert_eq!(req.authorization.as_deref(), Some("Bearer reviewer-token"));
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["kind"], "TokenReview");
    assert_eq!(body["spec"]["audiences"], json!([API_AUD]));
    assert_eq!(body["spec"]["token"], t.as_str());
    assert_eq!(
        e.lookup(&auth.client_token).await["meta"]["service_account_name"],
        "vault-auth"
    );

    // alias_name_source = serviceaccount_name; a legacy token; no reviewer JWT: the client's
    // own token is the bearer.
    configure(&e, &api, json!({})).await;
    e.root(Update, &format!("{K}/role/byname"), json!({
        "bound_service_account_names": "builder", "bound_service_account_namespaces": "*", "alias_name_source": "serviceaccount_name"
    })).await.unwrap();
    let t = legacy(&sa_key, "ci", "builder", "uid-2");
    answers
        .lock()
        .insert(t.clone(), authenticated("ci", "builder", "uid-2", &["api"]));
    let r = login(&e, "byname", &t).await.unwrap();
    assert_eq!(e.alias_of(&r, "kubernetes").await["name"], "ci/builder");
    assert_eq!(
        meta(&r)["service_account_secret_name"],
        "builder-token-abcde"
    );
    let req = api.requests.lock().last().cloned().unwrap();
    assert_eq!(req.authorization, Some(format!("Bearer {t}")));
}

#[tokio::test]
async fn every_denial_and_failure_has_a_clear_error() {
    let e = env().await;
    let answers: Answers = Default::default();
    let api = token_review_api(answers.clone()).await;
    let sa_key = Signer::rs256("sa");
    // Before any configuration.
    e.root(Update, &format!("{K}/role/app"), json!({
        "bound_service_account_names": ["vault-auth"], "bound_service_account_namespaces": ["default"], "audience": API_AUD
    })).await.unwrap();
    let good = projected(&sa_key, "default", "vault-auth", "uid-1", &[API_AUD]);
    answers.lock().insert(
        good.clone(),
        authenticated("default", "vault-auth", "uid-1", &[API_AUD]),
    );
    assert_eq!(
        err(login(&e, "app", &good).await),
        (400, "could not load backend configuration".into())
    );
    configure(&e, &api, json!({"token_reviewer_jwt": "reviewer"})).await;
    login(&e, "app", &good).await.unwrap();

    assert_eq!(
        err(e
            .anon(Update, &format!("{K}/login"), json!({"jwt": good}))
            .await),
        (400, "missing role".into())
    );
    assert_eq!(
        err(e
            .anon(Update, &format!("{K}/login"), json!({"role": "app"}))
            .await),
        (400, "missing jwt".into())
    );
    assert_eq!(
        err(login(&e, "nope", &good).await),
        (400, "invalid role name \"nope\"".into())
    );

    // Refused locally, before the cluster is asked.
    let hits = api.hits();
    let wrong_ns = projected(&sa_key, "kube-system", "vault-auth", "uid-1", &[API_AUD]);
    assert_eq!(
        err(login(&e, "app", &wrong_ns).await),
        (403, "namespace not authorized".into())
    );
    let wrong_sa = projected(&sa_key, "default", "intruder", "uid-9", &[API_AUD]);
    assert_eq!(
        err(login(&e, "app", &wrong_sa).await),
        (403, "service account name not authorized".into())
    );
    let wrong_aud = projected(&sa_key, "default", "vault-auth", "uid-1", &["other"]);
    assert_eq!(
        err(login(&e, "app", &wrong_aud).await),
        (
            403,
            "invalid audience (aud) claim: audience claim does not match any expected audience"
                .into()
        )
    );
    let expired = sa_key.sign(&json!({"aud": [API_AUD], "iat": now() - 7200, "exp": now() - 3600,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "vault-auth", "uid": "uid-1"}}}));
    assert_eq!(
        err(login(&e, "app", &expired).await),
        (
            403,
            "invalid expiration time (exp) claim: token is expired".into()
        )
    );
    assert_eq!(err(login(&e, "app", "not.a.jwt").await).0, 403);
    assert_eq!(
        api.hits(),
        hits,
        "no review was asked for locally refused tokens"
    );

    // Refused by the cluster.
    let revoked = projected(&sa_key, "default", "vault-auth", "uid-revoked", &[API_AUD]);
    answers.lock().insert(
        revoked.clone(),
        (
            201,
            json!({"kind": "TokenReview", "status": {"authenticated": false}}),
        ),
    );
    assert_eq!(
        err(login(&e, "app", &revoked).await),
        (403, "lookup failed: service account jwt not valid".into())
    );
    let deleted = sa_key.sign(&json!({"aud": [API_AUD], "iat": now(), "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "vault-auth", "uid": "uid-old"}}}));
    answers.lock().insert(
        deleted.clone(),
        (
            401,
            json!({"kind": "Status", "status": "Failure", "code": 401}),
        ),
    );
    assert_eq!(
        err(login(&e, "app", &deleted).await),
        (403, "lookup failed: service account unauthorized; this could mean it has been deleted or recreated with a new token".into())
    );
    let errored = sa_key.sign(&json!({"aud": [API_AUD], "iat": now(), "nbf": now(), "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "vault-auth", "uid": "uid-e"}}}));
    answers.lock().insert(errored.clone(), (201, json!({"kind": "TokenReview", "status": {"authenticated": false, "error": "token has been invalidated"}})));
    assert_eq!(
        err(login(&e, "app", &errored).await),
        (403, "lookup failed: token has been invalidated".into())
    );
    // The cluster names another service account than the token's claims.
    let recreated = sa_key.sign(&json!({"aud": [API_AUD], "iat": now(), "exp": now() + 60, "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "vault-auth", "uid": "uid-stale"}}}));
    answers.lock().insert(
        recreated.clone(),
        authenticated("default", "vault-auth", "uid-new", &[API_AUD]),
    );
    assert_eq!(
        err(login(&e, "app", &recreated).await),
        (403, "JWT UIDs did not match".into())
    );
    // The cluster confirms the token for another audience only.
    let other_aud = sa_key.sign(&json!({"aud": [API_AUD], "iat": now() - 1, "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "vault-auth", "uid": "uid-1"}}}));
    answers.lock().insert(
        other_aud.clone(),
        authenticated("default", "vault-auth", "uid-1", &["something-else"]),
    );
    let (st, msg) = err(login(&e, "app", &other_aud).await);
    assert_eq!(st, 403);
    assert!(
        msg.starts_with("lookup failed: service account jwt valid for audience(s)"),
        "{msg}"
    );
    // A user that is not a service account.
    let user = sa_key.sign(&json!({"aud": [API_AUD], "iat": now() - 2, "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "vault-auth", "uid": "uid-1"}}}));
    answers.lock().insert(user.clone(), (201, json!({"kind": "TokenReview", "status": {"authenticated": true, "user": {"username": "alice", "uid": "u"}, "audiences": [API_AUD]}})));
    assert_eq!(
        err(login(&e, "app", &user).await),
        (403, "lookup failed: unexpected username format".into())
    );

    // The cluster cannot be asked: 500 with the reason.
    let forbidden = sa_key.sign(&json!({"aud": [API_AUD], "iat": now() - 3, "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "vault-auth", "uid": "uid-1"}}}));
    answers.lock().insert(forbidden.clone(), (403, json!({"kind": "Status", "status": "Failure", "message": "tokenreviews.authentication.k8s.io is forbidden", "code": 403})));
    let (st, msg) = err(login(&e, "app", &forbidden).await);
    assert_eq!(st, 500);
    assert!(
        msg.starts_with("the TokenReview API answered HTTP 403 Forbidden"),
        "{msg}"
    );
    // A CA that did not issue the API server's certificate.
    configure(
        &e,
        &api,
        json!({"token_reviewer_jwt": "reviewer", "kubernetes_ca_cert": Ca::new("Other CA").pem()}),
    )
    .await;
    let (st, msg) = err(login(&e, "app", &good).await);
    assert_eq!(st, 500);
    assert!(
        msg.starts_with("error calling the TokenReview API at https://127.0.0.1:"),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    // A CA that is not PEM at all.
    let r = e.root(Update, &format!("{K}/config"), json!({"kubernetes_host": api.base(), "kubernetes_ca_cert": "junk", "disable_local_ca_jwt": true})).await.unwrap();
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(
        err(login(&e, "app", &good).await),
        (
            500,
            "kubernetes_ca_cert: could not parse CA PEM value successfully".into()
        )
    );
    // The API server is down.
    let dead = closed_port().await;
    configure(
        &e,
        &api,
        json!({"kubernetes_host": format!("https://{dead}")}),
    )
    .await;
    let (st, msg) = err(login(&e, "app", &good).await);
    assert_eq!(st, 500);
    assert!(msg.starts_with(&format!("error calling the TokenReview API at https://{dead}/apis/authentication.k8s.io/v1/tokenreviews")), "{msg}");

    // With pem_keys the signature is checked locally; with issuer validation, the issuer too.
    configure(&e, &api, json!({"pem_keys": [sa_key.public_pem()]})).await;
    login(&e, "app", &good).await.unwrap();
    let forged = projected(
        &Signer::rs256("sa"),
        "default",
        "vault-auth",
        "uid-1",
        &[API_AUD],
    );
    answers.lock().insert(
        forged.clone(),
        authenticated("default", "vault-auth", "uid-1", &[API_AUD]),
    );
    assert_eq!(
        err(login(&e, "app", &forged).await),
        (
            403,
            "error verifying token signature: failed to verify id token signature".into()
        )
    );
    configure(&e, &api, json!({"disable_iss_validation": false, "issuer": "https://kubernetes.default.svc.cluster.local"})).await;
    login(&e, "app", &good).await.unwrap();
    configure(&e, &api, json!({"disable_iss_validation": false})).await;
    assert_eq!(
        err(login(&e, "app", &good).await),
        (403, "invalid issuer (iss) claim".into())
    );
    // A client outside the role's token_bound_cidrs.
    configure(&e, &api, json!({})).await;
    e.root(
        Update,
        &format!("{K}/role/app"),
        json!({"token_bound_cidrs": "10.0.0.0/8"}),
    )
    .await
    .unwrap();
    assert_eq!(err(login(&e, "app", &good).await).0, 403);
}
