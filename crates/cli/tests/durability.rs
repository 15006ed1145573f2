//! Crash safety of the durable store: `kill -9` the server in the middle of a concurrent write
//! load, restart it, and check that every write it acknowledged is there.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn kill_9_mid_write_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = durable_server(dir.path(), port);
    let (key, root) = server.init_and_unseal();
    let (st, _) = server.call(
        "POST",
        "sys/mounts/kv",
        Some(&root),
        Some(json!({"type": "kv-v2"})),
    );
    assert_eq!(st, 204);

    let acked: Arc<Mutex<Vec<(usize, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr.clone();
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let (acked, stop, addr, root) =
                (acked.clone(), stop.clone(), addr.clone(), root.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(format!("{addr}/v1/kv/data/t{t}/k{i}"))
                        .header("X-Vault-Token", &root)
                        .json(&json!({"data": {"writer": t, "n": i}}))
                        .send();
                    match r {
                        Ok(r) if r.status().as_u16() == 200 => acked.lock().unwrap().push((t, i)),
                        _ => break, // the server is gone
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load acknowledged too few writes to prove anything: {}",
        acked.len()
    );
    drop(server);

    let server = durable_server(dir.path(), port);
    server.unseal(&key);
    for (t, i) in &acked {
        let (st, r) = server.call("GET", &format!("kv/data/t{t}/k{i}"), Some(&root), None);
        assert_eq!(st, 200, "acknowledged write t{t}/k{i} was lost");
        assert_eq!(r["data"]["data"]["n"], json!(i));
    }
}
