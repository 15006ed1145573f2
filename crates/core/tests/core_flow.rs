//! The core end to end, in process: init, unseal, tokens, policies and denials, mounts, seal.

use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::logical::{Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;

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

async fn call(
    core: &Core,
    op: Operation,
    path: &str,
    token: &str,
    data: Value,
) -> Result<Response, Error> {
    core.handle(Request::new(op, path).with_token(token).with_data(data))
        .await
}

fn data(r: &Response) -> Value {
    Value::Object(r.data.clone().unwrap_or_default())
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
}
