//! `encrypt`, `decrypt`, `rewrap`, `datakey`: single and batch, derived and convergent keys,
//! associated data, RSA, and every error path.

use super::*;

#[tokio::test]
async fn round_trips_for_every_encryption_key_type() {
    let env = Env::new().await;
    for t in [
        "aes128-gcm96",
        "aes256-gcm96",
        "chacha20-poly1305",
        "rsa-2048",
    ] {
        env.ok(Update, &format!("transit/keys/{t}"), json!({"type": t}))
            .await;
        let r = env
            .ok(
                Update,
                &format!("transit/encrypt/{t}"),
                json!({"plaintext": b64(b"hello world")}),
            )
            .await;
        assert_eq!(r["key_version"], 1);
        let ct = r["ciphertext"].as_str().unwrap();
        assert!(ct.starts_with("vault:v1:"), "{ct}");
        let d = env
            .ok(
                Update,
                &format!("transit/decrypt/{t}"),
                json!({"ciphertext": ct}),
            )
            .await;
        assert_eq!(d, json!({"plaintext": b64(b"hello world")}));
        // Two encryptions of the same plaintext differ (random nonces / OAEP padding).
        let again = env
            .encrypt(t, json!({"plaintext": b64(b"hello world")}))
            .await;
        assert_ne!(again, ct);
    }
    // Empty plaintext is allowed.
    let ct = env.encrypt("aes256-gcm96", json!({"plaintext": ""})).await;
    assert_eq!(
        env.ok(
            Update,
            "transit/decrypt/aes256-gcm96",
            json!({"ciphertext": ct})
        )
        .await["plaintext"],
        ""
    );
}

#[tokio::test]
async fn encrypt_and_decrypt_errors() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/k", json!({})).await;
    env.ok(Update, "transit/keys/ed", json!({"type": "ed25519"}))
        .await;
    env.ok(Update, "transit/keys/rsa", json!({"type": "rsa-2048"}))
        .await;
    env.bad(
        Update,
        "transit/encrypt/k",
        json!({}),
        "missing plaintext to encrypt",
    )
    .await;
    env.bad(
        Update,
        "transit/encrypt/k",
        json!({"plaintext": "!!notb64"}),
        "illegal base64 data at input byte 0",
    )
    .await;
    env.bad(
        Update,
        "transit/encrypt/k",
        json!({"plaintext": b64(b"x"), "key_version": 2}),
        "requested version for encryption is higher than the latest key version",
    )
    .await;
    env.bad(
        Update,
        "transit/encrypt/k",
        json!({"plaintext": b64(b"x"), "key_version": -1}),
        "requested version for encryption is negative",
    )
    .await;
    env.bad(
        Update,
        "transit/encrypt/ed",
        json!({"plaintext": b64(b"x")}),
        "message encryption not supported for key type ed25519",
    )
    .await;
    env.bad(
        Update,
        "transit/encrypt/rsa",
        json!({"plaintext": b64(b"x"), "associated_data": b64(b"ad")}),
        "'[0].associated_data' provided for non-AEAD cipher suite rsa-2048",
    )
    .await;
    env.fails(
        Update,
        "transit/encrypt/rsa",
        json!({"plaintext": b64(&[0u8; 300])}),
        400,
        "failed to RSA encrypt the plaintext",
    )
    .await;
    let ct = env.encrypt("k", json!({"plaintext": b64(b"secret")})).await;
    let body = ct.strip_prefix("vault:v1:").unwrap();
    for (c, msg) in [
        ("foo", "invalid ciphertext: no prefix"),
        ("vault:v1", "invalid ciphertext: wrong number of fields"),
        (
            "vault:vx:abcd",
            "invalid ciphertext: version number could not be decoded",
        ),
        ("vault:v9:abcd", "invalid ciphertext: version is too new"),
        ("vault:v1:!!", "invalid ciphertext: could not decode base64"),
        ("vault:v1:AAAA", "invalid ciphertext length"),
    ] {
        env.bad(Update, "transit/decrypt/k", json!({"ciphertext": c}), msg)
            .await;
    }
    env.bad(
        Update,
        "transit/decrypt/k",
        json!({}),
        "missing ciphertext to decrypt",
    )
    .await;
    env.bad(
        Update,
        "transit/decrypt/nokey",
        json!({"ciphertext": ct}),
        "encryption key not found",
    )
    .await;
    env.bad(
        Update,
        "transit/decrypt/ed",
        json!({"ciphertext": ct}),
        "message decryption not supported for key type ed25519",
    )
    .await;
    // Tampering with any byte fails authentication.
    let mut raw = unb64(body);
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    env.bad(
        Update,
        "transit/decrypt/k",
        json!({"ciphertext": format!("vault:v1:{}", b64(&raw))}),
        "cipher: message authentication failed",
    )
    .await;
    // Another key's ciphertext does not decrypt.
    env.ok(Update, "transit/keys/k2", json!({})).await;
    env.bad(
        Update,
        "transit/decrypt/k2",
        json!({"ciphertext": ct}),
        "cipher: message authentication failed",
    )
    .await;
    // v0 is read as v1 (Vault's first key numbering).
    assert_eq!(
        env.ok(
            Update,
            "transit/decrypt/k",
            json!({"ciphertext": format!("vault:v0:{body}")})
        )
        .await["plaintext"],
        b64(b"secret")
    );
    // A tampered RSA ciphertext is a 400 (Vault answers 500).
    let rsa_ct = env.encrypt("rsa", json!({"plaintext": b64(b"x")})).await;
    let mut raw = unb64(rsa_ct.strip_prefix("vault:v1:").unwrap());
    raw[10] ^= 1;
    env.fails(
        Update,
        "transit/decrypt/rsa",
        json!({"ciphertext": format!("vault:v1:{}", b64(&raw))}),
        400,
        "failed to RSA decrypt the ciphertext",
    )
    .await;
}

#[tokio::test]
async fn associated_data_is_authenticated() {
    let env = Env::new().await;
    let ct = env
        .encrypt(
            "k",
            json!({"plaintext": b64(b"p"), "associated_data": b64(b"ad")}),
        )
        .await;
    assert_eq!(
        env.ok(
            Update,
            "transit/decrypt/k",
            json!({"ciphertext": ct, "associated_data": b64(b"ad")})
        )
        .await["plaintext"],
        b64(b"p")
    );
    for ad in [json!(b64(b"other")), json!(null)] {
        env.bad(
            Update,
            "transit/decrypt/k",
            json!({"ciphertext": ct, "associated_data": ad}),
            "cipher: message authentication failed",
        )
        .await;
    }
}

#[tokio::test]
async fn upsert_creates_keys_as_asked() {
    let env = Env::new().await;
    let r = env
        .resp(
            Update,
            "transit/encrypt/new",
            json!({"plaintext": b64(b"x"), "type": "chacha20-poly1305"}),
        )
        .await;
    assert_eq!(body(&r)["key_version"], 1);
    let k = env.ok(Read, "transit/keys/new", json!({})).await;
    assert_eq!(k["type"], "chacha20-poly1305");
    assert_eq!(k["derived"], false);
    // A context makes the new key derived; convergent needs it.
    env.encrypt(
        "derived",
        json!({"plaintext": b64(b"x"), "context": b64(b"c"), "convergent_encryption": true}),
    )
    .await;
    let k = env.ok(Read, "transit/keys/derived", json!({})).await;
    assert_eq!(k["derived"], true);
    assert_eq!(k["convergent_encryption"], true);
    env.bad(
        Update,
        "transit/encrypt/x1",
        json!({"plaintext": b64(b"x"), "convergent_encryption": true}),
        "convergent encryption requires derivation to be enabled, so context is required",
    )
    .await;
    env.bad(
        Update,
        "transit/encrypt/x2",
        json!({"plaintext": b64(b"x"), "type": "ecdsa-p256"}),
        "key type ecdsa-p256 not supported for this operation",
    )
    .await;
    env.bad(
        Update,
        "transit/encrypt/x3",
        json!({"plaintext": b64(b"x"), "type": "rsa-2048"}),
        "unknown key type rsa-2048",
    )
    .await;
    assert_eq!(
        env.ok(List, "transit/keys", json!({})).await["keys"],
        json!(["derived", "new"])
    );
}

#[tokio::test]
async fn derived_and_convergent_keys() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/d", json!({"derived": true}))
        .await;
    env.bad(
        Update,
        "transit/encrypt/d",
        json!({"plaintext": b64(b"x")}),
        "missing 'context' for key derivation",
    )
    .await;
    let ct = env
        .encrypt(
            "d",
            json!({"plaintext": b64(b"x"), "context": b64(b"alice")}),
        )
        .await;
    assert_eq!(
        env.ok(
            Update,
            "transit/decrypt/d",
            json!({"ciphertext": ct, "context": b64(b"alice")})
        )
        .await["plaintext"],
        b64(b"x")
    );
    env.bad(
        Update,
        "transit/decrypt/d",
        json!({"ciphertext": ct, "context": b64(b"bob")}),
        "cipher: message authentication failed",
    )
    .await;
    env.bad(
        Update,
        "transit/decrypt/d",
        json!({"ciphertext": ct}),
        "missing 'context' for key derivation",
    )
    .await;
    env.bad(
        Update,
        "transit/decrypt/d",
        json!({"ciphertext": ct, "context": "!!"}),
        "illegal base64 data",
    )
    .await;
    // Convergent: same plaintext + context, same ciphertext; the nonce field is ignored.
    env.ok(
        Update,
        "transit/keys/c",
        json!({"derived": true, "convergent_encryption": true, "type": "aes128-gcm96"}),
    )
    .await;
    let a = env
        .encrypt(
            "c",
            json!({"plaintext": b64(b"same"), "context": b64(b"ctx")}),
        )
        .await;
    let b = env
        .encrypt(
            "c",
            json!({"plaintext": b64(b"same"), "context": b64(b"ctx"), "nonce": b64(&[1; 12])}),
        )
        .await;
    let other = env
        .encrypt(
            "c",
            json!({"plaintext": b64(b"same"), "context": b64(b"ctx2")}),
        )
        .await;
    assert_eq!(a, b);
    assert_ne!(a, other);
    // After a rotation the new version gives another (still deterministic) ciphertext.
    env.ok(Update, "transit/keys/c/rotate", json!({})).await;
    let v2 = env
        .encrypt(
            "c",
            json!({"plaintext": b64(b"same"), "context": b64(b"ctx")}),
        )
        .await;
    assert!(v2.starts_with("vault:v2:"));
    assert_eq!(
        v2,
        env.encrypt(
            "c",
            json!({"plaintext": b64(b"same"), "context": b64(b"ctx")})
        )
        .await
    );
    // Batch: context must be in all items or none.
    env.bad(
        Update,
        "transit/encrypt/c",
        json!({"batch_input": [{"plaintext": b64(b"a"), "context": b64(b"c")}, {"plaintext": b64(b"b")}]}),
        "context should be set either in all the request blocks or in none",
    )
    .await;
}

#[tokio::test]
async fn batches_report_per_item_and_set_status() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/k", json!({})).await;
    // All good: 200.
    let r = env
        .resp(
            Update,
            "transit/encrypt/k",
            json!({"batch_input": [{"plaintext": b64(b"a"), "reference": "r1"}, {"plaintext": b64(b"b")}]}),
        )
        .await;
    assert_eq!(r.status, None);
    let results = body(&r)["batch_results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["reference"], "r1");
    assert_eq!(results[1]["reference"], "");
    assert_eq!(results[0]["key_version"], 1);
    assert!(results[0].get("error").is_none());
    // One bad item: 400 with every result.
    let r = env
        .resp(
            Update,
            "transit/encrypt/k",
            json!({"batch_input": [{"plaintext": b64(b"a")}, {"plaintext": "!!", "reference": "bad"}]}),
        )
        .await;
    assert_eq!(r.status, Some(400));
    let results = body(&r)["batch_results"].as_array().unwrap().clone();
    assert!(results[0]["ciphertext"].is_string());
    assert_eq!(
        results[1],
        json!({"error": "illegal base64 data at input byte 0", "reference": "bad"})
    );
    // partial_failure_response_code when some succeeded.
    let r = env
        .resp(
            Update,
            "transit/encrypt/k",
            json!({"batch_input": [{"plaintext": b64(b"a")}, {"plaintext": "!!"}],
                   "partial_failure_response_code": 207}),
        )
        .await;
    assert_eq!(r.status, Some(207));
    let r = env
        .resp(
            Update,
            "transit/encrypt/k",
            json!({"batch_input": [{"plaintext": "!!"}], "partial_failure_response_code": 207}),
        )
        .await;
    assert_eq!(r.status, Some(400));
    let r = env
        .resp(
            Update,
            "transit/encrypt/k",
            json!({"batch_input": [{"plaintext": b64(b"a")}, {"plaintext": "!!"}],
                   "partial_failure_response_code": 999}),
        )
        .await;
    assert_eq!(r.status, Some(400));
    assert!(r.warnings[0].contains("invalid HTTP response code override"));
    env.bad(
        Update,
        "transit/encrypt/k",
        json!({"batch_input": []}),
        "missing batch input to process",
    )
    .await;
    env.fails(
        Update,
        "transit/encrypt/k",
        json!({"batch_input": "foo"}),
        400,
        "failed to parse batch input: source data must be an array or slice, got string",
    )
    .await;
    env.fails(
        Update,
        "transit/encrypt/k",
        json!({"batch_input": ["x"]}),
        400,
        "failed to parse batch input: [0] expected a map, got 'string'",
    )
    .await;
    env.fails(
        Update,
        "transit/encrypt/k",
        json!({"batch_input": [{"plaintext": b64(b"a"), "key_version": "1"}]}),
        400,
        "failed to parse batch input: '[0].key_version' expected type 'int', got unconvertible type 'string'",
    )
    .await;
    // Decrypt batch: plaintext always present, errors per item, 400 overall.
    let ct = env.encrypt("k", json!({"plaintext": b64(b"a")})).await;
    let r = env
        .resp(
            Update,
            "transit/decrypt/k",
            json!({"batch_input": [{"ciphertext": ct, "reference": "a"}, {"ciphertext": "x"}]}),
        )
        .await;
    assert_eq!(r.status, Some(400));
    assert_eq!(
        body(&r)["batch_results"],
        json!([
            {"plaintext": b64(b"a"), "reference": "a"},
            {"plaintext": "", "error": "invalid ciphertext: no prefix", "reference": ""}
        ])
    );
    let r = env
        .resp(
            Update,
            "transit/decrypt/k",
            json!({"batch_input": [{"ciphertext": ct}]}),
        )
        .await;
    assert_eq!(r.status, None);
    // Rewrap batch: per-item errors, 200.
    env.ok(Update, "transit/keys/k/rotate", json!({})).await;
    let r = env
        .resp(
            Update,
            "transit/rewrap/k",
            json!({"batch_input": [{"ciphertext": ct, "reference": "r"}, {"ciphertext": "x"}]}),
        )
        .await;
    assert_eq!(r.status, None);
    let results = body(&r)["batch_results"].as_array().unwrap().clone();
    assert!(results[0]["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("vault:v2:"));
    assert_eq!(results[0]["key_version"], 2);
    assert_eq!(results[0]["reference"], "r");
    assert_eq!(
        results[1],
        json!({"error": "invalid ciphertext: no prefix", "reference": ""})
    );
}

#[tokio::test]
async fn rewrap_moves_data_to_the_latest_version() {
    let env = Env::new().await;
    env.bad(
        Update,
        "transit/rewrap/nokey",
        json!({"ciphertext": "vault:v1:AAAA"}),
        "encryption key not found",
    )
    .await;
    env.ok(Update, "transit/keys/k", json!({})).await;
    env.bad(
        Update,
        "transit/rewrap/k",
        json!({}),
        "missing ciphertext to decrypt",
    )
    .await;
    let ct = env.encrypt("k", json!({"plaintext": b64(b"data")})).await;
    env.ok(Update, "transit/keys/k/rotate", json!({})).await;
    env.ok(Update, "transit/keys/k/rotate", json!({})).await;
    let r = env
        .ok(Update, "transit/rewrap/k", json!({"ciphertext": ct}))
        .await;
    assert_eq!(r["key_version"], 3);
    let new = r["ciphertext"].as_str().unwrap();
    assert!(new.starts_with("vault:v3:"));
    let r = env
        .ok(
            Update,
            "transit/rewrap/k",
            json!({"ciphertext": ct, "key_version": 2}),
        )
        .await;
    assert_eq!(r["key_version"], 2);
    // After raising min_decryption_version, only rewrapped data remains readable.
    env.ok(
        Update,
        "transit/keys/k/config",
        json!({"min_decryption_version": 3}),
    )
    .await;
    assert_eq!(
        env.ok(Update, "transit/decrypt/k", json!({"ciphertext": new}))
            .await["plaintext"],
        b64(b"data")
    );
    env.bad(
        Update,
        "transit/rewrap/k",
        json!({"ciphertext": ct}),
        "disallowed by policy (too old)",
    )
    .await;
    // Derived keys rewrap under the same context.
    env.ok(Update, "transit/keys/d", json!({"derived": true}))
        .await;
    let ct = env
        .encrypt("d", json!({"plaintext": b64(b"x"), "context": b64(b"c")}))
        .await;
    env.ok(Update, "transit/keys/d/rotate", json!({})).await;
    let r = env
        .ok(
            Update,
            "transit/rewrap/d",
            json!({"ciphertext": ct, "context": b64(b"c")}),
        )
        .await;
    assert_eq!(
        env.ok(
            Update,
            "transit/decrypt/d",
            json!({"ciphertext": r["ciphertext"], "context": b64(b"c")})
        )
        .await["plaintext"],
        b64(b"x")
    );
}

#[tokio::test]
async fn datakeys() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/k", json!({})).await;
    env.ok(Update, "transit/keys/ed", json!({"type": "ed25519"}))
        .await;
    for (bits, len) in [(128, 16), (256, 32), (512, 64)] {
        let r = env
            .ok(Update, "transit/datakey/plaintext/k", json!({"bits": bits}))
            .await;
        let plain = r["plaintext"].as_str().unwrap();
        assert_eq!(unb64(plain).len(), len);
        assert_eq!(r["key_version"], 1);
        let d = env
            .ok(
                Update,
                "transit/decrypt/k",
                json!({"ciphertext": r["ciphertext"]}),
            )
            .await;
        assert_eq!(d["plaintext"], plain);
    }
    let r = env.ok(Update, "transit/datakey/wrapped/k", json!({})).await;
    assert!(r.get("plaintext").is_none());
    assert_eq!(
        unb64(
            env.ok(
                Update,
                "transit/decrypt/k",
                json!({"ciphertext": r["ciphertext"]})
            )
            .await["plaintext"]
                .as_str()
                .unwrap()
        )
        .len(),
        32
    );
    env.bad(
        Update,
        "transit/datakey/wrapped/k",
        json!({"bits": 100}),
        "invalid bit length",
    )
    .await;
    env.bad(
        Update,
        "transit/datakey/foo/k",
        json!({}),
        "Invalid path, must be 'plaintext' or 'wrapped'",
    )
    .await;
    env.bad(
        Update,
        "transit/datakey/plaintext/nokey",
        json!({}),
        "encryption key not found",
    )
    .await;
    env.bad(
        Update,
        "transit/datakey/plaintext/ed",
        json!({}),
        "message encryption not supported for key type ed25519",
    )
    .await;
    // Derived keys need the context.
    env.ok(Update, "transit/keys/d", json!({"derived": true}))
        .await;
    env.bad(
        Update,
        "transit/datakey/plaintext/d",
        json!({}),
        "missing 'context'",
    )
    .await;
    env.ok(
        Update,
        "transit/datakey/plaintext/d",
        json!({"context": b64(b"c")}),
    )
    .await;
}
