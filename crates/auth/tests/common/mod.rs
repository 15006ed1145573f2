//! Test harness: a real in-process core (memory storage, initialized and unsealed) with the
//! `approle` and `userpass` methods registered and mounted through `sys/auth`, driven only
//! through `Core::handle`.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tresor_auth::{approle, userpass};
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::logical::{Auth, Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;
use zeroize::Zeroizing;

pub use Operation::*;

pub struct Env {
    pub core: Arc<Core>,
    pub root: String,
    pub keys: Vec<Zeroizing<Vec<u8>>>,
}

/// A core with `approle/` and `userpass/` mounted.
pub async fn env() -> Env {
    let registry = Registry::default()
        .auth("approle", Arc::new(approle::factory))
        .auth("userpass", Arc::new(userpass::factory));
    let core = Core::new(
        Arc::new(MemoryStorage::new()),
        registry,
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
        keys: init.keys,
    };
    env.root(Update, "sys/auth/approle", json!({ "type": "approle" }))
        .await
        .unwrap();
    env.root(Update, "sys/auth/userpass", json!({ "type": "userpass" }))
        .await
        .unwrap();
    env
}

impl Env {
    /// Any request.
    pub async fn req(
        &self,
        op: Operation,
        path: &str,
        token: Option<&str>,
        data: Value,
        remote: Option<&str>,
        wrap: Option<Duration>,
    ) -> Result<Response, Error> {
        let mut r = Request::new(op, path).with_data(data);
        r.token = token.map(str::to_string);
        r.remote_addr = remote.map(str::to_string);
        r.wrap_ttl = wrap;
        self.core.handle(r).await
    }
    /// As root.
    pub async fn root(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.req(op, path, Some(&self.root), data, Some("127.0.0.1"), None)
            .await
    }
    /// With a token.
    pub async fn with(
        &self,
        token: &str,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Response, Error> {
        self.req(op, path, Some(token), data, Some("127.0.0.1"), None)
            .await
    }
    /// Without a token, from `remote`.
    pub async fn anon(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        remote: Option<&str>,
    ) -> Result<Response, Error> {
        self.req(op, path, None, data, remote, None).await
    }
    /// A login from `remote` that must succeed; returns the auth block.
    pub async fn login(&self, path: &str, data: Value, remote: &str) -> Auth {
        let r = self
            .anon(Update, path, data, Some(remote))
            .await
            .unwrap_or_else(|e| panic!("login {path}: {e}"));
        *r.auth.expect("login answers an auth block")
    }
    /// The token's own lookup.
    pub async fn lookup_self(&self, token: &str) -> Value {
        data(
            &self
                .with(token, Read, "auth/token/lookup-self", json!({}))
                .await
                .unwrap(),
        )
    }
    /// Seals and unseals again (backends are rebuilt from storage).
    pub async fn reseal(&self) {
        self.core.seal_now();
        assert!(self
            .core
            .submit_unseal_key(self.keys[0].clone())
            .await
            .unwrap());
    }
    /// Every (key, decrypted value) the auth mounts keep (under `auth/` in the barrier), plus
    /// the raw (encrypted) bytes of the whole storage under the empty key "".
    pub async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let view = self.core.root_view();
        let mut out = Vec::new();
        for k in view.list_recursive("auth/").await.unwrap() {
            let v = view
                .get(&format!("auth/{k}"))
                .await
                .unwrap()
                .unwrap_or_default();
            out.push((format!("auth/{k}"), v));
        }
        let storage = self.core.barrier.storage();
        let mut raw = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(p) = stack.pop() {
            for k in storage.list(&p).await.unwrap() {
                let full = format!("{p}{k}");
                if k.ends_with('/') {
                    stack.push(full);
                } else {
                    raw.extend(full.as_bytes());
                    raw.extend(storage.get(&full).await.unwrap().unwrap_or_default());
                }
            }
        }
        out.push((String::new(), raw));
        out
    }
    /// A token's lookup, as root.
    pub async fn lookup(&self, token: &str) -> Value {
        data(
            &self
                .root(Update, "auth/token/lookup", json!({ "token": token }))
                .await
                .unwrap(),
        )
    }
}

/// The `data` of an answer (null when none).
pub fn data(r: &Response) -> Value {
    r.data.clone().map(Value::Object).unwrap_or(Value::Null)
}

/// The status and first message of an error.
pub fn err(r: Result<Response, Error>) -> (u16, String) {
    match r {
        Ok(resp) => panic!(
            "expected an error, got data {:?} warnings {:?}",
            resp.data, resp.warnings
        ),
        Err(e) => (
            e.status(),
            e.messages().first().cloned().unwrap_or_default(),
        ),
    }
}

/// Whether `hay` contains `needle` as bytes.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
