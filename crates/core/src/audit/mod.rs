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
//! * Concurrency: entries are built and hashed outside any lock; each device holds its own
//!   short lock only to chain and write one line, so audit does not serialize the server.
//!
//! [`sink`] holds the file, socket and syslog writers.

pub mod chain;
pub mod sink;

use crate::barrier::{random_bytes, View};
use crate::error::{Error, Result};
use crate::framework::Caller;
use crate::logical::{Request, Response};
use crate::mount::MountEntry;
use aws_lc_rs::hmac;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sink::{FileSink, Sink, SocketSink, SyslogSink};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    salt: hmac::Key,
    log_raw: bool,
    hmac_accessor: bool,
    prefix: String,
    jsonx: bool,
    /// The writer and its chain state, behind one short lock.
    out: Mutex<(Box<dyn Sink>, Option<chain::Chain>)>,
}

impl Device {
    /// `hmac-sha256:<hex>` of a value with this device's salt.
    pub fn hash(&self, v: &str) -> String {
        let tag = hmac::sign(&self.salt, v.as_bytes());
        let mut out = String::with_capacity(12 + 64);
        out.push_str("hmac-sha256:");
        out.push_str(&crate::util::hex_lower(tag.as_ref()));
        out
    }

    /// Serializes the entry (outside the device's lock), then, holding it, links it into the
    /// chain and appends the line: the chain advances only once the line is written.
    fn write(&self, entry: Value) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        line.extend_from_slice(self.prefix.as_bytes());
        let start = line.len();
        if self.jsonx {
            line.extend_from_slice(chain::to_jsonx(&entry).as_bytes());
        } else {
            serde_json::to_writer(&mut line, &entry)?;
        }
        let mut out = self.out.lock();
        let (sink, chain) = &mut *out;
        let link = chain.as_ref().map(|c| c.seal_serialized(&mut line, start));
        line.push(b'\n');
        sink.write_line(&line)?;
        if let (Some(c), Some(link)) = (chain, link) {
            c.commit(link);
        }
        Ok(())
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

fn hash_strings(v: &mut Value, d: &Device, skip: &[String]) {
    match v {
        Value::String(s) => *s = d.hash(s),
        Value::Array(a) => a.iter_mut().for_each(|x| hash_strings(x, d, skip)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if !skip.contains(k) {
                    hash_strings(x, d, skip);
                }
            }
        }
        _ => {}
    }
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
        Ok(Device {
            salt: hmac::Key::new(hmac::HMAC_SHA256, &salt),
            log_raw: entry.flag("log_raw", false),
            hmac_accessor: entry.flag("hmac_accessor", true),
            prefix: entry.opt("prefix").to_string(),
            jsonx: format == "jsonx",
            out: Mutex::new((sink, chain)),
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

    /// Reopens every file device (log rotation).
    pub fn reopen(&self) {
        for d in self.devices.read().iter() {
            if let Err(e) = d.out.lock().0.reopen() {
                tracing::error!(device = %d.entry.path, error = %e, "audit device could not be reopened");
            }
        }
    }

    /// Writes one entry to every device. Ok if at least one device recorded it (or none is
    /// enabled); otherwise the request must fail.
    pub fn log(
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
        let mut recorded = 0;
        for d in &devices {
            let entry = build_entry(d, kind, req, ctx, resp, error);
            match d.write(entry) {
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

fn build_entry(
    d: &Device,
    kind: &str,
    req: &Request,
    ctx: &Context,
    resp: Option<&Response>,
    error: Option<&str>,
) -> Value {
    let h = |s: &str| {
        if d.log_raw || s.is_empty() {
            s.to_string()
        } else {
            d.hash(s)
        }
    };
    let ha = |s: &str| {
        if d.log_raw || !d.hmac_accessor || s.is_empty() {
            s.to_string()
        } else {
            d.hash(s)
        }
    };
    let mount = ctx.mount.as_ref();
    let skip_req = mount
        .map(|m| m.config.audit_non_hmac_request_keys.clone())
        .unwrap_or_default();
    let skip_resp = mount
        .map(|m| m.config.audit_non_hmac_response_keys.clone())
        .unwrap_or_default();
    let auth = ctx.caller.as_ref().map(|c| {
        json!({
            "client_token": h(&c.token),
            "accessor": ha(&c.entry.accessor),
            "display_name": c.entry.display_name,
            "policies": c.entry.policies,
            "token_policies": c.entry.policies,
            "metadata": c.entry.meta,
            "entity_id": c.entry.entity_id,
            "token_type": c.entry.type_name(),
            "token_ttl": c.entry.creation_ttl,
            "token_issue_time": crate::util::rfc3339(c.entry.creation_time),
        })
    });
    let mut data = Value::Object(req.data.clone());
    if !d.log_raw {
        hash_strings(&mut data, d, &skip_req);
    }
    let mut request = json!({
        "id": req.id,
        "operation": req.operation.as_str(),
        "mount_point": mount.map(|m| m.route_prefix()).unwrap_or_default(),
        "mount_type": mount.map(|m| m.kind.clone()).unwrap_or_default(),
        "mount_accessor": mount.map(|m| m.accessor.clone()).unwrap_or_default(),
        "client_token": h(req.token.as_deref().unwrap_or("")),
        "client_token_accessor": ctx.caller.as_ref().map(|c| ha(&c.entry.accessor)).unwrap_or_default(),
        "namespace": { "id": "root" },
        "path": req.path,
        "data": if req.data.is_empty() { Value::Null } else { data },
        "remote_address": req.remote_addr.clone().unwrap_or_default(),
    });
    if let Some(ttl) = req.wrap_ttl {
        request["wrap_ttl"] = json!(ttl.as_secs());
    }
    let mut entry = json!({
        "time": crate::util::now_rfc3339(),
        "type": kind,
        "auth": auth,
        "request": request,
    });
    if kind == "response" {
        let mut r = json!({ "mount_point": mount.map(|m| m.route_prefix()).unwrap_or_default(), "mount_type": mount.map(|m| m.kind.clone()).unwrap_or_default() });
        if let Some(resp) = resp {
            if let Some(data) = &resp.data {
                let mut data = Value::Object(data.clone());
                if !d.log_raw {
                    hash_strings(&mut data, d, &skip_resp);
                }
                r["data"] = data;
            }
            if let Some(a) = &resp.auth {
                r["auth"] = json!({ "client_token": h(&a.client_token), "accessor": ha(&a.accessor), "policies": a.policies, "token_policies": a.token_policies, "metadata": a.metadata, "entity_id": a.entity_id, "token_type": a.token_type, "token_ttl": a.lease_duration });
            }
            if let Some(w) = &resp.wrap_info {
                let mut w = w.clone();
                for k in ["token", "accessor", "wrapped_accessor"] {
                    if let Some(Value::String(s)) = w.get(k).cloned() {
                        w[k] = json!(if k == "token" { h(&s) } else { ha(&s) });
                    }
                }
                r["wrap_info"] = w;
            }
            if let Some(l) = &resp.lease {
                r["secret"] = json!({ "lease_id": l.lease_id });
            }
            if !resp.warnings.is_empty() {
                r["warnings"] = json!(resp.warnings);
            }
        }
        entry["response"] = r;
    }
    if let Some(e) = error {
        entry["error"] = json!(e);
    }
    entry
}
