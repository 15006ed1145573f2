//! The KV v2 storage model and its value conversions: the mount configuration, the per-key
//! metadata record (with one entry per live version), the storage keys they live under, and the
//! Vault-compatible renderings of times and durations.
//!
//! Storage layout inside the mount's view (see `kv/mod.rs` for the whole picture):
//!
//! * `v2/config`: [`Config`] as JSON.
//! * `v2/meta/<key>`: [`KeyMeta`] as JSON. The key name is used as-is, so listing
//!   `v2/meta/<prefix>` yields exactly the children of a folder (`a` and `a/` are distinct
//!   storage keys: `v2/meta/a` and `v2/meta/a/...`).
//! * `v2/ver/<sha256(key)>/<n>`: the `data` object of version `n`, as the JSON bytes the client
//!   sent (re-encoded once, on write). Hashing the key keeps version records out of the folder
//!   namespace, bounds their length and keeps key names out of a second place.
//! * `v2/upgrade`: written once a v1 → v2 migration has finished.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const CONFIG_KEY: &str = "v2/config";
pub const META_PREFIX: &str = "v2/meta/";
pub const VERSION_PREFIX: &str = "v2/ver/";
pub const UPGRADE_KEY: &str = "v2/upgrade";

/// Versions kept per key when neither the key nor the mount sets `max_versions`.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

/// `delete_version_after` stored in the mount config when it was set to a negative duration:
/// deletion scheduling is disabled for every key (Vault reports it as `-1s`).
pub const DVA_DISABLED: i64 = -1;

/// The mount-wide settings (`config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Config {
    #[serde(default)]
    pub max_versions: u32,
    #[serde(default)]
    pub cas_required: bool,
    #[serde(default)]
    pub metadata_cas_required: bool,
    /// Seconds; 0 = unset, [`DVA_DISABLED`] = disabled for all keys.
    #[serde(default)]
    pub delete_version_after: i64,
}

impl Config {
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("cas_required".into(), Value::Bool(self.cas_required));
        m.insert(
            "delete_version_after".into(),
            Value::String(go_duration(self.delete_version_after)),
        );
        m.insert("max_versions".into(), Value::from(self.max_versions));
        m.insert(
            "metadata_cas_required".into(),
            Value::Bool(self.metadata_cas_required),
        );
        m
    }

    /// When a version created (or undeleted) at `from` becomes deleted: `from` plus the smaller
    /// non-zero of the mount's and the key's `delete_version_after`; `None` when neither is set
    /// or the mount disabled it.
    pub fn deletion_time(&self, from: i64, key_dva: i64) -> Option<i64> {
        let mount = self.delete_version_after;
        if mount < 0 {
            return None;
        }
        let secs = match (mount, key_dva) {
            (0, 0) => return None,
            (0, k) => k,
            (m, 0) => m,
            (m, k) => m.min(k),
        };
        Some(from.saturating_add(secs.saturating_mul(1_000_000_000)))
    }
}

/// One version's entry in the key metadata. Times are Unix nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VersionMeta {
    pub created_time: i64,
    /// Set by a soft delete, or in advance by `delete_version_after`; the version reads as
    /// deleted once this time has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destroyed: bool,
}

impl VersionMeta {
    pub fn is_deleted(&self, now: i64) -> bool {
        self.deletion_time.is_some_and(|t| t <= now)
    }
    /// Deleted or destroyed: not readable.
    pub fn is_gone(&self, now: i64) -> bool {
        self.destroyed || self.is_deleted(now)
    }
    /// The `metadata` object of a data read / the `data` of a write (Vault's shape).
    pub fn to_json(
        &self,
        version: u64,
        custom: &Option<BTreeMap<String, String>>,
    ) -> Map<String, Value> {
        let mut m = Map::with_capacity(5);
        m.insert(
            "created_time".into(),
            Value::String(fmt_time(self.created_time)),
        );
        m.insert("custom_metadata".into(), custom_json(custom));
        m.insert(
            "deletion_time".into(),
            Value::String(self.deletion_time.map(fmt_time).unwrap_or_default()),
        );
        m.insert("destroyed".into(), Value::Bool(self.destroyed));
        m.insert("version".into(), Value::from(version));
        m
    }
}

/// Everything known about one key, stored at `v2/meta/<key>`. Times are Unix nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyMeta {
    #[serde(default)]
    pub current_version: u64,
    #[serde(default)]
    pub oldest_version: u64,
    #[serde(default)]
    pub created_time: i64,
    #[serde(default)]
    pub updated_time: i64,
    #[serde(default)]
    pub max_versions: u32,
    #[serde(default)]
    pub cas_required: bool,
    /// Seconds; 0 = use the mount's.
    #[serde(default)]
    pub delete_version_after: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub metadata_cas_required: bool,
    /// Bumped by every metadata write (OpenBao's metadata check-and-set).
    #[serde(default)]
    pub current_metadata_version: u64,
    /// Versions not yet trimmed by `max_versions` (including deleted and destroyed ones).
    #[serde(default)]
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMeta {
    /// Metadata for a key that has none yet, created at `now`.
    pub fn new(now: i64) -> Self {
        KeyMeta {
            created_time: now,
            updated_time: now,
            ..Default::default()
        }
    }

    /// Appends a version created at `created` (Vault's `AddVersion`): bumps `current_version`,
    /// then slides the `max_versions` window (the larger of the key's and the mount's setting,
    /// 10 when neither is set). Returns the new version number and the versions that fell out of
    /// the window, whose data the caller deletes in the same batch.
    pub fn add_version(
        &mut self,
        created: i64,
        deletion_time: Option<i64>,
        config_max: u32,
    ) -> (u64, Vec<u64>) {
        self.current_version += 1;
        let n = self.current_version;
        self.versions.insert(
            n,
            VersionMeta {
                created_time: created,
                deletion_time,
                destroyed: false,
            },
        );
        self.updated_time = created;
        if self.created_time == 0 {
            self.created_time = created;
        }
        let max = match self.max_versions.max(config_max) {
            0 => DEFAULT_MAX_VERSIONS,
            m => m,
        } as u64;
        let mut trimmed = Vec::new();
        if n - self.oldest_version.min(n) >= max {
            let last = n - max;
            trimmed = self.versions.range(..=last).map(|(v, _)| *v).collect();
            for v in &trimmed {
                self.versions.remove(v);
            }
            self.oldest_version = last + 1;
        }
        (n, trimmed)
    }

    /// The answer of a metadata read.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut versions = Map::new();
        for (n, v) in &self.versions {
            let mut e = Map::new();
            e.insert(
                "created_time".into(),
                Value::String(fmt_time(v.created_time)),
            );
            e.insert(
                "deletion_time".into(),
                Value::String(v.deletion_time.map(fmt_time).unwrap_or_default()),
            );
            e.insert("destroyed".into(), Value::Bool(v.destroyed));
            versions.insert(n.to_string(), Value::Object(e));
        }
        let mut m = Map::new();
        m.insert("cas_required".into(), Value::Bool(self.cas_required));
        m.insert(
            "created_time".into(),
            Value::String(fmt_time(self.created_time)),
        );
        m.insert(
            "current_metadata_version".into(),
            Value::from(self.current_metadata_version),
        );
        m.insert("current_version".into(), Value::from(self.current_version));
        m.insert("custom_metadata".into(), custom_json(&self.custom_metadata));
        m.insert(
            "delete_version_after".into(),
            Value::String(go_duration(self.delete_version_after)),
        );
        m.insert("max_versions".into(), Value::from(self.max_versions));
        m.insert(
            "metadata_cas_required".into(),
            Value::Bool(self.metadata_cas_required),
        );
        m.insert("oldest_version".into(), Value::from(self.oldest_version));
        m.insert(
            "updated_time".into(),
            Value::String(fmt_time(self.updated_time)),
        );
        m.insert("versions".into(), Value::Object(versions));
        m
    }
}

fn custom_json(custom: &Option<BTreeMap<String, String>>) -> Value {
    match custom {
        Some(c) => Value::Object(
            c.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
        None => Value::Null,
    }
}

/// A key's name and the storage keys derived from it.
pub struct Key {
    pub name: String,
    hash: String,
}

impl Key {
    pub fn new(name: &str) -> Self {
        Key {
            name: name.to_string(),
            hash: tresor_core::util::sha256_hex(name.as_bytes()),
        }
    }
    // Concatenated, not format!()ed: both are built on every read.
    pub fn meta_key(&self) -> String {
        [META_PREFIX, &self.name].concat()
    }
    pub fn version_key(&self, n: u64) -> String {
        use std::fmt::Write;
        let mut k = String::with_capacity(VERSION_PREFIX.len() + self.hash.len() + 21);
        k.push_str(VERSION_PREFIX);
        k.push_str(&self.hash);
        k.push('/');
        let _ = write!(k, "{n}");
        k
    }
    /// Which of the backend's lock stripes guards this key.
    pub fn stripe(&self) -> usize {
        usize::from_str_radix(&self.hash[..2], 16).unwrap_or(0)
    }
}

pub fn now_nanos() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// RFC 3339 with as many fractional digits as needed, in UTC (Go's `time.RFC3339Nano`).
pub fn fmt_time(nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Whole seconds rendered as Go's `time.Duration.String()` (`0s`, `30s`, `1m30s`, `1h0m0s`).
pub use tresor_core::util::go_duration_signed as go_duration;

/// Parses a duration the way Vault's `ParseDurationSecond` does: a number of seconds, a numeric
/// string, or a Go duration string (`"1h30m"`, `"1.5h"`, `"-1s"`, with `d` for days), truncated
/// to whole seconds. Negative values are returned as such; callers decide what they mean.
pub fn parse_duration_secs(v: &Value) -> Result<i64, String> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .ok_or_else(|| format!("invalid duration {n}")),
        Value::String(s) => {
            parse_go_duration(s.trim()).ok_or_else(|| format!("time: invalid duration {:?}", s))
        }
        other => Err(format!("invalid duration {other}")),
    }
}

fn parse_go_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return Some(0);
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let (neg, mut rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * nanos_per;
    }
    let secs = (total / 1e9).trunc();
    if !secs.is_finite() || secs > i64::MAX as f64 {
        return None;
    }
    Some(if neg { -(secs as i64) } else { secs as i64 })
}

const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;
const CUSTOM_PREFIX: &str = "custom_metadata validation failed";

/// Converts one `custom_metadata` value to the string Vault stores (weak typing: numbers and
/// booleans become strings); `None` for JSON null.
fn custom_value(k: &str, v: &Value) -> Result<Option<String>, String> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Array(_) => return Err(format!("{CUSTOM_PREFIX}: value for key {k:?}: expected type 'string', got unconvertible type 'array'")),
        Value::Object(_) => return Err(format!("{CUSTOM_PREFIX}: value for key {k:?}: expected type 'string', got unconvertible type 'object'")),
    }))
}

fn custom_object(v: &Value) -> Result<Option<&Map<String, Value>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        _ => Err("error converting input for field \"custom_metadata\": expected object".into()),
    }
}

/// The `custom_metadata` of a metadata write: replaces the whole map (null clears it).
pub fn parse_custom_metadata(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if let Some(m) = custom_object(v)? {
        for (k, v) in m {
            out.insert(k.clone(), custom_value(k, v)?.unwrap_or_default());
        }
    }
    validate_custom_metadata(&out)?;
    Ok(out)
}

/// Applies the `custom_metadata` of a metadata patch (JSON merge patch: null removes a key, a
/// null map clears all of them).
pub fn patch_custom_metadata(
    current: Option<BTreeMap<String, String>>,
    v: &Value,
) -> Result<BTreeMap<String, String>, String> {
    let Some(m) = custom_object(v)? else {
        return Ok(BTreeMap::new());
    };
    let mut out = current.unwrap_or_default();
    for (k, v) in m {
        match custom_value(k, v)? {
            Some(s) => {
                out.insert(k.clone(), s);
            }
            None => {
                out.remove(k);
            }
        }
    }
    validate_custom_metadata(&out)?;
    Ok(out)
}

fn printable(s: &str) -> bool {
    s.chars()
        .all(|c| !c.is_control() && (c == ' ' || !c.is_whitespace()))
}

/// Vault's limits: at most 64 keys, keys of 1..=128 bytes, values of 1..=512 bytes, printable.
fn validate_custom_metadata(m: &BTreeMap<String, String>) -> Result<(), String> {
    if m.len() > MAX_CUSTOM_KEYS {
        return Err(format!(
            "{CUSTOM_PREFIX}: payload must contain at most {MAX_CUSTOM_KEYS} keys, provided {}",
            m.len()
        ));
    }
    let mut errs = Vec::new();
    for (k, v) in m {
        if k.is_empty() || k.len() > MAX_CUSTOM_KEY_LEN {
            errs.push(format!("{CUSTOM_PREFIX}: length of key {k:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_KEY_LEN}", k.len()));
        }
        if v.is_empty() || v.len() > MAX_CUSTOM_VALUE_LEN {
            errs.push(format!("{CUSTOM_PREFIX}: length of value for key {k:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_VALUE_LEN}", v.len()));
        }
        if !printable(k) {
            errs.push(format!(
                "{CUSTOM_PREFIX}: key {k:?} contains unprintable characters"
            ));
        }
        if !printable(v) {
            errs.push(format!(
                "{CUSTOM_PREFIX}: value for key {k:?} contains unprintable characters"
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations_render_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(30), "30s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(1800), "30m0s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(5400), "1h30m0s");
        assert_eq!(go_duration(86400), "24h0m0s");
        assert_eq!(go_duration(-1), "-1s");
    }

    #[test]
    fn durations_parse_like_vault() {
        let p = |v: Value| parse_duration_secs(&v);
        assert_eq!(p(json!(3600)), Ok(3600));
        assert_eq!(p(json!("3600")), Ok(3600));
        assert_eq!(p(json!("30m0s")), Ok(1800));
        assert_eq!(p(json!("1h30m")), Ok(5400));
        assert_eq!(p(json!("1.5h")), Ok(5400));
        assert_eq!(p(json!("1500ms")), Ok(1));
        assert_eq!(p(json!("1d")), Ok(86400));
        assert_eq!(p(json!("-1h")), Ok(-3600));
        assert_eq!(p(json!("0")), Ok(0));
        assert_eq!(p(json!("")), Ok(0));
        assert_eq!(p(json!(null)), Ok(0));
        assert!(p(json!("bogus")).unwrap_err().contains("invalid duration"));
        assert!(p(json!("1x")).is_err());
        assert!(p(json!("h")).is_err());
        assert!(p(json!(true)).is_err());
    }

    #[test]
    fn times_render_as_rfc3339_nano() {
        assert_eq!(fmt_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            fmt_time(1_500_000_000_123_456_789),
            "2017-07-14T02:40:00.123456789Z"
        );
        assert_eq!(
            fmt_time(1_500_000_000_120_000_000),
            "2017-07-14T02:40:00.12Z"
        );
    }

    #[test]
    fn max_versions_window_slides_like_vault() {
        let mut m = KeyMeta::new(1);
        for i in 1..=4 {
            let (n, trimmed) = m.add_version(i, None, 2);
            assert_eq!(n, i as u64);
            match i {
                1 | 2 => assert!(trimmed.is_empty()),
                3 => assert_eq!(trimmed, vec![1]),
                _ => assert_eq!(trimmed, vec![2]),
            }
        }
        assert_eq!(m.oldest_version, 3);
        assert_eq!(m.versions.keys().copied().collect::<Vec<_>>(), vec![3, 4]);
        // Lowering the limit trims several versions at once.
        m.max_versions = 1;
        let (_, trimmed) = m.add_version(5, None, 0);
        assert_eq!(trimmed, vec![3, 4]);
        assert_eq!(m.oldest_version, 5);
        // The larger of the key's and the mount's limit wins; 10 when neither is set.
        let mut d = KeyMeta::new(1);
        for i in 1..=12 {
            d.add_version(i, None, 0);
        }
        assert_eq!(d.versions.len(), 10);
        assert_eq!(d.oldest_version, 3);
    }

    #[test]
    fn deletion_time_takes_the_smaller_setting() {
        let c = |dva| Config {
            delete_version_after: dva,
            ..Default::default()
        };
        assert_eq!(c(0).deletion_time(0, 0), None);
        assert_eq!(c(10).deletion_time(0, 0), Some(10_000_000_000));
        assert_eq!(c(0).deletion_time(0, 5), Some(5_000_000_000));
        assert_eq!(c(10).deletion_time(0, 5), Some(5_000_000_000));
        assert_eq!(c(3).deletion_time(0, 5), Some(3_000_000_000));
        assert_eq!(c(DVA_DISABLED).deletion_time(0, 5), None);
    }

    #[test]
    fn custom_metadata_is_weakly_typed_and_validated() {
        let m = parse_custom_metadata(&json!({"a": "x", "n": 5, "b": true})).unwrap();
        assert_eq!(m.get("n").unwrap(), "5");
        assert_eq!(m.get("b").unwrap(), "1");
        assert!(parse_custom_metadata(&json!({"a": {"x": 1}}))
            .unwrap_err()
            .starts_with(CUSTOM_PREFIX));
        assert!(parse_custom_metadata(&json!({"a": ""}))
            .unwrap_err()
            .contains("length of value"));
        assert!(parse_custom_metadata(&json!({"": "x"}))
            .unwrap_err()
            .contains("length of key"));
        assert!(parse_custom_metadata(&json!({"a": "x\ny"}))
            .unwrap_err()
            .contains("unprintable"));
        assert!(parse_custom_metadata(&json!("x")).is_err());
        assert!(parse_custom_metadata(&json!(null)).unwrap().is_empty());
        let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(parse_custom_metadata(&Value::Object(many))
            .unwrap_err()
            .contains("at most 64"));
        let patched = patch_custom_metadata(Some(m), &json!({"a": null, "c": "3"})).unwrap();
        assert_eq!(patched.keys().collect::<Vec<_>>(), vec!["b", "c", "n"]);
    }
}
