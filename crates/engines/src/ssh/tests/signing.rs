//! Roles, `sign/:role`, `issue/:role`: what certificates say, and every refusal.

use super::*;
use ssh_key::certificate::CertType;

async fn env_with_role(role: Value) -> Env {
    let env = Env::new().await;
    env.ca().await;
    env.ok(Update, "ssh/roles/r", role).await;
    env
}

#[tokio::test]
async fn roles_round_trip_with_vaults_fields_and_list_with_key_info() {
    let env = Env::new().await;
    env.ok(
        Update,
        "ssh/roles/ca-role",
        json!({
            "key_type": "ca", "allow_user_certificates": true, "allowed_users": "a,b",
            "default_extensions": {"permit-pty": ""}, "ttl": "1h", "max_ttl": "2h",
            "allowed_user_key_lengths": {"rsa": [2048, 4096], "ed25519": 0},
            "algorithm_signer": "rsa-sha2-512",
        }),
    )
    .await;
    let r = env.ok(Read, "ssh/roles/ca-role", json!({})).await;
    assert_eq!(r["ttl"], 3600);
    assert_eq!(r["max_ttl"], 7200);
    assert_eq!(r["not_before_duration"], 30);
    assert_eq!(r["issuer_ref"], "default");
    assert_eq!(r["allowed_users"], "a,b");
    assert_eq!(r["default_extensions"], json!({"permit-pty": ""}));
    assert_eq!(
        r["allowed_user_key_lengths"],
        json!({"ed25519": [0], "rsa": [2048, 4096]})
    );
    assert_eq!(r["algorithm_signer"], "rsa-sha2-512");
    assert_eq!(r["default_critical_options"], json!({}));
    env.ok(
        Update,
        "ssh/roles/otp-role",
        json!({"key_type": "otp", "default_user": "root"}),
    )
    .await;
    assert_eq!(
        env.ok(Read, "ssh/roles/otp-role", json!({})).await,
        json!({"allowed_users": "", "cidr_list": "", "default_user": "root",
               "exclude_cidr_list": "", "key_type": "otp", "port": 22})
    );
    assert_eq!(
        env.ok(List, "ssh/roles", json!({})).await,
        json!({"keys": ["ca-role", "otp-role"], "key_info": {
            "ca-role": {"key_type": "ca", "issuer_ref": "default"},
            "otp-role": {"key_type": "otp"}}})
    );
    assert_eq!(
        env.resp(Delete, "ssh/roles/otp-role", json!({}))
            .await
            .http_status(),
        204
    );
    env.fails(Read, "ssh/roles/otp-role", json!({}), 404, "")
        .await;

    // Refusals.
    env.bad(Update, "ssh/roles/x", json!({}), "missing key type")
        .await;
    env.bad(
        Update,
        "ssh/roles/x",
        json!({"key_type": "otp"}),
        "missing default user",
    )
    .await;
    env.bad(
        Update,
        "ssh/roles/x",
        json!({"key_type": "dynamic"}),
        "no longer supported",
    )
    .await;
    env.bad(
        Update,
        "ssh/roles/x",
        json!({"key_type": "nope"}),
        "invalid key type",
    )
    .await;
    env.bad(
        Update,
        "ssh/roles/x",
        json!({"key_type": "ca"}),
        "Either 'allow_user_certificates'",
    )
    .await;
    env.bad(
        Update,
        "ssh/roles/x",
        json!({"key_type": "ca", "allow_user_certificates": true, "ttl": 100, "max_ttl": 10}),
        "\"ttl\" value must be less than \"max_ttl\"",
    )
    .await;
    env.bad(
        Update,
        "ssh/roles/x",
        json!({"key_type": "otp", "default_user": "u", "cidr_list": "10.0.0.0/33"}),
        "failed to validate cidr_list",
    )
    .await;
    env.bad(
        Update,
        "ssh/roles/x",
        json!({"key_type": "ca", "allow_user_certificates": true, "algorithm_signer": "md5"}),
        "unknown algorithm signer",
    )
    .await;
}

#[tokio::test]
async fn sign_makes_a_user_certificate_with_the_requested_fields() {
    let env = env_with_role(json!({
        "key_type": "ca", "allow_user_certificates": true, "allowed_users": "alice,bob",
        "allowed_extensions": "permit-pty,permit-port-forwarding",
        "default_extensions": {"permit-agent-forwarding": ""},
        "allowed_critical_options": "force-command",
        "allow_user_key_ids": true, "ttl": "1h", "max_ttl": "4h",
    }))
    .await;
    let ca = env.ok(Read, "ssh/config/ca", json!({})).await;
    let key = user_key("ed25519", 0);
    let r = env
        .ok(
            Update,
            "ssh/sign/r",
            json!({
                "public_key": key, "valid_principals": "bob,alice,bob", "ttl": "30m",
                "key_id": "my-id", "extensions": {"permit-pty": ""},
                "critical_options": {"force-command": "uptime"},
            }),
        )
        .await;
    let cert = parse_cert(&r["signed_key"]);
    assert_eq!(r["serial_number"], format!("{:x}", cert.serial()));
    assert_eq!(r["issuer_id"], ca["issuer_id"]);
    assert!(r["signed_key"]
        .as_str()
        .unwrap()
        .starts_with("ssh-ed25519-cert-v01@openssh.com "));
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.key_id(), "my-id");
    assert_eq!(cert.valid_principals(), ["alice", "bob"]);
    assert_eq!(cert.valid_before() - cert.valid_after(), 1800 + 30);
    let now = tresor_core::util::unix_now() as u64;
    assert!(cert.valid_after() <= now - 29 && cert.valid_after() >= now - 31);
    assert_eq!(
        cert.extensions().keys().collect::<Vec<_>>(),
        ["permit-pty"],
        "the request's extensions replace the defaults"
    );
    assert_eq!(
        cert.critical_options().get("force-command").unwrap(),
        "uptime"
    );
    assert_eq!(
        super::super::keys::authorized_key(cert.signature_key()).unwrap() + "\n",
        ca["public_key"].as_str().unwrap()
    );
    assert_eq!(
        super::super::keys::authorized_key(cert.public_key()).unwrap(),
        key.trim()
    );

    // Defaults: the role's TTL and extensions, key id from the token and key hash.
    let r = env
        .ok(
            Update,
            "ssh/sign/r",
            json!({"public_key": key, "valid_principals": "alice"}),
        )
        .await;
    let cert = parse_cert(&r["signed_key"]);
    assert_eq!(cert.valid_before() - cert.valid_after(), 3600 + 30);
    assert_eq!(
        cert.extensions().keys().collect::<Vec<_>>(),
        ["permit-agent-forwarding"]
    );
    assert!(
        cert.key_id().starts_with("vault-root-"),
        "{}",
        cert.key_id()
    );
    assert_eq!(cert.key_id().len(), "vault-root-".len() + 64);
}

#[tokio::test]
async fn sign_refuses_what_the_role_does_not_allow() {
    let env = env_with_role(json!({
        "key_type": "ca", "allow_user_certificates": true, "allowed_users": "alice",
        "allowed_extensions": "permit-pty", "allowed_critical_options": "force-command",
        "max_ttl": "1h", "allowed_user_key_lengths": {"rsa": 2048, "ecdsa": [256]},
    }))
    .await;
    let key = user_key("ec", 256);
    let sign = |data: Value| {
        let mut d = json!({"public_key": key, "valid_principals": "alice"});
        d.as_object_mut()
            .unwrap()
            .extend(data.as_object().unwrap().clone());
        d
    };
    env.bad(
        Update,
        "ssh/sign/nope",
        sign(json!({})),
        "Unknown role: nope",
    )
    .await;
    env.bad(Update, "ssh/sign/r", json!({}), "missing public_key")
        .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"public_key": "ssh-ed25519 not-base64!"})),
        "failed to parse public_key as SSH key",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"valid_principals": "root"})),
        "root is not a valid value for valid_principals",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"extensions": {"permit-X11-forwarding": ""}})),
        "extensions [permit-X11-forwarding] are not on allowed list",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"critical_options": {"source-address": "10.0.0.1"}})),
        "critical options not on allowed list",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"ttl": "2h"})),
        "ttl is larger than maximum allowed 3600",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"cert_type": "host"})),
        "cert_type 'host' is not allowed by role",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"cert_type": "other"})),
        "cert_type must be either",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"key_id": "x"})),
        "setting key_id is not allowed by role",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"public_key": user_key("ed25519", 0)})),
        "public_key failed to meet the key requirements: key of type ed25519 is not allowed",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"public_key": user_key("ec", 384)})),
        "key is of an invalid size: 384",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        sign(json!({"valid_principals": ""})),
        "refusing to issue unsafe",
    )
    .await;
    // What the role allows still works, and a TTL above the maximum from the role is capped.
    let r = env.ok(Update, "ssh/sign/r", sign(json!({}))).await;
    let cert = parse_cert(&r["signed_key"]);
    assert_eq!(cert.valid_before() - cert.valid_after(), 3600 + 30);

    // A role of the other type.
    env.ok(
        Update,
        "ssh/roles/otp",
        json!({"key_type": "otp", "default_user": "u"}),
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/otp",
        sign(json!({})),
        "role key type 'otp' not allowed to sign keys",
    )
    .await;
    env.bad(
        Update,
        "ssh/issue/otp",
        json!({}),
        "role key type 'otp' not allowed to issue key pairs",
    )
    .await;
    // No CA yet on a role's issuer.
    env.ok(
        Update,
        "ssh/roles/other",
        json!({"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*", "issuer_ref": "missing"}),
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/other",
        sign(json!({})),
        "unable to find issuer for reference: missing",
    )
    .await;
}

#[tokio::test]
async fn default_user_wildcards_and_host_certificates() {
    // hvac's case: a role with only a default user signs for it (Vault behaviour).
    let env = env_with_role(
        json!({"key_type": "ca", "allow_user_certificates": true, "default_user": "root"}),
    )
    .await;
    let key = user_key("ed25519", 0);
    let r = env
        .ok(Update, "ssh/sign/r", json!({"public_key": key}))
        .await;
    assert_eq!(parse_cert(&r["signed_key"]).valid_principals(), ["root"]);
    // hvac sends empty strings for what it was not given: still the default user, and the
    // role's TTL (here the mount's, 768h).
    let r = env
        .ok(
            Update,
            "ssh/sign/r",
            json!({"public_key": key, "valid_principals": "", "ttl": ""}),
        )
        .await;
    let cert = parse_cert(&r["signed_key"]);
    assert_eq!(cert.valid_principals(), ["root"]);
    assert_eq!(
        cert.valid_before() - cert.valid_after(),
        32 * 24 * 3600 + 30
    );
    env.bad(
        Update,
        "ssh/sign/r",
        json!({"public_key": key, "valid_principals": "admin"}),
        "admin is not a valid value",
    )
    .await;
    // `*`: anyone.
    env.ok(
        Update,
        "ssh/roles/any",
        json!({"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*"}),
    )
    .await;
    let r = env
        .ok(
            Update,
            "ssh/sign/any",
            json!({"public_key": key, "valid_principals": "x,y"}),
        )
        .await;
    assert_eq!(parse_cert(&r["signed_key"]).valid_principals(), ["x", "y"]);
    // Hosts: bare domains and subdomains, each only when allowed.
    env.ok(
        Update,
        "ssh/roles/hosts",
        json!({"key_type": "ca", "allow_host_certificates": true,
               "allowed_domains": "example.com", "allow_subdomains": true}),
    )
    .await;
    let r = env
        .ok(
            Update,
            "ssh/sign/hosts",
            json!({"public_key": key, "cert_type": "host", "valid_principals": "a.example.com"}),
        )
        .await;
    let cert = parse_cert(&r["signed_key"]);
    assert_eq!(cert.cert_type(), CertType::Host);
    assert_eq!(cert.valid_principals(), ["a.example.com"]);
    env.bad(
        Update,
        "ssh/sign/hosts",
        json!({"public_key": key, "cert_type": "host", "valid_principals": "example.com"}),
        "example.com is not a valid value",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/hosts",
        json!({"public_key": key, "cert_type": "host", "valid_principals": "a.example.org"}),
        "is not a valid value",
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/hosts",
        json!({"public_key": key}),
        "cert_type 'user' is not allowed",
    )
    .await;
}

#[tokio::test]
async fn rsa_cas_sign_with_sha2_and_key_id_formats_expand() {
    let env = Env::new().await;
    env.ok(
        Update,
        "ssh/config/ca",
        json!({"key_type": "rsa", "key_bits": 2048}),
    )
    .await;
    for (signer, alg) in [("", "rsa-sha2-256"), ("rsa-sha2-512", "rsa-sha2-512")] {
        env.ok(
            Update,
            "ssh/roles/r",
            json!({"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*",
                   "algorithm_signer": signer, "key_id_format": "{{role_name}}-{{token_display_name}}"}),
        )
        .await;
        let r = env
            .ok(
                Update,
                "ssh/sign/r",
                json!({"public_key": user_key("rsa", 2048), "valid_principals": "u"}),
            )
            .await;
        let cert = parse_cert(&r["signed_key"]);
        assert_eq!(cert.signature().algorithm().as_str(), alg);
        assert_eq!(cert.key_id(), "r-root");
    }
    env.ok(
        Update,
        "ssh/roles/sha1",
        json!({"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*", "algorithm_signer": "ssh-rsa"}),
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/sha1",
        json!({"public_key": user_key("ed25519", 0), "valid_principals": "u"}),
        "ssh-rsa (SHA-1) is not supported",
    )
    .await;
}

#[tokio::test]
async fn issue_generates_and_certifies_a_key_pair() {
    let env = env_with_role(json!({
        "key_type": "ca", "allow_user_certificates": true, "allowed_users": "*",
        "allowed_user_key_lengths": {"ed25519": 0, "ec": [256, 384]},
    }))
    .await;
    for (kt, bits, label, cert_prefix) in [
        (
            "ed25519",
            0,
            "OPENSSH PRIVATE KEY",
            "ssh-ed25519-cert-v01@openssh.com",
        ),
        (
            "ec",
            384,
            "EC PRIVATE KEY",
            "ecdsa-sha2-nistp384-cert-v01@openssh.com",
        ),
    ] {
        let r = env
            .ok(
                Update,
                "ssh/issue/r",
                json!({"key_type": kt, "key_bits": bits, "valid_principals": "u"}),
            )
            .await;
        assert_eq!(r["private_key_type"], kt);
        let pem = r["private_key"].as_str().unwrap();
        assert!(pem.contains(label), "{pem}");
        assert!(r["signed_key"].as_str().unwrap().starts_with(cert_prefix));
        // The certificate is for the returned private key.
        let k = super::super::keys::SigningKey::from_pem(pem).unwrap();
        assert_eq!(
            parse_cert(&r["signed_key"]).public_key(),
            &k.public_key().unwrap()
        );
        assert!(r["serial_number"].is_string());
    }
    env.bad(
        Update,
        "ssh/issue/r",
        json!({"key_type": "rsa", "key_bits": 2048}),
        "provided key_type value not in allowed_user_key_types",
    )
    .await;
    env.bad(
        Update,
        "ssh/issue/r",
        json!({"key_type": "ec", "key_bits": 521}),
        "provided key_bits value not in list",
    )
    .await;
    env.bad(Update, "ssh/issue/nope", json!({}), "unknown role: nope")
        .await;
}

#[tokio::test]
async fn wildcard_roles_sign_no_principal_less_certificate_and_mount_max_caps_the_role() {
    let env = env_with_role(json!({
        "key_type": "ca", "allow_user_certificates": true, "allow_host_certificates": true,
        "allowed_users": "*", "allowed_domains": "*", "max_ttl": "9999h",
    }))
    .await;
    let key = user_key("ed25519", 0);
    // No principal asked for and none by default: a certificate valid for every user (or, as
    // a host certificate, every host) is refused, as Vault 1.15+ does.
    for cert_type in ["user", "host"] {
        env.bad(
            Update,
            "ssh/sign/r",
            json!({"public_key": key, "cert_type": cert_type}),
            "no principals specified",
        )
        .await;
    }
    // The role says so explicitly: then it may.
    env.ok(
        Update,
        "ssh/roles/open",
        json!({"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*",
               "allow_empty_principals": true}),
    )
    .await;
    let r = env
        .ok(Update, "ssh/sign/open", json!({"public_key": key}))
        .await;
    assert!(parse_cert(&r["signed_key"]).valid_principals().is_empty());

    // The role's max (9999h) never exceeds the mount's.
    env.ok(
        Update,
        "sys/mounts/ssh/tune",
        json!({"max_lease_ttl": "2h"}),
    )
    .await;
    env.bad(
        Update,
        "ssh/sign/r",
        json!({"public_key": key, "valid_principals": "ann", "ttl": "3h"}),
        "ttl is larger than maximum allowed 7200",
    )
    .await;
    let r = env
        .ok(
            Update,
            "ssh/sign/r",
            json!({"public_key": key, "valid_principals": "ann"}),
        )
        .await;
    let cert = parse_cert(&r["signed_key"]);
    assert!(cert.valid_before() - cert.valid_after() <= 7200 + 30);
}
