//! Tresor's core. It knows nothing of HTTP: a [`logical::Request`] goes in, a
//! [`logical::Response`] comes out.
//!
//! * [`barrier`]: AES-256-GCM encryption over the storage trait; the keyring and its terms;
//!   [`barrier::View::update`], the atomic read-modify-write behind every check-then-spend.
//! * [`expiring`]: short-lived, single-use records in storage (ACME nonces, OIDC states).
//! * [`seal`]: Shamir split of the unseal key, init / unseal / rekey progress.
//! * [`mount`]: the mount tables and the longest-prefix router.
//! * [`framework`]: how backends declare paths, fields and operations as data.
//! * [`go_base64`]: base64 with Go's rules and error texts.
//! * [`policy`]: Vault's HCL ACL language, compiled into an [`policy::Acl`].
//! * [`token`]: the token store (hashes only at rest) and the `auth/token/` backend.
//! * [`tools`]: random bytes and hashes (`sys/tools/*`, and transit's).
//! * [`ttl`]: the one TTL calculation for tokens and leases (mount and system maximums).
//! * [`sys`]: the `sys/` backend (mounts, policies, seal, health, capabilities).
//! * [`core`]: the [`core::Core`] that ties them together and handles a request end to end.
//! * [`ha`]: active and standby nodes on shared storage: election, activation, step-down.
//! * [`cluster_identity`]: the TLS identity HA nodes forward requests with.
//! * [`standby`]: standbys serving reads from state kept coherent through the change log.
//! * [`quotas`]: rate-limit quotas (`sys/quotas/*`): a token bucket per quota and client.
//! * [`metrics`]: telemetry for `sys/metrics` (Vault's JSON and the Prometheus format).
//! * [`snapshot`]: online snapshots of the whole store, and restoring one.

pub mod audit;
pub mod barrier;
pub mod cluster_identity;
pub mod core;
pub mod cubbyhole;
pub mod error;
pub mod expiration;
pub mod expiring;
pub mod framework;
pub mod go_base64;
pub mod ha;
pub mod identity;
pub mod locks;
pub mod logical;
pub mod metrics;
pub mod mount;
pub mod password_policy;
pub mod policy;
pub mod policy_store;
pub mod quotas;
pub mod seal;
pub mod snapshot;
pub mod standby;
pub mod sys;
pub mod token;
pub mod tools;
pub mod ttl;
pub mod util;

pub use error::{Error, Result};
