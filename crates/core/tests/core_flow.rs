//! The core end to end, in process: init, unseal, tokens, policies and denials, mounts, seal.

use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::logical::{Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;

mod common;
use common::{call, data, door_core};

async fn unsealed() -> (Arc<Core>, String) {
    let core = Core::new(
        Arc::new(MemoryStorage::new()),
        Registry::default(),
        CoreConfig::default(),
    );
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 3,
                secret_threshold: 2,
            },
            None,
        )
        .await
        .unwrap();
    assert!(core.is_sealed());
    assert!(!core.submit_unseal_key(init.keys[2].clone()).await.unwrap());
    assert!(core.submit_unseal_key(init.keys[0].clone()).await.unwrap());
    (core, init.root_token)
}

#[tokio::test]
async fn sealed_core_answers_only_the_seal_api() {
    let (core, root) = unsealed().await;
    core.seal_now();
    let err = call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        &root,
        json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 503);
    let status = core
        .handle(Request::new(Operation::Read, "sys/seal-status"))
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&status.raw.unwrap().body).unwrap();
    assert_eq!(body["sealed"], true);
    assert_eq!(body["t"], 2);
}

#[tokio::test]
async fn wrong_unseal_shares_do_not_unseal() {
    let core = Core::new(
        Arc::new(MemoryStorage::new()),
        Registry::default(),
        CoreConfig::default(),
    );
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 3,
                secret_threshold: 2,
            },
            None,
        )
        .await
        .unwrap();
    let mut bogus = init.keys[0].clone();
    bogus[5] ^= 0xff;
    core.submit_unseal_key(init.keys[1].clone()).await.unwrap();
    assert!(core.submit_unseal_key(bogus).await.is_err());
    assert!(core.is_sealed());
    // Progress was reset: the right shares still work afterwards.
    core.submit_unseal_key(init.keys[1].clone()).await.unwrap();
    assert!(core.submit_unseal_key(init.keys[2].clone()).await.unwrap());
    // Initializing twice is refused.
    assert!(core
        .initialize(
            SealConfig {
                secret_shares: 1,
                secret_threshold: 1
            },
            None
        )
        .await
        .is_err());
}

#[tokio::test]
async fn policies_grant_least_privilege_and_deny_by_default() {
    let (core, root) = unsealed().await;
    let policy = r#"
        path "cubbyhole/*" { capabilities = ["create", "read", "update", "list"] }
        path "sys/policies/acl/*" { capabilities = ["deny"] }
    "#;
    call(
        &core,
        Operation::Update,
        "sys/policies/acl/app",
        &root,
        json!({ "policy": policy }),
    )
    .await
    .unwrap();
    let created = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "policies": ["app"], "ttl": "1h" }),
    )
    .await
    .unwrap();
    let auth = created.auth.unwrap();
    assert_eq!(auth.policies, vec!["app", "default"]);
    assert_eq!(auth.lease_duration, 3600);
    let app = auth.client_token;
    // Allowed.
    call(
        &core,
        Operation::Update,
        "cubbyhole/x",
        &app,
        json!({ "k": "v" }),
    )
    .await
    .unwrap();
    let read = call(&core, Operation::Read, "cubbyhole/x", &app, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&read)["k"], "v");
    // Denied: not in any policy, explicitly denied, no token, bogus token.
    for (path, op) in [
        ("sys/mounts", Operation::Read),
        ("sys/policies/acl/app", Operation::Read),
        ("auth/token/create", Operation::Update),
    ] {
        let e = call(&core, op, path, &app, json!({})).await.unwrap_err();
        assert_eq!(e.status(), 403, "{path}");
    }
    assert_eq!(
        core.handle(Request::new(Operation::Read, "cubbyhole/x"))
            .await
            .unwrap_err()
            .status(),
        403
    );
    assert_eq!(
        call(
            &core,
            Operation::Read,
            "cubbyhole/x",
            "hvs.bogus",
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
    // Cubbyhole is private per token.
    assert_eq!(
        call(&core, Operation::Read, "cubbyhole/x", &root, json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
    // Capabilities answers.
    let caps = call(
        &core,
        Operation::Update,
        "sys/capabilities-self",
        &app,
        json!({ "paths": ["cubbyhole/x", "secret/y"] }),
    )
    .await
    .unwrap();
    // The default policy's `cubbyhole/*` rule merges with app's into one.
    assert_eq!(
        data(&caps)["cubbyhole/x"],
        json!(["create", "delete", "list", "read", "update"])
    );
    assert_eq!(data(&caps)["secret/y"], json!(["deny"]));
}

#[tokio::test]
async fn token_tree_revocation_and_ttl() {
    let (core, root) = unsealed().await;
    let may_create = r#"path "auth/token/create" { capabilities = ["update"] }"#;
    call(
        &core,
        Operation::Update,
        "sys/policies/acl/tokens",
        &root,
        json!({ "policy": may_create }),
    )
    .await
    .unwrap();
    let parent = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "policies": ["tokens"] }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    let child = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &parent.client_token,
        json!({}),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    let orphan = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "no_parent": true }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert!(orphan.orphan);
    // A child may not get policies its parent lacks.
    let e = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &parent.client_token,
        json!({ "policies": ["root"] }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    // Looking up by accessor does not reveal the token.
    let by_acc = call(
        &core,
        Operation::Update,
        "auth/token/lookup-accessor",
        &root,
        json!({ "accessor": child.accessor }),
    )
    .await
    .unwrap();
    assert_eq!(data(&by_acc)["id"], "");
    // Revoking the parent revokes the child.
    call(
        &core,
        Operation::Update,
        "auth/token/revoke",
        &root,
        json!({ "token": parent.client_token }),
    )
    .await
    .unwrap();
    assert_eq!(
        call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            &child.client_token,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
    call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        &orphan.client_token,
        json!({}),
    )
    .await
    .unwrap();
    // num_uses: the last use works, the next is refused.
    let once = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "num_uses": 1 }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        &once.client_token,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            &once.client_token,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
    // TTLs are enforced.
    let short = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "ttl": "1s" }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            &short.client_token,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let storage = Arc::new(MemoryStorage::new());
    let core = Core::new(storage.clone(), Registry::default(), CoreConfig::default());
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 1,
                secret_threshold: 1,
            },
            Some("my-root-token-value".into()),
        )
        .await
        .unwrap();
    core.submit_unseal_key(init.keys[0].clone()).await.unwrap();
    core.barrier.seal();
    // Even decrypting everything, no key holds the token; and raw storage never has it in clear.
    use tresor_storage::Storage;
    let mut stack = vec![String::new()];
    while let Some(p) = stack.pop() {
        for k in storage.list(&p).await.unwrap() {
            let full = format!("{p}{k}");
            assert!(!full.contains("my-root-token-value"));
            if k.ends_with('/') {
                stack.push(full);
            } else {
                let v = storage.get(&full).await.unwrap().unwrap();
                assert!(!v.windows(8).any(|w| w == b"my-root-"), "{full}");
            }
        }
    }
}

#[tokio::test]
async fn mounts_and_errors() {
    let (core, root) = unsealed().await;
    // Unknown engine type: 400; unknown path: 404; reserved path: 400.
    let e = call(
        &core,
        Operation::Update,
        "sys/mounts/foo",
        &root,
        json!({ "type": "nope" }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    let e = call(&core, Operation::Read, "nothing/here", &root, json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 404);
    let e = call(
        &core,
        Operation::Update,
        "sys/mounts/sys/x",
        &root,
        json!({ "type": "cubbyhole" }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    let e = call(
        &core,
        Operation::Read,
        "cubbyhole/../sys/mounts",
        &root,
        json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    let mounts = call(&core, Operation::Read, "sys/mounts", &root, json!({}))
        .await
        .unwrap();
    assert!(data(&mounts).get("cubbyhole/").is_some());
    // Rotation adds a term; data written before stays readable.
    call(
        &core,
        Operation::Update,
        "cubbyhole/a",
        &root,
        json!({ "v": 1 }),
    )
    .await
    .unwrap();
    call(&core, Operation::Update, "sys/rotate", &root, json!({}))
        .await
        .unwrap();
    let ks = call(&core, Operation::Read, "sys/key-status", &root, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&ks)["term"], 2);
    assert_eq!(
        data(&ks)["encryptions"],
        0,
        "a new term has encrypted nothing yet"
    );
    call(
        &core,
        Operation::Update,
        "cubbyhole/b",
        &root,
        json!({ "v": 2 }),
    )
    .await
    .unwrap();
    let ks = call(&core, Operation::Read, "sys/key-status", &root, json!({}))
        .await
        .unwrap();
    assert!(data(&ks)["encryptions"].as_u64().unwrap() >= 1);
    assert_eq!(
        data(
            &call(&core, Operation::Read, "cubbyhole/a", &root, json!({}))
                .await
                .unwrap()
        )["v"],
        1
    );
}

#[tokio::test]
async fn response_wrapping_is_single_use() {
    let (core, root) = unsealed().await;
    let mut req = Request::new(Operation::Update, "auth/token/create")
        .with_token(&root)
        .with_data(json!({ "period": "30m" }));
    req.wrap_ttl = Some(std::time::Duration::from_secs(900));
    let wrapped = core.handle(req).await.unwrap();
    assert!(wrapped.auth.is_none());
    let info = wrapped.wrap_info.unwrap();
    assert_eq!(info["ttl"], 900);
    assert_eq!(info["creation_path"], "auth/token/create");
    let wtoken = info["token"].as_str().unwrap().to_string();
    // The wrapping token can do nothing but unwrap and look up.
    assert_eq!(
        call(&core, Operation::Read, "cubbyhole/x", &wtoken, json!({}))
            .await
            .unwrap_err()
            .status(),
        403
    );
    let look = core
        .handle(
            Request::new(Operation::Update, "sys/wrapping/lookup")
                .with_data(json!({ "token": wtoken })),
        )
        .await
        .unwrap();
    assert_eq!(data(&look)["creation_ttl"], 900);
    let un = core
        .handle(Request::new(Operation::Update, "sys/wrapping/unwrap").with_token(&wtoken))
        .await
        .unwrap();
    let inner = un.auth.unwrap();
    assert_eq!(inner.lease_duration, 1800);
    assert_eq!(info["wrapped_accessor"], inner.accessor);
    call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        &inner.client_token,
        json!({}),
    )
    .await
    .unwrap();
    // Second unwrap: a clean 400.
    let again = core
        .handle(
            Request::new(Operation::Update, "sys/wrapping/unwrap")
                .with_data(json!({ "token": wtoken })),
        )
        .await
        .unwrap_err();
    assert_eq!(again.status(), 400);
    // Wrapping arbitrary data needs a TTL.
    let e = call(
        &core,
        Operation::Update,
        "sys/wrapping/wrap",
        &root,
        json!({ "a": 1 }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    // With a TTL, any data (even none) is wrapped and comes back exactly once.
    for payload in [json!({ "a": 1 }), json!({})] {
        let mut req = Request::new(Operation::Update, "sys/wrapping/wrap")
            .with_token(&root)
            .with_data(payload.clone());
        req.wrap_ttl = Some(std::time::Duration::from_secs(60));
        let w = core.handle(req).await.unwrap().wrap_info.unwrap();
        let t = w["token"].as_str().unwrap();
        let un = core
            .handle(Request::new(Operation::Update, "sys/wrapping/unwrap").with_token(t))
            .await
            .unwrap();
        assert_eq!(data(&un), payload);
    }
}

#[tokio::test]
async fn rekey_replaces_the_shares() {
    let core = Core::new(
        Arc::new(MemoryStorage::new()),
        Registry::default(),
        CoreConfig::default(),
    );
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 3,
                secret_threshold: 2,
            },
            None,
        )
        .await
        .unwrap();
    for k in &init.keys[..2] {
        core.submit_unseal_key(k.clone()).await.unwrap();
    }
    let raw = |r: Response| -> Value { serde_json::from_slice(&r.raw.unwrap().body).unwrap() };
    let started = raw(core
        .handle(
            Request::new(Operation::Update, "sys/rekey/init")
                .with_data(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await
        .unwrap());
    let nonce = started["nonce"].as_str().unwrap().to_string();
    assert_eq!(started["required"], 2);
    // A wrong nonce is refused; a second init while one runs is refused.
    let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let e = core
        .handle(
            Request::new(Operation::Update, "sys/rekey/update")
                .with_data(json!({"key": hex(&init.keys[0]), "nonce": "nope"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400);
    assert_eq!(
        core.handle(
            Request::new(Operation::Update, "sys/rekey/init")
                .with_data(json!({"secret_shares": 1, "secret_threshold": 1}))
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    let p = raw(core
        .handle(
            Request::new(Operation::Update, "sys/rekey/update")
                .with_data(json!({"key": hex(&init.keys[0]), "nonce": nonce})),
        )
        .await
        .unwrap());
    assert_eq!(p["progress"], 1);
    let done = raw(core
        .handle(
            Request::new(Operation::Update, "sys/rekey/update")
                .with_data(json!({"key": hex(&init.keys[2]), "nonce": nonce})),
        )
        .await
        .unwrap());
    assert_eq!(done["complete"], true);
    let new_key = tresor_core::seal::decode_key(done["keys"][0].as_str().unwrap()).unwrap();
    core.seal_now();
    // Old shares no longer unseal; the new one does.
    core.submit_unseal_key(init.keys[0].clone())
        .await
        .unwrap_err();
    assert!(core.is_sealed());
    assert!(core.submit_unseal_key(new_key).await.unwrap());
}

#[tokio::test]
async fn token_lifecycle_endpoints() {
    let (core, root) = unsealed().await;
    let t = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "ttl": "10m", "explicit_max_ttl": "20m", "display_name": "ci" }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    let look = call(
        &core,
        Operation::Update,
        "auth/token/lookup",
        &root,
        json!({ "token": t.client_token }),
    )
    .await
    .unwrap();
    assert_eq!(data(&look)["display_name"], "token-ci");
    assert_eq!(data(&look)["id"], t.client_token.as_str());
    // Renewal is bounded by explicit_max_ttl.
    let r = call(
        &core,
        Operation::Update,
        "auth/token/renew-self",
        &t.client_token,
        json!({ "increment": "1h" }),
    )
    .await
    .unwrap();
    assert!(r.auth.unwrap().lease_duration <= 1200);
    // Non-renewable tokens refuse renewal.
    let nr = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "renewable": false, "ttl": "1h" }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "auth/token/renew-self",
            &nr.client_token,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    // revoke-orphan keeps the children alive, as orphans.
    let may_create = r#"path "auth/token/create" { capabilities = ["update"] }"#;
    call(
        &core,
        Operation::Update,
        "sys/policies/acl/tokens",
        &root,
        json!({ "policy": may_create }),
    )
    .await
    .unwrap();
    let p = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "policies": ["tokens"] }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    let c = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &p.client_token,
        json!({}),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert!(!c.orphan);
    call(
        &core,
        Operation::Update,
        "auth/token/revoke-orphan",
        &root,
        json!({ "token": p.client_token }),
    )
    .await
    .unwrap();
    assert_eq!(
        call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            &p.client_token,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
    let child = call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        &c.client_token,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&child)["orphan"], true);
    // revoke-accessor and bad inputs.
    call(
        &core,
        Operation::Update,
        "auth/token/revoke-accessor",
        &root,
        json!({ "accessor": t.accessor }),
    )
    .await
    .unwrap();
    assert_eq!(
        call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            &t.client_token,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "auth/token/revoke-accessor",
            &root,
            json!({ "accessor": "nope" })
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "auth/token/lookup",
            &root,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "auth/token/create",
            &root,
            json!({ "ttl": "soon" })
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "auth/token/create",
            &root,
            json!({ "num_uses": -1 })
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    // Roles constrain policies.
    call(
        &core,
        Operation::Update,
        "auth/token/roles/ops",
        &root,
        json!({ "allowed_policies": ["ops"], "orphan": true }),
    )
    .await
    .unwrap();
    let rt = call(
        &core,
        Operation::Update,
        "auth/token/create/ops",
        &root,
        json!({}),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert_eq!(rt.policies, vec!["default", "ops"]);
    assert!(rt.orphan);
    let e = call(
        &core,
        Operation::Update,
        "auth/token/create/ops",
        &root,
        json!({ "policies": ["admin"] }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    let roles = call(&core, Operation::List, "auth/token/roles", &root, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&roles)["keys"], json!(["ops"]));
}

#[tokio::test]
async fn capabilities_by_token_and_accessor_and_policy_errors() {
    let (core, root) = unsealed().await;
    call(
        &core,
        Operation::Update,
        "sys/policies/acl/ro",
        &root,
        json!({ "policy": r#"path "cubbyhole/ro/*" { capabilities = ["read"] }"# }),
    )
    .await
    .unwrap();
    let t = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "policies": ["ro"], "no_default_policy": true }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert_eq!(t.policies, vec!["ro"]);
    let c = call(
        &core,
        Operation::Update,
        "sys/capabilities",
        &root,
        json!({ "token": t.client_token, "path": "cubbyhole/ro/x" }),
    )
    .await
    .unwrap();
    assert_eq!(data(&c)["capabilities"], json!(["read"]));
    let c = call(
        &core,
        Operation::Update,
        "sys/capabilities-accessor",
        &root,
        json!({ "accessor": t.accessor, "paths": ["cubbyhole/other"] }),
    )
    .await
    .unwrap();
    assert_eq!(data(&c)["cubbyhole/other"], json!(["deny"]));
    let c = call(
        &core,
        Operation::Update,
        "sys/capabilities-self",
        &root,
        json!({ "path": "anything" }),
    )
    .await
    .unwrap();
    assert_eq!(data(&c)["capabilities"], json!(["root"]));
    // Policy errors: bad HCL, unknown capability, root and default are protected, missing is 404.
    for bad in ["path \"x\" {", r#"path "x" { capabilities = ["fly"] }"#] {
        assert_eq!(
            call(
                &core,
                Operation::Update,
                "sys/policies/acl/bad",
                &root,
                json!({ "policy": bad })
            )
            .await
            .unwrap_err()
            .status(),
            400
        );
    }
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "sys/policies/acl/root",
            &root,
            json!({ "policy": "" })
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        call(
            &core,
            Operation::Delete,
            "sys/policies/acl/default",
            &root,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        call(
            &core,
            Operation::Read,
            "sys/policies/acl/missing",
            &root,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        404
    );
    // Changing a policy takes effect at once for existing tokens.
    call(
        &core,
        Operation::Update,
        "sys/policies/acl/ro",
        &root,
        json!({ "policy": r#"path "cubbyhole/ro/*" { capabilities = ["read", "update"] }"# }),
    )
    .await
    .unwrap();
    let c = call(
        &core,
        Operation::Update,
        "sys/capabilities",
        &root,
        json!({ "token": t.client_token, "path": "cubbyhole/ro/x" }),
    )
    .await
    .unwrap();
    assert_eq!(data(&c)["capabilities"], json!(["read", "update"]));
}

#[tokio::test]
async fn mount_tune_and_remount() {
    let (core, root) = unsealed().await;
    // Tuning the cubbyhole's TTLs, then reading them back.
    call(
        &core,
        Operation::Update,
        "sys/mounts/cubbyhole/tune",
        &root,
        json!({ "default_lease_ttl": "1h", "max_lease_ttl": "2h" }),
    )
    .await
    .unwrap();
    let t = call(
        &core,
        Operation::Read,
        "sys/mounts/cubbyhole/tune",
        &root,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&t)["default_lease_ttl"], 3600);
    assert_eq!(data(&t)["max_lease_ttl"], 7200);
    let e = call(
        &core,
        Operation::Update,
        "sys/mounts/cubbyhole/tune",
        &root,
        json!({ "default_lease_ttl": "3h" }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    // System mounts cannot be moved or removed.
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "sys/remount",
            &root,
            json!({ "from": "cubbyhole", "to": "c2" })
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
    assert_eq!(
        call(&core, Operation::Delete, "sys/mounts/sys", &root, json!({}))
            .await
            .unwrap_err()
            .status(),
        400
    );
    let e = call(
        &core,
        Operation::Update,
        "sys/remount",
        &root,
        json!({ "from": "nothing" }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
}

#[tokio::test]
async fn login_tokens_are_bound_to_their_cidrs_and_path() {
    use tresor_core::logical::LoginGrant;
    let (core, _root) = door_core(|user| LoginGrant {
        policies: vec!["default".into()],
        display_name: user.into(),
        bound_cidrs: vec!["10.0.0.0/8".into()],
        alias_name: Some(user.into()),
        explicit_max_ttl: Some(std::time::Duration::from_secs(60)),
        ttl: Some(std::time::Duration::from_secs(3600)),
        renewable: true,
        ..Default::default()
    })
    .await;
    let auth = core
        .handle(Request::new(Operation::Update, "auth/door/login/ann"))
        .await
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.lease_duration, 60, "explicit_max_ttl caps the TTL");
    let from = |addr: &str| {
        let mut r =
            Request::new(Operation::Read, "auth/token/lookup-self").with_token(&auth.client_token);
        r.remote_addr = Some(addr.to_string());
        r
    };
    let me = core.handle(from("10.1.2.3")).await.unwrap();
    assert_eq!(data(&me)["path"], "auth/door/login/ann");
    assert_eq!(data(&me)["bound_cidrs"], json!(["10.0.0.0/8"]));
    assert_eq!(
        core.handle(from("192.168.1.1")).await.unwrap_err().status(),
        403
    );
    assert_eq!(
        core.handle(
            Request::new(Operation::Read, "auth/token/lookup-self").with_token(&auth.client_token)
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
}

#[tokio::test]
async fn logins_resolve_to_entities_whose_groups_grant_templated_policies() {
    use tresor_core::logical::LoginGrant;
    let (core, root) = door_core(|user| LoginGrant {
        alias_name: Some(user.into()),
        renewable: true,
        ..Default::default()
    })
    .await;
    let login = |user: &str| {
        core.handle(Request::new(
            Operation::Update,
            format!("auth/door/login/{user}"),
        ))
    };
    let ann = login("ann").await.unwrap().auth.unwrap();
    assert!(!ann.entity_id.is_empty());
    // The same alias logs in as the same entity; another user gets another one.
    assert_eq!(
        login("ann").await.unwrap().auth.unwrap().entity_id,
        ann.entity_id
    );
    let bob = login("bob").await.unwrap().auth.unwrap();
    assert_ne!(bob.entity_id, ann.entity_id);
    // A templated policy, granted through a group.
    let tmpl = r#"path "secret/data/{{identity.entity.id}}/*" { capabilities = ["read"] }"#;
    call(
        &core,
        Operation::Update,
        "sys/policies/acl/own-secrets",
        &root,
        json!({ "policy": tmpl }),
    )
    .await
    .unwrap();
    call(&core, Operation::Update, "identity/group", &root, json!({ "name": "devs", "policies": ["own-secrets"], "member_entity_ids": [ann.entity_id] }))
        .await
        .unwrap();
    let caps = |token: &str, path: String| {
        let core = core.clone();
        let token = token.to_string();
        async move {
            let r = call(
                &core,
                Operation::Update,
                "sys/capabilities-self",
                &token,
                json!({ "path": path }),
            )
            .await
            .unwrap();
            data(&r)["capabilities"].clone()
        }
    };
    assert_eq!(
        caps(
            &ann.client_token,
            format!("secret/data/{}/db", ann.entity_id)
        )
        .await,
        json!(["read"])
    );
    assert_eq!(
        caps(
            &ann.client_token,
            format!("secret/data/{}/db", bob.entity_id)
        )
        .await,
        json!(["deny"])
    );
    // Bob is not in the group: nothing.
    assert_eq!(
        caps(
            &bob.client_token,
            format!("secret/data/{}/db", bob.entity_id)
        )
        .await,
        json!(["deny"])
    );
    // A disabled entity's tokens stop working.
    call(
        &core,
        Operation::Update,
        &format!("identity/entity/id/{}", ann.entity_id),
        &root,
        json!({ "disabled": true }),
    )
    .await
    .unwrap();
    assert_eq!(
        call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            &ann.client_token,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        403
    );
}

#[tokio::test]
async fn auth_methods_tune_through_sys_mounts_and_moves_report_their_status() {
    let (core, root) = door_core(|user| tresor_core::logical::LoginGrant {
        display_name: user.into(),
        ..Default::default()
    })
    .await;
    // As Vault: `sys/mounts/auth/<path>/tune` is the auth method's tune.
    let up = |path: &'static str, body: Value| {
        let core = core.clone();
        let root = root.clone();
        async move { call(&core, Operation::Update, path, &root, body).await }
    };
    up(
        "sys/mounts/auth/door/tune",
        json!({ "default_lease_ttl": "1h" }),
    )
    .await
    .unwrap();
    let t = call(
        &core,
        Operation::Read,
        "sys/auth/door/tune",
        &root,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&t)["default_lease_ttl"], 3600);
    let t = call(
        &core,
        Operation::Read,
        "sys/mounts/auth/door/tune",
        &root,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&t)["default_lease_ttl"], 3600);
    let e = up(
        "sys/mounts/auth/nothing/tune",
        json!({ "default_lease_ttl": "1h" }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    // A move answers a migration id whose status says where it went.
    let moved = up(
        "sys/remount",
        json!({ "from": "auth/door", "to": "auth/door2" }),
    )
    .await
    .unwrap();
    let id = data(&moved)["migration_id"].as_str().unwrap().to_string();
    let st = call(
        &core,
        Operation::Read,
        &format!("sys/remount/status/{id}"),
        &root,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&st)["migration_id"], id.as_str());
    let info = &data(&st)["migration_info"];
    assert_eq!(
        (
            &info["source_mount"],
            &info["target_mount"],
            &info["status"]
        ),
        (
            &json!("auth/door/"),
            &json!("auth/door2/"),
            &json!("success")
        )
    );
    let e = call(
        &core,
        Operation::Read,
        "sys/remount/status/nope",
        &root,
        json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 404);
}
