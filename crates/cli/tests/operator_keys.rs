//! The operator's key ceremonies with the real binary: root-token recovery (Vault's
//! unauthenticated `sys/generate-root/*`, OpenBao's authenticated `sys/generate-root-token/*`
//! driven by `bao operator generate-root` when TRESOR_BAO is set, as in CI, `sys/decode-token`,
//! `tresor operator generate-root`), rekey verification (`sys/rekey/verify`,
//! `sys/rekey/backup`) and barrier key rotation (`sys/rotate/keyring`, its config).

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::{Command, Output};

/// A file-storage server initialized with 3 shares, threshold 2, and unsealed:
/// (server, shares, root token).
fn server_with_three_shares(dir: &std::path::Path) -> (Server, Vec<String>, String) {
    let server = durable_server(dir, free_port());
    let (s, init) = server.call(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(s, 200, "{init}");
    let keys: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    for k in &keys[..2] {
        server.call("PUT", "sys/unseal", None, Some(json!({ "key": k })));
    }
    let (_, st) = server.call("GET", "sys/seal-status", None, None);
    assert_eq!(st["sealed"], false, "{st}");
    (
        server,
        keys,
        init["root_token"].as_str().unwrap().to_string(),
    )
}

fn put(server: &Server, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    server.call("PUT", path, token, Some(body))
}

fn error_of(v: &Value) -> String {
    v["errors"].to_string()
}

/// The token works and carries the root policy.
fn assert_root(server: &Server, token: &str) {
    let (s, me) = server.call("GET", "auth/token/lookup-self", Some(token), None);
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["data"]["policies"], json!(["root"]), "{me}");
}

const OTP: &str = "BMjzW3wAsEzINXCM05Wbas3u9zSl";

#[test]
fn generate_root_with_an_otp_and_its_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (server, keys, root) = server_with_three_shares(dir.path());
    let attempt = "sys/generate-root/attempt";
    let update = "sys/generate-root/update";

    // Refused starts: an OTP of the wrong length, a PGP key.
    let (s, v) = put(&server, attempt, None, json!({"otp": "short"}));
    assert_eq!(s, 400, "{v}");
    assert!(error_of(&v).contains("incorrect length"), "{v}");
    let (s, _) = put(&server, attempt, None, json!({"pgp_key": "mQENBF..."}));
    assert_eq!(s, 400);
    // No generation yet: an update is refused.
    let (s, v) = put(&server, update, None, json!({"key": keys[0], "nonce": "x"}));
    assert_eq!(s, 400);
    assert!(
        error_of(&v).contains("no root generation in progress"),
        "{v}"
    );

    // Started with our OTP (not echoed back); a second start is refused.
    let (s, st) = put(&server, attempt, None, json!({ "otp": OTP }));
    assert_eq!(s, 200, "{st}");
    assert_eq!(
        (
            st["started"].clone(),
            st["otp"].clone(),
            st["otp_length"].clone()
        ),
        (json!(true), json!(""), json!(28))
    );
    assert_eq!(st["required"], 2);
    let nonce = st["nonce"].as_str().unwrap().to_string();
    assert_eq!(put(&server, attempt, None, json!({ "otp": OTP })).0, 400);

    // Wrong nonce, missing key, the same key twice: refused, progress kept.
    let (s, v) = put(
        &server,
        update,
        None,
        json!({"key": keys[0], "nonce": "wrong"}),
    );
    assert_eq!(s, 400, "{v}");
    assert_eq!(put(&server, update, None, json!({"nonce": nonce})).0, 400);
    let (s, st) = put(
        &server,
        update,
        None,
        json!({"key": keys[0], "nonce": nonce}),
    );
    assert_eq!(
        (s, st["progress"].clone(), st["complete"].clone()),
        (200, json!(1), json!(false)),
        "{st}"
    );
    let (s, v) = put(
        &server,
        update,
        None,
        json!({"key": keys[0], "nonce": nonce}),
    );
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("already been provided"), "{v}");

    // The threshold reached: the encoded token, which only the OTP decodes.
    let (s, done) = put(
        &server,
        update,
        None,
        json!({"key": keys[2], "nonce": nonce}),
    );
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["complete"], true);
    let encoded = done["encoded_root_token"].as_str().unwrap().to_string();
    assert_eq!(done["encoded_token"], encoded.as_str());
    let (_, st) = server.call("GET", attempt, None, None);
    assert_eq!(st["started"], false, "the generation ended");
    let (s, decoded) = put(
        &server,
        "sys/decode-token",
        None,
        json!({"encoded_token": encoded, "otp": OTP}),
    );
    assert_eq!(s, 200, "{decoded}");
    let new_root = decoded["data"]["token"].as_str().unwrap().to_string();
    assert!(new_root.starts_with("hvs.") && new_root != root);
    assert_root(&server, &new_root);
    // Tresor's CLI decodes it offline too.
    let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args([
            "operator",
            "generate-root",
            "-format=json",
            &format!("-decode={encoded}"),
            &format!("-otp={OTP}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["token"], new_root.as_str());

    // Shares of another key: the attempt is aborted at the threshold, no token.
    let other = tempfile::tempdir().unwrap();
    let (_other, other_keys, _) = server_with_three_shares(other.path());
    let (_, st) = put(&server, attempt, None, json!({}));
    let generated_otp = st["otp"].as_str().unwrap();
    assert_eq!(
        generated_otp.len(),
        28,
        "no OTP given: the server makes one and says it"
    );
    let nonce = st["nonce"].as_str().unwrap().to_string();
    put(
        &server,
        update,
        None,
        json!({"key": other_keys[0], "nonce": nonce}),
    );
    let (s, v) = put(
        &server,
        update,
        None,
        json!({"key": other_keys[1], "nonce": nonce}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(error_of(&v).contains("aborted"), "{v}");
    assert!(v.get("encoded_root_token").is_none());
    let (_, st) = server.call("GET", attempt, None, None);
    assert_eq!(st["started"], false);

    // Cancel.
    put(&server, attempt, None, json!({ "otp": OTP }));
    assert_eq!(server.call("DELETE", attempt, None, None).0, 204);
    let (_, st) = server.call("GET", attempt, None, None);
    assert_eq!(st["started"], false);

    // OpenBao's authenticated variant: needs a token allowed on the path; answers under data.
    let token_path = "sys/generate-root-token/attempt";
    assert_eq!(server.call("GET", token_path, None, None).0, 403);
    let (s, st) = put(&server, token_path, Some(&root), json!({ "otp": OTP }));
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["data"]["started"], true, "{st}");
    let nonce = st["data"]["nonce"].as_str().unwrap().to_string();
    put(
        &server,
        "sys/generate-root-token/update",
        Some(&root),
        json!({"key": keys[1], "nonce": nonce}),
    );
    let (s, done) = put(
        &server,
        "sys/generate-root-token/update",
        Some(&root),
        json!({"key": keys[2], "nonce": nonce}),
    );
    assert_eq!(s, 200, "{done}");
    let (_, decoded) = put(
        &server,
        "sys/decode-token",
        None,
        json!({"encoded_token": done["data"]["encoded_root_token"], "otp": OTP}),
    );
    assert_root(&server, decoded["data"]["token"].as_str().unwrap());
}

fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The generate-root flow as an operator runs it, with `cli` (Tresor's or OpenBao's).
fn cli_generate_root(cli: &str, server: &Server, keys: &[String], token: &str) -> String {
    let otp = String::from_utf8(
        run_cli(
            cli,
            server,
            token,
            &["operator", "generate-root", "-generate-otp"],
        )
        .stdout,
    )
    .unwrap();
    let otp = otp.trim();
    assert_eq!(otp.len(), 28, "{otp:?}");
    let st = json_out(&run_cli(
        cli,
        server,
        token,
        &[
            "operator",
            "generate-root",
            "-init",
            "-format=json",
            &format!("-otp={otp}"),
        ],
    ));
    assert_eq!(st["started"], true, "{st}");
    let nonce = st["nonce"].as_str().unwrap().to_string();
    json_out(&run_cli(
        cli,
        server,
        token,
        &[
            "operator",
            "generate-root",
            "-format=json",
            &format!("-nonce={nonce}"),
            &keys[0],
        ],
    ));
    let done = json_out(&run_cli(
        cli,
        server,
        token,
        &[
            "operator",
            "generate-root",
            "-format=json",
            &format!("-nonce={nonce}"),
            &keys[1],
        ],
    ));
    assert_eq!(done["complete"], true, "{done}");
    let encoded = done["encoded_root_token"]
        .as_str()
        .or(done["encoded_token"].as_str())
        .unwrap();
    let decoded = run_cli(
        cli,
        server,
        token,
        &[
            "operator",
            "generate-root",
            &format!("-decode={encoded}"),
            &format!("-otp={otp}"),
        ],
    );
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let text = String::from_utf8(decoded.stdout).unwrap();
    text.split_whitespace().last().unwrap().to_string()
}

#[test]
fn tresor_operator_generate_root_recovers_a_root_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, keys, root) = server_with_three_shares(dir.path());
    let token = cli_generate_root(env!("CARGO_BIN_EXE_tresor"), &server, &keys, &root);
    assert_root(&server, &token);
}

#[test]
fn bao_operator_generate_root_recovers_a_root_token() {
    let Some(bao) = bao() else {
        eprintln!("skipped: no bao CLI (set TRESOR_BAO)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, keys, root) = server_with_three_shares(dir.path());
    let token = cli_generate_root(&bao, &server, &keys, &root);
    assert_root(&server, &token);
}

#[test]
fn rekey_with_verification_takes_effect_only_once_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (server, old_keys, root) = server_with_three_shares(dir.path());
    let (s, st) = put(
        &server,
        "sys/rekey/init",
        None,
        json!({"secret_shares": 3, "secret_threshold": 2, "require_verification": true}),
    );
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["verification_required"], true);
    let nonce = st["nonce"].as_str().unwrap().to_string();
    assert_eq!(
        server.call("GET", "sys/rekey/verify", None, None).0,
        400,
        "nothing to verify yet"
    );
    put(
        &server,
        "sys/rekey/update",
        None,
        json!({"key": old_keys[0], "nonce": nonce}),
    );
    let (s, done) = put(
        &server,
        "sys/rekey/update",
        None,
        json!({"key": old_keys[1], "nonce": nonce}),
    );
    assert_eq!(s, 200, "{done}");
    assert_eq!(
        (
            done["complete"].clone(),
            done["verification_required"].clone()
        ),
        (json!(true), json!(true))
    );
    let new_keys: Vec<String> = done["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let first = done["verification_nonce"].as_str().unwrap().to_string();
    let (_, v) = server.call("GET", "sys/rekey/verify", None, None);
    assert_eq!(
        (v["nonce"].clone(), v["progress"].clone()),
        (json!(first), json!(0))
    );
    // Restarting the verification gives a new nonce.
    let (s, v) = server.call("DELETE", "sys/rekey/verify", None, None);
    assert_eq!(s, 200, "{v}");
    let second = v["nonce"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    // The old nonce, the old keys: refused; progress back to zero after a wrong threshold.
    assert_eq!(
        put(
            &server,
            "sys/rekey/verify",
            None,
            json!({"key": new_keys[0], "nonce": first})
        )
        .0,
        400
    );
    put(
        &server,
        "sys/rekey/verify",
        None,
        json!({"key": old_keys[0], "nonce": second}),
    );
    let (s, v) = put(
        &server,
        "sys/rekey/verify",
        None,
        json!({"key": old_keys[1], "nonce": second}),
    );
    assert_eq!(s, 400, "{v}");
    // Not yet in effect: the old keys still unseal.
    server.call("PUT", "sys/seal", Some(&root), None);
    for k in &old_keys[..2] {
        server.call("PUT", "sys/unseal", None, Some(json!({ "key": k })));
    }
    let (_, st) = server.call("GET", "sys/seal-status", None, None);
    assert_eq!(st["sealed"], false, "{st}");
    // The new keys given back: in effect; the old keys no longer unseal.
    let (_, v) = server.call("GET", "sys/rekey/verify", None, None);
    let nonce = v["nonce"].as_str().unwrap().to_string();
    put(
        &server,
        "sys/rekey/verify",
        None,
        json!({"key": new_keys[2], "nonce": nonce}),
    );
    let (s, v) = put(
        &server,
        "sys/rekey/verify",
        None,
        json!({"key": new_keys[0], "nonce": nonce}),
    );
    assert_eq!((s, v["complete"].clone()), (200, json!(true)), "{v}");
    assert_eq!(server.call("GET", "sys/rekey/verify", None, None).0, 400);
    server.call("PUT", "sys/seal", Some(&root), None);
    server.call(
        "PUT",
        "sys/unseal",
        None,
        Some(json!({ "key": old_keys[0] })),
    );
    let (s, v) = server.call(
        "PUT",
        "sys/unseal",
        None,
        Some(json!({ "key": old_keys[1] })),
    );
    assert_eq!(s, 400, "old keys: {v}");
    server.call("PUT", "sys/unseal", None, Some(json!({ "reset": true })));
    for k in &new_keys[1..] {
        server.call("PUT", "sys/unseal", None, Some(json!({ "key": k })));
    }
    let (_, st) = server.call("GET", "sys/seal-status", None, None);
    assert_eq!(st["sealed"], false, "{st}");

    // Backups need PGP keys, which Tresor does not take: there is never one.
    let (s, v) = server.call("GET", "sys/rekey/backup", None, None);
    assert_eq!(s, 400);
    assert!(error_of(&v).contains("no backed-up keys found"), "{v}");
    assert_eq!(server.call("DELETE", "sys/rekey/backup", None, None).0, 204);
}

#[test]
fn keyring_rotation_and_its_automatic_config() {
    let dir = tempfile::tempdir().unwrap();
    let (server, keys, root) = server_with_three_shares(dir.path());
    let term = || {
        server.call("GET", "sys/key-status", Some(&root), None).1["term"]
            .as_u64()
            .unwrap()
    };
    let before = term();
    let (s, v) = put(&server, "sys/rotate/keyring", Some(&root), json!({}));
    assert_eq!(s, 204, "{v}");
    assert_eq!(term(), before + 1);
    // sudo, as sys/rotate.
    put(
        &server,
        "sys/policies/acl/rotator",
        Some(&root),
        json!({"policy": "path \"sys/rotate/*\" { capabilities = [\"update\", \"read\"] }"}),
    );
    let (_, t) = put(
        &server,
        "auth/token/create",
        Some(&root),
        json!({"policies": ["rotator"]}),
    );
    let rotator = t["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        put(&server, "sys/rotate/keyring", Some(rotator), json!({})).0,
        403
    );
    assert_eq!(term(), before + 1);

    for path in ["sys/rotate/config", "sys/rotate/keyring/config"] {
        let (s, cfg) = server.call("GET", path, Some(&root), None);
        assert_eq!(s, 200, "{cfg}");
        assert_eq!(cfg["data"]["enabled"], true);
        assert_eq!(cfg["data"]["max_operations"], 3_865_470_566u64);
    }
    assert_eq!(
        server.call("GET", "sys/rotate/config", Some(&root), None).1["data"]["interval"],
        0
    );
    let (s, v) = put(
        &server,
        "sys/rotate/keyring/config",
        Some(&root),
        json!({"interval": "48h", "max_operations": 2_000_000}),
    );
    assert_eq!(s, 204, "{v}");
    let (_, cfg) = server.call("GET", "sys/rotate/config", Some(&root), None);
    assert_eq!(
        (
            cfg["data"]["interval"].clone(),
            cfg["data"]["max_operations"].clone()
        ),
        (json!("48h0m0s"), json!(2_000_000))
    );
    for (bad, says) in [
        (json!({"interval": "1h"}), "24h0m0s"),
        (json!({"max_operations": 5}), "max_operations"),
        (json!({"max_operations": -1}), "max_operations"),
        (json!({"interval": "soon"}), ""),
    ] {
        let (s, v) = put(&server, "sys/rotate/config", Some(&root), bad.clone());
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(error_of(&v).contains(says), "{bad}: {v}");
    }
    let (_, cfg) = server.call("GET", "sys/rotate/config", Some(&root), None);
    assert_eq!(
        cfg["data"]["interval"], "48h0m0s",
        "a refused config changes nothing"
    );
    // Kept across a restart (it lives in the keyring).
    put(
        &server,
        "sys/rotate/config",
        Some(&root),
        json!({"enabled": false}),
    );
    server.call("PUT", "sys/seal", Some(&root), None);
    for k in &keys[..2] {
        server.call("PUT", "sys/unseal", None, Some(json!({ "key": k })));
    }
    let (_, cfg) = server.call("GET", "sys/rotate/keyring/config", Some(&root), None);
    assert_eq!(
        (
            cfg["data"]["enabled"].clone(),
            cfg["data"]["interval"].clone()
        ),
        (json!(false), json!("48h0m0s"))
    );

    if let Some(bao) = bao() {
        let out = run_cli(&bao, &server, &root, &["operator", "rotate"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(term(), before + 2);
    }
}
