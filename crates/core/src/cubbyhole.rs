//! `cubbyhole/`: a private KV space per token. Each token sees only its own entries, stored
//! under the hash of its accessor, and they vanish with the token (cleanup arrives with the
//! lease manager).

use crate::error::{Error, Result};
use crate::framework::{Call, Path, PathBackend};
use crate::logical::{Operation::*, Response};
use serde_json::Value;
use std::sync::Arc;

pub struct Cubbyhole;

fn key(c: &Call) -> Result<String> {
    let caller = c.caller.as_ref().ok_or(Error::PermissionDenied)?;
    if caller.entry.batch {
        // A batch token has no accessor (and nothing to clean up after): no cubbyhole.
        return Err(Error::bad(
            "cubbyhole operations are only supported by \"service\" type tokens",
        ));
    }
    Ok(format!("{}/{}", caller.entry.accessor, c.path))
}

pub fn backend() -> PathBackend<Cubbyhole> {
    PathBackend::new(
        Cubbyhole,
        vec![Path::new(".*")
            .op(Read, |_b: Arc<Cubbyhole>, c| async move {
                match c.storage.get_json::<Value>(&key(&c)?).await? {
                    Some(v) => Ok(Response::data(v)),
                    None => Err(Error::NotFound),
                }
            })
            .op(Update, |_b: Arc<Cubbyhole>, c| async move {
                if c.path.is_empty() || c.path.ends_with('/') {
                    return Err(Error::bad("missing path"));
                }
                c.storage
                    .put_json(&key(&c)?, &Value::Object(c.data.clone()))
                    .await?;
                Ok(Response::default())
            })
            .op(Delete, |_b: Arc<Cubbyhole>, c| async move {
                c.storage.delete(&key(&c)?).await?;
                Ok(Response::default())
            })
            .op(List, |_b: Arc<Cubbyhole>, c| async move {
                let keys = c.storage.list(&key(&c)?).await?;
                Response::list_or_not_found(keys)
            })
            .help("Private per-token storage.")],
    )
    .help("Per-token private secret storage.")
}
