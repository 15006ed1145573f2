//! `static-roles/:name`, `LIST static-roles`, `static-creds/:name` and `rotate-role/:name`:
//! existing database users whose password Tresor owns and rotates, every `rotation_period`
//! or on a cron `rotation_schedule` (within `rotation_window` of each scheduled time).
//!
//! Creating a static role rotates its password at once (so only Tresor knows it); if that
//! fails the role is not created. The rotation itself is in [`super::rotate`].

use super::{list_or_404, rotate, statements, Database, NAME};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{Operation::*, Response};
use tresor_core::util::unix_now;

/// A rotation in flight: the new password, stored before the database is changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub password: String,
    pub since: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StaticRole {
    pub db_name: String,
    pub username: String,
    /// Seconds; 0 when a schedule is used.
    #[serde(default)]
    pub rotation_period: u64,
    #[serde(default)]
    pub rotation_schedule: String,
    /// Seconds after each scheduled time during which rotation may still happen (0: any time).
    #[serde(default)]
    pub rotation_window: u64,
    #[serde(default)]
    pub rotation_statements: Vec<String>,
    /// The current password (what the database has).
    #[serde(default)]
    pub password: String,
    /// Unix nanoseconds of the last successful rotation.
    #[serde(default)]
    pub last_vault_rotation: i128,
    /// When the next rotation is due (unix seconds).
    #[serde(default)]
    pub next_rotation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

impl StaticRole {
    pub fn last_rotation_secs(&self) -> i64 {
        (self.last_vault_rotation / 1_000_000_000) as i64
    }

    fn last_rotation_rfc3339(&self) -> Value {
        if self.last_vault_rotation == 0 {
            return Value::Null;
        }
        time::OffsetDateTime::from_unix_timestamp_nanos(self.last_vault_rotation)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map(Value::String)
            .unwrap_or(Value::Null)
    }

    /// When the next rotation is due, counted from the last one (or from `now`).
    pub fn compute_next(&self, now: i64) -> i64 {
        let base = if self.last_vault_rotation == 0 {
            now
        } else {
            self.last_rotation_secs()
        };
        if self.rotation_period > 0 {
            return base + self.rotation_period as i64;
        }
        super::schedule::Cron::parse(&self.rotation_schedule)
            .ok()
            .and_then(|c| c.next_after(base))
            .unwrap_or(i64::MAX)
    }

    /// The rotation fields of a read.
    fn rotation_json(&self, out: &mut Map<String, Value>) {
        if self.rotation_period > 0 {
            out.insert("rotation_period".into(), json!(self.rotation_period));
        } else {
            out.insert("rotation_schedule".into(), json!(self.rotation_schedule));
            if self.rotation_window > 0 {
                out.insert("rotation_window".into(), json!(self.rotation_window));
            }
        }
    }
}

pub async fn load(view: &View, name: &str) -> Result<Option<StaticRole>> {
    view.get_json(&format!("static-role/{name}")).await
}

pub async fn save(view: &View, name: &str, r: &StaticRole) -> Result<()> {
    view.put_json(&format!("static-role/{name}"), r).await
}

pub fn paths() -> Vec<Path<Database>> {
    vec![
        Path::new("static-roles/?")
            .op(List, Database::static_role_list)
            .help("List static roles."),
        Path::new(&format!("static-roles/(?P<name>{NAME})"))
            .field("db_name", Field::string("the connection this role uses"))
            .field(
                "username",
                Field::string("the database user whose password is managed"),
            )
            .field(
                "rotation_period",
                Field::duration("rotate this often (at least 5s)"),
            )
            .field(
                "rotation_schedule",
                Field::string("rotate on this cron schedule"),
            )
            .field(
                "rotation_window",
                Field::duration("how long after a scheduled time rotation may happen"),
            )
            .field(
                "rotation_statements",
                Field::raw("statements that set the password"),
            )
            .field(
                "credential_type",
                Field::string("only \"password\" is supported"),
            )
            .field(
                "credential_config",
                Field::map("credential settings (unused)"),
            )
            .exists(Database::static_role_exists)
            .op(Read, Database::static_role_read)
            .op(Create, Database::static_role_write)
            .op(Update, Database::static_role_write)
            .op(Delete, Database::static_role_delete)
            .help("Manage static roles: database users whose password Tresor rotates."),
        Path::new(&format!("static-creds/(?P<name>{NAME})"))
            .op(Read, Database::static_creds)
            .help("Read a static role's current credentials."),
        Path::new(&format!("rotate-role/(?P<name>{NAME})"))
            .op(Update, Database::rotate_role)
            .help("Rotate a static role's password now."),
    ]
}

impl Database {
    async fn static_role_exists(self: Arc<Self>, c: Call) -> Result<bool> {
        Ok(load(&c.storage, c.fields.str("name")).await?.is_some())
    }

    async fn static_role_list(self: Arc<Self>, c: Call) -> Result<Response> {
        list_or_404(c.storage.list("static-role/").await?)
    }

    async fn static_role_read(self: Arc<Self>, c: Call) -> Result<Response> {
        let r = load(&c.storage, c.fields.str("name"))
            .await?
            .ok_or(Error::NotFound)?;
        let mut out = Map::new();
        out.insert("credential_type".into(), json!("password"));
        out.insert("db_name".into(), json!(r.db_name));
        out.insert("username".into(), json!(r.username));
        out.insert("rotation_statements".into(), json!(r.rotation_statements));
        out.insert("last_vault_rotation".into(), r.last_rotation_rfc3339());
        r.rotation_json(&mut out);
        Ok(Response::data(Value::Object(out)))
    }

    async fn static_role_write(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_string();
        if super::roles::load(&c.storage, &name).await?.is_some() {
            return Err(Error::bad("Role and Static Role names must be unique"));
        }
        let existing = load(&c.storage, &name).await?;
        let creating = existing.is_none();
        let mut r = existing.unwrap_or_default();
        if c.fields.has("username") {
            let u = c.fields.str("username");
            if !creating && u != r.username {
                return Err(Error::bad("cannot update static account username"));
            }
            r.username = u.to_string();
        }
        if r.username.is_empty() {
            return Err(Error::bad(
                "username is a required field to create a static account",
            ));
        }
        if !super::plugins::safe_identifier(&r.username) {
            return Err(Error::bad(
                "username must not contain quotes, backslashes, semicolons or control characters",
            ));
        }
        if c.fields.has("db_name") {
            let d = c.fields.str("db_name");
            if !creating && d != r.db_name {
                return Err(Error::bad("cannot update static role db_name"));
            }
            r.db_name = d.to_string();
        }
        if r.db_name.is_empty() {
            return Err(Error::bad("database name is a required field"));
        }
        let ct = c.fields.str("credential_type");
        if !ct.is_empty() && ct != "password" {
            return Err(Error::bad(format!(
                "credential_type {ct:?} is not supported: only \"password\""
            )));
        }
        let has_period = c.fields.has("rotation_period");
        let has_schedule =
            c.fields.has("rotation_schedule") && !c.fields.str("rotation_schedule").is_empty();
        if has_period && has_schedule {
            return Err(Error::bad(
                "mutually exclusive fields rotation_period and rotation_schedule were both \
                 specified; only one of them can be provided",
            ));
        }
        let old_timing = (r.rotation_period, r.rotation_schedule.clone());
        if has_period {
            let p = c.fields.duration("rotation_period").as_secs();
            if p < 5 {
                return Err(Error::bad("rotation_period must be 5 seconds or more"));
            }
            r.rotation_period = p;
            r.rotation_schedule.clear();
            r.rotation_window = 0;
        } else if has_schedule {
            let s = c.fields.str("rotation_schedule").trim().to_string();
            super::schedule::Cron::parse(&s)
                .map_err(|e| Error::bad(format!("could not parse rotation_schedule: {e}")))?;
            r.rotation_schedule = s;
            r.rotation_period = 0;
        } else if creating {
            return Err(Error::bad(
                "rotation_period or rotation_schedule is required to create static accounts",
            ));
        }
        if c.fields.has("rotation_window") {
            let w = c.fields.duration("rotation_window").as_secs();
            if r.rotation_period > 0 && w > 0 {
                return Err(Error::bad(
                    "rotation_window is invalid with use of rotation_period",
                ));
            }
            if w > 0 && w < 3600 {
                return Err(Error::bad("rotation_window must be 3600 seconds or more"));
            }
            r.rotation_window = w;
        }
        if c.fields.has("rotation_statements") || creating {
            r.rotation_statements = statements(c.fields.get("rotation_statements"))?;
        }
        if creating {
            // The connection must exist: the password is set now.
            super::config::load(&c.storage, &r.db_name)
                .await?
                .ok_or_else(|| super::config::missing(&r.db_name))?;
            save(&c.storage, &name, &r).await?;
            if let Err(e) = rotate::rotate_static(&self, &c.storage, &name).await {
                // Not created: forget it (a crash before this point leaves a pending rotation
                // that the next start resolves instead).
                c.storage.delete(&format!("static-role/{name}")).await?;
                self.set_due(&name, None);
                return Err(Error::internal(format!("error setting credentials: {e}")));
            }
            return Ok(Response::default());
        }
        if old_timing != (r.rotation_period, r.rotation_schedule.clone()) {
            r.next_rotation = r.compute_next(unix_now());
        }
        save(&c.storage, &name, &r).await?;
        self.set_due(&name, Some(r.next_rotation));
        Ok(Response::default())
    }

    async fn static_role_delete(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name");
        let _g = self.rotation_lock.lock().await;
        c.storage.delete(&format!("static-role/{name}")).await?;
        self.set_due(name, None);
        Ok(Response::default())
    }

    async fn static_creds(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name");
        let r = load(&c.storage, name)
            .await?
            .ok_or_else(|| Error::bad(format!("unknown role: {name}")))?;
        let mut out = Map::new();
        out.insert("username".into(), json!(r.username));
        out.insert("password".into(), json!(r.password));
        out.insert("last_vault_rotation".into(), r.last_rotation_rfc3339());
        out.insert("ttl".into(), json!((r.next_rotation - unix_now()).max(0)));
        r.rotation_json(&mut out);
        Ok(Response::data(Value::Object(out)))
    }

    async fn rotate_role(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name");
        if load(&c.storage, name).await?.is_none() {
            return Err(Error::bad("no static role found for role name"));
        }
        rotate::rotate_static(&self, &c.storage, name)
            .await
            .map_err(|e| Error::internal(format!("unable to finish rotating credentials: {e}")))?;
        Ok(Response::default())
    }
}
