//! The endpoints Vault's UI (and Tresor's) use to hide what a token may not do:
//! `sys/internal/ui/mounts` lists only the mounts a token can reach (and, without a token,
//! only those tuned to `listing_visibility = "unauth"`, reduced to type, description and
//! options); `sys/internal/ui/resultant-acl` is the token's merged policy.

use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::core::Core;
use tresor_core::logical::{Operation::*, Request};

mod common;
use common::{call, core_with_stub_kv, data};

async fn core() -> (Arc<Core>, String) {
    let (core, root) = core_with_stub_kv().await;
    for m in ["secret", "team", "public"] {
        call(
            &core,
            Update,
            &format!("sys/mounts/{m}"),
            &root,
            json!({ "type": "kv" }),
        )
        .await
        .unwrap();
    }
    call(
        &core,
        Update,
        "sys/mounts/public/tune",
        &root,
        json!({ "listing_visibility": "unauth" }),
    )
    .await
    .unwrap();
    let policy = r#"
path "secret/data/exact" { capabilities = ["read"] }
path "secret/data/app/*" { capabilities = ["read", "list"] }
path "secret/data/+/config" { capabilities = ["read"] }
path "team/denied" { capabilities = ["deny"] }
path "secret/data/params" {
  capabilities = ["create", "update"]
  allowed_parameters = { "foo" = ["bar", "baz"] }
  min_wrapping_ttl = "1m"
}
"#;
    call(
        &core,
        Update,
        "sys/policies/acl/limited",
        &root,
        json!({ "policy": policy }),
    )
    .await
    .unwrap();
    (core, root)
}

async fn token(core: &Core, root: &str, policies: &[&str]) -> String {
    let r = call(
        core,
        Update,
        "auth/token/create",
        root,
        json!({ "policies": policies }),
    )
    .await
    .unwrap();
    r.auth.unwrap().client_token
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn ui_mounts_lists_only_what_the_token_can_reach() {
    let (core, root) = core().await;
    let limited = token(&core, &root, &["limited"]).await;
    let default_only = token(&core, &root, &["default"]).await;
    let list = |token: Option<String>| {
        let core = core.clone();
        async move {
            let mut req = Request::new(Read, "sys/internal/ui/mounts");
            if let Some(t) = token {
                req = req.with_token(t);
            }
            data(&core.handle(req).await.unwrap())
        }
    };
    let all = list(Some(root.clone())).await;
    assert_eq!(
        keys(&all["secret"]),
        [
            "cubbyhole/",
            "identity/",
            "public/",
            "secret/",
            "sys/",
            "team/"
        ]
    );
    let mine = list(Some(limited)).await;
    // secret/ through its rules; team/ has only a deny; public/ is listed for everyone.
    assert_eq!(
        keys(&mine["secret"]),
        ["cubbyhole/", "identity/", "public/", "secret/", "sys/"]
    );
    assert_eq!(keys(&mine["auth"]), ["token/"]);
    assert_eq!(mine["secret"]["secret/"]["type"], "kv");
    let little = list(Some(default_only)).await;
    assert_eq!(
        keys(&little["secret"]),
        ["cubbyhole/", "identity/", "public/", "sys/"]
    );
    // No token: only the unauth-listed mount, and only what it is.
    let anon = list(None).await;
    assert_eq!(keys(&anon["secret"]), ["public/"]);
    assert_eq!(
        keys(&anon["secret"]["public/"]),
        ["description", "options", "type"]
    );
    assert_eq!(keys(&anon["auth"]), Vec::<String>::new());
}

#[tokio::test]
async fn resultant_acl_is_the_tokens_merged_policy() {
    let (core, root) = core().await;
    let limited = token(&core, &root, &["limited"]).await;
    let r = call(
        &core,
        Read,
        "sys/internal/ui/resultant-acl",
        &limited,
        json!({}),
    )
    .await
    .unwrap();
    let acl = data(&r);
    assert_eq!(acl["root"], false);
    assert_eq!(
        acl["exact_paths"]["secret/data/exact"]["capabilities"],
        json!(["read"])
    );
    assert_eq!(
        acl["exact_paths"]["team/denied"]["capabilities"],
        json!(["deny"])
    );
    let params = &acl["exact_paths"]["secret/data/params"];
    assert_eq!(params["capabilities"], json!(["create", "update"]));
    assert_eq!(
        params["allowed_parameters"],
        json!({ "foo": ["bar", "baz"] })
    );
    assert_eq!(params["min_wrapping_ttl"], 60);
    assert_eq!(
        acl["glob_paths"]["secret/data/app/"]["capabilities"],
        json!(["list", "read"])
    );
    // The default policy's rules are merged in; `+` rules are not listed (as in Vault).
    assert_eq!(
        acl["exact_paths"]["sys/internal/ui/resultant-acl"]["capabilities"],
        json!(["read"])
    );
    assert!(acl["exact_paths"].get("secret/data/+/config").is_none());
    let r = call(
        &core,
        Read,
        "sys/internal/ui/resultant-acl",
        &root,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&r), json!({ "root": true }));
    // No token, or one without the default policy: refused.
    let e = core
        .handle(Request::new(Read, "sys/internal/ui/resultant-acl"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    let bare = call(
        &core,
        Update,
        "auth/token/create",
        &root,
        json!({ "policies": ["limited"], "no_default_policy": true }),
    )
    .await
    .unwrap()
    .auth
    .unwrap()
    .client_token;
    let e = call(
        &core,
        Read,
        "sys/internal/ui/resultant-acl",
        &bare,
        json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 403);
}
