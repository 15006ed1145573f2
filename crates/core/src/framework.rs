//! The backend framework: secrets engines and auth methods declare their paths, fields and
//! operations as data (Vault's `sdk/framework`), and this module does the rest: matching a
//! request to a path, validating and converting its fields, dispatching to the handler, and
//! describing the paths for `help` and the OpenAPI document.
//!
//! ```ignore
//! Path::new(r"data/(?P<path>.+)")
//!     .field("options", Field::map("write options (cas)"))
//!     .op(Operation::Read, Kv::read_data)
//!     .op(Operation::Update, Kv::write_data)
//!     .help("Read or write a versioned secret.")
//! ```

use crate::barrier::View;
use crate::error::{Error, Result};
use crate::logical::{Data, Operation, Response};
use crate::mount::MountEntry;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The type of a declared field; input is converted to it (Vault's weak typing: `"5"` is an int).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Int,
    Bool,
    /// Seconds as a number, or a Go-style duration string (`"1h30m"`, `"768h"`).
    Duration,
    Map,
    /// A list of strings; a comma-separated string is split.
    StringList,
    /// Any JSON value, passed through.
    Raw,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "integer",
            FieldType::Bool => "boolean",
            FieldType::Duration => "duration",
            FieldType::Map => "object",
            FieldType::StringList => "array",
            FieldType::Raw => "any",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub ty: FieldType,
    pub description: &'static str,
    pub default: Option<Value>,
    pub required: bool,
}

impl Field {
    fn new(ty: FieldType, description: &'static str) -> Self {
        Field {
            ty,
            description,
            default: None,
            required: false,
        }
    }
    pub fn string(d: &'static str) -> Self {
        Self::new(FieldType::String, d)
    }
    pub fn int(d: &'static str) -> Self {
        Self::new(FieldType::Int, d)
    }
    pub fn bool(d: &'static str) -> Self {
        Self::new(FieldType::Bool, d)
    }
    pub fn duration(d: &'static str) -> Self {
        Self::new(FieldType::Duration, d)
    }
    pub fn map(d: &'static str) -> Self {
        Self::new(FieldType::Map, d)
    }
    pub fn list(d: &'static str) -> Self {
        Self::new(FieldType::StringList, d)
    }
    pub fn raw(d: &'static str) -> Self {
        Self::new(FieldType::Raw, d)
    }
    pub fn default(mut self, v: impl Into<Value>) -> Self {
        self.default = Some(v.into());
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// Converts a JSON value to a field's type, Vault-style.
pub fn convert(name: &str, ty: FieldType, v: &Value) -> Result<Value> {
    let err = || {
        Error::bad(format!(
            "error converting input for field \"{name}\": expected {}",
            ty.name()
        ))
    };
    Ok(match ty {
        FieldType::Raw => v.clone(),
        FieldType::String => match v {
            Value::String(_) => v.clone(),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            Value::Null => Value::String(String::new()),
            _ => return Err(err()),
        },
        FieldType::Int => match v {
            Value::Number(n) => json!(n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or_else(err)?),
            Value::String(s) if s.is_empty() => json!(0),
            Value::String(s) => json!(s.trim().parse::<i64>().map_err(|_| err())?),
            Value::Bool(b) => json!(*b as i64),
            _ => return Err(err()),
        },
        FieldType::Bool => match v {
            Value::Bool(_) => v.clone(),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => json!(true),
                "false" | "0" | "f" | "" => json!(false),
                _ => return Err(err()),
            },
            Value::Number(n) => json!(n.as_f64().unwrap_or(0.0) != 0.0),
            _ => return Err(err()),
        },
        FieldType::Duration => json!(parse_duration(v).ok_or_else(err)?.as_secs()),
        FieldType::Map => match v {
            Value::Object(_) => v.clone(),
            Value::Null => json!({}),
            Value::String(s) if s.is_empty() => json!({}),
            Value::String(s) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(|v| v.is_object())
                .ok_or_else(err)?,
            _ => return Err(err()),
        },
        FieldType::StringList => match v {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(Value::String(s.trim().to_string())),
                        Value::Number(n) => Ok(Value::String(n.to_string())),
                        _ => Err(err()),
                    })
                    .collect::<Result<_>>()?,
            ),
            Value::String(s) if s.trim().is_empty() => json!([]),
            Value::String(s) => Value::Array(
                s.split(',')
                    .map(|p| Value::String(p.trim().to_string()))
                    .collect(),
            ),
            Value::Null => json!([]),
            _ => return Err(err()),
        },
    })
}

/// Parses seconds (number or numeric string) or a Go-style duration ("1h", "90m", "1h30m", "2d").
pub fn parse_duration(v: &Value) -> Option<Duration> {
    match v {
        Value::Number(n) => n.as_u64().map(Duration::from_secs).or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0)
                .map(|f| Duration::from_secs(f as u64))
        }),
        Value::String(s) => parse_duration_str(s),
        Value::Null => Some(Duration::ZERO),
        _ => None,
    }
}

pub fn parse_duration_str(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Duration::ZERO);
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    // Go allows "1h30m10s"; humantime accepts those and also days ("2d").
    humantime::parse_duration(s).ok()
}

/// The validated fields of one call: the declared fields the request carried, converted to
/// their types, plus path captures; other declared fields read as their defaults.
#[derive(Debug, Clone, Default)]
pub struct FieldData {
    /// What the request gave. Keyed by the declared field names (static) or, for undeclared
    /// path captures, owned ones. A request carries a handful of fields, so a list searched
    /// in order beats a map.
    values: Vec<(Cow<'static, str>, Value)>,
    /// The path's declared defaults, converted once when the path was declared.
    defaults: Option<Arc<Vec<(&'static str, Value)>>>,
}

impl FieldData {
    /// The value, or the field's default, or null.
    pub fn get(&self, name: &str) -> &Value {
        self.given(name)
            .or_else(|| {
                self.defaults
                    .as_ref()?
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v)
            })
            .unwrap_or(&Value::Null)
    }
    fn given(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    /// Whether the client sent this field (or it was captured from the path).
    pub fn has(&self, name: &str) -> bool {
        self.given(name).is_some()
    }
    pub fn str(&self, name: &str) -> &str {
        self.get(name).as_str().unwrap_or("")
    }
    pub fn int(&self, name: &str) -> i64 {
        self.get(name).as_i64().unwrap_or(0)
    }
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).as_bool().unwrap_or(false)
    }
    pub fn duration(&self, name: &str) -> Duration {
        Duration::from_secs(self.get(name).as_u64().unwrap_or(0))
    }
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .filter(|s| !s.is_empty())
                .collect(),
            _ => vec![],
        }
    }
    pub fn map(&self, name: &str) -> serde_json::Map<String, Value> {
        self.get(name).as_object().cloned().unwrap_or_default()
    }
}

/// Everything a handler gets for one call.
#[derive(Clone)]
pub struct Call {
    pub operation: Operation,
    /// The path relative to the mount.
    pub path: String,
    pub fields: FieldData,
    /// The raw request body (for engines whose data is free-form, like KV).
    pub data: Data,
    /// The backend's private, encrypted storage.
    pub storage: View,
    pub mount: Arc<MountEntry>,
    /// Information about the caller's token, when authenticated.
    pub caller: Option<Caller>,
    pub request_id: String,
    pub remote_addr: Option<String>,
    /// The wrap TTL the client asked for (`X-Vault-Wrap-TTL`).
    pub wrap_ttl: Option<Duration>,
    /// The TLS client certificate chain (DER, leaf first), unverified; empty when none.
    pub client_certs: Vec<Vec<u8>>,
    /// The lease TTLs in force on this mount: its tuning, else the server's (`ttl.rs`).
    /// Whatever a backend issues lives no longer than `max_ttl`.
    pub ttl_limits: crate::ttl::TtlLimits,
}

/// Who made a request: what the handler may need of the token (e.g. for `lookup-self`).
#[derive(Clone)]
pub struct Caller {
    /// The token as the client sent it.
    pub token: String,
    pub entry: Arc<crate::token::TokenEntry>,
    pub acl: Arc<crate::policy::Acl>,
}

/// A lease being renewed or revoked, as the backend that issued it sees it.
pub struct LeaseCall {
    pub lease_id: String,
    pub storage: View,
    pub mount: Arc<MountEntry>,
    /// The `internal` data the backend attached to the secret.
    pub internal: Value,
    /// For renewals: the TTL the lease will have (seconds).
    pub increment: u64,
    pub issue_time: i64,
    pub ttl: u64,
}

type LeaseHook<B> = Arc<dyn Fn(Arc<B>, LeaseCall) -> BoxFuture<Result<()>> + Send + Sync>;

type Handler<B> = Arc<dyn Fn(Arc<B>, Call) -> BoxFuture<Result<Response>> + Send + Sync>;
type RoleResolver<B> = Arc<dyn Fn(Arc<B>, Call) -> BoxFuture<Result<Option<String>>> + Send + Sync>;
type Exists<B> = Arc<dyn Fn(Arc<B>, Call) -> BoxFuture<Result<bool>> + Send + Sync>;

/// One path pattern of a backend: its fields, and a handler per operation.
pub struct Path<B> {
    pub pattern: String,
    regex: regex::Regex,
    /// The literal text every match starts with (see [`literal_prefix`]): routing compares
    /// it before running the regex, so a request costs one regex run, not one per path.
    prefix: String,
    /// For patterns shaped `literal(?P<name>...)` (most named paths: `keys/<name>`,
    /// `data/<path>`): the group's name. A match's capture is then the rest of the path after
    /// the literal, with no regex run to extract it.
    tail_capture: Option<String>,
    pub fields: Vec<(&'static str, Field)>,
    /// The fields' defaults, converted to their types once (every call shares them).
    defaults: Arc<Vec<(&'static str, Value)>>,
    handlers: Vec<(Operation, Handler<B>)>,
    exists: Option<Exists<B>>,
    pub help: &'static str,
}

impl<B: Send + Sync + 'static> Path<B> {
    /// A path; `pattern` is a regex matched against the whole mount-relative path. Named groups
    /// become fields.
    pub fn new(pattern: &str) -> Self {
        let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
            .expect("path pattern must be a valid regex");
        let prefix = literal_prefix(pattern);
        let mut names = regex.capture_names().flatten();
        let tail_capture = match (names.next(), names.next()) {
            (Some(name), None) if is_tail_group(&pattern[prefix.len()..], name) => {
                Some(name.to_string())
            }
            _ => None,
        };
        Path {
            pattern: pattern.to_string(),
            regex,
            prefix,
            tail_capture,
            fields: vec![],
            defaults: Arc::default(),
            handlers: vec![],
            exists: None,
            help: "",
        }
    }
    pub fn field(mut self, name: &'static str, f: Field) -> Self {
        if let Some(d) = &f.default {
            let d = convert(name, f.ty, d).expect("a field's default must convert to its type");
            Arc::make_mut(&mut self.defaults).push((name, d));
        }
        self.fields.push((name, f));
        self
    }
    pub fn op<F, Fut>(mut self, op: Operation, f: F) -> Self
    where
        F: Fn(Arc<B>, Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        self.handlers
            .push((op, Arc::new(move |b, c| Box::pin(f(b, c)))));
        self
    }
    /// Declares an existence check: writes to an existing entry are `update`, others `create`.
    pub fn exists<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Arc<B>, Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool>> + Send + 'static,
    {
        self.exists = Some(Arc::new(move |b, c| Box::pin(f(b, c))));
        self
    }
    pub fn help(mut self, h: &'static str) -> Self {
        self.help = h;
        self
    }
    pub fn operations(&self) -> impl Iterator<Item = Operation> + '_ {
        self.handlers.iter().map(|(o, _)| *o)
    }
    fn handler(&self, op: Operation) -> Option<&Handler<B>> {
        self.handlers.iter().find(|(o, _)| *o == op).map(|(_, h)| h)
    }
    /// Whether the mount-relative path is one of this pattern's.
    fn matches(&self, rel_path: &str) -> bool {
        rel_path.starts_with(&self.prefix) && self.regex.is_match(rel_path)
    }
    fn field_data(&self, op: Operation, rel_path: &str, data: &Data) -> Result<FieldData> {
        let mut values: Vec<(Cow<'static, str>, Value)> = Vec::new();
        let declared = |name: &str| self.fields.iter().find(|(n, _)| *n == name);
        // Named path captures first (they win over a body field of the same name), read once
        // by index. Patterns without named groups (most fixed paths) need no second regex run.
        let mut capture = |name: &str, v: &str| -> Result<()> {
            let value = Value::String(v.to_string());
            match declared(name) {
                Some((n, f)) => values.push((Cow::Borrowed(*n), convert(n, f.ty, &value)?)),
                None => values.push((Cow::Owned(name.to_string()), value)),
            }
            Ok(())
        };
        if let Some(name) = &self.tail_capture {
            // Routing matched the whole pattern, so the group spans the rest of the path.
            capture(name, &rel_path[self.prefix.len()..])?;
        } else if self.regex.captures_len() > 1 {
            if let Some(c) = self.regex.captures(rel_path) {
                for (i, name) in self.regex.capture_names().enumerate() {
                    if let (Some(n), Some(m)) = (name, c.get(i)) {
                        capture(n, m.as_str())?;
                    }
                }
            }
        }
        let captured = values.len();
        // Then the declared fields the body carries: walking the body (a few entries) and
        // finding each among the declared fields costs less than looking every declared field
        // up in the body.
        for (key, v) in data {
            if let Some((n, f)) = declared(key) {
                if !values[..captured].iter().any(|(c, _)| c == key) {
                    values.push((Cow::Borrowed(*n), convert(n, f.ty, v)?));
                }
            }
        }
        let fd = FieldData {
            values,
            defaults: Some(self.defaults.clone()),
        };
        if matches!(op, Operation::Create | Operation::Update | Operation::Patch) {
            if let Some((name, _)) = self.fields.iter().find(|(n, f)| f.required && !fd.has(n)) {
                return Err(Error::bad(format!("missing required field \"{name}\"")));
            }
        }
        Ok(fd)
    }
}

/// What the core needs of any backend (a mounted secrets engine or auth method).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Handles one call; `call.operation` is final (create vs update already decided).
    async fn handle(&self, call: Call) -> Result<Response>;
    /// Whether a write to this path would create a new entry (`Some(false)`) or update one
    /// (`Some(true)`); `None` when the path declares no existence check. The core asks before
    /// the ACL check and then hands the same call to [`Backend::handle`].
    async fn exists(&self, call: &Call) -> Result<Option<bool>>;
    /// Mount-relative paths reachable without a token (e.g. `login`). A trailing `*` is a prefix.
    fn unauthenticated_paths(&self) -> &[String] {
        &[]
    }
    /// Mount-relative paths that need the `sudo` capability. A trailing `*` is a prefix.
    fn sudo_paths(&self) -> &[String] {
        &[]
    }
    /// A description of every path, for `help` and the OpenAPI document.
    fn describe(&self) -> Value;
    /// Whether an HA standby may run this backend's `read` and `list` requests itself. A
    /// backend whose reads act outside Tresor before they store anything (creating database
    /// users) says no: on a standby the write would fail after the act, so such reads go to
    /// the active node whole.
    fn reads_on_standby(&self) -> bool {
        true
    }
    /// Called once after mounting (and after unseal) so the backend can load state.
    async fn initialize(&self, _storage: &View) -> Result<()> {
        Ok(())
    }
    /// Called about once a second while unsealed, for scheduled work (key rotation, tidying).
    /// Must be cheap when there is nothing to do.
    async fn periodic(&self, _storage: &View) -> Result<()> {
        Ok(())
    }
    /// Ends a secret this backend issued (its lease expired or was revoked).
    async fn revoke_secret(&self, _lease: LeaseCall) -> Result<()> {
        Ok(())
    }
    /// Extends a secret this backend issued; an error refuses the renewal.
    async fn renew_secret(&self, _lease: LeaseCall) -> Result<()> {
        Ok(())
    }
    /// Whether this auth method can name the role a login asks for (Vault's resolve-role
    /// operation), which role-based rate-limit quotas need.
    fn resolves_roles(&self) -> bool {
        false
    }
    /// The role a login request asks for (`None`: not a login, or no role it can name). Reads
    /// only; never fails a request (the login itself reports what is wrong).
    async fn resolve_role(&self, _call: &Call) -> Option<String> {
        None
    }
}

/// A backend built from a list of [`Path`]s over a value `B` holding its state.
pub struct PathBackend<B> {
    inner: Arc<B>,
    paths: Vec<Path<B>>,
    unauthenticated: Vec<String>,
    sudo: Vec<String>,
    help: &'static str,
    on_revoke: Option<LeaseHook<B>>,
    on_renew: Option<LeaseHook<B>>,
    role_resolver: Option<(String, RoleResolver<B>)>,
}

impl<B: Send + Sync + 'static> PathBackend<B> {
    pub fn new(inner: B, paths: Vec<Path<B>>) -> Self {
        PathBackend {
            inner: Arc::new(inner),
            paths,
            unauthenticated: vec![],
            sudo: vec![],
            help: "",
            on_revoke: None,
            on_renew: None,
            role_resolver: None,
        }
    }
    pub fn unauthenticated(mut self, p: &[&str]) -> Self {
        self.unauthenticated = p.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn sudo(mut self, p: &[&str]) -> Self {
        self.sudo = p.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn help(mut self, h: &'static str) -> Self {
        self.help = h;
        self
    }
    /// What to do when a lease on one of this backend's secrets ends.
    pub fn on_revoke<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Arc<B>, LeaseCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.on_revoke = Some(Arc::new(move |b, c| Box::pin(f(b, c))));
        self
    }
    /// What to do when a lease on one of this backend's secrets is renewed.
    pub fn on_renew<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Arc<B>, LeaseCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.on_renew = Some(Arc::new(move |b, c| Box::pin(f(b, c))));
        self
    }
    /// How a login to `login_path` (exactly; one of this backend's paths) names its role, from
    /// the request's fields (see [`Backend::resolve_role`]).
    pub fn login_role<F, Fut>(mut self, login_path: &str, f: F) -> Self
    where
        F: Fn(Arc<B>, Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<String>>> + Send + 'static,
    {
        self.role_resolver = Some((
            login_path.to_string(),
            Arc::new(move |b, c| Box::pin(f(b, c))),
        ));
        self
    }
    pub fn inner(&self) -> &Arc<B> {
        &self.inner
    }
    fn route(&self, rel: &str) -> Option<&Path<B>> {
        self.paths.iter().find(|p| p.matches(rel))
    }
}

#[async_trait]
impl<B: Send + Sync + 'static> Backend for PathBackend<B> {
    async fn handle(&self, mut call: Call) -> Result<Response> {
        let path = self
            .route(&call.path)
            .ok_or_else(|| Error::UnsupportedPath(format!("unsupported path: {}", call.path)))?;
        if call.operation == Operation::Help {
            return Ok(Response::data(
                json!({ "help": path.help, "pattern": path.pattern }),
            ));
        }
        let handler = path
            .handler(call.operation)
            .ok_or(Error::UnsupportedOperation)?;
        call.fields = path.field_data(call.operation, &call.path, &call.data)?;
        handler(self.inner.clone(), call).await
    }

    async fn exists(&self, call: &Call) -> Result<Option<bool>> {
        let Some(path) = self.route(&call.path) else {
            return Ok(None);
        };
        let Some(check) = &path.exists else {
            return Ok(None);
        };
        // Only paths that declare a check pay for a copy of the call.
        let mut probe = call.clone();
        probe.fields = path.field_data(call.operation, &call.path, &call.data)?;
        Ok(Some(check(self.inner.clone(), probe).await?))
    }

    fn unauthenticated_paths(&self) -> &[String] {
        &self.unauthenticated
    }
    fn sudo_paths(&self) -> &[String] {
        &self.sudo
    }
    async fn revoke_secret(&self, lease: LeaseCall) -> Result<()> {
        match &self.on_revoke {
            Some(h) => h(self.inner.clone(), lease).await,
            None => Ok(()),
        }
    }
    async fn renew_secret(&self, lease: LeaseCall) -> Result<()> {
        match &self.on_renew {
            Some(h) => h(self.inner.clone(), lease).await,
            None => Ok(()),
        }
    }
    fn resolves_roles(&self) -> bool {
        self.role_resolver.is_some()
    }
    async fn resolve_role(&self, call: &Call) -> Option<String> {
        let (login_path, resolve) = self.role_resolver.as_ref()?;
        if call.path != *login_path {
            return None;
        }
        let path = self.route(&call.path)?;
        let mut probe = call.clone();
        probe.fields = path
            .field_data(Operation::Update, &call.path, &call.data)
            .ok()?;
        resolve(self.inner.clone(), probe)
            .await
            .ok()
            .flatten()
            .filter(|r| !r.is_empty())
    }

    fn describe(&self) -> Value {
        let paths: Vec<Value> = self
            .paths
            .iter()
            .map(|p| {
                json!({
                    "pattern": p.pattern,
                    "help": p.help,
                    "operations": p.operations().map(|o| o.as_str()).collect::<Vec<_>>(),
                    "fields": p.fields.iter().map(|(n, f)| (n.to_string(), json!({
                        "type": f.ty.name(), "description": f.description, "required": f.required,
                        "default": f.default,
                    }))).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        json!({ "help": self.help, "paths": paths })
    }
}

/// The literal text at the start of every string a path pattern matches: the pattern up to
/// its first regex metacharacter, less the last character when a quantifier follows it
/// (`keys/?` guarantees only `keys`). Empty when the pattern has a top-level alternation
/// (`a|b`) or opens with a group or class.
fn literal_prefix(pattern: &str) -> String {
    let mut depth = 0i32;
    let mut escaped = false;
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' => depth -= 1,
            '|' if depth == 0 => return String::new(),
            _ => {}
        }
    }
    let end = pattern
        .find(|c: char| "\\.+*?()[]{}|^$".contains(c))
        .unwrap_or(pattern.len());
    let mut prefix = &pattern[..end];
    if matches!(pattern[end..].chars().next(), Some('?' | '*' | '{')) {
        // The quantifier applies to the last literal character.
        prefix = &prefix[..prefix.len() - prefix.chars().last().map_or(0, char::len_utf8)];
    }
    prefix.to_string()
}

/// Whether `rest` (a pattern after its literal prefix) is one group named `name` that closes
/// at the very end: `(?P<name>...)`.
fn is_tail_group(rest: &str, name: &str) -> bool {
    if !rest.starts_with(&format!("(?P<{name}>")) {
        return false;
    }
    let (mut depth, mut escaped, mut in_class) = (0i32, false, false);
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '[' => in_class = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i == rest.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// Matches `path` against a list of patterns: a trailing `*` means "prefix", and a `+`
/// segment matches exactly one path segment (Vault's special-path syntax).
pub fn path_matches_any(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| {
        let (pat, prefix) = match p.strip_suffix('*') {
            Some(x) => (x, true),
            None => (p.as_str(), false),
        };
        if !pat.split('/').any(|seg| seg == "+") {
            return if prefix {
                path.starts_with(pat)
            } else {
                pat == path
            };
        }
        let ps: Vec<&str> = pat.split('/').collect();
        let ss: Vec<&str> = path.split('/').collect();
        if (prefix && ss.len() < ps.len()) || (!prefix && ss.len() != ps.len()) {
            return false;
        }
        ps.iter().enumerate().all(|(i, seg)| match *seg {
            "+" => !ss[i].is_empty(),
            s if prefix && i == ps.len() - 1 => ss[i].starts_with(s),
            s => ss[i] == s,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::{is_tail_group, literal_prefix, path_matches_any, Path};

    #[test]
    fn tail_groups_are_recognized_only_when_they_end_the_pattern() {
        assert!(is_tail_group(r"(?P<name>\w(([\w\-.@]+)?\w)?)", "name"));
        assert!(is_tail_group(r"(?P<path>.+)", "path"));
        assert!(is_tail_group(r"(?P<n>[^()]+)", "n"));
        assert!(is_tail_group(r"(?P<n>[)\]]+)", "n"));
        assert!(!is_tail_group(r"(?P<name>\w+)/rotate", "name"));
        assert!(!is_tail_group(r"(?P<name>\w+)?", "name"));
        assert!(!is_tail_group(r"(?P<name>\w+)|x", "name"));
        assert!(!is_tail_group(r"(?P<other>\w+)", "name"));
        assert!(!is_tail_group(r"x(?P<name>\w+)", "name"));
    }

    #[test]
    fn captures_match_the_regex() {
        use crate::logical::Operation;
        for (pattern, path, name, want) in [
            (
                r"decrypt/(?P<name>\w(([\w\-.@]+)?\w)?)",
                "decrypt/my-key",
                "name",
                "my-key",
            ),
            (r"data/(?P<path>.+)", "data/a/b/c", "path", "a/b/c"),
            (
                r"keys/(?P<name>[^/]+)/rotate",
                "keys/k1/rotate",
                "name",
                "k1",
            ),
            (
                r"export/(?P<type>[^/]+)/(?P<name>[^/]+)",
                "export/enc/k",
                "name",
                "k",
            ),
        ] {
            let p: Path<()> = Path::new(pattern);
            assert!(p.matches(path), "{pattern}");
            let fd = p
                .field_data(Operation::Read, path, &Default::default())
                .unwrap();
            assert_eq!(fd.str(name), want, "{pattern}");
            assert!(fd.has(name));
        }
    }

    #[test]
    fn field_data_reads_body_captures_and_defaults() {
        use super::Field;
        use crate::logical::Operation;
        use serde_json::json;
        let p: Path<()> = Path::new(r"keys/(?P<name>[^/]+)/(?P<extra>[^/]+)")
            .field("name", Field::string("the key"))
            .field("ttl", Field::duration("a TTL").default("1h"))
            .field("bits", Field::int("size").default(256))
            .field("list", Field::list("names"))
            .field("input", Field::string("data").required());
        let body = |v: serde_json::Value| v.as_object().unwrap().clone();
        let fd = p
            .field_data(
                Operation::Update,
                "keys/k1/x",
                &body(json!({"name": "from-body", "bits": "512", "list": "a, b", "input": "i", "other": 1})),
            )
            .unwrap();
        // A path capture wins over a body field of the same name.
        assert_eq!(fd.str("name"), "k1");
        // Undeclared captures are there; undeclared body fields are not.
        assert_eq!(fd.str("extra"), "x");
        assert!(!fd.has("other"));
        assert_eq!(fd.get("other"), &serde_json::Value::Null);
        // Given fields are converted; missing ones read as their (converted) default.
        assert_eq!(fd.int("bits"), 512);
        assert_eq!(fd.strings("list"), vec!["a", "b"]);
        assert!(fd.has("bits") && !fd.has("ttl"));
        assert_eq!(fd.duration("ttl").as_secs(), 3600);
        // A required field is required only when writing.
        let e = p
            .field_data(Operation::Update, "keys/k/x", &body(json!({})))
            .unwrap_err();
        assert_eq!(e.to_string(), "missing required field \"input\"");
        let fd = p
            .field_data(Operation::Read, "keys/k/x", &body(json!({})))
            .unwrap();
        assert_eq!(fd.int("bits"), 256);
        // A value of the wrong type names its field.
        let e = p
            .field_data(
                Operation::Update,
                "keys/k/x",
                &body(json!({"input": "i", "bits": "many"})),
            )
            .unwrap_err();
        assert!(e.to_string().contains("\"bits\""), "{e}");
    }

    #[test]
    fn literal_prefixes_never_exclude_a_match() {
        for (pattern, prefix, matching) in [
            (
                r"decrypt/(?P<name>\w(([\w\-.@]+)?\w)?)",
                "decrypt/",
                "decrypt/k-1",
            ),
            (r"keys/?$", "keys", "keys"),
            (r"keys/?", "keys", "keys/"),
            (r"config|config/", "", "config/"),
            (r"(?P<path>.+)", "", "a/b"),
            (r"roles/?", "roles", "roles"),
            (r"ca(/pem)?", "ca", "ca/pem"),
            (r"a\.b", "a", "a.b"),
            (r"certs{0,1}", "cert", "cert"),
            (r"\w+/x", "", "ab/x"),
            (r"random(/(?P<source>\w+))?", "random", "random"),
            (
                r"export/(?P<type>[^/]+)/(?P<name>x)",
                "export/",
                "export/a/x",
            ),
        ] {
            assert_eq!(literal_prefix(pattern), prefix, "{pattern}");
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            assert!(
                re.is_match(matching) && matching.starts_with(prefix),
                "{pattern}"
            );
        }
    }

    #[test]
    fn special_path_patterns() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(path_matches_any(&p(&["login"]), "login"));
        assert!(!path_matches_any(&p(&["login"]), "login/x"));
        assert!(path_matches_any(&p(&["login/*"]), "login/bob"));
        assert!(path_matches_any(
            &p(&["roles/+/acme/*"]),
            "roles/web/acme/new-nonce"
        ));
        assert!(!path_matches_any(
            &p(&["roles/+/acme/*"]),
            "roles//acme/new-nonce"
        ));
        assert!(!path_matches_any(
            &p(&["roles/+/acme/*"]),
            "roles/web/other/x"
        ));
        assert!(path_matches_any(
            &p(&["issuer/+/pem"]),
            "issuer/default/pem"
        ));
        assert!(!path_matches_any(&p(&["issuer/+/pem"]), "issuer/a/b/pem"));
    }
}
