//! Rate-limit quotas (Vault CE's `sys/quotas/rate-limit/*` and `sys/quotas/config`).
//!
//! A quota allows `rate` requests per `interval` to a path: a mount (`secret/`), a path under
//! one (`secret/data/app`), or everything (an empty path, the global quota). A request counts
//! against the most specific quota whose path it falls under, separately for each client IP
//! address (as Vault: a token bucket per client). Past the limit the client gets 429 with
//! `Retry-After`; with `block_interval`, it is refused for that long after going over.
//!
//! A quota with a `role` (its path then names an auth mount) counts only the logins to that
//! mount that ask for that role, as the auth method names it ([`crate::framework::Backend::
//! resolve_role`]); it comes before every path quota. Only requests to a mount with such a quota
//! pay for resolving the role.
//!
//! The quotas live in the barrier (`core/quotas/`), so every node loads them with the
//! unsealed state (a standby rebuilds it when they change). The buckets are each node's own,
//! in memory, as in Vault. With no quota defined a request pays one read of an atomic flag.

use crate::barrier::View;
use crate::error::{Error, Result};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const QUOTAS: &str = "core/quotas/rate-limit/";
const CONFIG: &str = "core/quotas/config";
/// Clients remembered per quota before idle ones are dropped.
const BUCKETS_SWEEP_AT: usize = 10_000;

/// Vault's default `rate_limit_exempt_paths`: what an operator needs even when limited.
pub const DEFAULT_EXEMPT: [&str; 7] = [
    "sys/generate-recovery-token/attempt",
    "sys/generate-recovery-token/update",
    "sys/generate-root/attempt",
    "sys/generate-root/update",
    "sys/health",
    "sys/seal-status",
    "sys/unseal",
];

/// One stored quota.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RateLimit {
    pub name: String,
    /// A mount or a path under one (with its trailing `/` for a mount); empty: global.
    pub path: String,
    pub rate: f64,
    pub interval_secs: u64,
    pub block_interval_secs: u64,
    /// A login role of the auth mount `path` names; empty: every request under `path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
}

/// `sys/quotas/config`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuotaConfig {
    pub enable_rate_limit_audit_logging: bool,
    pub enable_rate_limit_response_headers: bool,
    pub rate_limit_exempt_paths: Vec<String>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            enable_rate_limit_audit_logging: false,
            enable_rate_limit_response_headers: false,
            rate_limit_exempt_paths: DEFAULT_EXEMPT.iter().map(|s| s.to_string()).collect(),
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

struct Limiter {
    quota: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// What a request is allowed, for the `X-Ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allowance {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
}

impl Limiter {
    /// Takes one request from `client`'s bucket, or says how long until it may ask again.
    fn take(&self, client: &str, now: Instant) -> std::result::Result<Allowance, u64> {
        let q = &self.quota;
        let capacity = q.rate.max(1.0);
        let per_sec = q.rate / q.interval_secs.max(1) as f64;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= BUCKETS_SWEEP_AT {
            let idle = Duration::from_secs(q.interval_secs.max(q.block_interval_secs).max(1) * 2);
            buckets.retain(|_, b| {
                now.duration_since(b.at) < idle || b.blocked_until.is_some_and(|u| u > now)
            });
        }
        let b = buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
            blocked_until: None,
        });
        if let Some(until) = b.blocked_until {
            if until > now {
                return Err(until.duration_since(now).as_secs().max(1));
            }
            b.blocked_until = None;
        }
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(capacity);
        b.at = now;
        if b.tokens < 1.0 {
            if q.block_interval_secs > 0 {
                b.blocked_until = Some(now + Duration::from_secs(q.block_interval_secs));
                return Err(q.block_interval_secs);
            }
            return Err(((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64);
        }
        b.tokens -= 1.0;
        Ok(Allowance {
            limit: capacity as u64,
            remaining: b.tokens.floor() as u64,
            reset: ((capacity - b.tokens) / per_sec).ceil() as u64,
        })
    }
}

/// The quotas of one unsealed state.
pub struct Quotas {
    view: View,
    any: AtomicBool,
    /// Whether some quota has a role.
    any_role: AtomicBool,
    /// Most specific first: longer paths before shorter, the global quota last.
    limiters: RwLock<Vec<Arc<Limiter>>>,
    config: RwLock<QuotaConfig>,
}

impl Quotas {
    /// The quotas stored under `root` (the whole barrier's view).
    pub async fn load(root: &View) -> Result<Quotas> {
        let q = Quotas {
            view: root.clone(),
            any: AtomicBool::new(false),
            any_role: AtomicBool::new(false),
            limiters: RwLock::new(Vec::new()),
            config: RwLock::new(root.get_json(CONFIG).await?.unwrap_or_default()),
        };
        let mut all = Vec::new();
        for name in root.list(QUOTAS).await? {
            if let Some(quota) = root
                .get_json::<RateLimit>(&format!("{QUOTAS}{name}"))
                .await?
            {
                all.push(quota);
            }
        }
        q.install(all);
        Ok(q)
    }

    fn install(&self, mut all: Vec<RateLimit>) {
        let old: HashMap<String, Arc<Limiter>> = self
            .limiters
            .read()
            .iter()
            .map(|l| (l.quota.name.clone(), l.clone()))
            .collect();
        // Role quotas first, then the longest paths.
        all.sort_by(|a, b| {
            (a.role.is_empty().cmp(&b.role.is_empty()))
                .then(b.path.len().cmp(&a.path.len()))
                .then(a.name.cmp(&b.name))
        });
        let limiters: Vec<Arc<Limiter>> = all
            .into_iter()
            .map(|quota| match old.get(&quota.name) {
                // Unchanged: its clients' buckets carry on.
                Some(l) if l.quota == quota => l.clone(),
                _ => Arc::new(Limiter {
                    quota,
                    buckets: Mutex::new(HashMap::new()),
                }),
            })
            .collect();
        self.any.store(!limiters.is_empty(), Ordering::Release);
        self.any_role.store(
            limiters.iter().any(|l| !l.quota.role.is_empty()),
            Ordering::Release,
        );
        *self.limiters.write() = limiters;
    }

    pub fn config(&self) -> QuotaConfig {
        self.config.read().clone()
    }

    /// Whether answers carry `X-Ratelimit-*` headers.
    pub fn response_headers(&self) -> bool {
        self.config.read().enable_rate_limit_response_headers
    }

    /// Whether the requests a quota refuses are audited.
    pub fn audit_refused(&self) -> bool {
        self.config.read().enable_rate_limit_audit_logging
    }

    pub async fn set_config(&self, config: QuotaConfig) -> Result<()> {
        self.view.put_json(CONFIG, &config).await?;
        *self.config.write() = config;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<RateLimit> {
        self.limiters
            .read()
            .iter()
            .find(|l| l.quota.name == name)
            .map(|l| l.quota.clone())
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .limiters
            .read()
            .iter()
            .map(|l| l.quota.name.clone())
            .collect();
        names.sort();
        names
    }

    pub async fn put(&self, quota: RateLimit) -> Result<()> {
        self.view
            .put_json(&format!("{QUOTAS}{}", quota.name), &quota)
            .await?;
        let mut all: Vec<RateLimit> = self
            .limiters
            .read()
            .iter()
            .map(|l| l.quota.clone())
            .collect();
        all.retain(|q| q.name != quota.name);
        all.push(quota);
        self.install(all);
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        self.view.delete(&format!("{QUOTAS}{name}")).await?;
        let all = self
            .limiters
            .read()
            .iter()
            .map(|l| l.quota.clone())
            .filter(|q| q.name != name)
            .collect();
        self.install(all);
        Ok(())
    }

    /// Whether a role quota covers requests to `path`: then the caller resolves the login's
    /// role and passes it to [`Quotas::check`].
    pub fn wants_role(&self, path: &str) -> bool {
        self.any_role.load(Ordering::Acquire)
            && self
                .limiters
                .read()
                .iter()
                .any(|l| !l.quota.role.is_empty() && covers(&l.quota.path, path))
    }

    /// A quota with these factors other than `name` (Vault refuses two quotas for the same
    /// requests).
    pub fn same_factors(&self, name: &str, path: &str, role: &str) -> Option<String> {
        self.limiters
            .read()
            .iter()
            .find(|l| l.quota.name != name && l.quota.path == path && l.quota.role == role)
            .map(|l| l.quota.name.clone())
    }

    /// Counts a request to `path` from `client` (its IP address), a login asking for `role`
    /// when the caller resolved one: `Ok(None)` when no quota applies, `Ok(Some(_))` what is
    /// left, or [`Error::RateLimited`].
    pub fn check(&self, path: &str, client: &str, role: Option<&str>) -> Result<Option<Allowance>> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(None);
        }
        if self
            .config
            .read()
            .rate_limit_exempt_paths
            .iter()
            .any(|p| exempt(p, path))
        {
            return Ok(None);
        }
        let limiter = self
            .limiters
            .read()
            .iter()
            .find(|l| {
                covers(&l.quota.path, path)
                    && (l.quota.role.is_empty() || Some(l.quota.role.as_str()) == role)
            })
            .cloned();
        let Some(limiter) = limiter else {
            return Ok(None);
        };
        match limiter.take(client, Instant::now()) {
            Ok(a) => Ok(Some(a)),
            Err(retry_after) => Err(Error::RateLimited {
                path: path.to_string(),
                retry_after,
            }),
        }
    }
}

/// Whether a quota on `quota_path` covers a request to `path` (`secret/` covers
/// `secret/data/x`; `secret/data/app` covers itself and below; empty covers everything).
fn covers(quota_path: &str, path: &str) -> bool {
    if quota_path.is_empty() {
        return true;
    }
    match path.strip_prefix(quota_path) {
        Some(rest) => quota_path.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => format!("{path}/") == quota_path,
    }
}

/// Vault's exempt paths: exact, or a prefix when it ends in `*`.
fn exempt(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern.trim_end_matches('/') == path.trim_end_matches('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, interval: u64, block: u64) -> Limiter {
        Limiter {
            quota: RateLimit {
                name: "q".into(),
                path: String::new(),
                rate,
                interval_secs: interval,
                block_interval_secs: block,
                role: String::new(),
            },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn buckets_refill_per_client_and_block() {
        let l = limiter(2.0, 10, 0);
        let t0 = Instant::now();
        assert_eq!(l.take("a", t0).unwrap().remaining, 1);
        assert_eq!(l.take("a", t0).unwrap().remaining, 0);
        assert_eq!(l.take("a", t0), Err(5), "one token back after 10s/2");
        assert!(l.take("b", t0).is_ok(), "another client has its own bucket");
        assert!(l.take("a", t0 + Duration::from_secs(5)).is_ok());
        let blocking = limiter(1.0, 1, 30);
        assert!(blocking.take("a", t0).is_ok());
        assert_eq!(blocking.take("a", t0), Err(30));
        assert_eq!(
            blocking.take("a", t0 + Duration::from_secs(10)),
            Err(20),
            "still blocked"
        );
        assert!(blocking.take("a", t0 + Duration::from_secs(31)).is_ok());
    }

    #[test]
    fn paths_cover_their_mount_or_subtree() {
        assert!(covers("", "anything"));
        assert!(covers("secret/", "secret/data/x"));
        assert!(covers("secret/", "secret"));
        assert!(!covers("secret/", "secret2/x"));
        assert!(covers("secret/data/app", "secret/data/app"));
        assert!(covers("secret/data/app", "secret/data/app/x"));
        assert!(!covers("secret/data/app", "secret/data/apple"));
        assert!(exempt("sys/health", "sys/health"));
        assert!(exempt("sys/*", "sys/mounts"));
        assert!(!exempt("sys/health", "sys/healthz"));
    }
}
