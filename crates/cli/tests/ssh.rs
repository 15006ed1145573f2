//! The SSH engine against OpenSSH itself, over real HTTP: `ssh-keygen -L` reads what the
//! engine signed (principals, validity, extensions, key id, CA fingerprint), and a real `sshd`
//! (on a free loopback port, as the current user, trusting the engine's `public_key` as
//! `TrustedUserCAKeys`) lets `ssh` log in with a signed certificate, and refuses one for a
//! principal that is not the user's.
//!
//! Needs `ssh`, `ssh-keygen` and `/usr/sbin/sshd` (Debian: openssh-client, openssh-server;
//! `.ci/run` installs them).

mod common;

use common::*;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

fn require_openssh() {
    for tool in ["ssh", "ssh-keygen"] {
        if Command::new(tool).arg("-V").output().is_err() {
            panic!("{tool} is required for this test (apt-get install openssh-client)");
        }
    }
    if !Path::new(SSHD).exists() {
        panic!("{SSHD} is required for this test (apt-get install openssh-server)");
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("command runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn current_user() -> String {
    let out = run(Command::new("id").arg("-un"));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A new Ed25519 key pair at `path` (and `path.pub`), as `ssh-keygen` makes it.
fn keygen(path: &Path) {
    let out = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path));
    assert!(out.status.success(), "{}", text(&out));
}

/// Signs `key.pub` under `role`; writes `key-cert.pub`; the answer's data.
fn sign(s: &Server, role: &str, key: &Path, body: Value) -> (Value, PathBuf) {
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut body = body;
    body["public_key"] = json!(public);
    let (status, r) = s.root("POST", &format!("ssh/sign/{role}"), Some(body));
    assert_eq!(status, 200, "{r}");
    let cert = PathBuf::from(format!("{}-cert.pub", key.display()));
    std::fs::write(&cert, r["data"]["signed_key"].as_str().unwrap()).unwrap();
    (r["data"].clone(), cert)
}

/// A running `sshd` on a free loopback port; stopped on drop.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start(dir: &Path, ca_file: &Path) -> Sshd {
        let host_key = dir.join("host_ed25519");
        keygen(&host_key);
        let port = free_port();
        let config = dir.join("sshd_config");
        let log = dir.join("sshd.log");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {}\n\
                 PidFile none\n\
                 TrustedUserCAKeys {}\n\
                 AuthorizedKeysFile none\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 LogLevel VERBOSE\n",
                host_key.display(),
                ca_file.display()
            ),
        )
        .unwrap();
        // sshd running as root wants its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let check = run(Command::new(SSHD).arg("-t").arg("-f").arg(&config));
        assert!(check.status.success(), "sshd -t: {}", text(&check));
        let child = Command::new(SSHD)
            .args(["-D", "-f"])
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd { child, port, log }
    }

    /// `ssh -i key -o CertificateFile=cert user@127.0.0.1 <command>`.
    fn ssh(&self, key: &Path, cert: &Path, user: &str, command: &str) -> Output {
        run(Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=10",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg(format!("{user}@127.0.0.1"))
            .arg(command)
            .stdin(Stdio::null()))
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (as `ssh-keygen -L` prints times) in seconds since the epoch, for
/// differences (the time zone cancels out).
fn unix_seconds(t: &str) -> i64 {
    let n: Vec<i64> = t
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect();
    let (y, m, d) = (n[0], n[1], n[2]);
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n[3] * 3600 + n[4] * 60 + n[5]
}

#[test]
fn openssh_reads_the_certificates_and_sshd_accepts_them() {
    require_openssh();
    let s = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let user = current_user();
    assert_eq!(
        s.root("POST", "sys/mounts/ssh", Some(json!({"type": "ssh"})))
            .0,
        204
    );
    let (status, ca) = s.root(
        "POST",
        "ssh/config/ca",
        Some(json!({"generate_signing_key": true, "key_type": "ec", "key_bits": 384})),
    );
    assert_eq!(status, 200, "{ca}");
    // The CA's public key, unauthenticated and as plain text, is what sshd trusts.
    let r = s
        .client
        .get(format!("{}/v1/ssh/public_key", s.addr))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let ca_public = r.text().unwrap();
    assert_eq!(ca_public, ca["data"]["public_key"].as_str().unwrap());
    let ca_file = dir.path().join("ca.pub");
    std::fs::write(&ca_file, &ca_public).unwrap();
    let fp = run(Command::new("ssh-keygen").arg("-l").arg("-f").arg(&ca_file));
    assert!(fp.status.success(), "{}", text(&fp));
    let ca_fingerprint = text(&fp)
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap()
        .to_string();

    let (status, r) = s.root(
        "POST",
        "ssh/roles/users",
        Some(json!({
            "key_type": "ca", "allow_user_certificates": true,
            "allowed_users": format!("{user},someone-else"),
            "allowed_extensions": "permit-pty,permit-agent-forwarding",
            "default_extensions": {"permit-pty": ""},
            "allow_user_key_ids": true, "ttl": "30m", "max_ttl": "1h",
        })),
    );
    assert_eq!(status, 204, "{r}");

    // (a) ssh-keygen -L: principals, validity, extensions, key id, serial, signing CA.
    let key = dir.path().join("id_user");
    keygen(&key);
    let (signed, cert) = sign(
        &s,
        "users",
        &key,
        json!({"valid_principals": user, "key_id": "tresor-test-id", "ttl": "10m",
               "extensions": {"permit-pty": "", "permit-agent-forwarding": ""}}),
    );
    let listing = run(Command::new("ssh-keygen").arg("-L").arg("-f").arg(&cert));
    assert!(listing.status.success(), "{}", text(&listing));
    let listing = text(&listing);
    assert!(
        listing.contains("ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Signing CA: ECDSA {ca_fingerprint}")),
        "{listing}"
    );
    assert!(listing.contains("Key ID: \"tresor-test-id\""), "{listing}");
    let serial = u64::from_str_radix(signed["serial_number"].as_str().unwrap(), 16).unwrap();
    assert!(listing.contains(&format!("Serial: {serial}")), "{listing}");
    let principals: Vec<&str> = listing
        .split("Principals:")
        .nth(1)
        .unwrap()
        .split("Critical Options:")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(principals, [user.as_str()], "{listing}");
    let extensions = listing.split("Extensions:").nth(1).unwrap();
    assert!(extensions.contains("permit-pty"), "{listing}");
    assert!(extensions.contains("permit-agent-forwarding"), "{listing}");
    assert!(!extensions.contains("permit-X11-forwarding"), "{listing}");
    // Valid: from <t - 30 s> to <t + 10 min>: 10 min 30 s apart.
    let valid = listing
        .lines()
        .find(|l| l.trim_start().starts_with("Valid:"))
        .unwrap();
    let times: Vec<&str> = valid
        .split_whitespace()
        .filter(|w| w.contains('T'))
        .collect();
    assert_eq!(times.len(), 2, "{valid}");
    assert_eq!(
        unix_seconds(times[1]) - unix_seconds(times[0]),
        630,
        "{valid}"
    );

    // (b) a real sshd trusting the engine's CA.
    let sshd = Sshd::start(dir.path(), &ca_file);
    let out = sshd.ssh(&key, &cert, &user, "echo logged-in-as-$(id -un)");
    assert!(
        out.status.success(),
        "ssh failed: {}\nsshd log:\n{}",
        text(&out),
        std::fs::read_to_string(&sshd.log).unwrap_or_default()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("logged-in-as-{user}")
    );

    // A certificate for another principal does not log the user in.
    let other = dir.path().join("id_other");
    keygen(&other);
    let (_, other_cert) = sign(
        &s,
        "users",
        &other,
        json!({"valid_principals": "someone-else"}),
    );
    let out = sshd.ssh(&other, &other_cert, &user, "true");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));

    // Nor does a certificate from another CA for the right principal.
    let (status, _) = s.root(
        "POST",
        "ssh/issuers/import/second",
        Some(json!({"key_type": "ed25519"})),
    );
    assert_eq!(status, 200);
    let (status, _) = s.root(
        "POST",
        "ssh/roles/second",
        Some(json!({"key_type": "ca", "allow_user_certificates": true,
                    "allowed_users": user, "issuer_ref": "second"})),
    );
    assert_eq!(status, 204);
    let third = dir.path().join("id_third");
    keygen(&third);
    let (_, third_cert) = sign(&s, "second", &third, json!({"valid_principals": user}));
    let out = sshd.ssh(&third, &third_cert, &user, "true");
    assert!(!out.status.success(), "{}", text(&out));

    // The engine refuses to sign a principal the role does not allow, in Vault's error shape.
    let public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let (status, r) = s.root(
        "POST",
        "ssh/sign/users",
        Some(json!({"public_key": public, "valid_principals": "root,mallory"})),
    );
    assert_eq!(status, 400, "{r}");
    assert_eq!(
        r,
        json!({"errors": ["mallory is not a valid value for valid_principals"]})
    );
}

#[test]
fn issued_key_pairs_log_in_and_otps_are_single_use_over_http() {
    require_openssh();
    let s = dev_server();
    let dir = tempfile::tempdir().unwrap();
    let user = current_user();
    s.root("POST", "sys/mounts/ssh", Some(json!({"type": "ssh"})));
    let (status, ca) = s.root(
        "POST",
        "ssh/config/ca",
        Some(json!({"key_type": "rsa", "key_bits": 2048})),
    );
    assert_eq!(status, 200, "{ca}");
    let ca_file = dir.path().join("ca.pub");
    std::fs::write(&ca_file, ca["data"]["public_key"].as_str().unwrap()).unwrap();
    s.root(
        "POST",
        "ssh/roles/users",
        Some(json!({"key_type": "ca", "allow_user_certificates": true,
                    "allowed_users": user, "algorithm_signer": "rsa-sha2-512"})),
    );
    // issue: the key pair comes from the engine; ssh uses it as is.
    let (status, r) = s.root(
        "POST",
        "ssh/issue/users",
        Some(json!({"key_type": "ec", "key_bits": 256, "valid_principals": user})),
    );
    assert_eq!(status, 200, "{r}");
    let key = dir.path().join("issued");
    std::fs::write(&key, r["data"]["private_key"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cert = dir.path().join("issued-cert.pub");
    std::fs::write(&cert, r["data"]["signed_key"].as_str().unwrap()).unwrap();
    let listing = text(&run(Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&cert)));
    assert!(listing.contains("(using rsa-sha2-512)"), "{listing}");
    let sshd = Sshd::start(dir.path(), &ca_file);
    let out = sshd.ssh(&key, &cert, &user, "echo ok");
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        std::fs::read_to_string(&sshd.log).unwrap_or_default()
    );

    // OTP over HTTP: verify is unauthenticated and works once.
    s.root(
        "POST",
        "ssh/roles/otp",
        Some(json!({"key_type": "otp", "default_user": user, "cidr_list": "127.0.0.0/8"})),
    );
    let (status, r) = s.root("POST", "ssh/creds/otp", Some(json!({"ip": "127.0.0.1"})));
    assert_eq!(status, 200, "{r}");
    assert!(r["lease_id"]
        .as_str()
        .unwrap()
        .starts_with("ssh/creds/otp/"));
    let otp = r["data"]["key"].as_str().unwrap().to_string();
    let (status, v) = s.call("POST", "ssh/verify", None, Some(json!({"otp": otp})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["username"], user);
    let (status, v) = s.call("POST", "ssh/verify", None, Some(json!({"otp": otp})));
    assert_eq!((status, v), (400, json!({"errors": ["OTP not found"]})));
    // Errors are 4xx in Vault's shape.
    let (status, v) = s.root("POST", "ssh/sign/nope", Some(json!({"public_key": "x"})));
    assert_eq!(
        (status, v),
        (400, json!({"errors": ["Unknown role: nope"]}))
    );
}
