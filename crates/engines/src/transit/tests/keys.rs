//! `keys/`, `keys/:name`, `config`, `rotate`, `trim`, `config/keys`.

use super::*;

#[tokio::test]
async fn create_read_list_delete() {
    let env = Env::new().await;
    // Nothing yet: LIST and read are 404.
    assert!(matches!(
        env.err(List, "transit/keys", json!({})).await,
        Error::NotFound
    ));
    assert!(matches!(
        env.err(Read, "transit/keys/k1", json!({})).await,
        Error::NotFound
    ));
    let created = env.ok(Update, "transit/keys/k1", json!({})).await;
    assert_eq!(created["name"], "k1");
    assert_eq!(created["type"], "aes256-gcm96");
    assert_eq!(created["latest_version"], 1);
    assert_eq!(created["min_decryption_version"], 1);
    assert_eq!(created["min_encryption_version"], 0);
    assert_eq!(created["min_available_version"], 0);
    assert_eq!(created["supports_encryption"], true);
    assert_eq!(created["supports_signing"], false);
    assert_eq!(created["supports_derivation"], true);
    assert_eq!(created["deletion_allowed"], false);
    assert_eq!(created["exportable"], false);
    assert_eq!(created["imported_key"], false);
    assert_eq!(created["auto_rotate_period"], 0);
    assert!(created["keys"]["1"].is_i64());
    assert!(created.get("kdf").is_none());
    // Creating again returns the existing key unchanged (the type is ignored).
    let again = env
        .ok(Update, "transit/keys/k1", json!({"type": "ed25519"}))
        .await;
    assert_eq!(again, created);
    assert_eq!(env.ok(Read, "transit/keys/k1", json!({})).await, created);
    env.ok(Update, "transit/keys/a.b-c@d_e", json!({})).await;
    assert_eq!(
        env.ok(List, "transit/keys", json!({})).await["keys"],
        json!(["a.b-c@d_e", "k1"])
    );
    // Deletion needs deletion_allowed.
    env.bad(
        Delete,
        "transit/keys/k1",
        json!({}),
        "error deleting policy k1: deletion is not allowed for this key",
    )
    .await;
    env.bad(
        Delete,
        "transit/keys/nope",
        json!({}),
        "error deleting policy nope: could not delete key; not found",
    )
    .await;
    env.ok(
        Update,
        "transit/keys/k1/config",
        json!({"deletion_allowed": true}),
    )
    .await;
    let r = env.resp(Delete, "transit/keys/k1", json!({})).await;
    assert!(r.is_empty());
    assert!(matches!(
        env.err(Read, "transit/keys/k1", json!({})).await,
        Error::NotFound
    ));
    // A deleted key is gone from the cache too: encrypt does not find it (and re-creates it).
    env.bad(
        Update,
        "transit/decrypt/k1",
        json!({"ciphertext": "vault:v1:AAAA"}),
        "encryption key not found",
    )
    .await;
}

#[tokio::test]
async fn every_key_type_reads_as_vault() {
    let env = Env::new().await;
    for (t, enc, sign, derive) in [
        ("aes128-gcm96", true, false, true),
        ("aes256-gcm96", true, false, true),
        ("chacha20-poly1305", true, false, true),
        ("ed25519", false, true, true),
        ("ecdsa-p256", false, true, false),
        ("ecdsa-p384", false, true, false),
        ("ecdsa-p521", false, true, false),
        ("rsa-2048", true, true, false),
        ("rsa-3072", true, true, false),
        ("hmac", false, false, false),
    ] {
        let k = env
            .ok(Update, &format!("transit/keys/{t}"), json!({"type": t}))
            .await;
        assert_eq!(k["type"], t);
        assert_eq!(k["supports_encryption"], enc, "{t}");
        assert_eq!(k["supports_decryption"], enc, "{t}");
        assert_eq!(k["supports_signing"], sign, "{t}");
        assert_eq!(k["supports_derivation"], derive, "{t}");
        let v1 = &k["keys"]["1"];
        match t {
            "hmac" => {
                assert!(k.get("keys").is_none());
                assert_eq!(k["key_size"], 32);
            }
            "ed25519" => {
                assert_eq!(v1["name"], "ed25519");
                assert_eq!(unb64(v1["public_key"].as_str().unwrap()).len(), 32);
                assert_eq!(v1["certificate_chain"], "");
                assert!(v1["creation_time"].as_str().unwrap().contains('T'));
            }
            t if t.starts_with("ecdsa") || t.starts_with("rsa") => {
                let pk = v1["public_key"].as_str().unwrap();
                assert!(pk.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pk}");
                assert!(pk.ends_with("-----END PUBLIC KEY-----\n"));
                let name = match t {
                    "ecdsa-p256" => "P-256",
                    "ecdsa-p384" => "P-384",
                    "ecdsa-p521" => "P-521",
                    other => other,
                };
                assert_eq!(v1["name"], name);
            }
            _ => assert!(v1.is_i64()),
        }
    }
    let k = env
        .ok(
            Update,
            "transit/keys/h64",
            json!({"type": "hmac", "key_size": 64}),
        )
        .await;
    assert_eq!(k["key_size"], 64);
}

#[tokio::test]
async fn create_validation() {
    let env = Env::new().await;
    env.bad(
        Update,
        "transit/keys/x",
        json!({"type": "foo"}),
        "unknown key type foo",
    )
    .await;
    env.bad(
        Update,
        "transit/keys/x",
        json!({"auto_rotate_period": "10m"}),
        "auto rotate period must be 0 to disable or at least an hour",
    )
    .await;
    env.bad(
        Update,
        "transit/keys/x",
        json!({"convergent_encryption": true}),
        "convergent encryption requires derivation to be enabled",
    )
    .await;
    env.fails(
        Update,
        "transit/keys/x",
        json!({"type": "ecdsa-p256", "derived": true}),
        400,
        "key derivation and convergent encryption not supported for keys of type ecdsa-p256",
    )
    .await;
    env.fails(
        Update,
        "transit/keys/x",
        json!({"type": "ed25519", "derived": true, "convergent_encryption": true}),
        400,
        "convergent encryption not supported for keys of type ed25519",
    )
    .await;
    env.bad(
        Update,
        "transit/keys/x",
        json!({"type": "aes128-gcm96", "key_size": 32}),
        "key_size is not valid for algorithm aes128-gcm96",
    )
    .await;
    env.bad(
        Update,
        "transit/keys/x",
        json!({"type": "hmac", "key_size": 16}),
        "invalid key_size 16",
    )
    .await;
    // None of the failures created the key.
    assert!(matches!(
        env.err(Read, "transit/keys/x", json!({})).await,
        Error::NotFound
    ));
    // Names are Vault's generic names: no slashes, no leading punctuation.
    assert_eq!(
        env.err(Update, "transit/keys/-x", json!({})).await.status(),
        404
    );
    let k = env
        .ok(
            Update,
            "transit/keys/d",
            json!({"derived": true, "convergent_encryption": true, "exportable": true,
                   "allow_plaintext_backup": true, "auto_rotate_period": "24h"}),
        )
        .await;
    assert_eq!(k["derived"], true);
    assert_eq!(k["kdf"], "hkdf_sha256");
    assert_eq!(k["convergent_encryption"], true);
    assert_eq!(k["convergent_encryption_version"], -1);
    assert_eq!(k["exportable"], true);
    assert_eq!(k["allow_plaintext_backup"], true);
    assert_eq!(k["auto_rotate_period"], 86400);
}

#[tokio::test]
async fn config_rotate_and_version_bounds() {
    let env = Env::new().await;
    env.bad(
        Update,
        "transit/keys/nope/config",
        json!({}),
        "no existing key named nope could be found",
    )
    .await;
    env.bad(
        Update,
        "transit/keys/nope/rotate",
        json!({}),
        "key not found",
    )
    .await;
    env.ok(Update, "transit/keys/k", json!({})).await;
    let ct1 = env.encrypt("k", json!({"plaintext": b64(b"one")})).await;
    let r = env.ok(Update, "transit/keys/k/rotate", json!({})).await;
    assert_eq!(r["latest_version"], 2);
    assert_eq!(r["keys"].as_object().unwrap().len(), 2);
    let ct2 = env.encrypt("k", json!({"plaintext": b64(b"two")})).await;
    assert!(ct2.starts_with("vault:v2:"));
    // Old versions keep decrypting.
    assert_eq!(
        env.ok(Update, "transit/decrypt/k", json!({"ciphertext": ct1}))
            .await["plaintext"],
        b64(b"one")
    );
    // Unchanged config answers the key as it is.
    let same = env.ok(Update, "transit/keys/k/config", json!({})).await;
    assert_eq!(same["latest_version"], 2);
    for (body, msg) in [
        (
            json!({"min_decryption_version": 5}),
            "cannot set min decryption version of 5, latest key version is 2",
        ),
        (
            json!({"min_encryption_version": 3}),
            "cannot set min encryption version of 3, latest key version is 2",
        ),
        (
            json!({"min_decryption_version": -1}),
            "min decryption version cannot be negative",
        ),
        (
            json!({"min_encryption_version": -1}),
            "min encryption version cannot be negative",
        ),
        (
            json!({"min_encryption_version": 1, "min_decryption_version": 2}),
            "min encryption version of 1 must be greater than or equal to min decryption version of 2",
        ),
        (
            json!({"auto_rotate_period": "5m"}),
            "auto rotate period must be 0 to disable or at least an hour",
        ),
    ] {
        env.bad(Update, "transit/keys/k/config", body, msg).await;
    }
    // min_decryption_version retires v1: its ciphertexts stop decrypting, and it leaves the
    // key read.
    let r = env
        .ok(
            Update,
            "transit/keys/k/config",
            json!({"min_decryption_version": 2}),
        )
        .await;
    assert_eq!(r["min_decryption_version"], 2);
    assert_eq!(r["keys"].as_object().unwrap().len(), 1);
    assert!(r["keys"].get("2").is_some());
    env.bad(
        Update,
        "transit/decrypt/k",
        json!({"ciphertext": ct1}),
        "ciphertext or signature version is disallowed by policy (too old)",
    )
    .await;
    // ... and moving it back restores v1 (nothing was deleted).
    env.ok(
        Update,
        "transit/keys/k/config",
        json!({"min_decryption_version": 1}),
    )
    .await;
    env.ok(Update, "transit/decrypt/k", json!({"ciphertext": ct1}))
        .await;
    // 0 means 1, with Vault's warning.
    let r = env
        .resp(
            Update,
            "transit/keys/k/config",
            json!({"min_decryption_version": 0}),
        )
        .await;
    assert!(r.warnings[0].contains("forcing minimum to 1"));
    // min_encryption_version: older versions may not encrypt.
    env.ok(
        Update,
        "transit/keys/k/config",
        json!({"min_encryption_version": 2}),
    )
    .await;
    env.bad(
        Update,
        "transit/encrypt/k",
        json!({"plaintext": b64(b"x"), "key_version": 1}),
        "requested version for encryption is less than the minimum encryption key version",
    )
    .await;
    // exportable / allow_plaintext_backup switch on but never off; auto_rotate_period sets.
    let r = env
        .ok(
            Update,
            "transit/keys/k/config",
            json!({"exportable": true, "allow_plaintext_backup": true, "auto_rotate_period": "2h"}),
        )
        .await;
    assert_eq!(r["exportable"], true);
    assert_eq!(r["auto_rotate_period"], 7200);
    let r = env
        .ok(
            Update,
            "transit/keys/k/config",
            json!({"exportable": false, "allow_plaintext_backup": false, "auto_rotate_period": 0}),
        )
        .await;
    assert_eq!(r["exportable"], true);
    assert_eq!(r["allow_plaintext_backup"], true);
    assert_eq!(r["auto_rotate_period"], 0);
}

#[tokio::test]
async fn trim_deletes_old_versions_for_good() {
    let env = Env::new().await;
    env.bad(
        Update,
        "transit/keys/nope/trim",
        json!({"min_available_version": 1}),
        "invalid key name",
    )
    .await;
    env.ok(Update, "transit/keys/k", json!({"exportable": true}))
        .await;
    let ct1 = env.encrypt("k", json!({"plaintext": b64(b"a")})).await;
    for _ in 0..4 {
        env.ok(Update, "transit/keys/k/rotate", json!({})).await;
    }
    env.bad(
        Update,
        "transit/keys/k/trim",
        json!({"min_available_version": 2}),
        "minimum available version cannot be set when minimum encryption version is not set",
    )
    .await;
    env.ok(
        Update,
        "transit/keys/k/config",
        json!({"min_decryption_version": 3, "min_encryption_version": 4}),
    )
    .await;
    for (v, msg) in [
        (json!({}), "missing min_available_version"),
        (
            json!({"min_available_version": 5}),
            "minimum available version cannot be greater than minmum encryption version",
        ),
        (
            json!({"min_available_version": 4}),
            "minimum available version cannot be greater than minimum decryption version",
        ),
        (
            json!({"min_available_version": 0}),
            "minimum available version should be positive",
        ),
    ] {
        env.bad(Update, "transit/keys/k/trim", v, msg).await;
    }
    let r = env
        .ok(
            Update,
            "transit/keys/k/trim",
            json!({"min_available_version": 3}),
        )
        .await;
    assert_eq!(r["min_available_version"], 3);
    env.bad(
        Update,
        "transit/keys/k/trim",
        json!({"min_available_version": 2}),
        "minimum available version cannot be decremented",
    )
    .await;
    // Trimmed versions cannot come back.
    env.bad(
        Update,
        "transit/keys/k/config",
        json!({"min_decryption_version": 1}),
        "min decryption version should not be less then min available version",
    )
    .await;
    let exported = env
        .ok(Read, "transit/export/encryption-key/k", json!({}))
        .await;
    let versions: Vec<&String> = exported["keys"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["3", "4", "5"]);
    env.bad(
        Update,
        "transit/decrypt/k",
        json!({"ciphertext": ct1}),
        "disallowed by policy (too old)",
    )
    .await;
    // The same trim again changes nothing.
    env.ok(
        Update,
        "transit/keys/k/trim",
        json!({"min_available_version": 3}),
    )
    .await;
}

#[tokio::test]
async fn keys_survive_restart_and_config_keys_disables_upsert() {
    let env = Env::new().await;
    let ct = env
        .encrypt("auto", json!({"plaintext": b64(b"upserted")}))
        .await;
    env.restart().await;
    assert_eq!(
        env.ok(Update, "transit/decrypt/auto", json!({"ciphertext": ct}))
            .await["plaintext"],
        b64(b"upserted")
    );
    assert_eq!(
        env.ok(Read, "transit/config/keys", json!({})).await,
        json!({"disable_upsert": false})
    );
    assert_eq!(
        env.ok(
            Update,
            "transit/config/keys",
            json!({"disable_upsert": true})
        )
        .await,
        json!({"disable_upsert": true})
    );
    env.bad(
        Update,
        "transit/encrypt/other",
        json!({"plaintext": b64(b"x")}),
        "encryption key not found",
    )
    .await;
    // Existing keys still encrypt.
    env.encrypt("auto", json!({"plaintext": b64(b"x")})).await;
}
