//! A mount tuned from version 1 to 2 migrates its data.

use super::Harness;
use crate::kv::v2::model::Key;
use serde_json::json;
use tresor_core::logical::Operation::*;

#[tokio::test]
async fn v1_data_becomes_version_1_after_tuning_to_v2() {
    let mut h = Harness::new("1").await;
    for i in 0..150 {
        h.ok(Update, &format!("bulk/k{i:03}"), json!({ "i": i }))
            .await;
    }
    h.ok(Update, "a", json!({"x": 1, "ttl": "1h"})).await;
    h.ok(Update, "a/b", json!({"y": 2})).await;
    // What `sys/mounts/kv/tune` with options.version=2 does: same backend, new entry.
    h.mount.options.insert("version".into(), json!("2"));
    let d = h.data(Read, "data/a", json!({})).await;
    assert_eq!(d["data"], json!({"x": 1, "ttl": "1h"}));
    assert_eq!(d["metadata"]["version"], json!(1));
    let m = h.data(Read, "metadata/a", json!({})).await;
    assert_eq!(
        (m["current_version"].clone(), m["oldest_version"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        h.data(Read, "data/a/b", json!({})).await["data"],
        json!({"y": 2})
    );
    assert_eq!(
        h.data(Read, "data/bulk/k149", json!({})).await["data"],
        json!({"i": 149})
    );
    assert_eq!(
        h.data(List, "metadata/", json!({})).await,
        json!({"keys": ["a", "a/", "bulk/"]})
    );
    assert_eq!(
        h.data(List, "metadata/bulk", json!({})).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        150
    );
    // The v1 records are gone, and v1-style paths now get the versioned-mount warning.
    assert!(h.view.list("v1/").await.unwrap().is_empty());
    assert!(h.view.get("v2/upgrade").await.unwrap().is_some());
    assert_eq!(h.ok(Read, "a", json!({})).await.status, Some(404));
    // The key keeps working as a v2 key.
    assert_eq!(
        h.data(
            Update,
            "data/a",
            json!({"data": {"x": 2}, "options": {"cas": 1}})
        )
        .await["version"],
        json!(2)
    );
}

#[tokio::test]
async fn upgrade_runs_at_initialize_and_is_resumable() {
    let h = Harness::new("1").await;
    h.ok(Update, "k1", json!({"a": 1})).await;
    h.ok(Update, "k2", json!({"a": 2})).await;
    let mut entry = h.mount.clone();
    entry.options.insert("version".into(), json!("2"));
    let read = |b: std::sync::Arc<dyn tresor_core::framework::Backend>, key: &str| {
        let mut call = h.call(Read, &format!("data/{key}"), json!({}));
        call.mount = entry.clone().into();
        async move { super::body(&b.handle(call).await.unwrap())["data"].clone() }
    };
    // After an unseal, a v2 mount migrates in initialize().
    let v2 = crate::kv::factory(&entry).unwrap();
    v2.initialize(&h.view).await.unwrap();
    assert!(h.view.list("v1/").await.unwrap().is_empty());
    assert_eq!(read(v2.clone(), "k2").await, json!({"a": 2}));
    // Left-overs (an interrupted run, or a v1 write racing the tune) are picked up by the next
    // run; a v1 entry whose key already has v2 metadata is never overwritten.
    h.view
        .put("v1/k1", br#"{"stale":true}"#.to_vec())
        .await
        .unwrap();
    h.view.put("v1/k3", br#"{"a":3}"#.to_vec()).await.unwrap();
    let again = crate::kv::factory(&entry).unwrap();
    again.initialize(&h.view).await.unwrap();
    assert_eq!(read(again.clone(), "k1").await, json!({"a": 1}));
    assert_eq!(read(again.clone(), "k3").await, json!({"a": 3}));
    assert_eq!(h.view.list("v1/").await.unwrap(), vec!["k1"]);
    assert!(h
        .view
        .get(&Key::new("k3").meta_key())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn unknown_versions_are_refused() {
    let mut h = Harness::new("1").await;
    h.mount.options.insert("version".into(), json!("3"));
    assert!(crate::kv::factory(&h.mount).is_err());
    assert_eq!(h.err(Read, "x", json!({})).await.status(), 400);
    h.mount.options.insert("version".into(), json!(2));
    assert!(crate::kv::factory(&h.mount).is_ok());
}
