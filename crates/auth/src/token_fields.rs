//! Vault's common token fields (`sdk/helper/tokenutil`), shared by AppRole roles and userpass
//! users: `token_policies`, `token_ttl`, `token_max_ttl`, `token_explicit_max_ttl`,
//! `token_period`, `token_num_uses`, `token_bound_cidrs`, `token_type`,
//! `token_no_default_policy` (and OpenBao's `token_strictly_bind_ip`, stored and shown only).
//!
//! Each method also accepts some deprecated aliases ([`Legacy`]): AppRole's `policies` and
//! `period`, userpass's `policies`, `ttl`, `max_ttl` and `bound_cidrs`. As in Vault, when both a
//! `token_*` field and its alias are sent, the `token_*` one wins and the alias mirrors it; when
//! only the `token_*` one is sent, the alias is cleared; an alias shows on read only when set.
//!
//! [`TokenFields::grant`] turns the fields into the [`LoginGrant`] a login handler returns,
//! computing TTLs as Vault's `framework.CalculateTTL` does (with its warnings).
//!
//! `token_type` goes to the core with the grant, which decides with the mount's tuning whether
//! the token is a batch token. Logins from outside `token_bound_cidrs` are refused
//! ([`check_token_cidrs`]) and the token is bound to them. Known gap: the role's
//! `token_max_ttl` is passed as the grant's `max_ttl`, which the core stores as the token's
//! explicit max TTL.

use crate::cidr;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tresor_core::framework::{Field, FieldData, Path};
use tresor_core::logical::LoginGrant;
use tresor_core::mount::MountEntry;
use tresor_core::{Error, Result};

/// A deprecated alias of a token field that a method still accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// `policies` → `token_policies` (AppRole, userpass).
    Policies,
    /// `period` → `token_period` (AppRole).
    Period,
    /// `ttl` → `token_ttl` (userpass).
    Ttl,
    /// `max_ttl` → `token_max_ttl` (userpass).
    MaxTtl,
    /// `bound_cidrs` → `token_bound_cidrs` (userpass).
    BoundCidrs,
}

impl Legacy {
    /// (deprecated name, current name)
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Legacy::Policies => ("policies", "token_policies"),
            Legacy::Period => ("period", "token_period"),
            Legacy::Ttl => ("ttl", "token_ttl"),
            Legacy::MaxTtl => ("max_ttl", "token_max_ttl"),
            Legacy::BoundCidrs => ("bound_cidrs", "token_bound_cidrs"),
        }
    }
}

/// The token settings of a role or user, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TokenFields {
    pub token_policies: Vec<String>,
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_explicit_max_ttl: u64,
    pub token_period: u64,
    pub token_num_uses: i64,
    pub token_bound_cidrs: Vec<String>,
    /// `default`, `service` or `batch`.
    pub token_type: String,
    pub token_no_default_policy: bool,
    pub token_strictly_bind_ip: bool,
    // Deprecated aliases as last written; shown on read only when set.
    pub policies: Vec<String>,
    pub period: u64,
    pub ttl: u64,
    pub max_ttl: u64,
    pub bound_cidrs: Vec<String>,
}

/// Declares the token fields (and the given aliases) on a path.
pub fn declare<B: Send + Sync + 'static>(p: Path<B>, legacy: &[Legacy]) -> Path<B> {
    let mut p = p
        .field("token_policies", Field::list("Comma-separated list of policies"))
        .field("token_ttl", Field::duration("The initial ttl of the token to generate"))
        .field("token_max_ttl", Field::duration("The maximum lifetime of the generated token"))
        .field("token_explicit_max_ttl", Field::duration("If set, tokens created via this role carry an explicit maximum TTL."))
        .field("token_period", Field::duration("If set, tokens created via this role have no max lifetime; their renewal period is fixed to this value."))
        .field("token_num_uses", Field::int("The maximum number of times a token may be used, a value of zero means unlimited"))
        .field("token_bound_cidrs", Field::list("Comma separated string or JSON list of CIDR blocks allowed to use the generated token."))
        .field("token_type", Field::string("The type of token to generate, service or batch").default("default-service"))
        .field("token_no_default_policy", Field::bool("If true, the 'default' policy will not automatically be added to generated tokens"))
        .field("token_strictly_bind_ip", Field::bool("OpenBao: bind the token strictly to the client's IP (stored only)"));
    for l in legacy {
        p = match l {
            Legacy::Policies => p.field("policies", Field::list("Use \"token_policies\" instead.")),
            Legacy::Period => p.field("period", Field::duration("Use \"token_period\" instead.")),
            Legacy::Ttl => p.field("ttl", Field::duration("Use \"token_ttl\" instead.")),
            Legacy::MaxTtl => p.field("max_ttl", Field::duration("Use \"token_max_ttl\" instead.")),
            Legacy::BoundCidrs => p.field(
                "bound_cidrs",
                Field::list("Use \"token_bound_cidrs\" instead."),
            ),
        };
    }
    p
}

/// Policy names as Vault's `policyutil.ParsePolicies` leaves them: trimmed, lower-cased, no
/// empties, sorted, deduplicated.
pub fn clean_policies(p: Vec<String>) -> Vec<String> {
    let mut p: Vec<String> = p
        .into_iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    p.sort();
    p.dedup();
    p
}

fn secs(f: &FieldData, name: &str) -> u64 {
    f.duration(name).as_secs()
}

impl TokenFields {
    /// Applies the token fields present in `f` (Vault's `ParseTokenFields` + `UpgradeValue`).
    /// `default_types` accepts `default-service` / `default-batch` as `service` / `batch` with a
    /// warning (AppRole's backwards compatibility; userpass refuses them). Returns warnings;
    /// invalid input is a 400.
    pub fn parse(
        &mut self,
        f: &FieldData,
        legacy: &[Legacy],
        default_types: bool,
    ) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        if f.has("token_bound_cidrs") {
            self.token_bound_cidrs =
                cidr::parse_addrs(&f.strings("token_bound_cidrs")).map_err(Error::bad)?;
        }
        if f.has("token_explicit_max_ttl") {
            self.token_explicit_max_ttl = secs(f, "token_explicit_max_ttl");
        }
        if f.has("token_max_ttl") {
            self.token_max_ttl = secs(f, "token_max_ttl");
        }
        if f.has("token_no_default_policy") {
            self.token_no_default_policy = f.bool("token_no_default_policy");
        }
        if f.has("token_strictly_bind_ip") {
            self.token_strictly_bind_ip = f.bool("token_strictly_bind_ip");
        }
        if f.has("token_period") {
            self.token_period = secs(f, "token_period");
        }
        if f.has("token_policies") {
            self.token_policies = clean_policies(f.strings("token_policies"));
        }
        if f.has("token_type") {
            self.token_type = match f.str("token_type") {
                "" | "default" => "default".into(),
                "service" => "service".into(),
                "batch" => "batch".into(),
                "default-service" if default_types => {
                    warnings
                        .push("default-service has no useful meaning; adjusting to service".into());
                    "service".into()
                }
                "default-batch" if default_types => {
                    warnings.push("default-batch has no useful meaning; adjusting to batch".into());
                    "batch".into()
                }
                other => return Err(Error::bad(format!("invalid 'token_type' value {other:?}"))),
            };
        }
        if f.has("token_num_uses") {
            self.token_num_uses = f.int("token_num_uses");
        }
        if self.token_num_uses < 0 {
            return Err(Error::bad("'token_num_uses' cannot be negative"));
        }
        if f.has("token_ttl") {
            self.token_ttl = secs(f, "token_ttl");
        }
        for l in legacy {
            self.upgrade(f, *l)?;
        }
        if self.token_type == "batch" {
            if self.token_period != 0 {
                return Err(Error::bad("'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens"));
            }
            if self.token_num_uses != 0 {
                return Err(Error::bad("'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count"));
            }
        }
        if self.token_ttl > 0 && self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(Error::bad(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        Ok(warnings)
    }

    /// Vault's `tokenutil.UpgradeValue` for one alias.
    fn upgrade(&mut self, f: &FieldData, l: Legacy) -> Result<()> {
        let (old, new) = l.names();
        let (old_given, new_given) = (f.has(old), f.has(new));
        if !old_given && !new_given {
            return Ok(());
        }
        match l {
            Legacy::Policies => {
                if new_given {
                    self.policies = if old_given {
                        self.token_policies.clone()
                    } else {
                        vec![]
                    };
                } else {
                    self.policies = clean_policies(f.strings(old));
                    self.token_policies = self.policies.clone();
                }
            }
            Legacy::BoundCidrs => {
                if new_given {
                    self.bound_cidrs = if old_given {
                        self.token_bound_cidrs.clone()
                    } else {
                        vec![]
                    };
                } else {
                    self.bound_cidrs = cidr::parse_addrs(&f.strings(old)).map_err(Error::bad)?;
                    self.token_bound_cidrs = self.bound_cidrs.clone();
                }
            }
            Legacy::Period | Legacy::Ttl | Legacy::MaxTtl => {
                let (old_val, new_val) = match l {
                    Legacy::Period => (&mut self.period, &mut self.token_period),
                    Legacy::Ttl => (&mut self.ttl, &mut self.token_ttl),
                    _ => (&mut self.max_ttl, &mut self.token_max_ttl),
                };
                if new_given {
                    *old_val = if old_given { *new_val } else { 0 };
                } else {
                    *old_val = secs(f, old);
                    *new_val = *old_val;
                }
            }
        }
        Ok(())
    }

    /// The fields of a read answer (Vault's `PopulateTokenData`, plus the aliases that are set).
    pub fn populate(&self, m: &mut Map<String, Value>, legacy: &[Legacy]) {
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        m.insert(
            "token_explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        m.insert("token_max_ttl".into(), json!(self.token_max_ttl));
        m.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        m.insert("token_num_uses".into(), json!(self.token_num_uses));
        m.insert("token_period".into(), json!(self.token_period));
        m.insert("token_policies".into(), json!(self.token_policies));
        m.insert(
            "token_strictly_bind_ip".into(),
            json!(self.token_strictly_bind_ip),
        );
        m.insert("token_ttl".into(), json!(self.token_ttl));
        m.insert(
            "token_type".into(),
            json!(if self.token_type.is_empty() {
                "default"
            } else {
                &self.token_type
            }),
        );
        for l in legacy {
            let (old, _) = l.names();
            let v = match l {
                Legacy::Policies => (!self.policies.is_empty()).then(|| json!(self.policies)),
                Legacy::BoundCidrs => {
                    (!self.bound_cidrs.is_empty()).then(|| json!(self.bound_cidrs))
                }
                Legacy::Period => (self.period > 0).then(|| json!(self.period)),
                Legacy::Ttl => (self.ttl > 0).then(|| json!(self.ttl)),
                Legacy::MaxTtl => (self.max_ttl > 0).then(|| json!(self.max_ttl)),
            };
            if let Some(v) = v {
                m.insert(old.into(), v);
            }
        }
    }

    /// The login grant for these settings, with TTLs computed as Vault's `CalculateTTL` does
    /// against the mount's limits, and the warnings Vault gives when it caps them.
    pub fn grant(
        &self,
        mount: &MountEntry,
        display_name: String,
        metadata: BTreeMap<String, String>,
    ) -> (LoginGrant, Vec<String>) {
        let mut warnings = Vec::new();
        let mut max = crate::mount_max_ttl(mount);
        for m in [self.token_max_ttl, self.token_explicit_max_ttl] {
            if m > 0 && m < max {
                max = m;
            }
        }
        let nonzero = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let mut grant = LoginGrant {
            policies: self.token_policies.clone(),
            metadata,
            display_name,
            num_uses: self.token_num_uses.max(0) as u64,
            renewable: true,
            no_default_policy: self.token_no_default_policy,
            ..Default::default()
        };
        if self.token_period > 0 {
            let mut period = self.token_period;
            if period > max {
                warnings.push(format!(
                    "period of {:?} exceeded the effective max_ttl of {:?}; period value is capped accordingly",
                    crate::human_duration(period),
                    crate::human_duration(max)
                ));
                period = max;
            }
            grant.period = nonzero(period);
            grant.ttl = nonzero(period);
            // A periodic token is bounded only by an explicit max TTL.
            grant.max_ttl = nonzero(self.token_explicit_max_ttl);
        } else {
            let ttl = if self.token_ttl > 0 {
                self.token_ttl
            } else {
                crate::mount_default_ttl(mount)
            };
            if ttl > max {
                warnings.push(format!("TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly", crate::human_duration(ttl), crate::human_duration(max)));
            }
            // Without a role TTL the core applies the mount's (or the server's) default itself.
            grant.ttl = nonzero(self.token_ttl.min(max));
            grant.max_ttl = [self.token_max_ttl, self.token_explicit_max_ttl]
                .into_iter()
                .filter(|s| *s > 0)
                .min()
                .map(Duration::from_secs);
        }
        grant.token_type = self.token_type.clone();
        grant.explicit_max_ttl = nonzero(self.token_explicit_max_ttl);
        grant.bound_cidrs = self.token_bound_cidrs.clone();
        (grant, warnings)
    }
}

/// Refuses a login whose client address is outside `cidrs` (when any are set): 403, as Vault's
/// userpass does. No client address with CIDRs set is refused too.
pub fn check_token_cidrs(remote: Option<&str>, cidrs: &[String]) -> Result<()> {
    if cidrs.is_empty() {
        return Ok(());
    }
    match remote {
        Some(r) if cidr::remote_in(r, cidrs) => Ok(()),
        _ => Err(Error::PermissionDenied),
    }
}
