//! The database engine against real databases: a real in-process core with the engine
//! mounted, talking to the PostgreSQL (127.0.0.1:5432) and MariaDB/MySQL (127.0.0.1:3306) of
//! the machine. Every claim is checked inside the database itself: issued users log in (a
//! real connection with their password), revoked or expired users are gone (`pg_roles`,
//! `mysql.user`), renewal moves `pg_authid.rolvaliduntil`, rotations change the real password
//! (PostgreSQL: the stored SCRAM verifier matches the new password and not the old, which holds
//! even where `pg_hba` trusts local connections; MariaDB: the old password is refused, the new
//! one accepted), and a database that is down makes revocation retry instead of vanish.
//!
//! Admin connections for the checks: `TRESOR_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `TRESOR_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`). Each test makes its own admin user with a random name (so
//! `postgres`/`root` are never rotated) and removes what it created.

use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tresor_core::barrier::View;
use tresor_core::core::{Core, CoreConfig, Registry};
use tresor_core::error::Error;
use tresor_core::logical::{Operation, Request, Response};
use tresor_core::seal::SealConfig;
use tresor_engines::database;
use tresor_storage::memory::MemoryStorage;
use tresor_storage::Storage;

// ---------------------------------------------------------------------------------------------
// Harness

struct Env {
    core: Arc<Core>,
    root: String,
    keys: Vec<zeroize::Zeroizing<Vec<u8>>>,
    storage: Arc<MemoryStorage>,
}

fn registry() -> Registry {
    Registry::default().secrets("database", Arc::new(database::factory))
}

async fn setup() -> Env {
    let storage = Arc::new(MemoryStorage::new());
    let core = Core::new(storage.clone(), registry(), CoreConfig::default());
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
    let env = Env {
        core,
        root: init.root_token,
        keys: init.keys,
        storage,
    };
    env.ok(
        Operation::Update,
        "sys/mounts/database",
        json!({"type": "database"}),
    )
    .await;
    env
}

impl Env {
    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response, Error> {
        self.core
            .handle(
                Request::new(op, path)
                    .with_token(&self.root)
                    .with_data(data),
            )
            .await
    }
    async fn ok(&self, op: Operation, path: &str, data: Value) -> Response {
        match self.call(op, path, data).await {
            Ok(r) => r,
            Err(e) => panic!("{} {path}: {} {e}", op.as_str(), e.status()),
        }
    }
    async fn err(&self, op: Operation, path: &str, data: Value) -> Error {
        match self.call(op, path, data).await {
            Ok(r) => panic!(
                "{} {path}: expected an error, got {:?}",
                op.as_str(),
                r.data
            ),
            Err(e) => e,
        }
    }
    async fn read(&self, path: &str) -> Value {
        data(&self.ok(Operation::Read, path, json!({})).await)
    }
    async fn write(&self, path: &str, body: Value) -> Response {
        self.ok(Operation::Update, path, body).await
    }
    async fn lease_exists(&self, id: &str) -> bool {
        self.call(
            Operation::Update,
            "sys/leases/lookup",
            json!({ "lease_id": id }),
        )
        .await
        .is_ok()
    }
    /// The database mount's storage, as the engine sees it.
    fn mount_view(&self) -> View {
        let m = self
            .core
            .mounts("mounts")
            .unwrap()
            .into_iter()
            .find(|m| m.path == "database/")
            .unwrap();
        View::new(self.core.barrier.clone(), m.storage_prefix())
    }
    /// A new server process over the same storage.
    async fn restart(self) -> Env {
        self.core.seal_now();
        let Env {
            core,
            root,
            keys,
            storage,
        } = self;
        drop(core);
        let core = Core::new(
            storage.clone() as Arc<dyn Storage>,
            registry(),
            CoreConfig::default(),
        );
        core.submit_unseal_key(keys[0].clone()).await.unwrap();
        Env {
            core,
            root,
            keys,
            storage,
        }
    }
}

fn data(r: &Response) -> Value {
    Value::Object(r.data.clone().unwrap_or_default())
}

fn suffix() -> String {
    tresor_core::util::random_alnum(8).to_lowercase()
}

async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 5 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL helpers

fn pg_admin_url() -> String {
    std::env::var("TRESOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&pg_admin_url())
        .await
        .expect("PostgreSQL must be reachable at TRESOR_TEST_PG_URL (127.0.0.1:5432)")
}

fn pg_host_port() -> (String, u16) {
    let o: sqlx::postgres::PgConnectOptions = pg_admin_url().parse().unwrap();
    (o.get_host().to_string(), o.get_port())
}

/// A CREATEROLE (not superuser) admin with a password, as an operator would give Tresor.
async fn pg_make_admin(pool: &sqlx::PgPool) -> (String, String) {
    let name = format!("tresor_adm_{}", suffix());
    let pw = format!("Adm-{}", suffix());
    pool.execute(format!("CREATE ROLE \"{name}\" WITH LOGIN CREATEROLE PASSWORD '{pw}'").as_str())
        .await
        .unwrap();
    (name, pw)
}

async fn pg_drop(pool: &sqlx::PgPool, role: &str) {
    let _ = pool
        .execute(format!("DROP ROLE IF EXISTS \"{role}\"").as_str())
        .await;
}

async fn pg_role_exists(pool: &sqlx::PgPool, role: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn pg_valid_until(pool: &sqlx::PgPool, role: &str) -> i64 {
    sqlx::query_scalar::<_, f64>(
        "SELECT extract(epoch FROM rolvaliduntil)::float8 FROM pg_authid WHERE rolname = $1",
    )
    .bind(role)
    .fetch_one(pool)
    .await
    .unwrap() as i64
}

fn pg_conn_url(user: &str, pw: &str) -> String {
    let (h, p) = pg_host_port();
    format!(
        "postgres://{}:{}@{h}:{p}/postgres?sslmode=disable",
        pct(user),
        pct(pw)
    )
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn pg_login(user: &str, pw: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    sqlx::PgConnection::connect(&pg_conn_url(user, pw)).await
}

/// Whether the database's stored SCRAM-SHA-256 verifier was made from `password`: the real
/// password check, independent of how `pg_hba.conf` authenticates local connections.
async fn pg_password_is(pool: &sqlx::PgPool, role: &str, password: &str) -> bool {
    use aws_lc_rs::{digest, hmac, pbkdf2};
    use base64::Engine;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(role)
            .fetch_one(pool)
            .await
            .unwrap();
    let stored = stored.expect("the role has a password");
    let rest = stored
        .strip_prefix("SCRAM-SHA-256$")
        .expect("password_encryption is scram-sha-256");
    let (params, keys) = rest.split_once('$').unwrap();
    let (iter, salt) = params.split_once(':').unwrap();
    let (stored_key, _) = keys.split_once(':').unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(salt).unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iter.parse().unwrap()).unwrap(),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let client_key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &salted), b"Client Key");
    let want = digest::digest(&digest::SHA256, client_key.as_ref());
    b64.decode(stored_key).unwrap() == want.as_ref()
}

async fn pg_config(env: &Env, name: &str, admin: &str, pw: &str, extra: Value) {
    let (h, p) = pg_host_port();
    let mut body = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{h}:{p}/postgres?sslmode=disable"),
        "username": admin,
        "password": pw,
        "allowed_roles": "*",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    env.write(&format!("database/config/{name}"), body).await;
}

// ---------------------------------------------------------------------------------------------
// MySQL helpers

fn my_admin_url() -> String {
    std::env::var("TRESOR_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

fn my_host_port() -> (String, u16) {
    let o: sqlx::mysql::MySqlConnectOptions = my_admin_url().parse().unwrap();
    (o.get_host().to_string(), o.get_port())
}

async fn my() -> sqlx::MySqlPool {
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(&my_admin_url())
        .await
        .expect("MariaDB/MySQL must be reachable at TRESOR_TEST_MYSQL_URL (127.0.0.1:3306)")
}

async fn my_make_admin(pool: &sqlx::MySqlPool) -> (String, String) {
    let name = format!("tadm_{}", suffix());
    let pw = format!("Adm-{}", suffix());
    pool.execute(format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{pw}'").as_str())
        .await
        .unwrap();
    pool.execute(format!("GRANT ALL PRIVILEGES ON *.* TO '{name}'@'%' WITH GRANT OPTION").as_str())
        .await
        .unwrap();
    (name, pw)
}

async fn my_drop(pool: &sqlx::MySqlPool, user: &str) {
    let _ = pool
        .execute(format!("DROP USER IF EXISTS '{user}'@'%'").as_str())
        .await;
}

async fn my_user_exists(pool: &sqlx::MySqlPool, user: &str) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap()
        > 0
}

async fn my_login(user: &str, pw: &str) -> Result<sqlx::MySqlConnection, sqlx::Error> {
    let (h, p) = my_host_port();
    let o = sqlx::mysql::MySqlConnectOptions::new()
        .host(&h)
        .port(p)
        .username(user)
        .password(pw)
        .ssl_mode(sqlx::mysql::MySqlSslMode::Disabled);
    sqlx::MySqlConnection::connect_with(&o).await
}

async fn my_config(env: &Env, name: &str, plugin: &str, admin: &str, pw: &str) {
    let (h, p) = my_host_port();
    env.write(
        &format!("database/config/{name}"),
        json!({
            "plugin_name": plugin,
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp({h}:{p})/"),
            "username": admin,
            "password": pw,
            "allowed_roles": ["app*", "legacy"],
            "max_open_connections": 3,
        }),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy we can take down: "the database is down".

struct Proxy {
    port: u16,
    target: (String, u16),
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: (String, u16)) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let mut p = Proxy {
            port,
            target,
            task: None,
        };
        p.serve(l);
        p
    }
    fn serve(&mut self, l: TcpListener) {
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = l.accept().await else {
                    return;
                };
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut out) = TcpStream::connect((target.0.as_str(), target.1)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
            // Dropping the JoinSet (when this task is aborted) aborts every proxied connection.
        }));
    }
    /// Refuses new connections and cuts the open ones.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
    async fn resume(&mut self) {
        let s = TcpSocket::new_v4().unwrap();
        s.set_reuseaddr(true).unwrap();
        s.bind(format!("127.0.0.1:{}", self.port).parse().unwrap())
            .unwrap();
        let l = s.listen(64).unwrap();
        self.serve(l);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

#[tokio::test]
async fn pg_dynamic_credentials_login_renew_revoke() {
    let pool = pg().await;
    let (admin, admin_pw) = pg_make_admin(&pool).await;
    let env = setup().await;
    pg_config(&env, "pg", &admin, &admin_pw, json!({})).await;
    // Reading the config never returns the password.
    let cfg = env.read("database/config/pg").await;
    assert_eq!(cfg["plugin_name"], "postgresql-database-plugin");
    assert_eq!(cfg["connection_details"]["username"], admin.as_str());
    assert!(cfg["connection_details"].get("password").is_none());
    assert!(!cfg.to_string().contains(&admin_pw));
    assert_eq!(
        data(&env.ok(Operation::List, "database/config", json!({})).await)["keys"],
        json!(["pg"])
    );
    // No creation statements: the default login role with VALID UNTIL.
    env.write(
        "database/roles/app",
        json!({ "db_name": "pg", "default_ttl": "1h", "max_ttl": "3h" }),
    )
    .await;
    let role = env.read("database/roles/app").await;
    assert_eq!(role["default_ttl"], 3600);
    assert_eq!(role["creation_statements"], json!([]));
    let r = env
        .ok(Operation::Read, "database/creds/app", json!({}))
        .await;
    let lease = r.lease.clone().unwrap();
    assert_eq!(lease.duration, 3600);
    assert!(lease.renewable);
    let d = data(&r);
    let user = d["username"].as_str().unwrap().to_string();
    let pw = d["password"].as_str().unwrap().to_string();
    assert!(user.starts_with("v-root-app-"), "{user}");
    assert!(user.len() <= 63);
    assert_eq!(pw.len(), 20);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    // The user exists, really logs in, and its stored password is the issued one.
    assert!(pg_role_exists(&pool, &user).await);
    assert!(pg_password_is(&pool, &user, &pw).await);
    let mut session = pg_login(&user, &pw)
        .await
        .expect("issued credentials log in");
    let me: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut session)
        .await
        .unwrap();
    assert_eq!(me, user);
    let now = tresor_core::util::unix_now();
    let until = pg_valid_until(&pool, &user).await;
    assert!(
        (until - (now + 3600)).abs() <= 5,
        "VALID UNTIL {until} vs {now}+3600"
    );
    // Renewal moves VALID UNTIL to the lease's new end (bounded by max_ttl).
    let ren = env
        .write(
            "sys/leases/renew",
            json!({ "lease_id": lease.lease_id, "increment": "2h" }),
        )
        .await;
    assert_eq!(ren.lease.unwrap().duration, 7200);
    let until2 = pg_valid_until(&pool, &user).await;
    assert!(
        (until2 - (now + 7200)).abs() <= 5,
        "renewed VALID UNTIL {until2}"
    );
    // Revocation ends the open session and drops the role.
    env.write("sys/leases/revoke", json!({ "lease_id": lease.lease_id }))
        .await;
    assert!(!pg_role_exists(&pool, &user).await);
    assert!(
        sqlx::query("SELECT 1").execute(&mut session).await.is_err(),
        "the revoked user's session was terminated"
    );
    assert!(pg_login(&user, &pw).await.is_err());
    assert!(!env.lease_exists(&lease.lease_id).await);
    // Unknown role: Vault's 400.
    let e = env
        .err(Operation::Read, "database/creds/nope", json!({}))
        .await;
    assert_eq!(e.status(), 400);
    assert_eq!(e.to_string(), "unknown role: nope");
    env.ok(Operation::Delete, "database/config/pg", json!({}))
        .await;
    pg_drop(&pool, &admin).await;
}

/// Concurrent renewals of one lease: each ends in `ALTER ROLE ... VALID UNTIL` on the same
/// PostgreSQL user, which fails with "tuple concurrently updated" when two run at once. The
/// lease manager runs one hook per lease at a time: every renewal answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_concurrent_renewals_of_one_lease_all_succeed() {
    let pool = pg().await;
    let (admin, admin_pw) = pg_make_admin(&pool).await;
    let env = Arc::new(setup().await);
    pg_config(&env, "pg", &admin, &admin_pw, json!({})).await;
    env.write(
        "database/roles/app",
        json!({ "db_name": "pg", "default_ttl": "1h", "max_ttl": "3h" }),
    )
    .await;
    for trial in 0..10 {
        let r = env
            .ok(Operation::Read, "database/creds/app", json!({}))
            .await;
        let lease_id = r.lease.unwrap().lease_id;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (env, lease_id) = (env.clone(), lease_id.clone());
            tasks.push(tokio::spawn(async move {
                env.call(
                    Operation::Update,
                    "sys/leases/renew",
                    json!({ "lease_id": lease_id, "increment": format!("{}m", 61 + i) }),
                )
                .await
            }));
        }
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                panic!(
                    "trial {trial}: a concurrent renewal failed: {} {e}",
                    e.status()
                );
            }
        }
        env.write("sys/leases/revoke", json!({ "lease_id": lease_id }))
            .await;
    }
    env.ok(Operation::Delete, "database/config/pg", json!({}))
        .await;
    pg_drop(&pool, &admin).await;
}

#[tokio::test]
async fn pg_custom_statements_template_and_expiry() {
    let pool = pg().await;
    let (admin, admin_pw) = pg_make_admin(&pool).await;
    let env = setup().await;
    pg_config(
        &env,
        "pg",
        &admin,
        &admin_pw,
        json!({ "username_template": "{{ printf \"tresor_%s_%s\" (.RoleName | replace \"-\" \"_\") (random 8) | lowercase }}" }),
    )
    .await;
    let table = format!("tresor_t_{}", suffix());
    pool.execute(format!("CREATE TABLE {table} (x int); INSERT INTO {table} VALUES (42); GRANT SELECT ON {table} TO \"{admin}\" WITH GRANT OPTION").as_str())
        .await
        .unwrap();
    env.write(
        "database/roles/read-only",
        json!({
            "db_name": "pg",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                format!("GRANT SELECT ON {table} TO \"{{{{name}}}}\";"),
            ],
            "revocation_statements": format!("REVOKE ALL ON {table} FROM \"{{{{name}}}}\"; DROP ROLE \"{{{{name}}}}\";"),
            "default_ttl": 3,
        }),
    )
    .await;
    let r = env
        .ok(Operation::Read, "database/creds/read-only", json!({}))
        .await;
    let d = data(&r);
    let user = d["username"].as_str().unwrap().to_string();
    let pw = d["password"].as_str().unwrap().to_string();
    assert!(
        user.starts_with("tresor_read_only_") && user.len() == 25,
        "{user}"
    );
    let mut c = pg_login(&user, &pw).await.unwrap();
    let q = format!("SELECT x FROM {table}");
    let x: i32 = sqlx::query_scalar(&q).fetch_one(&mut c).await.unwrap();
    assert_eq!(x, 42);
    drop(c);
    // The lease expires on its own and the revocation statements drop the user.
    let id = r.lease.unwrap().lease_id;
    assert!(
        eventually(15, || async { !pg_role_exists(&pool, &user).await }).await,
        "the expired user was dropped"
    );
    assert!(eventually(5, || async { !env.lease_exists(&id).await }).await);
    pool.execute(format!("DROP TABLE {table}").as_str())
        .await
        .unwrap();
    env.ok(Operation::Delete, "database/config/pg", json!({}))
        .await;
    pg_drop(&pool, &admin).await;
}

#[tokio::test]
async fn pg_static_role_rotation_changes_the_real_password() {
    let pool = pg().await;
    let (admin, admin_pw) = pg_make_admin(&pool).await;
    let app = format!("tresor_app_{}", suffix());
    pool.execute(format!("CREATE ROLE \"{app}\" WITH LOGIN PASSWORD 'initial-pw'").as_str())
        .await
        .unwrap();
    let env = setup().await;
    pg_config(&env, "pg", &admin, &admin_pw, json!({})).await;
    // Validation, as Vault answers.
    for (body, msg) in [
        (
            json!({"db_name": "pg", "username": app}),
            "rotation_period or rotation_schedule is required",
        ),
        (
            json!({"db_name": "pg", "username": app, "rotation_period": 2}),
            "rotation_period must be 5 seconds or more",
        ),
        (
            json!({"db_name": "pg", "username": app, "rotation_period": 60, "rotation_schedule": "* * * * *"}),
            "mutually exclusive",
        ),
        (
            json!({"db_name": "pg", "username": app, "rotation_schedule": "nope"}),
            "could not parse rotation_schedule",
        ),
        (
            json!({"db_name": "pg", "username": app, "rotation_schedule": "0 0 * * SAT", "rotation_window": 60}),
            "rotation_window must be 3600 seconds or more",
        ),
    ] {
        let e = env
            .err(Operation::Update, "database/static-roles/app", body)
            .await;
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains(msg), "{e}");
    }
    // A user that does not exist: not created, a 500 naming the database's reason.
    let e = env
        .err(
            Operation::Update,
            "database/static-roles/ghost",
            json!({"db_name": "pg", "username": "tresor_no_such_user", "rotation_period": "1h"}),
        )
        .await;
    assert_eq!(e.status(), 500);
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert_eq!(
        env.err(Operation::Read, "database/static-roles/ghost", json!({}))
            .await
            .status(),
        404
    );
    // Creating the role rotates at once: only Tresor knows the password.
    env.write(
        "database/static-roles/app",
        json!({"db_name": "pg", "username": app, "rotation_period": "1h"}),
    )
    .await;
    let sr = env.read("database/static-roles/app").await;
    assert_eq!(sr["username"], app.as_str());
    assert_eq!(sr["rotation_period"], 3600);
    assert!(sr["last_vault_rotation"].is_string());
    assert!(sr.get("password").is_none());
    let c1 = env.read("database/static-creds/app").await;
    let pw1 = c1["password"].as_str().unwrap().to_string();
    assert!(c1["ttl"].as_i64().unwrap() > 3590);
    assert!(!pg_password_is(&pool, &app, "initial-pw").await);
    assert!(pg_password_is(&pool, &app, &pw1).await);
    pg_login(&app, &pw1).await.unwrap();
    // rotate-role: old password out, new one in.
    env.write("database/rotate-role/app", json!({})).await;
    let pw2 = env.read("database/static-creds/app").await["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(pw1, pw2);
    assert!(!pg_password_is(&pool, &app, &pw1).await);
    assert!(pg_password_is(&pool, &app, &pw2).await);
    // The username cannot change; a role and a static role cannot share a name.
    let e = env
        .err(
            Operation::Update,
            "database/static-roles/app",
            json!({"username": "other"}),
        )
        .await;
    assert_eq!(e.to_string(), "cannot update static account username");
    let e = env
        .err(
            Operation::Update,
            "database/roles/app",
            json!({"db_name": "pg"}),
        )
        .await;
    assert_eq!(e.status(), 400);
    // A short period: the schedule rotates by itself.
    env.write(
        "database/static-roles/app",
        json!({"rotation_period": "5s"}),
    )
    .await;
    assert!(
        eventually(15, || async {
            env.read("database/static-creds/app").await["password"] != pw2.as_str()
        })
        .await,
        "the periodic rotation ran"
    );
    let pw3 = env.read("database/static-creds/app").await["password"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(Operation::Delete, "database/static-roles/app", json!({}))
        .await;
    // The last rotation may have happened just before the delete: the database has the final
    // stored password or, at worst, the one before it; never an unknown one.
    assert!(pg_password_is(&pool, &app, &pw3).await || pg_password_is(&pool, &app, &pw2).await);
    assert_eq!(
        env.err(Operation::Read, "database/static-creds/app", json!({}))
            .await
            .status(),
        400
    );
    pg_drop(&pool, &app).await;
    pg_drop(&pool, &admin).await;
}

#[tokio::test]
async fn pg_pending_rotation_is_resolved_after_a_crash() {
    let pool = pg().await;
    let (admin, admin_pw) = pg_make_admin(&pool).await;
    let app = format!("tresor_crash_{}", suffix());
    pool.execute(format!("CREATE ROLE \"{app}\" WITH LOGIN PASSWORD 'x0'").as_str())
        .await
        .unwrap();
    let env = setup().await;
    pg_config(&env, "pg", &admin, &admin_pw, json!({})).await;
    env.write(
        "database/static-roles/app",
        json!({"db_name": "pg", "username": app, "rotation_period": "1h"}),
    )
    .await;
    let current = env.read("database/static-creds/app").await["password"]
        .as_str()
        .unwrap()
        .to_string();
    // Crash 1: the new password reached the database, but was never marked current.
    let view = env.mount_view();
    let mut role: Value = view.get_json("static-role/app").await.unwrap().unwrap();
    role["pending"] = json!({"password": "Crash-Pending-One-1", "since": 1});
    view.put_json("static-role/app", &role).await.unwrap();
    pool.execute(format!("ALTER ROLE \"{app}\" PASSWORD 'Crash-Pending-One-1'").as_str())
        .await
        .unwrap();
    let env = env.restart().await;
    assert!(
        eventually(10, || async {
            env.read("database/static-creds/app").await["password"] == "Crash-Pending-One-1"
        })
        .await,
        "the pending password became current"
    );
    assert!(pg_password_is(&pool, &app, "Crash-Pending-One-1").await);
    // Crash 2: the pending password was stored, the database never changed.
    let view = env.mount_view();
    let mut role: Value = view.get_json("static-role/app").await.unwrap().unwrap();
    role["pending"] = json!({"password": "Crash-Pending-Two-2", "since": 1});
    view.put_json("static-role/app", &role).await.unwrap();
    let env = env.restart().await;
    // Either outcome is consistent; what must hold is stored == database.
    assert!(
        eventually(10, || async {
            let v: Value = env
                .mount_view()
                .get_json("static-role/app")
                .await
                .unwrap()
                .unwrap();
            v.get("pending").is_none()
        })
        .await
    );
    let stored = env.read("database/static-creds/app").await["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pg_password_is(&pool, &app, &stored).await,
        "stored {stored} is the database's"
    );
    assert_ne!(stored, current);
    env.ok(Operation::Delete, "database/static-roles/app", json!({}))
        .await;
    pg_drop(&pool, &app).await;
    pg_drop(&pool, &admin).await;
}

#[tokio::test]
async fn pg_rotate_root_leaves_only_tresor_knowing_the_password() {
    let pool = pg().await;
    let (admin, admin_pw) = pg_make_admin(&pool).await;
    let env = setup().await;
    pg_config(&env, "pg", &admin, &admin_pw, json!({})).await;
    assert!(pg_password_is(&pool, &admin, &admin_pw).await);
    env.write("database/rotate-root/pg", json!({})).await;
    // The old root password no longer matches, the config does not show the new one, and the
    // engine keeps working with it.
    assert!(!pg_password_is(&pool, &admin, &admin_pw).await);
    let cfg = env.read("database/config/pg").await;
    assert!(cfg["connection_details"].get("password").is_none());
    env.write("database/roles/app", json!({"db_name": "pg"}))
        .await;
    let r = env
        .ok(Operation::Read, "database/creds/app", json!({}))
        .await;
    let user = data(&r)["username"].as_str().unwrap().to_string();
    assert!(pg_role_exists(&pool, &user).await);
    env.write(
        "sys/leases/revoke",
        json!({"lease_id": r.lease.unwrap().lease_id}),
    )
    .await;
    assert!(!pg_role_exists(&pool, &user).await);
    // Twice in a row works too (the second rotation authenticates with the first's password).
    env.write("database/rotate-root/pg", json!({})).await;
    env.write("database/reset/pg", json!({})).await;
    // Errors as Vault's.
    let e = env
        .err(Operation::Update, "database/rotate-root/nope", json!({}))
        .await;
    assert_eq!(e.status(), 400);
    env.ok(Operation::Delete, "database/config/pg", json!({}))
        .await;
    pg_drop(&pool, &admin).await;
}

#[tokio::test]
async fn pg_bad_connection_settings_are_clean_400s() {
    let pool = pg().await;
    let env = setup().await;
    let secret = "Sup3r-Secret-Pw";
    let (h, p) = pg_host_port();
    // Nothing listens on the port.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    for (url, user, why) in [
        (
            format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{dead_port}/postgres?sslmode=disable"),
            "postgres",
            "refused",
        ),
        (
            format!("postgresql://{{{{username}}}}:{{{{password}}}}@{h}:{p}/postgres?sslmode=disable"),
            "tresor_no_such_admin",
            "tresor_no_such_admin",
        ),
        (
            format!("postgresql://{{{{username}}}}:{{{{password}}}}@{h}:{p}/tresor_no_such_db?sslmode=disable"),
            "postgres",
            "tresor_no_such_db",
        ),
    ] {
        let e = env
            .err(
                Operation::Update,
                "database/config/bad",
                json!({
                    "plugin_name": "postgresql-database-plugin",
                    "connection_url": url,
                    "username": user,
                    "password": secret,
                }),
            )
            .await;
        assert_eq!(e.status(), 400, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("error verifying connection"), "{msg}");
        assert!(msg.to_lowercase().contains(why), "{msg} should say {why}");
        assert!(!msg.contains(secret), "{msg}");
    }
    assert_eq!(
        env.err(Operation::Read, "database/config/bad", json!({}))
            .await
            .status(),
        404
    );
    // verify_connection=false stores it anyway; an unknown plugin is refused.
    env.write(
        "database/config/later",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{dead_port}/postgres"),
            "username": "postgres", "password": secret, "verify_connection": false,
        }),
    )
    .await;
    let e = env
        .err(
            Operation::Update,
            "database/config/x",
            json!({"plugin_name": "oracle-database-plugin", "connection_url": "x"}),
        )
        .await;
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("plugin not found in the catalog"));
    // A role on a connection that does not allow it: a 400 (Vault answers 500).
    env.write(
        "database/config/narrow",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}@{h}:{p}/postgres?sslmode=disable"),
            "username": "postgres", "allowed_roles": ["only-this"],
        }),
    )
    .await;
    env.write("database/roles/other", json!({"db_name": "narrow"}))
        .await;
    let e = env
        .err(Operation::Read, "database/creds/other", json!({}))
        .await;
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("is not an allowed role"));
    drop(pool);
}

#[tokio::test]
async fn pg_revocation_retries_while_the_database_is_down() {
    let pool = pg().await;
    let (admin, admin_pw) = pg_make_admin(&pool).await;
    let mut proxy = Proxy::start(pg_host_port()).await;
    let env = setup().await;
    env.write(
        "database/config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable", proxy.port),
            "username": admin, "password": admin_pw, "allowed_roles": "*",
        }),
    )
    .await;
    env.write(
        "database/roles/app",
        json!({"db_name": "pg", "default_ttl": "2s"}),
    )
    .await;
    let r = env
        .ok(Operation::Read, "database/creds/app", json!({}))
        .await;
    let user = data(&r)["username"].as_str().unwrap().to_string();
    let id = r.lease.unwrap().lease_id;
    assert!(pg_role_exists(&pool, &user).await);
    // The database goes away: an explicit revoke fails with a 500 naming the cause ...
    proxy.stop();
    let e = env
        .err(
            Operation::Update,
            "sys/leases/revoke",
            json!({"lease_id": id}),
        )
        .await;
    assert_eq!(e.status(), 500);
    assert!(!e.to_string().contains(&admin_pw));
    // ... and expiry keeps the lease, with its error, for another attempt.
    // Wait (bounded) for the expiry loop's first failed attempt; on a loaded machine it can
    // take longer than the TTL.
    let mut attempted = false;
    for _ in 0..300 {
        if let Some(e) = env.core.active().unwrap().leases.lookup(&id).await.unwrap() {
            if e.revoke_attempts >= 1 {
                attempted = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(attempted, "no revocation attempt was made within 30 s");
    assert!(
        env.lease_exists(&id).await,
        "the lease survives failed revocations"
    );
    assert!(pg_role_exists(&pool, &user).await);
    let entry = env
        .core
        .active()
        .unwrap()
        .leases
        .lookup(&id)
        .await
        .unwrap()
        .unwrap();
    assert!(entry.revoke_attempts >= 1, "{entry:?}");
    let err = entry.last_error.unwrap_or_default();
    assert!(err.contains("unable to delete database user"), "{err}");
    assert!(!err.contains(&admin_pw));
    // Back up: the next retry drops the user and the lease.
    proxy.resume().await;
    assert!(
        eventually(40, || async { !pg_role_exists(&pool, &user).await }).await,
        "revoked once the database is back"
    );
    assert!(eventually(5, || async { !env.lease_exists(&id).await }).await);
    env.ok(Operation::Delete, "database/config/pg", json!({}))
        .await;
    pg_drop(&pool, &admin).await;
}

#[tokio::test]
async fn password_policies_in_sys_and_in_the_engine() {
    let pool = pg().await;
    let (admin, admin_pw) = pg_make_admin(&pool).await;
    let env = setup().await;
    let name = format!("dbpol{}", suffix());
    let policy = "length = 32\nrule \"charset\" {\n  charset = \"abcdefghjkmnpqrstuvwxyz\"\n  min-chars = 4\n}\nrule \"charset\" {\n  charset = \"23456789\"\n  min-chars = 4\n}\n";
    env.write(
        &format!("sys/policies/password/{name}"),
        json!({ "policy": policy }),
    )
    .await;
    assert_eq!(
        env.read(&format!("sys/policies/password/{name}")).await["policy"],
        policy
    );
    let g = env
        .read(&format!("sys/policies/password/{name}/generate"))
        .await;
    let p = g["password"].as_str().unwrap();
    assert_eq!(p.len(), 32);
    assert!(p.chars().filter(|c| c.is_ascii_digit()).count() >= 4);
    let keys = data(
        &env.ok(Operation::List, "sys/policies/password", json!({}))
            .await,
    );
    assert!(keys["keys"].as_array().unwrap().contains(&json!(name)));
    let e = env
        .err(
            Operation::Update,
            "sys/policies/password/bad",
            json!({"policy": "length = 2\nrule \"charset\" {\n charset = \"a\"\n min-chars = 3\n}"}),
        )
        .await;
    assert_eq!(e.status(), 400);
    assert_eq!(
        env.err(
            Operation::Read,
            "sys/policies/password/nope/generate",
            json!({})
        )
        .await
        .status(),
        404
    );
    // The engine generates with it.
    pg_config(
        &env,
        "pg",
        &admin,
        &admin_pw,
        json!({ "password_policy": name }),
    )
    .await;
    env.write("database/roles/app", json!({"db_name": "pg"}))
        .await;
    let r = env
        .ok(Operation::Read, "database/creds/app", json!({}))
        .await;
    let d = data(&r);
    let pw = d["password"].as_str().unwrap();
    assert_eq!(pw.len(), 32, "{pw}");
    assert!(
        pw.chars()
            .all(|c| "abcdefghjkmnpqrstuvwxyz23456789".contains(c)),
        "{pw}"
    );
    let user = d["username"].as_str().unwrap().to_string();
    pg_login(&user, pw).await.unwrap();
    env.write(
        "sys/leases/revoke",
        json!({"lease_id": r.lease.unwrap().lease_id}),
    )
    .await;
    assert!(!pg_role_exists(&pool, &user).await);
    env.ok(
        Operation::Delete,
        &format!("sys/policies/password/{name}"),
        json!({}),
    )
    .await;
    env.ok(Operation::Delete, "database/config/pg", json!({}))
        .await;
    pg_drop(&pool, &admin).await;
}

// ---------------------------------------------------------------------------------------------
// MySQL / MariaDB

#[tokio::test]
async fn mysql_dynamic_credentials_login_and_revoke() {
    let pool = my().await;
    let (admin, admin_pw) = my_make_admin(&pool).await;
    let env = setup().await;
    my_config(&env, "my", "mysql-database-plugin", &admin, &admin_pw).await;
    let cfg = env.read("database/config/my").await;
    assert_eq!(cfg["connection_details"]["max_open_connections"], 3);
    assert!(!cfg.to_string().contains(&admin_pw));
    let db = format!("tresor_db_{}", suffix());
    pool.execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .unwrap();
    env.write(
        "database/roles/app",
        json!({
            "db_name": "my",
            "creation_statements": format!("CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'; GRANT SELECT, INSERT ON {db}.* TO '{{{{name}}}}'@'%';"),
            "default_ttl": "1h",
        }),
    )
    .await;
    let r = env
        .ok(Operation::Read, "database/creds/app", json!({}))
        .await;
    let d = data(&r);
    let user = d["username"].as_str().unwrap().to_string();
    let pw = d["password"].as_str().unwrap().to_string();
    assert!(
        user.starts_with("v-root-app-") && user.len() <= 32,
        "{user}"
    );
    assert!(my_user_exists(&pool, &user).await);
    let mut session = my_login(&user, &pw)
        .await
        .expect("issued credentials log in");
    let grants: Vec<String> = sqlx::query_scalar("SELECT CONVERT(CURRENT_USER() USING utf8mb4)")
        .fetch_all(&mut session)
        .await
        .unwrap();
    assert!(grants[0].starts_with(&user));
    assert!(
        my_login(&user, "wrong-password").await.is_err(),
        "passwords are checked"
    );
    // Renewal is accepted (MySQL users do not expire).
    env.write(
        "sys/leases/renew",
        json!({"lease_id": r.lease.as_ref().unwrap().lease_id}),
    )
    .await;
    // Revocation (the default: kill sessions, drop the user) ends everything.
    env.write(
        "sys/leases/revoke",
        json!({"lease_id": r.lease.unwrap().lease_id}),
    )
    .await;
    assert!(!my_user_exists(&pool, &user).await);
    assert!(sqlx::query("SELECT 1").execute(&mut session).await.is_err());
    assert!(my_login(&user, &pw).await.is_err());
    // Default creation statements (least privilege) and the legacy plugin's 16-char names.
    my_config(
        &env,
        "legacy",
        "mysql-legacy-database-plugin",
        &admin,
        &admin_pw,
    )
    .await;
    env.write("database/roles/legacy", json!({"db_name": "legacy"}))
        .await;
    let r = env
        .ok(Operation::Read, "database/creds/legacy", json!({}))
        .await;
    let d = data(&r);
    let user = d["username"].as_str().unwrap().to_string();
    assert!(user.len() <= 16 && user.starts_with("v-lega-"), "{user}");
    my_login(&user, d["password"].as_str().unwrap())
        .await
        .unwrap();
    env.write(
        "sys/leases/revoke",
        json!({"lease_id": r.lease.unwrap().lease_id}),
    )
    .await;
    assert!(!my_user_exists(&pool, &user).await);
    // A role the connection does not allow.
    env.write("database/roles/other", json!({"db_name": "my"}))
        .await;
    assert_eq!(
        env.err(Operation::Read, "database/creds/other", json!({}))
            .await
            .status(),
        400
    );
    pool.execute(format!("DROP DATABASE {db}").as_str())
        .await
        .unwrap();
    my_drop(&pool, &admin).await;
}

#[tokio::test]
async fn mysql_static_rotation_and_rotate_root() {
    let pool = my().await;
    let (admin, admin_pw) = my_make_admin(&pool).await;
    let app = format!("tapp_{}", suffix());
    pool.execute(format!("CREATE USER '{app}'@'%' IDENTIFIED BY 'initial-pw'").as_str())
        .await
        .unwrap();
    let env = setup().await;
    my_config(&env, "my", "mysql-database-plugin", &admin, &admin_pw).await;
    env.write(
        "database/static-roles/app",
        json!({"db_name": "my", "username": app, "rotation_schedule": "0 0 * * SAT", "rotation_window": "2h"}),
    )
    .await;
    let sr = env.read("database/static-roles/app").await;
    assert_eq!(sr["rotation_schedule"], "0 0 * * SAT");
    assert_eq!(sr["rotation_window"], 7200);
    assert!(sr.get("rotation_period").is_none());
    let c1 = env.read("database/static-creds/app").await;
    let pw1 = c1["password"].as_str().unwrap().to_string();
    assert!(c1["ttl"].as_i64().unwrap() > 0);
    assert!(
        my_login(&app, "initial-pw").await.is_err(),
        "old password refused"
    );
    my_login(&app, &pw1).await.expect("new password accepted");
    env.write("database/rotate-role/app", json!({})).await;
    let pw2 = env.read("database/static-creds/app").await["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(my_login(&app, &pw1).await.is_err());
    my_login(&app, &pw2).await.unwrap();
    // rotate-root: the admin's old password stops working; the engine goes on.
    env.write("database/rotate-root/my", json!({})).await;
    assert!(
        my_login(&admin, &admin_pw).await.is_err(),
        "old root password refused"
    );
    env.write("database/rotate-role/app", json!({})).await;
    let pw3 = env.read("database/static-creds/app").await["password"]
        .as_str()
        .unwrap()
        .to_string();
    my_login(&app, &pw3).await.unwrap();
    // A wrong password in a config: a clean 400 that does not repeat it.
    let (h, p) = my_host_port();
    let e = env
        .err(
            Operation::Update,
            "database/config/wrong",
            json!({
                "plugin_name": "mysql-database-plugin",
                "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp({h}:{p})/"),
                "username": app, "password": "Definitely-Wrong-9",
            }),
        )
        .await;
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("Access denied"), "{e}");
    assert!(!e.to_string().contains("Definitely-Wrong-9"));
    env.ok(Operation::Delete, "database/static-roles/app", json!({}))
        .await;
    my_drop(&pool, &app).await;
    my_drop(&pool, &admin).await;
}

#[tokio::test]
async fn mysql_admin_without_a_password_connects() {
    // As `root` with an empty password on a fresh MariaDB: an empty password is no password
    // (sending one, even empty, is refused with "Access denied (using password: YES)").
    let pool = my().await;
    let admin = format!("tnopw_{}", suffix());
    pool.execute(format!("CREATE USER '{admin}'@'%'").as_str())
        .await
        .unwrap();
    pool.execute(
        format!("GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION").as_str(),
    )
    .await
    .unwrap();
    let env = setup().await;
    my_config(&env, "nopw", "mysql-database-plugin", &admin, "").await;
    env.write(
        "database/roles/app-nopw",
        json!({
            "db_name": "nopw",
            "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
            "default_ttl": "1h",
        }),
    )
    .await;
    let r = env
        .ok(Operation::Read, "database/creds/app-nopw", json!({}))
        .await;
    let d = data(&r);
    let user = d["username"].as_str().unwrap().to_string();
    my_login(&user, d["password"].as_str().unwrap())
        .await
        .expect("issued credentials log in");
    my_drop(&pool, &user).await;
    my_drop(&pool, &admin).await;
}
