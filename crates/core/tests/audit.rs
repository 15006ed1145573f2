//! Audit devices end to end: entries for every request and response with secrets HMAC'd,
//! fail-closed behaviour, the API's confinement to `audit_dir`, and the tamper-evident chain.

use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::audit::{chain, AuditEntry};
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::logical::Operation;
use tresor_storage::memory::MemoryStorage;

mod common;
use common::{call, unsealed_with};

async fn core_with(config: CoreConfig) -> (Arc<Core>, String, zeroize::Zeroizing<Vec<u8>>) {
    unsealed_with(Arc::new(MemoryStorage::new()), Registry::default(), config).await
}

fn entries(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn file_device_records_hashed_entries_and_chains_them() {
    let dir = tempfile::tempdir().unwrap();
    let (core, root, key) = core_with(CoreConfig {
        audit_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let log = dir.path().join("audit.log");
    call(
        &core,
        Operation::Update,
        "sys/audit/file",
        &root,
        json!({ "type": "file", "options": { "file_path": log.to_str().unwrap() } }),
    )
    .await
    .unwrap();
    call(
        &core,
        Operation::Update,
        "cubbyhole/db",
        &root,
        json!({ "password": "hunter2-secret" }),
    )
    .await
    .unwrap();
    let read = call(&core, Operation::Read, "cubbyhole/db", &root, json!({}))
        .await
        .unwrap();
    assert_eq!(read.data.unwrap()["password"], "hunter2-secret");
    let _ = call(
        &core,
        Operation::Read,
        "cubbyhole/db",
        "hvs.bogus",
        json!({}),
    )
    .await
    .unwrap_err();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("hunter2-secret"),
        "a secret value reached the audit log"
    );
    assert!(!text.contains(&root), "a token reached the audit log");
    let es = entries(&log);
    // enable's response, then request+response for each of the three calls.
    assert_eq!(es.len(), 7, "{text}");
    let write_req = es
        .iter()
        .find(|e| {
            e["type"] == "request"
                && e["request"]["operation"] == "update"
                && e["request"]["path"] == "cubbyhole/db"
        })
        .unwrap();
    let hashed = write_req["request"]["data"]["password"].as_str().unwrap();
    assert!(hashed.starts_with("hmac-sha256:"));
    assert_eq!(write_req["request"]["mount_type"], "cubbyhole");
    assert!(write_req["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    // sys/audit-hash gives the same hash for the same input.
    let h = call(
        &core,
        Operation::Update,
        "sys/audit-hash/file",
        &root,
        json!({ "input": "hunter2-secret" }),
    )
    .await
    .unwrap();
    assert_eq!(h.data.unwrap()["hash"], hashed);
    let denied = es
        .iter()
        .find(|e| e["type"] == "response" && e["error"] == "permission denied")
        .unwrap();
    assert!(denied["auth"].is_null());
    let resp = es
        .iter()
        .find(|e| e["type"] == "response" && e["request"]["operation"] == "read")
        .unwrap();
    assert!(resp["response"]["data"]["password"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));

    // The chain verifies with the device's key, also across a seal/unseal (a restart).
    let k = call(
        &core,
        Operation::Read,
        "sys/audit-chain-key/file",
        &root,
        json!({}),
    )
    .await
    .unwrap();
    let chain_key = hex::decode(k.data.unwrap()["key"].as_str().unwrap()).unwrap();
    core.seal_now();
    core.submit_unseal_key(key).await.unwrap();
    call(&core, Operation::Read, "cubbyhole/db", &root, json!({}))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let n = chain::verify(&chain_key, &text).unwrap();
    assert!(n >= 10, "{n}");
    // Tampering is found at the right line.
    let tampered = text.replacen("\"operation\":\"read\"", "\"operation\":\"list\"", 1);
    let broken = chain::verify(&chain_key, &tampered).unwrap_err();
    assert!(broken.reason.contains("altered"), "{broken:?}");
}

#[tokio::test]
async fn requests_fail_closed_when_no_device_can_record() {
    // A TCP socket device whose peer is gone: nothing can be recorded.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (core, root, _) = core_with(CoreConfig::default()).await;
    call(
        &core,
        Operation::Update,
        "cubbyhole/x",
        &root,
        json!({ "v": "1" }),
    )
    .await
    .unwrap();
    call(
        &core,
        Operation::Update,
        "sys/audit/sock",
        &root,
        json!({ "type": "socket", "options": { "address": format!("127.0.0.1:{port}") } }),
    )
    .await
    .unwrap_err();
    // A device that cannot reach its peer is refused when enabled: nothing changed.
    let list = call(&core, Operation::Read, "sys/audit", &root, json!({}))
        .await
        .unwrap();
    assert!(list.data.unwrap().is_empty());

    // A device that always fails (config-declared, writing to /dev/full): every request fails
    // with a 500, and the client learns nothing of the secret.
    let dev_full = AuditEntry {
        path: "full/".into(),
        kind: "file".into(),
        description: String::new(),
        options: json!({ "file_path": "/dev/full" })
            .as_object()
            .cloned()
            .unwrap(),
        local: false,
        from_config: false,
    };
    let (core, root, _) = core_with(CoreConfig {
        audit_devices: vec![dev_full],
        ..Default::default()
    })
    .await;
    let e = call(
        &core,
        Operation::Update,
        "cubbyhole/x",
        &root,
        json!({ "v": "1" }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 500);
    assert!(!e.to_string().contains("\"1\""));
    let e = call(&core, Operation::Read, "cubbyhole/x", &root, json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 500);
    // Config-declared devices cannot be removed over the API.
    assert!(
        call(&core, Operation::Delete, "sys/audit/full", &root, json!({}))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn api_file_devices_are_confined_to_audit_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (core, root, _) = core_with(CoreConfig {
        audit_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let escape = format!("{}/../escape.log", dir.path().display());
    for bad in ["/etc/cron.d/pwn", escape.as_str(), "/tmp/x.log"] {
        let e = call(
            &core,
            Operation::Update,
            "sys/audit/f",
            &root,
            json!({ "type": "file", "options": { "file_path": bad } }),
        )
        .await
        .unwrap_err();
        assert_eq!(e.status(), 400, "{bad}: {e}");
    }
    // A symlink inside audit_dir pointing out is refused at open.
    let link = dir.path().join("link.log");
    std::os::unix::fs::symlink("/tmp/tresor-audit-link-target", &link).unwrap();
    let e = call(
        &core,
        Operation::Update,
        "sys/audit/f",
        &root,
        json!({ "type": "file", "options": { "file_path": link.to_str().unwrap() } }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(!std::path::Path::new("/tmp/tresor-audit-link-target").exists());
    // Without audit_dir, API file devices are refused; bad types and formats are 400s.
    let (core, root, _) = core_with(CoreConfig::default()).await;
    let e = call(
        &core,
        Operation::Update,
        "sys/audit/f",
        &root,
        json!({ "type": "file", "options": { "file_path": "/tmp/a.log" } }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "sys/audit/f",
            &root,
            json!({ "type": "carrier-pigeon" })
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
            "sys/audit-hash/none",
            &root,
            json!({ "input": "x" })
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
}

/// Many requests at once, on a multi-threaded runtime, with two file devices: every request
/// and every answer is on record in each file exactly once, and each file's chain verifies
/// (the devices' writers batch what queued while they wrote; the order within a file is the
/// chain's).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_all_recorded_on_an_intact_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (core, root, _) = core_with(CoreConfig {
        audit_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    for name in ["a", "b"] {
        let path = dir.path().join(format!("{name}.log"));
        call(
            &core,
            Operation::Update,
            &format!("sys/audit/{name}"),
            &root,
            json!({ "type": "file", "options": { "file_path": path.to_str().unwrap() } }),
        )
        .await
        .unwrap();
    }
    for k in 0..40 {
        let path = format!("cubbyhole/k{k}");
        call(&core, Operation::Update, &path, &root, json!({ "v": k }))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let (core, root) = (core.clone(), root.clone());
            tokio::spawn(async move {
                let path = format!("cubbyhole/k{}", i % 40);
                if i % 4 == 0 {
                    call(&core, Operation::Update, &path, &root, json!({ "v": i })).await
                } else {
                    call(&core, Operation::Read, &path, &root, json!({})).await
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for name in ["a", "b"] {
        let key = call(
            &core,
            Operation::Read,
            &format!("sys/audit-chain-key/{name}"),
            &root,
            json!({}),
        )
        .await
        .unwrap();
        let key = hex::decode(key.data.unwrap()["key"].as_str().unwrap()).unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(chain::verify(&key, &text), Ok(text.lines().count()));
        let es = entries(&log);
        let ids = |kind: &str| {
            let mut ids: Vec<String> = es
                .iter()
                .filter(|e| {
                    e["type"] == kind
                        && e["request"]["path"]
                            .as_str()
                            .unwrap()
                            .starts_with("cubbyhole/k")
                })
                .map(|e| e["request"]["id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        };
        let requests = ids("request");
        assert_eq!(requests.len(), 440, "{name}");
        requests
            .windows(2)
            .for_each(|w| assert_ne!(w[0], w[1], "{name}: an entry twice"));
        assert_eq!(ids("response"), requests, "{name}");
    }
}
