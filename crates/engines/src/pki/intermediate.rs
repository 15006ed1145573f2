//! Intermediate CAs: `intermediate/generate/:type` makes a key (or uses an `existing` one) and
//! a CSR for another CA to sign; `intermediate/set-signed` imports the signed certificate (and
//! any chain sent with it), binding it to the key the mount already holds.

use super::config::{import_response, urls_config, AIA_WARNING};
use super::issue::{names_for, SubjectFields, Template};
use super::keys;
use super::root::{ca_fields, ca_key, check_new_names, mode, permissive_role};
use super::x509::{b64, pem_certs, pem_encode, CertInfo};
use super::{bad, Pki};
use rcgen::{BasicConstraints, CertificateParams, IsCa, SanType};
use serde_json::json;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        ca_fields(Path::new(r"intermediate/generate/(?P<exported>[^/]+)"))
            .op(Update, generate)
            .help("Generate a key and a CSR for an intermediate CA."),
        Path::new("intermediate/set-signed")
            .field(
                "certificate",
                Field::string("PEM-encoded signed certificate (and chain)"),
            )
            .op(Update, set_signed)
            .help("Import the signed intermediate CA certificate."),
    ]
}

async fn generate(b: Arc<Pki>, c: Call) -> Result<Response> {
    let mode = mode(&c)?.to_string();
    check_new_names(&c).await?;
    let cn = c.fields.str("common_name").trim().to_string();
    let mut t = Template {
        subject: SubjectFields::from_call(&c).dn(&cn),
        ..Default::default()
    };
    names_for(&c, &permissive_role(false), &cn, None, &mut t)?;
    let key = ca_key(&c, &mode).await?;

    let mut params = CertificateParams::default();
    params.distinguished_name = t.subject.clone();
    let mut sans = Vec::new();
    for d in &t.dns {
        sans.push(SanType::DnsName(
            d.clone()
                .try_into()
                .map_err(|_| bad(format!("invalid DNS name: {d}")))?,
        ));
    }
    for e in &t.emails {
        sans.push(SanType::Rfc822Name(
            e.clone()
                .try_into()
                .map_err(|_| bad(format!("invalid email: {e}")))?,
        ));
    }
    for ip in &t.ips {
        sans.push(SanType::IpAddress(*ip));
    }
    for u in &t.uris {
        sans.push(SanType::URI(
            u.clone()
                .try_into()
                .map_err(|_| bad(format!("invalid URI: {u}")))?,
        ));
    }
    params.subject_alt_names = sans;
    if c.fields.bool("add_basic_constraints") {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let csr = params
        .serialize_request(&key.pair)
        .map_err(|e| Error::internal(format!("unable to create the CSR: {e}")))?;

    let guard = b.write_lock.lock().await;
    let (key_id, _) = keys::import_key(&c.storage, &key, c.fields.str("key_name")).await?;
    drop(guard);
    b.invalidate();

    let der = c.fields.str("format") == "der";
    let mut d = json!({
        "csr": if der { b64(csr.der()) } else { pem_encode("CERTIFICATE REQUEST", csr.der()) },
        "key_id": key_id,
    });
    if mode == "exported" {
        d["private_key"] = json!(key.export(
            if der { "der" } else { "pem" },
            c.fields.str("private_key_format")
        )?);
        d["private_key_type"] = json!(key.ty.as_str());
    }
    let mut resp = Response::data(d);
    if urls_config(&c.storage).await?.is_empty() {
        resp = resp.with_warning(format!("{AIA_WARNING} Since this certificate is an intermediate, it might be useful to regenerate this certificate after fixing this problem for the root mount."));
    }
    Ok(resp)
}

async fn set_signed(b: Arc<Pki>, c: Call) -> Result<Response> {
    let ders = pem_certs(c.fields.str("certificate"));
    if ders.is_empty() {
        return Err(bad("no certificate found in the PEM data"));
    }
    let mut certs = Vec::new();
    for d in ders {
        let info = CertInfo::parse(&d)?;
        if !info.is_ca {
            return Err(bad("the given certificate is not marked for CA use"));
        }
        certs.push(info);
    }
    let _guard = b.write_lock.lock().await;
    import_response(&b, &c.storage, certs, vec![]).await
}
