//! `lookup`: the OTP roles an address may get credentials for: those whose `cidr_list` holds
//! it, and those listed in `config/zeroaddress`.

use super::creds::{cidrs_contain, parse_ip};
use super::{roles, zeroaddress, Ssh};
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub fn paths() -> Vec<Path<Ssh>> {
    vec![Path::new("lookup")
        .field("ip", Field::string("[Required] IP address of remote host"))
        .op(Update, lookup)
        .help("List all the roles associated with the given IP address.")]
}

async fn lookup(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let raw = c.fields.str("ip");
    if raw.is_empty() {
        return Err(Error::bad("Missing ip"));
    }
    let ip = parse_ip(raw).ok_or_else(|| Error::bad(format!("Invalid IP {raw:?}")))?;
    let s = &c.storage;
    let mut matching = Vec::new();
    for name in roles::names(s).await? {
        if let Some(role) = roles::get(s, &name).await? {
            if cidrs_contain(&role.cidr_list, ip).unwrap_or(false) {
                matching.push(name);
            }
        }
    }
    matching.extend(zeroaddress::roles(s).await?);
    let roles = if matching.is_empty() {
        Value::Null
    } else {
        json!(matching)
    };
    Ok(Response::data(json!({ "roles": roles })))
}
