//! `config/ca` and `public_key`: the default issuer, the way Vault's single-CA API sees it.
//!
//! Writing `config/ca` submits (`private_key` + `public_key`) or generates
//! (`generate_signing_key`, `key_type`, `key_bits`; RSA-4096 unless told otherwise) a CA key
//! pair and makes it the default issuer; reading it answers the default issuer; deleting it
//! removes every issuer (204, as Vault). `public_key` is the default issuer's public key as
//! plain text, unauthenticated, ready for sshd's `TrustedUserCAKeys`.

use super::issuers::{load, purge, submit_fields, write_issuer};
use super::{text, Ssh};
use std::sync::Arc;
use tresor_core::error::Result;
use tresor_core::framework::{Call, Path};
use tresor_core::logical::{Operation::*, Response};

pub fn paths() -> Vec<Path<Ssh>> {
    vec![
        submit_fields(Path::new("config/ca"))
            .op(Update, |b, c| write_issuer(b, c, true))
            .op(Read, read)
            .op(Delete, purge)
            .help("Configure the default SSH issuer used for signing and verification."),
        Path::new("public_key")
            .op(Read, public_key)
            .help("Retrieve the default issuer's public key (plain text)."),
    ]
}

async fn read(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    Ok(Response::data(load(&c.storage, "default").await?.to_json()))
}

async fn public_key(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    Ok(text(load(&c.storage, "default").await?.public_key))
}
