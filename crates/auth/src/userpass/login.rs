//! `login/:username`: checks the password and asks the core for a token with the user's
//! policies and TTLs.
//!
//! Order, as OpenBao answers: a locked-out user gets 403 before anything else; a missing
//! password is a 500 ("missing password", Vault's quirk); a wrong password or an unknown user
//! gets 400 "invalid username or password" after the same argon2 work (a dummy hash for unknown
//! users); the right password from outside the user's `token_bound_cidrs` gets 403.

use super::{password, users::username, Userpass};
use crate::named;
use crate::token_fields::check_token_cidrs;
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::{Error, Result};

pub(crate) fn paths() -> Vec<Path<Userpass>> {
    vec![Path::new(&format!("login/{}", named("username")))
        .field("username", Field::string("Username of the user."))
        .field("password", Field::string("Password for this user."))
        .op(Update, login)
        .help("Log in with a username and password.")]
}

async fn login(b: Arc<Userpass>, c: Call) -> Result<Response> {
    let name = username(&c);
    let attempt = b.lockout.begin(&c.storage, &name).await?;
    let pw = c.fields.str("password");
    if pw.is_empty() {
        return Err(Error::bad("missing password"));
    }
    let user = b.user(&c.storage, &name).await?;
    let exists = user.is_some();
    let ok = password::verify_async(
        pw.to_string(),
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let user = match user {
        Some(u) if ok => u,
        _ => {
            if let Some(a) = attempt {
                a.fail(&c.storage, &b.salt, exists).await?;
            }
            return Err(Error::bad("invalid username or password"));
        }
    };
    check_token_cidrs(c.remote_addr.as_deref(), &user.token.token_bound_cidrs)?;
    if let Some(a) = attempt {
        a.succeed(&c.storage, &b.salt).await?;
    }
    let metadata = BTreeMap::from([("username".to_string(), name.clone())]);
    let (mut grant, warnings) = user.token.grant(&c.mount, name.clone(), metadata);
    // The entity alias of a userpass login is the username, as in Vault.
    grant.alias_name = Some(name);
    Ok(Response {
        login: Some(Box::new(grant)),
        warnings,
        ..Default::default()
    })
}
