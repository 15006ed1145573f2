//! Unseal with many leases: Vault loads every lease at unseal and stalls for minutes with
//! millions of them; Tresor keeps them in a time-ordered index in storage and loads nothing.
//!
//! `cargo bench -p tresor-core --bench lease_restart` (env `LEASES`, default 1,000,000):
//! 1. a durable (redb) server issues `LEASES` leases through the real lease manager;
//! 2. it is stopped, a new server opens the same file, and we time from the start of unseal to
//!    the first answered request, and to the first lease revoked on time;
//! 3. the same measurement on an empty store is the baseline of the ratio.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tresor_core::core::{Core, CoreConfig, Factory, Registry};
use tresor_core::framework::{Call, Path, PathBackend};
use tresor_core::logical::{Operation, Request, Response, Secret};
use tresor_core::seal::SealConfig;
use tresor_storage::file::FileStorage;

struct Creds;

fn factory() -> Factory {
    Arc::new(|_e| {
        Ok(Arc::new(PathBackend::new(
            Creds,
            vec![Path::new("creds/(?P<name>.+)").op(
                Operation::Read,
                |_b: Arc<Creds>, c: Call| async move {
                    let ttl = c.data.get("ttl").and_then(|v| v.as_u64()).unwrap_or(3600);
                    Ok(Response {
                        data: json!({}).as_object().cloned(),
                        secret: Some(Box::new(Secret {
                            ttl: Duration::from_secs(ttl),
                            renewable: true,
                            ..Default::default()
                        })),
                        ..Default::default()
                    })
                },
            )],
        )))
    })
}

fn core(dir: &std::path::Path) -> Arc<Core> {
    let storage = Arc::new(FileStorage::open(dir).expect("open store"));
    Core::new(
        storage,
        Registry::default().secrets("creds", factory()),
        CoreConfig::default(),
    )
}

/// Time from unseal start to the first answered request.
async fn restart_and_time(
    dir: &std::path::Path,
    key: zeroize::Zeroizing<Vec<u8>>,
    root: &str,
) -> Duration {
    let c = core(dir);
    let start = Instant::now();
    c.submit_unseal_key(key).await.expect("unseal");
    c.handle(Request::new(Operation::Read, "auth/token/lookup-self").with_token(root))
        .await
        .expect("first request");
    let t = start.elapsed();
    c.seal_now();
    t
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("LEASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, root) = {
        let c = core(dir.path());
        let init = c
            .initialize(
                SealConfig {
                    secret_shares: 1,
                    secret_threshold: 1,
                },
                None,
            )
            .await
            .expect("init");
        c.submit_unseal_key(init.keys[0].clone())
            .await
            .expect("unseal");
        c.handle(
            Request::new(Operation::Update, "sys/mounts/db")
                .with_token(&init.root_token)
                .with_data(json!({"type": "creds"})),
        )
        .await
        .expect("mount");
        c.seal_now();
        (init.keys[0].clone(), init.root_token)
    };
    let baseline = restart_and_time(dir.path(), key.clone(), &root).await;

    // Issue the leases concurrently (group commit shares fsyncs); a few expire soon.
    let c = core(dir.path());
    c.submit_unseal_key(key.clone()).await.expect("unseal");
    let started = Instant::now();
    let workers = 256;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (c, root) = (c.clone(), root.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                let ttl = if i < 100 { 5 } else { 86_400 };
                c.handle(
                    Request::new(Operation::Read, format!("db/creds/u{i}"))
                        .with_token(&root)
                        .with_data(json!({ "ttl": ttl })),
                )
                .await
                .expect("issue");
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let issue_time = started.elapsed();
    c.seal_now();
    drop(c);
    println!(
        "issued {n} leases in {:.1}s ({:.0} leases/s)",
        issue_time.as_secs_f64(),
        n as f64 / issue_time.as_secs_f64()
    );

    let with_leases = restart_and_time(dir.path(), key.clone(), &root).await;
    // And the soon-expiring ones are revoked on time after the restart.
    let c = core(dir.path());
    c.submit_unseal_key(key).await.expect("unseal");
    let t0 = Instant::now();
    loop {
        let listed = c
            .handle(
                Request::new(Operation::List, "sys/leases/lookup/db/creds/u1/").with_token(&root),
            )
            .await;
        if listed.is_err() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            panic!("leases were not revoked after the restart");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "unseal -> first request, empty store:          {:>8.1} ms (baseline)",
        baseline.as_secs_f64() * 1e3
    );
    println!(
        "unseal -> first request, {n} leases: {:>8.1} ms",
        with_leases.as_secs_f64() * 1e3
    );
    println!("ratio (with leases / empty):                   {:>8.2}x   target: first request within 1 s", with_leases.as_secs_f64() / baseline.as_secs_f64());
    println!(
        "due leases revoked after restart within:       {:>8.1} s",
        t0.elapsed().as_secs_f64()
    );
}
