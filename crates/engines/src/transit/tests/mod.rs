//! Tests of the transit engine, driven through a real in-process core (init, unseal, token,
//! ACL, router, `sys/mounts/transit`), as a client would drive it over HTTP; plus
//! known-answer cross-checks of what aws-lc-rs computes for the engine against independent
//! implementations (Python `cryptography`, the `openssl` command) in [`crosscheck`].
//!
//! * `keys`: key CRUD, config, rotate, trim, `config/keys`.
//! * `crypt`: encrypt, decrypt, rewrap, datakey, batches, derived and convergent keys.
//! * `sign`: sign, verify, hmac.
//! * `misc`: export, backup/restore, BYOK import, random, hash, cache-config.
//! * `rotation`: scheduled rotation, in memory and across restarts.

mod crosscheck;
mod crypt;
mod keys;
mod misc;
mod rotation;
mod sign;

use super::factory;
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::logical::{Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;
use tresor_storage::Storage;

pub use Operation::{Delete, List, Read, Update};

/// An unsealed core with transit mounted at `transit/`.
pub struct Env {
    pub core: Arc<Core>,
    pub root: String,
    pub unseal_key: zeroize::Zeroizing<Vec<u8>>,
}

impl Env {
    pub async fn new() -> Env {
        Self::with_storage(Arc::new(MemoryStorage::new())).await
    }

    pub async fn with_storage(storage: Arc<dyn Storage>) -> Env {
        let core = Core::new(
            storage,
            Registry::default().secrets("transit", Arc::new(factory)),
            CoreConfig::default(),
        );
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
        assert!(core.submit_unseal_key(init.keys[0].clone()).await.unwrap());
        let env = Env {
            core,
            root: init.root_token,
            unseal_key: init.keys[0].clone(),
        };
        env.ok(Update, "sys/mounts/transit", json!({"type": "transit"}))
            .await;
        env
    }

    /// Seals and unseals: every backend is rebuilt and re-initialized from storage.
    pub async fn restart(&self) {
        self.core.seal_now();
        assert!(self
            .core
            .submit_unseal_key(self.unseal_key.clone())
            .await
            .unwrap());
    }

    pub async fn req(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.core
            .handle(
                Request::new(op, path)
                    .with_token(&self.root)
                    .with_data(data),
            )
            .await
    }

    /// A request that must succeed; its response.
    pub async fn resp(&self, op: Operation, path: &str, data: Value) -> Response {
        match self.req(op, path, data.clone()).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path} {data}: {e}"),
        }
    }

    /// A request that must succeed; its `data`.
    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Value {
        body(&self.resp(op, path, data).await)
    }

    /// A request that must fail; its error.
    pub async fn err(&self, op: Operation, path: &str, data: Value) -> Error {
        match self.req(op, path, data.clone()).await {
            Ok(r) => panic!(
                "{op:?} {path} {data}: expected an error, got {:?} {:?}",
                r.status, r.data
            ),
            Err(e) => e,
        }
    }

    /// A request that must fail with `status` and a message containing `msg`.
    pub async fn fails(&self, op: Operation, path: &str, data: Value, status: u16, msg: &str) {
        let e = self.err(op, path, data.clone()).await;
        assert_eq!(e.status(), status, "{op:?} {path} {data}: {e}");
        assert!(
            e.to_string().contains(msg),
            "{op:?} {path} {data}: {e:?} should contain {msg:?}"
        );
    }

    /// A request that must fail with 400 and a message containing `msg`.
    pub async fn bad(&self, op: Operation, path: &str, data: Value, msg: &str) {
        self.fails(op, path, data, 400, msg).await
    }

    /// Encrypts base64 `plaintext` with `key`; the ciphertext.
    pub async fn encrypt(&self, key: &str, data: Value) -> String {
        self.ok(Update, &format!("transit/encrypt/{key}"), data)
            .await["ciphertext"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// A response's `data` as JSON (`null` when absent).
pub fn body(r: &Response) -> Value {
    r.data.clone().map(Value::Object).unwrap_or(Value::Null)
}

pub fn b64(data: &[u8]) -> String {
    super::encoding::b64(data)
}

pub fn unb64(s: &str) -> Vec<u8> {
    super::encoding::b64_decode(s).unwrap()
}
