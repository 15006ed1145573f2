//! The `kubernetes` auth method, as Vault's `vault-plugin-auth-kubernetes`: a pod logs in with
//! its service account token, which Tresor has the cluster itself confirm through the
//! TokenReview API.
//!
//! Paths (relative to the mount, e.g. `auth/kubernetes/`):
//! * `config` (read, update): `kubernetes_host`, `kubernetes_ca_cert` (the API server's CA;
//!   when empty, the in-cluster CA file, else the system roots), `token_reviewer_jwt` (the
//!   bearer of TokenReview calls; when empty, the in-cluster token file, else the client's own
//!   JWT), `pem_keys` (optional public keys to check the token's signature locally first),
//!   `issuer`, `disable_iss_validation` (default true), `disable_local_ca_jwt`. A write
//!   replaces the whole configuration, as in Vault. The reviewer JWT is never shown, only
//!   `token_reviewer_jwt_set`.
//! * `role` (LIST), `role/:name`: `bound_service_account_names` and
//!   `bound_service_account_namespaces` (globs; `*` alone allows all), `audience`,
//!   `alias_name_source` (`serviceaccount_uid`, the default, or `serviceaccount_name`), and
//!   the common `token_*` fields.
//! * `login` (unauthenticated): `role` + `jwt`. See [`login`].
//!
//! The login's identity: `alias_name` is the service account UID (or `namespace/name` with
//! `alias_name_source = serviceaccount_name`); `alias_metadata` holds the service account's
//! UID, name, namespace and secret name; the token's metadata also has `role`.
//!
//! Not done: `bound_service_account_namespace_selector` (namespace label selectors need the
//! Namespace API; a non-empty selector is refused), `use_annotations_as_alias_metadata`.
//!
//! Storage (the mount's barrier view): `config` ([`Config`]), `role/<name>` ([`Role`]).

pub mod config;
pub mod login;
pub mod review;
pub mod role;

use crate::token_fields::TokenFields;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::framework::{Backend, Call, PathBackend};
use tresor_core::locks::Stripes;
use tresor_core::mount::MountEntry;
use tresor_core::Result;

/// Where a pod finds its service account's CA and token (used unless `disable_local_ca_jwt`).
pub const LOCAL_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
pub const LOCAL_JWT: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The mount's configuration, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub kubernetes_host: String,
    pub kubernetes_ca_cert: String,
    pub token_reviewer_jwt: String,
    pub pem_keys: Vec<String>,
    pub issuer: String,
    pub disable_iss_validation: bool,
    pub disable_local_ca_jwt: bool,
}

/// One role, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub bound_service_account_names: Vec<String>,
    pub bound_service_account_namespaces: Vec<String>,
    pub audience: String,
    pub alias_name_source: String,
    /// Deprecated `num_uses`, as last written.
    pub num_uses: i64,
    #[serde(flatten)]
    pub token: TokenFields,
}

/// The state of one Kubernetes mount.
#[derive(Default)]
pub struct Kubernetes {
    pub(crate) role_locks: Stripes,
}

impl Kubernetes {
    pub(crate) async fn config(&self, view: &View) -> Result<Option<Config>> {
        view.get_json("config").await
    }
    pub(crate) async fn role(&self, view: &View, name: &str) -> Result<Option<Role>> {
        view.get_json(&format!("role/{}", name.to_lowercase()))
            .await
    }
}

/// Builds a Kubernetes backend for a mount (registered by the server as `kubernetes`).
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    let mut paths = config::paths();
    paths.extend(role::paths());
    paths.extend(login::paths());
    Ok(Arc::new(
        PathBackend::new(Kubernetes::default(), paths)
            .unauthenticated(&["login"])
            // Role quotas: the role the login names (role names are case-insensitive).
            .login_role("login", |_b: Arc<Kubernetes>, c: Call| async move {
                Ok(Some(c.fields.str("role").to_lowercase()))
            })
            .help("The Kubernetes auth method: pods log in with their service account token."),
    ))
}
