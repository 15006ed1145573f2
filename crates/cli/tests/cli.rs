//! Black-box tests of the `tresor` CLI (the client side): exit codes and messages for bad
//! input, the exact HTTP requests it sends (checked against a scripted stub server), and a
//! round trip against a real `tresor server -dev`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{json, Value};

/// Runs the CLI with a clean environment (own HOME, no token) and optional stdin.
fn tresor(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tresor"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("VAULT_TOKEN")
        .env_remove("TRESOR_TOKEN")
        .env_remove("VAULT_ADDR")
        .env_remove("TRESOR_ADDR")
        .env_remove("VAULT_FORMAT")
        .env_remove("TRESOR_FORMAT")
        .env_remove("VAULT_NAMESPACE")
        .env_remove("TRESOR_NAMESPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut sin = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            sin.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: String,
}

/// A stub HTTP server answering scripted responses in order, one per connection.
struct Stub {
    addr: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
    handle: Option<JoinHandle<()>>,
}

impl Stub {
    fn start(responses: Vec<(u16, &'static str)>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let handle = std::thread::spawn(move || {
            for (status, body) in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut buf = vec![0; len];
                reader.read_exact(&mut buf).unwrap();
                seen2.lock().unwrap().push(Recorded {
                    method,
                    target,
                    headers,
                    body: String::from_utf8_lossy(&buf).into_owned(),
                });
                let reason = if status < 400 { "OK" } else { "Error" };
                let mut stream = stream;
                let resp = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(resp.as_bytes()).unwrap();
            }
        });
        Stub {
            addr,
            seen,
            handle: Some(handle),
        }
    }

    /// Waits until every scripted response was served; returns the requests.
    fn finish(mut self) -> Vec<Recorded> {
        self.handle.take().unwrap().join().unwrap();
        self.seen.lock().unwrap().clone()
    }
}

const KV2_MOUNT: &str =
    r#"{"data": {"path": "secret/", "type": "kv", "options": {"version": "2"}}}"#;

#[test]
fn usage_errors_exit_1() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    for (args, needle) in [
        (vec!["status", "-bogus"], "unexpected argument"),
        (vec!["kv", "put", "secret/x"], "Must supply data"),
        (
            vec!["kv", "put", "secret/x", "novalue"],
            "format must be key=value",
        ),
        (vec!["write", "secret/x"], "Must supply data or use -force"),
        (vec!["token", "revoke"], "Not enough arguments"),
        (
            vec!["token", "revoke", "-self", "abc"],
            "-self cannot be combined",
        ),
        (
            vec!["operator", "init", "-key-shares=2", "-key-threshold=3"],
            "cannot be greater",
        ),
        (
            vec!["secrets", "enable", "-version=two", "kv"],
            "Invalid -version",
        ),
        (vec!["server"], "-config"),
        (vec!["-address=127.0.0.1:8200", "status"], "http://"),
        (vec!["token", "create", "-metadata=novalue"], "key=value"),
    ] {
        let o = tresor(h, &args, None);
        // Vault's code for a local (usage) error; 2 is for remote ones.
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // OpenBao's CLI agrees on the ones it refuses before any request.
    if let Some(bao) = common::bao() {
        for args in [
            &["status", "-bogus"][..],
            &["kv", "put", "secret/x"][..],
            &["write", "secret/x"][..],
            &["token", "revoke"][..],
            &["secrets", "enable", "-version=two", "kv"][..],
            &["token", "create", "-metadata=novalue"][..],
        ] {
            let o = Command::new(&bao)
                .args(args)
                .env("HOME", h)
                .env("VAULT_ADDR", "http://127.0.0.1:1")
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(1), "bao {args:?}");
        }
    }
    // An unknown command: 127, as Vault's.
    let o = tresor(h, &["nonsense"], None);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("unrecognized subcommand"));
    // An unknown output format is an error with exit code 1, as in Vault.
    let o = tresor(h, &["-format=xml", "status"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o), "Invalid output format: xml\n");
    let o = tresor(h, &["-version"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("tresor"));
}

#[test]
fn unreachable_server_is_a_readable_error() {
    let home = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let addr = format!("-address=http://127.0.0.1:{port}");
    let o = tresor(home.path(), &[&addr, "status"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("Error checking seal status: GET http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("/v1/sys/seal-status"), "{err}");
}

#[test]
fn kv_v2_list_uses_mount_lookup_and_list_method() {
    let stub = Stub::start(vec![
        (200, KV2_MOUNT),
        (200, r#"{"data": {"keys": ["a", "b/"]}}"#),
    ]);
    let home = tempfile::tempdir().unwrap();
    let addr = format!("-address={}", stub.addr);
    let o = tresor(
        home.path(),
        &["kv", "list", &addr, "-token=tok", "-mount=secret", "app"],
        None,
    );
    let reqs = stub.finish();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Keys\n----\na\nb/\n");
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].target, "/v1/sys/internal/ui/mounts/secret/app");
    assert_eq!(reqs[1].method, "LIST");
    assert_eq!(reqs[1].target, "/v1/secret/metadata/app");
    for r in &reqs {
        assert_eq!(
            r.headers.get("x-vault-token").map(String::as_str),
            Some("tok")
        );
    }
}

#[test]
fn kv_put_v2_body_with_file_stdin_and_cas() {
    let stub = Stub::start(vec![
        (200, KV2_MOUNT),
        (
            200,
            r#"{"data": {"version": 4, "created_time": "t", "deletion_time": "", "destroyed": false}}"#,
        ),
    ]);
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("cert.pem");
    std::fs::write(&file, "PEM\n").unwrap();
    let a = format!("a=@{}", file.display());
    let addr = format!("-address={}", stub.addr);
    let o = tresor(
        home.path(),
        &[
            "kv",
            "put",
            &addr,
            "-cas=3",
            "secret/app",
            &a,
            "b=-",
            "c=\\@x",
        ],
        Some("from stdin"),
    );
    let reqs = stub.finish();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(reqs[1].method, "PUT");
    assert_eq!(reqs[1].target, "/v1/secret/data/app");
    let body: Value = serde_json::from_str(&reqs[1].body).unwrap();
    assert_eq!(
        body,
        json!({"data": {"a": "PEM\n", "b": "from stdin", "c": "@x"}, "options": {"cas": 3}})
    );
    let out = stdout(&o);
    assert!(out.contains("secret/data/app"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("version ") && l.ends_with(" 4")),
        "{out}"
    );
}

#[test]
fn kv_get_falls_back_to_v1_and_prints_fields() {
    // A 404 from the mount lookup means an old server: KV version 1, path as-is.
    let stub = Stub::start(vec![
        (404, r#"{"errors": []}"#),
        (
            200,
            r#"{"lease_duration": 2764800, "data": {"user": "bob", "n": 1}}"#,
        ),
    ]);
    let home = tempfile::tempdir().unwrap();
    let addr = format!("-address={}", stub.addr);
    let o = tresor(
        home.path(),
        &["kv", "get", &addr, "-field=user", "kv/app"],
        None,
    );
    let reqs = stub.finish();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(reqs[1].target, "/v1/kv/app");
    // Raw value, no trailing newline when piped (like Vault).
    assert_eq!(stdout(&o), "bob");
}

#[test]
fn api_errors_are_shown_like_vault() {
    let stub = Stub::start(vec![(403, r#"{"errors": ["permission denied"]}"#)]);
    let home = tempfile::tempdir().unwrap();
    let base = stub.addr.clone();
    let addr = format!("-address={base}");
    let o = tresor(home.path(), &["read", &addr, "secret/x", "version=2"], None);
    let reqs = stub.finish();
    assert_eq!(reqs[0].target, "/v1/secret/x?version=2");
    // A remote error: 2, as Vault.
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "Error reading secret/x: Error making API request.\n\nURL: GET {base}/v1/secret/x\n\
             Code: 403. Errors:\n\n* permission denied\n"
        )
    );
}

#[test]
fn cli_round_trip_against_dev_server() {
    let s = common::dev_server();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let addr = format!("-address={}", s.addr);
    let run = |args: &[&str]| {
        let mut all = vec![addr.as_str()];
        all.extend_from_slice(args);
        // The address flag goes before the command; both positions are accepted.
        tresor(h, &all, None)
    };

    // login stores the token in ~/.vault-token; later commands use it.
    let o = run(&["login", "root"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(h.join(".vault-token")).unwrap(),
        "root"
    );

    let o = run(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Sealed          false"),
        "{}",
        stdout(&o)
    );

    let o = run(&["kv", "put", "secret/app", "user=bob", "pw=s3cr3t"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["kv", "patch", "-mount=secret", "app", "user=alice"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["kv", "get", "-field=user", "secret/app"]);
    assert_eq!(stdout(&o), "alice");
    let o = run(&["kv", "get", "-version=1", "-format=json", "secret/app"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["data"]["data"], json!({"user": "bob", "pw": "s3cr3t"}));
    let o = run(&["kv", "list", "secret"]);
    assert_eq!(stdout(&o), "Keys\n----\napp\n");
    let o = run(&["kv", "delete", "secret/app"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["kv", "metadata", "delete", "secret/app"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["kv", "get", "secret/app"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("No value found at secret/data/app"));

    let o = run(&[
        "token",
        "create",
        "-policy=default",
        "-ttl=1h",
        "-field=token",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tok = stdout(&o);
    let o = run(&["token", "lookup", "-format=json", &tok]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["data"]["policies"], json!(["default"]));
    let o = run(&["token", "revoke", &tok]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["token", "lookup", &tok]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Code: 403"), "{}", stderr(&o));
}

#[test]
fn lease_unwrap_path_help_and_kv_rollback_against_dev_server() {
    let s = common::dev_server();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let addr = format!("-address={}", s.addr);
    let run = |args: &[&str]| {
        let mut all = vec![addr.as_str()];
        all.extend_from_slice(args);
        tresor(h, &all, None)
    };
    let ok = |args: &[&str]| {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    ok(&["login", "root"]);

    // kv rollback: version 1's data becomes version 3.
    ok(&["kv", "put", "secret/app", "v=1"]);
    ok(&["kv", "put", "secret/app", "v=2"]);
    ok(&["kv", "rollback", "-version=1", "secret/app"]);
    assert_eq!(ok(&["kv", "get", "-field=v", "secret/app"]), "1");
    let meta: Value = serde_json::from_str(&ok(&[
        "kv",
        "metadata",
        "get",
        "-format=json",
        "secret/app",
    ]))
    .unwrap();
    assert_eq!(meta["data"]["current_version"], 3);
    let o = run(&["kv", "rollback", "-version=9", "secret/app"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    ok(&["kv", "delete", "-versions=2", "secret/app"]);
    let o = run(&["kv", "rollback", "-version=2", "secret/app"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("deleted"), "{}", stderr(&o));

    // unwrap: once.
    let wrapped: Value = serde_json::from_str(&ok(&[
        "write",
        "-wrap-ttl=5m",
        "-format=json",
        "sys/wrapping/wrap",
        "k=wrapped-value",
    ]))
    .unwrap();
    let wt = wrapped["wrap_info"]["token"].as_str().unwrap().to_string();
    let un: Value = serde_json::from_str(&ok(&["unwrap", "-format=json", &wt])).unwrap();
    assert_eq!(un["data"]["k"], "wrapped-value");
    assert_ne!(
        run(&["unwrap", &wt]).status.code(),
        Some(0),
        "a wrapping token works once"
    );

    // lease lookup / renew / revoke, and revoke -prefix.
    ok(&["secrets", "enable", "pki"]);
    ok(&[
        "write",
        "pki/root/generate/internal",
        "common_name=example.test",
        "key_type=ec",
    ]);
    ok(&[
        "write",
        "pki/roles/web",
        "allowed_domains=example.test",
        "allow_subdomains=true",
        "generate_lease=true",
        "key_type=ec",
    ]);
    let issue = |cn: &str| -> String {
        let v: Value = serde_json::from_str(&ok(&[
            "write",
            "-format=json",
            "pki/issue/web",
            &format!("common_name={cn}"),
            "ttl=1h",
        ]))
        .unwrap();
        v["lease_id"].as_str().unwrap().to_string()
    };
    let lease = issue("a.example.test");
    let looked: Value =
        serde_json::from_str(&ok(&["lease", "lookup", "-format=json", &lease])).unwrap();
    assert_eq!(looked["data"]["id"], lease.as_str());
    // A certificate's lease is not renewable (as Vault's): the server's error is shown.
    let o = run(&["lease", "renew", "-increment=30m", &lease]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("lease is not renewable"),
        "{}",
        stderr(&o)
    );
    assert!(ok(&["lease", "revoke", &lease]).contains("Revoked lease"));
    assert_ne!(run(&["lease", "lookup", &lease]).status.code(), Some(0));
    let (l1, l2) = (issue("b.example.test"), issue("c.example.test"));
    ok(&["lease", "revoke", "-prefix", "pki/issue/web"]);
    for l in [l1, l2] {
        assert_ne!(run(&["lease", "lookup", &l]).status.code(), Some(0), "{l}");
    }
    assert_eq!(
        run(&["lease", "revoke", "-force", "x"]).status.code(),
        Some(1)
    );

    // path-help: the server's help for a path.
    assert!(ok(&["path-help", "sys/mounts"]).contains("List mounted secrets engines"));
    assert_ne!(run(&["path-help", "nope/x"]).status.code(), Some(0));
}

#[test]
fn shell_completion_scripts_cover_the_commands() {
    let home = tempfile::tempdir().unwrap();
    let o = tresor(home.path(), &["completion", "bash"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = stdout(&o);
    for word in ["_tresor", "snapshot", "generate-root", "rollback", "lease"] {
        assert!(
            script.contains(word),
            "{word} missing from the bash completion"
        );
    }
    let path = home.path().join("tresor.bash");
    std::fs::write(&path, &script).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    for shell in ["zsh", "fish"] {
        let o = tresor(home.path(), &["completion", shell], None);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        assert!(stdout(&o).contains("tresor"), "{shell}");
    }
    assert_eq!(
        tresor(home.path(), &["completion", "tcsh"], None)
            .status
            .code(),
        Some(1)
    );
}
