//! The per-mount HMAC key. Credentials and credential-like identifiers (secret IDs, role IDs,
//! secret ID accessors, lockout aliases) never appear in storage keys or values in clear: they
//! are indexed by `HMAC-SHA256(salt, value)`. The salt is 32 random bytes stored (encrypted by
//! the barrier) at `salt` in the mount's view, created on first use.

use aws_lc_rs::hmac;
use tokio::sync::OnceCell;
use tresor_core::barrier::{random_bytes, View};
use tresor_core::Result;

#[derive(Default)]
pub struct Salt {
    key: OnceCell<hmac::Key>,
}

impl Salt {
    async fn key(&self, view: &View) -> Result<&hmac::Key> {
        self.key
            .get_or_try_init(|| async {
                let bytes = match view.get("salt").await? {
                    Some(b) => b,
                    None => {
                        let b = random_bytes(32);
                        view.put("salt", b.clone()).await?;
                        b
                    }
                };
                Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
            })
            .await
    }

    /// Hex `HMAC-SHA256(salt, value)`.
    pub async fn hmac(&self, view: &View, value: &str) -> Result<String> {
        Ok(hex::encode(hmac::sign(
            self.key(view).await?,
            value.as_bytes(),
        )))
    }
}
