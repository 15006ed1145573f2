//! `users`, `users/:username`, `users/:username/password` and `users/:username/policies`: user
//! management, with Vault's answer shapes and status codes.

use super::{password, user_key, Userpass, LEGACY};
use crate::token_fields::{self, clean_policies};
use crate::{named, sorted_data};
use serde_json::Map;
use std::sync::Arc;
use tresor_core::framework::{Call, Field, FieldData, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

pub(crate) fn paths() -> Vec<Path<Userpass>> {
    let password_fields = |p: Path<Userpass>| {
        p.field("password", Field::string("Password for this user."))
            .field(
                "password_hash",
                Field::string(
                    "Pre-hashed password (an argon2id PHC string) instead of `password`.",
                ),
            )
    };
    vec![
        Path::new("users/?").op(List, list).help("List the users."),
        token_fields::declare(
            password_fields(Path::new(&format!("users/{}", named("username")))),
            LEGACY,
        )
        .field("username", Field::string("Username for this user."))
        .exists(|b: Arc<Userpass>, c: Call| async move {
            Ok(b.user(&c.storage, &username(&c)).await?.is_some())
        })
        .op(Create, write)
        .op(Update, write)
        .op(Read, read)
        .op(Delete, delete)
        .help("Manage the users allowed to log in."),
        password_fields(Path::new(&format!("users/{}/password", named("username"))))
            .field("username", Field::string("Username for this user."))
            .op(Update, set_password)
            .help("Reset a user's password."),
        Path::new(&format!("users/{}/policies", named("username")))
            .field("username", Field::string("Username for this user."))
            .field("policies", Field::list("Use \"token_policies\" instead."))
            .field(
                "token_policies",
                Field::list("Comma-separated list of policies"),
            )
            .op(Update, set_policies)
            .help("Update a user's policies."),
    ]
}

/// Usernames are case-insensitive.
pub(crate) fn username(c: &Call) -> String {
    c.fields.str("username").to_lowercase()
}

/// The new password hash from `password` or `password_hash`; `None` when neither was sent.
async fn new_hash(f: &FieldData) -> Result<Option<String>> {
    let (pw, ph) = (f.str("password"), f.str("password_hash"));
    match (pw.is_empty(), ph.is_empty()) {
        (false, false) => Err(Error::bad(
            "only one of password or password_hash may be provided",
        )),
        (false, true) => Ok(Some(password::hash_async(pw.to_string()).await?)),
        (true, false) => {
            password::check_imported(ph)?;
            Ok(Some(ph.to_string()))
        }
        (true, true) => Ok(None),
    }
}

fn must_give_password() -> Error {
    Error::bad("must provide either password or password_hash")
}

async fn list(_b: Arc<Userpass>, c: Call) -> Result<Response> {
    let keys = c.storage.list("user/").await?;
    Response::list_or_not_found(keys)
}

async fn write(b: Arc<Userpass>, c: Call) -> Result<Response> {
    let name = username(&c);
    let _guard = b.user_locks.lock(&name).await;
    let existing = b.user(&c.storage, &name).await?;
    let creating = existing.is_none();
    let mut user = existing.unwrap_or_default();
    if creating && c.fields.str("password").is_empty() && c.fields.str("password_hash").is_empty() {
        return Err(must_give_password());
    }
    let warnings = user.token.parse(&c.fields, LEGACY, false)?;
    if let Some(h) = new_hash(&c.fields).await? {
        user.password_hash = h;
    }
    b.save_user(&c.storage, &name, &user).await?;
    Ok(Response {
        warnings,
        ..Default::default()
    })
}

async fn read(b: Arc<Userpass>, c: Call) -> Result<Response> {
    let user = b
        .user(&c.storage, &username(&c))
        .await?
        .ok_or(Error::NotFound)?;
    let mut m = Map::new();
    user.token.populate(&mut m, LEGACY);
    Ok(sorted_data(m))
}

async fn delete(b: Arc<Userpass>, c: Call) -> Result<Response> {
    let name = username(&c);
    let _guard = b.user_locks.lock(&name).await;
    c.storage.delete(&user_key(&name)).await?;
    b.lockout.unlock(&c.storage, &b.salt, &name).await?;
    Ok(Response::default())
}

async fn set_password(b: Arc<Userpass>, c: Call) -> Result<Response> {
    let name = username(&c);
    let _guard = b.user_locks.lock(&name).await;
    let mut user = b
        .user(&c.storage, &name)
        .await?
        .ok_or_else(|| Error::bad("username does not exist"))?;
    user.password_hash = new_hash(&c.fields).await?.ok_or_else(must_give_password)?;
    b.save_user(&c.storage, &name, &user).await?;
    Ok(Response::default())
}

async fn set_policies(b: Arc<Userpass>, c: Call) -> Result<Response> {
    let name = username(&c);
    let _guard = b.user_locks.lock(&name).await;
    let mut user = b
        .user(&c.storage, &name)
        .await?
        .ok_or_else(|| Error::bad("username does not exist"))?;
    let f = &c.fields;
    let t = &mut user.token;
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
    }
    b.save_user(&c.storage, &name, &user).await?;
    Ok(Response::default())
}
