//! userpass end to end through `Core::handle`: users, login and its denials (wrong password,
//! unknown user, CIDR bounds, lockout), timing of unknown users, and password storage.
//! Expected shapes, messages and status codes are those OpenBao's server answers.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const U: &str = "auth/userpass";

async fn login(
    e: &Env,
    user: &str,
    password: &str,
    remote: Option<&str>,
) -> Result<tresor_core::logical::Response, tresor_core::Error> {
    e.anon(
        Update,
        &format!("{U}/login/{user}"),
        json!({ "password": password }),
        remote,
    )
    .await
}

#[tokio::test]
async fn user_crud_and_shapes() {
    let e = env().await;
    assert_eq!(
        err(e.root(List, &format!("{U}/users"), json!({})).await).0,
        404
    );
    e.root(Update, &format!("{U}/users/Alice"), json!({ "password": "pw1", "policies": "a,b", "token_ttl": "1h", "token_bound_cidrs": "127.0.0.1/32" })).await.unwrap();
    let r = data(
        &e.root(Read, &format!("{U}/users/alice"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        r,
        json!({
            "policies": ["a", "b"], "token_bound_cidrs": ["127.0.0.1"], "token_explicit_max_ttl": 0,
            "token_max_ttl": 0, "token_no_default_policy": false, "token_num_uses": 0,
            "token_period": 0, "token_policies": ["a", "b"], "token_strictly_bind_ip": false,
            "token_ttl": 3600, "token_type": "default",
        })
    );
    assert_eq!(
        data(
            &e.root(Read, &format!("{U}/users/ALICE"), json!({}))
                .await
                .unwrap()
        ),
        r,
        "usernames are case-insensitive"
    );
    assert_eq!(
        data(
            &e.root(List, &format!("{U}/users"), json!({}))
                .await
                .unwrap()
        )["keys"],
        json!(["alice"])
    );
    // Deprecated fields.
    e.root(Update, &format!("{U}/users/carl"), json!({ "password": "pw", "policies": "not_root", "ttl": "10s", "max_ttl": "20s", "bound_cidrs": "127.0.0.0/8" })).await.unwrap();
    let c = data(
        &e.root(Read, &format!("{U}/users/carl"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(
        (
            c["ttl"].clone(),
            c["max_ttl"].clone(),
            c["bound_cidrs"].clone()
        ),
        (json!(10), json!(20), json!(["127.0.0.0/8"]))
    );
    assert_eq!(
        (
            c["token_ttl"].clone(),
            c["token_max_ttl"].clone(),
            c["token_bound_cidrs"].clone()
        ),
        (json!(10), json!(20), json!(["127.0.0.0/8"]))
    );
    // An update without a password keeps it; the new-name field clears the old alias.
    e.root(
        Update,
        &format!("{U}/users/carl"),
        json!({ "token_ttl": "15s" }),
    )
    .await
    .unwrap();
    let c = data(
        &e.root(Read, &format!("{U}/users/carl"), json!({}))
            .await
            .unwrap(),
    );
    assert!(c.get("ttl").is_none());
    assert_eq!(c["token_ttl"], 15);
    login(&e, "carl", "pw", Some("127.0.0.1")).await.unwrap();
    // Password and policies sub-paths.
    e.root(
        Update,
        &format!("{U}/users/carl/password"),
        json!({ "password": "new" }),
    )
    .await
    .unwrap();
    assert_eq!(err(login(&e, "carl", "pw", Some("127.0.0.1")).await).0, 400);
    login(&e, "carl", "new", Some("127.0.0.1")).await.unwrap();
    e.root(
        Update,
        &format!("{U}/users/carl/policies"),
        json!({ "token_policies": "c" }),
    )
    .await
    .unwrap();
    let c = data(
        &e.root(Read, &format!("{U}/users/carl"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(c["token_policies"], json!(["c"]));
    assert!(c.get("policies").is_none());
    e.root(
        Update,
        &format!("{U}/users/carl/policies"),
        json!({ "policies": "q" }),
    )
    .await
    .unwrap();
    assert_eq!(
        data(
            &e.root(Read, &format!("{U}/users/carl"), json!({}))
                .await
                .unwrap()
        )["policies"],
        json!(["q"])
    );
    // Errors.
    let must = (
        400,
        "must provide either password or password_hash".to_string(),
    );
    assert_eq!(
        err(e.root(Update, &format!("{U}/users/bob"), json!({})).await),
        must
    );
    assert_eq!(
        err(e
            .root(Update, &format!("{U}/users/bob"), json!({ "password": "" }))
            .await),
        must
    );
    assert_eq!(
        err(e
            .root(Update, &format!("{U}/users/alice/password"), json!({}))
            .await),
        must
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{U}/users/bob"),
                json!({ "password": "x", "password_hash": "y" })
            )
            .await),
        (
            400,
            "only one of password or password_hash may be provided".into()
        )
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{U}/users/nope/password"),
                json!({ "password": "x" })
            )
            .await),
        (400, "username does not exist".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{U}/users/nope/policies"),
                json!({ "policies": "x" })
            )
            .await),
        (400, "username does not exist".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{U}/users/bob"),
                json!({ "password": "x", "token_type": "default-service" })
            )
            .await),
        (400, "invalid 'token_type' value \"default-service\"".into())
    );
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{U}/users/bob"),
                json!({ "password": "x", "token_ttl": "3h", "token_max_ttl": "2h" })
            )
            .await)
        .0,
        400
    );
    assert_eq!(
        err(e.root(Read, &format!("{U}/users/nope"), json!({})).await),
        (404, String::new())
    );
    assert_eq!(
        err(e
            .root(Read, &format!("{U}/users/alice/nope"), json!({}))
            .await)
        .0,
        404
    );
    // Delete.
    assert!(e
        .root(Delete, &format!("{U}/users/carl"), json!({}))
        .await
        .unwrap()
        .is_empty());
    assert!(e
        .root(Delete, &format!("{U}/users/carl"), json!({}))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        err(login(&e, "carl", "new", Some("127.0.0.1")).await),
        (400, "invalid username or password".into())
    );
}

#[tokio::test]
async fn login_issues_a_working_token() {
    let e = env().await;
    let policy = r#"path "auth/userpass/users/alice" { capabilities = ["read"] }"#;
    e.root(
        Update,
        "sys/policies/acl/self-read",
        json!({ "policy": policy }),
    )
    .await
    .unwrap();
    e.root(Update, &format!("{U}/users/alice"), json!({ "password": "s3cret", "token_policies": "self-read", "token_ttl": "10s", "token_num_uses": 0 })).await.unwrap();
    let r = login(&e, "Alice", "s3cret", Some("127.0.0.1"))
        .await
        .unwrap();
    assert!(r.data.is_none());
    let auth = r.auth.unwrap();
    assert_eq!(auth.policies, vec!["default", "self-read"]);
    assert_eq!(
        auth.lease_duration, 10,
        "hvac's test_create_userpass: ttl=10s gives lease_duration 10"
    );
    assert!(auth.renewable);
    assert_eq!(
        auth.metadata
            .clone()
            .unwrap()
            .get("username")
            .map(String::as_str),
        Some("alice")
    );
    assert_eq!(auth.token_type, "service");
    let me = e.lookup_self(&auth.client_token).await;
    assert_eq!(me["display_name"], "userpass-alice");
    // Vault records the request path (`auth/userpass/login/alice`); the core records the mount's
    // `login` path for every login today.
    assert!(me["path"]
        .as_str()
        .unwrap()
        .starts_with("auth/userpass/login"));
    assert_eq!(me["meta"], json!({ "username": "alice" }));
    // The token's policy is in force, and nothing more.
    e.with(
        &auth.client_token,
        Read,
        &format!("{U}/users/alice"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        err(e
            .with(&auth.client_token, List, &format!("{U}/users"), json!({}))
            .await)
        .0,
        403
    );
    // Without token_ttl, the mount's default applies; periodic users get their period.
    e.root(
        Update,
        "sys/auth/userpass/tune",
        json!({ "default_lease_ttl": "30m" }),
    )
    .await
    .unwrap();
    e.root(
        Update,
        &format!("{U}/users/bob"),
        json!({ "password": "pw" }),
    )
    .await
    .unwrap();
    assert_eq!(
        e.login(
            &format!("{U}/login/bob"),
            json!({ "password": "pw" }),
            "127.0.0.1"
        )
        .await
        .lease_duration,
        1800
    );
    e.root(Update, &format!("{U}/users/per"), json!({ "password": "pw", "token_period": "2h", "token_no_default_policy": true, "token_policies": "p" })).await.unwrap();
    let a = e
        .login(
            &format!("{U}/login/per"),
            json!({ "password": "pw" }),
            "127.0.0.1",
        )
        .await;
    assert_eq!(
        (a.lease_duration, a.policies.clone()),
        (7200, vec!["p".to_string()])
    );
    // Imported argon2id hashes log in.
    let phc = tresor_auth::userpass::password::hash("imported-pw").unwrap();
    e.root(
        Update,
        &format!("{U}/users/imp"),
        json!({ "password_hash": phc }),
    )
    .await
    .unwrap();
    e.login(
        &format!("{U}/login/imp"),
        json!({ "password": "imported-pw" }),
        "127.0.0.1",
    )
    .await;
    let bcrypt = "$2a$10$abcdefghijklmnopqrstuu5Q5ZfTdEJm1oZ0gY6n9s8a9bJq3cXy";
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{U}/users/imp2"),
                json!({ "password_hash": bcrypt })
            )
            .await)
        .0,
        400
    );
}

#[tokio::test]
async fn login_denials() {
    let e = env().await;
    e.root(
        Update,
        &format!("{U}/users/alice"),
        json!({ "password": "pw" }),
    )
    .await
    .unwrap();
    assert_eq!(
        err(login(&e, "alice", "wrong", Some("127.0.0.1")).await),
        (400, "invalid username or password".into())
    );
    assert_eq!(
        err(login(&e, "nobody", "pw", Some("127.0.0.1")).await),
        (400, "invalid username or password".into())
    );
    assert_eq!(
        err(e
            .anon(
                Update,
                &format!("{U}/login/alice"),
                json!({}),
                Some("127.0.0.1")
            )
            .await),
        (400, "missing password".into())
    );
    assert_eq!(err(login(&e, "a/b", "pw", Some("127.0.0.1")).await).0, 404);
    // CIDR bounds: the right password from outside is a 403; a wrong one stays a 400.
    e.root(
        Update,
        &format!("{U}/users/bob"),
        json!({ "password": "pw", "token_bound_cidrs": "10.0.0.0/8" }),
    )
    .await
    .unwrap();
    assert_eq!(
        err(login(&e, "bob", "bad", Some("127.0.0.1")).await),
        (400, "invalid username or password".into())
    );
    assert_eq!(
        err(login(&e, "bob", "pw", Some("127.0.0.1")).await),
        (403, "permission denied".into())
    );
    assert_eq!(
        err(login(&e, "bob", "pw", None).await),
        (403, "permission denied".into())
    );
    login(&e, "bob", "pw", Some("10.20.30.40")).await.unwrap();
    login(&e, "bob", "pw", Some("[::ffff:10.0.0.1]:4242"))
        .await
        .unwrap();
}

#[tokio::test]
async fn lockout_defaults_unlock_and_persistence() {
    let e = env().await;
    e.root(
        Update,
        &format!("{U}/users/alice"),
        json!({ "password": "pw" }),
    )
    .await
    .unwrap();
    assert_eq!(
        data(
            &e.root(Read, &format!("{U}/config/lockout"), json!({}))
                .await
                .unwrap()
        ),
        json!({ "lockout_threshold": 5, "lockout_duration": 900, "lockout_counter_reset_duration": 900, "lockout_disable": false })
    );
    for _ in 0..5 {
        assert_eq!(
            err(login(&e, "alice", "bad", Some("127.0.0.1")).await).0,
            400
        );
    }
    // Locked: even the right password is refused.
    assert_eq!(
        err(login(&e, "alice", "pw", Some("127.0.0.1")).await),
        (403, "permission denied".into())
    );
    let locked = data(
        &e.root(Read, &format!("{U}/locked-users"), json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(locked["alias_identifiers"], json!(["alice"]));
    assert_eq!(locked["details"]["alice"]["failed_login_attempts"], 5);
    // The lock survives a seal and unseal.
    e.reseal().await;
    assert_eq!(
        err(login(&e, "alice", "pw", Some("127.0.0.1")).await).0,
        403
    );
    // An operator unlocks.
    e.root(Update, &format!("{U}/locked-users/unlock/alice"), json!({}))
        .await
        .unwrap();
    login(&e, "alice", "pw", Some("127.0.0.1")).await.unwrap();
    assert_eq!(
        err(e.root(List, &format!("{U}/locked-users"), json!({})).await).0,
        404
    );
    // Unknown users lock the same way (no enumeration through lockout).
    for _ in 0..5 {
        assert_eq!(
            err(login(&e, "ghost", "bad", Some("127.0.0.1")).await).0,
            400
        );
    }
    assert_eq!(
        err(login(&e, "ghost", "bad", Some("127.0.0.1")).await).0,
        403
    );
    // The lockout endpoints need a token.
    assert_eq!(
        err(e
            .anon(
                Read,
                &format!("{U}/locked-users"),
                json!({}),
                Some("127.0.0.1")
            )
            .await)
        .0,
        403
    );
}

#[tokio::test]
async fn lockout_expiry_counter_reset_and_disable() {
    let e = env().await;
    e.root(
        Update,
        &format!("{U}/users/alice"),
        json!({ "password": "pw" }),
    )
    .await
    .unwrap();
    e.root(Update, &format!("{U}/config/lockout"), json!({ "lockout_threshold": "2", "lockout_duration": "2s", "lockout_counter_reset_duration": "2s" })).await.unwrap();
    assert_eq!(
        err(e
            .root(
                Update,
                &format!("{U}/config/lockout"),
                json!({ "lockout_threshold": 0 })
            )
            .await)
        .0,
        400
    );
    // Failures spaced beyond the reset window never lock.
    assert_eq!(
        err(login(&e, "alice", "bad", Some("127.0.0.1")).await).0,
        400
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        err(login(&e, "alice", "bad", Some("127.0.0.1")).await).0,
        400
    );
    login(&e, "alice", "pw", Some("127.0.0.1")).await.unwrap();
    // A success resets the counter too.
    assert_eq!(
        err(login(&e, "alice", "bad", Some("127.0.0.1")).await).0,
        400
    );
    login(&e, "alice", "pw", Some("127.0.0.1")).await.unwrap();
    assert_eq!(
        err(login(&e, "alice", "bad", Some("127.0.0.1")).await).0,
        400
    );
    login(&e, "alice", "pw", Some("127.0.0.1")).await.unwrap();
    // Two quick failures lock; the lock runs out.
    for _ in 0..2 {
        assert_eq!(
            err(login(&e, "alice", "bad", Some("127.0.0.1")).await).0,
            400
        );
    }
    assert_eq!(
        err(login(&e, "alice", "pw", Some("127.0.0.1")).await).0,
        403
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    login(&e, "alice", "pw", Some("127.0.0.1")).await.unwrap();
    // CIDR refusals do not count.
    e.root(
        Update,
        &format!("{U}/users/alice"),
        json!({ "token_bound_cidrs": "10.0.0.0/8" }),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(
            err(login(&e, "alice", "pw", Some("127.0.0.1")).await).0,
            403
        );
    }
    login(&e, "alice", "pw", Some("10.0.0.1")).await.unwrap();
    // Disabled: no lock however many failures.
    e.root(
        Update,
        &format!("{U}/config/lockout"),
        json!({ "lockout_disable": true }),
    )
    .await
    .unwrap();
    for _ in 0..4 {
        assert_eq!(
            err(login(&e, "alice", "bad", Some("10.0.0.1")).await).0,
            400
        );
    }
    login(&e, "alice", "pw", Some("10.0.0.1")).await.unwrap();
    // Deleting the config restores the defaults.
    e.root(Delete, &format!("{U}/config/lockout"), json!({}))
        .await
        .unwrap();
    assert_eq!(
        data(
            &e.root(Read, &format!("{U}/config/lockout"), json!({}))
                .await
                .unwrap()
        )["lockout_threshold"],
        5
    );
}

#[tokio::test]
async fn parallel_guesses_cannot_exceed_the_threshold() {
    let e = std::sync::Arc::new(env().await);
    e.root(
        Update,
        &format!("{U}/users/alice"),
        json!({ "password": "pw" }),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            login(&e, "alice", "bad", Some("127.0.0.1"))
                .await
                .unwrap_err()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    // At most `threshold` guesses were checked; the rest were refused outright.
    assert!(
        statuses.iter().filter(|s| **s == 400).count() <= 5,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 400 || *s == 403));
    assert_eq!(
        err(login(&e, "alice", "pw", Some("127.0.0.1")).await).0,
        403
    );
}

#[tokio::test]
async fn unknown_users_cost_as_much_as_wrong_passwords() {
    let e = env().await;
    e.root(
        Update,
        &format!("{U}/config/lockout"),
        json!({ "lockout_disable": true }),
    )
    .await
    .unwrap();
    e.root(
        Update,
        &format!("{U}/users/alice"),
        json!({ "password": "pw" }),
    )
    .await
    .unwrap();
    // Warm up both paths.
    let _ = login(&e, "alice", "bad", Some("127.0.0.1")).await;
    let _ = login(&e, "nobody", "bad", Some("127.0.0.1")).await;
    let time = |user: &'static str| {
        let e = &e;
        async move {
            let t = Instant::now();
            assert_eq!(err(login(e, user, "bad", Some("127.0.0.1")).await).0, 400);
            t.elapsed()
        }
    };
    // Interleaved, best of five each: a busy moment slows both alike.
    let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        known = known.min(time("alice").await);
        unknown = unknown.min(time("nobody").await);
    }
    // Without the dummy hash an unknown user would answer in microseconds, three orders of
    // magnitude faster; the bound is loose so a busy machine cannot make it flaky.
    assert!(
        unknown * 10 >= known,
        "unknown {unknown:?} vs known {known:?}"
    );
    assert!(unknown >= Duration::from_millis(1), "{unknown:?}");
}

#[tokio::test]
async fn passwords_are_stored_only_as_argon2id_hashes() {
    let e = env().await;
    let pw = "a-very-distinctive-password";
    e.root(
        Update,
        &format!("{U}/users/alice"),
        json!({ "password": pw }),
    )
    .await
    .unwrap();
    login(&e, "alice", pw, Some("127.0.0.1")).await.unwrap();
    let mut found_hash = false;
    for (k, v) in e.dump().await {
        assert!(!contains(&v, pw), "{k} holds the password");
        if k.ends_with("/user/alice") {
            found_hash = contains(&v, "$argon2id$v=19$m=19456,t=2,p=1$");
        }
    }
    assert!(found_hash);
    // Reads never show it.
    let r = data(
        &e.root(Read, &format!("{U}/users/alice"), json!({}))
            .await
            .unwrap(),
    );
    assert!(r.get("password").is_none() && r.get("password_hash").is_none());
}

#[tokio::test]
async fn many_concurrent_correct_logins_all_succeed_and_wrong_ones_stay_bounded() {
    let e = std::sync::Arc::new(env().await);
    e.root(
        Update,
        &format!("{U}/users/svc"),
        json!({ "password": "right" }),
    )
    .await
    .unwrap();
    // Twenty clients sharing one user log in at once: none is refused (they wait for a slot
    // under the failure budget instead).
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move {
                login(&e, "svc", "right", None)
                    .await
                    .map(|r| r.auth.is_some())
            })
        })
        .collect();
    for t in tasks {
        assert!(
            t.await.unwrap().unwrap(),
            "a correct login was refused under concurrency"
        );
    }
    // Twenty parallel wrong guesses: at most the threshold (5) are checked before the lock.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move {
                login(&e, "svc", "wrong", None)
                    .await
                    .map(|_| ())
                    .unwrap_err()
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 400).count();
    assert!(
        checked <= 5,
        "{checked} wrong passwords were checked: {statuses:?}"
    );
    // Locked now, even with the right password.
    assert_eq!(err(login(&e, "svc", "right", None).await).0, 403);
}
