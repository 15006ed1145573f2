//! The CLI as a drop-in for Vault's / OpenBao's: `-format=yaml|json|raw`, `transit import`,
//! the `pki` helper commands and the help layout, run as the real binary against a real
//! `tresor server -dev`, compared with OpenBao's `bao` on the same server where it is
//! installed (`common::bao()`).

mod common;

use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// Runs the CLI against `server` as root, with `env` added, in a clean environment.
fn run_env(bin: &str, server: &common::Server, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = std::env::temp_dir();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", "root")
        .env("HOME", &home)
        .env_remove("VAULT_FORMAT")
        .env_remove("TRESOR_FORMAT")
        .env_remove("TRESOR_ADDR")
        .env_remove("TRESOR_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd.output().unwrap()
}

fn tresor(server: &common::Server, args: &[&str]) -> Output {
    run_env(env!("CARGO_BIN_EXE_tresor"), server, args, &[])
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and expects exit code 0; returns stdout.
fn ok(server: &common::Server, args: &[&str]) -> String {
    let o = tresor(server, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}{}", out(&o), err(&o));
    out(&o)
}

/// Runs and expects `code`; returns stderr.
fn fails(server: &common::Server, args: &[&str], code: i32) -> String {
    let o = tresor(server, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}: {}{}",
        out(&o),
        err(&o)
    );
    err(&o)
}

/// Output without the lines naming things that differ between two runs.
fn stable(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with("request_id:") && !l.contains("\"request_id\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn output_formats_yaml_json_raw() {
    let s = common::dev_server();
    ok(
        &s,
        &[
            "kv",
            "put",
            "secret/app",
            "a=1",
            "b=x",
            "c=",
            "d=multi\nline",
        ],
    );

    let y = ok(&s, &["kv", "get", "-format=yaml", "secret/app"]);
    assert!(y.starts_with("data:\n  data:\n    a: \"1\"\n    b: x\n    c: \"\"\n    d: |-\n      multi\n      line\n  metadata:\n"), "{y}");
    assert!(
        y.contains("\nlease_duration: 0\nlease_id: \"\"\nrenewable: false\nrequest_id: "),
        "{y}"
    );
    assert!(y.ends_with("warnings: null\n"), "{y}");
    // yml and VAULT_FORMAT too, and upper case as Vault lowercases.
    let y2 = run_env(
        env!("CARGO_BIN_EXE_tresor"),
        &s,
        &["read", "sys/mounts/secret/tune"],
        &[("VAULT_FORMAT", "YAML")],
    );
    assert_eq!(y2.status.code(), Some(0), "{}", err(&y2));
    let y2 = out(&y2);
    assert!(y2.starts_with("data:\n  default_lease_ttl: "), "{y2}");
    assert_eq!(
        stable(&y2),
        stable(&ok(&s, &["read", "-format=yml", "sys/mounts/secret/tune"]))
    );
    // Field with YAML: the value rendered alone.
    assert_eq!(
        ok(
            &s,
            &["kv", "get", "-format=yaml", "-field=data", "secret/app"]
        ),
        "a: \"1\"\nb: x\nc: \"\"\nd: |-\n  multi\n  line\n"
    );
    assert_eq!(
        ok(&s, &["list", "-format=yaml", "secret/metadata"]),
        "- app\n"
    );
    assert!(ok(&s, &["policy", "list", "-format=yaml"]).contains("- default\n"));

    // JSON: Vault's api.Secret shape and order, not the raw body.
    let j = ok(&s, &["read", "-format=json", "sys/mounts/secret/tune"]);
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&j)
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        [
            "request_id",
            "lease_id",
            "lease_duration",
            "renewable",
            "data",
            "warnings"
        ]
    );

    // raw: the body as sent, for read only.
    let raw = ok(&s, &["read", "-format=raw", "sys/mounts/secret/tune"]);
    assert!(raw.ends_with("}\n"), "{raw}");
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["data"]["options"]["version"], "2");
    assert!(
        body.get("auth").is_some(),
        "the raw body keeps every field: {body}"
    );
    assert!(fails(&s, &["read", "-format=raw", "secret/nope"], 2)
        .contains("No value found at secret/nope"));
    assert!(fails(&s, &["token", "lookup", "-format=raw"], 1)
        .contains("This command does not support the -format=raw option."));
    assert_eq!(
        fails(&s, &["-format=bogus", "status"], 1),
        "Invalid output format: bogus\n"
    );

    if let Some(bao) = common::bao() {
        for args in [
            &["read", "-format=yaml", "sys/mounts/secret/tune"][..],
            &["read", "-format=json", "sys/mounts/secret/tune"][..],
            &["list", "-format=yaml", "secret/metadata"][..],
            &["kv", "get", "-format=yaml", "-field=data", "secret/app"][..],
            &["secrets", "list", "-detailed"][..],
            &["auth", "list", "-detailed"][..],
            &["secrets", "list", "-format=json"][..],
            &["read", "sys/seal-status"][..],
            &["audit", "list", "-format=json"][..],
        ] {
            let theirs = run_env(&bao, &s, args, &[]);
            assert_eq!(
                theirs.status.code(),
                Some(0),
                "bao {args:?}: {}",
                err(&theirs)
            );
            assert_eq!(stable(&ok(&s, args)), stable(&out(&theirs)), "{args:?}");
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn random_key() -> Vec<u8> {
    (0..32).map(|_| rand_byte()).collect()
}

fn rand_byte() -> u8 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u8
}

#[test]
fn transit_import_and_import_version() {
    let s = common::dev_server();
    ok(&s, &["secrets", "enable", "transit"]);
    let key = random_key();
    let o = ok(
        &s,
        &[
            "transit",
            "import",
            "transit/keys/imp",
            &b64(&key),
            "exportable=true",
            "allow_rotation=true",
        ],
    );
    assert_eq!(
        o,
        "Retrieving wrapping key.\nWrapping source key with ephemeral key.\n\
         Encrypting ephemeral key with wrapping key.\nSubmitting wrapped key.\nSuccess!\n"
    );
    let export: Value = serde_json::from_str(&ok(
        &s,
        &["read", "-format=json", "transit/export/encryption-key/imp"],
    ))
    .unwrap();
    assert_eq!(
        export["data"]["keys"]["1"],
        b64(&key),
        "the material arrived intact"
    );

    // A new version from a file (@path), base64 with a trailing newline.
    let dir = tempfile::tempdir().unwrap();
    let key2 = random_key();
    let file = dir.path().join("key2.b64");
    std::fs::write(&file, format!("{}\n", b64(&key2))).unwrap();
    ok(
        &s,
        &[
            "transit",
            "import-version",
            "transit/keys/imp",
            &format!("@{}", file.display()),
        ],
    );
    let export: Value = serde_json::from_str(&ok(
        &s,
        &["read", "-format=json", "transit/export/encryption-key/imp"],
    ))
    .unwrap();
    assert_eq!(export["data"]["keys"]["2"], b64(&key2));

    // An RSA key as PKCS#8 DER, made by openssl (genpkey's DER is PKCS#1: converted).
    let pem = dir.path().join("rsa.pem");
    let der = dir.path().join("rsa.der");
    let gen = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let conv = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(&pem)
        .arg("-out")
        .arg(&der)
        .output()
        .unwrap();
    assert!(
        conv.status.success(),
        "{}",
        String::from_utf8_lossy(&conv.stderr)
    );
    let b = dir.path().join("rsa.b64");
    std::fs::write(&b, b64(&std::fs::read(&der).unwrap())).unwrap();
    ok(
        &s,
        &[
            "transit",
            "import",
            "transit/keys/rsa",
            &format!("@{}", b.display()),
            "type=rsa-2048",
        ],
    );
    let k: Value =
        serde_json::from_str(&ok(&s, &["read", "-format=json", "transit/keys/rsa"])).unwrap();
    assert_eq!(k["data"]["type"], "rsa-2048");
    assert_eq!(k["data"]["imported_key"], true);

    // Errors, with Vault's exit codes: 1 usage, 3 refused by the server.
    assert!(fails(&s, &["transit", "import", "transit/keys/x"], 1)
        .contains("Incorrect argument count (expected 2+, got 1)"));
    assert!(fails(&s, &["transit", "import", "transit/x", "AAAA"], 1)
        .contains("expected transit path and key name in the form :path:/keys/:name:"));
    assert!(fails(&s, &["transit", "import", "transit/keys/x", "!!"], 1)
        .contains("error base64 decoding source key material"));
    let e = fails(
        &s,
        &["transit", "import", "transit/keys/imp", &b64(&key)],
        3,
    );
    assert!(
        e.starts_with("failed to call import:Error making API request."),
        "{e}"
    );
    assert!(
        e.contains("use import-version to rotate an existing imported key"),
        "{e}"
    );
    let e = fails(&s, &["transit", "import", "nope/keys/x", &b64(&key)], 3);
    assert!(
        e.starts_with("failed to fetch wrapping key: error fetching wrapping key: "),
        "{e}"
    );

    // OpenBao's CLI wraps the same way: its import works against Tresor, and prints the same.
    if let Some(bao) = common::bao() {
        let theirs = run_env(
            &bao,
            &s,
            &["transit", "import", "transit/keys/bao", &b64(&random_key())],
            &[],
        );
        assert_eq!(theirs.status.code(), Some(0), "{}", err(&theirs));
        assert_eq!(out(&theirs), o);
    }
}

/// A dev server with a root CA (`pki/issuer/root`) and an empty `pki_int` mount.
fn pki_server() -> common::Server {
    let s = common::dev_server();
    ok(&s, &["secrets", "enable", "pki"]);
    ok(&s, &["secrets", "enable", "-path=pki_int", "pki"]);
    ok(&s, &["secrets", "tune", "-max-lease-ttl=87600h", "pki"]);
    ok(
        &s,
        &[
            "write",
            "pki/root/generate/internal",
            "common_name=root.test",
            "issuer_name=root",
            "key_type=ec",
            "ttl=87000h",
        ],
    );
    s
}

#[test]
fn pki_issue_verify_list_reissue() {
    let s = pki_server();
    let issued = ok(
        &s,
        &[
            "pki",
            "issue",
            "-issuer_name=int1",
            "pki/issuer/root",
            "pki_int",
            "common_name=int.test",
            "key_type=ec",
            "ttl=8760h",
        ],
    );
    assert!(issued.contains("\nissuer_name "), "{issued}");
    assert!(
        issued
            .lines()
            .any(|l| l.starts_with("issuer_name") && l.ends_with(" int1")),
        "{issued}"
    );

    let table = ok(
        &s,
        &[
            "pki",
            "verify-sign",
            "pki/issuer/root",
            "pki_int/issuer/int1",
        ],
    );
    assert_eq!(
        table,
        "issuer:pki/issuer/root\nissued:pki_int/issuer/int1\n\n\
         field              value\n-----              -----\n\
         key_id_match       true\npath_match         true\nsignature_match    true\n\
         subject_match      true\ntrust_match        true\n\n\n"
    );
    let j: Value = serde_json::from_str(&ok(
        &s,
        &[
            "pki",
            "verify-sign",
            "-format=json",
            "pki/issuer/root",
            "pki_int/issuer/int1",
        ],
    ))
    .unwrap();
    assert_eq!(
        j,
        json!({"key_id_match": true, "path_match": true, "signature_match": true,
               "subject_match": true, "trust_match": true})
    );
    // The other way round nothing matches.
    let j: Value = serde_json::from_str(&ok(
        &s,
        &[
            "pki",
            "verify-sign",
            "-format=json",
            "pki_int/issuer/int1",
            "pki/issuer/root",
        ],
    ))
    .unwrap();
    assert_eq!(j["signature_match"], false);
    assert_eq!(j["trust_match"], false);
    assert_eq!(
        ok(&s, &["pki", "verify-sign", "-format=yaml", "pki/issuer/root", "pki_int/issuer/int1"]),
        "key_id_match: true\npath_match: true\nsignature_match: true\nsubject_match: true\ntrust_match: true\n\n"
    );

    // list-intermediates: the intermediate (and the root, imported into pki_int with it).
    let l: Value = serde_json::from_str(&ok(
        &s,
        &[
            "pki",
            "list-intermediates",
            "-format=json",
            "-use_names",
            "pki/issuer/root",
            "pki_int",
        ],
    ))
    .unwrap();
    assert_eq!(l["pki_int/issuer/int1"], true, "{l}");
    assert_eq!(l["pki_int/issuer/root"], true, "{l}");
    let all: Value = serde_json::from_str(&ok(
        &s,
        &[
            "pki",
            "list-intermediates",
            "-format=json",
            "pki/issuer/root",
        ],
    ))
    .unwrap();
    assert_eq!(
        all.as_object().unwrap().len(),
        3,
        "every pki mount's issuers: {all}"
    );
    let t = ok(
        &s,
        &[
            "pki",
            "list-intermediates",
            "-use_names",
            "pki/issuer/root",
            "pki_int",
        ],
    );
    assert!(
        t.starts_with("intermediate           match?\n------------           ------\n"),
        "{t}"
    );

    // reissue: a new intermediate from the first one's certificate.
    ok(
        &s,
        &[
            "pki",
            "reissue",
            "-issuer_name=int2",
            "pki/issuer/root",
            "pki_int/issuer/int1",
            "pki_int",
        ],
    );
    let int2: Value =
        serde_json::from_str(&ok(&s, &["read", "-format=json", "pki_int/issuer/int2"])).unwrap();
    let pem = int2["data"]["certificate"].as_str().unwrap();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(pem.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("int.test"));

    // Usage errors exit 1, as OpenBao's pki commands.
    assert!(
        fails(&s, &["pki", "verify-sign", "pki/issuer/root"], 1).contains(
            "Not enough arguments (expected both potential issuer and issued, got only one)"
        )
    );
    assert!(
        fails(&s, &["pki", "issue", "pki/issuer/root", "pki_int"], 1)
            .contains("Not enough arguments expected parent issuer and child-mount location")
    );
    assert!(fails(
        &s,
        &["pki", "issue", "pki/root", "pki_int", "common_name=x"],
        1
    )
    .contains("is Not a PKI Issuer Path of the format /mount/issuer/issuer-ref"));
    assert!(fails(&s, &["pki", "list-intermediates"], 1)
        .contains("Not enough arguments (expected potential parent, got nothing)"));
    // The server's 4xx/5xx message is shown.
    let e = fails(
        &s,
        &["pki", "verify-sign", "pki/issuer/root", "pki/issuer/nope"],
        1,
    );
    assert!(e.starts_with("Failed to run verification: error: unable to fetch issuer pki/issuer/nope: Error making API request."), "{e}");
    assert!(e.contains("/v1/pki/issuer/nope"), "{e}");
    let e = fails(
        &s,
        &[
            "pki",
            "issue",
            "pki/issuer/root",
            "nomount",
            "common_name=x",
        ],
        1,
    );
    assert!(e.contains("nomount"), "{e}");

    if let Some(bao) = common::bao() {
        let args = [
            "pki",
            "verify-sign",
            "-format=json",
            "pki/issuer/root",
            "pki_int/issuer/int1",
        ];
        let theirs = run_env(&bao, &s, &args, &[]);
        assert_eq!(theirs.status.code(), Some(0), "{}", err(&theirs));
        assert_eq!(ok(&s, &args), out(&theirs));
        let args = [
            "pki",
            "list-intermediates",
            "-format=json",
            "pki/issuer/root",
            "pki_int",
        ];
        let theirs = run_env(&bao, &s, &args, &[]);
        assert_eq!(ok(&s, &args), out(&theirs));
        let theirs = run_env(&bao, &s, &["pki", "verify-sign", "pki/issuer/root"], &[]);
        assert_eq!(theirs.status.code(), Some(1));
    }
    // Beyond bao: `-type=exported` would generate a key the command never shows; refused.
    let e = fails(
        &s,
        &[
            "pki",
            "issue",
            "-type=exported",
            "pki/issuer/root",
            "pki_int",
        ],
        1,
    );
    assert!(e.contains("exported"), "{e}");
}

#[test]
fn pki_health_check() {
    let s = pki_server();
    ok(
        &s,
        &[
            "write",
            "pki/roles/web",
            "allowed_domains=example.test",
            "allow_subdomains=true",
            "allow_localhost=true",
        ],
    );
    let o = tresor(&s, &["pki", "health-check", "pki"]);
    let text = out(&o);
    // A root valid for ~10 years: fine; the role: warnings (allow_localhost, no_store=false);
    // auto-tidy off: informational; tidy never ran: critical; no delta CRLs on Tresor's
    // issuers: invalid_version, the highest status, hence exit code 5 (bao says the same).
    assert_eq!(o.status.code(), Some(5), "{text}{}", err(&o));
    assert!(
        text.contains("\ncrl_validity_period\n-------------------\n"),
        "{text}"
    );
    assert!(
        text.contains("invalid_version    /pki/issuer/*/crl/delta "),
        "{text}"
    );
    assert!(text.contains("/crl    CRL's validity ("), "{text}");
    assert!(text.contains("\nroot_issued_leaves\n"), "{text}");
    assert!(text.contains("not_applicable    /pki/config/acme    Mount contains only root issuers, ACME is not required."), "{text}");
    assert!(
        text.contains("\ntidy_last_run\n-------------\nstatus      endpoint            message\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "\ncritical    /pki/tidy-status    Tidy hasn't run since this mount was created"
        ),
        "{text}"
    );
    assert!(
        text.contains("informational    /pki/config/auto-tidy    Auto-tidy is currently disabled"),
        "{text}"
    );
    assert!(
        text.contains(
            "ok        /pki/certs    This mount has an OK number of stored certificates."
        ),
        "{text}"
    );
    assert!(
        text.starts_with("ca_validity_period\n------------------\nstatus    endpoint"),
        "{text}"
    );
    assert!(text.contains("\nok        /pki/issuer/"), "{text}");
    assert!(
        text.contains("warning    /pki/roles/web    Role currently allows localhost issuance"),
        "{text}"
    );
    // -return-indicator=critical: the invalid_version (5) still counts.
    let o = tresor(
        &s,
        &[
            "pki",
            "health-check",
            "-format=json",
            "-return-indicator=critical",
            "pki",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{}", err(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["role_no_store_false"][0]["status"], "warning");
    assert_eq!(j["role_no_store_false"][0]["status_code"], 3);
    assert_eq!(j["role_allows_glob_wildcards"][0]["status"], "ok");
    assert_eq!(j["audit_visibility"][0]["status"], "informational");
    assert_eq!(
        j.as_object().unwrap().len(),
        13,
        "every check but hardware_backed_root: {j}"
    );
    if let Some(bao) = common::bao() {
        // The same findings as OpenBao's own health check (which also runs
        // hardware_backed_root, and words two messages for itself).
        let theirs = run_env(
            &bao,
            &s,
            &["pki", "health-check", "-format=json", "pki"],
            &[],
        );
        let mut b: Value = serde_json::from_slice(&theirs.stdout).unwrap();
        b.as_object_mut().unwrap().remove("hardware_backed_root");
        // Go walks a map for some checks' findings (audit_visibility): order aside.
        let norm = |v: &Value| {
            let m: Vec<(String, Vec<String>)> = v
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, list)| {
                    let mut items: Vec<String> = list
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f.to_string().replace("OpenBao's", "the server's"))
                        .collect();
                    items.sort();
                    (k.clone(), items)
                })
                .collect();
            m
        };
        assert_eq!(norm(&j), norm(&b));

        // A token that may read nothing of the mount: each check says why it cannot run, in
        // the same words as OpenBao's.
        let weak = ok(&s, &["token", "create", "-policy=default", "-field=token"]);
        let weak = weak.trim();
        let args = ["pki", "health-check", "-format=json", "pki"];
        let ours = run_env(
            env!("CARGO_BIN_EXE_tresor"),
            &s,
            &args,
            &[("VAULT_TOKEN", weak)],
        );
        let theirs = run_env(&bao, &s, &args, &[("VAULT_TOKEN", weak)]);
        assert_eq!(ours.status.code(), theirs.status.code(), "{}", err(&ours));
        let j: Value = serde_json::from_slice(&ours.stdout).unwrap();
        let mut b: Value = serde_json::from_slice(&theirs.stdout).unwrap();
        b.as_object_mut().unwrap().remove("hardware_backed_root");
        assert!(j.to_string().contains("insufficient_permissions"), "{j}");
        assert_eq!(norm(&j), norm(&b));
    }

    // A configuration file: checks off by default, one on with its own window.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hc.json");
    std::fs::write(
        &cfg,
        r#"{"ca_validity_period": {"enabled": true, "root_expiry_critical": "3650d"}}"#,
    )
    .unwrap();
    let o = tresor(
        &s,
        &[
            "pki",
            "health-check",
            "-default-disabled",
            &format!("-health-config={}", cfg.display()),
            "pki",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("critical    /pki/issuer/"), "{}", out(&o));
    assert!(!out(&o).contains("role_"), "{}", out(&o));

    let list = ok(&s, &["pki", "health-check", "-list"]);
    assert!(
        list.starts_with("Default health check config:\n{\n  \"allow_acme_headers\": {},\n"),
        "{list}"
    );
    assert!(
        list.contains(
            "  \"ca_validity_period\": {\n    \"intermediate_expiry_critical\": \"30d\","
        ),
        "{list}"
    );
    assert!(fails(&s, &["pki", "health-check"], 1)
        .contains("Not enough arguments (expected mount path, got nothing)"));
    assert!(fails(
        &s,
        &["pki", "health-check", "-return-indicator=bogus", "pki"],
        1
    )
    .contains("Invalid flag -return-indicator=bogus"));
    assert!(fails(&s, &["pki", "health-check", "secret"], 1)
        .contains("refusing to run pki health-check on mount of type kv"));
    std::fs::write(&cfg, r#"{"ca_validity_period": {"nope": 1}}"#).unwrap();
    assert!(fails(
        &s,
        &[
            "pki",
            "health-check",
            &format!("-health-config={}", cfg.display()),
            "pki"
        ],
        1
    )
    .contains("unknown configuration option for ca_validity_period: nope"));
}

#[test]
fn help_lists_connection_flags_once() {
    let home = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_tresor"))
            .args(args)
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        out(&o)
    };
    let top = help(&["--help"]);
    assert!(top.contains("Connection options:"), "{top}");
    assert!(top.contains("--ca-cert"), "{top}");
    for sub in [
        &["kv", "get", "--help"][..],
        &["transit", "import", "--help"][..],
        &["pki", "issue", "--help"][..],
        &["token", "create", "-h"][..],
    ] {
        let h = help(sub);
        assert!(!h.contains("--ca-cert"), "{sub:?}: {h}");
        assert!(h.contains("see `tresor --help`"), "{sub:?}: {h}");
    }
    assert!(help(&["pki", "list-intermediates", "--help"]).contains("--use_names"));
    assert!(help(&["pki", "health-check", "--help"]).contains("4 - Critical message"));
    assert!(help(&["transit", "import", "--help"]).contains("transit/keys/newly-imported"));
}
