//! `export`, `backup`/`restore`, BYOK `import`, `random`, `hash`, `cache-config`, and the
//! engine's `help`.

use super::*;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrapPadded, AES_256};
use aws_lc_rs::rsa;
use aws_lc_rs::signature::{self, KeyPair as _};

#[tokio::test]
async fn export_formats_and_refusals() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/secret", json!({})).await;
    env.bad(
        Read,
        "transit/export/encryption-key/secret",
        json!({}),
        "private key material is not exportable",
    )
    .await;
    assert!(matches!(
        env.err(Read, "transit/export/encryption-key/nokey", json!({}))
            .await,
        Error::NotFound
    ));
    env.bad(
        Read,
        "transit/export/foo/secret",
        json!({}),
        "invalid export type: foo",
    )
    .await;
    for t in [
        "aes256-gcm96",
        "aes128-gcm96",
        "ed25519",
        "ecdsa-p256",
        "rsa-2048",
        "hmac",
    ] {
        env.ok(
            Update,
            &format!("transit/keys/x-{t}"),
            json!({"type": t, "exportable": true}),
        )
        .await;
    }
    env.ok(Update, "transit/keys/x-aes256-gcm96/rotate", json!({}))
        .await;
    let all = env
        .ok(
            Read,
            "transit/export/encryption-key/x-aes256-gcm96",
            json!({}),
        )
        .await;
    assert_eq!(all["name"], "x-aes256-gcm96");
    assert_eq!(all["type"], "aes256-gcm96");
    assert_eq!(all["keys"].as_object().unwrap().len(), 2);
    assert_eq!(unb64(all["keys"]["1"].as_str().unwrap()).len(), 32);
    let latest = env
        .ok(
            Read,
            "transit/export/encryption-key/x-aes256-gcm96/latest",
            json!({}),
        )
        .await;
    assert_eq!(latest["keys"], json!({"2": all["keys"]["2"]}));
    let one = env
        .ok(
            Read,
            "transit/export/encryption-key/x-aes256-gcm96/1",
            json!({}),
        )
        .await;
    assert_eq!(one["keys"], json!({"1": all["keys"]["1"]}));
    env.bad(
        Read,
        "transit/export/encryption-key/x-aes256-gcm96/5",
        json!({}),
        "version does not exist or cannot be found",
    )
    .await;
    let aes128 = env
        .ok(
            Read,
            "transit/export/encryption-key/x-aes128-gcm96",
            json!({}),
        )
        .await;
    assert_eq!(unb64(aes128["keys"]["1"].as_str().unwrap()).len(), 16);
    // HMAC keys of every key type.
    for t in ["aes256-gcm96", "ed25519", "ecdsa-p256", "rsa-2048", "hmac"] {
        let h = env
            .ok(Read, &format!("transit/export/hmac-key/x-{t}"), json!({}))
            .await;
        assert_eq!(unb64(h["keys"]["1"].as_str().unwrap()).len(), 32, "{t}");
    }
    // Signing keys.
    let ed = env
        .ok(Read, "transit/export/signing-key/x-ed25519", json!({}))
        .await;
    let ed = unb64(ed["keys"]["1"].as_str().unwrap());
    assert_eq!(ed.len(), 64);
    let ed_pub = env
        .ok(Read, "transit/export/public-key/x-ed25519", json!({}))
        .await;
    assert_eq!(unb64(ed_pub["keys"]["1"].as_str().unwrap()), ed[32..]);
    let ec = env
        .ok(Read, "transit/export/signing-key/x-ecdsa-p256", json!({}))
        .await;
    let ec = ec["keys"]["1"].as_str().unwrap();
    assert!(ec.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    assert!(ec.ends_with("-----END EC PRIVATE KEY-----"));
    let ec_pub = env
        .ok(Read, "transit/export/public-key/x-ecdsa-p256", json!({}))
        .await;
    assert!(ec_pub["keys"]["1"]
        .as_str()
        .unwrap()
        .ends_with("-----END PUBLIC KEY-----"));
    for ty in ["signing-key", "encryption-key"] {
        let rsa = env
            .ok(Read, &format!("transit/export/{ty}/x-rsa-2048"), json!({}))
            .await;
        let pem = rsa["keys"]["1"].as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END RSA PRIVATE KEY-----\n"));
    }
    let rsa_pub = env
        .ok(Read, "transit/export/public-key/x-rsa-2048", json!({}))
        .await;
    assert!(rsa_pub["keys"]["1"]
        .as_str()
        .unwrap()
        .ends_with("-----END PUBLIC KEY-----\n"));
    // Public keys export even when the key is not exportable.
    env.ok(Update, "transit/keys/ne", json!({"type": "ecdsa-p384"}))
        .await;
    env.ok(Read, "transit/export/public-key/ne", json!({}))
        .await;
    // Wrong kinds.
    env.bad(
        Read,
        "transit/export/signing-key/x-aes256-gcm96",
        json!({}),
        "signing not supported for the key",
    )
    .await;
    env.bad(
        Read,
        "transit/export/encryption-key/x-ed25519",
        json!({}),
        "encryption not supported for the key",
    )
    .await;
    env.fails(
        Read,
        "transit/export/public-key/x-aes256-gcm96",
        json!({}),
        400,
        "unknown key type aes256-gcm96 for export type public-key",
    )
    .await;
    env.bad(
        Read,
        "transit/export/encryption-key/x-aes256-gcm96/abc",
        json!({}),
        "invalid key version",
    )
    .await;
    // Versions below min_decryption_version are not exported.
    env.ok(
        Update,
        "transit/keys/x-aes256-gcm96/config",
        json!({"min_decryption_version": 2}),
    )
    .await;
    let all = env
        .ok(
            Read,
            "transit/export/encryption-key/x-aes256-gcm96",
            json!({}),
        )
        .await;
    assert_eq!(all["keys"].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn backup_and_restore() {
    let env = Env::new().await;
    env.ok(Update, "transit/keys/k", json!({})).await;
    env.fails(
        Read,
        "transit/backup/k",
        json!({}),
        400,
        "exporting is disallowed on the policy",
    )
    .await;
    env.ok(Update, "transit/keys/k/config", json!({"exportable": true}))
        .await;
    env.fails(
        Read,
        "transit/backup/k",
        json!({}),
        400,
        "plaintext backup is disallowed on the policy",
    )
    .await;
    env.fails(
        Read,
        "transit/backup/nokey",
        json!({}),
        400,
        "key \"nokey\" not found",
    )
    .await;
    env.ok(
        Update,
        "transit/keys/k/config",
        json!({"allow_plaintext_backup": true}),
    )
    .await;
    env.ok(Update, "transit/keys/k/rotate", json!({})).await;
    let ct1 = env
        .encrypt("k", json!({"plaintext": b64(b"one"), "key_version": 1}))
        .await;
    let ct2 = env.encrypt("k", json!({"plaintext": b64(b"two")})).await;
    let backup = env.ok(Read, "transit/backup/k", json!({})).await["backup"]
        .as_str()
        .unwrap()
        .to_string();
    let k = env.ok(Read, "transit/keys/k", json!({})).await;
    assert_eq!(k["backup_info"]["version"], 2);
    // Restoring over the existing key needs force.
    env.fails(
        Update,
        "transit/restore",
        json!({"backup": backup}),
        400,
        "key \"k\" already exists",
    )
    .await;
    env.ok(Update, "transit/restore/copy", json!({"backup": backup}))
        .await;
    let copy = env.ok(Read, "transit/keys/copy", json!({})).await;
    assert_eq!(copy["name"], "copy");
    assert_eq!(copy["latest_version"], 2);
    assert_eq!(copy["restore_info"]["version"], 2);
    for (ct, pt) in [(&ct1, "one"), (&ct2, "two")] {
        assert_eq!(
            env.ok(Update, "transit/decrypt/copy", json!({"ciphertext": ct}))
                .await["plaintext"],
            b64(pt.as_bytes())
        );
    }
    // Force: a deleted-and-restored key decrypts its old data again.
    env.ok(
        Update,
        "transit/keys/k/config",
        json!({"deletion_allowed": true}),
    )
    .await;
    env.resp(Delete, "transit/keys/k", json!({})).await;
    env.ok(Update, "transit/restore", json!({"backup": backup}))
        .await;
    env.ok(Update, "transit/decrypt/k", json!({"ciphertext": ct2}))
        .await;
    env.ok(
        Update,
        "transit/restore/k",
        json!({"backup": backup, "force": true}),
    )
    .await;
    env.bad(
        Update,
        "transit/restore",
        json!({}),
        "'backup' must be supplied",
    )
    .await;
    env.fails(
        Update,
        "transit/restore",
        json!({"backup": "!!"}),
        400,
        "illegal base64 data at input byte 0",
    )
    .await;
    env.fails(
        Update,
        "transit/restore",
        json!({"backup": b64(b"{}")}),
        400,
        "not a Tresor transit key backup",
    )
    .await;
}

/// Wraps key material for import as Vault specifies, with aws-lc-rs (independent of the
/// engine's unwrapping code path).
fn wrap_for_import(wrapping_pem: &str, material: &[u8]) -> String {
    let (_, der) = super::super::encoding::pem_decode(wrapping_pem).unwrap();
    let pk = rsa::OaepPublicEncryptingKey::new(rsa::PublicEncryptingKey::from_der(&der).unwrap())
        .unwrap();
    let eph = [0x42u8; 32];
    let mut wrapped_eph = vec![0u8; pk.ciphertext_size()];
    let n = pk
        .encrypt(&rsa::OAEP_SHA256_MGF1SHA256, &eph, &mut wrapped_eph, None)
        .unwrap()
        .len();
    wrapped_eph.truncate(n);
    let kek = KeyEncryptionKey::new(&AES_256, &eph).unwrap();
    let mut wrapped = vec![0u8; material.len() + 16];
    let n = kek.wrap_with_padding(material, &mut wrapped).unwrap().len();
    wrapped.truncate(n);
    wrapped_eph.extend_from_slice(&wrapped);
    b64(&wrapped_eph)
}

#[tokio::test]
async fn byok_import() {
    let env = Env::new().await;
    let wk = env.ok(Read, "transit/wrapping_key", json!({})).await;
    let pem = wk["public_key"].as_str().unwrap().to_string();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    // The wrapping key is stable (stored), also across restarts.
    env.restart().await;
    assert_eq!(
        env.ok(Read, "transit/wrapping_key", json!({})).await["public_key"],
        pem
    );
    // A symmetric key: what we import is what encrypts.
    let aes = [7u8; 32];
    env.resp(
        Update,
        "transit/keys/imp/import",
        json!({"ciphertext": wrap_for_import(&pem, &aes), "exportable": true}),
    )
    .await;
    let k = env.ok(Read, "transit/keys/imp", json!({})).await;
    assert_eq!(k["imported_key"], true);
    assert_eq!(k["imported_key_allow_rotation"], false);
    let exported = env
        .ok(Read, "transit/export/encryption-key/imp", json!({}))
        .await;
    assert_eq!(unb64(exported["keys"]["1"].as_str().unwrap()), aes);
    let ct = env.encrypt("imp", json!({"plaintext": b64(b"x")})).await;
    env.ok(Update, "transit/decrypt/imp", json!({"ciphertext": ct}))
        .await;
    env.fails(
        Update,
        "transit/keys/imp/rotate",
        json!({}),
        400,
        "imported key imp does not allow rotation within Vault",
    )
    .await;
    // import_version adds a version.
    env.resp(
        Update,
        "transit/keys/imp/import_version",
        json!({"ciphertext": wrap_for_import(&pem, &[8u8; 32])}),
    )
    .await;
    assert_eq!(
        env.ok(Read, "transit/keys/imp", json!({})).await["latest_version"],
        2
    );
    for (path, body, status, msg) in [
        (
            "transit/keys/imp/import",
            json!({"ciphertext": wrap_for_import(&pem, &aes)}),
            400,
            "the import path cannot be used with an existing key",
        ),
        (
            "transit/keys/n1/import",
            json!({}),
            400,
            "provided type does not support public_key import",
        ),
        (
            "transit/keys/n1/import",
            json!({"type": "rsa-2048"}),
            400,
            "one of the following fields, ciphertext xor public_key, has to be set",
        ),
        (
            "transit/keys/n1/import",
            json!({"ciphertext": "AAAA"}),
            400,
            "provided ciphertext is too short",
        ),
        (
            "transit/keys/n1/import",
            json!({"ciphertext": "!!"}),
            400,
            "illegal base64 data at input byte 0",
        ),
        (
            "transit/keys/n1/import",
            json!({"ciphertext": wrap_for_import(&pem, &[1u8; 16])}),
            400,
            "invalid key size 16 bytes for key type aes256-gcm96",
        ),
        (
            "transit/keys/n1/import",
            json!({"ciphertext": wrap_for_import(&pem, &aes), "hash_function": "MD5"}),
            400,
            "unknown hash function: MD5",
        ),
        (
            "transit/keys/n1/import",
            json!({"ciphertext": wrap_for_import(&pem, &aes), "hash_function": "SHA512"}),
            400,
            "decryption error",
        ),
        (
            "transit/keys/n1/import",
            json!({"ciphertext": wrap_for_import(&pem, &aes), "type": "foo"}),
            400,
            "unknown key type: foo",
        ),
        (
            "transit/keys/n1/import",
            json!({"ciphertext": wrap_for_import(&pem, &aes), "convergent_encryption": true}),
            400,
            "import cannot be used on keys with convergent encryption enabled",
        ),
        (
            "transit/keys/n1/import",
            json!({"ciphertext": wrap_for_import(&pem, &aes), "auto_rotate_period": "2h"}),
            400,
            "allow_rotation must be set to true if auto-rotation is enabled",
        ),
        (
            "transit/keys/n1/import",
            json!({"public_key": "x", "type": "aes256-gcm96"}),
            400,
            "provided type does not support public_key import",
        ),
        (
            "transit/keys/nokey/import_version",
            json!({"ciphertext": "AAAA"}),
            400,
            "no key found with name nokey",
        ),
    ] {
        env.fails(Update, path, body, status, msg).await;
    }
    env.ok(Update, "transit/keys/native", json!({})).await;
    env.fails(
        Update,
        "transit/keys/native/import_version",
        json!({"ciphertext": "AAAA"}),
        400,
        "the import_version endpoint can only be used with an imported key",
    )
    .await;
    // An ECDSA key: first its public half (verify only), then the private half.
    let kp = signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let pkcs8 = kp.to_pkcs8v1().unwrap();
    let spki = kp.public_key().as_der().unwrap();
    let public_pem = super::super::encoding::pem("PUBLIC KEY", spki.as_ref(), true);
    env.resp(
        Update,
        "transit/keys/ec/import",
        json!({"public_key": public_pem, "type": "ecdsa-p256"}),
    )
    .await;
    let msg = b"signed elsewhere";
    let sig = kp.sign(&aws_lc_rs::rand::SystemRandom::new(), msg).unwrap();
    let verify = json!({"input": b64(msg), "signature": format!("vault:v1:{}", b64(sig.as_ref()))});
    assert_eq!(
        env.ok(Update, "transit/verify/ec", verify.clone()).await["valid"],
        true
    );
    env.fails(
        Update,
        "transit/sign/ec",
        json!({"input": b64(msg)}),
        400,
        "private key not imported for key version: 1",
    )
    .await;
    env.resp(
        Update,
        "transit/keys/ec/import_version",
        json!({"ciphertext": wrap_for_import(&pem, pkcs8.as_ref())}),
    )
    .await;
    let k = env.ok(Read, "transit/keys/ec", json!({})).await;
    assert_eq!(k["latest_version"], 1);
    let s = env
        .ok(Update, "transit/sign/ec", json!({"input": b64(msg)}))
        .await["signature"]
        .clone();
    assert_eq!(
        env.ok(
            Update,
            "transit/verify/ec",
            json!({"input": b64(msg), "signature": s})
        )
        .await["valid"],
        true
    );
    // A mismatching private key is refused.
    let other =
        signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    env.fails(
        Update,
        "transit/keys/ec/import_version",
        json!({"ciphertext": wrap_for_import(&pem, other.to_pkcs8v1().unwrap().as_ref()), "version": 1}),
        400,
        "private key imported, cannot be updated or add a public key",
    )
    .await;
    // An RSA private key, rotatable.
    let rsa_kp = rsa::KeyPair::generate(rsa::KeySize::Rsa2048).unwrap();
    env.resp(
        Update,
        "transit/keys/r/import",
        json!({"ciphertext": wrap_for_import(&pem, rsa_kp.as_der().unwrap().as_ref()),
               "type": "rsa-2048", "allow_rotation": true}),
    )
    .await;
    let ct = env.encrypt("r", json!({"plaintext": b64(b"x")})).await;
    env.ok(Update, "transit/decrypt/r", json!({"ciphertext": ct}))
        .await;
    env.ok(Update, "transit/keys/r/rotate", json!({})).await;
    // Wrong curve / size.
    env.fails(
        Update,
        "transit/keys/r3/import",
        json!({"ciphertext": wrap_for_import(&pem, rsa_kp.as_der().unwrap().as_ref()), "type": "rsa-3072"}),
        400,
        "invalid key size: expected 384 bytes, got 256 bytes",
    )
    .await;
    env.fails(
        Update,
        "transit/keys/p384/import",
        json!({"ciphertext": wrap_for_import(&pem, pkcs8.as_ref()), "type": "ecdsa-p384"}),
        400,
        "error parsing asymmetric key",
    )
    .await;
    // Ed25519 and HMAC.
    let ed = signature::Ed25519KeyPair::generate().unwrap();
    env.resp(
        Update,
        "transit/keys/ed/import",
        json!({"ciphertext": wrap_for_import(&pem, ed.to_pkcs8().unwrap().as_ref()), "type": "ed25519"}),
    )
    .await;
    assert_eq!(
        env.ok(Read, "transit/keys/ed", json!({})).await["keys"]["1"]["public_key"],
        b64(ed.public_key().as_ref())
    );
    env.resp(
        Update,
        "transit/keys/hm/import",
        json!({"ciphertext": wrap_for_import(&pem, &[3u8; 48]), "type": "hmac"}),
    )
    .await;
    assert_eq!(
        env.ok(Read, "transit/keys/hm", json!({})).await["key_size"],
        48
    );
}

#[tokio::test]
async fn random_bytes() {
    let env = Env::new().await;
    let r = env.ok(Update, "transit/random", json!({})).await;
    assert_eq!(unb64(r["random_bytes"].as_str().unwrap()).len(), 32);
    let r = env
        .ok(Update, "transit/random/8", json!({"format": "hex"}))
        .await;
    assert_eq!(r["random_bytes"].as_str().unwrap().len(), 16);
    let r = env.ok(Update, "transit/random", json!({"bytes": 5})).await;
    assert_eq!(unb64(r["random_bytes"].as_str().unwrap()).len(), 5);
    let r = env.resp(Update, "transit/random/seal/4", json!({})).await;
    assert_eq!(unb64(body(&r)["random_bytes"].as_str().unwrap()).len(), 4);
    assert!(r.warnings[0].contains("using platform entropy source"));
    env.ok(Update, "transit/random/all/4", json!({})).await;
    env.ok(Update, "transit/random/platform/4", json!({})).await;
    for (path, body, msg) in [
        (
            "transit/random",
            json!({"bytes": 0}),
            "'bytes' cannot be less than 1",
        ),
        (
            "transit/random",
            json!({"bytes": 999999}),
            "'bytes' should be less than 131072",
        ),
        (
            "transit/random",
            json!({"format": "foo"}),
            "unsupported encoding format \"foo\"; must be \"hex\" or \"base64\"",
        ),
        (
            "transit/random/system/4",
            json!({}),
            "unsupported entropy source \"system\"",
        ),
        (
            "transit/random/abc",
            json!({}),
            "error parsing url-set byte count",
        ),
    ] {
        env.bad(Update, path, body, msg).await;
    }
    assert_eq!(
        env.err(Read, "transit/random", json!({})).await.status(),
        405
    );
}

#[tokio::test]
async fn hashes() {
    let env = Env::new().await;
    let input = b64(b"hello");
    assert_eq!(
        env.ok(Update, "transit/hash", json!({"input": input}))
            .await["sum"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    // Known answers (FIPS 180-4 / 202 implementations agree on "hello").
    for (alg, hex_sum) in [
        (
            "sha2-224",
            "ea09ae9cc6768c50fcee903ed054556e5bfc8347907f12598aa24193",
        ),
        (
            "sha3-256",
            "3338be694f50c5f338814986cdf0686453a888b84f424d792af4b9202398f392",
        ),
    ] {
        assert_eq!(
            env.ok(
                Update,
                &format!("transit/hash/{alg}"),
                json!({"input": input})
            )
            .await["sum"],
            hex_sum
        );
    }
    let r = env
        .ok(
            Update,
            "transit/hash",
            json!({"input": input, "algorithm": "sha2-512", "format": "base64"}),
        )
        .await;
    assert_eq!(
        r["sum"],
        "m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw=="
    );
    for (body, msg) in [
        (json!({}), "input missing"),
        (json!({"input": "!!"}), "unable to decode input as base64"),
        (
            json!({"input": input, "format": "foo"}),
            "unsupported encoding format foo; must be \"hex\" or \"base64\"",
        ),
        (
            json!({"input": input, "algorithm": "md5"}),
            "unsupported algorithm md5",
        ),
        (
            json!({"input": input, "algorithm": "none"}),
            "unsupported algorithm none",
        ),
        (
            json!({"input": input, "algorithm": "sha3-224"}),
            "not available in Tresor's crypto library",
        ),
    ] {
        env.bad(Update, "transit/hash", body, msg).await;
    }
}

#[tokio::test]
async fn cache_config_and_help() {
    let env = Env::new().await;
    assert_eq!(
        env.ok(Read, "transit/cache-config", json!({})).await,
        json!({"size": 0})
    );
    env.bad(
        Update,
        "transit/cache-config",
        json!({"size": 5}),
        "size must be 0 or a value greater or equal to 10",
    )
    .await;
    env.bad(
        Update,
        "transit/cache-config",
        json!({"size": -1}),
        "size must be 0 or a value greater or equal to 10",
    )
    .await;
    assert_eq!(
        env.ok(Update, "transit/cache-config", json!({"size": 10}))
            .await,
        json!({"size": 10})
    );
    // A bounded cache still serves every key (evicted keys reload from storage).
    let mut cts = vec![];
    for i in 0..15 {
        cts.push(
            env.encrypt(&format!("k{i}"), json!({"plaintext": b64(b"x")}))
                .await,
        );
    }
    for (i, ct) in cts.iter().enumerate() {
        env.ok(
            Update,
            &format!("transit/decrypt/k{i}"),
            json!({"ciphertext": ct}),
        )
        .await;
    }
    env.restart().await;
    assert_eq!(
        env.ok(Read, "transit/cache-config", json!({})).await,
        json!({"size": 10})
    );
    let r = env
        .resp(Operation::Help, "transit/encrypt/k0", json!({}))
        .await;
    assert!(body(&r)["help"].as_str().unwrap().contains("Encrypt"));
    assert_eq!(
        env.err(Read, "transit/nothing/here", json!({}))
            .await
            .status(),
        404
    );
}
