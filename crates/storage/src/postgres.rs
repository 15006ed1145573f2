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
//!     holder TEXT NOT NULL, holder_pid INT, api_addr TEXT, cluster_addr TEXT,
//!     expires_at TIMESTAMPTZ NOT NULL, last_idx BIGINT NOT NULL, renewed_at TIMESTAMPTZ);
//! INSERT INTO tresor_ha (id, epoch, holder, expires_at, last_idx)
//!     VALUES (1, 0, '', '-infinity', 0);
//! -- HA only: node heartbeats (sys/ha-status) and the change log standbys tail.
//! CREATE TABLE tresor_ha_nodes (node_id TEXT PRIMARY KEY, hostname TEXT NOT NULL,
//!     api_addr TEXT NOT NULL, cluster_addr TEXT NOT NULL, version TEXT NOT NULL,
//!     last_seen TIMESTAMPTZ NOT NULL);
//! CREATE TABLE tresor_kv_changes (idx BIGINT PRIMARY KEY, keys BYTEA[] NOT NULL);
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
//! Privileges: `CREATE` on the schema the first time (or create the tables beforehand, as
//! above, and set `skip_create_table`), then `SELECT, INSERT, UPDATE, DELETE` on the tables.

use crate::group::{Groups, Pending, Queue};
use crate::{
    list_start, Acquired, Changes, Expect, HaLock, Leader, NodeInfo, NodeStatus, Result, Storage,
    StorageError, WriteOp,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
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
    /// Most connections kept open while idle (Vault's `max_idle_connections`); `None`: all.
    pub max_idle_connections: Option<usize>,
    pub skip_create_table: bool,
    /// Several nodes on this database, one active ([`HaLock`]); writes are fenced.
    pub ha_enabled: bool,
    /// How long the active node's lease lives without renewal.
    pub lease_ttl: std::time::Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            connection_url: String::new(),
            table: "tresor_kv".into(),
            ha_table: "tresor_ha".into(),
            max_parallel: 16,
            max_idle_connections: None,
            skip_create_table: false,
            ha_enabled: false,
            lease_ttl: std::time::Duration::from_secs(3),
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

/// A string as an SQL literal.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
    // Keeps a `key=value` pair unless it is a TLS setting (which it records).
    let mut keep = |kv: &str| match kv.split_once('=') {
        Some(("sslmode", v)) => {
            mode = v.to_string();
            false
        }
        Some(("sslrootcert", v)) => {
            root_cert = Some(v.to_string());
            false
        }
        _ => true,
    };
    let cleaned = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        match conn.split_once('?') {
            None => conn.to_string(),
            Some((base, query)) => {
                let kept: Vec<&str> = query.split('&').filter(|kv| keep(kv)).collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        conn.split_whitespace()
            .filter(|kv| keep(kv))
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

/// The statements, with the table names in them.
struct Sql {
    get: String,
    expected: String,
    upsert: String,
    delete: String,
    take_lock: String,
    take_lock_fenced: String,
    scan: String,
    list: String,
    export: String,
    log_change: String,
    trim_changes: String,
}

impl Sql {
    fn new(table: &str, ha: &str, changes: &str) -> Sql {
        Sql {
            log_change: format!("INSERT INTO {changes} (idx, keys) VALUES ($1, $2)"),
            trim_changes: format!("DELETE FROM {changes} WHERE idx < $1"),
            get: format!("SELECT v FROM {table} WHERE k = $1"),
            expected: format!("SELECT k, v FROM {table} WHERE k = ANY($1)"),
            upsert: format!(
                "INSERT INTO {table} (k, v, idx) SELECT k, v, $3 FROM unnest($1::bytea[], $2::bytea[]) AS u(k, v) \
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, idx = EXCLUDED.idx"
            ),
            delete: format!("DELETE FROM {table} WHERE k = ANY($1)"),
            take_lock: format!("UPDATE {ha} SET last_idx = last_idx + 1 WHERE id = 1 RETURNING last_idx"),
            // The write's fence: only while this node holds the lease, under its epoch, and
            // the lease has not run out by the database's clock. A takeover waits for this
            // row lock, so it either comes after this commit or makes this match nothing.
            take_lock_fenced: format!(
                "UPDATE {ha} SET last_idx = last_idx + 1 \
                 WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() RETURNING last_idx"
            ),
            // One statement: PostgreSQL runs it on one snapshot of committed data.
            export: format!("SELECT k, v FROM {table} ORDER BY k"),
            scan: format!(
                "SELECT k FROM {table} WHERE k > $1 AND k >= $2 AND ($3::bytea IS NULL OR k < $3) ORDER BY k LIMIT $4"
            ),
            // A loose index scan from `$1` (where the page starts): from each key found, jump
            // past its child (to `prefix || child || 0xFF` for a folder, just past the key for a
            // leaf); 0xFF never occurs in UTF-8 keys. The walk stops after `$4` rows.
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
                 SELECT k FROM walk WHERE k IS NOT NULL LIMIT $4"
            ),
        }
    }
}

pub struct PostgresStorage {
    pool: Pool,
    sql: Arc<Sql>,
    ha: Option<Arc<PgHa>>,
    writer: Queue,
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
        if cfg.ha_enabled {
            // A write transaction holds the lease row's lock until it ends. An active node
            // paused or cut off mid-transaction would hold it, and so block every standby's
            // takeover, for as long as its session lives: the database ends a transaction
            // left idle for a lease's time (no healthy one idles for more than milliseconds).
            let idle = cfg
                .lease_ttl
                .max(std::time::Duration::from_secs(1))
                .as_millis();
            let options = format!(
                "{} -c idle_in_transaction_session_timeout={idle}",
                pg.get_options().unwrap_or_default()
            );
            pg.options(options.trim_start());
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
        if let Some(keep) = cfg.max_idle_connections {
            tokio::spawn(close_idle_beyond(pool.clone(), keep));
        }
        let table = identifier(&cfg.table)?;
        let ha = identifier(&cfg.ha_table)?;
        let nodes = identifier(&format!("{}_nodes", cfg.ha_table))?;
        let changes = identifier(&format!("{}_changes", cfg.table))?;
        {
            let client = pool.get().await.map_err(pg_err)?;
            if !cfg.skip_create_table {
                // Nodes starting together would race on CREATE TABLE IF NOT EXISTS (it is not
                // atomic in PostgreSQL): one at a time, under a transaction advisory lock.
                client
                    .batch_execute(&format!(
                        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('tresor:create:' || {table_lit})); \
                         CREATE TABLE IF NOT EXISTS {table} (k BYTEA PRIMARY KEY, v BYTEA NOT NULL, idx BIGINT NOT NULL); \
                         CREATE TABLE IF NOT EXISTS {ha} (id SMALLINT PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, \
                           holder TEXT NOT NULL, holder_pid INT, api_addr TEXT, cluster_addr TEXT, \
                           expires_at TIMESTAMPTZ NOT NULL, last_idx BIGINT NOT NULL); \
                         ALTER TABLE {ha} ADD COLUMN IF NOT EXISTS renewed_at TIMESTAMPTZ; \
                         INSERT INTO {ha} (id, epoch, holder, expires_at, last_idx) \
                           VALUES (1, 0, '', '-infinity', 0) ON CONFLICT (id) DO NOTHING; \
                         CREATE TABLE IF NOT EXISTS {nodes} (node_id TEXT PRIMARY KEY, hostname TEXT NOT NULL, \
                           api_addr TEXT NOT NULL, cluster_addr TEXT NOT NULL, version TEXT NOT NULL, \
                           last_seen TIMESTAMPTZ NOT NULL); \
                         CREATE TABLE IF NOT EXISTS {changes} (idx BIGINT PRIMARY KEY, keys BYTEA[] NOT NULL); COMMIT;",
                        table_lit = quote_literal(&table)
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
        let sql = Arc::new(Sql::new(&table, &ha, &changes));
        let last_commit = Arc::new(AtomicI64::new(0));
        let lease = cfg.ha_enabled.then(|| {
            Arc::new(PgHa {
                pool: pool.clone(),
                session: tokio::sync::Mutex::new(None),
                held: Arc::new(parking_lot::RwLock::new(None)),
                table: ha.clone(),
                nodes: nodes.clone(),
                changes: changes.clone(),
                ttl: cfg.lease_ttl,
                last_commit: last_commit.clone(),
            })
        });
        let (writer, groups) = crate::group::queue(MAX_GROUP);
        let fence = lease.as_ref().map(|l| Fence {
            held: l.held.clone(),
            last_commit,
        });
        let task = tokio::spawn(writer_loop(pool.clone(), sql.clone(), fence, groups));
        Ok(PostgresStorage {
            pool,
            sql,
            ha: lease,
            writer,
            task: parking_lot::Mutex::new(Some(task)),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        if self.writer.is_closed() {
            return Err(StorageError::Closed);
        }
        self.pool.get().await.map_err(pg_err)
    }
}

/// How often idle connections beyond `max_idle_connections` are closed.
const IDLE_TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes idle connections beyond `keep` (the least recently used first) until the pool
/// closes: a burst opens up to `max_parallel`, the quiet afterwards keeps only `keep`.
async fn close_idle_beyond(pool: Pool, keep: usize) {
    while !pool.is_closed() {
        tokio::time::sleep(IDLE_TRIM_EVERY).await;
        let idle = pool.status().available;
        if idle <= keep {
            continue;
        }
        // The ones idle longest go: keep those used within the `keep`-th most recent use.
        let mut last_used: Vec<std::time::Duration> = Vec::with_capacity(idle);
        pool.retain(|_, m| {
            last_used.push(m.last_used());
            true
        });
        last_used.sort();
        let Some(&cutoff) = last_used.get(keep.saturating_sub(1)) else {
            continue;
        };
        let mut kept = 0;
        pool.retain(|_, m| {
            let stay = kept < keep && m.last_used() <= cutoff;
            kept += usize::from(stay);
            stay
        });
    }
}

/// The lease this process holds (holder id, epoch), shared by the writer and [`PgHa`].
type Held = Arc<parking_lot::RwLock<Option<(String, i64)>>>;

/// Commits after this many are trimmed from the change log (a standby further behind drops
/// its caches whole).
const CHANGE_LOG_KEEP: i64 = 100_000;

/// What the writer of an HA node shares with [`PgHa`]: the lease it commits under, and the
/// index of its latest commit.
struct Fence {
    held: Held,
    last_commit: Arc<AtomicI64>,
}

async fn writer_loop(pool: Pool, sql: Arc<Sql>, fence: Option<Fence>, mut groups: Groups) {
    while let Some(group) = groups.next().await {
        let outcome = commit_group(&pool, &sql, fence.as_ref(), &group).await;
        if let Err(e) = &outcome {
            if !matches!(e, StorageError::NotActive) {
                tracing::warn!(error = %e, batches = group.len(), "postgresql commit failed");
            }
        }
        crate::group::answer(group, outcome);
    }
}

/// One transaction for the group; per batch, the key whose expectation failed (skipped) or
/// `None` (applied). With HA, the transaction also logs the keys it wrote under its index
/// (the change log standbys tail), so log and data commit together.
async fn commit_group(
    pool: &Pool,
    sql: &Sql,
    fence: Option<&Fence>,
    group: &[Pending],
) -> Result<Vec<Option<String>>> {
    let held = match fence {
        None => None,
        Some(f) => Some(f.held.read().clone().ok_or(StorageError::NotActive)?),
    };
    let mut client = pool.get().await.map_err(pg_err)?;
    let tx = client.transaction().await.map_err(pg_err)?;
    let idx: i64 = match &held {
        None => {
            let lock = tx.prepare_cached(&sql.take_lock).await.map_err(pg_err)?;
            tx.query_one(&lock, &[]).await.map_err(pg_err)?.get(0)
        }
        Some((holder, epoch)) => {
            let lock = tx
                .prepare_cached(&sql.take_lock_fenced)
                .await
                .map_err(pg_err)?;
            match tx
                .query_opt(&lock, &[holder, epoch])
                .await
                .map_err(pg_err)?
            {
                Some(row) => row.get(0),
                None => {
                    // Lost: another node took over (or the lease ran out). Nothing commits.
                    if let Some(f) = fence {
                        let mut f = f.held.write();
                        if f.as_ref() == Some(&(holder.clone(), *epoch)) {
                            *f = None;
                        }
                    }
                    return Err(StorageError::NotActive);
                }
            }
        }
    };
    let mut conflicts = Vec::with_capacity(group.len());
    let mut changed: Vec<&[u8]> = Vec::new();
    'batches: for Pending { expect, ops, .. } in group {
        if !expect.is_empty() {
            let keys: Vec<&[u8]> = expect.iter().map(|e| e.key.as_bytes()).collect();
            let stmt = tx.prepare_cached(&sql.expected).await.map_err(pg_err)?;
            let rows = tx.query(&stmt, &[&keys]).await.map_err(pg_err)?;
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
            changed.push(k.as_bytes());
            match v {
                Some(v) => {
                    put_k.push(k.as_bytes());
                    put_v.push(v);
                }
                None => del_k.push(k.as_bytes()),
            }
        }
        if !put_k.is_empty() {
            let stmt = tx.prepare_cached(&sql.upsert).await.map_err(pg_err)?;
            let params: [&(dyn ToSql + Sync); 3] = [&put_k, &put_v, &idx];
            tx.execute(&stmt, &params).await.map_err(pg_err)?;
        }
        if !del_k.is_empty() {
            let stmt = tx.prepare_cached(&sql.delete).await.map_err(pg_err)?;
            tx.execute(&stmt, &[&del_k]).await.map_err(pg_err)?;
        }
    }
    if conflicts.iter().all(Option::is_some) {
        tx.rollback().await.map_err(pg_err)?;
    } else {
        if fence.is_some() {
            // Every commit is logged, even one that wrote nothing, so a hole in the log's
            // indexes always means it was trimmed.
            let stmt = tx.prepare_cached(&sql.log_change).await.map_err(pg_err)?;
            tx.execute(&stmt, &[&idx, &changed]).await.map_err(pg_err)?;
            if idx % 1024 == 0 {
                let stmt = tx.prepare_cached(&sql.trim_changes).await.map_err(pg_err)?;
                tx.execute(&stmt, &[&(idx - CHANGE_LOG_KEEP)])
                    .await
                    .map_err(pg_err)?;
            }
        }
        tx.commit()
            .await
            .map_err(|e| pg_err(format!("commit (outcome unknown): {e}")))?;
        if let Some(f) = fence {
            f.last_commit
                .fetch_max(idx, std::sync::atomic::Ordering::Relaxed);
        }
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
        self.writer.submit(expect, ops).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.sql.list)
            .await
            .map_err(pg_err)?;
        let start = list_start(prefix, after);
        let upper = successor(prefix.as_bytes());
        let len = prefix.len() as i32;
        // One more than asked: the walk may meet a key equal to the prefix, which is no child.
        let rows_limit = limit.saturating_add(1).min(i64::MAX as usize) as i64;
        let rows = client
            .query(&stmt, &[&start.as_bytes(), &upper, &len, &rows_limit])
            .await
            .map_err(pg_err)?;
        let mut out: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                let key = String::from_utf8_lossy(r.get::<_, &[u8]>(0));
                let rest = key.strip_prefix(prefix)?;
                let child = rest.find('/').map_or(rest, |i| &rest[..=i]);
                (!child.is_empty()).then(|| child.to_string())
            })
            .collect();
        out.truncate(limit);
        Ok(out)
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

    async fn export(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let client = self.client().await?;
        let rows = client.query(&self.sql.export, &[]).await.map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    String::from_utf8_lossy(r.get::<_, &[u8]>(0)).into_owned(),
                    r.get::<_, Vec<u8>>(1),
                )
            })
            .collect())
    }

    fn ha(&self) -> Option<Arc<dyn HaLock>> {
        self.ha.clone().map(|h| h as Arc<dyn HaLock>)
    }

    async fn close(&self) {
        self.writer.close();
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        self.pool.close();
    }
}

/// The HA lease on the one row of the HA table. The active node renews it on a session of
/// its own, whose backend pid it records (`holder_pid`): when that session is gone from
/// `pg_stat_activity` (the process died), a standby takes over at once instead of waiting for
/// the lease to run out. All times are the database's clock (`clock_timestamp()`), so the
/// nodes' clocks do not matter.
///
/// That shortcut is taken only by a standby whose own session has been open since before the
/// holder's last renewal (`renewed_at`): then the database kept its sessions all along, and the
/// holder's is gone because the holder is. After a database restart or a failover to a
/// replica every session is gone, the holder's too, while the holder lives and still counts
/// its lease valid; there the standby waits for the lease to run out.
struct PgHa {
    pool: Pool,
    /// The dedicated session (its pid marks the holder); re-made after an error.
    session: tokio::sync::Mutex<Option<deadpool_postgres::Object>>,
    held: Held,
    table: String,
    /// Heartbeats of every node (`sys/ha-status`).
    nodes: String,
    /// The change log (`{table}_changes`).
    changes: String,
    ttl: std::time::Duration,
    last_commit: Arc<AtomicI64>,
}

impl PgHa {
    /// Runs one statement on the lease session, bounded by a third of the lease (a renewal
    /// that cannot finish in time must not be mistaken for a live lease).
    async fn on_session(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>> {
        let mut session = self.session.lock().await;
        if session.is_none() {
            *session = Some(self.pool.get().await.map_err(pg_err)?);
        }
        let client = session.as_ref().expect("just made");
        let run = client.query_opt(sql, params);
        match tokio::time::timeout(self.ttl / 3, run).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => {
                *session = None;
                Err(pg_err(e))
            }
            Err(_) => {
                *session = None;
                Err(pg_err("the lease statement timed out"))
            }
        }
    }
}

#[async_trait]
impl HaLock for PgHa {
    async fn try_acquire(&self, me: &NodeInfo) -> Result<Option<Acquired>> {
        let secs = self.ttl.as_secs_f64();
        // `prev` is the row as the statement's snapshot saw it (taking no lock, so polling
        // standbys never hold up the active node's writes). A commit racing in between can
        // only have renewed or released that lease (an expired one is never renewed) or taken
        // it (then this update matches nothing): so `live` errs, if ever, towards waiting.
        let sql = format!(
            "WITH prev AS (SELECT expires_at > clock_timestamp() AS live FROM {t} WHERE id = 1) \
             UPDATE {t} SET epoch = epoch + 1, holder = $1, holder_pid = pg_backend_pid(), \
               api_addr = $2, cluster_addr = $3, renewed_at = clock_timestamp(), \
               expires_at = clock_timestamp() + make_interval(secs => $4) \
             FROM prev WHERE id = 1 AND (expires_at < clock_timestamp() \
               OR (holder_pid IS NOT NULL AND holder_pid <> pg_backend_pid() \
                   AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = holder_pid) \
                   AND renewed_at > (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()))) \
             RETURNING epoch, prev.live",
            t = self.table
        );
        let row = self
            .on_session(&sql, &[&me.id, &me.api_addr, &me.cluster_addr, &secs])
            .await?;
        Ok(row.map(|r| {
            let acquired = Acquired {
                epoch: r.get(0),
                from_live_holder: r.get(1),
            };
            *self.held.write() = Some((me.id.clone(), acquired.epoch));
            acquired
        }))
    }

    async fn renew(&self) -> Result<bool> {
        let Some((holder, epoch)) = self.held.read().clone() else {
            return Ok(false);
        };
        let secs = self.ttl.as_secs_f64();
        let sql = format!(
            "UPDATE {t} SET expires_at = clock_timestamp() + make_interval(secs => $3), \
               holder_pid = pg_backend_pid(), renewed_at = clock_timestamp() \
             WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() RETURNING 1",
            t = self.table
        );
        let renewed = self
            .on_session(&sql, &[&holder, &epoch, &secs])
            .await?
            .is_some();
        if !renewed {
            self.abandon();
        }
        Ok(renewed)
    }

    async fn release(&self) {
        let Some((holder, epoch)) = self.held.write().take() else {
            return;
        };
        let sql = format!(
            "UPDATE {t} SET expires_at = '-infinity', holder_pid = NULL WHERE id = 1 AND holder = $1 AND epoch = $2",
            t = self.table
        );
        if let Err(e) = self.on_session(&sql, &[&holder, &epoch]).await {
            tracing::warn!(error = %e, "releasing the HA lease failed; it runs out by itself");
        }
    }

    fn abandon(&self) {
        self.held.write().take();
    }

    fn session_lost(&self) -> bool {
        if self.held.read().is_none() {
            return false;
        }
        // In use right now: a statement on it will say soon enough.
        let Ok(session) = self.session.try_lock() else {
            return false;
        };
        session.as_ref().is_none_or(|c| c.is_closed())
    }

    async fn leader(&self) -> Result<Option<Leader>> {
        let sql = format!(
            "SELECT holder, coalesce(api_addr, ''), coalesce(cluster_addr, ''), epoch FROM {t} \
             WHERE id = 1 AND expires_at > clock_timestamp()",
            t = self.table
        );
        let client = self.pool.get().await.map_err(pg_err)?;
        let row = client.query_opt(&sql, &[]).await.map_err(pg_err)?;
        Ok(row.map(|r| Leader {
            node: NodeInfo {
                id: r.get(0),
                api_addr: r.get(1),
                cluster_addr: r.get(2),
                ..Default::default()
            },
            epoch: r.get(3),
        }))
    }

    fn lease_ttl(&self) -> std::time::Duration {
        self.ttl
    }

    async fn heartbeat(&self, me: &NodeInfo) -> Result<()> {
        let sql = format!(
            "INSERT INTO {n} (node_id, hostname, api_addr, cluster_addr, version, last_seen) \
             VALUES ($1, $2, $3, $4, $5, clock_timestamp()) ON CONFLICT (node_id) DO UPDATE SET \
             hostname = EXCLUDED.hostname, api_addr = EXCLUDED.api_addr, \
             cluster_addr = EXCLUDED.cluster_addr, version = EXCLUDED.version, last_seen = EXCLUDED.last_seen",
            n = self.nodes
        );
        let client = self.pool.get().await.map_err(pg_err)?;
        client
            .execute(
                &sql,
                &[
                    &me.id,
                    &me.hostname,
                    &me.api_addr,
                    &me.cluster_addr,
                    &me.version,
                ],
            )
            .await
            .map_err(pg_err)?;
        // Nodes silent for a day are forgotten.
        let prune = format!(
            "DELETE FROM {n} WHERE last_seen < clock_timestamp() - interval '1 day'",
            n = self.nodes
        );
        client.execute(&prune, &[]).await.map_err(pg_err)?;
        Ok(())
    }

    async fn nodes(&self, within: std::time::Duration) -> Result<Vec<NodeStatus>> {
        let sql = format!(
            "SELECT node_id, hostname, api_addr, cluster_addr, version, \
               extract(epoch FROM last_seen)::bigint FROM {n} \
             WHERE last_seen > clock_timestamp() - make_interval(secs => $1) ORDER BY api_addr",
            n = self.nodes
        );
        let client = self.pool.get().await.map_err(pg_err)?;
        let rows = client
            .query(&sql, &[&within.as_secs_f64()])
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| NodeStatus {
                node: NodeInfo {
                    id: r.get(0),
                    hostname: r.get(1),
                    api_addr: r.get(2),
                    cluster_addr: r.get(3),
                    version: r.get(4),
                },
                last_seen: r.get(5),
            })
            .collect())
    }

    async fn changes_since(&self, after: i64, limit: usize) -> Result<Changes> {
        // One statement, so the head and the log come from one snapshot.
        let sql = format!(
            "SELECT h.last_idx, c.idx, c.keys FROM {ha} h LEFT JOIN LATERAL \
               (SELECT idx, keys FROM {log} WHERE idx > $1 ORDER BY idx LIMIT $2) c ON true \
             WHERE h.id = 1 ORDER BY c.idx",
            ha = self.table,
            log = self.changes
        );
        let client = self.pool.get().await.map_err(pg_err)?;
        let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = client
            .query(&stmt, &[&after, &limit])
            .await
            .map_err(pg_err)?;
        let head: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
        let commits: Vec<(i64, Vec<String>)> = rows
            .iter()
            .filter_map(|r| {
                let idx: Option<i64> = r.get(1);
                let keys: Option<Vec<Vec<u8>>> = r.get(2);
                Some((
                    idx?,
                    keys?
                        .into_iter()
                        .map(|k| String::from_utf8_lossy(&k).into_owned())
                        .collect(),
                ))
            })
            .collect();
        let complete = match commits.first() {
            Some((first, _)) => *first == after + 1,
            // Behind `after`: the database is not the one that was read (a restore, an
            // asynchronous replica promoted): nothing read from it before can be trusted.
            None => head == after,
        };
        Ok(Changes {
            head,
            commits,
            complete,
        })
    }

    fn last_commit(&self) -> i64 {
        self.last_commit.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storage on a table of its own in the test database (PostgreSQL on 127.0.0.1:5432,
    /// user postgres, trust: the project's machines and CI run one).
    pub(crate) async fn fresh() -> (PostgresStorage, PostgresConfig) {
        fresh_with(false).await
    }

    pub(crate) async fn fresh_with(ha_enabled: bool) -> (PostgresStorage, PostgresConfig) {
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
            max_idle_connections: None,
            skip_create_table: false,
            ha_enabled,
            lease_ttl: std::time::Duration::from_millis(1500),
        };
        (PostgresStorage::open(&cfg).await.unwrap(), cfg)
    }

    async fn drop_tables(s: &PostgresStorage, cfg: &PostgresConfig) {
        let c = s.pool.get().await.unwrap();
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}, {}, {}, {};",
            identifier(&cfg.table).unwrap(),
            identifier(&format!("{}_changes", cfg.table)).unwrap(),
            identifier(&cfg.ha_table).unwrap(),
            identifier(&format!("{}_nodes", cfg.ha_table)).unwrap()
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_and_replace_all() {
        let (s, cfg) = fresh().await;
        let s = Arc::new(s);
        crate::conformance::export_is_consistent_and_replace_all_replaces(s.clone()).await;
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

    fn node(id: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            api_addr: format!("https://{id}:8200"),
            cluster_addr: format!("https://{id}:8201"),
            ..Default::default()
        }
    }

    /// Every commit of the active node is logged with the keys it wrote, in commit order;
    /// a standby reads the log, and learns when it was trimmed past what it asked for.
    #[tokio::test]
    async fn the_change_log_lists_every_commit_in_order() {
        let (a, cfg) = fresh_with(true).await;
        let b = PostgresStorage::open(&cfg).await.unwrap();
        let (ha_a, ha_b) = (a.ha().unwrap(), b.ha().unwrap());
        ha_a.try_acquire(&node("a")).await.unwrap().unwrap();
        let start = ha_b.changes_since(0, 100).await.unwrap();
        assert!(start.complete && start.commits.is_empty(), "{start:?}");
        a.put("x/1", vec![1]).await.unwrap();
        a.write_batch(vec![
            WriteOp::Put("x/2".into(), vec![2]),
            WriteOp::Delete("x/1".into()),
        ])
        .await
        .unwrap();
        // A batch whose expectation fails commits nothing and logs nothing.
        assert!(a
            .write_batch_if(
                vec![Expect {
                    key: "x/2".into(),
                    value: None
                }],
                vec![WriteOp::Put("x/3".into(), vec![3])]
            )
            .await
            .is_err());
        let seen = ha_b.changes_since(start.head, 100).await.unwrap();
        assert!(seen.complete);
        let keys: Vec<Vec<String>> = seen.commits.iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(
            keys,
            [vec!["x/1".to_string()], vec!["x/1".into(), "x/2".into()]]
        );
        assert_eq!(seen.commits[0].0, start.head + 1);
        assert_eq!(seen.head, seen.commits[1].0);
        assert_eq!(ha_a.last_commit(), seen.head);
        // Paged.
        let first = ha_b.changes_since(start.head, 1).await.unwrap();
        assert_eq!(first.commits.len(), 1);
        // Trimmed: asked from before what the log still holds, the answer says so.
        let c = b.pool.get().await.unwrap();
        c.execute(
            &format!(
                "DELETE FROM {} WHERE idx = $1",
                identifier(&format!("{}_changes", cfg.table)).unwrap()
            ),
            &[&seen.commits[0].0],
        )
        .await
        .unwrap();
        assert!(!ha_b.changes_since(start.head, 100).await.unwrap().complete);
        assert!(
            ha_b.changes_since(seen.commits[0].0, 100)
                .await
                .unwrap()
                .complete
        );
        drop_tables(&a, &cfg).await;
    }

    /// A burst opens up to `max_parallel` connections; once quiet, only
    /// `max_idle_connections` stay open.
    #[tokio::test]
    async fn idle_connections_beyond_the_limit_are_closed() {
        let mut cfg = fresh().await.1;
        cfg.max_parallel = 8;
        cfg.max_idle_connections = Some(2);
        let s = PostgresStorage::open(&cfg).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(s.pool.get().await.unwrap());
        }
        assert_eq!(s.pool.status().size, 8);
        drop(held);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while s.pool.status().size > 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                s.pool.status()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // What stays still serves.
        s.put("k", vec![1]).await.unwrap();
        assert_eq!(s.get("k").await.unwrap(), Some(vec![1]));
        drop_tables(&s, &cfg).await;
    }

    #[tokio::test]
    async fn one_active_node_and_only_it_writes() {
        let (a, cfg) = fresh_with(true).await;
        let b = PostgresStorage::open(&cfg).await.unwrap();
        let (ha_a, ha_b) = (a.ha().unwrap(), b.ha().unwrap());
        // Nobody holds the lease yet: nobody writes.
        assert!(matches!(
            a.put("k", vec![1]).await,
            Err(StorageError::NotActive)
        ));
        let epoch = ha_a.try_acquire(&node("a")).await.unwrap().unwrap().epoch;
        assert_eq!(ha_b.try_acquire(&node("b")).await.unwrap(), None);
        let leader = ha_b.leader().await.unwrap().unwrap();
        assert_eq!((leader.node, leader.epoch), (node("a"), epoch));
        // Heartbeats: both nodes listed.
        ha_a.heartbeat(&node("a")).await.unwrap();
        ha_b.heartbeat(&node("b")).await.unwrap();
        let seen = ha_b
            .nodes(std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let ids: Vec<&str> = seen.iter().map(|n| n.node.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        a.put("k", vec![1]).await.unwrap();
        assert!(matches!(
            b.put("k", vec![2]).await,
            Err(StorageError::NotActive)
        ));
        // Reads work on every node.
        assert_eq!(b.get("k").await.unwrap(), Some(vec![1]));
        assert!(ha_a.renew().await.unwrap());
        // Released: the other node takes over at once, with a newer epoch.
        ha_a.release().await;
        let taken = ha_b.try_acquire(&node("b")).await.unwrap().unwrap();
        assert!(taken.epoch > epoch);
        assert!(!taken.from_live_holder, "a released lease is nobody's");
        b.put("k", vec![2]).await.unwrap();
        assert!(matches!(
            a.put("k", vec![3]).await,
            Err(StorageError::NotActive)
        ));
        assert_eq!(a.get("k").await.unwrap(), Some(vec![2]));
        drop_tables(&a, &cfg).await;
    }

    /// A paused active node whose lease ran out, and which a standby replaced, cannot commit
    /// when it wakes up, although it still believes it holds the lease: the fence is in the
    /// write's own transaction.
    #[tokio::test]
    async fn a_node_that_lost_its_lease_cannot_commit() {
        let (a, cfg) = fresh_with(true).await;
        let b = PostgresStorage::open(&cfg).await.unwrap();
        let (ha_a, ha_b) = (a.ha().unwrap(), b.ha().unwrap());
        ha_a.try_acquire(&node("a")).await.unwrap().unwrap();
        a.put("k", b"from a".to_vec()).await.unwrap();
        // `a` pauses past its lease (no renewal); `b` takes over.
        tokio::time::sleep(ha_a.lease_ttl() + std::time::Duration::from_millis(300)).await;
        ha_b.try_acquire(&node("b")).await.unwrap().unwrap();
        // `a` wakes up and writes, conditionally or not: refused, nothing applied.
        assert!(matches!(
            a.put("k", b"stale".to_vec()).await,
            Err(StorageError::NotActive)
        ));
        assert_eq!(b.get("k").await.unwrap(), Some(b"from a".to_vec()));
        assert!(
            !ha_a.renew().await.unwrap(),
            "the renewal must see the loss"
        );
        b.put("k", b"from b".to_vec()).await.unwrap();
        drop_tables(&a, &cfg).await;
    }

    /// Kills the holder's lease session, as the death of its process would.
    async fn kill_holder_session(s: &PostgresStorage, cfg: &PostgresConfig) {
        let c = s.pool.get().await.unwrap();
        c.batch_execute(&format!(
            "SELECT pg_terminate_backend(holder_pid) FROM {} WHERE id = 1",
            identifier(&cfg.ha_table).unwrap()
        ))
        .await
        .unwrap();
    }

    async fn takes_over_within(s: &PostgresStorage, id: &str, tries: usize) -> Option<Acquired> {
        for _ in 0..tries {
            if let Some(taken) = s.ha().unwrap().try_acquire(&node(id)).await.unwrap() {
                return Some(taken);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }

    /// The holder's process dies (its lease session vanishes from pg_stat_activity): a
    /// standby takes over without waiting for the lease to run out.
    #[tokio::test]
    async fn a_dead_holder_is_replaced_at_once() {
        let mut cfg = fresh_with(true).await.1;
        cfg.lease_ttl = std::time::Duration::from_secs(60);
        let a = PostgresStorage::open(&cfg).await.unwrap();
        let b = PostgresStorage::open(&cfg).await.unwrap();
        let ha_a = a.ha().unwrap();
        ha_a.try_acquire(&node("a")).await.unwrap().unwrap();
        assert_eq!(b.ha().unwrap().try_acquire(&node("b")).await.unwrap(), None);
        // A renewal after the standby's session opened: the database kept its sessions since.
        assert!(ha_a.renew().await.unwrap());
        kill_holder_session(&b, &cfg).await;
        let taken = takes_over_within(&b, "b", 50)
            .await
            .expect("a 60 s lease of a dead holder blocked the takeover");
        assert!(taken.from_live_holder, "{taken:?}");
        drop_tables(&b, &cfg).await;
    }

    /// Every session vanishes, the standby's too (a database restart or failover): the holder
    /// may be alive and still count its lease valid, so the standby waits for the lease.
    #[tokio::test]
    async fn when_all_sessions_vanish_the_standby_waits_for_the_lease() {
        let mut cfg = fresh_with(true).await.1;
        cfg.lease_ttl = std::time::Duration::from_secs(2);
        let a = PostgresStorage::open(&cfg).await.unwrap();
        a.ha()
            .unwrap()
            .try_acquire(&node("a"))
            .await
            .unwrap()
            .unwrap();
        // The standby's sessions are newer than the holder's last renewal, as every session
        // is after a restart; then the holder's session goes.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let b = PostgresStorage::open(&cfg).await.unwrap();
        assert_eq!(b.ha().unwrap().try_acquire(&node("b")).await.unwrap(), None);
        kill_holder_session(&b, &cfg).await;
        let started = std::time::Instant::now();
        let taken = takes_over_within(&b, "b", 100)
            .await
            .expect("never took over");
        assert!(!taken.from_live_holder, "{taken:?}");
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(1500),
            "took over after {:?}, before the lease ran out",
            started.elapsed()
        );
        drop_tables(&b, &cfg).await;
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
