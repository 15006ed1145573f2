//! `tresor pki health-check MOUNT`: OpenBao's PKI health check (`command/healthcheck`),
//! with its flags, configuration file, output and exit codes.
//!
//! Each check has a default configuration (`-list` prints them all), merged with the
//! `-health-config` JSON file (unknown options are refused) and `-default-disabled`; the
//! enabled checks read what they need and report results (`ok`, `informational`, `warning`,
//! `critical`, `invalid_version`, `insufficient_permissions`). The exit code is the highest
//! status reached at or above the `-return-indicator` cut-off: 0 all good, 1 usage error,
//! 2 informational, 3 warning, 4 critical, 5 invalid version, 6 permission denied.
//!
//! Checks implemented: `ca_validity_period`, `crl_validity_period`, `root_issued_leaves`,
//! `role_allows_localhost`, `role_allows_glob_wildcards`, `role_no_store_false`,
//! `audit_visibility`, `allow_if_modified_since`, `enable_auto_tidy`, `tidy_last_run`,
//! `too_many_certs`, `enable_acme_issuance`, `allow_acme_headers`: all of OpenBao's but
//! `hardware_backed_root` (about managed keys, which Tresor does not have).

use std::collections::BTreeMap;

use clap::{ArgAction, Args};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::commands::pki::{parse, pem_cert, signed_by};
use crate::commands::{sanitize_path, Ctx};
use crate::error::{CliError, CliResult};
use crate::output::{emit, format_value, table, Format};

/// Flags of `pki health-check`.
#[derive(Args, Debug)]
pub struct HealthCheckArgs {
    /// Path to JSON configuration file to modify health check execution and parameters
    #[arg(long = "health-config", value_name = "FILE")]
    pub health_config: Option<String>,
    /// Behavior of the return value: permission, critical, warning, informational or default
    #[arg(
        long = "return-indicator",
        default_value = "default",
        value_name = "WHAT"
    )]
    pub return_indicator: String,
    /// All health checks disabled unless the configuration file enables them
    #[arg(long = "default-disabled", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false", action = ArgAction::Set)]
    pub default_disabled: bool,
    /// Print every known health check's default configuration; run nothing
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set)]
    pub list: bool,
    /// MOUNT
    #[arg(value_name = "MOUNT")]
    pub args: Vec<String>,
}

const NOT_APPLICABLE: u8 = 0;
const OK: u8 = 1;
const INFORMATIONAL: u8 = 2;
const WARNING: u8 = 3;
const CRITICAL: u8 = 4;
const INVALID_VERSION: u8 = 5;
const INSUFFICIENT_PERMISSIONS: u8 = 6;

fn status_name(s: u8) -> &'static str {
    match s {
        OK => "ok",
        INFORMATIONAL => "informational",
        WARNING => "warning",
        CRITICAL => "critical",
        INVALID_VERSION => "invalid_version",
        INSUFFICIENT_PERMISSIONS => "insufficient_permissions",
        _ => "not_applicable",
    }
}

/// One finding.
struct Finding {
    status: u8,
    endpoint: String,
    message: String,
}

impl Finding {
    fn new(status: u8, endpoint: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            status,
            endpoint: endpoint.into(),
            message: message.into(),
        }
    }
}

/// The checks, in OpenBao's order.
const CHECKS: &[&str] = &[
    "ca_validity_period",
    "crl_validity_period",
    "root_issued_leaves",
    "role_allows_localhost",
    "role_allows_glob_wildcards",
    "role_no_store_false",
    "audit_visibility",
    "allow_if_modified_since",
    "enable_auto_tidy",
    "tidy_last_run",
    "too_many_certs",
    "enable_acme_issuance",
    "allow_acme_headers",
];

fn default_config(check: &str) -> Map<String, Value> {
    let v = match check {
        "ca_validity_period" => json!({
            "root_expiry_critical": "180d",
            "intermediate_expiry_critical": "30d",
            "root_expiry_warning": "365d",
            "intermediate_expiry_warning": "60d",
            "root_expiry_informational": "730d",
            "intermediate_expiry_informational": "180d",
        }),
        "crl_validity_period" => json!({
            "crl_expiry_pct_critical": "95",
            "delta_crl_expiry_pct_critical": "95",
        }),
        "root_issued_leaves" => json!({ "certs_to_fetch": 100 }),
        "role_no_store_false" => json!({ "allowed_roles": [] }),
        "audit_visibility" => json!({ "ignored_parameters": [] }),
        "enable_auto_tidy" => json!({
            "interval_duration_critical": "7d",
            "interval_duration_warning": "2d",
            "pause_duration_critical": "1s",
            "pause_duration_warning": "200ms",
        }),
        "tidy_last_run" => json!({ "last_run_critical": "7d", "last_run_warning": "2d" }),
        "too_many_certs" => json!({ "count_critical": 250000, "count_warning": 50000 }),
        _ => json!({}),
    };
    v.as_object().cloned().unwrap_or_default()
}

/// Parses a duration like Vault's `ParseDurationSecond`: a number of seconds, `<n>d`, or a
/// Go duration (`1h30m`, `200ms`), into seconds.
fn parse_duration(v: &Value) -> Result<f64, String> {
    let s = match v {
        Value::Number(n) => return n.as_f64().ok_or_else(|| format!("invalid duration {n}")),
        Value::String(s) => s.trim(),
        other => return Err(format!("invalid duration {other}")),
    };
    if s.is_empty() {
        return Ok(0.0);
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n as f64);
    }
    if let Some(days) = s.strip_suffix('d') {
        if let Ok(n) = days.parse::<i64>() {
            return Ok((n * 86400) as f64);
        }
    }
    let bad = || format!("time: invalid duration {s:?}");
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Ok(total)
}

/// Unix seconds of an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `...+01:00`).
fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// OpenBao's `healthcheck.FormatDuration`: years, months, weeks and days, smallest first.
fn format_duration(secs: i64) -> String {
    let mut d = secs;
    let mut out = String::new();
    for (suffix, unit) in [
        ("y", 365 * 86400),
        ("mo", 30 * 86400),
        ("w", 7 * 86400),
        ("d", 86400),
    ] {
        if d > unit {
            let q = d / unit;
            out = format!("{q}{suffix}{out}");
            d -= q * unit;
        }
    }
    if d > 0 {
        out = format!("{}{out}", crate::commands::pki::go_duration(d));
    }
    out
}

/// A `YYYY-MM-DD` date of a Unix time (UTC).
fn date(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .map(|t| {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        })
        .unwrap_or_default()
}

fn now() -> i64 {
    tresor_core::util::unix_now()
}

/// A fetch that may have been refused: `Err(status)` for an API error.
fn fetch(client: &Client, list: bool, path: &str) -> Result<Option<Value>, u16> {
    let r = if list {
        client.list(path)
    } else {
        client.read(path, &[])
    };
    r.map_err(|e| e.status.unwrap_or(0))
}

/// Reads `path` for a check, or gives the finding that ends it, in that check's words: nothing
/// there or 404/405 is a server too old for it (`too_old`); any other refusal is a lack of
/// permission (`denied`: the sentence with a token, without one, then what it prevents).
fn read_or_finding(
    client: &Client,
    path: &str,
    token: bool,
    too_old: &str,
    denied: [&str; 3],
) -> Result<Value, Finding> {
    let endpoint = format!("/{path}");
    match fetch(client, false, path) {
        Ok(Some(v)) => Ok(v),
        Ok(None) | Err(404 | 405) => Err(Finding::new(INVALID_VERSION, endpoint, too_old)),
        Err(_) => Err(Finding::new(
            INSUFFICIENT_PERMISSIONS,
            endpoint,
            format!(
                "{}{}",
                permission_prefix(token, denied[0], denied[1]),
                denied[2]
            ),
        )),
    }
}

fn permission_prefix(token: bool, with: &str, without: &str) -> String {
    if token {
        with.to_string()
    } else {
        without.to_string()
    }
}

fn ca_validity(
    client: &Client,
    mount: &str,
    cfg: &Map<String, Value>,
) -> Result<Vec<Finding>, String> {
    let mut expiries: BTreeMap<(bool, u8), i64> = BTreeMap::new();
    for (kind, root) in [("root", true), ("intermediate", false)] {
        for (level, s) in [
            ("critical", CRITICAL),
            ("warning", WARNING),
            ("informational", INFORMATIONAL),
        ] {
            let key = format!("{kind}_expiry_{level}");
            let v = cfg.get(&key).cloned().unwrap_or(Value::Null);
            let d = parse_duration(&v).map_err(|e| {
                format!(
                    "failed to parse parameter ({key}={}): {e}",
                    format_value(&v)
                )
            })?;
            expiries.insert((root, s), d as i64);
        }
    }
    let issuers = match fetch(client, true, &format!("{mount}/issuers")) {
        Ok(r) => crate::output::list_keys(&r.unwrap_or(Value::Null)),
        Err(403) => {
            return Ok(vec![Finding::new(
                INSUFFICIENT_PERMISSIONS,
                format!("/{mount}/issuers"),
                "This token lacks permission to list the issuers of this mount. Without this information, this health check is unable to function.",
            )])
        }
        Err(_) => {
            return Ok(vec![Finding::new(
                INVALID_VERSION,
                format!("/{mount}/issuers"),
                "This health check requires Vault 1.11+ but an earlier version of Vault Server was contacted, preventing this health check from running.",
            )])
        }
    };
    let now = now();
    let mut out = Vec::new();
    for id in issuers {
        let Ok(Some(resp)) = fetch(client, false, &format!("{mount}/issuer/{id}/json")) else {
            continue;
        };
        let Some(der) = resp["data"]["certificate"]
            .as_str()
            .and_then(|p| pem_cert(p).ok())
        else {
            continue;
        };
        let cert = parse(&der);
        let not_after = cert.validity().not_after.timestamp();
        let is_root = cert.subject().as_raw() == cert.issuer().as_raw() && signed_by(&cert, &cert);
        let mut f = Finding::new(
            OK,
            format!("/{mount}/issuer/{id}"),
            format!("Issuer's validity ({}) is OK", date(not_after)),
        );
        for level in [CRITICAL, WARNING, INFORMATIONAL] {
            let d = expiries[&(is_root, level)];
            let window = now + d;
            if not_after < window {
                f.status = level;
                f.message = format!(
                    "Issuer's validity is outside of the suggested rotation window: issuer is valid until {} but expires within {} (ending on {}). It is suggested to start rotating this issuer to new key material to avoid future downtime caused by this current issuer expiring.",
                    date(not_after),
                    format_duration(d),
                    date(window)
                );
                break;
            }
        }
        out.push(f);
    }
    Ok(out)
}

/// Reads every role of the mount; findings for refused reads.
fn roles(
    client: &Client,
    mount: &str,
    token: bool,
) -> Result<BTreeMap<String, Value>, Vec<Finding>> {
    let names = match fetch(client, true, &format!("{mount}/roles")) {
        Ok(r) => crate::output::list_keys(&r.unwrap_or(Value::Null)),
        Err(403) => {
            return Err(vec![Finding::new(
                INSUFFICIENT_PERMISSIONS,
                format!("/{mount}/roles"),
                format!(
                    "{}lacks permission either to list the roles. This restricts the ability to fully execute this health check.",
                    permission_prefix(token, "This token ", "No token available and so this health check ")
                ),
            )])
        }
        Err(_) => {
            return Err(vec![Finding::new(
                INVALID_VERSION,
                format!("/{mount}/roles"),
                "This health check requires Vault 1.11+ but an earlier version of Vault Server was contacted, preventing this health check from running.",
            )])
        }
    };
    let mut out = BTreeMap::new();
    let mut refused = Vec::new();
    for name in names {
        match fetch(client, false, &format!("{mount}/roles/{name}")) {
            Ok(Some(r)) => {
                out.insert(name, r["data"].clone());
            }
            Ok(None) => {}
            Err(_) => refused.push(Finding::new(
                INSUFFICIENT_PERMISSIONS,
                format!("/{mount}/roles/{name}"),
                format!(
                    "{}Without this information, this health check is unable to function.",
                    permission_prefix(
                        token,
                        "This token lacks permission the endpoint for this mount. ",
                        "No token available so unable for the endpoint for this mount. "
                    )
                ),
            )),
        }
    }
    if refused.is_empty() {
        Ok(out)
    } else {
        Err(refused)
    }
}

fn domains(role: &Value) -> Vec<String> {
    role["allowed_domains"]
        .as_array()
        .map(|a| a.iter().map(format_value).collect())
        .unwrap_or_default()
}

fn role_check(
    check: &str,
    mount: &str,
    roles: &BTreeMap<String, Value>,
    crl_auto_rebuild: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, role) in roles {
        let endpoint = format!("/{mount}/roles/{name}");
        let flag = |k: &str| role[k].as_bool().unwrap_or(false);
        match check {
            "role_allows_localhost" => {
                let d = domains(role);
                if flag("allow_localhost") && !d.is_empty() {
                    out.push(Finding::new(WARNING, endpoint, format!(
                        "Role currently allows localhost issuance with a non-empty allowed_domains ([{}]): this role is intended for issuing other hostnames and the allow_localhost=true option may be overlooked by operators. If this role is intended to issue certificates valid for localhost, consider setting allow_localhost=false and explicitly adding localhost to the list of allowed domains.",
                        d.join(" ")
                    )));
                }
            }
            "role_allows_glob_wildcards" => {
                let d = domains(role);
                if flag("allow_wildcard_certificates")
                    && flag("allow_glob_domains")
                    && d.iter().any(|x| x.contains('*'))
                {
                    out.push(Finding::new(WARNING, endpoint, format!(
                        "Role currently allows wildcard issuance while allowing globs in allowed_domains ([{}]). Because globs can expand to one or more wildcard character, including wildcards under additional subdomains, these options are dangerous to enable together. If glob domains are required to be enabled, it is suggested to either disable wildcard issuance if not desired, or create two separate roles -- one with wildcard issuance for specified domains and one with glob matching enabled for concrete domain identifiers.",
                        d.join(" ")
                    )));
                }
            }
            _ => {
                if !flag("no_store") {
                    out.push(if crl_auto_rebuild {
                        Finding::new(INFORMATIONAL, endpoint, "Role currently stores every issued certificate (no_store=false). With auto-rebuild CRL enabled, less performance impact occur on CRL rebuilding, but note that too many issued and/or revoked certificates can exceed the server's storage limits and make operations slow. It is suggested to limit the number of certificates issued under roles with no_store=false: use shorter lifetimes to avoid revocation and/or BYOC revocation instead.")
                    } else {
                        Finding::new(WARNING, endpoint, "Role currently stores every issued certificate (no_store=false). Too many issued and/or revoked certificates can exceed the server's storage limits and make operations slow. It is encouraged to enable auto-rebuild of CRLs to prevent every revocation from creating a new CRL and to limit the number of certificates issued under roles with no_store=false: use shorter lifetimes and/or BYOC revocation instead.")
                    });
                }
            }
        }
    }
    if out.is_empty() && !roles.is_empty() {
        let what = match check {
            "role_allows_localhost" => "allowing issuance for localhost domains",
            "role_allows_glob_wildcards" => "restricting wildcard certificate issuance in roles",
            _ => "certificate storage",
        };
        out.push(Finding::new(
            OK,
            format!("/{mount}/roles"),
            format!("Roles follow best practices regarding {what}."),
        ));
    }
    out
}

/// The configured duration `key` of a check, in seconds.
fn cfg_duration(cfg: &Map<String, Value>, key: &str) -> Result<f64, String> {
    let v = cfg.get(key).cloned().unwrap_or(Value::Null);
    parse_duration(&v).map_err(|e| {
        format!(
            "failed to parse parameter ({key}={}): {e}",
            format_value(&v)
        )
    })
}

/// Go's `%v` of a `time.Duration` given in seconds (`168h0m0s`, `200ms`).
fn go_duration_f(secs: f64) -> String {
    if secs.fract() == 0.0 {
        return crate::commands::pki::go_duration(secs as i64);
    }
    if secs < 1.0 {
        return format!("{}ms", (secs * 1000.0).round());
    }
    format!("{secs}s")
}

fn enable_auto_tidy(
    client: &Client,
    mount: &str,
    cfg: &Map<String, Value>,
    token: bool,
) -> Result<Vec<Finding>, String> {
    let endpoint = format!("/{mount}/config/auto-tidy");
    let conf = match read_or_finding(
        client,
        &format!("{mount}/config/auto-tidy"),
        token,
        "This health check requires Vault 1.12+, but an earlier version of Vault Server was contacted, preventing this health check from running.",
        [
            "This token lacks permission to read the auto-tidy configuration for this mount. ",
            "No token available so unable read authenticated auto-tidy configuration for this mount. ",
            "This prevents the health check from functioning at all, as it cannot .",
        ],
    ) {
        Ok(c) => c,
        Err(f) => return Ok(vec![f]),
    };
    let data = &conf["data"];
    let interval = parse_duration(&data["interval_duration"]).map_err(|e| {
        format!("error parsing API response from server for interval_duration: {e}")
    })?;
    let pause = parse_duration(&data["pause_duration"])
        .map_err(|e| format!("error parsing API response from server for pause_duration: {e}"))?;
    if !data["enabled"].as_bool().unwrap_or(false) {
        return Ok(vec![Finding::new(INFORMATIONAL, endpoint, "Auto-tidy is currently disabled; consider enabling auto-tidy to execute tidy operations periodically. This helps the health and performance of a mount.")]);
    }
    let msg = |what: &str, d: f64| {
        format!("Auto-tidy is configured with too long of a value for {what} ({}); this could impact performance as tidies run too infrequently or take too long to execute.", go_duration_f(d))
    };
    let mut out = Vec::new();
    for (what, value) in [("interval_duration", interval), ("pause_duration", pause)] {
        if value >= cfg_duration(cfg, &format!("{what}_critical"))? {
            out.push(Finding::new(CRITICAL, endpoint.clone(), msg(what, value)));
        } else if value >= cfg_duration(cfg, &format!("{what}_warning"))? {
            out.push(Finding::new(WARNING, endpoint.clone(), msg(what, value)));
        }
    }
    if out.is_empty() {
        out.push(Finding::new(
            OK,
            endpoint,
            "Auto-tidy is enabled and configured appropriately.",
        ));
    }
    Ok(out)
}

fn tidy_last_run(
    client: &Client,
    mount: &str,
    cfg: &Map<String, Value>,
    token: bool,
) -> Result<Vec<Finding>, String> {
    let endpoint = format!("/{mount}/tidy-status");
    let status = match read_or_finding(
        client,
        &format!("{mount}/tidy-status"),
        token,
        "This health check requires Vault 1.10+ but an earlier version of Vault Server was contacted, preventing this health check from running.",
        [
            "This token lacks permission to read the tidy status endpoint for this mount. ",
            "No token available so unable read tidy status endpoint for this mount. ",
            "Without this information, this health check is unable to function.",
        ],
    ) {
        Ok(s) => s,
        Err(f) => return Ok(vec![f]),
    };
    let critical = cfg_duration(cfg, "last_run_critical")?;
    let warning = cfg_duration(cfg, "last_run_warning")?;
    let mut f = Finding::new(OK, endpoint, "Tidy has run recently on this mount.");
    match status["data"]["time_finished"]
        .as_str()
        .filter(|w| !w.is_empty())
    {
        None => {
            f.status = CRITICAL;
            f.message = "Tidy hasn't run since this mount was created; this can point to problems with the mount's auto-tidy configuration or an external tidy executor; this can impact PKI's and the server's performance if not run regularly. It is suggested to enable auto-tidy on this mount.".into();
        }
        Some(when) => {
            let t = parse_rfc3339(when).ok_or_else(|| {
                format!("error parsing time value ({when}): not an RFC 3339 time")
            })?;
            let base = |d: f64| {
                format!("Tidy hasn't run in the last {}; this can point to problems with the mount's auto-tidy configuration or an external tidy executor; this can impact PKI's and the server's performance if not run regularly.", go_duration_f(d))
            };
            let age = (now() - t) as f64;
            if age > critical {
                f.status = CRITICAL;
                f.message = base(critical);
            } else if age > warning {
                f.status = WARNING;
                f.message = base(warning);
            }
        }
    }
    Ok(vec![f])
}

fn too_many_certs(
    client: &Client,
    mount: &str,
    cfg: &Map<String, Value>,
    token: bool,
) -> Result<Vec<Finding>, String> {
    let endpoint = format!("/{mount}/certs");
    let count = match fetch(client, true, &format!("{mount}/certs")) {
        Ok(r) => crate::output::list_keys(&r.unwrap_or(Value::Null)).len() as i64,
        Err(404 | 405) => {
            return Ok(vec![Finding::new(INVALID_VERSION, endpoint, "This health check requires Vault 1.11+ but an earlier version of Vault Server was contacted, preventing this health check from running.")])
        }
        Err(_) => {
            return Ok(vec![Finding::new(INSUFFICIENT_PERMISSIONS, endpoint, format!(
                "{}Without this information, this health check is unable to function.",
                permission_prefix(token, "This token lacks permission to list the endpoint for this mount. ", "No token available so unable to list the endpoint for this mount. ")
            ))])
        }
    };
    let limit = |k: &str| -> Result<i64, String> {
        let v = cfg.get(k).cloned().unwrap_or(Value::Null);
        let n = match &v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        n.filter(|n| (1..=15_000_000).contains(n))
            .ok_or_else(|| format!("error parsing too_many_certs.{k}: {}", format_value(&v)))
    };
    let (critical, warning) = (limit("count_critical")?, limit("count_warning")?);
    let msg = format!("This PKI mount has {count} outstanding stored certificates; consider using no_store=false on roles, running tidy operations periodically, and using shorter certificate lifetimes to reduce the storage pressure on this mount.");
    Ok(vec![if count >= critical {
        Finding::new(CRITICAL, endpoint, msg)
    } else if count >= warning {
        Finding::new(WARNING, endpoint, msg)
    } else {
        Finding::new(
            OK,
            endpoint,
            "This mount has an OK number of stored certificates.",
        )
    }])
}

/// An integer option of a check within `min..=max` (Vault's `SafeParseIntRange`).
fn cfg_int(
    cfg: &Map<String, Value>,
    check: &str,
    key: &str,
    min: i64,
    max: i64,
) -> Result<i64, String> {
    let v = cfg.get(key).cloned().unwrap_or(Value::Null);
    let n = match &v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        format!(
            "error parsing {check}.{key}={}: out of range or not a number",
            format_value(&v)
        )
    })
}

/// The issuer ids of the mount, or the finding that says why they could not be listed.
fn issuer_ids(client: &Client, mount: &str) -> Result<Vec<String>, Finding> {
    match fetch(client, true, &format!("{mount}/issuers")) {
        Ok(r) => Ok(crate::output::list_keys(&r.unwrap_or(Value::Null))),
        Err(403) => Err(Finding::new(
            INSUFFICIENT_PERMISSIONS,
            format!("/{mount}/issuers"),
            "This token lacks permission to list the issuers of this mount. Without this information, this health check is unable to function.",
        )),
        Err(_) => Err(Finding::new(
            INVALID_VERSION,
            format!("/{mount}/issuers"),
            "This health check requires Vault 1.11+ but an earlier version of Vault Server was contacted, preventing this health check from running.",
        )),
    }
}

/// `(this_update, next_update)` of the CRL at `path` (JSON with a PEM `crl`); `Err(status)`
/// when the server refused the read.
fn crl_window(client: &Client, path: &str) -> Result<Option<(i64, i64)>, u16> {
    let Some(resp) = fetch(client, false, path)? else {
        return Err(404);
    };
    let Some(pem) = resp["data"]["crl"].as_str() else {
        return Ok(None);
    };
    let der = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "X509 CRL")
        .map(|p| p.contents);
    Ok(der.and_then(|der| {
        let (_, crl) = x509_parser::parse_x509_crl(&der).ok()?;
        let this = crl.last_update().timestamp();
        let next = crl.next_update().map(|t| t.timestamp())?;
        Some((this, next))
    }))
}

fn crl_validity(
    client: &Client,
    mount: &str,
    cfg: &Map<String, Value>,
    token: bool,
) -> Result<Vec<Finding>, String> {
    let pct = cfg_int(cfg, "crl_validity_period", "crl_expiry_pct_critical", 1, 99)?;
    cfg_int(
        cfg,
        "crl_validity_period",
        "delta_crl_expiry_pct_critical",
        1,
        99,
    )?;
    let ids = match issuer_ids(client, mount) {
        Ok(ids) => ids,
        Err(f) => return Ok(vec![f]),
    };
    let (mut crls, mut deltas, mut no_deltas) = (Vec::new(), Vec::new(), false);
    for id in &ids {
        match crl_window(client, &format!("{mount}/issuer/{id}/crl")) {
            Ok(Some(w)) => crls.push((id.clone(), w)),
            _ => continue,
        }
        match crl_window(client, &format!("{mount}/issuer/{id}/crl/delta")) {
            Ok(Some(w)) => deltas.push((id.clone(), w)),
            Err(404 | 405) => no_deltas = true,
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut crl_disabled = false;
    match fetch(client, false, &format!("{mount}/config/crl")) {
        Ok(Some(c)) => crl_disabled = c["data"]["disabled"].as_bool().unwrap_or(false),
        Ok(None) => {}
        Err(_) => out.push(Finding::new(INSUFFICIENT_PERMISSIONS, format!("/{mount}/config/crl"), format!(
            "{}This prevents the health check from seeing if the CRL is disabled and dropping the severity of this check accordingly.",
            permission_prefix(token, "This token lacks permission to read the CRL configuration for this mount. ", "No token available so unable read authenticated CRL configuration for this mount. ")
        ))),
    }
    if no_deltas && deltas.is_empty() {
        out.push(Finding::new(INVALID_VERSION, format!("/{mount}/issuer/*/crl/delta"), "This health check validates Delta CRLs on Vault 1.12+, but an earlier version of Vault was used. No results about delta CRL validity will be returned."));
    }
    let now = now();
    for (delta, list) in [(false, &crls), (true, &deltas)] {
        let name = if delta { "Delta CRL" } else { "CRL" };
        for (id, (this, next)) in list {
            let endpoint = format!(
                "/{mount}/issuer/{id}/crl{}",
                if delta { "/delta" } else { "" }
            );
            let mut f = Finding::new(
                OK,
                endpoint,
                format!(
                    "{name}'s validity ({} to {}) is OK.",
                    date(*this),
                    date(*next)
                ),
            );
            let ratio = (next - this) * pct / 100;
            if now - this >= ratio {
                f.status = CRITICAL;
                f.message = format!(
                    "{name}'s validity is outside of suggested rotation window: {name}'s next update is expected at {}, but expires within {pct}% of validity window (starting on {} and ending on {}). It is suggested to rotate this {name} and start propagating it to hosts to avoid any issues caused by stale CRLs.",
                    date(*next), date(*this), date(this + ratio)
                );
                if crl_disabled {
                    f.status = INFORMATIONAL;
                    f.message
                        .push_str(" Because the CRL is disabled, this is less of a concern.");
                }
            }
            out.push(f);
        }
    }
    Ok(out)
}

fn root_issued_leaves(
    client: &Client,
    mount: &str,
    cfg: &Map<String, Value>,
    token: bool,
) -> Result<Vec<Finding>, String> {
    let to_fetch = cfg_int(cfg, "root_issued_leaves", "certs_to_fetch", 1, 100_000)? as usize;
    let ids = match issuer_ids(client, mount) {
        Ok(ids) => ids,
        Err(f) => return Ok(vec![f]),
    };
    let mut out = Vec::new();
    let denied = |endpoint: String| {
        Finding::new(
            INSUFFICIENT_PERMISSIONS,
            endpoint,
            format!(
                "{}Without this information, this health check is unable to function.",
                permission_prefix(
                    token,
                    "This token lacks permission for the endpoint for this mount. ",
                    "No token available so unable for the endpoint for this mount. "
                )
            ),
        )
    };
    let mut roots = Vec::new();
    for id in &ids {
        let id = id.clone();
        match fetch(client, false, &format!("{mount}/issuer/{id}")) {
            Ok(Some(r)) => {
                if let Some(der) = r["data"]["certificate"]
                    .as_str()
                    .and_then(|p| pem_cert(p).ok())
                {
                    let c = parse(&der);
                    if c.subject().as_raw() == c.issuer().as_raw() && signed_by(&c, &c) {
                        roots.push((id, der));
                    }
                }
            }
            Ok(None) => {}
            Err(_) => out.push(denied(format!("/{mount}/issuer/{id}"))),
        }
    }
    let serials = match fetch(client, true, &format!("{mount}/certs")) {
        Ok(r) => crate::output::list_keys(&r.unwrap_or(Value::Null)),
        // As OpenBao: the refused listing becomes every issuer's finding, in place of any
        // refused issuer read.
        Err(_) => {
            return Ok(ids
                .iter()
                .map(|_| denied(format!("/{mount}/certs")))
                .collect())
        }
    };
    let mut leaves = Vec::new();
    for serial in serials {
        if leaves.len() >= to_fetch {
            break;
        }
        let Ok(Some(r)) = fetch(client, false, &format!("{mount}/cert/{serial}")) else {
            continue;
        };
        let Some(der) = r["data"]["certificate"]
            .as_str()
            .and_then(|p| pem_cert(p).ok())
        else {
            continue;
        };
        let is_ca = matches!(parse(&der).basic_constraints(), Ok(Some(b)) if b.value.ca);
        if !is_ca {
            leaves.push((serial, der));
        }
    }
    let mut warned = std::collections::BTreeSet::new();
    for (serial, leaf) in &leaves {
        let leaf = parse(leaf);
        for (id, root) in &roots {
            let root_cert = parse(root);
            if warned.contains(id)
                || leaf.issuer().as_raw() != root_cert.subject().as_raw()
                || !signed_by(&leaf, &root_cert)
            {
                continue;
            }
            warned.insert(id.clone());
            out.push(Finding::new(WARNING, format!("/{mount}/issuer/{id}"), format!("Root issuer has directly issued non-CA leaf certificates ({serial}) instead of via an intermediate CA. This can make rotating the root CA harder as direct cross-signing of the roots must be used, rather than cross-signing of the intermediates. It is encouraged to set up and use an intermediate CA and tidy the mount when all directly issued leaves have expired.")));
        }
    }
    if out.is_empty() && !roots.is_empty() {
        out.push(Finding::new(
            OK,
            format!("/{mount}/certs"),
            "Root certificate(s) in this mount have not directly issued non-CA leaf certificates.",
        ));
    }
    Ok(out)
}

/// Request parameters of the PKI engine that are not secret (audit_visibility).
const VISIBLE_REQUEST_PARAMS: &[&str] = &[
    "csr",
    "certificate",
    "issuer_ref",
    "common_name",
    "alt_names",
    "other_sans",
    "ip_sans",
    "uri_sans",
    "ttl",
    "not_after",
    "serial_number",
    "key_type",
    "private_key_format",
    "managed_key_name",
    "managed_key_id",
    "ou",
    "organization",
    "country",
    "locality",
    "province",
    "street_address",
    "postal_code",
    "permitted_dns_domains",
    "policy_identifiers",
    "ext_key_usage_oids",
];
/// Response parameters of the PKI engine that are not secret.
const VISIBLE_RESPONSE_PARAMS: &[&str] = &[
    "certificate",
    "issuing_ca",
    "serial_number",
    "error",
    "ca_chain",
];
/// Parameters that are secret, in requests and responses.
const HIDDEN_PARAMS: &[&str] = &["private_key", "pem_bundle"];

/// `sys/mounts/<mount>/tune`, or the finding that says why it could not be read.
fn mount_tune(client: &Client, mount: &str, token: bool, version: &str) -> Result<Value, Finding> {
    read_or_finding(
        client,
        &format!("sys/mounts/{mount}/tune"),
        token,
        &format!("This health check requires Vault {version}+ but an earlier version of Vault Server was contacted, preventing this health check from running."),
        [
            "This token lacks permission to read the tune endpoint for this mount. ",
            "No token available so unable read the tune endpoint for this mount. ",
            "Without this information, this health check is unable to function.",
        ],
    )
    .map(|t| t["data"].clone())
}

fn string_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(format_value).collect(),
        Value::String(s) if !s.is_empty() => s.split(',').map(|x| x.trim().to_string()).collect(),
        _ => vec![],
    }
}

fn audit_visibility(client: &Client, mount: &str, token: bool) -> Vec<Finding> {
    let tune = match mount_tune(client, mount, token, "1.9") {
        Ok(t) => t,
        Err(f) => return vec![f],
    };
    let endpoint = format!("/sys/mounts/{mount}/tune");
    let mut out = Vec::new();
    for (source, visible) in [
        ("audit_non_hmac_request_keys", VISIBLE_REQUEST_PARAMS),
        ("audit_non_hmac_response_keys", VISIBLE_RESPONSE_PARAMS),
    ] {
        let actual = string_list(&tune[source]);
        for p in visible {
            if !actual.iter().any(|a| a == p) {
                out.push(Finding::new(INFORMATIONAL, endpoint.clone(), format!("Mount currently HMACs {p} because it is not in {source}; as this is not a sensitive security parameter, it is encouraged to disable HMACing to allow better auditing of the PKI engine.")));
            }
        }
    }
    for source in [
        "audit_non_hmac_request_keys",
        "audit_non_hmac_response_keys",
    ] {
        let actual = string_list(&tune[source]);
        for p in HIDDEN_PARAMS {
            if actual.iter().any(|a| a == p) {
                out.push(Finding::new(WARNING, endpoint.clone(), format!("Mount currently doesn't HMAC {p} because it is in {source}; as this is a sensitive security parameter it is encouraged to HMAC it in the Audit logs.")));
            }
        }
    }
    if out.is_empty() {
        out.push(Finding::new(
            OK,
            endpoint,
            "Mount audit information is configured appropriately.",
        ));
    }
    out
}

fn allow_if_modified_since(client: &Client, mount: &str, token: bool) -> Vec<Finding> {
    let tune = match mount_tune(client, mount, token, "1.12") {
        Ok(t) => t,
        Err(f) => return vec![f],
    };
    let endpoint = format!("/sys/mounts/{mount}/tune");
    let has = |k: &str, h: &str| {
        string_list(&tune[k])
            .iter()
            .any(|x| x.eq_ignore_ascii_case(h))
    };
    if has("passthrough_request_headers", "If-Modified-Since")
        && has("allowed_response_headers", "Last-Modified")
    {
        vec![Finding::new(
            OK,
            endpoint,
            "Mount allows the If-Modified-Since request header and Last-Modified response header.",
        )]
    } else {
        vec![Finding::new(INFORMATIONAL, endpoint, "Mount hasn't enabled If-Modified-Since Request or Last-Modified Response headers; consider enabling these headers to allow clients to fetch CAs and CRLs only when they've changed, reducing total bandwidth.")]
    }
}

/// `config/acme`'s `enabled`, or the finding that says why it could not be read.
fn acme_enabled(
    client: &Client,
    mount: &str,
    token: bool,
    denied_msg: &str,
) -> Result<bool, Finding> {
    let c = read_or_finding(
        client,
        &format!("{mount}/config/acme"),
        token,
        "This health check requires Vault 1.14+ but an earlier version of Vault Server was contacted, preventing this health check from running.",
        [
            "Token lacks permission to read the tune endpoint for this mount. ",
            "No token available, unable to read the tune endpoint for this mount. ",
            denied_msg,
        ],
    )?;
    Ok(match &c["data"]["enabled"] {
        Value::Bool(b) => *b,
        Value::String(s) => crate::client::parse_bool(s).unwrap_or(false),
        _ => false,
    })
}

fn enable_acme_issuance(client: &Client, mount: &str, token: bool) -> Vec<Finding> {
    let msg = "Without this information, this health check is unable to function.";
    let enabled = match acme_enabled(client, mount, token, msg) {
        Ok(e) => e,
        Err(f) => return vec![f],
    };
    let acme = format!("/{mount}/config/acme");
    if !enabled {
        let (mut total, mut roots) = (0, 0);
        for id in issuer_ids(client, mount).unwrap_or_default() {
            let Ok(Some(r)) = fetch(client, false, &format!("{mount}/issuer/{id}")) else {
                continue;
            };
            let Some(der) = r["data"]["certificate"]
                .as_str()
                .and_then(|p| pem_cert(p).ok())
            else {
                continue;
            };
            total += 1;
            let c = parse(&der);
            if c.subject().as_raw() == c.issuer().as_raw() && signed_by(&c, &c) {
                roots += 1;
            }
        }
        return vec![if total == 0 {
            Finding::new(
                NOT_APPLICABLE,
                acme,
                "No issuers in mount, ACME is not required.",
            )
        } else if total == roots {
            Finding::new(
                NOT_APPLICABLE,
                acme,
                "Mount contains only root issuers, ACME is not required.",
            )
        } else {
            Finding::new(
                INFORMATIONAL,
                acme,
                "Consider enabling ACME support to support a self-rotating PKI infrastructure.",
            )
        }];
    }
    let cluster = format!("/{mount}/config/cluster");
    let conf = match fetch(client, false, &format!("{mount}/config/cluster")) {
        Ok(c) => c.unwrap_or(Value::Null),
        Err(_) => {
            return vec![Finding::new(
                INSUFFICIENT_PERMISSIONS,
                cluster,
                format!(
                    "{}{msg}",
                    permission_prefix(
                        token,
                        "Token lacks permission to read the tune endpoint for this mount. ",
                        "No token available, unable to read the tune endpoint for this mount. "
                    )
                ),
            )]
        }
    };
    match verify_acme_path(&conf["data"], mount) {
        Err(e) => vec![Finding::new(
            WARNING,
            cluster,
            format!("ACME enabled in config but not functional: {e}"),
        )],
        Ok(()) => vec![Finding::new(
            OK,
            cluster,
            "ACME enabled and successfully connected to the ACME directory.",
        )],
    }
}

/// OpenBao's `verifyLocalPathUrl`: `config/cluster`'s `path` is an https URL under which an
/// ACME directory answers (its certificate is not checked: only the path is being tested).
fn verify_acme_path(conf: &Value, mount: &str) -> Result<(), String> {
    let path = match conf.get("path") {
        None => return Err("'path' field missing from config".into()),
        Some(v) => format_value(v),
    };
    let path = if path == "<nil>" { String::new() } else { path };
    if path.is_empty() {
        return Err(format!(
            "'path' field not configured within /{mount}/config/cluster"
        ));
    }
    if !path.starts_with("https://") {
        return Err(format!(
            "the configured 'path' field in /{mount}/config/cluster was not using an https scheme"
        ));
    }
    let url = format!("{}/acme/directory", path.trim_end_matches('/'));
    let fail = |e: String| {
        format!("using configured 'path' field ({path:?}) in /{mount}/config/cluster failed to reach the ACME directory: {url}: {e}")
    };
    let http = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let resp = http
        .get(&url)
        .send()
        .map_err(|e| fail(crate::client::error_chain(&e)))?;
    let status = resp.status();
    let body: Value = resp.json().map_err(|e| fail(e.to_string()))?;
    if !status.is_success() || body.get("newNonce").is_none() {
        return Err(fail(format!("not an ACME directory (HTTP {status})")));
    }
    Ok(())
}

fn allow_acme_headers(client: &Client, mount: &str, token: bool) -> Vec<Finding> {
    match acme_enabled(
        client,
        mount,
        token,
        "Without read access to ACME configuration, this health check is unable to function.",
    ) {
        Err(f) => return vec![f],
        Ok(false) => {
            return vec![Finding::new(
                NOT_APPLICABLE,
                format!("/{mount}/config/acme"),
                "ACME is not enabled, no additional response headers required.",
            )]
        }
        Ok(true) => {}
    }
    let tune = match fetch(client, false, &format!("sys/mounts/{mount}/tune")) {
        Ok(t) => t.unwrap_or(Value::Null),
        Err(_) => {
            return vec![Finding::new(INSUFFICIENT_PERMISSIONS, format!("/sys/mounts/{mount}/tune"), format!(
                "{}Without access to mount tune information, this health check is unable to function.",
                permission_prefix(token, "Token lacks permission to read the tune endpoint for this mount. ", "No token available, unable to read the tune endpoint for this mount. ")
            ))]
        }
    };
    let allowed = string_list(&tune["data"]["allowed_response_headers"]);
    let all = ["Replay-Nonce", "Link", "Location"]
        .iter()
        .all(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h)));
    let endpoint = format!("/sys/mounts/{mount}/tune");
    vec![if all {
        Finding::new(
            OK,
            endpoint,
            "Mount has enabled 'Replay-Nonce', 'Link', 'Location' response headers.",
        )
    } else {
        Finding::new(WARNING, endpoint, "Mount hasn't enabled 'Replay-Nonce', 'Link', 'Location' response headers, these are required for ACME to function.")
    }]
}

/// Refuses mounts that are not PKI engines (OpenBao's `ValidateMountType`).
fn validate_mount(client: &Client, mount: &str) -> Result<(), String> {
    if mount.starts_with("auth/") || mount.starts_with("/auth/") {
        return Err("refusing to run PKI health-check on auth mount; this command is only relevant to PKI secrets engines.".into());
    }
    let m = sanitize_path(mount);
    if let Ok(Some(info)) = client.read(&format!("sys/mounts/{m}"), &[]) {
        let t = info["data"]["type"]
            .as_str()
            .or(info["type"].as_str())
            .unwrap_or("");
        if !t.is_empty() && t != "pki" {
            return Err(format!(
                "refusing to run pki health-check on mount of type {t}"
            ));
        }
        if !t.is_empty() {
            return Ok(());
        }
    }
    if let Ok(Some(info)) = client.read(&format!("sys/internal/ui/mounts/{m}"), &[]) {
        if let Some(t) = info["data"]["type"].as_str() {
            if t != "pki" {
                return Err(format!(
                    "refusing to run pki health-check on mount of type {t}"
                ));
            }
            return Ok(());
        }
    }
    match client.read(&format!("{m}/cert/ca"), &[]) {
        Err(e) => Err(format!("detection of PKI mount failed:\n\t{}", e.message)),
        Ok(None) => Err("refusing to run PKI health-check on non-PKI mount: path cert/ca did not exist: route entry not found".into()),
        Ok(Some(r)) if r["data"].get("certificate").is_none() => Err("refusing to run PKI health-check on non-PKI mount: path cert/ca returned invalid data".into()),
        Ok(Some(_)) => Ok(()),
    }
}

/// Runs `pki health-check`.
pub fn run(ctx: &Ctx, a: HealthCheckArgs) -> CliResult {
    let usage = |m: String| CliError::other(m);
    if !a.list && a.args.is_empty() {
        return Err(usage(
            "Not enough arguments (expected mount path, got nothing)".into(),
        ));
    }
    if !a.list && a.args.len() > 1 {
        eprintln!(
            "Too many arguments (expected only mount path, got {} arguments)",
            a.args.len()
        );
        if let Some(flag) = a.args.iter().find(|x| x.starts_with('-')) {
            eprintln!(
                "Options ({flag}) must be specified before positional arguments ({})",
                a.args[0]
            );
        }
        return Ok(1);
    }
    let cutoff = match a.return_indicator.as_str() {
        "" | "default" | "informational" => INFORMATIONAL,
        "permission" => INVALID_VERSION,
        "critical" => CRITICAL,
        "warning" => WARNING,
        other => {
            return Err(usage(format!(
                "Invalid flag -return-indicator={other}; known options are default, informational, warning, critical, and permission"
            )))
        }
    };

    // The configuration: defaults, `enabled`, then the file's values.
    let mut external = Map::new();
    if let (false, Some(path)) = (a.list, &a.health_config) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("Failed to read configuration file {path}: {e}")))?;
        external = serde_json::from_str::<Map<String, Value>>(&text)
            .map_err(|e| usage(format!("Failed to parse configuration file {path}: {e}")))?;
    }
    let mut configs: Vec<(&str, Map<String, Value>)> = Vec::new();
    for check in CHECKS {
        let mut cfg = default_config(check);
        if a.list {
            configs.push((*check, cfg));
            continue;
        }
        cfg.insert("enabled".into(), Value::Bool(!a.default_disabled));
        if let Some(ext) = external.get(*check).and_then(Value::as_object) {
            for (k, v) in ext {
                if !cfg.contains_key(k) {
                    return Err(usage(format!(
                        "Failed to build health check configuration: unknown configuration option for {check}: {k}"
                    )));
                }
                cfg.insert(k.clone(), v.clone());
            }
        }
        configs.push((*check, cfg));
    }

    if a.list {
        if ctx.out.format == Format::Yaml {
            return Err(usage(
                "YAML output format is not supported by the --list command".into(),
            ));
        }
        if ctx.out.format != Format::Json {
            emit("Default health check config:\n");
        }
        let all: Map<String, Value> = configs
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::Object(v)))
            .collect();
        emit(&format!(
            "{}\n",
            crate::output::to_pretty(&crate::output::sorted(&Value::Object(all)))
        ));
        return Ok(0);
    }

    let client = ctx.client().map_err(|e| usage(e.message))?;
    let raw_mount = &a.args[0];
    validate_mount(&client, raw_mount).map_err(usage)?;
    let mount = sanitize_path(raw_mount);
    let token = client_has_token(ctx);

    let mut results: Vec<(&str, Vec<Finding>)> = Vec::new();
    let mut role_cache: Option<Result<BTreeMap<String, Value>, Vec<Finding>>> = None;
    for (check, cfg) in &configs {
        if !cfg.get("enabled").and_then(Value::as_bool).unwrap_or(true) {
            continue;
        }
        let config_error = |e: String| {
            usage(format!(
                "Failed to build health check configuration: error saving merged config for {check}: {e}"
            ))
        };
        let findings = if *check == "ca_validity_period" {
            ca_validity(&client, &mount, cfg).map_err(config_error)?
        } else if *check == "crl_validity_period" {
            crl_validity(&client, &mount, cfg, token).map_err(config_error)?
        } else if *check == "root_issued_leaves" {
            root_issued_leaves(&client, &mount, cfg, token).map_err(config_error)?
        } else if *check == "enable_acme_issuance" {
            enable_acme_issuance(&client, &mount, token)
        } else if *check == "allow_acme_headers" {
            allow_acme_headers(&client, &mount, token)
        } else if *check == "audit_visibility" {
            audit_visibility(&client, &mount, token)
        } else if *check == "allow_if_modified_since" {
            allow_if_modified_since(&client, &mount, token)
        } else if *check == "enable_auto_tidy" {
            enable_auto_tidy(&client, &mount, cfg, token).map_err(config_error)?
        } else if *check == "tidy_last_run" {
            tidy_last_run(&client, &mount, cfg, token).map_err(config_error)?
        } else if *check == "too_many_certs" {
            too_many_certs(&client, &mount, cfg, token).map_err(config_error)?
        } else {
            let fetched = role_cache.get_or_insert_with(|| roles(&client, &mount, token));
            match fetched {
                Err(f) => f
                    .iter()
                    .map(|x| Finding::new(x.status, x.endpoint.clone(), x.message.clone()))
                    .collect(),
                Ok(r) => {
                    let auto_rebuild = *check == "role_no_store_false"
                        && matches!(
                            fetch(&client, false, &format!("{mount}/config/crl")),
                            Ok(Some(c)) if c["data"]["auto_rebuild"].as_bool() == Some(true)
                        );
                    let mut r = r.clone();
                    if *check == "role_no_store_false" {
                        let allowed: Vec<String> = cfg
                            .get("allowed_roles")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().map(format_value).collect())
                            .unwrap_or_default();
                        r.retain(|k, _| !allowed.contains(k));
                    }
                    role_check(check, &mount, &r, auto_rebuild)
                }
            }
        };
        results.push((*check, findings));
    }

    print_results(ctx, &results);
    let highest = results
        .iter()
        .flat_map(|(_, f)| f.iter().map(|x| x.status))
        .max()
        .unwrap_or(NOT_APPLICABLE);
    Ok(if highest >= cutoff {
        i32::from(highest)
    } else {
        0
    })
}

fn client_has_token(ctx: &Ctx) -> bool {
    crate::client::ClientConfig::resolve(ctx.conn())
        .map(|c| c.token.is_some())
        .unwrap_or(false)
}

fn print_results(ctx: &Ctx, results: &[(&str, Vec<Finding>)]) {
    let as_value = || {
        let m: Map<String, Value> = results
            .iter()
            .map(|(check, findings)| {
                let list: Vec<Value> = findings
                    .iter()
                    .map(|f| {
                        let mut o = Map::new();
                        o.insert("status_code".into(), json!(f.status));
                        o.insert("status".into(), json!(status_name(f.status)));
                        if !f.endpoint.is_empty() {
                            o.insert("endpoint".into(), json!(f.endpoint));
                        }
                        if !f.message.is_empty() {
                            o.insert("message".into(), json!(f.message));
                        }
                        Value::Object(o)
                    })
                    .collect();
                (check.to_string(), Value::Array(list))
            })
            .collect();
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        Value::Object(
            keys.into_iter()
                .map(|k| (k.clone(), m[k].clone()))
                .collect(),
        )
    };
    match ctx.out.format {
        Format::Json | Format::Yaml => ctx.out.structured_pki(&as_value()),
        Format::Table | Format::Raw => {
            let mut s = String::new();
            for (check, findings) in results {
                s.push_str(&format!("{check}\n{}\n", "-".repeat(check.len())));
                let rows: Vec<Vec<String>> = findings
                    .iter()
                    .map(|f| {
                        vec![
                            status_name(f.status).to_string(),
                            f.endpoint.clone(),
                            f.message.clone(),
                        ]
                    })
                    .collect();
                s.push_str(&table(&["status", "endpoint", "message"], &rows));
                s.push_str("\n\n");
            }
            emit(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates() {
        assert_eq!(format_duration(180 * 86400), "6mo");
        assert_eq!(format_duration(365 * 86400), "5d12mo");
        assert_eq!(format_duration(30 * 86400), "2d4w");
        assert_eq!(parse_duration(&json!("180d")).unwrap(), 180.0 * 86400.0);
        assert_eq!(parse_duration(&json!(60)).unwrap(), 60.0);
        assert_eq!(parse_duration(&json!("1h30m")).unwrap(), 5400.0);
        assert_eq!(parse_duration(&json!("200ms")).unwrap(), 0.2);
        assert_eq!(go_duration_f(0.2), "200ms");
        assert_eq!(go_duration_f(604800.0), "168h0m0s");
        assert_eq!(parse_rfc3339("2027-01-01T00:00:00Z"), Some(1_798_761_600));
        assert_eq!(
            parse_rfc3339("2027-01-01T01:00:00.5+01:00"),
            Some(1_798_761_600)
        );
        assert!(parse_duration(&json!("1x")).is_err());
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_798_761_600), "2027-01-01");
    }
}
