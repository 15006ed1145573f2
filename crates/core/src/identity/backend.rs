//! The `identity/` backend: Vault's entity, entity-alias, group, group-alias and lookup API
//! over the [`IdentityStore`], with Vault's shapes, status codes and messages (checked against
//! OpenBao). The OIDC token provider's paths come from [`super::oidc`].
//!
//! Deviations from Vault: input errors Vault wraps into a 500 (an unknown member entity or
//! group, a group that would contain itself) are 400s here, and a merge conflict answers with
//! its message only (Vault adds a `data` list of the clashing aliases).

use super::{
    clean_policies, generated_name, Alias, Entity, Group, IdentityStore, Tx, NAMESPACE_ID,
};
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path, PathBackend};
use crate::logical::{Operation::*, Response};
use crate::util::{now_rfc3339, uuid};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The state of the `identity/` backend.
pub struct Identity {
    pub(crate) store: Arc<IdentityStore>,
}

/// The `identity/` backend (mounted as a built-in at `identity/`, kind `identity`).
pub fn backend(store: Arc<IdentityStore>) -> PathBackend<Identity> {
    let mut paths = entity_paths();
    paths.extend(group_paths());
    paths.extend(lookup_paths());
    paths.extend(super::oidc::paths());
    PathBackend::new(Identity { store }, paths)
        .unauthenticated(&[
            "oidc/.well-known/openid-configuration",
            "oidc/.well-known/keys",
        ])
        .help("The identity store: entities, groups, their aliases, and OIDC identity tokens.")
}

// ---------------------------------------------------------------------------------------------
// Input helpers

/// Whether the client sent a non-null value for a body field.
fn given(c: &Call, k: &str) -> bool {
    c.data.get(k).is_some_and(|v| !v.is_null())
}

/// Vault's `TypeKVPairs`: an object (values stringified Go-style), or `k=v` strings (a list or
/// one comma-separated string).
pub(crate) fn kv_pairs(name: &str, v: &Value) -> Result<BTreeMap<String, String>> {
    let bad = || {
        Error::bad(format!(
            "error converting input for field {name:?}: expected a map of string to string"
        ))
    };
    let pair = |s: &str| -> Result<(String, String)> {
        let (k, v) = s.split_once('=').ok_or_else(bad)?;
        Ok((k.trim().to_string(), v.trim().to_string()))
    };
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                    Value::Null => String::new(),
                    _ => return Err(bad()),
                };
                Ok((k.clone(), s))
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().ok_or_else(bad).and_then(pair))
            .collect(),
        Value::String(s) if s.trim().is_empty() => Ok(BTreeMap::new()),
        Value::String(s) => s.split(',').map(pair).collect(),
        _ => Err(bad()),
    }
}

fn list_or_null(v: &[String]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

fn map_or_null(m: &BTreeMap<String, String>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        json!(m)
    }
}

/// Which answer an alias appears in: they differ slightly in Vault.
#[derive(Clone, Copy, PartialEq)]
enum AliasView {
    /// `entity-alias/id/:id` and `group-alias/id/:id`.
    Own,
    /// Inside an entity.
    InEntity,
    /// Inside a group.
    InGroup,
}

impl Identity {
    fn alias_json(&self, a: &Alias, view: AliasView) -> Value {
        let (mount_path, mount_type) = self.store.mount_info(a);
        let mut v = json!({
            "canonical_id": a.canonical_id,
            "creation_time": a.creation_time,
            "id": a.id,
            "last_update_time": a.last_update_time,
            "merged_from_canonical_ids": list_or_null(&a.merged_from_canonical_ids),
            "metadata": map_or_null(&a.metadata),
            "mount_accessor": a.mount_accessor,
            "mount_path": mount_path,
            "mount_type": mount_type,
            "name": a.name,
        });
        if view != AliasView::InGroup {
            v["custom_metadata"] = map_or_null(&a.custom_metadata);
            v["local"] = json!(false);
        }
        if view == AliasView::Own {
            v["namespace_id"] = json!(NAMESPACE_ID);
        }
        v
    }

    /// The short alias form of list answers.
    fn alias_brief(&self, a: &Alias) -> Value {
        let (mount_path, mount_type) = self.store.mount_info(a);
        json!({
            "id": a.id,
            "mount_accessor": a.mount_accessor,
            "mount_path": mount_path,
            "mount_type": mount_type,
            "name": a.name,
        })
    }

    /// The `key_info` of an alias in list answers.
    fn alias_key_info(&self, a: &Alias) -> Value {
        let (mount_path, mount_type) = self.store.mount_info(a);
        json!({
            "canonical_id": a.canonical_id,
            "custom_metadata": map_or_null(&a.custom_metadata),
            "local": false,
            "metadata": map_or_null(&a.metadata),
            "mount_accessor": a.mount_accessor,
            "mount_path": mount_path,
            "mount_type": mount_type,
            "name": a.name,
        })
    }

    pub(crate) async fn entity_json(&self, r: &Tx<'_>, e: &Entity) -> Result<Value> {
        let (direct, inherited) = r.groups_of(e).await?;
        let direct: Vec<&str> = direct.iter().map(|g| g.id.as_str()).collect();
        let inherited: Vec<&str> = inherited.iter().map(|g| g.id.as_str()).collect();
        let all: Vec<&str> = direct.iter().chain(&inherited).copied().collect();
        Ok(json!({
            "aliases": e.aliases.iter().map(|a| self.alias_json(a, AliasView::InEntity)).collect::<Vec<_>>(),
            "creation_time": e.creation_time,
            "direct_group_ids": direct,
            "disabled": e.disabled,
            "group_ids": all,
            "id": e.id,
            "inherited_group_ids": inherited,
            "last_update_time": e.last_update_time,
            "merged_entity_ids": list_or_null(&e.merged_entity_ids),
            "metadata": map_or_null(&e.metadata),
            "name": e.name,
            "namespace_id": NAMESPACE_ID,
            "policies": e.policies,
        }))
    }

    fn group_json(&self, g: &Group) -> Value {
        json!({
            "alias": g.alias.as_ref().map(|a| self.alias_json(a, AliasView::InGroup)).unwrap_or_else(|| json!({})),
            "creation_time": g.creation_time,
            "id": g.id,
            "last_update_time": g.last_update_time,
            "member_entity_ids": list_or_null(&g.member_entity_ids),
            "member_group_ids": list_or_null(&g.member_group_ids),
            "metadata": map_or_null(&g.metadata),
            "modify_index": g.modify_index,
            "name": g.name,
            "namespace_id": NAMESPACE_ID,
            "parent_group_ids": list_or_null(&g.parent_group_ids),
            "policies": list_or_null(&g.policies),
            "type": g.kind,
        })
    }

    /// A mount accessor from input, checked against the mount table.
    fn check_accessor(&self, accessor: &str) -> Result<(String, String)> {
        Ok(match self.store.mount(accessor)? {
            Some(m) => (m.route_prefix(), m.kind),
            None => (String::new(), String::new()),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Entities and entity aliases

fn entity_fields(p: Path<Identity>) -> Path<Identity> {
    p.field("id", Field::string("ID of the entity; updates it if set"))
        .field("name", Field::string("name of the entity"))
        .field("metadata", Field::raw("metadata: string keys and values"))
        .field("policies", Field::list("policies tied to the entity"))
        .field(
            "disabled",
            Field::bool("tokens of a disabled entity cannot be used"),
        )
}

fn alias_fields(p: Path<Identity>) -> Path<Identity> {
    p.field("id", Field::string("ID of the alias; updates it if set"))
        .field("name", Field::string("name of the alias on its auth mount"))
        .field("canonical_id", Field::string("entity the alias belongs to"))
        .field("entity_id", Field::string("same as canonical_id"))
        .field(
            "mount_accessor",
            Field::string("accessor of the auth mount"),
        )
        .field("custom_metadata", Field::raw("user-provided metadata"))
}

#[derive(Clone, Copy)]
enum Target {
    /// `entity` / `group`: by `id` in the body, else by `name`, else new.
    Body,
    /// `.../id/:id`: must exist.
    Id,
    /// `.../name/:name`: created when missing.
    Name,
}

fn entity_paths() -> Vec<Path<Identity>> {
    vec![
        entity_fields(Path::new("entity/?"))
            .op(Update, |b: Arc<Identity>, c| async move {
                b.entity_write(c, Target::Body).await
            })
            .help("Create or update an entity."),
        Path::new("entity/id/?")
            .op(List, Identity::entity_list_ids)
            .help("List entities by id."),
        Path::new("entity/name/?")
            .op(List, Identity::entity_list_names)
            .help("List entities by name."),
        Path::new("entity/merge/?")
            .field(
                "from_entity_ids",
                Field::list("entities to merge into to_entity_id"),
            )
            .field("to_entity_id", Field::string("entity to merge into"))
            .field(
                "force",
                Field::bool("accepted and ignored, as in Vault 1.12+"),
            )
            .field(
                "conflicting_alias_ids_to_keep",
                Field::list("which alias to keep when both entities have one on a mount"),
            )
            .op(Update, Identity::entity_merge)
            .help("Merge entities."),
        Path::new("entity/batch-delete/?")
            .field("entity_ids", Field::list("entities to delete"))
            .op(Update, Identity::entity_batch_delete)
            .help("Delete several entities."),
        entity_fields(Path::new("entity/id/(?P<id>.+)"))
            .op(Read, |b: Arc<Identity>, c| async move {
                b.entity_read(c, Target::Id).await
            })
            .op(Update, |b: Arc<Identity>, c| async move {
                b.entity_write(c, Target::Id).await
            })
            .op(Delete, |b: Arc<Identity>, c| async move {
                b.entity_delete(c, Target::Id).await
            })
            .help("Read, update or delete an entity by id."),
        entity_fields(Path::new("entity/name/(?P<name>.+)"))
            .op(Read, |b: Arc<Identity>, c| async move {
                b.entity_read(c, Target::Name).await
            })
            .op(Update, |b: Arc<Identity>, c| async move {
                b.entity_write(c, Target::Name).await
            })
            .op(Delete, |b: Arc<Identity>, c| async move {
                b.entity_delete(c, Target::Name).await
            })
            .help("Read, create, update or delete an entity by name."),
        alias_fields(Path::new("entity-alias/?"))
            .op(Update, Identity::alias_write)
            .help("Create or update an entity alias."),
        Path::new("entity-alias/id/?")
            .op(List, Identity::alias_list)
            .help("List entity aliases."),
        alias_fields(Path::new("entity-alias/id/(?P<id>.+)"))
            .op(Read, Identity::alias_read)
            .op(Update, Identity::alias_write)
            .op(Delete, Identity::alias_delete)
            .help("Read, update or delete an entity alias."),
    ]
}

impl Identity {
    async fn entity_by_target(&self, r: &Tx<'_>, c: &Call, t: Target) -> Result<Option<Entity>> {
        match t {
            Target::Name => match r.entity_id_by_name(c.fields.str("name")).await? {
                Some(id) => r.entity(&id).await,
                None => Ok(None),
            },
            _ => r.entity(c.fields.str("id")).await,
        }
    }

    async fn entity_read(self: Arc<Self>, c: Call, t: Target) -> Result<Response> {
        let r = self.store.reader();
        let e = self
            .entity_by_target(&r, &c, t)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(self.entity_json(&r, &e).await?))
    }

    async fn entity_write(self: Arc<Self>, c: Call, t: Target) -> Result<Response> {
        let metadata = if given(&c, "metadata") {
            Some(kv_pairs("metadata", c.fields.get("metadata"))?)
        } else {
            None
        };
        let mut tx = self.store.begin().await;
        let id = c.fields.str("id");
        let name = c.fields.str("name").trim().to_string();
        let existing = match t {
            Target::Id => Some(
                tx.entity(id)
                    .await?
                    .ok_or_else(|| Error::bad("entity not found from id"))?,
            ),
            Target::Body if !id.is_empty() => Some(
                tx.entity(id)
                    .await?
                    .ok_or_else(|| Error::bad("entity not found from id"))?,
            ),
            _ if name.is_empty() => None,
            _ => match tx.entity_id_by_name(&name).await? {
                Some(id) => tx.entity(&id).await?,
                None => None,
            },
        };
        let now = now_rfc3339();
        let (old, mut e) = match existing {
            Some(e) => (Some(e.clone()), e),
            None => {
                let mut name = name.clone();
                while name.is_empty() || tx.entity_id_by_name(&name).await?.is_some() {
                    name = generated_name("entity");
                }
                let e = Entity {
                    id: uuid(),
                    name,
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Default::default()
                };
                (None, e)
            }
        };
        if !name.is_empty() && name != e.name {
            if tx
                .entity_id_by_name(&name)
                .await?
                .is_some_and(|other| other != e.id)
            {
                return Err(Error::bad("entity name is already in use"));
            }
            e.name = name;
        }
        if let Some(m) = metadata {
            e.metadata = m;
        }
        if given(&c, "policies") {
            e.policies = clean_policies(c.fields.strings("policies"));
        }
        if given(&c, "disabled") {
            e.disabled = c.fields.bool("disabled");
        }
        if old.is_some() {
            e.last_update_time = now;
        }
        tx.save_entity(old.as_ref(), &e).await?;
        tx.commit().await?;
        if old.is_some() {
            return Ok(Response::default());
        }
        Ok(Response::data(json!({
            "id": e.id,
            "name": e.name,
            "aliases": Value::Null,
        })))
    }

    async fn entity_delete(self: Arc<Self>, c: Call, t: Target) -> Result<Response> {
        let mut tx = self.store.begin().await;
        if let Some(e) = self.entity_by_target(&tx, &c, t).await? {
            tx.remove_entity(&e).await?;
            tx.commit().await?;
        }
        Ok(Response::default())
    }

    async fn entity_batch_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        let ids = c.fields.strings("entity_ids");
        if ids.is_empty() {
            return Err(Error::bad("missing entity ids to delete"));
        }
        let mut tx = self.store.begin().await;
        for id in ids {
            if let Some(e) = tx.entity(&id).await? {
                tx.remove_entity(&e).await?;
            }
        }
        tx.commit().await?;
        Ok(Response::default())
    }

    async fn all_entities(&self) -> Result<Vec<Entity>> {
        let r = self.store.reader();
        let mut ids = self.store.list("entity/").await?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = r.entity(&id).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn entity_list_ids(self: Arc<Self>, _c: Call) -> Result<Response> {
        let entities = self.all_entities().await?;
        if entities.is_empty() {
            return Err(Error::NotFound);
        }
        let mut info = Map::new();
        for e in &entities {
            let mut v = json!({ "name": e.name });
            if !e.aliases.is_empty() {
                v["aliases"] = json!(e
                    .aliases
                    .iter()
                    .map(|a| self.alias_brief(a))
                    .collect::<Vec<_>>());
            }
            info.insert(e.id.clone(), v);
        }
        Ok(Response::data(json!({
            "keys": entities.iter().map(|e| &e.id).collect::<Vec<_>>(),
            "key_info": info,
        })))
    }

    async fn entity_list_names(self: Arc<Self>, _c: Call) -> Result<Response> {
        let entities = self.all_entities().await?;
        if entities.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(Response::list(
            entities.into_iter().map(|e| e.name).collect(),
        ))
    }

    async fn entity_merge(self: Arc<Self>, c: Call) -> Result<Response> {
        let to_id = c.fields.str("to_entity_id").to_string();
        if to_id.is_empty() {
            return Err(Error::bad("missing entity id to merge to"));
        }
        let mut from_ids = c.fields.strings("from_entity_ids");
        from_ids.dedup();
        if from_ids.is_empty() {
            return Err(Error::bad("missing entity ids to merge from"));
        }
        if from_ids.contains(&to_id) {
            return Err(Error::bad(
                "to_entity_id should not be present in from_entity_ids",
            ));
        }
        let keep = c.fields.strings("conflicting_alias_ids_to_keep");
        let mut tx = self.store.begin().await;
        let mut to = tx
            .entity(&to_id)
            .await?
            .ok_or_else(|| Error::bad("entity id to merge to is invalid"))?;
        let old_to = to.clone();
        let mut froms = Vec::with_capacity(from_ids.len());
        for id in &from_ids {
            froms.push(
                tx.entity(id)
                    .await?
                    .ok_or_else(|| Error::bad("entity id to merge from is invalid"))?,
            );
        }
        // Aliases of the same mount on both sides: Vault refuses unless exactly one entity is
        // merged and the request says which alias of each clash to keep.
        let mut clashes = Vec::new();
        for from in &froms {
            for fa in &from.aliases {
                if let Some(ta) = to
                    .aliases
                    .iter()
                    .find(|t| t.mount_accessor == fa.mount_accessor)
                {
                    clashes.push((from.id.clone(), fa.clone(), ta.clone()));
                }
            }
        }
        if !clashes.is_empty() && (froms.len() > 1 || keep.is_empty()) {
            let details: Vec<String> = clashes
                .iter()
                .map(|(fid, fa, ta)| {
                    format!(
                        "mountAccessor: {}, toEntity ID: {}, fromEntity ID: {}, conflicting toEntity alias ID: {}, conflicting fromEntity alias ID: {}",
                        fa.mount_accessor, to.id, fid, ta.id, fa.id
                    )
                })
                .collect();
            return Err(Error::bad(format!(
                "toEntity and at least one fromEntity have aliases with the same mount accessor, repeat the merge request specifying exactly one fromEntity, clashes: {}",
                details.join("; ")
            )));
        }
        let mut dropped_from_aliases = Vec::new();
        for (_, fa, ta) in &clashes {
            if keep.contains(&fa.id) {
                to.aliases.retain(|a| a.id != ta.id);
            } else if keep.contains(&ta.id) {
                dropped_from_aliases.push(fa.id.clone());
            } else {
                return Err(Error::bad(format!(
                    "conflicting mount accessors in following alias IDs and neither were present in conflicting_alias_ids_to_keep: {}, {}",
                    fa.id, ta.id
                )));
            }
        }
        let now = now_rfc3339();
        for from in &froms {
            // The from entity's records and indexes go; its aliases move.
            tx.remove_entity(from).await?;
            for a in &from.aliases {
                if dropped_from_aliases.contains(&a.id) {
                    continue;
                }
                let mut a = a.clone();
                a.canonical_id = to.id.clone();
                a.merged_from_canonical_ids.push(from.id.clone());
                a.last_update_time = now.clone();
                to.aliases.push(a);
            }
            to.merged_entity_ids.push(from.id.clone());
            for id in &from.merged_entity_ids {
                if !to.merged_entity_ids.contains(id) {
                    to.merged_entity_ids.push(id.clone());
                }
            }
            tx.record_merge(&from.id, &to.id)?;
            // Group memberships move too (remove_entity took the from entity out of them).
            for gid in &from.group_ids {
                if let Some(mut g) = tx.group(gid).await? {
                    let old = g.clone();
                    if !g.member_entity_ids.contains(&to.id) {
                        g.member_entity_ids.push(to.id.clone());
                        g.modify_index += 1;
                        tx.save_group(Some(&old), &g).await?;
                    }
                }
            }
        }
        // save_group may have added groups to the stored `to`; keep those.
        if let Some(stored) = tx.entity(&to.id).await? {
            to.group_ids = stored.group_ids;
        }
        to.last_update_time = now;
        tx.save_entity(Some(&old_to), &to).await?;
        tx.commit().await?;
        Ok(Response::default())
    }

    async fn alias_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let id = c.fields.str("id");
        let e = self
            .store
            .reader()
            .entity_by_alias_id(id)
            .await?
            .ok_or(Error::NotFound)?;
        let a = e
            .aliases
            .iter()
            .find(|a| a.id == id)
            .ok_or(Error::NotFound)?;
        Ok(Response::data(self.alias_json(a, AliasView::Own)))
    }

    async fn alias_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        let id = c.fields.str("id").to_string();
        let mut tx = self.store.begin().await;
        if let Some(e) = tx.entity_by_alias_id(&id).await? {
            let mut n = e.clone();
            n.aliases.retain(|a| a.id != id);
            tx.save_entity(Some(&e), &n).await?;
            tx.commit().await?;
        }
        Ok(Response::default())
    }

    async fn alias_list(self: Arc<Self>, _c: Call) -> Result<Response> {
        let r = self.store.reader();
        let mut ids = self.store.list("alias/").await?;
        ids.sort();
        let mut keys = Vec::new();
        let mut info = Map::new();
        for id in ids {
            let Some(e) = r.entity_by_alias_id(&id).await? else {
                continue;
            };
            if let Some(a) = e.aliases.iter().find(|a| a.id == id) {
                info.insert(id.clone(), self.alias_key_info(a));
                keys.push(id);
            }
        }
        if keys.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(Response::data(json!({ "keys": keys, "key_info": info })))
    }

    async fn alias_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let custom = if given(&c, "custom_metadata") {
            Some(kv_pairs(
                "custom_metadata",
                c.fields.get("custom_metadata"),
            )?)
        } else {
            None
        };
        let id = c.fields.str("id").to_string();
        let name = c.fields.str("name").trim().to_string();
        let accessor = c.fields.str("mount_accessor").trim().to_string();
        let canonical = match c.fields.str("canonical_id") {
            "" => c.fields.str("entity_id"),
            s => s,
        }
        .to_string();
        let mut tx = self.store.begin().await;
        let now = now_rfc3339();

        // Which alias, on which entity, is being written.
        let (mut entity, alias_id) = if !id.is_empty() {
            let e = tx
                .entity_by_alias_id(&id)
                .await?
                .ok_or_else(|| Error::bad("invalid alias ID provided"))?;
            (e, id.clone())
        } else {
            if name.is_empty() || accessor.is_empty() {
                return Err(Error::bad(
                    "'id' or 'mount_accessor' and 'name' must be provided",
                ));
            }
            self.check_accessor(&accessor)?;
            match tx.entity_by_alias(&accessor, &name).await? {
                Some(e) => {
                    let aid = e
                        .aliases
                        .iter()
                        .find(|a| a.mount_accessor == accessor)
                        .map(|a| a.id.clone())
                        .unwrap_or_default();
                    (e, aid)
                }
                None => {
                    let (mount_path, mount_type) = self.check_accessor(&accessor)?;
                    let (old, mut e) = if canonical.is_empty() {
                        let mut n = generated_name("entity");
                        while tx.entity_id_by_name(&n).await?.is_some() {
                            n = generated_name("entity");
                        }
                        let e = Entity {
                            id: uuid(),
                            name: n,
                            creation_time: now.clone(),
                            last_update_time: now.clone(),
                            ..Default::default()
                        };
                        (None, e)
                    } else {
                        let e = tx
                            .entity(&canonical)
                            .await?
                            .ok_or_else(|| Error::bad("invalid canonical ID"))?;
                        (Some(e.clone()), e)
                    };
                    if e.aliases.iter().any(|a| a.mount_accessor == accessor) {
                        return Err(Error::bad(
                            "Alias already exists for requested entity and mount accessor",
                        ));
                    }
                    let a = Alias {
                        id: uuid(),
                        canonical_id: e.id.clone(),
                        name,
                        mount_accessor: accessor,
                        mount_type,
                        mount_path,
                        custom_metadata: custom.unwrap_or_default(),
                        creation_time: now.clone(),
                        last_update_time: now,
                        ..Default::default()
                    };
                    let out = json!({ "canonical_id": e.id, "id": a.id });
                    e.aliases.push(a);
                    tx.save_entity(old.as_ref(), &e).await?;
                    tx.commit().await?;
                    return Ok(Response::data(out));
                }
            }
        };

        // Update an existing alias.
        let old_entity = entity.clone();
        let pos = entity
            .aliases
            .iter()
            .position(|a| a.id == alias_id)
            .ok_or_else(|| Error::bad("invalid alias ID provided"))?;
        let mut alias = entity.aliases.remove(pos);
        if !accessor.is_empty() && accessor != alias.mount_accessor {
            let (mount_path, mount_type) = self.check_accessor(&accessor)?;
            alias.mount_accessor = accessor;
            alias.mount_path = mount_path;
            alias.mount_type = mount_type;
        }
        if !name.is_empty() {
            alias.name = name;
        }
        if let Some(other) = tx
            .entity_by_alias(&alias.mount_accessor, &alias.name)
            .await?
        {
            let clash = other.aliases.iter().any(|a| {
                a.id != alias.id
                    && a.mount_accessor == alias.mount_accessor
                    && a.name.to_lowercase() == alias.name.to_lowercase()
            });
            if clash {
                return Err(Error::bad(
                    "alias with combination of mount accessor and name already exists",
                ));
            }
        }
        // Vault replaces custom metadata on every write of an alias.
        alias.custom_metadata = custom.unwrap_or_default();
        alias.last_update_time = now;
        if !canonical.is_empty() && canonical != entity.id {
            let mut target = tx
                .entity(&canonical)
                .await?
                .ok_or_else(|| Error::bad("invalid canonical ID"))?;
            if target
                .aliases
                .iter()
                .any(|a| a.mount_accessor == alias.mount_accessor)
            {
                return Err(Error::bad(
                    "Alias already exists for requested entity and mount accessor",
                ));
            }
            let old_target = target.clone();
            alias.canonical_id = target.id.clone();
            let out = json!({ "canonical_id": target.id, "id": alias.id });
            tx.save_entity(Some(&old_entity), &entity).await?;
            target.aliases.push(alias);
            tx.save_entity(Some(&old_target), &target).await?;
            tx.commit().await?;
            return Ok(Response::data(out));
        }
        if entity
            .aliases
            .iter()
            .any(|a| a.mount_accessor == alias.mount_accessor)
        {
            return Err(Error::bad(
                "Alias already exists for requested entity and mount accessor",
            ));
        }
        let out = json!({ "canonical_id": entity.id, "id": alias.id });
        entity.aliases.insert(pos, alias);
        tx.save_entity(Some(&old_entity), &entity).await?;
        tx.commit().await?;
        Ok(Response::data(out))
    }
}

// ---------------------------------------------------------------------------------------------
// Groups and group aliases

fn group_fields(p: Path<Identity>) -> Path<Identity> {
    p.field("id", Field::string("ID of the group; updates it if set"))
        .field("name", Field::string("name of the group"))
        .field("type", Field::string("internal or external"))
        .field("metadata", Field::raw("metadata: string keys and values"))
        .field("policies", Field::list("policies tied to the group"))
        .field(
            "member_entity_ids",
            Field::list("entities that are members (internal groups)"),
        )
        .field(
            "member_group_ids",
            Field::list("groups that are members (internal groups)"),
        )
}

fn group_alias_fields(p: Path<Identity>) -> Path<Identity> {
    p.field(
        "id",
        Field::string("ID of the group alias; updates it if set"),
    )
    .field("name", Field::string("the external group's name"))
    .field(
        "mount_accessor",
        Field::string("accessor of the auth mount"),
    )
    .field("canonical_id", Field::string("the external group"))
}

fn group_paths() -> Vec<Path<Identity>> {
    vec![
        group_fields(Path::new("group/?"))
            .op(Update, |b: Arc<Identity>, c| async move {
                b.group_write(c, Target::Body).await
            })
            .help("Create or update a group."),
        Path::new("group/id/?")
            .op(List, Identity::group_list_ids)
            .help("List groups by id."),
        Path::new("group/name/?")
            .op(List, Identity::group_list_names)
            .help("List groups by name."),
        group_fields(Path::new("group/id/(?P<id>.+)"))
            .op(Read, |b: Arc<Identity>, c| async move {
                b.group_read(c, Target::Id).await
            })
            .op(Update, |b: Arc<Identity>, c| async move {
                b.group_write(c, Target::Id).await
            })
            .op(Delete, |b: Arc<Identity>, c| async move {
                b.group_delete(c, Target::Id).await
            })
            .help("Read, update or delete a group by id."),
        group_fields(Path::new("group/name/(?P<name>.+)"))
            .op(Read, |b: Arc<Identity>, c| async move {
                b.group_read(c, Target::Name).await
            })
            .op(Update, |b: Arc<Identity>, c| async move {
                b.group_write(c, Target::Name).await
            })
            .op(Delete, |b: Arc<Identity>, c| async move {
                b.group_delete(c, Target::Name).await
            })
            .help("Read, create, update or delete a group by name."),
        group_alias_fields(Path::new("group-alias/?"))
            .op(Update, Identity::group_alias_write)
            .help("Create or update a group alias."),
        Path::new("group-alias/id/?")
            .op(List, Identity::group_alias_list)
            .help("List group aliases."),
        group_alias_fields(Path::new("group-alias/id/(?P<id>.+)"))
            .op(Read, Identity::group_alias_read)
            .op(Update, Identity::group_alias_write)
            .op(Delete, Identity::group_alias_delete)
            .help("Read, update or delete a group alias."),
    ]
}

impl Identity {
    async fn group_by_target(&self, r: &Tx<'_>, c: &Call, t: Target) -> Result<Option<Group>> {
        match t {
            Target::Name => match r.group_id_by_name(c.fields.str("name")).await? {
                Some(id) => r.group(&id).await,
                None => Ok(None),
            },
            _ => r.group(c.fields.str("id")).await,
        }
    }

    async fn group_read(self: Arc<Self>, c: Call, t: Target) -> Result<Response> {
        let g = self
            .group_by_target(&self.store.reader(), &c, t)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(self.group_json(&g)))
    }

    async fn group_delete(self: Arc<Self>, c: Call, t: Target) -> Result<Response> {
        let mut tx = self.store.begin().await;
        if let Some(g) = self.group_by_target(&tx, &c, t).await? {
            tx.remove_group(&g).await?;
            tx.commit().await?;
        }
        Ok(Response::default())
    }

    async fn group_write(self: Arc<Self>, c: Call, t: Target) -> Result<Response> {
        let metadata = if given(&c, "metadata") {
            Some(kv_pairs("metadata", c.fields.get("metadata"))?)
        } else {
            None
        };
        let kind = if given(&c, "type") {
            let k = c.fields.str("type").trim().to_lowercase();
            match k.as_str() {
                "internal" | "external" => Some(k),
                "" => None,
                _ => return Err(Error::bad(format!("invalid group type {k:?}"))),
            }
        } else {
            None
        };
        let mut tx = self.store.begin().await;
        let id = c.fields.str("id");
        let name = c.fields.str("name").trim().to_string();
        let existing = match t {
            Target::Id => Some(
                tx.group(id)
                    .await?
                    .ok_or_else(|| Error::bad("invalid group ID"))?,
            ),
            Target::Body if !id.is_empty() => Some(
                tx.group(id)
                    .await?
                    .ok_or_else(|| Error::bad("invalid group ID"))?,
            ),
            _ if name.is_empty() => None,
            _ => match tx.group_id_by_name(&name).await? {
                Some(id) => tx.group(&id).await?,
                None => None,
            },
        };
        let now = now_rfc3339();
        let (old, mut g) = match existing {
            Some(g) => {
                if kind.as_ref().is_some_and(|k| *k != g.kind) {
                    return Err(Error::bad("group type cannot be changed"));
                }
                (Some(g.clone()), g)
            }
            None => {
                let mut n = name.clone();
                while n.is_empty() || tx.group_id_by_name(&n).await?.is_some() {
                    n = generated_name("group");
                }
                let g = Group {
                    id: uuid(),
                    name: n,
                    kind: kind.clone().unwrap_or_else(|| "internal".into()),
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Default::default()
                };
                (None, g)
            }
        };
        if !name.is_empty() && name != g.name {
            if tx
                .group_id_by_name(&name)
                .await?
                .is_some_and(|other| other != g.id)
            {
                return Err(Error::bad("group name is already in use"));
            }
            g.name = name;
        }
        if let Some(m) = metadata {
            g.metadata = m;
        }
        if given(&c, "policies") {
            g.policies = clean_policies(c.fields.strings("policies"));
        }
        if given(&c, "member_entity_ids") {
            if g.is_external() {
                return Err(Error::bad(
                    "member entities can't be set manually for external groups",
                ));
            }
            let mut ids = Vec::new();
            for eid in c.fields.strings("member_entity_ids") {
                if tx.entity(&eid).await?.is_none() {
                    return Err(Error::bad(format!("invalid entity ID {eid:?}")));
                }
                if !ids.contains(&eid) {
                    ids.push(eid);
                }
            }
            g.member_entity_ids = ids;
        }
        if given(&c, "member_group_ids") {
            if g.is_external() {
                return Err(Error::bad("member groups can't be set for external groups"));
            }
            let mut ids = Vec::new();
            for gid in c.fields.strings("member_group_ids") {
                if gid == g.id {
                    return Err(Error::bad(format!(
                        "member group ID {gid:?} is same as the ID of the group"
                    )));
                }
                if tx.group(&gid).await?.is_none() {
                    return Err(Error::bad(format!("invalid member group ID {gid:?}")));
                }
                // g would contain gid: a cycle if gid is already above g.
                if old.is_some() && tx.is_ancestor_or_self(&g.id, &gid).await? {
                    return Err(Error::bad(format!(
                        "cyclic relationship detected for member group ID {gid:?}"
                    )));
                }
                if !ids.contains(&gid) {
                    ids.push(gid);
                }
            }
            g.member_group_ids = ids;
        }
        g.modify_index += 1;
        if old.is_some() {
            g.last_update_time = now;
        }
        tx.save_group(old.as_ref(), &g).await?;
        tx.commit().await?;
        if old.is_some() {
            return Ok(Response::default());
        }
        Ok(Response::data(json!({ "id": g.id, "name": g.name })))
    }

    async fn all_groups(&self) -> Result<Vec<Group>> {
        let r = self.store.reader();
        let mut ids = self.store.list("group/").await?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(g) = r.group(&id).await? {
                out.push(g);
            }
        }
        Ok(out)
    }

    async fn group_list_ids(self: Arc<Self>, _c: Call) -> Result<Response> {
        let groups = self.all_groups().await?;
        if groups.is_empty() {
            return Err(Error::NotFound);
        }
        let mut info = Map::new();
        for g in &groups {
            let mut v = json!({
                "name": g.name,
                "num_member_entities": g.member_entity_ids.len(),
                "num_parent_groups": g.parent_group_ids.len(),
            });
            if let Some(a) = &g.alias {
                v["alias"] = self.alias_brief(a);
            }
            info.insert(g.id.clone(), v);
        }
        Ok(Response::data(json!({
            "keys": groups.iter().map(|g| &g.id).collect::<Vec<_>>(),
            "key_info": info,
        })))
    }

    async fn group_list_names(self: Arc<Self>, _c: Call) -> Result<Response> {
        let groups = self.all_groups().await?;
        if groups.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(Response::list(groups.into_iter().map(|g| g.name).collect()))
    }

    async fn group_alias_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let g = self
            .store
            .reader()
            .group_by_alias_id(c.fields.str("id"))
            .await?
            .ok_or(Error::NotFound)?;
        let a = g.alias.as_ref().ok_or(Error::NotFound)?;
        Ok(Response::data(self.alias_json(a, AliasView::Own)))
    }

    async fn group_alias_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        let mut tx = self.store.begin().await;
        if let Some(g) = tx.group_by_alias_id(c.fields.str("id")).await? {
            let mut n = g.clone();
            n.alias = None;
            n.modify_index += 1;
            tx.save_group(Some(&g), &n).await?;
            tx.commit().await?;
        }
        Ok(Response::default())
    }

    async fn group_alias_list(self: Arc<Self>, _c: Call) -> Result<Response> {
        let r = self.store.reader();
        let mut ids = self.store.list("group-alias/").await?;
        ids.sort();
        let mut keys = Vec::new();
        let mut info = Map::new();
        for id in ids {
            if let Some(g) = r.group_by_alias_id(&id).await? {
                if let Some(a) = g.alias.as_ref().filter(|a| a.id == id) {
                    info.insert(id.clone(), self.alias_key_info(a));
                    keys.push(id);
                }
            }
        }
        if keys.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(Response::data(json!({ "keys": keys, "key_info": info })))
    }

    async fn group_alias_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let id = c.fields.str("id").to_string();
        let name = c.fields.str("name").trim().to_string();
        let accessor = c.fields.str("mount_accessor").trim().to_string();
        let canonical = c.fields.str("canonical_id").to_string();
        let mut tx = self.store.begin().await;
        let now = now_rfc3339();

        let (alias, owner) = if id.is_empty() {
            if name.is_empty() {
                return Err(Error::bad("missing alias name"));
            }
            if accessor.is_empty() {
                return Err(Error::bad("missing mount_accessor"));
            }
            let (mount_path, mount_type) = self.check_accessor(&accessor)?;
            if tx.group_by_alias(&accessor, &name).await?.is_some() {
                return Err(Error::bad(
                    "combination of mount and group alias name is already in use",
                ));
            }
            let alias = Alias {
                id: uuid(),
                name,
                mount_accessor: accessor,
                mount_type,
                mount_path,
                creation_time: now.clone(),
                last_update_time: now.clone(),
                ..Default::default()
            };
            (alias, None)
        } else {
            let g = tx
                .group_by_alias_id(&id)
                .await?
                .ok_or_else(|| Error::bad("invalid group alias ID"))?;
            let mut alias = g
                .alias
                .clone()
                .ok_or_else(|| Error::bad("invalid group alias ID"))?;
            if !accessor.is_empty() && accessor != alias.mount_accessor {
                let (mount_path, mount_type) = self.check_accessor(&accessor)?;
                alias.mount_accessor = accessor;
                alias.mount_path = mount_path;
                alias.mount_type = mount_type;
            }
            if !name.is_empty() {
                alias.name = name;
            }
            if let Some(other) = tx
                .group_by_alias(&alias.mount_accessor, &alias.name)
                .await?
            {
                if other.id != g.id {
                    return Err(Error::bad(
                        "combination of mount and group alias name is already in use",
                    ));
                }
            }
            alias.last_update_time = now.clone();
            (alias, Some(g))
        };

        // The group the alias ends up on.
        let target_id = match (&canonical, &owner) {
            (c, _) if !c.is_empty() => Some(c.clone()),
            (_, Some(g)) => Some(g.id.clone()),
            _ => None,
        };
        let mut alias = alias;
        if let Some(g) = owner.as_ref().filter(|g| Some(&g.id) != target_id.as_ref()) {
            // Moving to another group: the old one loses its alias.
            let mut n = g.clone();
            n.alias = None;
            n.modify_index += 1;
            tx.save_group(Some(g), &n).await?;
        }
        let (old, mut target) = match target_id {
            Some(gid) => {
                let g = tx
                    .group(&gid)
                    .await?
                    .ok_or_else(|| Error::bad("invalid group ID given in 'canonical_id'"))?;
                if !g.is_external() {
                    return Err(Error::bad("alias can't be set on an internal group"));
                }
                (Some(g.clone()), g)
            }
            None => {
                let mut n = generated_name("group");
                while tx.group_id_by_name(&n).await?.is_some() {
                    n = generated_name("group");
                }
                let g = Group {
                    id: uuid(),
                    name: n,
                    kind: "external".into(),
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Default::default()
                };
                (None, g)
            }
        };
        alias.canonical_id = target.id.clone();
        // One alias per group: a new one replaces the old.
        target.alias = Some(alias.clone());
        target.modify_index += 1;
        target.last_update_time = now;
        tx.save_group(old.as_ref(), &target).await?;
        tx.commit().await?;
        Ok(Response::data(
            json!({ "canonical_id": target.id, "id": alias.id }),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups

fn lookup_fields(p: Path<Identity>) -> Path<Identity> {
    p.field("type", Field::string("unused"))
        .field("id", Field::string("ID to look up"))
        .field("name", Field::string("name to look up"))
        .field("alias_id", Field::string("alias ID to look up"))
        .field(
            "alias_name",
            Field::string("alias name (with alias_mount_accessor)"),
        )
        .field(
            "alias_mount_accessor",
            Field::string("accessor of the alias's mount"),
        )
}

fn lookup_paths() -> Vec<Path<Identity>> {
    vec![
        lookup_fields(Path::new("lookup/entity/?"))
            .op(Update, Identity::lookup_entity)
            .help("Look up an entity by id, name, alias id, or alias name and mount."),
        lookup_fields(Path::new("lookup/group/?"))
            .op(Update, Identity::lookup_group)
            .help("Look up a group by id, name, alias id, or alias name and mount."),
    ]
}

/// Which single criterion a lookup uses, with Vault's checks.
enum Criterion {
    Id(String),
    Name(String),
    AliasId(String),
    Alias(String, String),
}

fn criterion(c: &Call) -> Result<Criterion> {
    let f = |k: &str| c.fields.str(k).to_string();
    let (id, name, alias_id, alias_name, accessor) = (
        f("id"),
        f("name"),
        f("alias_id"),
        f("alias_name"),
        f("alias_mount_accessor"),
    );
    let count = [&id, &name, &alias_id]
        .iter()
        .filter(|s| !s.is_empty())
        .count()
        + usize::from(!alias_name.is_empty() || !accessor.is_empty());
    match count {
        0 => return Err(Error::bad("query parameter not supplied")),
        1 => {}
        _ => {
            return Err(Error::bad(
                "query parameter conflict; please supply distinct set of query parameters",
            ))
        }
    }
    Ok(if !id.is_empty() {
        Criterion::Id(id)
    } else if !name.is_empty() {
        Criterion::Name(name)
    } else if !alias_id.is_empty() {
        Criterion::AliasId(alias_id)
    } else if alias_name.is_empty() || accessor.is_empty() {
        return Err(Error::bad(
            "both 'alias_name' and 'alias_mount_accessor' needs to be set",
        ));
    } else {
        Criterion::Alias(alias_name, accessor)
    })
}

impl Identity {
    async fn lookup_entity(self: Arc<Self>, c: Call) -> Result<Response> {
        let r = self.store.reader();
        let e = match criterion(&c)? {
            Criterion::Id(id) => r.entity(&id).await?,
            Criterion::Name(n) => match r.entity_id_by_name(&n).await? {
                Some(id) => r.entity(&id).await?,
                None => None,
            },
            Criterion::AliasId(a) => r.entity_by_alias_id(&a).await?,
            Criterion::Alias(n, acc) => r.entity_by_alias(&acc, &n).await?,
        };
        match e {
            Some(e) => Ok(Response::data(self.entity_json(&r, &e).await?)),
            None => Ok(Response::default()),
        }
    }

    async fn lookup_group(self: Arc<Self>, c: Call) -> Result<Response> {
        let r = self.store.reader();
        let g = match criterion(&c)? {
            Criterion::Id(id) => r.group(&id).await?,
            Criterion::Name(n) => match r.group_id_by_name(&n).await? {
                Some(id) => r.group(&id).await?,
                None => None,
            },
            Criterion::AliasId(a) => r.group_by_alias_id(&a).await?,
            Criterion::Alias(n, acc) => r.group_by_alias(&acc, &n).await?,
        };
        match g {
            Some(g) => Ok(Response::data(self.group_json(&g))),
            None => Ok(Response::default()),
        }
    }
}
