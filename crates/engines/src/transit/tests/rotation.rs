//! Scheduled rotation: the `periodic` hook, its in-memory schedule, and restarts.

use super::*;
use crate::transit::policy::Policy;
use crate::transit::{backend, TransitBackend};
use tresor_core::barrier::{Barrier, View};
use tresor_core::framework::{Backend, Call, FieldData};
use tresor_core::mount::{MountConfig, MountEntry};

fn mount() -> MountEntry {
    MountEntry {
        path: "transit/".into(),
        kind: "transit".into(),
        description: String::new(),
        uuid: "transit-test".into(),
        accessor: "transit_test".into(),
        config: MountConfig::default(),
        options: Default::default(),
        local: false,
        seal_wrap: false,
        external_entropy_access: false,
        table: "mounts".into(),
    }
}

async fn call(b: &TransitBackend, view: &View, op: Operation, path: &str, data: Value) -> Value {
    let c = Call {
        operation: op,
        path: path.to_string(),
        fields: FieldData::default(),
        data: match data {
            Value::Object(m) => m,
            _ => Default::default(),
        },
        storage: view.clone(),
        mount: mount().into(),
        caller: None,
        request_id: "test".into(),
        remote_addr: None,
        wrap_ttl: None,
        client_certs: vec![],
        ttl_limits: tresor_core::ttl::TtlLimits {
            default_ttl: 768 * 3600,
            max_ttl: 768 * 3600,
        },
    };
    body(&b.handle(c).await.unwrap())
}

async fn latest(b: &TransitBackend, view: &View, key: &str) -> i64 {
    call(b, view, Read, &format!("keys/{key}"), json!({})).await["latest_version"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn keys_rotate_on_schedule_and_across_restarts() {
    let barrier = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
    let root = barrier.initialize().await.unwrap();
    barrier.unseal(root).await.unwrap();
    let view = View::new(barrier, "logical/transit-test/");
    let b = backend();
    b.initialize(&view).await.unwrap();
    assert_eq!(b.state().next_rotation(), None);
    // Nothing scheduled: periodic is a no-op.
    b.periodic(&view).await.unwrap();

    let k = call(
        &b,
        &view,
        Update,
        "keys/auto",
        json!({"auto_rotate_period": "1h"}),
    )
    .await;
    call(&b, &view, Update, "keys/manual", json!({})).await;
    let created = k["keys"]["1"].as_i64().unwrap();
    assert_eq!(b.state().next_rotation(), Some(created + 3600));
    let ct = call(
        &b,
        &view,
        Update,
        "encrypt/auto",
        json!({"plaintext": b64(b"before")}),
    )
    .await["ciphertext"]
        .clone();

    b.state().advance_clock(3590);
    b.periodic(&view).await.unwrap();
    assert_eq!(latest(&b, &view, "auto").await, 1);
    b.state().advance_clock(20);
    b.periodic(&view).await.unwrap();
    assert_eq!(latest(&b, &view, "auto").await, 2);
    assert_eq!(latest(&b, &view, "manual").await, 1);
    let next = b.state().next_rotation().unwrap();
    assert!(next >= created + 2 * 3600, "{next} vs {created}");
    // New data uses v2; old data still decrypts.
    let r = call(
        &b,
        &view,
        Update,
        "encrypt/auto",
        json!({"plaintext": b64(b"after")}),
    )
    .await;
    assert_eq!(r["key_version"], 2);
    assert_eq!(
        call(&b, &view, Update, "decrypt/auto", json!({"ciphertext": ct})).await["plaintext"],
        b64(b"before")
    );

    // A restart: a new backend on the same storage picks the schedule up in initialize.
    let b2 = backend();
    b2.initialize(&view).await.unwrap();
    assert_eq!(b2.state().next_rotation(), Some(next));
    b2.state().advance_clock(2 * 3600 + 20);
    b2.periodic(&view).await.unwrap();
    assert_eq!(latest(&b2, &view, "auto").await, 3);
    // Several periods late: one rotation, not one per missed period.
    b2.state().advance_clock(10 * 3600);
    b2.periodic(&view).await.unwrap();
    assert_eq!(latest(&b2, &view, "auto").await, 4);

    // Disabling the period stops rotation.
    call(
        &b2,
        &view,
        Update,
        "keys/auto/config",
        json!({"auto_rotate_period": 0}),
    )
    .await;
    b2.state().advance_clock(100 * 3600);
    b2.periodic(&view).await.unwrap();
    assert_eq!(latest(&b2, &view, "auto").await, 4);
    assert_eq!(b2.state().next_rotation(), None);
}

#[tokio::test]
async fn the_core_runs_the_schedule_after_unseal() {
    let env = Env::new().await;
    env.ok(
        Update,
        "transit/keys/k",
        json!({"auto_rotate_period": "1h"}),
    )
    .await;
    // Age the key by editing its stored creation time (as if the server had been down), then
    // restart: the rebuilt backend finds it overdue and the core's periodic tick rotates it.
    let entry = env
        .core
        .mounts("mounts")
        .unwrap()
        .into_iter()
        .find(|m| m.path == "transit/")
        .unwrap();
    let view = env.core.root_view().sub(&entry.storage_prefix());
    let mut p: Policy = view.get_json("policy/k").await.unwrap().unwrap();
    p.keys.get_mut(&1).unwrap().creation_time -= 7200;
    view.put_json("policy/k", &p).await.unwrap();
    env.restart().await;
    let mut version = 1;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        version = env.ok(Read, "transit/keys/k", json!({})).await["latest_version"]
            .as_i64()
            .unwrap();
        if version == 2 {
            break;
        }
    }
    assert_eq!(version, 2, "the overdue key rotated after unseal");
}
