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
//! Check-then-act on stored state goes through [`View::update`] (or [`View::get_stamped`] with
//! [`View::write_batch_if`]): the write is applied only if the key still holds the exact
//! ciphertext that was read, checked by the storage backend inside its own transaction, so it
//! holds across tasks, and across server processes sharing one database. A loser re-reads.
//!
//! Why aws-lc-rs: one audited, FIPS-validated library covers AEAD, HMAC, digests, randomness and
//! the asymmetric algorithms the transit and PKI engines need; rustls uses it too.

use crate::error::{Error, Result};
use crate::metrics::BarrierOp;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use parking_lot::RwLock;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::Arc;
use tresor_storage::{Expect, Storage, StorageError, WriteOp};
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
    /// Encryptions made with this term, as last recorded (the running count is in memory
    /// and recorded every few minutes: a crash loses at most that much of it).
    #[serde(default)]
    pub encryptions: u64,
}

/// Automatic rotation of the barrier key (`sys/rotate/config`), with Vault's defaults and
/// limits: after `max_operations` encryptions with one term (AES-GCM's safe bound for random
/// nonces is far above the default), or once the term is `interval_secs` old.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationConfig {
    pub max_operations: u64,
    /// 0: no age limit.
    pub interval_secs: u64,
    pub enabled: bool,
}

impl RotationConfig {
    pub const MAX_OPERATIONS: u64 = 3_865_470_566;
    pub const MIN_OPERATIONS: u64 = 1_000_000;
    pub const MIN_INTERVAL_SECS: u64 = 24 * 3600;

    pub fn validate(&self) -> Result<()> {
        if self.interval_secs != 0 && self.interval_secs < Self::MIN_INTERVAL_SECS {
            return Err(Error::bad("interval must be greater or equal to 24h0m0s"));
        }
        if !(Self::MIN_OPERATIONS..=Self::MAX_OPERATIONS).contains(&self.max_operations) {
            return Err(Error::bad(format!(
                "max_operations must be in the range [{},{}]",
                Self::MIN_OPERATIONS,
                Self::MAX_OPERATIONS
            )));
        }
        Ok(())
    }

    /// Why the active term is due for rotation at `now` (Unix seconds), if it is.
    pub fn due(&self, term: &KeyTerm, encryptions: u64, now: i64) -> Option<&'static str> {
        if !self.enabled {
            return None;
        }
        if encryptions > self.max_operations {
            return Some("reached max operations");
        }
        let installed = time::OffsetDateTime::parse(
            &term.install_time,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?
        .unix_timestamp();
        (self.interval_secs > 0 && now - installed > self.interval_secs as i64)
            .then_some("rotation interval reached")
    }
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_operations: Self::MAX_OPERATIONS,
            interval_secs: 0,
            enabled: true,
        }
    }
}

/// The data-encryption keys, by term.
#[derive(Clone, Serialize, Deserialize)]
pub struct Keyring {
    pub terms: Vec<KeyTerm>,
    pub active_term: u32,
    #[serde(default)]
    pub rotation: RotationConfig,
}

impl Keyring {
    pub fn new() -> Self {
        Keyring {
            terms: vec![KeyTerm {
                term: 1,
                key: Zeroizing::new(random_bytes(32)),
                install_time: crate::util::now_rfc3339(),
                encryptions: 0,
            }],
            active_term: 1,
            rotation: RotationConfig::default(),
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
    /// Encryptions with the active term not yet recorded in the keyring.
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
    /// Encryptions with the active term: recorded plus running.
    fn term_encryptions(&self) -> u64 {
        self.keyring.active().encryptions
            + self.encryptions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The keyring with the running count added to the active term's recorded one.
    fn keyring_with_counts(&self) -> Keyring {
        let mut k = self.keyring.clone();
        let running = self.encryptions.load(std::sync::atomic::Ordering::Relaxed);
        let active = k.active_term;
        if let Some(t) = k.terms.iter_mut().find(|t| t.term == active) {
            t.encryptions += running;
        }
        k
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
    /// Serializes changes to the stored keyring (rotation, its config, recorded counts).
    keyring_write: tokio::sync::Mutex<()>,
    /// `vault.barrier.*` timings.
    metrics: Arc<crate::metrics::Metrics>,
}

impl Barrier {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self::with_metrics(storage, Default::default())
    }

    /// A barrier that times its storage operations into `metrics`.
    pub fn with_metrics(storage: Arc<dyn Storage>, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Barrier {
            storage,
            state: RwLock::new(None),
            keyring_write: tokio::sync::Mutex::new(()),
            metrics,
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
        let unsealed = self.read_keyring(root_key).await?;
        *self.state.write() = Some(unsealed);
        Ok(())
    }

    /// The stored keyring, opened with `root_key`.
    async fn read_keyring(&self, root_key: Zeroizing<Vec<u8>>) -> Result<Unsealed> {
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
        Unsealed::new(keyring, root_key)
    }

    pub fn seal(&self) {
        *self.state.write() = None;
    }

    /// Re-reads the keyring with the root key this barrier was unsealed with: another node on
    /// the same storage may have rotated it (an HA node calls this when it becomes active).
    pub async fn reload_keyring(&self) -> Result<()> {
        let fresh = self.read_keyring(self.root_key()?).await?;
        // Installed only if still unsealed: a seal while the keyring was read stays a seal.
        let mut state = self.state.write();
        if state.is_none() {
            return Err(Error::Sealed);
        }
        *state = Some(fresh);
        Ok(())
    }

    /// Adds a new key term and makes it active (`sys/rotate`).
    pub async fn rotate(&self) -> Result<u32> {
        let _writing = self.keyring_write.lock().await;
        let (keyring, root) = {
            let st = self.state.read();
            let u = st.as_ref().ok_or(Error::Sealed)?;
            let mut k = u.keyring_with_counts();
            let term = k.active_term + 1;
            k.terms.push(KeyTerm {
                term,
                key: Zeroizing::new(random_bytes(32)),
                install_time: crate::util::now_rfc3339(),
                encryptions: 0,
            });
            k.active_term = term;
            (k, u.root_key.clone())
        };
        self.store_keyring(&keyring, &root).await?;
        let term = keyring.active_term;
        *self.state.write() = Some(Unsealed::new(keyring, root)?);
        Ok(term)
    }

    pub fn rotation_config(&self) -> Result<RotationConfig> {
        let st = self.state.read();
        Ok(st.as_ref().ok_or(Error::Sealed)?.keyring.rotation.clone())
    }

    /// Stores a new automatic-rotation config (`sys/rotate/config`).
    pub async fn set_rotation_config(&self, config: RotationConfig) -> Result<()> {
        config.validate()?;
        self.update_keyring(|k| k.rotation = config).await
    }

    /// Rotates the key if its config says it is due at `now` (Unix seconds); otherwise
    /// records the running encryption count when `record_count`. The reason, if rotated.
    pub async fn rotate_if_due(
        &self,
        now: i64,
        record_count: bool,
    ) -> Result<Option<&'static str>> {
        let reason = {
            let st = self.state.read();
            let u = st.as_ref().ok_or(Error::Sealed)?;
            let k = &u.keyring;
            k.rotation.due(k.active(), u.term_encryptions(), now)
        };
        if let Some(reason) = reason {
            self.rotate().await?;
            return Ok(Some(reason));
        }
        let unrecorded = self.state.read().as_ref().map_or(0, |u| {
            u.encryptions.load(std::sync::atomic::Ordering::Relaxed)
        });
        if record_count && unrecorded > 0 {
            self.update_keyring(|_| {}).await?;
        }
        Ok(None)
    }

    /// Applies `change` to the keyring (with the running encryption count recorded), stores
    /// it, and installs it.
    async fn update_keyring(&self, change: impl FnOnce(&mut Keyring)) -> Result<()> {
        let _writing = self.keyring_write.lock().await;
        let (keyring, root, counted) = {
            let st = self.state.read();
            let u = st.as_ref().ok_or(Error::Sealed)?;
            let counted = u.encryptions.load(std::sync::atomic::Ordering::Relaxed);
            let mut k = u.keyring_with_counts();
            change(&mut k);
            (k, u.root_key.clone(), counted)
        };
        self.store_keyring(&keyring, &root).await?;
        let mut st = self.state.write();
        let u = st.as_mut().ok_or(Error::Sealed)?;
        // Encryptions made meanwhile stay counted.
        u.encryptions
            .fetch_sub(counted, std::sync::atomic::Ordering::Relaxed);
        u.keyring = keyring;
        Ok(())
    }

    /// The active term, its install time, and how many encryptions it has made (Vault
    /// reports the count in `sys/key-status`).
    pub fn key_status(&self) -> Result<(u32, String, u64)> {
        let st = self.state.read();
        let u = st.as_ref().ok_or(Error::Sealed)?;
        let a = u.keyring.active();
        Ok((a.term, a.install_time.clone(), u.term_encryptions()))
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

    /// The sealed bytes stored at `key` (refused while sealed; timed as a barrier get).
    async fn fetch(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        let started = std::time::Instant::now();
        let stored = self.storage.get(key).await;
        self.metrics
            .barrier(BarrierOp::Get)
            .observe(started.elapsed());
        Ok(stored?)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.fetch(key).await? {
            Some(v) => Ok(Some(self.decrypt(key, &v)?)),
            None => Ok(None),
        }
    }

    /// [`Barrier::get`] through a [`DecodedCache`]: the stored bytes are fetched as always,
    /// and decrypted and decoded only when they are not the ones the cached copy came from.
    pub async fn get_decoded<T>(
        &self,
        key: &str,
        cache: &DecodedCache<T>,
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Option<Arc<T>>> {
        let Some(sealed) = self.fetch(key).await? else {
            cache.forget(key);
            return Ok(None);
        };
        if let Some(hit) = cache.lookup(key, &sealed) {
            return Ok(Some(hit));
        }
        let value = Arc::new(decode(&self.decrypt(key, &sealed)?)?);
        cache.keep(key, sealed, value.clone());
        Ok(Some(value))
    }

    pub async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        match self.write_batch_if(Vec::new(), ops).await? {
            true => Ok(()),
            false => Err(Error::internal("unconditional batch reported a conflict")),
        }
    }

    /// The stored (encrypted) bytes of `key` and their plaintext.
    async fn get_stamped(&self, key: &str) -> Result<(Option<Vec<u8>>, Stamp)> {
        let raw = self.fetch(key).await?;
        let plain = raw.as_ref().map(|r| self.decrypt(key, r)).transpose()?;
        Ok((
            plain,
            Stamp(Expect {
                key: key.to_string(),
                value: raw,
            }),
        ))
    }

    /// Encrypts and applies `ops` if every expectation still holds; `Ok(false)` (nothing
    /// applied) when another writer changed one of those keys first.
    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<WriteOp>) -> Result<bool> {
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
        let op = if ops.iter().all(|op| matches!(op, WriteOp::Delete(_))) {
            BarrierOp::Delete
        } else {
            BarrierOp::Put
        };
        let started = std::time::Instant::now();
        let written = self.storage.write_batch_if(expect, ops).await;
        self.metrics.barrier(op).observe(started.elapsed());
        match written {
            Ok(()) => Ok(true),
            Err(StorageError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_page(prefix, None, usize::MAX).await
    }

    /// A page of `prefix`'s children: see [`Storage::list_page`].
    pub async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        let started = std::time::Instant::now();
        let listed = self.storage.list_page(prefix, after, limit).await;
        self.metrics
            .barrier(BarrierOp::List)
            .observe(started.elapsed());
        Ok(listed?)
    }
}

/// What one key held when it was read ([`View::get_stamped`]), for a write that must not
/// overwrite anything written since ([`View::write_batch_if`]).
#[derive(Clone, Debug)]
pub struct Stamp(Expect);

/// Decoded copies of records that a backend reads often and that hold no secret (KV v2's key
/// metadata), each kept with the sealed bytes it was decoded from. A read through
/// [`View::get_decoded`] still fetches the entry from storage, so it sees every write (this
/// node's, another HA node's, a restore's), and skips decryption and decoding only when the
/// fetched bytes are the kept ones: each seal draws a fresh nonce, so a rewritten entry never
/// repeats its bytes. Not for secrets: a cached copy stays in memory until it is replaced.
pub struct DecodedCache<T> {
    /// Storage key -> (the sealed bytes, what they decode to).
    entries: RwLock<std::collections::HashMap<Box<str>, Decoded<T>>>,
    limit: usize,
}

type Decoded<T> = (Box<[u8]>, Arc<T>);

impl<T> DecodedCache<T> {
    /// A cache of at most `limit` entries; past that, an arbitrary one makes room.
    pub fn new(limit: usize) -> Self {
        DecodedCache {
            entries: RwLock::new(std::collections::HashMap::new()),
            limit,
        }
    }

    fn lookup(&self, key: &str, sealed: &[u8]) -> Option<Arc<T>> {
        let entries = self.entries.read();
        let (kept, value) = entries.get(key)?;
        (**kept == *sealed).then(|| value.clone())
    }

    fn keep(&self, key: &str, sealed: Vec<u8>, value: Arc<T>) {
        if self.limit == 0 {
            return;
        }
        crate::util::insert_bounded(
            &mut self.entries.write(),
            key.into(),
            (sealed.into_boxed_slice(), value),
            self.limit,
        );
    }

    fn forget(&self, key: &str) {
        if self.entries.read().contains_key(key) {
            self.entries.write().remove(key);
        }
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many times [`View::update`] re-reads after losing a race before it gives up. Every
/// round has a winner, so this bounds the number of writers racing on one key, not the time.
const MAX_UPDATE_ATTEMPTS: u32 = 1000;

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
    /// Seals bytes that are not stored (batch tokens) with the barrier's active key, bound to
    /// `context` as associated data. Core only: a backend could otherwise mint ciphertexts
    /// for another context.
    pub(crate) fn seal_detached(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.barrier.encrypt(context, plaintext)
    }
    /// Opens what [`View::seal_detached`] sealed for the same `context`.
    pub(crate) fn open_detached(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        self.barrier.decrypt(context, sealed)
    }
    fn key(&self, k: &str) -> String {
        [&*self.prefix, k].concat()
    }
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.barrier.get(&self.key(key)).await
    }
    /// Reads and decodes `key` through `cache` (see [`DecodedCache`]).
    pub async fn get_decoded<T>(
        &self,
        key: &str,
        cache: &DecodedCache<T>,
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Option<Arc<T>>> {
        self.barrier
            .get_decoded(&self.key(key), cache, decode)
            .await
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
    fn scoped(&self, ops: Vec<WriteOp>) -> Vec<WriteOp> {
        ops.into_iter()
            .map(|op| match op {
                WriteOp::Put(k, v) => WriteOp::Put(self.key(&k), v),
                WriteOp::Delete(k) => WriteOp::Delete(self.key(&k)),
            })
            .collect()
    }
    /// Atomic batch; keys are relative to this view.
    pub async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.barrier.write_batch(self.scoped(ops)).await
    }

    /// Reads a key together with a [`Stamp`] of what it held.
    pub async fn get_stamped(&self, key: &str) -> Result<(Option<Vec<u8>>, Stamp)> {
        self.barrier.get_stamped(&self.key(key)).await
    }

    /// Applies the batch (keys relative to this view) only if every stamped key still holds
    /// what it held when read; `Ok(false)`, with nothing applied, if another writer (a task
    /// here or another process on the same database) changed one first.
    pub async fn write_batch_if(&self, stamps: &[Stamp], ops: Vec<WriteOp>) -> Result<bool> {
        let expect = stamps.iter().map(|s| s.0.clone()).collect();
        self.barrier.write_batch_if(expect, self.scoped(ops)).await
    }

    /// An atomic read-modify-write of `key`: `decide` sees the current value and returns the
    /// writes to make (keys relative to this view; any keys, applied in one batch) and the
    /// result. The writes land only if `key` is unchanged since the read; otherwise the value
    /// is read again and `decide` runs again. No writes: nothing is stored, the result stands.
    ///
    /// This is the mechanism behind every check-then-spend (use counts, single-use tokens,
    /// nonces): exactly one of several racing spenders sees each value.
    pub async fn update<T>(
        &self,
        key: &str,
        mut decide: impl FnMut(Option<&[u8]>) -> Result<(Vec<WriteOp>, T)>,
    ) -> Result<T> {
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            let (value, stamp) = self.get_stamped(key).await?;
            let (ops, out) = decide(value.as_deref())?;
            if ops.is_empty() || self.write_batch_if(&[stamp], ops).await? {
                return Ok(out);
            }
            contention_backoff(attempt).await;
        }
        Err(Error::internal(format!(
            "too many concurrent writes to {}{key}",
            self.prefix
        )))
    }

    /// [`View::update`] on a JSON value.
    pub async fn update_json<S: DeserializeOwned, T>(
        &self,
        key: &str,
        mut decide: impl FnMut(Option<S>) -> Result<(Vec<WriteOp>, T)>,
    ) -> Result<T> {
        self.update(key, |v| decide(v.map(serde_json::from_slice).transpose()?))
            .await
    }

    /// Removes `key` and returns what it held, atomically: of several concurrent takers (in
    /// any process on the same storage), exactly one gets the value.
    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.update(key, |v| match v {
            Some(v) => Ok((vec![WriteOp::Delete(key.to_string())], Some(v.to_vec()))),
            None => Ok((vec![], None)),
        })
        .await
    }

    /// [`View::take`] of a JSON value.
    pub async fn take_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.take(key).await? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.barrier.list(&self.key(prefix)).await
    }
    /// Up to `limit` children of `prefix` after the child `after`: a bounded page however
    /// large the folder (see [`Storage::list_page`]).
    pub async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.barrier
            .list_page(&self.key(prefix), after, limit)
            .await
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

/// After losing a race: yield at first, then sleep a short random while (so that racers that
/// keep colliding spread out).
async fn contention_backoff(attempt: u32) {
    if attempt < 2 {
        tokio::task::yield_now().await;
        return;
    }
    let ceiling_us = 100u64 << attempt.min(6);
    let jitter = u64::from_le_bytes(random_bytes(8).try_into().expect("8 bytes"));
    tokio::time::sleep(std::time::Duration::from_micros(jitter % ceiling_us)).await;
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
    async fn decoded_cache_sees_every_write_and_decodes_once_per_stored_version() {
        let storage = Arc::new(MemoryStorage::new());
        let a = Arc::new(Barrier::new(storage.clone()));
        let root = a.initialize().await.unwrap();
        a.unseal(root.clone()).await.unwrap();
        // A second node on the same storage (as HA standbys and peers are).
        let b = Arc::new(Barrier::new(storage.clone()));
        b.unseal(root).await.unwrap();
        let (va, vb) = (View::new(a, "m/"), View::new(b, "m/"));
        let cache = DecodedCache::new(2);
        let decodes = std::sync::atomic::AtomicUsize::new(0);
        let read = |key: &'static str| {
            va.get_decoded(key, &cache, |raw| {
                decodes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(String::from_utf8(raw.to_vec()).unwrap())
            })
        };
        let decoded = || decodes.load(std::sync::atomic::Ordering::SeqCst);

        assert_eq!(read("k").await.unwrap(), None);
        vb.put("k", b"one".to_vec()).await.unwrap();
        assert_eq!(read("k").await.unwrap().as_deref().unwrap(), "one");
        assert_eq!(read("k").await.unwrap().as_deref().unwrap(), "one");
        assert_eq!(decoded(), 1, "the second read is served from the cache");
        // The other node rewrites the key, even with the same content: a fresh read.
        vb.put("k", b"one".to_vec()).await.unwrap();
        assert_eq!(read("k").await.unwrap().as_deref().unwrap(), "one");
        assert_eq!(decoded(), 2);
        vb.put("k", b"two".to_vec()).await.unwrap();
        assert_eq!(read("k").await.unwrap().as_deref().unwrap(), "two");
        // Deleted elsewhere: gone here too, and forgotten.
        vb.delete("k").await.unwrap();
        assert_eq!(read("k").await.unwrap(), None);
        assert!(cache.is_empty());
        // Bytes changed under the barrier fail authentication, never read as the cached value.
        vb.put("k", b"three".to_vec()).await.unwrap();
        assert_eq!(read("k").await.unwrap().as_deref().unwrap(), "three");
        let mut sealed = storage.get("m/k").await.unwrap().unwrap();
        *sealed.last_mut().unwrap() ^= 1;
        storage.put("m/k", sealed).await.unwrap();
        assert!(read("k").await.is_err());
        // Bounded: a third key makes room.
        for k in ["x", "y", "z"] {
            vb.put(k, k.as_bytes().to_vec()).await.unwrap();
        }
        for k in ["x", "y", "z"] {
            assert_eq!(read(k).await.unwrap().as_deref().unwrap(), k);
        }
        assert_eq!(cache.len(), 2);
        // Sealed: refused, cached or not.
        va.barrier.seal();
        assert!(matches!(read("z").await, Err(Error::Sealed)));
    }

    #[tokio::test]
    async fn rotates_automatically_by_age_and_by_count_and_keeps_counts() {
        let storage = Arc::new(MemoryStorage::new());
        let b = Barrier::new(storage.clone());
        let root = b.initialize().await.unwrap();
        b.unseal(root.clone()).await.unwrap();
        let now = crate::util::unix_now();
        // Defaults: no age limit; nothing is due.
        assert_eq!(b.rotation_config().unwrap(), RotationConfig::default());
        assert_eq!(
            b.rotate_if_due(now + 400 * 86400, false).await.unwrap(),
            None
        );
        // Out-of-range configs are refused and change nothing.
        for bad in [
            RotationConfig {
                interval_secs: 3600,
                ..Default::default()
            },
            RotationConfig {
                max_operations: 10,
                ..Default::default()
            },
            RotationConfig {
                max_operations: RotationConfig::MAX_OPERATIONS + 1,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                b.set_rotation_config(bad).await,
                Err(Error::BadRequest(_))
            ));
        }
        assert_eq!(b.rotation_config().unwrap(), RotationConfig::default());
        // By age: due once the term is older than the interval.
        let daily = RotationConfig {
            interval_secs: 86400,
            ..Default::default()
        };
        b.set_rotation_config(daily.clone()).await.unwrap();
        assert_eq!(b.rotate_if_due(now + 3600, false).await.unwrap(), None);
        assert_eq!(
            b.rotate_if_due(now + 86400 + 60, false).await.unwrap(),
            Some("rotation interval reached")
        );
        assert_eq!(b.key_status().unwrap().0, 2);
        // Disabled: never due.
        b.set_rotation_config(RotationConfig {
            enabled: false,
            ..daily
        })
        .await
        .unwrap();
        assert_eq!(
            b.rotate_if_due(now + 10 * 86400, false).await.unwrap(),
            None
        );
        // Counts are recorded in the stored keyring (a reload or another node sees them),
        // and the config survives rotation and reload.
        for i in 0..5 {
            b.encrypt("k", &[i]).unwrap();
        }
        b.rotate_if_due(now, true).await.unwrap();
        b.reload_keyring().await.unwrap();
        assert_eq!(b.key_status().unwrap().2, 5);
        assert!(!b.rotation_config().unwrap().enabled);
        // By count: past max_operations.
        let term = KeyTerm {
            encryptions: RotationConfig::MIN_OPERATIONS + 1,
            ..b.state.read().as_ref().unwrap().keyring.active().clone()
        };
        let by_count = RotationConfig {
            max_operations: RotationConfig::MIN_OPERATIONS,
            ..Default::default()
        };
        assert_eq!(
            by_count.due(&term, term.encryptions, now),
            Some("reached max operations")
        );
        assert_eq!(by_count.due(&term, 10, now), None);
    }

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

    /// Racing spenders of one counter through two views over one file store (as two server
    /// processes on one database would be): every use is handed out exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn update_hands_out_each_use_once() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> =
            Arc::new(tresor_storage::file::FileStorage::open(dir.path()).unwrap());
        let b1 = Arc::new(Barrier::new(storage.clone()));
        let root = b1.initialize().await.unwrap();
        b1.unseal(root.clone()).await.unwrap();
        let b2 = Arc::new(Barrier::new(storage.clone()));
        b2.unseal(root).await.unwrap();
        let views = [View::new(b1, "p/"), View::new(b2, "p/")];
        for trial in 0..20u32 {
            let uses = 1 + trial % 5;
            views[0]
                .put("uses", uses.to_be_bytes().to_vec())
                .await
                .unwrap();
            let mut tasks = Vec::new();
            for i in 0..20 {
                let v = views[i % 2].clone();
                tasks.push(tokio::spawn(async move {
                    v.update("uses", |cur| {
                        let n = u32::from_be_bytes(cur.unwrap().try_into().unwrap());
                        if n == 0 {
                            return Ok((vec![], false));
                        }
                        let put = WriteOp::Put("uses".into(), (n - 1).to_be_bytes().to_vec());
                        Ok((vec![put], true))
                    })
                    .await
                    .unwrap()
                }));
            }
            let mut spent = 0;
            for t in tasks {
                spent += u32::from(t.await.unwrap());
            }
            assert_eq!(spent, uses, "trial {trial}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn take_gives_the_value_to_exactly_one_taker() {
        let storage = Arc::new(MemoryStorage::new());
        let b = Arc::new(Barrier::new(storage));
        let root = b.initialize().await.unwrap();
        b.unseal(root).await.unwrap();
        let v = View::new(b, "w/");
        for _ in 0..50 {
            v.put("once", b"secret".to_vec()).await.unwrap();
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let v = v.clone();
                tasks.push(tokio::spawn(async move { v.take("once").await.unwrap() }));
            }
            let mut got = 0;
            for t in tasks {
                if let Some(value) = t.await.unwrap() {
                    assert_eq!(value, b"secret");
                    got += 1;
                }
            }
            assert_eq!(got, 1);
            assert_eq!(v.get("once").await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn conditional_write_refuses_a_stale_stamp() {
        let b = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
        let root = b.initialize().await.unwrap();
        b.unseal(root).await.unwrap();
        let v = View::new(b, "s/");
        let (none, absent) = v.get_stamped("k").await.unwrap();
        assert_eq!(none, None);
        v.put("k", b"1".to_vec()).await.unwrap();
        let (one, stamp) = v.get_stamped("k").await.unwrap();
        assert_eq!(one.as_deref(), Some(&b"1"[..]));
        // Written since the stamp was taken (even with the same plaintext): refused.
        v.put("k", b"1".to_vec()).await.unwrap();
        for stale in [&absent, &stamp] {
            let put = vec![WriteOp::Put("k".into(), b"2".to_vec())];
            assert!(!v
                .write_batch_if(std::slice::from_ref(stale), put)
                .await
                .unwrap());
        }
        assert_eq!(v.get("k").await.unwrap().unwrap(), b"1");
        let (_, fresh) = v.get_stamped("k").await.unwrap();
        let put = vec![WriteOp::Put("k".into(), b"2".to_vec())];
        assert!(v.write_batch_if(&[fresh], put).await.unwrap());
        assert_eq!(v.get("k").await.unwrap().unwrap(), b"2");
    }
}
