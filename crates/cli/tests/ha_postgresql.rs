//! High availability on PostgreSQL with real processes: three Tresor nodes on one database,
//! one active. Standbys answer health checks with 429 and forward requests to the active node
//! over the cluster port (mutual TLS; a 307 when the client asks not to be forwarded);
//! `sys/step-down` hands over; a `kill -9` of the active node is replaced within
//! seconds and no acknowledged write is lost; a paused active node that wakes up after it was
//! replaced acknowledges nothing.
//!
//! Uses the PostgreSQL on 127.0.0.1:5432 (user postgres, trust), in tables of its own.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Cluster {
    nodes: Vec<Option<Server>>,
    tables: String,
    dir: tempfile::TempDir,
    key: String,
    root: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            unsafe { libc::kill(n.child.id() as i32, libc::SIGCONT) };
        }
        self.nodes.clear();
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-qc"])
            .arg(format!(
                "DROP TABLE IF EXISTS {0}_kv, {0}_ha, {0}_ha_nodes",
                self.tables
            ))
            .status();
    }
}

fn start_node(dir: &std::path::Path, tables: &str, i: usize) -> Server {
    let port = free_port();
    let cluster_port = free_port();
    let cfg = dir.join(format!("node{i}-{port}.hcl"));
    std::fs::write(
        &cfg,
        format!(
            "storage \"postgresql\" {{\n  connection_url = \"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable\"\n  table = \"{tables}_kv\"\n  ha_table = \"{tables}_ha\"\n  ha_enabled = \"true\"\n  lease_ttl = \"2s\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{cluster_port}\"\ndisable_mlock = true\n"
        ),
    )
    .unwrap();
    spawn_server(&[format!("-config={}", cfg.display())], port)
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let tables = format!(
            "ha_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let nodes: Vec<Option<Server>> = (0..n)
            .map(|i| Some(start_node(dir.path(), &tables, i)))
            .collect();
        let (key, root) = nodes[0].as_ref().unwrap().init_and_unseal();
        for n in nodes.iter().skip(1).flatten() {
            n.unseal(&key);
        }
        Cluster {
            nodes,
            tables,
            dir,
            key,
            root,
        }
    }

    /// The index of the one active node, waiting up to `secs` for there to be exactly one.
    fn active(&self, secs: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let actives: Vec<usize> = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
                .filter(|(_, n)| leader(n)["is_self"] == true)
                .map(|(i, _)| i)
                .collect();
            assert!(actives.len() <= 1, "two active nodes: {actives:?}");
            if actives.len() == 1 {
                return actives[0];
            }
            assert!(Instant::now() < deadline, "no active node after {secs}s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().unwrap()
    }
}

fn leader(s: &Server) -> Value {
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    c.get(format!("{}/v1/sys/leader", s.addr))
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

/// SIGSTOP, returning once every thread of the process has stopped: `kill` only starts a group
/// stop, and on a busy machine the other threads can go on serving for milliseconds.
fn pause(s: &Server) {
    let pid = s.child.id();
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    let all_stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                // The state follows the parenthesised command name.
                stat.rsplit(") ")
                    .next()
                    .is_some_and(|rest| rest.starts_with('T'))
            })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !all_stopped() {
        assert!(Instant::now() < deadline, "the process did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A client that does not follow redirects.
fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
fn standbys_forward_and_step_down_hands_over() {
    let c = Cluster::start(3);
    let a = c.active(10);
    let active = c.node(a);
    let standby = c.node((a + 1) % 3);
    // sys/leader everywhere names the active node; health codes as Vault's.
    assert_eq!(leader(standby)["leader_address"], active.addr.as_str());
    assert_eq!(leader(standby)["ha_enabled"], true);
    let health = |s: &Server, q: &str| {
        no_redirects()
            .get(format!("{}/v1/sys/health{q}", s.addr))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(health(active, ""), 200);
    assert_eq!(health(standby, ""), 429);
    assert_eq!(health(standby, "?standbyok=true"), 200);
    assert_eq!(health(standby, "?perfstandbyok=true"), 200);
    // A standby forwards to the active node: the client gets the answer itself.
    let r = no_redirects()
        .get(format!("{}/v1/sys/mounts?x=1", standby.addr))
        .header("X-Vault-Token", &c.root)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mounts: Value = r.json().unwrap();
    assert!(mounts["data"]["sys/"].is_object(), "{mounts}");
    // Asked not to forward, it redirects, keeping path and query.
    let r = no_redirects()
        .get(format!("{}/v1/sys/mounts?x=1", standby.addr))
        .header("X-Vault-Token", &c.root)
        .header("X-Vault-No-Request-Forwarding", "true")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/v1/sys/mounts?x=1", active.addr)
    );
    // Writes through a standby land on the active node.
    let (st, _) = standby.call(
        "POST",
        "sys/mounts/secret",
        Some(&c.root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    let (st, _) = standby.call(
        "POST",
        "secret/data/x",
        Some(&c.root),
        Some(json!({"data": {"v": 1}})),
    );
    assert_eq!(st, 200);
    // sys/ha-status lists the three nodes (heartbeats), the active one marked.
    let deadline = Instant::now() + Duration::from_secs(5);
    let nodes = loop {
        let (st, status) = active.call("GET", "sys/ha-status", Some(&c.root), None);
        assert_eq!(st, 200, "{status}");
        let nodes = status["nodes"].as_array().unwrap().clone();
        assert_eq!(status["data"]["nodes"], status["nodes"]);
        if nodes.len() == 3 || Instant::now() > deadline {
            break nodes;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let marked: Vec<&Value> = nodes.iter().filter(|n| n["active_node"] == true).collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["api_address"], active.addr.as_str());
    // Step-down: another node takes over at once.
    let (st, _) = active.call("POST", "sys/step-down", Some(&c.root), None);
    assert_eq!(st, 204);
    let b = c.active(5);
    assert_ne!(a, b, "the node that stepped down stays out of the contest");
    // Within a standby poll, every node knows the new active node.
    let deadline = Instant::now() + Duration::from_secs(2);
    while leader(c.node(a))["leader_address"] != c.node(b).addr.as_str() {
        assert!(Instant::now() < deadline, "{}", leader(c.node(a)));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (st, read) = c.node(a).call("GET", "secret/data/x", Some(&c.root), None);
    assert_eq!(st, 200, "{read}");
    assert_eq!(read["data"]["data"]["v"], 1);
    let _ = (&c.dir, &c.key);
}

#[test]
fn kill_9_of_the_active_node_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3);
    let a = c.active(10);
    let (st, _) = c.node(a).call(
        "POST",
        "sys/mounts/secret",
        Some(&c.root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    // Writers spread over all nodes, recording every write acknowledged to them.
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = c.nodes.iter().flatten().map(|n| n.addr.clone()).collect();
    let writers: Vec<_> = (0..12)
        .map(|w| {
            let (acked, stop, root) = (acked.clone(), stop.clone(), c.root.clone());
            let addr = addrs[w % addrs.len()].clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("w{w}");
                    let ok = client
                        .post(format!("{addr}/v1/secret/data/{key}"))
                        .header("X-Vault-Token", &root)
                        .json(&json!({"data": {"n": n}}))
                        .send()
                        .is_ok_and(|r| r.status().as_u16() == 200);
                    if ok {
                        acked.lock().unwrap().insert(key, n);
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let killed_at = Instant::now();
    let mut dead = c.nodes[a].take().unwrap();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let b = c.active(15);
    eprintln!("failover after kill -9: {:?}", killed_at.elapsed());
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    // Every acknowledged write is there, at least as new, on every survivor.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 8, "too few writers got through: {acked:?}");
    for n in c.nodes.iter().flatten() {
        for (key, n_acked) in &acked {
            let (st, read) = n.call("GET", &format!("secret/data/{key}"), Some(&c.root), None);
            assert_eq!(st, 200, "{key}: {read}");
            let stored = read["data"]["data"]["n"].as_u64().unwrap();
            assert!(
                stored >= *n_acked,
                "{key}: acknowledged {n_acked}, stored {stored}"
            );
        }
    }
    // The killed node comes back as a standby.
    let revived = start_node(c.dir.path(), &c.tables, a);
    revived.unseal(&c.key);
    c.nodes[a] = Some(revived);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.active(5), b);
}

#[test]
fn a_paused_active_node_acknowledges_nothing_after_it_was_replaced() {
    let c = Cluster::start(2);
    let a = c.active(10);
    let (st, _) = c.node(a).call(
        "POST",
        "sys/mounts/secret",
        Some(&c.root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    let old = c.node(a);
    pause(old);
    // Past its 2s lease, the other node takes over and writes.
    let b = c.active(10);
    assert_ne!(a, b);
    let (st, _) = c.node(b).call(
        "POST",
        "secret/data/k",
        Some(&c.root),
        Some(json!({"data": {"from": "new"}})),
    );
    assert_eq!(st, 200);
    // The old active node wakes up: it commits nothing itself (asked not to forward, it can
    // only redirect or refuse).
    unsafe { libc::kill(old.child.id() as i32, libc::SIGCONT) };
    for _ in 0..20 {
        let r = no_redirects()
            .post(format!("{}/v1/secret/data/k", old.addr))
            .header("X-Vault-Token", &c.root)
            .header("X-Vault-No-Request-Forwarding", "true")
            .json(&json!({"data": {"from": "old"}}))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            status == 307 || status == 503,
            "the replaced node answered {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (st, read) = c.node(b).call("GET", "secret/data/k", Some(&c.root), None);
    assert_eq!(st, 200);
    assert_eq!(read["data"]["data"]["from"], "new");
    assert_eq!(c.active(5), b);
}
