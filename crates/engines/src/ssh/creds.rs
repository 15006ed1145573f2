//! `creds/:role`: one-time passwords for an OTP role (`key_type=otp`), and the lease hook that
//! removes an unused one when its lease ends.
//!
//! The OTP is a random UUID, as Vault's. It is stored only as its salted hash
//! (`otp/<HMAC-SHA256(mount salt, otp)>`, with the user, address and role), so storage never
//! holds a usable password; `verify` takes the record in one conditional write. The answer
//! carries a lease (the mount's TTL, not renewable) whose revocation deletes the record.

use super::roles::{self, parse_cidrs};
use super::{zeroaddress, Ssh, ROLE};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, LeaseCall, Path};
use tresor_core::logical::{Operation::*, Response, Secret};
use tresor_storage::WriteOp;

pub const OTP_PREFIX: &str = "otp/";
const SALT: &str = "salt";

/// An unused OTP: who may log in where with it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OtpEntry {
    pub username: String,
    pub ip: String,
    pub role_name: String,
    /// Unix time the OTP's lease ends: past it the OTP is refused even if the lease's
    /// revocation (which deletes it) has not run yet. 0: no expiry recorded.
    #[serde(default)]
    pub expires_at: i64,
}

/// The mount's salt for OTP hashes, made (once, atomically) on first use.
async fn salt(s: &View) -> Result<Vec<u8>> {
    s.update(SALT, |v| match v {
        Some(v) => Ok((vec![], v.to_vec())),
        None => {
            let salt = tresor_core::barrier::random_bytes(32);
            Ok((vec![WriteOp::Put(SALT.into(), salt.clone())], salt))
        }
    })
    .await
}

/// The storage key of an OTP: `otp/` and the hex HMAC-SHA256 of the OTP under the salt.
pub async fn otp_key(s: &View, otp: &str) -> Result<String> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &salt(s).await?);
    let tag = aws_lc_rs::hmac::sign(&key, otp.as_bytes());
    Ok(format!("{OTP_PREFIX}{}", hex::encode(tag.as_ref())))
}

pub fn paths() -> Vec<Path<Ssh>> {
    vec![Path::new(&format!("creds/{ROLE}"))
        .field("role", Field::string("[Required] Name of the role"))
        .field(
            "username",
            Field::string("[Optional] Username in remote host"),
        )
        .field("ip", Field::string("[Required] IP of the remote host"))
        .op(Update, create)
        .help("Creates a credential for establishing SSH connection with the remote host.")]
}

/// Whether `ip` falls in any block of a comma-separated CIDR list.
pub fn cidrs_contain(list: &str, ip: IpAddr) -> std::result::Result<bool, String> {
    if list.trim().is_empty() {
        return Err("IP does not belong to role".into());
    }
    Ok(parse_cidrs(list)?.iter().any(|n| n.contains(&ip)))
}

/// Parses an address as Go's `net.ParseIP` (IPv4-mapped IPv6 shown as IPv4).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.trim().parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    })
}

async fn create(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let name = f.str("role");
    let ip_raw = f.str("ip");
    if ip_raw.is_empty() {
        return Err(Error::bad("Missing ip"));
    }
    let s = &c.storage;
    let role = roles::get(s, name)
        .await?
        .ok_or_else(|| Error::bad(format!("Role {name:?} not found")))?;
    let mut username = f.str("username").to_string();
    if username.is_empty() {
        if role.default_user.is_empty() {
            return Err(Error::bad(
                "No default username registered. Use 'username' option",
            ));
        }
        username = role.default_user.clone();
    }
    if !role.allowed_users.is_empty() {
        let listed = role.allowed_users == "*"
            || role.allowed_users.split(',').any(|u| u.trim() == username);
        if !listed && username != role.default_user {
            return Err(Error::bad("Username is not present is allowed users list"));
        }
    } else if username != role.default_user {
        return Err(Error::bad(
            "Username has to be either in allowed users list or has to be a default username",
        ));
    }
    let ip = parse_ip(ip_raw).ok_or_else(|| Error::bad(format!("Invalid IP {ip_raw:?}")))?;
    if !zeroaddress::roles(s).await?.iter().any(|r| r == name) {
        let check = || -> std::result::Result<(), String> {
            if !cidrs_contain(&role.cidr_list, ip)? {
                return Err("IP does not belong to role".into());
            }
            if !role.exclude_cidr_list.is_empty() && cidrs_contain(&role.exclude_cidr_list, ip)? {
                return Err("IP does not belong to role".into());
            }
            Ok(())
        };
        check().map_err(|e| Error::bad(format!("Error validating IP: {e}")))?;
    }
    if role.key_type != "otp" {
        return Err(Error::bad(format!(
            "role key type '{}' does not generate credentials; use sign or issue",
            role.key_type
        )));
    }
    let ip = ip.to_string();
    let otp = tresor_core::util::uuid();
    let key = otp_key(s, &otp).await?;
    let entry = OtpEntry {
        username: username.clone(),
        ip: ip.clone(),
        role_name: name.to_string(),
        // The TTL the core gives the lease below (the secret asks for none: the default).
        expires_at: tresor_core::util::unix_now() + c.ttl_limits.calculate(0, 0, 0).ttl as i64,
    };
    s.put_json(&key, &entry).await?;
    let mut r = Response::data(json!({
        "key_type": role.key_type,
        "key": otp,
        "username": username,
        "ip": ip,
        "port": role.port,
    }));
    r.secret = Some(Box::new(Secret {
        renewable: false,
        internal: json!({ "otp_key": key }),
        ..Default::default()
    }));
    Ok(r)
}

/// The lease of an OTP ended: it can no longer be used.
pub async fn revoke(_b: Arc<Ssh>, lease: LeaseCall) -> Result<()> {
    if let Some(key) = lease.internal.get("otp_key").and_then(|k| k.as_str()) {
        if key.starts_with(OTP_PREFIX) {
            lease.storage.delete(key).await?;
        }
    }
    Ok(())
}
