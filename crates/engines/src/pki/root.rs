//! Roots and CA signing: `root/generate/:type` (a self-signed CA, `internal`, `exported` or
//! `existing` key), `root/sign-intermediate` and `issuer/:ref/sign-intermediate` (a CA
//! certificate for a CSR), `root/sign-self-issued` and `issuer/:ref/sign-self-issued` (re-sign
//! a self-issued CA certificate, e.g. for a root rollover), and `DELETE root` (remove every
//! issuer and key).

use super::config::{urls_config, AIA_WARNING};
use super::fetch::{store_cert, CertRecord};
use super::issue::{
    cert_response, issuer_urls, issuing_issuer, names_for, self_sign, sign, validity, CsrInfo,
    SubjectFields, Template,
};
use super::issuers::{self, ISSUER_REF};
use super::keys::{self, check_name, generate_async, key_spec, KeyType, PrivKey};
use super::roles::Role;
use super::x509::{b64, dn_from_x509, pem_certs};
use super::{bad, Pki};
use rcgen::{CustomExtension, KeyUsagePurpose, SubjectPublicKeyInfo};
use serde_json::json;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use x509_parser::prelude::*;

/// The fields of every path that makes a CA certificate or CSR.
pub fn ca_fields(p: Path<Pki>) -> Path<Pki> {
    p.field("common_name", Field::string("the CA's common name"))
        .field("alt_names", Field::list("DNS names or email addresses"))
        .field("ip_sans", Field::list("IP SANs"))
        .field("uri_sans", Field::list("URI SANs"))
        .field("other_sans", Field::list("other SANs (oid;UTF8:value)"))
        .field("ttl", Field::duration("requested TTL"))
        .field("not_after", Field::string("explicit expiry (RFC 3339)"))
        .field(
            "key_type",
            Field::string("rsa, ec or ed25519").default("rsa"),
        )
        .field("key_bits", Field::int("key size in bits").default(0))
        .field("key_name", Field::string("name of a new key"))
        .field(
            "key_ref",
            Field::string("existing key to use").default("default"),
        )
        .field("issuer_name", Field::string("name of the new issuer"))
        .field(
            "max_path_length",
            Field::int("path length constraint").default(-1),
        )
        .field(
            "exclude_cn_from_sans",
            Field::bool("leave the CN out of the SANs"),
        )
        .field(
            "permitted_dns_domains",
            Field::list("name constraints: permitted DNS domains"),
        )
        .field(
            "excluded_dns_domains",
            Field::list("name constraints: excluded DNS domains"),
        )
        .field("ou", Field::list("organizational units"))
        .field("organization", Field::list("organizations"))
        .field("country", Field::list("countries"))
        .field("locality", Field::list("localities"))
        .field("province", Field::list("provinces"))
        .field("street_address", Field::list("street addresses"))
        .field("postal_code", Field::list("postal codes"))
        .field(
            "serial_number",
            Field::string("the subject's serialNumber attribute"),
        )
        .field(
            "format",
            Field::string("pem, der or pem_bundle").default("pem"),
        )
        .field("private_key_format", Field::string("der, pem or pkcs8"))
        .field("signature_bits", Field::int("signature hash size"))
        .field("use_pss", Field::bool("use PSS signatures"))
        .field(
            "not_before_duration",
            Field::duration("backdating").default(30),
        )
        .field(
            "add_basic_constraints",
            Field::bool("add CA basic constraints to a CSR"),
        )
        .field(
            "use_csr_values",
            Field::bool("take subject and extensions from the CSR"),
        )
        .field("csr", Field::string("PEM-encoded CSR"))
        .field("certificate", Field::string("PEM-encoded certificate"))
        .field("skid", Field::string("subject key identifier (hex)"))
        .field("issuer_ref", Field::string("the issuer to sign with"))
}

/// A role that lets a CA request carry any names (CA paths have no role).
pub fn permissive_role(use_csr_sans: bool) -> Role {
    Role {
        allow_any_name: true,
        enforce_hostnames: false,
        allow_ip_sans: true,
        allowed_uri_sans: vec!["*".into()],
        allowed_other_sans: vec!["*".into()],
        cn_validations: vec!["disabled".into()],
        use_csr_sans,
        ..Role::default()
    }
}

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        ca_fields(Path::new(r"root/generate/(?P<exported>[^/]+)"))
            .op(Update, generate_root)
            .help("Generate a self-signed root CA."),
        ca_fields(Path::new(r"root/rotate/(?P<exported>[^/]+)"))
            .op(Update, generate_root)
            .help("Generate a new root CA (the default issuer does not change)."),
        ca_fields(Path::new("root/sign-intermediate"))
            .op(Update, sign_intermediate)
            .help("Sign an intermediate CA's CSR with the default issuer."),
        ca_fields(Path::new(
            format!("issuer/{ISSUER_REF}/sign-intermediate").as_str(),
        ))
        .op(Update, sign_intermediate)
        .help("Sign an intermediate CA's CSR with a chosen issuer."),
        ca_fields(Path::new("root/sign-self-issued"))
            .field(
                "require_matching_certificate_algorithms",
                Field::bool("unused"),
            )
            .op(Update, sign_self_issued)
            .help("Re-sign a self-issued CA certificate with the default issuer."),
        ca_fields(Path::new(
            format!("issuer/{ISSUER_REF}/sign-self-issued").as_str(),
        ))
        .op(Update, sign_self_issued)
        .help("Re-sign a self-issued CA certificate with a chosen issuer."),
        Path::new("root")
            .op(Delete, delete_root)
            .help("Delete every issuer and key of the mount."),
    ]
}

/// Parses the key-generation mode of `root/generate/:type` and `intermediate/generate/:type`.
pub fn mode(c: &Call) -> Result<&str> {
    match c.fields.str("exported") {
        m @ ("internal" | "exported" | "existing") => Ok(m),
        "kms" => Err(bad("managed keys are not supported")),
        _ => Err(bad(
            "the \"exported\" path parameter must be \"internal\", \"existing\", exported\" or \"kms\"",
        )),
    }
}

/// The key for a new CA or CSR: an existing one (`existing`) or a fresh one.
pub async fn ca_key(c: &Call, mode: &str) -> Result<PrivKey> {
    if mode == "existing" {
        return keys::resolve_key(&c.storage, c.fields.str("key_ref"))
            .await?
            .load();
    }
    let spec = key_spec(c.fields.str("key_type"), c.fields.int("key_bits"))?;
    generate_async(spec).await
}

/// Checks that a new issuer or key name is valid and unused.
pub async fn check_new_names(c: &Call) -> Result<()> {
    let issuer_name = c.fields.str("issuer_name");
    check_name(issuer_name, "issuer")?;
    if !issuer_name.is_empty()
        && issuers::list_issuers(&c.storage)
            .await?
            .iter()
            .any(|i| i.name == issuer_name)
    {
        return Err(bad("issuer name already in use"));
    }
    let key_name = c.fields.str("key_name");
    check_name(key_name, "key")?;
    if !key_name.is_empty()
        && keys::list_keys(&c.storage)
            .await?
            .iter()
            .any(|k| k.name == key_name)
    {
        return Err(bad("key name already in use"));
    }
    Ok(())
}

/// The subject and names of a CA request (checked only for syntax).
pub fn ca_template(c: &Call, cn: &str) -> Result<Template> {
    let mut t = Template {
        subject: SubjectFields::from_call(c).dn(cn),
        permitted_dns_domains: c.fields.strings("permitted_dns_domains"),
        excluded_dns_domains: c.fields.strings("excluded_dns_domains"),
        ..Default::default()
    };
    names_for(c, &permissive_role(false), cn, None, &mut t)?;
    Ok(t)
}

fn path_len(c: &Call) -> Option<u8> {
    let n = c.fields.int("max_path_length");
    (n >= 0).then(|| n.min(255) as u8)
}

async fn generate_root(b: Arc<Pki>, c: Call) -> Result<Response> {
    let mode = mode(&c)?.to_string();
    check_new_names(&c).await?;
    let cn = c.fields.str("common_name").trim().to_string();
    let mut warnings = Vec::new();
    let mut t = ca_template(&c, &cn)?;
    let v = validity(
        &c,
        c.fields.duration("ttl").as_secs(),
        0,
        0,
        c.fields.duration("not_before_duration").as_secs(),
        None,
        false,
        &mut warnings,
    )?;
    t.not_before = Some(v.not_before);
    t.not_after = Some(v.not_after);
    t.ca = Some(path_len(&c));
    t.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = ca_key(&c, &mode).await?;
    let urls = urls_config(&c.storage).await?;
    let cert = self_sign(&t, &key, &urls)?;
    if t.subject.iter().next().is_none() {
        warnings.push("This issuer certificate was generated without a Subject; this makes it likely that issuing leaf certs with this certificate will cause TLS validation libraries to reject this certificate.".into());
    }
    if urls.is_empty() {
        warnings.push(AIA_WARNING.into());
    }

    let guard = b.write_lock.lock().await;
    let (key_id, _) = keys::import_key(&c.storage, &key, c.fields.str("key_name")).await?;
    let issuer_name = c.fields.str("issuer_name");
    let r = issuers::import(&b, &c.storage, vec![cert.clone()], vec![], issuer_name).await?;
    let issuer_id = r
        .imported_issuers
        .first()
        .or(r.existing_issuers.first())
        .cloned()
        .ok_or_else(|| Error::internal("the new issuer was not stored"))?;
    drop(guard);
    store_cert(&c.storage, &CertRecord::new(&(&cert).into(), &issuer_id)).await?;
    let key_name = keys::get_key(&c.storage, &key_id)
        .await?
        .map(|k| k.name)
        .unwrap_or_default();

    let der = c.fields.str("format") == "der";
    let cert_out = if der { b64(&cert.der) } else { cert.pem() };
    let mut d = json!({
        "certificate": cert_out,
        "expiration": cert.not_after,
        "issuer_id": issuer_id,
        "issuer_name": issuer_name,
        "issuing_ca": cert_out,
        "key_id": key_id,
        "key_name": key_name,
        "serial_number": cert.serial,
    });
    if mode == "exported" {
        d["private_key"] = json!(key.export(
            if der { "der" } else { "pem" },
            c.fields.str("private_key_format")
        )?);
        d["private_key_type"] = json!(key.ty.as_str());
    }
    let mut resp = Response::data(d);
    resp.warnings = warnings;
    Ok(resp)
}

/// The path length a CA signed by `issuer` may have, when the request does not say.
fn inherited_path_len(issuer_der: &[u8]) -> Result<Option<u8>> {
    let (_, cert) = X509Certificate::from_der(issuer_der)
        .map_err(|_| Error::internal("unable to parse the issuer certificate"))?;
    let bc = cert.basic_constraints().ok().flatten();
    match bc.and_then(|b| b.value.path_len_constraint) {
        None => Ok(None),
        Some(0) => Err(bad(
            "signing certificate has a max path length of zero, and cannot issue further CA certificates",
        )),
        Some(n) => Ok(Some((n - 1).min(255) as u8)),
    }
}

async fn sign_intermediate(b: Arc<Pki>, c: Call) -> Result<Response> {
    let issuer = issuing_issuer(&b, &c, "default").await?;
    let csr = CsrInfo::parse_pem(c.fields.str("csr"))?;
    if csr.key_type == Some(KeyType::Rsa) && csr.key_bits < 2048 {
        return Err(bad(format!(
            "RSA keys < 2048 bits are unsafe and not supported: got {}",
            csr.key_bits
        )));
    }
    let use_csr = c.fields.bool("use_csr_values");
    let cn = if use_csr {
        csr.cn.clone()
    } else {
        c.fields.str("common_name").trim().to_string()
    };
    let mut warnings = Vec::new();
    let mut t = Template {
        subject: if use_csr {
            csr.subject.clone()
        } else {
            SubjectFields::from_call(&c).dn(&cn)
        },
        permitted_dns_domains: c.fields.strings("permitted_dns_domains"),
        excluded_dns_domains: c.fields.strings("excluded_dns_domains"),
        ..Default::default()
    };
    names_for(
        &c,
        &permissive_role(use_csr),
        &cn,
        use_csr.then_some(&csr),
        &mut t,
    )?;
    let v = validity(
        &c,
        c.fields.duration("ttl").as_secs(),
        0,
        0,
        c.fields.duration("not_before_duration").as_secs(),
        Some(&issuer),
        true,
        &mut warnings,
    )?;
    t.not_before = Some(v.not_before);
    t.not_after = Some(v.not_after);
    t.ca = Some(match path_len(&c) {
        Some(n) => Some(n),
        None => inherited_path_len(&issuer.info.der)?,
    });
    t.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let pk = csr.public_key()?;
    let mount_urls = b.urls(&c.storage).await?;
    let cert = sign(&t, &pk, &issuer, &issuer_urls(&issuer, &mount_urls))?;
    store_cert(&c.storage, &CertRecord::new(&cert, &issuer.entry.id)).await?;
    let mut d = cert_response(&c, &cert, &issuer, None, false)?;
    let mut chain = vec![d["certificate"].clone()];
    if let Some(rest) = d["ca_chain"].as_array() {
        chain.extend(rest.iter().cloned());
    }
    d["ca_chain"] = json!(chain);
    let mut resp = Response::data(d);
    resp.warnings = warnings;
    Ok(resp)
}

async fn sign_self_issued(b: Arc<Pki>, c: Call) -> Result<Response> {
    let issuer = issuing_issuer(&b, &c, "default").await?;
    let der = pem_certs(c.fields.str("certificate"))
        .into_iter()
        .next()
        .ok_or_else(|| bad("certificate could not be PEM-decoded"))?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| bad(format!("error parsing certificate: {e}")))?;
    if cert.subject().as_raw() != cert.issuer().as_raw() {
        return Err(bad("given certificate is not self-issued"));
    }
    if !cert.is_ca() {
        return Err(bad("given certificate is not a CA certificate"));
    }
    let mut raw_extensions = Vec::new();
    for ext in cert.extensions() {
        let oid: Vec<u64> = ext
            .oid
            .iter()
            .map(|i| i.collect())
            .ok_or_else(|| bad("unsupported extension OID"))?;
        if oid == [2, 5, 29, 35] {
            continue; // the authority key identifier becomes the new issuer's
        }
        let mut e = CustomExtension::from_oid_content(&oid, ext.value.to_vec());
        e.set_criticality(ext.critical);
        raw_extensions.push(e);
    }
    let t = Template {
        subject: dn_from_x509(cert.subject())?,
        serial: Some(cert.raw_serial().to_vec()),
        not_before: Some(cert.validity().not_before.to_datetime()),
        not_after: Some(cert.validity().not_after.to_datetime()),
        raw_extensions,
        ..Default::default()
    };
    let pk = SubjectPublicKeyInfo::from_der(cert.public_key().raw)
        .map_err(|_| bad("unsupported public key type in the certificate"))?;
    let signed = sign(&t, &pk, &issuer, &Default::default())?;
    Ok(Response::data(json!({
        "certificate": signed.pem(),
        "issuing_ca": issuer.pem,
    })))
}

async fn delete_root(b: Arc<Pki>, c: Call) -> Result<Response> {
    let _guard = b.write_lock.lock().await;
    for i in issuers::list_issuers(&c.storage).await? {
        c.storage
            .delete(&format!("{}{}", issuers::ISSUER_PREFIX, i.id))
            .await?;
        c.storage
            .delete(&format!("{}{}", super::crl::CRL_PREFIX, i.id))
            .await?;
    }
    for k in keys::list_keys(&c.storage).await? {
        c.storage
            .delete(&format!("{}{}", keys::KEY_PREFIX, k.id))
            .await?;
    }
    c.storage.delete(issuers::ISSUERS_CONFIG).await?;
    c.storage.delete(keys::KEYS_CONFIG).await?;
    b.invalidate();
    Ok(Response::default().with_warning("DELETE /root deletes all keys and issuers; prefer the new DELETE /key/:key_ref and DELETE /issuer/:issuer_ref for finer granularity, unless removal of all keys and issuers is desired."))
}
