//! The compiled ACL: the union of a token's policies, shaped for a fast per-request check.
//!
//! Layout (Vault keeps three radix trees; the lookups here answer the same questions):
//! * exact rules: a `HashMap` keyed by path;
//! * prefix rules (`foo/*`): a `HashMap` keyed by the prefix plus the distinct prefix lengths,
//!   longest first, so the longest matching prefix costs one hash probe per distinct length;
//! * segment-wildcard rules (`foo/+/bar`, `foo/+/*`): pre-split, and sorted once by Vault's
//!   priority order. A rule's priority depends only on the rule, so the first matching rule
//!   is the best one, and the scan stops as soon as the remaining rules rank below the
//!   matching prefix rule.
//!
//! A check allocates nothing unless a request parameter name has upper-case letters or a
//! `policies` parameter must be lowercased.

use super::parse::*;
use super::Policy;
use crate::error::{Error, Result};
use crate::logical::{Data, Operation};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Merged permissions of one path string, plus what the check precomputes.
#[derive(Debug, Clone)]
struct Entry {
    perms: Permissions,
    /// `required_parameters`, lowercased (Vault looks up `strings.ToLower(name)`).
    required_lc: Vec<String>,
}

impl Entry {
    fn new(perms: Permissions) -> Entry {
        let required_lc = perms
            .required_parameters
            .iter()
            .map(|p| p.to_lowercase())
            .collect();
        Entry { perms, required_lc }
    }
    fn caps(&self) -> u32 {
        self.perms.capabilities
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Plus,
    Lit(String),
}

/// What ranks two matching non-exact rules (Vault's `wcPathDescr`).
#[derive(Debug, Clone, Copy)]
struct Rank<'a> {
    /// Byte index of the first `+` (segment rules) or the length of the prefix (prefix rules).
    first_wc: usize,
    is_prefix: bool,
    wildcards: usize,
    /// The path without its trailing `*`.
    wc_path: &'a str,
}

/// `Greater` means `a` has the higher priority (Vault's documented priority rules, in order).
fn cmp_rank(a: &Rank, b: &Rank) -> Ordering {
    a.first_wc
        .cmp(&b.first_wc)
        // ending in `*` is lower priority
        .then_with(|| b.is_prefix.cmp(&a.is_prefix))
        // more `+` segments is lower priority
        .then_with(|| b.wildcards.cmp(&a.wildcards))
        // shorter is lower priority
        .then_with(|| a.wc_path.len().cmp(&b.wc_path.len()))
        // lexicographically smaller is lower priority
        .then_with(|| a.wc_path.cmp(b.wc_path))
}

#[derive(Debug, Clone)]
struct SegmentRule {
    /// The rule's path without its trailing `*`.
    wc_path: String,
    segments: Vec<Seg>,
    is_prefix: bool,
    first_wc: usize,
    wildcards: usize,
    entry: Entry,
}

impl SegmentRule {
    fn new(mut pattern: String, perms: Permissions) -> SegmentRule {
        // Vault ranks by the position of the first `+` in the path as written.
        let first_wc = pattern.find('+').unwrap_or(0);
        let is_prefix = pattern.ends_with('*');
        if is_prefix {
            pattern.pop();
        }
        let wc_path = pattern;
        let segments: Vec<Seg> = wc_path
            .split('/')
            .map(|s| {
                if s == "+" {
                    Seg::Plus
                } else {
                    Seg::Lit(s.to_string())
                }
            })
            .collect();
        let wildcards = segments.iter().filter(|s| matches!(s, Seg::Plus)).count();
        SegmentRule {
            first_wc,
            wc_path,
            segments,
            is_prefix,
            wildcards,
            entry: Entry::new(perms),
        }
    }

    fn rank(&self) -> Rank<'_> {
        Rank {
            first_wc: self.first_wc,
            is_prefix: self.is_prefix,
            wildcards: self.wildcards,
            wc_path: &self.wc_path,
        }
    }

    /// Vault's segment match: `+` matches any one segment (even an empty one); a trailing `*`
    /// lets the last segment be a prefix of the request's segment and anything follow.
    fn matches(&self, path: &str, path_segments: usize) -> bool {
        let k = self.segments.len();
        if path_segments < k || (!self.is_prefix && path_segments != k) {
            return false;
        }
        for (i, (seg, part)) in self.segments.iter().zip(path.split('/')).enumerate() {
            if let Seg::Lit(lit) = seg {
                if lit != part && !(self.is_prefix && i == k - 1 && part.starts_with(lit.as_str()))
                {
                    return false;
                }
            }
        }
        true
    }
}

/// The union of a token's policies, compiled. Cheap to share behind an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Entry>,
    prefix: HashMap<String, Entry>,
    /// Distinct prefix-rule key lengths, longest first.
    prefix_lens: Vec<usize>,
    /// Highest priority first.
    segment: Vec<SegmentRule>,
}

/// Vault's merge of two rules with the same path string (`NewACL`).
fn merge(existing: &mut Permissions, new: &Permissions) {
    if existing.capabilities & CAP_DENY != 0 {
        return;
    }
    if new.capabilities & CAP_DENY != 0 {
        existing.capabilities = CAP_DENY;
        existing.allowed_parameters.clear();
        existing.denied_parameters.clear();
        return;
    }
    existing.capabilities |= new.capabilities;
    // The lesser of two set values wins, for both bounds.
    if !new.max_wrapping_ttl.is_zero()
        && (existing.max_wrapping_ttl.is_zero() || new.max_wrapping_ttl < existing.max_wrapping_ttl)
    {
        existing.max_wrapping_ttl = new.max_wrapping_ttl;
    }
    if !new.min_wrapping_ttl.is_zero()
        && (existing.min_wrapping_ttl.is_zero() || new.min_wrapping_ttl < existing.min_wrapping_ttl)
    {
        existing.min_wrapping_ttl = new.min_wrapping_ttl;
    }
    merge_params(&mut existing.allowed_parameters, &new.allowed_parameters);
    merge_params(&mut existing.denied_parameters, &new.denied_parameters);
    for r in &new.required_parameters {
        if !existing.required_parameters.contains(r) {
            existing.required_parameters.push(r.clone());
        }
    }
}

/// An empty list (any value) absorbs a list of values; two lists concatenate.
fn merge_params(existing: &mut HashMap<String, Vec<Value>>, new: &HashMap<String, Vec<Value>>) {
    for (key, values) in new {
        match existing.get_mut(key) {
            Some(cur) if cur.is_empty() => {}
            Some(cur) if values.is_empty() => cur.clear(),
            Some(cur) => cur.extend(values.iter().cloned()),
            None => {
                existing.insert(key.clone(), values.clone());
            }
        }
    }
}

fn op_capability(op: Operation) -> u32 {
    match op {
        Operation::Read => CAP_READ,
        Operation::List => CAP_LIST,
        Operation::Create => CAP_CREATE,
        Operation::Update => CAP_UPDATE,
        Operation::Delete => CAP_DELETE,
        Operation::Patch => CAP_PATCH,
        Operation::Help => 0,
    }
}

impl Acl {
    /// Compiles the union of policies. A policy named `root` makes a root ACL. Rules with
    /// identity templating and expired rules are left out, as Vault does for a token without
    /// an entity.
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        let now = crate::util::unix_now();
        let mut root = false;
        let mut exact: HashMap<String, Permissions> = HashMap::new();
        let mut prefix: HashMap<String, Permissions> = HashMap::new();
        let mut segment: HashMap<String, Permissions> = HashMap::new();
        for policy in policies {
            if policy.name == "root" {
                root = true;
            }
            for rule in &policy.rules {
                if rule.templated || rule.expiration.is_some_and(|e| now > e) {
                    continue;
                }
                let map = match rule.kind {
                    RuleKind::Exact => &mut exact,
                    RuleKind::Prefix => &mut prefix,
                    RuleKind::Segment => &mut segment,
                };
                match map.get_mut(rule.key()) {
                    Some(existing) => merge(existing, &rule.permissions),
                    None => {
                        map.insert(rule.key().to_string(), rule.permissions.clone());
                    }
                }
            }
        }
        let mut prefix_lens: Vec<usize> = prefix.keys().map(String::len).collect();
        prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
        prefix_lens.dedup();
        let mut segment: Vec<SegmentRule> = segment
            .into_iter()
            .map(|(pattern, perms)| SegmentRule::new(pattern, perms))
            .collect();
        segment.sort_by(|a, b| cmp_rank(&b.rank(), &a.rank()));
        Acl {
            root,
            exact: exact.into_iter().map(|(k, p)| (k, Entry::new(p))).collect(),
            prefix: prefix
                .into_iter()
                .map(|(k, p)| (k, Entry::new(p)))
                .collect(),
            prefix_lens,
            segment,
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Vault's `sys/capabilities` answer for a path: sorted capability names, `["deny"]` if
    /// none, `["root"]` for root. Computed as for a list request (so `foo` also answers `foo/`).
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec!["root".to_string()];
        }
        capability_names(self.lookup(path, true).map_or(0, Entry::caps))
    }

    /// `Ok(())` if `op` on `path` is allowed with these request parameters; `needs_sudo` when
    /// the path is sudo-protected. A rule with `min_wrapping_ttl`/`max_wrapping_ttl` denies
    /// here (the request is taken as not wrapped): use [`Acl::check_wrapped`] to pass the
    /// requested wrap TTL.
    pub fn check(&self, path: &str, op: Operation, data: &Data, needs_sudo: bool) -> Result<()> {
        self.check_wrapped(path, op, data, needs_sudo, None)
    }

    /// [`Acl::check`], with the response-wrapping TTL the request asked for
    /// (`X-Vault-Wrap-TTL`), which `min_wrapping_ttl`/`max_wrapping_ttl` constrain.
    pub fn check_wrapped(
        &self,
        path: &str,
        op: Operation,
        data: &Data,
        needs_sudo: bool,
        wrap_ttl: Option<Duration>,
    ) -> Result<()> {
        if self.allowed(path, op, data, needs_sudo, wrap_ttl) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    fn allowed(
        &self,
        path: &str,
        op: Operation,
        data: &Data,
        needs_sudo: bool,
        wrap_ttl: Option<Duration>,
    ) -> bool {
        if self.root {
            return true;
        }
        // Vault and OpenBao answer help for any path, with no capability and no sudo.
        if op == Operation::Help {
            return true;
        }
        let Some(entry) = self.lookup(path, op == Operation::List) else {
            return false;
        };
        let caps = entry.caps();
        if caps & op_capability(op) == 0 {
            return false;
        }
        if needs_sudo && caps & CAP_SUDO == 0 {
            return false;
        }
        let perms = &entry.perms;
        let (min, max) = (perms.min_wrapping_ttl, perms.max_wrapping_ttl);
        if !max.is_zero() && wrap_ttl.is_none_or(|t| t > max) {
            return false;
        }
        if !min.is_zero() && wrap_ttl.is_none_or(|t| t < min) {
            return false;
        }
        if !min.is_zero() && !max.is_zero() && max < min {
            return false;
        }
        // Vault constrains parameters on read as well as on writes (query parameters of a read
        // are request data too).
        match op {
            Operation::Read | Operation::Create | Operation::Update | Operation::Patch => {
                parameters_allowed(entry, data)
            }
            _ => true,
        }
    }

    /// `(min_wrapping_ttl, max_wrapping_ttl)` in seconds of the rule governing `path`, if set.
    pub fn wrapping_bounds(&self, path: &str) -> (Option<u64>, Option<u64>) {
        if self.root {
            return (None, None);
        }
        match self.lookup(path, false) {
            Some(e) if e.caps() & CAP_DENY == 0 => {
                let secs = |d: Duration| (!d.is_zero()).then_some(d.as_secs());
                (
                    secs(e.perms.min_wrapping_ttl),
                    secs(e.perms.max_wrapping_ttl),
                )
            }
            _ => (None, None),
        }
    }

    /// Whether the token may see a mount (Vault's `hasMountAccess`, used by
    /// `sys/internal/ui/mounts`): any non-deny capability on the mount path or on a rule
    /// beneath it. `mount_path` ends with `/`.
    pub fn has_mount_access(&self, mount_path: &str) -> bool {
        if self.root {
            return true;
        }
        let path = mount_path.trim_start_matches('/');
        if self.capabilities(path) != ["deny"] {
            return true;
        }
        const GRANTS: u32 =
            CAP_CREATE | CAP_DELETE | CAP_LIST | CAP_READ | CAP_SUDO | CAP_UPDATE | CAP_PATCH;
        let grants = |e: &Entry| e.caps() & CAP_DENY == 0 && e.caps() & GRANTS != 0;
        if self
            .exact
            .iter()
            .chain(self.prefix.iter())
            .any(|(k, e)| k.starts_with(path) && grants(e))
        {
            return true;
        }
        // Segment rules: does the rule match the mount path's segments so far?
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 2 {
            return false;
        }
        let stop = parts.len() - 2;
        'rules: for rule in &self.segment {
            let k = rule.segments.len();
            let mut joined = String::new();
            for (i, seg) in rule.segments.iter().enumerate() {
                let part = parts[i];
                match seg {
                    Seg::Plus => joined.push_str(part),
                    Seg::Lit(lit) if lit == part => joined.push_str(part),
                    Seg::Lit(lit)
                        if rule.is_prefix && i == k - 1 && part.starts_with(lit.as_str()) =>
                    {
                        joined.push_str(&parts[i..].join("/"))
                    }
                    Seg::Lit(_) => continue 'rules,
                }
                if i == stop {
                    joined.push('/');
                    if joined.starts_with(path) && grants(&rule.entry) && rule.entry.caps() != 0 {
                        return true;
                    }
                    continue 'rules;
                }
                joined.push('/');
            }
        }
        false
    }

    /// Vault's `sys/internal/ui/resultant-acl` data: exact and prefix rules with their merged
    /// permissions (segment-wildcard rules are not listed, as in Vault), or `{"root": true}`.
    pub fn resultant_acl(&self) -> Value {
        if self.root {
            return json!({ "root": true });
        }
        fn describe(map: &HashMap<String, Entry>) -> Map<String, Value> {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| {
                    let p = &map[k].perms;
                    let mut d = Map::new();
                    d.insert("capabilities".into(), json!(p.capabilities()));
                    if !p.required_parameters.is_empty() {
                        d.insert("required_parameters".into(), json!(p.required_parameters));
                    }
                    if !p.allowed_parameters.is_empty() {
                        d.insert("allowed_parameters".into(), json!(p.allowed_parameters));
                    }
                    if !p.denied_parameters.is_empty() {
                        d.insert("denied_parameters".into(), json!(p.denied_parameters));
                    }
                    if !p.min_wrapping_ttl.is_zero() {
                        d.insert(
                            "min_wrapping_ttl".into(),
                            json!(p.min_wrapping_ttl.as_secs()),
                        );
                    }
                    if !p.max_wrapping_ttl.is_zero() {
                        d.insert(
                            "max_wrapping_ttl".into(),
                            json!(p.max_wrapping_ttl.as_secs()),
                        );
                    }
                    (k.clone(), Value::Object(d))
                })
                .collect()
        }
        json!({
            "exact_paths": describe(&self.exact),
            "glob_paths": describe(&self.prefix),
            "root": false,
        })
    }

    /// The rule governing `path`: exact, then (for list) exact without the trailing `/`, then
    /// the best prefix or segment rule, then (for list) that without the trailing `/`.
    fn lookup(&self, path: &str, list: bool) -> Option<&Entry> {
        let path = path.trim_start_matches('/');
        if let Some(e) = self.exact.get(path) {
            return Some(e);
        }
        let trimmed = if list { path.strip_suffix('/') } else { None };
        if let Some(e) = trimmed.and_then(|t| self.exact.get(t)) {
            return Some(e);
        }
        self.non_exact(path)
            .or_else(|| trimmed.and_then(|t| self.non_exact(t)))
    }

    fn non_exact(&self, path: &str) -> Option<&Entry> {
        let prefix = self.longest_prefix(path);
        if self.segment.is_empty() {
            return prefix.map(|(_, e)| e);
        }
        let prefix_rank = prefix.map(|(key, _)| Rank {
            first_wc: key.len(),
            is_prefix: true,
            wildcards: 0,
            wc_path: key,
        });
        let path_segments = path.bytes().filter(|&b| b == b'/').count() + 1;
        for rule in &self.segment {
            if let Some(pr) = &prefix_rank {
                if cmp_rank(&rule.rank(), pr) == Ordering::Less {
                    break;
                }
            }
            if rule.matches(path, path_segments) {
                return Some(&rule.entry);
            }
        }
        prefix.map(|(_, e)| e)
    }

    fn longest_prefix<'a>(&'a self, path: &str) -> Option<(&'a str, &'a Entry)> {
        for &len in &self.prefix_lens {
            if len > path.len() || !path.is_char_boundary(len) {
                continue;
            }
            if let Some((k, e)) = self.prefix.get_key_value(&path[..len]) {
                return Some((k.as_str(), e));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Parameter constraints (Vault's `AllowOperation`, non-legacy list matching)

fn lowercase(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Vault lowercases the values of `policies`/`token_policies` before matching, since it
/// lowercases policy names itself (otherwise `Root` would slip past a denied `root`).
fn normalize<'a>(name: &str, value: &'a Value) -> Cow<'a, Value> {
    if !(name.eq_ignore_ascii_case("policies") || name.eq_ignore_ascii_case("token_policies")) {
        return Cow::Borrowed(value);
    }
    match value {
        Value::String(s) => Cow::Owned(Value::String(s.to_lowercase())),
        Value::Array(items) => Cow::Owned(Value::Array(
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Value::String(s.to_lowercase()),
                    other => other.clone(),
                })
                .collect(),
        )),
        _ => Cow::Borrowed(value),
    }
}

fn parameters_allowed(entry: &Entry, data: &Data) -> bool {
    if entry.required_lc.iter().any(|r| !data.contains_key(r)) {
        return false;
    }
    if data.is_empty() {
        return true;
    }
    let perms = &entry.perms;
    if !perms.denied_parameters.is_empty() {
        if perms.denied_parameters.contains_key("*") {
            return false;
        }
        for (name, value) in data {
            if let Some(list) = perms.denied_parameters.get(lowercase(name).as_ref()) {
                if value_in_denied_list(&normalize(name, value), list) {
                    return false;
                }
            }
        }
    }
    if perms.allowed_parameters.is_empty() {
        return true;
    }
    let allowed_all = perms.allowed_parameters.contains_key("*");
    if allowed_all && perms.allowed_parameters.len() == 1 {
        return true;
    }
    for (name, value) in data {
        match perms.allowed_parameters.get(lowercase(name).as_ref()) {
            None if !allowed_all => return false,
            None => {}
            Some(list) if !value_in_allowed_list(&normalize(name, value), list) => return false,
            Some(_) => {}
        }
    }
    true
}

/// Vault's `strutil.GlobbedStringsMatch`: a leading and/or trailing `*` on the policy value.
pub(crate) fn globbed_match(item: &str, val: &str) -> bool {
    if item.len() < 2 {
        return val == item;
    }
    match (item.starts_with('*'), item.ends_with('*')) {
        (true, true) => val.contains(&item[1..item.len() - 1]),
        (true, false) => val.ends_with(&item[1..]),
        (false, true) => val.starts_with(&item[..item.len() - 1]),
        (false, false) => val == item,
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64() == b.as_f64(),
    }
}

/// Vault's `valueInParameterList`: strings glob-match, null matches null, anything else must be
/// equal (numbers by value).
fn value_in_list(v: &Value, list: &[Value]) -> bool {
    list.iter().any(|el| match (el, v) {
        (Value::String(item), Value::String(val)) => globbed_match(item, val),
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        _ => el == v,
    })
}

fn str_in_list(s: &str, list: &[Value]) -> bool {
    list.iter()
        .any(|el| matches!(el, Value::String(item) if globbed_match(item, s)))
}

/// Vault's `parseutil.ParseCommaStringSlice` on a string: `""` is no elements.
fn comma_elements(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(move |_| !s.is_empty()).map(str::trim)
}

/// Empty list: any value. A list value (or a comma-separated string) is allowed when every
/// element is.
fn value_in_allowed_list(v: &Value, list: &[Value]) -> bool {
    if list.is_empty() || value_in_list(v, list) {
        return true;
    }
    match v {
        Value::Array(items) => items.iter().all(|i| value_in_list(i, list)),
        Value::String(s) => comma_elements(s).all(|e| str_in_list(e, list)),
        _ => false,
    }
}

/// Empty list: any value. A list value (or a comma-separated string) is denied when any
/// element is.
fn value_in_denied_list(v: &Value, list: &[Value]) -> bool {
    if list.is_empty() || value_in_list(v, list) {
        return true;
    }
    match v {
        Value::Array(items) => items.iter().any(|i| value_in_list(i, list)),
        Value::String(s) => comma_elements(s).any(|e| str_in_list(e, list)),
        _ => false,
    }
}
