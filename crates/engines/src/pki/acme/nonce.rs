//! Anti-replay nonces (RFC 8555 §6.5): single use, valid for [`NONCE_TTL`].
//!
//! A nonce is `b64u(random(16) || expiry(8, BE seconds) || HMAC-SHA256(mount key, both))`:
//! issuing one stores nothing (the unauthenticated `new-nonce` cannot fill storage), and any
//! server of the mount can check it, because the key lives in the mount's storage
//! (`acme/nonce-key`). Spending one records its random part in an [`Expiring`] set until the
//! nonce would expire anyway; that insertion is atomic (`insert_new`), so of concurrent
//! requests carrying one nonce, on any server sharing the storage, exactly one gets through.
//! Spent records are swept by the mount's periodic hook. A restart forgets nothing.

use super::jws::{b64u, unb64u};
use aws_lc_rs::hmac;
use std::time::Duration;
use tresor_core::barrier::View;
use tresor_core::expiring::Expiring;
use tresor_core::util::unix_now;
use tresor_core::Result;
use tresor_storage::WriteOp;

/// How long an unused nonce stays valid.
pub const NONCE_TTL: Duration = Duration::from_secs(30 * 60);

const KEY_PATH: &str = "acme/nonce-key";
const SPENT_PREFIX: &str = "acme/nonces/";
const RANDOM_LEN: usize = 16;
const BODY_LEN: usize = RANDOM_LEN + 8;
const TAG_LEN: usize = 32;

/// The mount's nonce key, created on first use (atomically: two servers agree on one key).
async fn key(storage: &View) -> Result<hmac::Key> {
    let bytes = storage
        .update(KEY_PATH, |stored| match stored {
            Some(k) => Ok((vec![], k.to_vec())),
            None => {
                let k = tresor_core::barrier::random_bytes(32);
                Ok((vec![WriteOp::Put(KEY_PATH.into(), k.clone())], k))
            }
        })
        .await?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// A fresh nonce.
pub async fn issue(storage: &View) -> Result<String> {
    let key = key(storage).await?;
    let mut nonce = tresor_core::barrier::random_bytes(RANDOM_LEN);
    let expires = unix_now() + NONCE_TTL.as_secs() as i64;
    nonce.extend_from_slice(&expires.to_be_bytes());
    let tag = hmac::sign(&key, &nonce);
    nonce.extend_from_slice(tag.as_ref());
    Ok(b64u(&nonce))
}

/// Uses up a nonce: true when this mount issued it, it has not expired, and no request used
/// it before.
pub async fn consume(storage: &View, nonce: &str) -> Result<bool> {
    let Some(raw) = unb64u(nonce).filter(|r| r.len() == BODY_LEN + TAG_LEN) else {
        return Ok(false);
    };
    let (body, tag) = raw.split_at(BODY_LEN);
    if hmac::verify(&key(storage).await?, body, tag).is_err() {
        return Ok(false);
    }
    let expires = i64::from_be_bytes(body[RANDOM_LEN..].try_into().expect("8 bytes"));
    let left = expires - unix_now();
    if left <= 0 {
        return Ok(false);
    }
    Expiring::new(storage.sub(SPENT_PREFIX))
        .insert_new(
            &b64u(&body[..RANDOM_LEN]),
            &(),
            Duration::from_secs(left as u64),
        )
        .await
}

/// Forgets spent nonces that have expired anyway.
pub async fn sweep(storage: &View) -> Result<usize> {
    Expiring::new(storage.sub(SPENT_PREFIX)).sweep().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tresor_core::barrier::Barrier;
    use tresor_storage::memory::MemoryStorage;

    async fn views() -> (View, View) {
        let b = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
        let root = b.initialize().await.unwrap();
        b.unseal(root).await.unwrap();
        (View::new(b.clone(), "m1/"), View::new(b, "m2/"))
    }

    #[tokio::test]
    async fn nonces_are_single_use_and_bound_to_their_mount() {
        let (m1, m2) = views().await;
        let n = issue(&m1).await.unwrap();
        assert!(!consume(&m2, &n).await.unwrap(), "another mount's nonce");
        assert!(consume(&m1, &n).await.unwrap());
        assert!(!consume(&m1, &n).await.unwrap(), "reused");
        assert!(!consume(&m1, "bm90LWEtbm9uY2U").await.unwrap());
        assert!(!consume(&m1, "").await.unwrap());
        // A forged expiry breaks the tag.
        let mut raw = unb64u(&issue(&m1).await.unwrap()).unwrap();
        raw[RANDOM_LEN] ^= 1;
        assert!(!consume(&m1, &b64u(&raw)).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_requests_spend_a_nonce_once() {
        let (m1, _) = views().await;
        for _ in 0..30 {
            let n = issue(&m1).await.unwrap();
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let (v, n) = (m1.clone(), n.clone());
                tasks.push(tokio::spawn(async move { consume(&v, &n).await.unwrap() }));
            }
            let mut accepted = 0;
            for t in tasks {
                accepted += usize::from(t.await.unwrap());
            }
            assert_eq!(accepted, 1);
        }
    }
}
