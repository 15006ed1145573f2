//! Tidying through a real core: a manual `tidy` removes expired certificates (and expired
//! revocations, which leave the CRL) past the safety buffer and keeps the rest; `config/auto-tidy`
//! makes the core's periodic tick do the same on its own.

mod pki_common;

use pki_common::{s, Env};
use serde_json::{json, Value};
use std::time::Duration;
use tresor_core::logical::Operation;

async fn certs(env: &Env) -> Vec<String> {
    match env.call(Operation::List, "pki/certs", json!({})).await {
        Ok(r) => r.data.unwrap()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(s)
            .collect(),
        Err(_) => vec![],
    }
}

async fn wait_finished(env: &Env) -> Value {
    for _ in 0..100 {
        let st = env.read("pki/tidy-status").await;
        if st["state"] == "Finished" {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tidy did not finish");
}

#[tokio::test]
async fn pki_tidy_removes_only_expired_certificates() {
    let env = Env::new().await;
    env.root_ca("pki", json!({})).await;
    env.write(
        "pki/roles/r",
        json!({ "allow_any_name": true, "key_type": "ec", "not_before_duration": "0s" }),
    )
    .await;
    let short = env
        .write(
            "pki/issue/r",
            json!({ "common_name": "short.example.com", "ttl": "1s" }),
        )
        .await;
    let revoked = env
        .write(
            "pki/issue/r",
            json!({ "common_name": "rev.example.com", "ttl": "2s" }),
        )
        .await;
    let long = env
        .write(
            "pki/issue/r",
            json!({ "common_name": "long.example.com", "ttl": "1h" }),
        )
        .await;
    env.write(
        "pki/revoke",
        json!({ "serial_number": revoked["serial_number"] }),
    )
    .await;
    let (_, _, crl) = env.raw(Operation::Read, "pki/crl", json!({})).await;
    let (_, parsed) = x509_parser::parse_x509_crl(&crl).unwrap();
    assert_eq!(parsed.iter_revoked_certificates().count(), 1);

    // Nothing selected: 202 with Vault's warning, nothing happens.
    let r = env
        .call(Operation::Update, "pki/tidy", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, Some(202));
    assert!(r.warnings[0].starts_with("Manual tidy requested but no tidy operations were set"));

    tokio::time::sleep(Duration::from_millis(4200)).await;
    let r = env
        .call(
            Operation::Update,
            "pki/tidy",
            json!({ "tidy_cert_store": true, "tidy_revoked_certs": true, "safety_buffer": "1s" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, Some(202));
    let st = wait_finished(&env).await;
    assert_eq!(st["tidy_cert_store"], true);
    assert!(
        st["cert_store_deleted_count"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert_eq!(st["revoked_cert_deleted_count"], 1, "{st}");

    let left = certs(&env).await;
    assert!(left.contains(&s(&long["serial_number"])), "{left:?}");
    assert!(!left.contains(&s(&short["serial_number"])), "{left:?}");
    assert!(!left.contains(&s(&revoked["serial_number"])), "{left:?}");
    // The expired revocation left the CRL.
    let (_, _, crl) = env.raw(Operation::Read, "pki/crl", json!({})).await;
    let (_, parsed) = x509_parser::parse_x509_crl(&crl).unwrap();
    assert_eq!(parsed.iter_revoked_certificates().count(), 0);
    // The default safety buffer (72h) keeps everything.
    env.write(
        "pki/issue/r",
        json!({ "common_name": "s2.example.com", "ttl": "1s" }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.write("pki/tidy", json!({ "tidy_cert_store": true }))
        .await;
    wait_finished(&env).await;
    assert_eq!(certs(&env).await.len(), left.len() + 1);

    let r = env
        .call(Operation::Update, "pki/tidy-cancel", json!({}))
        .await
        .unwrap();
    assert_eq!(
        r.warnings,
        vec!["Tidy operation cannot be cancelled as none is currently running.".to_string()]
    );
}

#[tokio::test]
async fn pki_auto_tidy_runs_from_the_periodic_tick() {
    let env = Env::new().await;
    env.root_ca("pki", json!({})).await;
    let d = env.read("pki/config/auto-tidy").await;
    assert_eq!(
        (d["enabled"].clone(), d["interval_duration"].clone()),
        (json!(false), json!(43200))
    );
    env.write(
        "pki/roles/r",
        json!({ "allow_any_name": true, "key_type": "ec", "not_before_duration": "0s" }),
    )
    .await;
    let short = env
        .write(
            "pki/issue/r",
            json!({ "common_name": "short.example.com", "ttl": "1s" }),
        )
        .await;
    let long = env
        .write(
            "pki/issue/r",
            json!({ "common_name": "long.example.com", "ttl": "1h" }),
        )
        .await;
    let e = env
        .call(
            Operation::Update,
            "pki/config/auto-tidy",
            json!({ "enabled": true }),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400);
    let cfg = env
        .write(
            "pki/config/auto-tidy",
            json!({ "enabled": true, "interval_duration": "1s", "tidy_cert_store": true, "safety_buffer": "1s" }),
        )
        .await;
    assert_eq!(cfg["enabled"], true);
    assert_eq!(cfg["interval_duration"], 1);
    let mut gone = false;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left = certs(&env).await;
        if !left.contains(&s(&short["serial_number"])) {
            assert!(left.contains(&s(&long["serial_number"])));
            gone = true;
            break;
        }
    }
    assert!(gone, "auto-tidy did not remove the expired certificate");
    let st = env.read("pki/tidy-status").await;
    assert!(
        !st["last_auto_tidy_finished"].is_null() || st["state"] == "Running",
        "{st}"
    );
}
