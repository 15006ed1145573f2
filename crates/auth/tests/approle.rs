//! AppRole end to end through `Core::handle`: roles and their sub-paths, secret IDs, login and
//! every denial path, response wrapping, tidy, lockout, and storage hygiene. Expected shapes,
//! messages and status codes are those OpenBao's server answers.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const A: &str = "auth/approle";

async fn role_id(e: &Env, role: &str) -> String {
    data(
        &e.root(Read, &format!("{A}/role/{role}/role-id"), json!({}))
            .await
            .unwrap(),
    )["role_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn secret(e: &Env, role: &str, body: Value) -> Value {
    data(
        &e.root(Update, &format!("{A}/role/{role}/secret-id"), body)
            .await
            .unwrap(),
    )
}

async fn login(
    e: &Env,
    role_id: &str,
    secret_id: &str,
    remote: Option<&str>,
) -> Result<tresor_core::logical::Response, tresor_core::Error> {
    e.anon(
        Update,
        &format!("{A}/login"),
        json!({ "role_id": role_id, "secret_id": secret_id }),
        remote,
    )
    .await
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn role_crud_shapes_and_validation() {
    let e = env().await;
    // No roles yet: LIST is a 404.
    assert_eq!(
        err(e.root(List, &format!("{A}/role"), json!({})).await).0,
        404
    );
    let w = e
        .root(Update, &format!("{A}/role/r1"), json!({}))
        .await
        .unwrap();
    assert!(w.is_empty(), "a plain create answers 204");
    let r = data(
        &e.root(Read, &format!("{A}/role/r1"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        r,
        json!({
            "bind_secret_id": true, "local_secret_ids": false, "secret_id_bound_cidrs": null,
            "secret_id_num_uses": 0, "secret_id_ttl": 0, "token_bound_cidrs": [],
            "token_explicit_max_ttl": 0, "token_max_ttl": 0, "token_no_default_policy": false,
            "token_num_uses": 0, "token_period": 0, "token_policies": [],
            "token_strictly_bind_ip": false, "token_ttl": 0, "token_type": "default",
        })
    );
    // Deprecated aliases mirror their token_* fields and show only when set.
    e.root(
        Update,
        &format!("{A}/role/R2"),
        json!({ "policies": "B, a,a", "period": "1h", "secret_id_ttl": "10m", "secret_id_num_uses": 3,
                "secret_id_bound_cidrs": "127.0.0.1/32,10.0.0.0/8", "token_bound_cidrs": ["127.0.0.1/32"],
                "token_ttl": "20m", "token_max_ttl": "30m", "local_secret_ids": true, "token_num_uses": 5 }),
    )
    .await
    .unwrap();
    let r = data(
        &e.root(Read, &format!("{A}/role/r2"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(r["policies"], json!(["a", "b"]));
    assert_eq!(r["token_policies"], json!(["a", "b"]));
    assert_eq!(r["period"], 3600);
    assert_eq!(r["token_period"], 3600);
    assert_eq!(
        r["secret_id_bound_cidrs"],
        json!(["127.0.0.1/32", "10.0.0.0/8"])
    );
    assert_eq!(
        r["token_bound_cidrs"],
        json!(["127.0.0.1"]),
        "single-host blocks print as the address"
    );
    assert_eq!(
        (
            r["secret_id_ttl"].clone(),
            r["token_ttl"].clone(),
            r["token_max_ttl"].clone()
        ),
        (json!(600), json!(1200), json!(1800))
    );
    assert_eq!(r["local_secret_ids"], true);
    // Names are case-insensitive and listed lower-cased.
    assert_eq!(
        data(&e.root(List, &format!("{A}/role"), json!({})).await.unwrap())["keys"],
        json!(["r1", "r2"])
    );
    // Writing token_policies alone clears the deprecated alias.
    e.root(
        Update,
        &format!("{A}/role/r2"),
        json!({ "token_policies": "x" }),
    )
    .await
    .unwrap();
    let r = data(
        &e.root(Read, &format!("{A}/role/r2"), json!({}))
            .await
            .unwrap(),
    );
    assert!(r.get("policies").is_none());
    assert_eq!(r["token_policies"], json!(["x"]));
    // Validation.
    let cases = [
        (json!({ "token_ttl": "2h", "token_max_ttl": "1h" }), 400, "'token_ttl' cannot be greater than 'token_max_ttl'"),
        (json!({ "token_type": "bad" }), 400, "invalid 'token_type' value \"bad\""),
        (json!({ "secret_id_num_uses": -1 }), 400, "secret_id_num_uses cannot be negative"),
        (json!({ "token_num_uses": -1 }), 400, "'token_num_uses' cannot be negative"),
        (json!({ "bind_secret_id": false }), 400, "at least one constraint should be enabled on the role"),
        (json!({ "secret_id_bound_cidrs": "10.0.0.1" }), 400, "failed to validate CIDR blocks: invalid CIDR address: 10.0.0.1"),
        (json!({ "token_bound_cidrs": "bogus" }), 400, "error parsing address"),
        (json!({ "period": "800h" }), 400, "period of \"800h0m0s\" is greater than the backend's maximum lease TTL of \"768h0m0s\""),
    ];
    for (body, status, msg) in cases {
        let (s, m) = err(e.root(Update, &format!("{A}/role/bad"), body.clone()).await);
        assert_eq!(s, status, "{body}");
        assert!(m.starts_with(msg), "{body}: {m}");
    }
    let (s, m) = err(e
        .root(
            Update,
            &format!("{A}/role/r2"),
            json!({ "local_secret_ids": false }),
        )
        .await);
    assert_eq!(
        (s, m.as_str()),
        (
            400,
            "local_secret_ids can only be modified during role creation"
        )
    );
    // default-service is adjusted with a warning.
    let w = e
        .root(
            Update,
            &format!("{A}/role/tt"),
            json!({ "token_type": "default-service" }),
        )
        .await
        .unwrap();
    assert_eq!(
        w.warnings,
        vec!["default-service has no useful meaning; adjusting to service"]
    );
    assert_eq!(
        data(
            &e.root(Read, &format!("{A}/role/tt"), json!({}))
                .await
                .unwrap()
        )["token_type"],
        "service"
    );
    // A role_id may belong to one role only.
    e.root(
        Update,
        &format!("{A}/role/r1/role-id"),
        json!({ "role_id": "shared" }),
    )
    .await
    .unwrap();
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{A}/role/r2/role-id"),
                json!({ "role_id": "shared" })
            )
            .await),
        (400, "role_id already in use".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{A}/role/r3"),
                json!({ "role_id": "shared" })
            )
            .await)
        .0,
        400
    );
    assert_eq!(role_id(&e, "r1").await, "shared");
    // Unknown names: read 404, delete 204; names with a slash are no role path at all.
    assert_eq!(
        err(e.root(Read, &format!("{A}/role/nope"), json!({})).await),
        (404, String::new())
    );
    assert!(e
        .root(Delete, &format!("{A}/role/nope"), json!({}))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        err(e.root(Update, &format!("{A}/role/-bad"), json!({})).await).0,
        404
    );
    // Delete.
    e.root(Delete, &format!("{A}/role/r1"), json!({}))
        .await
        .unwrap();
    assert_eq!(
        err(e.root(Read, &format!("{A}/role/r1"), json!({})).await).0,
        404
    );
    // Unauthenticated callers cannot manage roles.
    assert_eq!(
        err(e
            .anon(Read, &format!("{A}/role/r2"), json!({}), Some("127.0.0.1"))
            .await)
        .0,
        403
    );
}

#[tokio::test]
async fn role_sub_paths() {
    let e = env().await;
    e.root(Update, &format!("{A}/role/r"), json!({ "policies": "a" }))
        .await
        .unwrap();
    let p = |s: &str| format!("{A}/role/r/{s}");
    let read = |s: &'static str| {
        let e = &e;
        let path = p(s);
        async move { data(&e.root(Read, &path, json!({})).await.unwrap()) }
    };
    assert_eq!(
        read("policies").await,
        json!({ "policies": ["a"], "token_policies": ["a"] })
    );
    e.root(Update, &p("policies"), json!({ "token_policies": "x,y" }))
        .await
        .unwrap();
    assert_eq!(
        read("policies").await,
        json!({ "token_policies": ["x", "y"] })
    );
    assert_eq!(
        err(e.root(Update, &p("policies"), json!({})).await),
        (400, "missing token_policies".into())
    );
    e.root(Delete, &p("policies"), json!({})).await.unwrap();
    assert_eq!(read("policies").await, json!({ "token_policies": [] }));

    for (path, field, value, expect) in [
        (
            "secret-id-num-uses",
            "secret_id_num_uses",
            json!(7),
            json!(7),
        ),
        ("secret-id-ttl", "secret_id_ttl", json!("5m"), json!(300)),
        ("token-max-ttl", "token_max_ttl", json!("2h"), json!(7200)),
        ("token-ttl", "token_ttl", json!("1h"), json!(3600)),
        ("token-num-uses", "token_num_uses", json!(3), json!(3)),
        ("bind-secret-id", "bind_secret_id", json!(true), json!(true)),
        (
            "secret-id-bound-cidrs",
            "secret_id_bound_cidrs",
            json!("10.0.0.0/8"),
            json!(["10.0.0.0/8"]),
        ),
        (
            "token-bound-cidrs",
            "token_bound_cidrs",
            json!("10.0.0.1,10.1.0.0/16"),
            json!(["10.0.0.1", "10.1.0.0/16"]),
        ),
    ] {
        e.root(Update, &p(path), json!({ field: value }))
            .await
            .unwrap_or_else(|x| panic!("{path}: {x}"));
        let got = data(&e.root(Read, &p(path), json!({})).await.unwrap());
        assert_eq!(got, json!({ field: expect }), "{path}");
        assert_eq!(
            data(
                &e.root(Read, &format!("{A}/role/r"), json!({}))
                    .await
                    .unwrap()
            )[field],
            expect,
            "{path} in the role"
        );
    }
    // Updates need their field; TTL pairs stay ordered.
    assert_eq!(
        err(e.root(Update, &p("secret-id-ttl"), json!({})).await),
        (400, "missing secret_id_ttl".into())
    );
    assert_eq!(
        err(e
            .root(Update, &p("token-ttl"), json!({ "token_ttl": "3h" }))
            .await),
        (
            400,
            "token_ttl should not be greater than token_max_ttl".into()
        )
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &p("token-max-ttl"),
                json!({ "token_max_ttl": "10m" })
            )
            .await),
        (
            400,
            "token_max_ttl should be greater than or equal to token_ttl".into()
        )
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &p("secret-id-bound-cidrs"),
                json!({ "secret_id_bound_cidrs": "10.0.0.1" })
            )
            .await)
        .0,
        400
    );
    // Deletes reset to defaults.
    e.root(Delete, &p("token-ttl"), json!({})).await.unwrap();
    assert_eq!(read("token-ttl").await, json!({ "token_ttl": 0 }));
    e.root(Delete, &p("secret-id-bound-cidrs"), json!({}))
        .await
        .unwrap();
    assert_eq!(
        read("secret-id-bound-cidrs").await,
        json!({ "secret_id_bound_cidrs": null })
    );
    // period: token_period alone clears the deprecated value.
    e.root(Update, &p("period"), json!({ "period": "1h" }))
        .await
        .unwrap();
    assert_eq!(
        read("period").await,
        json!({ "period": 3600, "token_period": 3600 })
    );
    e.root(Update, &p("period"), json!({ "token_period": "30m" }))
        .await
        .unwrap();
    assert_eq!(read("period").await, json!({ "token_period": 1800 }));
    // bind_secret_id off needs another constraint (token_bound_cidrs is still set).
    e.root(
        Update,
        &p("bind-secret-id"),
        json!({ "bind_secret_id": false }),
    )
    .await
    .unwrap();
    e.root(Delete, &p("token-bound-cidrs"), json!({}))
        .await
        .unwrap_err();
    e.root(Delete, &p("bind-secret-id"), json!({}))
        .await
        .unwrap();
    assert_eq!(
        read("bind-secret-id").await,
        json!({ "bind_secret_id": true })
    );
    // The deprecated bound-cidr-list reads null with a warning.
    let r = e
        .root(Read, &p("bound-cidr-list"), json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r), json!({ "bound_cidr_list": null }));
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(
        read("local-secret-ids").await,
        json!({ "local_secret_ids": false })
    );
    // Unknown role: reads 404, updates 404 "unsupported path", deletes 204.
    assert_eq!(
        err(e
            .root(Read, &format!("{A}/role/nope/token-ttl"), json!({}))
            .await),
        (404, String::new())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{A}/role/nope/token-ttl"),
                json!({ "token_ttl": 5 })
            )
            .await),
        (404, "unsupported path".into())
    );
    assert!(e
        .root(Delete, &format!("{A}/role/nope/token-ttl"), json!({}))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        err(e
            .root(Read, &format!("{A}/role/nope/role-id"), json!({}))
            .await)
        .0,
        404
    );
    assert_eq!(
        err(e.root(Update, &p("role-id"), json!({})).await),
        (400, "missing role_id".into())
    );
}

#[tokio::test]
async fn login_issues_a_working_token_with_the_roles_policies_and_ttls() {
    let e = env().await;
    let policy = r#"path "auth/approle/role/app/role-id" { capabilities = ["read"] }"#;
    e.root(
        Update,
        "sys/policies/acl/app-reader",
        json!({ "policy": policy }),
    )
    .await
    .unwrap();
    e.root(Update, &format!("{A}/role/app"), json!({ "token_policies": ["app-reader"], "token_ttl": "20m", "token_max_ttl": "30m", "token_num_uses": 0 })).await.unwrap();
    let rid = role_id(&e, "app").await;
    let s = secret(&e, "app", json!({ "metadata": "{\"foo\":\"bar\"}" })).await;
    assert_eq!(
        keys(&s),
        [
            "secret_id",
            "secret_id_accessor",
            "secret_id_num_uses",
            "secret_id_ttl"
        ]
    );
    let resp = login(
        &e,
        &rid,
        s["secret_id"].as_str().unwrap(),
        Some("127.0.0.1"),
    )
    .await
    .unwrap();
    assert!(resp.warnings.is_empty());
    let auth = resp.auth.unwrap();
    assert_eq!(auth.policies, vec!["app-reader", "default"]);
    assert_eq!(auth.lease_duration, 1200);
    assert!(auth.renewable);
    let meta = auth.metadata.clone().unwrap();
    assert_eq!(meta.get("foo").map(String::as_str), Some("bar"));
    assert_eq!(meta.get("role_name").map(String::as_str), Some("app"));
    // The token works and its policies are in force.
    let me = e.lookup_self(&auth.client_token).await;
    assert_eq!(me["path"], "auth/approle/login");
    assert_eq!(me["display_name"], "approle");
    assert_eq!(me["policies"], json!(["app-reader", "default"]));
    assert!(me["ttl"].as_i64().unwrap() <= 1200 && me["ttl"].as_i64().unwrap() > 1190);
    e.with(
        &auth.client_token,
        Read,
        &format!("{A}/role/app/role-id"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        err(e
            .with(
                &auth.client_token,
                Read,
                &format!("{A}/role/app"),
                json!({})
            )
            .await)
        .0,
        403
    );

    // Periodic roles: the period is capped by token_max_ttl, with Vault's warning.
    e.root(Update, &format!("{A}/role/periodic"), json!({ "token_period": "1h", "token_max_ttl": "30m", "token_num_uses": 4, "token_no_default_policy": true, "token_policies": "app-reader" })).await.unwrap();
    let rid = role_id(&e, "periodic").await;
    let s = secret(&e, "periodic", json!({})).await;
    let resp = login(
        &e,
        &rid,
        s["secret_id"].as_str().unwrap(),
        Some("127.0.0.1"),
    )
    .await
    .unwrap();
    assert_eq!(resp.warnings, vec!["period of \"1h\" exceeded the effective max_ttl of \"30m\"; period value is capped accordingly"]);
    let auth = resp.auth.unwrap();
    assert_eq!(auth.lease_duration, 1800);
    assert_eq!(auth.policies, vec!["app-reader"], "token_no_default_policy");
    assert_eq!(auth.num_uses, 4);
    let me = e.lookup(&auth.client_token).await;
    assert_eq!(me["period"], 1800);

    // A TTL over the mount's max is capped with a warning.
    e.root(
        Update,
        "sys/auth/approle/tune",
        json!({ "max_lease_ttl": "1h" }),
    )
    .await
    .unwrap();
    e.root(
        Update,
        &format!("{A}/role/long"),
        json!({ "token_ttl": "2h" }),
    )
    .await
    .unwrap();
    let rid = role_id(&e, "long").await;
    let s = secret(&e, "long", json!({})).await;
    let resp = login(
        &e,
        &rid,
        s["secret_id"].as_str().unwrap(),
        Some("127.0.0.1"),
    )
    .await
    .unwrap();
    assert_eq!(resp.warnings, vec!["TTL of \"2h\" exceeded the effective max_ttl of \"1h\"; TTL value is capped accordingly"]);
    assert_eq!(resp.auth.unwrap().lease_duration, 3600);

    // A role that asks for batch tokens gets them (the mount leaves it to the role).
    e.root(
        Update,
        &format!("{A}/role/batch"),
        json!({ "token_type": "batch" }),
    )
    .await
    .unwrap();
    let rid = role_id(&e, "batch").await;
    let s = secret(&e, "batch", json!({})).await;
    let resp = login(
        &e,
        &rid,
        s["secret_id"].as_str().unwrap(),
        Some("127.0.0.1"),
    )
    .await
    .unwrap();
    let auth = resp.auth.unwrap();
    assert_eq!(auth.token_type, "batch");
    assert!(auth.client_token.starts_with("hvb."));
    assert_eq!(auth.accessor, "");
}

#[tokio::test]
async fn secret_id_lifecycle_lookup_destroy_and_list() {
    let e = env().await;
    e.root(Update, &format!("{A}/role/r"), json!({}))
        .await
        .unwrap();
    let rid = role_id(&e, "r").await;
    // No secret IDs: LIST is a 404 (hvac expects InvalidPath).
    assert_eq!(
        err(e
            .root(List, &format!("{A}/role/r/secret-id"), json!({}))
            .await)
        .0,
        404
    );
    let s1 = secret(&e, "r", json!({ "metadata": "{\"foo\":\"bar\"}", "cidr_list": "127.0.0.1/32", "ttl": "5m", "num_uses": 2 })).await;
    let s2 = secret(&e, "r", json!({})).await;
    assert_eq!(
        (
            s1["secret_id_num_uses"].clone(),
            s1["secret_id_ttl"].clone()
        ),
        (json!(2), json!(300))
    );
    let mut listed = data(
        &e.root(List, &format!("{A}/role/r/secret-id"), json!({}))
            .await
            .unwrap(),
    )["keys"]
        .as_array()
        .unwrap()
        .clone();
    listed.sort_by_key(|v| v.as_str().unwrap().to_string());
    let mut want = vec![
        s1["secret_id_accessor"].clone(),
        s2["secret_id_accessor"].clone(),
    ];
    want.sort_by_key(|v| v.as_str().unwrap().to_string());
    assert_eq!(listed, want);
    // Lookup by value and by accessor give the same shape.
    let by_value = data(
        &e.root(
            Update,
            &format!("{A}/role/r/secret-id/lookup"),
            json!({ "secret_id": s1["secret_id"] }),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        keys(&by_value),
        [
            "cidr_list",
            "creation_time",
            "expiration_time",
            "last_updated_time",
            "metadata",
            "secret_id_accessor",
            "secret_id_num_uses",
            "secret_id_ttl",
            "token_bound_cidrs"
        ]
    );
    assert_eq!(by_value["metadata"], json!({ "foo": "bar" }));
    assert_eq!(by_value["cidr_list"], json!(["127.0.0.1/32"]));
    assert_eq!(by_value["token_bound_cidrs"], json!([]));
    assert_ne!(by_value["expiration_time"], "0001-01-01T00:00:00Z");
    let by_acc = data(
        &e.root(
            Update,
            &format!("{A}/role/r/secret-id-accessor/lookup"),
            json!({ "secret_id_accessor": s1["secret_id_accessor"] }),
        )
        .await
        .unwrap(),
    );
    assert_eq!(by_value, by_acc);
    let never = data(
        &e.root(
            Update,
            &format!("{A}/role/r/secret-id/lookup"),
            json!({ "secret_id": s2["secret_id"] }),
        )
        .await
        .unwrap(),
    );
    assert_eq!(never["expiration_time"], "0001-01-01T00:00:00Z");
    assert_eq!(never["metadata"], json!({}));
    // Uses count down.
    login(
        &e,
        &rid,
        s1["secret_id"].as_str().unwrap(),
        Some("127.0.0.1"),
    )
    .await
    .unwrap();
    let after = data(
        &e.root(
            Update,
            &format!("{A}/role/r/secret-id/lookup"),
            json!({ "secret_id": s1["secret_id"] }),
        )
        .await
        .unwrap(),
    );
    assert_eq!(after["secret_id_num_uses"], 1);
    // Destroy by value: then login fails, lookup is an empty 204, destroy again is a 204.
    assert!(e
        .root(
            Update,
            &format!("{A}/role/r/secret-id/destroy"),
            json!({ "secret_id": s1["secret_id"] })
        )
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        err(login(
            &e,
            &rid,
            s1["secret_id"].as_str().unwrap(),
            Some("127.0.0.1")
        )
        .await),
        (400, "invalid role or secret ID".into())
    );
    assert!(e
        .root(
            Update,
            &format!("{A}/role/r/secret-id/lookup"),
            json!({ "secret_id": s1["secret_id"] })
        )
        .await
        .unwrap()
        .is_empty());
    assert!(e
        .root(
            Delete,
            &format!("{A}/role/r/secret-id/destroy"),
            json!({ "secret_id": s1["secret_id"] })
        )
        .await
        .unwrap()
        .is_empty());
    // Destroy by accessor; a second time the accessor is unknown (400; Vault answers 500).
    e.root(
        Update,
        &format!("{A}/role/r/secret-id-accessor/destroy"),
        json!({ "secret_id_accessor": s2["secret_id_accessor"] }),
    )
    .await
    .unwrap();
    assert_eq!(
        err(login(
            &e,
            &rid,
            s2["secret_id"].as_str().unwrap(),
            Some("127.0.0.1")
        )
        .await)
        .0,
        400
    );
    let (s, m) = err(e
        .root(
            Update,
            &format!("{A}/role/r/secret-id-accessor/destroy"),
            json!({ "secret_id_accessor": s2["secret_id_accessor"] }),
        )
        .await);
    assert_eq!(s, 400);
    assert!(m.starts_with("failed to find accessor entry for secret_id_accessor"));
    // An unknown accessor on lookup: 404 whose body is data.error.
    let r = e
        .root(
            Update,
            &format!("{A}/role/r/secret-id-accessor/lookup"),
            json!({ "secret_id_accessor": "nope" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, Some(404));
    assert_eq!(
        data(&r),
        json!({ "error": "failed to find accessor entry for secret_id_accessor: \"nope\"" })
    );
    // An accessor of another role is not this role's.
    e.root(Update, &format!("{A}/role/other"), json!({}))
        .await
        .unwrap();
    let o = secret(&e, "other", json!({})).await;
    assert!(e
        .root(
            Update,
            &format!("{A}/role/r/secret-id-accessor/lookup"),
            json!({ "secret_id_accessor": o["secret_id_accessor"] })
        )
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{A}/role/r/secret-id-accessor/destroy"),
                json!({ "secret_id_accessor": o["secret_id_accessor"] })
            )
            .await),
        (403, "invalid secret id accessor".into())
    );
    // Missing arguments and unknown roles.
    assert_eq!(
        err(e
            .root(Update, &format!("{A}/role/r/secret-id/lookup"), json!({}))
            .await),
        (400, "missing secret_id".into())
    );
    assert_eq!(
        err(e
            .root(Update, &format!("{A}/role/r/secret-id/destroy"), json!({}))
            .await),
        (400, "missing secret_id".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{A}/role/r/secret-id-accessor/lookup"),
                json!({})
            )
            .await),
        (400, "missing secret_id_accessor".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{A}/role/nope/secret-id/lookup"),
                json!({ "secret_id": "x" })
            )
            .await),
        (400, "role \"nope\" does not exist".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{A}/role/nope/secret-id/destroy"),
                json!({ "secret_id": "x" })
            )
            .await)
        .0,
        400
    );
    assert_eq!(
        err(e
            .root(Update, &format!("{A}/role/nope/secret-id"), json!({}))
            .await),
        (404, "role \"nope\" does not exist".into())
    );
    assert_eq!(
        err(e
            .root(List, &format!("{A}/role/nope/secret-id"), json!({}))
            .await),
        (400, "role \"nope\" does not exist".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{A}/role/nope/custom-secret-id"),
                json!({ "secret_id": "x" })
            )
            .await)
        .0,
        404
    );
    // Deleting the role takes its secret IDs along.
    let s3 = secret(&e, "r", json!({})).await;
    e.root(Delete, &format!("{A}/role/r"), json!({}))
        .await
        .unwrap();
    e.root(Update, &format!("{A}/role/r"), json!({ "role_id": rid }))
        .await
        .unwrap();
    assert_eq!(
        err(login(
            &e,
            &rid,
            s3["secret_id"].as_str().unwrap(),
            Some("127.0.0.1")
        )
        .await)
        .0,
        400
    );
    // Only the other role's secret ID and its accessor index remain.
    let dump = e.dump().await;
    assert_eq!(
        dump.iter()
            .filter(|(k, _)| k.contains("/secret_id/"))
            .count(),
        1
    );
    assert_eq!(
        dump.iter()
            .filter(|(k, _)| k.contains("/accessor/"))
            .count(),
        1
    );
}

#[tokio::test]
async fn secret_id_generation_constraints() {
    let e = env().await;
    e.root(Update, &format!("{A}/role/r"), json!({ "secret_id_ttl": "1h", "secret_id_num_uses": 2, "secret_id_bound_cidrs": "10.0.0.0/8", "token_bound_cidrs": "10.0.0.0/8" })).await.unwrap();
    let p = format!("{A}/role/r/secret-id");
    // Defaults come from the role.
    let s = secret(&e, "r", json!({})).await;
    assert_eq!(
        (s["secret_id_num_uses"].clone(), s["secret_id_ttl"].clone()),
        (json!(2), json!(3600))
    );
    let cases = [
        (json!({ "num_uses": 5 }), 400, "num_uses cannot be higher than the role's secret_id_num_uses"),
        (json!({ "num_uses": 0 }), 400, "num_uses cannot be higher than the role's secret_id_num_uses"),
        (json!({ "num_uses": -1 }), 400, "num_uses cannot be negative"),
        (json!({ "ttl": "2h" }), 400, "ttl cannot be longer than the role's secret_id_ttl"),
        (json!({ "ttl": 0 }), 400, "ttl cannot be longer than the role's secret_id_ttl"),
        (json!({ "metadata": "bad" }), 400, "failed to parse metadata: failed to parse the input: invalid <key,value> format"),
        (json!({ "metadata": { "a": "b" } }), 400, "error converting input for field \"metadata\""),
        (json!({ "cidr_list": "garbage" }), 400, "failed to validate CIDR blocks: invalid CIDR address: garbage"),
        (json!({ "cidr_list": "127.0.0.1/32" }), 400, "failed to verify subset relationship between CIDR blocks on the role [\"10.0.0.0/8\"] and CIDR blocks on the secret ID [\"127.0.0.1/32\"]"),
        (json!({ "token_bound_cidrs": "10.1.2.3" }), 400, "failed to validate token CIDR blocks: invalid CIDR address: 10.1.2.3"),
        (json!({ "token_bound_cidrs": "11.0.0.0/8" }), 400, "failed to verify subset relationship"),
    ];
    for (body, status, msg) in cases {
        let (s, m) = err(e.root(Update, &p, body.clone()).await);
        assert_eq!(s, status, "{body}");
        assert!(m.starts_with(msg), "{body}: {m}");
    }
    let ok = secret(&e, "r", json!({ "num_uses": 1, "ttl": "30m", "cidr_list": "10.1.0.0/16", "token_bound_cidrs": "10.1.2.3/32", "metadata": "a=1,B=2" })).await;
    assert_eq!(
        (
            ok["secret_id_num_uses"].clone(),
            ok["secret_id_ttl"].clone()
        ),
        (json!(1), json!(1800))
    );
    let look = data(
        &e.root(
            Update,
            &format!("{p}/lookup"),
            json!({ "secret_id": ok["secret_id"] }),
        )
        .await
        .unwrap(),
    );
    assert_eq!(look["metadata"], json!({ "a": "1", "b": "2" }));
    assert_eq!(look["token_bound_cidrs"], json!(["10.1.2.3/32"]));
    // Custom secret IDs.
    let c = data(
        &e.root(
            Update,
            &format!("{A}/role/r/custom-secret-id"),
            json!({ "secret_id": "my-secret" }),
        )
        .await
        .unwrap(),
    );
    assert_eq!(c["secret_id"], "my-secret");
    let (s, m) = err(e
        .root(
            Update,
            &format!("{A}/role/r/custom-secret-id"),
            json!({ "secret_id": "my-secret" }),
        )
        .await);
    assert_eq!(
        (s, m.as_str()),
        (
            400,
            "failed to store secret_id: SecretID is already registered"
        )
    );
    assert_eq!(
        err(e
            .root(Update, &format!("{A}/role/r/custom-secret-id"), json!({}))
            .await),
        (400, "missing secret_id".into())
    );
    let rid = role_id(&e, "r").await;
    login(&e, &rid, "my-secret", Some("10.9.9.9"))
        .await
        .unwrap();
    // A secret ID's TTL is capped at the mount's max lease TTL.
    e.root(
        Update,
        "sys/auth/approle/tune",
        json!({ "max_lease_ttl": "20m" }),
    )
    .await
    .unwrap();
    assert_eq!(secret(&e, "r", json!({})).await["secret_id_ttl"], 1200);
}

#[tokio::test]
async fn login_denials() {
    let e = env().await;
    e.root(
        Update,
        &format!("{A}/role/r"),
        json!({ "token_policies": "p" }),
    )
    .await
    .unwrap();
    let rid = role_id(&e, "r").await;
    let s = secret(&e, "r", json!({})).await["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Wrong or missing credentials.
    assert_eq!(
        err(login(&e, "wrong-role-id", &s, Some("127.0.0.1")).await),
        (400, "invalid role or secret ID".into())
    );
    assert_eq!(
        err(login(&e, &rid, "wrong-secret", Some("127.0.0.1")).await),
        (400, "invalid role or secret ID".into())
    );
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{A}/login"),
                json!({ "role_id": rid }),
                Some("127.0.0.1")
            )
            .await),
        (400, "missing secret_id".into())
    );
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{A}/login"),
                json!({ "secret_id": s }),
                Some("127.0.0.1")
            )
            .await),
        (400, "missing role_id".into())
    );
    // A secret ID of another role does not open this one.
    e.root(Update, &format!("{A}/role/other"), json!({}))
        .await
        .unwrap();
    let other = secret(&e, "other", json!({})).await;
    assert_eq!(
        err(login(
            &e,
            &rid,
            other["secret_id"].as_str().unwrap(),
            Some("127.0.0.1")
        )
        .await)
        .0,
        400
    );
    // Exhausted uses.
    let once = secret(&e, "r", json!({ "num_uses": 2 })).await["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    login(&e, &rid, &once, Some("127.0.0.1")).await.unwrap();
    login(&e, &rid, &once, Some("127.0.0.1")).await.unwrap();
    assert_eq!(
        err(login(&e, &rid, &once, Some("127.0.0.1")).await),
        (400, "invalid role or secret ID".into())
    );
    // Expired.
    let short = secret(&e, "r", json!({ "ttl": "1s" })).await["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        err(login(&e, &rid, &short, Some("127.0.0.1")).await),
        (400, "invalid role or secret ID".into())
    );
    assert!(e
        .root(
            Update,
            &format!("{A}/role/r/secret-id/lookup"),
            json!({ "secret_id": short })
        )
        .await
        .unwrap()
        .is_empty());
    // CIDR bounds on the role.
    e.root(
        Update,
        &format!("{A}/role/r/secret-id-bound-cidrs"),
        json!({ "secret_id_bound_cidrs": "10.0.0.0/8" }),
    )
    .await
    .unwrap();
    assert_eq!(
        err(login(&e, &rid, &s, Some("127.0.0.1")).await),
        (
            400,
            "source address \"127.0.0.1\" unauthorized by CIDR restrictions on the role".into()
        )
    );
    assert_eq!(
        err(login(&e, &rid, &s, None).await),
        (500, "failed to get connection information".into())
    );
    login(&e, &rid, &s, Some("10.1.2.3")).await.unwrap();
    // CIDR bounds on the secret ID; a refused login spends no use.
    let bound = secret(
        &e,
        "r",
        json!({ "cidr_list": "10.1.0.0/16", "num_uses": 1 }),
    )
    .await["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        err(login(&e, &rid, &bound, Some("10.2.0.1")).await),
        (
            400,
            "source address \"10.2.0.1\" unauthorized by CIDR restrictions on the secret ID".into()
        )
    );
    login(&e, &rid, &bound, Some("10.1.0.1")).await.unwrap();
    // token_bound_cidrs: a login from outside is refused (the core cannot bind tokens yet).
    e.root(
        Update,
        &format!("{A}/role/r/token-bound-cidrs"),
        json!({ "token_bound_cidrs": "10.5.0.0/16" }),
    )
    .await
    .unwrap();
    assert_eq!(
        err(login(&e, &rid, &s, Some("10.1.2.3")).await),
        (403, "permission denied".into())
    );
    login(&e, &rid, &s, Some("10.5.0.1")).await.unwrap();
    // A destroyed role: its role_id no longer logs in.
    e.root(Delete, &format!("{A}/role/r"), json!({}))
        .await
        .unwrap();
    assert_eq!(
        err(login(&e, &rid, &s, Some("10.5.0.1")).await),
        (400, "invalid role or secret ID".into())
    );
}

#[tokio::test]
async fn bind_secret_id_false() {
    let e = env().await;
    e.root(Update, &format!("{A}/role/open"), json!({ "bind_secret_id": false, "secret_id_bound_cidrs": "10.0.0.0/8", "token_policies": "p" })).await.unwrap();
    let rid = role_id(&e, "open").await;
    // No secret ID needed (one sent is ignored), but only from inside the bound.
    let auth = e
        .login(&format!("{A}/login"), json!({ "role_id": rid }), "10.0.0.5")
        .await;
    assert_eq!(auth.policies, vec!["default", "p"]);
    assert_eq!(
        auth.metadata.unwrap().get("role_name").map(String::as_str),
        Some("open")
    );
    e.login(
        &format!("{A}/login"),
        json!({ "role_id": rid, "secret_id": "whatever" }),
        "10.0.0.5",
    )
    .await;
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{A}/login"),
                json!({ "role_id": rid }),
                Some("192.168.1.1")
            )
            .await)
        .0,
        400
    );
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{A}/login"),
                json!({ "role_id": "nope" }),
                Some("10.0.0.5")
            )
            .await),
        (400, "invalid role or secret ID".into())
    );
    // Secret IDs cannot be issued against it.
    assert_eq!(
        err(e
            .root(Update, &format!("{A}/role/open/secret-id"), json!({}))
            .await),
        (400, "bind_secret_id is not set on the role".into())
    );
    // Turning binding back on requires a secret ID again.
    e.root(
        Update,
        &format!("{A}/role/open/bind-secret-id"),
        json!({ "bind_secret_id": true }),
    )
    .await
    .unwrap();
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{A}/login"),
                json!({ "role_id": rid }),
                Some("10.0.0.5")
            )
            .await),
        (400, "missing secret_id".into())
    );
}

#[tokio::test]
async fn response_wrapped_secret_id() {
    let e = env().await;
    e.root(Update, &format!("{A}/role/r"), json!({}))
        .await
        .unwrap();
    let rid = role_id(&e, "r").await;
    let wrapped = e
        .req(
            Update,
            &format!("{A}/role/r/secret-id"),
            Some(&e.root),
            json!({ "metadata": "{\"a\":\"b\"}" }),
            Some("127.0.0.1"),
            Some(Duration::from_secs(300)),
        )
        .await
        .unwrap();
    assert!(wrapped.data.is_none());
    let info = wrapped.wrap_info.unwrap();
    assert_eq!(info["ttl"], 300);
    assert_eq!(info["creation_path"], "auth/approle/role/r/secret-id");
    let wtoken = info["token"].as_str().unwrap();
    let un = e
        .anon(
            Update,
            "sys/wrapping/unwrap",
            json!({ "token": wtoken }),
            Some("127.0.0.1"),
        )
        .await
        .unwrap();
    let sid = data(&un)["secret_id"].as_str().unwrap().to_string();
    let auth = e
        .login(
            &format!("{A}/login"),
            json!({ "role_id": rid, "secret_id": sid }),
            "127.0.0.1",
        )
        .await;
    assert_eq!(
        auth.metadata.unwrap().get("a").map(String::as_str),
        Some("b")
    );
    // Single use.
    assert_eq!(
        err(e
            .anon(
                Update,
                "sys/wrapping/unwrap",
                json!({ "token": wtoken }),
                Some("127.0.0.1")
            )
            .await)
        .0,
        400
    );
}

#[tokio::test]
async fn tidy_removes_expired_secret_ids() {
    let e = env().await;
    e.root(Update, &format!("{A}/role/r"), json!({}))
        .await
        .unwrap();
    let short = secret(&e, "r", json!({ "ttl": "1s" })).await;
    let keep = secret(&e, "r", json!({})).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Until tidied, the expired accessor is still listed (as Vault), but reads as absent.
    assert_eq!(
        data(
            &e.root(List, &format!("{A}/role/r/secret-id"), json!({}))
                .await
                .unwrap()
        )["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(e
        .root(
            Update,
            &format!("{A}/role/r/secret-id-accessor/lookup"),
            json!({ "secret_id_accessor": short["secret_id_accessor"] })
        )
        .await
        .unwrap()
        .is_empty());
    let t = e
        .root(Update, &format!("{A}/tidy/secret-id"), json!({}))
        .await
        .unwrap();
    assert_eq!(t.status, Some(202));
    assert!(t.warnings[0].starts_with("Tidy operation successfully started"));
    assert_eq!(
        data(
            &e.root(List, &format!("{A}/role/r/secret-id"), json!({}))
                .await
                .unwrap()
        )["keys"],
        json!([keep["secret_id_accessor"]])
    );
    let r = e
        .root(
            Update,
            &format!("{A}/role/r/secret-id-accessor/lookup"),
            json!({ "secret_id_accessor": short["secret_id_accessor"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, Some(404), "the accessor index went with it");
}

#[tokio::test]
async fn lockout_by_role_id() {
    let e = env().await;
    e.root(Update, &format!("{A}/role/r"), json!({}))
        .await
        .unwrap();
    let rid = role_id(&e, "r").await;
    let good = secret(&e, "r", json!({})).await["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..5 {
        assert_eq!(err(login(&e, &rid, "bad", Some("127.0.0.1")).await).0, 400);
    }
    assert_eq!(
        err(login(&e, &rid, &good, Some("127.0.0.1")).await),
        (403, "permission denied".into())
    );
    let locked = data(
        &e.root(Read, &format!("{A}/locked-users"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(locked["counts"], 1);
    assert_eq!(locked["alias_identifiers"], json!([rid]));
    assert_eq!(
        data(
            &e.root(List, &format!("{A}/locked-users"), json!({}))
                .await
                .unwrap()
        )["keys"],
        json!([rid])
    );
    e.root(Update, &format!("{A}/locked-users/unlock/{rid}"), json!({}))
        .await
        .unwrap();
    login(&e, &rid, &good, Some("127.0.0.1")).await.unwrap();
    assert_eq!(
        err(e.root(List, &format!("{A}/locked-users"), json!({})).await).0,
        404
    );
    // CIDR refusals do not count.
    e.root(
        Update,
        &format!("{A}/role/r/secret-id-bound-cidrs"),
        json!({ "secret_id_bound_cidrs": "10.0.0.0/8" }),
    )
    .await
    .unwrap();
    for _ in 0..6 {
        assert_eq!(err(login(&e, &rid, &good, Some("127.0.0.1")).await).0, 400);
    }
    login(&e, &rid, &good, Some("10.0.0.1")).await.unwrap();
}

#[tokio::test]
async fn credentials_are_never_stored_in_clear() {
    let e = env().await;
    e.root(
        Update,
        &format!("{A}/role/r"),
        json!({ "role_id": "my-very-own-role-id" }),
    )
    .await
    .unwrap();
    let s = secret(&e, "r", json!({})).await;
    let custom = "my-custom-secret-id-value";
    e.root(
        Update,
        &format!("{A}/role/r/custom-secret-id"),
        json!({ "secret_id": custom }),
    )
    .await
    .unwrap();
    login(&e, "my-very-own-role-id", custom, Some("127.0.0.1"))
        .await
        .unwrap();
    let sid = s["secret_id"].as_str().unwrap();
    let acc = s["secret_id_accessor"].as_str().unwrap();
    for (k, v) in e.dump().await {
        for needle in [sid, custom, acc] {
            assert!(!k.contains(needle), "key {k} holds a credential");
            assert!(
                !contains(&v, needle) || needle == acc && k.contains("/secret_id/"),
                "value of {k} holds {needle}"
            );
        }
        // The role_id is in the role entry (readable via the API, as Vault), never in a key.
        assert!(!k.contains("my-very-own-role-id"), "key {k}");
    }
}

#[tokio::test]
async fn a_single_use_secret_id_logs_in_once_under_concurrency() {
    let e = std::sync::Arc::new(env().await);
    e.root(Update, &format!("{A}/role/r"), json!({}))
        .await
        .unwrap();
    let rid = role_id(&e, "r").await;
    let s = secret(&e, "r", json!({ "num_uses": 1 })).await["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (e, rid, s) = (e.clone(), rid.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            login(&e, &rid, &s, Some("127.0.0.1")).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap() as usize;
    }
    assert_eq!(ok, 1);
}
