//! The token store: every client credential is a token. Tokens are stored only as HMAC-SHA256
//! hashes (keyed by a per-server salt inside the barrier), so a storage dump holds no usable
//! token. Each entry records its parent, so revoking a token revokes its whole child tree.
//!
//! Storage layout (inside the barrier, under `sys/token/`):
//! * `salt`: the HMAC key.
//! * `id/<hash>`: the [`TokenEntry`].
//! * `accessor/<accessor>`: the hash it points to.
//! * `parent/<parent hash>/<child hash>`: the child index, for tree revocation.
//! * `roles/<name>`: token roles.
//! * `expire/<unix time, 20 digits>/<hash>`: the expiry index; [`TokenStore::tick`] reads only
//!   its due page, so expired tokens (and their children and leases) are revoked on time
//!   without loading every token.
//!
//! Batch tokens (`hvb.`, Vault's) are not stored at all: the token is its own entry, sealed by
//! the barrier's active key ([`TokenStore::create`] with [`TokenParams::batch`]), so issuing one
//! costs no storage write and every node with the keyring can read it. They have no accessor,
//! cannot be renewed, revoked, nor create tokens, and die with their TTL or with their parent
//! (checked on every use). Leases they obtain belong to their parent (orphans: to nobody) and
//! last no longer than the token.
//!
//! [`backend`] serves `auth/token/*` on top of this store.

pub mod backend;

use crate::barrier::{random_bytes, View};
use crate::error::{Error, Result};
use crate::util::{random_alnum, unix_now};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tresor_storage::WriteOp;

/// The prefix of service tokens (Vault's `hvs.`, so tools that look at it keep working).
pub const SERVICE_TOKEN_PREFIX: &str = "hvs.";
/// The prefix of batch tokens (Vault's `hvb.`).
pub const BATCH_TOKEN_PREFIX: &str = "hvb.";
/// What a batch token is sealed with as associated data. No storage key holds a NUL, so no
/// stored ciphertext opens as a token, nor a token as a stored entry.
const BATCH_TOKEN_AAD: &str = "\0batch-token/v1";

/// Which kind of token a mount, role or request asks for (Vault's `logical.TokenType`). The
/// `Default*` kinds let the other side choose; see [`TokenType::batch_for_login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Default,
    DefaultService,
    DefaultBatch,
    Service,
    Batch,
}

impl TokenType {
    /// Parses Vault's names (`""` and `default` are [`TokenType::Default`]).
    pub fn parse(s: &str) -> Option<TokenType> {
        Some(match s {
            "" | "default" => TokenType::Default,
            "default-service" => TokenType::DefaultService,
            "default-batch" => TokenType::DefaultBatch,
            "service" => TokenType::Service,
            "batch" => TokenType::Batch,
            _ => return None,
        })
    }

    /// Whether a login on a mount tuned to `self` issues a batch token when the auth method
    /// asked for `asked` (Vault's router: a mount's `service`/`batch` wins, its `default-*`
    /// applies when the method has no preference).
    pub fn batch_for_login(self, asked: TokenType) -> bool {
        use TokenType::*;
        match self {
            Service => false,
            Batch => true,
            Default | DefaultService => matches!(asked, Batch | DefaultBatch),
            DefaultBatch => matches!(asked, Default | DefaultBatch | Batch),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct TokenEntry {
    pub accessor: String,
    /// Hash of the parent token; empty for orphans.
    #[serde(default)]
    pub parent: String,
    pub policies: Vec<String>,
    pub path: String,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// Remaining uses; 0 means unlimited, [`USED_UP`] that the last use is spent and the
    /// token is being revoked (Vault's `tokenRevocationPending`).
    #[serde(default)]
    pub num_uses: i64,
    pub creation_time: i64,
    /// The TTL the token was created (or last renewed) with, seconds; 0 = none.
    pub creation_ttl: u64,
    #[serde(default)]
    pub explicit_max_ttl: u64,
    #[serde(default)]
    pub period: u64,
    /// Unix time when it expires; 0 = never.
    #[serde(default)]
    pub expire_time: i64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub last_renewal_time: i64,
    /// Addresses or CIDR blocks the token may be used from (empty: anywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_cidrs: Vec<String>,
    /// Hash of this token (kept in the entry for revocation bookkeeping).
    pub hash: String,
    /// A batch token: never stored, the token carries this entry sealed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
    /// The audit devices' HMACs of this token and its accessor, made by the first audited
    /// request and kept while the entry is cached (never stored).
    #[serde(skip)]
    pub audit_hashes: crate::audit::TokenHashes,
}

/// What a batch token carries, sealed (short names: it travels in every request).
#[derive(Serialize, Deserialize)]
struct BatchContent {
    #[serde(rename = "p", default, skip_serializing_if = "String::is_empty")]
    parent: String,
    #[serde(rename = "P")]
    policies: Vec<String>,
    #[serde(rename = "a")]
    path: String,
    #[serde(rename = "m", default, skip_serializing_if = "BTreeMap::is_empty")]
    meta: BTreeMap<String, String>,
    #[serde(rename = "d")]
    display_name: String,
    #[serde(rename = "c")]
    creation_time: i64,
    #[serde(rename = "t")]
    ttl: u64,
    #[serde(rename = "e", default, skip_serializing_if = "String::is_empty")]
    entity_id: String,
    #[serde(rename = "r", default, skip_serializing_if = "String::is_empty")]
    role: String,
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    bound_cidrs: Vec<String>,
}

impl TokenEntry {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expire_time != 0 && now >= self.expire_time
    }
    pub fn ttl_remaining(&self, now: i64) -> i64 {
        if self.expire_time == 0 {
            0
        } else {
            (self.expire_time - now).max(0)
        }
    }
    /// Whether the token may be used from `remote` (an IP address).
    pub fn allows_address(&self, remote: Option<&str>) -> bool {
        if self.bound_cidrs.is_empty() {
            return true;
        }
        let Some(ip) = remote.and_then(|r| r.parse::<std::net::IpAddr>().ok()) else {
            return false;
        };
        self.bound_cidrs
            .iter()
            .any(|c| match c.parse::<ipnet::IpNet>() {
                Ok(net) => net.contains(&ip),
                Err(_) => c.parse::<std::net::IpAddr>().is_ok_and(|a| a == ip),
            })
    }

    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
    /// Vault's name of the token's type.
    pub fn type_name(&self) -> &'static str {
        if self.batch {
            "batch"
        } else {
            "service"
        }
    }
    /// The `data` of a lookup answer, in Vault's shape. `id` is the token itself when the caller
    /// supplied it, otherwise empty (we cannot recover it from the hash).
    pub fn lookup_json(&self, id: &str) -> serde_json::Value {
        let now = unix_now();
        serde_json::json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": if self.expire_time == 0 { serde_json::Value::Null } else { serde_json::Value::String(crate::util::rfc3339(self.expire_time)) },
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id,
            "issue_time": crate::util::rfc3339(self.creation_time),
            "last_renewal_time": if self.last_renewal_time == 0 { serde_json::Value::Null } else { serde_json::json!(self.last_renewal_time) },
            "last_renewal": if self.last_renewal_time == 0 { serde_json::Value::Null } else { serde_json::Value::String(crate::util::rfc3339(self.last_renewal_time)) },
            "meta": if self.meta.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.orphan,
            "path": self.path,
            "policies": self.policies,
            "period": if self.period == 0 { serde_json::Value::Null } else { serde_json::json!(self.period) },
            "renewable": self.renewable,
            "role": if self.role.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.role) },
            "ttl": self.ttl_remaining(now),
            "type": self.type_name(),
            "bound_cidrs": if self.bound_cidrs.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.bound_cidrs) },
        })
    }
}

/// What a new token should be.
#[derive(Debug, Clone, Default)]
pub struct TokenParams {
    /// A caller-chosen token value (root only), else random.
    pub id: Option<String>,
    pub parent_hash: String,
    pub policies: Vec<String>,
    pub path: String,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    pub num_uses: i64,
    pub ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub role: String,
    pub bound_cidrs: Vec<String>,
    /// Issue a batch token (see the module doc): no custom id, no uses limit, no period, not
    /// renewable, and a TTL.
    pub batch: bool,
}

/// `num_uses` of a token whose last use is spent: it authenticates nothing more.
pub const USED_UP: i64 = -1;

/// What spending one use of a limited-use token found ([`TokenStore::use_token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A use was spent (or the token has unlimited uses); more remain.
    Granted,
    /// This request spent the last use: serve it, then revoke the token.
    Last,
    /// No use was left (another request spent it first): refuse.
    Exhausted,
}

/// Token entries cached at most (each a few hundred bytes): the tokens in use, not every
/// live one, stay in memory however many millions are stored.
pub const TOKEN_CACHE_LIMIT: usize = 50_000;

pub struct TokenStore {
    view: View,
    salt: hmac::Key,
    /// Entries read lately, by hash; at most `cache_limit` (a full cache drops an arbitrary
    /// one for each it takes).
    cache: RwLock<HashMap<String, Arc<TokenEntry>>>,
    cache_limit: usize,
    /// Bumped (under the cache lock) whenever the cache is dropped: a read that started
    /// before never caches what it read.
    generation: std::sync::atomic::AtomicU64,
    /// A standby's copy: an expired token reads as absent but is not revoked here (revoking
    /// ends its secrets outside Tresor; the active node's expiry does it).
    read_only: std::sync::atomic::AtomicBool,
    /// Revokes the leases a token created, when the token goes.
    leases: std::sync::OnceLock<std::sync::Weak<crate::expiration::LeaseManager>>,
}

fn expire_key(at: i64, hash: &str) -> String {
    format!("expire/{at:020}/{hash}")
}

fn entry_key(hash: &str) -> String {
    format!("id/{hash}")
}

impl TokenStore {
    /// Loads (or creates) the salt and returns the store.
    pub async fn open(view: View) -> Result<Self> {
        let salt = match view.get("salt").await? {
            Some(s) => s,
            None => {
                let s = random_bytes(32);
                view.put("salt", s.clone()).await?;
                s
            }
        };
        Ok(TokenStore {
            view,
            salt: hmac::Key::new(hmac::HMAC_SHA256, &salt),
            cache: RwLock::new(HashMap::new()),
            cache_limit: TOKEN_CACHE_LIMIT,
            generation: Default::default(),
            read_only: Default::default(),
            leases: std::sync::OnceLock::new(),
        })
    }

    /// Connects the lease manager, so that revoking a token revokes its leases.
    pub fn set_lease_manager(&self, leases: std::sync::Weak<crate::expiration::LeaseManager>) {
        let _ = self.leases.set(leases);
    }

    /// Revokes expired tokens (and their trees); called about once a second.
    pub async fn tick(&self) -> Result<usize> {
        let now = unix_now();
        let mut done = 0;
        for k in self.view.scan("expire/", None, 1000).await? {
            let Some((ts, hash)) = k["expire/".len()..].split_once('/') else {
                continue;
            };
            let at = ts.parse::<i64>().unwrap_or(0);
            if at > now {
                break;
            }
            match self.view.get_json::<TokenEntry>(&entry_key(hash)).await? {
                // Renewed since: the index entry is stale.
                Some(e) if e.expire_time != at => self.view.delete(&k).await?,
                Some(_) => {
                    Box::pin(self.revoke_tree(hash)).await?;
                    done += 1;
                }
                None => self.view.delete(&k).await?,
            }
        }
        Ok(done)
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// The storage hash of a token.
    pub fn hash(&self, token: &str) -> String {
        // Every authenticated request hashes its token (`hex::encode` showed at ~3% of one).
        crate::util::hex_lower(hmac::sign(&self.salt, token.as_bytes()).as_ref())
    }

    /// Creates and stores a token (a batch token: seals it, storing nothing); returns the token
    /// value and its entry.
    pub async fn create(&self, p: TokenParams) -> Result<(String, TokenEntry)> {
        if p.batch {
            return self.create_batch(p);
        }
        // A generated token is 24 random characters (~143 bits): only a chosen ID can already
        // exist, so only a chosen ID is looked up first (as Vault does; on a large store the
        // lookup is a read of a random page).
        let chosen = p.id.as_deref().is_some_and(|id| !id.is_empty());
        let token = match p.id {
            Some(id) if !id.is_empty() => {
                // Vault's rules: a chosen ID never looks like a generated (or a batch) token.
                if id.starts_with(SERVICE_TOKEN_PREFIX) {
                    return Err(Error::bad("custom token ID cannot have the 'hvs.' prefix"));
                }
                if id.starts_with("s.") {
                    return Err(Error::bad("custom token ID cannot have the 's.' prefix"));
                }
                if id.contains('.') {
                    return Err(Error::bad("custom token ID cannot have a '.' in the value"));
                }
                id
            }
            _ => format!("{SERVICE_TOKEN_PREFIX}{}", random_alnum(24)),
        };
        let hash = self.hash(&token);
        if chosen && self.view.get(&entry_key(&hash)).await?.is_some() {
            return Err(Error::bad("cannot create a token with a duplicate ID"));
        }
        let now = unix_now();
        let entry = TokenEntry {
            accessor: random_alnum(24),
            orphan: p.parent_hash.is_empty(),
            parent: p.parent_hash,
            policies: p.policies,
            path: p.path,
            meta: p.meta,
            display_name: p.display_name,
            num_uses: p.num_uses,
            creation_time: now,
            creation_ttl: p.ttl,
            explicit_max_ttl: p.explicit_max_ttl,
            period: p.period,
            expire_time: if p.ttl == 0 { 0 } else { now + p.ttl as i64 },
            renewable: p.renewable && p.ttl != 0,
            entity_id: p.entity_id,
            role: p.role,
            last_renewal_time: 0,
            bound_cidrs: p.bound_cidrs,
            hash: hash.clone(),
            batch: false,
            audit_hashes: Default::default(),
        };
        let mut ops = vec![
            WriteOp::Put(entry_key(&hash), serde_json::to_vec(&entry)?),
            WriteOp::Put(
                format!("accessor/{}", entry.accessor),
                hash.as_bytes().to_vec(),
            ),
        ];
        if !entry.parent.is_empty() {
            ops.push(WriteOp::Put(
                format!("parent/{}/{}", entry.parent, hash),
                vec![],
            ));
        }
        if entry.expire_time != 0 {
            ops.push(WriteOp::Put(expire_key(entry.expire_time, &hash), vec![]));
        }
        self.view.write_batch(ops).await?;
        Ok((token, entry))
    }

    fn create_batch(&self, p: TokenParams) -> Result<(String, TokenEntry)> {
        if p.id.as_deref().is_some_and(|id| !id.is_empty()) {
            return Err(Error::bad("batch tokens cannot have a custom ID"));
        }
        if p.num_uses != 0 {
            return Err(Error::bad("batch tokens cannot have \"num_uses\" set"));
        }
        if p.period != 0 {
            return Err(Error::bad("batch tokens cannot have \"period\" set"));
        }
        if p.policies.iter().any(|p| p == "root") {
            return Err(Error::bad("batch tokens cannot be root tokens"));
        }
        if p.ttl == 0 {
            return Err(Error::bad("batch tokens must have a TTL"));
        }
        let content = BatchContent {
            parent: p.parent_hash,
            policies: p.policies,
            path: p.path,
            meta: p.meta,
            display_name: p.display_name,
            creation_time: unix_now(),
            ttl: p.ttl,
            entity_id: p.entity_id,
            role: p.role,
            bound_cidrs: p.bound_cidrs,
        };
        let sealed = self
            .view
            .seal_detached(BATCH_TOKEN_AAD, &serde_json::to_vec(&content)?)?;
        let token = format!("{BATCH_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&sealed));
        let entry = self.batch_entry(&token, content);
        Ok((token, entry))
    }

    fn batch_entry(&self, token: &str, c: BatchContent) -> TokenEntry {
        TokenEntry {
            accessor: String::new(),
            orphan: c.parent.is_empty(),
            parent: c.parent,
            policies: c.policies,
            path: c.path,
            meta: c.meta,
            display_name: c.display_name,
            num_uses: 0,
            creation_time: c.creation_time,
            creation_ttl: c.ttl,
            explicit_max_ttl: 0,
            period: 0,
            expire_time: c.creation_time + c.ttl as i64,
            renewable: false,
            entity_id: c.entity_id,
            role: c.role,
            last_renewal_time: 0,
            bound_cidrs: c.bound_cidrs,
            hash: self.hash(token),
            batch: true,
            audit_hashes: Default::default(),
        }
    }

    /// The entry a batch token carries, if the barrier opens it, it has not expired and its
    /// parent (if any) still lives. Anything else reads as an unknown token.
    async fn lookup_batch(&self, token: &str) -> Result<Option<Arc<TokenEntry>>> {
        let content = token
            .strip_prefix(BATCH_TOKEN_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .and_then(|sealed| self.view.open_detached(BATCH_TOKEN_AAD, &sealed).ok())
            .and_then(|plain| serde_json::from_slice::<BatchContent>(&plain).ok());
        let Some(content) = content else {
            return Ok(None);
        };
        let entry = self.batch_entry(token, content);
        if entry.is_expired(unix_now()) {
            return Ok(None);
        }
        if !entry.parent.is_empty() && self.lookup_hash(&entry.parent).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(Arc::new(entry)))
    }

    /// Makes this a standby's copy (see the field).
    pub fn set_read_only(&self) {
        self.read_only
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// A store caching at most `limit` entries.
    pub fn with_cache_limit(mut self, limit: usize) -> Self {
        self.cache_limit = limit.max(1);
        self
    }

    /// How many entries are cached.
    pub fn cached(&self) -> usize {
        self.cache.read().len()
    }

    /// Drops every cached entry (a standby, after the active node changed tokens).
    pub fn forget_cached(&self) {
        let mut cache = self.cache.write();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        cache.clear();
    }

    /// The live entry for a token hash; expired tokens are revoked on sight and read as absent.
    pub async fn lookup_hash(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>> {
        let cached = self.cache.read().get(hash).cloned();
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let entry = match cached {
            Some(e) => e,
            None => match self.view.get_json::<TokenEntry>(&entry_key(hash)).await? {
                Some(e) => {
                    let e = Arc::new(e);
                    if e.num_uses == 0 {
                        let mut cache = self.cache.write();
                        if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
                            crate::util::insert_bounded(
                                &mut cache,
                                hash.to_string(),
                                e.clone(),
                                self.cache_limit,
                            );
                        }
                    }
                    e
                }
                None => return Ok(None),
            },
        };
        if entry.num_uses == USED_UP {
            return Ok(None);
        }
        if entry.is_expired(unix_now()) {
            if !self.read_only.load(std::sync::atomic::Ordering::Relaxed) {
                Box::pin(self.revoke_tree(hash)).await?;
            }
            return Ok(None);
        }
        Ok(Some(entry))
    }

    pub async fn lookup(&self, token: &str) -> Result<Option<Arc<TokenEntry>>> {
        if token.is_empty() {
            return Ok(None);
        }
        if token.starts_with(BATCH_TOKEN_PREFIX) {
            return self.lookup_batch(token).await;
        }
        self.lookup_hash(&self.hash(token)).await
    }

    pub async fn hash_for_accessor(&self, accessor: &str) -> Result<Option<String>> {
        Ok(self
            .view
            .get(&format!("accessor/{accessor}"))
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<Arc<TokenEntry>>> {
        match self.hash_for_accessor(accessor).await? {
            Some(h) => self.lookup_hash(&h).await,
            None => Ok(None),
        }
    }

    /// Spends one use of a limited-use token, atomically: of N requests racing for a token's
    /// last K uses, exactly K are granted, whichever process serves them. The spender of the
    /// last use marks the token [`USED_UP`] and revokes it after its request ([`Use::Last`]).
    pub async fn use_token(&self, entry: &TokenEntry) -> Result<Use> {
        if entry.num_uses == 0 {
            return Ok(Use::Granted);
        }
        let key = entry_key(&entry.hash);
        self.view
            .update_json::<TokenEntry, _>(&key, |stored| {
                let Some(mut e) = stored else {
                    return Ok((vec![], Use::Exhausted));
                };
                let outcome = match e.num_uses {
                    0 => return Ok((vec![], Use::Granted)),
                    n if n < 0 => return Ok((vec![], Use::Exhausted)),
                    1 => Use::Last,
                    _ => Use::Granted,
                };
                e.num_uses = if outcome == Use::Last {
                    USED_UP
                } else {
                    e.num_uses - 1
                };
                Ok((
                    vec![WriteOp::Put(key.clone(), serde_json::to_vec(&e)?)],
                    outcome,
                ))
            })
            .await
    }

    /// Changes a stored token entry atomically (see [`View::update`]); `None` when the token
    /// is gone. The cached copy is dropped.
    async fn modify(
        &self,
        hash: &str,
        mut change: impl FnMut(&mut TokenEntry) -> Result<Vec<WriteOp>>,
    ) -> Result<Option<TokenEntry>> {
        let key = entry_key(hash);
        let out = self
            .view
            .update_json::<TokenEntry, _>(&key, |stored| {
                let Some(mut e) = stored else {
                    return Ok((vec![], None));
                };
                let mut ops = change(&mut e)?;
                ops.push(WriteOp::Put(key.clone(), serde_json::to_vec(&e)?));
                Ok((ops, Some(e)))
            })
            .await?;
        self.forget(hash);
        Ok(out)
    }

    /// Drops one cached entry; a lookup that read it before this does not cache it again.
    fn forget(&self, hash: &str) {
        let mut cache = self.cache.write();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        cache.remove(hash);
    }

    /// Revokes a token and, recursively, every child it created.
    pub async fn revoke_tree(&self, hash: &str) -> Result<()> {
        // Depth-first, children before parents, so an interrupted revocation leaves no orphan
        // that still thinks it has a parent.
        let mut stack = vec![hash.to_string()];
        let mut order = Vec::new();
        while let Some(h) = stack.pop() {
            for child in self.view.list(&format!("parent/{h}/")).await? {
                stack.push(child.trim_end_matches('/').to_string());
            }
            order.push(h);
        }
        for h in order.iter().rev() {
            self.revoke_one(h).await?;
        }
        Ok(())
    }

    /// Revokes only this token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<()> {
        for child in self.view.list(&format!("parent/{hash}/")).await? {
            let child = child.trim_end_matches('/');
            self.modify(child, |e| {
                e.parent.clear();
                e.orphan = true;
                Ok(vec![])
            })
            .await?;
        }
        self.revoke_one(hash).await
    }

    async fn revoke_one(&self, hash: &str) -> Result<()> {
        self.forget(hash);
        let Some(e) = self.view.get_json::<TokenEntry>(&entry_key(hash)).await? else {
            return Ok(());
        };
        if let Some(leases) = self.leases.get().and_then(|w| w.upgrade()) {
            leases.revoke_by_token(hash).await?;
        }
        let mut ops = vec![
            WriteOp::Delete(entry_key(hash)),
            WriteOp::Delete(format!("accessor/{}", e.accessor)),
        ];
        if e.expire_time != 0 {
            ops.push(WriteOp::Delete(expire_key(e.expire_time, hash)));
        }
        if !e.parent.is_empty() {
            ops.push(WriteOp::Delete(format!("parent/{}/{}", e.parent, hash)));
        }
        for child in self.view.list(&format!("parent/{hash}/")).await? {
            ops.push(WriteOp::Delete(format!("parent/{hash}/{child}")));
        }
        self.view.write_batch(ops).await?;
        // Again: a lookup during the revocation may have read the entry before it went.
        self.forget(hash);
        Ok(())
    }

    /// Extends a token's life: `increment` seconds (or its original TTL), bounded by its
    /// explicit max TTL and the token mount's max; periodic tokens renew to their period (also
    /// bounded by the max).
    pub async fn renew(
        &self,
        hash: &str,
        increment: u64,
        limits: crate::ttl::TtlLimits,
    ) -> Result<TokenEntry> {
        let max_ttl = limits.max_ttl;
        let now = unix_now();
        let renewed = self
            .modify(hash, |e| {
                if e.is_expired(now) || e.num_uses == USED_UP {
                    return Err(Error::bad("token not found"));
                }
                if !e.renewable {
                    return Err(Error::bad("lease is not renewable"));
                }
                let mut ttl = if e.period > 0 {
                    // A period never renews past the token mount's max.
                    if max_ttl > 0 {
                        e.period.min(max_ttl)
                    } else {
                        e.period
                    }
                } else if increment > 0 {
                    increment
                } else {
                    e.creation_ttl
                };
                if max_ttl > 0 && e.period == 0 {
                    let ceiling = (e.creation_time + max_ttl as i64 - now).max(0) as u64;
                    ttl = ttl.min(ceiling);
                }
                if e.explicit_max_ttl > 0 {
                    let ceiling = (e.creation_time + e.explicit_max_ttl as i64 - now).max(0) as u64;
                    ttl = ttl.min(ceiling);
                }
                let old_expire = e.expire_time;
                e.expire_time = now + ttl as i64;
                e.last_renewal_time = now;
                if old_expire == e.expire_time {
                    return Ok(vec![]);
                }
                Ok(vec![
                    WriteOp::Delete(expire_key(old_expire, &e.hash)),
                    WriteOp::Put(expire_key(e.expire_time, &e.hash), vec![]),
                ])
            })
            .await?;
        renewed.ok_or_else(|| Error::bad("token not found"))
    }

    /// Every accessor (for `LIST auth/token/accessors`).
    pub async fn accessors(&self) -> Result<Vec<String>> {
        self.view.list("accessor/").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Barrier;
    use tresor_storage::memory::MemoryStorage;

    /// However many tokens are used, the cache keeps at most its limit; every token still
    /// looks up (from storage when it is not cached).
    #[tokio::test]
    async fn the_token_cache_stays_within_its_limit() {
        let barrier = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
        let root = barrier.initialize().await.unwrap();
        barrier.unseal(root).await.unwrap();
        let store = TokenStore::open(View::new(barrier, "sys/token/"))
            .await
            .unwrap()
            .with_cache_limit(8);
        let mut tokens = Vec::new();
        for i in 0..30 {
            let (token, _) = store
                .create(TokenParams {
                    policies: vec!["default".into()],
                    display_name: format!("t{i}"),
                    ttl: 3600,
                    ..Default::default()
                })
                .await
                .unwrap();
            tokens.push(token);
        }
        for _ in 0..2 {
            for (i, t) in tokens.iter().enumerate() {
                let e = store.lookup(t).await.unwrap().expect("a live token");
                assert_eq!(e.display_name, format!("t{i}"));
                assert!(store.cached() <= 8, "{} cached", store.cached());
            }
        }
        assert_eq!(store.cached(), 8);
    }
}
