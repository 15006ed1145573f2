//! `config/:name` (connections), `LIST config`, `reset/:name` and `rotate-root/:name`.
//!
//! A connection is stored with everything the client sent that is not one of Vault's
//! top-level fields in `connection_details` (as Vault stores it: `connection_url`,
//! `username`, `password`, `max_open_connections`, `username_template`, ...). Reading it
//! returns `connection_details` without the password. With `verify_connection` (the default)
//! a write connects first and answers a clean 400 when that fails; the message names the
//! cause and never the password.

use super::plugins::{self, ConnSpec, Kind};
use super::{list_or_404, rotate, statements, Database, NAME};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{parse_duration, Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};

/// Top-level fields; everything else a client sends goes to `connection_details`.
const TOP_LEVEL: &[&str] = &[
    "name",
    "plugin_name",
    "plugin_version",
    "allowed_roles",
    "verify_connection",
    "root_rotation_statements",
    "password_policy",
];

/// Vault's default `max_open_connections`.
const DEFAULT_MAX_OPEN: u32 = 4;

/// A stored connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DbConfig {
    pub plugin_name: String,
    #[serde(default)]
    pub plugin_version: String,
    #[serde(default)]
    pub connection_details: Map<String, Value>,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    #[serde(default)]
    pub password_policy: String,
    #[serde(default)]
    pub root_rotation_statements: Vec<String>,
    #[serde(default = "yes")]
    pub verify_connection: bool,
    /// A root password change in flight: stored before the database is changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_root_password: Option<String>,
}

fn yes() -> bool {
    true
}

impl DbConfig {
    fn detail_str(&self, k: &str) -> String {
        match self.connection_details.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    }
    pub fn kind(&self) -> Result<Kind> {
        Kind::from_plugin(&self.plugin_name).ok_or_else(|| {
            Error::bad(format!(
                "error creating database object: plugin not found in the catalog: {}",
                self.plugin_name
            ))
        })
    }
    pub fn username(&self) -> String {
        self.detail_str("username")
    }
    pub fn password(&self) -> String {
        self.detail_str("password")
    }
    pub fn username_template(&self) -> Result<String> {
        let t = self.detail_str("username_template");
        Ok(if t.is_empty() {
            self.kind()?.default_username_template().to_string()
        } else {
            t
        })
    }
    fn max_open(&self) -> Result<u32> {
        match self.connection_details.get("max_open_connections") {
            None | Some(Value::Null) => Ok(DEFAULT_MAX_OPEN),
            Some(v) => {
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| Error::bad("max_open_connections must be an integer"))?;
                Ok(if n <= 0 {
                    DEFAULT_MAX_OPEN
                } else {
                    n.min(1000) as u32
                })
            }
        }
    }
    fn max_lifetime(&self) -> Result<Option<Duration>> {
        match self.connection_details.get("max_connection_lifetime") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let d = parse_duration(v)
                    .ok_or_else(|| Error::bad("invalid max_connection_lifetime"))?;
                Ok((!d.is_zero()).then_some(d))
            }
        }
    }
    /// The connection settings, with the current root password.
    pub fn spec(&self) -> Result<ConnSpec> {
        Ok(ConnSpec {
            kind: self.kind()?,
            url: self.detail_str("connection_url"),
            username: self.username(),
            password: self.password(),
            max_open: self.max_open()?,
            max_lifetime: self.max_lifetime()?,
        })
    }
    pub fn allows(&self, role: &str) -> bool {
        self.allowed_roles
            .iter()
            .any(|p| super::glob_match(p, role))
    }
    /// The answer to a read: no password, no pending state.
    fn to_json(&self) -> Value {
        let mut details = self.connection_details.clone();
        for secret in ["password", "private_key"] {
            details.remove(secret);
        }
        json!({
            "allowed_roles": self.allowed_roles,
            "connection_details": details,
            "password_policy": self.password_policy,
            "plugin_name": self.plugin_name,
            "plugin_version": self.plugin_version,
            "root_credentials_rotate_statements": self.root_rotation_statements,
            "verify_connection": self.verify_connection,
        })
    }
}

pub async fn load(view: &View, name: &str) -> Result<Option<DbConfig>> {
    view.get_json(&format!("config/{name}")).await
}

pub async fn save(view: &View, name: &str, cfg: &DbConfig) -> Result<()> {
    view.put_json(&format!("config/{name}"), cfg).await
}

/// Vault's error for a role or lease naming a connection that does not exist (a 400 here, a
/// 500 in Vault).
pub fn missing(name: &str) -> Error {
    Error::bad(format!(
        "failed to find entry for connection with name: {name:?}"
    ))
}

pub fn paths() -> Vec<Path<Database>> {
    vec![
        Path::new("config/?")
            .op(List, Database::config_list)
            .help("List the configured connections."),
        Path::new(&format!("config/(?P<name>{NAME})"))
            .field("plugin_name", Field::string("the database plugin"))
            .field("plugin_version", Field::string("the plugin version"))
            .field(
                "verify_connection",
                Field::bool("connect to the database before saving").default(true),
            )
            .field(
                "allowed_roles",
                Field::list("roles allowed to use this connection (globs)"),
            )
            .field(
                "root_rotation_statements",
                Field::raw("statements that rotate the root password"),
            )
            .field(
                "password_policy",
                Field::string("password policy for generated passwords"),
            )
            .field(
                "connection_url",
                Field::string("connection string template"),
            )
            .field("username", Field::string("root username"))
            .field("password", Field::string("root password"))
            .field("max_open_connections", Field::int("pool size (default 4)"))
            .field("max_idle_connections", Field::int("idle connections kept"))
            .field(
                "max_connection_lifetime",
                Field::duration("connection lifetime"),
            )
            .field(
                "username_template",
                Field::string("template for generated usernames"),
            )
            .exists(Database::config_exists)
            .op(Read, Database::config_read)
            .op(Create, Database::config_write)
            .op(Update, Database::config_write)
            .op(Delete, Database::config_delete)
            .help("Configure a connection to a database."),
        Path::new(&format!("reset/(?P<name>{NAME})"))
            .op(Update, Database::config_reset)
            .help("Close a connection and reopen it with the stored settings."),
        Path::new(&format!("rotate-root/(?P<name>{NAME})"))
            .op(Update, Database::rotate_root)
            .help("Rotate the root password: afterwards only Tresor knows it."),
    ]
}

impl Database {
    async fn config_exists(self: Arc<Self>, c: Call) -> Result<bool> {
        Ok(load(&c.storage, c.fields.str("name")).await?.is_some())
    }

    async fn config_list(self: Arc<Self>, c: Call) -> Result<Response> {
        list_or_404(c.storage.list("config/").await?)
    }

    async fn config_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let cfg = load(&c.storage, c.fields.str("name"))
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(cfg.to_json()))
    }

    async fn config_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_string();
        let existing = load(&c.storage, &name).await?;
        let updating = existing.is_some();
        let mut cfg = existing.unwrap_or_default();
        if c.fields.has("plugin_name") {
            cfg.plugin_name = c.fields.str("plugin_name").to_string();
        }
        if cfg.plugin_name.is_empty() {
            return Err(Error::bad("plugin_name must be set"));
        }
        cfg.kind()?;
        if c.fields.has("plugin_version") {
            cfg.plugin_version = c.fields.str("plugin_version").to_string();
        }
        if c.fields.has("allowed_roles") || !updating {
            cfg.allowed_roles = c.fields.strings("allowed_roles");
        }
        if c.fields.has("root_rotation_statements") || !updating {
            cfg.root_rotation_statements = statements(c.fields.get("root_rotation_statements"))?;
        }
        if c.fields.has("password_policy") || !updating {
            cfg.password_policy = c.fields.str("password_policy").to_string();
        }
        cfg.verify_connection = c.fields.bool("verify_connection");
        // Everything else is connection details: replaced on create, merged on update.
        let mut details = if updating {
            cfg.connection_details.clone()
        } else {
            Map::new()
        };
        for (k, v) in &c.data {
            if !TOP_LEVEL.contains(&k.as_str()) {
                details.insert(k.clone(), v.clone());
            }
        }
        let password_changed = c.data.contains_key("password");
        cfg.connection_details = details;
        if password_changed {
            // A new root password from the operator settles any rotation in flight.
            cfg.pending_root_password = None;
        }
        let template = cfg.username_template()?;
        super::templates::Template::parse(&template)
            .map_err(|e| Error::bad(format!("unable to parse username_template: {e}")))?;
        let spec = cfg.spec()?;
        if spec.url.trim().is_empty() {
            return Err(Error::bad("connection_url cannot be empty"));
        }
        spec.options()?;
        if cfg.verify_connection {
            spec.verify().await.map_err(|e| {
                Error::bad(format!(
                    "error creating database object: error verifying connection: {e}"
                ))
            })?;
        }
        save(&c.storage, &name, &cfg).await?;
        // The next use builds a pool with the new settings.
        self.drop_conn(&name).await;
        Ok(Response::default())
    }

    async fn config_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name");
        c.storage.delete(&format!("config/{name}")).await?;
        self.drop_conn(name).await;
        self.set_due(&rotate::root_key(name), None);
        Ok(Response::default())
    }

    async fn config_reset(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_string();
        let cfg = load(&c.storage, &name)
            .await?
            .ok_or_else(|| missing(&name))?;
        self.drop_conn(&name).await;
        if cfg.pending_root_password.is_some() {
            rotate::resolve_root(&self, &c.storage, &name)
                .await
                .map_err(|e| Error::internal(e.to_string()))?;
        }
        let cfg = load(&c.storage, &name)
            .await?
            .ok_or_else(|| missing(&name))?;
        if cfg.verify_connection {
            cfg.spec()?
                .verify()
                .await
                .map_err(|e| Error::internal(format!("error verifying connection: {e}")))?;
        }
        Ok(Response::default())
    }

    async fn rotate_root(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_string();
        rotate::rotate_root(&self, &c.storage, &name).await?;
        Ok(Response::default())
    }
}

/// Runs a connection's statements for one user: splits, fills, executes in a transaction.
pub async fn run(
    conn: &plugins::Conn,
    stmts: &[String],
    vars: &plugins::Vars<'_>,
) -> std::result::Result<(), String> {
    let kind = conn.spec.kind;
    let filled: Vec<String> = plugins::split_statements(stmts)
        .iter()
        .map(|s| plugins::fill(s, vars, kind))
        .collect();
    match conn.exec_tx(&filled).await {
        Ok(()) => Ok(()),
        Err(e) => Err(conn.describe(e, &[vars.password]).await),
    }
}
