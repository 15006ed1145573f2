//! The `jwt`/`oidc` auth method end to end through `Core::handle`: configuration and roles
//! (shapes and validation, as OpenBao answers), logins with static PEM keys, a JWKS and OIDC
//! discovery served over HTTPS by the test itself (a hyper server on 127.0.0.1 with an rcgen
//! certificate; keys made with aws-lc-rs), the JWKS cache and its bounded refetch, tokens
//! shaped like those of Kubernetes, GitHub Actions and cloud workload identity, and every
//! denial path with its message.

#[path = "jwt_harness.rs"]
mod harness;

use harness::*;
use serde_json::{json, Value};
use std::sync::Arc;

const J: &str = "auth/jwt";

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// A stub serving a JWKS (at `/keys`) and an OIDC discovery document (at
/// `/.well-known/openid-configuration`, issuer = the stub's base URL) for the signers in
/// `set`, which the test may change.
async fn idp(set: Arc<parking_lot::Mutex<Value>>) -> Stub {
    let base = Arc::new(parking_lot::Mutex::new(String::new()));
    let b2 = base.clone();
    let stub = https_stub(Arc::new(move |r: &StubReq| match r.path.as_str() {
        "/keys" => (200, set.lock().to_string()),
        "/.well-known/openid-configuration" => {
            let b = b2.lock().clone();
            (
                200,
                json!({"issuer": b, "jwks_uri": format!("{b}/keys"),
                       "authorization_endpoint": format!("{b}/auth"), "token_endpoint": format!("{b}/token")})
                .to_string(),
            )
        }
        _ => (404, "{}".into()),
    }))
    .await;
    *base.lock() = stub.base();
    stub
}

async fn configure_pem(e: &Env, s: &Signer, extra: Value) {
    let mut body = json!({ "jwt_validation_pubkeys": [s.public_pem()] });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    e.root(Update, &format!("{J}/config"), body).await.unwrap();
}

async fn role(e: &Env, name: &str, body: Value) {
    e.root(Update, &format!("{J}/role/{name}"), body)
        .await
        .unwrap_or_else(|err| panic!("role {name}: {err}"));
}

async fn login(
    e: &Env,
    role: &str,
    jwt: &str,
) -> Result<tresor_core::logical::Response, tresor_core::Error> {
    e.anon(
        Update,
        &format!("{J}/login"),
        json!({ "role": role, "jwt": jwt }),
    )
    .await
}

fn claims(extra: Value) -> Value {
    let mut c = json!({ "sub": "alice", "aud": "tresor", "iss": "https://issuer.example", "iat": now(), "exp": now() + 300 });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(&k);
            } else {
                c[k] = v;
            }
        }
    }
    c
}

#[tokio::test]
async fn roles_config_shapes_and_validation() {
    let e = env().await;
    assert_eq!(
        err(e.root(List, &format!("{J}/role"), json!({})).await).0,
        404
    );
    assert_eq!(
        err(e.root(Read, &format!("{J}/config"), json!({})).await).0,
        404
    );
    // An OIDC role (the default type) needs redirect URIs; a JWT role a bound constraint.
    assert_eq!(
        err(e
            .root(Update, &format!("{J}/role/r"), json!({"user_claim": "sub"}))
            .await),
        (
            400,
            "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.".into()
        )
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{J}/role/r"),
                json!({"user_claim": "sub", "role_type": "jwt"})
            )
            .await)
        .1,
        "must have at least one bound constraint when creating/updating a role"
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{J}/role/r"),
                json!({"role_type": "jwt", "bound_subject": "x"})
            )
            .await)
        .1,
        "a user claim must be defined on the role"
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{J}/role/r"),
                json!({"role_type": "web", "user_claim": "sub"})
            )
            .await)
        .1,
        "invalid 'role_type': web"
    );
    assert_eq!(
        err(e.root(Update, &format!("{J}/role/r"), json!({"role_type": "jwt", "user_claim": "sub", "bound_subject": "x", "bound_claims_type": "regex"})).await).1,
        "invalid 'bound_claims_type': regex"
    );
    assert_eq!(
        err(e.root(Update, &format!("{J}/role/r"), json!({"role_type": "jwt", "user_claim": "sub", "bound_subject": "x", "claim_mappings": {"a": "role"}})).await).1,
        "metadata key \"role\" is reserved and may not be a mapping destination"
    );
    assert_eq!(
        err(e.root(Update, &format!("{J}/role/r"), json!({"role_type": "jwt", "user_claim": "sub", "bound_claims_type": "glob", "bound_claims": {"n": 5}})).await).1,
        "claim is not a string: 5"
    );
    // hvac's create_role: an oidc role with redirect URIs, answered 204 (no body).
    let r = e
        .root(
            Update,
            &format!("{J}/role/hvac"),
            json!({"allowed_redirect_uris": ["https://localhost:8200/jwt-test/callback"], "user_claim": "https://vault/user", "bound_audiences": ["1234"]}),
        )
        .await
        .unwrap();
    assert!(r.is_empty());
    let d = data(
        &e.root(Read, &format!("{J}/role/HVAC"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        keys(&d),
        vec![
            "allowed_redirect_uris",
            "bound_audiences",
            "bound_claims",
            "bound_claims_type",
            "bound_subject",
            "callback_mode",
            "claim_mappings",
            "clock_skew_leeway",
            "expiration_leeway",
            "groups_claim",
            "max_age",
            "not_before_leeway",
            "oauth2_metadata",
            "oidc_disable_confirmation",
            "oidc_scopes",
            "role_type",
            "token_bound_cidrs",
            "token_explicit_max_ttl",
            "token_max_ttl",
            "token_no_default_policy",
            "token_num_uses",
            "token_period",
            "token_policies",
            "token_policies_template_claims",
            "token_strictly_bind_ip",
            "token_ttl",
            "token_type",
            "user_claim",
            "user_claim_json_pointer",
            "verbose_oidc_logging",
        ]
    );
    assert_eq!(d["role_type"], "oidc");
    assert_eq!(d["user_claim"], "https://vault/user");
    assert_eq!(d["bound_audiences"], json!(["1234"]));
    assert_eq!(d["bound_claims"], Value::Null);
    assert_eq!(d["bound_claims_type"], "string");
    assert_eq!(d["callback_mode"], "client");
    // Leeways accept negative numbers and Go durations.
    role(&e, "lee", json!({"role_type": "jwt", "user_claim": "sub", "bound_subject": "a", "clock_skew_leeway": -1, "expiration_leeway": "2m", "not_before_leeway": 30, "policies": "p1", "num_uses": 3})).await;
    let d = data(
        &e.root(Read, &format!("{J}/role/lee"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        (
            d["clock_skew_leeway"].clone(),
            d["expiration_leeway"].clone(),
            d["not_before_leeway"].clone()
        ),
        (json!(-1), json!(120), json!(30))
    );
    assert_eq!(d["policies"], json!(["p1"]));
    assert_eq!(d["token_policies"], json!(["p1"]));
    assert_eq!(d["num_uses"], json!(3));
    assert_eq!(d["token_num_uses"], json!(3));
    let l = data(&e.root(List, &format!("{J}/role"), json!({})).await.unwrap());
    assert_eq!(l["keys"], json!(["hvac", "lee"]));
    assert!(e
        .root(Delete, &format!("{J}/role/hvac"), json!({}))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        err(e.root(Read, &format!("{J}/role/hvac"), json!({})).await).0,
        404
    );

    // Config: exactly one key source; keys must parse; algorithms must be supported.
    assert_eq!(
        err(e.root(Update, &format!("{J}/config"), json!({})).await),
        (400, "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{J}/config"),
                json!({"jwt_validation_pubkeys": "junk"})
            )
            .await)
        .1,
        "error parsing public key: data does not contain any valid public keys"
    );
    let s = Signer::es256("k");
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{J}/config"),
                json!({"jwt_validation_pubkeys": [s.public_pem()], "jwks_url": "https://x"})
            )
            .await)
        .0,
        400
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{J}/config"),
                json!({"jwt_validation_pubkeys": [s.public_pem()], "jwt_supported_algs": ["HS256"]})
            )
            .await)
        .1,
        "invalid jwt_supported_algs: unsupported signing algorithm: HS256"
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{J}/config"),
                json!({"jwt_validation_pubkeys": [s.public_pem()], "oidc_client_id": "x"})
            )
            .await)
        .1,
        "both 'oidc_client_id' and 'oidc_client_secret' must be set for OIDC"
    );
    configure_pem(
        &e,
        &s,
        json!({"bound_issuer": "iss1", "default_role": "Dev"}),
    )
    .await;
    let d = data(
        &e.root(Read, &format!("{J}/config"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        keys(&d),
        vec![
            "bound_issuer",
            "default_role",
            "jwks_ca_pem",
            "jwks_url",
            "jwt_supported_algs",
            "jwt_validation_pubkeys",
            "namespace_in_state",
            "oidc_client_id",
            "oidc_discovery_ca_pem",
            "oidc_discovery_url",
            "oidc_response_mode",
            "oidc_response_types",
            "override_allowed_server_names",
            "provider_config",
            "status",
        ]
    );
    assert_eq!(d["status"], "valid");
    assert_eq!(d["default_role"], "dev");
    assert_eq!(d["namespace_in_state"], true);
    assert_eq!(d["jwt_validation_pubkeys"], json!([s.public_pem().trim()]));
}

#[tokio::test]
async fn static_key_login_identity_and_token() {
    let e = env().await;
    let s = Signer::es256("k1");
    configure_pem(&e, &s, json!({"bound_issuer": "https://issuer.example"})).await;
    role(
        &e,
        "dev",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["tresor"],
               "claim_mappings": {"email": "mail", "/org/team": "team"}, "groups_claim": "groups",
               "token_policies": "p1,p2", "token_ttl": "10m", "token_max_ttl": "1h"}),
    )
    .await;
    let t = s.sign(&claims(
        json!({"email": "a@example.com", "org": {"team": "blue"}, "groups": ["admins", "", "ops"]}),
    ));
    let admins = e.external_group("admins", "jwt", "admins").await;
    let r = login(&e, "dev", &t).await.unwrap();
    let alias = e.alias_of(&r, "jwt").await;
    assert_eq!(alias["name"], "alice");
    assert_eq!(
        alias["metadata"],
        json!({"role": "dev", "mail": "a@example.com", "team": "blue"})
    );
    // The groups claim put the entity in the external group aliased "admins".
    let entity = r.auth.as_ref().unwrap().entity_id.clone();
    let g = data(
        &e.root(Read, &format!("identity/group/id/{admins}"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(g["member_entity_ids"], json!([entity]));
    let auth = r.auth.clone().expect("auth block");
    assert_eq!(auth.policies, vec!["default", "p1", "p2"]);
    assert_eq!(auth.lease_duration, 600);
    let md = auth.metadata.clone().unwrap();
    assert_eq!(md.get("role").map(String::as_str), Some("dev"));
    assert_eq!(md.get("mail").map(String::as_str), Some("a@example.com"));
    let look = e.lookup(&auth.client_token).await;
    assert_eq!(look["meta"]["role"], "dev");
    assert!(look["display_name"].as_str().unwrap().contains("alice"));

    // default_role is used when the login names none.
    let mut c = data(
        &e.root(Read, &format!("{J}/config"), json!({}))
            .await
            .unwrap(),
    );
    c["default_role"] = json!("dev");
    c.as_object_mut().unwrap().remove("status");
    e.root(Update, &format!("{J}/config"), c).await.unwrap();
    e.anon(Update, &format!("{J}/login"), json!({ "jwt": t }))
        .await
        .unwrap();
    // Each supported algorithm, from PEM keys (several keys: any may verify).
    for s2 in [Signer::rs256("r"), Signer::ps256("p"), Signer::eddsa("ed")] {
        e.root(
            Update,
            &format!("{J}/config"),
            json!({"jwt_validation_pubkeys": [s.public_pem(), s2.public_pem()], "bound_issuer": "https://issuer.example"}),
        )
        .await
        .unwrap();
        let r = login(&e, "dev", &s2.sign(&claims(json!({"groups": "solo"})))).await;
        let r = r.unwrap_or_else(|err| panic!("{}: {err}", s2.alg()));
        assert_eq!(
            harness::meta(&r).get("role").map(String::as_str),
            Some("dev")
        );
    }
}

#[tokio::test]
async fn every_denial_has_a_clear_error() {
    let e = env().await;
    let s = Signer::es256("k1");
    let other = Signer::es256("k1");
    // Login before any configuration.
    assert_eq!(
        err(login(&e, "dev", "x.y.z").await),
        (400, "could not load configuration".into())
    );
    configure_pem(&e, &s, json!({"bound_issuer": "https://issuer.example"})).await;
    role(&e, "dev", json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["tresor"], "bound_subject": "alice", "groups_claim": "groups", "claim_mappings": {"n": "n"}})).await;
    role(&e, "claims", json!({"role_type": "jwt", "user_claim": "email", "bound_audiences": "tresor", "bound_claims": {"team": ["blue", "green"]}})).await;
    role(&e, "globs", json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "tresor", "bound_claims_type": "glob", "bound_claims": {"repository": "acme/*", "ref": "refs/heads/main"}})).await;
    role(
        &e,
        "noaud",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_subject": "alice"}),
    )
    .await;
    role(
        &e,
        "web",
        json!({"user_claim": "sub", "allowed_redirect_uris": "https://x/cb"}),
    )
    .await;
    let ok = claims(json!({"groups": ["g"]}));
    login(&e, "dev", &s.sign(&ok)).await.unwrap();
    let v = |m: &str| (400u16, format!("error validating token: {m}"));
    let cases: Vec<(&str, String, (u16, String))> = vec![
        ("dev", s.sign(&claims(json!({"exp": now() - 120, "iat": now() - 600}))), v("invalid expiration time (exp) claim: token is expired")),
        ("dev", s.sign(&claims(json!({"nbf": now() + 600, "iat": null}))), v("invalid not before (nbf) claim: token not yet valid")),
        ("dev", s.sign(&claims(json!({"iat": now() + 600, "nbf": now()}))), v("invalid issued at (iat) claim: token issued in the future")),
        ("dev", s.sign(&claims(json!({"iat": null, "exp": null}))), v("no issued at (iat), not before (nbf), or expiration time (exp) claims in token")),
        ("dev", s.sign(&claims(json!({"aud": ["someone-else"]}))), v("invalid audience (aud) claim: audience claim does not match any expected audience")),
        ("dev", s.sign(&claims(json!({"iss": "https://evil.example"}))), v("invalid issuer (iss) claim")),
        ("dev", s.sign(&claims(json!({"sub": "mallory"}))), v("invalid subject (sub) claim")),
        ("dev", other.sign(&ok), v("error verifying token signature: failed to verify id token signature")),
        ("dev", unsigned(&ok), v("invalid algorithm (alg) header parameter: unsupported signing algorithm \"none\"")),
        ("dev", s.sign_with(json!({"alg": "HS256"}), &ok), v("invalid algorithm (alg) header parameter: unsupported signing algorithm \"HS256\"")),
        ("dev", "not-a-jwt".to_string(), v("compact JWS format must have three parts")),
        ("dev", s.sign(&claims(json!({"groups": null}))), (400, "failed to fetch groups: \"groups\" claim not found in token".into())),
        ("dev", s.sign(&claims(json!({"n": 5, "groups": []}))), (400, "error converting claim 'n' to string".into())),
        ("nope", s.sign(&ok), (400, "role \"nope\" could not be found".into())),
        ("web", s.sign(&ok), (400, "role with oidc role_type is not allowed".into())),
        ("claims", s.sign(&ok), (400, "claim \"email\" not found in token".into())),
        ("claims", s.sign(&claims(json!({"email": "a@x", "team": "red"}))), (400, "error validating claims: claim \"team\" does not match any associated bound claim values".into())),
        ("claims", s.sign(&claims(json!({"email": "a@x"}))), (400, "error validating claims: claim \"team\" is missing".into())),
        ("globs", s.sign(&claims(json!({"repository": "evil/acme", "ref": "refs/heads/main"}))), (400, "error validating claims: claim \"repository\" does not match any associated bound claim values".into())),
        ("globs", s.sign(&claims(json!({"repository": "acme/app", "ref": "refs/heads/dev"}))), (400, "error validating claims: claim \"ref\" does not match any associated bound claim values".into())),
        ("noaud", s.sign(&ok), (400, "audience claim found in JWT but no audiences bound to the role".into())),
    ];
    for (r, t, want) in cases {
        assert_eq!(err(login(&e, r, &t).await), want, "role {r}");
    }
    // Bound claims that match (one of several values; globs).
    login(
        &e,
        "claims",
        &s.sign(&claims(json!({"email": "a@x", "team": ["red", "green"]}))),
    )
    .await
    .unwrap();
    login(
        &e,
        "globs",
        &s.sign(&claims(
            json!({"repository": "acme/app", "ref": "refs/heads/main"}),
        )),
    )
    .await
    .unwrap();
    login(&e, "noaud", &s.sign(&claims(json!({"aud": null}))))
        .await
        .unwrap();
    // Missing inputs.
    assert_eq!(
        err(e
            .anon(Update, &format!("{J}/login"), json!({"jwt": "x"}))
            .await),
        (400, "missing role".into())
    );
    assert_eq!(
        err(e
            .anon(Update, &format!("{J}/login"), json!({"role": "dev"}))
            .await),
        (400, "missing token".into())
    );
    // jwt_supported_algs narrows the accepted algorithms.
    configure_pem(
        &e,
        &s,
        json!({"bound_issuer": "https://issuer.example", "jwt_supported_algs": ["RS256"]}),
    )
    .await;
    assert_eq!(err(login(&e, "dev", &s.sign(&ok)).await), v("invalid algorithm (alg) header parameter: token signed with unexpected algorithm \"ES256\""));
    // A client outside the role's token_bound_cidrs: 403.
    configure_pem(&e, &s, json!({"bound_issuer": "https://issuer.example"})).await;
    role(&e, "cidr", json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "tresor", "token_bound_cidrs": "10.0.0.0/8"})).await;
    assert_eq!(err(login(&e, "cidr", &s.sign(&ok)).await).0, 403);
}

#[tokio::test]
async fn jwks_over_https_cache_refetch_and_rotation() {
    let e = env().await;
    let (es, rs, ps, ed) = (
        Signer::es256("es"),
        Signer::rs256("rs"),
        Signer::ps256("ps"),
        Signer::eddsa("ed"),
    );
    let set = Arc::new(parking_lot::Mutex::new(jwks(&[&es, &rs, &ps, &ed])));
    let stub = idp(set.clone()).await;
    // A CA that did not issue the stub's certificate: the fetch fails at configuration.
    let wrong = Ca::new("Wrong CA");
    let (st, msg) = err(e
        .root(
            Update,
            &format!("{J}/config"),
            json!({"jwks_url": stub.url("/keys"), "jwks_ca_pem": wrong.pem()}),
        )
        .await);
    assert_eq!(st, 400);
    assert!(
        msg.starts_with("error checking jwks URL: fetching https://127.0.0.1:"),
        "{msg}"
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{J}/config"),
                json!({"jwks_url": stub.url("/keys"), "jwks_ca_pem": "not a pem"})
            )
            .await)
        .1,
        "error checking jwks_ca_pem: could not parse CA PEM value successfully"
    );
    // Unreachable address: refused, or stored with a warning when asked to skip the check.
    let dead = closed_port().await;
    let (st, msg) = err(e
        .root(
            Update,
            &format!("{J}/config"),
            json!({"jwks_url": format!("https://{dead}/keys")}),
        )
        .await);
    assert_eq!(st, 400);
    assert!(msg.starts_with("error checking jwks URL"), "{msg}");
    let r = e
        .root(
            Update,
            &format!("{J}/config"),
            json!({"jwks_url": format!("https://{dead}/keys"), "skip_jwks_validation": true}),
        )
        .await
        .unwrap();
    assert!(r.warnings[0].starts_with("error checking jwks URL"));
    role(
        &e,
        "ci",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "tresor"}),
    )
    .await;
    let (st, msg) = err(login(&e, "ci", &es.sign(&claims(json!({})))).await);
    assert_eq!(st, 400);
    assert!(msg.starts_with("error validating token: error verifying token signature: fetching keys: fetching https://127.0.0.1:"), "{msg}");

    e.root(
        Update,
        &format!("{J}/config"),
        json!({"jwks_url": stub.url("/keys"), "jwks_ca_pem": stub.ca_pem}),
    )
    .await
    .unwrap();
    let after_config = stub.hits();
    for s in [&es, &rs, &ps, &ed] {
        login(&e, "ci", &s.sign(&claims(json!({}))))
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", s.alg()));
    }
    // One fetch served all four logins.
    assert_eq!(stub.hits(), after_config + 1);
    // An unknown kid: at most one refetch per interval, then a clear error.
    let stranger = Signer::es256("unknown");
    let want = "error validating token: error verifying token signature: no key with ID (kid) \"unknown\" in the key set";
    assert_eq!(
        err(login(&e, "ci", &stranger.sign(&claims(json!({})))).await).1,
        want
    );
    assert_eq!(
        err(login(&e, "ci", &stranger.sign(&claims(json!({})))).await).1,
        want
    );
    assert_eq!(stub.hits(), after_config + 1, "refetches are rate-limited");
    // A forged signature under a known kid.
    let forged = Signer::es256("es");
    assert_eq!(
        err(login(&e, "ci", &forged.sign(&claims(json!({})))).await).1,
        "error validating token: error verifying token signature: failed to verify id token signature"
    );
    // Rotation: the IdP publishes a new key; once the interval has passed, the unknown kid
    // triggers one refetch and the new key works.
    let next = Signer::es256("next");
    *set.lock() = jwks(&[&next]);
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    login(&e, "ci", &next.sign(&claims(json!({}))))
        .await
        .unwrap();
    let hits = stub.hits();
    login(&e, "ci", &next.sign(&claims(json!({}))))
        .await
        .unwrap();
    assert_eq!(stub.hits(), hits);
}

#[tokio::test]
async fn self_signed_and_pinned_server_certificates() {
    // A server whose certificate is a self-signed CA certificate used as its own (hvac's
    // server-cert.pem is one): trusting that certificate is enough, as with Vault.
    let e = env().await;
    let s = Signer::es256("k");
    let doc = jwks(&[&s]).to_string();
    let d2 = doc.clone();
    let stub = https_stub_with(Arc::new(move |_r: &StubReq| (200, d2.clone())), true).await;
    e.root(
        Update,
        &format!("{J}/config"),
        json!({"jwks_url": stub.url("/keys"), "jwks_ca_pem": stub.ca_pem}),
    )
    .await
    .unwrap();
    role(
        &e,
        "r",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "tresor"}),
    )
    .await;
    login(&e, "r", &s.sign(&claims(json!({})))).await.unwrap();
    // A CA-issued server certificate can also be pinned itself instead of its CA.
    let stub2 = https_stub(Arc::new(move |_r: &StubReq| (200, doc.clone()))).await;
    e.root(
        Update,
        &format!("{J}/config"),
        json!({"jwks_url": stub2.url("/keys"), "jwks_ca_pem": stub2.cert_pem}),
    )
    .await
    .unwrap();
    login(&e, "r", &s.sign(&claims(json!({})))).await.unwrap();
    // Pinning checks the name: the same certificate at "localhost" does not match 127.0.0.1.
    let (st, msg) = err(e.root(Update, &format!("{J}/config"), json!({"jwks_url": format!("https://localhost:{}/keys", stub2.addr.port()), "jwks_ca_pem": stub2.cert_pem})).await);
    assert_eq!(st, 400);
    assert!(msg.contains("NotValidForName"), "{msg}");
}

#[tokio::test]
async fn oidc_discovery_and_the_oidc_mount_type() {
    let e = env().await;
    let s = Signer::rs256("k");
    let set = Arc::new(parking_lot::Mutex::new(jwks(&[&s])));
    let stub = idp(set).await;
    const O: &str = "auth/oidc";
    // The discovery document's issuer must be the configured URL.
    let (st, msg) = err(e.root(Update, &format!("{O}/config"), json!({"oidc_discovery_url": format!("{}/other", stub.base()), "oidc_discovery_ca_pem": stub.ca_pem})).await);
    assert_eq!(st, 400);
    assert!(
        msg.starts_with("error checking oidc discovery URL"),
        "{msg}"
    );
    let r = e
        .root(Update, &format!("{O}/config"), json!({"oidc_discovery_url": format!("{}/.well-known/openid-configuration", stub.base()), "oidc_discovery_ca_pem": stub.ca_pem, "bound_issuer": stub.base()}))
        .await
        .unwrap();
    assert!(r.warnings[0].starts_with("modifying provided `OIDCDiscoveryURL`"));
    let d = data(
        &e.root(Read, &format!("{O}/config"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(d["oidc_discovery_url"], format!("{}/", stub.base()));
    e.root(Update, &format!("{O}/role/k8s"), json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "https://kubernetes.default.svc"})).await.unwrap();
    // A Kubernetes projected service account token, as an OIDC issuer signs it.
    let t = s.sign(&json!({
        "iss": stub.base(), "sub": "system:serviceaccount:apps:builder",
        "aud": ["https://kubernetes.default.svc"], "iat": now(), "nbf": now(), "exp": now() + 3600,
        "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": "builder", "uid": "0c7e"}}
    }));
    let r = e
        .anon(
            Update,
            &format!("{O}/login"),
            json!({"role": "k8s", "jwt": t}),
        )
        .await
        .unwrap();
    assert_eq!(
        e.alias_of(&r, "oidc").await["name"],
        "system:serviceaccount:apps:builder"
    );
    // A token from another issuer is refused by bound_issuer.
    let t = s.sign(&json!({"iss": "https://elsewhere", "sub": "x", "aud": "https://kubernetes.default.svc", "iat": now()}));
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{O}/login"),
                json!({"role": "k8s", "jwt": t})
            )
            .await)
        .1,
        "error validating token: invalid issuer (iss) claim"
    );
}

#[tokio::test]
async fn github_actions_and_cloud_workload_identity_shapes() {
    let e = env().await;
    let gh = Signer::rs256("gh-key");
    let set = Arc::new(parking_lot::Mutex::new(jwks(&[&gh])));
    let stub = idp(set).await;
    e.root(Update, &format!("{J}/config"), json!({"jwks_url": stub.url("/keys"), "jwks_ca_pem": stub.ca_pem, "bound_issuer": "https://token.actions.githubusercontent.com"})).await.unwrap();
    // GitHub Actions: bind the repository and branch with globs, name the alias after the
    // repository, map the workflow into metadata.
    role(&e, "deploy", json!({
        "role_type": "jwt", "user_claim": "repository", "bound_audiences": "https://github.com/acme",
        "bound_claims_type": "glob",
        "bound_claims": {"repository": "acme/*", "ref": ["refs/heads/main", "refs/tags/v*"]},
        "claim_mappings": {"workflow": "workflow", "actor": "actor"}, "token_policies": "deploy"
    })).await;
    let gh_claims = |r: &str| {
        json!({
            "iss": "https://token.actions.githubusercontent.com", "aud": "https://github.com/acme",
            "sub": "repo:acme/app:ref:refs/heads/main", "repository": "acme/app", "ref": r,
            "workflow": "release", "actor": "octocat", "iat": now(), "nbf": now(), "exp": now() + 300
        })
    };
    let r = login(&e, "deploy", &gh.sign(&gh_claims("refs/tags/v1.2.0")))
        .await
        .unwrap();
    assert_eq!(e.alias_of(&r, "jwt").await["name"], "acme/app");
    assert_eq!(
        meta(&r).get("workflow").map(String::as_str),
        Some("release")
    );
    assert_eq!(meta(&r).get("actor").map(String::as_str), Some("octocat"));
    assert!(r
        .auth
        .as_ref()
        .unwrap()
        .policies
        .contains(&"deploy".to_string()));
    assert_eq!(
        err(login(&e, "deploy", &gh.sign(&gh_claims("refs/heads/feature"))).await).0,
        400
    );

    // Cloud workload identity (a GCP-style ID token): bound subject, user claim = email,
    // JSON-pointer claim mapping into nested claims.
    role(&e, "gcp", json!({
        "role_type": "jwt", "user_claim": "email", "bound_subject": "1170", "bound_audiences": "tresor",
        "claim_mappings": {"/google/compute_engine/instance_name": "instance"}
    })).await;
    let t = gh.sign(&json!({
        "iss": "https://token.actions.githubusercontent.com", "aud": "tresor", "sub": "1170",
        "email": "svc@proj.iam.gserviceaccount.com", "iat": now(), "exp": now() + 300,
        "google": {"compute_engine": {"instance_name": "vm-1"}}
    }));
    let r = login(&e, "gcp", &t).await.unwrap();
    let alias = e.alias_of(&r, "jwt").await;
    assert_eq!(alias["name"], "svc@proj.iam.gserviceaccount.com");
    assert_eq!(alias["metadata"]["instance"], "vm-1");
}
