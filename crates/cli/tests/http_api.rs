//! Black-box tests of the HTTP API: the real binary, real HTTP, Vault's wire format.

mod common;

use common::*;
use serde_json::json;
use std::io::{Read, Write};

/// Sends bytes as they are and returns the raw answer.
fn raw_http(addr: &str, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr.trim_start_matches("http://")).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn dev_server_kv_v2_roundtrip_and_wire_format() {
    let s = dev_server();
    let (st, w) = s.root(
        "POST",
        "secret/data/app",
        Some(json!({"data": {"password": "s3cr3t"}})),
    );
    assert_eq!(st, 200, "{w}");
    assert_eq!(w["data"]["version"], 1);
    let (st, r) = s.root("GET", "secret/data/app", None);
    assert_eq!(st, 200);
    assert_eq!(r["data"]["data"]["password"], "s3cr3t");
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "wrap_info",
        "warnings",
        "auth",
        "mount_type",
    ] {
        assert!(r.get(key).is_some(), "envelope lacks {key}: {r}");
    }
    assert_eq!(r["mount_type"], "kv");
    // LIST via the LIST method and via ?list=true.
    let (st, l) = s.root("LIST", "secret/metadata", None);
    assert_eq!(st, 200, "{l}");
    assert_eq!(l["data"]["keys"], json!(["app"]));
    let (st, l2) = s.root("GET", "secret/metadata/?list=true", None);
    assert_eq!(st, 200);
    assert_eq!(l2["data"]["keys"], json!(["app"]));
    // The UI mount lookup clients make before every KV call.
    let (st, m) = s.root("GET", "sys/internal/ui/mounts/secret/app", None);
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["data"]["type"], "kv");
    assert_eq!(m["data"]["options"]["version"], "2");
    assert_eq!(m["data"]["path"], "secret/");
}

#[test]
fn bad_input_gets_clean_4xx_errors() {
    let s = dev_server();
    let raw = |method: &str, path: &str, body: &'static str| {
        let r = s
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v1/{path}", s.addr),
            )
            .header("X-Vault-Token", "root")
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str::<serde_json::Value>(&r.text().unwrap()).unwrap_or_default(),
        )
    };
    let (st, e) = raw("POST", "secret/data/x", "{not json");
    assert_eq!(st, 400);
    assert!(
        e["errors"][0]
            .as_str()
            .unwrap()
            .contains("failed to parse JSON"),
        "{e}"
    );
    let (st, _) = raw("POST", "secret/data/x", "[1,2]");
    assert_eq!(st, 400);
    // Path traversal, sent raw (HTTP clients normalize `..` away before sending).
    for path in [
        "/v1/secret/../sys/mounts",
        "/v1/secret/%2e%2e/sys/mounts",
        "/v1/secret/data/./x",
    ] {
        let answer = raw_http(&s.addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\nConnection: close\r\n\r\n"));
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("invalid path"), "{path}: {answer}");
    }
    let (st, e) = raw("GET", "secret/data/nope", "");
    assert_eq!((st, e), (404, json!({"errors": []})));
    let (st, _) = raw("OPTIONS", "secret/data/x", "");
    assert_eq!(st, 405);
    let (st, e) = raw("GET", "nomount/here", "");
    assert_eq!(st, 404, "{e}");
    // Oversized body: over the 32 MiB default.
    let big = "x".repeat(33 * 1024 * 1024);
    let r = s
        .client
        .post(format!("{}/v1/secret/data/big", s.addr))
        .header("X-Vault-Token", "root")
        .body(format!("{{\"data\":{{\"v\":\"{big}\"}}}}"))
        .send();
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 413);
    }
    // No token, bad token: 403 with Vault's message.
    let (st, e) = s.call("GET", "secret/data/x", None, None);
    assert_eq!(st, 403);
    assert_eq!(e["errors"][0], "permission denied");
    let (st, _) = s.call("GET", "secret/data/x", Some("hvs.nope"), None);
    assert_eq!(st, 403);
    // Nothing was lost: the server still answers.
    let (st, _) = s.root("POST", "secret/data/ok", Some(json!({"data": {"a": 1}})));
    assert_eq!(st, 200);
}

#[test]
fn health_seal_and_unseal_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let s = durable_server(dir.path(), free_port());
    let (st, h) = s.call("GET", "sys/health", None, None);
    assert_eq!(st, 501, "{h}");
    assert_eq!(h["initialized"], false);
    for key in [
        "performance_standby",
        "replication_performance_mode",
        "replication_dr_mode",
        "server_time_utc",
        "version",
        "standby",
        "sealed",
    ] {
        assert!(h.get(key).is_some(), "health lacks {key}");
    }
    let (st, init) = s.call(
        "PUT",
        "sys/init",
        None,
        Some(json!({"secret_shares": 5, "secret_threshold": 3})),
    );
    assert_eq!(st, 200);
    assert_eq!(init["keys"].as_array().unwrap().len(), 5);
    assert_eq!(init["keys_base64"].as_array().unwrap().len(), 5);
    let (st, _) = s.call("GET", "sys/health", None, None);
    assert_eq!(st, 503);
    let (st, _) = s.call("GET", "sys/health?sealedcode=299", None, None);
    assert_eq!(st, 299);
    let root = init["root_token"].as_str().unwrap();
    let (st, e) = s.call("GET", "sys/mounts", Some(root), None);
    assert_eq!(st, 503, "{e}");
    assert_eq!(e["errors"][0], "Vault is sealed");
    let keys: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let (_, p) = s.call("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})));
    assert_eq!(p["progress"], 1);
    let (_, p) = s.call("PUT", "sys/unseal", None, Some(json!({"reset": true})));
    assert_eq!(p["progress"], 0);
    let (st, _) = s.call(
        "PUT",
        "sys/unseal",
        None,
        Some(json!({"key": "zz-not-a-key"})),
    );
    assert_eq!(st, 400);
    for k in &keys[1..4] {
        s.call("PUT", "sys/unseal", None, Some(json!({"key": k})));
    }
    let (st, h) = s.call("GET", "sys/health", None, None);
    assert_eq!(st, 200, "{h}");
    let (st, _) = s.call("PUT", "sys/seal", Some(root), None);
    assert_eq!(st, 204);
    let (_, ss) = s.call("GET", "sys/seal-status", None, None);
    assert_eq!(ss["sealed"], true);
}

#[test]
fn durable_store_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (key, root) = {
        let s = durable_server(dir.path(), port);
        let (key, root) = s.init_and_unseal();
        let (st, _) = s.call(
            "POST",
            "sys/mounts/kv",
            Some(&root),
            Some(json!({"type": "kv-v2"})),
        );
        assert_eq!(st, 204);
        let (st, _) = s.call(
            "POST",
            "kv/data/a",
            Some(&root),
            Some(json!({"data": {"v": "1"}})),
        );
        assert_eq!(st, 200);
        (key, root)
    };
    let s = durable_server(dir.path(), port);
    let (_, ss) = s.call("GET", "sys/seal-status", None, None);
    assert_eq!(ss["sealed"], true);
    assert_eq!(ss["initialized"], true);
    s.unseal(&key);
    let (st, r) = s.call("GET", "kv/data/a", Some(&root), None);
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["data"]["data"]["v"], "1");
}

#[test]
fn help_and_openapi_come_from_the_path_declarations() {
    let s = dev_server();
    let (st, h) = s.root("GET", "secret/data/app?help=1", None);
    assert_eq!(st, 200, "{h}");
    assert!(
        h["data"]["help"].as_str().is_some_and(|t| !t.is_empty()),
        "{h}"
    );
    let (st, doc) = s.root("GET", "sys/internal/specs/openapi", None);
    assert_eq!(st, 200);
    assert_eq!(doc["openapi"], "3.0.2");
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        paths.contains_key("/secret/data/{path}"),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    assert!(paths["/secret/data/{path}"].get("get").is_some());
    assert!(paths["/secret/data/{path}"].get("post").is_some());
    assert!(paths.contains_key("/auth/token/create"));
    assert!(paths.contains_key("/sys/mounts/{path}"));
}

#[test]
fn least_privilege_token_can_find_its_kv_mount_and_nothing_else() {
    let s = dev_server();
    s.root(
        "POST",
        "secret/data/app",
        Some(json!({"data": {"pw": "x"}})),
    );
    let policy = r#"path "secret/data/app" { capabilities = ["read"] }"#;
    let (st, _) = s.root(
        "PUT",
        "sys/policies/acl/app",
        Some(json!({ "policy": policy })),
    );
    assert_eq!(st, 204);
    let (_, t) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["app"]})),
    );
    let tok = t["auth"]["client_token"].as_str().unwrap().to_string();
    // The preflight every Vault CLI / ESO call makes works for the mount the token may use...
    let (st, m) = s.call("GET", "sys/internal/ui/mounts/secret/app", Some(&tok), None);
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["data"]["options"]["version"], "2");
    // ...but reveals nothing about mounts it has no access to, and needs a valid token.
    let (st, _) = s.call(
        "GET",
        "sys/internal/ui/mounts/cubbyhole/x",
        Some(&tok),
        None,
    );
    assert_eq!(st, 200, "default policy grants cubbyhole");
    let (st, _) = s.root("POST", "sys/mounts/other", Some(json!({"type": "kv"})));
    assert_eq!(st, 204);
    let (st, _) = s.call("GET", "sys/internal/ui/mounts/other/x", Some(&tok), None);
    assert_eq!(st, 403);
    let (st, _) = s.call("GET", "sys/internal/ui/mounts/secret/app", None, None);
    assert_eq!(st, 403);
    let (st, _) = s.call("GET", "secret/data/app", Some(&tok), None);
    assert_eq!(st, 200);
}

#[test]
fn create_only_policy_creates_but_cannot_overwrite() {
    let s = dev_server();
    let policy = r#"path "secret/data/drop/*" { capabilities = ["create"] }"#;
    assert_eq!(
        s.root(
            "PUT",
            "sys/policies/acl/drop",
            Some(json!({ "policy": policy }))
        )
        .0,
        204
    );
    let (_, t) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["drop"]})),
    );
    let tok = t["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, body) = s.call(
        "POST",
        "secret/data/drop/a",
        Some(&tok),
        Some(json!({"data": {"v": 1}})),
    );
    assert_eq!(st, 200, "{body}");
    let (st, _) = s.call(
        "POST",
        "secret/data/drop/a",
        Some(&tok),
        Some(json!({"data": {"v": 2}})),
    );
    assert_eq!(
        st, 403,
        "an existing secret is an update, which the policy does not grant"
    );
    let (_, r) = s.root("GET", "secret/data/drop/a", None);
    assert_eq!(r["data"]["data"]["v"], 1);
}

#[test]
fn form_encoded_bodies_are_accepted_like_json() {
    let s = dev_server();
    let r = s
        .client
        .post(format!("{}/v1/cubbyhole/form", s.addr))
        .header("X-Vault-Token", "root")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("user=ann+lee&note=a%26b")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (st, got) = s.root("GET", "cubbyhole/form", None);
    assert_eq!(st, 200);
    assert_eq!(got["data"], json!({"user": "ann lee", "note": "a&b"}));

    // `curl -d '{...}'` labels JSON as a form: as in Vault, a body that opens like JSON is JSON.
    let r = s
        .client
        .post(format!("{}/v1/cubbyhole/json-as-form", s.addr))
        .header("X-Vault-Token", "root")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(" {\"user\": \"bob\", \"n\": 2}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (_, got) = s.root("GET", "cubbyhole/json-as-form", None);
    assert_eq!(got["data"], json!({"user": "bob", "n": 2}));
    // ...and a JSON-looking body that is broken is a JSON error, not a form with an odd key.
    let r = s
        .client
        .post(format!("{}/v1/cubbyhole/json-as-form", s.addr))
        .header("X-Vault-Token", "root")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("{\"user\":")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().unwrap();
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("failed to parse JSON input"));
}

/// `sys/tools/random` and `sys/tools/hash` (the same code as transit's `random` and `hash`):
/// answers as Vault's, errors as 400s, hashing allowed by the default policy.
#[test]
fn sys_tools_random_and_hash() {
    use base64::Engine;
    let s = dev_server();
    let b64 = base64::engine::general_purpose::STANDARD;
    let (st, r) = s.root("POST", "sys/tools/random", None);
    assert_eq!(st, 200, "{r}");
    let bytes = b64
        .decode(r["data"]["random_bytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 32);
    let (st, r) = s.root(
        "POST",
        "sys/tools/random/16",
        Some(json!({"format": "hex"})),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["data"]["random_bytes"].as_str().unwrap().len(), 32);
    let (st, r) = s.root("POST", "sys/tools/random/seal/8", None);
    assert_eq!(st, 200, "{r}");
    assert!(r["warnings"][0]
        .as_str()
        .unwrap()
        .contains("platform entropy"));
    for (path, body) in [
        ("sys/tools/random/moon/8", json!({})),
        ("sys/tools/random", json!({"bytes": 0})),
        ("sys/tools/random", json!({"bytes": 200000})),
        ("sys/tools/random", json!({"format": "base32"})),
        ("sys/tools/random/many", json!({})),
    ] {
        let (st, r) = s.root("POST", path, Some(body.clone()));
        assert_eq!(st, 400, "{path} {body}: {r}");
        assert!(r["errors"][0].is_string(), "{r}");
    }
    let hello = b64.encode("hello");
    for (path, body, sum) in [
        (
            "sys/tools/hash",
            json!({"input": hello}),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        ),
        (
            "sys/tools/hash/sha3-256",
            json!({"input": hello}),
            "3338be694f50c5f338814986cdf0686453a888b84f424d792af4b9202398f392",
        ),
        (
            "sys/tools/hash",
            json!({"input": hello, "algorithm": "sha2-224", "format": "base64"}),
            "6gmunMZ2jFD87pA+0FRVblv8g0eQfxJZiqJBkw==",
        ),
    ] {
        let (st, r) = s.root("POST", path, Some(body));
        assert_eq!(st, 200, "{path}: {r}");
        assert_eq!(r["data"]["sum"], sum, "{path}");
    }
    for body in [
        json!({}),
        json!({"input": "not base64!"}),
        json!({"input": hello, "algorithm": "sha3-224"}),
        json!({"input": hello, "algorithm": "md5"}),
        json!({"input": hello, "format": "base32"}),
    ] {
        let (st, r) = s.root("POST", "sys/tools/hash", Some(body.clone()));
        assert_eq!(st, 400, "{body}: {r}");
    }
    // The default policy allows hashing, not random bytes.
    let (st, t) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"]})),
    );
    assert_eq!(st, 200);
    let token = t["auth"]["client_token"].as_str().unwrap();
    let (st, _) = s.call(
        "POST",
        "sys/tools/hash/sha2-512",
        Some(token),
        Some(json!({"input": hello})),
    );
    assert_eq!(st, 200);
    let (st, _) = s.call("POST", "sys/tools/random", Some(token), None);
    assert_eq!(st, 403);
}
