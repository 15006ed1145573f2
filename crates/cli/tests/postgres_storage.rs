//! `storage "postgresql"` through the real binary: a server keeps its data in PostgreSQL
//! across restarts, and two server processes on one database spend single-use things
//! exactly once between them (the conditional write is checked by PostgreSQL, under one row
//! lock, not by either process).
//!
//! Uses the PostgreSQL on 127.0.0.1:5432 (user postgres, trust), each test in tables of its
//! own, dropped at the end.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::{Arc, Barrier};

struct Tables(String);

impl Tables {
    fn new(tag: &str) -> Tables {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Tables(format!("cli_{tag}_{n}"))
    }
    fn config(&self, port: u16) -> String {
        format!(
            "storage \"postgresql\" {{\n  connection_url = \"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable\"\n  table = \"{0}_kv\"\n  ha_table = \"{0}_ha\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n",
            self.0
        )
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-qc"])
            .arg(format!(
                "DROP TABLE IF EXISTS {0}_kv, {0}_kv_changes, {0}_ha, {0}_ha_nodes",
                self.0
            ))
            .status();
    }
}

fn server(dir: &std::path::Path, name: &str, tables: &Tables) -> Server {
    let port = free_port();
    let cfg = dir.join(format!("{name}.hcl"));
    std::fs::write(&cfg, tables.config(port)).unwrap();
    spawn_server(&[format!("-config={}", cfg.display())], port)
}

#[test]
fn data_lives_in_postgresql_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Tables::new("restart");
    let s = server(dir.path(), "a", &tables);
    let (key, root) = s.init_and_unseal();
    let (st, _) = s.call(
        "POST",
        "sys/mounts/secret",
        Some(&root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    let (st, _) = s.call(
        "POST",
        "secret/data/app",
        Some(&root),
        Some(json!({"data": {"password": "p4ss"}})),
    );
    assert_eq!(st, 200);
    drop(s);
    let s = server(dir.path(), "a", &tables);
    let (_, status) = s.call("GET", "sys/seal-status", None, None);
    assert_eq!(status["initialized"], true);
    assert_eq!(status["storage_type"], "postgresql");
    s.unseal(&key);
    let (st, read) = s.call("GET", "secret/data/app", Some(&root), None);
    assert_eq!(st, 200, "{read}");
    assert_eq!(read["data"]["data"]["password"], "p4ss");
}

#[test]
fn two_processes_on_one_database_unwrap_a_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Tables::new("race");
    let a = server(dir.path(), "a", &tables);
    let (key, root) = a.init_and_unseal();
    let b = server(dir.path(), "b", &tables);
    b.unseal(&key);
    let addrs = [a.addr.clone(), b.addr.clone()];
    for trial in 0..100 {
        let r = a
            .client
            .post(format!("{}/v1/sys/wrapping/wrap", a.addr))
            .header("X-Vault-Token", &root)
            .header("X-Vault-Wrap-TTL", "5m")
            .json(&json!({"n": trial}))
            .send()
            .unwrap();
        let w: Value = r.json().unwrap();
        let token = w["wrap_info"]["token"].as_str().unwrap().to_string();
        let gate = Arc::new(Barrier::new(20));
        let racers: Vec<_> = (0..20)
            .map(|i| {
                let (gate, token, addr) = (gate.clone(), token.clone(), addrs[i % 2].clone());
                std::thread::spawn(move || {
                    let c = reqwest::blocking::Client::new();
                    gate.wait();
                    c.post(format!("{addr}/v1/sys/wrapping/unwrap"))
                        .json(&json!({ "token": token }))
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        let statuses: Vec<u16> = racers.into_iter().map(|h| h.join().unwrap()).collect();
        let won = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!(won, 1, "trial {trial}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 400),
            "{statuses:?}"
        );
    }
}

/// `tresor operator migrate`: a file store's data, copied into PostgreSQL and back, opens with
/// the same unseal key and holds the same secrets; a source in use or a destination that is
/// not empty is refused.
#[test]
fn operator_migrate_moves_data_between_file_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let tables = Tables::new("migrate");
    let port = free_port();
    let file_server = durable_server(dir.path(), port);
    let (key, root) = file_server.init_and_unseal();
    let (st, _) = file_server.call(
        "POST",
        "sys/mounts/secret",
        Some(&root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    for i in 0..1200 {
        let (st, _) = file_server.call(
            "POST",
            &format!("cubbyhole/k{i}"),
            Some(&root),
            Some(json!({"v": i})),
        );
        assert_eq!(st, 204);
    }
    let (st, _) = file_server.call(
        "POST",
        "secret/data/app",
        Some(&root),
        Some(json!({"data": {"password": "p4ss"}})),
    );
    assert_eq!(st, 200);
    let pg_block = format!(
        "storage_destination \"postgresql\" {{\n  connection_url = \"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable\"\n  table = \"{0}_kv\"\n  ha_table = \"{0}_ha\"\n}}\n",
        tables.0
    );
    let to_pg = dir.path().join("to-pg.hcl");
    std::fs::write(
        &to_pg,
        format!(
            "storage_source \"file\" {{ path = \"{}\" }}\n{pg_block}",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let migrate = |cfg: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_tresor"))
            .args(["operator", "migrate", &format!("-config={}", cfg.display())])
            .output()
            .unwrap()
    };
    // The source is in use: its server holds the file.
    let busy = migrate(&to_pg);
    assert!(!busy.status.success());
    drop(file_server);
    let done = migrate(&to_pg);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout)
        .contains("Success! All of the keys have been migrated"));
    // Again into the same (now full) destination: refused.
    let again = migrate(&to_pg);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // A server on the destination unseals with the old key and has everything.
    let pg_server = server(dir.path(), "pg", &tables);
    pg_server.unseal(&key);
    let (st, read) = pg_server.call("GET", "secret/data/app", Some(&root), None);
    assert_eq!(st, 200, "{read}");
    assert_eq!(read["data"]["data"]["password"], "p4ss");
    let (st, c) = pg_server.call("GET", "cubbyhole/k1199", Some(&root), None);
    assert_eq!((st, c["data"]["v"].as_i64()), (200, Some(1199)));
    drop(pg_server);

    // And back into a fresh file store.
    let back_dir = dir.path().join("back");
    let to_file = dir.path().join("to-file.hcl");
    std::fs::write(
        &to_file,
        format!(
            "{}storage_destination \"file\" {{ path = \"{}\" }}\n",
            pg_block.replace("storage_destination", "storage_source"),
            back_dir.join("data").display()
        ),
    )
    .unwrap();
    let done = migrate(&to_file);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let back = durable_server(&back_dir, free_port());
    back.unseal(&key);
    let (st, read) = back.call("GET", "secret/data/app", Some(&root), None);
    assert_eq!(st, 200, "{read}");
    assert_eq!(read["data"]["data"]["password"], "p4ss");
}
