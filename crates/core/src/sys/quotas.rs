//! `sys/quotas/rate-limit/:name` and `sys/quotas/config` (Vault CE's rate-limit quotas; the
//! limiting itself is [`crate::quotas`]).

use super::Sys;
use crate::error::{Error, Result};
use crate::framework::{Call, Field, Path};
use crate::logical::{Operation::*, Response};
use crate::quotas::RateLimit;
use serde_json::json;
use std::sync::Arc;

pub fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("quotas/config")
            .field(
                "enable_rate_limit_audit_logging",
                Field::bool("audit the requests a quota refuses"),
            )
            .field(
                "enable_rate_limit_response_headers",
                Field::bool("send X-Ratelimit-* headers"),
            )
            .field(
                "rate_limit_exempt_paths",
                Field::list("paths no quota applies to (a trailing * matches a prefix)"),
            )
            .field(
                "absolute_rate_limit_exempt_paths",
                Field::list("accepted; Tresor has no namespaces"),
            )
            .op(Read, Sys::quota_config)
            .op(Update, Sys::set_quota_config)
            .help("Settings of all rate-limit quotas."),
        Path::new("quotas/rate-limit/?")
            .op(List, |s: Arc<Sys>, _c| async move {
                Response::list_or_not_found(s.core()?.active_or_standby()?.quotas.names())
            })
            .help("The rate-limit quotas."),
        Path::new("quotas/rate-limit/(?P<name>[^/]+)")
            .field(
                "path",
                Field::string("a mount, or a path under one; empty: every request"),
            )
            .field("rate", Field::raw("requests allowed per interval (> 0)"))
            .field(
                "interval",
                Field::duration("the interval rate counts over (default 1s)"),
            )
            .field(
                "block_interval",
                Field::duration("how long a client over the limit is refused"),
            )
            .field(
                "role",
                Field::string(
                    "a login role of the auth mount path names (approle, jwt, kubernetes)",
                ),
            )
            .field("type", Field::string("rate-limit"))
            .field(
                "inheritable",
                Field::bool("accepted; Tresor has no namespaces"),
            )
            .op(Read, Sys::read_quota)
            .op(Update, Sys::write_quota)
            .op(Delete, Sys::delete_quota)
            .help("A rate-limit quota: rate requests per interval, per client address."),
    ]
}

fn quota_json(q: &RateLimit) -> serde_json::Value {
    json!({
        "name": q.name,
        "path": q.path,
        "role": q.role,
        "rate": q.rate,
        "interval": q.interval_secs,
        "block_interval": q.block_interval_secs,
        "type": "rate-limit",
        "inheritable": false,
    })
}

impl Sys {
    async fn quota_config(self: Arc<Self>, _c: Call) -> Result<Response> {
        let cfg = self.core()?.active_or_standby()?.quotas.config();
        let mut data = serde_json::to_value(&cfg)?;
        data["absolute_rate_limit_exempt_paths"] = json!([]);
        Ok(Response::data(data))
    }

    async fn set_quota_config(self: Arc<Self>, c: Call) -> Result<Response> {
        let active = self.core()?.active()?;
        let f = &c.fields;
        let mut cfg = active.quotas.config();
        if f.has("enable_rate_limit_audit_logging") {
            cfg.enable_rate_limit_audit_logging = f.bool("enable_rate_limit_audit_logging");
        }
        if f.has("enable_rate_limit_response_headers") {
            cfg.enable_rate_limit_response_headers = f.bool("enable_rate_limit_response_headers");
        }
        if f.has("rate_limit_exempt_paths") {
            cfg.rate_limit_exempt_paths = f.strings("rate_limit_exempt_paths");
        }
        active.quotas.set_config(cfg).await?;
        Ok(Response::default())
    }

    async fn read_quota(self: Arc<Self>, c: Call) -> Result<Response> {
        let name = c.fields.str("name");
        let q = self
            .core()?
            .active_or_standby()?
            .quotas
            .get(name)
            .ok_or(Error::NotFound)?;
        Ok(Response::data(quota_json(&q)))
    }

    async fn write_quota(self: Arc<Self>, c: Call) -> Result<Response> {
        let core = self.core()?;
        let active = core.active()?;
        let f = &c.fields;
        let name = f.str("name").to_string();
        let existing = active.quotas.get(&name);
        if !matches!(f.str("type"), "" | "rate-limit") {
            return Err(Error::bad("only rate-limit quotas are supported"));
        }
        let rate = match f.has("rate").then(|| f.get("rate")) {
            Some(v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| Error::bad("rate must be a number"))?,
            None => existing
                .as_ref()
                .map(|q| q.rate)
                .ok_or_else(|| Error::bad("missing rate"))?,
        };
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(Error::bad("'rate' is invalid: must be positive"));
        }
        let path = if f.has("path") {
            f.str("path").trim_start_matches('/').to_string()
        } else {
            existing
                .as_ref()
                .map(|q| q.path.clone())
                .unwrap_or_default()
        };
        // Role names are case-insensitive in every auth method that resolves them.
        let role = if f.has("role") {
            f.str("role").to_lowercase()
        } else {
            existing
                .as_ref()
                .map(|q| q.role.clone())
                .unwrap_or_default()
        };
        let path = if path.is_empty() {
            if !role.is_empty() {
                return Err(Error::bad(
                    "a quota with a role needs the path of an auth mount",
                ));
            }
            path
        } else {
            let router = active.router.read();
            let (route, rest) = router.route(&path).ok_or_else(|| {
                Error::bad(format!(
                    "invalid mount path {path:?}: no mount exists there"
                ))
            })?;
            let mount = route.prefix.clone();
            if !role.is_empty() {
                // Vault's checks, in its words.
                if !rest.trim_end_matches('/').is_empty() {
                    return Err(Error::bad("Quotas cannot contain both a path suffix and a role. If a role is provided, path must be a valid auth mount with a concept of roles"));
                }
                if route.entry.table != "auth" {
                    return Err(Error::bad(format!("Mount path {mount:?} is not a valid auth method and therefore unsuitable for use with role-based quotas")));
                }
                if !route.backend.resolves_roles() {
                    return Err(Error::bad(format!(
                        "Mount path {mount:?} does not support use with role-based quotas"
                    )));
                }
            }
            if rest.is_empty() {
                mount
            } else {
                path.trim_end_matches('/').to_string()
            }
        };
        if let Some(other) = active.quotas.same_factors(&name, &path, &role) {
            return Err(Error::bad(format!(
                "quota rule with similar properties exists under the name {other:?}"
            )));
        }
        let secs = |field: &str, default: u64| {
            if f.has(field) {
                f.duration(field).as_secs()
            } else {
                default
            }
        };
        let interval_secs =
            secs("interval", existing.as_ref().map_or(1, |q| q.interval_secs)).max(1);
        let block_interval_secs = secs(
            "block_interval",
            existing.as_ref().map_or(0, |q| q.block_interval_secs),
        );
        active
            .quotas
            .put(RateLimit {
                name,
                path,
                rate,
                interval_secs,
                block_interval_secs,
                role,
            })
            .await?;
        Ok(Response::default())
    }

    async fn delete_quota(self: Arc<Self>, c: Call) -> Result<Response> {
        let active = self.core()?.active()?;
        active.quotas.delete(c.fields.str("name")).await?;
        Ok(Response::default())
    }
}
