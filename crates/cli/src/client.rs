//! The HTTP client: connection settings and requests against the Vault-compatible API.
//!
//! This module owns:
//! * the connection flags shared by every command (`-address`, `-token`, `-namespace`,
//!   `-tls-skip-verify`, `-ca-cert`, `-client-cert`, `-client-key`) and their environment
//!   fallbacks (`TRESOR_*` first, then the `VAULT_*` names so existing setups keep working);
//! * the token file `~/.vault-token` written by `tresor login`;
//! * sending requests under `/v1/` with `X-Vault-Token` (and `X-Vault-Namespace`), and
//!   turning `{"errors": [...]}` answers into a readable [`CliError`] that carries the
//!   HTTP status, in the same layout as Vault's CLI.
//!
//! Lists use the `LIST` HTTP method; empty answers (204) come back as `None`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args};
use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

use crate::error::{CliError, CliResult};

/// Address used when neither `-address` nor an environment variable is set.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8200";
/// Name of the token file in the home directory (shared with Vault's CLI).
pub const TOKEN_FILE_NAME: &str = ".vault-token";

/// Connection flags, accepted by every command.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectionFlags {
    /// Address of the server [env: TRESOR_ADDR, VAULT_ADDR] (default http://127.0.0.1:8200).
    #[arg(long, global = true, value_name = "URL")]
    pub address: Option<String>,
    /// Token to authenticate with [env: TRESOR_TOKEN, VAULT_TOKEN] (else ~/.vault-token).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Namespace sent as X-Vault-Namespace [env: TRESOR_NAMESPACE, VAULT_NAMESPACE].
    #[arg(long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Do not verify the server's TLS certificate [env: TRESOR_SKIP_VERIFY, VAULT_SKIP_VERIFY].
    #[arg(long = "tls-skip-verify", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL")]
    pub tls_skip_verify: Option<bool>,
    /// PEM file with CA certificate(s) to trust [env: TRESOR_CACERT, VAULT_CACERT].
    #[arg(long = "ca-cert", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for TLS client auth [env: TRESOR_CLIENT_CERT, VAULT_CLIENT_CERT].
    #[arg(long = "client-cert", global = true, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key for -client-cert [env: TRESOR_CLIENT_KEY, VAULT_CLIENT_KEY].
    #[arg(long = "client-key", global = true, value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// Wrap the answer in a single-use token valid this long (`5m`), sent as X-Vault-Wrap-TTL
    /// [env: VAULT_WRAP_TTL].
    #[arg(long = "wrap-ttl", global = true, value_name = "DURATION")]
    pub wrap_ttl: Option<String>,
}

/// Fully resolved connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub address: String,
    pub token: Option<String>,
    pub namespace: Option<String>,
    pub tls_skip_verify: bool,
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub wrap_ttl: Option<String>,
}

/// First non-empty value among the given environment variables.
pub fn env_first(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| env(n))
        .find(|v| !v.trim().is_empty())
}

/// Parses a boolean like Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The user's home directory.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Path of the token file (`~/.vault-token`).
pub fn token_file() -> Option<PathBuf> {
    home_dir().map(|h| h.join(TOKEN_FILE_NAME))
}

/// Reads a token file; a missing file is `None`.
pub fn read_token_file(path: &Path) -> CliResult<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let t = s.trim();
            Ok((!t.is_empty()).then(|| t.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::other(format!(
            "Error reading token file {}: {e}",
            path.display()
        ))),
    }
}

/// Stores a token in the token file, readable only by the user.
pub fn store_token(path: &Path, token: &str) -> CliResult<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let res = opts
        .open(path)
        .and_then(|mut f| f.write_all(token.as_bytes()));
    res.map_err(|e| CliError::other(format!("Error storing token in {}: {e}", path.display())))
}

impl ClientConfig {
    /// Resolves settings from flags, then the process environment, then the token file.
    pub fn resolve(flags: &ConnectionFlags) -> CliResult<Self> {
        let env = |k: &str| std::env::var(k).ok();
        Self::resolve_with(flags, &env, token_file().as_deref())
    }

    /// Like [`ClientConfig::resolve`] with an explicit environment and token file (for tests).
    pub fn resolve_with(
        flags: &ConnectionFlags,
        env: &dyn Fn(&str) -> Option<String>,
        token_file: Option<&Path>,
    ) -> CliResult<Self> {
        let address = flags
            .address
            .clone()
            .or_else(|| env_first(env, &["TRESOR_ADDR", "VAULT_ADDR"]))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        let address = address.trim().trim_end_matches('/').to_string();
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(CliError::usage(format!(
                "Invalid address {address:?}: it must start with http:// or https://"
            )));
        }
        let token = match flags
            .token
            .clone()
            .or_else(|| env_first(env, &["TRESOR_TOKEN", "VAULT_TOKEN"]))
        {
            Some(t) => Some(t.trim().to_string()),
            None => match token_file {
                Some(p) => read_token_file(p)?,
                None => None,
            },
        };
        let namespace = flags
            .namespace
            .clone()
            .or_else(|| env_first(env, &["TRESOR_NAMESPACE", "VAULT_NAMESPACE"]));
        let tls_skip_verify = match flags.tls_skip_verify {
            Some(b) => b,
            None => match env_first(env, &["TRESOR_SKIP_VERIFY", "VAULT_SKIP_VERIFY"]) {
                Some(v) => parse_bool(&v).ok_or_else(|| {
                    CliError::usage(format!("Invalid VAULT_SKIP_VERIFY value {v:?}"))
                })?,
                None => false,
            },
        };
        let path_flag = |flag: &Option<PathBuf>, names: &[&str]| {
            flag.clone()
                .or_else(|| env_first(env, names).map(PathBuf::from))
        };
        Ok(ClientConfig {
            address,
            token,
            namespace,
            tls_skip_verify,
            ca_cert: path_flag(&flags.ca_cert, &["TRESOR_CACERT", "VAULT_CACERT"]),
            client_cert: path_flag(
                &flags.client_cert,
                &["TRESOR_CLIENT_CERT", "VAULT_CLIENT_CERT"],
            ),
            client_key: path_flag(
                &flags.client_key,
                &["TRESOR_CLIENT_KEY", "VAULT_CLIENT_KEY"],
            ),
            wrap_ttl: flags
                .wrap_ttl
                .clone()
                .or_else(|| env_first(env, &["TRESOR_WRAP_TTL", "VAULT_WRAP_TTL"])),
        })
    }
}

/// A blocking client for the `/v1/` API.
#[derive(Clone)]
pub struct Client {
    http: Http,
    address: String,
    token: Option<String>,
    namespace: Option<String>,
    wrap_ttl: Option<String>,
}

fn read_file(path: &Path, what: &str) -> CliResult<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| CliError::other(format!("Error reading {what} {}: {e}", path.display())))
}

/// Formats an error with its chain of causes (reqwest hides the interesting part there).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        src = s.source();
    }
    msg
}

impl Client {
    /// Builds a client from resolved settings.
    pub fn new(cfg: ClientConfig) -> CliResult<Self> {
        let mut builder = Http::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("tresor-cli/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(cfg.tls_skip_verify);
        let identity = match (&cfg.client_cert, &cfg.client_key) {
            (Some(cert), Some(key)) => Some((
                read_file(cert, "client certificate")?,
                read_file(key, "client key")?,
            )),
            (None, None) => None,
            _ => {
                return Err(CliError::usage(
                    "-client-cert and -client-key must be given together",
                ))
            }
        };
        let identity_error = |e: &dyn std::fmt::Display| {
            CliError::other(format!("Error loading client certificate: {e}"))
        };
        match &cfg.ca_cert {
            // Our own verifier: it also accepts a server certificate that is itself one of
            // the given CA certificates, as Vault's CLI does (see `tls.rs`).
            Some(ca) if !cfg.tls_skip_verify => {
                let pem = read_file(ca, "CA certificate")?;
                let identity = identity
                    .map(|(cert, key)| {
                        let chain = rustls_pemfile::certs(&mut &cert[..])
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| identity_error(&e))?;
                        let key = rustls_pemfile::private_key(&mut &key[..])
                            .map_err(|e| identity_error(&e))?
                            .ok_or_else(|| identity_error(&"no private key found"))?;
                        Ok::<_, CliError>((chain, key))
                    })
                    .transpose()?;
                let tls = crate::tls::client_config(&pem, identity).map_err(|e| {
                    CliError::other(format!(
                        "Error loading CA certificate {}: {e}",
                        ca.display()
                    ))
                })?;
                builder = builder.use_preconfigured_tls(tls);
            }
            _ => {
                if let Some((mut pem, key)) = identity {
                    pem.push(b'\n');
                    pem.extend(key);
                    let id = reqwest::Identity::from_pem(&pem).map_err(|e| identity_error(&e))?;
                    builder = builder.identity(id);
                }
            }
        }
        let http = builder.build().map_err(|e| {
            CliError::other(format!("Error creating HTTP client: {}", error_chain(&e)))
        })?;
        Ok(Client {
            http,
            address: cfg.address,
            token: cfg.token,
            namespace: cfg.namespace,
            wrap_ttl: cfg.wrap_ttl,
        })
    }

    /// A copy of this client that authenticates with `token` (or with none).
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client {
            token,
            ..self.clone()
        }
    }

    /// Full URL of an API path (`secret/foo` -> `<addr>/v1/secret/foo`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.address, path.trim_start_matches('/'))
    }

    fn build(&self, method: Method, path: &str, query: &[(String, String)]) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        if let Some(t) = &self.token {
            if let Ok(v) = HeaderValue::from_str(t) {
                headers.insert("X-Vault-Token", v);
            }
        }
        if let Some(ns) = &self.namespace {
            if let Ok(v) = HeaderValue::from_str(ns) {
                headers.insert("X-Vault-Namespace", v);
            }
        }
        // Vault's client wraps `sys/wrapping/wrap` for 5 minutes unless told otherwise (its
        // DefaultWrappingLookupFunc): the endpoint only answers wrapped.
        let default_wrap = (path.trim_start_matches('/') == "sys/wrapping/wrap"
            && matches!(method, Method::PUT | Method::POST))
        .then(|| "5m".to_string());
        if let Some(ttl) = self.wrap_ttl.as_ref().or(default_wrap.as_ref()) {
            if let Ok(v) = HeaderValue::from_str(ttl) {
                headers.insert("X-Vault-Wrap-TTL", v);
            }
        }
        // Vault's own client sends this on every request; servers use it to tell API
        // calls from browser requests.
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        let mut rb = self.http.request(method, self.url(path)).headers(headers);
        if !query.is_empty() {
            rb = rb.query(query);
        }
        rb
    }

    /// Sends a request. Success with an empty body (e.g. 204) is `Ok(None)`.
    /// With `not_found_is_none`, a 404 without data, warnings or errors is `Ok(None)`,
    /// as Vault's client does for reads and lists.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        not_found_is_none: bool,
    ) -> CliResult<Option<Value>> {
        let mut rb = self.build(method.clone(), path, query);
        if let Some(b) = body {
            let ct = if method == Method::PATCH {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            rb = rb.header(CONTENT_TYPE, ct).body(b.to_string());
        }
        let url = self.url(path);
        let resp = rb
            .send()
            .map_err(|e| CliError::remote(format!("{method} {url}: {}", error_chain(&e))))?;
        let status = resp.status().as_u16();
        let mut text = String::new();
        let mut resp = resp;
        resp.read_to_string(&mut text).map_err(|e| {
            CliError::remote(format!("{method} {url}: error reading response: {e}"))
        })?;
        let parsed: Option<Value> = if text.trim().is_empty() {
            None
        } else {
            serde_json::from_str(&text).ok()
        };
        if status == 404 && not_found_is_none {
            let errors_empty = parsed
                .as_ref()
                .and_then(|v| v.get("errors"))
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty());
            let has_payload = parsed.as_ref().is_some_and(|v| {
                v.get("data")
                    .is_some_and(|d| !d.is_null() && d != &Value::Object(Default::default()))
                    || v.get("warnings")
                        .and_then(Value::as_array)
                        .is_some_and(|w| !w.is_empty())
            });
            if has_payload {
                return Ok(parsed);
            }
            if errors_empty {
                return Ok(None);
            }
        }
        if status >= 400 {
            return Err(api_error(&method, &url, status, parsed.as_ref(), &text));
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        match parsed {
            Some(v) => Ok(Some(v)),
            // Some endpoints answer with raw text (e.g. PEM); hand it over as a string.
            None => Ok(Some(Value::String(text))),
        }
    }

    /// A request whose body and answer are raw bytes, not JSON (snapshots); it may take as
    /// long as the transfer needs.
    pub fn request_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> CliResult<Vec<u8>> {
        let mut rb = self
            .build(method.clone(), path, &[])
            .timeout(Duration::from_secs(3600));
        if let Some(b) = body {
            rb = rb.header(CONTENT_TYPE, "application/octet-stream").body(b);
        }
        let url = self.url(path);
        let mut resp = rb
            .send()
            .map_err(|e| CliError::remote(format!("{method} {url}: {}", error_chain(&e))))?;
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        resp.read_to_end(&mut bytes).map_err(|e| {
            CliError::remote(format!("{method} {url}: error reading response: {e}"))
        })?;
        if status >= 400 {
            let text = String::from_utf8_lossy(&bytes);
            let parsed = serde_json::from_str::<Value>(&text).ok();
            return Err(api_error(&method, &url, status, parsed.as_ref(), &text));
        }
        Ok(bytes)
    }

    /// `GET path?query`, the body as the server sent it (`read -format=raw`); a 404 without
    /// errors is `Ok(None)`.
    pub fn read_raw(&self, path: &str, query: &[(String, String)]) -> CliResult<Option<String>> {
        let url = self.url(path);
        let mut resp = self
            .build(Method::GET, path, query)
            .send()
            .map_err(|e| CliError::remote(format!("GET {url}: {}", error_chain(&e))))?;
        let status = resp.status().as_u16();
        let mut text = String::new();
        resp.read_to_string(&mut text)
            .map_err(|e| CliError::remote(format!("GET {url}: error reading response: {e}")))?;
        let parsed = serde_json::from_str::<Value>(&text).ok();
        if status >= 400 {
            let no_errors = parsed
                .as_ref()
                .and_then(|v| v.get("errors"))
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty());
            if status == 404 && no_errors {
                return Ok(None);
            }
            return Err(api_error(
                &Method::GET,
                &url,
                status,
                parsed.as_ref(),
                &text,
            ));
        }
        Ok(Some(text))
    }

    /// `GET path?query`; a 404 is `Ok(None)`.
    pub fn read(&self, path: &str, query: &[(String, String)]) -> CliResult<Option<Value>> {
        self.request(Method::GET, path, query, None, true)
    }

    /// `LIST path`; a 404 is `Ok(None)`.
    pub fn list(&self, path: &str) -> CliResult<Option<Value>> {
        let method = Method::from_bytes(b"LIST").expect("LIST is a valid method");
        self.request(method, path, &[], None, true)
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> CliResult<Option<Value>> {
        self.request(Method::PUT, path, &[], Some(body), false)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> CliResult<Option<Value>> {
        self.request(Method::POST, path, &[], Some(body), false)
    }

    /// `PATCH path` with a JSON merge-patch body.
    pub fn patch(&self, path: &str, body: &Value) -> CliResult<Option<Value>> {
        self.request(Method::PATCH, path, &[], Some(body), false)
    }

    /// `DELETE path?query`.
    pub fn delete(&self, path: &str, query: &[(String, String)]) -> CliResult<Option<Value>> {
        self.request(Method::DELETE, path, query, None, false)
    }
}

/// Builds Vault's error layout:
///
/// ```text
/// Error making API request.
///
/// URL: GET http://127.0.0.1:8200/v1/secret/foo
/// Code: 403. Errors:
///
/// * permission denied
/// ```
pub fn api_error(
    method: &Method,
    url: &str,
    status: u16,
    parsed: Option<&Value>,
    raw: &str,
) -> CliError {
    let errors: Option<Vec<String>> = parsed
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| match e {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        });
    let mut msg = format!("Error making API request.\n\nURL: {method} {url}\n");
    match errors {
        Some(errs) if !errs.is_empty() => {
            msg.push_str(&format!("Code: {status}. Errors:\n\n"));
            let lines: Vec<String> = errs.iter().map(|e| format!("* {e}")).collect();
            msg.push_str(&lines.join("\n"));
        }
        // A JSON answer with an empty error list: name the status instead.
        Some(_) => {
            let reason = reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no error message");
            msg.push_str(&format!("Code: {status}. Errors:\n\n* {reason}"));
        }
        None => {
            msg.push_str(&format!("Code: {status}. Raw Message:\n\n{}", raw.trim()));
        }
    }
    CliError::api(status, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let cfg =
            ClientConfig::resolve_with(&ConnectionFlags::default(), &env_of(&[]), None).unwrap();
        assert_eq!(cfg.address, DEFAULT_ADDRESS);
        assert_eq!(cfg.token, None);
        assert!(!cfg.tls_skip_verify);
    }

    #[test]
    fn precedence_flag_tresor_vault() {
        let env = env_of(&[
            ("VAULT_ADDR", "http://vault:8200"),
            ("TRESOR_ADDR", "http://tresor:8200/"),
            ("VAULT_TOKEN", "vt"),
            ("VAULT_SKIP_VERIFY", "1"),
            ("VAULT_CACERT", "/ca.pem"),
        ]);
        let cfg = ClientConfig::resolve_with(&ConnectionFlags::default(), &env, None).unwrap();
        assert_eq!(cfg.address, "http://tresor:8200");
        assert_eq!(cfg.token.as_deref(), Some("vt"));
        assert!(cfg.tls_skip_verify);
        assert_eq!(cfg.ca_cert, Some(PathBuf::from("/ca.pem")));

        let flags = ConnectionFlags {
            address: Some("https://flag:1".into()),
            token: Some("ft".into()),
            tls_skip_verify: Some(false),
            ..Default::default()
        };
        let cfg = ClientConfig::resolve_with(&flags, &env, None).unwrap();
        assert_eq!(cfg.address, "https://flag:1");
        assert_eq!(cfg.token.as_deref(), Some("ft"));
        assert!(!cfg.tls_skip_verify);
    }

    #[test]
    fn token_file_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".vault-token");
        store_token(&p, "s.filetoken").unwrap();
        let cfg = ClientConfig::resolve_with(&ConnectionFlags::default(), &env_of(&[]), Some(&p))
            .unwrap();
        assert_eq!(cfg.token.as_deref(), Some("s.filetoken"));
        // The environment wins over the file.
        let cfg = ClientConfig::resolve_with(
            &ConnectionFlags::default(),
            &env_of(&[("TRESOR_TOKEN", "envtok")]),
            Some(&p),
        )
        .unwrap();
        assert_eq!(cfg.token.as_deref(), Some("envtok"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Missing file: no token, no error.
        let missing = dir.path().join("nope");
        let cfg =
            ClientConfig::resolve_with(&ConnectionFlags::default(), &env_of(&[]), Some(&missing))
                .unwrap();
        assert_eq!(cfg.token, None);
    }

    #[test]
    fn bad_address_and_skip_verify() {
        let flags = ConnectionFlags {
            address: Some("127.0.0.1:8200".into()),
            ..Default::default()
        };
        let e = ClientConfig::resolve_with(&flags, &env_of(&[]), None).unwrap_err();
        assert_eq!(e.code, 1);
        let e = ClientConfig::resolve_with(
            &ConnectionFlags::default(),
            &env_of(&[("VAULT_SKIP_VERIFY", "maybe")]),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, 1);
    }

    #[test]
    fn api_error_layout() {
        let body: Value = serde_json::json!({"errors": ["permission denied", "second"]});
        let e = api_error(
            &Method::GET,
            "http://h/v1/x",
            403,
            Some(&body),
            &body.to_string(),
        );
        assert_eq!(e.code, 2);
        assert_eq!(e.status, Some(403));
        assert_eq!(
            e.message,
            "Error making API request.\n\nURL: GET http://h/v1/x\nCode: 403. Errors:\n\n* permission denied\n* second"
        );
        let e = api_error(&Method::PUT, "http://h/v1/x", 502, None, "bad gateway\n");
        assert!(e
            .message
            .ends_with("Code: 502. Raw Message:\n\nbad gateway"));
        let empty = serde_json::json!({"errors": []});
        let e = api_error(&Method::PUT, "http://h/v1/x", 405, Some(&empty), "");
        assert!(
            e.message
                .ends_with("Code: 405. Errors:\n\n* Method Not Allowed"),
            "{}",
            e.message
        );
    }
}
