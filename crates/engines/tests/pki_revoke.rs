//! Revocation end to end through a real core: a revoked certificate is on the CRL (parsed with
//! x509-parser, signature checked by `openssl crl`) and revoked over OCSP (requests built and
//! answers checked by `openssl ocsp`, over GET and POST); revoking the lease of a certificate
//! issued with `generate_lease` revokes the certificate.

mod pki_common;

use base64::Engine;
use pki_common::{s, status, Env};
use serde_json::json;
use tresor_core::logical::Operation;
use x509_parser::prelude::*;

fn crl_serials(der: &[u8]) -> Vec<String> {
    let (_, crl) = parse_x509_crl(der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| r.raw_serial_as_string())
        .collect()
}

async fn crl_der(env: &Env, mount: &str) -> Vec<u8> {
    let (st, ct, body) = env
        .raw(Operation::Read, &format!("{mount}/crl"), json!({}))
        .await;
    assert_eq!((st, ct.as_str()), (200, "application/pkix-crl"));
    body
}

/// Asks OCSP about `cert` (a file in the test dir) over GET and POST; returns openssl's report
/// of each answer.
async fn ocsp(env: &Env, issuer: &str, cert: &str) -> Vec<String> {
    let (ok, out) = env.openssl(&[
        "ocsp",
        "-issuer",
        issuer,
        "-cert",
        cert,
        "-reqout",
        "req.der",
        "-no_nonce",
    ]);
    assert!(ok, "{out}");
    let req = std::fs::read(env.path("req.der")).unwrap();
    let mut reports = Vec::new();
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&req);
    let get = env
        .raw(Operation::Read, &format!("pki/ocsp/{url_safe}"), json!({}))
        .await;
    let post = env
        .raw(
            Operation::Update,
            "pki/ocsp",
            json!({ "http_raw_body": base64::engine::general_purpose::STANDARD.encode(&req) }),
        )
        .await;
    for (st, ct, body) in [get, post] {
        assert_eq!((st, ct.as_str()), (200, "application/ocsp-response"));
        env.file("resp.der", &body);
        let (ok, out) = env.openssl(&[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            issuer,
            "-cert",
            cert,
            "-CAfile",
            issuer,
            "-resp_text",
        ]);
        assert!(ok, "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
        reports.push(out);
    }
    reports
}

#[tokio::test]
async fn pki_revoked_certificate_is_on_the_crl_and_revoked_over_ocsp() {
    let env = Env::new().await;
    let root = env.root_ca("pki", json!({})).await;
    env.file("root.pem", s(&root["certificate"]));
    env.write(
        "pki/roles/r",
        json!({ "allow_any_name": true, "key_type": "ec", "ttl": "1h" }),
    )
    .await;
    let a = env
        .write("pki/issue/r", json!({ "common_name": "a.example.com" }))
        .await;
    let b = env
        .write("pki/issue/r", json!({ "common_name": "b.example.com" }))
        .await;
    env.file("a.pem", s(&a["certificate"]));
    env.file("b.pem", s(&b["certificate"]));

    // Nothing revoked yet: an empty, valid CRL, and "good" over OCSP.
    let crl = crl_der(&env, "pki").await;
    assert!(crl_serials(&crl).is_empty());
    env.file("crl.der", &crl);
    let (ok, out) = env.openssl(&[
        "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "root.pem", "-noout",
    ]);
    assert!(ok && out.contains("verify OK"), "{out}");
    for r in ocsp(&env, "root.pem", "a.pem").await {
        assert!(r.contains("a.pem: good"), "{r}");
    }

    let rv = env
        .write("pki/revoke", json!({ "serial_number": a["serial_number"] }))
        .await;
    assert_eq!(rv["state"], "revoked");
    assert!(rv["revocation_time"].as_i64().unwrap() > 0);
    // Revoking again answers the same revocation.
    let again = env
        .write(
            "pki/revoke",
            json!({ "serial_number": s(&a["serial_number"]).to_uppercase().replace(':', "-") }),
        )
        .await;
    assert_eq!(again["revocation_time"], rv["revocation_time"]);

    let crl = crl_der(&env, "pki").await;
    assert_eq!(crl_serials(&crl), vec![s(&a["serial_number"])]);
    env.file("crl.der", &crl);
    let (ok, out) = env.openssl(&[
        "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "root.pem", "-noout",
    ]);
    assert!(ok && out.contains("verify OK"), "{out}");
    let (_, pem_ct, pem) = env.raw(Operation::Read, "pki/crl/pem", json!({})).await;
    assert_eq!(pem_ct, "application/x-pem-file");
    assert!(String::from_utf8(pem)
        .unwrap()
        .starts_with("-----BEGIN X509 CRL-----"));
    // openssl sees the leaf as revoked with the CRL.
    let (ok, _) = env.openssl(&["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"]);
    assert!(ok);
    let (ok, out) = env.openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        "root.pem",
        "-CRLfile",
        "crl.pem",
        "a.pem",
    ]);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = env.openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        "root.pem",
        "-CRLfile",
        "crl.pem",
        "b.pem",
    ]);
    assert!(ok, "{out}");

    for r in ocsp(&env, "root.pem", "a.pem").await {
        assert!(r.contains("a.pem: revoked"), "{r}");
    }
    for r in ocsp(&env, "root.pem", "b.pem").await {
        assert!(r.contains("b.pem: good"), "{r}");
    }

    // The stored certificate shows the revocation; the revoked list has it.
    let c = env
        .read(&format!("pki/cert/{}", s(&a["serial_number"])))
        .await;
    assert_eq!(c["revocation_time"], rv["revocation_time"]);
    let listed = env
        .call(Operation::List, "pki/certs/revoked", json!({}))
        .await
        .unwrap();
    assert_eq!(listed.data.unwrap()["keys"], json!([a["serial_number"]]));

    // Revoking by certificate works too; errors are Vault's.
    let rb = env
        .write("pki/revoke", json!({ "certificate": b["certificate"] }))
        .await;
    assert_eq!(rb["state"], "revoked");
    assert_eq!(crl_serials(&crl_der(&env, "pki").await).len(), 2);
    for (body, msg) in [
        (
            json!({}),
            "The serial number or certificate to revoke must be provided.",
        ),
        (
            json!({"serial_number": "12:79"}),
            "certificate with serial 12:79 not found.",
        ),
        (
            json!({"serial_number": a["serial_number"], "certificate": a["certificate"]}),
            "Must provide either the certificate or the serial to revoke; not both.",
        ),
        (
            json!({"serial_number": root["serial_number"]}),
            &format!(
                "adding issuer (id: {}) to its own CRL is not allowed",
                s(&root["issuer_id"])
            ),
        ),
    ] {
        let e = env
            .call(Operation::Update, "pki/revoke", body)
            .await
            .unwrap_err();
        assert_eq!((status(&e), e.to_string()), (400, msg.to_string()));
    }

    // A rotation keeps the entries and raises the CRL number.
    let number = |der: &[u8]| {
        let (_, c) = parse_x509_crl(der).unwrap();
        c.crl_number().unwrap().clone()
    };
    let before = number(&crl_der(&env, "pki").await);
    let r = env
        .call(Operation::Read, "pki/crl/rotate", json!({}))
        .await
        .unwrap();
    assert_eq!(r.data.unwrap()["success"], true);
    let after_der = crl_der(&env, "pki").await;
    assert!(number(&after_der) > before);
    assert_eq!(crl_serials(&after_der).len(), 2);

    // Malformed OCSP requests: malformedRequest, HTTP 400.
    let (st, ct, body) = env
        .raw(
            Operation::Update,
            "pki/ocsp",
            json!({ "http_raw_body": "Z2FyYmFnZQ==" }),
        )
        .await;
    assert_eq!(
        (st, ct.as_str(), body),
        (
            400,
            "application/ocsp-response",
            vec![0x30, 0x03, 0x0a, 0x01, 0x01]
        )
    );
    // The OCSP and CRL paths need no token.
    let req = tresor_core::logical::Request::new(Operation::Read, "pki/crl");
    assert!(env.core.handle(req).await.unwrap().raw.is_some());
}

#[tokio::test]
async fn pki_revoking_the_lease_revokes_the_certificate() {
    let env = Env::new().await;
    env.root_ca("pki", json!({})).await;
    env.write(
        "pki/roles/leased",
        json!({ "allowed_domains": "example.com", "allow_subdomains": true, "generate_lease": true, "key_type": "ec", "max_ttl": "72h" }),
    )
    .await;
    let mut serials = Vec::new();
    let mut leases = Vec::new();
    for name in ["a", "b", "c"] {
        let r = env
            .call(
                Operation::Update,
                "pki/issue/leased",
                json!({ "common_name": format!("{name}.example.com") }),
            )
            .await
            .unwrap();
        let lease = r.lease.clone().expect("a lease");
        assert!(
            lease.lease_id.starts_with("pki/issue/leased/"),
            "{}",
            lease.lease_id
        );
        assert!(!lease.renewable);
        assert!(
            lease.duration > 72 * 3600 - 60 && lease.duration <= 72 * 3600,
            "{}",
            lease.duration
        );
        serials.push(s(&r.data.unwrap()["serial_number"]));
        leases.push(lease.lease_id);
    }
    let listed = env
        .call(
            Operation::List,
            "sys/leases/lookup/pki/issue/leased/",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(listed.data.unwrap()["keys"].as_array().unwrap().len(), 3);

    // sys/leases/revoke
    env.write("sys/leases/revoke", json!({ "lease_id": leases[0] }))
        .await;
    let c = env.read(&format!("pki/cert/{}", serials[0])).await;
    assert!(c["revocation_time"].as_i64().unwrap() > 0, "{c}");
    let (_, _, crl) = env.raw(Operation::Read, "pki/crl", json!({})).await;
    assert_eq!(crl_serials(&crl), vec![serials[0].clone()]);
    assert_eq!(
        env.read(&format!("pki/cert/{}", serials[1])).await["revocation_time"],
        0
    );

    // sys/leases/revoke-force and revoke-prefix
    env.write(&format!("sys/leases/revoke-force/{}", leases[1]), json!({}))
        .await;
    env.write("sys/leases/revoke-prefix/pki/issue/leased", json!({}))
        .await;
    for serial in &serials {
        let c = env.read(&format!("pki/cert/{serial}")).await;
        assert!(
            c["revocation_time"].as_i64().unwrap() > 0,
            "{serial} not revoked"
        );
    }
    let (_, _, crl) = env.raw(Operation::Read, "pki/crl", json!({})).await;
    let mut on_crl = crl_serials(&crl);
    on_crl.sort();
    serials.sort();
    assert_eq!(on_crl, serials);
    assert_eq!(
        status(
            &env.call(
                Operation::List,
                "sys/leases/lookup/pki/issue/leased/",
                json!({})
            )
            .await
            .unwrap_err()
        ),
        404
    );

    // Unmounting revokes what is left without failing.
    let r = env
        .call(
            Operation::Update,
            "pki/issue/leased",
            json!({ "common_name": "d.example.com" }),
        )
        .await
        .unwrap();
    assert!(r.lease.is_some());
    env.call(Operation::Delete, "sys/mounts/pki", json!({}))
        .await
        .unwrap();
}
