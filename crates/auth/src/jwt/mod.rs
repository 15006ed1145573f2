//! The `jwt` auth method (also mounted as type `oidc`), as Vault's `vault-plugin-auth-jwt`:
//! machines and CI systems log in with a signed JWT (Kubernetes projected service account
//! tokens, GitHub Actions and GitLab CI ID tokens, cloud workload identity tokens, any OIDC
//! provider's ID tokens) that Tresor verifies against configured keys.
//!
//! Paths (relative to the mount, e.g. `auth/jwt/`):
//! * `config` (read, update): exactly one key source — `jwt_validation_pubkeys` (PEM public
//!   keys or certificates), `jwks_url` (+ `jwks_ca_pem`) or `oidc_discovery_url`
//!   (+ `oidc_discovery_ca_pem`) — and `bound_issuer`, `default_role`, `jwt_supported_algs`.
//!   A remote source is fetched when the configuration is written, so a wrong address or CA
//!   is refused then (unless `skip_jwks_validation`). The OIDC client settings
//!   (`oidc_client_id`, `oidc_client_secret`, `oidc_response_mode`, `oidc_response_types`)
//!   are stored and shown (the secret never), for the browser flow.
//! * `role` (LIST), `role/:name` (create, update, read, delete): `role_type` (`jwt` or `oidc`,
//!   the default), `bound_audiences`, `bound_subject`, `bound_claims` + `bound_claims_type`
//!   (`string` or `glob`), `claim_mappings` (claim → token and alias metadata), `user_claim`,
//!   `user_claim_json_pointer`, `groups_claim`, the three leeways, `allowed_redirect_uris`
//!   and the other OIDC-flow fields, and the common `token_*` fields.
//! * `login` (unauthenticated): `role` (or the config's `default_role`) + `jwt`.
//! * `oidc/auth_url`, `oidc/callback`, `oidc/poll` (unauthenticated): the OIDC browser flow
//!   ([`oidc`]): an authorization URL with state, nonce and PKCE, the code exchanged at the
//!   provider's token endpoint, the ID token verified, then a login as with `login`; the
//!   `client`, `direct` (poll) and `device` callback modes, and `form_post` responses.
//!
//! Verification ([`keys`], [`claims`], [`remote`]): the signature with aws-lc-rs, from the
//! configured keys or the JWKS (cached, refetched on an unknown `kid`, rate-limited); `none`
//! and HMAC algorithms are always refused; then the claims, with Vault's semantics and
//! messages. The login's identity: `alias_name` is the `user_claim` value, `alias_metadata`
//! the mapped claims plus `role`, and `group_aliases` the `groups_claim` values.
//!
//! A role of type `oidc` cannot be used with `login` (as in Vault). Not done:
//! `provider_config`, `token_policies_template_claims` and `namespace_in_state` are stored and
//! shown only.
//!
//! Storage (the mount's barrier view): `config` ([`Config`]), `role/<name>` ([`role::Role`]).
//! The OIDC flow's pending requests are kept in memory only ([`oidc::Flows`]).

pub mod claims;
pub mod config;
pub mod keys;
pub mod login;
pub mod oidc;
pub mod remote;
pub mod role;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::framework::{Backend, Call, PathBackend};
use tresor_core::locks::Stripes;
use tresor_core::mount::MountEntry;
use tresor_core::Result;

/// The mount's configuration, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub oidc_discovery_url: String,
    pub oidc_discovery_ca_pem: String,
    pub oidc_client_id: String,
    pub oidc_client_secret: String,
    pub oidc_response_mode: String,
    pub oidc_response_types: Vec<String>,
    pub jwks_url: String,
    pub jwks_ca_pem: String,
    pub jwt_validation_pubkeys: Vec<String>,
    pub jwt_supported_algs: Vec<String>,
    pub bound_issuer: String,
    pub default_role: String,
    pub provider_config: Map<String, Value>,
    pub override_allowed_server_names: Vec<String>,
    pub namespace_in_state: bool,
}

/// The state of one JWT/OIDC mount.
#[derive(Default)]
pub struct Jwt {
    pub(crate) keys: remote::KeyCache,
    pub(crate) flows: oidc::Flows,
    pub(crate) role_locks: Stripes,
}

impl Jwt {
    pub(crate) async fn config(&self, view: &View) -> Result<Option<Config>> {
        view.get_json("config").await
    }
    pub(crate) async fn role(&self, view: &View, name: &str) -> Result<Option<role::Role>> {
        view.get_json(&format!("role/{}", name.to_lowercase()))
            .await
    }
}

/// Builds a JWT/OIDC backend for a mount (registered by the server as `jwt` and `oidc`).
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    let mut paths = config::paths();
    paths.extend(role::paths());
    paths.extend(login::paths());
    paths.extend(oidc::paths());
    let backend = PathBackend::new(Jwt::default(), paths)
        .unauthenticated(&["login", "oidc/auth_url", "oidc/callback", "oidc/poll"])
        // Role quotas: the role named, else the configured default.
        .login_role("login", |b: Arc<Jwt>, c: Call| async move {
            let named = c.fields.str("role").to_lowercase();
            if !named.is_empty() {
                return Ok(Some(named));
            }
            Ok(b.config(&c.storage)
                .await?
                .map(|cfg| cfg.default_role.to_lowercase()))
        })
        .help("The JWT/OIDC auth method: log in with a JWT signed by a trusted issuer.");
    // OIDC login states past their timeout are swept every minute.
    Ok(Arc::new(crate::periodic::Periodic::new(
        backend,
        std::time::Duration::from_secs(60),
        |_: Arc<Jwt>, view: View| async move { oidc::Flows::sweep(&view).await.map(|_| ()) },
    )))
}
