//! The database "plugins": what differs between PostgreSQL and MySQL/MariaDB. Vault runs each
//! as a separate plugin process; here they are two modules over one driver crate (sqlx), chosen
//! by a connection's `plugin_name`.
//!
//! * connection URLs: `{{username}}` / `{{password}}` are filled from the config's `username`
//!   and `password` (percent-encoded in URL forms, so any password works), then parsed into
//!   driver options. Accepted forms: PostgreSQL URLs (`postgres://`, `postgresql://`) and
//!   libpq key/value strings (`host=... user=...`); MySQL Go-driver DSNs
//!   (`user:pass@tcp(host:port)/db?tls=...`, Vault's form) and `mysql://` URLs.
//! * a small pool per connection config ([`DbPool`]), at most `max_open_connections` wide;
//!   statement logging is off (statements carry passwords);
//! * statement execution with Vault's placeholders (`{{name}}`, `{{username}}`,
//!   `{{password}}`, `{{expiration}}`), split on `;` as Vault splits them;
//! * every driver error goes through [`scrub`], so no message ever contains a password.

pub mod mysql;
pub mod postgres;

use sqlx::ConnectOptions;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;
use tresor_core::error::{Error, Result};

/// A boxed, `Send` future. Driver calls are boxed where they are made: the compiler then
/// checks `Send` with concrete lifetimes (sqlx's executor traits otherwise trip the
/// "`Send` is not general enough" limitation in the handlers that await them).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long to wait for a connection (a database that is down must fail fast: revocations
/// are retried by the lease manager).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one lease hook or scheduled rotation may take before it is abandoned (and
/// retried: the lease manager and the rotation schedule both back off).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Which database a connection speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    /// `legacy` (mysql-legacy / mysql-rds / mysql-aurora): 16-character usernames.
    MySql {
        legacy: bool,
    },
}

impl Kind {
    /// The plugin for a `plugin_name`, as Vault's catalog names them.
    /// Every `plugin_name` [`Kind::from_plugin`] knows.
    pub const NAMES: &'static [&'static str] = &[
        "mysql-aurora-database-plugin",
        "mysql-database-plugin",
        "mysql-legacy-database-plugin",
        "mysql-rds-database-plugin",
        "postgresql-database-plugin",
    ];

    pub fn from_plugin(name: &str) -> Option<Kind> {
        match name {
            "postgresql-database-plugin" => Some(Kind::Postgres),
            "mysql-database-plugin" => Some(Kind::MySql { legacy: false }),
            "mysql-legacy-database-plugin"
            | "mysql-rds-database-plugin"
            | "mysql-aurora-database-plugin" => Some(Kind::MySql { legacy: true }),
            _ => None,
        }
    }

    /// Vault's default `username_template` of the plugin.
    pub fn default_username_template(self) -> &'static str {
        match self {
            Kind::Postgres => {
                r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#
            }
            Kind::MySql { legacy: false } => {
                r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 10) (.RoleName | truncate 10) (random 20) (unix_time) | truncate 32 }}"#
            }
            Kind::MySql { legacy: true } => {
                r#"{{ printf "v-%s-%s" (.RoleName | truncate 4) (random 20) | truncate 16 }}"#
            }
        }
    }
}

/// What a connection needs: the URL template and the credentials to fill it with.
#[derive(Debug, Clone)]
pub struct ConnSpec {
    pub kind: Kind,
    pub url: String,
    pub username: String,
    pub password: String,
    pub max_open: u32,
    pub max_lifetime: Option<Duration>,
}

/// Driver options built from a [`ConnSpec`].
#[derive(Debug, Clone)]
pub enum Options {
    Pg(sqlx::postgres::PgConnectOptions),
    My(sqlx::mysql::MySqlConnectOptions),
}

/// A connection pool to one database.
#[derive(Debug, Clone)]
pub enum DbPool {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
}

/// Replaces every occurrence of the secrets (raw and percent-encoded) in a message.
pub fn scrub(msg: &str, secrets: &[&str]) -> String {
    let mut out = msg.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(*s, "*****");
        let enc = pct(s);
        if enc != *s {
            out = out.replace(&enc, "*****");
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters (for URL userinfo).
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A driver error as a message without secrets. The pool's "timed out" says nothing about the
/// cause; callers that can retry a direct connection do so to report the real one.
pub fn driver_error(e: &sqlx::Error, secrets: &[&str]) -> String {
    let msg = match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    };
    scrub(&msg, secrets)
}

impl ConnSpec {
    fn secrets(&self) -> Vec<&str> {
        vec![self.password.as_str()]
    }

    /// Parses the URL template into driver options (no connection is made).
    pub fn options(&self) -> Result<Options> {
        let opts = match self.kind {
            Kind::Postgres => Options::Pg(self.pg_options()?.disable_statement_logging()),
            Kind::MySql { .. } => Options::My(self.my_options()?.disable_statement_logging()),
        };
        Ok(opts)
    }

    fn bad_url(&self, why: impl std::fmt::Display) -> Error {
        Error::bad(scrub(
            &format!("error parsing connection_url: {why}"),
            &self.secrets(),
        ))
    }

    /// `{{username}}` / `{{password}}` substituted, percent-encoded (URL forms).
    fn url_filled(&self) -> String {
        self.url
            .replace("{{username}}", &pct(&self.username))
            .replace("{{password}}", &pct(&self.password))
    }

    fn pg_options(&self) -> Result<sqlx::postgres::PgConnectOptions> {
        use sqlx::postgres::{PgConnectOptions, PgSslMode};
        let t = self.url.trim();
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            let mut o =
                PgConnectOptions::from_str(&self.url_filled()).map_err(|e| self.bad_url(e))?;
            if !t.contains('@') && !self.username.is_empty() {
                o = o.username(&self.username);
                if !self.password.is_empty() {
                    o = o.password(&self.password);
                }
            }
            return Ok(o);
        }
        if t.is_empty() {
            return Err(Error::bad("connection_url cannot be empty"));
        }
        // libpq key=value form; values may be single-quoted.
        let mut o = PgConnectOptions::new_without_pgpass();
        for (k, v) in parse_kv(t).map_err(|e| self.bad_url(e))? {
            let v = v
                .replace("{{username}}", &self.username)
                .replace("{{password}}", &self.password);
            o = match k.as_str() {
                "host" => o.host(&v),
                "port" => o.port(v.parse().map_err(|_| self.bad_url("invalid port"))?),
                "user" => o.username(&v),
                "password" => o.password(&v),
                "dbname" => o.database(&v),
                "sslmode" => o.ssl_mode(
                    PgSslMode::from_str(&v).map_err(|_| self.bad_url("invalid sslmode"))?,
                ),
                "sslrootcert" => o.ssl_root_cert(v.as_str()),
                "application_name" => o.application_name(&v),
                _ => o,
            };
        }
        Ok(o)
    }

    fn my_options(&self) -> Result<sqlx::mysql::MySqlConnectOptions> {
        use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
        let t = self.url.trim();
        if t.starts_with("mysql://") || t.starts_with("mariadb://") {
            let filled = self.url_filled().replacen("mariadb://", "mysql://", 1);
            let mut o = MySqlConnectOptions::from_str(&filled).map_err(|e| self.bad_url(e))?;
            if !t.contains('@') && !self.username.is_empty() {
                o = o.username(&self.username);
                if !self.password.is_empty() {
                    o = o.password(&self.password);
                }
            }
            return Ok(o);
        }
        if t.is_empty() {
            return Err(Error::bad("connection_url cannot be empty"));
        }
        // Go driver DSN: [user[:password]@][net[(addr)]]/dbname[?param=value&...]
        let dsn = parse_go_dsn(t).map_err(|e| self.bad_url(e))?;
        let fill = |s: &str| {
            s.replace("{{username}}", &self.username)
                .replace("{{password}}", &self.password)
        };
        let mut o = MySqlConnectOptions::new().ssl_mode(MySqlSslMode::Disabled);
        if let Some(u) = &dsn.user {
            o = o.username(&fill(u));
        }
        // An empty password is none (as Go's driver): a MySQL account without a password
        // refuses a login that sends one, even an empty one.
        if let Some(p) = dsn.password.as_deref().map(fill).filter(|p| !p.is_empty()) {
            o = o.password(&p);
        }
        match dsn.net.as_str() {
            "unix" => o = o.socket(dsn.addr.clone()),
            _ => {
                let addr = if dsn.addr.is_empty() {
                    "127.0.0.1:3306".to_string()
                } else {
                    dsn.addr.clone()
                };
                let (host, port) = match addr.rsplit_once(':') {
                    Some((h, p)) if !h.ends_with(']') || addr.starts_with('[') => (
                        h.trim_start_matches('[').trim_end_matches(']').to_string(),
                        p.parse::<u16>().map_err(|_| self.bad_url("invalid port"))?,
                    ),
                    _ => (addr.clone(), 3306),
                };
                o = o.host(&host).port(port);
            }
        }
        if !dsn.db.is_empty() {
            o = o.database(&dsn.db);
        }
        for (k, v) in &dsn.params {
            o = match (k.as_str(), v.as_str()) {
                ("tls", "true") => o.ssl_mode(MySqlSslMode::VerifyIdentity),
                ("tls", "skip-verify") => o.ssl_mode(MySqlSslMode::Required),
                ("tls", "preferred") => o.ssl_mode(MySqlSslMode::Preferred),
                ("tls", "false") => o.ssl_mode(MySqlSslMode::Disabled),
                ("tls", other) => {
                    return Err(self.bad_url(format!(
                    "unsupported tls value {other:?} (use true, skip-verify, preferred or false)"
                )))
                }
                ("charset", c) => o.charset(c.split(',').next().unwrap_or("utf8mb4")),
                _ => o,
            };
        }
        Ok(o)
    }

    /// A pool (lazy: nothing connects until first use).
    pub fn pool(&self) -> Result<DbPool> {
        Ok(match self.options()? {
            Options::Pg(o) => DbPool::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(self.max_open.max(1))
                    .min_connections(0)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .idle_timeout(Some(Duration::from_secs(300)))
                    .max_lifetime(self.max_lifetime)
                    .connect_lazy_with(o),
            ),
            Options::My(o) => DbPool::My(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(self.max_open.max(1))
                    .min_connections(0)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .idle_timeout(Some(Duration::from_secs(300)))
                    .max_lifetime(self.max_lifetime)
                    .connect_lazy_with(o),
            ),
        })
    }

    /// Opens one connection and closes it: proves the URL and credentials work. The error
    /// names the cause (refused, authentication failed ...) and never the password.
    pub fn verify(&self) -> BoxFut<'_, std::result::Result<(), String>> {
        Box::pin(self.verify_inner())
    }

    async fn verify_inner(&self) -> std::result::Result<(), String> {
        let secrets = self.secrets();
        let opts = self.options().map_err(|e| e.to_string())?;
        let r = tokio::time::timeout(CONNECT_TIMEOUT, async {
            use sqlx::Connection;
            match opts {
                Options::Pg(o) => {
                    let c = o.connect().await?;
                    c.close().await
                }
                Options::My(o) => {
                    let c = o.connect().await?;
                    c.close().await
                }
            }
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(driver_error(&e, &secrets)),
            Err(_) => Err("timed out connecting to the database".into()),
        }
    }
}

/// A live connection config: its spec and its pool.
#[derive(Debug)]
pub struct Conn {
    pub spec: ConnSpec,
    pub pool: DbPool,
}

impl Conn {
    pub fn new(spec: ConnSpec) -> Result<Conn> {
        let pool = spec.pool()?;
        Ok(Conn { spec, pool })
    }

    /// A driver error as a clean message. When the pool only says it timed out, one direct
    /// connection attempt names the real cause (refused, authentication failed ...).
    pub fn describe<'a>(
        &'a self,
        e: sqlx::Error,
        extra_secrets: &'a [&'a str],
    ) -> BoxFut<'a, String> {
        Box::pin(self.describe_inner(e, extra_secrets))
    }

    async fn describe_inner(&self, e: sqlx::Error, extra_secrets: &[&str]) -> String {
        let mut secrets = self.spec.secrets();
        secrets.extend_from_slice(extra_secrets);
        if matches!(e, sqlx::Error::PoolTimedOut) {
            if let Err(cause) = self.spec.verify().await {
                return scrub(
                    &format!("unable to connect to the database: {cause}"),
                    &secrets,
                );
            }
        }
        driver_error(&e, &secrets)
    }

    /// Runs filled statements in one transaction.
    pub fn exec_tx<'a>(
        &'a self,
        stmts: &'a [String],
    ) -> BoxFut<'a, std::result::Result<(), sqlx::Error>> {
        Box::pin(self.exec_tx_inner(stmts))
    }

    async fn exec_tx_inner(&self, stmts: &[String]) -> std::result::Result<(), sqlx::Error> {
        match &self.pool {
            DbPool::Pg(p) => {
                let mut tx = p.begin().await?;
                for q in stmts {
                    sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(q)).await?;
                }
                tx.commit().await
            }
            DbPool::My(p) => {
                let mut tx = p.begin().await?;
                for q in stmts {
                    sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(q)).await?;
                }
                tx.commit().await
            }
        }
    }

    /// Whether `username` / `password` can log in with this config's URL.
    pub fn login_works<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFut<'a, std::result::Result<(), String>> {
        Box::pin(self.login_works_inner(username, password))
    }

    async fn login_works_inner(
        &self,
        username: &str,
        password: &str,
    ) -> std::result::Result<(), String> {
        let secrets = [password, self.spec.password.as_str()];
        // The config's URL with the admin filled in, then the login's credentials on top.
        let opts = self
            .spec
            .options()
            .map_err(|e| scrub(&e.to_string(), &secrets))?;
        let r = tokio::time::timeout(CONNECT_TIMEOUT, async {
            use sqlx::Connection;
            match opts {
                Options::Pg(o) => {
                    o.username(username)
                        .password(password)
                        .connect()
                        .await?
                        .close()
                        .await
                }
                Options::My(o) => {
                    o.username(username)
                        .password(password)
                        .connect()
                        .await?
                        .close()
                        .await
                }
            }
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(driver_error(&e, &secrets)),
            Err(_) => Err("timed out connecting to the database".into()),
        }
    }
}

impl DbPool {
    pub fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(self.close_inner())
    }

    async fn close_inner(&self) {
        match self {
            DbPool::Pg(p) => p.close().await,
            DbPool::My(p) => p.close().await,
        }
    }
}

/// Splits Vault's statement lists the way Vault does: a statement containing `$$` (a
/// PostgreSQL function body) runs whole; others are split on `;`, empty parts dropped.
pub fn split_statements(stmts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in stmts {
        if s.contains("$$") {
            if !s.trim().is_empty() {
                out.push(s.trim().to_string());
            }
            continue;
        }
        out.extend(
            s.split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        );
    }
    out
}

/// Values for Vault's statement placeholders.
#[derive(Default, Clone)]
pub struct Vars<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub expiration: &'a str,
}

/// Fills `{{name}}` / `{{username}}` / `{{password}}` / `{{expiration}}` in one statement.
/// Passwords are placed inside SQL string literals by every sensible statement, so quotes
/// (and for MySQL backslashes) in them are escaped for that context.
pub fn fill(stmt: &str, v: &Vars, kind: Kind) -> String {
    let pw = match kind {
        Kind::Postgres => v.password.replace('\'', "''"),
        Kind::MySql { .. } => v.password.replace('\\', "\\\\").replace('\'', "''"),
    };
    stmt.replace("{{name}}", v.name)
        .replace("{{username}}", v.name)
        .replace("{{password}}", &pw)
        .replace("{{expiration}}", v.expiration)
}

/// Whether a database user name is safe to place inside quoted identifiers and literals.
pub fn safe_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '\'' | '"' | '`' | '\\' | ';'))
}

fn parse_kv(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("missing \"=\" after {key:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            val.push(c)
                        }
                    }
                    Some('\'') => break,
                    Some(c) => val.push(c),
                    None => return Err("unterminated quoted value".into()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key, val));
    }
    Ok(out)
}

/// The parts of a Go MySQL driver DSN.
#[derive(Debug, Default, PartialEq)]
pub struct GoDsn {
    pub user: Option<String>,
    pub password: Option<String>,
    pub net: String,
    pub addr: String,
    pub db: String,
    pub params: Vec<(String, String)>,
}

/// `[user[:password]@][net[(addr)]]/dbname[?param1=value1&paramN=valueN]`, as the Go driver
/// parses it (the last `/` ends the address, the last `@` before it ends the credentials).
pub fn parse_go_dsn(dsn: &str) -> std::result::Result<GoDsn, String> {
    let (main, query) = match dsn.find('?') {
        // A '?' inside the credentials would be odd; the Go driver splits at the last '/'.
        Some(i) if dsn[..i].contains('/') => (&dsn[..i], Some(&dsn[i + 1..])),
        _ => (dsn, None),
    };
    let slash = main
        .rfind('/')
        .ok_or("invalid DSN: missing the slash separating the database name")?;
    let (left, db) = (&main[..slash], &main[slash + 1..]);
    let mut out = GoDsn {
        db: db.to_string(),
        ..Default::default()
    };
    let rest = match left.rfind('@') {
        Some(at) => {
            let cred = &left[..at];
            match cred.split_once(':') {
                Some((u, p)) => {
                    out.user = Some(u.to_string());
                    out.password = Some(p.to_string());
                }
                None => out.user = Some(cred.to_string()),
            }
            &left[at + 1..]
        }
        None => left,
    };
    if let Some(open) = rest.find('(') {
        if !rest.ends_with(')') {
            return Err(
                "invalid DSN: network address not terminated (missing closing brace)".into(),
            );
        }
        out.net = rest[..open].to_string();
        out.addr = rest[open + 1..rest.len() - 1].to_string();
    } else {
        out.net = if rest.is_empty() {
            "tcp".into()
        } else {
            rest.to_string()
        };
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.params.push((k.to_string(), v.to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_dsn() {
        let d =
            parse_go_dsn("{{username}}:{{password}}@tcp(127.0.0.1:3306)/app?tls=false").unwrap();
        assert_eq!(d.user.as_deref(), Some("{{username}}"));
        assert_eq!(d.password.as_deref(), Some("{{password}}"));
        assert_eq!(
            (d.net.as_str(), d.addr.as_str(), d.db.as_str()),
            ("tcp", "127.0.0.1:3306", "app")
        );
        assert_eq!(d.params, vec![("tls".to_string(), "false".to_string())]);
        let d = parse_go_dsn("root:p@ss@tcp(db:3306)/").unwrap();
        assert_eq!(d.password.as_deref(), Some("p@ss"));
        assert!(parse_go_dsn("nothing").is_err());
    }

    #[test]
    fn urls_take_any_password_and_errors_hide_it() {
        let spec = ConnSpec {
            kind: Kind::Postgres,
            url: "postgresql://{{username}}:{{password}}@localhost:5432/postgres?sslmode=disable"
                .into(),
            username: "adm".into(),
            password: "p@ss/w:rd?#'".into(),
            max_open: 2,
            max_lifetime: None,
        };
        let Options::Pg(o) = spec.options().unwrap() else {
            panic!()
        };
        assert_eq!(o.get_username(), "adm");
        let spec = ConnSpec {
            kind: Kind::MySql { legacy: false },
            url: "{{username}}:{{password}}@tcp(127.0.0.1:3306)/".into(),
            ..spec
        };
        let Options::My(o) = spec.options().unwrap() else {
            panic!()
        };
        assert_eq!(o.get_username(), "adm");
        assert_eq!(
            scrub(
                "bad p@ss/w:rd?#' and p%40ss%2Fw%3Ard%3F%23%27",
                &["p@ss/w:rd?#'"]
            ),
            "bad ***** and *****"
        );
    }

    #[test]
    fn statements_split_like_vault() {
        let s = split_statements(&[
            "CREATE ROLE a; GRANT x TO a;".into(),
            "DO $$ BEGIN PERFORM 1; END $$;".into(),
        ]);
        assert_eq!(s.len(), 3);
        assert!(s[2].starts_with("DO $$"));
        let v = Vars {
            name: "u",
            password: "it's",
            expiration: "e",
        };
        assert_eq!(
            fill("PASSWORD '{{password}}' {{name}}", &v, Kind::Postgres),
            "PASSWORD 'it''s' u"
        );
    }
}
