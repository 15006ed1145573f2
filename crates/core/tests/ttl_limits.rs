//! No token or lease outlives what the mount and the system allow, whatever a client asks:
//! periodic tokens need sudo, every TTL, period and explicit max is capped by the token
//! mount's max (tuned, else the system's), renewals too, and a mount cannot be tuned to a
//! default above its max.

use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::core::Core;
use tresor_core::error::Error;
use tresor_core::logical::{Operation::*, Response};

mod common;
use common::{call, core_with_stub_kv, data};

const SYSTEM_MAX: u64 = 768 * 3600;
const HUGE: &str = "999999h";

async fn core() -> (Arc<Core>, String) {
    let (core, root) = core_with_stub_kv().await;
    for (name, caps) in [
        ("creator", r#"["update"]"#),
        ("creatorsudo", r#"["update", "sudo"]"#),
    ] {
        let policy = format!("path \"auth/token/create\" {{ capabilities = {caps} }}\npath \"auth/token/create/*\" {{ capabilities = {caps} }}");
        call(
            &core,
            Update,
            &format!("sys/policies/acl/{name}"),
            &root,
            json!({ "policy": policy }),
        )
        .await
        .unwrap();
    }
    (core, root)
}

/// A token holding only `policy` (and default).
async fn token_with(core: &Core, root: &str, policy: &str) -> String {
    let r = call(
        core,
        Update,
        "auth/token/create",
        root,
        json!({ "policies": [policy] }),
    )
    .await
    .unwrap();
    r.auth.unwrap().client_token
}

async fn create(core: &Core, token: &str, path: &str, body: Value) -> Result<Response, Error> {
    call(core, Update, path, token, body).await
}

fn lease(r: &Response) -> u64 {
    r.auth.as_ref().unwrap().lease_duration
}

async fn lookup(core: &Core, root: &str, token: &str) -> Value {
    let r = call(
        core,
        Update,
        "auth/token/lookup",
        root,
        json!({ "token": token }),
    )
    .await
    .unwrap();
    data(&r)
}

#[tokio::test]
async fn periodic_tokens_need_sudo_and_every_lifetime_is_capped() {
    let (core, root) = core().await;
    let plain = token_with(&core, &root, "creator").await;
    let sudo = token_with(&core, &root, "creatorsudo").await;

    // Without sudo: no periodic token of one's own choosing, no orphan.
    for body in [json!({ "period": HUGE }), json!({ "period": "1h" })] {
        let e = create(&core, &plain, "auth/token/create", body)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string()
                .contains("root or sudo privileges required to create periodic token"),
            "{e}"
        );
    }
    let e = create(
        &core,
        &plain,
        "auth/token/create",
        json!({ "no_parent": true }),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("orphan"), "{e}");

    // A huge TTL or explicit max is capped at the system max, with Vault's warning.
    let r = create(&core, &plain, "auth/token/create", json!({ "ttl": HUGE }))
        .await
        .unwrap();
    assert_eq!(lease(&r), SYSTEM_MAX);
    assert_eq!(r.warnings, ["TTL of \"999999h\" exceeded the effective max_ttl of \"768h\"; TTL value is capped accordingly"]);
    let r = create(
        &core,
        &plain,
        "auth/token/create",
        json!({ "explicit_max_ttl": HUGE }),
    )
    .await
    .unwrap();
    assert_eq!(lease(&r), SYSTEM_MAX);

    // With sudo a period is allowed, and capped like a TTL.
    let r = create(&core, &sudo, "auth/token/create", json!({ "period": HUGE }))
        .await
        .unwrap();
    assert_eq!(lease(&r), SYSTEM_MAX);
    assert!(
        r.warnings[0].starts_with("period of \"999999h\" exceeded"),
        "{:?}",
        r.warnings
    );
    let periodic = r.auth.unwrap().client_token;
    assert!(
        lookup(&core, &root, &periodic).await["period"]
            .as_u64()
            .unwrap()
            <= SYSTEM_MAX
    );
    // Renewing it does not escalate either.
    let r = call(
        &core,
        Update,
        "auth/token/renew-self",
        &periodic,
        json!({ "increment": HUGE }),
    )
    .await
    .unwrap();
    assert!(lease(&r) <= SYSTEM_MAX);
    let r = create(&core, &sudo, "auth/token/create", json!({ "period": "1h" }))
        .await
        .unwrap();
    assert_eq!(lease(&r), 3600);

    // The token mount's tuning lowers every ceiling.
    call(
        &core,
        Update,
        "sys/auth/token/tune",
        &root,
        json!({ "max_lease_ttl": "10h", "default_lease_ttl": "2h" }),
    )
    .await
    .unwrap();
    let r = create(&core, &plain, "auth/token/create", json!({}))
        .await
        .unwrap();
    assert_eq!(lease(&r), 7200);
    for (token, body) in [
        (&plain, json!({ "ttl": HUGE })),
        (&sudo, json!({ "period": HUGE })),
    ] {
        let r = create(&core, token, "auth/token/create", body)
            .await
            .unwrap();
        assert_eq!(lease(&r), 36000);
    }
}

#[tokio::test]
async fn token_roles_cannot_grant_more_than_the_mount_allows() {
    let (core, root) = core().await;
    call(
        &core,
        Update,
        "auth/token/roles/forever",
        &root,
        json!({ "allowed_policies": ["creator"], "period": HUGE, "explicit_max_ttl": HUGE }),
    )
    .await
    .unwrap();
    let plain = token_with(&core, &root, "creator").await;
    // A role's period needs no sudo, but is capped.
    let r = create(&core, &plain, "auth/token/create/forever", json!({}))
        .await
        .unwrap();
    assert_eq!(lease(&r), SYSTEM_MAX);
    // A period in the request still needs sudo.
    let e = create(
        &core,
        &plain,
        "auth/token/create/forever",
        json!({ "period": "1h" }),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("periodic"), "{e}");
    // Root asking for a shorter period than the role's gets the lesser, with Vault's warning.
    let r = create(
        &core,
        &root,
        "auth/token/create/forever",
        json!({ "period": "1h" }),
    )
    .await
    .unwrap();
    assert_eq!(lease(&r), 3600);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("using the lesser value of 3600 seconds")),
        "{:?}",
        r.warnings
    );
}

#[tokio::test]
async fn mounts_cannot_default_past_their_max() {
    let (core, root) = core().await;
    call(
        &core,
        Update,
        "sys/mounts/kv",
        &root,
        json!({ "type": "kv" }),
    )
    .await
    .unwrap();
    for (path, body, want) in [
        (
            "sys/mounts/kv/tune",
            json!({ "default_lease_ttl": "100h", "max_lease_ttl": "10h" }),
            "mount's max lease TTL of 36000s",
        ),
        (
            "sys/mounts/kv/tune",
            json!({ "default_lease_ttl": "1000h" }),
            "system max lease TTL of 2764800s",
        ),
        (
            "sys/auth/token/tune",
            json!({ "default_lease_ttl": "100h", "max_lease_ttl": "10h" }),
            "max lease TTL of 36000s",
        ),
        (
            "sys/mounts/kv2",
            json!({ "type": "kv", "config": { "default_lease_ttl": "100h", "max_lease_ttl": "10h" } }),
            "max lease TTL",
        ),
        (
            "sys/mounts/kv2",
            json!({ "type": "kv", "config": { "default_lease_ttl": "1000h" } }),
            "system max lease TTL",
        ),
    ] {
        let e = call(&core, Update, path, &root, body.clone())
            .await
            .unwrap_err();
        assert_eq!(e.status(), 400, "{path} {body}");
        assert!(e.to_string().contains(want), "{path} {body}: {e}");
    }
    // Nothing of a refused tune was applied.
    let r = call(&core, Read, "sys/mounts/kv/tune", &root, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r)["default_lease_ttl"], SYSTEM_MAX);
    // Within the limits: accepted, and a max above the system's is the mount's own (Vault).
    call(
        &core,
        Update,
        "sys/mounts/kv/tune",
        &root,
        json!({ "default_lease_ttl": "1000h", "max_lease_ttl": "2000h" }),
    )
    .await
    .unwrap();
}
