//! The server's configuration through the real binary: `-config` naming a directory loads
//! every `.hcl`/`.json` file in it, and keys the server does not act on are named in its log.

mod common;

use common::*;

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
    // Every file counted: it listens where 20-listener.hcl says.
    let (_server, log) =
        spawn_server_with_log(&[format!("-config={}", dir.path().display())], &[], port);
    let all = read_log_until(&log, |l| {
        l.contains("max_lease_tll") && l.contains("\"ui\"")
    });
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
