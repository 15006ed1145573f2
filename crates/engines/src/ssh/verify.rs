//! `verify` (unauthenticated): the host's helper checks an OTP. A known OTP is consumed in the
//! same step ([`View::take`](tresor_core::barrier::View::take), a conditional delete checked by
//! the storage backend), so of any number of concurrent verifications of one OTP, in any
//! number of processes on one database, exactly one gets its user, address and role; the
//! others, like any later one, get `OTP not found` (400).

use super::creds::{otp_key, OtpEntry};
use super::Ssh;
use serde_json::json;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

/// What the helper sends to check that it reaches the server (Vault's `VerifyEchoRequest`).
const ECHO_REQUEST: &str = "verify-echo-request";
const ECHO_RESPONSE: &str = "verify-echo-response";

pub fn paths() -> Vec<Path<Ssh>> {
    vec![Path::new("verify")
        .field(
            "otp",
            Field::string("[Required] One-Time-Key that needs to be validated"),
        )
        .op(Update, verify)
        .help("Validate (and consume) an OTP.")]
}

async fn verify(_b: Arc<Ssh>, c: Call) -> Result<Response> {
    let otp = c.fields.str("otp");
    if otp == ECHO_REQUEST {
        return Ok(Response::data(json!({ "message": ECHO_RESPONSE })));
    }
    let key = otp_key(&c.storage, otp).await?;
    let entry = c
        .storage
        .take_json::<OtpEntry>(&key)
        .await?
        .filter(|e| e.expires_at == 0 || tresor_core::util::unix_now() < e.expires_at)
        .ok_or_else(|| Error::bad("OTP not found"))?;
    Ok(Response::data(json!({
        "username": entry.username,
        "ip": entry.ip,
        "role_name": entry.role_name,
    })))
}
