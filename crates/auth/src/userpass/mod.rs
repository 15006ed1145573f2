//! The `userpass` auth method, as Vault's: users with a password and token settings, and a
//! login that issues a token carrying the user's policies.
//!
//! Paths (relative to the mount, e.g. `auth/userpass/`):
//! * `users` (LIST), `users/:username` (create, update, read, delete): `password` (or an
//!   argon2id `password_hash`), the common `token_*` fields ([`crate::token_fields`]) and the
//!   deprecated `policies`, `ttl`, `max_ttl`, `bound_cidrs`.
//! * `users/:username/password`, `users/:username/policies`: change one thing.
//! * `login/:username` (unauthenticated): `password`. Refused with 403 from outside the user's
//!   `token_bound_cidrs`, and while the user is locked out ([`crate::lockout`]).
//! * `config/lockout`, `locked-users`, `locked-users/unlock/:username`: user lockout.
//!
//! Usernames are case-insensitive (stored lower-cased) and follow Vault's name syntax.
//!
//! Storage (the mount's barrier view): `user/<username>` holds a [`User`] (the password only as
//! an argon2id hash, see [`password`]); `salt`, `lockout/*`, `config/lockout` belong to the
//! lockout.

pub mod login;
pub mod password;
pub mod users;

use crate::lockout::{self, HasLockout, Lockout};
use crate::salt::Salt;
use crate::token_fields::{Legacy, TokenFields};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::framework::{Backend, PathBackend};
use tresor_core::locks::Stripes;
use tresor_core::mount::MountEntry;
use tresor_core::Result;

/// The deprecated token-field aliases userpass accepts.
pub const LEGACY: &[Legacy] = &[
    Legacy::Policies,
    Legacy::Ttl,
    Legacy::MaxTtl,
    Legacy::BoundCidrs,
];

/// One user, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct User {
    /// argon2id PHC string.
    pub password_hash: String,
    #[serde(flatten)]
    pub token: TokenFields,
}

/// The state of one userpass mount.
#[derive(Default)]
pub struct Userpass {
    pub(crate) salt: Salt,
    pub(crate) lockout: Arc<Lockout>,
    /// Serializes read-modify-write of one user.
    pub(crate) user_locks: Stripes,
}

impl HasLockout for Userpass {
    fn lockout(&self) -> &Arc<Lockout> {
        &self.lockout
    }
    fn salt(&self) -> &Salt {
        &self.salt
    }
}

fn user_key(name: &str) -> String {
    format!("user/{name}")
}

impl Userpass {
    pub(crate) async fn user(&self, view: &View, name: &str) -> Result<Option<User>> {
        view.get_json(&user_key(name)).await
    }
    pub(crate) async fn save_user(&self, view: &View, name: &str, u: &User) -> Result<()> {
        view.put_json(&user_key(name), u).await
    }
}

/// Builds a userpass backend for a mount (registered by the server as `userpass`).
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    password::warm_up();
    let mut paths = users::paths();
    paths.extend(login::paths());
    paths.extend(lockout::paths::<Userpass>());
    Ok(Arc::new(
        PathBackend::new(Userpass::default(), paths)
            .unauthenticated(&["login/*"])
            .help("The userpass auth method: log in with a username and a password."),
    ))
}
