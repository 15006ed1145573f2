//! `roles/:name` and `LIST roles`: dynamic roles, what `creds/:role` runs to create a user.
//!
//! A role names its connection (`db_name`), its statements (`creation_statements`,
//! `revocation_statements`, `rollback_statements`, `renew_statements`; empty means the
//! plugin's defaults, see [`super::plugins`]) and its lease TTLs. Writing an existing role
//! updates only the fields sent, as in Vault. A role and a static role cannot share a name.

use super::{list_or_404, statements, Database, NAME};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Role {
    pub db_name: String,
    #[serde(default)]
    pub creation_statements: Vec<String>,
    #[serde(default)]
    pub revocation_statements: Vec<String>,
    #[serde(default)]
    pub rollback_statements: Vec<String>,
    #[serde(default)]
    pub renew_statements: Vec<String>,
    /// Seconds; 0 means the mount's default.
    #[serde(default)]
    pub default_ttl: u64,
    #[serde(default)]
    pub max_ttl: u64,
}

pub async fn load(view: &View, name: &str) -> Result<Option<Role>> {
    view.get_json(&format!("role/{name}")).await
}

pub fn paths() -> Vec<Path<Database>> {
    vec![
        Path::new("roles/?")
            .op(List, Database::role_list)
            .help("List dynamic roles."),
        Path::new(&format!("roles/(?P<name>{NAME})"))
            .field("db_name", Field::string("the connection this role uses"))
            .field(
                "creation_statements",
                Field::raw("statements that create the user"),
            )
            .field(
                "revocation_statements",
                Field::raw("statements that drop the user"),
            )
            .field(
                "rollback_statements",
                Field::raw("statements run if creation fails"),
            )
            .field(
                "renew_statements",
                Field::raw("statements run on lease renewal"),
            )
            .field("default_ttl", Field::duration("default lease TTL"))
            .field("max_ttl", Field::duration("maximum lease TTL"))
            .field(
                "credential_type",
                Field::string("only \"password\" is supported"),
            )
            .field(
                "credential_config",
                Field::map("credential settings (unused for passwords)"),
            )
            .exists(Database::role_exists)
            .op(Read, Database::role_read)
            .op(Create, Database::role_write)
            .op(Update, Database::role_write)
            .op(Delete, Database::role_delete)
            .help("Manage the roles that can create credentials."),
    ]
}

impl Database {
    async fn role_exists(self: Arc<Self>, c: Call) -> Result<bool> {
        Ok(load(&c.storage, c.fields.str("name")).await?.is_some())
    }

    async fn role_list(self: Arc<Self>, c: Call) -> Result<Response> {
        list_or_404(c.storage.list("role/").await?)
    }

    async fn role_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let r = load(&c.storage, c.fields.str("name"))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(json!({
            "creation_statements": r.creation_statements,
            "credential_type": "password",
            "db_name": r.db_name,
            "default_ttl": r.default_ttl,
            "max_ttl": r.max_ttl,
            "renew_statements": r.renew_statements,
            "revocation_statements": r.revocation_statements,
            "rollback_statements": r.rollback_statements,
        })))
    }

    async fn role_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name");
        if super::static_roles::load(&c.storage, name).await?.is_some() {
            return Err(Error::bad("Role and Static Role names must be unique"));
        }
        let existing = load(&c.storage, name).await?;
        let updating = existing.is_some();
        let mut r = existing.unwrap_or_default();
        if c.fields.has("db_name") {
            r.db_name = c.fields.str("db_name").to_string();
        }
        if r.db_name.is_empty() {
            return Err(Error::bad("database name is required"));
        }
        let ct = c.fields.str("credential_type");
        if !ct.is_empty() && ct != "password" {
            return Err(Error::bad(format!(
                "credential_type {ct:?} is not supported: only \"password\""
            )));
        }
        for (field, target) in [
            ("creation_statements", &mut r.creation_statements),
            ("revocation_statements", &mut r.revocation_statements),
            ("rollback_statements", &mut r.rollback_statements),
            ("renew_statements", &mut r.renew_statements),
        ] {
            if c.fields.has(field) || !updating {
                *target = statements(c.fields.get(field))?;
            }
        }
        if c.fields.has("default_ttl") || !updating {
            r.default_ttl = c.fields.duration("default_ttl").as_secs();
        }
        if c.fields.has("max_ttl") || !updating {
            r.max_ttl = c.fields.duration("max_ttl").as_secs();
        }
        if r.max_ttl > 0 && r.default_ttl > r.max_ttl {
            return Err(Error::bad("ttl cannot be greater than max_ttl"));
        }
        c.storage.put_json(&format!("role/{name}"), &r).await?;
        Ok(Response::default())
    }

    async fn role_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        c.storage
            .delete(&format!("role/{}", c.fields.str("name")))
            .await?;
        Ok(Response::default())
    }
}
