//! MySQL and MariaDB (`mysql-database-plugin`, and the `mysql-legacy`, `mysql-rds`,
//! `mysql-aurora` aliases with 16-character usernames).
//!
//! Defaults when a role gives none (least privilege: a user that can log in and nothing else;
//! give `creation_statements` with your `GRANT`s, as with Vault):
//!
//! * creation: `CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'`;
//! * renewal: nothing (MySQL users do not expire);
//! * static / root rotation ([`rotate_default`]): `ALTER USER ... IDENTIFIED BY` for every
//!   host the user exists with (Vault's default covers only `'%'`);
//! * revocation ([`revoke_default`]): the user's connections killed, then `REVOKE ALL` and
//!   `DROP USER` for every host it exists with. Succeeds if the user is already gone.

use super::{BoxFut, Conn, DbPool};

pub const CREATION: &str = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';";

/// `'s'` for a MySQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The hosts a user exists with; `None` if `mysql.user` cannot be read.
async fn hosts(pool: &sqlx::MySqlPool, username: &str) -> Option<Vec<String>> {
    sqlx::query_scalar::<_, String>(
        "SELECT CONVERT(Host USING utf8mb4) FROM mysql.user WHERE User = ?",
    )
    .bind(username)
    .fetch_all(pool)
    .await
    .ok()
}

/// Kills a user's open connections (best effort).
async fn kill_sessions(pool: &sqlx::MySqlPool, username: &str) {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE USER = ?",
    )
    .bind(username)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for id in ids {
        let _ = sqlx::raw_sql(&format!("KILL CONNECTION {id}"))
            .execute(pool)
            .await;
    }
}

pub fn revoke_default<'a>(
    conn: &'a Conn,
    username: &'a str,
) -> BoxFut<'a, Result<(), sqlx::Error>> {
    Box::pin(revoke_default_inner(conn, username))
}

async fn revoke_default_inner(conn: &Conn, username: &str) -> Result<(), sqlx::Error> {
    let DbPool::My(pool) = &conn.pool else {
        return Ok(());
    };
    let hosts = match hosts(pool, username).await {
        Some(h) if h.is_empty() => return Ok(()),
        Some(h) => h,
        None => vec!["%".to_string()],
    };
    kill_sessions(pool, username).await;
    let u = quote_literal(username);
    for h in hosts {
        let h = quote_literal(&h);
        let _ = sqlx::raw_sql(&format!("REVOKE ALL PRIVILEGES, GRANT OPTION FROM {u}@{h}"))
            .execute(pool)
            .await;
        sqlx::raw_sql(&format!("DROP USER {u}@{h}"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Sets a user's password on every host it exists with.
pub fn rotate_default<'a>(
    conn: &'a Conn,
    username: &'a str,
    password: &'a str,
) -> BoxFut<'a, Result<(), sqlx::Error>> {
    Box::pin(rotate_default_inner(conn, username, password))
}

async fn rotate_default_inner(
    conn: &Conn,
    username: &str,
    password: &str,
) -> Result<(), sqlx::Error> {
    let DbPool::My(pool) = &conn.pool else {
        return Ok(());
    };
    let hosts = match hosts(pool, username).await {
        Some(h) if h.is_empty() => {
            return Err(sqlx::Error::Protocol(format!(
                "user {username:?} does not exist"
            )))
        }
        Some(h) => h,
        None => vec!["%".to_string()],
    };
    let mut stmts = Vec::new();
    for h in hosts {
        stmts.push(format!(
            "ALTER USER {}@{} IDENTIFIED BY {}",
            quote_literal(username),
            quote_literal(&h),
            quote_literal(password)
        ));
    }
    conn.exec_tx(&stmts).await
}
