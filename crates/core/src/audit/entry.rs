//! One audit entry, written straight into its line's bytes in Vault's shape: borrowed parts of
//! the request, the caller and the response, serialized once, each sensitive string HMAC'd as
//! it is written (into a stack buffer), no intermediate `serde_json::Value` tree and no copy of
//! the request or response data.
//!
//! The bytes are what `serde_json` writes for the same keys in the same order, so the chain
//! verifier, which parses a line and serializes it again, recomputes the same MAC
//! (`the_bytes_are_serde_jsons_own_form` checks it).
//!
//! The token and accessor HMACs, needed by both the request and the response entry (twice in
//! each), are made once per request and device ([`TokenHashes`]).

use super::{Context, Device};
use crate::logical::{Data, Request, Response};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
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

/// [`Tokens`] per device, made by a request's first entry and reused by its second. A cache:
/// a cloned context starts without it.
#[derive(Default)]
pub struct TokenHashes(OnceLock<Vec<Tokens>>);

impl Clone for TokenHashes {
    fn clone(&self) -> Self {
        TokenHashes::default()
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

/// The tokens of `req` as `d` logs them: from the request's cache when its first entry made
/// them for this device (it may have been enabled in between).
pub(super) fn tokens<'c>(
    d: &Device,
    devices: &[std::sync::Arc<Device>],
    req: &Request,
    ctx: &'c Context,
) -> Cow<'c, Tokens> {
    let all = ctx
        .token_hashes
        .0
        .get_or_init(|| devices.iter().map(|d| Tokens::of(d, req, ctx)).collect());
    match all.iter().find(|t| t.device == d.id) {
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

/// Appends the entry's JSON to `out`.
pub(super) fn write(
    out: &mut Vec<u8>,
    d: &Device,
    tokens: &Tokens,
    record: &Record,
) -> serde_json::Result<()> {
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
    let skip_request = mount.map_or(no_keys, |m| &m.config.audit_non_hmac_request_keys);
    let skip_response = mount.map_or(no_keys, |m| &m.config.audit_non_hmac_response_keys);
    let hasher = (!d.log_raw).then_some(d);
    let entry = Entry {
        time: crate::util::now_rfc3339(),
        kind,
        auth: ctx.caller.as_ref().map(|c| CallerAuth {
            client_token: &tokens.caller_token,
            accessor: &tokens.accessor,
            display_name: &c.entry.display_name,
            policies: &c.entry.policies,
            token_policies: &c.entry.policies,
            metadata: &c.entry.meta,
            entity_id: &c.entry.entity_id,
            token_type: c.entry.type_name(),
            token_ttl: c.entry.creation_ttl,
            token_issue_time: crate::util::rfc3339(c.entry.creation_time),
        }),
        request: RequestPart {
            id: &req.id,
            operation: req.operation.as_str(),
            mount_point: &mount_point,
            mount_type,
            mount_accessor: mount.map_or("", |m| m.accessor.as_str()),
            client_token: &tokens.request_token,
            client_token_accessor: &tokens.accessor,
            namespace: Namespace { id: "root" },
            path: &req.path,
            data: (!req.data.is_empty()).then_some(Strings {
                map: &req.data,
                how: Hashing {
                    hasher,
                    skip: skip_request,
                },
            }),
            remote_address: req.remote_addr.as_deref().unwrap_or(""),
            wrap_ttl: req.wrap_ttl.map(|t| t.as_secs()),
        },
        response: (kind == "response").then(|| ResponsePart {
            mount_point: &mount_point,
            mount_type,
            data: resp.and_then(|r| r.data.as_ref()).map(|map| Strings {
                map,
                how: Hashing {
                    hasher,
                    skip: skip_response,
                },
            }),
            auth: resp.and_then(|r| r.auth.as_deref()).map(|a| ResponseAuth {
                client_token: d.logged_token(&a.client_token),
                accessor: d.logged_accessor(&a.accessor),
                policies: &a.policies,
                token_policies: &a.token_policies,
                metadata: &a.metadata,
                entity_id: &a.entity_id,
                token_type: &a.token_type,
                token_ttl: a.lease_duration,
            }),
            wrap_info: resp
                .and_then(|r| r.wrap_info.as_ref())
                .map(|w| wrap_info(d, w)),
            secret: resp.and_then(|r| r.lease.as_deref()).map(|l| Secret {
                lease_id: &l.lease_id,
            }),
            warnings: resp
                .map(|r| r.warnings.as_slice())
                .filter(|w| !w.is_empty()),
        }),
        error,
    };
    serde_json::to_writer(out, &entry)
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

#[derive(Serialize)]
struct Entry<'a> {
    time: String,
    #[serde(rename = "type")]
    kind: &'a str,
    auth: Option<CallerAuth<'a>>,
    request: RequestPart<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ResponsePart<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct CallerAuth<'a> {
    client_token: &'a str,
    accessor: &'a str,
    display_name: &'a str,
    policies: &'a [String],
    token_policies: &'a [String],
    metadata: &'a BTreeMap<String, String>,
    entity_id: &'a str,
    token_type: &'a str,
    token_ttl: u64,
    token_issue_time: String,
}

#[derive(Serialize)]
struct RequestPart<'a> {
    id: &'a str,
    operation: &'a str,
    mount_point: &'a str,
    mount_type: &'a str,
    mount_accessor: &'a str,
    client_token: &'a str,
    client_token_accessor: &'a str,
    namespace: Namespace,
    path: &'a str,
    data: Option<Strings<'a>>,
    remote_address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    wrap_ttl: Option<u64>,
}

#[derive(Serialize)]
struct Namespace {
    id: &'static str,
}

#[derive(Serialize)]
struct ResponsePart<'a> {
    mount_point: &'a str,
    mount_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Strings<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<ResponseAuth<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wrap_info: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<Secret<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

#[derive(Serialize)]
struct ResponseAuth<'a> {
    client_token: String,
    accessor: String,
    policies: &'a [String],
    token_policies: &'a [String],
    metadata: &'a Option<BTreeMap<String, String>>,
    entity_id: &'a str,
    token_type: &'a str,
    token_ttl: u64,
}

#[derive(Serialize)]
struct Secret<'a> {
    lease_id: &'a str,
}

/// How data is logged: every string at any depth HMAC'd as it is written, except under the
/// mount's non-HMAC keys; all of it raw without a hasher (`log_raw`).
#[derive(Clone, Copy)]
struct Hashing<'a> {
    hasher: Option<&'a Device>,
    skip: &'a [String],
}

/// Request or response data, as [`Hashing`] says.
struct Strings<'a> {
    map: &'a Data,
    how: Hashing<'a>,
}

impl Serialize for Strings<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.map.len()))?;
        for (k, v) in self.map {
            if self.how.skip.contains(k) {
                m.serialize_entry(k, v)?;
            } else {
                m.serialize_entry(k, &Hashed { v, how: self.how })?;
            }
        }
        m.end()
    }
}

/// One value of the data, as [`Hashing`] says.
struct Hashed<'a> {
    v: &'a Value,
    how: Hashing<'a>,
}

impl Serialize for Hashed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(d) = self.how.hasher else {
            return self.v.serialize(s);
        };
        match self.v {
            Value::String(x) => {
                let mut buf = [0u8; HASH_LEN];
                s.serialize_str(d.hash_into(x, &mut buf))
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Hashed { v, how: self.how })?;
                }
                seq.end()
            }
            Value::Object(map) => Strings { map, how: self.how }.serialize(s),
            other => other.serialize(s),
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
            writer: super::super::writer::Writer::start("test", Box::new(Discard), None).unwrap(),
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
            json!({ "password": "p", "nested": { "list": ["a", 1, true], "keep": "k" }, "n": 1.5 })
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
        write(&mut out, d, &tokens, &record).unwrap();
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
                    "nested": { "list": [h("a"), 1, true], "keep": "k" },
                    "n": 1.5,
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
    fn the_response_entry_reuses_the_request_entrys_token_hashes() {
        let d = Arc::new(device(false, true));
        let (req, ctx, _) = parts();
        let devices = vec![d.clone()];
        let first = tokens(&d, &devices, &req, &ctx);
        assert!(matches!(first, Cow::Borrowed(_)));
        assert_eq!(first.request_token, d.hash("hvs.tok"));
        let again = tokens(&d, &devices, &req, &ctx);
        assert!(std::ptr::eq(&*first, &*again), "made twice");
        // A device the first entry did not know gets its own.
        let other = Device {
            id: 8,
            ..device(false, false)
        };
        let late = tokens(&other, &devices, &req, &ctx);
        assert!(matches!(late, Cow::Owned(_)));
        assert_eq!(late.accessor, "acc-1");
    }
}
