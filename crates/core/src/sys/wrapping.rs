//! Response wrapping: with `X-Vault-Wrap-TTL`, the answer to any request is stored in the
//! barrier and the client gets a single-use wrapping token instead (`wrap_info`). The token
//! carries only the built-in `response-wrapping` policy; `sys/wrapping/unwrap` returns the stored
//! answer exactly once, then the token and the answer are gone.
//!
//! Paths: `sys/wrapping/wrap`, `unwrap`, `lookup`, `rewrap`.

use super::Sys;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Auth, Data, Lease, Operation::*, Response};
use crate::token::TokenParams;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The policy of wrapping tokens (built in, not stored).
pub const WRAPPING_POLICY: &str = "response-wrapping";
const MAX_WRAP_TTL: u64 = 768 * 3600;

/// What a wrapping token holds.
#[derive(Serialize, Deserialize)]
struct Wrapped {
    data: Option<Data>,
    auth: Option<Auth>,
    warnings: Vec<String>,
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
    creation_path: String,
    creation_time: i64,
    creation_ttl: u64,
}

fn key(hash: &str) -> String {
    format!("sys/wrapping/{hash}")
}

/// Replaces `resp` by a wrapping token whose single use returns it.
pub async fn wrap(core: &Core, resp: Response, ttl: Duration, path: &str) -> Result<Response> {
    let ttl = ttl.as_secs();
    if ttl == 0 || ttl > MAX_WRAP_TTL {
        return Err(Error::bad(format!(
            "wrapping TTL must be between 1s and {MAX_WRAP_TTL}s"
        )));
    }
    let active = core.active()?;
    let (token, entry) = active
        .tokens
        .create(TokenParams {
            policies: vec![WRAPPING_POLICY.into()],
            path: path.to_string(),
            display_name: "response-wrapping".into(),
            num_uses: 1,
            ttl,
            ..Default::default()
        })
        .await?;
    let lease = resp.lease.clone().unwrap_or_default();
    // What the wrapped answer is about, for `wrapped_accessor` (a token, or an AppRole secret ID).
    let wrapped_accessor = resp.auth.as_ref().map(|a| a.accessor.clone()).or_else(|| {
        resp.data
            .as_ref()
            .and_then(|d| d.get("secret_id_accessor"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    });
    let wrapped = Wrapped {
        data: resp.data,
        auth: resp.auth.as_deref().cloned(),
        warnings: resp.warnings,
        lease_id: lease.lease_id,
        lease_duration: lease.duration,
        renewable: lease.renewable,
        creation_path: path.to_string(),
        creation_time: entry.creation_time,
        creation_ttl: ttl,
    };
    core.root_view()
        .put_json(&key(&entry.hash), &wrapped)
        .await?;
    let mut info = json!({
        "token": token,
        "accessor": entry.accessor,
        "ttl": ttl,
        "creation_time": crate::util::rfc3339(entry.creation_time),
        "creation_path": path,
    });
    if let Some(a) = wrapped_accessor {
        info["wrapped_accessor"] = json!(a);
    }
    Ok(Response {
        wrap_info: Some(info),
        mount_type: resp.mount_type,
        ..Default::default()
    })
}

pub fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("wrapping/wrap")
            .op(Update, Sys::wrapping_wrap)
            .help("Wrap the request data (needs X-Vault-Wrap-TTL)."),
        Path::new("wrapping/unwrap")
            .field(
                "token",
                Field::string("wrapping token (default: the request token)"),
            )
            .op(Update, Sys::wrapping_unwrap)
            .help("Return a wrapped answer, once."),
        Path::new("wrapping/lookup")
            .field("token", Field::string("wrapping token"))
            .op(Update, Sys::wrapping_lookup)
            .op(Read, Sys::wrapping_lookup)
            .help("Look up a wrapping token's properties."),
        Path::new("wrapping/rewrap")
            .field("token", Field::string("wrapping token"))
            .op(Update, Sys::wrapping_rewrap)
            .help("Move a wrapped answer to a new wrapping token."),
    ]
}

fn invalid_token() -> Error {
    Error::bad("wrapping token is not valid or does not exist")
}

fn wrapping_token(c: &Call) -> Result<String> {
    let t = c.fields.str("token");
    let t = if t.is_empty() {
        c.caller.as_ref().map(|c| c.token.as_str()).unwrap_or("")
    } else {
        t
    };
    if t.is_empty() {
        return Err(Error::bad("token is required"));
    }
    Ok(t.to_string())
}

impl Sys {
    /// Validates a wrapping token; returns its storage hash.
    async fn wrapping_hash(&self, core: &Core, token: &str) -> Result<String> {
        let entry = core.active()?.tokens.lookup(token).await?;
        match entry {
            Some(e) if e.policies == [WRAPPING_POLICY] => Ok(e.hash.clone()),
            _ => Err(invalid_token()),
        }
    }

    /// The stored answer of a wrapping token, left in place (lookup).
    async fn peek_wrapped(&self, core: &Core, token: &str) -> Result<Wrapped> {
        let hash = self.wrapping_hash(core, token).await?;
        core.root_view()
            .get_json::<Wrapped>(&key(&hash))
            .await?
            .ok_or_else(invalid_token)
    }

    /// Takes a wrapping token's answer out of storage and revokes the token: of any number of
    /// concurrent unwraps (on any server sharing the storage), exactly one gets the answer.
    async fn take_wrapped(&self, core: &Core, token: &str) -> Result<Wrapped> {
        let hash = self.wrapping_hash(core, token).await?;
        let wrapped = core
            .root_view()
            .take_json::<Wrapped>(&key(&hash))
            .await?
            .ok_or_else(invalid_token)?;
        // The answer is out of storage: it goes to this caller even if the token's cleanup
        // fails (the token can unwrap nothing any more; expiry removes it).
        if let Err(e) = core.active()?.tokens.revoke_tree(&hash).await {
            tracing::warn!(error = %e, "revoking an unwrapped wrapping token failed");
        }
        Ok(wrapped)
    }

    async fn wrapping_wrap(self: Arc<Self>, c: Call) -> Result<Response> {
        if c.wrap_ttl.is_none() {
            return Err(Error::bad(
                "sys/wrapping/wrap needs a wrap TTL (X-Vault-Wrap-TTL)",
            ));
        }
        // The core wraps this answer like any other, because the request carries a wrap TTL.
        Ok(Response::data(serde_json::Value::Object(c.data.clone())))
    }

    async fn wrapping_unwrap(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let w = self.take_wrapped(&core, &wrapping_token(&c)?).await?;
        let lease = if w.lease_id.is_empty() && w.lease_duration == 0 {
            None
        } else {
            Some(Box::new(Lease {
                lease_id: w.lease_id,
                duration: w.lease_duration,
                renewable: w.renewable,
            }))
        };
        Ok(Response {
            data: w.data,
            auth: w.auth.map(Box::new),
            warnings: w.warnings,
            lease,
            ..Default::default()
        })
    }

    async fn wrapping_lookup(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let w = self.peek_wrapped(&core, &wrapping_token(&c)?).await?;
        Ok(Response::data(json!({
            "creation_path": w.creation_path,
            "creation_time": crate::util::rfc3339(w.creation_time),
            "creation_ttl": w.creation_ttl,
        })))
    }

    async fn wrapping_rewrap(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let w = self.take_wrapped(&core, &wrapping_token(&c)?).await?;
        let resp = Response {
            data: w.data,
            auth: w.auth.map(Box::new),
            warnings: w.warnings,
            ..Default::default()
        };
        wrap(
            &core,
            resp,
            Duration::from_secs(w.creation_ttl),
            &w.creation_path,
        )
        .await
    }
}
