//! `sys/metrics` with the real binary: Vault's JSON layout, the Prometheus text format parsed by
//! the Prometheus project's own Python parser (`prometheus_client`, as a scraper would) while
//! the server is under load, the `telemetry` block and a listener's
//! `unauthenticated_metrics_access`, and the refusals.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn get(server: &Server, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut rb = server.client.get(format!("{}/v1/{path}", server.addr));
    if let Some(t) = token {
        rb = rb.header("X-Vault-Token", t);
    }
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().unwrap())
}

/// The Prometheus families in a scrape, as `prometheus_client`'s parser reads them:
/// name -> (type, samples as [name, labels, value]). None when the parser is not installed
/// (required in CI).
fn parse_prometheus(text: &str) -> Option<serde_json::Map<String, Value>> {
    let py = std::env::var("TRESOR_CROSSCHECK_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&py)
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        if std::env::var("TRESOR_CROSSCHECK_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("{py} has no prometheus_client (required in CI)");
        }
        eprintln!("SKIPPED the Prometheus parse: {py} has no prometheus_client");
        return None;
    }
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = [f.type, [[s.name, s.labels, s.value] for s in f.samples]]
print(json.dumps(out))
"#;
    let mut child = Command::new(&py)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the scrape does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn samples<'a>(families: &'a serde_json::Map<String, Value>, family: &str) -> &'a Vec<Value> {
    families.get(family).unwrap_or_else(|| {
        panic!(
            "no family {family}: {:?}",
            families.keys().collect::<Vec<_>>()
        )
    })[1]
        .as_array()
        .unwrap()
}

#[test]
fn metrics_in_vaults_json_and_a_prometheus_scrape_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = configured_server(
        dir.path(),
        port,
        "",
        &format!(
            "audit_dir = \"{}\"\ntelemetry {{\n  prometheus_retention_time = \"1h\"\n  disable_hostname = true\n}}",
            dir.path().display()
        ),
        &[],
    );
    let (_key, root) = server.init_and_unseal();
    let ok = |method: &str, path: &str, body: Value| {
        let (s, v) = server.call(method, path, Some(&root), Some(body));
        assert!(s < 300, "{path}: {s} {v}");
        v
    };
    ok(
        "POST",
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    ok(
        "POST",
        "kv/data/app",
        json!({"data": {"password": "s3cret"}}),
    );
    let audit_log = dir.path().join("audit.log");
    ok(
        "PUT",
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": audit_log}}),
    );
    ok(
        "POST",
        "auth/token/create",
        json!({"policies": ["default"], "ttl": "30m"}),
    );
    ok("POST", "sys/mounts/pki", json!({"type": "pki"}));
    ok(
        "POST",
        "pki/root/generate/internal",
        json!({"common_name": "example.test", "key_type": "ec"}),
    );
    ok(
        "POST",
        "pki/roles/web",
        json!({"allowed_domains": "example.test", "allow_subdomains": true, "generate_lease": true, "key_type": "ec"}),
    );
    ok(
        "POST",
        "pki/issue/web",
        json!({"common_name": "a.example.test", "ttl": "1h"}),
    );
    for _ in 0..5 {
        ok("GET", "kv/data/app", json!({}));
    }

    // Vault's JSON layout.
    let (s, ct, body) = get(&server, "sys/metrics", Some(&root));
    assert_eq!((s, ct.as_str()), (200, "application/json"), "{body}");
    assert!(!body.contains("s3cret") && !body.contains(&root));
    let m: Value = serde_json::from_str(&body).unwrap();
    let find = |kind: &str, name: &str| -> Vec<Value> {
        m[kind]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["Name"] == name)
            .cloned()
            .collect()
    };
    assert_eq!(find("Gauges", "vault.core.unsealed")[0]["Value"], 1.0);
    assert_eq!(find("Gauges", "vault.expire.num_leases")[0]["Value"], 1.0);
    // storage "file" groups writes into commits: it has committed, each commit at least one
    // write (the writes here come one at a time, so about one each).
    let gauge = |name: &str| find("Gauges", name)[0]["Value"].as_f64().unwrap();
    let (commits, batches) = (
        gauge("tresor.storage.commits"),
        gauge("tresor.storage.committed_batches"),
    );
    assert!(commits > 0.0 && batches >= commits, "{commits} {batches}");
    assert!(
        find("Samples", "vault.core.handle_request")[0]["Count"]
            .as_u64()
            .unwrap()
            >= 10
    );
    assert!(
        find("Samples", "vault.barrier.get")[0]["Count"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        find("Samples", "vault.audit.log_request")[0]["Count"]
            .as_u64()
            .unwrap()
            > 0
    );
    let reads = find("Samples", "tresor.route.request")
        .into_iter()
        .find(|s| s["Labels"] == json!({"mount": "kv/", "operation": "read"}))
        .expect("kv/ reads measured");
    assert_eq!(reads["Count"], 5);
    let created = find("Counters", "vault.token.creation");
    assert!(
        created
            .iter()
            .any(|c| c["Labels"]["mount_point"] == "auth/token/"
                && c["Labels"]["creation_ttl"] == "1h"),
        "{created:?}"
    );
    assert_eq!(
        find("Counters", "vault.expire.lease.creation")[0]["Labels"]["mount_point"],
        "pki/"
    );
    assert!(m["Timestamp"].as_str().unwrap().ends_with("+0000 UTC"));

    // Scrapes while clients hammer the server: every one parses.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, addr, root) = (stop.clone(), server.addr.clone(), root.clone());
            std::thread::spawn(move || {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let _ = c
                        .get(format!("{addr}/v1/kv/data/app"))
                        .header("X-Vault-Token", &root)
                        .send();
                }
            })
        })
        .collect();
    let mut last = None;
    for _ in 0..10 {
        let (s, ct, text) = get(&server, "sys/metrics?format=prometheus", Some(&root));
        assert_eq!(s, 200, "{text}");
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        last = parse_prometheus(&text);
        if last.is_none() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    if let Some(families) = last {
        assert_eq!(families["vault_core_handle_request"][0], "histogram");
        let kv_read_count = samples(&families, "tresor_route_request")
            .iter()
            .find(|s| {
                s[0] == "tresor_route_request_count"
                    && s[1] == json!({"mount": "kv/", "operation": "read"})
            })
            .unwrap()[2]
            .as_f64()
            .unwrap();
        assert!(
            kv_read_count > 5.0,
            "the load was measured: {kv_read_count}"
        );
        assert_eq!(samples(&families, "vault_core_unsealed")[0][2], 1.0);
        assert_eq!(families["vault_token_creation"][0], "counter");
        assert!(families.contains_key("vault_runtime_sys_bytes"));
    }

    // Refusals: no token, a token without read on sys/metrics, an unknown format.
    assert_eq!(get(&server, "sys/metrics", None).0, 403);
    let (_, t) = server.call(
        "POST",
        "auth/token/create",
        Some(&root),
        Some(json!({"policies": ["default"]})),
    );
    let plain = t["auth"]["client_token"].as_str().unwrap();
    assert_eq!(get(&server, "sys/metrics", Some(plain)).0, 403);
    let (s, _, body) = get(&server, "sys/metrics?format=xml", Some(&root));
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("unknown format"), "{body}");
}

#[test]
fn unauthenticated_metrics_access_and_prometheus_off() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = configured_server(
        dir.path(),
        port,
        "telemetry {\n  unauthenticated_metrics_access = true\n}",
        "telemetry {\n  prometheus_retention_time = \"0\"\n}",
        &[],
    );
    // Before init (sealed), without a token: the gauges say so.
    let (s, _, body) = get(&server, "sys/metrics", None);
    assert_eq!(s, 200, "{body}");
    let m: Value = serde_json::from_str(&body).unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let unsealed = format!("vault.{}.core.unsealed", hostname.trim());
    let gauge = m["Gauges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["Name"] == unsealed.as_str());
    assert_eq!(
        gauge.expect("hostname in gauge names by default")["Value"],
        0.0,
        "{m}"
    );
    // prometheus_retention_time = 0 turns the format off, as in Vault.
    let (s, _, body) = get(&server, "sys/metrics?format=prometheus", None);
    assert_eq!(s, 400);
    assert!(body.contains("prometheus is not enabled"), "{body}");
}

#[test]
fn a_bad_telemetry_block_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.hcl");
    std::fs::write(
        &cfg,
        format!(
            "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{\n address = \"127.0.0.1:{}\"\n tls_disable = true\n}}\ntelemetry {{ prometheus_retention_time = \"soon\" }}\n",
            dir.path().join("data").display(),
            free_port()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["server", &format!("-config={}", cfg.display())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prometheus_retention_time"), "{stderr}");
}
