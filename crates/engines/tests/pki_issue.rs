//! The PKI engine end to end through a real core: roots, intermediates, issuing and signing
//! under role constraints, imports and issuer management. Every chain is checked by an
//! independent verifier (`openssl verify`) and parsed with x509-parser.

mod pki_common;

use pki_common::{s, status, Env};
use serde_json::{json, Value};
use std::time::Instant;
use tresor_core::logical::Operation;
use x509_parser::prelude::*;

fn parse_pem(pem: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    p.contents
}

fn sans(der: &[u8]) -> Vec<String> {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    let mut out = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => out.push(format!("DNS:{d}")),
                GeneralName::RFC822Name(d) => out.push(format!("email:{d}")),
                GeneralName::URI(d) => out.push(format!("URI:{d}")),
                GeneralName::IPAddress(b) => out.push(format!("IP:{b:?}")),
                _ => {}
            }
        }
    }
    out
}

#[tokio::test]
async fn pki_root_and_issued_leaf_verify_with_openssl() {
    let env = Env::new().await;
    let root = env.root_ca("pki", json!({})).await;
    env.file("root.pem", s(&root["certificate"]));
    env.write(
        "pki/roles/web",
        json!({ "allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "max_ttl": "72h" }),
    )
    .await;
    let r = env
        .write(
            "pki/issue/web",
            json!({ "common_name": "a.example.com", "alt_names": "b.example.com", "ip_sans": "10.0.0.1", "ttl": "1h" }),
        )
        .await;
    for k in [
        "certificate",
        "issuing_ca",
        "ca_chain",
        "private_key",
        "private_key_type",
        "serial_number",
        "expiration",
    ] {
        assert!(!r[k].is_null(), "{k} missing");
    }
    assert_eq!(r["private_key_type"], "ec");
    assert_eq!(r["issuing_ca"], root["certificate"]);
    env.file("leaf.pem", s(&r["certificate"]));
    let (ok, out) = env.openssl(&["verify", "-CAfile", "root.pem", "leaf.pem"]);
    assert!(ok, "{out}");

    let der = parse_pem(&s(&r["certificate"]));
    let (_, c) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        c.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "a.example.com"
    );
    assert!(!c.is_ca());
    let ttl = c.validity().not_after.timestamp()
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
    assert!((3500..=3700).contains(&ttl), "ttl {ttl}");
    assert_eq!(r["expiration"], json!(c.validity().not_after.timestamp()));
    assert_eq!(r["serial_number"], json!(c.raw_serial_as_string()));
    let names = sans(&der);
    assert!(
        names.contains(&"DNS:a.example.com".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"DNS:b.example.com".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"IP:[10, 0, 0, 1]".to_string()), "{names:?}");
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let root_der = parse_pem(&s(&root["certificate"]));
    let (_, rc) = X509Certificate::from_der(&root_der).unwrap();
    assert!(rc.is_ca());
    let skid = rc
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .unwrap();
    let akid = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(skid, akid);
    // The private key matches the certificate.
    env.file("leaf.key", s(&r["private_key"]));
    let (ok, k) = env.openssl(&["pkey", "-in", "leaf.key", "-pubout"]);
    assert!(ok, "{k}");
    let (_, p) = env.openssl(&["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
    assert_eq!(k, p);
    // AIA and CRL distribution points come from config/urls.
    let (_, text) = env.openssl(&["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(
        text.contains("CA Issuers - URI:http://127.0.0.1:8200/v1/pki/ca"),
        "{text}"
    );
    assert!(
        text.contains("OCSP - URI:http://127.0.0.1:8200/v1/pki/ocsp"),
        "{text}"
    );
    assert!(
        text.contains("URI:http://127.0.0.1:8200/v1/pki/crl"),
        "{text}"
    );

    // The store has it; the fetch paths answer.
    let listed = env
        .call(Operation::List, "pki/certs", json!({}))
        .await
        .unwrap();
    let keys = listed.data.unwrap()["keys"].clone();
    assert!(keys.as_array().unwrap().contains(&r["serial_number"]));
    let fetched = env
        .read(&format!(
            "pki/cert/{}",
            s(&r["serial_number"]).replace(':', "-")
        ))
        .await;
    assert_eq!(fetched["certificate"], r["certificate"]);
    assert_eq!(fetched["revocation_time"], 0);
    let (st, ct, body) = env.raw(Operation::Read, "pki/ca", json!({})).await;
    assert_eq!((st, ct.as_str()), (200, "application/pkix-cert"));
    assert_eq!(body, root_der);
    let (_, ct, body) = env.raw(Operation::Read, "pki/ca/pem", json!({})).await;
    assert_eq!(ct, "application/pem-certificate-chain");
    assert_eq!(
        String::from_utf8(body).unwrap().trim(),
        s(&root["certificate"])
    );
    let (_, _, chain) = env.raw(Operation::Read, "pki/ca_chain", json!({})).await;
    assert!(String::from_utf8(chain)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
}

#[tokio::test]
async fn pki_rsa_root_exported_keys_and_formats() {
    let env = Env::new().await;
    let r = env
        .write(
            "pki/root/generate/exported",
            json!({ "common_name": "rsa.example.com", "key_type": "rsa", "key_bits": 2048, "ttl": "48h" }),
        )
        .await;
    assert_eq!(r["private_key_type"], "rsa");
    let key = s(&r["private_key"]);
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");
    env.file("ca.pem", s(&r["certificate"]));
    env.file("ca.key", &key);
    let (ok, out) = env.openssl(&["rsa", "-check", "-noout", "-in", "ca.key"]);
    assert!(ok, "{out}");
    let (_, a) = env.openssl(&["pkey", "-in", "ca.key", "-pubout"]);
    let (_, b) = env.openssl(&["x509", "-in", "ca.pem", "-noout", "-pubkey"]);
    assert_eq!(a, b);
    let (_, text) = env.openssl(&["x509", "-in", "ca.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    assert!(text.contains("DNS:rsa.example.com"), "{text}");

    // EC keys come as SEC1 with the curve named; pkcs8 on request; ed25519 as PKCS#8.
    env.mount("ec").await;
    let r = env
        .write(
            "ec/root/generate/exported",
            json!({ "common_name": "ec", "key_type": "ec", "key_bits": 384 }),
        )
        .await;
    env.file("ec.key", s(&r["private_key"]));
    assert!(s(&r["private_key"]).starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let (ok, out) = env.openssl(&["ec", "-check", "-noout", "-in", "ec.key"]);
    assert!(ok, "{out}");
    env.write(
        "ec/roles/r",
        json!({ "allow_any_name": true, "key_type": "ed25519" }),
    )
    .await;
    let r = env
        .write(
            "ec/issue/r",
            json!({ "common_name": "ed.example.com", "ttl": "1h", "private_key_format": "pkcs8" }),
        )
        .await;
    assert!(s(&r["private_key"]).starts_with("-----BEGIN PRIVATE KEY-----"));
    env.file("ed.key", s(&r["private_key"]));
    env.file("ed.pem", s(&r["certificate"]));
    env.file("ec.pem", s(&r["issuing_ca"]));
    let (ok, out) = env.openssl(&["verify", "-CAfile", "ec.pem", "ed.pem"]);
    assert!(ok, "{out}");
    let (_, a) = env.openssl(&["pkey", "-in", "ed.key", "-pubout"]);
    let (_, b) = env.openssl(&["x509", "-in", "ed.pem", "-noout", "-pubkey"]);
    assert_eq!(a, b);

    // format=der answers base64 DER.
    let r = env
        .write(
            "ec/issue/r",
            json!({ "common_name": "der.example.com", "ttl": "1h", "format": "der" }),
        )
        .await;
    let der = base64_decode(&s(&r["certificate"]));
    assert!(X509Certificate::from_der(&der).is_ok());

    // Bad key parameters are 400s with Vault's words.
    for (body, msg) in [
        (
            json!({"common_name": "x", "key_type": "rsa", "key_bits": 1024}),
            "RSA keys < 2048 bits are unsafe and not supported: got 1024",
        ),
        (
            json!({"common_name": "x", "key_type": "ec", "key_bits": 200}),
            "unsupported bit length for EC key: 200",
        ),
        (
            json!({"common_name": "x", "key_type": "foo"}),
            "unknown key type foo",
        ),
    ] {
        let e = env
            .call(Operation::Update, "ec/root/generate/internal", body)
            .await
            .unwrap_err();
        assert_eq!(status(&e), 400);
        assert_eq!(e.to_string(), msg);
    }
    let e = env
        .call(
            Operation::Update,
            "ec/root/generate/wrong",
            json!({"common_name": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[tokio::test]
async fn pki_role_constraints_reject_every_disallowed_name() {
    let env = Env::new().await;
    env.root_ca("pki", json!({})).await;
    env.write(
        "pki/roles/strict",
        json!({
            "allowed_domains": ["example.com", "*.glob.org"],
            "allow_subdomains": true,
            "allow_glob_domains": true,
            "allow_ip_sans": false,
            "allow_localhost": false,
            "allow_wildcard_certificates": false,
            "key_type": "ec",
            "ttl": "1h",
        }),
    )
    .await;
    let rejected = [
        (json!({"common_name": "example.com"}), "common name example.com not allowed by this role"),
        (json!({"common_name": "evil.com"}), "common name evil.com not allowed by this role"),
        (json!({"common_name": "example.com.evil.com"}), "common name example.com.evil.com not allowed by this role"),
        (json!({"common_name": "x.*.example.com"}), "common name x.*.example.com not allowed by this role"),
        (json!({"common_name": "*.example.com"}), "common name *.example.com not allowed by this role"),
        (json!({"common_name": "localhost"}), "common name localhost not allowed by this role"),
        (json!({"common_name": "A.EXAMPLE.COM"}), "common name A.EXAMPLE.COM not allowed by this role"),
        (json!({"common_name": "bad_host.example.com"}), "common name bad_host.example.com not allowed by this role"),
        (json!({"common_name": "me@evil.com"}), "common name me@evil.com not allowed by this role"),
        (json!({"common_name": "glob.org"}), "common name glob.org not allowed by this role"),
        (json!({"common_name": "a.example.com", "alt_names": "evil.com"}), "subject alternate name evil.com not allowed by this role"),
        (json!({"common_name": "a.example.com", "alt_names": "me@evil.com"}), "email address me@evil.com not allowed by this role"),
        (json!({"common_name": "a.example.com", "ip_sans": "10.0.0.1"}), "IP Subject Alternative Names are not allowed in this role, but was provided via the API"),
        (json!({"common_name": "a.example.com", "uri_sans": "spiffe://x/y"}), "URI Subject Alternative Names are not allowed in this role, but were provided via the API"),
        (json!({"common_name": "a.example.com", "other_sans": "1.2.3.4;UTF8:x"}), "other SAN OID 1.2.3.4 not allowed by this role"),
        (json!({}), "the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false"),
    ];
    for (body, msg) in rejected {
        let e = env
            .call(Operation::Update, "pki/issue/strict", body.clone())
            .await
            .unwrap_err();
        assert_eq!(status(&e), 400, "{body}: {e}");
        assert_eq!(e.to_string(), msg, "{body}");
    }
    for ok in [
        "a.example.com",
        "a.b.example.com",
        "x.glob.org",
        "me@a.example.com",
    ] {
        env.write("pki/issue/strict", json!({ "common_name": ok }))
            .await;
    }
    let e = env
        .call(
            Operation::Update,
            "pki/issue/nope",
            json!({"common_name": "a.example.com"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), e.to_string().as_str()),
        (400, "unknown role: nope")
    );

    // Bare domains, URI globs, other SANs and IPs when the role allows them.
    env.write(
        "pki/roles/loose",
        json!({
            "allowed_domains": "example.com",
            "allow_bare_domains": true,
            "allowed_uri_sans": "spiffe://example.com/*",
            "allowed_other_sans": "1.3.6.1.4.1.311.20.2.3;UTF8:*@example.com",
            "key_type": "ec",
        }),
    )
    .await;
    let r = env
        .write(
            "pki/issue/loose",
            json!({
                "common_name": "example.com",
                "uri_sans": "spiffe://example.com/svc",
                "other_sans": "1.3.6.1.4.1.311.20.2.3;UTF8:me@example.com",
                "ip_sans": "192.0.2.1",
                "ttl": "1h",
            }),
        )
        .await;
    let names = sans(&parse_pem(&s(&r["certificate"])));
    assert!(names.contains(&"DNS:example.com".into()), "{names:?}");
    assert!(
        names.contains(&"URI:spiffe://example.com/svc".into()),
        "{names:?}"
    );
    let e = env
        .call(
            Operation::Update,
            "pki/issue/loose",
            json!({"common_name": "example.com", "uri_sans": "spiffe://evil.com/svc"}),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    assert_eq!(
        e.to_string(),
        "URI Subject Alternative Names were provided via the API which are not valid for this role"
    );
    // The role's max_ttl caps the TTL (with Vault's warning), and the CA's expiry is a hard limit.
    env.write(
        "pki/roles/short",
        json!({ "allow_any_name": true, "key_type": "ec", "max_ttl": "2h" }),
    )
    .await;
    let r = env
        .call(
            Operation::Update,
            "pki/issue/short",
            json!({"common_name": "t.example.com", "ttl": "5h"}),
        )
        .await
        .unwrap();
    assert_eq!(
        r.warnings,
        vec![
            "TTL \"5h0m0s\" is longer than permitted maxTTL \"2h0m0s\", so maxTTL is being used"
                .to_string()
        ]
    );
    let e = env
        .call(
            Operation::Update,
            "pki/issue/loose",
            json!({"common_name": "example.com", "ttl": "100000h"}),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    assert!(
        e.to_string()
            .starts_with("cannot satisfy request, as TTL would result in notAfter of"),
        "{e}"
    );
}

#[tokio::test]
async fn pki_role_crud_matches_vault_shapes() {
    let env = Env::new().await;
    let e = env
        .call(Operation::Read, "pki/roles/x", json!({}))
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let e = env
        .call(Operation::List, "pki/roles", json!({}))
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let r = env
        .call(
            Operation::Update,
            "pki/roles/r1",
            json!({"allowed_domains": "a.com,b.com", "generate_lease": true, "max_ttl": "72h"}),
        )
        .await
        .unwrap();
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    let d = env.read("pki/roles/r1").await;
    assert_eq!(d["allowed_domains"], json!(["a.com", "b.com"]));
    assert_eq!(d["max_ttl"], 259200);
    assert_eq!(d["key_type"], "rsa");
    assert_eq!(d["key_bits"], 2048);
    assert_eq!(
        d["key_usage"],
        json!(["DigitalSignature", "KeyAgreement", "KeyEncipherment"])
    );
    assert_eq!(d["allow_localhost"], true);
    assert_eq!(d["issuer_ref"], "default");
    assert_eq!(d.as_object().unwrap().len(), 52);
    // A POST replaces the role; PATCH merges.
    env.write("pki/roles/r1", json!({"allow_any_name": true}))
        .await;
    let d = env.read("pki/roles/r1").await;
    assert_eq!(d["allowed_domains"], json!([]));
    env.call(Operation::Patch, "pki/roles/r1", json!({"ttl": "1h"}))
        .await
        .unwrap();
    let d = env.read("pki/roles/r1").await;
    assert_eq!(
        (d["allow_any_name"].clone(), d["ttl"].clone()),
        (json!(true), json!(3600))
    );
    let e = env
        .call(
            Operation::Update,
            "pki/roles/r2",
            json!({"ttl": "2h", "max_ttl": "1h"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"ttl\" value must be less than \"max_ttl\" value"
    );
    let keys = env
        .call(Operation::List, "pki/roles", json!({}))
        .await
        .unwrap();
    assert_eq!(keys.data.unwrap()["keys"], json!(["r1"]));
    env.call(Operation::Delete, "pki/roles/r1", json!({}))
        .await
        .unwrap();
    assert!(env
        .call(Operation::Read, "pki/roles/r1", json!({}))
        .await
        .is_err());
}

#[tokio::test]
async fn pki_intermediate_chain_sign_csr_and_verbatim() {
    let env = Env::new().await;
    let root = env.root_ca("pki", json!({})).await;
    env.file("root.pem", s(&root["certificate"]));
    env.mount("int").await;
    let gen = env
        .write(
            "int/intermediate/generate/internal",
            json!({ "common_name": "Tresor Intermediate", "key_type": "ec" }),
        )
        .await;
    assert!(gen["private_key"].is_null());
    let csr = s(&gen["csr"]);
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let signed = env
        .write(
            "pki/root/sign-intermediate",
            json!({ "csr": csr, "common_name": "Tresor Intermediate", "ttl": "4380h" }),
        )
        .await;
    assert_eq!(signed["ca_chain"].as_array().unwrap().len(), 2);
    env.file("int.pem", s(&signed["certificate"]));
    let (ok, out) = env.openssl(&["verify", "-CAfile", "root.pem", "int.pem"]);
    assert!(ok, "{out}");
    let set = env
        .write(
            "int/intermediate/set-signed",
            json!({ "certificate": signed["certificate"] }),
        )
        .await;
    let issuer_id = s(&set["imported_issuers"][0]);
    assert_eq!(set["mapping"][&issuer_id], gen["key_id"]);
    // Importing again reports it as existing.
    let again = env
        .write(
            "int/intermediate/set-signed",
            json!({ "certificate": signed["certificate"] }),
        )
        .await;
    assert_eq!(again["existing_issuers"], json!([issuer_id]));

    env.write(
        "int/roles/svc",
        json!({ "allowed_domains": "svc.example.com", "allow_subdomains": true, "key_type": "ec" }),
    )
    .await;
    let leaf = env
        .write(
            "int/issue/svc",
            json!({ "common_name": "api.svc.example.com", "ttl": "1h" }),
        )
        .await;
    env.file("leaf.pem", s(&leaf["certificate"]));
    let (ok, out) = env.openssl(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "int.pem",
        "leaf.pem",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = env.openssl(&["verify", "-CAfile", "root.pem", "leaf.pem"]);
    assert!(!ok, "the leaf must need the intermediate: {out}");

    // Importing the root into the intermediate's mount completes its chain (Vault's
    // `issuers/import/cert`, which takes certificates only).
    let e = env
        .call(
            Operation::Update,
            "int/issuers/import/cert",
            json!({ "pem_bundle": format!("{}\n{}", root["certificate"].as_str().unwrap(), rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem()) }),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("use /issuers/import/bundle"), "{e}");
    let imported = env
        .write(
            "int/issuers/import/cert",
            json!({ "pem_bundle": root["certificate"] }),
        )
        .await;
    assert_eq!(imported["imported_issuers"].as_array().unwrap().len(), 1);
    let leaf2 = env
        .write(
            "int/issue/svc",
            json!({ "common_name": "b.svc.example.com", "ttl": "1h" }),
        )
        .await;
    assert_eq!(leaf2["ca_chain"].as_array().unwrap().len(), 2);
    assert_eq!(leaf2["ca_chain"][1], root["certificate"]);

    // sign/:role with an openssl CSR: the CSR's CN and SANs are used and checked.
    let (ok, out) = env.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "csr.key",
        "-subj",
        "/CN=web.svc.example.com",
        "-addext",
        "subjectAltName=DNS:web.svc.example.com,DNS:www.svc.example.com",
        "-out",
        "req.csr",
    ]);
    assert!(ok, "{out}");
    let csr_pem = std::fs::read_to_string(env.path("req.csr")).unwrap();
    let r = env
        .write("int/sign/svc", json!({ "csr": csr_pem, "ttl": "1h" }))
        .await;
    assert!(r["private_key"].is_null());
    env.file("signed.pem", s(&r["certificate"]));
    let (ok, out) = env.openssl(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "int.pem",
        "signed.pem",
    ]);
    assert!(ok, "{out}");
    let names = sans(&parse_pem(&s(&r["certificate"])));
    assert!(
        names.contains(&"DNS:www.svc.example.com".into()),
        "{names:?}"
    );
    // A CSR for a name the role does not allow is refused.
    env.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "bad.key",
        "-subj",
        "/CN=evil.com",
        "-out",
        "bad.csr",
    ]);
    let bad = std::fs::read_to_string(env.path("bad.csr")).unwrap();
    let e = env
        .call(
            Operation::Update,
            "int/sign/svc",
            json!({"csr": bad.clone()}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), e.to_string()),
        (
            400,
            "common name evil.com not allowed by this role".to_string()
        )
    );
    // A CSR of the wrong key type is refused.
    env.write(
        "int/roles/rsaonly",
        json!({ "allow_any_name": true, "key_type": "rsa" }),
    )
    .await;
    let e = env
        .call(
            Operation::Update,
            "int/sign/rsaonly",
            json!({"csr": csr_pem.clone()}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "role requires keys of type rsa");
    // sign-verbatim keeps the CSR's subject and names, whatever the role's names.
    let r = env
        .write("int/sign-verbatim", json!({"csr": bad, "ttl": "1h"}))
        .await;
    env.file("verbatim.pem", s(&r["certificate"]));
    let (ok, out) = env.openssl(&[
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "int.pem",
        "verbatim.pem",
    ]);
    assert!(ok, "{out}");
    let (_, subj) = env.openssl(&["x509", "-in", "verbatim.pem", "-noout", "-subject"]);
    assert!(
        subj.contains("CN=evil.com") || subj.contains("CN = evil.com"),
        "{subj}"
    );
    // A tampered CSR is refused.
    let mut tampered = csr_pem.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let e = env
        .call(
            Operation::Update,
            "int/sign-verbatim",
            json!({"csr": String::from_utf8(tampered).unwrap()}),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
}

#[tokio::test]
async fn pki_import_ca_bundle_and_sign_self_issued() {
    let env = Env::new().await;
    let root = env.root_ca("pki", json!({})).await;
    env.file("root.pem", s(&root["certificate"]));
    let (ok, out) = env.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "other.key",
        "-subj",
        "/O=Other CA",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        "other.pem",
    ]);
    assert!(ok, "{out}");
    let key = std::fs::read_to_string(env.path("other.key")).unwrap();
    let cert = std::fs::read_to_string(env.path("other.pem")).unwrap();

    // sign-self-issued: the same CA, now issued by our root.
    let r = env
        .write(
            "pki/root/sign-self-issued",
            json!({ "certificate": cert.clone() }),
        )
        .await;
    env.file("cross.pem", s(&r["certificate"]));
    let (ok, out) = env.openssl(&["verify", "-CAfile", "root.pem", "cross.pem"]);
    assert!(ok, "{out}");
    let (_, subj) = env.openssl(&["x509", "-in", "cross.pem", "-noout", "-subject", "-issuer"]);
    assert!(
        subj.contains("Other CA") && subj.contains("Tresor Test Root"),
        "{subj}"
    );
    let e = env
        .call(
            Operation::Update,
            "pki/root/sign-self-issued",
            json!({"certificate": r["certificate"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "given certificate is not self-issued");
    let e = env
        .call(
            Operation::Update,
            "pki/root/sign-self-issued",
            json!({"certificate": "junk"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "certificate could not be PEM-decoded");

    // config/ca: key and certificate; issuing with the imported CA.
    env.mount("imp").await;
    let e = env
        .call(
            Operation::Update,
            "imp/config/ca",
            json!({"pem_bundle": "junk"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "provided data for import was too short; perhaps a path was passed to the API rather than the contents of a PEM file");
    let r = env
        .write(
            "imp/config/ca",
            json!({ "pem_bundle": format!("{key}{cert}") }),
        )
        .await;
    assert_eq!(r["imported_issuers"].as_array().unwrap().len(), 1);
    assert_eq!(r["imported_keys"].as_array().unwrap().len(), 1);
    let again = env
        .write(
            "imp/issuers/import/bundle",
            json!({ "pem_bundle": format!("{key}{cert}") }),
        )
        .await;
    assert!(again["imported_issuers"].is_null());
    assert_eq!(again["existing_issuers"], r["imported_issuers"]);
    env.write(
        "imp/roles/any",
        json!({ "allow_any_name": true, "key_type": "ec" }),
    )
    .await;
    let leaf = env
        .write(
            "imp/issue/any",
            json!({ "common_name": "imported.example.com", "ttl": "1h" }),
        )
        .await;
    env.file("leaf.pem", s(&leaf["certificate"]));
    let (ok, out) = env.openssl(&["verify", "-CAfile", "other.pem", "leaf.pem"]);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn pki_issuers_default_update_revoke_delete() {
    let env = Env::new().await;
    // No issuer yet: Vault's answers.
    let (st, _, body) = env.raw(Operation::Read, "pki/ca/pem", json!({})).await;
    assert_eq!((st, body.len()), (204, 0));
    let e = env
        .call(Operation::Read, "pki/issuer/default", json!({}))
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    env.write(
        "pki/roles/r",
        json!({ "allow_any_name": true, "key_type": "ec" }),
    )
    .await;
    let e = env
        .call(
            Operation::Update,
            "pki/issue/r",
            json!({"common_name": "a.example.com"}),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    assert!(
        e.to_string().contains("could not fetch the CA certificate"),
        "{e}"
    );

    let first = env.root_ca("pki", json!({})).await;
    let second = env
        .write(
            "pki/root/generate/internal",
            json!({ "common_name": "Second", "key_type": "ec", "issuer_name": "second" }),
        )
        .await;
    let listed = env
        .call(Operation::List, "pki/issuers", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);
    assert_eq!(
        listed["key_info"][s(&first["issuer_id"])]["is_default"],
        true
    );
    assert_eq!(
        listed["key_info"][s(&second["issuer_id"])]["issuer_name"],
        "second"
    );
    let d = env.read("pki/issuer/second").await;
    assert_eq!(d["issuer_id"], second["issuer_id"]);
    assert_eq!(
        d["usage"],
        "crl-signing,issuing-certificates,ocsp-signing,read-only"
    );
    // An empty update keeps usage and resets the name, as Vault's does.
    let u = env.write("pki/issuer/second", json!({})).await;
    assert_eq!(u["usage"], d["usage"]);
    env.write(
        &format!("pki/issuer/{}", s(&second["issuer_id"])),
        json!({"issuer_name": "renamed"}),
    )
    .await;
    assert_eq!(
        env.read("pki/issuer/renamed").await["issuer_id"],
        second["issuer_id"]
    );
    let e = env
        .call(
            Operation::Update,
            "pki/issuer/renamed",
            json!({"issuer_name": "bad name!"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "issuer name contained invalid characters");
    // Issue under a chosen default.
    env.write("pki/config/issuers", json!({ "default": "renamed" }))
        .await;
    let leaf = env
        .write(
            "pki/issue/r",
            json!({"common_name": "x.example.com", "ttl": "1h"}),
        )
        .await;
    assert_eq!(leaf["issuing_ca"], second["certificate"]);
    let e = env
        .call(
            Operation::Update,
            "pki/config/issuers",
            json!({"default": "nothere"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Error resolving issuer reference: unable to find PKI issuer for reference: nothere"
    );
    // Revoking an issuer marks it and stops it issuing.
    let rv = env.write("pki/issuer/renamed/revoke", json!({})).await;
    assert_eq!(rv["revoked"], true);
    assert_eq!(rv["usage"], "crl-signing,ocsp-signing,read-only");
    let e = env
        .call(
            Operation::Update,
            "pki/issue/r",
            json!({"common_name": "x.example.com"}),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    // Deleting: a later read is a 400 (Vault answers 500).
    env.call(Operation::Delete, "pki/issuer/renamed", json!({}))
        .await
        .unwrap();
    let e = env
        .call(Operation::Read, "pki/issuer/renamed", json!({}))
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    // DELETE root removes everything.
    let r = env
        .call(Operation::Delete, "pki/root", json!({}))
        .await
        .unwrap();
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(
        status(
            &env.call(Operation::List, "pki/issuers", json!({}))
                .await
                .unwrap_err()
        ),
        404
    );
    assert_eq!(
        status(
            &env.call(Operation::List, "pki/keys", json!({}))
                .await
                .unwrap_err()
        ),
        404
    );
}

/// RSA key generation runs on a blocking thread: on a single-threaded runtime, EC issuance
/// keeps going while an RSA-4096 key is being generated.
#[tokio::test(flavor = "current_thread")]
async fn pki_rsa_generation_does_not_block_and_ec_is_fast() {
    let env = std::sync::Arc::new(Env::new().await);
    env.root_ca("pki", json!({})).await;
    env.write(
        "pki/roles/ec",
        json!({ "allow_any_name": true, "key_type": "ec" }),
    )
    .await;
    env.write(
        "pki/roles/rsa",
        json!({ "allow_any_name": true, "key_type": "rsa", "key_bits": 4096 }),
    )
    .await;
    // Warm up (first use loads and caches the issuer).
    env.write(
        "pki/issue/ec",
        json!({"common_name": "warm.example.com", "ttl": "1h"}),
    )
    .await;

    let start = Instant::now();
    let n = 50;
    for i in 0..n {
        env.write(
            "pki/issue/ec",
            json!({"common_name": format!("h{i}.example.com"), "ttl": "1h"}),
        )
        .await;
    }
    let per = start.elapsed() / n;
    eprintln!("EC P-256 issuance: {per:?} per certificate");
    assert!(
        per.as_millis() < 200,
        "EC issuance took {per:?} per certificate"
    );

    let e2 = env.clone();
    let rsa = tokio::spawn(async move {
        e2.write(
            "pki/issue/rsa",
            json!({"common_name": "rsa.example.com", "ttl": "1h"}),
        )
        .await
    });
    let mut during = 0;
    while !rsa.is_finished() && during < 500 {
        env.write(
            "pki/issue/ec",
            json!({"common_name": "during.example.com", "ttl": "1h"}),
        )
        .await;
        during += 1;
    }
    let r: Value = rsa.await.unwrap();
    eprintln!("{during} EC certificates issued while an RSA-4096 key was generated");
    assert_eq!(r["private_key_type"], "rsa");
    assert!(
        during >= 5,
        "only {during} EC certificates were issued while RSA-4096 was generated"
    );
}

/// Every key type `issue` generates: the answered private key (SEC1/PKCS#1 by default, PKCS#8
/// on request, base64 DER with `format=der`) is the key whose public half the certificate
/// carries, and the certificate verifies under the root.
#[tokio::test]
async fn issued_private_keys_match_their_certificates_for_every_key_type() {
    let env = Env::new().await;
    let root = env.root_ca("pki", json!({})).await;
    env.file("root.pem", s(&root["certificate"]));
    for (key_type, bits, label) in [
        ("ec", 256, "EC PRIVATE KEY"),
        ("ec", 384, "EC PRIVATE KEY"),
        ("ec", 521, "EC PRIVATE KEY"),
        ("ed25519", 0, "PRIVATE KEY"),
        ("rsa", 2048, "RSA PRIVATE KEY"),
    ] {
        let role = format!("pki/roles/{key_type}{bits}");
        env.write(
            &role,
            json!({ "allow_any_name": true, "key_type": key_type, "key_bits": bits }),
        )
        .await;
        let issue = role.replace("/roles/", "/issue/");
        for (format, pk_format) in [("pem", ""), ("pem", "pkcs8"), ("der", "")] {
            let r = env
                .write(
                    &issue,
                    json!({ "common_name": "k.example.com", "ttl": "1h", "format": format, "private_key_format": pk_format }),
                )
                .await;
            let case = format!("{key_type}-{bits} {format} {pk_format:?}");
            assert_eq!(r["private_key_type"], key_type, "{case}");
            let (key_pem, cert_pem) = if format == "der" {
                let pem = |label: &str, b64: &str| {
                    let body: Vec<String> = b64
                        .as_bytes()
                        .chunks(64)
                        .map(|c| String::from_utf8(c.to_vec()).unwrap())
                        .collect();
                    format!(
                        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                        body.join("\n")
                    )
                };
                (
                    pem(label, &s(&r["private_key"])),
                    pem("CERTIFICATE", &s(&r["certificate"])),
                )
            } else {
                (s(&r["private_key"]), s(&r["certificate"]))
            };
            let want = if pk_format == "pkcs8" {
                "PRIVATE KEY"
            } else {
                label
            };
            assert!(
                key_pem.starts_with(&format!("-----BEGIN {want}-----")),
                "{case}: {key_pem}"
            );
            env.file("k.key", &key_pem);
            env.file("k.pem", &cert_pem);
            let (ok, out) = env.openssl(&["verify", "-CAfile", "root.pem", "k.pem"]);
            assert!(ok, "{case}: {out}");
            let (ok, a) = env.openssl(&["pkey", "-in", "k.key", "-pubout"]);
            assert!(ok, "{case}: {a}");
            let (_, b) = env.openssl(&["x509", "-in", "k.pem", "-noout", "-pubkey"]);
            assert_eq!(a, b, "{case}");
        }
    }
}

/// Issuing reads its role through a cache: a role's update or deletion takes effect on the
/// very next request.
#[tokio::test]
async fn role_changes_apply_to_the_next_issue() {
    let env = Env::new().await;
    env.root_ca("pki", json!({})).await;
    env.write(
        "pki/roles/r",
        json!({ "allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec" }),
    )
    .await;
    let issue = |cn: &'static str| {
        let env = &env;
        async move {
            env.call(
                Operation::Update,
                "pki/issue/r",
                json!({ "common_name": cn, "ttl": "1h" }),
            )
            .await
        }
    };
    assert!(issue("a.example.com").await.is_ok());
    let e = issue("a.example.org").await.unwrap_err();
    assert_eq!(status(&e), 400, "{e}");
    // Narrow the role: the name it allowed a moment ago is refused now.
    env.write(
        "pki/roles/r",
        json!({ "allowed_domains": "example.org", "allow_subdomains": true, "key_type": "ec" }),
    )
    .await;
    assert_eq!(status(&issue("a.example.com").await.unwrap_err()), 400);
    assert!(issue("a.example.org").await.is_ok());
    // Patch it (key type) and the next certificate follows.
    env.call(
        Operation::Patch,
        "pki/roles/r",
        json!({ "key_type": "ed25519" }),
    )
    .await
    .unwrap();
    let r = issue("b.example.org").await.unwrap();
    assert_eq!(r.data.unwrap()["private_key_type"], "ed25519");
    // Delete it: unknown role.
    env.call(Operation::Delete, "pki/roles/r", json!({}))
        .await
        .unwrap();
    let e = issue("a.example.org").await.unwrap_err();
    assert!(e.to_string().contains("unknown role"), "{e}");
}

/// The serial and dates an answer (and the certificate store) gives are filled from what went
/// into the certificate, not parsed back from it: they must still be the certificate's own.
#[tokio::test]
async fn answers_give_the_serial_and_dates_of_the_certificate_they_carry() {
    let env = Env::new().await;
    env.root_ca("pki", json!({})).await;
    env.write(
        "pki/roles/r",
        json!({ "allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "max_ttl": "72h" }),
    )
    .await;
    env.write(
        "pki/roles/any",
        json!({ "allow_any_name": true, "key_type": "any", "not_before_duration": "17s" }),
    )
    .await;
    let csr_pem = |cn: &str| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.serialize_request(&key).unwrap().pem().unwrap()
    };
    let mut answers = Vec::new();
    for i in 0..24 {
        answers.push(
            env.write(
                "pki/issue/r",
                json!({ "common_name": format!("h{i}.example.com"), "ttl": format!("{}s", 3600 + i * 7) }),
            )
            .await,
        );
    }
    // A fixed end a day from now, to the second.
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 86_400;
    let not_after = ::time::OffsetDateTime::from_unix_timestamp(end)
        .unwrap()
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap();
    answers.push(
        env.write(
            "pki/issue/r",
            json!({ "common_name": "na.example.com", "not_after": not_after }),
        )
        .await,
    );
    answers.push(
        env.write(
            "pki/sign/any",
            json!({ "csr": csr_pem("csr.example.net"), "ttl": "2h" }),
        )
        .await,
    );
    answers.push(
        env.write(
            "pki/sign-verbatim",
            json!({ "csr": csr_pem("verbatim.example.net"), "ttl": "90m" }),
        )
        .await,
    );
    for a in &answers {
        let der = parse_pem(&s(&a["certificate"]));
        let (_, c) = X509Certificate::from_der(&der).unwrap();
        let raw = c.raw_serial();
        let raw = if raw.len() > 1 && raw[0] == 0 {
            &raw[1..]
        } else {
            raw
        };
        let serial = raw
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(s(&a["serial_number"]), serial);
        assert_eq!(a["expiration"], json!(c.validity().not_after.timestamp()));
        assert_eq!(a["not_before"], json!(c.validity().not_before.timestamp()));
        // Stored under that serial, with the same bytes.
        let stored = env.read(&format!("pki/cert/{serial}")).await;
        assert_eq!(parse_pem(&s(&stored["certificate"])), der);
    }
    assert_eq!(answers[24]["expiration"], json!(end));
}

/// Issuing keeps the URL config and the default issuer in memory: a change to either applies
/// to the very next certificate.
#[tokio::test]
async fn url_and_default_issuer_changes_apply_to_the_next_issue() {
    let env = Env::new().await;
    let first = env.root_ca("pki", json!({})).await;
    env.write(
        "pki/roles/r",
        json!({ "allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec" }),
    )
    .await;
    let issue = || {
        env.write(
            "pki/issue/r",
            json!({ "common_name": "a.example.com", "ttl": "1h" }),
        )
    };
    let aia = |leaf: &Value| {
        let der = parse_pem(&s(&leaf["certificate"]));
        let (_, c) = X509Certificate::from_der(&der).unwrap();
        let mut out = Vec::new();
        for ext in c.extensions() {
            if let ParsedExtension::AuthorityInfoAccess(a) = ext.parsed_extension() {
                for d in &a.accessdescs {
                    if let GeneralName::URI(u) = &d.access_location {
                        out.push(u.to_string());
                    }
                }
            }
        }
        out
    };
    let before = issue().await;
    assert_eq!(before["issuing_ca"], first["certificate"]);
    env.write(
        "pki/config/urls",
        json!({ "issuing_certificates": "http://ca.example.com/one" }),
    )
    .await;
    let urls = aia(&issue().await);
    assert!(
        urls.contains(&"http://ca.example.com/one".to_string()),
        "{urls:?}"
    );
    env.write(
        "pki/config/urls",
        json!({ "issuing_certificates": "http://ca.example.com/two" }),
    )
    .await;
    let urls = aia(&issue().await);
    assert!(
        urls.contains(&"http://ca.example.com/two".to_string()),
        "{urls:?}"
    );
    assert!(
        !urls.contains(&"http://ca.example.com/one".to_string()),
        "{urls:?}"
    );

    let second = env
        .write(
            "pki/root/generate/internal",
            json!({ "common_name": "Second Root", "key_type": "ec", "issuer_name": "second", "ttl": "8760h" }),
        )
        .await;
    // A new root does not take over as default by itself...
    assert_eq!(issue().await["issuing_ca"], first["certificate"]);
    // ...but naming it the default does, at once.
    env.write("pki/config/issuers", json!({ "default": "second" }))
        .await;
    assert_eq!(issue().await["issuing_ca"], second["certificate"]);
    env.write(
        "pki/config/issuers",
        json!({ "default": first["issuer_id"] }),
    )
    .await;
    assert_eq!(issue().await["issuing_ca"], first["certificate"]);
}
