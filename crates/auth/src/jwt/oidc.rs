//! The OIDC browser flow of the `jwt`/`oidc` method: `oidc/auth_url`, `oidc/callback` (GET, and
//! POST for `form_post`) and `oidc/poll`, with the order, answers and messages of OpenBao's
//! `path_oidc.go` (itself Vault's `vault-plugin-auth-jwt` plus the `direct` and `device`
//! callback modes). All three paths are unauthenticated.
//!
//! * `oidc/auth_url` (`role`, `redirect_uri`, `client_nonce`): checks the redirect URI against
//!   the role's `allowed_redirect_uris` (loopback addresses match on any port, RFC 8252 §7.3),
//!   then remembers a pending request under a random `state` (with a random `nonce`, a PKCE
//!   verifier for the code flow, the role and the redirect URI) for [`REQUEST_TIMEOUT`] and
//!   answers `{"auth_url": ...}`: the provider's `authorization_endpoint` (from its discovery
//!   document) with the query parameters sorted by name, as Go's `url.Values.Encode` writes
//!   them (so with an empty endpoint the URL starts with `?client_id=`). As in Vault, a
//!   redirect URI that is not allowed, or a provider that cannot be reached, gives an empty
//!   `auth_url` rather than a reason (the endpoint is unauthenticated).
//! * `oidc/callback` (`state`, `code`, `client_nonce`, `error`...): takes the pending request
//!   (single use: a second callback with the same state fails), exchanges the code at the
//!   provider's `token_endpoint` (HTTP Basic client authentication first, then the client
//!   credentials in the form, as Go's `oauth2` auto-detection does; with the PKCE verifier),
//!   verifies the ID token ([`verify_id_token`]: signature through the provider's JWKS, `iss`
//!   = the discovery document's issuer, `aud` ∋ `oidc_client_id` and one of the role's
//!   `bound_audiences` when set, `azp`, the time claims with the role's leeways (`exp`
//!   required), `nonce`, `at_hash`, `auth_time` against the role's `max_age`), merges the
//!   provider's `userinfo` claims (failures only logged), then logs in like `login`: the
//!   `user_claim` is the alias name, `claim_mappings` and `role` the alias metadata,
//!   `groups_claim` the group aliases, the bound subject and bound claims are checked, and the
//!   token metadata adds the requested `oauth2_metadata` (`oauth2_id_token`, ...).
//!   A POST (`form_post` response mode only, else 405) stores the `code` or `id_token` the
//!   provider posted into the pending request and answers an HTML page that continues with a
//!   GET of the callback (`code=no_code`, meaning "the one already received").
//! * `callback_mode`: `client` (the default) answers the callback with the token; `direct`
//!   answers the browser with an HTML page (after a confirmation page unless
//!   `oidc_disable_confirmation`) and keeps the result for `oidc/poll` (`state` +
//!   `client_nonce`), which answers `authorization_pending` until then; `device` uses the
//!   provider's `device_authorization_endpoint` (RFC 8628) in `auth_url` and polls its token
//!   endpoint in `oidc/poll`.
//!
//! Pending requests live in the mount's storage (`oidc/states/`, an [`Expiring`] set), so that
//! the callback may reach any server sharing the storage and a restart keeps logins under way
//! (Vault keeps them in the active node's memory); a state is spent atomically, once. Each
//! server accepts at most [`MAX_PENDING`] `auth_url` calls per request timeout, so that
//! anonymous callers cannot grow storage without bound. The error prefixes (`Vault login failed.`, `Token verification failed.`) are kept
//! word for word: Vault's UI and CLI look for them.
//!
//! Not done: `namespace_in_state` (Tresor has no namespaces). The POST callback needs the
//! HTTP layer to accept an `application/x-www-form-urlencoded` body, as providers send it.

use super::claims::{self, Expected};
use super::config::Source;
use super::keys::{self, parse_supported, Alg};
use super::login::{user_claim, verify_signature};
use super::remote::{self, describe, http_client, read_body, MAX_AGE};
use super::role::Role;
use super::{Config, Jwt};
use crate::token_fields::check_token_cidrs;
use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tresor_core::barrier::View;
use tresor_core::expiring::Expiring;
use tresor_core::framework::{Call, Field, Path};
use tresor_core::logical::{LoginGrant, Operation::*, RawResponse, Response};
use tresor_core::{Error, Result};

/// How long a pending request (an `auth_url` not yet called back) is kept, by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// The lifetime in force (milliseconds); see [`set_request_timeout`].
static REQUEST_TIMEOUT_MS: AtomicU64 = AtomicU64::new(REQUEST_TIMEOUT.as_millis() as u64);

/// Changes how long pending requests live, for the whole process. Only for tests of expiry
/// (which run in a test binary of their own); the server never calls it.
#[doc(hidden)]
pub fn set_request_timeout(d: Duration) {
    REQUEST_TIMEOUT_MS.store(d.as_millis() as u64, Ordering::SeqCst);
}
/// Most `auth_url` calls one server accepts per request timeout; refused beyond.
pub const MAX_PENDING: usize = 10_000;
/// The `poll_interval` answered in the `direct` and `device` modes (seconds).
pub const POLL_INTERVAL: u64 = 5;

const ERR_LOGIN_FAILED: &str = "Vault login failed.";
const ERR_TOKEN_VERIFICATION: &str = "Token verification failed.";
const NO_CODE: &str = "no_code";
/// The error codes of RFC 6749 §4.1.2.1 repeated to the client as they are.
const KNOWN_ERRORS: &[&str] = &[
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
];

pub(crate) fn paths() -> Vec<Path<Jwt>> {
    vec![
        Path::new("oidc/auth_url")
            .field("role", Field::string("The role to issue an OIDC authorization URL against."))
            .field("redirect_uri", Field::string("The OAuth redirect_uri to use in the authorization URL. Not needed with device flow."))
            .field("client_nonce", Field::string("Client-provided nonce that must match during callback, if present. Required only in direct callback mode."))
            .op(Update, auth_url)
            .help("Request an authorization URL to start an OIDC login flow."),
        Path::new("oidc/callback")
            .field("state", Field::string("The state the authorization URL carried."))
            .field("code", Field::string("The authorization code the provider issued."))
            .field("id_token", Field::string("The ID token the provider posted (form_post)."))
            .field("client_nonce", Field::string("The client nonce given to auth_url, if any."))
            .field("error", Field::string("The error the provider answered, if any."))
            .field("error_description", Field::string("The provider's description of the error."))
            .field("error_uri", Field::string("The provider's link about the error."))
            .field("confirmation", Field::string("Set when the user confirmed a direct-mode login."))
            .op(Read, callback)
            .op(Update, callback_post)
            .help("Callback endpoint to complete an OIDC login."),
        Path::new("oidc/poll")
            .field("state", Field::string("The state auth_url answered."))
            .field("client_nonce", Field::string("The client nonce given to auth_url."))
            .op(Update, poll)
            .help("Poll endpoint to complete an OIDC login (direct and device callback modes)."),
    ]
}

// ---- pending requests ------------------------------------------------------------------------

/// What a direct-mode callback left for `oidc/poll`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Outcome {
    Granted(Box<LoginGrant>, Vec<String>),
    Failed(String),
}

/// One OIDC login under way, identified by its `state`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    role: String,
    redirect_uri: String,
    nonce: String,
    pkce_verifier: Option<String>,
    client_nonce: String,
    requester_ip: String,
    device_code: String,
    /// What a `form_post` callback received.
    code: String,
    id_token: String,
    outcome: Option<Outcome>,
}

/// The OIDC discovery document's endpoints.
#[derive(Debug, Clone, Default)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub device_authorization_endpoint: String,
}

struct CachedProvider {
    url: String,
    ca_pem: String,
    client: reqwest::Client,
    provider: Provider,
    fetched: Instant,
}

/// The OIDC flow state of one mount: the provider's discovery document, and how many
/// pending requests this server stored lately. The pending requests are in storage.
#[derive(Default)]
pub struct Flows {
    provider: tokio::sync::Mutex<Option<CachedProvider>>,
    /// When this server stored its recent pending requests (within one request timeout).
    recent: parking_lot::Mutex<VecDeque<Instant>>,
}

fn request_timeout() -> Duration {
    Duration::from_millis(REQUEST_TIMEOUT_MS.load(Ordering::SeqCst))
}

/// The mount's pending requests, by state.
fn pending(storage: &View) -> Expiring {
    Expiring::new(storage.sub("oidc/states/"))
}

impl Flows {
    /// Forgets the provider's discovery document (the configuration changed).
    pub async fn reset(&self) {
        *self.provider.lock().await = None;
    }

    async fn insert(&self, storage: &View, state: &str, p: &Pending) -> Result<()> {
        {
            let mut recent = self.recent.lock();
            let now = Instant::now();
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= request_timeout())
            {
                recent.pop_front();
            }
            if recent.len() >= MAX_PENDING {
                return Err(Error::bad(
                    "too many OIDC logins are under way; try again later",
                ));
            }
            recent.push_back(now);
        }
        pending(storage).insert(state, p, request_timeout()).await
    }

    /// Removes pending requests past their timeout (the mount's periodic hook).
    pub async fn sweep(storage: &View) -> Result<usize> {
        pending(storage).sweep().await
    }

    /// The provider's endpoints (cached for [`MAX_AGE`]) and an HTTP client trusting
    /// `oidc_discovery_ca_pem`.
    pub async fn provider(
        &self,
        cfg: &Config,
    ) -> std::result::Result<(Provider, reqwest::Client), String> {
        let mut guard = self.provider.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.url == cfg.oidc_discovery_url
                && c.ca_pem == cfg.oidc_discovery_ca_pem
                && c.fetched.elapsed() < MAX_AGE
            {
                return Ok((c.provider.clone(), c.client.clone()));
            }
        }
        let client = http_client(&cfg.oidc_discovery_ca_pem)?;
        let provider = discover(&client, &cfg.oidc_discovery_url).await?;
        *guard = Some(CachedProvider {
            url: cfg.oidc_discovery_url.clone(),
            ca_pem: cfg.oidc_discovery_ca_pem.clone(),
            client: client.clone(),
            provider: provider.clone(),
            fetched: Instant::now(),
        });
        Ok((provider, client))
    }
}

/// Fetches a provider's discovery document; its `issuer` must be the discovery URL (go-oidc).
pub async fn discover(
    client: &reqwest::Client,
    url: &str,
) -> std::result::Result<Provider, String> {
    let base = url.trim_end_matches('/');
    let doc = remote::get_json(client, &format!("{base}/.well-known/openid-configuration")).await?;
    let s = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let issuer = s("issuer");
    if issuer.trim_end_matches('/') != base {
        return Err(format!(
            "issuer did not match the issuer returned by provider, expected {url:?} got {issuer:?}"
        ));
    }
    Ok(Provider {
        issuer,
        authorization_endpoint: s("authorization_endpoint"),
        token_endpoint: s("token_endpoint"),
        userinfo_endpoint: s("userinfo_endpoint"),
        device_authorization_endpoint: s("device_authorization_endpoint"),
    })
}

impl Config {
    /// Vault's `authType() == OIDCFlow`: discovery plus client credentials.
    pub(crate) fn is_oidc_flow(&self) -> bool {
        self.jwt_validation_pubkeys.is_empty()
            && self.jwks_url.is_empty()
            && !self.oidc_discovery_url.is_empty()
            && !self.oidc_client_id.is_empty()
            && !self.oidc_client_secret.is_empty()
    }
    /// Whether `oidc_response_types` names `t` (an empty list means `code`).
    fn has_type(&self, t: &str) -> bool {
        if self.oidc_response_types.is_empty() {
            return t == "code";
        }
        self.oidc_response_types.iter().any(|x| x == t)
    }
}

fn callback_mode(role: &Role) -> &str {
    match role.callback_mode.as_str() {
        "" => "client",
        m => m,
    }
}

// ---- small helpers -------------------------------------------------------------------------

/// 160 random bits, hex (RFC 6749 §10.10), for states and nonces.
fn random_id() -> String {
    hex::encode(random_bytes::<20>())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .expect("the system random generator failed");
    b
}

/// `application/x-www-form-urlencoded`, in the given order.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn html(status: u16, body: String) -> Response {
    Response {
        raw: Some(Box::new(RawResponse {
            status,
            content_type: "text/html; charset=utf-8".into(),
            body: body.into_bytes(),
            headers: Vec::new(),
        })),
        ..Default::default()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"UTF-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title></head>\n<body>\n{}\n</body>\n</html>\n",
        escape(title),
        body
    )
}

fn error_html(summary: &str, detail: &str) -> String {
    page(
        "Tresor Authentication Failed",
        &format!("<h1>{}</h1>\n<p>{}</p>", escape(summary), escape(detail)),
    )
}

fn success_html() -> String {
    page(
        "Tresor Authentication Succeeded",
        "<h1>Signed in via your OIDC provider</h1>\n<p>You can close this window and return to \
         your client.</p>",
    )
}

/// The direct mode's confirmation page: the same callback again, with `confirmation=true`.
fn confirm_html(requester_ip: &str, role: &str, data: &Map<String, Value>) -> String {
    let mut inputs = String::new();
    for (k, v) in data {
        if let Some(v) = v.as_str() {
            if k != "confirmation" {
                inputs.push_str(&format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                    escape(k),
                    escape(v)
                ));
            }
        }
    }
    page(
        "Confirm Tresor Login",
        &format!(
            "<h1>Confirm login</h1>\n<p>A login with role <b>{}</b> was requested from <b>{}</b>. \
             Continue only if you started it.</p>\n<form method=\"get\">\n{}<input type=\"hidden\" \
             name=\"confirmation\" value=\"true\">\n<button type=\"submit\">Log in</button>\n</form>",
            escape(role),
            escape(if requester_ip.is_empty() {
                "an unknown address"
            } else {
                requester_ip
            }),
            inputs
        ),
    )
}

/// The `form_post` continuation page: a GET of the callback with the code already received.
fn formpost_html(mount: &str, state: &str) -> String {
    let target = format!(
        "/v1/auth/{}/oidc/callback?{}",
        mount,
        form(&[("state", state), ("code", NO_CODE)])
    );
    page(
        "Complete sign-in process",
        &format!(
            "<meta http-equiv=\"refresh\" content=\"0;url={0}\">\n<p><a href=\"{0}\">Continue</a></p>",
            escape(&target)
        ),
    )
}

/// The mount a redirect URI names (`.../v1/auth/<mount>/...`).
fn parse_mount(redirect_uri: &str) -> String {
    let parts: Vec<&str> = redirect_uri.split('/').collect();
    for i in 0..parts.len().saturating_sub(2) {
        if parts[i] == "v1" && parts[i + 1] == "auth" {
            return parts[i + 2].to_string();
        }
    }
    String::new()
}

/// Vault's `validRedirect`: an exact match, except that a loopback URI matches on any port
/// (RFC 8252 §7.3).
pub fn valid_redirect(uri: &str, allowed: &[String]) -> bool {
    let Ok(mut input) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = matches!(
        input.host_str(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]")
    );
    if !loopback {
        return allowed.iter().any(|a| a == uri);
    }
    let _ = input.set_port(None);
    allowed.iter().any(|a| match url::Url::parse(a) {
        Ok(mut a) => {
            let _ = a.set_port(None);
            a.as_str() == input.as_str()
        }
        Err(_) => false,
    })
}

// ---- auth_url ----------------------------------------------------------------------------------

async fn auth_url(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let empty = || Response::data(json!({ "auth_url": "" }));
    let cfg = b
        .config(&c.storage)
        .await?
        .ok_or_else(|| Error::bad("could not load configuration"))?;
    if !cfg.is_oidc_flow() {
        return Err(Error::bad("OIDC login is not configured for this mount"));
    }
    let mut role_name = c.fields.str("role").to_lowercase();
    if role_name.is_empty() {
        role_name = cfg.default_role.clone();
    }
    if role_name.is_empty() {
        return Err(Error::bad("missing role"));
    }
    let redirect_uri = c.fields.str("redirect_uri").to_string();
    let role = b
        .role(&c.storage, &role_name)
        .await?
        .ok_or_else(|| Error::bad(format!("role {role_name:?} could not be found")))?;
    let client_nonce = c.fields.str("client_nonce").to_string();
    let mode = callback_mode(&role);
    if client_nonce.is_empty() && (mode == "direct" || mode == "device") {
        return Err(Error::bad("missing client_nonce"));
    }
    let requester_ip = c.remote_addr.clone().unwrap_or_default();
    if mode == "device" {
        return device_auth_url(&b, &c, &cfg, &role, role_name, client_nonce, requester_ip).await;
    }
    if redirect_uri.is_empty() {
        return Err(Error::bad("missing redirect_uri"));
    }
    if !valid_redirect(&redirect_uri, &role.allowed_redirect_uris) {
        tracing::warn!(redirect_uri = %redirect_uri, "unauthorized redirect_uri");
        return Ok(empty());
    }
    // With form_post, the provider posts to Tresor itself rather than to the UI.
    let redirect_uri = if cfg.oidc_response_mode == "form_post" {
        redirect_uri.replacen("ui/vault", "v1", 1)
    } else {
        redirect_uri
    };
    let provider = match b.flows.provider(&cfg).await {
        Ok((p, _)) => p,
        Err(e) => {
            tracing::warn!(error = %e, "error getting provider for login operation");
            return Ok(empty());
        }
    };
    let state = random_id();
    let nonce = random_id();
    let implicit = cfg.has_type("id_token");
    let pkce_verifier =
        (!implicit && cfg.has_type("code")).then(|| URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    let mut scopes = vec!["openid".to_string()];
    scopes.extend(role.oidc_scopes.iter().cloned());
    let response_type = ["code", "id_token"]
        .into_iter()
        .filter(|t| cfg.has_type(t))
        .collect::<Vec<_>>()
        .join(" ");
    // Sorted by name, as Go's url.Values.Encode writes them.
    let mut params: BTreeMap<&str, String> = BTreeMap::new();
    params.insert("client_id", cfg.oidc_client_id.clone());
    params.insert("nonce", nonce.clone());
    params.insert("redirect_uri", redirect_uri.clone());
    params.insert("response_type", response_type);
    params.insert("scope", scopes.join(" "));
    params.insert("state", state.clone());
    if let Some(v) = &pkce_verifier {
        let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, v.as_bytes()));
        params.insert("code_challenge", challenge);
        params.insert("code_challenge_method", "S256".into());
    }
    if cfg.oidc_response_mode == "form_post" {
        params.insert("response_mode", "form_post".into());
    }
    if role.max_age > 0 {
        params.insert("max_age", role.max_age.to_string());
    }
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sep = if provider.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{}{}{}", provider.authorization_endpoint, sep, form(&pairs));
    b.flows
        .insert(
            &c.storage,
            &state,
            &Pending {
                role: role_name,
                redirect_uri,
                nonce,
                pkce_verifier,
                client_nonce,
                requester_ip,
                device_code: String::new(),
                code: String::new(),
                id_token: String::new(),
                outcome: None,
            },
        )
        .await?;
    let mut d = json!({ "auth_url": url });
    if mode == "direct" {
        d["state"] = json!(state);
        d["poll_interval"] = json!(POLL_INTERVAL.to_string());
    }
    Ok(Response::data(d))
}

/// `auth_url` in `device` mode: RFC 8628's device authorization request.
async fn device_auth_url(
    b: &Jwt,
    c: &Call,
    cfg: &Config,
    role: &Role,
    role_name: String,
    client_nonce: String,
    requester_ip: String,
) -> Result<Response> {
    let (provider, client) = b
        .flows
        .provider(cfg)
        .await
        .map_err(|e| Error::internal(format!("error authorizing device: {e}")))?;
    if provider.device_authorization_endpoint.is_empty() {
        return Err(Error::bad(
            "the provider's discovery document has no device_authorization_endpoint",
        ));
    }
    let mut scopes = vec!["openid".to_string()];
    scopes.extend(role.oidc_scopes.iter().cloned());
    let scope = scopes.join(" ");
    let body = form(&[
        ("client_id", &cfg.oidc_client_id),
        ("client_secret", &cfg.oidc_client_secret),
        ("scope", &scope),
    ]);
    let (status, doc) = post_form(&client, &provider.device_authorization_endpoint, body, None)
        .await
        .map_err(|e| Error::internal(format!("error authorizing device: {e}")))?;
    let doc = doc.as_json();
    let s = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if !(200..300).contains(&status) || s("device_code").is_empty() {
        let e = s("error");
        return Err(Error::bad(format!(
            "error authorizing device: {}",
            if e.is_empty() {
                format!("HTTP {status}")
            } else {
                e
            }
        )));
    }
    let state = random_id();
    b.flows
        .insert(
            &c.storage,
            &state,
            &Pending {
                role: role_name,
                redirect_uri: String::new(),
                nonce: String::new(),
                pkce_verifier: None,
                client_nonce,
                requester_ip,
                device_code: s("device_code"),
                code: String::new(),
                id_token: String::new(),
                outcome: None,
            },
        )
        .await?;
    let mut d = Map::new();
    let complete = [
        s("verification_uri_complete"),
        s("verification_url_complete"),
    ]
    .into_iter()
    .find(|u| !u.is_empty());
    match complete {
        Some(u) => {
            d.insert("auth_url".into(), json!(u));
        }
        None => {
            let uri = [s("verification_uri"), s("verification_url")]
                .into_iter()
                .find(|u| !u.is_empty())
                .unwrap_or_default();
            d.insert("auth_url".into(), json!(uri));
            d.insert("user_code".into(), json!(s("user_code")));
        }
    }
    d.insert("state".into(), json!(state));
    let interval = doc
        .get("interval")
        .and_then(Value::as_u64)
        .filter(|i| *i > 0)
        .unwrap_or(POLL_INTERVAL);
    d.insert("poll_interval".into(), json!(interval.to_string()));
    Ok(Response {
        data: Some(d),
        ..Default::default()
    })
}

// ---- callback ----------------------------------------------------------------------------------

fn failed(msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("{ERR_LOGIN_FAILED} {msg}"))
}

async fn callback(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let cfg = b
        .config(&c.storage)
        .await?
        .ok_or_else(|| failed("Could not load configuration"))?;
    let state = c.fields.str("state").to_string();
    let missing = || failed("Expired or missing OAuth state.");
    let states = pending(&c.storage);
    let pending = states
        .get::<Pending>(&state)
        .await?
        .filter(|p| p.outcome.is_none())
        .ok_or_else(missing)?;
    let Some(role) = b.role(&c.storage, &pending.role).await? else {
        states.remove(&state).await?;
        return Err(failed("Role could not be found"));
    };
    let direct = callback_mode(&role) == "direct";
    if direct && !role.oidc_disable_confirmation && c.fields.str("confirmation").is_empty() {
        // The state stays for the confirmed request.
        return Ok(html(
            200,
            confirm_html(&pending.requester_ip, &pending.role, &c.data),
        ));
    }
    // Single use: in client mode the request is gone whatever happens next (the state may be
    // taken by a concurrent callback in between: then this one fails).
    let pending = if direct {
        pending
    } else {
        states.take::<Pending>(&state).await?.ok_or_else(missing)?
    };
    let result = complete_callback(&b, &c, &cfg, &role, &pending, direct).await;
    if !direct {
        let (grant, warnings) = result?;
        return Ok(Response {
            login: Some(Box::new(grant)),
            warnings,
            ..Default::default()
        });
    }
    // Direct mode: the browser gets a page, the client gets the token from `oidc/poll`.
    match result {
        Ok((grant, warnings)) => {
            let outcome = Outcome::Granted(Box::new(grant), warnings);
            states
                .modify::<Pending>(&state, |p| p.outcome = Some(outcome.clone()))
                .await?;
            Ok(html(200, success_html()))
        }
        Err(e) => {
            let msg = e.to_string();
            states
                .modify::<Pending>(&state, |p| p.outcome = Some(Outcome::Failed(msg.clone())))
                .await?;
            let detail = msg
                .strip_prefix(ERR_LOGIN_FAILED)
                .map(str::trim)
                .unwrap_or(&msg);
            Ok(html(e.status(), error_html(ERR_LOGIN_FAILED, detail)))
        }
    }
}

async fn complete_callback(
    b: &Jwt,
    c: &Call,
    cfg: &Config,
    role: &Role,
    pending: &Pending,
    direct: bool,
) -> Result<(LoginGrant, Vec<String>)> {
    let provider_error = c.fields.str("error").trim().to_lowercase();
    if !provider_error.is_empty() {
        tracing::warn!(
            error = ?provider_error,
            error_description = ?c.fields.str("error_description"),
            error_uri = ?c.fields.str("error_uri"),
            "OIDC callback received an error from the provider"
        );
        if KNOWN_ERRORS.contains(&provider_error.as_str()) {
            return Err(failed(provider_error));
        }
        return Err(failed(
            "An unknown error occurred during OIDC authentication. Check server logs for details",
        ));
    }
    if !pending.client_nonce.is_empty()
        && c.fields.str("client_nonce") != pending.client_nonce
        && !direct
    {
        return Err(Error::bad("invalid client_nonce"));
    }
    check_token_cidrs(c.remote_addr.as_deref(), &role.token.token_bound_cidrs)?;
    let (provider, client) =
        b.flows.provider(cfg).await.map_err(|e| {
            Error::internal(format!("error getting provider for login operation: {e}"))
        })?;
    let mut code = c.fields.str("code").to_string();
    if code == NO_CODE {
        code = pending.code.clone();
    }
    let (claims_map, tokens) = if code.is_empty() {
        if pending.id_token.is_empty() {
            return Err(failed("No code or id_token received."));
        }
        let claims_map = verify_id_token(
            b,
            cfg,
            role,
            &provider,
            &pending.id_token,
            Some(&pending.nonce),
            None,
        )
        .await
        .map_err(|e| Error::bad(format!("{ERR_TOKEN_VERIFICATION} {e}")))?;
        let tokens = Tokens {
            id_token: pending.id_token.clone(),
            ..Default::default()
        };
        (claims_map, tokens)
    } else {
        let exchanged = async {
            let tokens = exchange(&client, cfg, &provider, pending, &code).await?;
            let claims_map = verify_id_token(
                b,
                cfg,
                role,
                &provider,
                &tokens.id_token,
                Some(&pending.nonce),
                Some(&tokens.access_token),
            )
            .await
            .map_err(|e| format!("id_token failed verification: {e}"))?;
            Ok::<_, String>((claims_map, tokens))
        }
        .await;
        exchanged.map_err(|e| {
            failed(format!(
                "Error exchanging oidc code: {:?}.",
                format!("Provider.Exchange: {e}")
            ))
        })?
    };
    login_grant(
        &client,
        c,
        &provider,
        role,
        &pending.role,
        claims_map,
        &tokens,
    )
    .await
}

/// The POST callback (`form_post`): keeps what the provider posted and continues with a GET.
async fn callback_post(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let cfg = b
        .config(&c.storage)
        .await?
        .ok_or_else(|| failed("Could not load configuration."))?;
    if cfg.oidc_response_mode != "form_post" {
        // Vault's `RespondWithStatusCode(nil, req, 405)`: no body.
        return Ok(Response {
            raw: Some(Box::new(RawResponse {
                status: 405,
                content_type: "application/json".into(),
                body: vec![],
                headers: Vec::new(),
            })),
            ..Default::default()
        });
    }
    let state = c.fields.str("state").to_string();
    let code = c.fields.str("code").to_string();
    let id_token = c.fields.str("id_token").to_string();
    let changed = pending(&c.storage)
        .modify::<Pending>(&state, |p| {
            p.code = code.clone();
            p.id_token = id_token.clone();
        })
        .await?;
    let Some(p) = changed else {
        return Ok(html(
            400,
            error_html(ERR_LOGIN_FAILED, "Expired or missing OAuth state."),
        ));
    };
    let mount = parse_mount(&p.redirect_uri);
    if mount.is_empty() {
        return Ok(html(
            400,
            error_html(ERR_LOGIN_FAILED, "Invalid redirect path."),
        ));
    }
    Ok(html(200, formpost_html(&mount, &state)))
}

// ---- poll --------------------------------------------------------------------------------------

enum PollStep {
    Missing,
    BadNonce,
    Waiting,
    Device(Box<Pending>),
    Done(Outcome),
}

async fn poll(b: Arc<Jwt>, c: Call) -> Result<Response> {
    let state = c.fields.str("state").to_string();
    let client_nonce = c.fields.str("client_nonce");
    let states = pending(&c.storage);
    let step = match states.get::<Pending>(&state).await? {
        None => PollStep::Missing,
        Some(p) if !p.client_nonce.is_empty() && p.client_nonce != client_nonce => {
            states.remove(&state).await?;
            PollStep::BadNonce
        }
        Some(p) if !p.device_code.is_empty() => PollStep::Device(Box::new(p)),
        Some(Pending { outcome: None, .. }) => PollStep::Waiting,
        // The outcome goes to one poller only: the first to take the state.
        Some(_) => match states
            .take::<Pending>(&state)
            .await?
            .and_then(|p| p.outcome)
        {
            Some(outcome) => PollStep::Done(outcome),
            None => PollStep::Missing,
        },
    };
    match step {
        PollStep::Missing => Err(failed("Expired or missing OAuth state.")),
        PollStep::BadNonce => Err(Error::bad("invalid client_nonce")),
        PollStep::Waiting => Err(Error::bad("authorization_pending")),
        PollStep::Done(Outcome::Granted(grant, warnings)) => Ok(Response {
            login: Some(grant),
            warnings,
            ..Default::default()
        }),
        PollStep::Done(Outcome::Failed(msg)) => Err(Error::bad(msg)),
        PollStep::Device(p) => device_poll(&b, &c, &state, *p).await,
    }
}

/// `oidc/poll` in `device` mode: RFC 8628's token request.
async fn device_poll(b: &Jwt, c: &Call, state: &str, p: Pending) -> Result<Response> {
    let Some(role) = b.role(&c.storage, &p.role).await? else {
        pending(&c.storage).remove(state).await?;
        return Err(failed("Role could not be found"));
    };
    let cfg = b
        .config(&c.storage)
        .await?
        .ok_or_else(|| failed("Could not load configuration"))?;
    let (provider, client) =
        b.flows.provider(&cfg).await.map_err(|e| {
            Error::internal(format!("error getting provider for poll operation: {e}"))
        })?;
    let body = form(&[
        ("client_id", &cfg.oidc_client_id),
        ("client_secret", &cfg.oidc_client_secret),
        ("device_code", &p.device_code),
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
    ]);
    let (_, answer) = post_form(&client, &provider.token_endpoint, body, None)
        .await
        .map_err(|e| Error::internal(format!("error polling for device authorization: {e}")))?;
    let doc = answer.as_json();
    if let Some(e) = doc
        .get("error")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        if e == "authorization_pending" || e == "slow_down" {
            return Err(Error::bad(e));
        }
        pending(&c.storage).remove(state).await?;
        return Err(Error::bad(format!("authorization failed: {e}")));
    }
    pending(&c.storage).remove(state).await?;
    let tokens = Tokens::from_doc(&doc).map_err(Error::bad)?;
    let claims_map = verify_id_token(
        b,
        &cfg,
        &role,
        &provider,
        &tokens.id_token,
        None,
        Some(&tokens.access_token),
    )
    .await
    .map_err(|e| Error::bad(format!("{ERR_TOKEN_VERIFICATION} {e}")))?;
    let (grant, warnings) =
        login_grant(&client, c, &provider, &role, &p.role, claims_map, &tokens).await?;
    Ok(Response {
        login: Some(Box::new(grant)),
        warnings,
        ..Default::default()
    })
}

// ---- the token endpoint ------------------------------------------------------------------------

/// The tokens a provider's token endpoint answered.
#[derive(Debug, Clone, Default)]
struct Tokens {
    id_token: String,
    access_token: String,
    refresh_token: String,
}

impl Tokens {
    fn from_doc(doc: &Value) -> std::result::Result<Tokens, String> {
        let s = |k: &str| {
            doc.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if s("access_token").is_empty() {
            return Err("oauth2: server response missing access_token".into());
        }
        if s("id_token").is_empty() {
            return Err("id_token is missing from auth code exchange".into());
        }
        Ok(Tokens {
            id_token: s("id_token"),
            access_token: s("access_token"),
            refresh_token: s("refresh_token"),
        })
    }
}

/// A token endpoint's answer: JSON, or a form (some providers answer
/// `application/x-www-form-urlencoded`, which Go's oauth2 accepts too).
enum Answer {
    Json(Value),
    Text(String),
}

impl Answer {
    fn as_json(&self) -> Value {
        match self {
            Answer::Json(v) => v.clone(),
            Answer::Text(_) => Value::Null,
        }
    }
}

/// POSTs a form; `basic` is HTTP Basic client authentication (RFC 6749 §2.3.1: both parts
/// form-encoded first).
async fn post_form(
    client: &reqwest::Client,
    url: &str,
    body: String,
    basic: Option<(&str, &str)>,
) -> std::result::Result<(u16, Answer), String> {
    if url.is_empty() {
        return Err("the provider has no token endpoint".into());
    }
    let mut req = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body);
    if let Some((id, secret)) = basic {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let cred = STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
        req = req.header("authorization", format!("Basic {cred}"));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("Post {url:?}: {}", describe(&e)))?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = read_body(resp).await?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if ctype.starts_with("application/x-www-form-urlencoded") || ctype.starts_with("text/plain") {
        let m: Map<String, Value> = url::form_urlencoded::parse(text.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return Ok((status, Answer::Json(Value::Object(m))));
    }
    Ok((
        status,
        match serde_json::from_str::<Value>(&text) {
            Ok(v) => Answer::Json(v),
            Err(_) => Answer::Text(text),
        },
    ))
}

/// One token request, with Go's `RetrieveError` messages.
async fn token_request(
    client: &reqwest::Client,
    url: &str,
    params: &[(&str, &str)],
    cfg: &Config,
    in_header: bool,
) -> std::result::Result<Tokens, String> {
    let mut pairs = params.to_vec();
    let basic = if in_header {
        Some((cfg.oidc_client_id.as_str(), cfg.oidc_client_secret.as_str()))
    } else {
        pairs.push(("client_id", &cfg.oidc_client_id));
        pairs.push(("client_secret", &cfg.oidc_client_secret));
        None
    };
    let (status, answer) = post_form(client, url, form(&pairs), basic).await?;
    if !(200..300).contains(&status) {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let (code, text) = match &answer {
            Answer::Json(v) => (
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                v.to_string(),
            ),
            Answer::Text(t) => (String::new(), t.clone()),
        };
        if !code.is_empty() {
            let desc = answer
                .as_json()
                .get("error_description")
                .and_then(Value::as_str)
                .map(|d| format!(" {d:?}"))
                .unwrap_or_default();
            return Err(format!("oauth2: {code:?}{desc}"));
        }
        return Err(format!(
            "oauth2: cannot fetch token: {status} {reason}\nResponse: {text}"
        ));
    }
    match answer {
        Answer::Json(v) if v.is_object() => Tokens::from_doc(&v),
        _ => {
            Err("oauth2: cannot parse json: the token endpoint did not answer a JSON object".into())
        }
    }
}

/// Exchanges an authorization code (with the PKCE verifier) for tokens.
async fn exchange(
    client: &reqwest::Client,
    cfg: &Config,
    provider: &Provider,
    pending: &Pending,
    code: &str,
) -> std::result::Result<Tokens, String> {
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri.as_str()),
    ];
    if let Some(v) = &pending.pkce_verifier {
        params.push(("code_verifier", v));
    }
    let url = &provider.token_endpoint;
    let first = token_request(client, url, &params, cfg, true).await;
    let tokens = match first {
        Ok(t) => Ok(t),
        // Go's oauth2 auto-detection: the credentials in the form, if the header failed.
        Err(_) => token_request(client, url, &params, cfg, false).await,
    }
    .map_err(|e| format!("unable to exchange auth code with provider: {e}"))?;
    Ok(tokens)
}

// ---- the ID token ------------------------------------------------------------------------------

fn hash_for(alg: Alg) -> &'static digest::Algorithm {
    match alg {
        Alg::RS256 | Alg::PS256 | Alg::ES256 => &digest::SHA256,
        Alg::RS384 | Alg::PS384 | Alg::ES384 => &digest::SHA384,
        Alg::RS512 | Alg::PS512 | Alg::ES512 | Alg::EdDSA => &digest::SHA512,
    }
}

/// Verifies an ID token from the configured provider; returns its claims without `nonce`.
/// `nonce`: the one the authorization request carried (none in the device flow);
/// `access_token`: checked against `at_hash` when both are present.
pub(crate) async fn verify_id_token(
    b: &Jwt,
    cfg: &Config,
    role: &Role,
    provider: &Provider,
    raw: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
) -> std::result::Result<Map<String, Value>, String> {
    let source = cfg.source()?;
    if !matches!(source, Source::Remote(_)) {
        return Err("OIDC discovery is not configured".into());
    }
    let allowed: Vec<Alg> = cfg
        .jwt_supported_algs
        .iter()
        .filter_map(|a| parse_supported(a).ok())
        .collect();
    let jws = keys::parse(raw).map_err(|e| format!("oidc: malformed jwt: {e}"))?;
    let alg = jws.algorithm(&allowed).map_err(|e| format!("oidc: {e}"))?;
    verify_signature(b, &source, &jws, alg).await?;
    let mut claims_map = jws.claims.clone();
    let s = |k: &str| {
        claims_map
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let iss = s("iss");
    if iss != provider.issuer {
        return Err(format!(
            "oidc: id token issued by a different provider, expected {:?} got {iss:?}",
            provider.issuer
        ));
    }
    let aud: Vec<String> = match claims::get(&claims_map, "aud").as_deref() {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    if !aud.contains(&cfg.oidc_client_id) {
        return Err(format!(
            "oidc: expected audience {:?} got {aud:?}",
            cfg.oidc_client_id
        ));
    }
    if !role.bound_audiences.is_empty() && !role.bound_audiences.iter().any(|a| aud.contains(a)) {
        return Err(
            "invalid audience (aud) claim: audience claim does not match any expected audience"
                .into(),
        );
    }
    let azp = s("azp");
    if aud.len() > 1 && azp.is_empty() {
        return Err("expected authorized party (azp) claim for multiple audiences".into());
    }
    if !azp.is_empty() && azp != cfg.oidc_client_id {
        return Err(format!(
            "invalid authorized party (azp) claim: expected {:?} got {azp:?}",
            cfg.oidc_client_id
        ));
    }
    if claims_map.get("exp").is_none_or(Value::is_null) {
        return Err("oidc: the id_token has no expiration (exp) claim".into());
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let expected = Expected {
        not_before_leeway: role.not_before_leeway,
        expiration_leeway: role.expiration_leeway,
        clock_skew_leeway: role.clock_skew_leeway,
        ..Default::default()
    };
    claims::validate(&claims_map, &expected, now)?;
    if let Some(n) = nonce {
        if s("nonce") != n {
            return Err("invalid id_token nonce".into());
        }
    }
    if let (Some(at), false) = (access_token, s("at_hash").is_empty()) {
        if !at.is_empty() {
            let h = digest::digest(hash_for(alg), at.as_bytes());
            let half = &h.as_ref()[..h.as_ref().len() / 2];
            if URL_SAFE_NO_PAD.encode(half) != s("at_hash") {
                return Err("invalid access token: the at_hash claim does not match".into());
            }
        }
    }
    if role.max_age > 0 {
        let auth_time = claims_map
            .get("auth_time")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .ok_or("missing auth_time claim, which is required with max_age")?;
        let skew = if role.clock_skew_leeway < 0 {
            0
        } else if role.clock_skew_leeway == 0 {
            claims::DEFAULT_SKEW
        } else {
            role.clock_skew_leeway
        };
        if now - skew > auth_time + role.max_age {
            return Err("auth_time is beyond the max_age of the role".into());
        }
    }
    claims_map.remove("nonce");
    Ok(claims_map)
}

/// Fetches the provider's userinfo claims with the access token (errors only logged, as in
/// Vault: they never fail the login).
async fn userinfo(
    client: &reqwest::Client,
    provider: &Provider,
    access_token: &str,
    subject: &str,
) -> std::result::Result<Map<String, Value>, String> {
    if provider.userinfo_endpoint.is_empty() {
        return Err("user info endpoint is not supported by this provider".into());
    }
    let resp = client
        .get(&provider.userinfo_endpoint)
        .header("authorization", format!("Bearer {access_token}"))
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status();
    let body = read_body(resp).await?;
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let m: Map<String, Value> =
        serde_json::from_slice(&body).map_err(|e| format!("invalid JSON: {e}"))?;
    if m.get("sub").and_then(Value::as_str).unwrap_or_default() != subject {
        return Err("the userinfo subject does not match the ID token's".into());
    }
    Ok(m)
}

/// The login a verified ID token gives: identity, bound claims, metadata (Vault's
/// `processToken`).
async fn login_grant(
    client: &reqwest::Client,
    c: &Call,
    provider: &Provider,
    role: &Role,
    role_name: &str,
    mut claims_map: Map<String, Value>,
    tokens: &Tokens,
) -> Result<(LoginGrant, Vec<String>)> {
    if role.verbose_oidc_logging {
        let parts: Vec<&str> = tokens.id_token.split('.').collect();
        let logged = if parts.len() == 3 {
            format!("{}.{}.xxxxxxxxxxx", parts[0], parts[1])
        } else {
            "invalid token format".into()
        };
        tracing::debug!(id_token = %logged, "OIDC provider response");
    }
    let subject = claims_map
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !role.bound_subject.is_empty() && role.bound_subject != subject {
        return Err(failed("sub claim does not match bound subject"));
    }
    if !tokens.access_token.is_empty() {
        match userinfo(client, provider, &tokens.access_token, &subject).await {
            Ok(extra) => claims_map.extend(extra),
            Err(e) if e.contains("not supported") => {
                tracing::debug!(error = %e, "error reading /userinfo endpoint")
            }
            Err(e) => tracing::warn!(error = %e, "error reading /userinfo endpoint"),
        }
    }
    if role.verbose_oidc_logging {
        let claims_json = serde_json::to_string(&claims_map).unwrap_or_default();
        tracing::debug!(claims = %claims_json, "OIDC provider response");
    }
    let user = user_claim(&claims_map, &role.user_claim, role.user_claim_json_pointer)
        .map_err(|e| failed(e.to_string()))?;
    let mut alias_metadata = claims::metadata(&claims_map, &role.claim_mappings).map_err(failed)?;
    alias_metadata.insert("role".into(), role_name.to_string());
    let groups = if role.groups_claim.is_empty() {
        vec![]
    } else {
        claims::groups(&claims_map, &role.groups_claim)
            .map_err(|e| failed(format!("failed to fetch groups: {e}")))?
    };
    claims::check_bound(
        &role.bound_claims,
        role.bound_claims_type == "glob",
        &claims_map,
    )
    .map_err(|e| failed(format!("error validating claims: {e}")))?;
    let mut metadata = alias_metadata.clone();
    for m in &role.oauth2_metadata {
        let v = match m.as_str() {
            "id_token" => &tokens.id_token,
            "access_token" => &tokens.access_token,
            "refresh_token" => &tokens.refresh_token,
            other => return Err(failed(format!("Unrecognized oauth2 metadata name {other}"))),
        };
        metadata.insert(format!("oauth2_{m}"), v.clone());
    }
    let (mut grant, warnings) = role.token.grant(&c.mount, user.clone(), metadata);
    grant.alias_name = Some(user);
    grant.alias_metadata = alias_metadata;
    grant.group_aliases = groups;
    Ok((grant, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_match_like_vault() {
        let allowed = vec![
            "https://example.com/cb".to_string(),
            "http://localhost:8250/oidc/callback".to_string(),
            "http://127.0.0.1/oidc/callback".to_string(),
        ];
        assert!(valid_redirect("https://example.com/cb", &allowed));
        assert!(!valid_redirect("https://example.com/cb/", &allowed));
        assert!(!valid_redirect("https://example.com:8443/cb", &allowed));
        // Loopback: any port.
        assert!(valid_redirect(
            "http://localhost:9999/oidc/callback",
            &allowed
        ));
        assert!(valid_redirect(
            "http://127.0.0.1:1234/oidc/callback",
            &allowed
        ));
        assert!(!valid_redirect("http://localhost:9999/other", &allowed));
        assert!(!valid_redirect(
            "https://localhost:8250/oidc/callback",
            &allowed
        ));
        assert!(!valid_redirect("not a url", &allowed));
    }

    #[test]
    fn mounts_from_redirects() {
        assert_eq!(
            parse_mount("https://h:8200/v1/auth/oidc-test/oidc/callback"),
            "oidc-test"
        );
        assert_eq!(parse_mount("http://localhost:8250/oidc/callback"), "");
    }

    #[test]
    fn pages_escape() {
        assert!(error_html("a", "<script>").contains("&lt;script&gt;"));
        let p = formpost_html("oidc", "st&x");
        assert!(p.contains("/v1/auth/oidc/oidc/callback?state=st%26x&amp;code=no_code"));
    }
}
