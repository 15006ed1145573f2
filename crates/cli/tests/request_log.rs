//! At debug level the server logs one line per request: path, operation, status, duration
//! and the token's accessor, never a token or any data (Vault's legacy endpoints that carry a
//! token in the path are logged with it cut off).

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn each_request_is_one_debug_line_without_tokens_or_data() {
    let port = free_port();
    let home = tempfile::tempdir().unwrap();
    let (_server, log) = spawn_server_with_log(
        &[
            "-dev".into(),
            "-dev-root-token-id=root-of-the-test".into(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            "-log-level=debug".into(),
        ],
        &[("HOME", home.path().to_str().unwrap())],
        port,
    );
    let addr = format!("http://127.0.0.1:{port}");
    let c = client();
    let call = |method: &str, path: &str, token: &str, body: Option<serde_json::Value>| {
        let mut rb = c
            .request(method.parse().unwrap(), format!("{addr}/v1/{path}"))
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    // Dev setup mounts secret/ right after the listener is up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while call("GET", "sys/mounts/secret/tune", "root-of-the-test", None).0 != 200 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (st, t) = call(
        "POST",
        "auth/token/create",
        "root-of-the-test",
        Some(json!({"policies": ["default"]})),
    );
    assert_eq!(st, 200);
    let token = t["auth"]["client_token"].as_str().unwrap().to_string();
    let accessor = t["auth"]["accessor"].as_str().unwrap().to_string();
    let (st, _) = call(
        "POST",
        "secret/data/app",
        "root-of-the-test",
        Some(json!({"data": {"password": "hunter2-very-secret"}})),
    );
    assert_eq!(st, 200);
    assert_eq!(call("GET", "secret/data/app", &token, None).0, 403);
    assert_eq!(
        call(
            "GET",
            &format!("auth/token/lookup/{token}"),
            "root-of-the-test",
            None
        )
        .0,
        200
    );
    // The log until the last request shows up.
    let all = read_log_until(&log, |l| l.contains("<redacted>"));
    let requests: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("tresor::request"))
        .collect();
    // The denied read: its path, status and the accessor of the token that asked.
    assert!(
        requests.iter().any(|l| l.contains("path=secret/data/app")
            && l.contains("status=403")
            && l.contains(&format!("accessor={accessor}"))
            && l.contains("duration_us=")),
        "{all}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains("path=auth/token/lookup/<redacted>") && l.contains("status=200")),
        "{all}"
    );
    for secret in [token.as_str(), "root-of-the-test", "hunter2-very-secret"] {
        assert!(!all.contains(secret), "{secret:?} in the log:\n{all}");
    }
}
