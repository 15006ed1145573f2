//! Tests of the SSH engine through a real in-process core (init, unseal, token, ACL, router,
//! `sys/mounts/ssh`), as a client would drive it over HTTP. Certificates are read back with
//! `ssh-key` (and, in `crates/cli/tests/ssh.rs`, by `ssh-keygen` and a real `sshd`).
//!
//! * `ca`: `config/ca`, `public_key`, issuers, `config/issuers`.
//! * `signing`: roles, `sign`, `issue`, and every refusal.
//! * `otp`: `creds`, `verify` (single use, also under races), `lookup`, `config/zeroaddress`.

mod ca;
mod otp;
mod signing;

use super::factory;
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::logical::{Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;

pub use Operation::{Delete, List, Read, Update};

/// An unsealed core with the SSH engine mounted at `ssh/`.
pub struct Env {
    pub core: Arc<Core>,
    pub root: String,
}

impl Env {
    pub async fn new() -> Env {
        let core = Core::new(
            Arc::new(MemoryStorage::new()),
            Registry::default().secrets("ssh", Arc::new(factory)),
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
        };
        env.ok(Update, "sys/mounts/ssh", json!({"type": "ssh"}))
            .await;
        env
    }

    pub async fn req_as(
        &self,
        token: Option<&str>,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Response, Error> {
        let mut r = Request::new(op, path).with_data(data);
        r.token = token.map(str::to_string);
        self.core.handle(r).await
    }

    pub async fn req(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.req_as(Some(&self.root), op, path, data).await
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

    /// A request that must fail with `status` and a message containing `msg`.
    pub async fn fails(&self, op: Operation, path: &str, data: Value, status: u16, msg: &str) {
        match self.req(op, path, data.clone()).await {
            Ok(r) => panic!(
                "{op:?} {path} {data}: expected an error, got {:?} {:?}",
                r.status, r.data
            ),
            Err(e) => {
                assert_eq!(e.status(), status, "{op:?} {path} {data}: {e}");
                assert!(
                    e.to_string().contains(msg),
                    "{op:?} {path} {data}: {e:?} should contain {msg:?}"
                );
            }
        }
    }

    /// A request that must fail with 400 and a message containing `msg`.
    pub async fn bad(&self, op: Operation, path: &str, data: Value, msg: &str) {
        self.fails(op, path, data, 400, msg).await
    }

    /// Generates an Ed25519 CA as the default issuer; its public key line.
    pub async fn ca(&self) -> String {
        self.ok(
            Update,
            "ssh/config/ca",
            json!({"generate_signing_key": true, "key_type": "ed25519"}),
        )
        .await["public_key"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// A response's `data` as JSON (`null` when absent).
pub fn body(r: &Response) -> Value {
    r.data.clone().map(Value::Object).unwrap_or(Value::Null)
}

/// A raw (plain-text) response's body.
pub fn raw_text(r: &Response) -> String {
    String::from_utf8(r.raw.as_ref().expect("raw response").body.clone()).unwrap()
}

/// A fresh user key pair's public key line.
pub fn user_key(key_type: &str, bits: i64) -> String {
    super::keys::SigningKey::generate(key_type, bits, 2048)
        .unwrap()
        .public_key_line()
        .unwrap()
}

/// Parses a `signed_key` answer.
pub fn parse_cert(signed: &Value) -> ssh_key::Certificate {
    ssh_key::Certificate::from_openssh(signed.as_str().unwrap().trim()).unwrap()
}
