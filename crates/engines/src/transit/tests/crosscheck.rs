//! Known-answer cross-checks against independent implementations:
//!
//! * Python's `cryptography` package, through `tests/crosscheck/transit_crosscheck.py`:
//!   Tresor's ciphertexts decrypt there with the exported key (AES-GCM, ChaCha20-Poly1305,
//!   derived keys via HKDF, convergent nonces, RSA-OAEP); its ciphertexts, signatures and
//!   BYOK blobs (RSA-OAEP + AES-KWP) are accepted by Tresor; signatures, HMACs and hashes agree.
//! * `openssl` (the command): ECDSA signatures over digests of other lengths than the curve's
//!   (the bits2int re-encoding), RSA-PSS/PKCS#1 v1.5, Ed25519, RSA-OAEP decryption with the
//!   exported key, and exported EC private keys.
//!
//! Each test is skipped, with the reason printed, when its tool is missing; set
//! `TRESOR_CROSSCHECK_REQUIRED=1` to fail instead (CI), and `TRESOR_CROSSCHECK_PYTHON` to pick
//! the interpreter (default `python3`).

use super::*;
use std::io::Write;
use std::process::{Command, Stdio};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/crosscheck/transit_crosscheck.py"
);

/// Skips (printing why), or panics when cross-checks are required.
fn skip(reason: &str) {
    if std::env::var("TRESOR_CROSSCHECK_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("transit cross-check required (TRESOR_CROSSCHECK_REQUIRED=1) but {reason}");
    }
    eprintln!("SKIPPED transit cross-check: {reason}");
}

fn python() -> Option<String> {
    let py = std::env::var("TRESOR_CROSSCHECK_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&py)
        .args(["-c", "import cryptography"])
        .output()
    {
        Ok(o) if o.status.success() => Some(py),
        Ok(_) => {
            skip(&format!(
                "{py} has no `cryptography` module (pip install cryptography)"
            ));
            None
        }
        Err(e) => {
            skip(&format!("{py} cannot run: {e}"));
            None
        }
    }
}

/// Runs operations through the Python script; every one must succeed.
fn py(interpreter: &str, ops: &[Value]) -> Vec<Value> {
    let mut child = Command::new(interpreter)
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(ops).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), ops.len());
    for (op, r) in ops.iter().zip(&results) {
        assert!(r.get("error").is_none(), "python {}: {r}", op["op"]);
    }
    results
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

async fn exported(env: &Env, kind: &str, key: &str) -> String {
    s(&env
        .ok(
            Read,
            &format!("transit/export/{kind}/{key}/latest"),
            json!({}),
        )
        .await["keys"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone())
}

async fn public_key(env: &Env, key: &str) -> String {
    s(&env
        .ok(Read, &format!("transit/keys/{key}"), json!({}))
        .await["keys"]["1"]["public_key"])
}

#[tokio::test]
async fn python_cryptography_agrees() {
    let Some(interp) = python() else { return };
    let env = Env::new().await;
    let plain = b64(b"cross-checked plaintext");
    let aad = b64(b"header");

    // Symmetric: Tresor -> Python and Python -> Tresor.
    let mut ops = vec![];
    let mut tresor_cts = vec![];
    for (key, alg) in [
        ("aes256-gcm96", "aes-gcm"),
        ("aes128-gcm96", "aes-gcm"),
        ("chacha20-poly1305", "chacha20-poly1305"),
    ] {
        env.ok(
            Update,
            &format!("transit/keys/{key}"),
            json!({"type": key, "exportable": true}),
        )
        .await;
        let material = exported(&env, "encryption-key", key).await;
        let ct = env
            .encrypt(key, json!({"plaintext": plain, "associated_data": aad}))
            .await;
        ops.push(json!({"op": "aead_decrypt", "alg": alg, "key": material, "ciphertext": ct, "aad": aad}));
        ops.push(json!({"op": "aead_encrypt", "alg": alg, "key": material, "plaintext": plain, "aad": aad, "version": 1}));
        tresor_cts.push(key);
    }
    // Derived and convergent keys: Python derives with HKDF-SHA256(key, info=context).
    env.ok(
        Update,
        "transit/keys/derived",
        json!({"derived": true, "exportable": true}),
    )
    .await;
    env.ok(
        Update,
        "transit/keys/convergent",
        json!({"derived": true, "convergent_encryption": true, "exportable": true}),
    )
    .await;
    let context = b64(b"tenant-42");
    let derived_master = exported(&env, "encryption-key", "derived").await;
    let convergent_master = exported(&env, "encryption-key", "convergent").await;
    ops.push(json!({"op": "hkdf", "key": derived_master, "context": context, "length": 32}));
    ops.push(json!({"op": "hkdf", "key": convergent_master, "context": context, "length": 64}));
    // RSA-OAEP both ways, with the exported PKCS#1 key and the published public key.
    env.ok(
        Update,
        "transit/keys/rsa",
        json!({"type": "rsa-2048", "exportable": true}),
    )
    .await;
    let rsa_private = exported(&env, "encryption-key", "rsa").await;
    let rsa_public = public_key(&env, "rsa").await;
    let rsa_ct = env.encrypt("rsa", json!({"plaintext": plain})).await;
    ops.push(json!({"op": "rsa_oaep_decrypt", "private_pem": rsa_private, "ciphertext": rsa_ct}));
    ops.push(json!({"op": "rsa_oaep_encrypt", "public_pem": rsa_public, "plaintext": plain, "version": 1}));
    ops.push(json!({"op": "public_of_private", "private_pem": rsa_private}));
    let out = py(&interp, &ops);

    let mut i = 0;
    for key in &tresor_cts {
        assert_eq!(out[i]["plaintext"], plain, "{key}: Tresor -> Python");
        let python_ct = s(&out[i + 1]["ciphertext"]);
        assert_eq!(
            env.ok(
                Update,
                &format!("transit/decrypt/{key}"),
                json!({"ciphertext": python_ct, "associated_data": aad})
            )
            .await["plaintext"],
            plain,
            "{key}: Python -> Tresor"
        );
        i += 2;
    }
    let derived_key = s(&out[i]["key"]);
    let convergent_okm = unb64(&s(&out[i + 1]["key"]));
    let rsa_out = &out[i + 2..];
    assert_eq!(rsa_out[0]["plaintext"], plain);
    assert_eq!(
        env.ok(
            Update,
            "transit/decrypt/rsa",
            json!({"ciphertext": rsa_out[1]["ciphertext"]})
        )
        .await["plaintext"],
        plain
    );
    assert_eq!(rsa_out[2]["public_pem"], rsa_public);

    let derived_ct = env
        .encrypt("derived", json!({"plaintext": plain, "context": context}))
        .await;
    let convergent_ct = env
        .encrypt(
            "convergent",
            json!({"plaintext": plain, "context": context}),
        )
        .await;
    let out = py(
        &interp,
        &[
            json!({"op": "aead_decrypt", "alg": "aes-gcm", "key": derived_key, "ciphertext": derived_ct}),
            json!({"op": "aead_decrypt", "alg": "aes-gcm", "key": b64(&convergent_okm[..32]), "ciphertext": convergent_ct}),
            json!({"op": "convergent_nonce", "hmac_key": b64(&convergent_okm[32..]), "plaintext": plain}),
        ],
    );
    assert_eq!(out[0]["plaintext"], plain, "derived key = HKDF-SHA256");
    assert_eq!(out[1]["plaintext"], plain, "convergent key = HKDF-SHA256");
    let nonce = &unb64(convergent_ct.strip_prefix("vault:v1:").unwrap())[..12];
    assert_eq!(
        unb64(&s(&out[2]["nonce"])),
        nonce,
        "convergent nonce = HMAC-SHA256(derived, plaintext)[..12]"
    );

    // Signatures: Tresor signs, Python verifies (and a tampered input fails); Python signs
    // with the exported key, Tresor verifies.
    let msg = b64(b"signed message");
    let tampered = b64(b"signed messagE");
    let mut ops = vec![];
    let mut expect = vec![];
    let mut python_signs = vec![];
    for (key, alg) in [
        ("ed25519", "ed25519"),
        ("ecdsa-p256", "ecdsa"),
        ("ecdsa-p384", "ecdsa"),
        ("ecdsa-p521", "ecdsa"),
        ("rsa-3072", "rsa-pss"),
    ] {
        env.ok(
            Update,
            &format!("transit/keys/{key}"),
            json!({"type": key, "exportable": true}),
        )
        .await;
        let public = public_key(&env, key).await;
        let private = exported(&env, "signing-key", key).await;
        let hashes: &[&str] = if alg == "ed25519" {
            &["sha2-256"]
        } else if alg == "ecdsa" {
            &[
                "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-256", "sha3-512", "sha1",
            ]
        } else {
            &["sha2-256", "sha2-384", "sha2-512"]
        };
        let variants: Vec<(&str, &str)> = match alg {
            "rsa-pss" => vec![("pss", "asn1"), ("pkcs1v15", "asn1")],
            "ed25519" | "ecdsa" => vec![("", "asn1"), ("", "jws")],
            _ => unreachable!(),
        };
        for hash in hashes {
            for (sig_alg, marshaling) in &variants {
                let mut req = json!({"input": msg, "hash_algorithm": hash, "marshaling_algorithm": marshaling});
                if !sig_alg.is_empty() {
                    req["signature_algorithm"] = json!(sig_alg);
                }
                let sig = s(&env
                    .ok(Update, &format!("transit/sign/{key}"), req.clone())
                    .await["signature"]);
                let py_alg = if *sig_alg == "pkcs1v15" {
                    "rsa-pkcs1v15"
                } else {
                    alg
                };
                let check = json!({"op": "verify", "alg": py_alg, "public": public, "hash": hash,
                                   "marshaling": marshaling, "input": msg, "signature": sig});
                ops.push(check.clone());
                expect.push((true, format!("{key} {hash} {sig_alg} {marshaling}")));
                let mut bad = check;
                bad["input"] = json!(tampered);
                ops.push(bad);
                expect.push((
                    false,
                    format!("{key} {hash} {sig_alg} {marshaling} tampered"),
                ));
                python_signs.push((
                    key,
                    req,
                    json!({"op": "sign", "alg": py_alg, "private": private, "hash": hash,
                           "marshaling": marshaling, "input": msg, "version": 1}),
                ));
            }
        }
    }
    // ECDSA over a caller-computed digest (prehashed).
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, b"signed message");
    let sig = s(&env
        .ok(
            Update,
            "transit/sign/ecdsa-p256",
            json!({"input": b64(digest.as_ref()), "prehashed": true, "hash_algorithm": "sha2-384"}),
        )
        .await["signature"]);
    ops.push(json!({"op": "verify", "alg": "ecdsa", "public": public_key(&env, "ecdsa-p256").await,
                    "hash": "sha2-384", "prehashed": true, "input": b64(digest.as_ref()), "signature": sig}));
    expect.push((true, "ecdsa-p256 prehashed sha2-384".into()));
    let out = py(&interp, &ops);
    for (r, (valid, what)) in out.iter().zip(&expect) {
        assert_eq!(
            r["valid"], *valid,
            "Python verifying Tresor's signature: {what}"
        );
    }
    let sign_ops: Vec<Value> = python_signs.iter().map(|(_, _, op)| op.clone()).collect();
    let out = py(&interp, &sign_ops);
    for ((key, req, _), r) in python_signs.iter().zip(&out) {
        let mut v = req.clone();
        v["signature"] = r["signature"].clone();
        assert_eq!(
            env.ok(Update, &format!("transit/verify/{key}"), v.clone())
                .await["valid"],
            true,
            "Tresor verifying Python's signature: {key} {v}"
        );
    }

    // HMACs and hashes.
    env.ok(
        Update,
        "transit/keys/hmac",
        json!({"type": "hmac", "exportable": true}),
    )
    .await;
    let mut ops = vec![];
    let mut tresor = vec![];
    for key in ["hmac", "aes256-gcm96"] {
        let hkey = exported(&env, "hmac-key", key).await;
        for hash in ["sha1", "sha2-224", "sha2-256", "sha2-384", "sha2-512"] {
            ops.push(json!({"op": "hmac", "key": hkey, "hash": hash, "input": msg, "version": 1}));
            tresor.push(
                env.ok(
                    Update,
                    &format!("transit/hmac/{key}/{hash}"),
                    json!({"input": msg}),
                )
                .await["hmac"]
                    .clone(),
            );
        }
    }
    for hash in [
        "sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-256", "sha3-384", "sha3-512",
    ] {
        ops.push(json!({"op": "hash", "hash": hash, "input": msg}));
        tresor.push(
            env.ok(
                Update,
                &format!("transit/hash/{hash}"),
                json!({"input": msg}),
            )
            .await["sum"]
                .clone(),
        );
    }
    let out = py(&interp, &ops);
    for ((op, r), t) in ops.iter().zip(&out).zip(&tresor) {
        let got = r.get("hmac").or_else(|| r.get("sum")).unwrap();
        assert_eq!(got, t, "{op}");
    }

    // BYOK: Python generates keys and wraps them with Tresor's wrapping key as Vault's
    // clients do; Tresor imports them and uses them.
    let wrapping = s(&env.ok(Read, "transit/wrapping_key", json!({})).await["public_key"]);
    let aes_material = b64(&[0x5au8; 32]);
    let generated = py(
        &interp,
        &[
            json!({"op": "generate", "type": "ecdsa-p384"}),
            json!({"op": "generate", "type": "rsa-2048"}),
            json!({"op": "generate", "type": "ed25519"}),
        ],
    );
    let mut wrap_ops =
        vec![json!({"op": "wrap_import", "wrapping_pem": wrapping, "material": aes_material})];
    for g in &generated {
        wrap_ops.push(json!({"op": "wrap_import", "wrapping_pem": wrapping, "material": g["pkcs8"], "hash": "SHA384"}));
    }
    let wrapped = py(&interp, &wrap_ops);
    env.resp(
        Update,
        "transit/keys/imp-aes/import",
        json!({"ciphertext": wrapped[0]["ciphertext"]}),
    )
    .await;
    let imp_ct = env.encrypt("imp-aes", json!({"plaintext": plain})).await;
    let mut checks = vec![
        json!({"op": "aead_decrypt", "alg": "aes-gcm", "key": aes_material, "ciphertext": imp_ct}),
    ];
    for ((ty, g), w) in ["ecdsa-p384", "rsa-2048", "ed25519"]
        .iter()
        .zip(&generated)
        .zip(&wrapped[1..])
    {
        env.resp(
            Update,
            &format!("transit/keys/imp-{ty}/import"),
            json!({"ciphertext": w["ciphertext"], "type": ty, "hash_function": "SHA384"}),
        )
        .await;
        let sig = s(&env
            .ok(
                Update,
                &format!("transit/sign/imp-{ty}"),
                json!({"input": msg}),
            )
            .await["signature"]);
        let alg = match *ty {
            "ecdsa-p384" => "ecdsa",
            "rsa-2048" => "rsa-pss",
            _ => "ed25519",
        };
        checks.push(
            json!({"op": "verify", "alg": alg, "public": g["public"], "hash": "sha2-256",
                           "input": msg, "signature": sig}),
        );
    }
    let out = py(&interp, &checks);
    assert_eq!(out[0]["plaintext"], plain, "imported AES key");
    for r in &out[1..] {
        assert_eq!(
            r["valid"], true,
            "imported asymmetric key signs as its owner"
        );
    }
}

/// Runs `openssl` with `args`; its stdout, or the failure.
fn openssl(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test]
async fn openssl_agrees() {
    if let Err(e) = openssl(&["version"]) {
        skip(&format!("no openssl command: {e}"));
        return;
    }
    let env = Env::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let message = b"verified by openssl";
    std::fs::write(path("msg"), message).unwrap();
    let input = b64(message);

    // ECDSA with digests longer and shorter than the curve's (aws-lc-rs signs the re-encoded
    // digest; openssl hashes the message itself), RSA-PSS and PKCS#1 v1.5.
    for (key, ty, hash, dgst, extra) in [
        ("p256", "ecdsa-p256", "sha2-512", "-sha512", vec![]),
        ("p256", "ecdsa-p256", "sha2-224", "-sha224", vec![]),
        ("p384", "ecdsa-p384", "sha2-256", "-sha256", vec![]),
        ("p384", "ecdsa-p384", "sha2-384", "-sha384", vec![]),
        ("p521", "ecdsa-p521", "sha2-256", "-sha256", vec![]),
        ("p521", "ecdsa-p521", "sha2-512", "-sha512", vec![]),
        (
            "rsa",
            "rsa-2048",
            "sha2-384",
            "-sha384",
            vec![
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:auto",
            ],
        ),
        ("rsa", "rsa-2048", "sha2-512", "-sha512", vec![]),
    ] {
        env.ok(
            Update,
            &format!("transit/keys/{key}"),
            json!({"type": ty, "exportable": true}),
        )
        .await;
        let mut req = json!({"input": input, "hash_algorithm": hash});
        if ty.starts_with("rsa") && extra.is_empty() {
            req["signature_algorithm"] = json!("pkcs1v15");
        }
        let sig = s(&env.ok(Update, &format!("transit/sign/{key}"), req).await["signature"]);
        std::fs::write(path("sig"), unb64(sig.strip_prefix("vault:v1:").unwrap())).unwrap();
        std::fs::write(path("pub.pem"), public_key(&env, key).await).unwrap();
        let (pub_path, sig_path, msg_path) = (path("pub.pem"), path("sig"), path("msg"));
        let mut args = vec!["dgst", dgst, "-verify", &pub_path];
        args.extend(extra.iter().copied());
        args.extend(["-signature", &sig_path, &msg_path]);
        let out = openssl(&args).unwrap_or_else(|e| panic!("openssl {ty} {hash}: {e}"));
        assert!(
            String::from_utf8_lossy(&out).contains("Verified OK"),
            "{ty} {hash}"
        );
        // A different message does not verify.
        std::fs::write(path("other"), b"something else").unwrap();
        let other = path("other");
        let last = args.len() - 1;
        args[last] = &other;
        assert!(openssl(&args).is_err(), "{ty} {hash}: tampered message");
    }

    // Ed25519: wrap the raw public key in SubjectPublicKeyInfo for openssl.
    env.ok(Update, "transit/keys/ed", json!({"type": "ed25519"}))
        .await;
    let sig = s(&env
        .ok(Update, "transit/sign/ed", json!({"input": input}))
        .await["signature"]);
    std::fs::write(
        path("ed.sig"),
        unb64(sig.strip_prefix("vault:v1:").unwrap()),
    )
    .unwrap();
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend(unb64(&public_key(&env, "ed").await));
    std::fs::write(
        path("ed.pem"),
        super::super::encoding::pem("PUBLIC KEY", &spki, true),
    )
    .unwrap();
    let out = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &path("ed.pem"),
        "-rawin",
        "-in",
        &path("msg"),
        "-sigfile",
        &path("ed.sig"),
    ])
    .unwrap_or_else(|e| panic!("openssl ed25519: {e}"));
    assert!(String::from_utf8_lossy(&out).contains("Signature Verified Successfully"));

    // RSA-OAEP: openssl decrypts Tresor's ciphertext with the exported PKCS#1 key.
    let ct = env.encrypt("rsa", json!({"plaintext": input})).await;
    std::fs::write(path("ct"), unb64(ct.strip_prefix("vault:v1:").unwrap())).unwrap();
    std::fs::write(
        path("rsa.pem"),
        exported(&env, "encryption-key", "rsa").await,
    )
    .unwrap();
    let out = openssl(&[
        "pkeyutl",
        "-decrypt",
        "-inkey",
        &path("rsa.pem"),
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
        "-in",
        &path("ct"),
    ])
    .unwrap_or_else(|e| panic!("openssl oaep: {e}"));
    assert_eq!(out, message);

    // Exported EC private keys (SEC1) carry the published public key.
    std::fs::write(path("ec.pem"), exported(&env, "signing-key", "p384").await).unwrap();
    let out = openssl(&["ec", "-in", &path("ec.pem"), "-pubout"])
        .unwrap_or_else(|e| panic!("openssl ec: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&out),
        public_key(&env, "p384").await
    );
}
