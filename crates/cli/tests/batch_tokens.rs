//! Batch tokens through the real binary: Tresor's CLI and OpenBao's (`bao`) create and use
//! them, AppRole logins make them when the role or the mount says so, and what a batch token
//! cannot do fails with Vault's messages.

mod common;

use common::{bao, dev_server, run_cli};
use serde_json::{json, Value};

const CLI: &str = env!("CARGO_BIN_EXE_tresor");

fn ok_json(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_clis_create_and_use_batch_tokens() {
    let server = dev_server();
    let created = ok_json(run_cli(
        CLI,
        &server,
        "root",
        &[
            "token",
            "create",
            "-type=batch",
            "-policy=default",
            "-ttl=10m",
            "-format=json",
        ],
    ));
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("hvb."), "{created}");
    // (Vault's CLI prints its `api.SecretAuth`, which has no token_type: the lookup says it.)
    assert_eq!(created["auth"]["accessor"], "");

    let me = ok_json(run_cli(
        CLI,
        &server,
        &token,
        &["token", "lookup", "-format=json"],
    ));
    assert_eq!(me["data"]["type"], "batch");
    assert_eq!(me["data"]["policies"], json!(["default"]));

    for args in [&["token", "renew"][..], &["token", "revoke", "-self"][..]] {
        let out = run_cli(CLI, &server, &token, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: an API error, as Vault's CLI"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("batch tokens cannot be"), "{args:?}: {err}");
    }
    let out = run_cli(
        CLI,
        &server,
        "root",
        &["token", "create", "-type=sometimes"],
    );
    assert_ne!(out.status.code(), Some(0));

    // OpenBao's CLI, unchanged.
    if let Some(bao) = bao() {
        let created = ok_json(run_cli(
            &bao,
            &server,
            "root",
            &[
                "token",
                "create",
                "-type=batch",
                "-policy=default",
                "-format=json",
            ],
        ));
        let token = created["auth"]["client_token"].as_str().unwrap();
        assert!(token.starts_with("hvb."), "{created}");
        let me = ok_json(run_cli(
            &bao,
            &server,
            token,
            &["token", "lookup", "-format=json"],
        ));
        assert_eq!(me["data"]["type"], "batch");
        let out = run_cli(&bao, &server, token, &["token", "renew"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("batch tokens cannot be renewed"));
    }
}

#[test]
fn approle_logins_make_batch_tokens_as_the_role_and_the_mount_say() {
    let server = dev_server();
    let root = "root";
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        server.call(method, path, token, body)
    };
    assert_eq!(
        call(
            "POST",
            "sys/auth/approle",
            Some(root),
            Some(json!({"type": "approle"}))
        )
        .0,
        204
    );
    let (st, body) = call(
        "POST",
        "auth/approle/role/app",
        Some(root),
        Some(
            json!({"token_type": "batch", "token_ttl": "10m", "bind_secret_id": false, "secret_id_bound_cidrs": ["127.0.0.1/32"]}),
        ),
    );
    assert_eq!(st, 204, "{body}");
    let (_, role_id) = call("GET", "auth/approle/role/app/role-id", Some(root), None);
    let role_id = role_id["data"]["role_id"].as_str().unwrap().to_string();
    let login = || {
        let (st, body) = call(
            "POST",
            "auth/approle/login",
            None,
            Some(json!({"role_id": role_id})),
        );
        assert_eq!(st, 200, "{body}");
        body["auth"].clone()
    };
    let auth = login();
    assert_eq!(auth["token_type"], "batch");
    assert!(auth["client_token"].as_str().unwrap().starts_with("hvb."));
    assert_eq!(auth["renewable"], false);
    assert_eq!(auth["lease_duration"], 600);
    let (st, me) = call(
        "GET",
        "auth/token/lookup-self",
        auth["client_token"].as_str(),
        None,
    );
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["data"]["path"], "auth/approle/login");

    // The mount forces service tokens; `tresor auth tune -token-type` is how an operator says it.
    let out = run_cli(
        CLI,
        &server,
        root,
        &["auth", "tune", "-token-type=service", "approle/"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(login()["token_type"], "service");
    let out = run_cli(
        CLI,
        &server,
        root,
        &["auth", "tune", "-token-type=sometimes", "approle/"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value for 'token_type'"));
    let (_, tuned) = call("GET", "sys/auth/approle/tune", Some(root), None);
    assert_eq!(tuned["data"]["token_type"], "service");

    // A role asking for a use limit with batch tokens is refused when written.
    let (st, body) = call(
        "POST",
        "auth/approle/role/limited",
        Some(root),
        Some(json!({"token_type": "batch", "token_num_uses": 3})),
    );
    assert_eq!(st, 400, "{body}");
}
