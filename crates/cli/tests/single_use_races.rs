//! Single use stays single use under a race: the real binary on the durable file store, many
//! trials of 20 requests released at the same instant (each on its own connection), all
//! trying to spend the same thing. Each thing must be spent exactly as often as it allows.
//!
//! The mechanism under test is the storage's conditional write (`View::update`); these tests
//! are what showed the old read-decrement-save overspending (a wrapping token unwrapped up to
//! 6 times, a one-use token spent up to 5 times).

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};

const RACERS: usize = 20;

/// Starts a durable server, initialized and unsealed; returns it and its root token.
fn server() -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let s = durable_server(dir.path(), free_port());
    let (_, root) = s.init_and_unseal();
    (dir, s, root)
}

/// Runs `RACERS` copies of `request` released together; returns the statuses and bodies.
fn race(
    s: &Server,
    request: impl Fn(&reqwest::blocking::Client, &str) -> (u16, Value) + Send + Sync + 'static,
) -> Vec<(u16, Value)> {
    let gate = Arc::new(Barrier::new(RACERS));
    let request = Arc::new(request);
    let handles: Vec<_> = (0..RACERS)
        .map(|_| {
            let (gate, request, addr) = (gate.clone(), request.clone(), s.addr.clone());
            std::thread::spawn(move || {
                // One connection per racer, opened before the gate.
                let client = reqwest::blocking::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let _ = client.get(format!("{addr}/v1/sys/health")).send();
                gate.wait();
                request(&client, &addr)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn send(rb: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn successes(results: &[(u16, Value)]) -> usize {
    for (status, body) in results {
        assert!(
            matches!(status, 200 | 204 | 400 | 403),
            "unexpected answer {status}: {body}"
        );
    }
    results.iter().filter(|(s, _)| *s == 200).count()
}

#[test]
fn a_wrapped_secret_is_unwrapped_once() {
    let (_dir, s, root) = server();
    for trial in 0..200 {
        let (st, wrapped) = send(
            s.client
                .post(format!("{}/v1/sys/wrapping/wrap", s.addr))
                .header("X-Vault-Token", &root)
                .header("X-Vault-Wrap-TTL", "5m")
                .json(&json!({"secret": format!("s3cr3t-{trial}")})),
        );
        assert_eq!(st, 200, "{wrapped}");
        let token = wrapped["wrap_info"]["token"].as_str().unwrap().to_string();
        // Half the trials present the wrapping token as the request token, half in the body.
        let in_body = trial % 2 == 0;
        let results = race(&s, move |c, addr| {
            let rb = c.post(format!("{addr}/v1/sys/wrapping/unwrap"));
            send(if in_body {
                rb.header("X-Vault-Token", "")
                    .json(&json!({ "token": token }))
            } else {
                rb.header("X-Vault-Token", &token)
            })
        });
        assert_eq!(successes(&results), 1, "trial {trial}: {results:?}");
        let (_, body) = results.iter().find(|(s, _)| *s == 200).unwrap();
        assert_eq!(body["data"]["secret"], format!("s3cr3t-{trial}"));
    }
}

#[test]
fn limited_use_tokens_are_spent_exactly() {
    let (_dir, s, root) = server();
    for trial in 0..200 {
        let uses = [1, 3, 7][trial % 3];
        let (st, created) = s.call(
            "POST",
            "auth/token/create",
            Some(&root),
            Some(json!({"num_uses": uses, "policies": ["default"]})),
        );
        assert_eq!(st, 200, "{created}");
        let token = created["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        let results = race(&s, move |c, addr| {
            send(
                c.get(format!("{addr}/v1/auth/token/lookup-self"))
                    .header("X-Vault-Token", &token),
            )
        });
        assert_eq!(successes(&results), uses, "trial {trial}: {results:?}");
    }
}

#[test]
fn approle_secret_id_uses_are_spent_exactly() {
    let (_dir, s, root) = server();
    let (st, _) = s.call(
        "POST",
        "sys/auth/approle",
        Some(&root),
        Some(json!({"type": "approle"})),
    );
    assert_eq!(st, 204);
    let (st, _) = s.call(
        "POST",
        "auth/approle/role/app",
        Some(&root),
        Some(json!({"token_policies": ["default"], "secret_id_num_uses": 0})),
    );
    assert_eq!(st, 204);
    // The losers' failed logins would lock the role out (Vault's user lockout).
    let (st, _) = s.call(
        "POST",
        "auth/approle/config/lockout",
        Some(&root),
        Some(json!({"lockout_disable": true})),
    );
    assert_eq!(st, 204);
    let (_, role_id) = s.call("GET", "auth/approle/role/app/role-id", Some(&root), None);
    let role_id = role_id["data"]["role_id"].as_str().unwrap().to_string();
    for trial in 0..120 {
        let uses = [1, 2, 5][trial % 3];
        let (st, secret) = s.call(
            "POST",
            "auth/approle/role/app/secret-id",
            Some(&root),
            Some(json!({ "num_uses": uses })),
        );
        assert_eq!(st, 200, "{secret}");
        let secret_id = secret["data"]["secret_id"].as_str().unwrap().to_string();
        let role_id = role_id.clone();
        let results = race(&s, move |c, addr| {
            send(
                c.post(format!("{addr}/v1/auth/approle/login"))
                    .json(&json!({"role_id": role_id, "secret_id": secret_id})),
            )
        });
        assert_eq!(successes(&results), uses, "trial {trial}: {results:?}");
    }
}

#[test]
fn kv_check_and_set_admits_one_writer_per_version() {
    let (_dir, s, root) = server();
    let (st, _) = s.call(
        "POST",
        "sys/mounts/kv",
        Some(&root),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    for trial in 0..100 {
        // cas=0 (create only), then cas=1 on the version the first race produced.
        for cas in [0, 1] {
            let (token, path) = (root.clone(), format!("kv/data/race-{trial}"));
            let results = race(&s, move |c, addr| {
                send(
                    c.post(format!("{addr}/v1/{path}"))
                        .header("X-Vault-Token", &token)
                        .json(&json!({"options": {"cas": cas}, "data": {"n": cas}})),
                )
            });
            assert_eq!(
                successes(&results),
                1,
                "trial {trial} cas {cas}: {results:?}"
            );
        }
        let (_, meta) = s.call(
            "GET",
            &format!("kv/metadata/race-{trial}"),
            Some(&root),
            None,
        );
        assert_eq!(meta["data"]["current_version"], 2, "{meta}");
        assert_eq!(meta["data"]["versions"].as_object().unwrap().len(), 2);
    }
}
