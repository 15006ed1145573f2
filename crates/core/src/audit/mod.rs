//! The audit broker: every request and every response is written, as one JSON line each in
//! Vault's entry shape, to every enabled audit device, before the client sees anything.
//!
//! * Sensitive values (every string in request and response data, tokens, accessors, wrapping
//!   tokens) are replaced by `hmac-sha256:<hex>`, keyed by a per-device salt kept in the barrier;
//!   `sys/audit-hash/:path` hashes a given input with that salt so an operator can search logs.
//! * Fail closed: when devices are enabled and none could record an entry, the request fails
//!   with a 500 and nothing is returned (see [`AuditBroker::log`]).
//! * Beyond Vault: file devices keep a tamper-evident chain. Each line carries
//!   `"chain": {"seq", "prev", "mac"}` where `mac = HMAC-SHA256(chain key, prev ‖ entry)`;
//!   `tresor audit verify` reports the first altered, removed or reordered line.
//! * Concurrency: entries are built and hashed by the requests, in parallel, straight into
//!   their lines ([`entry`]); per device, one request at a time leads: it chains and writes
//!   whatever lines have queued in one call, and each request is answered only once its line
//!   is written ([`writer`]), so audit neither serializes the server nor costs a system call
//!   (or a thread switch) per entry.
//!
//! [`sink`] holds the file, socket and syslog writers.

pub mod chain;
mod entry;
pub mod sink;
mod writer;

use crate::barrier::{random_bytes, View};
use crate::error::{Error, Result};
use crate::framework::Caller;
use crate::logical::{Request, Response};
use crate::mount::MountEntry;
use aws_lc_rs::hmac;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sink::{FileSink, Sink, SocketSink, SyslogSink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use entry::TokenHashes;

/// One configured device, as stored in the audit table (or declared in the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    /// With a trailing `/` (`file/`).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default)]
    pub local: bool,
    /// Declared in the server config file: not stored, not removable over the API.
    #[serde(default, skip_serializing)]
    pub from_config: bool,
}

impl AuditEntry {
    fn opt(&self, k: &str) -> &str {
        self.options.get(k).and_then(Value::as_str).unwrap_or("")
    }
    fn flag(&self, k: &str, default: bool) -> bool {
        match self.options.get(k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "t"),
            _ => default,
        }
    }
    pub fn to_json(&self) -> Value {
        json!({ "type": self.kind, "description": self.description, "options": self.options, "local": self.local, "path": self.path })
    }
}

/// A running device.
pub struct Device {
    pub entry: AuditEntry,
    /// Unique in this process (a device enabled again under the same path gets a new one).
    id: u64,
    salt: hmac::Key,
    log_raw: bool,
    hmac_accessor: bool,
    prefix: String,
    jsonx: bool,
    /// The sink and the chain, written by whichever request leads the next batch.
    writer: writer::Writer,
}

impl Device {
    /// `hmac-sha256:<hex>` of a value with this device's salt.
    pub fn hash(&self, v: &str) -> String {
        let mut buf = [0u8; entry::HASH_LEN];
        self.hash_into(v, &mut buf).to_string()
    }

    /// [`Device::hash`] into a buffer on the caller's stack.
    fn hash_into<'b>(&self, v: &str, buf: &'b mut [u8; entry::HASH_LEN]) -> &'b str {
        let tag = hmac::sign(&self.salt, v.as_bytes());
        buf[..12].copy_from_slice(b"hmac-sha256:");
        hex::encode_to_slice(tag.as_ref(), &mut buf[12..]).expect("64 hex digits fit");
        std::str::from_utf8(buf).expect("ASCII")
    }

    /// A token as this device logs it: HMAC'd unless `log_raw` (an absent token stays empty).
    fn logged_token(&self, token: &str) -> String {
        if self.log_raw || token.is_empty() {
            token.to_string()
        } else {
            self.hash(token)
        }
    }

    /// An accessor as this device logs it: as a token, unless `hmac_accessor` is off.
    fn logged_accessor(&self, accessor: &str) -> String {
        if self.hmac_accessor {
            self.logged_token(accessor)
        } else {
            accessor.to_string()
        }
    }

    /// Builds the entry's line and hands it to the device's writer.
    fn queue(
        &self,
        tokens: &entry::Tokens,
        record: &entry::Record,
    ) -> std::io::Result<writer::Written<'_>> {
        // Room for a typical entry and its chain fields (~1.5 KB): no growing on the way.
        let mut line = Vec::with_capacity(2048);
        line.extend_from_slice(self.prefix.as_bytes());
        let start = line.len();
        entry::write(&mut line, self, tokens, record);
        if self.jsonx {
            let value: Value = serde_json::from_slice(&line[start..])?;
            line.truncate(start);
            line.extend_from_slice(chain::to_jsonx(&value).as_bytes());
        }
        Ok(self.writer.queue(line, start))
    }
}

/// Checks that `file_path` lies inside `audit_dir` (after resolving `..` and symlinks of the
/// parent directory). OpenBao disabled API-created audit devices after they were used to write
/// arbitrary files; Tresor keeps the API and confines it.
pub fn confine(file_path: &str, audit_dir: Option<&Path>) -> Result<PathBuf> {
    if matches!(file_path, "-" | "stdout") {
        return Ok(PathBuf::from(file_path));
    }
    let dir = audit_dir.ok_or_else(|| Error::bad("file audit devices can only be enabled over the API when the server config sets audit_dir"))?;
    let p = PathBuf::from(file_path);
    let name = p
        .file_name()
        .ok_or_else(|| Error::bad("file_path must name a file"))?;
    let parent = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(dir);
    let parent = std::fs::canonicalize(parent)
        .map_err(|_| Error::bad("file_path's directory does not exist"))?;
    let dir = std::fs::canonicalize(dir)
        .map_err(|_| Error::bad("the configured audit_dir does not exist"))?;
    if !parent.starts_with(&dir) {
        return Err(Error::bad(format!(
            "file_path must be inside the audit directory {}",
            dir.display()
        )));
    }
    Ok(parent.join(name))
}

/// What the broker knows of a request beyond the request itself.
#[derive(Default, Clone)]
pub struct Context {
    pub caller: Option<Caller>,
    pub mount: Option<std::sync::Arc<MountEntry>>,
    /// Set once the request entry was written.
    pub request_logged: bool,
    /// The seal API (health, unseal ...) is not audited, as in Vault.
    pub seal_api: bool,
    /// The mount's latency metrics, once routed.
    pub route_metrics: Option<std::sync::Arc<crate::metrics::RouteMetrics>>,
    /// What a rate-limit quota left the client, when the `X-Ratelimit-*` headers are on.
    pub rate_limit: Option<crate::quotas::Allowance>,
    /// Not audited: refused by a quota while `enable_rate_limit_audit_logging` is off.
    pub unaudited: bool,
    /// The token HMACs of the request entry, for the response entry.
    pub token_hashes: TokenHashes,
}

pub struct AuditBroker {
    devices: RwLock<Vec<Arc<Device>>>,
}

impl Default for AuditBroker {
    fn default() -> Self {
        AuditBroker {
            devices: RwLock::new(Vec::new()),
        }
    }
}

impl AuditBroker {
    pub fn is_enabled(&self) -> bool {
        !self.devices.read().is_empty()
    }

    pub fn entries(&self) -> Vec<AuditEntry> {
        self.devices
            .read()
            .iter()
            .map(|d| d.entry.clone())
            .collect()
    }

    pub fn device(&self, path: &str) -> Option<Arc<Device>> {
        let p = format!("{}/", path.trim_end_matches('/'));
        self.devices
            .read()
            .iter()
            .find(|d| d.entry.path == p)
            .cloned()
    }

    /// Builds and starts a device; its salt and chain key live in `keys` (the barrier).
    pub async fn build(entry: AuditEntry, keys: &View) -> Result<Device> {
        let secret = |name: String| async move {
            match keys.get(&name).await? {
                Some(s) => Ok::<_, Error>(s),
                None => {
                    let s = random_bytes(32);
                    keys.put(&name, s.clone()).await?;
                    Ok(s)
                }
            }
        };
        let salt = secret(format!("salt/{}", entry.path.trim_end_matches('/'))).await?;
        let format = entry.opt("format");
        if !matches!(format, "" | "json" | "jsonx") {
            return Err(Error::bad(format!(
                "unknown format {format:?}: json or jsonx"
            )));
        }
        let (sink, chain): (Box<dyn Sink>, Option<chain::Chain>) = match entry.kind.as_str() {
            "file" => {
                let path = [entry.opt("file_path"), entry.opt("path")]
                    .into_iter()
                    .find(|p| !p.is_empty())
                    .ok_or_else(|| Error::bad("file_path is required"))?
                    .to_string();
                let mode = match entry.opt("mode") {
                    "" => 0o600,
                    m => u32::from_str_radix(m, 8)
                        .map_err(|_| Error::bad("mode must be an octal number"))?,
                };
                let sink = FileSink::open(PathBuf::from(&path), mode)
                    .map_err(|e| Error::bad(format!("cannot open audit file: {e}")))?;
                let key = secret(format!("chain/{}", entry.path.trim_end_matches('/'))).await?;
                let chain = if matches!(path.as_str(), "-" | "stdout") || format == "jsonx" {
                    None
                } else {
                    Some(chain::Chain::resume(&key, Path::new(&path)))
                };
                (Box::new(sink), chain)
            }
            "socket" => {
                let addr = entry.opt("address");
                if addr.is_empty() {
                    return Err(Error::bad("address is required"));
                }
                (
                    Box::new(
                        SocketSink::new(addr.to_string(), entry.opt("socket_type"))
                            .map_err(|e| Error::bad(e.to_string()))?,
                    ),
                    None,
                )
            }
            "syslog" => (
                Box::new(
                    SyslogSink::new(entry.opt("facility"), entry.opt("tag"))
                        .map_err(|e| Error::bad(format!("cannot open syslog: {e}")))?,
                ),
                None,
            ),
            other => return Err(Error::bad(format!("unknown audit backend type: {other}"))),
        };
        static DEVICE_IDS: AtomicU64 = AtomicU64::new(0);
        let writer = writer::Writer::new(sink, chain);
        Ok(Device {
            id: DEVICE_IDS.fetch_add(1, Ordering::Relaxed),
            salt: hmac::Key::new(hmac::HMAC_SHA256, &salt),
            log_raw: entry.flag("log_raw", false),
            hmac_accessor: entry.flag("hmac_accessor", true),
            prefix: entry.opt("prefix").to_string(),
            jsonx: format == "jsonx",
            writer,
            entry,
        })
    }

    pub fn add(&self, d: Device) {
        let mut ds = self.devices.write();
        ds.retain(|x| x.entry.path != d.entry.path);
        ds.push(Arc::new(d));
    }

    pub fn remove(&self, path: &str) -> Option<AuditEntry> {
        let p = format!("{}/", path.trim_end_matches('/'));
        let mut ds = self.devices.write();
        let i = ds.iter().position(|d| d.entry.path == p)?;
        Some(ds.remove(i).entry.clone())
    }

    pub fn clear(&self) {
        self.devices.write().clear();
    }

    /// The running device for exactly this entry, if any.
    pub fn running(&self, entry: &AuditEntry) -> Option<Arc<Device>> {
        self.devices
            .read()
            .iter()
            .find(|d| d.entry == *entry)
            .cloned()
    }

    /// Puts `devices` in place of the current ones at once (never a moment without devices).
    pub fn replace(&self, devices: Vec<Arc<Device>>) {
        *self.devices.write() = devices;
    }

    /// Reopens every file device (log rotation): entries queued before go to the old file.
    pub fn reopen(&self) {
        for d in self.devices.read().iter() {
            d.writer.reopen();
        }
    }

    /// Writes one entry to every device. Ok if at least one device recorded it (or none is
    /// enabled); otherwise the request must fail.
    pub async fn log(
        &self,
        kind: &str,
        req: &Request,
        ctx: &Context,
        resp: Option<&Response>,
        error: Option<&str>,
    ) -> Result<()> {
        let devices = self.devices.read().clone();
        if devices.is_empty() {
            return Ok(());
        }
        let record = entry::Record {
            kind,
            req,
            ctx,
            resp,
            error,
        };
        // Every device's line queued first, then the answers awaited: devices write in parallel.
        let queued: Vec<_> = devices
            .iter()
            .map(|d| d.queue(&entry::tokens(d, &devices, req, ctx), &record))
            .collect();
        let mut recorded = 0;
        for (d, queued) in devices.iter().zip(queued) {
            let written = match queued {
                Ok(written) => written.wait().await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => recorded += 1,
                Err(e) => {
                    tracing::error!(device = %d.entry.path, error = %e, "audit device failed to record an entry")
                }
            }
        }
        if recorded == 0 {
            return Err(Error::internal(
                "no audit device could record the request; refusing to answer it",
            ));
        }
        Ok(())
    }
}
