//! The request/response model every backend speaks: what the HTTP layer turns Vault's wire
//! format into, and what the core routes, authorizes, audits and answers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// A JSON object.
pub type Data = Map<String, Value>;

/// What a request asks for; each maps to one ACL capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Read,
    List,
    Create,
    Update,
    Delete,
    Patch,
    Help,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Patch => "patch",
            Operation::Help => "help",
        }
    }
}

/// A request as the core sees it: no HTTP anywhere.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub operation: Operation,
    /// The full logical path, without `/v1/` and without leading or trailing noise.
    pub path: String,
    pub data: Data,
    pub token: Option<String>,
    pub remote_addr: Option<String>,
    /// `X-Vault-Wrap-TTL`, if the client asked for response wrapping.
    pub wrap_ttl: Option<Duration>,
    /// The TLS client certificate chain the client presented (DER, leaf first), if any. The
    /// listener requests but does not verify it; the `cert` auth method does.
    pub client_certs: Vec<Vec<u8>>,
    /// HA read-your-writes: the client saw this commit index (`X-Vault-Index`); a standby
    /// serves the request only once its state reflects it.
    pub min_index: Option<i64>,
}

impl Request {
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: crate::util::request_id(),
            operation,
            path: path.into(),
            data: Data::new(),
            token: None,
            remote_addr: None,
            wrap_ttl: None,
            client_certs: Vec::new(),
            min_index: None,
        }
    }
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(m) = data {
            self.data = m;
        }
        self
    }
}

/// The `auth` block of a login or token-creation response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub identity_policies: Option<Vec<String>>,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    pub lease_duration: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub mfa_requirement: Option<Value>,
    pub num_uses: u64,
}

/// What an auth backend's login handler returns: who logged in and what the token should carry.
/// The core turns it into a token and an [`Auth`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LoginGrant {
    pub policies: Vec<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub display_name: String,
    pub ttl: Option<Duration>,
    pub max_ttl: Option<Duration>,
    pub period: Option<Duration>,
    pub num_uses: u64,
    pub renewable: bool,
    pub no_default_policy: bool,
    /// Addresses or CIDR blocks the token may be used from (empty: anywhere).
    pub bound_cidrs: Vec<String>,
    /// A hard ceiling on the token's life, apart from `max_ttl`.
    pub explicit_max_ttl: Option<Duration>,
    /// Who logged in, as this auth mount names them (username, role id, JWT `user_claim`,
    /// service account uid, certificate name): the identity store resolves it to one entity.
    pub alias_name: Option<String>,
    /// Metadata recorded on the entity alias.
    pub alias_metadata: std::collections::BTreeMap<String, String>,
    /// External group names the login asserted (JWT `groups_claim`), matched to group aliases.
    pub group_aliases: Vec<String>,
    /// The token type the role asks for (`service`, `batch`, `default`...; empty: no
    /// preference); the mount's `token_type` tuning decides with it.
    pub token_type: String,
}

/// What a backend returns for a secret that must expire (dynamic credentials, certificates):
/// the core registers a lease for it and calls the backend's revoke hook when it ends.
#[derive(Debug, Clone, Default)]
pub struct Secret {
    /// Requested TTL; zero means the mount's (or the system's) default.
    pub ttl: Duration,
    /// Ceiling on the lease's whole life; zero means the mount's (or the system's) max.
    pub max_ttl: Duration,
    pub renewable: bool,
    /// Private data the backend needs to renew or revoke (e.g. the database username). Stored
    /// in the barrier with the lease; never returned to clients.
    pub internal: Value,
}

/// Lease information for a secret that expires.
#[derive(Debug, Clone, Default)]
pub struct Lease {
    pub lease_id: String,
    pub duration: u64,
    pub renewable: bool,
}

/// A response that bypasses the standard envelope (e.g. `sys/health`, `sys/seal-status`).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Extra HTTP response headers, in order; a name may repeat (e.g. ACME's `Link`).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Response {
    pub data: Option<Data>,
    // The rarer parts are boxed: a response moves through several futures per request, and
    // unboxed they made it a kilobyte to copy each time.
    pub auth: Option<Box<Auth>>,
    pub login: Option<Box<LoginGrant>>,
    pub lease: Option<Box<Lease>>,
    /// Set by a backend for a secret that needs a lease; the core turns it into `lease`.
    pub secret: Option<Box<Secret>>,
    pub warnings: Vec<String>,
    pub wrap_info: Option<Value>,
    /// Set when the body is not Vault's standard envelope.
    pub raw: Option<Box<RawResponse>>,
    /// Overrides the status of a standard envelope (rare).
    pub status: Option<u16>,
    pub mount_type: String,
    pub request_id: String,
    /// Vault's legacy sys answers repeat `data`'s keys at the top level of the body.
    pub top_level_data: bool,
    /// The `X-Ratelimit-*` headers' values, when `sys/quotas/config` asks for them.
    pub rate_limit: Option<Box<crate::quotas::Allowance>>,
}

impl Response {
    /// A response with a `data` object.
    pub fn data(value: Value) -> Self {
        match value {
            Value::Object(m) => Response {
                data: Some(m),
                ..Default::default()
            },
            _ => Response::default(),
        }
    }
    /// A response whose body is the given JSON as-is, with a status code.
    pub fn raw_json(status: u16, value: &Value) -> Self {
        Response {
            raw: Some(Box::new(RawResponse {
                status,
                content_type: "application/json".into(),
                body: serde_json::to_vec(value).unwrap_or_default(),
                headers: Vec::new(),
            })),
            ..Default::default()
        }
    }
    /// A `LIST` answer: `{"keys": [...]}`.
    pub fn list(keys: Vec<String>) -> Self {
        Response::data(serde_json::json!({ "keys": keys }))
    }
    /// A `LIST` answer, or 404 when there is nothing to list (as Vault answers empty lists).
    pub fn list_or_not_found(keys: Vec<String>) -> crate::error::Result<Self> {
        if keys.is_empty() {
            return Err(crate::error::Error::NotFound);
        }
        Ok(Response::list(keys))
    }
    pub fn with_warning(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
    /// The HTTP status this answer is sent with.
    pub fn http_status(&self) -> u16 {
        match &self.raw {
            Some(raw) => raw.status,
            None if self.is_empty() => self.status.unwrap_or(204),
            None => self.status.unwrap_or(200),
        }
    }
    /// True when there is nothing to send (HTTP 204).
    pub fn is_empty(&self) -> bool {
        self.data.is_none()
            && self.auth.is_none()
            && self.lease.is_none()
            && self.raw.is_none()
            && self.warnings.is_empty()
            && self.wrap_info.is_none()
    }
}
