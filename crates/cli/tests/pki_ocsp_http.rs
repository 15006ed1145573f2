//! The PKI engine over real HTTP with a real OCSP client: `openssl ocsp` POSTs a DER request
//! (`application/ocsp-request`) and must learn that a revoked certificate is revoked.

mod common;

use common::*;
use serde_json::json;
use std::process::Command;

fn ocsp(addr: &str, dir: &std::path::Path, serial: &str) -> String {
    let out = Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(dir.join("ca.pem"))
        .args([
            "-serial",
            &format!("0x{}", serial.replace(':', "")),
            "-url",
            &format!("{addr}/v1/pki/ocsp"),
            "-CAfile",
        ])
        .arg(dir.join("ca.pem"))
        .output()
        .expect("openssl is installed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn openssl_ocsp_over_http_sees_revocation() {
    if Command::new("openssl").arg("version").output().is_err() {
        panic!("openssl is required for this test (apt-get install openssl)");
    }
    let s = dev_server();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        s.root("POST", "sys/mounts/pki", Some(json!({"type": "pki"})))
            .0,
        204
    );
    let (st, root) = s.root(
        "POST",
        "pki/root/generate/internal",
        Some(json!({"common_name": "Test Root", "ttl": "24h", "key_type": "ec"})),
    );
    assert_eq!(st, 200, "{root}");
    std::fs::write(
        dir.path().join("ca.pem"),
        root["data"]["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let (st, _) = s.root("POST", "pki/roles/web", Some(json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "key_bits": 256})));
    assert!(st == 200 || st == 204, "{st}");
    let (st, issued) = s.root(
        "POST",
        "pki/issue/web",
        Some(json!({"common_name": "a.example.com", "ttl": "1h"})),
    );
    assert_eq!(st, 200, "{issued}");
    let serial = issued["data"]["serial_number"]
        .as_str()
        .unwrap()
        .to_string();
    let good = ocsp(&s.addr, dir.path(), &serial);
    assert!(good.contains(": good"), "{good}");
    let (st, _) = s.root("POST", "pki/revoke", Some(json!({"serial_number": serial})));
    assert_eq!(st, 200);
    let revoked = ocsp(&s.addr, dir.path(), &serial);
    assert!(revoked.contains(": revoked"), "{revoked}");
    assert!(revoked.contains("Response verify OK"), "{revoked}");
}
