//! Password policies (Vault's `sys/policies/password`): an HCL description of what a generated
//! password must look like, and the generator that honours it. Engines that generate passwords
//! (the database engine, later LDAP) use it through [`PasswordPolicy::generate`]; without a
//! named policy they use [`PasswordPolicy::vault_default`] (20 characters from upper, lower,
//! digits and `-`, at least one of each), as Vault does.
//!
//! ```hcl
//! length = 20
//! rule "charset" {
//!   charset   = "abcdefghijklmnopqrstuvwxyz"
//!   min-chars = 1
//! }
//! ```
//!
//! Generation draws every character uniformly from the union of the rules' charsets with
//! aws-lc-rs randomness and rejection sampling (no modulo bias), and keeps the first candidate
//! that satisfies every `min-chars` rule (so the result is uniform over the valid passwords).
//! When the rules are so tight that random candidates keep failing, it falls back to placing the
//! required characters first and filling and shuffling (Fisher–Yates, unbiased) the rest, so a
//! policy whose minimums fit in its length always succeeds, and fast.
//!
//! Stored policies live in the barrier at `sys/password_policy/<name>` as `{"policy": "<hcl>"}`.
//! Engines find the stored policies of the core that mounted them with [`lookup_for_mount`].

use crate::barrier::{random_bytes, View};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where stored policies live in the barrier (under the root view).
pub const STORAGE_PREFIX: &str = "sys/password_policy/";
/// Vault's bounds for a stored policy's length.
pub const MIN_LENGTH: usize = 4;
pub const MAX_LENGTH: usize = 100;
/// Random candidates tried before the constructive fallback.
const REJECTION_ATTEMPTS: usize = 1000;

/// One `rule "charset"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetRule {
    pub charset: Vec<char>,
    pub min_chars: usize,
}

/// A parsed password policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub rules: Vec<CharsetRule>,
    /// The union of every rule's charset, sorted and deduplicated.
    charset: Vec<char>,
}

/// A policy as stored: the text the operator wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPolicy {
    pub policy: String,
}

impl PasswordPolicy {
    /// Builds and validates a policy (the checks Vault's `validateConfig` makes).
    pub fn new(length: usize, rules: Vec<CharsetRule>) -> std::result::Result<Self, String> {
        let mut charset: Vec<char> = rules.iter().flat_map(|r| r.charset.clone()).collect();
        charset.sort_unstable();
        charset.dedup();
        let min_total: usize = rules.iter().map(|r| r.min_chars).sum();
        if length == 0 {
            return Err("length must be > 0".into());
        }
        if length < min_total {
            return Err(format!(
                "specified rules require at least {min_total} characters but {length} is specified"
            ));
        }
        if charset.is_empty() {
            return Err("no charset specified".into());
        }
        if charset.iter().any(|c| c.is_control()) {
            return Err("non-printable character in charset".into());
        }
        Ok(PasswordPolicy {
            length,
            rules,
            charset,
        })
    }

    /// Vault's default for generated database passwords: 20 characters from `A-Z a-z 0-9 -`,
    /// at least one of each class.
    pub fn vault_default() -> Self {
        let rule = |s: &str| CharsetRule {
            charset: s.chars().collect(),
            min_chars: 1,
        };
        PasswordPolicy::new(
            20,
            vec![
                rule("abcdefghijklmnopqrstuvwxyz"),
                rule("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                rule("0123456789"),
                rule("-"),
            ],
        )
        .expect("the default policy is valid")
    }

    /// Parses policy text: HCL, or JSON when it starts with `{` (Vault's parser takes both).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let raw = if text.trim_start().starts_with('{') {
            parse_json(text)?
        } else {
            parse_hcl(text)?
        };
        PasswordPolicy::new(raw.0, raw.1)
    }

    /// The union of the rules' charsets.
    pub fn charset(&self) -> &[char] {
        &self.charset
    }

    /// Whether `password` satisfies the policy (length and every rule's minimum).
    pub fn accepts(&self, password: &str) -> bool {
        let chars: Vec<char> = password.chars().collect();
        chars.len() == self.length
            && chars.iter().all(|c| self.charset.binary_search(c).is_ok())
            && self
                .rules
                .iter()
                .all(|r| chars.iter().filter(|c| r.charset.contains(c)).count() >= r.min_chars)
    }

    /// Generates a password that satisfies every rule.
    pub fn generate(&self) -> String {
        let mut rng = Uniform::default();
        for _ in 0..REJECTION_ATTEMPTS {
            let candidate: Vec<char> = (0..self.length)
                .map(|_| self.charset[rng.below(self.charset.len())])
                .collect();
            if self
                .rules
                .iter()
                .all(|r| candidate.iter().filter(|c| r.charset.contains(c)).count() >= r.min_chars)
            {
                return candidate.into_iter().collect();
            }
        }
        // Constructive fallback: each rule's minimum first, the rest from the union, shuffled.
        let mut out: Vec<char> = Vec::with_capacity(self.length);
        for r in &self.rules {
            for _ in 0..r.min_chars {
                out.push(r.charset[rng.below(r.charset.len())]);
            }
        }
        while out.len() < self.length {
            out.push(self.charset[rng.below(self.charset.len())]);
        }
        for i in (1..out.len()).rev() {
            let j = rng.below(i + 1);
            out.swap(i, j);
        }
        out.into_iter().collect()
    }
}

/// Unbiased integers below a bound, from aws-lc-rs randomness (rejection sampling).
#[derive(Default)]
struct Uniform {
    pool: Vec<u8>,
}

impl Uniform {
    fn next_u32(&mut self) -> u32 {
        if self.pool.len() < 4 {
            self.pool = random_bytes(256);
        }
        let b: [u8; 4] = [
            self.pool.pop().unwrap_or(0),
            self.pool.pop().unwrap_or(0),
            self.pool.pop().unwrap_or(0),
            self.pool.pop().unwrap_or(0),
        ];
        u32::from_le_bytes(b)
    }

    /// A uniform integer in `0..n` (`n > 0`): values in the incomplete last block of `n` are
    /// rejected, so no residue is more likely than another.
    fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = (1u64 << 32) - ((1u64 << 32) % n);
        loop {
            let v = self.next_u32() as u64;
            if v < zone {
                return (v % n) as usize;
            }
        }
    }
}

type Raw = (usize, Vec<CharsetRule>);

fn parse_hcl(text: &str) -> std::result::Result<Raw, String> {
    let body = hcl::parse(text).map_err(|e| match e {
        hcl::Error::Parse(p) => {
            let loc = p.location();
            format!(
                "unable to decode: At {}:{}: {}",
                loc.line(),
                loc.column(),
                p.message()
            )
        }
        other => format!("unable to decode: {other}"),
    })?;
    let mut length = 0usize;
    let mut rules = Vec::new();
    for s in body.iter() {
        match s {
            hcl::Structure::Attribute(a) if a.key.as_str() == "length" => {
                length = match expr_value(&a.expr)? {
                    Value::Number(n) => n
                        .as_u64()
                        .ok_or_else(|| "length must be a positive integer".to_string())?
                        as usize,
                    Value::String(s) => s
                        .trim()
                        .parse()
                        .map_err(|_| "length must be a positive integer".to_string())?,
                    _ => return Err("length must be a positive integer".into()),
                };
            }
            hcl::Structure::Attribute(a) => {
                return Err(format!("invalid key {:?}", a.key.as_str()));
            }
            hcl::Structure::Block(b) if b.identifier.as_str() == "rule" => {
                let kind = b.labels.first().map(|l| l.as_str()).unwrap_or("");
                if kind != "charset" {
                    return Err(format!(
                        "unable to parse rules: unable to parse rule {kind}: unrecognized rule type {kind}"
                    ));
                }
                let mut obj = serde_json::Map::new();
                for inner in b.body.iter() {
                    match inner {
                        hcl::Structure::Attribute(a) => {
                            obj.insert(a.key.as_str().to_string(), expr_value(&a.expr)?);
                        }
                        hcl::Structure::Block(b) => {
                            return Err(format!(
                                "unexpected block {:?} in a charset rule",
                                b.identifier.as_str()
                            ))
                        }
                    }
                }
                rules.push(charset_rule(&obj)?);
            }
            hcl::Structure::Block(b) => {
                return Err(format!("invalid key {:?}", b.identifier.as_str()));
            }
        }
    }
    Ok((length, rules))
}

/// `{"length": 20, "rule": [{"charset": {"charset": "abc", "min-chars": 1}}]}` (also a single
/// object for `rule`, as HCL's JSON form allows).
fn parse_json(text: &str) -> std::result::Result<Raw, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("unable to decode: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("unable to decode: expected an object")?;
    let mut length = 0usize;
    let mut rules = Vec::new();
    for (k, v) in obj {
        match k.as_str() {
            "length" => {
                length = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or("length must be a positive integer")? as usize
            }
            "rule" => {
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for item in items {
                    let m = item.as_object().ok_or("unable to parse rules")?;
                    for (kind, body) in m {
                        if kind != "charset" {
                            return Err(format!(
                                "unable to parse rules: unable to parse rule {kind}: unrecognized rule type {kind}"
                            ));
                        }
                        let bodies: Vec<&Value> = match body {
                            Value::Array(a) => a.iter().collect(),
                            other => vec![other],
                        };
                        for b in bodies {
                            rules
                                .push(charset_rule(b.as_object().ok_or("unable to parse rules")?)?);
                        }
                    }
                }
            }
            other => return Err(format!("invalid key {other:?}")),
        }
    }
    Ok((length, rules))
}

fn charset_rule(obj: &serde_json::Map<String, Value>) -> std::result::Result<CharsetRule, String> {
    let mut charset = None;
    let mut min_chars = 0usize;
    for (k, v) in obj {
        match k.as_str() {
            "charset" => {
                charset = Some(
                    v.as_str()
                        .ok_or("charset must be a string")?
                        .chars()
                        .collect::<Vec<char>>(),
                )
            }
            "min-chars" | "min_chars" => {
                min_chars = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or("min-chars must be a non-negative integer")?
                    as usize
            }
            other => return Err(format!("unable to parse rules: invalid key {other:?}")),
        }
    }
    let mut charset = charset.unwrap_or_default();
    if charset.is_empty() {
        return Err("unable to parse rules: charset rule without a charset".into());
    }
    // A charset's duplicates would skew nothing (membership is what counts) but waste draws.
    charset.sort_unstable();
    charset.dedup();
    Ok(CharsetRule { charset, min_chars })
}

fn expr_value(expr: &hcl::Expression) -> std::result::Result<Value, String> {
    use hcl::Expression as E;
    Ok(match expr {
        E::Number(n) => n
            .as_u64()
            .map(Value::from)
            .ok_or_else(|| "expected a non-negative integer".to_string())?,
        E::String(s) => Value::String(s.clone()),
        E::TemplateExpr(t) => match t.as_ref() {
            hcl::TemplateExpr::QuotedString(s) => Value::String(unescape(s)),
            hcl::TemplateExpr::Heredoc(h) => Value::String(h.template.clone()),
        },
        E::Parenthesis(inner) => expr_value(inner)?,
        _ => return Err("expected a string or a number".into()),
    })
}

/// HCL escapes in a quoted string that hcl-rs kept raw (it does so for template strings).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Stored policies

/// Reads and parses a stored policy from the root view; `None` when there is no such policy.
pub async fn load(root: &View, name: &str) -> Result<Option<(StoredPolicy, PasswordPolicy)>> {
    if !valid_name(name) {
        return Ok(None);
    }
    let Some(stored) = root
        .get_json::<StoredPolicy>(&format!("{STORAGE_PREFIX}{name}"))
        .await?
    else {
        return Ok(None);
    };
    let parsed = PasswordPolicy::parse(&stored.policy)
        .map_err(|e| Error::internal(format!("stored password policy {name:?} is invalid: {e}")))?;
    Ok(Some((stored, parsed)))
}

/// Policy names are one path segment.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

/// The stored policy `name`, for a backend that wants passwords of that shape (Vault's
/// `GeneratePasswordFromPolicy`). `storage` is the backend's own view: it grants read access to
/// the system's password policies and to nothing else outside the backend. Errors when the
/// policy does not exist, as Vault does.
pub async fn lookup(storage: &View, name: &str) -> Result<PasswordPolicy> {
    match load(&storage.system_root(), name).await? {
        Some((_, p)) => Ok(p),
        None => Err(Error::bad(format!(
            "password policy {name:?} does not exist"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HCL: &str = r#"
length = 24
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset = "0123456789"
  min-chars = 3
}
rule "charset" {
  charset = "!@#\"\\"
  min-chars = 1
}
"#;

    #[test]
    fn parses_hcl_and_json() {
        let p = PasswordPolicy::parse(HCL).unwrap();
        assert_eq!(p.length, 24);
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[1].min_chars, 3);
        assert!(p.rules[2].charset.contains(&'"') && p.rules[2].charset.contains(&'\\'));
        let j = PasswordPolicy::parse(
            r#"{"length": 8, "rule": [{"charset": {"charset": "ab", "min-chars": 1}}]}"#,
        )
        .unwrap();
        assert_eq!(j.length, 8);
        assert_eq!(j.charset(), &['a', 'b']);
    }

    #[test]
    fn rejects_bad_policies() {
        assert!(PasswordPolicy::parse("length = 5")
            .unwrap_err()
            .contains("no charset"));
        let e = PasswordPolicy::parse(
            "length = 2\nrule \"charset\" {\n charset = \"abc\"\n min-chars = 3\n}",
        )
        .unwrap_err();
        assert!(e.contains("require at least 3"), "{e}");
        let e =
            PasswordPolicy::parse("length = 5\nrule \"foo\" {\n charset = \"abc\"\n}").unwrap_err();
        assert!(e.contains("unrecognized rule type foo"), "{e}");
        assert!(PasswordPolicy::parse("garbage {")
            .unwrap_err()
            .starts_with("unable to decode"));
        assert!(PasswordPolicy::parse("length = 5\nfoo = 1").is_err());
    }

    #[test]
    fn generated_passwords_satisfy_every_rule() {
        let p = PasswordPolicy::parse(HCL).unwrap();
        for _ in 0..200 {
            let pw = p.generate();
            assert!(p.accepts(&pw), "{pw}");
        }
        let d = PasswordPolicy::vault_default();
        for _ in 0..200 {
            let pw = d.generate();
            assert_eq!(pw.len(), 20);
            assert!(d.accepts(&pw), "{pw}");
        }
    }

    #[test]
    fn tight_policies_use_the_constructive_fallback() {
        // 30 digits required out of 30 drawn from 62 characters: random candidates never pass.
        let p = PasswordPolicy::parse(
            "length = 30\nrule \"charset\" {\n charset = \"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\"\n}\nrule \"charset\" {\n charset = \"0123456789\"\n min-chars = 30\n}",
        )
        .unwrap();
        let pw = p.generate();
        assert!(pw.chars().all(|c| c.is_ascii_digit()) && pw.len() == 30);
    }

    #[test]
    fn sampling_is_unbiased_enough() {
        // 3 symbols: a modulo of a byte would favour some; rejection keeps counts close.
        let mut u = Uniform::default();
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[u.below(3)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
