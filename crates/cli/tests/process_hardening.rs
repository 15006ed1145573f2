//! The server process keeps its secrets out of core dumps and swap, and its files private:
//! started with an unlimited core size, it makes itself non-dumpable (an abort leaves no core
//! file), its memory is locked, and `-dev` writes `~/.vault-token` readable by its owner only.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn proc_field(pid: u32, file: &str, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/{file}"))
        .to_string()
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn an_aborted_server_leaves_no_core_and_its_memory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    // As the defect report: `ulimit -c unlimited` before starting.
    let mut s = durable_server_with_rlimit(
        dir.path(),
        free_port(),
        libc::RLIMIT_CORE as i32,
        libc::RLIM_INFINITY,
    );
    let (_, root) = s.init_and_unseal();
    let (st, _) = s.call(
        "POST",
        "cubbyhole/x",
        Some(&root),
        Some(serde_json::json!({"secret": "do-not-dump-me"})),
    );
    assert_eq!(st, 204);

    let pid = s.child.id();
    let core_limit = proc_field(pid, "limits", "Max core file size");
    assert!(
        core_limit.split_whitespace().nth(4) == Some("0"),
        "{core_limit}"
    );
    if is_root() {
        // Locked memory shows as VmLck; without CAP_IPC_LOCK the server would have refused
        // to start (disable_mlock is not set).
        let locked: u64 = proc_field(pid, "status", "VmLck")
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(locked > 0, "no memory locked");
    }

    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGABRT) }, 0);
    let status = s.child.wait().unwrap();
    assert!(!status.success());
    let cores: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "a core file was written: {cores:?}");
}

#[test]
fn dev_mode_writes_the_token_file_for_its_owner_only() {
    let home = tempfile::tempdir().unwrap();
    // A world-readable file from an older run is narrowed, not reused as is.
    std::fs::write(home.path().join(".vault-token"), "old").unwrap();
    std::fs::set_permissions(
        home.path().join(".vault-token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _s = dev_server_at_home(home.path());
    let token = home.path().join(".vault-token");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&token).unwrap_or_default() != "root" {
        assert!(Instant::now() < deadline, "token file not written");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
