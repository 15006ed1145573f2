//! Claim checks with Vault's semantics (`hashicorp/cap`'s `jwt.Validate` and the JWT plugin's
//! `claims.go`): issuer, subject, audience, the time claims with their three leeways, bound
//! claims (exact or glob), claim-to-metadata mappings, and JSON-pointer claim names.
//!
//! Also the `*` glob that Vault uses for bound claims, Kubernetes service account bounds and
//! certificate name constraints (`ryanuber/go-glob`): `*` matches any run of characters, and
//! nothing else is special.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Vault's default for the `nbf` and `exp` leeways when a role leaves them at 0 (seconds).
pub const DEFAULT_LEEWAY: i64 = 150;
/// The default clock skew leeway (go-jose's `DefaultLeeway`, seconds).
pub const DEFAULT_SKEW: i64 = 60;

/// `ryanuber/go-glob`: `*` matches any sequence (also empty); no other metacharacters.
pub fn glob(pattern: &str, subj: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == subj;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !subj.starts_with(first) {
        return false;
    }
    let mut rest = &subj[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether any pattern of `list` globs `s`.
pub fn any_glob(list: &[String], s: &str) -> bool {
    list.iter().any(|p| glob(p, s))
}

/// A scalar claim value as Vault compares them: numbers compare by their integer text
/// (go-oidc decodes them as float64, Vault turns those into `json.Number` of the integer).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(String),
    Bool(bool),
}

fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::String(s) => Some(Scalar::Str(s.clone())),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => Some(Scalar::Num(
            n.as_i64()
                .map(|i| i.to_string())
                .or_else(|| n.as_f64().map(|f| (f as i64).to_string()))
                .unwrap_or_default(),
        )),
        _ => None,
    }
}

/// Vault's `normalizeList`: a scalar becomes a one-element list; lists pass; others are `None`.
/// List elements that are not scalars become `None` entries (they never match).
fn normalize(v: &Value) -> Option<Vec<Option<Scalar>>> {
    match v {
        Value::Array(a) => Some(a.iter().map(scalar).collect()),
        v => scalar(v).map(|s| vec![Some(s)]),
    }
}

/// A claim by name, or by JSON pointer when the name starts with `/` (Vault's `getClaim`).
/// A single-string `aud` is returned as a one-element list.
pub fn get<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<std::borrow::Cow<'a, Value>> {
    let v = if let Some(p) = name.strip_prefix('/') {
        let (first, rest) = match p.find('/') {
            Some(i) => (&p[..i], &p[i..]),
            None => (p, ""),
        };
        let top = claims.get(&first.replace("~1", "/").replace("~0", "~"))?;
        if rest.is_empty() {
            top
        } else {
            top.pointer(rest)?
        }
    } else {
        claims.get(name)?
    };
    if v.is_null() {
        return None;
    }
    if name == "aud" {
        if let Value::String(s) = v {
            return Some(std::borrow::Cow::Owned(Value::Array(vec![Value::String(
                s.clone(),
            )])));
        }
    }
    Some(std::borrow::Cow::Borrowed(v))
}

/// What a token must satisfy besides its signature (cap's `jwt.Expected`). Leeways in
/// seconds: 0 means the default, a negative value means none.
#[derive(Debug, Clone, Default)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub audiences: &'a [String],
    pub not_before_leeway: i64,
    pub expiration_leeway: i64,
    pub clock_skew_leeway: i64,
    /// Kubernetes' variant: a token with none of `iat`, `nbf`, `exp` is accepted.
    pub allow_missing_times: bool,
}

fn leeway(v: i64, default: i64) -> i64 {
    match v {
        0 => default,
        v if v < 0 => 0,
        v => v,
    }
}

fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<i64, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => Ok(n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0)),
        Some(_) => Err(format!("the {name:?} claim is not a number")),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, String> {
    match claims.get("aud") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "the \"aud\" claim is not a string or a list of strings".into())
            })
            .collect(),
        Some(_) => Err("the \"aud\" claim is not a string or a list of strings".into()),
    }
}

/// The claim checks of cap's `Validator.Validate`, in its order, with its messages; `now` in
/// Unix seconds.
pub fn validate(claims: &Map<String, Value>, exp: &Expected<'_>, now: i64) -> Result<(), String> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
    if !exp.issuer.is_empty() && exp.issuer != s("iss") {
        return Err("invalid issuer (iss) claim".into());
    }
    if !exp.subject.is_empty() && exp.subject != s("sub") {
        return Err("invalid subject (sub) claim".into());
    }
    let aud = audiences(claims)?;
    if !exp.audiences.is_empty() && !exp.audiences.iter().any(|a| aud.contains(a)) {
        return Err(
            "invalid audience (aud) claim: audience claim does not match any expected audience"
                .into(),
        );
    }
    let iat = numeric_date(claims, "iat")?;
    let mut expiry = numeric_date(claims, "exp")?;
    let mut nbf = numeric_date(claims, "nbf")?;
    if iat == 0 && expiry == 0 && nbf == 0 {
        if exp.allow_missing_times {
            return Ok(());
        }
        return Err(
            "no issued at (iat), not before (nbf), or expiration time (exp) claims in token".into(),
        );
    }
    // Without `exp`, the token lives from its latest start (`iat`/`nbf`) plus the leeway.
    if expiry == 0 {
        expiry = iat.max(nbf) + leeway(exp.expiration_leeway, DEFAULT_LEEWAY);
    }
    // Without `nbf`: `iat`, else `exp` minus the leeway.
    if nbf == 0 {
        nbf = if iat != 0 {
            iat
        } else {
            expiry - leeway(exp.not_before_leeway, DEFAULT_LEEWAY)
        };
    }
    let skew = leeway(exp.clock_skew_leeway, DEFAULT_SKEW);
    if now + skew < nbf {
        return Err("invalid not before (nbf) claim: token not yet valid".into());
    }
    if now - skew > expiry {
        return Err("invalid expiration time (exp) claim: token is expired".into());
    }
    if iat != 0 && now + skew < iat {
        return Err("invalid issued at (iat) claim: token issued in the future".into());
    }
    Ok(())
}

/// Vault's `validateBoundClaims`: every bound claim must be present and one of its expected
/// values must equal (or, with globs, match) one of the claim's values.
pub fn check_bound(
    bound: &Map<String, Value>,
    globs: bool,
    claims: &Map<String, Value>,
) -> Result<(), String> {
    for (claim, expected) in bound {
        let actual = get(claims, claim).ok_or_else(|| format!("claim {claim:?} is missing"))?;
        let actual = normalize(&actual).ok_or_else(|| {
            format!("received claim is not a string, bool, int or list: {actual}")
        })?;
        let expected = normalize(expected)
            .ok_or_else(|| format!("bound claim is not a string, bool, int or list: {expected}"))?;
        let mut found = false;
        'outer: for e in expected.iter().flatten() {
            for a in actual.iter().flatten() {
                let hit = if globs {
                    let Scalar::Str(p) = e else {
                        return Err(format!("bound claim is not a glob string: {e:?}"));
                    };
                    matches!(a, Scalar::Str(s) if glob(p, s))
                } else {
                    a == e
                };
                if hit {
                    found = true;
                    break 'outer;
                }
            }
        }
        if !found {
            return Err(format!(
                "claim {claim:?} does not match any associated bound claim values"
            ));
        }
    }
    Ok(())
}

/// Vault's `extractMetadata`: `claim_mappings` (claim → metadata key) over the claims; mapped
/// claims must be strings; absent ones are skipped.
pub fn metadata(
    claims: &Map<String, Value>,
    mappings: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (source, target) in mappings {
        if let Some(v) = get(claims, source) {
            let s = v
                .as_str()
                .ok_or_else(|| format!("error converting claim '{source}' to string"))?;
            out.insert(target.clone(), s.to_string());
        }
    }
    Ok(out)
}

/// The group names of the `groups_claim` (a string or a list of strings; empty names skipped).
pub fn groups(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, String> {
    let v = get(claims, name).ok_or_else(|| format!("{name:?} claim not found in token"))?;
    let list = match v.as_ref() {
        Value::Array(a) => a.clone(),
        Value::String(_) | Value::Bool(_) | Value::Number(_) => vec![v.as_ref().clone()],
        _ => {
            return Err(format!(
                "{name:?} claim could not be converted to string list"
            ))
        }
    };
    let mut out = Vec::new();
    for g in list {
        let s = g
            .as_str()
            .ok_or_else(|| format!("value {g} in groups claim could not be parsed as string"))?;
        if !s.is_empty() {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn globs_like_go_glob() {
        assert!(glob("*", ""));
        assert!(glob("a*", "abc"));
        assert!(glob("*c", "abc"));
        assert!(glob("a*c", "abc"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("abc", "abc"));
        assert!(!glob("ab*bc", "abc"));
        assert!(glob(
            "repo:org/*:ref:refs/heads/main",
            "repo:org/x:ref:refs/heads/main"
        ));
    }

    #[test]
    fn time_claims_follow_cap() {
        let now = 1_000_000;
        let e = Expected::default();
        assert!(validate(&m(json!({"exp": now + 60, "iat": now})), &e, now).is_ok());
        // Only exp far ahead: nbf = exp - 150 is in the future (Vault's behaviour).
        assert_eq!(
            validate(&m(json!({"exp": now + 600})), &e, now).unwrap_err(),
            "invalid not before (nbf) claim: token not yet valid"
        );
        assert_eq!(
            validate(&m(json!({"exp": now - 61, "iat": now - 100})), &e, now).unwrap_err(),
            "invalid expiration time (exp) claim: token is expired"
        );
        // Within the 60 s skew.
        assert!(validate(&m(json!({"exp": now - 59, "iat": now - 100})), &e, now).is_ok());
        // No skew at all with a negative leeway.
        let strict = Expected {
            clock_skew_leeway: -1,
            ..Default::default()
        };
        assert!(validate(&m(json!({"exp": now - 1, "iat": now - 100})), &strict, now).is_err());
        assert!(validate(&m(json!({})), &e, now).is_err());
        let k8s = Expected {
            allow_missing_times: true,
            ..Default::default()
        };
        assert!(validate(&m(json!({})), &k8s, now).is_ok());
        // iat only: valid for 150 s.
        assert!(validate(&m(json!({"iat": now - 100})), &e, now).is_ok());
        assert!(validate(&m(json!({"iat": now - 300})), &e, now).is_err());
    }

    #[test]
    fn bound_claims_and_pointers() {
        let c = m(json!({"team": ["a", "b"], "n": 5, "ok": true, "nested": {"x": {"y": "z"}}}));
        assert!(check_bound(&m(json!({"team": "b"})), false, &c).is_ok());
        assert!(check_bound(&m(json!({"n": 5, "ok": true})), false, &c).is_ok());
        assert!(check_bound(&m(json!({"n": "5"})), false, &c).is_err());
        assert!(check_bound(&m(json!({"/nested/x/y": "z"})), false, &c).is_ok());
        assert!(check_bound(&m(json!({"/nested/x/y": "z*"})), true, &c).is_ok());
        assert_eq!(
            check_bound(&m(json!({"team": ["c*"]})), true, &c).unwrap_err(),
            "claim \"team\" does not match any associated bound claim values"
        );
        assert_eq!(
            check_bound(&m(json!({"missing": "x"})), false, &c).unwrap_err(),
            "claim \"missing\" is missing"
        );
        let md = metadata(
            &c,
            &BTreeMap::from([("/nested/x/y".to_string(), "why".to_string())]),
        )
        .unwrap();
        assert_eq!(md["why"], "z");
        assert!(metadata(&c, &BTreeMap::from([("n".to_string(), "n".to_string())])).is_err());
        assert_eq!(groups(&c, "team").unwrap(), vec!["a", "b"]);
    }
}
