//! `role`, `role/:role_name`, `role/:role_name/role-id` and the one-setting sub-paths, with
//! Vault's validation, answer shapes and status codes (including its 500s for a role without
//! constraints, a `role_id` already in use, and malformed `secret_id_bound_cidrs`).

use super::{AppRole, Role, LEGACY, MAX_HMAC_INPUT};
use crate::token_fields::{self, clean_policies};
use crate::{cidr, go_duration, mount_max_ttl, named, sorted_data};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::framework::{Call, Field, FieldData, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::util::uuid;
use tresor_core::{Error, Result};

/// Reads one setting of a role into an answer.
type Reader = fn(&Role) -> Response;
/// Applies one setting from the request; `max` is the mount's max lease TTL.
type Updater = fn(&mut Role, &FieldData, u64) -> Result<()>;
/// Resets one setting to its default.
type Resetter = fn(&mut Role);

fn role_name_field(p: Path<AppRole>) -> Path<AppRole> {
    p.field(
        "role_name",
        Field::string("Name of the role. Must be less than 4096 bytes."),
    )
}

fn sub(suffix: &str) -> Path<AppRole> {
    role_name_field(Path::new(&format!("role/{}/{suffix}", named("role_name"))))
}

/// A `role/:role_name/<suffix>` path reading, updating and resetting one setting.
fn setting(
    suffix: &str,
    fields: &[(&'static str, Field)],
    read: Reader,
    update: Updater,
    reset: Resetter,
    help: &'static str,
) -> Path<AppRole> {
    let mut p = sub(suffix);
    for (n, f) in fields {
        p = p.field(n, f.clone());
    }
    p.op(Read, move |b: Arc<AppRole>, c: Call| async move {
        let role = b
            .role(&c.storage, &role_name(&c))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(read(&role))
    })
    .op(Update, move |b: Arc<AppRole>, c: Call| async move {
        let name = role_name(&c);
        let _guard = b.role_locks.lock(&name).await;
        let mut role = b
            .role(&c.storage, &name)
            .await?
            .ok_or_else(unsupported_path)?;
        update(&mut role, &c.fields, mount_max_ttl(&c.mount))?;
        b.save_role(&c.storage, &role, "").await?;
        Ok(Response::default())
    })
    .op(Delete, move |b: Arc<AppRole>, c: Call| async move {
        let name = role_name(&c);
        let _guard = b.role_locks.lock(&name).await;
        if let Some(mut role) = b.role(&c.storage, &name).await? {
            reset(&mut role);
            b.save_role(&c.storage, &role, "").await?;
        }
        Ok(Response::default())
    })
    .help(help)
}

fn unsupported_path() -> Error {
    Error::UnsupportedPath("unsupported path".into())
}

fn missing(field: &str) -> Error {
    Error::bad(format!("missing {field}"))
}

/// Role names are case-insensitive.
pub(crate) fn role_name(c: &Call) -> String {
    c.fields.str("role_name").to_lowercase()
}

fn one(k: &str, v: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(k.into(), v);
    m
}

fn validate_blocks(list: &[String]) -> Result<()> {
    cidr::validate_blocks(list)
        .map_err(|e| Error::bad(format!("failed to validate CIDR blocks: {e}")))
}

pub(crate) fn paths() -> Vec<Path<AppRole>> {
    let d = |n: &'static str, f: Field| (n, f);
    let role = token_fields::declare(role_name_field(Path::new(&format!("role/{}", named("role_name")))), LEGACY)
        .field("bind_secret_id", Field::bool("Impose secret_id to be presented when logging in using this role. Defaults to 'true'.").default(true))
        .field("bound_cidr_list", Field::list("Use \"secret_id_bound_cidrs\" instead."))
        .field("secret_id_bound_cidrs", Field::list("Comma separated string or list of CIDR blocks. If set, specifies the blocks of IP addresses which can perform the login operation."))
        .field("secret_id_num_uses", Field::int("Number of times a SecretID can access the role, after which the SecretID will expire. Defaults to 0 meaning unlimited."))
        .field("secret_id_ttl", Field::duration("Duration in seconds after which the issued SecretID should expire. Defaults to 0, meaning no expiration."))
        .field("role_id", Field::string("Identifier of the role. Defaults to a UUID."))
        .field("local_secret_ids", Field::bool("If set, the secret IDs generated using this role will be cluster local. Only at creation."))
        .exists(|b: Arc<AppRole>, c: Call| async move { Ok(b.role(&c.storage, &role_name(&c)).await?.is_some()) })
        .op(Create, write)
        .op(Update, write)
        .op(Read, read)
        .op(Delete, delete)
        .help("Register a role with the backend, read, update or delete it.");
    vec![
        Path::new("role/?")
            .op(List, list)
            .help("Lists all the roles registered with the backend."),
        role,
        sub("local-secret-ids").op(Read, |b: Arc<AppRole>, c: Call| async move {
            let role = b
                .role(&c.storage, &role_name(&c))
                .await?
                .ok_or(Error::NotFound)?;
            Ok(Response::data(
                json!({ "local_secret_ids": role.local_secret_ids }),
            ))
        }),
        setting(
            "policies",
            &[
                d("policies", Field::list("Use \"token_policies\" instead.")),
                d(
                    "token_policies",
                    Field::list("Comma-separated list of policies"),
                ),
            ],
            |r| {
                let mut m = one("token_policies", json!(r.token.token_policies));
                if !r.token.policies.is_empty() {
                    m.insert("policies".into(), json!(r.token.policies));
                }
                sorted_data(m)
            },
            |r, f, _| {
                let t = &mut r.token;
                if f.has("token_policies") {
                    t.token_policies = clean_policies(f.strings("token_policies"));
                    t.policies = if f.has("policies") {
                        t.token_policies.clone()
                    } else {
                        vec![]
                    };
                } else if f.has("policies") {
                    t.policies = clean_policies(f.strings("policies"));
                    t.token_policies = t.policies.clone();
                } else {
                    return Err(missing("token_policies"));
                }
                Ok(())
            },
            |r| {
                r.token.token_policies.clear();
                r.token.policies.clear();
            },
            "Policies of the role.",
        ),
        setting(
            "bound-cidr-list",
            &[d(
                "bound_cidr_list",
                Field::list("Deprecated: use secret_id_bound_cidrs."),
            )],
            |_| {
                Response::data(json!({ "bound_cidr_list": null }))
                    .with_warning("The \"bound_cidr_list\" field is deprecated and will be removed. Please use \"secret_id_bound_cidrs\" instead.")
            },
            |r, f, _| set_secret_id_cidrs(r, f, "bound_cidr_list"),
            |_| {},
            "Deprecated: CIDR blocks allowed to log in; use secret-id-bound-cidrs.",
        ),
        setting(
            "secret-id-bound-cidrs",
            &[d(
                "secret_id_bound_cidrs",
                Field::list("CIDR blocks allowed to log in."),
            )],
            |r| sorted_data(one("secret_id_bound_cidrs", json!(r.secret_id_bound_cidrs))),
            |r, f, _| set_secret_id_cidrs(r, f, "secret_id_bound_cidrs"),
            |r| r.secret_id_bound_cidrs = None,
            "CIDR blocks allowed to log in with this role.",
        ),
        setting(
            "token-bound-cidrs",
            &[d(
                "token_bound_cidrs",
                Field::list("CIDR blocks allowed to use the generated token."),
            )],
            |r| sorted_data(one("token_bound_cidrs", json!(r.token.token_bound_cidrs))),
            |r, f, _| {
                if f.has("token_bound_cidrs") {
                    r.token.token_bound_cidrs = cidr::parse_addrs(&f.strings("token_bound_cidrs"))
                        .map_err(|e| {
                            Error::bad(format!("failed to parse token_bound_cidrs: {e}"))
                        })?;
                }
                Ok(())
            },
            |r| r.token.token_bound_cidrs.clear(),
            "CIDR blocks allowed to use the generated token.",
        ),
        setting(
            "bind-secret-id",
            &[d(
                "bind_secret_id",
                Field::bool("Impose secret_id to be presented when logging in using this role.")
                    .default(true),
            )],
            |r| sorted_data(one("bind_secret_id", json!(r.bind_secret_id))),
            |r, f, _| {
                if !f.has("bind_secret_id") {
                    return Err(missing("bind_secret_id"));
                }
                r.bind_secret_id = f.bool("bind_secret_id");
                Ok(())
            },
            |r| r.bind_secret_id = true,
            "Impose secret_id to be presented during login using this role.",
        ),
        setting(
            "secret-id-num-uses",
            &[d(
                "secret_id_num_uses",
                Field::int("Number of times a SecretID can access the role."),
            )],
            |r| sorted_data(one("secret_id_num_uses", json!(r.secret_id_num_uses))),
            |r, f, _| {
                if !f.has("secret_id_num_uses") {
                    return Err(missing("secret_id_num_uses"));
                }
                let n = f.int("secret_id_num_uses");
                if n < 0 {
                    return Err(Error::bad("secret_id_num_uses cannot be negative"));
                }
                r.secret_id_num_uses = n;
                Ok(())
            },
            |r| r.secret_id_num_uses = 0,
            "Use limit of the SecretID generated against the role.",
        ),
        setting(
            "secret-id-ttl",
            &[d(
                "secret_id_ttl",
                Field::duration("Duration after which the issued SecretID should expire."),
            )],
            |r| sorted_data(one("secret_id_ttl", json!(r.secret_id_ttl))),
            |r, f, _| {
                if !f.has("secret_id_ttl") {
                    return Err(missing("secret_id_ttl"));
                }
                r.secret_id_ttl = f.duration("secret_id_ttl").as_secs();
                Ok(())
            },
            |r| r.secret_id_ttl = 0,
            "Duration in seconds of the SecretID generated against the role.",
        ),
        setting(
            "period",
            &[
                d("period", Field::duration("Use \"token_period\" instead.")),
                d(
                    "token_period",
                    Field::duration("Renewal period of the generated tokens."),
                ),
            ],
            |r| {
                let mut m = one("token_period", json!(r.token.token_period));
                if r.token.period > 0 {
                    m.insert("period".into(), json!(r.token.period));
                }
                sorted_data(m)
            },
            |r, f, max| {
                let t = &mut r.token;
                if f.has("token_period") {
                    t.token_period = f.duration("token_period").as_secs();
                    t.period = if f.has("period") { t.token_period } else { 0 };
                } else if f.has("period") {
                    t.period = f.duration("period").as_secs();
                    t.token_period = t.period;
                } else {
                    return Err(missing("period"));
                }
                if t.token_period > max {
                    return Err(Error::bad(format!(
                        "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
                        go_duration(t.token_period),
                        go_duration(max)
                    )));
                }
                Ok(())
            },
            |r| {
                r.token.token_period = 0;
                r.token.period = 0;
            },
            "Updates the value of 'period' on the role.",
        ),
        setting(
            "token-num-uses",
            &[d(
                "token_num_uses",
                Field::int("Number of times issued tokens can be used"),
            )],
            |r| sorted_data(one("token_num_uses", json!(r.token.token_num_uses))),
            |r, f, _| {
                if !f.has("token_num_uses") {
                    return Err(missing("token_num_uses"));
                }
                let n = f.int("token_num_uses");
                if n < 0 {
                    return Err(Error::bad("'token_num_uses' cannot be negative"));
                }
                r.token.token_num_uses = n;
                Ok(())
            },
            |r| r.token.token_num_uses = 0,
            "Number of times issued tokens can be used.",
        ),
        setting(
            "token-ttl",
            &[d(
                "token_ttl",
                Field::duration("The initial ttl of the token to generate"),
            )],
            |r| sorted_data(one("token_ttl", json!(r.token.token_ttl))),
            |r, f, _| {
                if !f.has("token_ttl") {
                    return Err(missing("token_ttl"));
                }
                r.token.token_ttl = f.duration("token_ttl").as_secs();
                if r.token.token_max_ttl > 0 && r.token.token_ttl > r.token.token_max_ttl {
                    return Err(Error::bad(
                        "token_ttl should not be greater than token_max_ttl",
                    ));
                }
                Ok(())
            },
            |r| r.token.token_ttl = 0,
            "The lifetime of the tokens issued by this role, before which they need renewing.",
        ),
        setting(
            "token-max-ttl",
            &[d(
                "token_max_ttl",
                Field::duration("The maximum lifetime of the generated token"),
            )],
            |r| sorted_data(one("token_max_ttl", json!(r.token.token_max_ttl))),
            |r, f, _| {
                if !f.has("token_max_ttl") {
                    return Err(missing("token_max_ttl"));
                }
                r.token.token_max_ttl = f.duration("token_max_ttl").as_secs();
                if r.token.token_max_ttl > 0 && r.token.token_ttl > r.token.token_max_ttl {
                    return Err(Error::bad(
                        "token_max_ttl should be greater than or equal to token_ttl",
                    ));
                }
                Ok(())
            },
            |r| r.token.token_max_ttl = 0,
            "The maximum lifetime of the tokens issued by this role.",
        ),
        sub("role-id")
            .field("role_id", Field::string("Identifier of the role."))
            .op(Read, |b: Arc<AppRole>, c: Call| async move {
                let role = b
                    .role(&c.storage, &role_name(&c))
                    .await?
                    .ok_or(Error::NotFound)?;
                Ok(Response::data(json!({ "role_id": role.role_id })))
            })
            .op(Update, |b: Arc<AppRole>, c: Call| async move {
                let name = role_name(&c);
                let _guard = b.role_locks.lock(&name).await;
                let mut role = b
                    .role(&c.storage, &name)
                    .await?
                    .ok_or_else(unsupported_path)?;
                let previous =
                    std::mem::replace(&mut role.role_id, c.fields.str("role_id").to_string());
                if role.role_id.is_empty() {
                    return Err(missing("role_id"));
                }
                b.save_role(&c.storage, &role, &previous).await?;
                Ok(Response::default())
            })
            .help("Read or set the role_id of the role."),
    ]
}

/// `secret-id-bound-cidrs` / `bound-cidr-list` updates (Vault's `pathRoleBoundCIDRUpdateCommon`).
fn set_secret_id_cidrs(r: &mut Role, f: &FieldData, field: &str) -> Result<()> {
    if !f.has(field) {
        return Ok(());
    }
    let cidrs = f.strings(field);
    if cidrs.is_empty() {
        return Err(missing("bound_cidr_list"));
    }
    cidr::validate_blocks(&cidrs)
        .map_err(|e| Error::bad(format!("failed to validate CIDR blocks: {e}")))?;
    r.secret_id_bound_cidrs = Some(cidrs);
    Ok(())
}

async fn list(_b: Arc<AppRole>, c: Call) -> Result<Response> {
    let keys = c.storage.list("role/").await?;
    Response::list_or_not_found(keys)
}

async fn write(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let name = role_name(&c);
    if name.len() > MAX_HMAC_INPUT {
        return Err(Error::bad(format!(
            "role_name is longer than maximum of {MAX_HMAC_INPUT} bytes"
        )));
    }
    let f = &c.fields;
    let _guard = b.role_locks.lock(&name).await;
    let existing = b.role(&c.storage, &name).await?;
    let creating = existing.is_none();
    let mut role = existing.unwrap_or_else(|| Role {
        name: name.clone(),
        ..Default::default()
    });
    let mut warnings = role.token.parse(f, LEGACY, true)?;
    if f.has("local_secret_ids") {
        if !creating {
            return Err(Error::bad(
                "local_secret_ids can only be modified during role creation",
            ));
        }
        role.local_secret_ids = f.bool("local_secret_ids");
    }
    let previous = role.role_id.clone();
    if f.has("role_id") {
        role.role_id = f.str("role_id").to_string();
    } else if creating {
        role.role_id = uuid();
    }
    if role.role_id.is_empty() {
        return Err(Error::bad(
            "invalid role_id supplied, or failed to generate a role_id",
        ));
    }
    if f.has("bind_secret_id") || creating {
        role.bind_secret_id = f.bool("bind_secret_id");
    }
    if let Some(k) = ["secret_id_bound_cidrs", "bound_cidr_list"]
        .into_iter()
        .find(|k| f.has(k))
    {
        role.secret_id_bound_cidrs = Some(f.strings(k));
    }
    validate_blocks(role.bound_cidrs())?;
    if f.has("secret_id_num_uses") {
        role.secret_id_num_uses = f.int("secret_id_num_uses");
    }
    if role.secret_id_num_uses < 0 {
        return Err(Error::bad("secret_id_num_uses cannot be negative"));
    }
    if f.has("secret_id_ttl") {
        role.secret_id_ttl = f.duration("secret_id_ttl").as_secs();
    }
    let max = mount_max_ttl(&c.mount);
    // Vault checks the deprecated `period` only; logins cap `token_period` with a warning.
    if role.token.period > max {
        return Err(Error::bad(format!(
            "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
            go_duration(role.token.period),
            go_duration(max)
        )));
    }
    if role.token.token_max_ttl > max {
        warnings.push("token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' max TTL value will be truncated".into());
    }
    b.save_role(&c.storage, &role, &previous).await?;
    Ok(Response {
        warnings,
        ..Default::default()
    })
}

async fn read(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let role = b
        .role(&c.storage, &role_name(&c))
        .await?
        .ok_or(Error::NotFound)?;
    let mut m = Map::new();
    m.insert("bind_secret_id".into(), json!(role.bind_secret_id));
    m.insert(
        "secret_id_bound_cidrs".into(),
        json!(role.secret_id_bound_cidrs),
    );
    m.insert("secret_id_num_uses".into(), json!(role.secret_id_num_uses));
    m.insert("secret_id_ttl".into(), json!(role.secret_id_ttl));
    m.insert("local_secret_ids".into(), json!(role.local_secret_ids));
    role.token.populate(&mut m, LEGACY);
    let mut resp = sorted_data(m);
    if !role.has_constraint() {
        resp = resp.with_warning("Role does not have any constraints set on it. Updates to this role will require a constraint to be set");
    }
    Ok(resp)
}

async fn delete(b: Arc<AppRole>, c: Call) -> Result<Response> {
    let name = role_name(&c);
    let _guard = b.role_locks.lock(&name).await;
    let Some(role) = b.role(&c.storage, &name).await? else {
        return Ok(Response::default());
    };
    // Secret IDs first, then the role_id index, then the role (as Vault).
    for h in c.storage.list(&format!("secret_id/{name}/")).await? {
        let _s = b.secret_locks.lock(&h).await;
        let accessor = c
            .storage
            .get_json::<super::SecretId>(&super::secret_key(&name, &h))
            .await?
            .map(|s| s.secret_id_accessor)
            .unwrap_or_default();
        b.delete_secret(&c.storage, &name, &h, &accessor).await?;
    }
    c.storage
        .delete(&format!(
            "role_id/{}",
            b.salt.hmac(&c.storage, &role.role_id).await?
        ))
        .await?;
    c.storage.delete(&format!("role/{name}")).await?;
    b.lockout.unlock(&c.storage, &b.salt, &role.role_id).await?;
    Ok(Response::default())
}
