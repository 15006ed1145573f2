//! `sign/:role`: certifies a client's public key under a CA role, and the rules every
//! certificate (also `issue`'s) passes, in OpenBao's order and with its messages:
//!
//! 1. the key's type and size against `allowed_user_key_lengths`;
//! 2. `key_id` (only with `allow_user_key_ids`; else `key_id_format`, default
//!    `vault-{{token_display_name}}-{{public_key_hash}}`);
//! 3. `cert_type` (`user` or `host`, each allowed by the role);
//! 4. principals: `valid_principals` (when empty or absent: `default_user` for user
//!    certificates), each in
//!    `allowed_users` (`*` = any; the role's `default_user` is always allowed) or, for hosts,
//!    `allowed_domains` (exact with `allow_bare_domains`, below with `allow_subdomains`);
//! 5. the TTL: requested (refused above the maximum; zero = not requested) or the role's
//!    (capped), else the mount's;
//!    valid from now less `not_before_duration`;
//! 6. critical options (the request's, within `allowed_critical_options`, else the role's
//!    defaults) and extensions (the request's, within `allowed_extensions`, else defaults);
//! 7. the issuer (`issuer_ref` of the role), its algorithm (`algorithm_signer` for RSA CAs).
//!
//! The answer: `serial_number` (hex), `signed_key` (an `authorized_keys` line), `issuer_id`.

use super::cert::{self, CertSpec, HOST_CERT, USER_CERT};
use super::keys::{key_hash_hex, key_type_and_bits, parse_public_key, RsaHash};
use super::roles::{self, string_map, Role};
use super::{issuers, mount_default_ttl, mount_max_ttl, Ssh, ROLE};
use serde_json::{json, Map, Value};
use ssh_key::public::KeyData;
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

/// The request fields `sign` and `issue` share.
pub fn cert_fields(p: Path<Ssh>) -> Path<Ssh> {
    p.field(
        "role",
        Field::string("The desired role with configuration for this request."),
    )
    .field(
        "ttl",
        Field::duration("The requested Time To Live for the SSH certificate."),
    )
    .field(
        "valid_principals",
        Field::string("Valid principals, either usernames or hostnames, comma-separated."),
    )
    .field(
        "cert_type",
        Field::string("Type of certificate to be created; either \"user\" or \"host\".")
            .default("user"),
    )
    .field(
        "key_id",
        Field::string("Key id that the created certificate should have."),
    )
    .field(
        "critical_options",
        Field::map("Critical options that the certificate should be signed for."),
    )
    .field(
        "extensions",
        Field::map("Extensions that the certificate should be signed for."),
    )
}

pub fn paths() -> Vec<Path<Ssh>> {
    vec![cert_fields(Path::new(&format!("sign/{ROLE}")))
        .field(
            "public_key",
            Field::string("SSH public key that should be signed."),
        )
        .op(Update, sign)
        .help("Request signing an SSH key using a certain role with the provided details.")]
}

async fn sign(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let name = c.fields.str("role");
    let role = roles::get(&c.storage, name)
        .await?
        .ok_or_else(|| Error::bad(format!("Unknown role: {name}")))?;
    if role.key_type != "ca" {
        return Err(Error::bad(format!(
            "role key type '{}' not allowed to sign keys",
            role.key_type
        )));
    }
    let public_key = c.fields.str("public_key");
    if public_key.is_empty() {
        return Err(Error::bad("missing public_key"));
    }
    let key = parse_public_key(public_key)
        .map_err(|e| Error::bad(format!("failed to parse public_key as SSH key: {e}")))?;
    check_key_requirements(&key, &role).map_err(|e| {
        Error::bad(format!(
            "public_key failed to meet the key requirements: {e}"
        ))
    })?;
    Ok(Response::data(Value::Object(
        certify(&c, &role, key).await?,
    )))
}

/// Applies the role's rules to the request and signs `key`: the answer's data.
pub async fn certify(c: &Call, role: &Role, key: KeyData) -> Result<Map<String, Value>> {
    let f = &c.fields;
    let key_id = key_id(c, role, &key)?;
    let cert_type = match f.str("cert_type") {
        "user" if role.allow_user_certificates => USER_CERT,
        "user" => return Err(Error::bad("cert_type 'user' is not allowed by role")),
        "host" if role.allow_host_certificates => HOST_CERT,
        "host" => return Err(Error::bad("cert_type 'host' is not allowed by role")),
        _ => return Err(Error::bad("cert_type must be either 'user' or 'host'")),
    };
    let principals = if cert_type == HOST_CERT {
        principals(c, role, "", &role.allowed_domains, |allowed, p| {
            allowed.iter().any(|a| {
                (a == p && role.allow_bare_domains)
                    || (role.allow_subdomains && p.ends_with(&format!(".{a}")))
            })
        })?
    } else {
        principals(
            c,
            role,
            &role.default_user,
            &role.allowed_users,
            |allowed, p| {
                allowed.iter().any(|a| a == p)
                    || (!role.default_user.is_empty() && p == role.default_user)
            },
        )?
    };
    let ttl = ttl(c, role)?;
    let critical_options = critical_options(c, role)?;
    let extensions = extensions(c, role)?;

    let issuer = issuers::load(&c.storage, &role.issuer_ref).await?;
    let ca = issuer.signing_key()?;
    let rsa = match role.algorithm_signer.as_str() {
        "rsa-sha2-512" => RsaHash::Sha512,
        "ssh-rsa" if ca.is_rsa() => return Err(Error::bad(
            "algorithm_signer ssh-rsa (SHA-1) is not supported; use rsa-sha2-256 or rsa-sha2-512",
        )),
        _ => RsaHash::Sha256,
    };
    let now = tresor_core::util::unix_now().max(0) as u64;
    let serial = u64::from_be_bytes(
        tresor_core::barrier::random_bytes(8)
            .try_into()
            .expect("8 bytes"),
    );
    let spec = CertSpec {
        public_key: key,
        serial,
        cert_type,
        key_id,
        principals,
        valid_after: now.saturating_sub(role.not_before_duration),
        valid_before: now
            .checked_add(ttl)
            .ok_or_else(|| Error::bad("ttl is out of range"))?,
        critical_options,
        extensions,
    };
    let signed = cert::sign(&spec, &ca, rsa)?;
    let mut out = Map::new();
    out.insert("serial_number".into(), json!(format!("{serial:x}")));
    out.insert("signed_key".into(), json!(signed));
    out.insert("issuer_id".into(), json!(issuer.id));
    Ok(out)
}

/// Refuses key types and sizes the role's `allowed_user_key_lengths` does not list.
pub fn check_key_requirements(key: &KeyData, role: &Role) -> std::result::Result<(), String> {
    if role.allowed_user_key_lengths.is_empty() {
        return Ok(());
    }
    let (ty, bits) = key_type_and_bits(key)?;
    let mut present = false;
    let mut pass = false;
    for alias in key_type_aliases(ty, bits) {
        let Some(allowed) = role.allowed_user_key_lengths.get(&alias) else {
            continue;
        };
        present = true;
        pass |= ty == "ed25519" || allowed.contains(&bits);
    }
    if !present {
        return Err(format!("key of type {ty} is not allowed"));
    }
    if !pass {
        return Err(format!("key is of an invalid size: {bits}"));
    }
    Ok(())
}

/// The names a key type goes by in `allowed_user_key_lengths` (OpenBao's
/// `createKeyTypeToMapKey`).
pub fn key_type_aliases(ty: &str, bits: i64) -> Vec<String> {
    let mut names: Vec<&str> = match ty {
        "rsa" => vec!["rsa", "ssh-rsa"],
        "dsa" => vec!["dsa", "ssh-dss"],
        "ecdsa" | "ec" => vec!["ecdsa", "ec"],
        "ed25519" => vec!["ed25519", "ssh-ed25519"],
        _ => vec![],
    };
    if matches!(ty, "ecdsa" | "ec") {
        match bits {
            256 => names.push("ecdsa-sha2-nistp256"),
            384 => names.push("ecdsa-sha2-nistp384"),
            521 => names.push("ecdsa-sha2-nistp521"),
            _ => {}
        }
    }
    names.into_iter().map(String::from).collect()
}

fn key_id(c: &Call, role: &Role, key: &KeyData) -> Result<String> {
    let requested = c.fields.str("key_id");
    if !requested.is_empty() {
        if !role.allow_user_key_ids {
            return Err(Error::bad("setting key_id is not allowed by role"));
        }
        return Ok(requested.to_string());
    }
    let display = c
        .caller
        .as_ref()
        .map(|k| k.entry.display_name.clone())
        .unwrap_or_default();
    let format = match (role.key_id_format.as_str(), display.is_empty()) {
        ("", true) => "vault-{{public_key_hash}}",
        ("", false) => "vault-{{token_display_name}}-{{public_key_hash}}",
        (f, _) => f,
    };
    Ok(format
        .replace("{{token_display_name}}", &display)
        .replace("{{role_name}}", c.fields.str("role"))
        .replace("{{public_key_hash}}", &key_hash_hex(key)?))
}

/// Splits a comma-separated list, trimming, dropping empties and duplicates, sorted (Go's
/// `strutil.RemoveDuplicates(ParseStringSlice(..))`).
fn split_list(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn principals(
    c: &Call,
    role: &Role,
    default: &str,
    allowed_by_role: &str,
    valid: impl Fn(&[String], &str) -> bool,
) -> Result<Vec<String>> {
    // An empty `valid_principals` (what hvac sends by default) means "not given": the
    // default user, not a certificate valid for every principal.
    let requested = match c.fields.str("valid_principals") {
        "" => default,
        given => given,
    };
    let parsed = split_list(requested);
    let allowed = split_list(allowed_by_role);
    if parsed.is_empty() {
        // Vault 1.15+: even a role allowing `*` issues no principal-less certificate (valid for
        // every user or host) unless it says `allow_empty_principals`.
        if !role.allow_empty_principals {
            return Err(Error::bad(
                "refusing to issue unsafe, globally-valid certificate with no principals specified; set valid_principals or default_user",
            ));
        }
        return Ok(vec![]);
    }
    if allowed_by_role == "*" {
        return Ok(parsed);
    }
    if allowed.is_empty() && default.is_empty() {
        return Err(Error::bad("role is not configured to allow any principals"));
    }
    for p in &parsed {
        if !valid(&allowed, p) {
            return Err(Error::bad(format!(
                "{p} is not a valid value for valid_principals"
            )));
        }
    }
    Ok(parsed)
}

fn ttl(c: &Call, role: &Role) -> Result<u64> {
    // A zero TTL (hvac sends `ttl=""`) asks for nothing: the role's TTL applies.
    let requested = c.fields.duration("ttl").as_secs();
    let specified = requested > 0;
    let mut ttl = if specified { requested } else { role.ttl };
    if ttl == 0 {
        ttl = mount_default_ttl(c);
    }
    // The role's max never exceeds the mount's (or the server's): nothing outlives it.
    let max = match role.max_ttl {
        0 => mount_max_ttl(c),
        m if m > mount_max_ttl(c) => mount_max_ttl(c),
        m => m,
    };
    if ttl > max {
        if specified {
            return Err(Error::bad(format!(
                "ttl is larger than maximum allowed {max}"
            )));
        }
        ttl = max;
    }
    Ok(ttl)
}

fn critical_options(c: &Call, role: &Role) -> Result<BTreeMap<String, String>> {
    let requested = c.fields.map("critical_options");
    if requested.is_empty() {
        return Ok(role.default_critical_options.clone());
    }
    let options = string_map(&requested);
    if !role.allowed_critical_options.is_empty() {
        let allowed: Vec<&str> = role
            .allowed_critical_options
            .split(',')
            .map(str::trim)
            .collect();
        let refused: Vec<&str> = options
            .keys()
            .map(String::as_str)
            .filter(|o| !allowed.contains(o))
            .collect();
        if !refused.is_empty() {
            return Err(Error::bad(format!(
                "critical options not on allowed list: [{}]",
                refused.join(" ")
            )));
        }
    }
    Ok(options)
}

fn extensions(c: &Call, role: &Role) -> Result<BTreeMap<String, String>> {
    let requested = c.fields.map("extensions");
    if requested.is_empty() {
        return Ok(role.default_extensions.clone());
    }
    let extensions = string_map(&requested);
    if role.allowed_extensions == "*" {
        return Ok(extensions);
    }
    let allowed: Vec<&str> = role.allowed_extensions.split(',').map(str::trim).collect();
    let refused: Vec<&str> = extensions
        .keys()
        .map(String::as_str)
        .filter(|e| !allowed.contains(e))
        .collect();
    if !refused.is_empty() {
        return Err(Error::bad(format!(
            "extensions [{}] are not on allowed list",
            refused.join(" ")
        )));
    }
    Ok(extensions)
}
