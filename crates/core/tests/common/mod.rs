//! Helpers the core's integration tests share: an initialized, unsealed core and short forms
//! of a request.
#![allow(dead_code)]

use serde_json::Value;
use std::sync::Arc;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::logical::{Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;
use zeroize::Zeroizing;

/// A core over `storage`, initialized with one key share and unsealed; returns the root token
/// and the unseal key.
pub async fn unsealed_with(
    storage: Arc<MemoryStorage>,
    registry: Registry,
    config: CoreConfig,
) -> (Arc<Core>, String, Zeroizing<Vec<u8>>) {
    let core = Core::new(storage, registry, config);
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 1,
                secret_threshold: 1,
            },
            None,
        )
        .await
        .unwrap();
    core.submit_unseal_key(init.keys[0].clone()).await.unwrap();
    (core, init.root_token, init.keys[0].clone())
}

/// `op` on `path` with `token` and a JSON body.
pub async fn call(
    core: &Core,
    op: Operation,
    path: &str,
    token: &str,
    data: Value,
) -> Result<Response, Error> {
    core.handle(Request::new(op, path).with_token(token).with_data(data))
        .await
}

/// A response's `data` as one JSON object (empty when absent).
pub fn data(r: &Response) -> Value {
    Value::Object(r.data.clone().unwrap_or_default())
}

/// An unsealed core on memory storage whose `kv` type is a backend with no paths of its own: a
/// stand-in secrets engine for tests of mounts, tuning and policies. Returns it and the root
/// token.
pub async fn core_with_stub_kv() -> (Arc<Core>, String) {
    let empty: tresor_core::core::Factory = Arc::new(|_| {
        Ok(Arc::new(tresor_core::framework::PathBackend::new(
            (),
            vec![],
        )))
    });
    let (core, root, _) = unsealed_with(
        Arc::new(MemoryStorage::new()),
        Registry::default().secrets("kv", empty),
        CoreConfig::default(),
    )
    .await;
    (core, root)
}

/// A login method for the tests: anyone who asks gets a token from the grant `make` builds for
/// the user named in the path.
pub struct OpenDoor;

/// An unsealed core with the `door` auth method mounted at `auth/door/`; returns the root token.
pub async fn door_core(make: fn(&str) -> tresor_core::logical::LoginGrant) -> (Arc<Core>, String) {
    door_core_on(Arc::new(MemoryStorage::new()), make).await
}

/// [`door_core`] over the given storage.
pub async fn door_core_on(
    storage: Arc<MemoryStorage>,
    make: fn(&str) -> tresor_core::logical::LoginGrant,
) -> (Arc<Core>, String) {
    use tresor_core::framework::{Call, Path, PathBackend};
    let factory: tresor_core::core::Factory = Arc::new(move |_e| {
        Ok(Arc::new(
            PathBackend::new(
                OpenDoor,
                vec![Path::new("login/(?P<user>.+)").op(
                    Operation::Update,
                    move |_b: Arc<OpenDoor>, c: Call| async move {
                        Ok(Response {
                            login: Some(Box::new(make(c.fields.str("user")))),
                            ..Default::default()
                        })
                    },
                )],
            )
            .unauthenticated(&["login/*"]),
        ))
    });
    let (core, root, _) = unsealed_with(
        storage,
        Registry::default().auth("door", factory),
        CoreConfig::default(),
    )
    .await;
    call(
        &core,
        Operation::Update,
        "sys/auth/door",
        &root,
        serde_json::json!({ "type": "door" }),
    )
    .await
    .unwrap();
    (core, root)
}
