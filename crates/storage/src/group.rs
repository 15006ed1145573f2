//! Group commit, shared by the durable backends: their writer takes the first waiting batch and
//! every other one already queued, applies them in one transaction, commits once, and only then
//! answers each caller (its batch applied, skipped for a failed expectation, or the group's
//! error).

use crate::{Expect, Result, StorageError, WriteOp};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

/// One caller's batch, waiting for the writer.
pub(crate) struct Pending {
    pub expect: Vec<Expect>,
    pub ops: Vec<WriteOp>,
    pub done: oneshot::Sender<Result<()>>,
}

/// The callers' side of the queue to a backend's writer.
pub(crate) struct Queue(Mutex<Option<mpsc::UnboundedSender<Pending>>>);

/// The writer's side: the queued batches, taken a group at a time.
pub(crate) struct Groups {
    rx: mpsc::UnboundedReceiver<Pending>,
    max: usize,
}

/// A queue whose writer takes at most `max` batches per group.
pub(crate) fn queue(max: usize) -> (Queue, Groups) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Queue(Mutex::new(Some(tx))), Groups { rx, max })
}

impl Queue {
    /// Hands a batch to the writer and waits for its answer (after the commit).
    pub async fn submit(&self, expect: Vec<Expect>, ops: Vec<WriteOp>) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.0
            .lock()
            .as_ref()
            .ok_or(StorageError::Closed)?
            .send(Pending { expect, ops, done })
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Takes no more batches; the writer commits what is queued, then its groups end.
    pub fn close(&self) {
        self.0.lock().take();
    }

    pub fn is_closed(&self) -> bool {
        self.0.lock().is_none()
    }
}

impl Groups {
    /// The next group (the first waiting batch and every other already queued); `None` once
    /// the queue is closed and empty.
    pub async fn next(&mut self) -> Option<Vec<Pending>> {
        let first = self.rx.recv().await?;
        Some(self.gather(first))
    }

    /// [`Groups::next`] for a writer on a thread of its own.
    pub fn blocking_next(&mut self) -> Option<Vec<Pending>> {
        let first = self.rx.blocking_recv()?;
        Some(self.gather(first))
    }

    fn gather(&mut self, first: Pending) -> Vec<Pending> {
        let mut group = vec![first];
        while group.len() < self.max {
            match self.rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        group
    }
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
