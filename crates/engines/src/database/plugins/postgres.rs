//! PostgreSQL (`postgresql-database-plugin`): default statements and the default revocation.
//!
//! Defaults when a role gives none (Vault's plugin requires creation statements; Tresor has a
//! least-privilege default instead: a login role with no grants):
//!
//! * creation: `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL
//!   '{{expiration}}'`;
//! * renewal: `ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}'`;
//! * static / root rotation: `ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}'`;
//! * revocation ([`revoke_default`]): no more logins, the user's sessions terminated
//!   (`pg_terminate_backend`), what it owns reassigned to the admin and its privileges dropped
//!   (`REASSIGN OWNED` / `DROP OWNED`, with Vault's `REVOKE` list as a fallback), then
//!   `DROP ROLE`.

use super::{BoxFut, Conn, DbPool};

pub const CREATION: &str =
    r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;
pub const RENEW: &str = r#"ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';"#;
pub const ROTATION: &str = r#"ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}';"#;

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Vault's `{{expiration}}` for PostgreSQL: `2006-01-02 15:04:05-0700` in UTC.
pub fn expiration(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]+0000");
    t.format(&f).unwrap_or_default()
}

/// Drops a dynamic user the thorough way; succeeds if the user is already gone.
pub fn revoke_default<'a>(
    conn: &'a Conn,
    username: &'a str,
) -> BoxFut<'a, Result<(), sqlx::Error>> {
    Box::pin(revoke_default_inner(conn, username))
}

async fn revoke_default_inner(conn: &Conn, username: &str) -> Result<(), sqlx::Error> {
    let DbPool::Pg(pool) = &conn.pool else {
        return Ok(());
    };
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(username)
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(());
    }
    let q = quote_ident(username);
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(pool)
            .await
            .unwrap_or(false);
    // A CREATEROLE admin that is no superuser needs membership to terminate the user's
    // sessions and to reassign what it owns (PostgreSQL < 16 does not grant it on creation).
    if !superuser {
        let _ = sqlx::raw_sql(&format!("GRANT {q} TO CURRENT_USER"))
            .execute(pool)
            .await;
    }
    // No new sessions, then end the open ones.
    let _ = sqlx::raw_sql(&format!("ALTER ROLE {q} NOLOGIN"))
        .execute(pool)
        .await;
    let _ = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE usename = $1 AND pid <> pg_backend_pid()",
    )
    .bind(username)
    .execute(pool)
    .await;
    let owned = sqlx::raw_sql(&format!(
        "REASSIGN OWNED BY {q} TO CURRENT_USER; DROP OWNED BY {q};"
    ))
    .execute(pool)
    .await;
    if owned.is_err() {
        // Vault's revocation list: revoke what can be revoked, then try the drop anyway.
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT table_schema::text FROM information_schema.role_column_grants WHERE grantee = $1",
        )
        .bind(username)
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        let mut stmts = Vec::new();
        for s in schemas {
            let s = quote_ident(&s);
            stmts.push(format!(
                "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA {s} FROM {q}"
            ));
            stmts.push(format!("REVOKE USAGE ON SCHEMA {s} FROM {q}"));
        }
        stmts.push(format!(
            "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM {q}"
        ));
        stmts.push(format!(
            "REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM {q}"
        ));
        stmts.push(format!("REVOKE USAGE ON SCHEMA public FROM {q}"));
        if let Ok(db) = sqlx::query_scalar::<_, String>("SELECT current_database()::text")
            .fetch_one(pool)
            .await
        {
            stmts.push(format!(
                "REVOKE CONNECT ON DATABASE {} FROM {q}",
                quote_ident(&db)
            ));
        }
        for s in stmts {
            let _ = sqlx::raw_sql(&s).execute(pool).await;
        }
    }
    sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {q}"))
        .execute(pool)
        .await?;
    Ok(())
}
