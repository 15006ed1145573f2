//! The barrier: every byte the core writes to storage passes through here and is encrypted with
//! AES-256-GCM under the active key of the keyring. While sealed the barrier has no keys and
//! refuses every read and write.
//!
//! Layout of an encrypted value: `[version=1][term: u32 BE][nonce: 12][ciphertext+tag]`, with the
//! storage key as associated data, so a value copied to another key does not decrypt.
//!
//! Key hierarchy (as Vault's): the unseal key (combined from Shamir shares) decrypts the root key
//! (`core/root-key`, outside the barrier); the root key decrypts the keyring (`core/keyring`); the
//! keyring's terms encrypt everything else. `sys/rotate` adds a term; old terms keep decrypting.
//!
//! Why aws-lc-rs: one audited, FIPS-validated library covers AEAD, HMAC, digests, randomness and
//! the asymmetric algorithms the transit and PKI engines need; rustls uses it too.

use crate::error::{Error, Result};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use parking_lot::RwLock;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::Arc;
use tresor_storage::{Storage, WriteOp};
use zeroize::Zeroizing;

pub const KEYRING_PATH: &str = "core/keyring";
pub const ROOT_KEY_PATH: &str = "core/root-key";
const VERSION: u8 = 1;

/// Fills a buffer with cryptographically secure random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness unavailable");
    b
}

/// AES-256-GCM seal of `plaintext` under a raw 32-byte key; `[nonce][ct+tag]`.
pub fn aead_seal(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::internal("invalid key length"))?,
    );
    let nonce_bytes = random_bytes(NONCE_LEN);
    let nonce =
        Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| Error::internal("nonce"))?;
    let mut buf = plaintext.to_vec();
    k.seal_in_place_append_tag(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| Error::internal("encryption failed"))?;
    let mut out = nonce_bytes;
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens what [`aead_seal`] produced.
pub fn aead_open(key: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(Error::internal("ciphertext too short"));
    }
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::internal("invalid key length"))?,
    );
    let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN])
        .map_err(|_| Error::internal("nonce"))?;
    let mut buf = sealed[NONCE_LEN..].to_vec();
    let n = k
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| Error::internal("decryption failed: wrong key or tampered data"))?
        .len();
    buf.truncate(n);
    Ok(buf)
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(zeroize::Zeroizing::new)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct KeyTerm {
    pub term: u32,
    #[serde(with = "b64")]
    pub key: Zeroizing<Vec<u8>>,
    /// RFC 3339 install time.
    pub install_time: String,
}

/// The data-encryption keys, by term.
#[derive(Clone, Serialize, Deserialize)]
pub struct Keyring {
    pub terms: Vec<KeyTerm>,
    pub active_term: u32,
}

impl Keyring {
    pub fn new() -> Self {
        Keyring {
            terms: vec![KeyTerm {
                term: 1,
                key: Zeroizing::new(random_bytes(32)),
                install_time: crate::util::now_rfc3339(),
            }],
            active_term: 1,
        }
    }
    pub fn active(&self) -> &KeyTerm {
        self.terms
            .iter()
            .find(|t| t.term == self.active_term)
            .expect("active term present")
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new()
    }
}

struct Unsealed {
    keyring: Keyring,
    /// Cipher objects for each term, built once.
    ciphers: Vec<(u32, LessSafeKey)>,
    root_key: Zeroizing<Vec<u8>>,
    /// Encryptions with the active term since this unseal (or rotation).
    encryptions: std::sync::atomic::AtomicU64,
}

impl Unsealed {
    fn new(keyring: Keyring, root_key: Zeroizing<Vec<u8>>) -> Result<Self> {
        let ciphers = keyring
            .terms
            .iter()
            .map(|t| {
                Ok((
                    t.term,
                    LessSafeKey::new(
                        UnboundKey::new(&AES_256_GCM, &t.key)
                            .map_err(|_| Error::internal("bad keyring"))?,
                    ),
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Unsealed {
            keyring,
            ciphers,
            root_key,
            encryptions: std::sync::atomic::AtomicU64::new(0),
        })
    }
    fn cipher(&self, term: u32) -> Option<&LessSafeKey> {
        self.ciphers
            .iter()
            .find(|(t, _)| *t == term)
            .map(|(_, c)| c)
    }
}

/// Encryption over a [`Storage`]; sealed until given the root key.
pub struct Barrier {
    storage: Arc<dyn Storage>,
    state: RwLock<Option<Unsealed>>,
}

impl Barrier {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Barrier {
            storage,
            state: RwLock::new(None),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn is_sealed(&self) -> bool {
        self.state.read().is_none()
    }

    /// Creates a new keyring, protected by a new root key, and stores both. Returns the root key.
    /// The caller protects the root key (see `seal`).
    pub async fn initialize(&self) -> Result<Zeroizing<Vec<u8>>> {
        let root_key = Zeroizing::new(random_bytes(32));
        let keyring = Keyring::new();
        self.store_keyring(&keyring, &root_key).await?;
        Ok(root_key)
    }

    async fn store_keyring(&self, keyring: &Keyring, root_key: &[u8]) -> Result<()> {
        let plain = Zeroizing::new(serde_json::to_vec(keyring)?);
        let sealed = aead_seal(root_key, KEYRING_PATH.as_bytes(), &plain)?;
        self.storage.put(KEYRING_PATH, sealed).await?;
        Ok(())
    }

    /// Loads the keyring with the root key; fails (and stays sealed) if the key is wrong.
    pub async fn unseal(&self, root_key: Zeroizing<Vec<u8>>) -> Result<()> {
        let sealed = self
            .storage
            .get(KEYRING_PATH)
            .await?
            .ok_or(Error::NotInitialized)?;
        let plain = Zeroizing::new(
            aead_open(&root_key, KEYRING_PATH.as_bytes(), &sealed)
                .map_err(|_| Error::bad("invalid key"))?,
        );
        let keyring: Keyring = serde_json::from_slice(&plain)?;
        *self.state.write() = Some(Unsealed::new(keyring, root_key)?);
        Ok(())
    }

    pub fn seal(&self) {
        *self.state.write() = None;
    }

    /// Adds a new key term and makes it active (`sys/rotate`).
    pub async fn rotate(&self) -> Result<u32> {
        let (keyring, root) = {
            let st = self.state.read();
            let u = st.as_ref().ok_or(Error::Sealed)?;
            let mut k = u.keyring.clone();
            let term = k.active_term + 1;
            k.terms.push(KeyTerm {
                term,
                key: Zeroizing::new(random_bytes(32)),
                install_time: crate::util::now_rfc3339(),
            });
            k.active_term = term;
            (k, u.root_key.clone())
        };
        self.store_keyring(&keyring, &root).await?;
        let term = keyring.active_term;
        *self.state.write() = Some(Unsealed::new(keyring, root)?);
        Ok(term)
    }

    /// The active term, its install time, and how many encryptions it did since this unseal
    /// (Vault reports the count in `sys/key-status`).
    pub fn key_status(&self) -> Result<(u32, String, u64)> {
        let st = self.state.read();
        let u = st.as_ref().ok_or(Error::Sealed)?;
        let a = u.keyring.active();
        Ok((
            a.term,
            a.install_time.clone(),
            u.encryptions.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    /// The root key, for rekeying (re-protecting it under new shares).
    pub fn root_key(&self) -> Result<Zeroizing<Vec<u8>>> {
        Ok(self
            .state
            .read()
            .as_ref()
            .ok_or(Error::Sealed)?
            .root_key
            .clone())
    }

    pub fn encrypt(&self, key: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let st = self.state.read();
        let u = st.as_ref().ok_or(Error::Sealed)?;
        let term = u.keyring.active_term;
        u.encryptions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cipher = u
            .cipher(term)
            .ok_or_else(|| Error::internal("active key missing"))?;
        let nonce_bytes = random_bytes(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| Error::internal("nonce"))?;
        let mut out = Vec::with_capacity(1 + 4 + NONCE_LEN + plaintext.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&term.to_be_bytes());
        out.extend_from_slice(&nonce_bytes);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(start);
        cipher
            .seal_in_place_append_tag(nonce, Aad::from(key.as_bytes()), &mut body)
            .map_err(|_| Error::internal("encryption failed"))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn decrypt(&self, key: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 1 + 4 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(Error::internal(format!("corrupt entry at {key}")));
        }
        let term = u32::from_be_bytes(sealed[1..5].try_into().expect("4 bytes"));
        let st = self.state.read();
        let u = st.as_ref().ok_or(Error::Sealed)?;
        let cipher = u
            .cipher(term)
            .ok_or_else(|| Error::internal(format!("no key for term {term}")))?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed[5..5 + NONCE_LEN])
            .map_err(|_| Error::internal("nonce"))?;
        let mut buf = sealed[5 + NONCE_LEN..].to_vec();
        let n = cipher
            .open_in_place(nonce, Aad::from(key.as_bytes()), &mut buf)
            .map_err(|_| Error::internal(format!("entry at {key} failed authentication")))?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        match self.storage.get(key).await? {
            Some(v) => Ok(Some(self.decrypt(key, &v)?)),
            None => Ok(None),
        }
    }

    pub async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                WriteOp::Put(k, v) => {
                    let c = self.encrypt(&k, &v)?;
                    Ok(WriteOp::Put(k, c))
                }
                d => Ok(d),
            })
            .collect::<Result<Vec<_>>>()?;
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        Ok(self.storage.write_batch(ops).await?)
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        Ok(self.storage.list(prefix).await?)
    }
}

/// A prefix-scoped window onto the barrier: what a backend sees as its storage.
#[derive(Clone)]
pub struct View {
    barrier: Arc<Barrier>,
    /// Shared: views are cloned per request.
    prefix: Arc<str>,
}

impl View {
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<Arc<str>>) -> Self {
        View {
            barrier,
            prefix: prefix.into(),
        }
    }
    /// A view of a sub-prefix (`prefix` should end in `/`).
    pub fn sub(&self, prefix: &str) -> View {
        View {
            barrier: self.barrier.clone(),
            prefix: format!("{}{}", self.prefix, prefix).into(),
        }
    }
    /// The unscoped barrier, for core modules that serve backends read-only system records
    /// (see `password_policy::lookup`). Never handed to a backend.
    pub(crate) fn system_root(&self) -> View {
        View {
            barrier: self.barrier.clone(),
            prefix: "".into(),
        }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    fn key(&self, k: &str) -> String {
        format!("{}{}", self.prefix, k)
    }
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.barrier.get(&self.key(key)).await
    }
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.barrier
            .write_batch(vec![WriteOp::Put(self.key(key), value)])
            .await
    }
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.barrier
            .write_batch(vec![WriteOp::Delete(self.key(key))])
            .await
    }
    /// Atomic batch; keys are relative to this view.
    pub async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                WriteOp::Put(k, v) => WriteOp::Put(self.key(&k), v),
                WriteOp::Delete(k) => WriteOp::Delete(self.key(&k)),
            })
            .collect();
        self.barrier.write_batch(ops).await
    }
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.barrier.list(&self.key(prefix)).await
    }
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.put(key, serde_json::to_vec(value)?).await
    }
    /// A page of full keys below `prefix` (relative to this view), in order, after `after`.
    pub async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        if self.barrier.is_sealed() {
            return Err(Error::Sealed);
        }
        let full_after = after.map(|a| self.key(a));
        let keys = self
            .barrier
            .storage()
            .scan(&self.key(prefix), full_after.as_deref(), limit)
            .await?;
        Ok(keys
            .into_iter()
            .map(|k| k[self.prefix.len()..].to_string())
            .collect())
    }

    /// Every key below `prefix`, recursively (relative to `prefix`).
    pub async fn list_recursive(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            for child in self.list(&format!("{prefix}{dir}")).await? {
                let full = format!("{dir}{child}");
                if child.ends_with('/') {
                    stack.push(full);
                } else {
                    out.push(full);
                }
            }
        }
        out.sort();
        Ok(out)
    }
    /// Deletes every key below `prefix`.
    pub async fn clear(&self, prefix: &str) -> Result<()> {
        let keys = self.list_recursive(prefix).await?;
        for chunk in keys.chunks(256) {
            self.write_batch(
                chunk
                    .iter()
                    .map(|k| WriteOp::Delete(format!("{prefix}{k}")))
                    .collect(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Standard base64 (Vault's encoding for keys and binary fields).
pub fn b64_encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_storage::memory::MemoryStorage;

    #[tokio::test]
    async fn encrypts_at_rest_and_binds_value_to_key() {
        let storage = Arc::new(MemoryStorage::new());
        let b = Arc::new(Barrier::new(storage.clone()));
        let root = b.initialize().await.unwrap();
        assert!(matches!(b.get("x").await, Err(Error::Sealed)));
        b.unseal(root.clone()).await.unwrap();
        let v = View::new(b.clone(), "logical/1/");
        v.put("secret", b"hunter2".to_vec()).await.unwrap();
        let raw = storage.get("logical/1/secret").await.unwrap().unwrap();
        assert!(!raw.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(v.get("secret").await.unwrap().unwrap(), b"hunter2");
        // A ciphertext moved to another key fails authentication.
        storage.put("logical/1/other", raw).await.unwrap();
        assert!(v.get("other").await.is_err());
    }

    #[tokio::test]
    async fn rotation_keeps_old_data_readable_and_wrong_key_stays_sealed() {
        let storage = Arc::new(MemoryStorage::new());
        let b = Arc::new(Barrier::new(storage.clone()));
        let root = b.initialize().await.unwrap();
        b.unseal(root.clone()).await.unwrap();
        let v = View::new(b.clone(), "");
        v.put("old", b"1".to_vec()).await.unwrap();
        assert_eq!(b.rotate().await.unwrap(), 2);
        v.put("new", b"2".to_vec()).await.unwrap();
        assert_eq!(
            storage.get("new").await.unwrap().unwrap()[1..5],
            2u32.to_be_bytes()
        );
        b.seal();
        assert!(b.unseal(Zeroizing::new(vec![7u8; 32])).await.is_err());
        assert!(b.is_sealed());
        b.unseal(root).await.unwrap();
        assert_eq!(v.get("old").await.unwrap().unwrap(), b"1");
        assert_eq!(v.get("new").await.unwrap().unwrap(), b"2");
    }
}
