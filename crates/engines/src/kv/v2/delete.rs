//! `delete/:path`, `undelete/:path` and `destroy/:path`: changing the state of chosen versions.
//!
//! * delete: a soft delete; the version's `deletion_time` becomes now (a version already
//!   deleted keeps its time; destroyed ones are left alone).
//! * undelete: clears `deletion_time` (or reschedules it by `delete_version_after`); destroyed
//!   versions stay destroyed.
//! * destroy: marks the versions destroyed and removes their data, in one batch.
//!
//! Unknown keys and versions are ignored (204), as in Vault.

use super::model::{now_nanos, Key};
use super::{parse_versions, put_meta, write_key, V2};
use std::sync::Arc;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_storage::WriteOp;

pub fn paths() -> Vec<Path<V2>> {
    let p = |pattern: &str, what: &'static str| {
        Path::new(pattern)
            .field("path", Field::string("Location of the secret."))
            .field("versions", Field::raw(what))
    };
    vec![
        p(
            "delete/(?P<path>.*)",
            "The versions to mark deleted; their data stays and can be undeleted.",
        )
        .op(Update, delete)
        .op(Create, delete)
        .help("Marks one or more versions as deleted."),
        p("undelete/(?P<path>.*)", "The versions to restore.")
            .op(Update, undelete)
            .op(Create, undelete)
            .help("Undeletes one or more versions."),
        p(
            "destroy/(?P<path>.*)",
            "The versions to destroy; their data is removed for good.",
        )
        .op(Update, destroy)
        .op(Create, destroy)
        .help("Permanently removes one or more versions."),
    ]
}

async fn delete(b: Arc<V2>, c: Call) -> Result<Response> {
    let name = write_key(&c)?;
    let versions = parse_versions(&c)?;
    if versions.is_empty() {
        return Err(Error::bad("No version number provided"));
    }
    let key = Key::new(name);
    b.modify_meta(&c.storage, &key, |meta| {
        let Some(mut meta) = meta else {
            return Ok((vec![], ()));
        };
        let now = now_nanos();
        let mut changed = false;
        for n in &versions {
            if let Some(vm) = meta.versions.get_mut(n).filter(|vm| !vm.is_gone(now)) {
                vm.deletion_time = Some(now);
                changed = true;
            }
        }
        Ok((
            changed
                .then(|| put_meta(&key, &meta))
                .transpose()?
                .into_iter()
                .collect(),
            (),
        ))
    })
    .await?;
    Ok(Response::default())
}

async fn undelete(b: Arc<V2>, c: Call) -> Result<Response> {
    let name = write_key(&c)?;
    let versions = parse_versions(&c)?;
    if versions.is_empty() {
        return Err(Error::bad("No version number provided"));
    }
    let config = b.config(&c.storage).await?;
    let key = Key::new(name);
    b.modify_meta(&c.storage, &key, |meta| {
        let Some(mut meta) = meta else {
            return Ok((vec![], ()));
        };
        let deletion = config.deletion_time(now_nanos(), meta.delete_version_after);
        let mut changed = false;
        for n in &versions {
            if let Some(vm) = meta.versions.get_mut(n).filter(|vm| !vm.destroyed) {
                vm.deletion_time = deletion;
                changed = true;
            }
        }
        Ok((
            changed
                .then(|| put_meta(&key, &meta))
                .transpose()?
                .into_iter()
                .collect(),
            (),
        ))
    })
    .await?;
    Ok(Response::default())
}

async fn destroy(b: Arc<V2>, c: Call) -> Result<Response> {
    let name = write_key(&c)?;
    let versions = parse_versions(&c)?;
    if versions.is_empty() {
        return Err(Error::bad("no version number provided"));
    }
    let key = Key::new(name);
    b.modify_meta(&c.storage, &key, |meta| {
        let Some(mut meta) = meta else {
            return Ok((vec![], ()));
        };
        let mut ops = Vec::new();
        for n in &versions {
            if let Some(vm) = meta.versions.get_mut(n).filter(|vm| !vm.destroyed) {
                vm.destroyed = true;
                ops.push(WriteOp::Delete(key.version_key(*n)));
            }
        }
        if !ops.is_empty() {
            ops.push(put_meta(&key, &meta)?);
        }
        Ok((ops, ()))
    })
    .await?;
    Ok(Response::default())
}
