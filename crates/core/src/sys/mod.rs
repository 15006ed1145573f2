//! The `sys/` backend: mounts and auth methods, policies, capabilities, key rotation, sealing
//! and the UI mount lookups clients use before every KV call. The seal API (init, unseal,
//! health ...) is in [`seal`], because it must answer while sealed.

pub mod audit;
pub mod generate_root;
pub mod leases;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod password_policies;
pub mod plugins;
pub mod quotas;
pub mod seal;
pub mod snapshot;
pub mod wrapping;

use crate::core::Core;
use crate::error::{Error, Result};
use crate::framework::{parse_duration, Call, Field, Path, PathBackend};
use crate::logical::{Operation::*, Response};
use crate::mount::{MountConfig, MountEntry};
use crate::ttl::TtlLimits;
use crate::util::random_alnum;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Weak};

pub struct Sys {
    core: Weak<Core>,
}

impl Sys {
    fn core(&self) -> Result<Arc<Core>> {
        self.core.upgrade().ok_or(Error::Sealed)
    }
}

fn mount_fields(p: Path<Sys>) -> Path<Sys> {
    p.field("type", Field::string("engine or auth method type"))
        .field("description", Field::string("human-friendly description"))
        .field("config", Field::map("mount configuration"))
        .field("options", Field::map("engine options (e.g. version)"))
        .field("local", Field::bool("local mount"))
        .field("seal_wrap", Field::bool("seal wrapping"))
        .field("external_entropy_access", Field::bool("external entropy"))
        .field("plugin_name", Field::string("deprecated alias of type"))
        .field("plugin_version", Field::string("plugin version"))
}

fn tune_fields(p: Path<Sys>) -> Path<Sys> {
    p.field(
        "default_lease_ttl",
        Field::raw("default lease TTL, or \"system\""),
    )
    .field("max_lease_ttl", Field::raw("max lease TTL, or \"system\""))
    .field("description", Field::string("description"))
    .field("options", Field::map("engine options"))
    .field("listing_visibility", Field::string("unauth or hidden"))
    .field("audit_non_hmac_request_keys", Field::list(""))
    .field("audit_non_hmac_response_keys", Field::list(""))
    .field("passthrough_request_headers", Field::list(""))
    .field("allowed_response_headers", Field::list(""))
    .field("token_type", Field::string(""))
    .field("force_no_cache", Field::bool(""))
}

/// `sys/rotate/config` (Vault's name) and `sys/rotate/keyring/config` (OpenBao's).
fn rotation_config_path(pattern: &str) -> Path<Sys> {
    Path::new(pattern)
        .field(
            "max_operations",
            Field::int("rotate after this many encryptions with one term"),
        )
        .field(
            "interval",
            Field::duration("rotate once a term is this old (at least 24h; 0: never)"),
        )
        .field("enabled", Field::bool("whether automatic rotation is on"))
        .op(Read, Sys::rotation_config)
        .op(Update, Sys::set_rotation_config)
        .help("Automatic barrier key rotation, by encryption count and by age.")
}

pub fn backend(core: Weak<Core>) -> PathBackend<Sys> {
    let mount_path = |table: &'static str, prefix: &'static str| {
        mount_fields(Path::new(&format!("{prefix}/(?P<path>.+?)/?")))
            .op(Update, move |s: Arc<Sys>, c| async move {
                s.enable(table, c).await
            })
            .op(Delete, move |s: Arc<Sys>, c| async move {
                s.disable(table, c).await
            })
            .op(Read, move |s: Arc<Sys>, c| async move {
                s.read_mount(table, c).await
            })
    };
    // As Vault, `sys/mounts/auth/<path>/tune` tunes the auth method at `<path>`.
    let tune_path = |table: &'static str, prefix: &'static str| {
        tune_fields(Path::new(&format!("{prefix}/(?P<path>.+)/tune")))
            .op(Read, move |s: Arc<Sys>, c| async move {
                let (table, path) = tune_target(table, c.fields.str("path"));
                s.read_tune(table, &path).await
            })
            .op(Update, move |s: Arc<Sys>, c| async move {
                let (table, path) = tune_target(table, c.fields.str("path"));
                s.write_tune(table, &path, c).await
            })
    };
    let mut paths = vec![
        Path::new("remount")
            .field("from", Field::string("current mount path"))
            .field("to", Field::string("new mount path"))
            .op(Update, Sys::remount)
            .help("Move a mount to a new path, keeping its data."),
        Path::new("remount/status/(?P<migration_id>.+)")
            .op(Read, Sys::remount_status)
            .help("The outcome of a move (moves complete before sys/remount answers)."),
        Path::new("mounts")
            .op(
                Read,
                |s: Arc<Sys>, _c| async move { s.list_mounts("mounts") },
            )
            .help("List mounted secrets engines."),
        tune_path("mounts", "mounts").help("Read or tune a secrets engine's settings."),
        mount_path("mounts", "mounts").help("Enable, disable or read a secrets engine."),
        Path::new("auth")
            .op(Read, |s: Arc<Sys>, _c| async move { s.list_mounts("auth") })
            .help("List enabled auth methods."),
        tune_path("auth", "auth").help("Read or tune an auth method's settings."),
        mount_path("auth", "auth").help("Enable, disable or read an auth method."),
        Path::new("policy/?")
            .op(Read, Sys::list_policies_legacy)
            .op(List, Sys::list_policies_legacy)
            .help("List ACL policies."),
        Path::new("policy/(?P<name>.+)")
            .field("policy", Field::string("policy text"))
            .field("rules", Field::string("policy text (legacy)"))
            .op(Read, Sys::read_policy_legacy)
            .op(Update, Sys::write_policy)
            .op(Delete, Sys::delete_policy)
            .help("Read, write or delete an ACL policy (legacy path)."),
        Path::new("policies/acl/?")
            .op(List, Sys::list_policies)
            .op(Read, Sys::list_policies)
            .help("List ACL policies."),
        Path::new("policies/acl/(?P<name>.+)")
            .field("policy", Field::string("policy text (HCL or JSON)"))
            .op(Read, Sys::read_policy)
            .op(Update, Sys::write_policy)
            .op(Delete, Sys::delete_policy)
            .help("Read, write or delete an ACL policy."),
        Path::new("capabilities")
            .field("token", Field::string("token"))
            .field("path", Field::list("path"))
            .field("paths", Field::list("paths"))
            .op(Update, Sys::capabilities)
            .help("The capabilities a token has on paths."),
        Path::new("capabilities-self")
            .field("token", Field::string("ignored"))
            .field("path", Field::list("path"))
            .field("paths", Field::list("paths"))
            .op(Update, Sys::capabilities)
            .help("The capabilities of the calling token on paths."),
        Path::new("capabilities-accessor")
            .field("accessor", Field::string("accessor"))
            .field("path", Field::list("path"))
            .field("paths", Field::list("paths"))
            .op(Update, Sys::capabilities)
            .help("The capabilities of the token with this accessor on paths."),
        Path::new("rotate")
            .op(Update, Sys::rotate)
            .help("Add a new barrier key term."),
        Path::new("rotate/keyring")
            .op(Update, Sys::rotate)
            .help("Add a new barrier key term (OpenBao's name for sys/rotate)."),
        rotation_config_path("rotate/config"),
        rotation_config_path("rotate/keyring/config"),
        Path::new("key-status")
            .op(Read, Sys::key_status)
            .help("The active barrier key term."),
        Path::new("seal")
            .op(Update, Sys::seal)
            .help("Seal the server."),
        Path::new("ha-status")
            .op(Read, |s: Arc<Sys>, _c| async move {
                // Vault's clients read `nodes` at the top level; hvac reads `data`.
                Ok(Response {
                    data: s.core()?.ha_status().await?.as_object().cloned(),
                    top_level_data: true,
                    ..Default::default()
                })
            })
            .help("The nodes of an HA cluster and which one is active."),
        Path::new("step-down")
            .op(Update, |s: Arc<Sys>, _c| async move {
                s.core()?.step_down_now().await?;
                Ok(Response::default())
            })
            .help("Give up being the active node (HA): another node takes over; this one waits 10s before contending again."),
        Path::new("internal/specs/openapi")
            .op(Read, Sys::openapi)
            .help("The OpenAPI document of every mounted path, generated from their declarations."),
        Path::new("internal/ui/mounts")
            .op(Read, Sys::ui_mounts)
            .help("Mounts visible to the caller."),
        Path::new("internal/ui/mounts/(?P<path>.+)")
            .op(Read, Sys::ui_mount)
            .help("The mount that serves a path."),
        Path::new("internal/ui/resultant-acl")
            .op(Read, Sys::resultant_acl)
            .help("The caller's effective ACL: every policy of the token and its entity, merged."),
    ];
    paths.extend(wrapping::paths());
    paths.extend(leases::paths());
    paths.extend(audit::paths());
    paths.extend(password_policies::paths());
    paths.extend(operator::paths());
    paths.extend(snapshot::paths());
    paths.extend(generate_root::paths());
    paths.extend(metrics::paths());
    paths.extend(quotas::paths());
    paths.extend(plugins::paths());
    paths.extend(crate::tools::random_paths("tools/"));
    paths.extend(crate::tools::hash_paths("tools/"));
    PathBackend::new(Sys { core }, paths)
        .unauthenticated(&[
            "internal/ui/mounts",
            "internal/ui/mounts/*",
            "wrapping/lookup",
            "wrapping/unwrap",
            // Vault's: a threshold of unseal key shares is the authorization.
            "generate-root/attempt",
            "generate-root/update",
            "decode-token",
        ])
        .sudo(&[
            "rotate",
            "rotate/keyring",
            "seal",
            "step-down",
            "auth/*",
            "audit",
            "audit/*",
            "audit-chain-key/*",
            "raw",
            "raw/*",
            "remount",
            // Vault's: not `config/state/sanitized`, which `read` is enough for (as the
            // operator endpoints: sys/loggers, monitor, host-info, in-flight-req).
            "config/cors",
            "config/auditing/*",
            "config/ui/headers/*",
            "leases/revoke-prefix/*",
            "revoke-prefix/*",
            "revoke-force/*",
            "leases/lookup/*",
            "leases/revoke-force/*",
            "plugins/catalog/*",
            "storage/raft/snapshot",
            "storage/raft/snapshot-force",
        ])
        .help("The system backend: mounts, policies, seal and server control.")
}

/// Which mount table and path a tune path names: `sys/mounts/auth/x/tune` is the auth method
/// `x`, as in Vault.
fn tune_target(table: &'static str, path: &str) -> (&'static str, String) {
    match path.strip_prefix("auth/") {
        Some(rest) if table == "mounts" => ("auth", rest.to_string()),
        _ => (table, path.to_string()),
    }
}

/// `kv-v2` is `kv` with `options.version = 2`, as in Vault.
fn normalize_type(kind: &str, options: &mut Map<String, Value>) -> String {
    match kind {
        "kv-v2" => {
            options.insert("version".into(), json!("2"));
            "kv".into()
        }
        "kv-v1" | "generic" => {
            options.insert("version".into(), json!("1"));
            "kv".into()
        }
        k => k.to_string(),
    }
}

fn ttl_setting(v: &Value) -> Result<Option<u64>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s == "system" => Ok(Some(0)),
        v => parse_duration(v)
            .map(|d| Some(d.as_secs()))
            .ok_or_else(|| Error::bad("invalid duration")),
    }
}

/// A mount's own default lease TTL may not exceed its max: its own, else the system's.
/// A mount's `token_type` setting, checked as Vault does: auth mounts only (not the token
/// store), one of Vault's names; empty means `default-service`.
fn mount_token_type(m: &MountEntry, value: &str) -> Result<String> {
    if m.table != "auth" {
        return Err(Error::bad(
            "'token_type' can only be modified on auth mounts",
        ));
    }
    if m.kind == "token" {
        return Err(Error::bad(
            "'token_type' cannot be set for 'token' or 'ns_token' auth mounts",
        ));
    }
    match value {
        "" | "default-service" => Ok("default-service".into()),
        "default-batch" | "service" | "batch" => Ok(value.to_string()),
        _ => Err(Error::bad("invalid value for 'token_type'")),
    }
}

fn check_lease_ttls(config: &crate::mount::MountConfig, system: TtlLimits) -> Result<()> {
    let max = system.for_mount(config).max_ttl;
    if config.default_lease_ttl > 0 && max > 0 && config.default_lease_ttl > max {
        let whose = if config.max_lease_ttl > 0 {
            "the mount's"
        } else {
            "the system"
        };
        return Err(Error::bad(format!(
            "default lease TTL of {}s would be greater than {whose} max lease TTL of {max}s",
            config.default_lease_ttl
        )));
    }
    Ok(())
}

fn stringify_options(options: &mut Map<String, Value>) {
    for v in options.values_mut() {
        let s = match &*v {
            Value::String(_) => continue,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        *v = Value::String(s);
    }
}

impl Sys {
    fn list_mounts(&self, table: &str) -> Result<Response> {
        let mounts = self.core()?.mounts(table)?;
        let mut data = Map::new();
        for m in mounts {
            data.insert(m.path.clone(), m.to_json());
        }
        Ok(Response {
            data: Some(data),
            top_level_data: true,
            ..Default::default()
        })
    }

    async fn enable(self: Arc<Self>, table: &str, c: Call) -> Result<Response> {
        let f = &c.fields;
        let mut options = f.map("options");
        let mut kind = f.str("type").to_string();
        if kind.is_empty() {
            kind = f.str("plugin_name").to_string();
        }
        if kind.is_empty() {
            return Err(Error::bad("backend type must be specified as a string"));
        }
        let kind = normalize_type(&kind, &mut options);
        if kind == "kv" && !options.contains_key("version") {
            options.insert("version".into(), json!("1"));
        }
        stringify_options(&mut options);
        let cfg = f.map("config");
        let mut config = MountConfig::default();
        if let Some(v) = cfg.get("default_lease_ttl") {
            config.default_lease_ttl = ttl_setting(v)?.unwrap_or(0);
        }
        if let Some(v) = cfg.get("max_lease_ttl") {
            config.max_lease_ttl = ttl_setting(v)?.unwrap_or(0);
        }
        check_lease_ttls(&config, self.core()?.system_ttl_limits())?;
        config.force_no_cache = cfg
            .get("force_no_cache")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        config.listing_visibility = cfg
            .get("listing_visibility")
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty());
        let list = |k: &str| -> Vec<String> {
            cfg.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        config.audit_non_hmac_request_keys = list("audit_non_hmac_request_keys");
        config.audit_non_hmac_response_keys = list("audit_non_hmac_response_keys");
        config.passthrough_request_headers = list("passthrough_request_headers");
        config.allowed_response_headers = list("allowed_response_headers");
        let path = c.fields.str("path").to_string();
        if path.is_empty() {
            return Err(Error::bad("missing mount path"));
        }
        let mut entry = MountEntry {
            path: format!("{}/", path.trim_end_matches('/')),
            accessor: format!(
                "{}_{}",
                kind.replace('-', "_"),
                random_alnum(8).to_lowercase()
            ),
            kind,
            description: f.str("description").to_string(),
            uuid: crate::util::uuid(),
            config,
            options,
            local: f.bool("local"),
            seal_wrap: f.bool("seal_wrap"),
            external_entropy_access: f.bool("external_entropy_access"),
            table: table.to_string(),
        };
        if table == "auth" && entry.kind == "token" {
            return Err(Error::bad(
                "token credential backend cannot be instantiated",
            ));
        }
        if let Some(t) = cfg.get("token_type") {
            let t = t.as_str().unwrap_or_default();
            entry.config.token_type = Some(mount_token_type(&entry, t)?);
        }
        self.core()?.mount(entry).await?;
        Ok(Response::default())
    }

    async fn remount(self: Arc<Self>, c: Call) -> Result<Response> {
        let (from, to) = (c.fields.str("from"), c.fields.str("to"));
        if from.is_empty() || to.is_empty() {
            return Err(Error::bad("both 'from' and 'to' must be given"));
        }
        let core = self.core()?;
        let start_time = crate::util::now_rfc3339();
        core.remount(from, to).await?;
        let migration_id = crate::util::uuid();
        // Vault moves a mount in the background and reports its progress here; Tresor's
        // move is done when `sys/remount` answers, so its record says so at once.
        let info = json!({
            "source_mount": format!("{}/", from.trim_matches('/')),
            "target_mount": format!("{}/", to.trim_matches('/')),
            "status": "success",
            "start_time": start_time,
            "end_time": crate::util::now_rfc3339(),
        });
        let mut moves = core.remounts.lock();
        if moves.len() >= 100 {
            moves.pop_front();
        }
        moves.push_back((migration_id.clone(), info));
        Ok(Response::data(json!({ "migration_id": migration_id })))
    }

    async fn remount_status(self: Arc<Self>, c: Call) -> Result<Response> {
        let id = c.fields.str("migration_id");
        let core = self.core()?;
        let moves = core.remounts.lock();
        let (_, info) = moves
            .iter()
            .find(|(m, _)| m == id)
            .ok_or_else(|| Error::NotFoundMsg(format!("no migration with id {id:?}")))?;
        Ok(Response::data(
            json!({ "migration_id": id, "migration_info": info }),
        ))
    }

    async fn disable(self: Arc<Self>, table: &str, c: Call) -> Result<Response> {
        self.core()?.unmount(table, c.fields.str("path")).await?;
        Ok(Response::default())
    }

    fn find_mount(&self, table: &str, path: &str) -> Result<MountEntry> {
        let want = format!("{}/", path.trim_end_matches('/'));
        self.core()?
            .mounts(table)?
            .into_iter()
            .find(|m| m.path == want)
            .ok_or_else(|| Error::bad(format!("no mount at {want:?}")))
    }

    async fn read_mount(self: Arc<Self>, table: &str, c: Call) -> Result<Response> {
        let m = self.find_mount(table, c.fields.str("path"))?;
        Ok(Response {
            data: m.to_json().as_object().cloned(),
            top_level_data: true,
            ..Default::default()
        })
    }

    async fn read_tune(self: Arc<Self>, table: &str, path: &str) -> Result<Response> {
        let core = self.core()?;
        let m = self.find_mount(table, path)?;
        let or_sys = |v: u64, sys: u64| if v == 0 { sys } else { v };
        let mut data = json!({
            "default_lease_ttl": or_sys(m.config.default_lease_ttl, core.config.default_lease_ttl),
            "max_lease_ttl": or_sys(m.config.max_lease_ttl, core.config.max_lease_ttl),
            "force_no_cache": m.config.force_no_cache,
            "description": m.description,
        });
        let d = data.as_object_mut().expect("object");
        if !m.options.is_empty() {
            d.insert("options".into(), Value::Object(m.options.clone()));
        }
        if let Some(v) = &m.config.listing_visibility {
            d.insert("listing_visibility".into(), json!(v));
        }
        for (k, v) in [
            (
                "audit_non_hmac_request_keys",
                &m.config.audit_non_hmac_request_keys,
            ),
            (
                "audit_non_hmac_response_keys",
                &m.config.audit_non_hmac_response_keys,
            ),
            (
                "passthrough_request_headers",
                &m.config.passthrough_request_headers,
            ),
            (
                "allowed_response_headers",
                &m.config.allowed_response_headers,
            ),
        ] {
            if !v.is_empty() {
                d.insert(k.into(), json!(v));
            }
        }
        if table == "auth" {
            d.insert(
                "token_type".into(),
                json!(m
                    .config
                    .token_type
                    .clone()
                    .unwrap_or_else(|| "default-service".into())),
            );
        }
        Ok(Response {
            data: Some(d.clone()),
            top_level_data: true,
            ..Default::default()
        })
    }

    async fn write_tune(self: Arc<Self>, table: &str, path: &str, c: Call) -> Result<Response> {
        let core = self.core()?;
        let f = c.fields.clone();
        let limits = core.system_ttl_limits();
        core.tune(table, path, |m| {
            if let Some(v) = ttl_setting(f.get("default_lease_ttl"))? {
                m.config.default_lease_ttl = v;
            }
            if let Some(v) = ttl_setting(f.get("max_lease_ttl"))? {
                m.config.max_lease_ttl = v;
            }
            check_lease_ttls(&m.config, limits)?;
            if f.has("description") {
                m.description = f.str("description").to_string();
            }
            if f.has("options") {
                let mut opts = f.map("options");
                stringify_options(&mut opts);
                if m.kind == "kv" {
                    if let Some(Value::String(v)) = opts.get("version") {
                        let cur = m
                            .options
                            .get("version")
                            .and_then(Value::as_str)
                            .unwrap_or("1");
                        if v.as_str() < cur {
                            return Err(Error::bad("cannot downgrade mount from version 2"));
                        }
                    }
                }
                for (k, v) in opts {
                    m.options.insert(k, v);
                }
            }
            if f.has("listing_visibility") {
                m.config.listing_visibility =
                    Some(f.str("listing_visibility").to_string()).filter(|s| !s.is_empty());
            }
            if f.has("audit_non_hmac_request_keys") {
                m.config.audit_non_hmac_request_keys = f.strings("audit_non_hmac_request_keys");
            }
            if f.has("audit_non_hmac_response_keys") {
                m.config.audit_non_hmac_response_keys = f.strings("audit_non_hmac_response_keys");
            }
            if f.has("passthrough_request_headers") {
                m.config.passthrough_request_headers = f.strings("passthrough_request_headers");
            }
            if f.has("allowed_response_headers") {
                m.config.allowed_response_headers = f.strings("allowed_response_headers");
            }
            if f.has("token_type") {
                m.config.token_type = Some(mount_token_type(m, f.str("token_type"))?);
            }
            if f.has("force_no_cache") {
                m.config.force_no_cache = f.bool("force_no_cache");
            }
            Ok(())
        })
        .await?;
        Ok(Response::default())
    }

    async fn list_policies_legacy(self: Arc<Self>, _c: Call) -> Result<Response> {
        let names = self.core()?.active()?.policies.list().await?;
        Ok(Response {
            data: Some(
                json!({ "policies": names, "keys": names })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            top_level_data: true,
            ..Default::default()
        })
    }

    async fn list_policies(self: Arc<Self>, _c: Call) -> Result<Response> {
        let names = self.core()?.active()?.policies.list().await?;
        Ok(Response::data(json!({ "keys": names, "policies": names })))
    }

    async fn read_policy_legacy(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_lowercase();
        let raw = self
            .core()?
            .active()?
            .policies
            .raw(&name)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response {
            data: json!({ "name": name, "rules": raw }).as_object().cloned(),
            top_level_data: true,
            ..Default::default()
        })
    }

    async fn read_policy(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name").to_lowercase();
        let raw = self
            .core()?
            .active()?
            .policies
            .raw(&name)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Response::data(json!({ "name": name, "policy": raw })))
    }

    async fn write_policy(self: Arc<Self>, c: Call) -> Result<Response> {
        let text = if c.fields.has("policy") {
            c.fields.str("policy")
        } else {
            c.fields.str("rules")
        };
        if text.trim().is_empty() && !c.fields.has("policy") && !c.fields.has("rules") {
            return Err(Error::bad("'policy' parameter not supplied or empty"));
        }
        // Vault accepts the policy text base64-encoded too.
        let decoded = base64_policy(text);
        self.core()?
            .active()?
            .policies
            .put(c.fields.str("name"), decoded.as_deref().unwrap_or(text))
            .await?;
        Ok(Response::default())
    }

    async fn delete_policy(self: Arc<Self>, c: Call) -> Result<Response> {
        self.core()?
            .active()?
            .policies
            .delete(c.fields.str("name"))
            .await?;
        Ok(Response::default())
    }

    async fn capabilities(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let active = core.active_or_standby()?;
        let mut paths = c.fields.strings("paths");
        paths.extend(c.fields.strings("path"));
        if paths.is_empty() {
            return Err(Error::bad("missing paths"));
        }
        let acl = if c.path == "capabilities-accessor" {
            let e = active
                .tokens
                .lookup_accessor(c.fields.str("accessor"))
                .await?
                .ok_or_else(|| Error::bad("invalid accessor"))?;
            core.acl_for(&e).await?
        } else if c.path == "capabilities" {
            let token = c.fields.str("token");
            let e = active
                .tokens
                .lookup(token)
                .await?
                .ok_or_else(|| Error::bad("invalid token"))?;
            core.acl_for(&e).await?
        } else {
            c.caller
                .as_ref()
                .ok_or(Error::PermissionDenied)?
                .acl
                .clone()
        };
        let mut data = Map::new();
        let mut all: Vec<String> = Vec::new();
        for p in &paths {
            let caps = acl.capabilities(p.trim_start_matches('/'));
            all.extend(caps.clone());
            data.insert(p.clone(), json!(caps));
        }
        if paths.len() == 1 {
            all.sort();
            all.dedup();
            data.insert("capabilities".into(), json!(all));
        }
        Ok(Response {
            data: Some(data),
            top_level_data: true,
            ..Default::default()
        })
    }

    async fn rotate(self: Arc<Self>, _c: Call) -> Result<Response> {
        self.core()?.barrier.rotate().await?;
        Ok(Response::default())
    }

    async fn rotation_config(self: Arc<Self>, _c: Call) -> Result<Response> {
        let cfg = self.core()?.barrier.rotation_config()?;
        let interval = if cfg.interval_secs > 0 {
            json!(crate::util::go_duration(cfg.interval_secs))
        } else {
            json!(0)
        };
        Ok(Response::data(json!({
            "max_operations": cfg.max_operations,
            "interval": interval,
            "enabled": cfg.enabled,
        })))
    }

    async fn set_rotation_config(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let mut cfg = core.barrier.rotation_config()?;
        if c.fields.has("max_operations") {
            cfg.max_operations = u64::try_from(c.fields.int("max_operations"))
                .map_err(|_| Error::bad("max_operations must not be negative"))?;
        }
        if c.fields.has("interval") {
            cfg.interval_secs = c.fields.duration("interval").as_secs();
        }
        if c.fields.has("enabled") {
            cfg.enabled = c.fields.bool("enabled");
        }
        core.barrier.set_rotation_config(cfg).await?;
        Ok(Response::default())
    }

    async fn key_status(self: Arc<Self>, _c: Call) -> Result<Response> {
        let (term, install_time, encryptions) = self.core()?.barrier.key_status()?;
        Ok(Response {
            data: json!({ "term": term, "install_time": install_time, "encryptions": encryptions })
                .as_object()
                .cloned(),
            top_level_data: true,
            ..Default::default()
        })
    }

    async fn seal(self: Arc<Self>, _c: Call) -> Result<Response> {
        self.core()?.seal_now();
        Ok(Response::default())
    }

    /// The mounts the caller can reach (Vault's `hasMountAccess`), plus those tuned to
    /// `listing_visibility = "unauth"`; without a token only the latter, and only their type,
    /// description and options.
    async fn ui_mounts(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let pick = |table: &str| -> Result<Map<String, Value>> {
            Ok(core
                .mounts(table)?
                .into_iter()
                .filter_map(|m| {
                    let listed = m.config.listing_visibility.as_deref() == Some("unauth");
                    match &c.caller {
                        Some(caller) if listed || caller.acl.has_mount_access(&m.route_prefix()) => {
                            Some((m.path.clone(), m.to_json()))
                        }
                        Some(_) => None,
                        None if listed => Some((
                            m.path.clone(),
                            json!({ "type": m.kind, "description": m.description, "options": m.options }),
                        )),
                        None => None,
                    }
                })
                .collect())
        };
        Ok(Response::data(
            json!({ "secret": pick("mounts")?, "auth": pick("auth")? }),
        ))
    }

    /// `sys/internal/ui/resultant-acl`: what the caller's policies grant, merged (the UI hides
    /// what the token may not do).
    async fn resultant_acl(self: Arc<Self>, c: Call) -> Result<Response> {
        let caller = c.caller.as_ref().ok_or(Error::PermissionDenied)?;
        Ok(Response::data(caller.acl.resultant_acl()))
    }

    async fn ui_mount(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let caller = c.caller.as_ref().ok_or(Error::PermissionDenied)?;
        let path = c.fields.str("path").trim_start_matches('/').to_string();
        let active = core.active_or_standby()?;
        let route = {
            let router = active.router.read();
            router.route(&path).map(|(r, _)| r.entry.clone())
        };
        let m = route.ok_or_else(|| Error::bad(format!("no mount found for path {path:?}")))?;
        let prefix = m.route_prefix();
        if !caller.acl.has_mount_access(&prefix) {
            return Err(Error::Forbidden("preflight capability check returned 403, please ensure client's policies grant access to path".into()));
        }
        let mut j = m.to_json();
        let o = j.as_object_mut().expect("object");
        o.insert("path".into(), json!(prefix));
        Ok(Response::data(j))
    }
}

fn base64_policy(text: &str) -> Option<String> {
    use base64::Engine;
    let t = text.trim();
    if t.is_empty() || t.contains('{') || t.contains(' ') {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}
