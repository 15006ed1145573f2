//! `sign`, `verify` (signatures and HMACs) and `hmac`.

use super::*;

async fn sign(env: &Env, key: &str, data: Value) -> String {
    env.ok(Update, &format!("transit/sign/{key}"), data).await["signature"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn valid(env: &Env, key: &str, data: Value) -> bool {
    env.ok(Update, &format!("transit/verify/{key}"), data).await["valid"]
        .as_bool()
        .unwrap()
}

#[tokio::test]
async fn sign_and_verify_every_signing_key_type() {
    let env = Env::new().await;
    let input = b64(b"the message");
    let other = b64(b"another message");
    for t in [
        "ed25519",
        "ecdsa-p256",
        "ecdsa-p384",
        "ecdsa-p521",
        "rsa-2048",
    ] {
        env.ok(Update, &format!("transit/keys/{t}"), json!({"type": t}))
            .await;
        for hash in [
            "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-256", "sha1",
        ] {
            let rsa_unsupported =
                t.starts_with("rsa") && !matches!(hash, "sha2-256" | "sha2-384" | "sha2-512");
            for marshaling in ["asn1", "jws"] {
                let req = json!({"input": input, "hash_algorithm": hash, "marshaling_algorithm": marshaling});
                if rsa_unsupported {
                    env.fails(
                        Update,
                        &format!("transit/sign/{t}"),
                        req,
                        400,
                        "not available",
                    )
                    .await;
                    continue;
                }
                let r = env.ok(Update, &format!("transit/sign/{t}"), req).await;
                assert_eq!(r["key_version"], 1);
                let s = r["signature"].as_str().unwrap().to_string();
                assert!(s.starts_with("vault:v1:"));
                let body = json!({"input": input, "signature": s, "hash_algorithm": hash,
                                  "marshaling_algorithm": marshaling});
                assert!(
                    valid(&env, t, body.clone()).await,
                    "{t} {hash} {marshaling}"
                );
                let mut wrong = body.clone();
                wrong["input"] = json!(other);
                assert!(!valid(&env, t, wrong).await, "{t} {hash} {marshaling}");
                if t != "ed25519" {
                    // The hash is part of what is signed (Ed25519 ignores it).
                    let mut wrong = body;
                    wrong["hash_algorithm"] = json!(if hash == "sha2-512" {
                        "sha2-384"
                    } else {
                        "sha2-512"
                    });
                    assert!(!valid(&env, t, wrong).await, "{t} {hash}");
                }
            }
        }
        // The hash algorithm may come from the path.
        let s = sign(&env, &format!("{t}/sha2-384"), json!({"input": input})).await;
        assert!(
            valid(
                &env,
                &format!("{t}/sha2-384"),
                json!({"input": input, "signature": s})
            )
            .await
        );
    }
    // ECDSA JWS signatures are fixed-size r||s.
    let s = sign(
        &env,
        "ecdsa-p521",
        json!({"input": input, "marshaling_algorithm": "jws"}),
    )
    .await;
    let raw = super::super::encoding::b64url_decode(s.strip_prefix("vault:v1:").unwrap()).unwrap();
    assert_eq!(raw.len(), 132);
}

#[tokio::test]
async fn rsa_padding_and_salt_lengths() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/r", json!({"type": "rsa-2048"}))
        .await;
    let input = b64(b"msg");
    for (alg, sign_salt, verify_salt, ok) in [
        ("pss", "auto", "auto", true),
        ("pss", "hash", "auto", true),
        ("pss", "hash", "hash", true),
        ("pss", "-1", "hash", true),
        ("pss", "0", "auto", true),
        ("pss", "20", "20", true),
        ("pss", "20", "auto", true),
        ("pss", "20", "21", false),
        ("pss", "auto", "hash", false),
        ("pkcs1v15", "auto", "auto", true),
    ] {
        let s = sign(
            &env,
            "r",
            json!({"input": input, "signature_algorithm": alg, "salt_length": sign_salt}),
        )
        .await;
        assert_eq!(
            valid(
                &env,
                "r",
                json!({"input": input, "signature": s, "signature_algorithm": alg, "salt_length": verify_salt})
            )
            .await,
            ok,
            "{alg} {sign_salt} {verify_salt}"
        );
    }
    // A PSS signature is not a PKCS#1 v1.5 one.
    let s = sign(&env, "r", json!({"input": input})).await;
    assert!(
        !valid(
            &env,
            "r",
            json!({"input": input, "signature": s, "signature_algorithm": "pkcs1v15"})
        )
        .await
    );
    env.fails(
        Update,
        "transit/sign/r",
        json!({"input": input, "salt_length": "9999"}),
        400,
        "requested salt length 9999 is invalid",
    )
    .await;
    env.bad(
        Update,
        "transit/sign/r",
        json!({"input": input, "salt_length": "abc"}),
        "salt length neither 'auto', 'hash', nor an int: abc",
    )
    .await;
    env.bad(
        Update,
        "transit/sign/r",
        json!({"input": input, "salt_length": "-2"}),
        "salt length is invalid: -2",
    )
    .await;
    env.fails(
        Update,
        "transit/sign/r",
        json!({"input": input, "signature_algorithm": "foo"}),
        400,
        "unsupported rsa signature algorithm foo",
    )
    .await;
    // Prehashed input: a digest of the hash's length.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"msg");
    let s = sign(
        &env,
        "r",
        json!({"input": b64(digest.as_ref()), "prehashed": true}),
    )
    .await;
    assert!(valid(&env, "r", json!({"input": input, "signature": s})).await);
    env.fails(
        Update,
        "transit/sign/r",
        json!({"input": b64(b"short"), "prehashed": true}),
        400,
        "crypto/rsa: input must be hashed with given hash",
    )
    .await;
    env.bad(
        Update,
        "transit/sign/r",
        json!({"input": input, "hash_algorithm": "none"}),
        "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
    )
    .await;
    env.fails(
        Update,
        "transit/sign/r",
        json!({"input": input, "hash_algorithm": "none", "prehashed": true, "signature_algorithm": "pkcs1v15"}),
        400,
        "not available",
    )
    .await;
    // RSA keys also encrypt with OAEP.
    let ct = env.encrypt("r", json!({"plaintext": input})).await;
    assert_eq!(
        env.ok(Update, "transit/decrypt/r", json!({"ciphertext": ct}))
            .await["plaintext"],
        input
    );
}

#[tokio::test]
async fn ecdsa_prehashed_and_derived_ed25519() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/p", json!({"type": "ecdsa-p256"}))
        .await;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"msg");
    let s = sign(
        &env,
        "p",
        json!({"input": b64(digest.as_ref()), "prehashed": true}),
    )
    .await;
    assert!(valid(&env, "p", json!({"input": b64(b"msg"), "signature": s})).await);
    // Derived Ed25519: one key pair per context, its public key in the answer.
    env.ok(
        Update,
        "transit/keys/de",
        json!({"type": "ed25519", "derived": true}),
    )
    .await;
    env.fails(
        Update,
        "transit/sign/de",
        json!({"input": b64(b"m")}),
        400,
        "error deriving key: missing 'context' for key derivation",
    )
    .await;
    let r = env
        .ok(
            Update,
            "transit/sign/de",
            json!({"input": b64(b"m"), "context": b64(b"alice")}),
        )
        .await;
    let pk = r["public_key"].as_str().unwrap().to_string();
    let s = r["signature"].as_str().unwrap();
    assert!(
        valid(
            &env,
            "de",
            json!({"input": b64(b"m"), "signature": s, "context": b64(b"alice")})
        )
        .await
    );
    assert!(
        !valid(
            &env,
            "de",
            json!({"input": b64(b"m"), "signature": s, "context": b64(b"bob")})
        )
        .await
    );
    // The key read gives that public key for the context, and none without one.
    let k = env
        .ok(Read, "transit/keys/de", json!({"context": b64(b"alice")}))
        .await;
    assert_eq!(k["keys"]["1"]["public_key"], pk);
    let k = env.ok(Read, "transit/keys/de", json!({})).await;
    assert_eq!(k["keys"]["1"]["public_key"], "");
}

#[tokio::test]
async fn sign_verify_errors_and_versions() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/e", json!({"type": "ed25519"}))
        .await;
    env.ok(Update, "transit/keys/aes", json!({})).await;
    let input = b64(b"m");
    for (body, msg) in [
        (
            json!({"input": input, "hash_algorithm": "md5"}),
            "invalid hash algorithm \"md5\"",
        ),
        (
            json!({"input": input, "marshaling_algorithm": "foo"}),
            "invalid marshaling type \"foo\"",
        ),
        (
            json!({"input": "!!"}),
            "unable to decode input as base64: illegal base64 data at input byte 0",
        ),
        (
            json!({"input": input, "context": "!!"}),
            "failed to base64-decode context",
        ),
    ] {
        env.bad(Update, "transit/sign/e", body, msg).await;
    }
    // Versions the key does not have are the caller's mistake: 400 (OpenBao answers 500).
    for (body, msg) in [
        (
            json!({"input": input, "key_version": 2}),
            "requested version for signing is higher than the latest key version",
        ),
        (
            json!({"input": input, "key_version": -1}),
            "requested version for signing is negative",
        ),
    ] {
        env.fails(Update, "transit/sign/e", body, 400, msg).await;
    }
    env.bad(
        Update,
        "transit/sign/aes",
        json!({"input": input}),
        "key type aes256-gcm96 does not support signing",
    )
    .await;
    env.bad(
        Update,
        "transit/sign/nokey",
        json!({"input": input}),
        "signing key not found",
    )
    .await;
    let s = sign(&env, "e", json!({"input": input})).await;
    for (sig, msg) in [
        ("foo", "invalid signature: no prefix"),
        ("vault:v1", "invalid signature: wrong number of fields"),
        (
            "vault:vx:AA",
            "invalid signature: version number could not be decoded",
        ),
        ("vault:v2:AA", "invalid signature: version is too new"),
        ("vault:v1:!!", "invalid base64 signature value"),
    ] {
        env.bad(
            Update,
            "transit/verify/e",
            json!({"input": input, "signature": sig}),
            msg,
        )
        .await;
    }
    env.bad(
        Update,
        "transit/verify/e",
        json!({"input": input}),
        "neither a 'signature' nor an 'hmac' were given to verify",
    )
    .await;
    env.bad(
        Update,
        "transit/verify/nokey",
        json!({"input": input, "signature": s}),
        "signature verification key not found",
    )
    .await;
    env.bad(
        Update,
        "transit/verify/aes",
        json!({"input": input, "signature": s}),
        "key type aes256-gcm96 does not support verification",
    )
    .await;
    // A truncated Ed25519 signature is simply invalid.
    assert!(
        !valid(
            &env,
            "e",
            json!({"input": input, "signature": "vault:v1:AAAA"})
        )
        .await
    );
    // ECDSA ASN.1 signatures must parse.
    env.ok(Update, "transit/keys/p", json!({"type": "ecdsa-p256"}))
        .await;
    env.bad(
        Update,
        "transit/verify/p",
        json!({"input": input, "signature": "vault:v1:AAAA"}),
        "supplied signature is invalid",
    )
    .await;
    let ps = sign(&env, "p", json!({"input": input})).await;
    let mut raw = unb64(ps.strip_prefix("vault:v1:").unwrap());
    raw.push(0);
    env.bad(
        Update,
        "transit/verify/p",
        json!({"input": input, "signature": format!("vault:v1:{}", b64(&raw))}),
        "supplied signature contains extra data",
    )
    .await;
    // Rotation: old signatures verify until min_decryption_version passes them.
    env.ok(Update, "transit/keys/e/rotate", json!({})).await;
    let s2 = sign(&env, "e", json!({"input": input})).await;
    assert!(s2.starts_with("vault:v2:"));
    assert!(valid(&env, "e", json!({"input": input, "signature": s})).await);
    let s1 = sign(&env, "e", json!({"input": input, "key_version": 1})).await;
    assert!(s1.starts_with("vault:v1:"));
    env.ok(
        Update,
        "transit/keys/e/config",
        json!({"min_decryption_version": 2, "min_encryption_version": 2}),
    )
    .await;
    env.bad(
        Update,
        "transit/verify/e",
        json!({"input": input, "signature": s}),
        "ciphertext or signature version is disallowed by policy (too old)",
    )
    .await;
    env.fails(
        Update,
        "transit/sign/e",
        json!({"input": input, "key_version": 1}),
        400,
        "requested version for signing is less than the minimum encryption key version",
    )
    .await;
}

#[tokio::test]
async fn sign_and_verify_batches() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/p", json!({"type": "ecdsa-p256"}))
        .await;
    let r = env
        .resp(
            Update,
            "transit/sign/p",
            json!({"batch_input": [{"input": b64(b"a"), "reference": "one"}, {"input": "!"}]}),
        )
        .await;
    assert_eq!(r.status, None);
    let results = body(&r)["batch_results"].as_array().unwrap().clone();
    assert_eq!(results[0]["key_version"], 1);
    assert_eq!(results[0]["reference"], "one");
    let sig = results[0]["signature"].as_str().unwrap().to_string();
    assert_eq!(
        results[1],
        json!({"key_version": 0, "error": "unable to decode input as base64: illegal base64 data at input byte 0", "reference": ""})
    );
    let r = env
        .ok(
            Update,
            "transit/verify/p",
            json!({"batch_input": [
                {"input": b64(b"a"), "signature": sig, "reference": "ok"},
                {"input": b64(b"b"), "signature": sig},
                {"input": b64(b"a"), "signature": "vault:v1:AAAA"},
            ]}),
        )
        .await;
    assert_eq!(
        r["batch_results"],
        json!([
            {"valid": true, "reference": "ok"},
            {"valid": false, "reference": ""},
            {"valid": false, "error": "supplied signature is invalid", "reference": ""},
        ])
    );
    env.bad(
        Update,
        "transit/verify/p",
        json!({"batch_input": [{"input": b64(b"a"), "signature": sig}, {"input": b64(b"a")}]}),
        "some elements of batch_input are missing 'signature'",
    )
    .await;
    env.bad(
        Update,
        "transit/verify/p",
        json!({"batch_input": [{"input": b64(b"a"), "signature": sig}, {"input": b64(b"a"), "hmac": "x"}]}),
        "elements of batch_input must all provide 'signature' or all provide 'hmac'",
    )
    .await;
}

#[tokio::test]
async fn hmac_generate_and_verify() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/k", json!({})).await;
    env.ok(
        Update,
        "transit/keys/h",
        json!({"type": "hmac", "exportable": true}),
    )
    .await;
    let input = b64(b"data");
    for key in ["k", "h"] {
        for alg in ["sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha1"] {
            let h = env
                .ok(
                    Update,
                    &format!("transit/hmac/{key}/{alg}"),
                    json!({"input": input}),
                )
                .await["hmac"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(h.starts_with("vault:v1:"));
            let ok = env
                .ok(
                    Update,
                    &format!("transit/verify/{key}"),
                    json!({"input": input, "hmac": h, "algorithm": alg}),
                )
                .await;
            assert_eq!(ok, json!({"valid": true}), "{key} {alg}");
            let bad = env
                .ok(
                    Update,
                    &format!("transit/verify/{key}/{alg}"),
                    json!({"input": b64(b"other"), "hmac": h}),
                )
                .await;
            assert_eq!(bad, json!({"valid": false}));
        }
    }
    // The HMAC of an `hmac` key is keyed by the key itself (checked against aws-lc-rs here,
    // and against Python's hmac in the cross-checks).
    let exported = env.ok(Read, "transit/export/hmac-key/h", json!({})).await;
    let raw_key = unb64(exported["keys"]["1"].as_str().unwrap());
    let expected = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &raw_key),
        b"data",
    );
    assert_eq!(
        env.ok(Update, "transit/hmac/h", json!({"input": input}))
            .await["hmac"],
        format!("vault:v1:{}", b64(expected.as_ref()))
    );
    for (path, body, msg) in [
        (
            "transit/hmac/nokey",
            json!({"input": input}),
            "encryption key not found",
        ),
        (
            "transit/hmac/k",
            json!({"input": input, "algorithm": "md5"}),
            "unsupported algorithm \"md5\"",
        ),
        (
            "transit/hmac/k",
            json!({"input": input, "algorithm": "sha3-256"}),
            "not available in Tresor's crypto library",
        ),
        (
            "transit/hmac/k",
            json!({"input": input, "key_version": 5}),
            "key version does not exist; latest key version is 1",
        ),
        (
            "transit/hmac/k",
            json!({"input": "!"}),
            "unable to decode input as base64",
        ),
        (
            "transit/verify/k",
            json!({"input": input, "hmac": "garbage"}),
            "invalid HMAC to verify: no prefix",
        ),
        (
            "transit/verify/k",
            json!({"input": input, "hmac": "vault:v1"}),
            "invalid HMAC: wrong number of fields",
        ),
        (
            "transit/verify/k",
            json!({"input": input, "hmac": "vault:vx:AA"}),
            "invalid HMAC: version number could not be decoded",
        ),
        (
            "transit/verify/k",
            json!({"input": input, "hmac": "vault:v1:!!"}),
            "unable to decode verification HMAC as base64",
        ),
        (
            "transit/verify/k",
            json!({"input": input, "hmac": "vault:v7:AAAA"}),
            "invalid HMAC: version is too new",
        ),
    ] {
        env.bad(Update, path, body, msg).await;
    }
    // Versions: old HMACs verify until min_decryption_version passes them.
    let h1 = env
        .ok(Update, "transit/hmac/k", json!({"input": input}))
        .await["hmac"]
        .clone();
    env.ok(Update, "transit/keys/k/rotate", json!({})).await;
    assert_eq!(
        env.ok(Update, "transit/hmac/k", json!({"input": input}))
            .await["hmac"]
            .as_str()
            .unwrap()
            .get(..9),
        Some("vault:v2:")
    );
    assert_eq!(
        env.ok(
            Update,
            "transit/verify/k",
            json!({"input": input, "hmac": h1})
        )
        .await["valid"],
        true
    );
    env.ok(
        Update,
        "transit/keys/k/config",
        json!({"min_decryption_version": 2, "min_encryption_version": 2}),
    )
    .await;
    env.bad(
        Update,
        "transit/verify/k",
        json!({"input": input, "hmac": h1}),
        "cannot verify HMAC: version is too old (disallowed by policy)",
    )
    .await;
    env.bad(
        Update,
        "transit/hmac/k",
        json!({"input": input, "key_version": 1}),
        "cannot generate HMAC: version is too old (disallowed by policy)",
    )
    .await;
    // Batches: per-item results, 200.
    let r = env
        .resp(
            Update,
            "transit/hmac/k",
            json!({"batch_input": [{"input": input, "reference": "a"}, {"input": "!"}]}),
        )
        .await;
    assert_eq!(r.status, None);
    let results = body(&r)["batch_results"].as_array().unwrap().clone();
    let h2 = results[0]["hmac"].as_str().unwrap().to_string();
    assert_eq!(results[0]["reference"], "a");
    assert!(results[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("unable to decode input as base64"));
    let r = env
        .ok(
            Update,
            "transit/verify/k",
            json!({"batch_input": [
                {"input": input, "hmac": h2, "reference": "x"},
                {"input": b64(b"no"), "hmac": h2},
                {"input": input, "hmac": "bad"},
            ]}),
        )
        .await;
    assert_eq!(
        r["batch_results"],
        json!([
            {"valid": true, "reference": "x"},
            {"reference": ""},
            {"error": "invalid HMAC to verify: no prefix", "reference": ""},
        ])
    );
}
