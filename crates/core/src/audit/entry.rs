//! One audit entry, written straight into its line's bytes in Vault's shape: borrowed parts of
//! the request, the caller and the response, written once, each sensitive string HMAC'd as it
//! is written (into a stack buffer), no intermediate `serde_json::Value` tree and no copy of
//! the request or response data.
//!
//! The bytes are what `serde_json` writes for the same keys in the same order ([`Json`]
//! leaves escaping and numbers to it), so the chain
//! verifier, which parses a line and serializes it again, recomputes the same MAC
//! (`the_bytes_are_serde_jsons_own_form` checks it).
//!
//! The token and accessor HMACs, needed by both the request and the response entry (twice in
//! each), are made once per device ([`TokenHashes`]): for a request made with the caller's own
//! token, once per cached token entry (kept beside it in the token store's cache, for every
//! request the token makes); otherwise once per request.

use super::{Context, Device};
use crate::logical::{Data, Request, Response};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// `hmac-sha256:` and 64 hex digits.
pub(super) const HASH_LEN: usize = 12 + 64;

/// The request's token, the caller's token and the caller's accessor as one device logs them
/// (HMAC'd, or raw with `log_raw` / `hmac_accessor = false`).
#[derive(Clone)]
pub(super) struct Tokens {
    device: u64,
    request_token: String,
    caller_token: String,
    accessor: String,
}

/// [`Tokens`] per device, made by the first entry that needs them: kept in a request's
/// [`Context`] (reused by its response entry) and in a cached token entry (reused by every
/// request of that token). A cache: a clone starts without it, and it takes no part in
/// comparing or printing what holds it.
#[derive(Default)]
pub struct TokenHashes(OnceLock<Vec<Tokens>>);

impl Clone for TokenHashes {
    fn clone(&self) -> Self {
        TokenHashes::default()
    }
}

impl PartialEq for TokenHashes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for TokenHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHashes")
    }
}

impl Tokens {
    fn of(d: &Device, req: &Request, ctx: &Context) -> Tokens {
        let request_token = d.logged_token(req.token.as_deref().unwrap_or(""));
        let (caller_token, accessor) = match &ctx.caller {
            Some(c) if req.token.as_deref() == Some(c.token.as_str()) => {
                (request_token.clone(), d.logged_accessor(&c.entry.accessor))
            }
            Some(c) => (
                d.logged_token(&c.token),
                d.logged_accessor(&c.entry.accessor),
            ),
            None => (String::new(), String::new()),
        };
        Tokens {
            device: d.id,
            request_token,
            caller_token,
            accessor,
        }
    }
}

/// The tokens of `req` as `d` logs them: made once for every device enabled when first
/// needed, kept with the caller's token entry when the request carries the caller's own token
/// (they depend on nothing else), else with the request; made afresh for a device enabled
/// since.
pub(super) fn tokens<'c>(
    d: &Device,
    devices: &[std::sync::Arc<Device>],
    req: &Request,
    ctx: &'c Context,
) -> Cow<'c, Tokens> {
    let made = |kept: &'c TokenHashes| {
        kept.0
            .get_or_init(|| devices.iter().map(|d| Tokens::of(d, req, ctx)).collect())
            .iter()
            .find(|t| t.device == d.id)
    };
    let own_token = ctx
        .caller
        .as_ref()
        .filter(|c| req.token.as_deref() == Some(c.token.as_str()));
    let found = match own_token {
        Some(c) => made(&c.entry.audit_hashes).or_else(|| made(&ctx.token_hashes)),
        None => made(&ctx.token_hashes),
    };
    match found {
        Some(t) => Cow::Borrowed(t),
        None => Cow::Owned(Tokens::of(d, req, ctx)),
    }
}

/// What one entry records: a request (`kind` "request") or its answer ("response").
pub(super) struct Record<'a> {
    pub kind: &'a str,
    pub req: &'a Request,
    pub ctx: &'a Context,
    pub resp: Option<&'a Response>,
    pub error: Option<&'a str>,
}

/// Appends the entry's JSON to `out`: the keys of Vault's shape, in its order.
pub(super) fn write(out: &mut Vec<u8>, d: &Device, tokens: &Tokens, record: &Record) {
    let Record {
        kind,
        req,
        ctx,
        resp,
        error,
    } = *record;
    let mount = ctx.mount.as_deref();
    let mount_point = mount.map(|m| m.route_prefix()).unwrap_or_default();
    let mount_type = mount.map_or("", |m| m.kind.as_str());
    let no_keys: &[String] = &[];
    let hasher = (!d.log_raw).then_some(d);
    let mut j = Json(out);
    j.field("{\"time\":", &crate::util::now_rfc3339());
    j.field(",\"type\":", kind);
    j.raw(",\"auth\":");
    match &ctx.caller {
        Some(c) => {
            let t = &c.entry;
            j.field("{\"client_token\":", &tokens.caller_token);
            j.field(",\"accessor\":", &tokens.accessor);
            j.field(",\"display_name\":", &t.display_name);
            j.raw(",\"policies\":");
            j.strs(&t.policies);
            j.raw(",\"token_policies\":");
            j.strs(&t.policies);
            j.raw(",\"metadata\":");
            j.str_map(&t.meta);
            j.field(",\"entity_id\":", &t.entity_id);
            j.field(",\"token_type\":", t.type_name());
            j.raw(",\"token_ttl\":");
            j.value(&t.creation_ttl);
            j.field(
                ",\"token_issue_time\":",
                &crate::util::rfc3339(t.creation_time),
            );
            j.raw("}");
        }
        None => j.raw("null"),
    }
    j.field(",\"request\":{\"id\":", &req.id);
    j.field(",\"operation\":", req.operation.as_str());
    j.field(",\"mount_point\":", &mount_point);
    j.field(",\"mount_type\":", mount_type);
    j.field(
        ",\"mount_accessor\":",
        mount.map_or("", |m| m.accessor.as_str()),
    );
    j.field(",\"client_token\":", &tokens.request_token);
    j.field(",\"client_token_accessor\":", &tokens.accessor);
    j.field(",\"namespace\":{\"id\":\"root\"},\"path\":", &req.path);
    j.raw(",\"data\":");
    if req.data.is_empty() {
        j.raw("null");
    } else {
        let skip = mount.map_or(no_keys, |m| &m.config.audit_non_hmac_request_keys);
        j.data(&req.data, Hashing { hasher, skip });
    }
    j.field(
        ",\"remote_address\":",
        req.remote_addr.as_deref().unwrap_or(""),
    );
    if let Some(t) = req.wrap_ttl {
        j.raw(",\"wrap_ttl\":");
        j.value(&t.as_secs());
    }
    j.raw("}");
    if kind == "response" {
        j.field(",\"response\":{\"mount_point\":", &mount_point);
        j.field(",\"mount_type\":", mount_type);
        if let Some(data) = resp.and_then(|r| r.data.as_ref()) {
            let skip = mount.map_or(no_keys, |m| &m.config.audit_non_hmac_response_keys);
            j.raw(",\"data\":");
            j.data(data, Hashing { hasher, skip });
        }
        if let Some(a) = resp.and_then(|r| r.auth.as_deref()) {
            j.field(
                ",\"auth\":{\"client_token\":",
                &d.logged_token(&a.client_token),
            );
            j.field(",\"accessor\":", &d.logged_accessor(&a.accessor));
            j.raw(",\"policies\":");
            j.strs(&a.policies);
            j.raw(",\"token_policies\":");
            j.strs(&a.token_policies);
            j.raw(",\"metadata\":");
            match &a.metadata {
                Some(m) => j.str_map(m),
                None => j.raw("null"),
            }
            j.field(",\"entity_id\":", &a.entity_id);
            j.field(",\"token_type\":", &a.token_type);
            j.raw(",\"token_ttl\":");
            j.value(&a.lease_duration);
            j.raw("}");
        }
        if let Some(w) = resp.and_then(|r| r.wrap_info.as_ref()) {
            j.raw(",\"wrap_info\":");
            j.value(&wrap_info(d, w));
        }
        if let Some(l) = resp.and_then(|r| r.lease.as_deref()) {
            j.field(",\"secret\":{\"lease_id\":", &l.lease_id);
            j.raw("}");
        }
        if let Some(w) = resp
            .map(|r| r.warnings.as_slice())
            .filter(|w| !w.is_empty())
        {
            j.raw(",\"warnings\":");
            j.strs(w);
        }
        j.raw("}");
    }
    if let Some(e) = error {
        j.field(",\"error\":", e);
    }
    j.raw("}");
}

/// The wrapping information with its token and accessors as the device logs them.
fn wrap_info(d: &Device, w: &Value) -> Value {
    let mut w = w.clone();
    for k in ["token", "accessor", "wrapped_accessor"] {
        if let Some(Value::String(s)) = w.get(k) {
            let logged = if k == "token" {
                d.logged_token(s)
            } else {
                d.logged_accessor(s)
            };
            w[k] = Value::String(logged);
        }
    }
    w
}

/// How data is logged: every string at any depth HMAC'd as it is written, except under the
/// mount's non-HMAC keys; all of it raw without a hasher (`log_raw`).
#[derive(Clone, Copy)]
struct Hashing<'a> {
    hasher: Option<&'a Device>,
    skip: &'a [String],
}

/// JSON text appended to a line, written as serde_json's compact form writes it. The entry's
/// keys are literals and most of its strings need no escaping (hashes, IDs, names), so a
/// string is scanned once and only one that needs escaping goes through serde_json; numbers and
/// other values are serde_json's own. Serializing the entry through serde spent more than the
/// rest of the entry on escaping keys and hashes (bench/README.md, "Audit, third step").
struct Json<'o>(&'o mut Vec<u8>);

impl Json<'_> {
    /// JSON text as it is.
    fn raw(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    /// JSON text (a key) and a string after it.
    fn field(&mut self, text: &str, s: &str) {
        self.raw(text);
        self.str(s);
    }

    fn str(&mut self, s: &str) {
        // No early exit: the compiler checks many bytes at once.
        let escape = s
            .bytes()
            .fold(false, |e, b| e | (b < 0x20) | (b == b'"') | (b == b'\\'));
        if escape {
            self.value(s);
        } else {
            self.0.push(b'"');
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(b'"');
        }
    }

    /// Anything else (numbers, and values logged as they are), by serde_json.
    fn value<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        serde_json::to_writer(&mut *self.0, v).expect("writing JSON to a Vec cannot fail");
    }

    /// `[item, ...]`.
    fn list<T>(&mut self, items: impl IntoIterator<Item = T>, mut item: impl FnMut(&mut Self, T)) {
        self.0.push(b'[');
        for (i, v) in items.into_iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            item(self, v);
        }
        self.0.push(b']');
    }

    /// `{"key": value, ...}`.
    fn object<'k, V>(
        &mut self,
        entries: impl IntoIterator<Item = (&'k String, V)>,
        mut value: impl FnMut(&mut Self, &'k String, V),
    ) {
        self.0.push(b'{');
        for (i, (k, v)) in entries.into_iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.str(k);
            self.0.push(b':');
            value(self, k, v);
        }
        self.0.push(b'}');
    }

    fn strs(&mut self, list: &[String]) {
        self.list(list, |j, s| j.str(s));
    }

    fn str_map(&mut self, map: &BTreeMap<String, String>) {
        self.object(map, |j, _, v| j.str(v));
    }

    /// Request or response data, as [`Hashing`] says.
    fn data(&mut self, map: &Data, how: Hashing) {
        self.object(map, |j, k, v| {
            if how.skip.contains(k) {
                j.value(v);
            } else {
                j.hashed(v, how);
            }
        });
    }

    /// One value of the data, as [`Hashing`] says.
    fn hashed(&mut self, v: &Value, how: Hashing) {
        let Some(d) = how.hasher else {
            return self.value(v);
        };
        match v {
            Value::String(x) => {
                let mut buf = [0u8; HASH_LEN];
                self.str(d.hash_into(x, &mut buf));
            }
            Value::Array(items) => self.list(items, |j, v| j.hashed(v, how)),
            Value::Object(map) => self.data(map, how),
            other => self.value(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Caller;
    use crate::logical::{Auth, Lease, Operation};
    use crate::mount::{MountConfig, MountEntry};
    use crate::token::TokenEntry;
    use serde_json::json;
    use std::sync::Arc;

    struct Discard;
    impl super::super::sink::Sink for Discard {
        fn write_line(&mut self, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn device(log_raw: bool, hmac_accessor: bool) -> Device {
        Device {
            entry: super::super::AuditEntry {
                path: "file/".into(),
                kind: "file".into(),
                description: String::new(),
                options: Default::default(),
                local: false,
                from_config: false,
            },
            id: 7,
            salt: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"salt"),
            log_raw,
            hmac_accessor,
            prefix: String::new(),
            jsonx: false,
            writer: super::super::writer::Writer::new(Box::new(Discard), None),
        }
    }

    /// A request with everything an entry shows: a caller, nested data with a non-HMAC key,
    /// a wrap TTL; a response with data, auth, wrapping, a lease and warnings.
    fn parts() -> (Request, Context, Response) {
        let mut req = Request::new(Operation::Update, "secret/data/app").with_token("hvs.tok");
        req.id = "req-1".into();
        req.remote_addr = Some("10.0.0.1".into());
        req.wrap_ttl = Some(std::time::Duration::from_secs(60));
        req.data =
            json!({ "password": "p", "nested": { "list": ["a", 1, true], "keep": "k\"\t" }, "n\\": 1.5 })
                .as_object()
                .unwrap()
                .clone();
        let entry = TokenEntry {
            accessor: "acc-1".into(),
            policies: vec!["default".into(), "app".into()],
            meta: [("team".to_string(), "x".to_string())].into(),
            display_name: "token-app".into(),
            creation_time: 0,
            creation_ttl: 3600,
            entity_id: "ent-1".into(),
            ..Default::default()
        };
        let ctx = Context {
            caller: Some(Caller {
                token: "hvs.tok".into(),
                entry: Arc::new(entry),
                acl: Default::default(),
            }),
            mount: Some(Arc::new(MountEntry {
                path: "secret/".into(),
                kind: "kv".into(),
                description: String::new(),
                uuid: "u".into(),
                accessor: "kv_1".into(),
                config: MountConfig {
                    audit_non_hmac_request_keys: vec!["keep".into()],
                    audit_non_hmac_response_keys: vec!["version".into()],
                    ..Default::default()
                },
                options: Default::default(),
                local: false,
                seal_wrap: false,
                external_entropy_access: false,
                table: "mounts".into(),
            })),
            ..Default::default()
        };
        let resp = Response {
            data: Some(
                json!({ "version": 3, "value": "v", "deep": [{ "version": "h" }] })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            auth: Some(Box::new(Auth {
                client_token: "hvs.new".into(),
                accessor: "acc-2".into(),
                policies: vec!["default".into()],
                token_policies: vec!["default".into()],
                lease_duration: 60,
                entity_id: "ent-2".into(),
                token_type: "service".into(),
                ..Default::default()
            })),
            wrap_info: Some(json!({ "token": "hvs.wrap", "accessor": "acc-w", "ttl": 60 })),
            lease: Some(Box::new(Lease {
                lease_id: "secret/lease/1".into(),
                duration: 60,
                renewable: true,
            })),
            warnings: vec!["careful".into()],
            ..Default::default()
        };
        (req, ctx, resp)
    }

    fn written(d: &Device, kind: &str, resp: Option<&Response>) -> (Vec<u8>, Value) {
        let (req, ctx, _) = parts();
        let tokens = Tokens::of(d, &req, &ctx);
        let mut out = Vec::new();
        let record = Record {
            kind,
            req: &req,
            ctx: &ctx,
            resp,
            error: Some("boom"),
        };
        write(&mut out, d, &tokens, &record);
        let value: Value = serde_json::from_slice(&out).unwrap();
        (out, value)
    }

    #[test]
    fn the_bytes_are_serde_jsons_own_form() {
        let (_, _, resp) = parts();
        for d in [device(false, true), device(true, true)] {
            for resp in [None, Some(&resp)] {
                let (bytes, value) = written(&d, "response", resp);
                assert_eq!(
                    serde_json::to_vec(&value).unwrap(),
                    bytes,
                    "the chain verifier would compute another MAC"
                );
            }
        }
    }

    #[test]
    fn every_field_in_vaults_shape_with_sensitive_strings_hashed() {
        let d = device(false, true);
        let (_, _, resp) = parts();
        let (_, e) = written(&d, "response", Some(&resp));
        let h = |s: &str| d.hash(s);
        let expected = json!({
            "time": e["time"],
            "type": "response",
            "auth": {
                "client_token": h("hvs.tok"),
                "accessor": h("acc-1"),
                "display_name": "token-app",
                "policies": ["default", "app"],
                "token_policies": ["default", "app"],
                "metadata": { "team": "x" },
                "entity_id": "ent-1",
                "token_type": "service",
                "token_ttl": 3600,
                "token_issue_time": "1970-01-01T00:00:00Z",
            },
            "request": {
                "id": "req-1",
                "operation": "update",
                "mount_point": "secret/",
                "mount_type": "kv",
                "mount_accessor": "kv_1",
                "client_token": h("hvs.tok"),
                "client_token_accessor": h("acc-1"),
                "namespace": { "id": "root" },
                "path": "secret/data/app",
                "data": {
                    "password": h("p"),
                    "nested": { "list": [h("a"), 1, true], "keep": "k\"\t" },
                    "n\\": 1.5,
                },
                "remote_address": "10.0.0.1",
                "wrap_ttl": 60,
            },
            "response": {
                "mount_point": "secret/",
                "mount_type": "kv",
                "data": { "version": 3, "value": h("v"), "deep": [{ "version": "h" }] },
                "auth": {
                    "client_token": h("hvs.new"),
                    "accessor": h("acc-2"),
                    "policies": ["default"],
                    "token_policies": ["default"],
                    "metadata": null,
                    "entity_id": "ent-2",
                    "token_type": "service",
                    "token_ttl": 60,
                },
                "wrap_info": { "token": h("hvs.wrap"), "accessor": h("acc-w"), "ttl": 60 },
                "secret": { "lease_id": "secret/lease/1" },
                "warnings": ["careful"],
            },
            "error": "boom",
        });
        // The same keys in the same order (serde_json keeps insertion order here).
        assert_eq!(e.to_string(), expected.to_string());
    }

    #[test]
    fn log_raw_and_hmac_accessor_off_keep_what_they_name_raw() {
        let (_, _, resp) = parts();
        let (_, raw) = written(&device(true, true), "response", Some(&resp));
        assert_eq!(raw["request"]["client_token"], "hvs.tok");
        assert_eq!(raw["request"]["data"]["password"], "p");
        assert_eq!(raw["response"]["auth"]["accessor"], "acc-2");
        let d = device(false, false);
        let (_, e) = written(&d, "request", None);
        assert_eq!(e["request"]["client_token"], d.hash("hvs.tok"));
        assert_eq!(e["request"]["client_token_accessor"], "acc-1");
        assert_eq!(e["auth"]["accessor"], "acc-1");
        assert!(
            e.get("response").is_none(),
            "a request entry has no response"
        );
    }

    #[test]
    fn token_hashes_are_made_once_per_token_entry_or_request() {
        let d = Arc::new(device(false, true));
        let (req, ctx, _) = parts();
        let devices = vec![d.clone()];
        let first = tokens(&d, &devices, &req, &ctx);
        assert!(matches!(first, Cow::Borrowed(_)));
        assert_eq!(first.request_token, d.hash("hvs.tok"));
        assert_eq!(first.accessor, d.hash("acc-1"));
        let again = tokens(&d, &devices, &req, &ctx);
        assert!(std::ptr::eq(&*first, &*again), "made twice");
        // The next request of the same token (the same cached entry) reuses them too.
        let next_ctx = ctx.clone();
        let next = tokens(&d, &devices, &req, &next_ctx);
        assert!(
            std::ptr::eq(&*first, &*next),
            "made again for the next request"
        );

        // A request that carries another token than its caller's keeps its own, per request.
        let other_req = req.clone().with_token("hvs.other");
        let own = tokens(&d, &devices, &other_req, &ctx);
        assert!(matches!(own, Cow::Borrowed(_)));
        assert_eq!(own.request_token, d.hash("hvs.other"));
        assert_eq!(own.caller_token, d.hash("hvs.tok"));
        assert!(!std::ptr::eq(&*first, &*own));

        // A device enabled after them gets its own.
        let other = Device {
            id: 8,
            ..device(false, false)
        };
        let late = tokens(&other, &devices, &req, &ctx);
        assert!(matches!(late, Cow::Owned(_)));
        assert_eq!(late.accessor, "acc-1");
    }
}
