//! KV v2 behaviour, path group by path group.

use super::{body, Harness};
use crate::kv::v2::model::{now_nanos, Key, KeyMeta};
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::logical::Operation::*;

async fn v2() -> Harness {
    Harness::new("2").await
}

/// Writes `data` to `key` and returns the new version number.
async fn put(h: &Harness, key: &str, data: Value) -> u64 {
    let r = h
        .data(Update, &format!("data/{key}"), json!({ "data": data }))
        .await;
    r["version"].as_u64().unwrap()
}

async fn meta(h: &Harness, key: &str) -> Value {
    h.data(Read, &format!("metadata/{key}"), json!({})).await
}

/// Rewrites a key's stored metadata (to put deletion times in the past).
async fn edit_meta(h: &Harness, key: &str, f: impl FnOnce(&mut KeyMeta)) {
    let k = Key::new(key);
    let mut m: KeyMeta = h.view.get_json(&k.meta_key()).await.unwrap().unwrap();
    f(&mut m);
    h.view.put_json(&k.meta_key(), &m).await.unwrap();
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

#[tokio::test]
async fn config_defaults_and_updates() {
    let h = v2().await;
    assert_eq!(
        h.data(Read, "config", json!({})).await,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0, "metadata_cas_required": false})
    );
    // As hvac's configure() sends it.
    assert!(h
        .ok(
            Update,
            "config",
            json!({"max_versions": 17, "cas_required": true, "delete_version_after": "30m0s"})
        )
        .await
        .is_empty());
    assert_eq!(
        h.data(Read, "config", json!({})).await,
        json!({"cas_required": true, "delete_version_after": "30m0s", "max_versions": 17, "metadata_cas_required": false})
    );
    // Only named fields change; durations normalize to Go's form.
    h.ok(Update, "config", json!({"delete_version_after": "1.5h"}))
        .await;
    let c = h.data(Read, "config", json!({})).await;
    assert_eq!(
        (
            c["max_versions"].clone(),
            c["cas_required"].clone(),
            c["delete_version_after"].clone()
        ),
        (json!(17), json!(true), json!("1h30m0s"))
    );
    h.ok(Update, "config", json!({"delete_version_after": 90}))
        .await;
    assert_eq!(
        h.data(Read, "config", json!({})).await["delete_version_after"],
        json!("1m30s")
    );
    // Negative disables, reported as -1s; 0 clears.
    h.ok(Update, "config", json!({"delete_version_after": "-1h"}))
        .await;
    assert_eq!(
        h.data(Read, "config", json!({})).await["delete_version_after"],
        json!("-1s")
    );
    h.ok(
        Update,
        "config",
        json!({"delete_version_after": "0s", "cas_required": false, "max_versions": 0}),
    )
    .await;
    assert_eq!(
        h.data(Read, "config", json!({})).await,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0, "metadata_cas_required": false})
    );
    // Bad input.
    h.bad(
        Update,
        "config",
        json!({"max_versions": -1}),
        "max_versions",
    )
    .await;
    h.bad(
        Update,
        "config",
        json!({"max_versions": "x"}),
        "max_versions",
    )
    .await;
    h.bad(
        Update,
        "config",
        json!({"delete_version_after": "bogus"}),
        "invalid duration",
    )
    .await;
    h.bad(
        Update,
        "config",
        json!({"cas_required": "cats"}),
        "cas_required",
    )
    .await;
    // The config survives a new backend instance (it is stored, not only cached).
    let fresh = crate::kv::factory(&h.mount).unwrap();
    h.ok(Update, "config", json!({"max_versions": 3})).await;
    let r = fresh
        .handle(h.call(Read, "config", json!({})))
        .await
        .unwrap();
    assert_eq!(body(&r)["max_versions"], json!(3));
    let r = h.ok(Read, "config", json!({"x": 1})).await;
    assert_eq!(
        r.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [x]".to_string()]
    );
}

#[tokio::test]
async fn write_and_read_versions() {
    let h = v2().await;
    assert_eq!(
        h.backend
            .exists(&h.call(Update, "data/foo", json!({})))
            .await
            .unwrap(),
        Some(false)
    );
    let w = h
        .data(Update, "data/foo", json!({"data": {"a": "b"}}))
        .await;
    assert_eq!(
        w.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec![
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    assert_eq!(
        (
            w["version"].clone(),
            w["custom_metadata"].clone(),
            w["deletion_time"].clone(),
            w["destroyed"].clone()
        ),
        (json!(1), Value::Null, json!(""), json!(false))
    );
    assert!(is_rfc3339(&w["created_time"]));
    assert_eq!(
        h.backend
            .exists(&h.call(Update, "data/foo", json!({})))
            .await
            .unwrap(),
        Some(true)
    );

    let r = h.ok(Read, "data/foo", json!({})).await;
    assert_eq!(r.status, None);
    let d = body(&r);
    assert_eq!(d["data"], json!({"a": "b"}));
    assert_eq!(
        d["metadata"], w,
        "the read's metadata is the write's answer"
    );

    assert_eq!(put(&h, "foo", json!({"a": "c"})).await, 2);
    assert_eq!(put(&h, "foo", json!({})).await, 3);
    assert_eq!(put(&h, "foo", Value::Null).await, 4);
    assert_eq!(
        h.data(Read, "data/foo", json!({})).await["data"],
        Value::Null
    );
    assert_eq!(
        h.data(Read, "data/foo", json!({"version": 3})).await["data"],
        json!({})
    );
    // Query parameters arrive as strings.
    let v2 = h.data(Read, "data/foo", json!({"version": "2"})).await;
    assert_eq!(
        (v2["data"].clone(), v2["metadata"]["version"].clone()),
        (json!({"a": "c"}), json!(2))
    );
    assert_eq!(
        h.data(Read, "data/foo", json!({"version": 0})).await["metadata"]["version"],
        json!(4)
    );
    h.not_found(Read, "data/foo", json!({"version": 9})).await;
    h.bad(Read, "data/foo", json!({"version": -1}), "version")
        .await;
    h.bad(Read, "data/foo", json!({"version": "abc"}), "version")
        .await;
    h.not_found(Read, "data/nokey", json!({})).await;
    h.not_found(Read, "data/nokey", json!({"version": 2})).await;
    let r = h.ok(Read, "data/foo", json!({"foo": "bar"})).await;
    assert_eq!(
        r.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [foo]".to_string()]
    );
    let r = h
        .ok(Update, "data/foo", json!({"data": {"a": 1}, "extra": 1}))
        .await;
    assert_eq!(
        r.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [extra]".to_string()]
    );
}

#[tokio::test]
async fn write_input_errors() {
    let h = v2().await;
    h.bad(Update, "data/foo", json!({}), "no data provided")
        .await;
    h.bad(Update, "data/foo", json!({"other": 1}), "no data provided")
        .await;
    h.bad(
        Update,
        "data/foo",
        json!({"data": "str"}),
        "error converting input for field \"data\"",
    )
    .await;
    h.bad(
        Update,
        "data/foo",
        json!({"data": [1]}),
        "error converting input for field \"data\"",
    )
    .await;
    h.bad(
        Update,
        "data/foo",
        json!({"data": {"a": 1}, "options": "x"}),
        "options",
    )
    .await;
    h.bad(
        Update,
        "data/",
        json!({"data": {"a": 1}}),
        "cannot write to a path ending in '/'",
    )
    .await;
    h.bad(
        Update,
        "data/dir/",
        json!({"data": {"a": 1}}),
        "cannot write to a path ending in '/'",
    )
    .await;
    h.not_found(Read, "data/", json!({})).await;
    h.not_found(Read, "data/dir/", json!({})).await;
    // Nothing was stored by the failed writes.
    h.not_found(Read, "metadata/foo", json!({})).await;
    assert!(h
        .ok(
            Update,
            "data/foo",
            json!({"data": {"a": 1}, "options": null})
        )
        .await
        .data
        .is_some());
}

#[tokio::test]
async fn check_and_set() {
    let h = v2().await;
    // cas 0: only if the key does not exist.
    let w = h
        .data(
            Update,
            "data/hvac",
            json!({"data": {"pssst": "hi"}, "options": {"cas": 0}}),
        )
        .await;
    assert_eq!(w["version"], json!(1));
    h.bad(
        Update,
        "data/hvac",
        json!({"data": {"a": 1}, "options": {"cas": 0}}),
        "check-and-set parameter did not match the current version",
    )
    .await;
    // As hvac's tests send it: -1 is a mismatch, not a parse error.
    h.bad(
        Update,
        "data/hvac",
        json!({"data": {"a": 1}, "options": {"cas": -1}}),
        "check-and-set parameter did not match the current version",
    )
    .await;
    h.bad(
        Update,
        "data/hvac",
        json!({"data": {"a": 1}, "options": {"cas": 2}}),
        "did not match the current version",
    )
    .await;
    h.bad(
        Update,
        "data/hvac",
        json!({"data": {"a": 1}, "options": {"cas": "x"}}),
        "error parsing check-and-set parameter",
    )
    .await;
    h.bad(
        Update,
        "data/hvac",
        json!({"data": {"a": 1}, "options": {"cas": 1.5}}),
        "error parsing check-and-set parameter",
    )
    .await;
    assert_eq!(
        h.data(
            Update,
            "data/hvac",
            json!({"data": {"a": 1}, "options": {"cas": 1}})
        )
        .await["version"],
        json!(2)
    );
    assert_eq!(
        h.data(
            Update,
            "data/hvac",
            json!({"data": {"a": 1}, "options": {"cas": "2"}})
        )
        .await["version"],
        json!(3)
    );
    assert_eq!(
        h.data(
            Update,
            "data/hvac",
            json!({"data": {"a": 1}, "options": {}})
        )
        .await["version"],
        json!(4)
    );
    // Failed writes left no trace.
    assert_eq!(meta(&h, "hvac").await["current_version"], json!(4));

    // Required by the mount.
    h.ok(Update, "config", json!({"cas_required": true})).await;
    h.bad(
        Update,
        "data/hvac",
        json!({"data": {"a": 1}}),
        "check-and-set parameter required for this call",
    )
    .await;
    h.bad(
        Update,
        "data/new",
        json!({"data": {"a": 1}}),
        "check-and-set parameter required for this call",
    )
    .await;
    assert_eq!(
        h.data(
            Update,
            "data/new",
            json!({"data": {"a": 1}, "options": {"cas": 0}})
        )
        .await["version"],
        json!(1)
    );
    // A key cannot relax the mount's rule: warning, and the rule still applies.
    let r = h
        .ok(Update, "metadata/hvac", json!({"cas_required": false}))
        .await;
    assert_eq!(r.warnings, vec!["\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.".to_string()]);
    assert!(r.data.is_none());
    h.bad(
        Update,
        "data/hvac",
        json!({"data": {"a": 1}}),
        "check-and-set parameter required",
    )
    .await;
    h.ok(Update, "config", json!({"cas_required": false})).await;
    h.ok(Update, "data/hvac", json!({"data": {"a": 1}})).await;

    // Required by the key.
    h.ok(Update, "metadata/strict", json!({"cas_required": true}))
        .await;
    h.bad(
        Update,
        "data/strict",
        json!({"data": {"a": 1}}),
        "check-and-set parameter required for this call",
    )
    .await;
    assert_eq!(
        h.data(
            Update,
            "data/strict",
            json!({"data": {"a": 1}, "options": {"cas": 0}})
        )
        .await["version"],
        json!(1)
    );
    h.ok(Update, "data/other", json!({"data": {"a": 1}})).await;
}

#[tokio::test]
async fn concurrent_writes_get_distinct_versions_and_cas_admits_one() {
    let h = Arc::new(v2().await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            put(&h, "busy", json!({ "i": i })).await
        }));
    }
    let mut versions: Vec<u64> = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<_>>());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.req(
                Update,
                "data/once",
                json!({"data": {"i": i}, "options": {"cas": 0}}),
            )
            .await
            .is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn soft_delete_latest_and_read_deleted() {
    let h = v2().await;
    for i in 1..=3 {
        put(&h, "hvac", json!({ "pssst": i })).await;
    }
    assert!(h.ok(Delete, "data/hvac", json!({})).await.is_empty());
    // hvac's read_secret_version(raise_on_deleted_version=False) needs the body of the 404.
    let r = h.ok(Read, "data/hvac", json!({})).await;
    assert_eq!(r.status, Some(404));
    let d = body(&r);
    assert_eq!(d["data"], Value::Null);
    assert_eq!(d["metadata"]["version"], json!(3));
    assert!(is_rfc3339(&d["metadata"]["deletion_time"]));
    let m = meta(&h, "hvac").await;
    assert_ne!(m["versions"]["3"]["deletion_time"], json!(""));
    assert_eq!(m["versions"]["1"]["deletion_time"], json!(""));
    assert_eq!(m["versions"]["2"]["deletion_time"], json!(""));
    // Older versions stay readable; deleting again keeps the first deletion time.
    assert_eq!(
        h.data(Read, "data/hvac", json!({"version": 2})).await["data"],
        json!({"pssst": 2})
    );
    h.ok(Delete, "data/hvac", json!({})).await;
    assert_eq!(
        meta(&h, "hvac").await["versions"]["3"]["deletion_time"],
        m["versions"]["3"]["deletion_time"]
    );
    // Nothing to delete: still 204, and no metadata appears.
    assert!(h
        .ok(Delete, "data/no-secret-here", json!({}))
        .await
        .is_empty());
    h.not_found(Read, "metadata/no-secret-here", json!({}))
        .await;
    assert!(h.ok(Delete, "data/", json!({})).await.is_empty());
    // A new write makes the key readable again.
    put(&h, "hvac", json!({"pssst": 4})).await;
    assert_eq!(
        h.data(Read, "data/hvac", json!({})).await["data"],
        json!({"pssst": 4})
    );
}

#[tokio::test]
async fn delete_undelete_destroy_versions() {
    let h = v2().await;
    for i in 1..=7 {
        put(&h, "hvac", json!({ "pssst": i })).await;
    }
    assert!(h
        .ok(Update, "delete/hvac", json!({"versions": [1, 3, 5, 99]}))
        .await
        .is_empty());
    let m = meta(&h, "hvac").await;
    for v in 1..=7 {
        let deleted = m["versions"][v.to_string()]["deletion_time"] != json!("");
        assert_eq!(deleted, [1, 3, 5].contains(&v), "version {v}");
    }
    let r = h.ok(Read, "data/hvac", json!({"version": 3})).await;
    assert_eq!(
        (r.status, body(&r)["data"].clone()),
        (Some(404), Value::Null)
    );
    // Comma-separated and string forms work too.
    h.ok(Update, "undelete/hvac", json!({"versions": "1,3"}))
        .await;
    h.ok(Update, "undelete/hvac", json!({"versions": ["5", 77]}))
        .await;
    let m = meta(&h, "hvac").await;
    assert!((1..=7).all(|v| m["versions"][v.to_string()]["deletion_time"] == json!("")));
    assert_eq!(
        h.data(Read, "data/hvac", json!({"version": 3})).await["data"],
        json!({"pssst": 3})
    );

    h.ok(Update, "delete/hvac", json!({"versions": [2]})).await;
    assert!(h
        .ok(Update, "destroy/hvac", json!({"versions": [1, 2, 12]}))
        .await
        .is_empty());
    let m = meta(&h, "hvac").await;
    assert_eq!(m["versions"]["1"]["destroyed"], json!(true));
    assert_eq!(m["versions"]["2"]["destroyed"], json!(true));
    assert_ne!(
        m["versions"]["2"]["deletion_time"],
        json!(""),
        "destroy keeps the deletion time"
    );
    assert_eq!(m["versions"]["3"]["destroyed"], json!(false));
    // The data is gone from storage.
    let k = Key::new("hvac");
    assert!(h.view.get(&k.version_key(1)).await.unwrap().is_none());
    assert!(h.view.get(&k.version_key(3)).await.unwrap().is_some());
    let r = h.ok(Read, "data/hvac", json!({"version": 1})).await;
    assert_eq!(r.status, Some(404));
    assert_eq!(body(&r)["metadata"]["destroyed"], json!(true));
    // Destroyed versions cannot be undeleted or deleted.
    h.ok(Update, "undelete/hvac", json!({"versions": [1, 2]}))
        .await;
    h.ok(Update, "delete/hvac", json!({"versions": [1]})).await;
    let m2 = meta(&h, "hvac").await;
    assert_eq!(m2["versions"]["1"], m["versions"]["1"]);
    assert_eq!(m2["versions"]["2"], m["versions"]["2"]);

    // Unknown keys are ignored.
    for p in ["delete", "undelete", "destroy"] {
        assert!(h
            .ok(
                Update,
                &format!("{p}/no-versions-here"),
                json!({"versions": [1]})
            )
            .await
            .is_empty());
    }
    h.not_found(Read, "metadata/no-versions-here", json!({}))
        .await;
    // Bad input.
    for p in ["delete", "undelete"] {
        h.bad(
            Update,
            &format!("{p}/hvac"),
            json!({}),
            "No version number provided",
        )
        .await;
        h.bad(
            Update,
            &format!("{p}/hvac"),
            json!({"versions": []}),
            "No version number provided",
        )
        .await;
    }
    h.bad(
        Update,
        "destroy/hvac",
        json!({}),
        "no version number provided",
    )
    .await;
    h.bad(
        Update,
        "destroy/hvac",
        json!({"versions": []}),
        "no version number provided",
    )
    .await;
    h.bad(
        Update,
        "delete/hvac",
        json!({"versions": "abc"}),
        "versions",
    )
    .await;
    h.bad(
        Update,
        "destroy/hvac",
        json!({"versions": ["a"]}),
        "versions",
    )
    .await;
    h.bad(
        Update,
        "undelete/hvac",
        json!({"versions": [-1]}),
        "versions",
    )
    .await;
    h.bad(
        Update,
        "delete/hvac",
        json!({"versions": {"a": 1}}),
        "versions",
    )
    .await;
    h.bad(
        Update,
        "delete/",
        json!({"versions": [1]}),
        "cannot write to a path ending in '/'",
    )
    .await;
}

#[tokio::test]
async fn max_versions_trims_oldest() {
    let h = v2().await;
    h.ok(Update, "metadata/t", json!({"max_versions": 2})).await;
    for i in 1..=4 {
        put(&h, "t", json!({ "i": i })).await;
    }
    let m = meta(&h, "t").await;
    assert_eq!(
        (m["current_version"].clone(), m["oldest_version"].clone()),
        (json!(4), json!(3))
    );
    assert_eq!(
        m["versions"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["3", "4"]
    );
    h.not_found(Read, "data/t", json!({"version": 1})).await;
    h.not_found(Read, "data/t", json!({"version": 2})).await;
    let k = Key::new("t");
    for v in 1..=2 {
        assert!(
            h.view.get(&k.version_key(v)).await.unwrap().is_none(),
            "version {v} data trimmed"
        );
    }
    // Lowering the limit takes effect on the next write.
    h.ok(Update, "metadata/t", json!({"max_versions": 1})).await;
    assert_eq!(
        meta(&h, "t").await["versions"].as_object().unwrap().len(),
        2
    );
    put(&h, "t", json!({"i": 5})).await;
    let m = meta(&h, "t").await;
    assert_eq!(
        m["versions"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["5"]
    );
    assert_eq!(m["oldest_version"], json!(5));
    assert!(h.view.get(&k.version_key(4)).await.unwrap().is_none());

    // The larger of the key's and the mount's limit applies; 10 by default.
    h.ok(Update, "config", json!({"max_versions": 3})).await;
    for i in 1..=5 {
        put(&h, "c", json!({ "i": i })).await;
    }
    assert_eq!(
        meta(&h, "c").await["versions"].as_object().unwrap().len(),
        3
    );
    h.ok(Update, "metadata/c", json!({"max_versions": 4})).await;
    put(&h, "c", json!({"i": 6})).await;
    assert_eq!(
        meta(&h, "c").await["versions"].as_object().unwrap().len(),
        4
    );
    h.ok(Update, "config", json!({"max_versions": 0})).await;
    for i in 1..=12 {
        put(&h, "d", json!({ "i": i })).await;
    }
    let m = meta(&h, "d").await;
    assert_eq!(
        (
            m["versions"].as_object().unwrap().len(),
            m["oldest_version"].clone()
        ),
        (10, json!(3))
    );
}

#[tokio::test]
async fn delete_version_after_schedules_deletion() {
    let h = v2().await;
    h.ok(Update, "metadata/dv", json!({"delete_version_after": "1h"}))
        .await;
    let w = h.data(Update, "data/dv", json!({"data": {"a": 1}})).await;
    let created = time::OffsetDateTime::parse(
        w["created_time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let deletion = time::OffsetDateTime::parse(
        w["deletion_time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(deletion - created, time::Duration::hours(1));
    // Still readable before that time.
    assert_eq!(
        h.data(Read, "data/dv", json!({})).await["data"],
        json!({"a": 1})
    );
    // Once the time has passed, the version reads as deleted.
    edit_meta(&h, "dv", |m| {
        m.versions.get_mut(&1).unwrap().deletion_time = Some(now_nanos() - 1)
    })
    .await;
    let r = h.ok(Read, "data/dv", json!({})).await;
    assert_eq!(
        (r.status, body(&r)["data"].clone()),
        (Some(404), Value::Null)
    );
    // Undelete reschedules it.
    h.ok(Update, "undelete/dv", json!({"versions": [1]})).await;
    let r = h.ok(Read, "data/dv", json!({})).await;
    assert_eq!(r.status, None);
    assert_ne!(body(&r)["metadata"]["deletion_time"], json!(""));
    // An explicit delete of a version scheduled for later deletes it now.
    h.ok(Delete, "data/dv", json!({})).await;
    assert_eq!(h.ok(Read, "data/dv", json!({})).await.status, Some(404));
    // The mount's setting applies too, the smaller one wins, and a negative one disables both.
    h.ok(Update, "config", json!({"delete_version_after": "10m"}))
        .await;
    let w = h.data(Update, "data/dv", json!({"data": {"a": 2}})).await;
    let c = time::OffsetDateTime::parse(
        w["created_time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let d = time::OffsetDateTime::parse(
        w["deletion_time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(d - c, time::Duration::minutes(10));
    h.ok(Update, "config", json!({"delete_version_after": -1}))
        .await;
    assert_eq!(
        h.data(Update, "data/dv", json!({"data": {"a": 3}})).await["deletion_time"],
        json!("")
    );
    h.ok(Update, "undelete/dv", json!({"versions": [1]})).await;
    assert_eq!(
        meta(&h, "dv").await["versions"]["1"]["deletion_time"],
        json!("")
    );
    h.bad(
        Update,
        "metadata/dv",
        json!({"delete_version_after": "-1s"}),
        "cannot provide negative value",
    )
    .await;
    h.bad(
        Update,
        "metadata/dv",
        json!({"delete_version_after": "bogus"}),
        "invalid duration",
    )
    .await;
}

#[tokio::test]
async fn patch_merges_into_a_new_version() {
    let h = v2().await;
    put(&h, "p", json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]})).await;
    let w = h
        .data(
            Patch,
            "data/p",
            json!({"data": {"a": null, "b": {"c": null, "x": 9}, "e": {"y": 1}, "n": "new"}}),
        )
        .await;
    assert_eq!(w["version"], json!(2));
    assert_eq!(
        h.data(Read, "data/p", json!({})).await["data"],
        json!({"b": {"d": 3, "x": 9}, "e": {"y": 1}, "n": "new"})
    );
    // CAS applies to patches.
    h.bad(
        Patch,
        "data/p",
        json!({"data": {"z": 1}, "options": {"cas": 1}}),
        "did not match the current version",
    )
    .await;
    assert_eq!(
        h.data(
            Patch,
            "data/p",
            json!({"data": {"z": 1}, "options": {"cas": 2}})
        )
        .await["version"],
        json!(3)
    );
    // An empty patch still makes a version.
    assert_eq!(
        h.data(Patch, "data/p", json!({"data": {}})).await["version"],
        json!(4)
    );
    // Errors.
    h.bad(
        Patch,
        "data/p",
        json!({"options": {"cas": 4}}),
        "no data provided",
    )
    .await;
    h.bad(
        Patch,
        "data/p",
        json!({"data": "x"}),
        "error converting input for field \"data\"",
    )
    .await;
    h.bad(
        Patch,
        "data/p/",
        json!({"data": {"a": 1}}),
        "cannot write to a path ending in '/'",
    )
    .await;
    h.empty_404(Patch, "data/nokey", json!({"data": {"a": 1}}))
        .await;
    // A metadata-only key has no version to patch.
    h.ok(Update, "metadata/bare", json!({"max_versions": 2}))
        .await;
    h.empty_404(Patch, "data/bare", json!({"data": {"a": 1}}))
        .await;
    // Patching a deleted latest version: 404 with the version's metadata as the body.
    h.ok(Delete, "data/p", json!({})).await;
    let r = h.ok(Patch, "data/p", json!({"data": {"a": 1}})).await;
    assert_eq!(r.status, Some(404));
    let d = body(&r);
    assert_eq!(d["version"], json!(4));
    assert_ne!(d["deletion_time"], json!(""));
    assert_eq!(meta(&h, "p").await["current_version"], json!(4));
    // A null patch makes the data null (RFC 7396); patching null data starts from {}.
    put(&h, "n", json!({"a": 1})).await;
    h.ok(Patch, "data/n", json!({"data": null})).await;
    assert_eq!(h.data(Read, "data/n", json!({})).await["data"], Value::Null);
    h.ok(Patch, "data/n", json!({"data": {"b": 1}})).await;
    assert_eq!(
        h.data(Read, "data/n", json!({})).await["data"],
        json!({"b": 1})
    );
}

#[tokio::test]
async fn metadata_read_write_patch_delete() {
    let h = v2().await;
    h.not_found(Read, "metadata/hvac", json!({})).await;
    put(&h, "hvac", json!({"pssst": "hi"})).await;
    let r = h.ok(Read, "metadata/hvac", json!({"foo": "1"})).await;
    assert_eq!(
        r.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [foo]".to_string()]
    );
    let m = meta(&h, "hvac").await;
    assert_eq!(
        m.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec![
            "cas_required",
            "created_time",
            "current_metadata_version",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "metadata_cas_required",
            "oldest_version",
            "updated_time",
            "versions"
        ]
    );
    assert_eq!(m["current_version"], json!(1));
    assert_eq!(m["oldest_version"], json!(0));
    assert_eq!(m["current_metadata_version"], json!(0));
    assert_eq!(m["custom_metadata"], Value::Null);
    assert_eq!(m["delete_version_after"], json!("0s"));
    assert_eq!(m["created_time"], m["updated_time"]);
    assert_eq!(
        m["versions"]["1"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["created_time", "deletion_time", "destroyed"]
    );

    // As hvac's update_metadata() sends it.
    assert!(h.ok(Update, "metadata/hvac", json!({"delete_version_after": "30s", "max_versions": 7, "cas_required": true, "custom_metadata": {"color": "blue"}})).await.is_empty());
    let m2 = meta(&h, "hvac").await;
    assert_eq!(m2["max_versions"], json!(7));
    assert_eq!(m2["cas_required"], json!(true));
    assert_eq!(m2["delete_version_after"], json!("30s"));
    assert_eq!(m2["custom_metadata"], json!({"color": "blue"}));
    assert_eq!(m2["current_metadata_version"], json!(1));
    assert_ne!(m2["updated_time"], m["updated_time"]);
    // Custom metadata shows in data reads and writes.
    assert_eq!(
        h.data(Read, "data/hvac", json!({})).await["metadata"]["custom_metadata"],
        json!({"color": "blue"})
    );
    assert_eq!(
        h.data(
            Update,
            "data/hvac",
            json!({"data": {"a": 1}, "options": {"cas": 1}})
        )
        .await["custom_metadata"],
        json!({"color": "blue"})
    );
    // Values are weakly typed to strings; a write replaces the whole map.
    h.ok(
        Update,
        "metadata/hvac",
        json!({"custom_metadata": {"n": 5}}),
    )
    .await;
    assert_eq!(meta(&h, "hvac").await["custom_metadata"], json!({"n": "5"}));
    // An empty write changes nothing.
    let before = meta(&h, "hvac").await;
    assert!(h.ok(Update, "metadata/hvac", json!({})).await.is_empty());
    assert_eq!(meta(&h, "hvac").await, before);

    // Patch: named fields only; custom_metadata merges, null removes.
    h.ok(
        Update,
        "metadata/hvac",
        json!({"custom_metadata": {"a": "1", "b": "2"}}),
    )
    .await;
    assert!(h
        .ok(
            Patch,
            "metadata/hvac",
            json!({"custom_metadata": {"a": null, "c": "3"}, "max_versions": 5})
        )
        .await
        .is_empty());
    let m3 = meta(&h, "hvac").await;
    assert_eq!(m3["custom_metadata"], json!({"b": "2", "c": "3"}));
    assert_eq!(m3["max_versions"], json!(5));
    assert_eq!(m3["cas_required"], json!(true));
    h.ok(Patch, "metadata/hvac", json!({"custom_metadata": null}))
        .await;
    assert_eq!(meta(&h, "hvac").await["custom_metadata"], Value::Null);
    h.empty_404(Patch, "metadata/nokey", json!({"max_versions": 1}))
        .await;
    h.bad(
        Patch,
        "metadata/hvac",
        json!({"custom_metadata": {"a": {"x": 1}}}),
        "custom_metadata validation failed",
    )
    .await;

    // Validation.
    h.bad(
        Update,
        "metadata/hvac",
        json!({"custom_metadata": {"k": {"x": 1}}}),
        "custom_metadata validation failed",
    )
    .await;
    h.bad(
        Update,
        "metadata/hvac",
        json!({"custom_metadata": {"k": ""}}),
        "length of value",
    )
    .await;
    h.bad(
        Update,
        "metadata/hvac",
        json!({"custom_metadata": "not-a-dict"}),
        "custom_metadata",
    )
    .await;
    h.bad(
        Update,
        "metadata/hvac",
        json!({"max_versions": -1}),
        "max_versions",
    )
    .await;
    h.bad(
        Update,
        "metadata/hvac",
        json!({"cas_required": "cats"}),
        "cas_required",
    )
    .await;
    h.bad(
        Update,
        "metadata/",
        json!({"max_versions": 1}),
        "cannot write to a path ending in '/'",
    )
    .await;
    h.not_found(Read, "metadata/hvac/", json!({})).await;

    // Metadata may exist before any version.
    h.ok(
        Update,
        "metadata/pre",
        json!({"max_versions": 3, "custom_metadata": {"k": "v"}}),
    )
    .await;
    let p = meta(&h, "pre").await;
    assert_eq!(
        (
            p["current_version"].clone(),
            p["versions"].clone(),
            p["current_metadata_version"].clone()
        ),
        (json!(0), json!({}), json!(1))
    );
    h.not_found(Read, "data/pre", json!({})).await;
    assert_eq!(put(&h, "pre", json!({"a": 1})).await, 1);

    // Delete removes the key and every version, for good.
    assert!(h.ok(Delete, "metadata/hvac", json!({})).await.is_empty());
    h.not_found(Read, "metadata/hvac", json!({})).await;
    h.not_found(Read, "data/hvac", json!({"version": 1})).await;
    let k = Key::new("hvac");
    for n in 1..=3 {
        assert!(
            h.view.get(&k.version_key(n)).await.unwrap().is_none(),
            "version {n} data deleted"
        );
    }
    assert_eq!(
        h.view.list_recursive("v2/ver/").await.unwrap().len(),
        1,
        "only the other key's version is left"
    );
    assert!(h.ok(Delete, "metadata/hvac", json!({})).await.is_empty());
    assert_eq!(
        put(&h, "hvac", json!({"a": 1})).await,
        1,
        "a deleted key starts over"
    );
}

#[tokio::test]
async fn metadata_check_and_set() {
    let h = v2().await;
    h.ok(Update, "metadata/m", json!({"metadata_cas_required": true}))
        .await;
    assert_eq!(meta(&h, "m").await["current_metadata_version"], json!(1));
    h.bad(
        Update,
        "metadata/m",
        json!({"max_versions": 7}),
        "metadata check-and-set parameter required for this call",
    )
    .await;
    h.bad(
        Update,
        "metadata/m",
        json!({"max_versions": 7, "metadata_cas": 2}),
        "metadata check-and-set parameter does not match the current version",
    )
    .await;
    h.ok(
        Update,
        "metadata/m",
        json!({"max_versions": 7, "metadata_cas": 1}),
    )
    .await;
    h.bad(
        Patch,
        "metadata/m",
        json!({"max_versions": 8}),
        "metadata check-and-set parameter required",
    )
    .await;
    h.ok(
        Patch,
        "metadata/m",
        json!({"max_versions": 8, "metadata_cas": 2}),
    )
    .await;
    let m = meta(&h, "m").await;
    assert_eq!(
        (
            m["max_versions"].clone(),
            m["current_metadata_version"].clone(),
            m["metadata_cas_required"].clone()
        ),
        (json!(8), json!(3), json!(true))
    );
    // Data writes do not count as metadata versions.
    put(&h, "m", json!({"a": 1})).await;
    assert_eq!(meta(&h, "m").await["current_metadata_version"], json!(3));
    // Creating with a cas: it must be 0.
    h.bad(
        Update,
        "metadata/new",
        json!({"max_versions": 1, "metadata_cas": 1}),
        "metadata_cas must be 0 when creating new metadata",
    )
    .await;
    h.ok(
        Update,
        "metadata/new",
        json!({"max_versions": 1, "metadata_cas": 0}),
    )
    .await;
    // A cas alone changes nothing and creates nothing.
    h.ok(Update, "metadata/none", json!({"metadata_cas": 0}))
        .await;
    h.not_found(Read, "metadata/none", json!({})).await;
    // Required by the mount.
    h.ok(Update, "config", json!({"metadata_cas_required": true}))
        .await;
    h.bad(
        Update,
        "metadata/other",
        json!({"max_versions": 1}),
        "metadata check-and-set parameter required",
    )
    .await;
    let r = h
        .ok(
            Update,
            "metadata/other",
            json!({"metadata_cas_required": false, "metadata_cas": 0}),
        )
        .await;
    assert_eq!(r.warnings, vec!["\"metadata_cas_required\" set to false, but is mandated by backend config. This value will be ignored.".to_string()]);
    h.bad(
        Update,
        "metadata/other",
        json!({"metadata_cas": "x", "max_versions": 1}),
        "metadata_cas",
    )
    .await;
    // Deleting needs no cas.
    h.ok(Delete, "metadata/m", json!({})).await;
    h.not_found(Read, "metadata/m", json!({})).await;
}

#[tokio::test]
async fn list_metadata_folders() {
    let h = v2().await;
    h.not_found(List, "metadata/", json!({})).await;
    for k in ["hvac/top-secret", "a", "a/b", "a/c/d", "z", "sp ace"] {
        put(&h, k, json!({"pssst": "hi"})).await;
    }
    // As hvac's list_secrets test expects.
    assert_eq!(
        h.data(List, "metadata/hvac", json!({})).await,
        json!({"keys": ["top-secret"]})
    );
    h.not_found(List, "metadata/nope", json!({})).await;
    assert_eq!(
        h.data(List, "metadata/", json!({})).await,
        json!({"keys": ["a", "a/", "hvac/", "sp ace", "z"]})
    );
    assert_eq!(
        h.data(List, "metadata", json!({})).await,
        json!({"keys": ["a", "a/", "hvac/", "sp ace", "z"]})
    );
    assert_eq!(
        h.data(List, "metadata/a/", json!({})).await,
        json!({"keys": ["b", "c/"]})
    );
    // Paging.
    assert_eq!(
        h.data(List, "metadata/", json!({"limit": 2})).await,
        json!({"keys": ["a", "a/"]})
    );
    assert_eq!(
        h.data(List, "metadata/", json!({"after": "a/", "limit": "2"}))
            .await,
        json!({"keys": ["hvac/", "sp ace"]})
    );
    // `after` is a child name, folder or key, and need not exist.
    assert_eq!(
        h.data(List, "metadata/", json!({"after": "a", "limit": 1}))
            .await,
        json!({"keys": ["a/"]})
    );
    assert_eq!(
        h.data(List, "metadata/", json!({"after": "b", "limit": 0}))
            .await,
        json!({"keys": ["hvac/", "sp ace", "z"]})
    );
    h.not_found(List, "metadata/", json!({"after": "z"})).await;
    // A key and a folder of the same name are independent.
    h.ok(Delete, "metadata/a", json!({})).await;
    assert_eq!(
        h.data(Read, "data/a/b", json!({})).await["data"],
        json!({"pssst": "hi"})
    );
    assert_eq!(
        h.data(List, "metadata/", json!({})).await,
        json!({"keys": ["a/", "hvac/", "sp ace", "z"]})
    );
    // Metadata without versions is listed (as in Vault).
    h.ok(Update, "metadata/only-meta", json!({"max_versions": 1}))
        .await;
    assert!(h.data(List, "metadata/", json!({})).await["keys"]
        .as_array()
        .unwrap()
        .contains(&json!("only-meta")));
    // LIST on data/ is not supported.
    assert_eq!(h.err(List, "data/", json!({})).await.status(), 405);

    let d = h.data(List, "detailed-metadata/a", json!({})).await;
    assert_eq!(d["keys"], json!(["b", "c/"]));
    assert_eq!(d["key_info"]["b"]["current_version"], json!(1));
    assert_eq!(d["key_info"]["c/"], json!({}));
    h.not_found(List, "detailed-metadata/nope", json!({})).await;
}

#[tokio::test]
async fn subkeys() {
    let h = v2().await;
    put(
        &h,
        "sk",
        json!({"a": {"b": {"c": 1, "d": [1, 2]}, "e": "x"}, "f": null, "g": {}}),
    )
    .await;
    let d = h.data(Read, "subkeys/sk", json!({})).await;
    assert_eq!(
        d["subkeys"],
        json!({"a": {"b": {"c": null, "d": null}, "e": null}, "f": null, "g": null})
    );
    assert_eq!(d["metadata"]["version"], json!(1));
    assert_eq!(
        h.data(Read, "subkeys/sk", json!({"depth": "1"})).await["subkeys"],
        json!({"a": null, "f": null, "g": null})
    );
    assert_eq!(
        h.data(Read, "subkeys/sk", json!({"depth": 2})).await["subkeys"],
        json!({"a": {"b": null, "e": null}, "f": null, "g": null})
    );
    h.bad(Read, "subkeys/sk", json!({"depth": "x"}), "depth")
        .await;
    h.bad(Read, "subkeys/sk", json!({"depth": -1}), "depth")
        .await;
    put(&h, "sk", json!({})).await;
    put(&h, "sk", Value::Null).await;
    assert_eq!(
        h.data(Read, "subkeys/sk", json!({"version": 2})).await["subkeys"],
        json!({})
    );
    assert_eq!(
        h.data(Read, "subkeys/sk", json!({})).await["subkeys"],
        Value::Null
    );
    assert_eq!(
        h.data(Read, "subkeys/sk", json!({"version": 1})).await["metadata"]["version"],
        json!(1)
    );
    h.not_found(Read, "subkeys/sk", json!({"version": 5})).await;
    h.not_found(Read, "subkeys/nokey", json!({})).await;
    h.ok(Delete, "data/sk", json!({})).await;
    let r = h.ok(Read, "subkeys/sk", json!({})).await;
    assert_eq!(r.status, Some(404));
    assert_eq!(body(&r)["subkeys"], Value::Null);
    assert_ne!(body(&r)["metadata"]["deletion_time"], json!(""));
}

#[tokio::test]
async fn invalid_paths_answer_404_with_a_warning() {
    let h = v2().await;
    for (op, path, sub) in [
        (Read, "foo", "get"),
        (Update, "foo", "put"),
        (List, "", "list"),
        (Delete, "x/y", "delete"),
        (Patch, "foo", "patch"),
        (Read, "config/x", "get"),
    ] {
        let r = h.ok(op, path, json!({"a": 1})).await;
        assert_eq!(r.status, Some(404), "{op:?} {path}");
        assert!(r.data.is_none());
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0].starts_with("Invalid path for a versioned K/V secrets engine."),
            "{}",
            r.warnings[0]
        );
        assert!(
            r.warnings[0].contains(&format!("'tresor kv {sub}'")),
            "{}",
            r.warnings[0]
        );
    }
    for root in ["data", "metadata", "delete", "undelete", "destroy"] {
        let r = h.ok(Read, root, json!({})).await;
        assert_eq!(
            (r.status, r.warnings.clone()),
            (
                Some(404),
                vec![
                    "Non-listing operations on the root of a K/V v2 mount are not supported."
                        .to_string()
                ]
            )
        );
    }
    // Nothing was written by any of that.
    assert!(h.view.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn storage_layout_and_encryption() {
    let h = v2().await;
    put(&h, "dir/key", json!({"password": "hunter2"})).await;
    put(&h, "dir/key", json!({"password": "hunter3"})).await;
    assert_eq!(h.view.list("").await.unwrap(), vec!["v2/"]);
    assert_eq!(h.view.list("v2/meta/").await.unwrap(), vec!["dir/"]);
    let k = Key::new("dir/key");
    assert_eq!(
        h.view.get(&k.version_key(2)).await.unwrap().unwrap(),
        br#"{"password":"hunter3"}"#.to_vec()
    );
    let versions = h.view.list_recursive("v2/ver/").await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(
        versions.iter().all(|v| !v.contains("dir")),
        "version records do not carry key names"
    );
    let d = h.backend.describe();
    assert_eq!(d["version"], json!(2));
    assert!(d["paths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["pattern"] == json!("data/(?P<path>.*)")));
}
