//! `creds/:role`: a new database user with a generated password, under a lease; and the lease
//! hooks: renewal extends the user's validity (`VALID UNTIL` on PostgreSQL, via the role's
//! `renew_statements` or the default), revocation drops the user (the role's
//! `revocation_statements`, or the plugin's thorough default). A failed revocation is an error
//! the lease manager keeps and retries with backoff; the lease does not vanish.

use super::config::{self, DbConfig};
use super::plugins::{self, mysql, postgres, Kind, Vars};
use super::templates::{Context, Template};
use super::{roles, Database, NAME};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tresor_core::barrier::View;
use tresor_core::error::{Error, Result};
use tresor_core::framework::{Call, LeaseCall, Path};
use tresor_core::logical::{Operation::*, Response, Secret};
use tresor_core::password_policy::{self, PasswordPolicy};
use tresor_core::util::unix_now;

pub fn paths() -> Vec<Path<Database>> {
    vec![Path::new(&format!("creds/(?P<name>{NAME})"))
        .op(Read, Database::creds)
        .help("Request database credentials for a role.")]
}

/// A new password: the connection's password policy, or Vault's default.
pub async fn generate_password(storage: &View, cfg: &DbConfig) -> Result<String> {
    if cfg.password_policy.is_empty() {
        return Ok(PasswordPolicy::vault_default().generate());
    }
    let p = password_policy::lookup(storage, &cfg.password_policy)
        .await
        .map_err(|e| Error::bad(format!("unable to generate password: {e}")))?;
    Ok(p.generate())
}

impl Database {
    async fn creds(self: Arc<Self>, c: Call) -> Result<Response> {
        let role_name = c.fields.str("name").to_string();
        let role = roles::load(&c.storage, &role_name)
            .await?
            .ok_or_else(|| Error::bad(format!("unknown role: {role_name}")))?;
        let (cfg, conn) = self.conn(&c.storage, &role.db_name).await?;
        if !cfg.allows(&role_name) {
            return Err(Error::bad(format!("{role_name:?} is not an allowed role")));
        }
        let kind = cfg.kind()?;
        // TTLs as the lease will have them: role, else mount, else system; never past max.
        let limits = c.ttl_limits;
        let max = match role.max_ttl {
            0 => limits.max_ttl,
            m => m.min(limits.max_ttl),
        };
        let ttl = match role.default_ttl {
            0 => limits.default_ttl,
            t => t,
        }
        .min(max);
        let display = c
            .caller
            .as_ref()
            .map(|cl| cl.entry.display_name.clone())
            .unwrap_or_default();
        let template = Template::parse(&cfg.username_template()?)
            .map_err(|e| Error::bad(format!("unable to parse username_template: {e}")))?;
        let username = template
            .render(&Context {
                role_name: role_name.clone(),
                display_name: display,
            })
            .map_err(|e| Error::bad(format!("unable to generate username: {e}")))?;
        if !plugins::safe_identifier(&username) {
            return Err(Error::bad(
                "unable to generate username: the result contains quotes, backslashes, \
                 semicolons or control characters",
            ));
        }
        let password = generate_password(&c.storage, &cfg).await?;
        let expiration = postgres::expiration(unix_now() + ttl as i64);
        let vars = Vars {
            name: &username,
            password: &password,
            expiration: &expiration,
        };
        let stmts = if role.creation_statements.is_empty() {
            vec![match kind {
                Kind::Postgres => postgres::CREATION.to_string(),
                Kind::MySql { .. } => mysql::CREATION.to_string(),
            }]
        } else {
            role.creation_statements.clone()
        };
        if let Err(e) = config::run(&conn, &stmts, &vars).await {
            if !role.rollback_statements.is_empty() {
                if let Err(re) = config::run(&conn, &role.rollback_statements, &vars).await {
                    tracing::warn!(role = %role_name, error = %re, "rollback statements failed");
                }
            }
            return Err(Error::internal(format!(
                "unable to create database user: {e}"
            )));
        }
        Ok(Response {
            data: json!({ "username": username, "password": password })
                .as_object()
                .cloned(),
            secret: Some(Box::new(Secret {
                ttl: Duration::from_secs(ttl),
                max_ttl: Duration::from_secs(max),
                renewable: true,
                internal: json!({
                    "username": username,
                    "role": role_name,
                    "db_name": role.db_name,
                }),
            })),
            ..Default::default()
        })
    }
}

/// The user, role and connection a lease is for.
fn lease_user(l: &LeaseCall) -> Result<(String, String, String)> {
    let s = |k: &str| l.internal[k].as_str().unwrap_or("").to_string();
    let username = s("username");
    if username.is_empty() {
        return Err(Error::internal("secret is missing the username"));
    }
    Ok((username, s("role"), s("db_name")))
}

/// The lease's connection: the one recorded with it, else its role's (older leases).
async fn lease_conn(
    db: &Database,
    l: &LeaseCall,
    role: &Option<roles::Role>,
    db_name: &str,
) -> Result<(DbConfig, Arc<plugins::Conn>)> {
    let name = if db_name.is_empty() {
        role.as_ref().map(|r| r.db_name.clone()).unwrap_or_default()
    } else {
        db_name.to_string()
    };
    if name.is_empty() {
        return Err(Error::internal(
            "could not find the connection of the secret",
        ));
    }
    db.conn(&l.storage, &name).await
}

/// Runs a lease hook with a deadline, so a hung database cannot stall the lease manager.
async fn bounded(what: &str, f: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::time::timeout(plugins::OPERATION_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| {
            Err(Error::internal(format!(
                "{what}: timed out talking to the database"
            )))
        })
}

/// Lease revocation: drops the user. Errors (a database that is down) keep the lease.
pub async fn revoke(db: Arc<Database>, l: LeaseCall) -> Result<()> {
    bounded("unable to delete database user", revoke_inner(db, l)).await
}

async fn revoke_inner(db: Arc<Database>, l: LeaseCall) -> Result<()> {
    let (username, role_name, db_name) = lease_user(&l)?;
    let role = roles::load(&l.storage, &role_name).await?;
    let (cfg, conn) = lease_conn(&db, &l, &role, &db_name).await?;
    let custom = role
        .as_ref()
        .map(|r| r.revocation_statements.clone())
        .unwrap_or_default();
    if !custom.is_empty() {
        let vars = Vars {
            name: &username,
            ..Default::default()
        };
        return config::run(&conn, &custom, &vars)
            .await
            .map_err(|e| Error::internal(format!("unable to delete database user: {e}")));
    }
    let r = match cfg.kind()? {
        Kind::Postgres => postgres::revoke_default(&conn, &username).await,
        Kind::MySql { .. } => mysql::revoke_default(&conn, &username).await,
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::internal(format!(
            "unable to delete database user: {}",
            conn.describe(e, &[]).await
        ))),
    }
}

/// Lease renewal: extends the user's validity to the lease's new end.
pub async fn renew(db: Arc<Database>, l: LeaseCall) -> Result<()> {
    bounded("unable to renew database user", renew_inner(db, l)).await
}

async fn renew_inner(db: Arc<Database>, l: LeaseCall) -> Result<()> {
    let (username, role_name, db_name) = lease_user(&l)?;
    let role = roles::load(&l.storage, &role_name).await?.ok_or_else(|| {
        Error::bad(format!(
            "error during renew: could not find role with name: {role_name:?}"
        ))
    })?;
    let (cfg, conn) = lease_conn(&db, &l, &Some(role.clone()), &db_name).await?;
    let stmts = if role.renew_statements.is_empty() {
        match cfg.kind()? {
            Kind::Postgres => vec![postgres::RENEW.to_string()],
            // MySQL users do not expire: nothing to do.
            Kind::MySql { .. } => return Ok(()),
        }
    } else {
        role.renew_statements.clone()
    };
    let expiration = postgres::expiration(unix_now() + l.increment as i64);
    let vars = Vars {
        name: &username,
        password: "",
        expiration: &expiration,
    };
    config::run(&conn, &stmts, &vars)
        .await
        .map_err(|e| Error::internal(format!("unable to renew database user: {e}")))
}
