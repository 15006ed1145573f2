//! Shared harness for the PKI integration tests: a real in-process core with the `pki` engine
//! registered and mounted, helpers to call it, and an `openssl` runner over files in a
//! temporary directory (the independent verifier for chains, CRLs and OCSP answers).

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::logical::{Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;

pub struct Env {
    pub core: Arc<Core>,
    pub root: String,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// An unsealed core with `pki` mounted at `pki/`.
    pub async fn new() -> Env {
        let core = Core::new(
            Arc::new(MemoryStorage::new()),
            Registry::default().secrets("pki", Arc::new(tresor_engines::pki::factory)),
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
        core.submit_unseal_key(init.keys[0].clone()).await.unwrap();
        let env = Env {
            core,
            root: init.root_token,
            dir: tempfile::tempdir().unwrap(),
        };
        env.mount("pki").await;
        env
    }

    pub async fn mount(&self, path: &str) {
        self.call(
            Operation::Update,
            &format!("sys/mounts/{path}"),
            json!({ "type": "pki" }),
        )
        .await
        .unwrap();
    }

    pub async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.core
            .handle(
                Request::new(op, path)
                    .with_token(&self.root)
                    .with_data(data),
            )
            .await
    }

    /// A write that must succeed; returns its `data`.
    pub async fn write(&self, path: &str, data: Value) -> Value {
        let r = self
            .call(Operation::Update, path, data)
            .await
            .unwrap_or_else(|e| panic!("write {path} failed: {e}"));
        Value::Object(r.data.unwrap_or_default())
    }

    /// A read that must succeed; returns its `data`.
    pub async fn read(&self, path: &str) -> Value {
        let r = self
            .call(Operation::Read, path, json!({}))
            .await
            .unwrap_or_else(|e| panic!("read {path} failed: {e}"));
        Value::Object(r.data.unwrap_or_default())
    }

    /// The body of a raw (non-JSON) answer.
    pub async fn raw(&self, op: Operation, path: &str, data: Value) -> (u16, String, Vec<u8>) {
        let r = self.call(op, path, data).await.unwrap();
        let raw = r.raw.expect("a raw answer");
        (raw.status, raw.content_type, raw.body)
    }

    /// A root CA (EC P-256 unless `extra` says otherwise) with AIA URLs configured.
    pub async fn root_ca(&self, mount: &str, extra: Value) -> Value {
        self.write(
            &format!("{mount}/config/urls"),
            json!({
                "issuing_certificates": format!("http://127.0.0.1:8200/v1/{mount}/ca"),
                "crl_distribution_points": format!("http://127.0.0.1:8200/v1/{mount}/crl"),
                "ocsp_servers": format!("http://127.0.0.1:8200/v1/{mount}/ocsp"),
            }),
        )
        .await;
        let mut body =
            json!({ "common_name": "Tresor Test Root", "key_type": "ec", "ttl": "8760h" });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        self.write(&format!("{mount}/root/generate/internal"), body)
            .await
    }

    /// Writes a file in the test's directory and returns its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// Runs openssl in the test directory; (success, stdout + stderr).
    pub fn openssl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl is installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// The status code a core error maps to.
pub fn status(e: &Error) -> u16 {
    e.status()
}

pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}
