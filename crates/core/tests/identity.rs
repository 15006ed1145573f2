//! The identity store and the `identity/` backend through a real in-process core: entities,
//! aliases, groups, merges, lookups, logins that resolve to entities, identity policies and
//! templated ACLs, and the OIDC identity token provider (with signatures checked against the
//! published JWKS).

use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::framework::{Backend, Call, Field, Path, PathBackend};
use tresor_core::logical::{LoginGrant, Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_storage::memory::MemoryStorage;
use tresor_storage::Storage;

/// A minimal auth method: `login` trusts what it is told (user, team, groups).
struct TestAuth;

fn test_auth() -> PathBackend<TestAuth> {
    PathBackend::new(
        TestAuth,
        vec![Path::new("login")
            .field("user", Field::string("who"))
            .field("team", Field::string("alias metadata"))
            .field("groups", Field::list("external groups"))
            .field("policies", Field::list("token policies"))
            .op(Operation::Update, |_b: Arc<TestAuth>, c: Call| async move {
                let mut meta = std::collections::BTreeMap::new();
                if c.fields.has("team") {
                    meta.insert("team".to_string(), c.fields.str("team").to_string());
                }
                Ok(Response {
                    login: Some(Box::new(LoginGrant {
                        policies: c.fields.strings("policies"),
                        display_name: c.fields.str("user").to_string(),
                        renewable: true,
                        alias_name: Some(c.fields.str("user").to_string()),
                        alias_metadata: meta,
                        group_aliases: c.fields.strings("groups"),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
            })],
    )
    .unauthenticated(&["login"])
}

struct Env {
    core: Arc<Core>,
    root: String,
    /// Accessor of the `test/` auth mount.
    accessor: String,
}

async fn env() -> Env {
    let registry = Registry::default().auth(
        "testauth",
        Arc::new(|_m| Ok(Arc::new(test_auth()) as Arc<dyn Backend>)),
    );
    let config = CoreConfig {
        api_addr: Some("https://vault.example:8200".into()),
        ..CoreConfig::default()
    };
    let core = Core::new(Arc::new(MemoryStorage::new()), registry, config);
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 1,
                secret_threshold: 1,
            },
            None,
        )
        .await
        .unwrap();
    assert!(core.submit_unseal_key(init.keys[0].clone()).await.unwrap());
    let root = init.root_token;
    ok(
        &core,
        Operation::Update,
        "sys/auth/test",
        &root,
        json!({"type": "testauth"}),
    )
    .await;
    let auth = ok(&core, Operation::Read, "sys/auth", &root, json!({})).await;
    let accessor = auth["test/"]["accessor"].as_str().unwrap().to_string();
    Env {
        core,
        root,
        accessor,
    }
}

async fn call(
    core: &Core,
    op: Operation,
    path: &str,
    token: &str,
    data: Value,
) -> Result<Response, Error> {
    let mut req = Request::new(op, path).with_data(data);
    if !token.is_empty() {
        req = req.with_token(token);
    }
    core.handle(req).await
}

/// The answer's `data` (null for an empty answer); panics on an error.
async fn ok(core: &Core, op: Operation, path: &str, token: &str, data: Value) -> Value {
    let r = call(core, op, path, token, data)
        .await
        .unwrap_or_else(|e| panic!("{} {path}: {e}", op.as_str()));
    if let Some(raw) = r.raw {
        return serde_json::from_slice(&raw.body).unwrap();
    }
    r.data.map(Value::Object).unwrap_or(Value::Null)
}

async fn err(core: &Core, op: Operation, path: &str, token: &str, data: Value) -> Error {
    match call(core, op, path, token, data).await {
        Ok(r) => panic!(
            "{} {path}: expected an error, got {:?}",
            op.as_str(),
            r.data
        ),
        Err(e) => e,
    }
}

fn bad(e: &Error, msg: &str) {
    assert_eq!(e.status(), 400, "{e}");
    assert!(e.to_string().contains(msg), "{e:?} lacks {msg:?}");
}

impl Env {
    async fn ok(&self, op: Operation, path: &str, data: Value) -> Value {
        ok(&self.core, op, path, &self.root, data).await
    }
    async fn err(&self, op: Operation, path: &str, data: Value) -> Error {
        err(&self.core, op, path, &self.root, data).await
    }
    async fn entity(&self, name: &str, extra: Value) -> String {
        let mut body = json!({ "name": name });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let d = self.ok(Operation::Update, "identity/entity", body).await;
        d["id"].as_str().unwrap().to_string()
    }
    async fn group(&self, body: Value) -> String {
        let d = self.ok(Operation::Update, "identity/group", body).await;
        d["id"].as_str().unwrap().to_string()
    }
    /// Logs in through `test/`; returns (token, entity id, auth block).
    async fn login(&self, body: Value) -> Result<(String, String), Error> {
        let r = call(&self.core, Operation::Update, "auth/test/login", "", body).await?;
        let auth = r.auth.unwrap();
        Ok((auth.client_token, auth.entity_id))
    }
}

#[tokio::test]
async fn entities_are_created_updated_read_listed_and_deleted() {
    let env = env().await;
    use Operation::*;
    // An empty store lists nothing (404, as Vault).
    assert_eq!(
        env.err(List, "identity/entity/id", json!({}))
            .await
            .status(),
        404
    );

    let created = env
        .ok(
            Update,
            "identity/entity",
            json!({"name": "alice", "metadata": {"team": "blue"}, "policies": ["b", "a", "b"]}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "alice");
    // Writing an existing name updates it: 204.
    let again = call(
        &env.core,
        Update,
        "identity/entity",
        &env.root,
        json!({"name": "ALICE", "disabled": false}),
    )
    .await
    .unwrap();
    assert!(again.is_empty());
    let e = env
        .ok(Read, &format!("identity/entity/id/{id}"), json!({}))
        .await;
    assert_eq!(
        e["name"], "ALICE",
        "names are case-insensitive; the write renames"
    );
    assert_eq!(e["policies"], json!(["a", "b"]));
    assert_eq!(e["metadata"], json!({"team": "blue"}));
    assert_eq!(e["aliases"], json!([]));
    assert_eq!(e["namespace_id"], "root");
    assert_eq!(e["merged_entity_ids"], Value::Null);
    let by_name = env.ok(Read, "identity/entity/name/alice", json!({})).await;
    assert_eq!(by_name["id"], id.as_str());

    // By name: creates when missing (200), updates otherwise (204).
    let bob = env
        .ok(
            Update,
            "identity/entity/name/bob",
            json!({"policies": "x,y"}),
        )
        .await;
    let bob_id = bob["id"].as_str().unwrap().to_string();
    assert!(env
        .ok(
            Update,
            "identity/entity/name/bob",
            json!({"metadata": ["k=v"]})
        )
        .await
        .is_null());
    let b = env
        .ok(Read, &format!("identity/entity/id/{bob_id}"), json!({}))
        .await;
    assert_eq!(b["policies"], json!(["x", "y"]));
    assert_eq!(b["metadata"], json!({"k": "v"}));

    // Renaming onto a taken name, or updating an unknown id, is a 400.
    let e = env
        .err(
            Update,
            &format!("identity/entity/id/{bob_id}"),
            json!({"name": "alice"}),
        )
        .await;
    bad(&e, "entity name is already in use");
    let e = env
        .err(
            Update,
            "identity/entity/id/nope",
            json!({"policies": ["p"]}),
        )
        .await;
    bad(&e, "entity not found from id");
    let e = env
        .err(Update, "identity/entity", json!({"id": "nope"}))
        .await;
    bad(&e, "entity not found from id");
    // Unknown ids and names read as 404 with no message; deleting them is fine.
    let e = env.err(Read, "identity/entity/id/nope", json!({})).await;
    assert_eq!((e.status(), e.messages()), (404, vec![]));
    assert_eq!(
        env.err(Read, "identity/entity/name/nope", json!({}))
            .await
            .status(),
        404
    );
    assert!(env
        .ok(Delete, "identity/entity/id/nope", json!({}))
        .await
        .is_null());

    // A nameless entity gets Vault's generated name.
    let anon = env.ok(Update, "identity/entity", json!({})).await;
    let anon_name = anon["name"].as_str().unwrap();
    assert!(
        anon_name.starts_with("entity_") && anon_name.len() == 15,
        "{anon_name}"
    );

    let list = env.ok(List, "identity/entity/id", json!({})).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 3);
    assert_eq!(list["key_info"][&id]["name"], "ALICE");
    let names = env.ok(List, "identity/entity/name", json!({})).await;
    assert!(names["keys"].as_array().unwrap().contains(&json!("bob")));

    assert!(env
        .ok(Delete, "identity/entity/name/bob", json!({}))
        .await
        .is_null());
    assert_eq!(
        env.err(Read, &format!("identity/entity/id/{bob_id}"), json!({}))
            .await
            .status(),
        404
    );
    let e = env
        .err(Update, "identity/entity/batch-delete", json!({}))
        .await;
    bad(&e, "missing entity ids to delete");
    let anon_id = anon["id"].as_str().unwrap();
    env.ok(
        Update,
        "identity/entity/batch-delete",
        json!({"entity_ids": [id, anon_id, "nope"]}),
    )
    .await;
    assert_eq!(
        env.err(List, "identity/entity/id", json!({}))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn entity_aliases_follow_vault_rules() {
    let env = env().await;
    use Operation::*;
    let alice = env.entity("alice", json!({})).await;
    let acc = env.accessor.clone();

    let e = env
        .err(
            Update,
            "identity/entity-alias",
            json!({"name": "al", "canonical_id": alice, "mount_accessor": "not a valid accessor"}),
        )
        .await;
    bad(&e, "invalid mount accessor \"not a valid accessor\"");
    let e = env
        .err(
            Update,
            "identity/entity-alias",
            json!({"canonical_id": alice}),
        )
        .await;
    bad(&e, "'id' or 'mount_accessor' and 'name' must be provided");
    let e = env
        .err(
            Update,
            "identity/entity-alias",
            json!({"name": "al", "canonical_id": "nope", "mount_accessor": acc}),
        )
        .await;
    bad(&e, "invalid canonical ID");

    let a = env
        .ok(Update, "identity/entity-alias", json!({"name": "al", "canonical_id": alice, "mount_accessor": acc, "custom_metadata": {"c": "d"}}))
        .await;
    let alias_id = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["canonical_id"], alice.as_str());
    // One alias per mount per entity.
    let e = env
        .err(
            Update,
            "identity/entity-alias",
            json!({"name": "other", "canonical_id": alice, "mount_accessor": acc}),
        )
        .await;
    bad(
        &e,
        "Alias already exists for requested entity and mount accessor",
    );
    // The same (mount, name), any case, is the same alias.
    let same = env
        .ok(
            Update,
            "identity/entity-alias",
            json!({"name": "AL", "canonical_id": alice, "mount_accessor": acc}),
        )
        .await;
    assert_eq!(same["id"], alias_id.as_str());

    let read = env
        .ok(
            Read,
            &format!("identity/entity-alias/id/{alias_id}"),
            json!({}),
        )
        .await;
    assert_eq!(read["mount_path"], "auth/test/");
    assert_eq!(read["mount_type"], "testauth");
    assert_eq!(read["namespace_id"], "root");
    assert_eq!(read["local"], false);
    let ent = env
        .ok(Read, &format!("identity/entity/id/{alice}"), json!({}))
        .await;
    assert_eq!(ent["aliases"][0]["id"], alias_id.as_str());

    // Update by id: an invalid accessor is refused, a valid update answers with the ids.
    let e = env
        .err(
            Update,
            &format!("identity/entity-alias/id/{alias_id}"),
            json!({"name": "al", "canonical_id": alice, "mount_accessor": "nope"}),
        )
        .await;
    bad(&e, "invalid mount accessor");
    let u = env
        .ok(
            Update,
            &format!("identity/entity-alias/id/{alias_id}"),
            json!({"name": "al2", "canonical_id": alice, "mount_accessor": acc}),
        )
        .await;
    assert_eq!(u["id"], alias_id.as_str());
    let e = env
        .err(
            Update,
            "identity/entity-alias/id/nope",
            json!({"name": "x"}),
        )
        .await;
    bad(&e, "invalid alias ID provided");

    // Without canonical_id, a new entity is made for the alias.
    let acc2 = {
        ok(
            &env.core,
            Update,
            "sys/auth/test2",
            &env.root,
            json!({"type": "testauth"}),
        )
        .await;
        let auth = env.ok(Read, "sys/auth", json!({})).await;
        auth["test2/"]["accessor"].as_str().unwrap().to_string()
    };
    let fresh = env
        .ok(
            Update,
            "identity/entity-alias",
            json!({"name": "carol", "mount_accessor": acc2}),
        )
        .await;
    assert_ne!(fresh["canonical_id"], alice.as_str());

    let list = env.ok(List, "identity/entity-alias/id", json!({})).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    assert_eq!(list["key_info"][&alias_id]["name"], "al2");

    // lookup/entity by alias.
    let l = env
        .ok(
            Update,
            "identity/lookup/entity",
            json!({"alias_name": "AL2", "alias_mount_accessor": acc}),
        )
        .await;
    assert_eq!(l["id"], alice.as_str());
    let l = env
        .ok(
            Update,
            "identity/lookup/entity",
            json!({"alias_id": alias_id}),
        )
        .await;
    assert_eq!(l["aliases"][0]["name"], "al2");
    assert!(env
        .ok(Update, "identity/lookup/entity", json!({"id": "entity_id"}))
        .await
        .is_null());
    bad(
        &env.err(Update, "identity/lookup/entity", json!({})).await,
        "query parameter not supplied",
    );
    bad(
        &env.err(
            Update,
            "identity/lookup/entity",
            json!({"id": alice, "name": "alice"}),
        )
        .await,
        "query parameter conflict",
    );
    bad(
        &env.err(
            Update,
            "identity/lookup/entity",
            json!({"alias_name": "al2"}),
        )
        .await,
        "both 'alias_name' and 'alias_mount_accessor' needs to be set",
    );

    // Disabling the auth mount removes its aliases; deleting an entity removes the rest.
    ok(&env.core, Delete, "sys/auth/test2", &env.root, json!({})).await;
    env.ok(Delete, &format!("identity/entity/id/{alice}"), json!({}))
        .await;
    assert_eq!(
        env.err(List, "identity/entity-alias/id", json!({}))
            .await
            .status(),
        404
    );
    assert!(env
        .ok(
            Delete,
            &format!("identity/entity-alias/id/{alias_id}"),
            json!({})
        )
        .await
        .is_null());
}

#[tokio::test]
async fn groups_nest_without_cycles_and_give_policies() {
    let env = env().await;
    use Operation::*;
    let alice = env.entity("alice", json!({"policies": ["own"]})).await;
    let devs = env
        .group(json!({"name": "devs", "policies": ["dev"], "member_entity_ids": [alice], "metadata": {"m": "n"}}))
        .await;
    let eng = env
        .group(json!({"name": "eng", "policies": ["eng", "dev"], "member_group_ids": [devs]}))
        .await;
    let all = env
        .group(json!({"name": "all", "policies": ["all"], "member_group_ids": [eng]}))
        .await;

    let g = env
        .ok(Read, &format!("identity/group/id/{devs}"), json!({}))
        .await;
    assert_eq!(g["member_entity_ids"], json!([alice]));
    assert_eq!(g["parent_group_ids"], json!([eng]));
    assert_eq!(g["member_group_ids"], Value::Null);
    assert_eq!(g["alias"], json!({}));
    assert_eq!(g["type"], "internal");
    let e = env
        .ok(Read, &format!("identity/entity/id/{alice}"), json!({}))
        .await;
    assert_eq!(e["direct_group_ids"], json!([devs]));
    assert_eq!(e["inherited_group_ids"], json!([eng, all]));
    assert_eq!(e["group_ids"], json!([devs, eng, all]));

    let store = env.core.active().unwrap().identity.clone();
    assert_eq!(
        store.policies(&alice).await.unwrap(),
        ["all", "dev", "eng", "own"]
    );
    assert!(store.policies("nope").await.unwrap().is_empty());

    // Cycles, self-membership, unknown members: 400.
    let e = env
        .err(
            Update,
            &format!("identity/group/id/{devs}"),
            json!({"member_group_ids": [all]}),
        )
        .await;
    bad(
        &e,
        &format!("cyclic relationship detected for member group ID \"{all}\""),
    );
    let e = env
        .err(
            Update,
            &format!("identity/group/id/{devs}"),
            json!({"member_group_ids": [devs]}),
        )
        .await;
    bad(&e, "is same as the ID of the group");
    bad(
        &env.err(
            Update,
            "identity/group",
            json!({"name": "x", "member_entity_ids": ["nope"]}),
        )
        .await,
        "invalid entity ID \"nope\"",
    );
    bad(
        &env.err(
            Update,
            "identity/group",
            json!({"name": "x", "member_group_ids": ["nope"]}),
        )
        .await,
        "invalid member group ID \"nope\"",
    );
    // Names are unique; types are fixed and checked.
    bad(
        &env.err(
            Update,
            &format!("identity/group/id/{eng}"),
            json!({"name": "devs"}),
        )
        .await,
        "group name is already in use",
    );
    bad(
        &env.err(
            Update,
            &format!("identity/group/id/{eng}"),
            json!({"type": "external"}),
        )
        .await,
        "group type cannot be changed",
    );
    bad(
        &env.err(
            Update,
            "identity/group",
            json!({"name": "x", "type": "cosmic"}),
        )
        .await,
        "invalid group type \"cosmic\"",
    );
    bad(
        &env.err(Update, "identity/group/id/nope", json!({"policies": ["p"]}))
            .await,
        "invalid group ID",
    );
    // External groups take no explicit members.
    bad(
        &env.err(
            Update,
            "identity/group",
            json!({"name": "x", "type": "external", "member_entity_ids": [alice]}),
        )
        .await,
        "member entities can't be set manually for external groups",
    );
    bad(
        &env.err(
            Update,
            "identity/group",
            json!({"name": "x", "type": "external", "member_group_ids": [devs]}),
        )
        .await,
        "member groups can't be set for external groups",
    );

    // Writing an existing name updates (204); by-name writes create or update.
    assert!(env
        .ok(
            Update,
            "identity/group",
            json!({"name": "devs", "policies": ["dev2"]})
        )
        .await
        .is_null());
    let made = env
        .ok(
            Update,
            "identity/group/name/ops",
            json!({"policies": ["ops"]}),
        )
        .await;
    assert_eq!(made["name"], "ops");
    assert_eq!(
        store.policies(&alice).await.unwrap(),
        ["all", "dev", "dev2", "eng", "own"]
    );

    let names = env.ok(List, "identity/group/name", json!({})).await;
    assert_eq!(names["keys"].as_array().unwrap().len(), 4);
    let ids = env.ok(List, "identity/group/id", json!({})).await;
    assert_eq!(ids["key_info"][&devs]["num_member_entities"], 1);
    assert_eq!(ids["key_info"][&devs]["num_parent_groups"], 1);
    let l = env
        .ok(Update, "identity/lookup/group", json!({"name": "eng"}))
        .await;
    assert_eq!(l["id"], eng.as_str());

    // Deleting the middle group unhooks it on both sides.
    env.ok(Delete, &format!("identity/group/id/{eng}"), json!({}))
        .await;
    let g = env
        .ok(Read, &format!("identity/group/id/{all}"), json!({}))
        .await;
    assert_eq!(g["member_group_ids"], Value::Null);
    let g = env
        .ok(Read, &format!("identity/group/id/{devs}"), json!({}))
        .await;
    assert_eq!(g["parent_group_ids"], Value::Null);
    assert_eq!(store.policies(&alice).await.unwrap(), ["dev2", "own"]);
    // Deleting an entity removes it from its groups.
    env.ok(Delete, &format!("identity/entity/id/{alice}"), json!({}))
        .await;
    let g = env.ok(Read, "identity/group/name/devs", json!({})).await;
    assert_eq!(g["member_entity_ids"], Value::Null);
    assert!(env
        .ok(Delete, "identity/group/id/nope", json!({}))
        .await
        .is_null());
    assert_eq!(
        env.err(Read, "identity/group/id/nope", json!({}))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn group_aliases_attach_to_external_groups() {
    let env = env().await;
    use Operation::*;
    let acc = env.accessor.clone();
    let internal = env.group(json!({"name": "int"})).await;
    let ext = env
        .group(json!({"name": "ext", "type": "external", "policies": ["xp"]}))
        .await;
    let g = env
        .ok(Read, &format!("identity/group/id/{ext}"), json!({}))
        .await;
    assert_eq!(g["member_entity_ids"], Value::Null);

    bad(
        &env.err(
            Update,
            "identity/group-alias",
            json!({"mount_accessor": acc}),
        )
        .await,
        "missing alias name",
    );
    bad(
        &env.err(Update, "identity/group-alias", json!({"name": "x"}))
            .await,
        "missing mount_accessor",
    );
    bad(
        &env.err(
            Update,
            "identity/group-alias",
            json!({"name": "x", "mount_accessor": acc, "canonical_id": internal}),
        )
        .await,
        "alias can't be set on an internal group",
    );
    bad(
        &env.err(
            Update,
            "identity/group-alias",
            json!({"name": "x", "mount_accessor": acc, "canonical_id": "nope"}),
        )
        .await,
        "invalid group ID given in 'canonical_id'",
    );
    let a = env
        .ok(
            Update,
            "identity/group-alias",
            json!({"name": "devs", "mount_accessor": acc, "canonical_id": ext}),
        )
        .await;
    let alias_id = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["canonical_id"], ext.as_str());
    bad(
        &env.err(
            Update,
            "identity/group-alias",
            json!({"name": "DEVS", "mount_accessor": acc, "canonical_id": ext}),
        )
        .await,
        "combination of mount and group alias name is already in use",
    );
    let g = env
        .ok(Read, &format!("identity/group/id/{ext}"), json!({}))
        .await;
    assert_eq!(g["alias"]["id"], alias_id.as_str());
    assert_eq!(g["alias"]["mount_path"], "auth/test/");
    let read = env
        .ok(
            Read,
            &format!("identity/group-alias/id/{alias_id}"),
            json!({}),
        )
        .await;
    assert_eq!(read["name"], "devs");
    // Without canonical_id a new external group is made.
    let lone = env
        .ok(
            Update,
            "identity/group-alias",
            json!({"name": "lone", "mount_accessor": acc}),
        )
        .await;
    let lone_group = env
        .ok(
            Read,
            &format!(
                "identity/group/id/{}",
                lone["canonical_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(lone_group["type"], "external");
    assert!(lone_group["name"].as_str().unwrap().starts_with("group_"));
    let list = env.ok(List, "identity/group-alias/id", json!({})).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    let l = env
        .ok(
            Update,
            "identity/lookup/group",
            json!({"alias_name": "devs", "alias_mount_accessor": acc}),
        )
        .await;
    assert_eq!(l["alias"]["name"], "devs");
    bad(
        &env.err(Update, "identity/group-alias/id/nope", json!({"name": "q"}))
            .await,
        "invalid group alias ID",
    );
    assert_eq!(
        env.err(Read, "identity/group-alias/id/nope", json!({}))
            .await
            .status(),
        404
    );

    // Logins asserting "devs" join the external group; logins that stop asserting it leave.
    let (token, entity) = env
        .login(json!({"user": "ann", "groups": ["devs", "unknown"]}))
        .await
        .unwrap();
    let g = env
        .ok(Read, &format!("identity/group/id/{ext}"), json!({}))
        .await;
    assert_eq!(g["member_entity_ids"], json!([entity]));
    let store = env.core.active().unwrap().identity.clone();
    assert_eq!(store.policies(&entity).await.unwrap(), ["xp"]);
    let me = ok(&env.core, Read, "auth/token/lookup-self", &token, json!({})).await;
    assert_eq!(me["entity_id"], entity.as_str());
    // As Vault, a lookup names the policies the entity brings (here its group's).
    assert_eq!(me["identity_policies"], json!(["xp"]));
    assert_eq!(me["policies"], json!(["default"]));
    let (_, again) = env
        .login(json!({"user": "ann", "groups": []}))
        .await
        .unwrap();
    assert_eq!(again, entity);
    let me = ok(&env.core, Read, "auth/token/lookup-self", &token, json!({})).await;
    assert!(me.get("identity_policies").is_none(), "none left: {me}");
    let g = env
        .ok(Read, &format!("identity/group/id/{ext}"), json!({}))
        .await;
    assert_eq!(g["member_entity_ids"], Value::Null);
    assert!(store.policies(&entity).await.unwrap().is_empty());

    env.ok(
        Delete,
        &format!("identity/group-alias/id/{alias_id}"),
        json!({}),
    )
    .await;
    let g = env
        .ok(Read, &format!("identity/group/id/{ext}"), json!({}))
        .await;
    assert_eq!(g["alias"], json!({}));
}

#[tokio::test]
async fn logins_resolve_to_entities_and_disabled_entities_are_refused() {
    let env = env().await;
    use Operation::*;
    let (t1, e1) = env
        .login(json!({"user": "zed", "team": "red"}))
        .await
        .unwrap();
    assert!(!e1.is_empty());
    let ent = env
        .ok(Read, &format!("identity/entity/id/{e1}"), json!({}))
        .await;
    let name = ent["name"].as_str().unwrap();
    assert!(name.starts_with("entity_") && name.len() == 15, "{name}");
    assert_eq!(ent["aliases"][0]["name"], "zed");
    assert_eq!(ent["aliases"][0]["metadata"], json!({"team": "red"}));
    assert_eq!(ent["aliases"][0]["mount_accessor"], env.accessor.as_str());

    // The same alias, the same entity; changed metadata is recorded.
    let (_, e2) = env
        .login(json!({"user": "zed", "team": "green"}))
        .await
        .unwrap();
    assert_eq!(e1, e2);
    let ent = env
        .ok(Read, &format!("identity/entity/id/{e1}"), json!({}))
        .await;
    assert_eq!(ent["aliases"][0]["metadata"], json!({"team": "green"}));
    assert_eq!(
        env.ok(List, "identity/entity/id", json!({})).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Entity and group policies reach the token's ACL and the login answer.
    env.ok(
        Update,
        "sys/policies/acl/kvread",
        json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    env.ok(
        Update,
        &format!("identity/entity/id/{e1}"),
        json!({"policies": ["kvread"]}),
    )
    .await;
    let r = call(
        &env.core,
        Update,
        "auth/test/login",
        "",
        json!({"user": "zed"}),
    )
    .await
    .unwrap();
    let auth = r.auth.unwrap();
    assert_eq!(auth.identity_policies, Some(vec!["kvread".to_string()]));
    assert!(auth.policies.contains(&"kvread".to_string()));
    let caps = ok(
        &env.core,
        Update,
        "sys/capabilities-self",
        &t1,
        json!({"paths": ["secret/x"]}),
    )
    .await;
    assert_eq!(caps["capabilities"], json!(["read"]));

    // A disabled entity can neither log in nor use its tokens.
    env.ok(
        Update,
        &format!("identity/entity/id/{e1}"),
        json!({"disabled": true}),
    )
    .await;
    let e = env.login(json!({"user": "zed"})).await.unwrap_err();
    assert_eq!(e.status(), 403);
    let e = err(&env.core, Read, "auth/token/lookup-self", &t1, json!({})).await;
    assert_eq!(e.status(), 403);
    let store = env.core.active().unwrap().identity.clone();
    assert!(matches!(
        store.policies(&e1).await,
        Err(Error::PermissionDenied)
    ));
    env.ok(
        Update,
        &format!("identity/entity/id/{e1}"),
        json!({"disabled": false}),
    )
    .await;
    ok(&env.core, Read, "auth/token/lookup-self", &t1, json!({})).await;
}

#[tokio::test]
async fn templated_policies_follow_the_entity() {
    let env = env().await;
    use Operation::*;
    let policy = r#"
path "secret/{{identity.entity.name}}/*" { capabilities = ["read"] }
path "secret/team/{{identity.entity.aliases.ACC.metadata.team}}" { capabilities = ["update"] }
path "secret/group/{{identity.groups.names.devs.id}}" { capabilities = ["list"] }
path "secret/meta/{{identity.entity.metadata.missing}}" { capabilities = ["delete"] }
path "secret/plain" { capabilities = ["create"] }
"#
    .replace("ACC", &env.accessor);
    env.ok(Update, "sys/policies/acl/tpl", json!({"policy": policy}))
        .await;
    let (token, entity) = env
        .login(json!({"user": "zed", "team": "red", "policies": ["tpl"]}))
        .await
        .unwrap();
    env.ok(
        Update,
        &format!("identity/entity/id/{entity}"),
        json!({"name": "zed"}),
    )
    .await;
    let devs = env
        .group(json!({"name": "devs", "member_entity_ids": [entity]}))
        .await;

    let caps = |paths: Value| {
        let core = env.core.clone();
        let token = token.clone();
        async move {
            ok(
                &core,
                Update,
                "sys/capabilities-self",
                &token,
                json!({ "paths": paths }),
            )
            .await
        }
    };
    let c = caps(json!([
        "secret/zed/x",
        "secret/team/red",
        &format!("secret/group/{devs}"),
        "secret/meta/",
        "secret/plain",
        "secret/other/x"
    ]))
    .await;
    assert_eq!(c["secret/zed/x"], json!(["read"]));
    assert_eq!(c["secret/team/red"], json!(["update"]));
    assert_eq!(c[&format!("secret/group/{devs}")], json!(["list"]));
    assert_eq!(
        c["secret/meta/"],
        json!(["deny"]),
        "unresolvable blocks are dropped"
    );
    assert_eq!(c["secret/plain"], json!(["create"]));
    assert_eq!(c["secret/other/x"], json!(["deny"]));
    // The built-in default policy lets a token read its own entity, and only that.
    ok(
        &env.core,
        Read,
        &format!("identity/entity/id/{entity}"),
        &token,
        json!({}),
    )
    .await;
    let other = env.entity("other", json!({})).await;
    assert_eq!(
        err(
            &env.core,
            Read,
            &format!("identity/entity/id/{other}"),
            &token,
            json!({})
        )
        .await
        .status(),
        403
    );

    // The store API directly: HCL and JSON, unknown entities, glob values.
    let store = env.core.active().unwrap().identity.clone();
    let out = store
        .expand_policy(
            &entity,
            "path \"a/{{identity.entity.id}}\" {\n  capabilities = [\"read\"]\n}\n",
        )
        .await
        .unwrap();
    assert!(out.contains(&format!("\"a/{entity}\"")), "{out}");
    let json_policy = r#"{"path": {"a/{{identity.entity.name}}": {"capabilities": ["read"]}, "b/{{identity.entity.metadata.x}}": {"capabilities": ["read"]}, "c": {"capabilities": ["list"]}}}"#;
    let out: Value =
        serde_json::from_str(&store.expand_policy(&entity, json_policy).await.unwrap()).unwrap();
    assert_eq!(
        out["path"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a/zed", "c"]
    );
    let out = store.expand_policy("nope", &policy).await.unwrap();
    assert!(out.contains("secret/plain") && !out.contains("{{"), "{out}");
    env.ok(
        Update,
        &format!("identity/entity/id/{entity}"),
        json!({"metadata": {"missing": "*"}}),
    )
    .await;
    let out = store.expand_policy(&entity, &policy).await.unwrap();
    assert!(
        !out.contains("secret/meta"),
        "a glob value never widens a path: {out}"
    );
    let plain = "path \"x\" { capabilities = [\"read\"] }";
    assert_eq!(store.expand_policy(&entity, plain).await.unwrap(), plain);
}

#[tokio::test]
async fn merges_move_aliases_and_groups_and_refuse_conflicts() {
    let env = env().await;
    use Operation::*;
    let acc = env.accessor.clone();
    let to = env.entity("to", json!({"policies": ["top"]})).await;
    let from = env.entity("from", json!({"policies": ["fromp"]})).await;
    let third = env.entity("third", json!({})).await;
    let a_to = env
        .ok(
            Update,
            "identity/entity-alias",
            json!({"name": "t", "canonical_id": to, "mount_accessor": acc}),
        )
        .await;
    let a_from = env
        .ok(
            Update,
            "identity/entity-alias",
            json!({"name": "f", "canonical_id": from, "mount_accessor": acc}),
        )
        .await;
    let g = env
        .group(json!({"name": "g", "policies": ["gp"], "member_entity_ids": [from]}))
        .await;

    bad(
        &env.err(
            Update,
            "identity/entity/merge",
            json!({"from_entity_ids": [from]}),
        )
        .await,
        "missing entity id to merge to",
    );
    bad(
        &env.err(Update, "identity/entity/merge", json!({"to_entity_id": to}))
            .await,
        "missing entity ids to merge from",
    );
    bad(
        &env.err(
            Update,
            "identity/entity/merge",
            json!({"to_entity_id": to, "from_entity_ids": [to]}),
        )
        .await,
        "to_entity_id should not be present in from_entity_ids",
    );
    bad(
        &env.err(
            Update,
            "identity/entity/merge",
            json!({"to_entity_id": "nope", "from_entity_ids": [from]}),
        )
        .await,
        "entity id to merge to is invalid",
    );
    bad(
        &env.err(
            Update,
            "identity/entity/merge",
            json!({"to_entity_id": to, "from_entity_ids": ["nope"]}),
        )
        .await,
        "entity id to merge from is invalid",
    );
    // Both have an alias on the same mount: refused, even with force, unless told which to keep.
    let e = env
        .err(
            Update,
            "identity/entity/merge",
            json!({"to_entity_id": to, "from_entity_ids": [from], "force": true}),
        )
        .await;
    bad(
        &e,
        "toEntity and at least one fromEntity have aliases with the same mount accessor",
    );
    let e = env
        .err(Update, "identity/entity/merge", json!({"to_entity_id": to, "from_entity_ids": [from, third], "conflicting_alias_ids_to_keep": [a_from["id"]]}))
        .await;
    bad(&e, "same mount accessor");
    let e = env
        .err(Update, "identity/entity/merge", json!({"to_entity_id": to, "from_entity_ids": [from], "conflicting_alias_ids_to_keep": ["nope"]}))
        .await;
    bad(&e, "neither were present in conflicting_alias_ids_to_keep");

    // hvac passes a single id as a string; no conflict, nothing to keep.
    assert!(env
        .ok(Update, "identity/entity/merge", json!({"to_entity_id": to, "from_entity_ids": third, "conflicting_alias_ids_to_keep": [from]}))
        .await
        .is_null());
    env.ok(Update, "identity/entity/merge", json!({"to_entity_id": to, "from_entity_ids": [from], "conflicting_alias_ids_to_keep": [a_from["id"]]}))
        .await;
    let e = env
        .ok(Read, &format!("identity/entity/id/{to}"), json!({}))
        .await;
    assert_eq!(e["merged_entity_ids"], json!([third, from]));
    assert_eq!(e["aliases"].as_array().unwrap().len(), 1);
    assert_eq!(e["aliases"][0]["id"], a_from["id"]);
    assert_eq!(e["aliases"][0]["merged_from_canonical_ids"], json!([from]));
    assert_eq!(e["direct_group_ids"], json!([g]));
    assert_eq!(
        env.err(Read, &format!("identity/entity/id/{from}"), json!({}))
            .await
            .status(),
        404
    );
    assert_eq!(
        env.err(
            Read,
            &format!("identity/entity-alias/id/{}", a_to["id"].as_str().unwrap()),
            json!({})
        )
        .await
        .status(),
        404
    );
    let grp = env
        .ok(Read, &format!("identity/group/id/{g}"), json!({}))
        .await;
    assert_eq!(grp["member_entity_ids"], json!([to]));
    // A token of the merged-away entity now gets the surviving entity's policies.
    let store = env.core.active().unwrap().identity.clone();
    assert_eq!(store.policies(&from).await.unwrap(), ["gp", "top"]);
    // The kept alias logs in to the surviving entity.
    let (_, who) = env.login(json!({"user": "f"})).await.unwrap();
    assert_eq!(who, to);
}

fn b64url(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

fn jwt_parts(token: &str) -> (Value, Value) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    (
        serde_json::from_slice(&b64url(p[0])).unwrap(),
        serde_json::from_slice(&b64url(p[1])).unwrap(),
    )
}

/// Checks a token's signature against the published JWKS, with aws-lc-rs.
async fn verify_with_jwks(env: &Env, token: &str) {
    use aws_lc_rs::signature;
    let jwks = ok(
        &env.core,
        Operation::Read,
        "identity/oidc/.well-known/keys",
        "",
        json!({}),
    )
    .await;
    let (header, _) = jwt_parts(token);
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("signing key published");
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let sig = b64url(sig);
    match key["kty"].as_str().unwrap() {
        "RSA" => {
            let pk = signature::RsaPublicKeyComponents {
                n: b64url(key["n"].as_str().unwrap()),
                e: b64url(key["e"].as_str().unwrap()),
            };
            pk.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                signed.as_bytes(),
                &sig,
            )
            .expect("RS256 signature verifies");
        }
        "EC" => {
            let mut point = vec![4u8];
            point.extend(b64url(key["x"].as_str().unwrap()));
            point.extend(b64url(key["y"].as_str().unwrap()));
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                .verify(signed.as_bytes(), &sig)
                .expect("ES256 signature verifies");
        }
        other => panic!("unexpected key type {other}"),
    }
}

#[tokio::test]
async fn oidc_tokens_are_signed_published_and_introspected() {
    let env = env().await;
    use Operation::*;
    // Configuration.
    assert_eq!(
        env.ok(Read, "identity/oidc/config", json!({})).await["issuer"],
        ""
    );
    bad(
        &env.err(Update, "identity/oidc/config", json!({"issuer": "ftp://x"}))
            .await,
        "invalid issuer",
    );
    bad(
        &env.err(
            Update,
            "identity/oidc/config",
            json!({"issuer": "https://x.com/path"}),
        )
        .await,
        "invalid issuer",
    );
    let r = call(
        &env.core,
        Update,
        "identity/oidc/config",
        &env.root,
        json!({"issuer": "https://python-hvac.org:1234"}),
    )
    .await
    .unwrap();
    assert_eq!(r.warnings.len(), 1);
    assert!(call(
        &env.core,
        Update,
        "identity/oidc/config",
        &env.root,
        json!({"issuer": ""})
    )
    .await
    .unwrap()
    .is_empty());

    // Keys.
    bad(
        &env.err(Update, "identity/oidc/key/k", json!({"algorithm": "XX"}))
            .await,
        "unknown signing algorithm \"XX\"",
    );
    bad(
        &env.err(
            Update,
            "identity/oidc/key/k",
            json!({"rotation_period": "10s"}),
        )
        .await,
        "rotation_period must be at least one minute",
    );
    bad(
        &env.err(
            Update,
            "identity/oidc/key/k",
            json!({"rotation_period": "1h", "verification_ttl": "100h"}),
        )
        .await,
        "verification_ttl cannot be longer than 10x rotation_period",
    );
    assert!(env
        .ok(Update, "identity/oidc/key/hvac_key", json!({"rotation_period": "24h", "verification_ttl": "24h", "allowed_client_ids": null, "algorithm": "RS256"}))
        .await
        .is_null());
    let k = env.ok(Read, "identity/oidc/key/hvac_key", json!({})).await;
    assert_eq!(
        k,
        json!({"algorithm": "RS256", "allowed_client_ids": [], "rotation_period": 86400, "verification_ttl": 86400})
    );
    let keys = env.ok(List, "identity/oidc/key", json!({})).await;
    assert_eq!(keys["keys"], json!(["default", "hvac_key"]));
    assert_eq!(
        env.ok(Read, "identity/oidc/key/default", json!({})).await["allowed_client_ids"],
        json!(["*"])
    );
    bad(
        &env.err(Delete, "identity/oidc/key/default", json!({}))
            .await,
        "deletion of key \"default\" not allowed",
    );
    assert_eq!(
        env.err(Read, "identity/oidc/key/nope", json!({}))
            .await
            .status(),
        404
    );
    bad(
        &env.err(Update, "identity/oidc/key/nope/rotate", json!({}))
            .await,
        "no named key found at \"nope\"",
    );

    // Roles.
    bad(
        &env.err(Update, "identity/oidc/role/r", json!({"key": "missing"}))
            .await,
        "cannot find key \"missing\"",
    );
    bad(
        &env.err(Update, "identity/oidc/role/r", json!({})).await,
        "the key parameter is required",
    );
    bad(
        &env.err(
            Update,
            "identity/oidc/role/r",
            json!({"key": "hvac_key", "ttl": "100h"}),
        )
        .await,
        "a role's token ttl cannot be longer",
    );
    bad(
        &env.err(
            Update,
            "identity/oidc/role/r",
            json!({"key": "hvac_key", "template": "{\"sub\": \"x\"}"}),
        )
        .await,
        "top level key \"sub\" not allowed",
    );
    bad(
        &env.err(
            Update,
            "identity/oidc/role/r",
            json!({"key": "hvac_key", "template": "not json"}),
        )
        .await,
        "error parsing template JSON",
    );
    let template = r#"{"team": {{identity.entity.aliases.ACC.metadata.team}}, "groups": {{identity.entity.groups.names}}, "nm": {{identity.entity.name}}}"#
        .replace("ACC", &env.accessor);
    assert!(env
        .ok(
            Update,
            "identity/oidc/role/hvac",
            json!({"key": "hvac_key", "ttl": "1h", "template": template})
        )
        .await
        .is_null());
    let role = env.ok(Read, "identity/oidc/role/hvac", json!({})).await;
    let client_id = role["client_id"].as_str().unwrap().to_string();
    assert_eq!(client_id.len(), 26);
    assert_eq!(role["ttl"], 3600);
    assert_eq!(role["template"], template.as_str());
    assert_eq!(
        env.ok(List, "identity/oidc/role", json!({})).await["keys"],
        json!(["hvac"])
    );
    // Base64 templates are decoded.
    let b64 = base64::engine::general_purpose::STANDARD.encode(r#"{"a": 1}"#);
    env.ok(
        Update,
        "identity/oidc/role/b64",
        json!({"key": "hvac_key", "template": b64}),
    )
    .await;
    assert_eq!(
        env.ok(Read, "identity/oidc/role/b64", json!({})).await["template"],
        r#"{"a": 1}"#
    );
    bad(
        &env.err(Delete, "identity/oidc/key/hvac_key", json!({}))
            .await,
        "currently referenced by these roles: b64, hvac",
    );
    bad(
        &env.err(
            Update,
            "identity/oidc/key/hvac_key",
            json!({"verification_ttl": 1800}),
        )
        .await,
        "with a token ttl greater than 1800 seconds",
    );

    // Tokens: the root token has no entity; the key must allow the role's client id.
    bad(
        &env.err(Read, "identity/oidc/token/hvac", json!({})).await,
        "no entity associated with the request's token",
    );
    env.ok(
        Update,
        "sys/policies/acl/oidc",
        json!({"policy": "path \"identity/oidc/token/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    let (token, entity) = env
        .login(json!({"user": "zed", "team": "red", "policies": ["oidc"]}))
        .await
        .unwrap();
    let g = env
        .group(json!({"name": "devs", "member_entity_ids": [entity]}))
        .await;
    assert!(!g.is_empty());
    let e = err(
        &env.core,
        Read,
        "identity/oidc/token/hvac",
        &token,
        json!({}),
    )
    .await;
    bad(
        &e,
        "does not list the client ID of the role \"hvac\" as an allowed client ID",
    );
    bad(
        &err(
            &env.core,
            Read,
            "identity/oidc/token/nope",
            &token,
            json!({}),
        )
        .await,
        "role \"nope\" not found",
    );
    env.ok(
        Update,
        "identity/oidc/key/hvac_key",
        json!({"allowed_client_ids": [client_id]}),
    )
    .await;
    let t = ok(
        &env.core,
        Read,
        "identity/oidc/token/hvac",
        &token,
        json!({}),
    )
    .await;
    assert_eq!(t["client_id"], client_id.as_str());
    assert_eq!(t["ttl"], 3600);
    let jwt = t["token"].as_str().unwrap().to_string();
    let (header, claims) = jwt_parts(&jwt);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!(claims["sub"], entity.as_str());
    assert_eq!(claims["namespace"], "root");
    assert_eq!(claims["iss"], "https://vault.example:8200/v1/identity/oidc");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(claims["team"], "red");
    assert_eq!(claims["groups"], json!(["devs"]));
    assert!(claims["nm"].as_str().unwrap().starts_with("entity_"));
    verify_with_jwks(&env, &jwt).await;

    // Introspection: raw {"active": ...} answers.
    let i = env
        .ok(
            Update,
            "identity/oidc/introspect",
            json!({"token": jwt, "client_id": client_id}),
        )
        .await;
    assert_eq!(i, json!({"active": true}));
    assert_eq!(
        env.ok(Update, "identity/oidc/introspect", json!({"token": jwt}))
            .await["active"],
        true
    );
    let i = env
        .ok(
            Update,
            "identity/oidc/introspect",
            json!({"token": jwt, "client_id": "other"}),
        )
        .await;
    assert_eq!(i["active"], false);
    assert!(i["error"].as_str().unwrap().contains("aud"));
    let mut tampered = jwt.clone();
    tampered.insert(jwt.find('.').unwrap() + 5, 'A');
    assert_eq!(
        env.ok(
            Update,
            "identity/oidc/introspect",
            json!({"token": tampered})
        )
        .await["active"],
        false
    );
    assert_eq!(
        env.ok(Update, "identity/oidc/introspect", json!({"token": "a.b"}))
            .await["active"],
        false
    );

    // Discovery documents are public and follow the configured issuer.
    env.ok(
        Update,
        "identity/oidc/config",
        json!({"issuer": "https://python-hvac.org:1234"}),
    )
    .await;
    let d = ok(
        &env.core,
        Read,
        "identity/oidc/.well-known/openid-configuration",
        "",
        json!({}),
    )
    .await;
    assert_eq!(d["issuer"], "https://python-hvac.org:1234/v1/identity/oidc");
    assert_eq!(
        d["jwks_uri"],
        "https://python-hvac.org:1234/v1/identity/oidc/.well-known/keys"
    );
    // The issuer changed, so the earlier token no longer introspects as active.
    assert_eq!(
        env.ok(Update, "identity/oidc/introspect", json!({"token": jwt}))
            .await["active"],
        false
    );

    // Rotation keeps the old key published; ES256 works; an algorithm change re-keys.
    let before = ok(
        &env.core,
        Read,
        "identity/oidc/.well-known/keys",
        "",
        json!({}),
    )
    .await["keys"]
        .as_array()
        .unwrap()
        .len();
    env.ok(Update, "identity/oidc/key/hvac_key/rotate", json!({}))
        .await;
    let after = ok(
        &env.core,
        Read,
        "identity/oidc/.well-known/keys",
        "",
        json!({}),
    )
    .await["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before + 1);
    env.ok(
        Update,
        "identity/oidc/key/hvac_key",
        json!({"algorithm": "ES256"}),
    )
    .await;
    assert_eq!(
        env.ok(Read, "identity/oidc/key/hvac_key", json!({})).await["algorithm"],
        "ES256"
    );
    let t = ok(
        &env.core,
        Read,
        "identity/oidc/token/hvac",
        &token,
        json!({}),
    )
    .await;
    let jwt = t["token"].as_str().unwrap();
    assert_eq!(jwt_parts(jwt).0["alg"], "ES256");
    verify_with_jwks(&env, jwt).await;
    assert_eq!(
        env.ok(
            Update,
            "identity/oidc/introspect",
            json!({"token": jwt, "client_id": client_id})
        )
        .await["active"],
        true
    );
    // Disabling the entity deactivates its tokens.
    env.ok(
        Update,
        &format!("identity/entity/id/{entity}"),
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(
        env.ok(Update, "identity/oidc/introspect", json!({"token": jwt}))
            .await["active"],
        false
    );

    // Role and key deletion.
    env.ok(Delete, "identity/oidc/role/hvac", json!({})).await;
    env.ok(Delete, "identity/oidc/role/b64", json!({})).await;
    assert_eq!(
        env.err(Read, "identity/oidc/role/hvac", json!({}))
            .await
            .status(),
        404
    );
    assert_eq!(
        env.err(List, "identity/oidc/role", json!({}))
            .await
            .status(),
        404
    );
    assert!(env
        .ok(Delete, "identity/oidc/key/hvac_key", json!({}))
        .await
        .is_null());
    assert!(env
        .ok(Delete, "identity/oidc/key/nope", json!({}))
        .await
        .is_null());
}

#[tokio::test]
async fn the_store_survives_a_seal_and_unseal() {
    let storage = Arc::new(MemoryStorage::new());
    let core = Core::new(storage.clone(), Registry::default(), CoreConfig::default());
    let init = core
        .initialize(
            SealConfig {
                secret_shares: 1,
                secret_threshold: 1,
            },
            None,
        )
        .await
        .unwrap();
    core.submit_unseal_key(init.keys[0].clone()).await.unwrap();
    let root = init.root_token;
    let d = ok(
        &core,
        Operation::Update,
        "identity/entity",
        &root,
        json!({"name": "keep", "policies": ["p"]}),
    )
    .await;
    let id = d["id"].as_str().unwrap().to_string();
    let g = ok(
        &core,
        Operation::Update,
        "identity/group",
        &root,
        json!({"name": "gg", "policies": ["q"], "member_entity_ids": [id]}),
    )
    .await;
    assert!(g["id"].is_string());
    core.seal_now();
    core.submit_unseal_key(init.keys[0].clone()).await.unwrap();
    let e = ok(
        &core,
        Operation::Read,
        "identity/entity/name/keep",
        &root,
        json!({}),
    )
    .await;
    assert_eq!(e["id"], id.as_str());
    let store = core.active().unwrap().identity.clone();
    assert_eq!(store.policies(&id).await.unwrap(), ["p", "q"]);
    // Nothing identity-related is readable in the storage backend.
    for k in storage.list("sys/identity/entity/").await.unwrap() {
        let raw = storage
            .get(&format!("sys/identity/entity/{k}"))
            .await
            .unwrap()
            .unwrap();
        assert!(!raw.windows(4).any(|w| w == b"keep"));
    }
}
