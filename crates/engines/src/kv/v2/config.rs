//! `config`: the mount-wide settings of a KV v2 mount: `max_versions`, `cas_required`,
//! `metadata_cas_required` and `delete_version_after` (a negative duration disables deletion
//! scheduling for every key and reads back as `-1s`; zero clears it). A write changes only the
//! fields it names.

use super::model::{parse_duration_secs, DVA_DISABLED};
use super::{ignored_params, V2};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

pub fn paths() -> Vec<Path<V2>> {
    vec![Path::new("config")
        .field(
            "max_versions",
            Field::int("The number of versions to keep for each key. Defaults to 10."),
        )
        .field(
            "cas_required",
            Field::bool("If true, every data write must set the cas option."),
        )
        .field(
            "metadata_cas_required",
            Field::bool("If true, every metadata write must set metadata_cas."),
        )
        .field(
            "delete_version_after",
            Field::raw(
                "How long a version lives before it is deleted; negative disables, 0 clears.",
            ),
        )
        .op(Read, read)
        .op(Update, write)
        .op(Create, write)
        .help("Configures settings for the KV store.")]
}

async fn read(b: Arc<V2>, c: Call) -> Result<Response> {
    let config = b.config(&c.storage).await?;
    let mut resp = Response {
        data: Some(config.to_json()),
        ..Default::default()
    };
    resp.warnings.extend(ignored_params(
        &c,
        &[
            "max_versions",
            "cas_required",
            "metadata_cas_required",
            "delete_version_after",
        ],
    ));
    Ok(resp)
}

async fn write(b: Arc<V2>, c: Call) -> Result<Response> {
    let f = &c.fields;
    let max_versions = if f.has("max_versions") {
        let m = f.int("max_versions");
        Some(u32::try_from(m).map_err(|_| {
            Error::bad(format!(
                "max_versions must be between 0 and {}, got {m}",
                u32::MAX
            ))
        })?)
    } else {
        None
    };
    let dva = if f.has("delete_version_after") {
        let secs = parse_duration_secs(f.get("delete_version_after")).map_err(|e| {
            Error::bad(format!(
                "error converting input for field \"delete_version_after\": {e}"
            ))
        })?;
        Some(if secs < 0 { DVA_DISABLED } else { secs })
    } else {
        None
    };
    let cas_required = f.has("cas_required").then(|| f.bool("cas_required"));
    let metadata_cas_required = f
        .has("metadata_cas_required")
        .then(|| f.bool("metadata_cas_required"));
    if max_versions.is_none()
        && dva.is_none()
        && cas_required.is_none()
        && metadata_cas_required.is_none()
    {
        return Ok(Response::default());
    }
    let _guard = b.config_write.lock().await;
    let mut config = b.config(&c.storage).await?;
    if let Some(m) = max_versions {
        config.max_versions = m;
    }
    if let Some(d) = dva {
        config.delete_version_after = d;
    }
    if let Some(v) = cas_required {
        config.cas_required = v;
    }
    if let Some(v) = metadata_cas_required {
        config.metadata_cas_required = v;
    }
    b.store_config(&c.storage, config).await?;
    Ok(Response::default())
}
