//! Shared helpers for black-box tests: start the real `tresor` binary on a free port and talk
//! to it over HTTP.
#![allow(dead_code)]

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on, never the same twice in one test process: the kernel may hand a
/// just-released port out again, and two servers of parallel tests on one port would each
/// think the other's answers were their own.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub client: Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_ready(addr: &str, client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{addr}/v1/sys/seal-status"))
            .send()
            .is_ok()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server at {addr} did not come up");
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `tresor server -dev` with root token `root`.
pub fn dev_server() -> Server {
    dev_server_at_home(&std::env::temp_dir())
}

/// `tresor server -dev` with root token `root`, and `home` as its `$HOME` (where it writes
/// `.vault-token`).
pub fn dev_server_at_home(home: &Path) -> Server {
    let port = free_port();
    let mut cmd = tresor_server();
    cmd.args([
        "-dev",
        "-dev-root-token-id=root",
        &format!("-dev-listen-address=127.0.0.1:{port}"),
    ])
    .env("HOME", home);
    let server = start(cmd, port);
    wait_dev_setup(&server);
    server
}

/// Waits (at most 10 s) for a dev server with root token `root` to finish its setup (init,
/// unseal, mount), which ends right after the listener is up.
pub fn wait_dev_setup(server: &Server) {
    let (addr, client) = (&server.addr, &server.client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("{addr}/v1/sys/mounts/secret/tune"))
            .header("X-Vault-Token", "root")
            .send()
        {
            if r.status().is_success() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `tresor server -config=FILE` with file storage under `dir`, plain HTTP.
pub fn durable_server(dir: &Path, port: u16) -> Server {
    durable_server_with(dir, port, &[])
}

/// Like [`durable_server`], started with one resource limit set (`setrlimit(resource, limit)`,
/// soft and hard) and the data directory as its working directory (where a core file would
/// land). Returns once it accepts connections.
pub fn durable_server_with_rlimit(dir: &Path, port: u16, resource: i32, limit: u64) -> Server {
    use std::os::unix::process::CommandExt;
    let mut cmd = tresor_server();
    cmd.arg(format!(
        "-config={}",
        durable_config(dir, port, "", "").display()
    ))
    .current_dir(dir);
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            libc::setrlimit(resource as _, &lim);
            Ok(())
        });
    }
    start(cmd, port)
}

/// Like [`durable_server`], with more config files after the main one.
pub fn durable_server_with(dir: &Path, port: u16, extra: &[&Path]) -> Server {
    configured_server(dir, port, "", "", extra)
}

/// A durable server whose main config adds `listener_extra` inside the listener block and
/// `top_extra` at the top level.
pub fn configured_server(
    dir: &Path,
    port: u16,
    listener_extra: &str,
    top_extra: &str,
    extra: &[&Path],
) -> Server {
    let cfg = durable_config(dir, port, listener_extra, top_extra);
    let mut args = vec![format!("-config={}", cfg.display())];
    args.extend(extra.iter().map(|p| format!("-config={}", p.display())));
    spawn_server(&args, port)
}

/// Writes `dir/tresor.hcl`: file storage in `dir/data`, a plain HTTP listener on `port` with
/// `listener_extra` inside its block, and `top_extra` at the top level.
fn durable_config(dir: &Path, port: u16, listener_extra: &str, top_extra: &str) -> PathBuf {
    let cfg = dir.join("tresor.hcl");
    std::fs::write(
        &cfg,
        format!(
            "storage \"file\" {{ path = \"{}\" }}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n{listener_extra}\n}}\n{top_extra}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    cfg
}

/// `tresor server ARGS` listening on `port` (the config says so); returns once it answers.
pub fn spawn_server(args: &[String], port: u16) -> Server {
    let mut cmd = tresor_server();
    cmd.args(args);
    start(cmd, port)
}

/// `tresor server ARGS` (with `env`) listening on `port`, its log (stderr) readable line by
/// line from the receiver; returns once it answers.
pub fn spawn_server_with_log(
    args: &[String],
    env: &[(&str, &str)],
    port: u16,
) -> (Server, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut cmd = tresor_server();
    cmd.args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped());
    let mut server = start(cmd, port);
    let stderr = std::io::BufReader::new(server.child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (server, rx)
}

/// The log read so far and as it comes, until `done` holds for it (at most 10 s).
pub fn read_log_until(
    log: &std::sync::mpsc::Receiver<String>,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline && !done(&text) {
        if let Ok(line) = log.recv_timeout(Duration::from_millis(100)) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// `openssl req -x509`: a self-signed certificate and key in `dir`, named `cn`, for the
/// subject alternative names `san` (`IP:127.0.0.1`, `DNS:localhost`). openssl marks it a CA
/// unless `end_entity` (then `CA:FALSE`).
pub fn self_signed_cert(dir: &Path, cn: &str, san: &str, end_entity: bool) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
    ])
    .args(["-nodes", "-days", "1", "-subj", &format!("/CN={cn}")])
    .args(["-addext", &format!("subjectAltName={san}")]);
    if end_entity {
        cmd.args(["-addext", "basicConstraints=critical,CA:FALSE"]);
    }
    let out = cmd
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// Writes `dir/tls.hcl`: in-memory storage and one TLS listener on `port` serving `cert`
/// with `key`.
pub fn tls_config(dir: &Path, port: u16, cert: &Path, key: &Path) -> PathBuf {
    let cfg = dir.join("tls.hcl");
    std::fs::write(
        &cfg,
        format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\ndisable_mlock = true\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    cfg
}

/// Runs a Vault-compatible CLI (`bin`: Tresor's or OpenBao's) against `server` with `token`.
pub fn run_cli(bin: &str, server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", token)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap()
}

/// OpenBao's CLI (`TRESOR_BAO`, else `bao` on PATH), when there is one; required in CI.
pub fn bao() -> Option<String> {
    let bin = std::env::var("TRESOR_BAO")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "bao".to_string());
    let found = Command::new(&bin)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("TRESOR_CROSSCHECK_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the bao CLI is required (TRESOR_CROSSCHECK_REQUIRED=1) but {bin} does not run");
    }
    found.then_some(bin)
}

/// The `tresor server` command, output discarded.
///
/// Each server gets a process group of its own: tests stop servers (SIGSTOP), and the kernel
/// sends SIGCONT to every stopped process of a group that becomes orphaned when some other
/// process of it exits, which would wake a paused server early.
fn tresor_server() -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tresor"));
    cmd.arg("server")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Spawns `cmd` and returns once the server answers on `port`.
fn start(mut cmd: Command, port: u16) -> Server {
    let child = cmd.spawn().unwrap();
    let addr = format!("http://127.0.0.1:{port}");
    let client = client();
    wait_ready(&addr, &client);
    Server {
        child,
        addr,
        client,
    }
}

impl Server {
    /// Sends a request; returns (status, parsed JSON body or Null).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.client.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/v1/{path}", self.addr),
        );
        if let Some(t) = token {
            rb = rb.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some("root"), body)
    }

    /// Initializes with one share and unseals; returns (unseal key, root token).
    pub fn init_and_unseal(&self) -> (String, String) {
        let (s, init) = self.call(
            "PUT",
            "sys/init",
            None,
            Some(serde_json::json!({"secret_shares": 1, "secret_threshold": 1})),
        );
        assert_eq!(s, 200, "{init}");
        let key = init["keys"][0].as_str().unwrap().to_string();
        self.unseal(&key);
        (key, init["root_token"].as_str().unwrap().to_string())
    }

    pub fn unseal(&self, key: &str) {
        let (s, st) = self.call(
            "PUT",
            "sys/unseal",
            None,
            Some(serde_json::json!({ "key": key })),
        );
        assert_eq!(s, 200, "{st}");
        assert_eq!(st["sealed"], false, "{st}");
    }
}
