//! Tests of the kv engine, driven through [`Backend::handle`] the way the core drives it: a real
//! barrier over in-memory storage, the existence check deciding create vs update, LIST paths
//! ending in `/`.

mod upgrade;
mod v1;
mod v2;

use super::factory;
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::barrier::{Barrier, View};
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Backend, Call, FieldData};
use tresor_core::logical::{Operation, Response};
use tresor_core::mount::{MountConfig, MountEntry};
use tresor_storage::memory::MemoryStorage;

/// One mounted kv backend with its storage.
pub struct Harness {
    pub backend: Arc<dyn Backend>,
    pub view: View,
    pub mount: MountEntry,
}

impl Harness {
    pub async fn new(version: &str) -> Harness {
        let storage = Arc::new(MemoryStorage::new());
        let barrier = Arc::new(Barrier::new(storage));
        let root = barrier.initialize().await.unwrap();
        barrier.unseal(root).await.unwrap();
        let view = View::new(barrier, "logical/test-uuid/");
        let mut options = serde_json::Map::new();
        if !version.is_empty() {
            options.insert("version".into(), json!(version));
        }
        let mount = MountEntry {
            path: "kv/".into(),
            kind: "kv".into(),
            description: String::new(),
            uuid: "test-uuid".into(),
            accessor: "kv_test".into(),
            config: MountConfig::default(),
            options,
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
            table: "mounts".into(),
        };
        let backend = factory(&mount).unwrap();
        backend.initialize(&view).await.unwrap();
        Harness {
            backend,
            view,
            mount,
        }
    }

    pub fn call(&self, operation: Operation, path: &str, data: Value) -> Call {
        Call {
            operation,
            path: path.to_string(),
            fields: FieldData::default(),
            data: match data {
                Value::Object(m) => m,
                _ => Default::default(),
            },
            storage: self.view.clone(),
            mount: self.mount.clone().into(),
            caller: None,
            request_id: "test".into(),
            remote_addr: None,
            wrap_ttl: None,
            client_certs: Vec::new(),
            ttl_limits: tresor_core::ttl::TtlLimits {
                default_ttl: 768 * 3600,
                max_ttl: 768 * 3600,
            },
        }
    }

    /// What the core does: LIST paths end in `/`, and an update of something that does not
    /// exist is a create.
    pub async fn req(&self, op: Operation, path: &str, data: Value) -> Result<Response> {
        let mut op = op;
        let mut path = path.to_string();
        if op == Operation::List && !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        if op == Operation::Update
            && self
                .backend
                .exists(&self.call(op, &path, data.clone()))
                .await?
                == Some(false)
        {
            op = Operation::Create;
        }
        self.backend.handle(self.call(op, &path, data)).await
    }

    /// A request that must succeed.
    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Response {
        match self.req(op, path, data.clone()).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path} {data}: {e}"),
        }
    }

    /// A request that must fail; its error.
    pub async fn err(&self, op: Operation, path: &str, data: Value) -> Error {
        match self.req(op, path, data.clone()).await {
            Ok(r) => panic!("{op:?} {path} {data}: expected an error, got {:?}", r.data),
            Err(e) => e,
        }
    }

    /// A request that must fail with a 400 whose message contains `msg`.
    pub async fn bad(&self, op: Operation, path: &str, data: Value, msg: &str) {
        let e = self.err(op, path, data).await;
        assert_eq!(e.status(), 400, "{e}");
        assert!(e.to_string().contains(msg), "{e:?} should contain {msg:?}");
    }

    /// A request that must answer 404 with an empty error list.
    pub async fn not_found(&self, op: Operation, path: &str, data: Value) {
        let e = self.err(op, path, data).await;
        assert!(matches!(e, Error::NotFound), "{e:?}");
        assert!(e.messages().is_empty());
    }

    /// A request answered 404 with no body at all.
    pub async fn empty_404(&self, op: Operation, path: &str, data: Value) {
        let r = self.ok(op, path, data).await;
        assert_eq!(r.status, Some(404));
        assert!(r.is_empty(), "no body: {:?} {:?}", r.data, r.warnings);
    }

    /// The `data` of a successful request, as JSON.
    pub async fn data(&self, op: Operation, path: &str, data: Value) -> Value {
        body(&self.ok(op, path, data).await)
    }
}

/// A response's `data` as JSON (`null` when absent).
pub fn body(r: &Response) -> Value {
    r.data.clone().map(Value::Object).unwrap_or(Value::Null)
}
