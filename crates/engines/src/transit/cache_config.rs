//! `cache-config`: the size of the engine's in-memory key cache. 0 (the default) keeps every
//! key that has been used; a size of at least 10 bounds the cache, evicting a cached key
//! when it is full. The setting is stored and takes effect at once (and after restarts).
//!
//! Crypto: none (see [`super::policy`] for the engine's crypto, aws-lc-rs).

use super::Transit;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub(super) const STORAGE_KEY: &str = "config/cache";

#[derive(Serialize, Deserialize, Default)]
pub(super) struct CacheConfig {
    pub size: usize,
}

pub(super) fn paths() -> Vec<Path<Transit>> {
    vec![Path::new("cache-config")
        .field(
            "size",
            Field::int("The number of keys to cache: 0 (default) for no limit, else at least 10")
                .default(0),
        )
        .op(Read, read)
        .op(Update, write)
        .help("Configure the key cache.")]
}

async fn read(_t: Arc<Transit>, c: Call) -> Result<Response> {
    let cfg: CacheConfig = c.storage.get_json(STORAGE_KEY).await?.unwrap_or_default();
    Ok(Response::data(json!({ "size": cfg.size })))
}

async fn write(t: Arc<Transit>, c: Call) -> Result<Response> {
    let size = c.fields.int("size");
    if size < 0 || (size != 0 && size < 10) {
        return Err(Error::bad(
            "size must be 0 or a value greater or equal to 10",
        ));
    }
    let cfg = CacheConfig {
        size: size as usize,
    };
    c.storage.put_json(STORAGE_KEY, &cfg).await?;
    t.cache_size.store(cfg.size, Ordering::Relaxed);
    Ok(Response::data(json!({ "size": cfg.size })))
}
