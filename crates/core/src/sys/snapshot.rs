//! `sys/storage/raft/snapshot` (GET: save, POST: restore) and `snapshot-force`: Vault's raft
//! snapshot API over any storage backend (see [`crate::snapshot`]), so `bao operator raft
//! snapshot save/restore` works against Tresor. The snapshot travels as the raw HTTP body.

use super::Sys;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, RawResponse, Response};
use std::sync::Arc;

pub fn paths() -> Vec<Path<Sys>> {
    let restore = |pattern: &str, force: bool| {
        Path::new(pattern)
            .field(
                "http_raw_body",
                Field::string("the snapshot (the raw request body)"),
            )
            .op(Update, move |s: Arc<Sys>, c| async move {
                s.snapshot_restore(c, force).await
            })
    };
    vec![
        restore("storage/raft/snapshot", false)
            .op(Read, Sys::snapshot_save)
            .help("GET: a snapshot of everything, taken online. POST: restore one taken by this cluster."),
        restore("storage/raft/snapshot-force", true).help(
            "Restore a snapshot even if it was taken with other unseal keys (the node then seals; the snapshot's keys unseal it).",
        ),
    ]
}

impl Sys {
    async fn snapshot_save(self: Arc<Self>, _c: Call) -> Result<Response> {
        let body = self.core()?.save_snapshot().await?;
        Ok(Response {
            raw: Some(Box::new(RawResponse {
                status: 200,
                content_type: "application/gzip".into(),
                body,
                headers: Vec::new(),
            })),
            ..Default::default()
        })
    }

    async fn snapshot_restore(self: Arc<Self>, c: Call, force: bool) -> Result<Response> {
        use base64::Engine;
        let body = c.fields.str("http_raw_body");
        if body.is_empty() {
            return Err(Error::bad("no snapshot: send it as the request body"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| Error::bad("the snapshot body is not valid"))?;
        self.core()?.restore_snapshot(bytes, force).await?;
        Ok(Response::default())
    }
}
