//! Vault's ACL policy language and its evaluation: the [`Policy`] parser, the compiled [`Acl`]
//! that the core consults on every request, and Vault's built-in [`DEFAULT_POLICY`].
//!
//! This module owns everything about policies except their storage (the `sys/policy` backend
//! stores the raw text and asks [`Policy::parse`] to validate it) and the decision of which
//! paths are sudo-protected (the router knows that; it passes `needs_sudo`).
//!
//! Semantics follow Vault 1.x / OpenBao 2.x (`vault/policy.go`, `vault/acl.go`), checked
//! against a real OpenBao server where the documentation is silent:
//! * exact rules beat globs; among matching `*`/`+` rules the single highest-priority rule
//!   decides (Vault's documented priority order); capabilities are never unioned across
//!   different patterns, only across rules with the identical path string (where `deny` wins);
//! * a list request for `foo/` also consults rules for `foo`;
//! * parameter constraints (`required_parameters`, `allowed_parameters`, `denied_parameters`)
//!   apply to read, create, update and patch, with Vault's list-element and globbing rules;
//! * help is always allowed; a root ACL allows everything.
//!
//! Policies are HCL (or JSON, which Vault accepts too). HCL is parsed with `hcl-rs`: a
//! maintained, spec-conformant HCL2 parser that yields a plain syntax tree, so the policy
//! structure (`path "..." { ... }` blocks with literal values) is walked directly, with
//! Vault's own error messages, instead of being deserialized into structs that would lose
//! repeated blocks and key order. Vault itself uses HCL1; every policy in HCL2-compatible
//! syntax (the form Vault's documentation uses) parses the same. HCL1-only leniencies
//! (several attributes on one line, commas between attributes, quoted attribute names) are
//! rejected with a `BadRequest`, as is any expression that is not a literal.

mod acl;
mod parse;
#[cfg(test)]
mod tests;

pub use acl::Acl;
pub use parse::{PathRule, Permissions, RuleKind};

use crate::error::{Error, Result};

/// A parsed ACL policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// The policy text as given.
    pub raw: String,
    /// The `path` blocks, in order (expired ones dropped). Blocks with the same path are merged
    /// only when the [`Acl`] is compiled.
    pub rules: Vec<PathRule>,
}

impl Policy {
    /// Parses Vault's HCL (or JSON) policy language. Errors are `Error::BadRequest`
    /// (`failed to parse policy: ...`): bad HCL or JSON, an unknown key, an unknown capability,
    /// a malformed parameter map or TTL, `+*` in a path. As in Vault, a `path` block without
    /// capabilities is valid (it grants nothing).
    pub fn parse(name: &str, text: &str) -> Result<Policy> {
        let rules = parse::parse_rules(text)
            .map_err(|e| Error::BadRequest(format!("failed to parse policy: {e}")))?;
        Ok(Policy {
            name: name.to_string(),
            raw: text.to_string(),
            rules,
        })
    }

    /// Whether any path uses identity templating (`{{identity.entity.id}}`); such paths are
    /// ignored by the ACL, since Tresor has no identity store.
    pub fn is_templated(&self) -> bool {
        self.rules.iter().any(|r| r.templated)
    }
}

/// Vault's built-in `default` policy, byte for byte as OpenBao ships it (`bao policy read
/// default`, including the leading newline).
pub const DEFAULT_POLICY: &str = r#"
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own entity by id or name
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}


# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Allow a token to make requests to the Authorization Endpoint for OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
"#;
