//! Group commit, shared by the durable backends: their writer takes the first waiting batch and
//! every other one already queued, applies them in one transaction, commits once, and only then
//! answers each caller (its batch applied, skipped for a failed expectation, or the group's
//! error).

use crate::{Expect, Result, StorageError, WriteOp};
use tokio::sync::oneshot;

/// One caller's batch, waiting for the writer.
pub(crate) struct Pending {
    pub expect: Vec<Expect>,
    pub ops: Vec<WriteOp>,
    pub done: oneshot::Sender<Result<()>>,
}

/// Answers every batch of a committed (or failed) group: per batch, the key whose expectation
/// failed (`Conflict`, nothing of it applied) or `None` (applied).
pub(crate) fn answer(group: Vec<Pending>, outcome: Result<Vec<Option<String>>>) {
    match outcome {
        Ok(conflicts) => {
            for (p, conflict) in group.into_iter().zip(conflicts) {
                let _ = p.done.send(match conflict {
                    Some(key) => Err(StorageError::Conflict(key)),
                    None => Ok(()),
                });
            }
        }
        Err(e) => {
            for p in group {
                let _ = p.done.send(Err(e.clone()));
            }
        }
    }
}
