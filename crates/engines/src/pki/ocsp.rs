//! The OCSP responder (RFC 6960): `GET ocsp/<base64 DER request>` and `POST ocsp` with the DER
//! request as the body (`application/ocsp-request`; the HTTP layer hands it over base64 in
//! `http_raw_body`). Answers are `application/ocsp-response`, signed directly by the issuer
//! the request names (responder id by name), valid for `config/crl`'s `ocsp_expiry`.
//!
//! As in Vault: only the first certificate of a request is answered; a certificate that is not
//! revoked is `good`; a request naming an issuer the mount does not have gets `unknown`, signed
//! by the default issuer; a request that does not parse gets `malformedRequest` with HTTP 400;
//! with `ocsp_disable` every request gets `unauthorized` (HTTP 401). A request nonce is echoed.
//!
//! Request and response structures are RustCrypto's `x509-ocsp` types (DER via `der`); the
//! signature is made by the issuer's key through rcgen's [`SigningKey`].

use super::crl::crl_config;
use super::issuers::{self, LoadedIssuer};
use super::revoke::get_revoked;
use super::x509::{serial_colon, unb64};
use super::{raw, Pki};
use aws_lc_rs::digest;
use rcgen::SigningKey;
use std::sync::Arc;
use std::time::Duration;
use tresor_core::barrier::View;
use tresor_core::error::Result;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use x509_cert::der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier};
use x509_cert::der::{Any, DateTime, Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

const CONTENT_TYPE: &str = "application/ocsp-response";
const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

pub fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("ocsp/(?P<req>.+)")
            .op(Read, get)
            .help("OCSP: the DER request, base64, in the path."),
        Path::new("ocsp")
            .field("http_raw_body", Field::string("the DER request, base64"))
            .op(Update, post)
            .help("OCSP: the DER request as the body (application/ocsp-request)."),
    ]
}

async fn get(b: Arc<Pki>, c: Call) -> Result<Response> {
    let encoded = c.fields.str("req").replace(' ', "+");
    match unb64(&encoded) {
        Some(der) => answer(&b, &c.storage, &der).await,
        None => Ok(status_only(OcspResponseStatus::MalformedRequest, 400)),
    }
}

async fn post(b: Arc<Pki>, c: Call) -> Result<Response> {
    let body = c
        .data
        .get("http_raw_body")
        .and_then(|v| v.as_str())
        .and_then(unb64);
    match body {
        Some(der) => answer(&b, &c.storage, &der).await,
        None => Ok(status_only(OcspResponseStatus::MalformedRequest, 400)),
    }
}

fn status_only(status: OcspResponseStatus, http: u16) -> Response {
    let r = OcspResponse {
        response_status: status,
        response_bytes: None,
    };
    raw(http, CONTENT_TYPE, r.to_der().unwrap_or_default())
}

/// The digest a CertID uses, by OID.
fn hash_alg(oid: &ObjectIdentifier) -> Option<&'static digest::Algorithm> {
    match oid.to_string().as_str() {
        "1.3.14.3.2.26" => Some(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        "2.16.840.1.101.3.4.2.1" => Some(&digest::SHA256),
        "2.16.840.1.101.3.4.2.2" => Some(&digest::SHA384),
        "2.16.840.1.101.3.4.2.3" => Some(&digest::SHA512),
        _ => None,
    }
}

/// Whether a CertID names this issuer (hash of its subject name and of its public key).
fn names_issuer(id: &CertId, issuer: &LoadedIssuer) -> bool {
    let Some(alg) = hash_alg(&id.hash_algorithm.oid) else {
        return false;
    };
    let name_hash = digest::digest(alg, &issuer.info.subject_raw);
    let key_hash = digest::digest(alg, &issuer.info.public_key_bits);
    id.issuer_name_hash.as_bytes() == name_hash.as_ref()
        && id.issuer_key_hash.as_bytes() == key_hash.as_ref()
}

/// The signature AlgorithmIdentifier for a key.
fn sig_alg(pair: &rcgen::KeyPair) -> AlgorithmIdentifierOwned {
    let a = pair.algorithm();
    let (oid, null) = if a == &rcgen::PKCS_ED25519 {
        ("1.3.101.112", false)
    } else if a == &rcgen::PKCS_ECDSA_P256_SHA256 || a == &rcgen::PKCS_ECDSA_P521_SHA256 {
        ("1.2.840.10045.4.3.2", false)
    } else if a == &rcgen::PKCS_ECDSA_P384_SHA384 || a == &rcgen::PKCS_ECDSA_P521_SHA384 {
        ("1.2.840.10045.4.3.3", false)
    } else if a == &rcgen::PKCS_ECDSA_P521_SHA512 {
        ("1.2.840.10045.4.3.4", false)
    } else if a == &rcgen::PKCS_RSA_SHA384 {
        ("1.2.840.113549.1.1.12", true)
    } else if a == &rcgen::PKCS_RSA_SHA512 {
        ("1.2.840.113549.1.1.13", true)
    } else {
        ("1.2.840.113549.1.1.11", true)
    };
    AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap(oid),
        parameters: if null { Some(Any::from(Null)) } else { None },
    }
}

fn gen_time(unix: i64) -> OcspGeneralizedTime {
    let dt = DateTime::from_unix_duration(Duration::from_secs(unix.max(0) as u64))
        .unwrap_or(DateTime::INFINITY);
    OcspGeneralizedTime(GeneralizedTime::from_date_time(dt))
}

/// Answers one DER OCSP request.
pub async fn answer(b: &Pki, s: &View, der: &[u8]) -> Result<Response> {
    let Ok(req) = OcspRequest::from_der(der) else {
        return Ok(status_only(OcspResponseStatus::MalformedRequest, 400));
    };
    let Some(first) = req.tbs_request.request_list.first() else {
        return Ok(status_only(OcspResponseStatus::MalformedRequest, 400));
    };
    if crl_config(s).await?.ocsp_disable {
        return Ok(status_only(OcspResponseStatus::Unauthorized, 401));
    }
    let cert_id = first.req_cert.clone();

    // Which of our issuers the request names.
    let mut matched = None;
    for entry in issuers::list_issuers(s).await? {
        if let Ok(l) = b.issuer(s, &entry.id).await {
            if names_issuer(&cert_id, &l) {
                matched = Some(l);
                break;
            }
        }
    }
    let (responder, known) = match matched {
        Some(l) => (l, true),
        None => match b.issuer(s, "default").await {
            Ok(l) => (l, false),
            Err(_) => return Ok(status_only(OcspResponseStatus::Unauthorized, 401)),
        },
    };
    let Some(key) = responder.key.as_ref() else {
        return Ok(status_only(OcspResponseStatus::Unauthorized, 401));
    };
    if !responder.entry.has_usage("ocsp-signing") {
        return Ok(status_only(OcspResponseStatus::Unauthorized, 401));
    }

    let now = super::x509::now_unix();
    let expiry = crl_config(s).await?.ocsp_expiry_secs() as i64;
    let serial = serial_colon(cert_id.serial_number.as_bytes());
    let status = if !known {
        CertStatus::unknown()
    } else {
        match get_revoked(s, &serial).await? {
            Some(r) => CertStatus::revoked(RevokedInfo {
                revocation_time: gen_time(r.revocation_time),
                revocation_reason: None,
            }),
            None => CertStatus::good(),
        }
    };
    let this_update = now;
    let name = Name::from_der(&responder.info.subject_raw)
        .map_err(|e| tresor_core::error::Error::internal(format!("issuer name: {e}")))?;
    let nonce: Option<Vec<Extension>> = req
        .tbs_request
        .request_extensions
        .as_ref()
        .map(|exts| {
            exts.iter()
                .filter(|e| e.extn_id == NONCE)
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty());
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByName(name),
        produced_at: gen_time(now - now % 60),
        responses: vec![SingleResponse {
            cert_id,
            cert_status: status,
            this_update: gen_time(this_update),
            next_update: Some(gen_time(this_update + expiry)),
            single_extensions: None,
        }],
        response_extensions: nonce,
    };
    let err = |e: x509_cert::der::Error| {
        tresor_core::error::Error::internal(format!("OCSP encoding: {e}"))
    };
    let tbs_der = tbs.to_der().map_err(err)?;
    let sig = key
        .pair
        .sign(&tbs_der)
        .map_err(|e| tresor_core::error::Error::internal(format!("OCSP signing: {e}")))?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: sig_alg(&key.pair),
        signature: BitString::from_bytes(&sig).map_err(err)?,
        certs: None,
    };
    let resp = OcspResponse::successful(basic).map_err(err)?;
    Ok(raw(200, CONTENT_TYPE, resp.to_der().map_err(err)?))
}
