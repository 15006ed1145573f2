//! Batch tokens end to end, in process: `hvb.` tokens that carry their own sealed entry, are
//! never stored, cannot be renewed, revoked or used to make tokens, die with their TTL and
//! their parent, and come from logins when the role or the mount asks for them.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tresor_core::core::{CoreConfig, Registry};
use tresor_core::logical::{LoginGrant, Operation, Request};
use tresor_storage::memory::MemoryStorage;
use tresor_storage::Storage;

mod common;
use common::{call, data, door_core, door_core_on, unsealed_with};

/// How many entries the storage holds.
async fn stored(storage: &MemoryStorage) -> usize {
    storage.export().await.unwrap().len()
}

/// Writes an ACL policy as root.
async fn policy(core: &tresor_core::core::Core, root: &str, name: &str, hcl: &str) {
    call(
        core,
        Operation::Update,
        &format!("sys/policies/acl/{name}"),
        root,
        json!({ "policy": hcl }),
    )
    .await
    .unwrap();
}

async fn status_of(core: &tresor_core::core::Core, op: Operation, path: &str, token: &str) -> u16 {
    match call(core, op, path, token, json!({})).await {
        Ok(_) => 200,
        Err(e) => e.status(),
    }
}

async fn error_text(
    core: &tresor_core::core::Core,
    op: Operation,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, String) {
    let e = call(core, op, path, token, body).await.unwrap_err();
    (e.status(), e.to_string())
}

#[tokio::test]
async fn batch_tokens_are_self_contained_and_never_stored() {
    let storage = Arc::new(MemoryStorage::new());
    let (core, root, _) =
        unsealed_with(storage.clone(), Registry::default(), CoreConfig::default()).await;
    policy(&core, &root, "maker", "path \"auth/token/create\" { capabilities = [\"update\"] }\npath \"cubbyhole/*\" { capabilities = [\"update\"] }").await;
    let before = stored(&storage).await;
    let resp = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "type": "batch", "policies": ["maker"], "ttl": "1h", "meta": { "app": "web" } }),
    )
    .await
    .unwrap();
    let auth = resp.auth.unwrap();
    let token = auth.client_token.clone();
    assert!(token.starts_with("hvb."), "{token}");
    assert_eq!(auth.token_type, "batch");
    assert_eq!(auth.accessor, "");
    assert!(!auth.renewable);
    assert!(!auth.orphan, "a child of the root token");
    assert_eq!(
        stored(&storage).await,
        before,
        "a batch token writes nothing"
    );

    // It authenticates, and describes itself.
    let me = data(
        &call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            &token,
            json!({}),
        )
        .await
        .unwrap(),
    );
    assert_eq!(me["type"], "batch");
    assert_eq!(me["id"], token.as_str());
    assert_eq!(me["accessor"], "");
    assert_eq!(me["policies"], json!(["default", "maker"]));
    assert_eq!(me["meta"], json!({ "app": "web" }));
    assert_eq!(me["renewable"], false);
    let ttl = me["ttl"].as_i64().unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "{ttl}");
    let looked = data(
        &call(
            &core,
            Operation::Update,
            "auth/token/lookup",
            &root,
            json!({ "token": token }),
        )
        .await
        .unwrap(),
    );
    assert_eq!(looked["type"], "batch");
    // Its policies, nothing more.
    assert_eq!(
        status_of(&core, Operation::Read, "sys/mounts", &token).await,
        403
    );

    // What only a stored token can do is refused with Vault's words.
    for (path, body, text) in [
        (
            "auth/token/renew-self",
            json!({}),
            "batch tokens cannot be renewed",
        ),
        (
            "auth/token/revoke-self",
            json!({}),
            "batch tokens cannot be revoked",
        ),
        (
            "auth/token/create",
            json!({}),
            "batch tokens cannot create more tokens",
        ),
        (
            "cubbyhole/note",
            json!({ "a": "b" }),
            "only supported by \"service\" type tokens",
        ),
    ] {
        let (status, message) = error_text(&core, Operation::Update, path, &token, body).await;
        assert_eq!(status, 400, "{path}: {message}");
        assert!(message.contains(text), "{path}: {message}");
    }
    for path in [
        "auth/token/renew",
        "auth/token/revoke",
        "auth/token/revoke-orphan",
    ] {
        let (status, message) = error_text(
            &core,
            Operation::Update,
            path,
            &root,
            json!({ "token": token }),
        )
        .await;
        assert_eq!(status, 400, "{path}: {message}");
        assert!(
            message.contains("batch tokens cannot be"),
            "{path}: {message}"
        );
    }
    // Still valid after all that.
    assert_eq!(
        status_of(&core, Operation::Read, "auth/token/lookup-self", &token).await,
        200
    );

    // It survives a seal, an unseal and a rotation of the barrier key: the keyring keeps old
    // terms.
    call(&core, Operation::Update, "sys/rotate", &root, json!({}))
        .await
        .unwrap();
    assert_eq!(
        status_of(&core, Operation::Read, "auth/token/lookup-self", &token).await,
        200
    );
}

#[tokio::test]
async fn forged_and_tampered_batch_tokens_are_refused() {
    let storage = Arc::new(MemoryStorage::new());
    let (core, root, _) =
        unsealed_with(storage.clone(), Registry::default(), CoreConfig::default()).await;
    let token = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "type": "batch", "policies": ["default"] }),
    )
    .await
    .unwrap()
    .auth
    .unwrap()
    .client_token;
    // One character changed in the sealed part.
    let mut bytes = token.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    // A ciphertext the barrier made for a stored entry: sealed under the same key, but bound to
    // its storage key, so it is no token.
    use base64::Engine;
    let (_, ciphertext) = storage
        .export()
        .await
        .unwrap()
        .into_iter()
        .find(|(k, _)| k.starts_with("sys/token/id/"))
        .expect("the root token's entry");
    let stored_entry = format!(
        "hvb.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ciphertext)
    );
    for bad in [
        tampered.as_str(),
        stored_entry.as_str(),
        "hvb.",
        "hvb.not base64!",
        "hvb.AAAA",
    ] {
        assert_eq!(
            status_of(&core, Operation::Read, "auth/token/lookup-self", bad).await,
            403,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn batch_tokens_end_with_their_ttl_and_their_parent() {
    let (core, root, _) = unsealed_with(
        Arc::new(MemoryStorage::new()),
        Registry::default(),
        CoreConfig::default(),
    )
    .await;
    policy(
        &core,
        &root,
        "maker",
        "path \"auth/token/create\" { capabilities = [\"update\"] }",
    )
    .await;
    let parent = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "policies": ["maker"] }),
    )
    .await
    .unwrap()
    .auth
    .unwrap()
    .client_token;
    let child = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &parent,
        json!({ "type": "batch" }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert_eq!(child.token_type, "batch");
    assert_eq!(
        child.policies,
        vec!["default".to_string(), "maker".to_string()]
    );
    let orphan = call(
        &core,
        Operation::Update,
        "auth/token/create-orphan",
        &root,
        json!({ "type": "batch", "policies": ["default"], "ttl": "1s" }),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert!(orphan.orphan);
    let child = child.client_token;
    let orphan = orphan.client_token;
    assert_eq!(
        status_of(&core, Operation::Read, "auth/token/lookup-self", &child).await,
        200
    );
    assert_eq!(
        status_of(&core, Operation::Read, "auth/token/lookup-self", &orphan).await,
        200
    );

    // Revoking the parent ends the batch child (checked on every use).
    call(
        &core,
        Operation::Update,
        "auth/token/revoke-self",
        &parent,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        status_of(&core, Operation::Read, "auth/token/lookup-self", &child).await,
        403
    );

    // The orphan lives its one second.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        status_of(&core, Operation::Read, "auth/token/lookup-self", &orphan).await,
        403
    );
}

#[tokio::test]
async fn batch_token_creation_refuses_what_a_batch_token_cannot_honour() {
    let (core, root, _) = unsealed_with(
        Arc::new(MemoryStorage::new()),
        Registry::default(),
        CoreConfig::default(),
    )
    .await;
    for (body, text) in [
        (
            json!({ "type": "batch", "num_uses": 3 }),
            "batch tokens cannot have \"num_uses\" set",
        ),
        (
            json!({ "type": "batch", "period": "1h" }),
            "batch tokens cannot have \"period\" set",
        ),
        (
            json!({ "type": "batch", "explicit_max_ttl": "1h" }),
            "batch tokens cannot have \"explicit_max_ttl\" set",
        ),
        (
            json!({ "type": "batch" }),
            "batch tokens cannot be root tokens",
        ),
        (
            json!({ "type": "batch", "id": "my-token", "policies": ["default"] }),
            "custom ID",
        ),
        (json!({ "type": "bogus" }), "invalid 'token_type' value"),
        // Custom IDs never look like generated or batch tokens (Vault's rules).
        (json!({ "id": "hvb.forged" }), "cannot have a '.'"),
        (json!({ "id": "hvs.mine" }), "cannot have the 'hvs.' prefix"),
    ] {
        let (status, message) = error_text(
            &core,
            Operation::Update,
            "auth/token/create",
            &root,
            body.clone(),
        )
        .await;
        assert_eq!(status, 400, "{body}: {message}");
        assert!(message.contains(text), "{body}: {message}");
    }

    // A chosen ID is taken once: the second create is refused and the first token still works.
    let chosen = json!({ "id": "my-chosen-id", "policies": ["default"] });
    call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        chosen.clone(),
    )
    .await
    .unwrap();
    let (status, message) =
        error_text(&core, Operation::Update, "auth/token/create", &root, chosen).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("duplicate ID"), "{message}");
    assert_eq!(
        status_of(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            "my-chosen-id"
        )
        .await,
        200
    );

    // A token with a use limit makes no tokens: a child would escape the count.
    policy(
        &core,
        &root,
        "maker",
        "path \"auth/token/create\" { capabilities = [\"update\"] }",
    )
    .await;
    let limited = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "policies": ["maker"], "num_uses": 5 }),
    )
    .await
    .unwrap()
    .auth
    .unwrap()
    .client_token;
    for body in [json!({ "type": "batch" }), json!({})] {
        let (status, message) = error_text(
            &core,
            Operation::Update,
            "auth/token/create",
            &limited,
            body,
        )
        .await;
        assert_eq!(status, 400, "{message}");
        assert!(message.contains("restricted use token"), "{message}");
    }

    // Token roles: a batch role must describe tokens a batch token can be.
    let role = |body: serde_json::Value| {
        let core = core.clone();
        let root = root.clone();
        async move {
            call(
                &core,
                Operation::Update,
                "auth/token/roles/batcher",
                &root,
                body,
            )
            .await
        }
    };
    for (body, text) in [
        (
            json!({ "token_type": "batch", "renewable": false }),
            "non-orphan tokens",
        ),
        (
            json!({ "token_type": "batch", "orphan": true }),
            "renewable tokens",
        ),
        (
            json!({ "token_type": "batch", "orphan": true, "renewable": false, "period": "1h" }),
            "periodic tokens",
        ),
        (
            json!({ "token_type": "sometimes" }),
            "invalid 'token_type' value",
        ),
    ] {
        let e = role(body.clone()).await.unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        assert!(e.to_string().contains(text), "{body}: {e}");
    }
    role(json!({
        "token_type": "batch", "orphan": true, "renewable": false,
        "allowed_policies": ["default"]
    }))
    .await
    .unwrap();
    let auth = call(
        &core,
        Operation::Update,
        "auth/token/create/batcher",
        &root,
        json!({}),
    )
    .await
    .unwrap()
    .auth
    .unwrap();
    assert_eq!(auth.token_type, "batch");
    assert!(auth.orphan);
    // A role that only defaults to batch lets the request choose.
    role(json!({ "token_type": "default-batch", "orphan": false, "renewable": true }))
        .await
        .unwrap();
    for (asked, expect) in [
        (json!({}), "batch"),
        (json!({ "type": "service" }), "service"),
    ] {
        let auth = call(
            &core,
            Operation::Update,
            "auth/token/create/batcher",
            &root,
            asked,
        )
        .await
        .unwrap()
        .auth
        .unwrap();
        assert_eq!(auth.token_type, expect);
    }
}

#[tokio::test]
async fn logins_issue_batch_tokens_as_the_role_and_the_mount_decide() {
    let (core, root) = door_core(|user| LoginGrant {
        policies: vec!["default".into()],
        display_name: user.into(),
        alias_name: Some(user.into()),
        ttl: Some(Duration::from_secs(600)),
        renewable: true,
        // The user name says what the role asks for.
        token_type: user.split('-').next().unwrap_or_default().to_string(),
        num_uses: if user.ends_with("-limited") { 2 } else { 0 },
        ..Default::default()
    })
    .await;
    let login = |user: &'static str| {
        let core = core.clone();
        async move {
            core.handle(Request::new(
                Operation::Update,
                format!("auth/door/login/{user}"),
            ))
            .await
        }
    };
    let kind = |user: &'static str| {
        let login = login(user);
        async move { login.await.unwrap().auth.unwrap().token_type }
    };
    // Untuned mount (default-service): the role decides.
    assert_eq!(kind("batch-ann").await, "batch");
    assert_eq!(kind("service-ann").await, "service");
    assert_eq!(kind("default-ann").await, "service");
    let auth = login("batch-bob").await.unwrap().auth.unwrap();
    assert_eq!(auth.accessor, "");
    assert!(!auth.renewable);
    assert_eq!(auth.lease_duration, 600);
    assert!(
        !auth.entity_id.is_empty(),
        "the login resolved to an entity"
    );
    let me = data(
        &call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            &auth.client_token,
            json!({}),
        )
        .await
        .unwrap(),
    );
    assert_eq!(me["type"], "batch");
    assert_eq!(me["path"], "auth/door/login/batch-bob");
    assert_eq!(me["entity_id"], auth.entity_id.as_str());
    // A use limit cannot be honoured by a token that is never stored.
    let e = login("batch-limited").await.unwrap_err();
    assert_eq!(e.status(), 400, "{e}");

    let tune = |body: serde_json::Value| {
        let core = core.clone();
        let root = root.clone();
        async move { call(&core, Operation::Update, "sys/auth/door/tune", &root, body).await }
    };
    // The mount's `default-batch`: batch unless the role says service.
    tune(json!({ "token_type": "default-batch" }))
        .await
        .unwrap();
    assert_eq!(kind("default-ann").await, "batch");
    assert_eq!(kind("service-ann").await, "service");
    let tuned = data(
        &call(
            &core,
            Operation::Read,
            "sys/auth/door/tune",
            &root,
            json!({}),
        )
        .await
        .unwrap(),
    );
    assert_eq!(tuned["token_type"], "default-batch");
    // `service` and `batch` on the mount win over the role.
    tune(json!({ "token_type": "service" })).await.unwrap();
    assert_eq!(kind("batch-ann").await, "service");
    tune(json!({ "token_type": "batch" })).await.unwrap();
    assert_eq!(kind("service-ann").await, "batch");

    // Bad tuning is refused and changes nothing.
    for (path, body, text) in [
        (
            "sys/auth/door/tune",
            json!({ "token_type": "sometimes" }),
            "invalid value for 'token_type'",
        ),
        (
            "sys/auth/token/tune",
            json!({ "token_type": "batch" }),
            "cannot be set for 'token'",
        ),
        (
            "sys/mounts/cubbyhole/tune",
            json!({ "token_type": "batch" }),
            "only be modified on auth mounts",
        ),
    ] {
        let (status, message) = error_text(&core, Operation::Update, path, &root, body).await;
        assert_eq!(status, 400, "{path}: {message}");
        assert!(message.contains(text), "{path}: {message}");
    }
    assert_eq!(kind("service-ann").await, "batch");

    // A mount enabled with `config.token_type`.
    call(
        &core,
        Operation::Update,
        "sys/auth/door2",
        &root,
        json!({ "type": "door", "config": { "token_type": "batch" } }),
    )
    .await
    .unwrap();
    let auth = core
        .handle(Request::new(
            Operation::Update,
            "auth/door2/login/service-cy",
        ))
        .await
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.token_type, "batch");
    let e = call(
        &core,
        Operation::Update,
        "sys/auth/door3",
        &root,
        json!({ "type": "door", "config": { "token_type": "sometimes" } }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
}

#[tokio::test]
async fn repeated_batch_logins_write_nothing() {
    // The point of batch tokens: a login storm costs no storage write once the entity exists.
    let storage = Arc::new(MemoryStorage::new());
    let (core, _root) = door_core_on(storage.clone(), |user| LoginGrant {
        policies: vec!["default".into()],
        display_name: user.into(),
        alias_name: Some(user.into()),
        token_type: "batch".into(),
        ..Default::default()
    })
    .await;
    let login = || core.handle(Request::new(Operation::Update, "auth/door/login/ann"));
    login().await.unwrap();
    let before = storage.export().await.unwrap();
    for _ in 0..20 {
        let auth = login().await.unwrap().auth.unwrap();
        assert_eq!(auth.token_type, "batch");
    }
    assert_eq!(storage.export().await.unwrap(), before);
}
