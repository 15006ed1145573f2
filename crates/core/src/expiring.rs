//! Short-lived records with an expiry, kept in a backend's storage so that every server on the
//! same storage sees them: ACME anti-replay nonces, OIDC login states. They are single use
//! where it matters ([`Expiring::take`]): of any number of concurrent takers, in this process or
//! another one on the same database, exactly one gets the record (see [`View::update`]).
//!
//! Layout under the view: `r/<id>` holds `{"expires_ms": .., "value": ..}`, and
//! `x/<expires_ms>/<id>` indexes it by expiry, so [`Expiring::sweep`] reads only what is due.
//! An expired record reads as absent before it is swept.

use crate::barrier::View;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tresor_storage::WriteOp;

/// How many due records one [`Expiring::sweep`] removes at most.
const SWEEP_PAGE: usize = 500;

#[derive(Serialize, Deserialize)]
struct Record<T> {
    expires_ms: u64,
    value: T,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn record_key(id: &str) -> String {
    format!("r/{id}")
}

fn index_key(expires_ms: u64, id: &str) -> String {
    format!("x/{expires_ms:020}/{id}")
}

/// A set of expiring records under one storage prefix.
#[derive(Clone)]
pub struct Expiring {
    view: View,
}

impl Expiring {
    /// The records under `view` (a backend's sub-view such as `acme/nonces/`).
    pub fn new(view: View) -> Self {
        Expiring { view }
    }

    fn check_id(id: &str) -> Result<()> {
        if id.is_empty() || id.contains('/') {
            return Err(Error::internal("invalid expiring record id"));
        }
        Ok(())
    }

    /// Stores `value` under `id` for `ttl` (replacing any record of that id).
    pub async fn insert<T: Serialize>(&self, id: &str, value: &T, ttl: Duration) -> Result<()> {
        Self::check_id(id)?;
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        let record = serde_json::to_vec(&Record { expires_ms, value })?;
        self.view
            .write_batch(vec![
                WriteOp::Put(record_key(id), record),
                WriteOp::Put(index_key(expires_ms, id), Vec::new()),
            ])
            .await
    }

    /// Stores `value` under `id` for `ttl` unless a live record of that id exists: `false`
    /// then, and nothing changes. Atomic: of concurrent inserters of one id, one wins.
    pub async fn insert_new<T: Serialize>(
        &self,
        id: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool> {
        Self::check_id(id)?;
        let key = record_key(id);
        let now = now_ms();
        let expires_ms = now + ttl.as_millis() as u64;
        let record = serde_json::to_vec(&Record { expires_ms, value })?;
        self.view
            .update_json::<Record<serde_json::Value>, _>(&key, |stored| {
                let mut ops = Vec::with_capacity(3);
                match stored {
                    Some(r) if r.expires_ms > now => return Ok((vec![], false)),
                    Some(r) => ops.push(WriteOp::Delete(index_key(r.expires_ms, id))),
                    None => {}
                }
                ops.push(WriteOp::Put(key.clone(), record.clone()));
                ops.push(WriteOp::Put(index_key(expires_ms, id), Vec::new()));
                Ok((ops, true))
            })
            .await
    }

    /// The live record of `id`, left in place.
    pub async fn get<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>> {
        if Self::check_id(id).is_err() {
            return Ok(None);
        }
        let record = self.view.get_json::<Record<T>>(&record_key(id)).await?;
        Ok(record.filter(|r| r.expires_ms > now_ms()).map(|r| r.value))
    }

    /// Removes the record of `id` and returns it if it was live: single use, atomically.
    pub async fn take<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>> {
        if Self::check_id(id).is_err() {
            return Ok(None);
        }
        let key = record_key(id);
        let now = now_ms();
        self.view
            .update_json::<Record<T>, _>(&key, |stored| match stored {
                None => Ok((vec![], None)),
                Some(r) => {
                    let ops = vec![
                        WriteOp::Delete(key.clone()),
                        WriteOp::Delete(index_key(r.expires_ms, id)),
                    ];
                    Ok((ops, Some(r.value).filter(|_| r.expires_ms > now)))
                }
            })
            .await
    }

    /// Changes the live record of `id` atomically (its expiry stays); returns the new value,
    /// or `None` if there is no live record.
    pub async fn modify<T: Serialize + DeserializeOwned + Clone>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut T),
    ) -> Result<Option<T>> {
        if Self::check_id(id).is_err() {
            return Ok(None);
        }
        let key = record_key(id);
        let now = now_ms();
        self.view
            .update_json::<Record<T>, _>(&key, |stored| match stored {
                Some(mut r) if r.expires_ms > now => {
                    change(&mut r.value);
                    let value = r.value.clone();
                    Ok((
                        vec![WriteOp::Put(key.clone(), serde_json::to_vec(&r)?)],
                        Some(value),
                    ))
                }
                _ => Ok((vec![], None)),
            })
            .await
    }

    /// Removes the record of `id`, live or not.
    pub async fn remove(&self, id: &str) -> Result<()> {
        self.take::<serde_json::Value>(id).await.map(|_| ())
    }

    /// Removes expired records (a page at a time; call it periodically). Returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        let now = now_ms();
        let mut removed = 0;
        for k in self.view.scan("x/", None, SWEEP_PAGE).await? {
            let Some((at, id)) = k["x/".len()..].split_once('/') else {
                self.view.delete(&k).await?;
                continue;
            };
            if at.parse::<u64>().unwrap_or(0) > now {
                break;
            }
            // Through `take`: a record re-inserted with a later expiry keeps living (its own
            // index entry is later), and a concurrent taker and the sweep cannot both win.
            let key = record_key(id);
            let index = k.clone();
            self.view
                .update_json::<Record<serde_json::Value>, _>(&key, |stored| {
                    let mut ops = vec![WriteOp::Delete(index.clone())];
                    if stored.is_some_and(|r| r.expires_ms <= now) {
                        ops.push(WriteOp::Delete(key.clone()));
                    }
                    Ok((ops, ()))
                })
                .await?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Barrier;
    use std::sync::Arc;
    use tresor_storage::memory::MemoryStorage;

    async fn store() -> Expiring {
        let b = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
        let root = b.initialize().await.unwrap();
        b.unseal(root).await.unwrap();
        Expiring::new(View::new(b, "e/"))
    }

    #[tokio::test]
    async fn records_are_single_use_and_expire() {
        let e = store().await;
        e.insert("a", &"one", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(e.get::<String>("a").await.unwrap().as_deref(), Some("one"));
        let changed = e.modify::<String>("a", |v| v.push_str("+1")).await.unwrap();
        assert_eq!(changed.as_deref(), Some("one+1"));
        assert_eq!(
            e.take::<String>("a").await.unwrap().as_deref(),
            Some("one+1")
        );
        assert_eq!(e.take::<String>("a").await.unwrap(), None);
        assert_eq!(e.get::<String>("never").await.unwrap(), None);
        assert_eq!(e.take::<String>("bad/id").await.unwrap(), None);

        assert!(e
            .insert_new("u", &1, Duration::from_secs(60))
            .await
            .unwrap());
        assert!(!e
            .insert_new("u", &2, Duration::from_secs(60))
            .await
            .unwrap());
        assert_eq!(e.take::<i32>("u").await.unwrap(), Some(1));

        e.insert("short", &1, Duration::ZERO).await.unwrap();
        e.insert("long", &2, Duration::from_secs(60)).await.unwrap();
        assert_eq!(e.get::<i32>("short").await.unwrap(), None);
        assert_eq!(e.take::<i32>("short").await.unwrap(), None);
        e.insert("short2", &3, Duration::ZERO).await.unwrap();
        assert_eq!(e.modify::<i32>("short2", |v| *v += 1).await.unwrap(), None);
        // An expired record does not block a new one of its id.
        assert!(e.insert_new("short2", &4, Duration::ZERO).await.unwrap());
        assert_eq!(e.sweep().await.unwrap(), 1);
        assert_eq!(e.view.list("r/").await.unwrap(), vec!["long"]);
        assert_eq!(e.view.scan("x/", None, 10).await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_takers_get_a_record_once() {
        let e = store().await;
        for round in 0..30 {
            let id = format!("n{round}");
            e.insert(&id, &round, Duration::from_secs(60))
                .await
                .unwrap();
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let (e, id) = (e.clone(), id.clone());
                tasks.push(tokio::spawn(
                    async move { e.take::<i32>(&id).await.unwrap() },
                ));
            }
            let mut winners = 0;
            for t in tasks {
                winners += usize::from(t.await.unwrap().is_some());
            }
            assert_eq!(winners, 1, "round {round}");
        }
    }
}
