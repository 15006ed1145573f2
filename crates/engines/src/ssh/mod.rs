//! The `ssh` secrets engine: an SSH certificate authority and one-time passwords, with
//! Vault's and OpenBao's paths, fields, answer shapes, error messages and status codes
//! (hvac's `secrets.ssh` works unchanged).
//!
//! **CA mode**: the mount holds one or more issuers (CA key pairs, OpenBao's multi-issuer
//! model; `config/ca` manages the default one). Roles (`key_type=ca`) say what may be signed:
//! user and/or host certificates, which principals, extensions, critical options, lifetimes,
//! key types and sizes. `sign/:role` certifies a client's public key; `issue/:role` also makes
//! the key pair. sshd trusts the CA through `TrustedUserCAKeys` (the unauthenticated
//! `public_key` or `issuer/:ref/public_key`).
//!
//! **OTP mode**: roles with `key_type=otp` hand out single-use passwords for a user on a host
//! (`creds/:role`, with a lease); the host's helper checks one with `verify`, which consumes it
//! in one conditional write ([`View::take`]), so of two concurrent verifications exactly one
//! succeeds, also across processes sharing the storage.
//!
//! * [`keys`]: key generation, private-key formats, SSH signatures (aws-lc-rs).
//! * [`cert`]: the OpenSSH certificate encoding.
//! * [`issuers`]: `issuers` (LIST), `issuers/import(/:name)`, `issuer/:ref`,
//!   `issuer/:ref/public_key`, `config/issuers`; issuer storage and reference resolution.
//! * [`config_ca`]: `config/ca`, `public_key`.
//! * [`roles`]: `roles/:role`, `roles` (LIST).
//! * [`sign`]: `sign/:role` and the rules every certificate passes (principals, TTL, options).
//! * [`issue`]: the `issue/:role` path.
//! * [`creds`]: `creds/:role` (OTPs) and the lease revoke hook.
//! * [`verify`]: `verify` (unauthenticated; consumes an OTP).
//! * [`lookup`]: `lookup` (roles whose CIDRs hold an address).
//! * [`zeroaddress`]: the `config/zeroaddress` path.
//!
//! Crates: the OpenSSH wire formats (public keys, OpenSSH private-key files, the encoder for
//! certificates) come from RustCrypto's `ssh-key`/`ssh-encoding`, with ssh-key's crypto
//! features off so it brings no second crypto backend; key generation and signing are
//! aws-lc-rs, like the rest of Tresor. `num-bigint` (already in the tree through the X.509
//! parser) derives the CRT exponents an OpenSSH RSA key file lacks.
//!
//! Beyond Vault/OpenBao: a role's `default_user` is always an allowed principal for user
//! certificates (OpenBao refuses it when `allowed_users` is empty). Known limits: `ssh-rsa`
//! (SHA-1) signatures are refused (aws-lc-rs signs only SHA-2 RSA); identity templates in
//! `allowed_users`/`default_user`/`default_extensions` are stored but not expanded; the
//! removed `dynamic` key type and `keys/` paths answer as Vault 1.13+ does.
//!
//! Storage layout in the mount's view:
//!
//! | key                   | value                                            |
//! |-----------------------|--------------------------------------------------|
//! | `config/issuer/<id>`  | an issuer: key pair and name ([`issuers::IssuerEntry`]) |
//! | `config/issuers`      | the default issuer's id                          |
//! | `roles/<name>`        | a role ([`roles::Role`])                         |
//! | `otp/<hash>`          | an unused OTP (keyed by its salted SHA-256)      |
//! | `salt`                | the mount's random salt for OTP hashes           |
//! | `config/zeroaddress`  | roles valid for any address                      |

pub mod cert;
pub mod config_ca;
pub mod creds;
pub mod issue;
pub mod issuers;
pub mod keys;
pub mod lookup;
pub mod roles;
pub mod sign;
pub mod verify;
pub mod zeroaddress;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use tresor_core::framework::{Backend, Call, PathBackend};
use tresor_core::logical::{RawResponse, Response};
use tresor_core::mount::MountEntry;

/// A role name in a path (Vault's `GenericNameWithAtRegex("role")`).
pub(crate) const ROLE: &str = r"(?P<role>\w(([\w\-.@]+)?\w)?)";

/// Builds the backend for an `ssh` mount.
pub fn factory(entry: &MountEntry) -> tresor_core::Result<Arc<dyn Backend>> {
    let _ = entry;
    Ok(Arc::new(backend()))
}

/// The SSH backend: its paths over one [`Ssh`] state.
pub fn backend() -> PathBackend<Ssh> {
    let mut paths = Vec::new();
    paths.extend(config_ca::paths());
    paths.extend(issuers::paths());
    paths.extend(roles::paths());
    paths.extend(sign::paths());
    paths.extend(issue::paths());
    paths.extend(creds::paths());
    paths.extend(verify::paths());
    paths.extend(lookup::paths());
    paths.extend(zeroaddress::paths());
    PathBackend::new(Ssh::default(), paths)
        .unauthenticated(&["verify", "public_key", "issuer/+/public_key"])
        .on_revoke(creds::revoke)
        .help(
            "The SSH backend signs SSH keys with a certificate authority (key_type=ca roles) \
             and hands out one-time passwords checked by a helper on the host \
             (key_type=otp roles).",
        )
}

/// One mount's state.
#[derive(Default)]
pub struct Ssh {
    /// Serializes changes to issuers and the default (as OpenBao's `issuersLock`).
    issuers_lock: tokio::sync::Mutex<()>,
}

/// The mount's default lease TTL in seconds (the server's when unset).
pub(crate) fn mount_default_ttl(c: &Call) -> u64 {
    c.ttl_limits.default_ttl
}

/// The mount's maximum lease TTL in seconds (the server's when unset).
pub(crate) fn mount_max_ttl(c: &Call) -> u64 {
    c.ttl_limits.max_ttl
}

/// A plain-text answer (`public_key`).
pub(crate) fn text(body: String) -> Response {
    Response {
        raw: Some(Box::new(RawResponse {
            status: 200,
            content_type: "text/plain".into(),
            body: body.into_bytes(),
            headers: Vec::new(),
        })),
        ..Default::default()
    }
}
