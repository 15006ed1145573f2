//! The server's configuration through the real binary: `-config` naming a directory loads
//! every `.hcl`/`.json` file in it, and keys the server does not act on are named in its log.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_config_directory_loads_and_unused_keys_are_named_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("10-storage.hcl"),
        format!(
            "storage \"file\" {{ path = \"{}\" }}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20-listener.hcl"),
        format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("30-extra.json"),
        r#"{"max_lease_tll": "1h", "ui": true, "disable_mlock": true}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["server", &format!("-config={}", dir.path().display())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Every file counted: it listens where 20-listener.hcl says.
    let client = client();
    let addr = format!("http://127.0.0.1:{port}");
    wait_ready(&addr, &client);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push(line);
        }
        let all = log.join("\n");
        if all.contains("max_lease_tll") && all.contains("\"ui\"") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = log.join("\n");
    assert!(
        all.contains("unknown configuration key \"max_lease_tll\""),
        "{all}"
    );
    assert!(
        all.contains("configuration key \"ui\" has no effect"),
        "{all}"
    );
    assert!(
        !all.contains("disable_mlock\" "),
        "a key Tresor reads was named: {all}"
    );
}
