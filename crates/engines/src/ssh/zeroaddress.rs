//! `config/zeroaddress`: OTP roles that may issue credentials for any address, whatever their
//! `cidr_list` says (write, read, delete). Deleting a role takes it off the list.

use super::{roles, Ssh};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_storage::WriteOp;

const KEY: &str = "config/zeroaddress";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ZeroAddressRoles {
    #[serde(default)]
    roles: Vec<String>,
}

/// The roles valid for any address.
pub async fn roles(s: &View) -> Result<Vec<String>> {
    Ok(s.get_json::<ZeroAddressRoles>(KEY)
        .await?
        .map(|z| z.roles)
        .unwrap_or_default())
}

/// Takes a deleted role off the list (one conditional write: a concurrent change of the list
/// is never overwritten).
pub async fn remove_role(s: &View, name: &str) -> Result<()> {
    s.update_json::<ZeroAddressRoles, _>(KEY, |stored| {
        let Some(mut z) = stored.filter(|z| z.roles.iter().any(|r| r == name)) else {
            return Ok((vec![], ()));
        };
        z.roles.retain(|r| r != name);
        Ok((vec![WriteOp::Put(KEY.into(), serde_json::to_vec(&z)?)], ()))
    })
    .await
}

pub fn paths() -> Vec<Path<Ssh>> {
    vec![Path::new("config/zeroaddress")
        .field(
            "roles",
            Field::list("[Required] Comma separated list of role names which allows credentials to be requested for any IP address."),
        )
        .op(Update, write)
        .op(Read, read)
        .op(Delete, delete)
        .help("Assign zero address as default CIDR block for select roles.")]
}

async fn write(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let names = c.fields.strings("roles");
    if names.is_empty() {
        return Err(Error::bad("Missing roles"));
    }
    for name in &names {
        if roles::get(&c.storage, name).await?.is_none() {
            return Err(Error::bad(format!("Role {name:?} does not exist")));
        }
    }
    c.storage
        .put_json(KEY, &ZeroAddressRoles { roles: names })
        .await?;
    Ok(Response::default())
}

async fn read(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    match c.storage.get_json::<ZeroAddressRoles>(KEY).await? {
        Some(z) => Ok(Response::data(json!({ "roles": z.roles }))),
        None => Err(Error::NotFound),
    }
}

async fn delete(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    c.storage.delete(KEY).await?;
    Ok(Response::default())
}
