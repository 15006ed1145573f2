//! The identity store: entities (one per person or machine), their aliases (who they are on
//! each auth mount), groups (internal, with explicit members and sub-groups; or external, whose
//! members an auth method asserts at login through group aliases), and Vault's OIDC identity
//! token provider. [`backend`] serves it as Vault's `identity/` API; the core calls
//! [`IdentityStore::resolve_login`] on every login, and [`IdentityStore::policies`] /
//! [`IdentityStore::expand_policy`] when it builds a token's ACL.
//!
//! Storage layout (inside the barrier view the core passes, `sys/identity/`). Every record and
//! index is its own key, so a login or an ACL build is a handful of gets, never a scan:
//! * `entity/<id>`: the [`Entity`], with its aliases embedded and the ids of the groups that
//!   list it as a member (the entity → groups index).
//! * `entity-name/<hex of lowercased name>` → entity id (names are case-insensitive, as in Vault).
//! * `entity-merged/<old id>` → the id it was merged into (tokens of a merged entity keep working).
//! * `alias/<alias id>` → entity id.
//! * `alias-name/<hex accessor>/<hex lowercased name>` → entity id.
//! * `group/<id>`: the [`Group`], with its alias, `member_group_ids` and the reverse
//!   `parent_group_ids`.
//! * `group-name/<hex>` → group id; `group-alias/<alias id>` → group id;
//!   `group-alias-name/<hex accessor>/<hex name>` → group id.
//! * `oidc/config`, `oidc/key/<name>`, `oidc/role/<name>`: see [`oidc`].
//!
//! Writes are serialized by one lock and committed as one atomic batch (records and indexes
//! together). Reads go through a small cache of raw records, invalidated on every commit.

mod backend;
mod oidc;
mod template;

pub use backend::{backend, Identity};

use crate::barrier::View;
use crate::error::{Error, Result};
use crate::mount::MountEntry;
use crate::util::{now_rfc3339, uuid};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tresor_storage::WriteOp;

/// Resolves an auth mount accessor to its mount entry (`None`: no such mount). The core
/// installs one with [`IdentityStore::set_mount_resolver`]; without it every accessor is
/// accepted and aliases report no mount path or type.
pub type MountResolver = Arc<dyn Fn(&str) -> Option<MountEntry> + Send + Sync>;

/// Vault reports every identity object in the root namespace.
pub(crate) const NAMESPACE_ID: &str = "root";

/// Raw records cached in memory before the cache is simply dropped and refilled.
const CACHE_MAX: usize = 50_000;

/// Who someone is on one auth mount (an entity alias), or which external group name an auth
/// mount asserts (a group alias).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Alias {
    pub id: String,
    /// The entity (or group) it belongs to.
    pub canonical_id: String,
    pub name: String,
    pub mount_accessor: String,
    /// The mount's type and route prefix when the alias was written (reads ask the mount table).
    #[serde(default)]
    pub mount_type: String,
    #[serde(default)]
    pub mount_path: String,
    /// Set by the auth method at login.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Set through the API.
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
    pub creation_time: String,
    pub last_update_time: String,
    #[serde(default)]
    pub merged_from_canonical_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Entity {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
    pub creation_time: String,
    pub last_update_time: String,
    #[serde(default)]
    pub merged_entity_ids: Vec<String>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
    /// Groups that list this entity in `member_entity_ids` (kept in step by the store).
    #[serde(default)]
    pub group_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub id: String,
    pub name: String,
    /// `internal` or `external`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub member_entity_ids: Vec<String>,
    /// Sub-groups: their members inherit this group's policies.
    #[serde(default)]
    pub member_group_ids: Vec<String>,
    /// Groups that list this one in `member_group_ids` (kept in step by the store).
    #[serde(default)]
    pub parent_group_ids: Vec<String>,
    /// External groups only.
    #[serde(default)]
    pub alias: Option<Alias>,
    pub creation_time: String,
    pub last_update_time: String,
    #[serde(default)]
    pub modify_index: u64,
}

impl Group {
    pub fn is_external(&self) -> bool {
        self.kind == "external"
    }
}

fn hex_lower(s: &str) -> String {
    hex::encode(s.to_lowercase())
}
fn entity_key(id: &str) -> String {
    format!("entity/{id}")
}
fn entity_name_key(name: &str) -> String {
    format!("entity-name/{}", hex_lower(name))
}
fn merged_key(id: &str) -> String {
    format!("entity-merged/{id}")
}
fn alias_key(id: &str) -> String {
    format!("alias/{id}")
}
fn alias_name_key(accessor: &str, name: &str) -> String {
    format!("alias-name/{}/{}", hex::encode(accessor), hex_lower(name))
}
fn group_key(id: &str) -> String {
    format!("group/{id}")
}
fn group_name_key(name: &str) -> String {
    format!("group-name/{}", hex_lower(name))
}
fn group_alias_key(id: &str) -> String {
    format!("group-alias/{id}")
}
fn group_alias_name_key(accessor: &str, name: &str) -> String {
    format!(
        "group-alias-name/{}/{}",
        hex::encode(accessor),
        hex_lower(name)
    )
}

/// Vault's generated names: `entity_` or `group_` and 8 hex digits.
fn generated_name(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid().replace('-', "")[..8])
}

/// Policies as Vault stores them: trimmed, without empties or duplicates, sorted.
pub(crate) fn clean_policies(p: Vec<String>) -> Vec<String> {
    p.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn remove_id(list: &mut Vec<String>, id: &str) -> bool {
    let before = list.len();
    list.retain(|x| x != id);
    before != list.len()
}

fn push_unique(list: &mut Vec<String>, id: &str) -> bool {
    if list.iter().any(|x| x == id) {
        false
    } else {
        list.push(id.to_string());
        true
    }
}

/// Raw records over the barrier view, with a read cache that commits keep exact.
struct Kv {
    view: View,
    cache: RwLock<HashMap<String, Option<Arc<Vec<u8>>>>>,
    /// Bumped (under the cache lock) by every commit, after its batch is stored: a read that
    /// started before a commit never caches what it read.
    generation: AtomicU64,
}

impl Kv {
    async fn raw(&self, key: &str) -> Result<Option<Arc<Vec<u8>>>> {
        if let Some(v) = self.cache.read().get(key) {
            return Ok(v.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let v = self.view.get(key).await?.map(Arc::new);
        let mut cache = self.cache.write();
        if self.generation.load(Ordering::SeqCst) == generation {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key.to_string(), v.clone());
        }
        Ok(v)
    }

    async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.raw(key).await? {
            Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
            None => Ok(None),
        }
    }

    async fn commit(&self, ops: BTreeMap<String, Option<Vec<u8>>>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let batch = ops
            .iter()
            .map(|(k, v)| match v {
                Some(v) => WriteOp::Put(k.clone(), v.clone()),
                None => WriteOp::Delete(k.clone()),
            })
            .collect();
        let result = self.view.write_batch(batch).await;
        let mut cache = self.cache.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(()) => {
                for (k, v) in ops {
                    cache.insert(k, v.map(Arc::new));
                }
                Ok(())
            }
            Err(e) => {
                // Whatever happened, the cache must not disagree with storage.
                cache.clear();
                Err(e)
            }
        }
    }
}

/// One write: reads see its own pending changes; [`Kv::commit`] stores them atomically.
pub(crate) struct Tx<'a> {
    kv: &'a Kv,
    ops: BTreeMap<String, Option<Vec<u8>>>,
}

impl Tx<'_> {
    async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.ops.get(key) {
            Some(Some(b)) => Ok(Some(serde_json::from_slice(b)?)),
            Some(None) => Ok(None),
            None => self.kv.get(key).await,
        }
    }
    fn put<T: Serialize>(&mut self, key: String, v: &T) -> Result<()> {
        self.ops.insert(key, Some(serde_json::to_vec(v)?));
        Ok(())
    }
    fn delete(&mut self, key: String) {
        self.ops.insert(key, None);
    }

    pub(crate) async fn entity(&self, id: &str) -> Result<Option<Entity>> {
        if id.is_empty() {
            return Ok(None);
        }
        self.get(&entity_key(id)).await
    }
    pub(crate) async fn group(&self, id: &str) -> Result<Option<Group>> {
        if id.is_empty() {
            return Ok(None);
        }
        self.get(&group_key(id)).await
    }
    pub(crate) async fn entity_id_by_name(&self, name: &str) -> Result<Option<String>> {
        self.get(&entity_name_key(name)).await
    }
    pub(crate) async fn group_id_by_name(&self, name: &str) -> Result<Option<String>> {
        self.get(&group_name_key(name)).await
    }
    pub(crate) async fn entity_by_alias(
        &self,
        accessor: &str,
        name: &str,
    ) -> Result<Option<Entity>> {
        match self.get::<String>(&alias_name_key(accessor, name)).await? {
            Some(id) => self.entity(&id).await,
            None => Ok(None),
        }
    }
    pub(crate) async fn entity_by_alias_id(&self, alias_id: &str) -> Result<Option<Entity>> {
        match self.get::<String>(&alias_key(alias_id)).await? {
            Some(id) => self.entity(&id).await,
            None => Ok(None),
        }
    }
    pub(crate) async fn group_by_alias(&self, accessor: &str, name: &str) -> Result<Option<Group>> {
        match self
            .get::<String>(&group_alias_name_key(accessor, name))
            .await?
        {
            Some(id) => self.group(&id).await,
            None => Ok(None),
        }
    }
    pub(crate) async fn group_by_alias_id(&self, alias_id: &str) -> Result<Option<Group>> {
        match self.get::<String>(&group_alias_key(alias_id)).await? {
            Some(id) => self.group(&id).await,
            None => Ok(None),
        }
    }

    /// Stores an entity and keeps its name and alias indexes in step with `old`.
    pub(crate) async fn save_entity(&mut self, old: Option<&Entity>, new: &Entity) -> Result<()> {
        if let Some(old) = old {
            if old.name.to_lowercase() != new.name.to_lowercase() {
                self.delete(entity_name_key(&old.name));
            }
            for a in &old.aliases {
                let kept = new.aliases.iter().find(|n| n.id == a.id);
                if kept.is_none() {
                    self.delete(alias_key(&a.id));
                }
                if kept.is_none_or(|n| {
                    n.mount_accessor != a.mount_accessor
                        || n.name.to_lowercase() != a.name.to_lowercase()
                }) {
                    self.delete(alias_name_key(&a.mount_accessor, &a.name));
                }
            }
        }
        self.put(entity_name_key(&new.name), &new.id)?;
        for a in &new.aliases {
            self.put(alias_key(&a.id), &new.id)?;
            self.put(alias_name_key(&a.mount_accessor, &a.name), &new.id)?;
        }
        self.put(entity_key(&new.id), new)
    }

    /// Deletes an entity, its aliases and its group memberships.
    pub(crate) async fn remove_entity(&mut self, e: &Entity) -> Result<()> {
        self.delete(entity_key(&e.id));
        self.delete(entity_name_key(&e.name));
        for a in &e.aliases {
            self.delete(alias_key(&a.id));
            self.delete(alias_name_key(&a.mount_accessor, &a.name));
        }
        for gid in &e.group_ids {
            if let Some(mut g) = self.group(gid).await? {
                if remove_id(&mut g.member_entity_ids, &e.id) {
                    g.modify_index += 1;
                    self.put(group_key(&g.id), &g)?;
                }
            }
        }
        Ok(())
    }

    /// Stores a group; keeps its name and alias indexes, its members' `group_ids` and its
    /// sub-groups' `parent_group_ids` in step with `old`.
    pub(crate) async fn save_group(&mut self, old: Option<&Group>, new: &Group) -> Result<()> {
        let empty = Group::default();
        let prev = old.unwrap_or(&empty);
        if old.is_some() && prev.name.to_lowercase() != new.name.to_lowercase() {
            self.delete(group_name_key(&prev.name));
        }
        if let Some(a) = &prev.alias {
            if new.alias.as_ref().is_none_or(|n| n.id != a.id) {
                self.delete(group_alias_key(&a.id));
            }
            self.delete(group_alias_name_key(&a.mount_accessor, &a.name));
        }
        if let Some(a) = &new.alias {
            self.put(group_alias_key(&a.id), &new.id)?;
            self.put(group_alias_name_key(&a.mount_accessor, &a.name), &new.id)?;
        }
        self.put(group_name_key(&new.name), &new.id)?;
        for eid in &prev.member_entity_ids {
            if !new.member_entity_ids.contains(eid) {
                if let Some(mut e) = self.entity(eid).await? {
                    if remove_id(&mut e.group_ids, &new.id) {
                        self.put(entity_key(&e.id), &e)?;
                    }
                }
            }
        }
        for eid in &new.member_entity_ids {
            if let Some(mut e) = self.entity(eid).await? {
                if push_unique(&mut e.group_ids, &new.id) {
                    self.put(entity_key(&e.id), &e)?;
                }
            }
        }
        for gid in &prev.member_group_ids {
            if !new.member_group_ids.contains(gid) {
                if let Some(mut c) = self.group(gid).await? {
                    if remove_id(&mut c.parent_group_ids, &new.id) {
                        self.put(group_key(&c.id), &c)?;
                    }
                }
            }
        }
        for gid in &new.member_group_ids {
            if let Some(mut c) = self.group(gid).await? {
                if push_unique(&mut c.parent_group_ids, &new.id) {
                    self.put(group_key(&c.id), &c)?;
                }
            }
        }
        self.put(group_key(&new.id), new)
    }

    /// Deletes a group, its alias, and every reference to it.
    pub(crate) async fn remove_group(&mut self, g: &Group) -> Result<()> {
        self.delete(group_key(&g.id));
        self.delete(group_name_key(&g.name));
        if let Some(a) = &g.alias {
            self.delete(group_alias_key(&a.id));
            self.delete(group_alias_name_key(&a.mount_accessor, &a.name));
        }
        for eid in &g.member_entity_ids {
            if let Some(mut e) = self.entity(eid).await? {
                if remove_id(&mut e.group_ids, &g.id) {
                    self.put(entity_key(&e.id), &e)?;
                }
            }
        }
        for gid in &g.member_group_ids {
            if let Some(mut c) = self.group(gid).await? {
                if remove_id(&mut c.parent_group_ids, &g.id) {
                    self.put(group_key(&c.id), &c)?;
                }
            }
        }
        for gid in &g.parent_group_ids {
            if let Some(mut p) = self.group(gid).await? {
                if remove_id(&mut p.member_group_ids, &g.id) {
                    p.modify_index += 1;
                    self.put(group_key(&p.id), &p)?;
                }
            }
        }
        Ok(())
    }

    /// Records that `from` was merged into `to`, so its tokens resolve to `to`.
    fn record_merge(&mut self, from: &str, to: &str) -> Result<()> {
        self.put(merged_key(from), &to.to_string())
    }

    /// The groups an entity belongs to: direct first (in order), then the inherited ones
    /// (parents of those, recursively), each once.
    pub(crate) async fn groups_of(&self, e: &Entity) -> Result<(Vec<Group>, Vec<Group>)> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut direct = Vec::new();
        let mut queue = VecDeque::new();
        for gid in &e.group_ids {
            if seen.insert(gid.clone()) {
                if let Some(g) = self.group(gid).await? {
                    queue.extend(g.parent_group_ids.iter().cloned());
                    direct.push(g);
                }
            }
        }
        let mut inherited = Vec::new();
        while let Some(gid) = queue.pop_front() {
            if !seen.insert(gid.clone()) {
                continue;
            }
            if let Some(g) = self.group(&gid).await? {
                queue.extend(g.parent_group_ids.iter().cloned());
                inherited.push(g);
            }
        }
        Ok((direct, inherited))
    }

    /// Whether `ancestor` is `start` or reachable from it through `parent_group_ids`.
    pub(crate) async fn is_ancestor_or_self(&self, start: &str, ancestor: &str) -> Result<bool> {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([start.to_string()]);
        while let Some(id) = queue.pop_front() {
            if id == ancestor {
                return Ok(true);
            }
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(g) = self.group(&id).await? {
                queue.extend(g.parent_group_ids.iter().cloned());
            }
        }
        Ok(false)
    }
}

/// A [`Tx`] holding the store's write lock.
pub(crate) struct WriteTx<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    tx: Tx<'a>,
}

impl<'a> WriteTx<'a> {
    /// Stores everything staged, atomically.
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.kv.commit(self.tx.ops).await
    }
}

impl<'a> std::ops::Deref for WriteTx<'a> {
    type Target = Tx<'a>;
    fn deref(&self) -> &Tx<'a> {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// The identity store. See the module documentation.
pub struct IdentityStore {
    kv: Kv,
    /// Serializes writes (each is read-modify-commit).
    write_lock: tokio::sync::Mutex<()>,
    mounts: RwLock<Option<MountResolver>>,
    /// The server's API address: the OIDC issuer when none is configured.
    api_addr: RwLock<String>,
    /// Computed identity policies per entity, valid for one store generation.
    policy_cache: RwLock<HashMap<String, (u64, Vec<String>)>>,
    /// Parsed OIDC signing keys, by key id.
    signers: RwLock<HashMap<String, Arc<oidc::Signer>>>,
}

impl IdentityStore {
    /// Opens the store over its barrier view (the core passes View prefix `sys/identity/`).
    pub async fn open(view: View) -> Result<Self> {
        Ok(IdentityStore {
            kv: Kv {
                view,
                cache: RwLock::new(HashMap::new()),
                generation: AtomicU64::new(0),
            },
            write_lock: tokio::sync::Mutex::new(()),
            mounts: RwLock::new(None),
            api_addr: RwLock::new("http://127.0.0.1:8200".into()),
            policy_cache: RwLock::new(HashMap::new()),
            signers: RwLock::new(HashMap::new()),
        })
    }

    /// Installs the accessor → auth mount lookup (validates `mount_accessor` inputs and fills
    /// `mount_path` / `mount_type` in answers).
    pub fn set_mount_resolver(&self, resolver: MountResolver) {
        *self.mounts.write() = Some(resolver);
    }

    /// The server's API address (`api_addr`), the OIDC issuer when `oidc/config` sets none.
    pub fn set_api_addr(&self, addr: &str) {
        *self.api_addr.write() = addr.trim_end_matches('/').to_string();
    }

    /// Drops every cached record (a standby, after the active node changed identities).
    pub fn forget_cached(&self) {
        let mut cache = self.kv.cache.write();
        self.kv.generation.fetch_add(1, Ordering::SeqCst);
        cache.clear();
        self.signers.write().clear();
    }

    /// Changes with every write to the store: what [`IdentityStore::policies`] and
    /// [`IdentityStore::expand_policy`] answer can only change when it does (a cache key).
    pub fn generation(&self) -> u64 {
        self.kv.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn api_addr(&self) -> String {
        self.api_addr.read().clone()
    }

    /// The auth mount behind an accessor: `Ok(None)` with no resolver installed (anything
    /// goes), `Err` for an unknown accessor.
    pub(crate) fn mount(&self, accessor: &str) -> Result<Option<MountEntry>> {
        let resolver = self.mounts.read().clone();
        match resolver {
            None => Ok(None),
            Some(r) => match r(accessor) {
                Some(m) => Ok(Some(m)),
                None => Err(Error::bad(format!("invalid mount accessor {accessor:?}"))),
            },
        }
    }

    /// The mount path and type of an alias, as the mount table says now.
    pub(crate) fn mount_info(&self, a: &Alias) -> (String, String) {
        let resolver = self.mounts.read().clone();
        match resolver.and_then(|r| r(&a.mount_accessor)) {
            Some(m) => (m.route_prefix(), m.kind),
            None => (a.mount_path.clone(), a.mount_type.clone()),
        }
    }

    /// A read-only view of the current state.
    pub(crate) fn reader(&self) -> Tx<'_> {
        Tx {
            kv: &self.kv,
            ops: BTreeMap::new(),
        }
    }

    /// Starts a serialized write: stage changes on the returned transaction, then
    /// [`WriteTx::commit`] stores them as one atomic batch. Dropping it discards them.
    pub(crate) async fn begin(&self) -> WriteTx<'_> {
        let guard = self.write_lock.lock().await;
        WriteTx {
            _guard: guard,
            tx: Tx {
                kv: &self.kv,
                ops: BTreeMap::new(),
            },
        }
    }

    /// Raw key access for the OIDC provider's records.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.kv.get(key).await
    }

    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.kv.view.list(prefix).await
    }

    /// An entity by id, following merges.
    pub(crate) async fn entity_resolved(&self, id: &str) -> Result<Option<Entity>> {
        let r = self.reader();
        if let Some(e) = r.entity(id).await? {
            return Ok(Some(e));
        }
        let mut current = id.to_string();
        // A chain of merges is short; bound it anyway.
        for _ in 0..16 {
            match r.get::<String>(&merged_key(&current)).await? {
                Some(next) => {
                    if let Some(e) = r.entity(&next).await? {
                        return Ok(Some(e));
                    }
                    current = next;
                }
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// At login through auth mount `mount`: finds the entity alias (mount accessor + alias name)
    /// or creates entity and alias (entity name `entity_<8 hex>`, as Vault), records the alias
    /// metadata, and, for `group_aliases` (external group names the login asserted), makes the
    /// entity a member of exactly those external groups of this mount whose group alias
    /// matches. Returns the entity id; `Err(PermissionDenied)` if the entity is disabled.
    pub async fn resolve_login(
        &self,
        mount: &MountEntry,
        alias_name: &str,
        metadata: &BTreeMap<String, String>,
        group_aliases: &[String],
    ) -> Result<String> {
        if alias_name.is_empty() {
            return Err(Error::bad("missing alias name"));
        }
        // The steady state writes nothing.
        if let Some(e) = self
            .reader()
            .entity_by_alias(&mount.accessor, alias_name)
            .await?
        {
            if e.disabled {
                return Err(Error::PermissionDenied);
            }
            let same_meta = e
                .aliases
                .iter()
                .find(|a| a.mount_accessor == mount.accessor)
                .is_some_and(|a| &a.metadata == metadata);
            if same_meta
                && external_groups_diff(&self.reader(), &e, mount, group_aliases)
                    .await?
                    .is_none()
            {
                return Ok(e.id);
            }
        }
        let mut tx = self.begin().await;
        let now = now_rfc3339();
        let mut entity = match tx.entity_by_alias(&mount.accessor, alias_name).await? {
            Some(e) => e,
            None => {
                let mut name = generated_name("entity");
                while tx.entity_id_by_name(&name).await?.is_some() {
                    name = generated_name("entity");
                }
                Entity {
                    id: uuid(),
                    name,
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Default::default()
                }
            }
        };
        if entity.disabled {
            return Err(Error::PermissionDenied);
        }
        let old = tx.entity(&entity.id).await?;
        match entity
            .aliases
            .iter_mut()
            .find(|a| a.mount_accessor == mount.accessor)
        {
            Some(a) => {
                if &a.metadata != metadata {
                    a.metadata = metadata.clone();
                    a.last_update_time = now.clone();
                }
            }
            None => entity.aliases.push(Alias {
                id: uuid(),
                canonical_id: entity.id.clone(),
                name: alias_name.to_string(),
                mount_accessor: mount.accessor.clone(),
                mount_type: mount.kind.clone(),
                mount_path: mount.route_prefix(),
                metadata: metadata.clone(),
                creation_time: now.clone(),
                last_update_time: now.clone(),
                ..Default::default()
            }),
        }
        if old.as_ref() != Some(&entity) {
            tx.save_entity(old.as_ref(), &entity).await?;
        }
        if let Some((add, remove)) =
            external_groups_diff(&tx, &entity, mount, group_aliases).await?
        {
            for mut g in add {
                let old = g.clone();
                g.member_entity_ids.push(entity.id.clone());
                g.modify_index += 1;
                g.last_update_time = now.clone();
                tx.save_group(Some(&old), &g).await?;
            }
            for mut g in remove {
                let old = g.clone();
                remove_id(&mut g.member_entity_ids, &entity.id);
                g.modify_index += 1;
                g.last_update_time = now.clone();
                tx.save_group(Some(&old), &g).await?;
            }
        }
        tx.commit().await?;
        Ok(entity.id)
    }

    /// The entity's identity policies: its own plus those of every group it belongs to,
    /// directly or through parent groups; deduplicated and sorted. `Err(PermissionDenied)` if
    /// the entity is disabled; `Ok(empty)` for an unknown entity id.
    pub async fn policies(&self, entity_id: &str) -> Result<Vec<String>> {
        let generation = self.kv.generation.load(Ordering::SeqCst);
        if let Some((g, p)) = self.policy_cache.read().get(entity_id) {
            if *g == generation {
                return Ok(p.clone());
            }
        }
        let Some(e) = self.entity_resolved(entity_id).await? else {
            return Ok(vec![]);
        };
        if e.disabled {
            return Err(Error::PermissionDenied);
        }
        let (direct, inherited) = self.reader().groups_of(&e).await?;
        let mut all: Vec<String> = e.policies.clone();
        for g in direct.iter().chain(&inherited) {
            all.extend(g.policies.iter().cloned());
        }
        let all = clean_policies(all);
        let mut cache = self.policy_cache.write();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(entity_id.to_string(), (generation, all.clone()));
        Ok(all)
    }

    /// Expands Vault's ACL policy templates (`{{identity.entity.id}}`, `.name`,
    /// `.metadata.<key>`, `.aliases.<mount accessor>.id|name|metadata.<key>|custom_metadata.<key>`,
    /// `{{identity.groups.ids.<group id>.name}}`, `{{identity.groups.names.<group name>.id}}`,
    /// `...metadata.<key>`) in the `path` labels of a policy's raw HCL or JSON text. A path
    /// block whose template cannot be resolved (unknown entity, missing metadata, not a member
    /// of the group, a value holding a `*` or `+` glob) is dropped, as Vault ignores it.
    /// Text without templates comes back unchanged. `Err(PermissionDenied)` if the entity is
    /// disabled.
    pub async fn expand_policy(&self, entity_id: &str, policy_text: &str) -> Result<String> {
        if !policy_text.contains("{{") {
            return Ok(policy_text.to_string());
        }
        let entity = self.entity_resolved(entity_id).await?;
        if entity.as_ref().is_some_and(|e| e.disabled) {
            return Err(Error::PermissionDenied);
        }
        let groups = match &entity {
            Some(e) => {
                let (mut d, i) = self.reader().groups_of(e).await?;
                d.extend(i);
                d
            }
            None => vec![],
        };
        let ctx = template::Context {
            entity: entity.as_ref(),
            groups: &groups,
            now: crate::util::unix_now(),
        };
        template::expand_policy_text(policy_text, &ctx)
    }

    /// Removes every entity and group alias of an auth mount (call it when the mount is
    /// disabled; the entities stay, as in Vault).
    pub async fn purge_mount(&self, accessor: &str) -> Result<()> {
        let entity_prefix = format!("alias-name/{}/", hex::encode(accessor));
        let group_prefix = format!("group-alias-name/{}/", hex::encode(accessor));
        let entity_keys = self.list(&entity_prefix).await?;
        let group_keys = self.list(&group_prefix).await?;
        if entity_keys.is_empty() && group_keys.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await;
        for k in entity_keys {
            let Some(eid) = tx.get::<String>(&format!("{entity_prefix}{k}")).await? else {
                continue;
            };
            if let Some(e) = tx.entity(&eid).await? {
                let mut n = e.clone();
                n.aliases.retain(|a| a.mount_accessor != accessor);
                tx.save_entity(Some(&e), &n).await?;
            }
        }
        for k in group_keys {
            let Some(gid) = tx.get::<String>(&format!("{group_prefix}{k}")).await? else {
                continue;
            };
            if let Some(g) = tx.group(&gid).await? {
                let mut n = g.clone();
                n.alias = None;
                tx.save_group(Some(&g), &n).await?;
            }
        }
        tx.commit().await
    }
}

/// The external-group changes a login implies: `None` when membership is already right, else
/// the groups to join and the groups (external, with an alias on this mount) to leave.
async fn external_groups_diff(
    r: &Tx<'_>,
    e: &Entity,
    mount: &MountEntry,
    group_aliases: &[String],
) -> Result<Option<(Vec<Group>, Vec<Group>)>> {
    let mut wanted: Vec<Group> = Vec::new();
    for name in group_aliases {
        if let Some(g) = r.group_by_alias(&mount.accessor, name).await? {
            if g.is_external() && !wanted.iter().any(|w| w.id == g.id) {
                wanted.push(g);
            }
        }
    }
    let mut remove = Vec::new();
    for gid in &e.group_ids {
        if wanted.iter().any(|w| &w.id == gid) {
            continue;
        }
        if let Some(g) = r.group(gid).await? {
            if g.is_external()
                && g.alias
                    .as_ref()
                    .is_some_and(|a| a.mount_accessor == mount.accessor)
            {
                remove.push(g);
            }
        }
    }
    let add: Vec<Group> = wanted
        .into_iter()
        .filter(|g| !g.member_entity_ids.contains(&e.id))
        .collect();
    if add.is_empty() && remove.is_empty() {
        Ok(None)
    } else {
        Ok(Some((add, remove)))
    }
}
