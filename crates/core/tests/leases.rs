//! The lease manager end to end: issue, look up, renew, revoke, expire on time (also after a
//! restart), retry failed revocations, and revoke with the owning token.
//!
//! The engine here is a test double that issues "credentials" and records revocations: the
//! point is the core's lease mechanics; real engines (database, PKI) test their own hooks.

use parking_lot::Mutex;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::framework::{Call, Field, LeaseCall, Path, PathBackend};
use tresor_core::logical::{Operation, Request, Response, Secret};
use tresor_storage::memory::MemoryStorage;
use tresor_storage::Storage;

mod common;
use common::{call, data, unsealed_with};

#[derive(Default)]
struct Issuer {
    revoked: Mutex<Vec<String>>,
    renewed: Mutex<Vec<u64>>,
    fail_revoke: AtomicBool,
}

fn factory(issuer: Arc<Issuer>) -> tresor_core::core::Factory {
    Arc::new(move |_entry| {
        let issuer = issuer.clone();
        let b = PathBackend::new(
            Forward(issuer),
            vec![Path::new("creds/(?P<name>.+)")
                .field("ttl", Field::duration("ttl"))
                .field("max_ttl", Field::duration("max ttl"))
                .op(Operation::Read, |_b: Arc<Forward>, c: Call| async move {
                    Ok(Response {
                        data: json!({ "username": c.fields.str("name") })
                            .as_object()
                            .cloned(),
                        secret: Some(Box::new(Secret {
                            ttl: c.fields.duration("ttl"),
                            max_ttl: c.fields.duration("max_ttl"),
                            renewable: true,
                            internal: json!({ "username": c.fields.str("name") }),
                        })),
                        ..Default::default()
                    })
                })],
        )
        .on_revoke(|b: Arc<Forward>, l: LeaseCall| async move {
            if b.0.fail_revoke.load(Ordering::SeqCst) {
                return Err(Error::internal("database is down"));
            }
            b.0.revoked
                .lock()
                .push(l.internal["username"].as_str().unwrap_or("").to_string());
            Ok(())
        })
        .on_renew(|b: Arc<Forward>, l: LeaseCall| async move {
            b.0.renewed.lock().push(l.increment);
            Ok(())
        });
        Ok(Arc::new(b))
    })
}

struct Forward(Arc<Issuer>);

async fn setup(
    storage: Arc<MemoryStorage>,
    issuer: Arc<Issuer>,
) -> (Arc<Core>, String, Vec<zeroize::Zeroizing<Vec<u8>>>) {
    let (core, root, key) = unsealed_with(
        storage,
        Registry::default().secrets("creds", factory(issuer)),
        CoreConfig::default(),
    )
    .await;
    let r = Request::new(Operation::Update, "sys/mounts/db")
        .with_token(&root)
        .with_data(json!({ "type": "creds" }));
    core.handle(r).await.unwrap();
    (core, root, vec![key])
}

#[tokio::test]
async fn issue_lookup_renew_revoke() {
    let issuer = Arc::new(Issuer::default());
    let (core, root, _) = setup(Arc::new(MemoryStorage::new()), issuer.clone()).await;
    let r = call(
        &core,
        Operation::Read,
        "db/creds/alice",
        &root,
        json!({ "ttl": "1h", "max_ttl": "2h" }),
    )
    .await
    .unwrap();
    let lease = r.lease.unwrap();
    assert!(lease.lease_id.starts_with("db/creds/alice/"));
    assert_eq!(lease.duration, 3600);
    let look = call(
        &core,
        Operation::Update,
        "sys/leases/lookup",
        &root,
        json!({ "lease_id": lease.lease_id }),
    )
    .await
    .unwrap();
    assert_eq!(data(&look)["renewable"], true);
    // Renewal is bounded by max_ttl and calls the backend's hook.
    let ren = call(
        &core,
        Operation::Update,
        "sys/leases/renew",
        &root,
        json!({ "lease_id": lease.lease_id, "increment": "10h" }),
    )
    .await
    .unwrap();
    let d = ren.lease.unwrap().duration;
    assert!(d <= 7200 && d > 7000, "{d}");
    assert_eq!(issuer.renewed.lock().len(), 1);
    // Listing needs sudo (root has it); the lease id is a path.
    let list = call(
        &core,
        Operation::List,
        "sys/leases/lookup/db/creds/",
        &root,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&list)["keys"], json!(["alice/"]));
    call(
        &core,
        Operation::Update,
        "sys/leases/revoke",
        &root,
        json!({ "lease_id": lease.lease_id }),
    )
    .await
    .unwrap();
    assert_eq!(*issuer.revoked.lock(), vec!["alice"]);
    let e = call(
        &core,
        Operation::Update,
        "sys/leases/lookup",
        &root,
        json!({ "lease_id": lease.lease_id }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    let e = call(
        &core,
        Operation::Update,
        "sys/leases/renew",
        &root,
        json!({ "lease_id": "db/creds/nope/x" }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 400);
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "sys/leases/renew",
            &root,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
}

#[tokio::test]
async fn leases_expire_on_time_and_failed_revocations_retry() {
    let issuer = Arc::new(Issuer::default());
    let (core, root, _) = setup(Arc::new(MemoryStorage::new()), issuer.clone()).await;
    issuer.fail_revoke.store(true, Ordering::SeqCst);
    let r = call(
        &core,
        Operation::Read,
        "db/creds/bob",
        &root,
        json!({ "ttl": "1s" }),
    )
    .await
    .unwrap();
    let id = r.lease.unwrap().lease_id;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The database is down: the lease is kept, with its error, for another attempt.
    assert!(issuer.revoked.lock().is_empty());
    call(
        &core,
        Operation::Update,
        "sys/leases/lookup",
        &root,
        json!({ "lease_id": id }),
    )
    .await
    .unwrap();
    let e = call(
        &core,
        Operation::Update,
        "sys/leases/revoke",
        &root,
        json!({ "lease_id": id }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 500);
    issuer.fail_revoke.store(false, Ordering::SeqCst);
    // Backoff after the first failure is 2s.
    for _ in 0..50 {
        if !issuer.revoked.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(*issuer.revoked.lock(), vec!["bob"]);
}

#[tokio::test]
async fn revoking_a_token_revokes_its_leases_and_prefix_revocation() {
    let issuer = Arc::new(Issuer::default());
    let (core, root, _) = setup(Arc::new(MemoryStorage::new()), issuer.clone()).await;
    let app = call(
        &core,
        Operation::Update,
        "auth/token/create",
        &root,
        json!({ "policies": ["root"] }),
    )
    .await
    .unwrap()
    .auth
    .unwrap()
    .client_token;
    call(&core, Operation::Read, "db/creds/carol", &app, json!({}))
        .await
        .unwrap();
    call(&core, Operation::Read, "db/creds/dave", &root, json!({}))
        .await
        .unwrap();
    call(
        &core,
        Operation::Update,
        "auth/token/revoke",
        &root,
        json!({ "token": app }),
    )
    .await
    .unwrap();
    assert_eq!(*issuer.revoked.lock(), vec!["carol"]);
    // revoke-prefix needs sudo and revokes the rest.
    call(
        &core,
        Operation::Update,
        "sys/leases/revoke-prefix/db/creds",
        &root,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(*issuer.revoked.lock(), vec!["carol", "dave"]);
    // revoke-force removes even what the backend cannot revoke.
    issuer.fail_revoke.store(true, Ordering::SeqCst);
    let id = call(&core, Operation::Read, "db/creds/erin", &root, json!({}))
        .await
        .unwrap()
        .lease
        .unwrap()
        .lease_id;
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "sys/leases/revoke-prefix/db",
            &root,
            json!({})
        )
        .await
        .unwrap_err()
        .status(),
        500
    );
    call(
        &core,
        Operation::Update,
        "sys/leases/revoke-force/db",
        &root,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        call(
            &core,
            Operation::Update,
            "sys/leases/lookup",
            &root,
            json!({ "lease_id": id })
        )
        .await
        .unwrap_err()
        .status(),
        400
    );
}

#[tokio::test]
async fn leases_from_before_a_restart_are_revoked_on_time_after_it() {
    let storage = Arc::new(MemoryStorage::new());
    let issuer = Arc::new(Issuer::default());
    let (core, root, keys) = setup(storage.clone(), issuer.clone()).await;
    call(
        &core,
        Operation::Read,
        "db/creds/frank",
        &root,
        json!({ "ttl": "2s" }),
    )
    .await
    .unwrap();
    core.seal_now();
    drop(core);
    // A new server process over the same storage.
    let issuer2 = Arc::new(Issuer::default());
    let core2 = Core::new(
        storage.clone() as Arc<dyn Storage>,
        Registry::default().secrets("creds", factory(issuer2.clone())),
        CoreConfig::default(),
    );
    core2.submit_unseal_key(keys[0].clone()).await.unwrap();
    for _ in 0..60 {
        if !issuer2.revoked.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(*issuer2.revoked.lock(), vec!["frank"]);
    assert!(issuer.revoked.lock().is_empty());
}

#[tokio::test]
async fn leases_of_batch_tokens_go_with_the_parent_and_never_outlive_the_token() {
    let issuer = Arc::new(Issuer::default());
    let (core, root, _) = setup(Arc::new(MemoryStorage::new()), issuer.clone()).await;
    call(
        &core,
        Operation::Update,
        "sys/policies/acl/creds",
        &root,
        json!({ "policy": "path \"db/creds/*\" { capabilities = [\"read\"] }\npath \"auth/token/create\" { capabilities = [\"update\"] }" }),
    )
    .await
    .unwrap();
    let token = |from: String, body: serde_json::Value| {
        let core = core.clone();
        async move {
            call(&core, Operation::Update, "auth/token/create", &from, body)
                .await
                .unwrap()
                .auth
                .unwrap()
                .client_token
        }
    };
    let parent = token(root.clone(), json!({ "policies": ["creds"] })).await;
    let child = token(parent.clone(), json!({ "type": "batch", "ttl": "1h" })).await;
    let orphan = token(
        root.clone(),
        json!({ "type": "batch", "policies": ["creds"], "ttl": "2m", "no_parent": true }),
    )
    .await;

    // The orphan's lease is capped at what is left of the token, not the asked hour.
    let lease = call(
        &core,
        Operation::Read,
        "db/creds/orphaned",
        &orphan,
        json!({ "ttl": "1h" }),
    )
    .await
    .unwrap()
    .lease
    .unwrap();
    assert!(
        lease.duration <= 120 && lease.duration > 100,
        "{}",
        lease.duration
    );

    // The child's lease belongs to the parent: revoking the parent revokes it.
    call(
        &core,
        Operation::Read,
        "db/creds/childs",
        &child,
        json!({ "ttl": "30m" }),
    )
    .await
    .unwrap();
    call(
        &core,
        Operation::Update,
        "auth/token/revoke-self",
        &parent,
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(*issuer.revoked.lock(), vec!["childs"]);
    // The orphan's lease is nobody's: it stays until its own end.
    let look = call(
        &core,
        Operation::Update,
        "sys/leases/lookup",
        &root,
        json!({ "lease_id": lease.lease_id }),
    )
    .await
    .unwrap();
    assert_eq!(data(&look)["id"], lease.lease_id.as_str());
}
