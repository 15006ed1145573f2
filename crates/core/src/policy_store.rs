//! Stored ACL policies and the compiled-ACL cache.
//!
//! Policies live in the barrier at `sys/policy/<name>` (the raw text; parsing happens on load).
//! `root` is built in and immutable; `default` is created at first unseal, can be edited but not
//! deleted. Compiled [`Acl`]s are cached per policy set and dropped whenever a policy changes, so
//! the request path compiles nothing in the steady state.

use crate::barrier::View;
use crate::error::{Error, Result};
use crate::identity::IdentityStore;
use crate::policy::{Acl, Policy, DEFAULT_POLICY};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The built-in policy of wrapping tokens: they can only be unwrapped or looked up.
const RESPONSE_WRAPPING_POLICY: &str = r#"
path "cubbyhole/response" { capabilities = ["create", "read"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
"#;

/// (policy names, entity id).
type EntityAclKey = (Vec<String>, String);

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    policy: String,
}

pub struct PolicyStore {
    view: View,
    parsed: RwLock<HashMap<String, Arc<Policy>>>,
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
    /// ACLs with templated policies, per (policy names, entity id), with the identity
    /// store's generation they were built at.
    entity_acls: RwLock<HashMap<EntityAclKey, (u64, Arc<Acl>)>>,
    /// Bumped (under the `parsed` lock) by every change: what was read or built before is not
    /// cached after.
    generation: AtomicU64,
}

/// Policy names are lower-case and made of letters, digits and `-_.@/`.
pub fn normalize_name(name: &str) -> Result<String> {
    let n = name.trim().to_lowercase();
    if n.is_empty() {
        return Err(Error::bad("policy name is missing"));
    }
    if n.contains("..")
        || n.chars()
            .any(|c| !(c.is_alphanumeric() || "-_.@/+=".contains(c)))
    {
        return Err(Error::bad(format!("invalid policy name {name:?}")));
    }
    Ok(n)
}

impl PolicyStore {
    pub async fn open(view: View) -> Result<Self> {
        let s = PolicyStore {
            view,
            parsed: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
            entity_acls: RwLock::new(HashMap::new()),
            generation: Default::default(),
        };
        if s.view.get("default").await?.is_none() {
            s.put("default", DEFAULT_POLICY).await?;
        }
        Ok(s)
    }

    pub async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>> {
        if let Some(p) = self.parsed.read().get(name) {
            return Ok(Some(p.clone()));
        }
        let generation = self.generation();
        let Some(sp) = self.view.get_json::<StoredPolicy>(name).await? else {
            return Ok(None);
        };
        let p = Arc::new(Policy::parse(&sp.name, &sp.policy)?);
        let mut parsed = self.parsed.write();
        if self.generation() == generation {
            parsed.insert(name.to_string(), p.clone());
        }
        Ok(Some(p))
    }

    /// The raw text of a policy (`root` has none).
    pub async fn raw(&self, name: &str) -> Result<Option<String>> {
        if name == "root" {
            return Ok(Some(String::new()));
        }
        Ok(self
            .view
            .get_json::<StoredPolicy>(name)
            .await?
            .map(|p| p.policy))
    }

    pub async fn put(&self, name: &str, text: &str) -> Result<()> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Err(Error::bad("cannot update \"root\" policy"));
        }
        Policy::parse(&name, text)?;
        self.view
            .put_json(
                &name,
                &StoredPolicy {
                    name: name.clone(),
                    policy: text.to_string(),
                },
            )
            .await?;
        self.invalidate(&name);
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = name.trim().to_lowercase();
        match name.as_str() {
            "root" => return Err(Error::bad("cannot delete \"root\" policy")),
            "default" => return Err(Error::bad("cannot delete \"default\" policy")),
            _ => {}
        }
        self.view.delete(&name).await?;
        self.invalidate(&name);
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.view.list_recursive("").await?;
        names.push("root".into());
        names.sort();
        Ok(names)
    }

    fn invalidate(&self, name: &str) {
        let mut parsed = self.parsed.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        parsed.remove(name);
        self.acls.write().clear();
        self.entity_acls.write().clear();
    }

    /// Drops everything parsed and compiled (a standby, after the active node changed
    /// policies).
    pub fn forget_cached(&self) {
        let mut parsed = self.parsed.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        parsed.clear();
        self.acls.write().clear();
        self.entity_acls.write().clear();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The compiled ACL for a set of policy names; unknown names are skipped (as Vault does).
    /// With an entity, templated policies (`{{identity.entity.id}}` ...) are expanded for it;
    /// such an ACL depends on the entity's current state and is built afresh, not cached.
    pub async fn acl(
        &self,
        names: &[String],
        entity: Option<(&str, &IdentityStore)>,
    ) -> Result<Arc<Acl>> {
        if let Some(a) = self.acls.read().get(names) {
            return Ok(a.clone());
        }
        if let Some((id, identity)) = entity {
            // Templated ACLs hold for one entity as long as the identity store is unchanged.
            let key = (names.to_vec(), id.to_string());
            if let Some((generation, a)) = self.entity_acls.read().get(&key) {
                if *generation == identity.generation() {
                    return Ok(a.clone());
                }
            }
        }
        // Boxed: the cache answers almost every request, and an inline build would make every
        // request's future carry its size.
        Box::pin(self.build_acl(names, entity)).await
    }

    /// Parses (and for an entity, expands) the named policies into an ACL and caches it.
    async fn build_acl(
        &self,
        names: &[String],
        entity: Option<(&str, &IdentityStore)>,
    ) -> Result<Arc<Acl>> {
        // A policy (or, for templated ones, the identity store) changed while this was built:
        // the ACL answers this request, is not kept.
        let generation = self.generation();
        let identity_generation = entity.map(|(_, identity)| identity.generation());
        let mut policies = Vec::with_capacity(names.len());
        let mut templated = false;
        for n in names {
            if n == "root" {
                policies.push(Arc::new(Policy::parse("root", "")?));
            } else if n == crate::sys::wrapping::WRAPPING_POLICY {
                policies.push(Arc::new(Policy::parse(n, RESPONSE_WRAPPING_POLICY)?));
            } else if let Some(p) = self.get(n).await? {
                match entity {
                    Some((id, identity)) if p.is_templated() => {
                        templated = true;
                        let expanded = identity.expand_policy(id, &p.raw).await?;
                        policies.push(Arc::new(Policy::parse(n, &expanded)?));
                    }
                    _ => policies.push(p),
                }
            }
        }
        let acl = Arc::new(Acl::new(&policies));
        let _parsed = self.parsed.write();
        if self.generation() != generation {
            return Ok(acl);
        }
        if !templated {
            self.acls.write().insert(names.to_vec(), acl.clone());
        } else if let (Some((id, _)), Some(g)) = (entity, identity_generation) {
            self.entity_acls
                .write()
                .insert((names.to_vec(), id.to_string()), (g, acl.clone()));
        }
        Ok(acl)
    }
}
