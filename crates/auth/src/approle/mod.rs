//! The `approle` auth method, as Vault's: machines log in with a `role_id` (which role) and a
//! `secret_id` (a credential issued against that role), and get a token with the role's
//! policies and TTLs.
//!
//! Paths (relative to the mount, e.g. `auth/approle/`):
//! * [`role`] serves `role` (LIST), `role/:role_name` (create, update, read, delete),
//!   `role/:role_name/role-id`, and the one-setting sub-paths hvac and the Vault CLI use
//!   (`policies`, `secret-id-num-uses`, `secret-id-ttl`, `token-ttl`, `token-max-ttl`,
//!   `token-num-uses`, `bind-secret-id`, `period`, `secret-id-bound-cidrs`, `token-bound-cidrs`,
//!   `bound-cidr-list`, `local-secret-ids`).
//! * [`secret_id`] serves `role/:role_name/secret-id` (generate; LIST accessors),
//!   `role/:role_name/custom-secret-id`, `.../secret-id/lookup`, `.../secret-id/destroy`,
//!   `.../secret-id-accessor/lookup`, `.../secret-id-accessor/destroy`. A generated secret ID
//!   can be delivered response-wrapped (`X-Vault-Wrap-TTL`): the core wraps any answer.
//! * [`login`] serves `login` (unauthenticated).
//! * [`tidy`] serves `tidy/secret-id`; the same tidy also runs every minute (the core's periodic
//!   hook).
//! * `config/lockout`, `locked-users`, `locked-users/unlock/:role_id`: lockout by `role_id`
//!   ([`crate::lockout`]).
//!
//! Storage (the mount's barrier view); no credential is stored in clear, nor used as a key:
//! * `salt`: the mount's HMAC key (see the crate's `salt` module).
//! * `role/<role_name>`: a [`Role`] (names are lower-cased).
//! * `role_id/<HMAC(role_id)>`: the role name (a [`RoleIdEntry`]), for login.
//! * `secret_id/<role_name>/<HMAC(secret_id)>`: a [`SecretId`] (its properties, no secret).
//! * `accessor/<HMAC(accessor)>`: an [`AccessorEntry`] back to the secret ID's HMAC.
//! * `lockout/*`, `config/lockout`: the lockout's.

pub mod login;
pub mod role;
pub mod secret_id;
pub mod tidy;

use crate::lockout::{self, HasLockout, Lockout};
use crate::periodic::Periodic;
use crate::salt::Salt;
use crate::token_fields::{Legacy, TokenFields};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tresor_core::barrier::View;
use tresor_core::framework::{Backend, Call, PathBackend};
use tresor_core::locks::Stripes;
use tresor_core::mount::MountEntry;
use tresor_core::{Error, Result};
use tresor_storage::WriteOp;

/// The deprecated token-field aliases AppRole accepts.
pub const LEGACY: &[Legacy] = &[Legacy::Policies, Legacy::Period];

/// How often expired secret IDs are tidied without being asked.
pub const TIDY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Longest role name or secret ID accepted (Vault's `maxHmacInputLength`).
pub const MAX_HMAC_INPUT: usize = 4096;

/// One role, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub role_id: String,
    pub bind_secret_id: bool,
    /// `None` until set (read answers `null`, as Vault).
    pub secret_id_bound_cidrs: Option<Vec<String>>,
    pub secret_id_num_uses: i64,
    pub secret_id_ttl: u64,
    pub local_secret_ids: bool,
    #[serde(flatten)]
    pub token: TokenFields,
}

impl Role {
    /// Vault refuses to store a role that nothing protects.
    pub fn has_constraint(&self) -> bool {
        self.bind_secret_id
            || self
                .secret_id_bound_cidrs
                .as_ref()
                .is_some_and(|c| !c.is_empty())
            || !self.token.token_bound_cidrs.is_empty()
    }
    pub fn bound_cidrs(&self) -> &[String] {
        self.secret_id_bound_cidrs.as_deref().unwrap_or(&[])
    }
}

/// The `role_id` index entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleIdEntry {
    pub name: String,
}

/// One secret ID's properties (the secret itself is only in the storage key, as an HMAC).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretId {
    pub secret_id_accessor: String,
    /// Logins left; 0 = unlimited.
    pub secret_id_num_uses: i64,
    pub secret_id_ttl: u64,
    /// Unix nanoseconds; `expiration_ns` 0 = never.
    pub creation_ns: i64,
    pub expiration_ns: i64,
    pub last_updated_ns: i64,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

/// Go's zero `time.Time`, which Vault prints for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(crate) fn now_ns() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp_nanos() as i64
}

fn fmt_ns(ns: i64) -> String {
    if ns == 0 {
        return ZERO_TIME.into();
    }
    OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ZERO_TIME.into())
}

impl SecretId {
    pub fn is_expired(&self, now_ns: i64) -> bool {
        self.expiration_ns != 0 && now_ns >= self.expiration_ns
    }
    /// The answer of the lookup endpoints.
    pub fn to_json(&self) -> Value {
        json!({
            "cidr_list": self.cidr_list,
            "creation_time": fmt_ns(self.creation_ns),
            "expiration_time": fmt_ns(self.expiration_ns),
            "last_updated_time": fmt_ns(self.last_updated_ns),
            "metadata": self.metadata,
            "secret_id_accessor": self.secret_id_accessor,
            "secret_id_num_uses": self.secret_id_num_uses,
            "secret_id_ttl": self.secret_id_ttl,
            "token_bound_cidrs": self.token_bound_cidrs,
        })
    }
}

/// The accessor index entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessorEntry {
    pub secret_id_hmac: String,
    pub role_name: String,
}

/// The state of one AppRole mount.
#[derive(Default)]
pub struct AppRole {
    pub(crate) salt: Salt,
    pub(crate) lockout: Arc<Lockout>,
    /// Serializes changes to one role (and secret ID creation against it).
    pub(crate) role_locks: Stripes,
    /// Serializes read-modify-write of one secret ID (use counts).
    pub(crate) secret_locks: Stripes,
    pub(crate) tidying: AtomicBool,
}

impl HasLockout for AppRole {
    fn lockout(&self) -> &Arc<Lockout> {
        &self.lockout
    }
    fn salt(&self) -> &Salt {
        &self.salt
    }
}

pub(crate) fn secret_key(role: &str, secret_hmac: &str) -> String {
    format!("secret_id/{role}/{secret_hmac}")
}

pub(crate) fn role_does_not_exist(name: &str) -> String {
    format!("role {name:?} does not exist")
}

impl AppRole {
    pub(crate) async fn role(&self, view: &View, name: &str) -> Result<Option<Role>> {
        view.get_json(&format!("role/{}", name.to_lowercase()))
            .await
    }

    /// The role a `role_id` belongs to.
    pub(crate) async fn role_by_id(&self, view: &View, role_id: &str) -> Result<Option<Role>> {
        if role_id.len() > MAX_HMAC_INPUT {
            return Ok(None);
        }
        let key = format!("role_id/{}", self.salt.hmac(view, role_id).await?);
        match view.get_json::<RoleIdEntry>(&key).await? {
            Some(e) => Ok(self
                .role(view, &e.name)
                .await?
                .filter(|r| r.role_id == role_id)),
            None => Ok(None),
        }
    }

    /// Stores a role and its `role_id` index (Vault's `setRoleEntry`): refuses a role without
    /// constraints and a `role_id` used by another role. Call with the role's lock held.
    pub(crate) async fn save_role(
        &self,
        view: &View,
        role: &Role,
        previous_role_id: &str,
    ) -> Result<()> {
        if !role.has_constraint() {
            return Err(Error::bad(
                "at least one constraint should be enabled on the role",
            ));
        }
        let index = format!("role_id/{}", self.salt.hmac(view, &role.role_id).await?);
        if let Some(e) = view.get_json::<RoleIdEntry>(&index).await? {
            if e.name != role.name {
                return Err(Error::bad("role_id already in use"));
            }
        }
        let mut ops = vec![WriteOp::Put(
            format!("role/{}", role.name),
            serde_json::to_vec(role)?,
        )];
        if !previous_role_id.is_empty() && previous_role_id != role.role_id {
            ops.push(WriteOp::Delete(format!(
                "role_id/{}",
                self.salt.hmac(view, previous_role_id).await?
            )));
        }
        ops.push(WriteOp::Put(
            index,
            serde_json::to_vec(&RoleIdEntry {
                name: role.name.clone(),
            })?,
        ));
        view.write_batch(ops).await
    }

    pub(crate) async fn accessor_key(&self, view: &View, accessor: &str) -> Result<String> {
        Ok(format!(
            "accessor/{}",
            self.salt.hmac(view, accessor).await?
        ))
    }

    /// Deletes a secret ID and its accessor index together.
    pub(crate) async fn delete_secret(
        &self,
        view: &View,
        role: &str,
        secret_hmac: &str,
        accessor: &str,
    ) -> Result<()> {
        let mut ops = vec![WriteOp::Delete(secret_key(role, secret_hmac))];
        if !accessor.is_empty() {
            ops.push(WriteOp::Delete(self.accessor_key(view, accessor).await?));
        }
        view.write_batch(ops).await
    }
}

/// Builds an AppRole backend for a mount (registered by the server as `approle`).
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    let mut paths = role::paths();
    paths.extend(secret_id::paths());
    paths.extend(login::paths());
    paths.extend(tidy::paths());
    paths.extend(lockout::paths::<AppRole>());
    let backend = PathBackend::new(AppRole::default(), paths)
        .unauthenticated(&["login"])
        // Role quotas: the role a role_id belongs to.
        .login_role("login", |b: Arc<AppRole>, c: Call| async move {
            let role_id = c.fields.str("role_id").trim().to_string();
            Ok(b.role_by_id(&c.storage, &role_id)
                .await?
                .map(|r| r.name.to_lowercase()))
        })
        .help("The AppRole auth method: machines log in with a role_id and a secret_id.");
    // Expired secret IDs are tidied every minute, as Vault does.
    Ok(Arc::new(Periodic::new(
        backend,
        TIDY_EVERY,
        |b: Arc<AppRole>, view: View| async move {
            if b.tidying.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            let r = tidy::tidy_now(&b, &view).await;
            b.tidying.store(false, std::sync::atomic::Ordering::SeqCst);
            r.map(|_| ())
        },
    )))
}
