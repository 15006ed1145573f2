//! The `cert` auth method end to end through `Core::handle`: trusted certificate entries and
//! config (shapes and validation as OpenBao answers), and logins with a TLS client certificate
//! chain set on the request, as the server's TLS listener fills it in (DER, leaf first). The
//! certificates are made with rcgen in the tests: CAs, an intermediate, good leaves, a leaf
//! with the wrong common name, a leaf from another CA, expired leaves, a server-only leaf,
//! pinned (non-CA) client certificates.

#[path = "jwt_harness.rs"]
mod harness;

use harness::*;
use rcgen::{date_time_ymd, DnType, ExtendedKeyUsagePurpose, SanType};
use serde_json::{json, Value};

const C: &str = "auth/cert";

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn client(p: &mut rcgen::CertificateParams) {
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
}

async fn login(
    e: &Env,
    name: &str,
    chain: Vec<Vec<u8>>,
) -> Result<tresor_core::logical::Response, tresor_core::Error> {
    let body = if name.is_empty() {
        json!({})
    } else {
        json!({ "name": name })
    };
    e.with_certs(&format!("{C}/login"), body, chain).await
}

#[tokio::test]
async fn entries_and_config_shapes() {
    let e = env().await;
    let ca = Ca::new("Test CA");
    assert_eq!(
        err(e.root(List, &format!("{C}/certs"), json!({})).await).0,
        404
    );
    assert_eq!(
        err(e.root(Update, &format!("{C}/certs/web"), json!({})).await),
        (400, "failed to parse certificate".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{C}/certs/web"),
                json!({"certificate": "junk"})
            )
            .await)
        .1,
        "failed to parse certificate"
    );
    let (server_only, _) = ca.issue("srv", &["srv.example"], |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
    });
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{C}/certs/pin"),
                json!({"certificate": server_only.pem()})
            )
            .await)
        .1,
        "nonCA certificates should have TLS client authentication set as an extended key usage"
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{C}/certs/web"),
                json!({"certificate": ca.pem(), "ocsp_enabled": true})
            )
            .await)
        .0,
        400
    );
    // hvac's create_ca_certificate_role: 204.
    let r = e
        .root(
            Update,
            &format!("{C}/certs/web"),
            json!({"certificate": ca.pem(), "allowed_common_names": "a*,b", "token_policies": "p"}),
        )
        .await
        .unwrap();
    assert!(r.is_empty());
    let d = data(
        &e.root(Read, &format!("{C}/certs/WEB"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        keys(&d),
        vec![
            "allowed_common_names",
            "allowed_dns_sans",
            "allowed_email_sans",
            "allowed_metadata_extensions",
            "allowed_names",
            "allowed_organizational_units",
            "allowed_uri_sans",
            "certificate",
            "display_name",
            "ocsp_ca_certificates",
            "ocsp_enabled",
            "ocsp_fail_open",
            "ocsp_query_all_servers",
            "ocsp_servers_override",
            "required_extensions",
            "token_bound_cidrs",
            "token_explicit_max_ttl",
            "token_max_ttl",
            "token_no_default_policy",
            "token_num_uses",
            "token_period",
            "token_policies",
            "token_strictly_bind_ip",
            "token_ttl",
            "token_type",
        ]
    );
    assert_eq!(d["display_name"], "web");
    assert_eq!(d["allowed_common_names"], json!(["a*", "b"]));
    assert_eq!(d["allowed_dns_sans"], Value::Null);
    assert_eq!(d["certificate"], ca.pem());
    assert_eq!(d["token_policies"], json!(["p"]));
    assert_eq!(
        data(
            &e.root(List, &format!("{C}/certs"), json!({}))
                .await
                .unwrap()
        )["keys"],
        json!(["web"])
    );
    assert!(e
        .root(Delete, &format!("{C}/certs/web"), json!({}))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        err(e.root(Read, &format!("{C}/certs/web"), json!({})).await).0,
        404
    );
    // Config: defaults before any write; hvac's configure_tls_certificate answers 204.
    let d = data(
        &e.root(Read, &format!("{C}/config"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        d,
        json!({"disable_binding": false, "enable_identity_alias_metadata": false, "ocsp_cache_size": 0})
    );
    assert!(e
        .root(
            Update,
            &format!("{C}/config"),
            json!({"disable_binding": false})
        )
        .await
        .unwrap()
        .is_empty());
    e.root(
        Update,
        &format!("{C}/config"),
        json!({"enable_identity_alias_metadata": true}),
    )
    .await
    .unwrap();
    assert_eq!(
        data(
            &e.root(Read, &format!("{C}/config"), json!({}))
                .await
                .unwrap()
        )["enable_identity_alias_metadata"],
        true
    );
}

#[tokio::test]
async fn ca_issued_leaf_logs_in_with_metadata_and_identity() {
    let e = env().await;
    let ca = Ca::new("Test CA");
    e.root(Update, &format!("{C}/certs/web"), json!({"certificate": ca.pem(), "display_name": "web-clients", "token_policies": "web", "token_ttl": "15m"})).await.unwrap();
    let (leaf, _) = ca.issue("client-1", &["client-1.example"], |p| {
        client(p);
        p.use_authority_key_identifier_extension = true;
    });
    let r = login(&e, "", vec![leaf.der().to_vec()]).await.unwrap();
    let auth = r.auth.clone().unwrap();
    assert_eq!(auth.policies, vec!["default", "web"]);
    assert_eq!(auth.lease_duration, 900);
    let m = meta(&r);
    assert_eq!(m["cert_name"], "web");
    assert_eq!(m["common_name"], "client-1");
    assert!(
        !m["serial_number"].is_empty() && m["serial_number"].chars().all(|c| c.is_ascii_digit())
    );
    assert!(m.contains_key("subject_key_id"));
    // The CA's key identifier, as `aa:bb:...`.
    assert_eq!(
        m["authority_key_id"].len(),
        20 * 3 - 1,
        "{}",
        m["authority_key_id"]
    );
    let look = e.lookup(&auth.client_token).await;
    assert!(look["display_name"]
        .as_str()
        .unwrap()
        .contains("web-clients"));
    // The alias is the certificate's common name; its metadata only when enabled.
    let alias = e.alias_of(&r, "cert").await;
    assert_eq!(alias["name"], "client-1");
    assert!(alias["metadata"].is_null() || alias["metadata"] == json!({}));
    e.root(
        Update,
        &format!("{C}/config"),
        json!({"enable_identity_alias_metadata": true}),
    )
    .await
    .unwrap();
    let r = login(&e, "web", vec![leaf.der().to_vec()]).await.unwrap();
    assert_eq!(e.alias_of(&r, "cert").await["metadata"]["cert_name"], "web");
}

#[tokio::test]
async fn every_denial_has_a_clear_error() {
    let e = env().await;
    let ca = Ca::new("Test CA");
    let other = Ca::new("Other CA");
    e.root(Update, &format!("{C}/certs/web"), json!({
        "certificate": ca.pem(), "allowed_common_names": ["client-*"], "allowed_dns_sans": ["*.example"]
    })).await.unwrap();
    let (good, _) = ca.issue("client-1", &["client-1.example"], client);
    login(&e, "", vec![good.der().to_vec()]).await.unwrap();
    let invalid = (
        400,
        "invalid certificate or no client certificate supplied".to_string(),
    );
    let constrained = (
        400,
        "no chain matching all constraints could be found for this login certificate".to_string(),
    );

    assert_eq!(
        err(login(&e, "", vec![]).await),
        (400, "no client certificate found".into())
    );
    assert_eq!(err(login(&e, "", vec![b"garbage".to_vec()]).await).0, 400);
    // Wrong common name / wrong DNS SAN.
    let (wrong_cn, _) = ca.issue("mallory", &["m.example"], client);
    assert_eq!(
        err(login(&e, "", vec![wrong_cn.der().to_vec()]).await),
        constrained
    );
    let (wrong_dns, _) = ca.issue("client-2", &["client-2.evil.org"], client);
    assert_eq!(
        err(login(&e, "", vec![wrong_dns.der().to_vec()]).await),
        constrained
    );
    // Issued by another CA.
    let (foreign, _) = other.issue("client-1", &["client-1.example"], client);
    assert_eq!(
        err(login(&e, "", vec![foreign.der().to_vec()]).await),
        invalid
    );
    // Expired, and not yet valid.
    let (expired, _) = ca.issue("client-1", &["client-1.example"], |p| {
        client(p);
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
    });
    assert_eq!(
        err(login(&e, "", vec![expired.der().to_vec()]).await),
        (
            400,
            "failed to verify client's certificate: certificate has expired".into()
        )
    );
    let (future, _) = ca.issue("client-1", &["client-1.example"], |p| {
        client(p);
        p.not_before = date_time_ymd(2090, 1, 1);
        p.not_after = date_time_ymd(2091, 1, 1);
    });
    assert_eq!(
        err(login(&e, "", vec![future.der().to_vec()]).await),
        (
            400,
            "failed to verify client's certificate: certificate is not valid yet".into()
        )
    );
    // A server-only certificate is not a client certificate.
    let (server_only, _) = ca.issue("client-1", &["client-1.example"], |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
    });
    assert_eq!(
        err(login(&e, "", vec![server_only.der().to_vec()]).await),
        (400, "failed to verify client's certificate: certificate is not valid for client authentication (extended key usage)".into())
    );
    // A named entry that does not exist; a named entry that does.
    assert_eq!(
        err(login(&e, "testrole2", vec![good.der().to_vec()]).await),
        invalid
    );
    login(&e, "web", vec![good.der().to_vec()]).await.unwrap();
    // A client outside the entry's token_bound_cidrs: 403.
    e.root(
        Update,
        &format!("{C}/certs/web"),
        json!({"token_bound_cidrs": "10.0.0.0/8"}),
    )
    .await
    .unwrap();
    assert_eq!(
        err(login(&e, "web", vec![good.der().to_vec()]).await).0,
        403
    );
}

#[tokio::test]
async fn intermediates_pinned_certificates_and_san_constraints() {
    let e = env().await;
    let root = Ca::new("Root CA");
    let inter = root.intermediate("Issuing CA");
    e.root(Update, &format!("{C}/certs/root"), json!({"certificate": root.pem(), "allowed_email_sans": "*@example.com", "allowed_uri_sans": "spiffe://example.com/*", "allowed_organizational_units": "eng"})).await.unwrap();
    let sans = |p: &mut rcgen::CertificateParams| {
        client(p);
        p.subject_alt_names = vec![
            SanType::Rfc822Name("dev@example.com".try_into().unwrap()),
            SanType::URI("spiffe://example.com/ns/apps/sa/web".try_into().unwrap()),
        ];
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "eng");
    };
    let (leaf, _) = inter.issue("dev", &[], sans);
    // The leaf chains to the root only through the intermediate the client sends.
    login(&e, "", vec![leaf.der().to_vec(), inter.der()])
        .await
        .unwrap();
    assert_eq!(
        err(login(&e, "", vec![leaf.der().to_vec()]).await).1,
        "invalid certificate or no client certificate supplied"
    );
    let (no_ou, _) = inter.issue("dev", &[], |p| {
        client(p);
        p.subject_alt_names = vec![
            SanType::Rfc822Name("dev@example.com".try_into().unwrap()),
            SanType::URI("spiffe://example.com/x".try_into().unwrap()),
        ];
    });
    assert_eq!(
        err(login(&e, "", vec![no_ou.der().to_vec(), inter.der()]).await).1,
        "no chain matching all constraints could be found for this login certificate"
    );
    let (bad_mail, _) = inter.issue("dev", &[], |p| {
        sans(p);
        p.subject_alt_names[0] = SanType::Rfc822Name("dev@evil.org".try_into().unwrap());
    });
    assert_eq!(
        err(login(&e, "", vec![bad_mail.der().to_vec(), inter.der()]).await).1,
        "no chain matching all constraints could be found for this login certificate"
    );
    // An entry trusting the intermediate itself needs no chain from the client.
    e.root(
        Update,
        &format!("{C}/certs/issuing"),
        json!({"certificate": inter.pem()}),
    )
    .await
    .unwrap();
    let r = login(&e, "issuing", vec![no_ou.der().to_vec()])
        .await
        .unwrap();
    assert_eq!(meta(&r)["cert_name"], "issuing");

    // A pinned client certificate (non-CA, self-signed like hvac's client-cert.pem).
    let own = Ca::new("unused");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "client");
    client(&mut p);
    let pinned = p.self_signed(&key).unwrap();
    e.root(
        Update,
        &format!("{C}/certs/testrole"),
        json!({"certificate": pinned.pem()}),
    )
    .await
    .unwrap();
    let r = login(&e, "testrole", vec![pinned.der().to_vec()])
        .await
        .unwrap();
    assert_eq!(e.alias_of(&r, "cert").await["name"], "client");
    let r = login(&e, "", vec![pinned.der().to_vec()]).await.unwrap();
    assert_eq!(meta(&r)["cert_name"], "testrole");
    // Another certificate with the same name and key is not the pinned one.
    let mut p2 = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
    p2.distinguished_name.push(DnType::CommonName, "client");
    client(&mut p2);
    let twin = p2.self_signed(&key).unwrap();
    assert_eq!(
        err(login(&e, "testrole", vec![twin.der().to_vec()]).await).1,
        "invalid certificate or no client certificate supplied"
    );
    // A pinned certificate past its validity period.
    let mut p3 = rcgen::CertificateParams::new(vec!["old".to_string()]).unwrap();
    p3.distinguished_name.push(DnType::CommonName, "old");
    client(&mut p3);
    p3.not_before = date_time_ymd(2019, 1, 1);
    p3.not_after = date_time_ymd(2020, 1, 1);
    let old = p3.self_signed(&key).unwrap();
    e.root(
        Update,
        &format!("{C}/certs/old"),
        json!({"certificate": old.pem()}),
    )
    .await
    .unwrap();
    let (st, msg) = err(login(&e, "old", vec![old.der().to_vec()]).await);
    assert_eq!(st, 400);
    assert!(
        msg.starts_with("failed to verify client's certificate: certificate is not valid now"),
        "{msg}"
    );
    let _ = own;
}
