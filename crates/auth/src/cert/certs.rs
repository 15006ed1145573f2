//! `certs` (LIST), `certs/:name` and `config`: trusted certificate entries and the mount's
//! settings, with the checks, messages and read shapes of OpenBao's cert method.

use super::verify::{facts, pem_certs};
use super::Cert;
use crate::token_fields::{self, Legacy};
use crate::{named, null_if_empty, sorted_data};
use serde_json::{json, Map};
use std::sync::Arc;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

/// The deprecated token-field aliases cert entries accept.
pub const LEGACY: &[Legacy] = &[
    Legacy::Policies,
    Legacy::Ttl,
    Legacy::MaxTtl,
    Legacy::Period,
    Legacy::BoundCidrs,
];

const LISTS: &[&str] = &[
    "allowed_names",
    "allowed_common_names",
    "allowed_dns_sans",
    "allowed_email_sans",
    "allowed_uri_sans",
    "allowed_organizational_units",
    "required_extensions",
    "allowed_metadata_extensions",
];

pub(crate) fn paths() -> Vec<Path<Cert>> {
    let mut p = Path::new(&format!("certs/{}", named("name")))
        .field("name", Field::string("The name of the certificate"))
        .field("certificate", Field::string("The public certificate that should be trusted. Must be x509 PEM encoded."))
        .field("display_name", Field::string("The display name to use for clients using this certificate."))
        .field("ocsp_enabled", Field::bool("Whether to attempt OCSP verification of certificates at login (not supported by Tresor)"))
        .field("ocsp_ca_certificates", Field::string("Any additional CA certificates needed to communicate with OCSP servers"))
        .field("ocsp_servers_override", Field::list("A comma-separated list of OCSP server addresses."))
        .field("ocsp_fail_open", Field::bool("If set to true, if an OCSP revocation cannot be made successfully, login will proceed rather than failing."))
        .field("ocsp_query_all_servers", Field::bool("If set to true, rather than accepting the first successful OCSP response, query all servers."))
        .field("lease", Field::duration("Use \"token_ttl\" instead."));
    for l in LISTS {
        p = p.field(l, Field::list("A comma-separated list of glob patterns the client certificate must match (see the method's documentation)."));
    }
    vec![
        Path::new("certs/?").op(List, list).help("Manage trusted certificates used for authentication."),
        token_fields::declare(p, LEGACY)
            .exists(|b: Arc<Cert>, c: Call| async move {
                Ok(b.entry(&c.storage, c.fields.str("name")).await?.is_some())
            })
            .op(Create, write)
            .op(Update, write)
            .op(Read, read)
            .op(Delete, delete)
            .help("Manage trusted certificates used for authentication."),
        Path::new("config")
            .field("disable_binding", Field::bool("If set, during renewal, skips the matching of presented client identity with the client identity used during login."))
            .field("enable_identity_alias_metadata", Field::bool("If set, metadata of the certificate including the metadata corresponding to allowed_metadata_extensions will be stored in the alias."))
            .field("ocsp_cache_size", Field::int("The size of the in memory OCSP response cache, shared by all configured certs"))
            .op(Read, read_config)
            .op(Update, write_config)
            .help("Configure the cert auth method."),
    ]
}

async fn list(_b: Arc<Cert>, c: Call) -> Result<Response> {
    let keys = c.storage.list("cert/").await?;
    Response::list_or_not_found(keys)
}

async fn write(b: Arc<Cert>, c: Call) -> Result<Response> {
    let name = c.fields.str("name").to_lowercase();
    let _guard = b.locks.lock(&name).await;
    let f = &c.fields;
    let mut e = b.entry(&c.storage, &name).await?.unwrap_or_default();
    e.name = name.clone();
    if f.has("certificate") {
        e.certificate = f.str("certificate").to_string();
    }
    let certs = pem_certs(&e.certificate);
    let Some(first) = certs.first() else {
        return Err(Error::bad("failed to parse certificate"));
    };
    let first = facts(first).map_err(|_| Error::bad("failed to parse certificate"))?;
    if !first.is_ca && first.eku_excludes_client_auth {
        return Err(Error::bad(
            "nonCA certificates should have TLS client authentication set as an extended key usage",
        ));
    }
    if f.has("display_name") || e.display_name.is_empty() {
        e.display_name = match f.str("display_name") {
            "" => name.clone(),
            d => d.to_string(),
        };
    }
    for l in LISTS {
        if f.has(l) {
            let v = f.strings(l);
            match *l {
                "allowed_names" => e.allowed_names = v,
                "allowed_common_names" => e.allowed_common_names = v,
                "allowed_dns_sans" => e.allowed_dns_sans = v,
                "allowed_email_sans" => e.allowed_email_sans = v,
                "allowed_uri_sans" => e.allowed_uri_sans = v,
                "allowed_organizational_units" => e.allowed_organizational_units = v,
                "required_extensions" => e.required_extensions = v,
                _ => e.allowed_metadata_extensions = v,
            }
        }
    }
    if f.has("ocsp_enabled") {
        e.ocsp_enabled = f.bool("ocsp_enabled");
    }
    if e.ocsp_enabled {
        return Err(Error::bad(
            "OCSP checking is not supported by Tresor: ocsp_enabled must be false",
        ));
    }
    if f.has("ocsp_ca_certificates") {
        e.ocsp_ca_certificates = f.str("ocsp_ca_certificates").to_string();
    }
    if f.has("ocsp_servers_override") {
        e.ocsp_servers_override = f.strings("ocsp_servers_override");
    }
    if f.has("ocsp_fail_open") {
        e.ocsp_fail_open = f.bool("ocsp_fail_open");
    }
    if f.has("ocsp_query_all_servers") {
        e.ocsp_query_all_servers = f.bool("ocsp_query_all_servers");
    }
    let mut warnings = e.token.parse(f, LEGACY, false)?;
    if f.has("lease") && !f.has("token_ttl") && !f.has("ttl") {
        e.token.token_ttl = f.duration("lease").as_secs();
        e.token.ttl = e.token.token_ttl;
    }
    let max = crate::mount_max_ttl(&c.mount);
    if e.token.token_max_ttl > 0 && e.token.token_ttl > e.token.token_max_ttl {
        return Err(Error::bad("ttl should not be greater than max ttl"));
    }
    if e.token.token_max_ttl > max {
        warnings.push("max_ttl is greater than the system or backend mount's maximum TTL value; issued tokens' max TTL value will be truncated".into());
    }
    if e.token.token_period > max {
        return Err(Error::bad(format!(
            "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
            crate::go_duration(e.token.token_period),
            crate::go_duration(max)
        )));
    }
    c.storage.put_json(&format!("cert/{name}"), &e).await?;
    Ok(Response {
        warnings,
        ..Default::default()
    })
}

async fn read(b: Arc<Cert>, c: Call) -> Result<Response> {
    let e = b
        .entry(&c.storage, c.fields.str("name"))
        .await?
        .ok_or(Error::NotFound)?;
    let mut m = Map::new();
    m.insert("certificate".into(), json!(e.certificate));
    m.insert("display_name".into(), json!(e.display_name));
    m.insert("allowed_names".into(), null_if_empty(&e.allowed_names));
    m.insert(
        "allowed_common_names".into(),
        null_if_empty(&e.allowed_common_names),
    );
    m.insert(
        "allowed_dns_sans".into(),
        null_if_empty(&e.allowed_dns_sans),
    );
    m.insert(
        "allowed_email_sans".into(),
        null_if_empty(&e.allowed_email_sans),
    );
    m.insert(
        "allowed_uri_sans".into(),
        null_if_empty(&e.allowed_uri_sans),
    );
    m.insert(
        "allowed_organizational_units".into(),
        null_if_empty(&e.allowed_organizational_units),
    );
    m.insert(
        "required_extensions".into(),
        null_if_empty(&e.required_extensions),
    );
    m.insert(
        "allowed_metadata_extensions".into(),
        null_if_empty(&e.allowed_metadata_extensions),
    );
    m.insert("ocsp_enabled".into(), json!(e.ocsp_enabled));
    m.insert("ocsp_ca_certificates".into(), json!(e.ocsp_ca_certificates));
    m.insert(
        "ocsp_servers_override".into(),
        null_if_empty(&e.ocsp_servers_override),
    );
    m.insert("ocsp_fail_open".into(), json!(e.ocsp_fail_open));
    m.insert(
        "ocsp_query_all_servers".into(),
        json!(e.ocsp_query_all_servers),
    );
    e.token.populate(&mut m, LEGACY);
    Ok(sorted_data(m))
}

async fn delete(b: Arc<Cert>, c: Call) -> Result<Response> {
    let name = c.fields.str("name").to_lowercase();
    let _guard = b.locks.lock(&name).await;
    c.storage.delete(&format!("cert/{name}")).await?;
    Ok(Response::default())
}

async fn read_config(b: Arc<Cert>, c: Call) -> Result<Response> {
    let cfg = b.config(&c.storage).await?;
    Ok(Response::data(json!({
        "disable_binding": cfg.disable_binding,
        "enable_identity_alias_metadata": cfg.enable_identity_alias_metadata,
        "ocsp_cache_size": cfg.ocsp_cache_size,
    })))
}

async fn write_config(b: Arc<Cert>, c: Call) -> Result<Response> {
    let _guard = b.locks.lock("\0config").await;
    let f = &c.fields;
    let mut cfg = b.config(&c.storage).await?;
    if f.has("disable_binding") {
        cfg.disable_binding = f.bool("disable_binding");
    }
    if f.has("enable_identity_alias_metadata") {
        cfg.enable_identity_alias_metadata = f.bool("enable_identity_alias_metadata");
    }
    if f.has("ocsp_cache_size") {
        let n = f.int("ocsp_cache_size");
        if n < 2 {
            return Err(Error::bad(
                "invalid cache size, must be >= 2 and <= max_cache_size",
            ));
        }
        cfg.ocsp_cache_size = n;
    }
    c.storage.put_json("config", &cfg).await?;
    Ok(Response::default())
}
