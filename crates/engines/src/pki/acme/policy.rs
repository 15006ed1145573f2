//! What a directory may issue, and the issuing itself.
//!
//! A directory's policy is its role (`roles/:role/acme/`), or for `acme/` the mount's
//! `default_directory_policy`: `sign-verbatim` (any DNS name or IP address the client proves
//! control of), `role:<name>`, or `forbid`. Roles must be in `allowed_roles`. The issuer is
//! the path's (`issuer/:ref/acme/`), else the role's `issuer_ref`, else the default issuer, and
//! must be in `allowed_issuers`.
//!
//! New orders are checked against the policy (rejectedIdentifier); finalize checks the CSR
//! against the order (badCSR) and signs it with the PKI engine's own builder ([`sign`]):
//! names are exactly the order's identifiers, the subject is the CSR's (sign-verbatim) or the
//! role's attributes with the CSR's common name, key usages are the role's (sign-verbatim:
//! DigitalSignature, KeyAgreement, KeyEncipherment), the extended key usage is ServerAuth
//! unless `allow_role_ext_key_usage`, and the lifetime is the role's (or the mount's) TTL,
//! capped by its max TTL and cut at the issuer's expiry.

use super::super::config::urls_config;
use super::super::fetch::{store_cert, CertRecord};
use super::super::issue::{
    ext_key_usages, issuer_urls, issuing_issuer, key_usages, sign, validity, CsrInfo,
    SubjectFields, Template,
};
use super::super::issuers::LoadedIssuer;
use super::super::keys::KeyType;
use super::super::names::{allowed, is_hostname};
use super::super::roles::{get_role, Role};
use super::super::x509::{pem_encode, IssuedCert};
use super::super::Pki;
use super::config::AcmeConfig;
use super::store::{Identifier, Order};
use super::Problem;
use rcgen::ExtendedKeyUsagePurpose;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use time::OffsetDateTime;
use tresor_core::framework::Call;

/// A directory's issuing policy.
pub enum Policy {
    Verbatim,
    Role(String, Box<Role>),
}

/// The policy and issuer reference of the directory a request came to.
pub struct Resolved {
    pub policy: Policy,
    pub issuer_ref: String,
}

/// Resolves the policy of the directory at `role` / `issuer` (path captures, may be empty).
pub async fn resolve(
    c: &Call,
    cfg: &AcmeConfig,
    role: &str,
    issuer: &str,
) -> Result<Resolved, Problem> {
    let role_name = if !role.is_empty() {
        Some(role.to_string())
    } else {
        match cfg.default_directory_policy.as_str() {
            "sign-verbatim" | "" => None,
            "forbid" => {
                return Err(Problem::unauthorized(
                    "the default directory is not allowed by ACME policy (default_directory_policy is forbid)",
                ))
            }
            p => match p.strip_prefix("role:") {
                Some(r) => Some(r.to_string()),
                None => {
                    return Err(Problem::server_internal(format!(
                        "invalid default_directory_policy {p}"
                    )))
                }
            },
        }
    };
    let policy = match role_name {
        None => Policy::Verbatim,
        Some(name) => {
            if !cfg.role_allowed(&name) {
                return Err(Problem::unauthorized(format!(
                    "role {name} is not allowed by ACME policy (allowed_roles)"
                )));
            }
            let r = get_role(&c.storage, &name)
                .await
                .map_err(Problem::internal)?
                .ok_or_else(|| Problem::malformed("role does not exist"))?;
            Policy::Role(name, Box::new(r))
        }
    };
    let issuer_ref = if !issuer.is_empty() {
        issuer.to_string()
    } else {
        match &policy {
            Policy::Role(_, r) if !r.issuer_ref.is_empty() => r.issuer_ref.clone(),
            _ => "default".to_string(),
        }
    };
    Ok(Resolved { policy, issuer_ref })
}

/// Parses and normalizes the identifiers of a new order; checks them against the policy.
pub fn check_identifiers(
    r: &Resolved,
    requested: &[serde_json::Value],
) -> Result<Vec<Identifier>, Problem> {
    if requested.is_empty() {
        return Err(Problem::malformed("an order needs at least one identifier"));
    }
    if requested.len() > 100 {
        return Err(Problem::rejected_identifier(
            "an order may have at most 100 identifiers",
        ));
    }
    let mut out: Vec<Identifier> = Vec::new();
    for v in requested {
        let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let value = v.get("value").and_then(|t| t.as_str()).unwrap_or("");
        if value.is_empty() {
            return Err(Problem::malformed("an identifier has no value"));
        }
        let id = match kind {
            "dns" => {
                let name = value.to_ascii_lowercase();
                if name.starts_with("*.") {
                    return Err(Problem::rejected_identifier(format!(
                        "wildcard identifier {name} needs the dns-01 challenge, which this server does not offer"
                    )));
                }
                if !name.is_ascii() || name.ends_with('.') || !is_hostname(&name) {
                    return Err(Problem::malformed(format!(
                        "{value} is not a valid DNS name"
                    )));
                }
                if let Policy::Role(role_name, role) = &r.policy {
                    if !allowed(role, &name) {
                        return Err(Problem::rejected_identifier(format!(
                            "role ({role_name}) will not issue certificate for name {name}"
                        )));
                    }
                }
                Identifier {
                    kind: "dns".into(),
                    value: name,
                }
            }
            "ip" => {
                let ip: IpAddr = value.parse().map_err(|_| {
                    Problem::malformed(format!("{value} is not a valid IP address"))
                })?;
                if let Policy::Role(role_name, role) = &r.policy {
                    if !role.allow_ip_sans {
                        return Err(Problem::rejected_identifier(format!(
                            "role ({role_name}) will not issue certificate for IP address {ip}"
                        )));
                    }
                }
                Identifier {
                    kind: "ip".into(),
                    value: ip.to_string(),
                }
            }
            other => {
                return Err(Problem::unsupported_identifier(format!(
                    "unsupported identifier type {other}"
                )))
            }
        };
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The issuer a directory signs with, checked against `allowed_issuers` and for issuing.
pub async fn issuer(
    b: &Pki,
    c: &Call,
    cfg: &AcmeConfig,
    r: &Resolved,
) -> Result<Arc<LoadedIssuer>, Problem> {
    let issuer = issuing_issuer(b, c, &r.issuer_ref)
        .await
        .map_err(|e| Problem::server_internal(e.to_string().trim().to_string()))?;
    let ok = cfg.allowed_issuers.iter().any(|a| {
        a == "*"
            || a == &r.issuer_ref
            || a == &issuer.entry.id
            || (!issuer.entry.name.is_empty() && a == &issuer.entry.name)
    });
    if !ok {
        return Err(Problem::unauthorized(format!(
            "issuer {} is not allowed by ACME policy (allowed_issuers)",
            r.issuer_ref
        )));
    }
    Ok(issuer)
}

/// Parses the finalize CSR (base64url DER) and checks it against the order.
pub fn check_csr(der: &[u8], order: &Order, r: &Resolved) -> Result<CsrInfo, Problem> {
    let csr = CsrInfo::parse_pem(&pem_encode("CERTIFICATE REQUEST", der))
        .map_err(|e| Problem::bad_csr(e.to_string()))?;
    let want_dns: BTreeSet<String> = order
        .identifiers
        .iter()
        .filter(|i| i.kind == "dns")
        .map(|i| i.value.clone())
        .collect();
    let want_ips: BTreeSet<IpAddr> = order
        .identifiers
        .iter()
        .filter(|i| i.kind == "ip")
        .filter_map(|i| i.value.parse().ok())
        .collect();
    let got_dns: BTreeSet<String> = csr.dns.iter().map(|d| d.to_ascii_lowercase()).collect();
    let got_ips: BTreeSet<IpAddr> = csr.ips.iter().copied().collect();
    if got_dns != want_dns {
        return Err(Problem::bad_csr(format!(
            "the CSR's DNS names {:?} are not the order's {:?}",
            got_dns, want_dns
        )));
    }
    if got_ips != want_ips {
        return Err(Problem::bad_csr(format!(
            "the CSR's IP addresses {:?} are not the order's {:?}",
            got_ips, want_ips
        )));
    }
    if !csr.emails.is_empty() || !csr.uris.is_empty() {
        return Err(Problem::bad_csr(
            "the CSR requests email or URI names, which ACME orders cannot have",
        ));
    }
    if !csr.cn.is_empty() {
        let cn = csr.cn.to_ascii_lowercase();
        let in_order =
            want_dns.contains(&cn) || cn.parse::<IpAddr>().is_ok_and(|ip| want_ips.contains(&ip));
        if !in_order {
            return Err(Problem::bad_csr(format!(
                "the CSR's common name {} is not one of the order's identifiers",
                csr.cn
            )));
        }
    }
    if csr.ca.is_some() {
        return Err(Problem::bad_csr("the CSR asks for a CA certificate"));
    }
    let Some(ty) = csr.key_type else {
        return Err(Problem::bad_csr("unsupported public key type in the CSR"));
    };
    if ty == KeyType::Rsa && csr.key_bits < 2048 {
        return Err(Problem::bad_csr(format!(
            "RSA keys < 2048 bits are unsafe and not supported: got {}",
            csr.key_bits
        )));
    }
    if let Policy::Role(name, role) = &r.policy {
        if role.key_type != "any" {
            if role.key_type != ty.as_str() {
                return Err(Problem::bad_csr(format!(
                    "role {name} requires keys of type {}",
                    role.key_type
                )));
            }
            if matches!(ty, KeyType::Rsa | KeyType::Ec) && (csr.key_bits as i64) < role.key_bits {
                return Err(Problem::bad_csr(format!(
                    "role {name} requires keys of at least {} bits",
                    role.key_bits
                )));
            }
        }
    }
    Ok(csr)
}

/// Signs the order's certificate; stores it (unless the role says `no_store`).
pub async fn issue(
    c: &Call,
    cfg: &AcmeConfig,
    r: &Resolved,
    issuer: &LoadedIssuer,
    order: &Order,
    csr: &CsrInfo,
) -> Result<IssuedCert, Problem> {
    let dns: Vec<String> = order
        .identifiers
        .iter()
        .filter(|i| i.kind == "dns")
        .map(|i| i.value.clone())
        .collect();
    let ips: Vec<IpAddr> = order
        .identifiers
        .iter()
        .filter(|i| i.kind == "ip")
        .filter_map(|i| i.value.parse().ok())
        .collect();
    let server_auth = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let verbatim_usages = ["DigitalSignature", "KeyAgreement", "KeyEncipherment"]
        .map(String::from)
        .to_vec();
    let (mut t, ttl, max_ttl, not_before, no_store) = match &r.policy {
        Policy::Verbatim => (
            Template {
                subject: csr.subject.clone(),
                key_usages: key_usages(&verbatim_usages),
                ext_key_usages: server_auth,
                ..Default::default()
            },
            0,
            0,
            30,
            false,
        ),
        Policy::Role(_, role) => {
            let cn = if !csr.cn.is_empty() {
                csr.cn.clone()
            } else {
                dns.first().cloned().unwrap_or_default()
            };
            let ext = if cfg.allow_role_ext_key_usage {
                ext_key_usages(role).map_err(Problem::internal)?
            } else {
                server_auth
            };
            (
                Template {
                    subject: SubjectFields::from_role(role).dn(&cn),
                    key_usages: key_usages(&role.key_usage),
                    ext_key_usages: ext,
                    leaf_basic_constraints: role.basic_constraints_valid_for_non_ca,
                    ..Default::default()
                },
                role.ttl,
                role.max_ttl,
                role.not_before_duration,
                role.no_store,
            )
        }
    };
    t.dns = dns;
    t.ips = ips;
    let mut warnings = Vec::new();
    let v = validity(c, 0, ttl, max_ttl, not_before, None, false, &mut warnings)
        .map_err(Problem::internal)?;
    let ca_after = OffsetDateTime::from_unix_timestamp(issuer.info.not_after)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.not_before = Some(v.not_before);
    t.not_after = Some(v.not_after.min(ca_after));
    let pk = csr
        .public_key()
        .map_err(|e| Problem::bad_csr(e.to_string()))?;
    let mount_urls = urls_config(&c.storage).await.map_err(Problem::internal)?;
    let cert = sign(&t, &pk, issuer, &issuer_urls(issuer, &mount_urls))
        .map_err(|e| Problem::server_internal(e.to_string()))?;
    if !no_store {
        store_cert(&c.storage, &CertRecord::new(&cert, &issuer.entry.id))
            .await
            .map_err(Problem::internal)?;
    }
    Ok(cert)
}
