//! Audit devices through the real binary: a device declared in the config file (OpenBao's
//! syntax), log rotation
//! with SIGHUP, `tresor audit verify` on the result, and both unwrap attempts on record.

mod common;

use common::*;
use serde_json::json;
use std::process::{Command, Stdio};

#[test]
fn config_declared_device_rotation_verify_and_unwrap_attempts_on_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("audit.log");
    let extra = dir.path().join("audit.hcl");
    std::fs::write(
        &extra,
        format!(
            // OpenBao's form (the options in their own block); the flat one is parsed too.
            "audit_dir = \"{}\"\naudit \"file\" \"main\" {{\n  description = \"main\"\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
            dir.path().display(),
            log.display()
        ),
    )
    .unwrap();
    let s = durable_server_with(dir.path(), port, &[&extra]);
    let (_, root) = s.init_and_unseal();

    // A wrapped secret, unwrapped twice: the second attempt fails and both are audited.
    let r = s
        .client
        .post(format!("{}/v1/sys/wrapping/wrap", s.addr))
        .header("X-Vault-Token", &root)
        .header("X-Vault-Wrap-TTL", "60")
        .json(&json!({"api_key": "very-secret-value"}))
        .send()
        .unwrap();
    let w: serde_json::Value = r.json().unwrap();
    let wtoken = w["wrap_info"]["token"].as_str().unwrap().to_string();
    let (st, un) = s.call("POST", "sys/wrapping/unwrap", Some(&wtoken), None);
    assert_eq!(st, 200);
    assert_eq!(un["data"]["api_key"], "very-secret-value");
    let (st, _) = s.call(
        "POST",
        "sys/wrapping/unwrap",
        None,
        Some(json!({"token": wtoken})),
    );
    assert_eq!(st, 400);

    // Rotate: move the file away, SIGHUP, keep writing.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut reopened = false;
    for _ in 0..50 {
        s.call("GET", "sys/mounts", Some(&root), None);
        if log.exists() {
            reopened = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(reopened, "SIGHUP did not reopen the audit file");

    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("very-secret-value"));
    let unwraps: Vec<serde_json::Value> = old
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "response" && e["request"]["path"] == "sys/wrapping/unwrap")
        .collect();
    assert_eq!(unwraps.len(), 2, "both unwrap attempts are on record");
    assert!(unwraps[0].get("error").is_none());
    assert!(unwraps[1]["error"]
        .as_str()
        .unwrap()
        .contains("wrapping token is not valid"));

    // `tresor audit verify`, fetching the chain key from the server.
    let verify = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_tresor"))
            .args(["audit", "verify", "-device=main", file.to_str().unwrap()])
            .env("VAULT_ADDR", &s.addr)
            .env("VAULT_TOKEN", &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let ok = verify(&rotated);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("entries verified"));
    // Remove one line from the middle: verify names it and fails.
    let mut lines: Vec<&str> = old.lines().collect();
    lines.remove(3);
    let cut = dir.path().join("cut.log");
    std::fs::write(&cut, lines.join("\n")).unwrap();
    let bad = verify(&cut);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 4"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
