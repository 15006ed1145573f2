//! Vault's wire format. One handler serves `/v1/*`:
//!
//! * method → operation: GET (or `?list=true`) read/list, `LIST` list, POST/PUT update (the core
//!   decides create vs update), PATCH patch, DELETE delete, HEAD read;
//! * `X-Vault-Token` (or `Authorization: Bearer`) → token; `X-Vault-Wrap-TTL` → wrap TTL;
//! * the JSON body (an object, at most the listener's `max_request_size`) or, for GET/LIST/DELETE,
//!   the query string → request data;
//! * the core's answer → Vault's envelope (`request_id`, `lease_id`, `renewable`,
//!   `lease_duration`, `data`, `wrap_info`, `warnings`, `auth`, `mount_type`), 204 when empty;
//! * a core error → `{"errors": [...]}` with its status: the only place that mapping happens.
//!
//! `GET sys/monitor` is the one streamed answer: the core authorizes and checks it like any
//! request, then the body is the log as it comes ([`crate::logging::Logging::monitor`]).
//!
//! Input that cannot be a request is refused before the core sees it: a body announced larger
//! than `max_request_size` (413, nothing read), a body not complete within the listener's
//! `http_read_timeout` (408), a path or query that is not UTF-8 once percent-decoded (400).

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tresor_core::core::Core;
use tresor_core::error::Error;
use tresor_core::framework::parse_duration_str;
use tresor_core::logical::{Operation, Request, Response};

/// A response body: whole, or the stream of `sys/monitor`.
pub type Body = Either<Full<Bytes>, crate::logging::MonitorBody>;
pub type HttpResponse = hyper::Response<Body>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// What one request may send: the listener's `max_request_size` and `http_read_timeout`.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    pub max_body: usize,
    pub read_timeout: std::time::Duration,
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    json_bytes(status, serde_json::to_vec(body).unwrap_or_default())
}

fn json_bytes(status: u16, body: Vec<u8>) -> HttpResponse {
    let mut r = hyper::Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Vault's error body.
pub fn error_response(status: u16, errors: Vec<String>) -> HttpResponse {
    json_response(status, &json!({ "errors": errors }))
}

fn core_error(e: &Error) -> HttpResponse {
    if let Error::Internal(msg) = e {
        tracing::error!(error = %msg, "internal error");
    }
    let mut r = error_response(e.status(), e.messages());
    if let Error::RateLimited { retry_after, .. } = e {
        r.headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    r
}

/// `X-Ratelimit-*` (`sys/quotas/config` `enable_rate_limit_response_headers`).
fn with_rate_limit(
    mut resp: HttpResponse,
    a: Option<&tresor_core::quotas::Allowance>,
) -> HttpResponse {
    if let Some(a) = a {
        let h = resp.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from(a.limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(a.remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(a.reset));
    }
    resp
}

/// 307 to the same path and query on the active node (method and body are kept by clients).
fn redirect(active_api_addr: &str, path_and_query: &str) -> HttpResponse {
    let mut r = empty(StatusCode::TEMPORARY_REDIRECT);
    let location = format!("{}{path_and_query}", active_api_addr.trim_end_matches('/'));
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    r
}

fn empty(status: StatusCode) -> HttpResponse {
    let mut r = hyper::Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// The pairs of a query string or form body; `None` if one is not UTF-8 once decoded.
fn query_data(query: Option<&str>) -> Option<Map<String, Value>> {
    let mut m = Map::new();
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(percent_decode(k)?, Value::String(percent_decode(v)?));
        }
    }
    Some(m)
}

/// Decodes `%XX` escapes and `+`; `None` if the result is not UTF-8 (a malformed escape is
/// kept as it is, as Go's lenient decoders do).
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A boolean flag as Go's `strconv.ParseBool` reads it (Vault parses `?list=`, `?help=` so):
/// `None` for anything else.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn header<'a>(req: &'a hyper::Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What a listener's requests share.
pub struct ListenerContext {
    pub core: Arc<Core>,
    pub limits: RequestLimits,
    /// Forwarding to the active node (HA with a cluster address).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// This is the cluster listener: requests come forwarded by a standby (mutual TLS), name
    /// their client's address and certificates, and are never forwarded again.
    pub forwarded: bool,
    /// The server's log, requests in flight and shutdown signal.
    pub ops: Arc<crate::ops::Operations>,
    /// The listener's `telemetry { unauthenticated_metrics_access }`: `GET sys/metrics` is
    /// answered without a token (and while sealed), as in Vault.
    pub unauthenticated_metrics: bool,
}

/// Serves one HTTP request; `id` becomes its request id.
pub async fn handle(
    ctx: &ListenerContext,
    req: hyper::Request<Incoming>,
    id: String,
    remote: Option<String>,
    client_certs: Arc<Vec<Vec<u8>>>,
) -> HttpResponse {
    let core = ctx.core.clone();
    let limits = &ctx.limits;
    let (remote, client_certs) = if ctx.forwarded {
        let (r, c) = crate::cluster::forwarded_origin(req.headers());
        (r.or(remote), Arc::new(c))
    } else {
        (remote, client_certs)
    };
    // What forwarding needs of the request, kept only on a standby (an active node that steps
    // down while serving this request redirects it instead).
    let forwarding = ctx
        .cluster
        .as_ref()
        .filter(|_| !ctx.forwarded && core.is_standby())
        .map(|c| (c.clone(), req.method().clone(), req.headers().clone()));
    let uri_path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri_path.clone());
    let Some(raw_path) = uri_path.strip_prefix("/v1/") else {
        return error_response(404, vec![]);
    };
    let Some(path) = percent_decode(raw_path) else {
        return error_response(400, vec!["the request path is not valid UTF-8".into()]);
    };
    let Some(mut data) = query_data(req.uri().query()) else {
        return error_response(400, vec!["the query string is not valid UTF-8".into()]);
    };
    let mut flag = |name: &str| -> Result<bool, String> {
        match data.remove(name) {
            None => Ok(false),
            Some(v) => {
                let v = v.as_str().unwrap_or_default();
                // An empty value is false, as in Vault (`?list=` reads).
                (if v.is_empty() {
                    Some(false)
                } else {
                    parse_bool(v)
                })
                .ok_or_else(|| format!("invalid value for {name}: {v:?}"))
            }
        }
    };
    if ctx.unauthenticated_metrics && path == "sys/metrics" && req.method() == Method::GET {
        let format = data.get("format").and_then(Value::as_str).unwrap_or("");
        return match core.metrics_report(format).await {
            Ok(r) => render(r),
            Err(e) => core_error(&e),
        };
    }
    let (list_query, help_query) = match (flag("list"), flag("help")) {
        (Ok(l), Ok(h)) => (l, h),
        (Err(e), _) | (_, Err(e)) => return error_response(400, vec![e]),
    };
    let operation = match req.method().as_str() {
        "GET" if help_query => Operation::Help,
        "GET" | "HEAD" if list_query => Operation::List,
        "GET" | "HEAD" => Operation::Read,
        "LIST" => Operation::List,
        "POST" | "PUT" => Operation::Update,
        "PATCH" => Operation::Patch,
        "DELETE" => Operation::Delete,
        _ => return error_response(405, vec!["unsupported operation".into()]),
    };
    let token = header(&req, "x-vault-token")
        .map(str::to_string)
        .or_else(|| {
            header(&req, "authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(|t| t.trim().to_string())
        });
    // HA read-your-writes (an index this API handed out; anything else is ignored).
    let min_index = header(&req, "x-vault-index").and_then(|v| v.trim().parse().ok());
    let wrap_ttl = match header(&req, "x-vault-wrap-ttl") {
        Some(v) => match parse_duration_str(v) {
            Some(d) => Some(d),
            None => return error_response(400, vec!["error parsing wrap TTL".into()]),
        },
        None => None,
    };
    let is_head = req.method() == Method::HEAD;
    // Streamed to a client, never to a standby that forwarded the request (it reads whole
    // answers).
    let monitor = req.method() == Method::GET && path == "sys/monitor" && !ctx.forwarded;
    if monitor && wrap_ttl.is_some() {
        // A stream cannot be wrapped (the core would wrap its parameters, and nobody would
        // ever get the wrapping token).
        return error_response(400, vec!["sys/monitor cannot be response-wrapped".into()]);
    }
    // Binary bodies: OCSP requests, and snapshots to restore (sent with no content type).
    let binary_body = header(&req, "content-type")
        .is_some_and(|ct| ct.starts_with("application/ocsp-request"))
        || is_snapshot_restore(&path);
    // Browsers and identity providers post forms (OIDC `form_post`); Vault accepts those too.
    // As in Vault, a form content type only counts when the body does not open like JSON:
    // `curl -d '{...}'` sends JSON labelled as a form.
    let form_content_type = header(&req, "content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let has_body = matches!(
        operation,
        Operation::Update | Operation::Patch | Operation::Delete | Operation::List
    );
    let mut raw_body = Bytes::new();
    if has_body {
        let body = match read_body(req, limits).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        raw_body = body.clone();
        if binary_body {
            // Binary protocols tunnelled through the API: the body goes to the backend as
            // base64 in `http_raw_body`.
            use base64::Engine;
            data.insert(
                "http_raw_body".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(&body)),
            );
        } else if form_content_type && !opens_like_json(&body) {
            match std::str::from_utf8(&body)
                .ok()
                .and_then(|text| query_data(Some(text.trim())))
            {
                Some(form) => data.extend(form),
                None => {
                    return error_response(
                        400,
                        vec!["failed to parse form input: not UTF-8".into()],
                    )
                }
            }
        } else if !body.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => data.extend(m),
                Ok(Value::Null) => {}
                Ok(_) => {
                    return error_response(
                        400,
                        vec!["failed to parse JSON input: the body must be a JSON object".into()],
                    )
                }
                Err(e) => {
                    return error_response(400, vec![format!("failed to parse JSON input: {e}")])
                }
            }
        }
    }
    let request = Request {
        id,
        operation,
        path,
        data,
        token,
        remote_addr: remote,
        wrap_ttl,
        client_certs: client_certs.to_vec(),
        min_index,
    };
    // Boxed: the core's future is large, and hyper moves the service future into place per
    // request (a memcpy of its whole size, ~1% of a request's CPU when unboxed).
    let remote_for_forwarding = forwarding.as_ref().and(request.remote_addr.clone());
    let resp = match Box::pin(core.handle(request)).await {
        Ok(r) if monitor => monitor_stream(ctx, &r),
        Ok(r) => with_state_index(render(r), &core),
        // Forwarded already, yet this node is not active (any more): the standby redirects.
        Err(e @ Error::Standby(_)) if ctx.forwarded => core_error(&e),
        // A standby forwards to the active node; redirects (307) where it cannot, or where
        // the client asked not to be forwarded.
        Err(Error::Standby(Some(active))) => {
            let mut answer = None;
            if let Some((cluster, method, headers)) = forwarding
                .filter(|_| !active.cluster_addr.is_empty())
                .filter(|(_, _, h)| !h.contains_key("x-vault-no-request-forwarding"))
            {
                match cluster
                    .forward(
                        &active.cluster_addr,
                        &method,
                        &path_and_query,
                        &headers,
                        raw_body,
                        remote_for_forwarding.as_deref(),
                        &client_certs,
                    )
                    .await
                {
                    Ok(r) => answer = Some(r),
                    Err(crate::cluster::ForwardError::NotSent(e)) => {
                        tracing::debug!(error = %e, "forwarding to the active node failed; redirecting")
                    }
                    // It may have run there: the client must not be told to send it again.
                    Err(e @ crate::cluster::ForwardError::Unknown(_)) => {
                        tracing::warn!(error = %e, "a request forwarded to the active node got no answer");
                        answer = Some(error_response(
                            502,
                            vec!["the active node did not answer the forwarded request; its outcome is unknown".into()],
                        ));
                    }
                }
            }
            answer.unwrap_or_else(|| redirect(&active.api_addr, &path_and_query))
        }
        Err(e) => core_error(&e),
    };
    if is_head {
        let mut r = empty(resp.status());
        *r.headers_mut() = resp.headers().clone();
        return r;
    }
    resp
}

/// The answer to a `sys/monitor` request the core allowed: the log, at the level and in the
/// format the core checked, until the client leaves, the node seals or the server shuts down.
fn monitor_stream(ctx: &ListenerContext, allowed: &Response) -> HttpResponse {
    let param = |k: &str| {
        allowed
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let level = tresor_core::sys::operator::LogLevel::parse(param("log_level"))
        .unwrap_or(tresor_core::sys::operator::LogLevel::Info);
    let format = crate::logging::LogFormat::parse(param("log_format")).unwrap_or_default();
    // As Vault's, the stream ends when the node seals (checked every second).
    let core = Arc::downgrade(&ctx.core);
    let sealed = move || core.upgrade().is_none_or(|c| c.is_sealed());
    let body = ctx
        .ops
        .logging
        .monitor(level, format, ctx.ops.stop.clone(), sealed);
    let mut r = hyper::Response::new(Either::Right(body));
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// An HA node's answers carry the commit index its state reflects (`X-Vault-Index`): sent
/// back with a later request, a standby serves that request only once it has caught up.
fn with_state_index(mut resp: HttpResponse, core: &Core) -> HttpResponse {
    if let Some(index) = core.state_index() {
        resp.headers_mut()
            .insert("x-vault-index", hyper::header::HeaderValue::from(index));
    }
    resp
}

/// Vault's raft snapshot restore paths: their body is the snapshot itself.
fn is_snapshot_restore(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
    )
}

/// Reads a request body within the listener's limits. A body announced larger than the limit
/// is refused unread; one that stops arriving is cut off after `http_read_timeout`. Either
/// way the rest of the body is unread, so the answer closes the connection.
async fn read_body(
    req: hyper::Request<Incoming>,
    limits: &RequestLimits,
) -> Result<Bytes, HttpResponse> {
    let closing = |status: u16, msg: String| {
        let mut r = error_response(status, vec![msg]);
        r.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let too_large = || {
        closing(
            413,
            format!("request body too large (limit {} bytes)", limits.max_body),
        )
    };
    let announced = header(&req, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body as u64) {
        return Err(too_large());
    }
    let read = Limited::new(req.into_body(), limits.max_body).collect();
    match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Ok(Err(_)) => Err(error_response(
            400,
            vec!["failed to read request body".into()],
        )),
        Err(_) => Err(closing(
            408,
            format!(
                "the request body did not arrive within {}s (http_read_timeout)",
                limits.read_timeout.as_secs_f64()
            ),
        )),
    }
}

/// Whether a body's first non-blank byte opens a JSON object or array (Vault's `isForm` sniff).
fn opens_like_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

/// The core's answer in Vault's envelope.
pub fn render(mut r: Response) -> HttpResponse {
    let rate_limit = r.rate_limit.take();
    with_rate_limit(render_body(r), rate_limit.as_deref())
}

fn render_body(r: Response) -> HttpResponse {
    if let Some(raw) = r.raw {
        let mut resp = hyper::Response::new(full(raw.body));
        *resp.status_mut() = StatusCode::from_u16(raw.status).unwrap_or(StatusCode::OK);
        // An empty content type means a body-less answer (ACME's new-nonce): no header.
        if !raw.content_type.is_empty() {
            if let Ok(ct) = HeaderValue::from_str(&raw.content_type) {
                resp.headers_mut().insert(CONTENT_TYPE, ct);
            }
        }
        for (name, value) in &raw.headers {
            if let (Ok(n), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                resp.headers_mut().append(n, v);
            }
        }
        return resp;
    }
    if r.is_empty() {
        return empty(StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::NO_CONTENT));
    }
    let no_lease = tresor_core::logical::Lease::default();
    let lease = r.lease.as_deref().unwrap_or(&no_lease);
    let envelope = Envelope {
        request_id: &r.request_id,
        lease_id: &lease.lease_id,
        renewable: lease.renewable,
        lease_duration: lease.duration,
        data: r.data.as_ref(),
        wrap_info: r.wrap_info.as_ref(),
        warnings: (!r.warnings.is_empty()).then_some(r.warnings.as_slice()),
        auth: r.auth.as_deref(),
        mount_type: &r.mount_type,
    };
    let status = r.http_status();
    if !r.top_level_data {
        // The hot path: serialized straight from the borrowed parts, no intermediate Value.
        // Sized for a typical answer (a KV read's is ~380 bytes): no regrowth on the way.
        let mut body = Vec::with_capacity(512);
        if serde_json::to_writer(&mut body, &envelope).is_err() {
            body.clear();
        }
        return json_bytes(status, body);
    }
    // Vault's legacy sys answers repeat `data`'s keys at the top level.
    let mut body = serde_json::to_value(&envelope).unwrap_or(Value::Null);
    if let (Some(data), Some(obj)) = (&r.data, body.as_object_mut()) {
        for (k, v) in data {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    json_response(status, &body)
}

/// Vault's response envelope, borrowed from a core response.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    request_id: &'a str,
    lease_id: &'a str,
    renewable: bool,
    lease_duration: u64,
    data: Option<&'a Map<String, Value>>,
    wrap_info: Option<&'a Value>,
    warnings: Option<&'a [String]>,
    auth: Option<&'a tresor_core::logical::Auth>,
    mount_type: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let d = query_data(Some("version=2&a%2Fb=c+d&flag")).unwrap();
        assert_eq!(d["version"], "2");
        assert_eq!(d["a/b"], "c d");
        assert_eq!(d["flag"], "");
        assert_eq!(percent_decode("100%").unwrap(), "100%");
        assert_eq!(percent_decode("%zz").unwrap(), "%zz");
        assert_eq!(percent_decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(percent_decode("%ff%fe"), None);
        assert!(query_data(Some("k=%ff")).is_none());
    }

    #[test]
    fn flags_parse_as_go_does() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "tRUE", "2"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }
}
