//! `tidy/secret-id`: removes expired secret IDs, secret IDs of deleted roles, secret IDs whose
//! accessor index is gone, and accessor entries whose secret ID is gone. As in Vault it also
//! runs every minute on its own (see the approle factory), and logins remove the expired
//! secret IDs they meet.
//!
//! Answers 202 with Vault's warning. The work is done before answering (it is one pass over the
//! mount's secret IDs), and a tidy already running makes a second one return at once.

use super::{now_ns, secret_key, AccessorEntry, AppRole, SecretId};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::framework::{Call, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::Result;

pub(crate) fn paths() -> Vec<Path<AppRole>> {
    vec![Path::new("tidy/secret-id")
        .op(Update, tidy)
        .help("Trigger the clean-up of expired SecretID entries.")]
}

/// Clears the running flag however the tidy ends.
struct Running<'a>(&'a AppRole);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.tidying.store(false, Ordering::SeqCst);
    }
}

fn accepted(warning: &str) -> Response {
    Response {
        status: Some(202),
        ..Response::default().with_warning(warning)
    }
}

async fn tidy(b: Arc<AppRole>, c: Call) -> Result<Response> {
    if b.tidying.swap(true, Ordering::SeqCst) {
        return Ok(accepted("SecretID tidy operation already in progress."));
    }
    let _running = Running(&b);
    tidy_now(&b, &c.storage).await?;
    Ok(accepted("Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs."))
}

/// One tidy pass; returns how many secret IDs and accessor entries were removed.
pub(crate) async fn tidy_now(b: &AppRole, view: &View) -> Result<(usize, usize)> {
    let now = now_ns();
    let (mut secrets, mut accessors) = (0, 0);
    for dir in view.list("secret_id/").await? {
        let name = dir.trim_end_matches('/').to_string();
        let role_exists = b.role(view, &name).await?.is_some();
        for h in view.list(&format!("secret_id/{name}/")).await? {
            let _s = b.secret_locks.lock(&h).await;
            let Some(entry) = view.get_json::<SecretId>(&secret_key(&name, &h)).await? else {
                continue;
            };
            let accessor_key = b.accessor_key(view, &entry.secret_id_accessor).await?;
            let has_accessor = view.get(&accessor_key).await?.is_some();
            if !role_exists || entry.is_expired(now) || !has_accessor {
                b.delete_secret(view, &name, &h, &entry.secret_id_accessor)
                    .await?;
                secrets += 1;
            }
        }
    }
    for k in view.list("accessor/").await? {
        let key = format!("accessor/{k}");
        let Some(a) = view.get_json::<AccessorEntry>(&key).await? else {
            continue;
        };
        let _s = b.secret_locks.lock(&a.secret_id_hmac).await;
        if view
            .get(&secret_key(&a.role_name, &a.secret_id_hmac))
            .await?
            .is_none()
        {
            view.delete(&key).await?;
            accessors += 1;
        }
    }
    Ok((secrets, accessors))
}
