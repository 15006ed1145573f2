//! Backups: online snapshots through Vault's raft snapshot API, `tresor operator snapshot`,
//! OpenBao's `bao operator raft snapshot`, and the server's scheduled snapshots. Real servers
//! on file storage; a restore must give back every secret, policy, mount, auth method and
//! lease, and refuse what it must refuse.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A file-storage server, initialized (one share) and unsealed: (server, unseal key, root token).
fn fresh_server(dir: &Path) -> (Server, String, String) {
    let server = durable_server(dir, free_port());
    let (key, root) = server.init_and_unseal();
    (server, key, root)
}

fn ok(server: &Server, root: &str, method: &str, path: &str, body: Value) -> Value {
    let (status, answer) = server.call(method, path, Some(root), Some(body));
    assert!(status < 300, "{method} {path}: {status} {answer}");
    answer
}

/// What the tests check after a restore, created on the snapshot's source.
struct Fixture {
    lease_id: String,
}

fn populate(server: &Server, root: &str) -> Fixture {
    ok(
        server,
        root,
        "POST",
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    ok(
        server,
        root,
        "POST",
        "kv/data/app",
        json!({"data": {"password": "s3cret"}}),
    );
    ok(
        server,
        root,
        "PUT",
        "sys/policies/acl/ops",
        json!({"policy": "path \"kv/data/*\" { capabilities = [\"read\"] }"}),
    );
    ok(
        server,
        root,
        "POST",
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    );
    ok(
        server,
        root,
        "POST",
        "auth/userpass/users/alice",
        json!({"password": "wonderland", "token_policies": "ops"}),
    );
    // PKI with generate_lease: an issued certificate is a lease.
    ok(
        server,
        root,
        "POST",
        "sys/mounts/pki",
        json!({"type": "pki"}),
    );
    ok(
        server,
        root,
        "POST",
        "pki/root/generate/internal",
        json!({"common_name": "example.test", "ttl": "24h", "key_type": "ec"}),
    );
    ok(
        server,
        root,
        "POST",
        "pki/roles/web",
        json!({"allowed_domains": "example.test", "allow_subdomains": true, "generate_lease": true, "key_type": "ec"}),
    );
    let issued = ok(
        server,
        root,
        "POST",
        "pki/issue/web",
        json!({"common_name": "a.example.test", "ttl": "1h"}),
    );
    let lease_id = issued["lease_id"].as_str().unwrap().to_string();
    assert!(lease_id.starts_with("pki/issue/web/"), "{issued}");
    Fixture { lease_id }
}

/// Everything [`populate`] made is there, and works.
fn assert_restored(server: &Server, root: &str, fixture: &Fixture) {
    let (s, secret) = server.call("GET", "kv/data/app", Some(root), None);
    assert_eq!(s, 200, "{secret}");
    assert_eq!(secret["data"]["data"]["password"], "s3cret");
    let (s, policy) = server.call("GET", "sys/policies/acl/ops", Some(root), None);
    assert_eq!(s, 200, "{policy}");
    let (s, login) = server.call(
        "POST",
        "auth/userpass/login/alice",
        None,
        Some(json!({"password": "wonderland"})),
    );
    assert_eq!(s, 200, "{login}");
    let alice = login["auth"]["client_token"].as_str().unwrap();
    let (s, read) = server.call("GET", "kv/data/app", Some(alice), None);
    assert_eq!(s, 200, "the restored policy grants alice the read: {read}");
    let (s, lease) = server.call(
        "PUT",
        "sys/leases/lookup",
        Some(root),
        Some(json!({"lease_id": fixture.lease_id})),
    );
    assert_eq!(s, 200, "{lease}");
    assert_eq!(lease["data"]["id"], fixture.lease_id.as_str());
    let (s, mounts) = server.call("GET", "sys/mounts", Some(root), None);
    assert_eq!(s, 200);
    assert!(
        mounts["data"]["kv/"].is_object() && mounts["data"]["pki/"].is_object(),
        "{mounts}"
    );
}

fn assert_success(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `tresor operator snapshot inspect` (offline) of a snapshot whose checksums must be valid.
fn inspect(file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["operator", "snapshot", "inspect", "-format=json"])
        .arg(file)
        .output()
        .unwrap();
    let summary: Value = serde_json::from_str(&assert_success(&out)).unwrap();
    assert_eq!(summary["checksums"], "valid");
    summary
}

fn raw(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut rb = server.client.request(
        method.parse().unwrap(),
        format!("{}/v1/{path}", server.addr),
    );
    if let Some(t) = token {
        rb = rb.header("X-Vault-Token", t);
    }
    if method != "GET" {
        rb = rb.body(body);
    }
    let r = rb.send().unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

fn errors(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["errors"].to_string()
}

#[test]
fn a_snapshot_restores_into_the_same_server_and_into_a_fresh_one() {
    let dir_a = tempfile::tempdir().unwrap();
    let (a, key_a, root_a) = fresh_server(dir_a.path());
    let fixture = populate(&a, &root_a);

    // Saved with the CLI (checked and written atomically), and inspected offline.
    let file = dir_a.path().join("backup.snap");
    let saved = assert_success(&run_cli(
        env!("CARGO_BIN_EXE_tresor"),
        &a,
        &root_a,
        &["operator", "snapshot", "save", file.to_str().unwrap()],
    ));
    assert!(saved.contains("Snapshot saved"), "{saved}");
    let summary = inspect(&file);
    assert!(summary["entries"].as_u64().unwrap() > 10, "{summary}");
    assert!(
        summary["areas"]["core"]["entries"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let snapshot = std::fs::read(&file).unwrap();
    assert!(!String::from_utf8_lossy(&snapshot).contains("s3cret"));

    // Changes after the snapshot are undone by restoring it, and the server keeps serving.
    ok(
        &a,
        &root_a,
        "POST",
        "kv/data/app",
        json!({"data": {"password": "changed"}}),
    );
    ok(&a, &root_a, "DELETE", "sys/policies/acl/ops", json!({}));
    ok(&a, &root_a, "DELETE", "sys/mounts/pki", json!({}));
    let (s, body) = raw(
        &a,
        "POST",
        "sys/storage/raft/snapshot",
        Some(&root_a),
        snapshot.clone(),
    );
    assert_eq!(s, 204, "{}", String::from_utf8_lossy(&body));
    let (s, st) = a.call("GET", "sys/seal-status", None, None);
    assert_eq!((s, st["sealed"].clone()), (200, json!(false)));
    assert_restored(&a, &root_a, &fixture);

    // Another cluster (other unseal keys) refuses it unless forced; forced, it seals, and the
    // snapshot's own unseal key opens it with everything in place.
    let dir_b = tempfile::tempdir().unwrap();
    let (b, _key_b, root_b) = fresh_server(dir_b.path());
    let (s, body) = raw(
        &b,
        "POST",
        "sys/storage/raft/snapshot",
        Some(&root_b),
        snapshot.clone(),
    );
    assert_eq!(s, 400);
    assert!(
        errors(&body).contains("snapshot-force"),
        "{}",
        errors(&body)
    );
    let (s, _) = b.call("GET", "sys/mounts/kv/tune", Some(&root_b), None);
    assert_eq!(s, 400, "the refused restore changed nothing");
    let restored = assert_success(&run_cli(
        env!("CARGO_BIN_EXE_tresor"),
        &b,
        &root_b,
        &[
            "operator",
            "snapshot",
            "restore",
            "-force",
            file.to_str().unwrap(),
        ],
    ));
    assert!(restored.contains("restored"), "{restored}");
    let (_, st) = b.call("GET", "sys/seal-status", None, None);
    assert_eq!(st["sealed"], true, "{st}");
    b.unseal(&key_a);
    assert_restored(&b, &root_a, &fixture);
    let (s, _) = b.call("GET", "auth/token/lookup-self", Some(&root_b), None);
    assert_eq!(s, 403, "B's own root token is gone with B's data");
}

#[test]
fn snapshot_api_refuses_bad_input_and_unprivileged_callers() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _key, root) = fresh_server(dir.path());
    ok(
        &server,
        &root,
        "POST",
        "sys/mounts/kv",
        json!({"type": "kv"}),
    );
    ok(&server, &root, "POST", "kv/x", json!({"v": "1"}));
    let (s, snapshot) = raw(
        &server,
        "GET",
        "sys/storage/raft/snapshot",
        Some(&root),
        vec![],
    );
    assert_eq!(s, 200);
    assert_eq!(&snapshot[..2], &[0x1f, 0x8b], "a gzip stream");

    // No token, or a token without sudo on the path: 403 (read and restore).
    ok(
        &server,
        &root,
        "PUT",
        "sys/policies/acl/snap",
        json!({"policy": "path \"sys/storage/raft/*\" { capabilities = [\"read\", \"update\"] }"}),
    );
    let limited = ok(
        &server,
        &root,
        "POST",
        "auth/token/create",
        json!({"policies": ["snap"]}),
    );
    let limited = limited["auth"]["client_token"].as_str().unwrap();
    for token in [None, Some(limited)] {
        assert_eq!(
            raw(&server, "GET", "sys/storage/raft/snapshot", token, vec![]).0,
            403
        );
        assert_eq!(
            raw(
                &server,
                "POST",
                "sys/storage/raft/snapshot-force",
                token,
                snapshot.clone()
            )
            .0,
            403
        );
    }

    // Not a snapshot, a truncated one, a damaged one, none at all: 400, and nothing changed.
    let mut damaged = snapshot.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x55;
    for (what, body) in [
        ("garbage", b"not a snapshot".to_vec()),
        ("truncated", snapshot[..snapshot.len() / 2].to_vec()),
        ("damaged", damaged),
        ("empty", Vec::new()),
    ] {
        for path in [
            "sys/storage/raft/snapshot",
            "sys/storage/raft/snapshot-force",
        ] {
            let (s, body) = raw(&server, "POST", path, Some(&root), body.clone());
            assert_eq!(
                s,
                400,
                "{what} to {path}: {}",
                String::from_utf8_lossy(&body)
            );
            assert!(!errors(&body).is_empty(), "{what}");
        }
    }
    let (s, v) = server.call("GET", "kv/x", Some(&root), None);
    assert_eq!((s, v["data"]["v"].clone()), (200, json!("1")));

    // Offline inspection refuses a damaged file too.
    let broken = dir.path().join("broken.snap");
    std::fs::write(&broken, &snapshot[..snapshot.len() - 40]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["operator", "snapshot", "inspect"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid snapshot"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Sealed: 503, no snapshot.
    ok(&server, &root, "PUT", "sys/seal", json!({}));
    assert_eq!(
        raw(
            &server,
            "GET",
            "sys/storage/raft/snapshot",
            Some(&root),
            vec![]
        )
        .0,
        503
    );
}

#[test]
fn bao_operator_raft_snapshot_save_and_restore() {
    let Some(bao) = bao() else {
        eprintln!("skipped: no bao CLI (set TRESOR_BAO)");
        return;
    };
    let dir_a = tempfile::tempdir().unwrap();
    let (a, key_a, root_a) = fresh_server(dir_a.path());
    let fixture = populate(&a, &root_a);
    let file = dir_a.path().join("bao.snap");
    let run = |server: &Server, token: &str, args: &[&str]| {
        assert_success(&run_cli(&bao, server, token, args))
    };
    run(
        &a,
        &root_a,
        &[
            "operator",
            "raft",
            "snapshot",
            "save",
            file.to_str().unwrap(),
        ],
    );
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    let dir_b = tempfile::tempdir().unwrap();
    let (b, _key_b, root_b) = fresh_server(dir_b.path());
    run(
        &b,
        &root_b,
        &[
            "operator",
            "raft",
            "snapshot",
            "restore",
            "-force",
            file.to_str().unwrap(),
        ],
    );
    b.unseal(&key_a);
    assert_restored(&b, &root_a, &fixture);
}

#[test]
fn scheduled_snapshots_are_taken_while_unsealed_and_the_newest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    let port = free_port();
    let server = configured_server(
        dir.path(),
        port,
        "",
        &format!(
            "snapshot_auto {{\n  interval = \"300ms\"\n  retain = 2\n  path_prefix = \"{}\"\n  file_prefix = \"nightly\"\n}}",
            snapshots.display()
        ),
        &[],
    );
    let ours = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&snapshots)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "snap"));
        v.sort();
        v
    };
    let series = || -> Vec<std::path::PathBuf> {
        let mut v = ours();
        v.retain(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("nightly-")
        });
        v
    };
    // Sealed (not even initialized): nothing to snapshot.
    std::thread::sleep(Duration::from_secs(1));
    assert!(ours().is_empty(), "{:?}", ours());
    let (_key, root) = server.init_and_unseal();
    ok(
        &server,
        &root,
        "POST",
        "sys/mounts/kv",
        json!({"type": "kv"}),
    );
    ok(&server, &root, "POST", "kv/x", json!({"v": "1"}));
    // Someone else's file in the directory is never pruned.
    std::fs::create_dir_all(&snapshots).unwrap();
    std::fs::write(snapshots.join("keep-me.snap"), b"x").unwrap();
    // Wait until the series has rotated past `retain`: a file seen is later gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut first_seen = None;
    loop {
        let files = series();
        if first_seen.is_none() {
            first_seen = files.first().cloned();
        }
        if let Some(first) = &first_seen {
            if !files.contains(first) && files.len() == 2 {
                break;
            }
        }
        assert!(
            files.len() <= 3,
            "retain = 2 (one more may be mid-write): {files:?}"
        );
        assert!(
            Instant::now() < deadline,
            "the schedule did not rotate: {files:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(snapshots.join("keep-me.snap").exists());
    let newest = series().pop().unwrap();
    let summary = inspect(&newest);
    assert!(
        summary["areas"]["logical"]["entries"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{summary}"
    );
}
