//! Policy parsing and ACL evaluation. Expected answers for priority, list fallback and
//! capability listings were taken from a real OpenBao 2.7 server (`bao token capabilities`).

use super::*;
use crate::logical::{Data, Operation};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn pol(name: &str, text: &str) -> Arc<Policy> {
    Arc::new(Policy::parse(name, text).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Arc<Policy>> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| pol(&format!("p{i}"), t))
        .collect();
    Acl::new(&policies)
}

fn caps(acl: &Acl, path: &str) -> String {
    acl.capabilities(path).join(", ")
}

fn data(v: Value) -> Data {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn allowed(acl: &Acl, path: &str, op: Operation, d: Value) -> bool {
    acl.check(path, op, &data(d), false).is_ok()
}

fn parse_err(text: &str) -> String {
    match Policy::parse("bad", text) {
        Err(Error::BadRequest(m)) => m,
        Err(e) => panic!("wrong error kind: {e:?}"),
        Ok(p) => panic!("parsed: {p:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[test]
fn parses_hcl() {
    let p = Policy::parse(
        "dev",
        r#"
# comment
name = "ignored"
path "secret/data/*" {
  capabilities = ["create", "read", "update", "delete", "list", "patch"]
}
// another comment
path "/sys/mounts" {
  capabilities = ["read", "sudo"]
  comment = "leading slash stripped"
}
/* block comment */
path "secret/+/config" {
  capabilities = ["read"]
}
path "x" {
  capabilities = ["subscribe", "recover", "scan"]
}
"#,
    )
    .unwrap();
    assert_eq!(p.name, "dev");
    assert!(p.raw.contains("secret/data/*"));
    assert_eq!(p.rules.len(), 4);
    assert_eq!(p.rules[0].path, "secret/data/*");
    assert_eq!(p.rules[0].kind, RuleKind::Prefix);
    assert_eq!(
        p.rules[0].permissions.capabilities(),
        ["create", "delete", "list", "patch", "read", "update"]
    );
    assert_eq!(p.rules[1].path, "sys/mounts");
    assert_eq!(p.rules[1].kind, RuleKind::Exact);
    assert_eq!(p.rules[1].permissions.capabilities(), ["read", "sudo"]);
    assert_eq!(p.rules[2].kind, RuleKind::Segment);
    assert_eq!(
        p.rules[3].permissions.capabilities(),
        ["recover", "scan", "subscribe"]
    );
}

#[test]
fn parses_json() {
    let p = Policy::parse(
        "j",
        r#"{
          "name": "x",
          "path": {
            "secret/foo": {"capabilities": ["read"]},
            "secret/bar/*": {"capabilities": ["list"], "allowed_parameters": {"A": ["x"]}}
          }
        }"#,
    )
    .unwrap();
    assert_eq!(p.rules.len(), 2);
    assert_eq!(p.rules[0].path, "secret/foo");
    assert_eq!(p.rules[1].kind, RuleKind::Prefix);
    assert_eq!(
        p.rules[1].permissions.allowed_parameters.get("a"),
        Some(&vec![json!("x")])
    );
    // HCL's JSON dialect also allows lists of objects.
    let p = Policy::parse(
        "j",
        r#"{"path": [{"a": {"capabilities": ["read"]}}, {"b": [{"capabilities": ["list"]}]}]}"#,
    )
    .unwrap();
    assert_eq!(p.rules.len(), 2);
    let a = Acl::new(&[Arc::new(p)]);
    assert_eq!(caps(&a, "a"), "read");
    assert_eq!(caps(&a, "b"), "list");
}

#[test]
fn parses_parameters_and_ttls() {
    let p = Policy::parse(
        "p",
        r#"
path "secret/foo" {
  capabilities = ["create", "update"]
  required_parameters = ["Bar"]
  allowed_parameters = {
    "Bar" = []
    "baz" = ["x", "y*", 3, true]
    "*" = []
  }
  denied_parameters = {
    "secret" = []
  }
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = 3600
}
path "secret/block" {
  capabilities = ["update"]
  allowed_parameters {
    a = ["1"]
  }
  min_wrapping_ttl = "1h30m"
  max_wrapping_ttl = "2d"
}
"#,
    )
    .unwrap();
    let perms = &p.rules[0].permissions;
    assert_eq!(perms.required_parameters, ["Bar"]);
    assert_eq!(perms.allowed_parameters["bar"], Vec::<Value>::new());
    assert_eq!(
        perms.allowed_parameters["baz"],
        vec![json!("x"), json!("y*"), json!(3), json!(true)]
    );
    assert!(perms.allowed_parameters.contains_key("*"));
    assert!(perms.denied_parameters.contains_key("secret"));
    assert_eq!(perms.min_wrapping_ttl, Duration::from_secs(60));
    assert_eq!(perms.max_wrapping_ttl, Duration::from_secs(3600));
    let perms = &p.rules[1].permissions;
    assert_eq!(perms.allowed_parameters["a"], vec![json!("1")]);
    assert_eq!(perms.min_wrapping_ttl, Duration::from_secs(5400));
    assert_eq!(perms.max_wrapping_ttl, Duration::from_secs(2 * 86400));
}

#[test]
fn legacy_policy_key() {
    let a = acl(&[r#"
path "r" { policy = "read" }
path "w" { policy = "write" }
path "s" { policy = "sudo" }
path "d" {
  policy = "deny"
  capabilities = ["read"]
}
"#]);
    assert_eq!(caps(&a, "r"), "list, read");
    assert_eq!(caps(&a, "w"), "create, delete, list, read, update");
    assert_eq!(caps(&a, "s"), "create, delete, list, read, sudo, update");
    assert_eq!(caps(&a, "d"), "deny");
}

#[test]
fn empty_and_capability_less_policies_are_valid() {
    // As in Vault: an empty policy, and a path block without capabilities (grants nothing).
    assert!(Policy::parse("e", "").unwrap().rules.is_empty());
    assert!(Policy::parse("e", "# only a comment\n")
        .unwrap()
        .rules
        .is_empty());
    let a = acl(&["path \"x\" {\n}\n", "path \"y\" {\n capabilities = []\n}\n"]);
    assert_eq!(caps(&a, "x"), "deny");
    assert_eq!(caps(&a, "y"), "deny");
    assert!(!allowed(&a, "x", Operation::Read, json!({})));
}

#[test]
fn parse_errors() {
    let cases: &[(&str, &str)] = &[
        (
            r#"path "secret/foo" { capabilities = ["READ"] }"#,
            r#"failed to parse policy: path "secret/foo": invalid capability "READ""#,
        ),
        (
            r#"path "secret/foo" { capabilities = ["root"] }"#,
            r#"invalid capability "root""#,
        ),
        (
            "path \"secret/foo\" {\n bogus = 1\n capabilities = [\"read\"]\n}",
            r#"failed to parse policy: path "secret/foo": invalid key "bogus""#,
        ),
        (
            "foo \"x\" {\n}",
            r#"failed to parse policy: invalid key "foo""#,
        ),
        ("other = 1", r#"invalid key "other""#),
        (
            r#"path "secret/+*" { capabilities = ["read"] }"#,
            r#"failed to parse policy: path "secret/+*": invalid use of wildcards ('+*' is forbidden)"#,
        ),
        (
            r#"path "secret/foo" { capabilities = "read" }"#,
            "capabilities: expected a list of strings",
        ),
        (
            r#"path "secret/foo" { capabilities = [read] }"#,
            "unsupported expression",
        ),
        (r#"path "secret/foo" { capabilities = ["read" }"#, "failed to parse policy: At 1:"),
        ("path \"x\" {", "failed to parse policy: At "),
        (
            r#"path "secret/foo" { policy = "all" }"#,
            r#"invalid policy "all""#,
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n allowed_parameters = { \"a\" = \"x\" }\n}",
            r#"allowed_parameters: value for "a" must be a list"#,
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n denied_parameters = [\"a\"]\n}",
            "denied_parameters: expected a map",
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"abc\"\n}",
            r#"error parsing min_wrapping_ttl: time: invalid duration "abc""#,
        ),
        (
            "path \"a\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"1h\"\n max_wrapping_ttl = 60\n}",
            "max_wrapping_ttl cannot be less than min_wrapping_ttl",
        ),
        ("path {\n}", "path block without a path"),
        (r#"{"path": {"a": {"capabilities": ["nope"]}}}"#, r#"invalid capability "nope""#),
        (r#"{"path": {"a": {"capabilities": ["read"]}}"#, "failed to parse policy: "),
        (r#"{"paths": {}}"#, r#"invalid key "paths""#),
        (r#"{"path": {"a": {"capability": ["read"]}}}"#, r#"invalid key "capability""#),
    ];
    for (text, want) in cases {
        let got = parse_err(text);
        assert!(got.starts_with("failed to parse policy: "), "{got}");
        assert!(got.contains(want), "{text:?}\n  got: {got}\n  want: {want}");
    }
}

#[test]
fn deny_stops_capability_parsing() {
    // Vault stops at `deny`: later entries are not validated and parameters are not kept.
    let p = Policy::parse(
        "d",
        "path \"a\" {\n capabilities = [\"deny\", \"bogus\"]\n min_wrapping_ttl = \"zzz\"\n}",
    )
    .unwrap();
    assert_eq!(p.rules[0].permissions.capabilities(), ["deny"]);
    assert!(Policy::parse("d", r#"path "a" { capabilities = ["bogus", "deny"] }"#).is_err());
}

#[test]
fn default_policy_parses_and_is_exact() {
    let p = Policy::parse("default", DEFAULT_POLICY).unwrap();
    assert!(DEFAULT_POLICY.starts_with("\n# Allow tokens to look up their own properties\n"));
    assert!(p.is_templated());
    let a = Acl::new(&[Arc::new(p)]);
    assert!(!a.is_root());
    assert_eq!(caps(&a, "auth/token/lookup-self"), "read");
    assert_eq!(caps(&a, "auth/token/renew-self"), "update");
    assert_eq!(caps(&a, "auth/token/revoke-self"), "update");
    assert_eq!(caps(&a, "sys/capabilities-self"), "update");
    assert_eq!(caps(&a, "sys/internal/ui/resultant-acl"), "read");
    assert_eq!(caps(&a, "sys/leases/renew"), "update");
    assert_eq!(caps(&a, "sys/leases/lookup"), "update");
    assert_eq!(
        caps(&a, "cubbyhole/x/y"),
        "create, delete, list, read, update"
    );
    assert_eq!(caps(&a, "cubbyhole"), "deny");
    assert_eq!(caps(&a, "sys/wrapping/wrap"), "update");
    assert_eq!(caps(&a, "sys/wrapping/lookup"), "update");
    assert_eq!(caps(&a, "sys/wrapping/unwrap"), "update");
    assert_eq!(caps(&a, "sys/wrapping/rewrap"), "deny");
    assert_eq!(caps(&a, "sys/tools/hash"), "update");
    assert_eq!(caps(&a, "sys/tools/hash/sha2-512"), "update");
    assert_eq!(
        caps(&a, "identity/oidc/provider/p1/authorize"),
        "read, update"
    );
    assert_eq!(caps(&a, "secret/foo"), "deny");
    assert_eq!(caps(&a, "sys/mounts"), "deny");
    // Templated paths are ignored without an identity store.
    assert_eq!(
        caps(&a, "identity/entity/id/{{identity.entity.id}}"),
        "deny"
    );
    assert!(allowed(
        &a,
        "auth/token/lookup-self",
        Operation::Read,
        json!({})
    ));
    assert!(!allowed(
        &a,
        "auth/token/lookup-self",
        Operation::Update,
        json!({})
    ));
    assert!(allowed(
        &a,
        "cubbyhole/foo",
        Operation::Create,
        json!({"a": 1})
    ));
}

// ---------------------------------------------------------------------------------------------
// Matching and priority

#[test]
fn exact_and_prefix() {
    let a = acl(&[r#"
path "secret/foo" {
  capabilities = ["read", "sudo", "update", "patch", "create", "delete", "list"]
}
path "secret/*" {
  capabilities = ["read"]
}
path "secret/a*" {
  capabilities = ["list"]
}
path "*" {
  capabilities = ["patch"]
}
"#]);
    assert_eq!(
        caps(&a, "secret/foo"),
        "create, delete, list, patch, read, sudo, update"
    );
    // Leading slashes are ignored; a list for foo/ also consults the rule for foo.
    assert_eq!(caps(&a, "/secret/foo"), caps(&a, "secret/foo"));
    assert_eq!(caps(&a, "//secret/foo"), caps(&a, "secret/foo"));
    assert_eq!(caps(&a, "secret/foo/"), caps(&a, "secret/foo"));
    assert!(allowed(&a, "secret/foo/", Operation::List, json!({})));
    assert!(!allowed(&a, "secret/foo/", Operation::Update, json!({})));
    // Exact beats globs; longest prefix wins among prefixes.
    assert_eq!(caps(&a, "secret/foo/x"), "read");
    assert_eq!(caps(&a, "secret/fo"), "read");
    assert_eq!(caps(&a, "secret/abc"), "list");
    assert_eq!(caps(&a, "secret/a"), "list");
    assert_eq!(caps(&a, "secret/"), "read");
    assert_eq!(caps(&a, "secret"), "patch");
    assert_eq!(caps(&a, "other/thing"), "patch");
}

#[test]
fn segment_wildcards() {
    let a = acl(&[r#"
path "+" {
  capabilities = ["read"]
}
path "+/+/*" {
  capabilities = ["list"]
}
path "a/+b/*" {
  capabilities = ["update"]
}
path "/lead" {
  capabilities = ["sudo"]
}
path "kv/+/+/meta" {
  capabilities = ["create"]
}
"#]);
    assert_eq!(caps(&a, "x"), "read");
    assert_eq!(caps(&a, "x/"), "read");
    assert_eq!(caps(&a, "x/y/"), "list");
    assert_eq!(caps(&a, "x/y"), "deny");
    // "+b" is not a wildcard segment: it only matches literally.
    assert_eq!(caps(&a, "a/+b/c"), "update");
    assert_eq!(caps(&a, "a/xb/c"), "list");
    assert_eq!(caps(&a, "lead"), "sudo");
    assert_eq!(caps(&a, "/lead"), "sudo");
    assert_eq!(caps(&a, "kv/a/b/meta"), "create");
    assert_eq!(caps(&a, "kv/a/b/meta/x"), "list");
    assert_eq!(caps(&a, "kv/a/meta"), "list");
    // "+" matches an empty segment too.
    assert_eq!(caps(&a, "kv//b/meta"), "create");
}

#[test]
fn priority_rules() {
    // Answers from OpenBao for this exact policy.
    let a = acl(&[r#"
path "secret/*" {
  capabilities = ["read"]
}
path "secret/+/*" {
  capabilities = ["list"]
}
path "secret/+/foo" {
  capabilities = ["update"]
}
path "secret/+/+/foo" {
  capabilities = ["create"]
}
path "secret/bar/+/foo" {
  capabilities = ["delete"]
}
path "secret/bar/b*" {
  capabilities = ["patch"]
}
path "secret/+/ba*" {
  capabilities = ["sudo"]
}
path "secret/+/bar/ba*" {
  capabilities = ["read", "update"]
}
path "secret/+/bar/b*" {
  capabilities = ["read", "delete"]
}
path "secret/exact" {
  capabilities = ["deny"]
}
path "secret/+/+" {
  capabilities = ["create", "read"]
}
path "x/+/+/*" {
  capabilities = ["read"]
}
path "x/+/*" {
  capabilities = ["list"]
}
path "+/y/*" {
  capabilities = ["update"]
}
"#]);
    let expect = [
        ("secret/a/foo", "update"),
        ("secret/a/b/foo", "create"),
        ("secret/bar/x/foo", "delete"),
        ("secret/bar/baz", "patch"),
        ("secret/x/baz", "create, read"),
        ("secret/x/bar/baz", "read"),
        ("secret/x/bar/bq", "read"),
        ("secret/exact", "deny"),
        ("secret/exact/", "deny"),
        ("secret/a", "read"),
        ("secret/a/", "create, read"),
        ("secret/a/b", "create, read"),
        ("secret/a/b/", "read"),
        ("x/y/z", "list"),
        ("x/y/z/w", "list"),
        ("x/y/", "list"),
        ("q/y/z", "update"),
        ("q/y/", "update"),
        ("secret/bar/", "create, read"),
        ("secret/bar", "read"),
    ];
    for (path, want) in expect {
        assert_eq!(caps(&a, path), want, "{path}");
    }
}

#[test]
fn priority_examples_from_vault_docs() {
    // secret/* vs secret/+/*: same first wildcard, both globs, fewer `+` wins.
    let a = acl(&[
        "path \"secret/*\" {\n capabilities = [\"read\"]\n}\npath \"secret/+/*\" {\n capabilities = [\"update\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "secret/a/b"), "read");
    assert_eq!(caps(&a, "secret/a/"), "read");
    // The later first wildcard wins, regardless of the order of policies.
    let a = acl(&[
        "path \"secret/+/bar/*\" {\n capabilities = [\"read\"]\n}\n",
        "path \"secret/foo/+/*\" {\n capabilities = [\"update\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "secret/foo/bar/baz"), "update");
    // Not ending in `*` beats ending in `*` (foo/+ over foo/*).
    let a = acl(&[
        "path \"foo/*\" {\n capabilities = [\"read\"]\n}\npath \"foo/+\" {\n capabilities = [\"list\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "foo/bar"), "list");
    assert_eq!(caps(&a, "foo/bar/baz"), "read");
    // Longer beats shorter (foo/+/bar/ba* over foo/+/bar/b*).
    let a = acl(&[
        "path \"foo/+/bar/b*\" {\n capabilities = [\"read\"]\n}\npath \"foo/+/bar/ba*\" {\n capabilities = [\"list\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "foo/x/bar/baz"), "list");
    assert_eq!(caps(&a, "foo/x/bar/bq"), "read");
    // Fewer wildcard segments (foo/bar/+/baz over foo/+/+/baz): the first wildcard is later.
    let a = acl(&[
        "path \"foo/+/+/baz\" {\n capabilities = [\"read\"]\n}\npath \"foo/bar/+/baz\" {\n capabilities = [\"list\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "foo/bar/x/baz"), "list");
    assert_eq!(caps(&a, "foo/baz/x/baz"), "read");
    // Capabilities of different matching patterns are not unioned.
    let a = acl(&[
        "path \"secret/*\" {\n capabilities = [\"read\"]\n}\n",
        "path \"secret/foo/*\" {\n capabilities = [\"update\"]\n}\n",
    ]);
    assert!(!allowed(&a, "secret/foo/x", Operation::Read, json!({})));
    assert!(allowed(&a, "secret/foo/x", Operation::Update, json!({})));
}

#[test]
fn list_trailing_slash_fallback() {
    // OpenBao: the full path is tried first (so a deny on `kv1/private/*` is not bypassed by
    // `kv1/*` matching `kv1/private`), then the path without the trailing slash.
    let a = acl(&[
        "path \"kv1/*\" {\n capabilities = [\"list\", \"read\"]\n}\npath \"kv1/private/*\" {\n capabilities = [\"deny\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "kv1/private/"), "deny");
    assert_eq!(caps(&a, "kv1/private"), "list, read");
    assert_eq!(caps(&a, "kv1/private/x"), "deny");
    assert_eq!(caps(&a, "kv1/privatex"), "list, read");
    assert!(!allowed(&a, "kv1/private/", Operation::List, json!({})));

    let a = acl(&["path \"kv1/+\" {\n capabilities = [\"list\"]\n}\n"]);
    assert_eq!(caps(&a, "kv1/private/"), "list");
    assert!(allowed(&a, "kv1/private/", Operation::List, json!({})));
    // Only list requests get the fallback.
    assert!(!allowed(&a, "kv1/private/", Operation::Read, json!({})));

    let a = acl(&[
        "path \"kv1/+/\" {\n capabilities = [\"read\"]\n}\npath \"kv1/+\" {\n capabilities = [\"list\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "kv1/private/"), "read");
    assert_eq!(caps(&a, "kv1/private"), "list");

    let a = acl(&[
        "path \"kv1/+\" {\n capabilities = [\"list\"]\n}\npath \"kv1/*\" {\n capabilities = [\"read\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "kv1/private/"), "read");
    assert_eq!(caps(&a, "kv1/private"), "list");

    // Exact rule without the slash beats a glob matching the full path.
    let a = acl(&[
        "path \"kv1/private\" {\n capabilities = [\"list\"]\n}\npath \"kv1/*\" {\n capabilities = [\"read\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "kv1/private/"), "list");
    let a = acl(&[
        "path \"kv1/private\" {\n capabilities = [\"deny\"]\n}\npath \"kv1/private/\" {\n capabilities = [\"read\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "kv1/private/"), "read");
    assert_eq!(caps(&a, "kv1/private"), "deny");
}

// ---------------------------------------------------------------------------------------------
// Merging

#[test]
fn merging_same_path_across_policies() {
    let a = acl(&[
        "path \"secret/foo\" {\n capabilities = [\"read\"]\n}\npath \"secret/*\" {\n capabilities = [\"list\"]\n}\n",
        "path \"secret/foo\" {\n capabilities = [\"update\"]\n}\npath \"secret/*\" {\n capabilities = [\"create\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "secret/foo"), "read, update");
    assert_eq!(caps(&a, "secret/bar"), "create, list");

    // Deny anywhere on that path string wins, in either order.
    for texts in [
        [
            "path \"secret/foo\" {\n capabilities = [\"read\", \"sudo\"]\n}\n",
            "path \"secret/foo\" {\n capabilities = [\"deny\"]\n}\n",
        ],
        [
            "path \"secret/foo\" {\n capabilities = [\"deny\"]\n}\n",
            "path \"secret/foo\" {\n capabilities = [\"read\", \"sudo\"]\n}\n",
        ],
    ] {
        let a = acl(&texts);
        assert_eq!(caps(&a, "secret/foo"), "deny");
        assert!(!allowed(&a, "secret/foo", Operation::Read, json!({})));
    }

    // Same path in one policy twice merges too; `foo` and `foo*` are different strings.
    let a = acl(&[
        "path \"a\" {\n capabilities = [\"read\"]\n}\npath \"a\" {\n capabilities = [\"list\"]\n}\npath \"a*\" {\n capabilities = [\"deny\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "a"), "list, read");
    assert_eq!(caps(&a, "ab"), "deny");

    // A deny on a different (lower-priority) pattern does not apply.
    let a = acl(&[
        "path \"secret/*\" {\n capabilities = [\"deny\"]\n}\n",
        "path \"secret/foo\" {\n capabilities = [\"read\"]\n}\n",
    ]);
    assert_eq!(caps(&a, "secret/foo"), "read");
    assert_eq!(caps(&a, "secret/bar"), "deny");
}

#[test]
fn merging_parameters() {
    let a = acl(&[
        r#"
path "p" {
  capabilities = ["update"]
  allowed_parameters = {
    "a" = ["1"]
    "b" = []
    "c" = ["x"]
    "r1" = []
    "r2" = []
  }
  required_parameters = ["r1"]
}
"#,
        r#"
path "p" {
  capabilities = ["create"]
  allowed_parameters = {
    "a" = ["2"]
    "b" = ["only"]
    "c" = []
    "d" = ["z"]
  }
  required_parameters = ["r1", "r2"]
}
"#,
    ]);
    let ok = |d: Value| allowed(&a, "p", Operation::Update, d);
    let base = |extra: Value| {
        let mut m = data(json!({"r1": 1, "r2": 1}));
        m.extend(data(extra));
        Value::Object(m)
    };
    // Lists concatenate; an empty list (any value) absorbs values.
    assert!(ok(base(json!({"a": "1"}))));
    assert!(ok(base(json!({"a": "2"}))));
    assert!(!ok(base(json!({"a": "3"}))));
    assert!(ok(base(json!({"b": "anything"}))));
    assert!(ok(base(json!({"c": "anything"}))));
    assert!(ok(base(json!({"d": "z"}))));
    assert!(!ok(base(json!({"e": "z"}))));
    // Required parameters are the union.
    assert!(!ok(json!({"r1": 1, "a": "1"})));
    assert!(allowed(&a, "p", Operation::Create, base(json!({}))));

    // Merging with a rule that has no constraints keeps the constraints (as Vault).
    let a = acl(&[
        "path \"q\" {\n capabilities = [\"update\"]\n}\n",
        "path \"q\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n \"a\" = []\n }\n}\n",
    ]);
    assert!(allowed(&a, "q", Operation::Update, json!({"a": 1})));
    assert!(!allowed(&a, "q", Operation::Update, json!({"b": 1})));
}

#[test]
fn merging_wrapping_ttls_takes_the_lesser() {
    let a = acl(&[
        "path \"w\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = 60\n max_wrapping_ttl = 3600\n}\n",
        "path \"w\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = 30\n max_wrapping_ttl = 600\n}\n",
    ]);
    assert_eq!(a.wrapping_bounds("w"), (Some(30), Some(600)));
    assert_eq!(a.wrapping_bounds("other"), (None, None));
}

// ---------------------------------------------------------------------------------------------
// Operations, sudo, root, help, wrapping

#[test]
fn operations_map_to_capabilities() {
    let a = acl(&[r#"
path "r" {
  capabilities = ["read"]
}
path "l/*" {
  capabilities = ["list"]
}
path "c" {
  capabilities = ["create"]
}
path "u" {
  capabilities = ["update"]
}
path "d" {
  capabilities = ["delete"]
}
path "p" {
  capabilities = ["patch"]
}
path "s" {
  capabilities = ["subscribe", "sudo"]
}
"#]);
    use Operation::*;
    let table = [
        ("r", Read),
        ("l/x/", List),
        ("c", Create),
        ("u", Update),
        ("d", Delete),
        ("p", Patch),
    ];
    for (path, op) in table {
        for other in [Read, List, Create, Update, Delete, Patch] {
            assert_eq!(
                allowed(&a, path, other, json!({})),
                other == op,
                "{path} {other:?}"
            );
        }
    }
    // sudo and subscribe grant no operation by themselves.
    for op in [Read, List, Create, Update, Delete, Patch] {
        assert!(!allowed(&a, "s", op, json!({})));
    }
    // No rule: denied.
    assert!(matches!(
        a.check("nothing", Read, &Data::new(), false),
        Err(Error::PermissionDenied)
    ));
}

#[test]
fn sudo_paths() {
    let a = acl(&[r#"
path "sys/mounts" {
  capabilities = ["read"]
}
path "sys/audit" {
  capabilities = ["read", "sudo"]
}
path "sys/raw/*" {
  capabilities = ["sudo"]
}
"#]);
    let d = Data::new();
    assert!(a.check("sys/mounts", Operation::Read, &d, false).is_ok());
    assert!(matches!(
        a.check("sys/mounts", Operation::Read, &d, true),
        Err(Error::PermissionDenied)
    ));
    assert!(a.check("sys/audit", Operation::Read, &d, true).is_ok());
    // sudo alone does not grant the operation.
    assert!(a.check("sys/raw/x", Operation::Read, &d, true).is_err());
}

#[test]
fn root_acl() {
    let root = pol("root", "");
    let a = Acl::new(&[root.clone(), pol("default", DEFAULT_POLICY)]);
    assert!(a.is_root());
    assert_eq!(a.capabilities("anything"), ["root"]);
    assert!(a
        .check("sys/raw/x", Operation::Delete, &data(json!({"x": 1})), true)
        .is_ok());
    assert_eq!(a.resultant_acl(), json!({"root": true}));
    assert!(a.has_mount_access("secret/"));
    let a = acl(&["path \"*\" {\n capabilities = [\"read\", \"sudo\"]\n}\n"]);
    assert!(!a.is_root());
    assert_eq!(caps(&a, "x"), "read, sudo");
}

#[test]
fn empty_acl_denies_everything() {
    let a = Acl::new(&[]);
    assert!(!a.is_root());
    assert_eq!(a.capabilities("x"), ["deny"]);
    assert!(a.check("x", Operation::Read, &Data::new(), false).is_err());
    assert!(!a.has_mount_access("secret/"));
}

#[test]
fn help_is_always_allowed() {
    // OpenBao answers `?help=1` for any path to any valid token, sudo paths included.
    let a = acl(&["path \"secret/bar\" {\n capabilities = [\"deny\"]\n}\n"]);
    let d = Data::new();
    assert!(a.check("secret/bar", Operation::Help, &d, false).is_ok());
    assert!(a.check("secret/zzz", Operation::Help, &d, false).is_ok());
    assert!(a.check("sys/audit", Operation::Help, &d, true).is_ok());
}

#[test]
fn wrapping_ttl_constraints() {
    let a = acl(&[r#"
path "w" {
  capabilities = ["read"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "1h"
}
path "max" {
  capabilities = ["read"]
  max_wrapping_ttl = 300
}
"#]);
    let d = Data::new();
    let at = |p: &str, t: Option<u64>| {
        a.check_wrapped(p, Operation::Read, &d, false, t.map(Duration::from_secs))
            .is_ok()
    };
    // An unwrapped request is denied where wrapping is required.
    assert!(a.check("w", Operation::Read, &d, false).is_err());
    assert!(!at("w", None));
    assert!(!at("w", Some(30)));
    assert!(at("w", Some(60)));
    assert!(at("w", Some(3600)));
    assert!(!at("w", Some(3601)));
    assert!(!at("max", None));
    assert!(at("max", Some(300)));
    assert!(!at("max", Some(301)));
    assert_eq!(a.wrapping_bounds("w"), (Some(60), Some(3600)));
    assert_eq!(a.wrapping_bounds("max"), (None, Some(300)));
}

// ---------------------------------------------------------------------------------------------
// Parameters

#[test]
fn required_parameters() {
    let a = acl(&[
        "path \"p\" {\n capabilities = [\"create\", \"update\", \"read\", \"list\", \"delete\"]\n required_parameters = [\"Name\", \"ttl\"]\n}\n",
    ]);
    use Operation::*;
    assert!(allowed(&a, "p", Update, json!({"name": "a", "ttl": 1})));
    assert!(allowed(
        &a,
        "p",
        Create,
        json!({"name": "a", "ttl": 1, "x": 2})
    ));
    assert!(!allowed(&a, "p", Update, json!({"name": "a"})));
    assert!(!allowed(&a, "p", Update, json!({})));
    // The policy's name is lowercased; the request's must match that.
    assert!(!allowed(&a, "p", Update, json!({"Name": "a", "ttl": 1})));
    // Reads are constrained too (as in Vault); list and delete are not.
    assert!(!allowed(&a, "p", Read, json!({})));
    assert!(allowed(&a, "p", List, json!({})));
    assert!(allowed(&a, "p", Delete, json!({})));
}

#[test]
fn allowed_parameters() {
    let a = acl(&[r#"
path "kv/foo" {
  capabilities = ["read", "create", "update", "patch", "list", "delete"]
  allowed_parameters = {
    "a" = ["1", "x*"]
    "tags" = ["t1", "t2"]
    "any" = []
    "n" = [5, true]
    "suffix" = ["*.example.com"]
    "contains" = ["*mid*"]
    "policies" = ["default", "dev-*"]
  }
}
"#]);
    use Operation::*;
    let ok = |d: Value| allowed(&a, "kv/foo", Update, d);
    assert!(ok(json!({})));
    assert!(ok(json!({"a": "1"})));
    assert!(ok(json!({"a": "xyz"})));
    assert!(ok(json!({"a": "x"})));
    assert!(!ok(json!({"a": "y"})));
    // Parameter names are case-insensitive.
    assert!(ok(json!({"A": "1"})));
    // A string policy value never matches a number.
    assert!(!ok(json!({"a": 1})));
    assert!(ok(json!({"n": 5})));
    assert!(ok(json!({"n": 5.0})));
    assert!(ok(json!({"n": true})));
    assert!(!ok(json!({"n": 6})));
    assert!(!ok(json!({"n": "5"})));
    assert!(ok(json!({"any": {"nested": [1, 2]}})));
    assert!(ok(json!({"any": null})));
    // Keys not listed are denied.
    assert!(!ok(json!({"a": "1", "other": "x"})));
    // Every element of a list (or a comma-separated string) must be allowed.
    assert!(ok(json!({"tags": ["t1", "t2"]})));
    assert!(ok(json!({"tags": ["t1"]})));
    assert!(ok(json!({"tags": []})));
    assert!(!ok(json!({"tags": ["t1", "t3"]})));
    assert!(ok(json!({"tags": "t1,t2"})));
    assert!(ok(json!({"tags": "t1, t2"})));
    assert!(!ok(json!({"tags": "t1,t3"})));
    assert!(!ok(json!({"tags": ["t1", 2]})));
    // Globs: prefix, suffix, both.
    assert!(ok(json!({"suffix": "www.example.com"})));
    assert!(!ok(json!({"suffix": "www.example.org"})));
    assert!(ok(json!({"contains": "amidst"})));
    assert!(!ok(json!({"contains": "amist"})));
    // Values of `policies` are compared lowercased.
    assert!(ok(json!({"policies": ["Default", "DEV-1"]})));
    assert!(!ok(json!({"policies": ["root"]})));
    // Constraints apply to create, patch and read; not to list or delete.
    assert!(!allowed(&a, "kv/foo", Create, json!({"a": "y"})));
    assert!(!allowed(&a, "kv/foo", Patch, json!({"a": "y"})));
    assert!(!allowed(&a, "kv/foo", Read, json!({"zzz": "1"})));
    assert!(allowed(&a, "kv/foo", Read, json!({"a": "1"})));
    assert!(allowed(&a, "kv/foo", List, json!({"zzz": "1"})));
    assert!(allowed(&a, "kv/foo", Delete, json!({"zzz": "1"})));
}

#[test]
fn allowed_parameters_wildcard_key() {
    let a = acl(&[r#"
path "all" {
  capabilities = ["update"]
  allowed_parameters = {
    "*" = []
  }
}
path "some" {
  capabilities = ["update"]
  allowed_parameters = {
    "*" = []
    "a" = ["1"]
  }
}
path "none" {
  capabilities = ["update"]
  allowed_parameters = {}
}
"#]);
    let ok = |p: &str, d: Value| allowed(&a, p, Operation::Update, d);
    assert!(ok("all", json!({"x": 1, "y": "z"})));
    assert!(ok("some", json!({"x": 1})));
    assert!(ok("some", json!({"a": "1", "x": 1})));
    assert!(!ok("some", json!({"a": "2"})));
    // An empty map constrains nothing.
    assert!(ok("none", json!({"x": 1})));
}

#[test]
fn denied_parameters() {
    let a = acl(&[r#"
path "d" {
  capabilities = ["create", "update"]
  denied_parameters = {
    "secret" = []
    "b" = ["*bad*", "exact"]
    "tags" = ["forbidden"]
  }
}
path "both" {
  capabilities = ["update"]
  allowed_parameters = {
    "a" = []
    "b" = []
  }
  denied_parameters = {
    "b" = ["no"]
  }
}
path "star" {
  capabilities = ["update"]
  denied_parameters = {
    "*" = []
  }
}
"#]);
    let ok = |p: &str, d: Value| allowed(&a, p, Operation::Update, d);
    assert!(ok("d", json!({})));
    assert!(ok("d", json!({"other": 1, "b": "good"})));
    assert!(!ok("d", json!({"secret": "x"})));
    assert!(!ok("d", json!({"SECRET": "x"})));
    assert!(!ok("d", json!({"secret": null})));
    assert!(!ok("d", json!({"b": "this is bad"})));
    assert!(!ok("d", json!({"b": "exact"})));
    assert!(ok("d", json!({"b": "exactly"})));
    // Any element of a list (or a comma-separated string) denied denies.
    assert!(!ok("d", json!({"tags": ["ok", "forbidden"]})));
    assert!(!ok("d", json!({"tags": "ok,forbidden"})));
    assert!(ok("d", json!({"tags": ["ok", "fine"]})));
    // Denied wins over allowed.
    assert!(ok("both", json!({"a": 1, "b": "yes"})));
    assert!(!ok("both", json!({"b": "no"})));
    assert!(!ok("both", json!({"c": "x"})));
    // `*` denies any parameter, but not an empty request.
    assert!(!ok("star", json!({"x": 1})));
    assert!(ok("star", json!({})));
}

#[test]
fn globbed_match_semantics() {
    use super::acl::globbed_match;
    assert!(globbed_match("*", "*"));
    assert!(!globbed_match("*", "anything"));
    assert!(globbed_match("**", "anything"));
    assert!(globbed_match("a*", "abc"));
    assert!(!globbed_match("a*", "cba"));
    assert!(globbed_match("*c", "abc"));
    assert!(globbed_match("*b*", "abc"));
    assert!(globbed_match("abc", "abc"));
    assert!(!globbed_match("a*c", "abc"));
    assert!(globbed_match("a*c", "a*c"));
}

// ---------------------------------------------------------------------------------------------
// Extras

#[test]
fn expired_paths_are_dropped() {
    let p = Policy::parse(
        "e",
        r#"
path "old" {
  capabilities = ["read"]
  expiration = "2001-01-01T00:00:00Z"
}
path "new" {
  capabilities = ["read"]
  expiration = "2999-01-01T00:00:00Z"
}
"#,
    )
    .unwrap();
    assert_eq!(p.rules.len(), 1);
    let a = Acl::new(&[Arc::new(p)]);
    assert_eq!(caps(&a, "old"), "deny");
    assert_eq!(caps(&a, "new"), "read");
    assert!(
        parse_err("path \"x\" {\n expiration = \"soon\"\n}\n").contains("invalid expiration time")
    );
}

#[test]
fn resultant_acl_shape() {
    let a = acl(&[r#"
path "f" {
  capabilities = ["read"]
  allowed_parameters = {
    "x" = ["1"]
  }
  required_parameters = ["q"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "1h"
}
path "c/*" {
  capabilities = ["deny"]
}
path "a/+/b" {
  capabilities = ["read"]
}
"#]);
    assert_eq!(
        a.resultant_acl(),
        json!({
            "exact_paths": {
                "f": {
                    "capabilities": ["read"],
                    "allowed_parameters": {"x": ["1"]},
                    "required_parameters": ["q"],
                    "min_wrapping_ttl": 60,
                    "max_wrapping_ttl": 3600
                }
            },
            "glob_paths": {"c/": {"capabilities": ["deny"]}},
            "root": false
        })
    );
}

#[test]
fn mount_access() {
    let a = acl(&[r#"
path "secret/data/app/*" {
  capabilities = ["read"]
}
path "denied/*" {
  capabilities = ["deny"]
}
path "kv/+/x" {
  capabilities = ["read"]
}
path "exact/mount/" {
  capabilities = ["read"]
}
"#]);
    assert!(a.has_mount_access("secret/"));
    assert!(!a.has_mount_access("denied/"));
    assert!(a.has_mount_access("kv/"));
    assert!(!a.has_mount_access("anything/"));
    assert!(a.has_mount_access("exact/mount/"));
    assert!(!a.has_mount_access("exact/other/"));
    let a = acl(&["path \"+/deep/y\" {\n capabilities = [\"list\"]\n}\n"]);
    assert!(a.has_mount_access("anything/"));
    assert!(!a.has_mount_access("a/b/"));
    let a = acl(&["path \"secret/*\" {\n capabilities = [\"read\"]\n}\n"]);
    assert!(a.has_mount_access("secret/"));
    assert!(!a.has_mount_access("other/"));
}

#[test]
fn many_rules_pick_the_right_one() {
    // Exercise the prefix-length index and the early stop of the segment scan.
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!(
            "path \"app{i}/*\" {{\n capabilities = [\"read\"]\n}}\npath \"app{i}/+/cfg\" {{\n capabilities = [\"update\"]\n}}\npath \"app{i}/x/cfg\" {{\n capabilities = [\"list\"]\n}}\n"
        ));
    }
    let a = acl(&[&text]);
    for i in [0, 7, 199] {
        assert_eq!(caps(&a, &format!("app{i}/y")), "read");
        assert_eq!(caps(&a, &format!("app{i}/y/cfg")), "update");
        assert_eq!(caps(&a, &format!("app{i}/x/cfg")), "list");
        assert_eq!(caps(&a, &format!("app{i}/y/cfg/z")), "read");
    }
    assert_eq!(caps(&a, "app200/y"), "deny");
    assert_eq!(caps(&a, "app1"), "deny");
}
