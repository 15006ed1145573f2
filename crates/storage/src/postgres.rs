//! PostgreSQL storage: one table of `(k, v, idx)` rows shared by every server process that
//! points at it, for deployments that already run PostgreSQL (Patroni clusters, managed
//! services) and want several Tresor nodes on it.
//!
//! Why tokio-postgres (and not sqlx, which the database engine uses): it speaks libpq's
//! multi-host connection strings with `target_session_attrs=read-write`, so a connection
//! finds the new primary after a switchover; sqlx has no multi-host support (sqlx#3333).
//! deadpool-postgres pools its connections; tokio-postgres-rustls gives it TLS on the one TLS
//! stack of the workspace (rustls over aws-lc-rs).
//!
//! Layout (created when missing unless `skip_create_table`):
//!
//! ```sql
//! CREATE TABLE tresor_kv (k BYTEA PRIMARY KEY, v BYTEA NOT NULL, idx BIGINT NOT NULL);
//! CREATE TABLE tresor_ha (id SMALLINT PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL,
//!     holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL, last_idx BIGINT NOT NULL, ...);
//! ```
//!
//! Keys are bytes, so order is bytewise whatever the database's collation; `list` is a loose
//! index scan (one index probe per child, never a `LIKE` over the subtree) and `scan` a range.
//!
//! Writes: one writer task folds concurrent batches into one transaction (group commit, as
//! the file store does). The transaction first takes the one row of the HA table with
//! `UPDATE ... SET last_idx = last_idx + 1 RETURNING last_idx`: that row lock serializes the
//! writers of every process on the database (so a conditional batch's check and its writes
//! are atomic across processes) and numbers the commits in commit order. A batch's
//! expectations are read inside the transaction, after the lock; a batch whose expectation
//! fails is skipped whole and answered `Conflict`. A write is acknowledged only after COMMIT
//! returns; if the connection drops during COMMIT the outcome is unknown and the caller gets
//! an error, never an acknowledgement.
//!
//! Privileges: `CREATE` on the schema the first time (or create the tables beforehand and set
//! `skip_create_table`), then `SELECT, INSERT, UPDATE, DELETE` on both tables.

use crate::{children, Expect, Result, Storage, StorageError, WriteOp};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

/// The most batches folded into one transaction.
const MAX_GROUP: usize = 256;

/// `storage "postgresql" { ... }` (Vault's keys; OpenBao's `skip_create_table`).
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    /// A libpq connection string: URL (`postgres://user@h1,h2/db?target_session_attrs=read-write`)
    /// or key/value (`host=h1,h2 dbname=tresor sslmode=verify-full`).
    pub connection_url: String,
    pub table: String,
    pub ha_table: String,
    /// Most connections open at once (Vault's `max_parallel`).
    pub max_parallel: usize,
    pub skip_create_table: bool,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            connection_url: String::new(),
            table: "tresor_kv".into(),
            ha_table: "tresor_ha".into(),
            max_parallel: 16,
            skip_create_table: false,
        }
    }
}

fn pg_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Io(format!("postgresql: {e}"))
}

/// A table name as an SQL identifier: `name` or `schema.name`, letters, digits and `_` only,
/// each part double-quoted.
fn identifier(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        });
    if !ok {
        return Err(StorageError::Io(format!(
            "postgresql: invalid table name {name:?} (letters, digits and _; optionally schema.table)"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

/// libpq's `sslmode` as tokio-postgres understands it, and whether certificates are verified.
/// tokio-postgres knows only disable/prefer/require; `verify-ca` and `verify-full` mean
/// "require, and verify" (libpq does not verify at all for prefer/require).
struct Tls {
    mode: &'static str,
    verify: bool,
    root_cert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL or key/value form), so
/// tokio-postgres parses the rest; returns the cleaned string and the TLS settings.
fn split_tls(conn: &str) -> Result<(String, Tls)> {
    let mut mode = "prefer".to_string();
    let mut root_cert = None;
    let cleaned = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        match conn.split_once('?') {
            None => conn.to_string(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|kv| match kv.split_once('=') {
                        Some(("sslmode", v)) => {
                            mode = v.to_string();
                            false
                        }
                        Some(("sslrootcert", v)) => {
                            root_cert = Some(v.to_string());
                            false
                        }
                        _ => true,
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        conn.split_whitespace()
            .filter(|kv| match kv.split_once('=') {
                Some(("sslmode", v)) => {
                    mode = v.to_string();
                    false
                }
                Some(("sslrootcert", v)) => {
                    root_cert = Some(v.to_string());
                    false
                }
                _ => true,
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (mode, verify) = match mode.as_str() {
        "disable" => ("disable", false),
        "allow" | "prefer" => ("prefer", false),
        "require" => ("require", false),
        "verify-ca" | "verify-full" => ("require", true),
        other => {
            return Err(StorageError::Io(format!(
                "postgresql: unknown sslmode {other:?}"
            )))
        }
    };
    Ok((
        cleaned,
        Tls {
            mode,
            verify,
            root_cert,
        },
    ))
}

/// rustls for PostgreSQL connections: verifying (system roots, or `sslrootcert`) or, for
/// `prefer`/`require`, encrypting without verifying, as libpq does.
fn tls_connector(tls: &Tls) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(pg_err)?;
    let config = if tls.verify {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.root_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| pg_err(format!("reading sslrootcert {path}: {e}")))?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    roots.add(cert.map_err(pg_err)?).map_err(pg_err)?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    let _ = roots.add(cert);
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// libpq's `sslmode=require`: encryption without certificate checks.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Pending {
    expect: Vec<Expect>,
    ops: Vec<WriteOp>,
    done: oneshot::Sender<Result<()>>,
}

/// The statements, with the table names in them.
struct Sql {
    get: String,
    expected: String,
    upsert: String,
    delete: String,
    take_lock: String,
    scan: String,
    list: String,
}

impl Sql {
    fn new(table: &str, ha: &str) -> Sql {
        Sql {
            get: format!("SELECT v FROM {table} WHERE k = $1"),
            expected: format!("SELECT k, v FROM {table} WHERE k = ANY($1)"),
            upsert: format!(
                "INSERT INTO {table} (k, v, idx) SELECT k, v, $3 FROM unnest($1::bytea[], $2::bytea[]) AS u(k, v) \
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, idx = EXCLUDED.idx"
            ),
            delete: format!("DELETE FROM {table} WHERE k = ANY($1)"),
            take_lock: format!("UPDATE {ha} SET last_idx = last_idx + 1 WHERE id = 1 RETURNING last_idx"),
            scan: format!(
                "SELECT k FROM {table} WHERE k > $1 AND k >= $2 AND ($3::bytea IS NULL OR k < $3) ORDER BY k LIMIT $4"
            ),
            // A loose index scan: from each key found, jump past its child (to `prefix ||
            // child || 0xFF` for a folder, just past the key for a leaf); 0xFF never occurs
            // in UTF-8 keys.
            list: format!(
                "WITH RECURSIVE walk(k) AS ( \
                   (SELECT k FROM {table} WHERE k >= $1 AND ($2::bytea IS NULL OR k < $2) ORDER BY k LIMIT 1) \
                   UNION ALL \
                   SELECT (SELECT t.k FROM {table} t WHERE t.k >= \
                       CASE WHEN position('\\x2f'::bytea IN substring(walk.k FROM $3 + 1)) > 0 \
                            THEN substring(walk.k FROM 1 FOR $3 + position('\\x2f'::bytea IN substring(walk.k FROM $3 + 1))) || '\\xff'::bytea \
                            ELSE walk.k || '\\x00'::bytea END \
                     AND ($2::bytea IS NULL OR t.k < $2) ORDER BY t.k LIMIT 1) \
                   FROM walk WHERE walk.k IS NOT NULL) \
                 SELECT k FROM walk WHERE k IS NOT NULL"
            ),
        }
    }
}

pub struct PostgresStorage {
    pool: Pool,
    sql: Arc<Sql>,
    writer: parking_lot::Mutex<Option<mpsc::UnboundedSender<Pending>>>,
    task: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The smallest byte string greater than every string starting with `prefix` (`None`: no
/// bound, the prefix is empty or all 0xFF).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

impl PostgresStorage {
    /// Connects, creates the tables if missing (unless told not to), and starts the writer.
    pub async fn open(cfg: &PostgresConfig) -> Result<Self> {
        let (conn, tls) = split_tls(&cfg.connection_url)?;
        let mut pg: tokio_postgres::Config = conn
            .parse()
            .map_err(|e| pg_err(format!("invalid connection_url: {e}")))?;
        pg.ssl_mode(match tls.mode {
            "disable" => tokio_postgres::config::SslMode::Disable,
            "require" => tokio_postgres::config::SslMode::Require,
            _ => tokio_postgres::config::SslMode::Prefer,
        });
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(std::time::Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            pg,
            tls_connector(&tls)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(cfg.max_parallel.max(2))
            .build()
            .map_err(pg_err)?;
        let table = identifier(&cfg.table)?;
        let ha = identifier(&cfg.ha_table)?;
        {
            let client = pool.get().await.map_err(pg_err)?;
            if !cfg.skip_create_table {
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {table} (k BYTEA PRIMARY KEY, v BYTEA NOT NULL, idx BIGINT NOT NULL); \
                         CREATE TABLE IF NOT EXISTS {ha} (id SMALLINT PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, \
                           holder TEXT NOT NULL, holder_pid INT, api_addr TEXT, cluster_addr TEXT, \
                           expires_at TIMESTAMPTZ NOT NULL, last_idx BIGINT NOT NULL); \
                         INSERT INTO {ha} (id, epoch, holder, expires_at, last_idx) \
                           VALUES (1, 0, '', '-infinity', 0) ON CONFLICT (id) DO NOTHING;"
                    ))
                    .await
                    .map_err(|e| pg_err(format!("creating the tables (needs CREATE on the schema, or skip_create_table with the tables made beforehand): {e}")))?;
            }
            // Whatever made them, both tables must be there and usable.
            client
                .query_one(&format!("SELECT last_idx FROM {ha} WHERE id = 1"), &[])
                .await
                .map_err(|e| pg_err(format!("the HA table {ha} is missing or empty: {e}")))?;
        }
        let sql = Arc::new(Sql::new(&table, &ha));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(writer_loop(pool.clone(), sql.clone(), rx));
        Ok(PostgresStorage {
            pool,
            sql,
            writer: parking_lot::Mutex::new(Some(tx)),
            task: parking_lot::Mutex::new(Some(task)),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        if self.writer.lock().is_none() {
            return Err(StorageError::Closed);
        }
        self.pool.get().await.map_err(pg_err)
    }
}

async fn writer_loop(pool: Pool, sql: Arc<Sql>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        match commit_group(&pool, &sql, &group).await {
            Ok(conflicts) => {
                for (p, conflict) in group.into_iter().zip(conflicts) {
                    let _ = p.done.send(match conflict {
                        Some(key) => Err(StorageError::Conflict(key)),
                        None => Ok(()),
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batches = group.len(), "postgresql commit failed");
                for p in group {
                    let _ = p.done.send(Err(StorageError::Io(e.to_string())));
                }
            }
        }
    }
}

/// One transaction for the group; per batch, the key whose expectation failed (skipped) or
/// `None` (applied).
async fn commit_group(
    pool: &Pool,
    sql: &Sql,
    group: &[Pending],
) -> std::result::Result<Vec<Option<String>>, String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let lock = tx
        .prepare_cached(&sql.take_lock)
        .await
        .map_err(|e| e.to_string())?;
    let idx: i64 = tx
        .query_one(&lock, &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let mut conflicts = Vec::with_capacity(group.len());
    'batches: for Pending { expect, ops, .. } in group {
        if !expect.is_empty() {
            let keys: Vec<&[u8]> = expect.iter().map(|e| e.key.as_bytes()).collect();
            let stmt = tx
                .prepare_cached(&sql.expected)
                .await
                .map_err(|e| e.to_string())?;
            let rows = tx.query(&stmt, &[&keys]).await.map_err(|e| e.to_string())?;
            let held: BTreeMap<Vec<u8>, Vec<u8>> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            for e in expect {
                if held.get(e.key.as_bytes()) != e.value.as_ref() {
                    conflicts.push(Some(e.key.clone()));
                    continue 'batches;
                }
            }
        }
        conflicts.push(None);
        // The batch's net effect per key (its last op), so one statement never touches a
        // row twice.
        let mut net: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
        for op in ops {
            match op {
                WriteOp::Put(k, v) => net.insert(k.as_str(), Some(v.as_slice())),
                WriteOp::Delete(k) => net.insert(k.as_str(), None),
            };
        }
        let mut put_k: Vec<&[u8]> = Vec::new();
        let mut put_v: Vec<&[u8]> = Vec::new();
        let mut del_k: Vec<&[u8]> = Vec::new();
        for (k, v) in net {
            match v {
                Some(v) => {
                    put_k.push(k.as_bytes());
                    put_v.push(v);
                }
                None => del_k.push(k.as_bytes()),
            }
        }
        if !put_k.is_empty() {
            let stmt = tx
                .prepare_cached(&sql.upsert)
                .await
                .map_err(|e| e.to_string())?;
            let params: [&(dyn ToSql + Sync); 3] = [&put_k, &put_v, &idx];
            tx.execute(&stmt, &params)
                .await
                .map_err(|e| e.to_string())?;
        }
        if !del_k.is_empty() {
            let stmt = tx
                .prepare_cached(&sql.delete)
                .await
                .map_err(|e| e.to_string())?;
            tx.execute(&stmt, &[&del_k])
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    if conflicts.iter().all(Option::is_some) {
        tx.rollback().await.map_err(|e| e.to_string())?;
    } else {
        tx.commit()
            .await
            .map_err(|e| format!("commit (outcome unknown): {e}"))?;
    }
    Ok(conflicts)
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&self.sql.get).await.map_err(pg_err)?;
        let row = client
            .query_opt(&stmt, &[&key.as_bytes()])
            .await
            .map_err(pg_err)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn write_batch_if(&self, expect: Vec<Expect>, ops: Vec<WriteOp>) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.writer
            .lock()
            .as_ref()
            .ok_or(StorageError::Closed)?
            .send(Pending { expect, ops, done })
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.list)
            .await
            .map_err(pg_err)?;
        let upper = successor(prefix.as_bytes());
        let len = prefix.len() as i32;
        let rows = client
            .query(&stmt, &[&prefix.as_bytes(), &upper, &len])
            .await
            .map_err(pg_err)?;
        let keys: Vec<String> = rows
            .iter()
            .map(|r| String::from_utf8_lossy(r.get::<_, &[u8]>(0)).into_owned())
            .collect();
        Ok(children(prefix, keys.iter().map(String::as_str)))
    }

    async fn scan(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.scan)
            .await
            .map_err(pg_err)?;
        let after = after.unwrap_or("").as_bytes();
        let upper = successor(prefix.as_bytes());
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = client
            .query(&stmt, &[&after, &prefix.as_bytes(), &upper, &limit])
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| String::from_utf8_lossy(r.get::<_, &[u8]>(0)).into_owned())
            .collect())
    }

    async fn close(&self) {
        self.writer.lock().take();
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        self.pool.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storage on a table of its own in the test database (PostgreSQL on 127.0.0.1:5432,
    /// user postgres, trust: the project's machines and CI run one).
    pub(crate) async fn fresh() -> (PostgresStorage, PostgresConfig) {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let cfg = PostgresConfig {
            connection_url: std::env::var("TRESOR_TEST_PG_URL").unwrap_or_else(|_| {
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into()
            }),
            table: format!("t_kv_{n}"),
            ha_table: format!("t_ha_{n}"),
            max_parallel: 8,
            skip_create_table: false,
        };
        (PostgresStorage::open(&cfg).await.unwrap(), cfg)
    }

    async fn drop_tables(s: &PostgresStorage, cfg: &PostgresConfig) {
        let c = s.pool.get().await.unwrap();
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
            identifier(&cfg.table).unwrap(),
            identifier(&cfg.ha_table).unwrap()
        ))
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn conformance() {
        let (s, cfg) = fresh().await;
        crate::conformance::basic(&s).await;
        crate::conformance::batch_is_atomic_and_ordered(&s).await;
        crate::conformance::scan_pages_in_order(&s).await;
        crate::conformance::conditional_batches(&s).await;
        drop_tables(&s, &cfg).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn compare_and_swap_across_two_processes_loses_no_update() {
        // Two independent stores (pools, writers) on one table, as two server processes.
        let (a, cfg) = fresh().await;
        let b = PostgresStorage::open(&cfg).await.unwrap();
        let both: [Arc<dyn Storage>; 2] = [Arc::new(a), Arc::new(b)];
        crate::conformance::compare_and_swap_loses_no_update_across(&both).await;
        let c = both[0].clone();
        let keep = PostgresStorage::open(&cfg).await.unwrap();
        drop(c);
        drop_tables(&keep, &cfg).await;
    }

    #[tokio::test]
    async fn listing_is_bytewise_and_escapes_nothing() {
        let (s, cfg) = fresh().await;
        for k in ["a_b/x", "aXb/y", "a%b/z", "a/deep/er/key", "a/leaf", "ab"] {
            s.put(k, b"v".to_vec()).await.unwrap();
        }
        // `_` and `%` are no wildcards; children, not descendants.
        assert_eq!(s.list("a_b/").await.unwrap(), vec!["x"]);
        assert_eq!(s.list("a/").await.unwrap(), vec!["deep/", "leaf"]);
        assert_eq!(
            s.list("").await.unwrap(),
            vec!["a%b/", "a/", "aXb/", "a_b/", "ab"]
        );
        drop_tables(&s, &cfg).await;
    }

    #[test]
    fn connection_strings_keep_everything_but_the_tls_settings() {
        let (c, t) =
            split_tls("postgres://u@h1,h2/db?sslmode=verify-full&target_session_attrs=read-write")
                .unwrap();
        assert_eq!(c, "postgres://u@h1,h2/db?target_session_attrs=read-write");
        assert!(t.verify && t.mode == "require");
        let (c, t) = split_tls("host=h1,h2 dbname=db sslmode=disable user=u").unwrap();
        assert_eq!(c, "host=h1,h2 dbname=db user=u");
        assert!(!t.verify && t.mode == "disable");
        assert!(split_tls("host=h sslmode=sometimes").is_err());
        assert!(identifier("tresor_kv").is_ok());
        assert!(identifier("vault.tresor_kv").is_ok());
        assert!(identifier("kv; DROP TABLE x").is_err());
        assert_eq!(successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(successor(b""), None);
    }
}
