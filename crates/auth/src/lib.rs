//! Tresor's auth methods, each built on the core's path framework
//! ([`tresor_core::framework`]) and registered by the server under its mount type. They speak
//! Vault's HTTP API, so clients such as hvac's `auth.approle` and `auth.userpass` work unchanged.
//!
//! * [`approle`]: machine login with a `role_id` and a `secret_id` (`auth/approle/*`): roles,
//!   secret IDs stored only as salted HMACs, use counts, TTLs, CIDR bounds, tidy.
//! * [`userpass`]: login with a username and a password (`auth/userpass/*`), passwords stored
//!   as argon2id hashes.
//! * [`jwt`]: login with a signed JWT (`auth/jwt/*`, also mounted as type `oidc`): static keys,
//!   JWKS or OIDC discovery; bound audiences, subject and claims; claims to metadata, groups.
//! * [`kubernetes`]: login with a Kubernetes service account token, checked by the cluster's
//!   TokenReview API (`auth/kubernetes/*`).
//! * [`cert`]: login with a TLS client certificate verified against trusted CAs or pinned
//!   certificates (`auth/cert/*`).
//!
//! Shared pieces:
//! * [`token_fields`]: Vault's common `token_*` role/user fields and how they become the
//!   [`tresor_core::logical::LoginGrant`] the core turns into a token.
//! * [`lockout`]: Vault's user lockout (N failed logins lock an alias for a while), used by both
//!   methods, with `config/lockout` and `locked-users` paths on each mount.
//! * `cidr`, `salt`, `periodic`: CIDR checks, the per-mount HMAC key, and the wrapper that
//!   gives a path backend the core's periodic hook (striped locks are `tresor_core::locks`).
//!
//! Each method's `factory` has the signature of [`tresor_core::core::Factory`]'s closure.

pub mod approle;
pub mod cert;
mod cidr;
pub mod jwt;
pub mod kubernetes;
pub mod lockout;
mod periodic;
mod salt;
pub mod token_fields;
pub mod userpass;

/// Vault's `framework.GenericNameRegex`: role and user names (no `/`).
pub(crate) const NAME: &str = r"\w(?:(?:[\w.@-]+)?\w)?";

/// A path pattern with a named capture of a Vault generic name.
pub(crate) fn named(group: &str) -> String {
    format!("(?P<{group}>{NAME})")
}

pub(crate) use tresor_core::util::go_duration;

/// Vault's `humanDuration`: Go's format without zero minutes/seconds (`1h`, `30m`, `1h5s`).
pub(crate) fn human_duration(secs: u64) -> String {
    let mut s = go_duration(secs);
    if secs == 0 {
        return s;
    }
    if let Some(stripped) = s.strip_suffix("m0s") {
        s = format!("{stripped}m");
    }
    if let Some(i) = s.find("h0m") {
        s = format!("{}{}", &s[..=i], &s[i + 3..]);
    }
    s
}

/// Vault's default system max lease TTL (768h), used when the mount sets none: a backend cannot
/// see the server-wide setting.
pub(crate) const DEFAULT_MAX_LEASE_TTL: u64 = 768 * 3600;

/// The mount's effective max lease TTL (seconds).
pub(crate) fn mount_max_ttl(mount: &tresor_core::mount::MountEntry) -> u64 {
    if mount.config.max_lease_ttl > 0 {
        mount.config.max_lease_ttl
    } else {
        DEFAULT_MAX_LEASE_TTL
    }
}

/// The mount's effective default lease TTL (seconds).
pub(crate) fn mount_default_ttl(mount: &tresor_core::mount::MountEntry) -> u64 {
    if mount.config.default_lease_ttl > 0 {
        mount.config.default_lease_ttl
    } else {
        DEFAULT_MAX_LEASE_TTL
    }
}

/// A `data` response with its keys in sorted order, as Vault's (Go map) JSON has them.
/// A list for a read answer, or `null` when empty (Vault's answer for unset list fields).
pub(crate) fn null_if_empty<T: serde::Serialize>(v: &[T]) -> serde_json::Value {
    if v.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(v)
    }
}

pub(crate) fn sorted_data(
    m: serde_json::Map<String, serde_json::Value>,
) -> tresor_core::logical::Response {
    let sorted: std::collections::BTreeMap<String, serde_json::Value> = m.into_iter().collect();
    tresor_core::logical::Response {
        data: Some(sorted.into_iter().collect()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go_and_vault() {
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(1800), "30m");
        assert_eq!(human_duration(3605), "1h5s");
        assert_eq!(human_duration(5400), "1h30m");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(0), "0s");
    }
}
