//! Which names a role allows, with Vault's rules (`validateNames`, `validateCommonName`):
//! `allow_any_name`, `enforce_hostnames`, wildcards (RFC 6125: one `*`, in the left-most label,
//! unless `allow_wildcard_certificates` is off), `allow_localhost`, `allowed_domains` with
//! `allow_bare_domains`, `allow_subdomains` and `allow_glob_domains`, e-mail addresses (checked
//! by their domain), and `cn_validations` for the common name.
//!
//! Matching is case-sensitive for suffixes and case-insensitive for bare domains, as in Vault.

use super::roles::Role;
use regex::Regex;
use std::sync::OnceLock;

const LABEL: &str = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])";

fn hostname_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(
            r"^(\*\.)?({LABEL}\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])\.?$"
        ))
        .expect("hostname regex")
    })
}

fn wildcard_label_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(r"^(\*|\*{LABEL}|{LABEL}\*|{LABEL}\*{LABEL})$"))
            .expect("wildcard label regex")
    })
}

/// Whether `s` is a DNS name as Vault's `hostnameRegex` sees it (ASCII only).
pub fn is_hostname(s: &str) -> bool {
    hostname_re().is_match(s)
}

/// Glob matching as Vault's `go-glob`: `*` matches any run of characters, nothing else is
/// special.
pub fn glob(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) {
        return false;
    }
    let mut rest = &s[first.len()..];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Splits a wildcard name into (wildcard label, rest); None when the wildcard is misplaced or
/// repeated.
fn split_wildcard(name: &str) -> Option<(String, String)> {
    if name.matches('*').count() > 1 {
        return None;
    }
    match name.split_once('.') {
        None => Some((name.to_string(), String::new())),
        Some((label, rest)) => {
            if rest.contains('*') {
                None
            } else {
                Some((label.to_string(), rest.to_string()))
            }
        }
    }
}

/// The first name the role does not allow, if any.
pub fn first_invalid<'a>(role: &Role, names: &'a [String]) -> Option<&'a str> {
    names.iter().find(|n| !allowed(role, n)).map(String::as_str)
}

/// Whether the role allows one name.
pub fn allowed(role: &Role, name: &str) -> bool {
    let mut reduced = name.to_string();
    let mut email_domain = reduced.clone();
    let mut is_email = false;
    let mut is_wildcard = false;
    let mut wildcard_label = String::new();

    if reduced.contains('@') {
        let parts: Vec<String> = reduced.split('@').map(str::to_string).collect();
        if parts.len() != 2 {
            return false;
        }
        reduced = parts[1].clone();
        email_domain = parts[1].clone();
        is_email = true;
    }
    if reduced.contains('*') {
        is_wildcard = true;
        if !role.allow_wildcard_certificates {
            return false;
        }
        match split_wildcard(&reduced) {
            Some((label, rest)) => {
                wildcard_label = label;
                reduced = rest;
            }
            None => return false,
        }
    }
    if is_email && is_wildcard {
        return false;
    }
    if role.enforce_hostnames {
        if !reduced.is_empty() && (!reduced.is_ascii() || !is_hostname(&reduced)) {
            return false;
        }
        if is_wildcard && !wildcard_label_re().is_match(&wildcard_label) {
            return false;
        }
    }
    if role.allow_any_name {
        return true;
    }
    if role.allow_localhost {
        if reduced == "localhost"
            || reduced == "localdomain"
            || (is_email && (email_domain == "localhost" || email_domain == "localdomain"))
        {
            return true;
        }
        if role.allow_subdomains
            && (reduced.ends_with(".localhost")
                || (is_wildcard && reduced == "localhost")
                || reduced.ends_with(".localdomain")
                || (is_wildcard && reduced == "localdomain"))
        {
            return true;
        }
    }
    for domain in &role.allowed_domains {
        if domain.is_empty() {
            continue;
        }
        if role.allow_bare_domains
            && (name.eq_ignore_ascii_case(domain)
                || (is_email && email_domain.eq_ignore_ascii_case(domain)))
        {
            return true;
        }
        if role.allow_subdomains
            && (reduced.ends_with(&format!(".{domain}"))
                || (is_wildcard && reduced.eq_ignore_ascii_case(domain)))
        {
            return true;
        }
        if role.allow_glob_domains && domain.contains('*') && glob(domain, name) {
            return true;
        }
    }
    false
}

/// Vault's `validateCommonName`: the common name passes the name rules and is of a type
/// `cn_validations` allows (`disabled` skips every check).
pub fn common_name_allowed(role: &Role, cn: &str) -> bool {
    let v = &role.cn_validations;
    if v.len() == 1 && v[0] == "disabled" {
        return true;
    }
    if !allowed(role, cn) {
        return false;
    }
    if v.is_empty() {
        return true;
    }
    if cn.contains('@') {
        v.iter().any(|x| x == "email")
    } else {
        v.iter().any(|x| x == "hostname")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(f: impl FnOnce(&mut Role)) -> Role {
        let mut r = Role::default();
        f(&mut r);
        r
    }

    #[test]
    fn globs() {
        assert!(glob("*.example.com", "a.example.com"));
        assert!(glob("a*c", "abbbc"));
        assert!(!glob("a*c", "abbb"));
        assert!(glob("spiffe://a/*", "spiffe://a/x"));
        assert!(!glob("spiffe://a/*", "spiffe://b/x"));
        assert!(glob("exact", "exact"));
    }

    #[test]
    fn hostnames() {
        assert!(is_hostname("a.example.com"));
        assert!(is_hostname("*.example.com"));
        assert!(!is_hostname("bad_host.com"));
        assert!(!is_hostname("Some Name"));
    }

    #[test]
    fn domains_subdomains_globs_and_localhost() {
        let r = role(|r| {
            r.allowed_domains = vec!["example.com".into(), "*.glob.org".into()];
            r.allow_subdomains = true;
            r.allow_glob_domains = true;
        });
        for ok in [
            "a.example.com",
            "*.example.com",
            "a.b.example.com",
            "x.glob.org",
            "localhost",
            "foo@a.example.com",
        ] {
            assert!(allowed(&r, ok), "{ok} should be allowed");
        }
        for no in [
            "example.com",
            "glob.org",
            "1.2.3.4",
            "foo@example.com",
            "A.EXAMPLE.COM",
            "x.*.example.com",
            "evil.com",
            "example.com.evil.com",
        ] {
            assert!(!allowed(&r, no), "{no} should be rejected");
        }
        let bare = role(|r| {
            r.allowed_domains = vec!["example.com".into()];
            r.allow_bare_domains = true;
        });
        assert!(allowed(&bare, "example.com"));
        assert!(!allowed(&bare, "a.example.com"));
    }

    #[test]
    fn any_name_still_enforces_hostnames_and_wildcards() {
        let r = role(|r| r.allow_any_name = true);
        assert!(allowed(&r, "*.foo.com"));
        assert!(allowed(&r, "a*.foo.com"));
        assert!(allowed(&r, "*"));
        assert!(!allowed(&r, "foo.*"));
        assert!(!allowed(&r, "Some Name"));
        let loose = role(|r| {
            r.allow_any_name = true;
            r.enforce_hostnames = false;
        });
        assert!(allowed(&loose, "Some Name"));
        let nowild = role(|r| {
            r.allow_any_name = true;
            r.allow_wildcard_certificates = false;
        });
        assert!(!allowed(&nowild, "*.foo.com"));
    }
}
