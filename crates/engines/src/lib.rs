//! Tresor's secrets engines, each built on the core's path framework
//! ([`tresor_core::framework`]) and registered by the server under its mount type.
//!
//! * [`database`]: dynamic credentials and password rotation for PostgreSQL and MySQL/MariaDB
//!   (`database`), with leases, static roles, root rotation and username templates, as in Vault.
//! * [`kv`]: the key/value engine (`kv`, `kv-v2`), versions 1 (unversioned) and 2 (versioned,
//!   with check-and-set, soft delete, undelete, destroy, metadata and subkeys), as in Vault.
//! * [`pki`]: a certificate authority (`pki`): roots, intermediates, roles, issuing and signing,
//!   revocation with CRLs and OCSP, leases on certificates, and tidying.
//! * [`ssh`]: an SSH certificate authority (`ssh`): issuers, roles, `sign`/`issue`, and
//!   one-time passwords (`creds`, single-use `verify`), as in Vault and OpenBao.
//! * [`transit`]: encryption as a service (`transit`): named keys with versions, rotation,
//!   encrypt/decrypt/rewrap, data keys, sign/verify, HMAC, export, backup/restore and BYOK import.

pub mod database;
pub mod kv;
pub mod pki;
pub mod ssh;
pub mod transit;
