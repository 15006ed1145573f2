//! KV v1 behaviour.

use super::{body, Harness};
use serde_json::json;
use tresor_core::logical::Operation::*;

#[tokio::test]
async fn write_read_update_delete() {
    let h = Harness::new("1").await;
    // Create vs update comes from the existence check.
    assert_eq!(
        h.backend
            .exists(&h.call(Update, "foo", json!({})))
            .await
            .unwrap(),
        Some(false)
    );
    let r = h
        .ok(Update, "foo", json!({"a": "b", "n": {"x": [1, 2]}}))
        .await;
    assert!(r.is_empty(), "a write answers 204");
    assert_eq!(
        h.backend
            .exists(&h.call(Update, "foo", json!({})))
            .await
            .unwrap(),
        Some(true)
    );
    let r = h.ok(Read, "foo", json!({})).await;
    assert_eq!(body(&r), json!({"a": "b", "n": {"x": [1, 2]}}));
    assert_eq!(r.status, None);
    // An update replaces the whole entry.
    h.ok(Update, "foo", json!({"c": 1})).await;
    assert_eq!(h.data(Read, "foo", json!({})).await, json!({"c": 1}));
    h.ok(Delete, "foo", json!({})).await;
    h.not_found(Read, "foo", json!({})).await;
    // Deleting what is not there is fine.
    assert!(h.ok(Delete, "foo", json!({})).await.is_empty());
}

#[tokio::test]
async fn version_defaults_to_1() {
    let h = Harness::new("").await;
    h.ok(Update, "k", json!({"a": 1})).await;
    assert_eq!(h.data(Read, "k", json!({})).await, json!({"a": 1}));
}

#[tokio::test]
async fn bad_writes_and_missing_reads() {
    let h = Harness::new("1").await;
    h.bad(Update, "empty", json!({}), "missing data fields")
        .await;
    h.not_found(Read, "empty", json!({})).await;
    h.bad(
        Update,
        "dir/",
        json!({"a": 1}),
        "cannot write to a path ending in '/'",
    )
    .await;
    h.bad(
        Update,
        "",
        json!({"a": 1}),
        "cannot write to a path ending in '/'",
    )
    .await;
    h.not_found(Read, "", json!({})).await;
    h.not_found(Read, "dir/", json!({})).await;
    h.not_found(Read, "nope", json!({})).await;
}

#[tokio::test]
async fn ttl_hint_becomes_the_lease_duration() {
    let mut h = Harness::new("1").await;
    h.ok(Update, "ttl", json!({"a": 1, "ttl": "1h"})).await;
    h.ok(Update, "num", json!({"a": 1, "ttl": 30})).await;
    h.ok(Update, "lease", json!({"a": 1, "lease": "2h"})).await;
    h.ok(Update, "zero", json!({"a": 1, "ttl": "0s", "lease": "5m"}))
        .await;
    h.ok(Update, "bogus", json!({"a": 1, "ttl": "bogus"})).await;
    h.ok(Update, "none", json!({"a": 1})).await;
    let lease =
        |r: tresor_core::logical::Response| r.lease.expect("a read carries lease information");
    let l = lease(h.ok(Read, "ttl", json!({})).await);
    assert_eq!(
        (l.duration, l.lease_id.as_str(), l.renewable),
        (3600, "", false)
    );
    assert_eq!(lease(h.ok(Read, "num", json!({})).await).duration, 30);
    assert_eq!(lease(h.ok(Read, "lease", json!({})).await).duration, 7200);
    assert_eq!(lease(h.ok(Read, "zero", json!({})).await).duration, 0);
    assert_eq!(
        lease(h.ok(Read, "bogus", json!({})).await).duration,
        768 * 3600
    );
    assert_eq!(
        lease(h.ok(Read, "none", json!({})).await).duration,
        768 * 3600
    );
    // The hint stays part of the data.
    assert_eq!(
        h.data(Read, "ttl", json!({})).await,
        json!({"a": 1, "ttl": "1h"})
    );
    // Without a hint, the mount's default lease TTL.
    h.mount.config.default_lease_ttl = 600;
    assert_eq!(lease(h.ok(Read, "none", json!({})).await).duration, 600);
}

#[tokio::test]
async fn list_shows_keys_and_folders() {
    let h = Harness::new("1").await;
    h.not_found(List, "", json!({})).await;
    for k in ["b", "a", "dir/x", "dir/sub/y", "dir"] {
        h.ok(Update, k, json!({"v": k})).await;
    }
    assert_eq!(
        h.data(List, "", json!({})).await,
        json!({"keys": ["a", "b", "dir", "dir/"]})
    );
    assert_eq!(
        h.data(List, "dir", json!({})).await,
        json!({"keys": ["sub/", "x"]})
    );
    assert_eq!(
        h.data(List, "dir/sub/", json!({})).await,
        json!({"keys": ["y"]})
    );
    h.not_found(List, "nope", json!({})).await;
    h.not_found(List, "a", json!({})).await;
    // A key and a folder of the same name are independent.
    h.ok(Delete, "dir", json!({})).await;
    assert_eq!(
        h.data(Read, "dir/x", json!({})).await,
        json!({"v": "dir/x"})
    );
    assert_eq!(
        h.data(List, "", json!({})).await,
        json!({"keys": ["a", "b", "dir/"]})
    );
}

#[tokio::test]
async fn unknown_read_parameters_are_reported() {
    let h = Harness::new("1").await;
    h.ok(Update, "k", json!({"a": 1})).await;
    let r = h.ok(Read, "k", json!({"foo": "bar"})).await;
    assert_eq!(
        r.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [foo]".to_string()]
    );
}

#[tokio::test]
async fn entries_are_encrypted_at_rest_under_v1_prefix() {
    let h = Harness::new("1").await;
    h.ok(Update, "secret/path", json!({"password": "hunter2"}))
        .await;
    assert!(h.view.get("v1/secret/path").await.unwrap().is_some());
    assert_eq!(h.view.list("").await.unwrap(), vec!["v1/"]);
}

#[tokio::test]
async fn help_and_describe() {
    let h = Harness::new("1").await;
    let d = h.backend.describe();
    assert_eq!(d["version"], json!(1));
    let r = h.ok(Help, "anything", json!({})).await;
    assert!(body(&r)["help"].as_str().unwrap().contains("Pass-through"));
}
