//! Tresor's secrets engines, each built on the core's path framework
//! ([`tresor_core::framework`]) and registered by the server under its mount type.
//!
//! * [`kv`]: the key/value engine (`kv`, `kv-v2`), versions 1 (unversioned) and 2 (versioned,
//!   with check-and-set, soft delete, undelete, destroy, metadata and subkeys), as in Vault.

pub mod kv;
