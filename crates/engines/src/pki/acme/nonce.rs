//! Anti-replay nonces (RFC 8555 §6.5): random, single use, valid for [`NONCE_TTL`].
//!
//! They live in this process's memory, shared by every mount (a nonce is 192 random bits, and
//! the signed `url` ties a request to one mount anyway). A restart forgets them, so clients
//! get one `badNonce` and retry with the fresh nonce every ACME answer carries. The store is
//! bounded: past [`MAX_NONCES`] outstanding nonces the expired ones are dropped, then the
//! oldest.

use super::jws::b64u;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// How long an unused nonce stays valid.
pub const NONCE_TTL: Duration = Duration::from_secs(30 * 60);

/// Outstanding nonces kept at most.
pub const MAX_NONCES: usize = 100_000;

#[derive(Default)]
struct Store {
    live: HashMap<String, Instant>,
    /// Issue order, to drop the oldest first (may hold nonces already used).
    order: VecDeque<String>,
}

static STORE: LazyLock<Mutex<Store>> = LazyLock::new(Default::default);

/// A fresh nonce.
pub fn issue() -> String {
    let mut bytes = [0u8; 24];
    // aws-lc-rs's system RNG; failure here would mean no entropy at all.
    aws_lc_rs::rand::fill(&mut bytes).expect("system random number generator");
    let nonce = b64u(&bytes);
    let now = Instant::now();
    let mut s = STORE.lock();
    if s.live.len() >= MAX_NONCES {
        s.live.retain(|_, exp| *exp > now);
        let live = std::mem::take(&mut s.live);
        s.order.retain(|n| live.contains_key(n));
        s.live = live;
        while s.live.len() >= MAX_NONCES {
            match s.order.pop_front() {
                Some(old) => {
                    s.live.remove(&old);
                }
                None => break,
            }
        }
    }
    s.live.insert(nonce.clone(), now + NONCE_TTL);
    s.order.push_back(nonce.clone());
    // Keep the issue queue from growing without bound with nonces already used.
    if s.order.len() > 2 * MAX_NONCES {
        let live = std::mem::take(&mut s.live);
        s.order.retain(|n| live.contains_key(n));
        s.live = live;
    }
    nonce
}

/// Uses up a nonce: true when it was issued here, not used before, and has not expired.
pub fn consume(nonce: &str) -> bool {
    match STORE.lock().live.remove(nonce) {
        Some(exp) => exp > Instant::now(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use() {
        let n = issue();
        assert!(consume(&n));
        assert!(!consume(&n));
        assert!(!consume("never-issued"));
    }
}
