//! A [`PathBackend`] with a `periodic` hook: the core calls [`Backend::periodic`] about once a
//! second while unsealed, and `PathBackend` has no way to set it, so this wrapper delegates
//! every other [`Backend`] method to the inner backend and runs `hook` at most once per
//! `every`. (If `PathBackend` gains a periodic hook of its own, this module can go.)

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tresor_core::barrier::View;
use tresor_core::framework::{Backend, BoxFuture, Call, LeaseCall, PathBackend};
use tresor_core::logical::Response;
use tresor_core::Result;

type Hook<B> = Arc<dyn Fn(Arc<B>, View) -> BoxFuture<Result<()>> + Send + Sync>;

pub struct Periodic<B> {
    inner: PathBackend<B>,
    hook: Hook<B>,
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl<B: Send + Sync + 'static> Periodic<B> {
    pub fn new<F, Fut>(inner: PathBackend<B>, every: Duration, hook: F) -> Self
    where
        F: Fn(Arc<B>, View) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        Periodic {
            inner,
            hook: Arc::new(move |b, v| Box::pin(hook(b, v))),
            every,
            last: Mutex::new(None),
        }
    }
}

#[async_trait]
impl<B: Send + Sync + 'static> Backend for Periodic<B> {
    async fn handle(&self, call: Call) -> Result<Response> {
        self.inner.handle(call).await
    }
    async fn exists(&self, call: &Call) -> Result<Option<bool>> {
        self.inner.exists(call).await
    }
    fn unauthenticated_paths(&self) -> &[String] {
        self.inner.unauthenticated_paths()
    }
    fn sudo_paths(&self) -> &[String] {
        self.inner.sudo_paths()
    }
    fn describe(&self) -> Value {
        self.inner.describe()
    }
    async fn initialize(&self, storage: &View) -> Result<()> {
        self.inner.initialize(storage).await
    }
    async fn periodic(&self, storage: &View) -> Result<()> {
        self.inner.periodic(storage).await?;
        {
            let mut last = self.last.lock();
            let now = Instant::now();
            match *last {
                // The first tick only starts the clock: nothing is due right after unsealing.
                None => {
                    *last = Some(now);
                    return Ok(());
                }
                Some(t) if now.duration_since(t) < self.every => return Ok(()),
                Some(_) => *last = Some(now),
            }
        }
        (self.hook)(self.inner.inner().clone(), storage.clone()).await
    }
    async fn revoke_secret(&self, lease: LeaseCall) -> Result<()> {
        self.inner.revoke_secret(lease).await
    }
    async fn renew_secret(&self, lease: LeaseCall) -> Result<()> {
        self.inner.renew_secret(lease).await
    }
    fn resolves_roles(&self) -> bool {
        self.inner.resolves_roles()
    }
    async fn resolve_role(&self, call: &Call) -> Option<String> {
        Backend::resolve_role(&self.inner, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tresor_core::barrier::Barrier;

    #[tokio::test]
    async fn runs_the_hook_at_most_once_per_interval_and_not_at_start() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let make = |every| {
            let counter = counter.clone();
            Periodic::new(
                PathBackend::new((), vec![]),
                every,
                move |_b: Arc<()>, _v: View| {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }
                },
            )
        };
        let view = View::new(
            Arc::new(Barrier::new(Arc::new(
                tresor_storage::memory::MemoryStorage::new(),
            ))),
            "",
        );
        let often = make(Duration::ZERO);
        often.periodic(&view).await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "the first tick only starts the clock"
        );
        often.periodic(&view).await.unwrap();
        often.periodic(&view).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let rare = make(Duration::from_secs(3600));
        for _ in 0..5 {
            rare.periodic(&view).await.unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
