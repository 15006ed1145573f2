//! `config/ca`, `public_key`, issuers and the default issuer.

use super::*;

#[tokio::test]
async fn config_ca_generates_reads_and_deletes_the_default_issuer() {
    let env = Env::new().await;
    // Nothing configured yet.
    env.bad(
        Read,
        "ssh/config/ca",
        json!({}),
        "no default issuer currently configured",
    )
    .await;
    let r = env
        .req_as(None, Read, "ssh/public_key", json!({}))
        .await
        .unwrap_err();
    assert_eq!(r.status(), 400);

    let public = env.ca().await;
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    assert!(public.ends_with('\n'));
    let read = env.ok(Read, "ssh/config/ca", json!({})).await;
    assert_eq!(read["public_key"], public);
    assert_eq!(read["issuer_name"], "");
    assert_eq!(read["issuer_id"].as_str().unwrap().len(), 36);

    // `public_key` needs no token and is plain text.
    let r = env
        .req_as(None, Read, "ssh/public_key", json!({}))
        .await
        .unwrap();
    assert_eq!(r.raw.as_ref().unwrap().content_type, "text/plain");
    assert_eq!(raw_text(&r), public);

    // DELETE removes every issuer: 204, as Vault.
    let r = env.resp(Delete, "ssh/config/ca", json!({})).await;
    assert_eq!(r.http_status(), 204);
    env.bad(Read, "ssh/config/ca", json!({}), "no default issuer")
        .await;
    env.fails(List, "ssh/issuers", json!({}), 404, "").await;
}

#[tokio::test]
async fn every_key_type_can_be_generated_and_rsa_defaults_to_4096_bits() {
    let env = Env::new().await;
    for (kt, bits, prefix) in [
        ("ec", 256, "ecdsa-sha2-nistp256 "),
        ("ecdsa-sha2-nistp384", 0, "ecdsa-sha2-nistp384 "),
        ("ssh-ed25519", 0, "ssh-ed25519 "),
        ("rsa", 2048, "ssh-rsa "),
    ] {
        let r = env
            .ok(
                Update,
                "ssh/issuers/import",
                json!({"generate_signing_key": true, "key_type": kt, "key_bits": bits}),
            )
            .await;
        assert!(
            r["public_key"].as_str().unwrap().starts_with(prefix),
            "{kt}"
        );
    }
    let r = env.ok(Update, "ssh/config/ca", json!({})).await;
    let key = super::super::keys::parse_public_key(r["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        super::super::keys::key_type_and_bits(&key).unwrap(),
        ("rsa", 4096)
    );
    env.bad(
        Update,
        "ssh/config/ca",
        json!({"key_type": "rsa", "key_bits": 1024}),
        "refusing to generate weak",
    )
    .await;
    env.bad(
        Update,
        "ssh/config/ca",
        json!({"key_type": "dsa"}),
        "unknown ssh key pair algorithm",
    )
    .await;
}

#[tokio::test]
async fn submitted_key_pairs_are_checked() {
    let env = Env::new().await;
    let k = super::super::keys::SigningKey::generate("ec", 256, 2048).unwrap();
    let private = k.to_pem().unwrap().to_string();
    let public = k.public_key_line().unwrap();
    env.bad(
        Update,
        "ssh/config/ca",
        json!({"private_key": private}),
        "only one of public_key and private_key set",
    )
    .await;
    env.bad(
        Update,
        "ssh/config/ca",
        json!({"generate_signing_key": false}),
        "missing public_key",
    )
    .await;
    env.bad(
        Update,
        "ssh/config/ca",
        json!({"generate_signing_key": true, "public_key": public, "private_key": private}),
        "must not be set when generate_signing_key is set to true",
    )
    .await;
    env.bad(
        Update,
        "ssh/config/ca",
        json!({"public_key": "ssh-ed25519 AAAAnotakey", "private_key": private}),
        "could not parse public_key provided value",
    )
    .await;
    env.bad(
        Update,
        "ssh/config/ca",
        json!({"public_key": public, "private_key": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"}),
        "could not parse private_key provided value",
    )
    .await;
    let other = user_key("ec", 256);
    env.bad(
        Update,
        "ssh/config/ca",
        json!({"public_key": other, "private_key": private}),
        "does not match",
    )
    .await;
    let r = env
        .ok(
            Update,
            "ssh/config/ca",
            json!({"public_key": public, "private_key": private}),
        )
        .await;
    assert_eq!(r["public_key"], public);
    // The same key again is the same issuer, with a warning.
    let again = env
        .resp(
            Update,
            "ssh/issuers/import/again",
            json!({"public_key": public, "private_key": private}),
        )
        .await;
    assert_eq!(body(&again)["issuer_id"], r["issuer_id"]);
    assert!(again.warnings[0].contains("already exists"));
}

#[tokio::test]
async fn openssh_private_keys_of_every_type_are_accepted() {
    // Keys as `ssh-keygen` writes them (OpenSSH format), when the tool is here.
    if std::process::Command::new("ssh-keygen")
        .arg("-?")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: no ssh-keygen");
        return;
    }
    let env = Env::new().await;
    let dir = tempfile::tempdir().unwrap();
    for (t, bits) in [("ed25519", "256"), ("ecdsa", "384"), ("rsa", "2048")] {
        let path = dir.path().join(t);
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", t, "-b", bits, "-N", "", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let private = std::fs::read_to_string(&path).unwrap();
        assert!(private.contains("OPENSSH PRIVATE KEY"));
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let r = env
            .ok(
                Update,
                &format!("ssh/issuers/import/{t}"),
                json!({"public_key": public, "private_key": private}),
            )
            .await;
        assert_eq!(r["issuer_name"], t);
        // It signs.
        env.ok(
            Update,
            "ssh/roles/r",
            json!({"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*", "issuer_ref": t}),
        )
        .await;
        let s = env
            .ok(
                Update,
                "ssh/sign/r",
                json!({"public_key": user_key("ed25519", 0), "valid_principals": "u"}),
            )
            .await;
        let cert = parse_cert(&s["signed_key"]);
        assert_eq!(
            super::super::keys::authorized_key(cert.signature_key()).unwrap(),
            public
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

#[tokio::test]
async fn issuers_are_listed_named_renamed_and_deleted() {
    let env = Env::new().await;
    let first = env
        .ok(
            Update,
            "ssh/issuers/import/first",
            json!({"key_type": "ed25519"}),
        )
        .await;
    let second = env
        .ok(
            Update,
            "ssh/issuers/import/second",
            json!({"key_type": "ec"}),
        )
        .await;
    let (id1, id2) = (
        first["issuer_id"].as_str().unwrap().to_string(),
        second["issuer_id"].as_str().unwrap().to_string(),
    );
    // The first became the default; the second did not.
    assert_eq!(
        env.ok(Read, "ssh/config/issuers", json!({})).await["default"],
        id1
    );
    let list = env.ok(List, "ssh/issuers", json!({})).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    assert_eq!(list["key_info"][&id1]["is_default"], true);
    assert_eq!(list["key_info"][&id2]["issuer_name"], "second");
    // By name, by id, by `default`.
    assert_eq!(
        env.ok(Read, "ssh/issuer/second", json!({})).await["issuer_id"],
        id2
    );
    assert_eq!(
        env.ok(Read, &format!("ssh/issuer/{id2}"), json!({})).await["issuer_name"],
        "second"
    );
    assert_eq!(
        env.ok(Read, "ssh/issuer/default", json!({})).await["issuer_id"],
        id1
    );
    let pk = env
        .req_as(None, Read, "ssh/issuer/second/public_key", json!({}))
        .await
        .unwrap();
    assert_eq!(raw_text(&pk), second["public_key"].as_str().unwrap());
    env.bad(
        Read,
        "ssh/issuer/nope",
        json!({}),
        "unable to find issuer for reference: nope",
    )
    .await;
    // Names are unique, not `default`, and of Vault's characters.
    env.bad(
        Update,
        "ssh/issuer/second",
        json!({"issuer_name": "first"}),
        "issuer name already in use",
    )
    .await;
    env.bad(
        Update,
        "ssh/issuer/second",
        json!({"issuer_name": "Default"}),
        "reserved keyword",
    )
    .await;
    env.bad(
        Update,
        "ssh/issuers/import",
        json!({"issuer_name": "a b"}),
        "invalid characters",
    )
    .await;
    let renamed = env
        .ok(
            Update,
            "ssh/issuer/second",
            json!({"issuer_name": "renamed"}),
        )
        .await;
    assert_eq!(renamed["issuer_name"], "renamed");
    // A new default, by name.
    let r = env
        .resp(Update, "ssh/config/issuers", json!({"default": "renamed"}))
        .await;
    assert_eq!(body(&r)["default"], id2);
    assert!(r.warnings[0].contains("Previous default"));
    env.bad(
        Update,
        "ssh/config/issuers",
        json!({"default": "default"}),
        "can't be 'default'",
    )
    .await;
    assert_eq!(
        raw_text(
            &env.req_as(None, Read, "ssh/public_key", json!({}))
                .await
                .unwrap()
        ),
        second["public_key"].as_str().unwrap()
    );
    // Deleting the default leaves none (with a warning); deleting what is gone is fine.
    let r = env.resp(Delete, "ssh/issuer/renamed", json!({})).await;
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("configured as the default")));
    env.bad(Read, "ssh/config/issuers", json!({}), "no default issuer")
        .await;
    assert_eq!(
        env.resp(Delete, "ssh/issuer/renamed", json!({}))
            .await
            .http_status(),
        204
    );
    assert_eq!(
        env.ok(List, "ssh/issuers", json!({})).await["keys"],
        json!([id1])
    );
}
