//! The real `vaultrs` client crate against the real binary: what a Rust application would do.

mod common;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use vaultrs::api::token::requests::CreateTokenRequest;
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::{kv2, sys, token};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Creds {
    user: String,
    password: String,
}

fn client(addr: &str, token: &str) -> VaultClient {
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(addr)
            .token(token)
            .build()
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn vaultrs_health_kv2_policies_and_tokens() {
    let server = tokio::task::spawn_blocking(common::dev_server)
        .await
        .unwrap();
    let root = client(&server.addr, "root");

    // vaultrs parses every field of sys/health (it fails without performance_standby).
    let health = sys::health(&root).await.unwrap();
    assert!(health.initialized && !health.sealed);

    let creds = Creds {
        user: "app".into(),
        password: "s3cr3t".into(),
    };
    kv2::set(&root, "secret", "app/db", &creds).await.unwrap();
    let read: Creds = kv2::read(&root, "secret", "app/db").await.unwrap();
    assert_eq!(read, creds);
    let v2 = Creds {
        user: "app".into(),
        password: "rotated".into(),
    };
    kv2::set(&root, "secret", "app/db", &v2).await.unwrap();
    let old: Creds = kv2::read_version(&root, "secret", "app/db", 1)
        .await
        .unwrap();
    assert_eq!(old, creds);
    assert_eq!(
        kv2::list(&root, "secret", "app").await.unwrap(),
        vec!["db".to_string()]
    );
    let meta = kv2::read_metadata(&root, "secret", "app/db").await.unwrap();
    assert_eq!(meta.current_version, 2);

    // A least-privilege token: read this one secret, nothing else.
    sys::policy::set(
        &root,
        "app-read",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    )
    .await
    .unwrap();
    let auth = token::new(
        &root,
        Some(
            CreateTokenRequest::builder()
                .policies(vec!["app-read".to_string()])
                .ttl("1h"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(auth.lease_duration, 3600);
    let app = client(&server.addr, &auth.client_token);
    let mine: Creds = kv2::read(&app, "secret", "app/db").await.unwrap();
    assert_eq!(mine, v2);
    let denied = kv2::set(&app, "secret", "app/db", &creds)
        .await
        .unwrap_err();
    assert!(
        matches!(denied, ClientError::APIError { code: 403, .. }),
        "{denied:?}"
    );
    let missing = kv2::read::<HashMap<String, String>>(&root, "secret", "nope")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ClientError::APIError { code: 404, .. }),
        "{missing:?}"
    );

    let me = token::lookup_self(&app).await.unwrap();
    assert_eq!(
        me.policies,
        vec!["app-read".to_string(), "default".to_string()]
    );
    token::revoke_self(&app).await.unwrap();
    let gone = token::lookup_self(&app).await.unwrap_err();
    assert!(
        matches!(gone, ClientError::APIError { code: 403, .. }),
        "{gone:?}"
    );
    assert!(root.settings().token == "root");
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}
