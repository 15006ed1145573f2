//! Rate-limit quotas through the real binary: `sys/quotas/rate-limit/:name` and
//! `sys/quotas/config` in Vault's shapes, 429 with `Retry-After` past the limit, per mount and
//! per path, exempt paths, `block_interval`, `X-Ratelimit-*` headers, the refusals, and
//! quotas kept across a seal.

mod common;

use common::*;
use serde_json::{json, Value};

fn get(server: &Server, path: &str, token: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = server
        .client
        .get(format!("{}/v1/{path}", server.addr))
        .header("X-Vault-Token", token)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().unwrap_or(Value::Null))
}

#[test]
fn rate_limit_quotas_limit_per_path_and_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = durable_server(dir.path(), free_port());
    let (key, root) = server.init_and_unseal();
    let ok = |method: &str, path: &str, body: Value| {
        let (s, v) = server.call(method, path, Some(&root), Some(body));
        assert!(s < 300, "{method} {path}: {s} {v}");
        v
    };
    ok("POST", "sys/mounts/secret", json!({"type": "kv"}));
    ok("POST", "secret/app", json!({"v": "1"}));
    ok("POST", "secret/b", json!({"v": "1"}));

    // Refused definitions change nothing.
    for (body, says) in [
        (json!({"rate": 3, "path": "/not-exist"}), "no mount exists"),
        (json!({"rate": 0, "path": "secret"}), "positive"),
        (json!({"rate": "fast", "path": "secret"}), "rate"),
        (json!({"rate": 3, "path": "secret", "role": "web"}), "role"),
        (json!({"rate": 3, "type": "lease-count"}), "rate-limit"),
        (json!({"path": "secret"}), "missing rate"),
    ] {
        let (s, v) = server.call(
            "POST",
            "sys/quotas/rate-limit/bad",
            Some(&root),
            Some(body.clone()),
        );
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v["errors"].to_string().contains(says), "{body}: {v}");
    }
    assert_eq!(
        server
            .call("LIST", "sys/quotas/rate-limit", Some(&root), None)
            .0,
        404
    );

    // 3 a minute on the mount: the fourth read gets 429 with Retry-After.
    ok(
        "POST",
        "sys/quotas/rate-limit/kv",
        json!({"rate": 3, "path": "secret", "interval": "1m"}),
    );
    let (s, q) = server.call("GET", "sys/quotas/rate-limit/kv", Some(&root), None);
    assert_eq!(s, 200);
    assert_eq!(
        q["data"],
        json!({"name": "kv", "path": "secret/", "role": "", "rate": 3.0, "interval": 60, "block_interval": 0, "type": "rate-limit", "inheritable": false})
    );
    for _ in 0..3 {
        assert_eq!(get(&server, "secret/app", &root).0, 200);
    }
    let (s, h, v) = get(&server, "secret/app", &root);
    assert_eq!(s, 429, "{v}");
    assert_eq!(
        v["errors"][0],
        "request path \"secret/app\": rate limit quota exceeded"
    );
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "a token every 20s: {retry}");
    // Other paths are not limited; neither are the exempt ones under a global quota (here
    // sys/quotas/* too, so the global quota can be lifted).
    assert_eq!(server.call("GET", "sys/mounts", Some(&root), None).0, 200);
    ok(
        "PUT",
        "sys/quotas/config",
        json!({"rate_limit_exempt_paths": ["sys/quotas/*", "sys/health"]}),
    );
    ok(
        "POST",
        "sys/quotas/rate-limit/all",
        json!({"rate": 1, "interval": "1h"}),
    );
    for _ in 0..3 {
        assert_eq!(server.call("GET", "sys/health", None, None).0, 200);
    }
    assert_eq!(server.call("GET", "sys/mounts", Some(&root), None).0, 200);
    let (s, ..) = server.call("GET", "sys/mounts", Some(&root), None);
    assert_eq!(s, 429, "the global quota's one request is spent");

    let (s, _) = server.call("DELETE", "sys/quotas/rate-limit/all", Some(&root), None);
    assert_eq!(s, 204);
    let (_, names) = server.call("LIST", "sys/quotas/rate-limit", Some(&root), None);
    assert_eq!(names["data"]["keys"], json!(["kv"]));

    // A path under the mount is more specific than the mount; block_interval keeps a client
    // out for that long; headers say what is left.
    ok(
        "PUT",
        "sys/quotas/config",
        json!({"enable_rate_limit_response_headers": true}),
    );
    let (_, cfg) = server.call("GET", "sys/quotas/config", Some(&root), None);
    assert_eq!(cfg["data"]["enable_rate_limit_response_headers"], true);
    ok(
        "POST",
        "sys/quotas/rate-limit/b",
        json!({"rate": 2, "path": "secret/b", "interval": "1h", "block_interval": "30s"}),
    );
    let (s, h, _) = get(&server, "secret/b", &root);
    assert_eq!(s, 200);
    assert_eq!(
        (&h["x-ratelimit-limit"], &h["x-ratelimit-remaining"]),
        (&"2".parse().unwrap(), &"1".parse().unwrap())
    );
    assert_eq!(get(&server, "secret/b", &root).0, 200);
    let (s, h, _) = get(&server, "secret/b", &root);
    assert_eq!((s, h["retry-after"].to_str().unwrap()), (429, "30"));

    // Quotas are stored: kept across a seal and unseal; deleting lifts them.
    server.call("PUT", "sys/seal", Some(&root), None);
    server.unseal(&key);
    let (_, names) = server.call("LIST", "sys/quotas/rate-limit", Some(&root), None);
    assert_eq!(names["data"]["keys"], json!(["b", "kv"]));
    ok("DELETE", "sys/quotas/rate-limit/b", json!({}));
    ok("DELETE", "sys/quotas/rate-limit/kv", json!({}));
    for _ in 0..5 {
        assert_eq!(get(&server, "secret/b", &root).0, 200);
    }
    assert_eq!(
        server
            .call("GET", "sys/quotas/rate-limit/kv", Some(&root), None)
            .0,
        404
    );
}

#[test]
fn role_quotas_limit_the_logins_of_one_role() {
    let server = dev_server();
    let ok = |method: &str, path: &str, body: Value| {
        let (s, v) = server.root(method, path, Some(body));
        assert!(s < 300, "{method} {path}: {s} {v}");
        v
    };
    ok("POST", "sys/auth/approle", json!({"type": "approle"}));
    ok("POST", "sys/auth/userpass", json!({"type": "userpass"}));
    let mut role_ids = std::collections::HashMap::new();
    for role in ["web", "batch"] {
        ok(
            "POST",
            &format!("auth/approle/role/{role}"),
            json!({"bind_secret_id": false, "token_bound_cidrs": ["127.0.0.1/32"]}),
        );
        let v = ok(
            "GET",
            &format!("auth/approle/role/{role}/role-id"),
            json!({}),
        );
        role_ids.insert(role, v["data"]["role_id"].as_str().unwrap().to_string());
    }
    let login = |role: &str| {
        let (s, v) = server.call(
            "POST",
            "auth/approle/login",
            None,
            Some(json!({"role_id": role_ids[role]})),
        );
        (s, v)
    };

    // Refusals, in Vault's words; none of them stores a quota.
    for (body, says) in [
        (
            json!({"rate": 1, "path": "auth/approle/login", "role": "web"}),
            "both a path suffix and a role",
        ),
        (
            json!({"rate": 1, "path": "sys", "role": "web"}),
            "not a valid auth method",
        ),
        (
            json!({"rate": 1, "path": "auth/userpass", "role": "web"}),
            "does not support use with role-based quotas",
        ),
        (json!({"rate": 1, "role": "web"}), "path of an auth mount"),
    ] {
        let (s, v) = server.root("POST", "sys/quotas/rate-limit/bad", Some(body.clone()));
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v["errors"].to_string().contains(says), "{body}: {v}");
    }
    assert_eq!(server.root("GET", "sys/quotas/rate-limit/bad", None).0, 404);

    ok(
        "POST",
        "sys/quotas/rate-limit/web-logins",
        json!({"rate": 2, "interval": "1m", "path": "auth/approle", "role": "WEB"}),
    );
    let q = ok("GET", "sys/quotas/rate-limit/web-logins", json!({}));
    assert_eq!(q["data"]["role"], "web", "role names are case-insensitive");
    assert_eq!(q["data"]["path"], "auth/approle/");
    // The same factors under another name are refused.
    let (s, v) = server.root(
        "POST",
        "sys/quotas/rate-limit/again",
        Some(json!({"rate": 5, "path": "auth/approle", "role": "web"})),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v["errors"].to_string().contains("web-logins"), "{v}");

    // Two logins as web, then 429; the other role and the rest of the mount are not counted.
    assert_eq!(login("web").0, 200);
    assert_eq!(login("web").0, 200);
    let (s, v) = login("web");
    assert_eq!(s, 429, "{v}");
    for _ in 0..5 {
        assert_eq!(login("batch").0, 200);
    }
    assert_eq!(server.root("GET", "auth/approle/role/web", None).0, 200);

    // A mount-wide quota still applies to the other roles; the role quota wins for its role.
    ok(
        "POST",
        "sys/quotas/rate-limit/approle",
        json!({"rate": 1, "interval": "1m", "path": "auth/approle"}),
    );
    assert_eq!(login("batch").0, 200);
    assert_eq!(login("batch").0, 429);
    assert_eq!(login("web").0, 429);
    ok("DELETE", "sys/quotas/rate-limit/web-logins", json!({}));
    ok("DELETE", "sys/quotas/rate-limit/approle", json!({}));
    assert_eq!(login("web").0, 200);
}
