//! `login`: the TLS client certificate of the request → a token, as Vault's
//! `verifyCredentials` + `pathLogin`:
//!
//! 1. No certificate on the connection: 400 "no client certificate found".
//! 2. The entries tried: the one named by `name`, or all of them (in name order).
//! 3. A pinned (non-CA) certificate equal to the leaf, byte for byte, matches its entry if
//!    the leaf is within its validity period and meets the entry's constraints.
//! 4. Otherwise the chain (the leaf and the intermediates the client sent) must verify up to
//!    one of an entry's CA certificates ([`super::verify::verify_chain`]), and the leaf must
//!    meet that entry's constraints. The first entry that fits wins.
//! 5. Denials (all 400, as Vault's): "invalid certificate or no client certificate supplied"
//!    (no entry's CA issued the chain, or the named entry does not exist),
//!    "failed to verify client's certificate: ..." (expired, not yet valid, not for client
//!    authentication, bad signature), "no chain matching all constraints could be found for
//!    this login certificate" (trusted, but a name constraint failed). A client outside the
//!    entry's `token_bound_cidrs`: 403.

use super::verify::{constraints, extension_metadata, facts, pem_certs, verify_chain, ChainError};
use super::{Cert, CertEntry};
use crate::token_fields::check_token_cidrs;
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

pub(crate) fn paths() -> Vec<Path<Cert>> {
    vec![Path::new("login")
        .field(
            "name",
            Field::string("The name of the certificate role to authenticate against."),
        )
        .op(Update, login)
        .help("Log in with the TLS client certificate presented on the connection.")]
}

async fn entries(b: &Cert, c: &Call) -> Result<Vec<CertEntry>> {
    let name = c.fields.str("name");
    if !name.is_empty() {
        return Ok(b.entry(&c.storage, name).await?.into_iter().collect());
    }
    let mut out = Vec::new();
    for n in c.storage.list("cert/").await? {
        if let Some(e) = b.entry(&c.storage, &n).await? {
            out.push(e);
        }
    }
    Ok(out)
}

async fn login(b: Arc<Cert>, c: Call) -> Result<Response> {
    let Some(leaf) = c.client_certs.first() else {
        return Err(Error::bad("no client certificate found"));
    };
    let leaf_facts = facts(leaf)
        .map_err(|e| Error::bad(format!("failed to parse the client certificate: {e}")))?;
    let intermediates = &c.client_certs[1..];
    let mut verify_error: Option<String> = None;
    let mut trusted_but_constrained = false;
    let mut matched: Option<CertEntry> = None;
    let all = entries(&b, &c).await?;

    // Pinned certificates first (Vault's trustedNonCAs).
    'pinned: for e in &all {
        for der in pem_certs(&e.certificate) {
            if der != *leaf || facts(&der).map(|f| f.is_ca).unwrap_or(true) {
                continue;
            }
            if !leaf_facts.valid_now {
                verify_error = Some(format!(
                    "certificate is not valid now (valid from {} to {})",
                    leaf_facts.not_before, leaf_facts.not_after
                ));
                continue;
            }
            if constraints(e, &leaf_facts).is_ok() {
                matched = Some(e.clone());
                break 'pinned;
            }
            trusted_but_constrained = true;
        }
    }
    // Then chains to CA certificates.
    if matched.is_none() {
        for e in &all {
            let anchors: Vec<Vec<u8>> = pem_certs(&e.certificate)
                .into_iter()
                .filter(|d| facts(d).is_ok_and(|f| f.is_ca))
                .collect();
            if anchors.is_empty() {
                continue;
            }
            match verify_chain(leaf, intermediates, &anchors) {
                Ok(()) => {
                    if constraints(e, &leaf_facts).is_ok() {
                        matched = Some(e.clone());
                        break;
                    }
                    trusted_but_constrained = true;
                }
                Err(ChainError::UnknownIssuer) => {}
                Err(ChainError::Invalid(m)) => {
                    verify_error.get_or_insert(m);
                }
            }
        }
    }
    let Some(entry) = matched else {
        return Err(Error::bad(if trusted_but_constrained {
            "no chain matching all constraints could be found for this login certificate"
                .to_string()
        } else if let Some(m) = verify_error {
            format!("failed to verify client's certificate: {m}")
        } else {
            "invalid certificate or no client certificate supplied".to_string()
        }));
    };
    check_token_cidrs(c.remote_addr.as_deref(), &entry.token.token_bound_cidrs)?;

    let mut metadata = BTreeMap::from([
        ("cert_name".to_string(), entry.name.clone()),
        ("common_name".to_string(), leaf_facts.common_name.clone()),
        ("serial_number".to_string(), leaf_facts.serial.clone()),
        (
            "subject_key_id".to_string(),
            leaf_facts.subject_key_id.clone(),
        ),
        (
            "authority_key_id".to_string(),
            leaf_facts.authority_key_id.clone(),
        ),
    ]);
    metadata.extend(extension_metadata(&entry, &leaf_facts));
    let cfg = b.config(&c.storage).await?;
    let (mut grant, warnings) =
        entry
            .token
            .grant(&c.mount, entry.display_name.clone(), metadata.clone());
    grant.alias_name = Some(leaf_facts.common_name.clone());
    if cfg.enable_identity_alias_metadata {
        grant.alias_metadata = metadata;
    }
    Ok(Response {
        login: Some(Box::new(grant)),
        warnings,
        ..Default::default()
    })
}
