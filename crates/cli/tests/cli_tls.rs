//! The CLI over TLS with `VAULT_CACERT`: the usual self-signed server certificate made with
//! `openssl req -x509` (which marks it a CA) is trusted when given as the CA file, as Vault's
//! CLI trusts it; a different certificate, or this one for another name, is refused.

mod common;

use common::{free_port, self_signed_cert, tls_config};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A self-signed certificate as `openssl req -x509` makes it: marked a CA.
fn self_signed(dir: &Path, name: &str, san: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = self_signed_cert(dir, name, san, false);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "openssl marks it a CA"
    );
    (cert, key)
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(addr: &str, ca: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(args)
        .env("VAULT_ADDR", addr)
        .env("VAULT_CACERT", ca)
        .env_remove("VAULT_SKIP_VERIFY")
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap()
}

#[test]
fn a_self_signed_server_certificate_given_as_the_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "server", "DNS:localhost");
    let port = free_port();
    let cfg = tls_config(dir.path(), port, &cert, &key);
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_tresor"))
            .arg("server")
            .arg(format!("-config={}", cfg.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = ["read", "-format=json", "sys/seal-status"];
    let out = cli(&format!("https://localhost:{port}"), &cert, &read);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // As Vault prints it: a body without a secret's fields is the data.
    assert_eq!(status["data"]["initialized"], false);
    // The same certificate for a name it does not carry (an IP address) is refused.
    let out = cli(&format!("https://127.0.0.1:{port}"), &cert, &read);
    assert!(!out.status.success(), "the name is checked");
    // Another certificate is not trusted, alone or in a bundle.
    let (other, _) = self_signed(dir.path(), "other", "DNS:localhost");
    let out = cli(&format!("https://localhost:{port}"), &other, &read);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(
        &bundle,
        [
            std::fs::read(&other).unwrap(),
            std::fs::read(&cert).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let out = cli(&format!("https://localhost:{port}"), &bundle, &read);
    assert!(
        out.status.success(),
        "the server's certificate in a bundle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A CA file that is not PEM: a clear error before any connection.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = cli(&format!("https://127.0.0.1:{port}"), &junk, &read);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Error loading CA certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
